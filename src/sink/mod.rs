//! smtp-sink: an SMTP/LMTP test server that accepts mail and discards it or
//! dumps it to files, behaving like Postfix's `smtp-sink`
//! (docs/smtp-sink.md).
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
// or, to stop it on a signal: server.run_until(shutdown).await
//! # }
//! ```
//!
//! Sessions run as tokio tasks; [`Server::run`] works on a current-thread or
//! multi-thread runtime. Dropping the `run` future aborts all sessions.

pub mod config;
mod dump;
mod net;
pub mod policy;
mod reply;
mod session;
mod syslog;

pub use crate::args::Command;
pub use config::{
    unescape, usage, AuthOptions, Cmd, CmdFlags, Delay, DumpMode, Extensions, SinkConfig,
    TlsIdentity, TlsOptions, DEFAULT_HARD_REPLY, DEFAULT_SOFT_REPLY, SPEC,
};
pub use reply::Replies;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::diag::{self, errno_text, Error, Result};
use crate::endpoint::{self, Endpoint, Family};
use crate::measure::sink_side::SinkMeasure;
use crate::workers::Loops;
use dump::ClientAddr;
use net::{Accepted, Listener, StdListener};
use session::{Counters, Event, Shared};

/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A bound smtp-sink, ready to [`run`](Server::run).
pub struct Server {
    config: SinkConfig,
    tls: Option<session::ServerTls>,
    listener: StdListener,
    local_addr: Option<SocketAddr>,
    measure: Option<Arc<SinkMeasure>>,
    policy: Option<Arc<policy::PolicyEngine>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// How a peer is shown in dumps and verbose output (docs/smtp-sink.md §5).
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

/// The TLS acceptor for `--tls-cert`/`--tls-self-signed`.
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
    /// Start-up as Postfix does it (docs/smtp-sink.md §3 steps 4–9): refuse root without
    /// `-u`, create the listener, switch user (and chroot), open syslog.
    /// Synchronous; may be called inside or outside a tokio runtime.
    pub fn bind(config: SinkConfig) -> Result<Server> {
        // A bad policy file is one fatal line, before anything is bound.
        let policy = session::load_policy(&config)?;
        net::raise_nofile_limit();
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
            Endpoint::Unix(path) => (net::unix_listener(&config, path)?, None),
            Endpoint::Inet { .. } => {
                let (l, a) = net::tcp_listener(&config, &endpoint)?;
                (l, Some(a))
            }
        };
        // Bound like the SMTP listener, before privileges are dropped.
        let measure = SinkMeasure::new(&config.measure, &Cmd::ALL.map(Cmd::name))?;
        net::drop_privileges(&config)?;
        if config.uses_syslog() {
            syslog::open(basename(diag::prog()));
        }
        Ok(Server {
            measure: measure.map(Arc::new),
            policy,
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

    /// Whether the sink prints a report when it ends (`--track`'s
    /// tracking report, `--policy`'s accounting): a caller that stops it on
    /// a signal should then pass the signal as `run_until`'s shutdown.
    pub fn reports_at_exit(&self) -> bool {
        self.policy.is_some() || self.measure.as_ref().is_some_and(|m| m.tracks())
    }

    /// The measurements, when a measurement option is on: the
    /// caller may print the tracking report itself (on a signal) with
    /// [`SinkMeasure::finish`].
    pub fn measure(&self) -> Option<Arc<SinkMeasure>> {
        self.measure.clone()
    }

    /// Accept and serve sessions until `-M`/`-n` is reached (`Ok`) or a
    /// fatal error happens (`Err(Error::Fatal)`). At most `-m` sessions run
    /// at once; further clients wait in the kernel backlog.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending::<()>())
            .await
            .map(|_| ())
    }

    /// [`run`](Server::run), or until `shutdown` completes: then the
    /// `--track` report is printed (as on `-M`/`-n`), the sessions are
    /// dropped and `shutdown`'s output returned (`Ok(Some(_))`); `Ok(None)`
    /// after `-M`/`-n`.
    pub async fn run_until<T>(self, shutdown: impl Future<Output = T>) -> Result<Option<T>> {
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            replies: Replies::new(&self.config),
            counters: Counters::default(),
            events,
            timeout: Duration::from_secs(u64::from(self.config.timeout)),
            tls: self.tls,
            measure: self.measure,
            policy: self.policy,
            epoch: tokio::time::Instant::now(),
            config: self.config,
        });
        shared.share_policy_accounting();
        let _stats = shared.measure.as_ref().and_then(|m| m.spawn_stats());
        let _metrics = match &shared.measure {
            Some(m) => m.serve_metrics()?,
            None => None,
        };
        let listener = match self.listener {
            StdListener::Tcp(l) => Listener::Tcp(
                tokio::net::TcpListener::from_std(l).map_err(|e| net::io_fatal("listen", &e))?,
            ),
            StdListener::Unix(l) => Listener::Unix(
                tokio::net::UnixListener::from_std(l).map_err(|e| net::io_fatal("listen", &e))?,
            ),
        };
        tokio::select! {
            result = serve(&shared, &listener, rx) => ended(&shared, result).map(|()| None),
            value = shutdown => {
                shared.report_policy();
                if let Some(m) = &shared.measure {
                    if let Err(e) = m.finish() {
                        diag::report(&e, &usage());
                    }
                }
                Ok(Some(value))
            }
        }
    }
}

/// The accept loop: sessions as tasks, at most `-m` at once, until a
/// session reports the server's end.
async fn serve(
    shared: &Arc<Shared>,
    listener: &Listener,
    mut rx: mpsc::UnboundedReceiver<Event>,
) -> Result<()> {
    let limit = shared.config.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(limit));
    // --threads: this loop accepts and hands each session to the next loop
    // in turn; -m's slots, the -c counters and the exit events stay shared.
    let loops = Loops::start(shared.config.threads)?;
    let mut next = 0usize;
    let mut tasks = JoinSet::new();
    let mut permit = None;
    loop {
        if permit.is_none() {
            tokio::select! {
                biased;
                ev = rx.recv() => return outcome(ev),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                p = slots.clone().acquire_owned() => permit = p.ok(),
            }
            continue;
        }
        tokio::select! {
            biased;
            ev = rx.recv() => return outcome(ev),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let on = loops.handle(next);
                    next = next.wrapping_add(1);
                    spawn_session(&mut tasks, on, shared.clone(), stream, permit.take());
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

/// The one place a session opens: the verbose `connect` line, then the
/// session task, which holds its `-m` slot until it ends.
fn spawn_session(
    tasks: &mut JoinSet<()>,
    on: Option<&Handle>,
    shared: Arc<Shared>,
    stream: Accepted,
    slot: Option<OwnedSemaphorePermit>,
) {
    let family = shared.config.family;
    let verbose = shared.config.verbose > 0;
    match stream {
        Accepted::Tcp(stream, peer) => {
            let client = client_addr(Some(peer), family);
            if verbose {
                let af = if peer.is_ipv6() {
                    "AF_INET6"
                } else {
                    "AF_INET"
                };
                diag::info(&format!("connect ({af} {})", client.addr));
            }
            spawn_on(tasks, on, shared, stream, client, slot);
        }
        Accepted::Unix(stream) => {
            if verbose {
                diag::info("connect (AF_LOCAL local)");
            }
            let client = client_addr(None, family);
            spawn_on(tasks, on, shared, stream, client, slot);
        }
    }
}

/// Run one session on loop `on` (`None`: this one). A stream moving to
/// another loop is taken off this loop's reactor and registered with its
/// own, so its I/O is driven by the thread that serves it.
fn spawn_on<S: net::Movable>(
    tasks: &mut JoinSet<()>,
    on: Option<&Handle>,
    shared: Arc<Shared>,
    stream: S,
    client: ClientAddr,
    slot: Option<OwnedSemaphorePermit>,
) {
    let Some(handle) = on else {
        tasks.spawn(async move {
            session::run(shared, stream, client).await;
            drop(slot);
        });
        return;
    };
    let stream = match stream.detach() {
        Ok(stream) => stream,
        Err(e) => return diag::warning(&format!("accept connection: {}", errno_text(&e))),
    };
    tasks.spawn_on(
        async move {
            match S::attach(stream) {
                Ok(stream) => session::run(shared, stream, client).await,
                Err(e) => diag::warning(&format!("accept connection: {}", errno_text(&e))),
            }
            drop(slot);
        },
        handle,
    );
}

/// The server's end: with `--track`, print the tracking report first.
fn ended(shared: &Shared, result: Result<()>) -> Result<()> {
    shared.report_policy();
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
