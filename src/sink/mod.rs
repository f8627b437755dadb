//! smtp-sink: an SMTP/LMTP test server that accepts mail and discards it or
//! dumps it to files, behaving like Postfix's `smtp-sink` (spec
//! `smtp-sink.md`).
//!
//! Library use:
//!
//! ```no_run
//! # async fn demo() -> smtpstone::Result<()> {
//! use smtpstone::sink::{Command, Server, SinkConfig};
//! let argv: Vec<std::ffi::OsString> =
//!     ["smtp-sink", "-c", "-M", "10", "127.0.0.1:0", "100"].iter().map(Into::into).collect();
//! let Command::Run(mut config) = SinkConfig::from_args(&argv)? else { return Ok(()) };
//! config.require_user_as_root = false; // embedding in a root process
//! let server = Server::bind(*config)?;
//! println!("listening on {:?}", server.local_addr());
//! server.run().await // Ok after -M/-n, Err(Error::Fatal) on a fatal error
//! # }
//! ```
//!
//! Sessions run as tokio tasks; [`Server::run`] works on a current-thread or
//! multi-thread runtime. Dropping the `run` future aborts all sessions.

pub mod config;
mod dump;
pub mod policy;
mod reply;
mod session;
mod syslog;

pub use config::{
    unescape, usage, AuthOptions, Cmd, CmdFlags, Command, Delay, DumpMode, Extensions, SinkConfig,
    TlsIdentity, TlsOptions, DEFAULT_HARD_REPLY, DEFAULT_SOFT_REPLY, SPEC,
};
pub use reply::Replies;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::diag::{self, Error, Result};
use crate::diag::{errno_text, show_path as show};
use crate::endpoint::{self, Endpoint, Family};
use crate::measure::sink_side::SinkMeasure;
use dump::ClientAddr;
use session::{Counters, Event, Shared};

/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A bound smtp-sink, ready to [`run`](Server::run).
pub struct Server {
    config: SinkConfig,
    tls: Option<session::ServerTls>,
    listener: StdListener,
    local_addr: Option<SocketAddr>,
    measure: Option<Arc<SinkMeasure>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn io_fatal(what: &str, err: &std::io::Error) -> Error {
    Error::fatal(format!("{what}: {}", errno_text(err)))
}

fn nix_fatal(what: &str, err: nix::errno::Errno) -> Error {
    Error::fatal(format!("{what}: {}", diag::strerror(err as i32)))
}

/// Raise the open-file limit to the hard limit, for many concurrent sessions.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn tcp_listener(config: &SinkConfig, endpoint: &Endpoint) -> Result<(StdListener, SocketAddr)> {
    let addr = endpoint::resolve(endpoint, config.family, true)?;
    if config.verbose > 0 {
        diag::info(&format!("trying... [{}]:{}", addr.ip(), addr.port()));
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| io_fatal("socket", &e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|e| io_fatal("setsockopt(IPV6_V6ONLY)", &e))?;
    }
    socket
        .set_reuse_address(true)
        .map_err(|e| io_fatal("setsockopt(SO_REUSEADDR)", &e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| io_fatal("setsockopt(SO_REUSEPORT)", &e))?;
    socket.bind(&addr.into()).map_err(|e| {
        Error::fatal(format!(
            "bind {} port {}: {}",
            addr.ip(),
            addr.port(),
            errno_text(&e)
        ))
    })?;
    if let Some(size) = config.window {
        let size = size as usize;
        if let Err(e) = socket.set_send_buffer_size(size) {
            diag::warning(&format!("setsockopt SO_SNDBUF {size}: {}", errno_text(&e)));
        }
        if let Err(e) = socket.set_recv_buffer_size(size) {
            diag::warning(&format!("setsockopt SO_RCVBUF {size}: {}", errno_text(&e)));
        }
    }
    socket
        .listen(config.backlog)
        .map_err(|e| io_fatal("listen", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io_fatal("fcntl(O_NONBLOCK)", &e))?;
    let listener: std::net::TcpListener = socket.into();
    let local = listener.local_addr().unwrap_or(addr);
    Ok((StdListener::Tcp(listener), local))
}

/// `path` comes from [`endpoint::parse_sink`], which already rejected names
/// of [`endpoint::UNIX_PATH_MAX`] bytes or more.
fn unix_listener(config: &SinkConfig, path: &Path) -> Result<StdListener> {
    let shown = show(path);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_fatal(&format!("remove {shown}"), &e)),
    }
    let socket =
        Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| io_fatal("socket", &e))?;
    let addr = SockAddr::unix(path).map_err(|e| io_fatal(&format!("bind: {shown}"), &e))?;
    socket
        .bind(&addr)
        .map_err(|e| io_fatal(&format!("bind: {shown}"), &e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| io_fatal(&format!("chmod socket {shown}"), &e))?;
    }
    socket
        .listen(config.backlog)
        .map_err(|e| io_fatal("listen", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io_fatal("fcntl(O_NONBLOCK)", &e))?;
    Ok(StdListener::Unix(socket.into()))
}

/// Switch to the `-u` user, with `-R` chroot (spec §3 step 7).
fn drop_privileges(config: &SinkConfig) -> Result<()> {
    use nix::unistd::{chdir, chroot, initgroups, setgid, setuid, User};
    if config.verbose > 1 {
        let root = config
            .root_dir
            .as_deref()
            .map(show)
            .unwrap_or_else(|| "(none)".into());
        let user = config
            .user
            .as_deref()
            .map(diag::sanitize)
            .unwrap_or_else(|| "(none)".into());
        diag::info(&format!("chroot {root} user {user}"));
    }
    let Some(name) = &config.user else {
        return Ok(());
    };
    let shown = String::from_utf8_lossy(name).into_owned();
    let unknown = || Error::fatal(format!("unknown user: {shown}"));
    let pw = User::from_name(&shown)
        .map_err(|_| unknown())?
        .ok_or_else(unknown)?;
    setgid(pw.gid).map_err(|e| nix_fatal(&format!("setgid({})", pw.gid), e))?;
    let cname = std::ffi::CString::new(name.clone()).map_err(|_| unknown())?;
    initgroups(&cname, pw.gid).map_err(|e| nix_fatal("initgroups", e))?;
    if let Some(dir) = &config.root_dir {
        chroot(dir.as_path()).map_err(|e| nix_fatal(&format!("chroot({})", show(dir)), e))?;
        chdir("/").map_err(|e| nix_fatal("chdir(/)", e))?;
    }
    setuid(pw.uid).map_err(|e| nix_fatal(&format!("setuid({})", pw.uid), e))?;
    Ok(())
}

/// How a peer is shown in dumps and verbose output (spec §5).
fn client_addr(peer: Option<SocketAddr>, family: Family) -> ClientAddr {
    match peer {
        Some(SocketAddr::V4(a)) if family != Family::V6 => ClientAddr {
            prefix: "",
            addr: a.ip().to_string(),
        },
        Some(SocketAddr::V6(a)) if family != Family::V4 => ClientAddr {
            prefix: "ipv6:",
            addr: a.ip().to_string(),
        },
        _ => ClientAddr {
            prefix: "",
            addr: "local".to_string(),
        },
    }
}

/// The TLS acceptor for `--tls-cert`/`--tls-self-signed` (issue #7).
fn server_tls(config: &SinkConfig, tls: &TlsOptions) -> Result<session::ServerTls> {
    use crate::tls::server::{acceptor, Identity};
    let identity = match &tls.identity {
        TlsIdentity::Files { cert, key } => Identity::from_pem_files(cert, key)?,
        TlsIdentity::SelfSigned => {
            Identity::self_signed(&String::from_utf8_lossy(&config.hostname))?
        }
    };
    Ok(session::ServerTls {
        acceptor: acceptor(&identity)?,
        implicit: tls.implicit,
    })
}

fn basename(prog: &str) -> &str {
    prog.rsplit('/').next().unwrap_or(prog)
}

impl Server {
    /// Start-up as Postfix does it (spec §3 steps 4–9): refuse root without
    /// `-u`, create the listener, switch user (and chroot), open syslog.
    /// Synchronous; may be called inside or outside a tokio runtime.
    pub fn bind(config: SinkConfig) -> Result<Server> {
        raise_nofile_limit();
        // Certificates are read (or made) first: a bad file is reported
        // like any other option error, and before privileges are dropped.
        let tls = config
            .tls
            .as_ref()
            .map(|t| server_tls(&config, t))
            .transpose()?;
        if config.require_user_as_root && config.user.is_none() && nix::unistd::geteuid().is_root()
        {
            return Err(Error::fatal("-u option is required if running as root"));
        }
        if config.verbose > 0 {
            // Postfix's protocol-name table initialisation, kept for
            // output compatibility.
            diag::info("name_mask: all");
        }
        let endpoint = endpoint::parse_sink(&config.endpoint)?;
        let (listener, local_addr) = match &endpoint {
            Endpoint::Unix(path) => (unix_listener(&config, path)?, None),
            Endpoint::Inet { .. } => {
                let (l, a) = tcp_listener(&config, &endpoint)?;
                (l, Some(a))
            }
        };
        // Bound like the SMTP listener, before privileges are dropped.
        let measure = SinkMeasure::new(&config.measure, &Cmd::ALL.map(Cmd::name))?;
        drop_privileges(&config)?;
        if config.uses_syslog() {
            syslog::open(basename(diag::prog()));
        }
        Ok(Server {
            measure: measure.map(Arc::new),
            config,
            tls,
            listener,
            local_addr,
        })
    }

    /// The bound TCP address (`None` for a UNIX-domain socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The measurements (issue #6), when a measurement option is on: the
    /// caller may print the tracking report itself (on a signal) with
    /// [`SinkMeasure::finish`].
    pub fn measure(&self) -> Option<Arc<SinkMeasure>> {
        self.measure.clone()
    }

    /// Accept and serve sessions until `-M`/`-n` is reached (`Ok`) or a
    /// fatal error happens (`Err(Error::Fatal)`). At most `-m` sessions run
    /// at once; further clients wait in the kernel backlog.
    pub async fn run(self) -> Result<()> {
        let (events, mut rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            replies: Replies::new(&self.config),
            counters: Counters::default(),
            events,
            timeout: Duration::from_secs(u64::from(self.config.timeout)),
            tls: self.tls,
            measure: self.measure,
            config: self.config,
        });
        let _stats = shared.measure.as_ref().and_then(|m| m.spawn_stats());
        let _metrics = match &shared.measure {
            Some(m) => m.serve_metrics()?,
            None => None,
        };
        let listener = match self.listener {
            StdListener::Tcp(l) => Listener::Tcp(
                tokio::net::TcpListener::from_std(l).map_err(|e| io_fatal("listen", &e))?,
            ),
            StdListener::Unix(l) => Listener::Unix(
                tokio::net::UnixListener::from_std(l).map_err(|e| io_fatal("listen", &e))?,
            ),
        };
        let limit = shared.config.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
        let slots = Arc::new(Semaphore::new(limit));
        let mut tasks = JoinSet::new();
        let mut permit = None;
        loop {
            if permit.is_none() {
                tokio::select! {
                    biased;
                    ev = rx.recv() => return ended(&shared, outcome(ev)),
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    p = slots.clone().acquire_owned() => permit = p.ok(),
                }
                continue;
            }
            tokio::select! {
                biased;
                ev = rx.recv() => return ended(&shared, outcome(ev)),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok(stream) => {
                        let slot = permit.take();
                        let shared = shared.clone();
                        let family = shared.config.family;
                        let verbose = shared.config.verbose > 0;
                        match stream {
                            Accepted::Tcp(stream, peer) => {
                                let client = client_addr(Some(peer), family);
                                if verbose {
                                    let af = if peer.is_ipv6() { "AF_INET6" } else { "AF_INET" };
                                    diag::info(&format!("connect ({af} {})", client.addr));
                                }
                                tasks.spawn(async move {
                                    session::run(shared, stream, client).await;
                                    drop(slot);
                                });
                            }
                            Accepted::Unix(stream) => {
                                if verbose {
                                    diag::info("connect (AF_LOCAL local)");
                                }
                                let client = client_addr(None, family);
                                tasks.spawn(async move {
                                    session::run(shared, stream, client).await;
                                    drop(slot);
                                });
                            }
                        }
                    }
                    // A client that reset before we accepted it: nothing to do.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {}
                    Err(e) => {
                        diag::warning(&format!("accept connection: {}", errno_text(&e)));
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
    }
}

/// The server's end: with `--track`, print the tracking report first.
fn ended(shared: &Shared, result: Result<()>) -> Result<()> {
    match &shared.measure {
        Some(m) => m.ended(result),
        None => result,
    }
}

fn outcome(event: Option<Event>) -> Result<()> {
    match event {
        Some(Event::Fatal(text)) => Err(Error::Fatal(text)),
        Some(Event::Exit) | None => Ok(()),
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// The next client. TCP sessions get `TCP_NODELAY`: every reply batch is
    /// already one write, so Nagle's algorithm could only hold a small reply
    /// behind an unacknowledged earlier one (meeting the client's delayed
    /// ACK); it changes timing, never bytes.
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                if let Err(e) = s.set_nodelay(true) {
                    diag::warning(&format!("setsockopt TCP_NODELAY: {}", errno_text(&e)));
                }
                Ok(Accepted::Tcp(s, peer))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok(Accepted::Unix(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted TCP sessions have Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_tcp_has_nodelay() {
        let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("addr");
        let listener = Listener::Tcp(tokio::net::TcpListener::from_std(std).expect("listener"));
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let _client = client.expect("connect");
        match accepted.expect("accept") {
            Accepted::Tcp(stream, _) => assert!(stream.nodelay().expect("getsockopt")),
            Accepted::Unix(_) => panic!("TCP listener gave a unix stream"),
        }
    }
}
