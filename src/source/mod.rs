//! smtp-source: the SMTP/LMTP load generator.
//!
//! [`SourceConfig`] turns argv into checked settings; [`run`] prepares the
//! message once, resolves the endpoint, and runs `-s` sessions as tokio
//! tasks over one shared pool of `-m` messages (docs/smtp-source.md §4). Sessions
//! share only atomics (the message pool, the recipient counter, the
//! statistics) and a one-permit semaphore that keeps at most one connect in
//! progress, first come first served, as Postfix does.

pub mod config;
mod descriptor;
pub mod find_max;
pub mod message;
mod net;
mod session;
mod shared;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinSet;

pub use config::{Command, SourceConfig};

use crate::diag::{self, Error, Result};
use crate::endpoint::{self, Endpoint};
use crate::measure::source_side as measure;
use crate::proto::hostname;
use crate::workers;
use message::Message;
use net::Target;
use shared::Shared;

/// What a completed run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Messages whose content and final `.` were sent.
    pub messages: u64,
    /// Connections established.
    pub connections: u64,
}

fn system_hostname() -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let name = nix::unistd::gethostname()
        .map_err(|e| Error::fatal(format!("gethostname: {}", e.desc())))?
        .into_vec();
    if let Err(w) = hostname::check_hostname(&name) {
        diag::warning(&w);
        return Err(Error::fatal("unable to use my own hostname"));
    }
    Ok(name)
}

/// Run smtp-source with `config` until every message is processed.
///
/// Start-up follows Postfix's order (docs/smtp-source.md §12): body preparation (file
/// errors), endpoint parsing and resolution, default hostname validation,
/// then the sessions. The first fatal error of any session ends the run
/// (the other sessions are dropped, which resets their connections). With
/// `-c`, the final `\n` is written to stdout on success.
pub async fn run(config: SourceConfig) -> Result<Summary> {
    run_until(config, std::future::pending()).await
}

/// [`run`], ended early when `shutdown` completes: the sessions are
/// dropped (their connections reset, as when a session fails), and the
/// measurements are finished and reported as at the end of a run. A
/// capacity search (`--find-max`) ends with an error instead.
pub async fn run_until(
    config: SourceConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let Some(search) = config.measure.search.clone() else {
        return run_once(config, shutdown).await;
    };
    tokio::select! {
        done = find_max::run(config, search) => done,
        () = shutdown => Err(Error::fatal("capacity search interrupted")),
    }
}

/// Where the sessions connect, and the TLS server name (SNI, verification):
/// the endpoint's host. Implicit TLS defaults to the submissions port.
fn target(config: &SourceConfig) -> Result<(Target, Option<String>)> {
    let endpoint = if config.ext.tls == config::TlsMode::Implicit {
        endpoint::parse_source_default(&config.endpoint, endpoint::SUBMISSIONS_PORT)?
    } else {
        endpoint::parse_source(&config.endpoint)?
    };
    // The TLS server name (SNI, verification) is the endpoint's host.
    let tls_host = match &endpoint {
        Endpoint::Inet { host, .. } => host.clone(),
        Endpoint::Unix(_) => None,
    };
    let target = match endpoint {
        // endpoint::parse_source checked the length (UNIX_PATH_MAX).
        Endpoint::Unix(path) => Target::Unix(path),
        ep @ Endpoint::Inet { .. } => Target::Inet(endpoint::resolve(&ep, config.family, false)?),
    };
    Ok((target, tls_host))
}

/// One run of `config` (see [`run_until`]); also a step of `--find-max`.
async fn run_once(
    config: SourceConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    if config.measure.merge {
        // --merge: combine reports, send nothing.
        measure::merge_files(&config.measure)?;
        return Ok(Summary::default());
    }
    let body = message::body(&config)?;

    let (target, tls_host) = target(&config)?;

    let host = match &config.hostname {
        Some(h) => h.clone(),
        None => system_hostname()?,
    };
    let message = Message::build(&config, &host, body);
    let esmtp = if config.ext.active() {
        Some(Arc::new(session::esmtp::Setup::new(
            &config,
            tls_host.as_deref(),
            &host,
            &message.template.body,
        )?))
    } else {
        None
    };
    // Everything is ready: wait for --start-at, if given; the measurements'
    // clock (and the --rate schedule) starts then.
    let measuring = measure::SourceMeasure::start(&config.measure, config.lmtp).await;
    let shared = Arc::new(Shared::new(config, message, target, esmtp, measuring));

    // Metrics hook: listening before the first message is sent.
    let _metrics = match &shared.measure {
        Some(m) => m.serve_metrics()?,
        None => None,
    };
    // Start the sessions in order; each takes its first message now, so
    // the pool is checked and decremented in session order. With
    // --threads, session i runs on loop i mod N (the split is even, at
    // least one each); every loop draws from the one atomic pool.
    let loops = workers::Loops::start(shared.config.threads)?;
    let mut tasks = JoinSet::new();
    // A shard (--shard) runs its part of the -s sessions.
    let sessions = shared.config.measure.session_count(shared.config.sessions);
    for index in 0..sessions {
        let first = shared.take_message();
        let session = session::Session::new(Arc::clone(&shared), index);
        match loops.handle(index as usize) {
            Some(handle) => tasks.spawn_on(session.run(first), handle),
            None => tasks.spawn(session.run(first)),
        };
    }
    let progress = shared.measure.as_ref().and_then(|m| m.spawn_progress());
    tokio::pin!(shutdown);
    let outcome = loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = &mut shutdown => break Ok(()),
        };
        match joined {
            None => break Ok(()),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => break Err(e),
            Some(Err(e)) => break Err(Error::fatal(format!("session task failed: {e}"))),
        }
    };
    // Every session's task is gone (and its recorder handed over) before
    // the measurements finish; then the extra loops stop.
    tasks.shutdown().await;
    drop(loops);
    if let Some(m) = &shared.measure {
        if let Some(p) = progress {
            p.stop();
        }
        let reported = m.finish(outcome.is_err());
        outcome?;
        reported?;
    } else {
        outcome?;
    }
    if shared.config.counter {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    Ok(Summary {
        messages: shared.messages.load(Ordering::Relaxed),
        connections: shared.connections.load(Ordering::Relaxed),
    })
}
