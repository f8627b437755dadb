//! The ESMTP path of a session, taken only when an extension
//! option is given (`--ehlo`, `--starttls`, `--tls`, ...): EHLO and the
//! capability checks, STARTTLS or implicit TLS, AUTH, MAIL parameters,
//! pipelined command groups (RFC 2920) and BDAT bodies (RFC 3030).
//!
//! Without those options [`Session::message`](super::Session) is untouched
//! and stays byte-for-byte Postfix's.
//!
//! Every command the session waits on is a [`Stage`] pushed on the
//! connection's [`Pipeline`] when it is queued; replies are read in order
//! and each is judged by its own stage's rule (docs/smtp-source.md §6.2, `-A` per reply).
//! Without `--pipelining` each group is one command and the next decision
//! is taken after each reply, exactly as smtp-source does; with it:
//!
//! * `[RSET] MAIL RCPT… DATA` (or `… BDAT… LAST` with the whole message)
//!   go in one write;
//! * the content and `.` of a message go in one write together with the
//!   next message's group (`-d`, no `-w`/`-R`), or with `QUIT`;
//! * a RSET after a failed transaction travels with the next group (or
//!   with QUIT).

use std::fmt::Write as _;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWrite;

use crate::diag::{self, Error, Result};
use crate::measure::recorder::Phase;
use crate::measure::source_side::Hooks as _;
use crate::proto::auth_client;
use crate::proto::bdat_send::{self, Framer};
use crate::proto::ehlo::{Capabilities, Extension};
use crate::proto::pipeline::{self, Pipeline, Stage, Verdict};
use crate::proto::starttls;
use crate::source::config::{SourceConfig, TlsMode};
use crate::tls::client::{self as tls_client, ClientOptions};
use crate::tls::rustls::pki_types::ServerName;
use crate::tls::TlsConnector;

use super::{Ctx, Next, Session};

/// Slices handed to one vectored write (Linux allows 1024; a message has
/// two parts per chunk, so this covers 30 chunks per system call).
const IOV_BATCH: usize = 64;

/// Run-wide ESMTP settings, built once at start-up.
pub(crate) struct Setup {
    /// The TLS client; `None` without `--tls`/`--starttls`.
    tls: Option<TlsClient>,
    /// `EHLO host` / `LHLO host`.
    ehlo: Vec<u8>,
    /// MAIL parameters after the size: ` BODY=8BITMIME`, ` SMTPUTF8`.
    mail_params: Vec<u8>,
    /// The body as sent after the headers: dot-stuffed for DATA, raw for
    /// BDAT.
    body: Arc<[u8]>,
    /// Body length without dot-stuffing (for `SIZE=`, RFC 1870 §6).
    body_octets: usize,
    /// Extensions the options need, with the option that needs each.
    required: Vec<(Extension, &'static str)>,
}

impl Setup {
    /// Build the run's ESMTP settings. `host` is the endpoint's host name
    /// or address (`None` for `unix:`), `helo_host` the `-M` name, `body`
    /// the dot-stuffed DATA body.
    pub(crate) fn new(
        config: &SourceConfig,
        host: Option<&str>,
        helo_host: &[u8],
        body: &Arc<[u8]>,
    ) -> Result<Setup> {
        let ext = &config.ext;
        let tls = if ext.tls == TlsMode::Off {
            None
        } else {
            let opts = ClientOptions {
                verify_roots: ext.tls_ca.as_deref(),
                resume: ext.tls_resume,
            };
            let connector = tls_client::connector(&opts)?;
            let name = tls_client::server_name(host).ok_or_else(|| {
                Error::fatal(format!(
                    "{}: not usable as a TLS server name",
                    host.unwrap_or("")
                ))
            })?;
            Some(TlsClient {
                connector,
                name,
                implicit: ext.tls == TlsMode::Implicit,
            })
        };
        let verb: &[u8] = if config.lmtp { b"LHLO " } else { b"EHLO " };
        let mut mail_params = Vec::new();
        if ext.eightbitmime {
            mail_params.extend_from_slice(b" BODY=8BITMIME");
        }
        if ext.smtputf8 {
            mail_params.extend_from_slice(b" SMTPUTF8");
        }
        let raw = bdat_send::dot_unstuff(body);
        let body_octets = raw.len();
        let body = if ext.bdat.is_some() {
            Arc::from(raw)
        } else {
            Arc::clone(body)
        };
        // STARTTLS itself is checked before the upgrade: inside TLS the
        // server no longer advertises it (RFC 3207 §4.2).
        let mut required = Vec::new();
        for (on, what, opt) in [
            (ext.pipelining, Extension::Pipelining, "--pipelining"),
            (ext.bdat.is_some(), Extension::Chunking, "--bdat"),
            (ext.smtputf8, Extension::Smtputf8, "--smtputf8"),
            (ext.eightbitmime, Extension::EightBitMime, "--8bitmime"),
            (ext.size, Extension::Size, "--size"),
        ] {
            if on {
                required.push((what, opt));
            }
        }
        if let Some(auth) = &ext.auth {
            required.push((Extension::Auth(auth.mech), "--auth"));
        }
        Ok(Setup {
            tls,
            ehlo: [verb, helo_host].concat(),
            mail_params,
            body,
            body_octets,
            required,
        })
    }
}

/// How a session's connections use TLS.
pub(crate) struct TlsClient {
    /// The client (shared config: one session cache for `--tls-resume`).
    connector: TlsConnector,
    /// SNI / verification name.
    name: ServerName<'static>,
    /// `--tls`: handshake at connect; else `--starttls`.
    implicit: bool,
}

/// A session on the ESMTP path: the session, the run's ESMTP settings
/// and this session's ESMTP state. It dereferences to the [`Session`], so
/// the ESMTP steps use the session's connection, replies and rules.
pub(crate) struct Esmtp {
    session: Session,
    setup: Arc<Setup>,
    esmtp: State,
}

impl std::ops::Deref for Esmtp {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl std::ops::DerefMut for Esmtp {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// Per-session ESMTP state; empty (no allocation) until used.
#[derive(Default)]
pub(crate) struct State {
    /// Stages in flight on the current connection.
    pipe: Pipeline,
    /// A failed transaction's RSET waits for the next group (pipelining).
    pending_rset: bool,
    /// The next message was taken and its group written behind the
    /// previous content.
    chained: bool,
    /// What the server advertised (after TLS: the second EHLO).
    caps: Capabilities,
    /// Headers of the current message.
    headers: BytesMut,
    /// Bytes written after the body: `.` and any commands behind it.
    tail: BytesMut,
    /// A second header buffer (the previous message's, while a chained
    /// group renders the next one).
    spare: BytesMut,
    /// BDAT plan of the current message.
    framer: Framer,
}

/// How a message attempt ended, for the run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Done; pause, then take the next message as usual.
    Done,
    /// The next message was already taken and its group is in flight.
    Chained,
    /// The pool was already found empty (and decremented) here.
    PoolEmpty,
}

/// What reading the replies in flight found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Drained {
    /// The connection was closed (421/521 under `-A`, or QUIT answered).
    closed: bool,
    /// At least one reply was unexpected (a warning under `-A`).
    rejected: bool,
}

/// The measured phase of a stage's reply; TLS and AUTH steps
/// and non-final BDAT chunks are not measured.
fn phase_of(stage: Stage) -> Option<Phase> {
    Some(match stage {
        Stage::Banner => Phase::Banner,
        Stage::Helo { .. } | Stage::Ehlo { .. } => Phase::Helo,
        Stage::Mail => Phase::Mail,
        Stage::Rcpt => Phase::Rcpt,
        Stage::Data => Phase::Data,
        Stage::Dot | Stage::LastChunk => Phase::Dot,
        Stage::Rset => Phase::Rset,
        Stage::Quit => Phase::Quit,
        Stage::Starttls
        | Stage::AuthChallenge
        | Stage::AuthDone
        | Stage::Chunk
        | Stage::AbortDot => return None,
    })
}

/// The I/O context of a stage's reply (docs/smtp-source.md §10 wording).
fn ctx_of(stage: Stage) -> Ctx {
    match stage {
        Stage::Banner => Ctx::Greeting,
        Stage::Helo { .. } => Ctx::Helo,
        Stage::Ehlo { .. } => Ctx::Ehlo,
        Stage::Starttls => Ctx::Starttls,
        Stage::AuthChallenge | Stage::AuthDone => Ctx::Auth,
        Stage::Mail => Ctx::Mail,
        Stage::Rcpt => Ctx::Rcpt,
        Stage::Data => Ctx::Data,
        Stage::Chunk
        | Stage::LastChunk
        | Stage::Dot
        | Stage::AbortDot
        | Stage::Rset
        | Stage::Quit => Ctx::Message,
    }
}

impl Esmtp {
    pub(super) fn new(session: Session, setup: Arc<Setup>) -> Esmtp {
        Esmtp {
            session,
            setup,
            esmtp: State::default(),
        }
    }

    /// The ESMTP run loop (replaces [`Session::run`]'s loop).
    pub(super) async fn run(mut self, first: bool) -> Result<()> {
        let mut go = first;
        while go {
            if !self.measured_start().await {
                break;
            }
            let res = self.esmtp_message().await;
            self.probe.end_message(res.is_ok());
            match res? {
                Flow::Chained => continue,
                Flow::PoolEmpty => break,
                Flow::Done => {}
            }
            self.pause().await;
            go = self.shared.take_message();
        }
        // A connection kept for a message that another session took in
        // the meantime: end it properly.
        if self.conn.is_some() {
            self.probe.mark();
            self.quit().await?;
        }
        Ok(())
    }

    /// Queue one command line, logging it under `-v` (`log` replaces the
    /// line, for credentials).
    fn queue(&mut self, line: &[u8], log: Option<&str>, stage: Stage) -> Result<()> {
        if self.shared.config.verbose > 0 {
            match log {
                Some(text) => diag::info(text),
                None => diag::info(&diag::sanitize(line)),
            }
        }
        let buf = self.conn(ctx_of(stage))?.io.write_buf();
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\r\n");
        self.esmtp.pipe.push(stage);
        Ok(())
    }

    /// Write what is queued.
    async fn flush_queue(&mut self, ctx: Ctx) -> Result<()> {
        let limit = self.shared.config.io_timeout;
        if self.probe.is_some() {
            let n = self.conn(ctx)?.io.write_buf().len();
            self.probe.sent(n);
        }
        let conn = self.conn(ctx)?;
        match tokio::time::timeout(limit, conn.io.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.lost(ctx)),
            Err(_) => Err(self.timeout(ctx)),
        }
    }

    /// Read every reply in flight, judging each against its stage.
    async fn drain(&mut self) -> Result<Drained> {
        let mut out = Drained::default();
        while let Some(stage) = self.esmtp.pipe.expecting() {
            let code = self.reply(ctx_of(stage)).await?;
            if let Some(phase) = phase_of(stage) {
                self.probe.reply(phase, code);
            }
            let Some((stage, verdict)) = self.esmtp.pipe.on_reply(code) else {
                break;
            };
            if stage == Stage::Quit {
                self.close();
                self.esmtp.pipe.reset();
                out.closed = true;
                return Ok(out);
            }
            if let Verdict::Rejected { what, .. } = verdict {
                out.rejected = true;
                if self.reject(what, code, stage.rule().closing)? == Next::Close {
                    self.close();
                    self.esmtp.pipe.reset();
                    out.closed = true;
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Send the queued commands and read their replies.
    async fn round_trip(&mut self, ctx: Ctx) -> Result<Drained> {
        self.flush_queue(ctx).await?;
        self.drain().await
    }

    /// `[RSET] QUIT` (one write), read the replies, close.
    async fn quit(&mut self) -> Result<()> {
        if std::mem::take(&mut self.esmtp.pending_rset) {
            self.queue(b"RSET", None, Stage::Rset)?;
        }
        self.queue(b"QUIT", None, Stage::Quit)?;
        self.round_trip(Ctx::Message).await?;
        self.close();
        Ok(())
    }

    /// An option's extension is missing: fatal, or under `-A` a warning
    /// and the session's connection ends (QUIT), consuming the message.
    async fn missing(&mut self, ext: Extension, opt: &str) -> Result<()> {
        let text = format!("{opt}: server does not advertise {}", ext.describe());
        if !self.shared.config.ignore_errors {
            return Err(Error::Fatal(text));
        }
        diag::warning(&text);
        self.quit().await
    }

    /// The TLS handshake on the open connection (timed for the report).
    async fn handshake(&mut self, ctx: Ctx, tls: &TlsClient) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let TlsClient {
            connector, name, ..
        } = tls;
        let limit = shared.config.io_timeout;
        let conn = self.conn(ctx)?;
        let start = Instant::now();
        let res =
            tokio::time::timeout(limit, conn.io.stream_mut().connect(connector, name.clone()))
                .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::fatal(format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(self.timeout(ctx)),
        }
        let took = start.elapsed();
        let info = conn.io.stream().tls_info();
        if let Some(i) = info {
            self.probe
                .tls_handshake(took, u16::from(i.version), u16::from(i.suite), i.resumed);
        }
        if shared.config.verbose > 0 {
            if let Some(i) = info {
                diag::info(&format!(
                    "TLS established: {:?} {:?}{}",
                    i.version,
                    i.suite,
                    if i.resumed { " (resumed)" } else { "" }
                ));
            }
        }
        Ok(())
    }

    /// EHLO/LHLO and its capability list. False when the connection ended.
    async fn ehlo(&mut self) -> Result<bool> {
        let line = self.setup.ehlo.clone();
        let lmtp = self.shared.config.lmtp;
        self.queue(&line, None, Stage::Ehlo { lmtp })?;
        let d = self.round_trip(Ctx::Ehlo).await?;
        if d.closed {
            return Ok(false);
        }
        self.esmtp.caps = if d.rejected {
            Capabilities::default()
        } else {
            Capabilities::from_reply_text(self.parser.text())
        };
        Ok(true)
    }

    /// Connect, TLS, banner, greeting, STARTTLS, capability checks, AUTH.
    /// False when the connection ended (the message is consumed).
    async fn open(&mut self) -> Result<bool> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        self.connect().await?;
        self.esmtp.pipe = if config.lmtp {
            Pipeline::lmtp()
        } else {
            Pipeline::new()
        };
        self.esmtp.pending_rset = false;
        self.esmtp.caps = Capabilities::default();
        let setup = Arc::clone(&self.setup);
        if let Some(tls) = setup.tls.as_ref().filter(|t| t.implicit) {
            self.handshake(Ctx::Greeting, tls).await?;
        }
        self.esmtp.pipe.push(Stage::Banner);
        self.drain().await?;
        if config.old_mode {
            return Ok(true);
        }
        if !config.ext.ehlo {
            // --tls alone: Postfix's HELO, over TLS.
            self.queue(
                &shared.message.helo,
                None,
                Stage::Helo { lmtp: config.lmtp },
            )?;
            return Ok(!self.round_trip(Ctx::Helo).await?.closed);
        }
        if !self.ehlo().await? {
            return Ok(false);
        }
        if let Some(tls) = setup.tls.as_ref().filter(|t| !t.implicit) {
            if !self.esmtp.caps.has(Extension::Starttls) {
                self.missing(Extension::Starttls, "--starttls").await?;
                return Ok(false);
            }
            self.queue(b"STARTTLS", None, Stage::Starttls)?;
            let d = self.round_trip(Ctx::Starttls).await?;
            if d.closed {
                return Ok(false);
            }
            if d.rejected {
                // Warned under -A; going on in plain text would defeat
                // the option.
                self.quit().await?;
                return Ok(false);
            }
            // RFC 3207 §6: nothing received before the handshake may be
            // used afterwards (response injection).
            let conn = self.conn(Ctx::Starttls)?;
            let pending = starttls::discard_pending(conn.io.read_buf());
            if !pending.is_empty() {
                conn.io.read_buf().clear();
                diag::warning(&format!(
                    "discarding {} bytes received after the STARTTLS reply",
                    pending.bytes
                ));
            }
            self.handshake(Ctx::Starttls, tls).await?;
            if !self.ehlo().await? {
                return Ok(false);
            }
        }
        for i in 0..self.setup.required.len() {
            let (ext, opt) = self.setup.required[i];
            if !self.esmtp.caps.has(ext) {
                self.missing(ext, opt).await?;
                return Ok(false);
            }
        }
        if let Some(auth) = &config.ext.auth {
            for step in auth_client::steps(auth.mech, &auth.user, &auth.password) {
                self.queue(&step.line, Some(step.log), step.stage)?;
                let d = self.round_trip(Ctx::Auth).await?;
                if d.closed {
                    return Ok(false);
                }
                if d.rejected {
                    // Under -A: warned; go on unauthenticated, as after a
                    // rejected HELO.
                    break;
                }
            }
        }
        Ok(true)
    }

    /// Start a message: reserve its recipient numbers (one block, so the
    /// `To:` number is known before the RCPTs go out) and render its
    /// headers (they are needed early for `SIZE=` and for BDAT framing).
    /// Returns the first recipient number.
    fn prepare_message(&mut self) -> Result<Option<i32>> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let first = config.numbering.then(|| {
            shared
                .rcpt_counter
                .fetch_add(config.recipients as i32, Ordering::Relaxed)
        });
        let numbered = first.map(|n| n + config.recipients as i32 - 1);
        if let Some(n) = numbered {
            self.last_rcpt = n;
        }
        let fd = self.conn(Ctx::Mail)?.fd.number();
        let headers = &mut self.esmtp.headers;
        headers.clear();
        shared.write_headers(headers, numbered, fd);
        Ok(first)
    }

    /// Log a command line just appended at `start` (under `-v`), add CRLF.
    fn end_line(&self, out: &mut BytesMut, start: usize) {
        if self.shared.config.verbose > 0 {
            diag::info(&diag::sanitize(&out[start..]));
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Append a fixed command.
    fn put(&mut self, out: &mut BytesMut, line: &[u8], stage: Stage) {
        let start = out.len();
        out.extend_from_slice(line);
        self.end_line(out, start);
        self.esmtp.pipe.push(stage);
    }

    /// Append `MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8]`.
    fn put_mail(&mut self, out: &mut BytesMut) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let setup = Arc::clone(&self.setup);
        let start = out.len();
        out.extend_from_slice(&shared.message.mail);
        if shared.config.ext.size {
            // RFC 1870 §6: the size without dot-stuffing.
            let _ = write!(
                out,
                " SIZE={}",
                self.esmtp.headers.len() + setup.body_octets
            );
        }
        out.extend_from_slice(&setup.mail_params);
        self.end_line(out, start);
        self.esmtp.pipe.push(Stage::Mail);
        Ok(())
    }

    /// Append `RCPT TO:<address>` (numbered when `n` is given).
    fn put_rcpt(&mut self, out: &mut BytesMut, n: Option<i32>) {
        let shared = Arc::clone(&self.shared);
        let start = out.len();
        out.extend_from_slice(b"RCPT TO:<");
        shared.write_recipient(out, n);
        out.extend_from_slice(b">");
        self.end_line(out, start);
        self.esmtp.pipe.push(Stage::Rcpt);
    }

    /// Plan the BDAT chunks of the current message and push their stages
    /// (logging the command lines under `-v`).
    fn plan_chunks(&mut self, size: usize) -> Result<()> {
        let body_len = self.setup.body.len();
        let parts = [self.esmtp.headers.len(), body_len];
        self.esmtp.framer.frame(&parts, size);
        let verbose = self.shared.config.verbose > 0;
        for c in self.esmtp.framer.chunks() {
            if verbose {
                diag::info(&diag::sanitize(&self.esmtp.framer.cmds()[c.line.clone()]));
            }
            self.esmtp.pipe.push(if c.last {
                Stage::LastChunk
            } else {
                Stage::Chunk
            });
        }
        Ok(())
    }

    /// Queue a whole pipelined group into `out`: `[RSET] MAIL RCPT…` and
    /// `DATA`, or the BDAT plan (written by [`Session::write_group`]).
    fn put_group(&mut self, out: &mut BytesMut) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let first = self.prepare_message()?;
        if std::mem::take(&mut self.esmtp.pending_rset) {
            self.put(out, b"RSET", Stage::Rset);
        }
        self.put_mail(out)?;
        for i in 0..config.recipients {
            self.put_rcpt(out, first.map(|n| n + i as i32));
        }
        match config.ext.bdat {
            Some(size) => self.plan_chunks(size)?,
            None => self.put(out, b"DATA", Stage::Data),
        }
        Ok(())
    }

    /// Append to the write buffer with `f`.
    fn with_wbuf(
        &mut self,
        ctx: Ctx,
        f: impl FnOnce(&mut Self, &mut BytesMut) -> Result<()>,
    ) -> Result<()> {
        let mut out = std::mem::take(self.conn(ctx)?.io.write_buf());
        let res = f(self, &mut out);
        if let Some(conn) = self.conn.as_mut() {
            *conn.io.write_buf() = out;
        }
        res
    }

    /// Write the queued commands and then `extra` pieces in vectored
    /// writes (one system call when they fit), each write under the I/O
    /// limit (a huge body may take longer as a whole as long as it moves).
    async fn write_with<'a>(
        &mut self,
        ctx: Ctx,
        extra: impl Iterator<Item = &'a [u8]>,
    ) -> Result<()> {
        let limit = self.shared.config.io_timeout;
        let mut bytes = 0;
        let extra = extra.inspect(|part| bytes += part.len());
        let conn = self.conn(ctx)?;
        let cmds = std::mem::take(conn.io.write_buf());
        let res = write_all(conn.io.stream_mut(), &cmds, extra, limit).await;
        let bytes = bytes + cmds.len();
        let mut cmds = cmds;
        cmds.clear();
        *conn.io.write_buf() = cmds;
        self.probe.sent(bytes);
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(self.timeout(ctx)),
            Err(_) => Err(self.lost(ctx)),
        }
    }

    /// A message's content went out: count it (and `-c`), as after `.`.
    fn count_message(&self) {
        let sent = self.shared.messages.fetch_add(1, Ordering::Relaxed) + 1;
        if self.shared.config.counter {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{sent}\r");
            let _ = out.flush();
        }
    }

    /// Write the queued group and, with BDAT, all chunks behind it.
    async fn write_group(&mut self) -> Result<()> {
        let bdat = self.shared.config.ext.bdat.is_some();
        if !bdat {
            return self.flush_queue(Ctx::Mail).await;
        }
        let body = Arc::clone(&self.setup.body);
        let headers = std::mem::take(&mut self.esmtp.headers);
        let framer = std::mem::take(&mut self.esmtp.framer);
        let parts: [&[u8]; 2] = [&headers, &body];
        let res = self
            .write_with(
                Ctx::Mail,
                framer.pieces().iter().map(|p| framer.bytes(p, &parts)),
            )
            .await;
        self.esmtp.headers = headers;
        self.esmtp.framer = framer;
        res?;
        self.count_message();
        Ok(())
    }

    /// One message on the ESMTP path.
    async fn esmtp_message(&mut self) -> Result<Flow> {
        if !std::mem::take(&mut self.esmtp.chained) {
            if self.conn.is_none() && !self.open().await? {
                return Ok(Flow::Done);
            }
            if !self.shared.config.ext.pipelining {
                return self.sequential().await;
            }
            self.with_wbuf(Ctx::Mail, |s, out| s.put_group(out))?;
            self.write_group().await?;
        }
        if self.drain().await?.closed {
            return Ok(Flow::Done);
        }
        match self.esmtp.pipe.txn().next() {
            pipeline::Next::Content => self.content().await,
            pipeline::Next::AbortDot => self.abort_dot().await,
            pipeline::Next::Rset => {
                self.esmtp.pending_rset = true;
                self.finish_esmtp().await
            }
            pipeline::Next::Finished => self.finish_esmtp().await,
        }
    }

    /// Without `--pipelining`: one command per round trip, decisions after
    /// each reply (docs/smtp-source.md §6.1/§6.2), with the ESMTP additions.
    async fn sequential(&mut self) -> Result<Flow> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let first = self.prepare_message()?;
        self.with_wbuf(Ctx::Mail, |s, out| s.put_mail(out))?;
        if self.round_trip(Ctx::Mail).await?.closed {
            return Ok(Flow::Done);
        }
        if !self.esmtp.pipe.txn().mail_ok {
            return self.rset_now(Ctx::Mail).await;
        }
        for i in 0..config.recipients {
            let n = first.map(|n| n + i as i32);
            self.with_wbuf(Ctx::Rcpt, |s, out| {
                s.put_rcpt(out, n);
                Ok(())
            })?;
            if self.round_trip(Ctx::Rcpt).await?.closed {
                return Ok(Flow::Done);
            }
        }
        if self.esmtp.pipe.txn().accepted == 0 {
            return self.rset_now(Ctx::Rcpt).await;
        }
        let Some(size) = config.ext.bdat else {
            self.with_wbuf(Ctx::Data, |s, out| {
                s.put(out, b"DATA", Stage::Data);
                Ok(())
            })?;
            if self.round_trip(Ctx::Data).await?.closed {
                return Ok(Flow::Done);
            }
            if !self.esmtp.pipe.txn().data_ok {
                return self.rset_now(Ctx::Data).await;
            }
            return self.content().await;
        };
        // BDAT, one chunk per round trip (RFC 3030 §4.2 without
        // PIPELINING).
        let body = Arc::clone(&self.setup.body);
        let headers = std::mem::take(&mut self.esmtp.headers);
        let mut framer = std::mem::take(&mut self.esmtp.framer);
        framer.frame(&[headers.len(), body.len()], size);
        let parts: [&[u8]; 2] = [&headers, &body];
        let mut flow = None;
        for chunk in framer.chunks() {
            if config.verbose > 0 {
                diag::info(&diag::sanitize(&framer.cmds()[chunk.line.clone()]));
            }
            let stage = if chunk.last {
                Stage::LastChunk
            } else {
                Stage::Chunk
            };
            self.esmtp.pipe.push(stage);
            let pieces = framer.pieces()[chunk.pieces.clone()]
                .iter()
                .map(|p| framer.bytes(p, &parts));
            if let Err(e) = self.write_with(Ctx::Message, pieces).await {
                flow = Some(Err(e));
                break;
            }
            if chunk.last {
                self.count_message();
            }
            match self.drain().await {
                Err(e) => {
                    flow = Some(Err(e));
                    break;
                }
                Ok(d) if d.closed => {
                    flow = Some(Ok(Flow::Done));
                    break;
                }
                Ok(_) => {}
            }
            if self.esmtp.pipe.txn().chunk_failed {
                break;
            }
        }
        self.esmtp.headers = headers;
        self.esmtp.framer = framer;
        if let Some(flow) = flow {
            return flow;
        }
        if self.esmtp.pipe.txn().next() == pipeline::Next::Rset {
            return self.rset_now(Ctx::Message).await;
        }
        self.finish_esmtp().await
    }

    /// RSET now (sequential path); a write failure is reported with the
    /// context of the step that triggered it.
    async fn rset_now(&mut self, trigger: Ctx) -> Result<Flow> {
        self.with_wbuf(trigger, |s, out| {
            s.put(out, b"RSET", Stage::Rset);
            Ok(())
        })?;
        if self.round_trip(trigger).await?.closed {
            return Ok(Flow::Done);
        }
        self.finish_esmtp().await
    }

    /// A DATA accepted with nothing to deliver: a lone `.` (RFC 2920 §3.1).
    async fn abort_dot(&mut self) -> Result<Flow> {
        self.with_wbuf(Ctx::Message, |s, out| {
            s.put(out, b".", Stage::AbortDot);
            Ok(())
        })?;
        if self.round_trip(Ctx::Message).await?.closed {
            return Ok(Flow::Done);
        }
        self.finish_esmtp().await
    }

    /// After a transaction: keep the connection (`-d`, messages left) or
    /// `[RSET] QUIT`.
    async fn finish_esmtp(&mut self) -> Result<Flow> {
        if self.conn.is_none() {
            return Ok(Flow::Done);
        }
        if self.shared.config.reuse
            && self.shared.remaining.load(Ordering::Relaxed) >= 1
            && self.shared.measure.as_ref().is_none_or(|m| m.open())
        {
            return Ok(Flow::Done);
        }
        self.quit().await?;
        Ok(Flow::Done)
    }

    /// Headers, body and `.` after a 354, in vectored writes. With
    /// pipelining the next step travels in the same write: the next
    /// message's group (`-d` without pauses, when one is left) or QUIT.
    async fn content(&mut self) -> Result<Flow> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        if config.verbose > 0 {
            diag::info(".");
        }
        let accepted = self.esmtp.pipe.txn().accepted;
        // RFC 2033 §4.2: LMTP answers once per accepted recipient.
        let dots = if config.lmtp { accepted.max(1) } else { 1 };
        self.esmtp.pipe.push_n(Stage::Dot, dots);
        // The current headers move aside: a chained group renders the next
        // message's headers.
        let spare = std::mem::take(&mut self.esmtp.spare);
        let headers = std::mem::replace(&mut self.esmtp.headers, spare);
        let mut tail = std::mem::take(&mut self.esmtp.tail);
        tail.clear();
        tail.extend_from_slice(b".\r\n");
        let mut flow = Flow::Done;
        if config.ext.pipelining {
            // Under --rate/--duration a message waits for its turn, so its
            // commands cannot ride with the previous content.
            let no_pause = config.fixed_delay.is_none()
                && config.random_delay.is_none()
                && shared.measure.as_ref().is_none_or(|m| !m.paces());
            if config.reuse && no_pause {
                if shared.take_message() {
                    self.put_group(&mut tail)?;
                    flow = Flow::Chained;
                } else {
                    self.put(&mut tail, b"QUIT", Stage::Quit);
                    flow = Flow::PoolEmpty;
                }
            } else if !config.reuse || shared.remaining.load(Ordering::Relaxed) < 1 {
                self.put(&mut tail, b"QUIT", Stage::Quit);
            }
        }
        let body = Arc::clone(&self.setup.body);
        let res = self
            .write_with(
                Ctx::Message,
                [&headers[..], &body[..], &tail[..]].into_iter(),
            )
            .await;
        // Keep both buffers' capacity: the written headers become the
        // spare, unless no chained group rendered new ones (then they are
        // still the current message's).
        self.esmtp.spare = if flow == Flow::Chained {
            headers
        } else {
            std::mem::replace(&mut self.esmtp.headers, headers)
        };
        self.esmtp.tail = tail;
        res?;
        self.count_message();
        if self.drain().await?.closed || self.conn.is_none() {
            return Ok(if flow == Flow::PoolEmpty {
                Flow::PoolEmpty
            } else {
                Flow::Done
            });
        }
        match flow {
            Flow::Chained => {
                self.esmtp.chained = true;
                Ok(Flow::Chained)
            }
            _ => self.finish_esmtp().await,
        }
    }
}

/// Write `first` and then every slice of `rest` in order with vectored writes of up to
/// [`IOV_BATCH`] slices, each write under `limit`, then flush. No heap
/// allocation: the batch lives on the stack.
async fn write_all<'a, S: AsyncWrite + Unpin>(
    stream: &mut S,
    first: &[u8],
    rest: impl Iterator<Item = &'a [u8]>,
    limit: Duration,
) -> io::Result<()> {
    let mut parts = rest.filter(|p| !p.is_empty());
    let mut batch: [&[u8]; IOV_BATCH] = [&[]; IOV_BATCH];
    let mut len = 0;
    if !first.is_empty() {
        batch[0] = first;
        len = 1;
    }
    loop {
        while len < IOV_BATCH {
            match parts.next() {
                Some(p) => {
                    batch[len] = p;
                    len += 1;
                }
                None => break,
            }
        }
        if len == 0 {
            break;
        }
        let slices: [IoSlice<'_>; IOV_BATCH] = std::array::from_fn(|i| IoSlice::new(batch[i]));
        let write = std::future::poll_fn(|cx| {
            Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..len])
        });
        let n = tokio::time::timeout(limit, write)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // Drop what was written from the front of the batch.
        let mut left = n;
        let mut done = 0;
        while done < len && left >= batch[done].len() {
            left -= batch[done].len();
            done += 1;
        }
        if done < len {
            batch[done] = &batch[done][left..];
        }
        batch.copy_within(done..len, 0);
        len -= done;
    }
    let flush = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx));
    tokio::time::timeout(limit, flush)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn write_all_sends_every_part_in_order_through_partial_writes() {
        // A 7-byte pipe forces many partial vectored writes; more parts
        // than one batch holds.
        let (mut a, mut b) = tokio::io::duplex(7);
        let parts: Vec<Vec<u8>> = (0..200u32)
            .map(|i| format!("<{i}>").into_bytes().repeat((i % 3) as usize))
            .collect();
        let want: Vec<u8> = b"HEAD".iter().copied().chain(parts.concat()).collect();
        let writer = async {
            let iter = parts.iter().map(|p| &p[..]);
            write_all(&mut a, b"HEAD", iter, Duration::from_secs(5))
                .await
                .unwrap();
            drop(a);
        };
        let reader = async {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn write_all_times_out_per_write() {
        let (mut a, _b) = tokio::io::duplex(4);
        let big = [0u8; 64];
        let err = write_all(
            &mut a,
            b"",
            [&big[..]].into_iter(),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn every_stage_has_an_io_context() {
        use Stage::*;
        let cases = [
            (Banner, Ctx::Greeting),
            (Helo { lmtp: false }, Ctx::Helo),
            (Ehlo { lmtp: true }, Ctx::Ehlo),
            (Starttls, Ctx::Starttls),
            (AuthChallenge, Ctx::Auth),
            (AuthDone, Ctx::Auth),
            (Mail, Ctx::Mail),
            (Rcpt, Ctx::Rcpt),
            (Data, Ctx::Data),
            (Chunk, Ctx::Message),
            (LastChunk, Ctx::Message),
            (Dot, Ctx::Message),
            (AbortDot, Ctx::Message),
            (Rset, Ctx::Message),
            (Quit, Ctx::Message),
        ];
        for (stage, ctx) in cases {
            assert_eq!(ctx_of(stage), ctx, "{stage:?}");
        }
    }
}
