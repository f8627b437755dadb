//! smtp-sink `-s`: syslog datagrams (docs/smtp-sink.md §15). The test listens on
//! /dev/log itself where no syslog daemon owns it; where one does, each
//! sink runs in a private mount namespace with the test's own socket
//! bind-mounted over /dev/log (needs root). When neither is possible the
//! test says SKIPPED loudly; under `REQUIRE_POSTFIX=1` (set by CI) it
//! fails instead whenever it could have run.

use crate::common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::sink::start_with;
use common::Client;

const DEV_LOG: &str = "/dev/log";

/// Where the sinks' syslog datagrams arrive.
enum LogSocket {
    /// /dev/log itself (no syslog daemon here): removed on drop.
    DevLog(UnixDatagram),
    /// A socket in a temporary directory, mounted over /dev/log in each
    /// sink's private mount namespace (a syslog daemon owns /dev/log).
    Private {
        socket: UnixDatagram,
        path: CString,
        _dir: tempfile::TempDir,
    },
}

impl Drop for LogSocket {
    fn drop(&mut self) {
        if let LogSocket::DevLog(_) = self {
            let _ = std::fs::remove_file(DEV_LOG);
        }
    }
}

impl LogSocket {
    /// Bind /dev/log when it is free, else a private socket (root only).
    fn open() -> Result<LogSocket, String> {
        if std::fs::symlink_metadata(DEV_LOG).is_err() {
            match UnixDatagram::bind(DEV_LOG) {
                Ok(s) => {
                    let _ = std::fs::set_permissions(DEV_LOG, PermissionsExt::from_mode(0o666));
                    return Ok(LogSocket::DevLog(s));
                }
                // Another test process took it a moment ago: go private.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) => return Err(format!("cannot bind {DEV_LOG}: {e}")),
            }
        }
        if !common::is_root() {
            return Err(format!(
                "{DEV_LOG} belongs to a syslog daemon, and mounting over it in a private namespace needs root"
            ));
        }
        let dir = common::tempdir();
        let path = dir.path().join("log");
        let socket = UnixDatagram::bind(&path).map_err(|e| format!("bind {path:?}: {e}"))?;
        let _ = std::fs::set_permissions(&path, PermissionsExt::from_mode(0o666));
        let path = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // Probe once, so a kernel or container that refuses the mount
        // gives a clear reason rather than a failed sink start.
        let mut probe = Command::new("/bin/true");
        private_dev_log(&mut probe, &path);
        match probe.status() {
            Ok(s) if s.success() => Ok(LogSocket::Private {
                socket,
                path,
                _dir: dir,
            }),
            Ok(s) => Err(format!("private mount namespace probe: {s}")),
            Err(e) => Err(format!(
                "cannot mount over {DEV_LOG} in a private namespace: {e}"
            )),
        }
    }

    fn socket(&self) -> &UnixDatagram {
        match self {
            LogSocket::DevLog(socket) | LogSocket::Private { socket, .. } => socket,
        }
    }

    /// Make `cmd` see this socket as /dev/log.
    fn apply(&self, cmd: &mut Command) {
        if let LogSocket::Private { path, .. } = self {
            private_dev_log(cmd, path);
        }
    }
}

/// Run `cmd` in a new mount namespace (private propagation, so nothing
/// leaks back) with `socket` bind-mounted over /dev/log.
fn private_dev_log(cmd: &mut Command, socket: &CString) {
    let socket = socket.clone();
    // SAFETY: only raw system calls run between fork and exec; no
    // allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            let none = std::ptr::null();
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(none, c"/".as_ptr(), none, flags, none.cast()) != 0 {
                return fail();
            }
            let dev_log = c"/dev/log".as_ptr();
            if libc::mount(socket.as_ptr(), dev_log, none, libc::MS_BIND, none.cast()) != 0 {
                return fail();
            }
            Ok(())
        });
    }
}

fn messages(log: &LogSocket) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    log.socket()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    while let Ok(n) = log.socket().recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // "<22>Nov 28 12:03:57 smtp-sink[23250]: connect " -> priority and
        // the text after the pid.
        let prio = text.split('>').next().unwrap_or("").to_string();
        let msg = text
            .split_once("]: ")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        let ident = text.contains(" smtp-sink[");
        out.push(format!("{prio}> ident={ident} {msg}"));
    }
    out
}

fn session(program: &Path, log: &LogSocket) -> Vec<u8> {
    let sink = start_with(
        program,
        "/some/dir/smtp-sink",
        &["-s", "connect,helo,DATA,noop,."],
        "127.0.0.1",
        None,
        |cmd| log.apply(cmd),
    );
    let mut c = Client::connect(sink.addr);
    let mut got = c.reply();
    c.send(b"HELO   a b\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\ndata\r\n");
    got.extend(c.replies(4));
    c.send(b"x\r\n.\r\nNOOP \x01\xff\r\nQUIT\r\n");
    got.extend(c.read_to_eof());
    got
}

#[test]
fn commands_are_logged() {
    let log = match LogSocket::open() {
        Ok(log) => log,
        Err(why) => {
            // Root can always take /dev/log or mount over it, and anyone
            // can bind a free /dev/log: then a skip would hide a failure.
            let could_run = common::is_root() || !Path::new(DEV_LOG).exists();
            if common::postfix_required() && could_run {
                panic!("commands_are_logged: {why} (REQUIRE_POSTFIX=1: this test must run here)");
            }
            eprintln!("\n*** SKIPPED commands_are_logged: {why} ***\n");
            return;
        }
    };
    let replies = session(&common::our_sink(), &log);
    let ours = messages(&log);
    assert_eq!(
        ours,
        vec![
            "<22> ident=true connect ",
            "<22> ident=true HELO   a b",
            "<22> ident=true data ",
            "<22> ident=true . ",
            "<22> ident=true NOOP ??",
        ]
    );
    if let Some(reference) =
        common::postfix_or_skip(common::POSTFIX_SINK, "commands_are_logged (Postfix part)")
    {
        assert_eq!(session(&reference, &log), replies);
        assert_eq!(messages(&log), ours);
    }
}
