//! A real Postfix MTA on loopback, in its own temporary configuration and
//! queue directories, for interop and end-to-end tests. It listens on a
//! free high port on 127.0.0.1 and relays everything to `relayhost`.
//!
//! Needs root (Postfix's master runs as root and drops to `postfix`) and the
//! Debian `postfix` package; [`Mta::start_or_skip`] skips loudly otherwise
//! and fails under `REQUIRE_POSTFIX=1`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{free_port, is_root, postfix_required, wait_for_listener, TIMEOUT};

/// Postfix's control command.
pub const POSTFIX: &str = "/usr/sbin/postfix";

/// A running Postfix instance; stopped (and its directory removed) on drop.
pub struct Mta {
    dir: tempfile::TempDir,
    /// Where its smtpd listens.
    pub addr: SocketAddr,
}

/// The services an MTA that only relays needs, none chrooted (the temporary
/// queue directory has no chroot environment).
const MASTER_CF_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Mta {
    /// Start an MTA relaying to `relay` (e.g. `[127.0.0.1]:2525`), with
    /// extra `main.cf` lines, or skip loudly (`None`) when that is not
    /// possible here. Panics under `REQUIRE_POSTFIX=1` instead of skipping.
    pub fn start_or_skip(test: &str, relay: &str, extra_main_cf: &[&str]) -> Option<Mta> {
        let why = if !Path::new(POSTFIX).exists() {
            Some(format!("{POSTFIX} not installed (apt-get install postfix)"))
        } else if !is_root() {
            Some("a Postfix MTA needs root to start".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            if postfix_required() {
                panic!("{test}: {why}, and REQUIRE_POSTFIX=1");
            }
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            return None;
        }
        Some(Mta::start(relay, extra_main_cf))
    }

    /// Start an MTA (see [`Mta::start_or_skip`]); panics on failure.
    pub fn start(relay: &str, extra_main_cf: &[&str]) -> Mta {
        let dir = tempfile::Builder::new()
            .prefix("smtpstone-mta")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        // The postfix user must be able to reach its queue and data dirs.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir(root.join(sub)).expect("mkdir");
        }
        let postfix = nix::unistd::User::from_name("postfix")
            .ok()
            .flatten()
            .expect("user postfix (created by the postfix package)");
        nix::unistd::chown(&root.join("data"), Some(postfix.uid), Some(postfix.gid))
            .expect("chown data");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.smtpstone.test
mydomain = smtpstone.test
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
relayhost = {relay}
default_transport = smtp
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
",
            root = root.display()
        );
        for line in extra_main_cf {
            main_cf.push_str(line);
            main_cf.push('\n');
        }
        std::fs::write(root.join("etc/main.cf"), main_cf).expect("main.cf");
        let master_cf = format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF_SERVICES}");
        std::fs::write(root.join("etc/master.cf"), master_cf).expect("master.cf");
        let mta = Mta { dir, addr };
        let status = Command::new(POSTFIX)
            .arg("-c")
            .arg(mta.config_dir())
            .arg("start")
            .status()
            .expect("run postfix start");
        assert!(status.success(), "postfix start failed: {}", mta.maillog());
        assert!(
            wait_for_listener(addr, TIMEOUT),
            "Postfix smtpd did not listen on {addr}: {}",
            mta.maillog()
        );
        mta
    }

    /// The instance's configuration directory.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// The instance's log so far (for assertion messages).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Wait until the queue is empty (every message delivered or bounced),
    /// up to `limit`. Returns false on timeout.
    ///
    /// Every [`QUEUE_NUDGE`] it also asks for a run of the whole queue
    /// (`postqueue -f`): Postfix 3.7 once left a deferred message untried
    /// for 45 s, past its one-second backoff, after logging `skipped, still
    /// being delivered` for it. A queue run only brings retries forward;
    /// each one is still logged and seen by the receiver.
    pub fn wait_queue_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut nudge = Instant::now() + QUEUE_NUDGE;
        while Instant::now() < deadline {
            if Instant::now() >= nudge {
                let _ = Command::new("/usr/sbin/postqueue")
                    .arg("-c")
                    .arg(self.config_dir())
                    .arg("-f")
                    .output();
                nudge = Instant::now() + QUEUE_NUDGE;
            }
            let out = Command::new("/usr/sbin/postqueue")
                .arg("-c")
                .arg(self.config_dir())
                .arg("-p")
                .output();
            if let Ok(out) = out {
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains("Mail queue is empty") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

/// How long [`Mta::wait_queue_empty`] waits between queue runs it asks for.
const QUEUE_NUDGE: Duration = Duration::from_secs(5);

impl Drop for Mta {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.config_dir())
            .arg("abort")
            .status();
    }
}
