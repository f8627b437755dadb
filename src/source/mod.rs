//! smtp-source: the SMTP/LMTP load generator.
//!
//! [`SourceConfig`] turns argv into checked settings; [`run`] prepares the
//! message once, resolves the endpoint, and runs `-s` sessions as tokio
//! tasks over one shared pool of `-m` messages (spec section 4). Sessions
//! share only atomics (the message pool, the recipient counter, the
//! statistics) and a one-permit semaphore that keeps at most one connect in
//! progress, first come first served, as Postfix does.

pub mod config;
pub mod find_max;
pub mod message;
mod net;
mod session;

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use config::{Command, SourceConfig};

use crate::diag::{self, Error, Result};
use crate::endpoint::{self, Endpoint};
use crate::measure::source_side::{self as measure, SourceMeasure};
use crate::proto::{date, hostname};
use message::Template;
use net::Target;

/// Longest UNIX-domain socket path (`sizeof(sun_path)` is 108 with the NUL).
const UNIX_PATH_MAX: usize = 108;

/// What a completed run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Messages whose content and final `.` were sent.
    pub messages: u64,
    /// Connections established.
    pub connections: u64,
}

/// State shared by all sessions of a run (read-only, or atomics).
pub(crate) struct Shared {
    config: SourceConfig,
    template: Template,
    /// `HELO host` / `LHLO host`.
    helo: Vec<u8>,
    /// `MAIL FROM:<sender>`.
    mail: Vec<u8>,
    /// The recipient split at its last `@`: local part, `@domain`.
    rcpt_local: Vec<u8>,
    rcpt_domain: Vec<u8>,
    target: Target,
    /// Postfix's global `message_count` (C int): checked, then decremented.
    remaining: AtomicI32,
    /// Global recipient number (3.12 numbering, starts at 0).
    rcpt_counter: AtomicI32,
    messages: AtomicU64,
    connections: AtomicU64,
    /// The ESMTP/TLS settings (issue #7); `None` keeps Postfix's dialogue.
    esmtp: Option<session::esmtp::Setup>,
    date: OnceLock<String>,
    connect_gate: Semaphore,
    pid: u32,
    /// Measurements (issue #6); `None` without a measurement option.
    measure: Option<SourceMeasure>,
}

impl Shared {
    /// Start a message: true if one was left. The counter is decremented
    /// in every case (spec 4: `-s 3 -m 2` leaves it at -1).
    fn take_message(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::Relaxed) > 0
    }

    /// The Date header value, made once per run at the first DATA.
    fn date(&self) -> &str {
        self.date.get_or_init(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            date::rfc2822(now)
        })
    }

    /// LOCAL [n] DOMAIN.
    fn write_recipient(&self, out: &mut BytesMut, n: Option<i32>) {
        out.extend_from_slice(&self.rcpt_local);
        if let Some(n) = n {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        out.extend_from_slice(&self.rcpt_domain);
    }
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
/// Start-up follows Postfix's order (spec 12): body preparation (file
/// errors), endpoint parsing and resolution, default hostname validation,
/// then the sessions. The first fatal error of any session ends the run
/// (the other sessions are dropped, which resets their connections). With
/// `-c`, the final `\n` is written to stdout on success.
pub async fn run(config: SourceConfig) -> Result<Summary> {
    if let Some(search) = config.measure.search.clone() {
        // --find-max: a series of open-loop runs.
        return find_max::run(config, search).await;
    }
    run_plain(config).await
}

/// One run of `config` (see [`run`]); a step of `--find-max`.
async fn run_plain(config: SourceConfig) -> Result<Summary> {
    if config.measure.merge {
        // --merge: combine reports, send nothing.
        measure::merge_files(&config.measure)?;
        return Ok(Summary::default());
    }
    let body: Vec<u8> = match (&config.file, config.length) {
        (Some(path), _) => message::file_body(&message::read_file(path)?),
        (None, Some(length)) => message::generated_body(length),
        (None, None) => message::DEFAULT_BODY.to_vec(),
    };

    let endpoint = endpoint::parse_source(&config.endpoint)?;
    // The TLS server name (SNI, verification) is the endpoint's host.
    let tls_host = match &endpoint {
        Endpoint::Inet { host, .. } => host.clone(),
        Endpoint::Unix(_) => None,
    };
    let target = match endpoint {
        Endpoint::Unix(path) => {
            use std::os::unix::ffi::OsStrExt;
            if path.as_os_str().as_bytes().len() >= UNIX_PATH_MAX {
                return Err(Error::fatal(format!(
                    "unix-domain name too long: {}",
                    diag::sanitize(path.as_os_str().as_bytes())
                )));
            }
            Target::Unix(path)
        }
        ep @ Endpoint::Inet { .. } => Target::Inet(endpoint::resolve(&ep, config.family, false)?),
    };

    let host = match &config.hostname {
        Some(h) => h.clone(),
        None => system_hostname()?,
    };
    let default_addr = || [&b"foo@"[..], &host].concat();
    let sender = config.sender.clone().unwrap_or_else(default_addr);
    let recipient = config.recipient.clone().unwrap_or_else(default_addr);
    let split = recipient
        .iter()
        .rposition(|&b| b == b'@')
        .unwrap_or(recipient.len());
    let (rcpt_local, rcpt_domain) = recipient.split_at(split);

    let headers = !config.old_mode && config.file.is_none();
    let template = Template {
        headers,
        from_line: [&b"From: <"[..], &sender, b">\r\n"].concat(),
        subject_line: match &config.subject {
            Some(s) => [&b"Subject: "[..], s, b"\r\n"].concat(),
            None => Vec::new(),
        },
        hostname: host.clone(),
        body: body.into(),
    };
    let verb: &[u8] = if config.lmtp { b"LHLO " } else { b"HELO " };
    let esmtp = if config.ext.active() {
        Some(session::esmtp::Setup::new(
            &config,
            tls_host.as_deref(),
            &host,
            &template.body,
        )?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        esmtp,
        helo: [verb, &host].concat(),
        mail: [&b"MAIL FROM:<"[..], &sender, b">"].concat(),
        rcpt_local: rcpt_local.to_vec(),
        rcpt_domain: rcpt_domain.to_vec(),
        template,
        target,
        remaining: AtomicI32::new(config.measure.message_count(config.messages)),
        rcpt_counter: AtomicI32::new(0),
        messages: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        date: OnceLock::new(),
        connect_gate: Semaphore::new(1),
        pid: std::process::id(),
        measure: SourceMeasure::new(&config.measure, config.lmtp),
        config,
    });

    // Metrics hook: listening before the first message is sent.
    let _metrics = match &shared.measure {
        Some(m) => m.serve_metrics()?,
        None => None,
    };
    // Start the sessions in order; each takes its first message now, so
    // the pool is checked and decremented in session order.
    let mut tasks = JoinSet::new();
    for index in 0..shared.config.sessions {
        let first = shared.take_message();
        let session = session::Session::new(Arc::clone(&shared), index);
        tasks.spawn(session.run(first));
    }
    let progress = shared.measure.as_ref().and_then(|m| m.spawn_progress());
    let outcome = loop {
        match tasks.join_next().await {
            None => break Ok(()),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => break Err(e),
            Some(Err(e)) => break Err(Error::fatal(format!("session task failed: {e}"))),
        }
    };
    if let Some(m) = &shared.measure {
        // Every session's recorder is handed over when its task is gone.
        tasks.shutdown().await;
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
