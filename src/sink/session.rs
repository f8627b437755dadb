//! One client session: the command loop, DATA, failure injection, dumps.
//!
//! Replies are queued in the connection's write buffer and written only when
//! the session has no unprocessed input (nothing complete left in the read
//! buffer and the socket not readable), so a pipelined batch (RFC 2920 §3.2)
//! is answered with one write, as Postfix's sink does (docs/smtp-sink.md §18).
//!
//! Commands are handled strictly in order: a delayed reply (`-W`) holds back
//! the commands after it (deviation S4, docs/deviations.md), and `-A` stops reading (deviation S5, docs/deviations.md).
//!
//! STARTTLS, AUTH exchanges and BDAT (only with their long options) live in
//! [`tls`], [`auth`] and [`bdat`].

mod auth;
mod bdat;
mod policy;
mod tls;

pub(crate) use policy::load_policy;

pub(crate) use tls::ServerTls;

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

use super::config::{Cmd, Delay, SinkConfig};
use super::dump::{ClientAddr, Dump, Header};
use super::policy::{Decision, PolicyEngine, SessionPolicy};
use super::reply::{self, Replies};
use super::syslog;
use crate::conn::Connection;
use crate::diag;
use crate::measure::sink_side::SinkMeasure;
use crate::measure::track::HeaderScanner;
use crate::proto::data::DataScanner;
use crate::proto::line::{split_command, Frame, LineReader};
use crate::tls::MaybeTls;

/// Read size in command mode: commands are small; keeps idle sessions small.
pub(crate) const COMMAND_CHUNK: usize = 4 * 1024;
/// Read size in DATA mode: large messages in few reads.
const DATA_CHUNK: usize = 64 * 1024;
/// Read buffers larger than this are freed while the session is idle.
const IDLE_KEEP: usize = 2 * COMMAND_CHUNK;
/// Queued replies beyond this are written at once (Postfix flushes when its
/// stream buffer fills), bounding memory for huge LMTP recipient counts.
const WRITE_HIGH_WATER: usize = 16 * 1024;

/// What ends the server, reported by sessions.
#[derive(Debug)]
pub(crate) enum Event {
    /// `-M`/`-n` reached: exit 0.
    Exit,
    /// A dump file error: exit 1 with this fatal text.
    Fatal(String),
}

/// `-c` counters, shared by all sessions.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sess: AtomicU64,
    quit: AtomicU64,
    mesg: AtomicU64,
}

impl Counters {
    fn print(&self) {
        let line = format!(
            "sess={} quit={} mesg={}\r",
            self.sess.load(Ordering::Relaxed),
            self.quit.load(Ordering::Relaxed),
            self.mesg.load(Ordering::Relaxed)
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// State shared by the server and all its sessions (read-only except the
/// atomic counters and the event channel).
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SinkConfig,
    pub replies: Replies,
    pub counters: Counters,
    pub events: UnboundedSender<Event>,
    pub timeout: Duration,
    /// `--tls-cert`/`--tls-self-signed`: the TLS acceptor.
    pub tls: Option<ServerTls>,
    /// Measurements; `None` without a measurement option.
    pub measure: Option<std::sync::Arc<SinkMeasure>>,
    /// `--policy`: the engine, shared by all sessions.
    pub policy: Option<std::sync::Arc<PolicyEngine>>,
    /// The policy's clock starts here.
    pub epoch: Instant,
}

/// How a step of the session went.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    /// Keep going.
    Continue,
    /// Close the session (queued replies are written first).
    Close(CloseKind),
    /// `-M` reached: write queued replies, then end the server with status 0.
    Exit,
    /// End the server with this fatal text.
    Fatal(String),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum CloseKind {
    /// EOF or a read error (a reset), QUIT, `-q`, `-Q`, over-long line, a
    /// failed write inside Postfix's stream library: verbose `disconnect`.
    Disconnect,
    /// Timeouts, `-A`, reported write failures.
    Quiet,
}

/// Which of Postfix's writes a write of queued replies stands for: it
/// decides what a failure prints (docs/smtp-sink.md §13, §18).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Push {
    /// `smtp_flush()`: after a reply with no input pending, QUIT's `221`.
    Flush,
    /// The write of a full stream buffer inside `smtp_printf()`.
    Full,
    /// The stream library's own flush, when its next read returns new
    /// input or when the stream is closed: a failure prints nothing, and the read that
    /// follows sees end of file.
    Stream,
}

/// How a write failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum WriteFailure {
    /// The peer is gone (reset, closed).
    Lost,
    /// Not written within the `-t` time limit.
    Timeout,
}

impl WriteFailure {
    /// What Postfix prints for this failure of `push` (`-v`: the
    /// `smtp_stream` context line first), and how the session ends.
    fn report(
        self,
        push: Push,
        verbose: bool,
    ) -> (Option<String>, Option<&'static str>, CloseKind) {
        let context = match push {
            Push::Flush => "smtp_flush",
            Push::Full => "smtp_vprintf",
            Push::Stream => return (None, None, CloseKind::Disconnect),
        };
        let (what, warning) = match self {
            WriteFailure::Lost => ("EOF", "lost connection"),
            WriteFailure::Timeout => ("timeout", "write timeout"),
        };
        let info = verbose.then(|| format!("{context}: {what}"));
        (info, Some(warning), CloseKind::Quiet)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Mode {
    Command,
    Data,
    /// Between AUTH challenges: lines are SASL responses.
    Auth,
    /// Reading the bytes of a BDAT chunk.
    Chunk,
}

/// Run one session to its end and do the end-of-session accounting
/// (`-c` line, `-n`).
pub(crate) async fn run<S>(shared: std::sync::Arc<Shared>, stream: S, client: ClientAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(m) = &shared.measure {
        m.session_started();
    }
    let mut session = Session::new(&shared, stream, client);
    let flow = session.run().await;
    match flow {
        Flow::Exit => {
            session.finish().await;
            let _ = shared.events.send(Event::Exit);
            return;
        }
        Flow::Fatal(text) => {
            drop(session);
            let _ = shared.events.send(Event::Fatal(text));
            return;
        }
        Flow::Close(kind) => {
            session.finish().await;
            if kind == CloseKind::Disconnect && shared.config.verbose > 0 {
                diag::info("disconnect");
            }
        }
        Flow::Continue => {}
    }
    drop(session);
    if let Some(m) = &shared.measure {
        m.session_ended();
    }
    let counters = &shared.counters;
    counters.sess.fetch_add(1, Ordering::Relaxed);
    if shared.config.counters {
        counters.print();
    }
    // Deviation S3 (docs/deviations.md): -n works with or without -c.
    if let Some(n) = shared.config.quit_count {
        if counters.quit.load(Ordering::Relaxed) >= n {
            let _ = shared.events.send(Event::Exit);
        }
    }
}

struct Session<'a, S> {
    shared: &'a Shared,
    conn: Connection<MaybeTls<S>>,
    client: ClientAddr,
    lines: LineReader,
    /// The command line being handled (copied out of the read buffer).
    line: Vec<u8>,
    mode: Mode,
    scanner: DataScanner,
    /// A transaction is open (MAIL accepted, not yet ended or aborted).
    in_tx: bool,
    /// Recipients counted since the last MAIL (never below 0: deviation S9, docs/deviations.md).
    rcpts: u64,
    proto: &'static str,
    /// Sanitised HELO/EHLO/LHLO arguments, kept only when dumping.
    helo: Option<Vec<u8>>,
    dump: Option<Dump>,
    /// `-H`: do not read before this instant.
    hold_until: Option<Instant>,
    /// The read buffer has grown to DATA size.
    big_rbuf: bool,
    /// The peer closed (or the connection failed) while probing for input.
    eof: bool,
    /// AUTH state.
    sasl: auth::AuthState,
    /// BDAT state.
    chunks: bdat::BdatState<'a>,
    /// `--track`: finds the tracking headers of the current message.
    track: Option<Box<HeaderScanner>>,
    /// `--policy` state of this session.
    policy: Option<SessionPolicy>,
    /// The greeting was the policy's `554`: only QUIT is served.
    refused: bool,
    /// The policy's decision on the message being ended, for [`Self::dot`].
    end_decision: Option<Decision<'a>>,
    /// The policy's command deadline runs from here.
    command_since: Instant,
    /// The policy's session deadline runs from here.
    session_since: Instant,
}

impl<S> Drop for Session<'_, S> {
    fn drop(&mut self) {
        // The one close path of every session: its connection slot.
        if let (Some(engine), Some(state)) = (self.shared.policy.as_deref(), self.policy.as_mut()) {
            engine.on_disconnect(state);
        }
        // Nothing partial: an unfinished transaction leaves no dump.
        if let Some(dump) = self.dump.take() {
            dump.abort();
        }
    }
}

/// Argument text for dumps: Postfix's printable ASCII, or with
/// `--smtputf8` printable UTF-8 too (RFC 6531 addresses stay readable).
fn dump_text(config: &SinkConfig, bytes: &[u8]) -> Vec<u8> {
    if config.smtputf8 {
        sanitize_utf8(bytes)
    } else {
        diag::sanitize_bytes(bytes)
    }
}

/// Argument text with printable UTF-8 kept (`--smtputf8`): every control
/// character and every byte of an invalid sequence becomes `?`, as
/// Postfix's printable ASCII rule does for ASCII.
pub(super) fn sanitize_utf8(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push(b'?');
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

/// A step's result as the session's flow.
fn done(result: Result<(), Flow>) -> Flow {
    result.err().unwrap_or(Flow::Continue)
}

/// MAIL/RCPT argument text for dumps: after the first `:`, then all
/// consecutive `:`, then SPACE/TAB (docs/smtp-sink.md §16.2).
fn address_args(args: &[u8]) -> &[u8] {
    let Some(colon) = args.iter().position(|&b| b == b':') else {
        return b"";
    };
    let rest = &args[colon..];
    // Only colons first, then blanks: "::: x" -> "x", ": :x" -> ":x".
    let colons = rest.iter().take_while(|&&b| b == b':').count();
    let after = &rest[colons..];
    let blanks = after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &after[blanks..]
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The total delay of a `-W` reply (docs/smtp-sink.md §12.1).
fn delay_duration(delay: Delay) -> Duration {
    let units = if delay.odds == 0 {
        1
    } else {
        let mut rng = rand::thread_rng();
        let mut k = 0u64;
        while rng.gen_range(0..100u32) < delay.odds {
            k += 1;
        }
        k
    };
    Duration::from_secs(units * u64::from(delay.secs))
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    fn new(shared: &'a Shared, stream: S, client: ClientAddr) -> Self {
        Session {
            shared,
            conn: Connection::new(MaybeTls::Plain(stream), COMMAND_CHUNK),
            client,
            lines: LineReader::new(),
            line: Vec::new(),
            mode: Mode::Command,
            scanner: DataScanner::new(),
            in_tx: false,
            rcpts: 0,
            proto: if shared.config.lmtp { "LMTP" } else { "SMTP" },
            helo: None,
            dump: None,
            hold_until: None,
            big_rbuf: false,
            eof: false,
            sasl: auth::AuthState::default(),
            chunks: bdat::BdatState::default(),
            track: shared.measure.as_ref().and_then(|m| m.scanner()),
            policy: shared.policy.as_ref().map(|e| e.session()),
            refused: false,
            end_decision: None,
            command_since: Instant::now(),
            session_since: Instant::now(),
        }
    }

    fn config(&self) -> &'a SinkConfig {
        &self.shared.config
    }

    /// The one place every reply is queued: `to` is the command it answers
    /// (`None` for an empty or unknown command line), its code the first
    /// three bytes of `bytes`. The `--metrics` hook counts replies here.
    fn queue(&mut self, to: Option<Cmd>, bytes: &[u8]) {
        if let Some(m) = &self.shared.measure {
            m.reply(to.map(Cmd::index), bytes);
        }
        self.conn.write_buf().extend_from_slice(bytes);
    }

    /// Queue a reply, then Postfix's flush check ([`Self::flush_check`]).
    async fn reply(&mut self, to: impl Into<Option<Cmd>>, bytes: &[u8]) -> Result<(), Flow> {
        self.queue(to.into(), bytes);
        self.flush_check().await
    }

    /// Queue `times` copies of a reply (LMTP's one per recipient, RFC 2033
    /// §4.2), then the flush check once, as Postfix's `.` handlers do, even
    /// when `times` is 0 (docs/smtp-sink.md §18).
    async fn replies(&mut self, to: Cmd, bytes: &[u8], times: u64) -> Result<(), Flow> {
        for _ in 0..times {
            self.queue(Some(to), bytes);
            if self.conn.write_buf().len() >= WRITE_HIGH_WATER {
                self.write_out(Push::Full).await?;
            }
        }
        self.flush_check().await
    }

    /// Postfix's check after every reply (docs/smtp-sink.md §18): write
    /// everything queued if the session has no unprocessed input, or if a
    /// lot is queued. Replies held here go out when more input is read
    /// ([`Self::wait_input`]), with a later reply, or at the end.
    async fn flush_check(&mut self) -> Result<(), Flow> {
        let queued = self.conn.write_buf().len();
        if queued >= WRITE_HIGH_WATER {
            self.write_out(Push::Full).await
        } else if queued > 0 && self.no_pending_input() {
            self.write_out(Push::Flush).await
        } else {
            Ok(())
        }
    }

    /// Nothing left in the read buffer and nothing readable on the socket.
    fn no_pending_input(&mut self) -> bool {
        if self.eof || !self.conn.read_buf().is_empty() {
            return false;
        }
        match self.conn.try_fill() {
            None => true,
            Some(Ok(0)) | Some(Err(_)) => {
                self.eof = true;
                false
            }
            Some(Ok(_)) => false,
        }
    }

    /// Write everything queued now, as Postfix's `smtp_flush()` does (a
    /// failure is reported, docs/smtp-sink.md §13).
    async fn flush(&mut self) -> Result<(), Flow> {
        self.write_out(Push::Flush).await
    }

    /// Write everything queued, within the `-t` time limit; a failure ends
    /// the session as `push` says (docs/smtp-sink.md §13, §18).
    async fn write_out(&mut self, push: Push) -> Result<(), Flow> {
        if self.conn.write_buf().is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.shared.timeout;
        let result = timeout_at(deadline, self.conn.flush()).await;
        if self.conn.write_buf().capacity() > WRITE_HIGH_WATER {
            *self.conn.write_buf() = BytesMut::new();
        }
        let failure = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => WriteFailure::Lost,
            Err(_) => WriteFailure::Timeout,
        };
        // The connection is unusable: drop what could not be written so
        // that the close path does not try again.
        self.conn.write_buf().clear();
        let (info, warning, close) = failure.report(push, self.config().verbose > 0);
        if let Some(info) = info {
            diag::info(&info);
        }
        if let Some(warning) = warning {
            diag::warning(warning);
        }
        Err(Flow::Close(close))
    }

    /// Best-effort write of queued replies at the end of the session:
    /// Postfix's close of the stream, which reports nothing.
    async fn finish(&mut self) {
        if self.write_out(Push::Stream).await.is_ok() {
            let deadline = Instant::now() + self.shared.timeout;
            let _ = timeout_at(deadline, self.conn.shutdown()).await;
        }
    }

    async fn run(&mut self) -> Flow {
        if let Err(flow) = self.implicit_tls().await {
            return flow;
        }
        let flow = self.dispatch(Cmd::Connect, b"connect", b"").await;
        if flow != Flow::Continue {
            return flow;
        }
        loop {
            let flow = self.process_input().await;
            if flow != Flow::Continue {
                return flow;
            }
            // No complete command or content left in the buffer.
            if self.eof {
                return Flow::Close(CloseKind::Disconnect);
            }
            match self.wait_input().await {
                Ok(()) => {}
                Err(flow) => return flow,
            }
        }
    }

    /// Wait for more input, honouring `-H` and the `-t` idle timeout.
    ///
    /// Postfix writes the replies it holds when its next read from the
    /// socket returns (docs/smtp-sink.md §18): replies held because input
    /// was pending go out when new bytes arrive, before those are processed. The rest of a
    /// batch that arrived whole is not such a read: Postfix takes it in with
    /// the batch, so its replies still go out in one write.
    async fn wait_input(&mut self) -> Result<(), Flow> {
        let idle = Instant::now() + self.shared.timeout;
        let policy = self.policy_deadline().filter(|&p| p < idle);
        let deadline = policy.unwrap_or(idle);
        if let Some(hold) = self.hold_until.take() {
            if hold >= deadline {
                sleep_until(deadline).await;
                diag::warning("read timeout");
                return Err(Flow::Close(CloseKind::Quiet));
            }
            sleep_until(hold).await;
        }
        self.size_read_buffer();
        let held = !self.conn.write_buf().is_empty();
        if held {
            match self.conn.try_fill() {
                None => {}
                Some(Ok(n)) if n > 0 => return Ok(()),
                // End of file or a reset: the close path writes what is held.
                Some(_) => return Err(Flow::Close(CloseKind::Disconnect)),
            }
        }
        match timeout_at(deadline, self.conn.fill()).await {
            // A reset reads as end of file, as in Postfix.
            Ok(Ok(0)) | Ok(Err(_)) => Err(Flow::Close(CloseKind::Disconnect)),
            Ok(Ok(_)) if held => self.write_out(Push::Stream).await,
            Ok(Ok(_)) => Ok(()),
            Err(_) if policy.is_some() => Err(self.deadline_passed()),
            Err(_) => {
                diag::warning("read timeout");
                Err(Flow::Close(CloseKind::Quiet))
            }
        }
    }

    /// Grow the read buffer for DATA content; free it while idle in
    /// command mode.
    fn size_read_buffer(&mut self) {
        let rbuf = self.conn.read_buf();
        match self.mode {
            Mode::Data | Mode::Chunk => {
                if rbuf.capacity() - rbuf.len() < DATA_CHUNK / 4 {
                    rbuf.reserve(DATA_CHUNK);
                }
                self.big_rbuf = true;
            }
            Mode::Command | Mode::Auth => {
                if rbuf.is_empty() && self.big_rbuf {
                    // Idle sessions stay small.
                    *rbuf = BytesMut::new();
                    self.big_rbuf = false;
                } else if rbuf.capacity() > IDLE_KEEP {
                    self.big_rbuf = true;
                }
            }
        }
    }

    /// Handle every complete command and all DATA content in the buffer.
    async fn process_input(&mut self) -> Flow {
        loop {
            match self.mode {
                Mode::Command | Mode::Auth => match self.lines.next(self.conn.read_buf()) {
                    Frame::Partial => return Flow::Continue,
                    Frame::TooLong => {
                        diag::warning("command line too long");
                        return Flow::Close(CloseKind::Disconnect);
                    }
                    Frame::Line(n) => {
                        self.line.clear();
                        self.line.extend_from_slice(&self.conn.read_buf()[..n]);
                        self.conn.consume(n);
                        let flow = if self.mode == Mode::Auth {
                            self.auth_response().await
                        } else {
                            self.command_line().await
                        };
                        if flow != Flow::Continue {
                            return flow;
                        }
                    }
                },
                Mode::Chunk => {
                    let flow = self.chunk_input().await;
                    if flow != Flow::Continue || self.mode == Mode::Chunk {
                        return flow;
                    }
                }
                Mode::Data => {
                    let rbuf = self.conn.read_buf();
                    if rbuf.is_empty() {
                        return Flow::Continue;
                    }
                    let found = match &mut self.dump {
                        Some(dump) => self.scanner.scan_dump(rbuf, |run| dump.write(run)),
                        None => self.scanner.find_end(rbuf),
                    };
                    if let Some(m) = &self.shared.measure {
                        let content = &rbuf[..found.unwrap_or(rbuf.len())];
                        m.bytes(content.len());
                        if let Some(t) = self.track.as_mut().filter(|t| !t.is_done()) {
                            t.feed(content);
                        }
                    }
                    match found {
                        None => {
                            let n = rbuf.len();
                            self.conn.consume(n);
                            return Flow::Continue;
                        }
                        Some(n) => {
                            self.conn.consume(n);
                            let flow = self.end_of_data().await;
                            if flow != Flow::Continue {
                                return flow;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One complete command line (docs/smtp-sink.md §8.2).
    async fn command_line(&mut self) -> Flow {
        let line = std::mem::take(&mut self.line);
        let cl = split_command(&line);
        if self.config().verbose > 0 {
            diag::info(&diag::sanitize(cl.text));
        }
        let known = Cmd::lookup(cl.token).filter(|&c| self.enabled(c));
        let flow = if self.refused && known != Some(Cmd::Quit) {
            self.reply(known, policy::NO_SERVICE)
                .await
                .err()
                .unwrap_or(Flow::Continue)
        } else if cl.token.is_empty() {
            self.reply(None, reply::EMPTY_COMMAND)
                .await
                .err()
                .unwrap_or(Flow::Continue)
        } else {
            match known {
                None => self
                    .reply(None, reply::UNKNOWN_COMMAND)
                    .await
                    .err()
                    .unwrap_or(Flow::Continue),
                Some(cmd) => self.dispatch(cmd, cl.token, cl.args).await,
            }
        };
        self.line = line;
        self.command_since = Instant::now();
        flow
    }

    fn enabled(&self, cmd: Cmd) -> bool {
        let c = self.config();
        match cmd {
            Cmd::Connect => false,
            Cmd::Helo => !c.lmtp,
            Cmd::Ehlo => !c.lmtp && c.esmtp,
            Cmd::Lhlo => c.lmtp,
            Cmd::Xclient => c.xclient,
            Cmd::Xforward => c.xforward,
            Cmd::Starttls => c.tls.is_some(),
            Cmd::Bdat => c.chunking,
            _ => true,
        }
    }

    /// Failure injection and delays, then the normal reply (docs/smtp-sink.md §11).
    async fn dispatch(&mut self, cmd: Cmd, token: &[u8], args: &[u8]) -> Flow {
        let flags = *self.config().flags(cmd);
        if flags.syslog {
            syslog::log_command(token, &diag::sanitize_bytes(args));
        }
        if flags.drop {
            return Flow::Close(CloseKind::Disconnect);
        }
        if flags.close_421 {
            self.queue(Some(cmd), reply::CLOSING);
            return Flow::Close(CloseKind::Disconnect);
        }
        if flags.hard_error || flags.soft_error {
            let text = if flags.hard_error {
                self.shared.replies.hard.as_slice()
            } else {
                self.shared.replies.soft.as_slice()
            };
            if cmd == Cmd::Bdat {
                // The chunk still has to be read past; the error is the
                // reply to the whole command.
                return self.bdat(args, Some(text)).await;
            }
            return self.error_reply(cmd, text).await;
        }
        if let Some(delay) = flags.delay {
            let pause = delay_duration(delay);
            if !pause.is_zero() {
                // Deviation S4 (docs/deviations.md): nothing is read or handled during the delay, and the
                // idle timer does not run.
                sleep(pause).await;
            }
        }
        match self.normal(cmd, args).await {
            Ok(flow) => flow,
            Err(flow) => flow,
        }
    }

    /// `-f`/`-r` reply; for `.` in LMTP once per recipient.
    async fn error_reply(&mut self, cmd: Cmd, text: &[u8]) -> Flow {
        if cmd == Cmd::Dot && self.config().lmtp {
            let times = std::mem::take(&mut self.rcpts);
            return done(self.replies(cmd, text, times).await);
        }
        self.reply(cmd, text).await.err().unwrap_or(Flow::Continue)
    }

    fn abort_transaction(&mut self) {
        self.in_tx = false;
        self.chunks.used = false;
        if let Some(dump) = self.dump.take() {
            dump.abort();
        }
    }

    fn set_helo(&mut self, args: &[u8]) {
        if self.config().dump.is_some() {
            let start = args
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(args.len());
            self.helo = Some(dump_text(self.config(), &args[start..]));
        }
    }

    /// The normal reply and state change of `cmd` (docs/smtp-sink.md §9): one handler each.
    async fn normal(&mut self, cmd: Cmd, args: &[u8]) -> Result<Flow, Flow> {
        match cmd {
            Cmd::Connect => self.connect().await,
            Cmd::Helo => self.helo(args).await,
            Cmd::Ehlo | Cmd::Lhlo => self.ehlo(cmd, args).await,
            Cmd::Auth if self.config().auth.is_some() => Ok(self.auth(args).await),
            Cmd::Xclient | Cmd::Xforward | Cmd::Auth | Cmd::Noop | Cmd::Vrfy => {
                self.reply(cmd, reply::OK).await.map(|()| Flow::Continue)
            }
            Cmd::Starttls => Ok(self.starttls(args).await),
            Cmd::Bdat => Ok(self.bdat(args, None).await),
            Cmd::Mail => self.mail(args).await,
            Cmd::Rcpt => self.rcpt(args).await,
            Cmd::Data => self.data().await,
            Cmd::Dot => self.dot(Cmd::Dot).await,
            Cmd::Rset => self.rset().await,
            Cmd::Quit => self.quit().await,
        }
    }

    /// The greeting.
    async fn connect(&mut self) -> Result<Flow, Flow> {
        let client = self.client.addr.parse().ok();
        let decision = self.decide(|e, s, now| e.on_connect(s, client, now)).await;
        self.command_since = Instant::now();
        if let Some(d) = policy::refusal(decision) {
            // RFC 5321 §3.1: after a 554 greeting only QUIT is served.
            self.refused = d.reply.is_some_and(|r| r.code() == 554);
            return self.refuse(Cmd::Connect, d).await;
        }
        let greeting = policy::reply_bytes(decision, &self.shared.replies.greeting);
        self.reply(Cmd::Connect, greeting).await?;
        Ok(Flow::Continue)
    }

    /// HELO: a new session state, protocol `SMTP`.
    async fn helo(&mut self, args: &[u8]) -> Result<Flow, Flow> {
        self.abort_transaction();
        self.proto = "SMTP";
        self.set_helo(args);
        self.tell(|e, s| e.on_helo(s, helo_name(args)));
        self.reply(Cmd::Helo, &self.shared.replies.helo).await?;
        Ok(Flow::Continue)
    }

    /// EHLO (`ESMTP`) or LHLO (RFC 2033 §4.1): the extension list, with
    /// STARTTLS only before TLS.
    async fn ehlo(&mut self, cmd: Cmd, args: &[u8]) -> Result<Flow, Flow> {
        self.abort_transaction();
        if cmd == Cmd::Ehlo {
            self.proto = "ESMTP";
        }
        self.set_helo(args);
        self.tell(|e, s| e.on_helo(s, helo_name(args)));
        let replies = &self.shared.replies;
        let list = if self.conn.stream().is_tls() {
            &replies.ehlo_tls
        } else {
            &replies.ehlo
        };
        self.reply(cmd, list).await?;
        Ok(Flow::Continue)
    }

    /// MAIL: open a transaction, and with `-d`/`-D` its dump.
    async fn mail(&mut self, args: &[u8]) -> Result<Flow, Flow> {
        if self.auth_missing() {
            self.reply(Cmd::Mail, crate::proto::auth::REQUIRED).await?;
            return Ok(Flow::Continue);
        }
        if self.in_tx {
            self.reply(Cmd::Mail, reply::NESTED_MAIL).await?;
            return Ok(Flow::Continue);
        }
        let decision = self
            .decide(|e, s, now| e.on_mail(s, address_args(args), now))
            .await;
        if let Some(d) = policy::refusal(decision) {
            return self.refuse(Cmd::Mail, d).await;
        }
        self.in_tx = true;
        self.rcpts = 0;
        self.chunks.used = false;
        self.reply(Cmd::Mail, policy::reply_bytes(decision, reply::MAIL_OK))
            .await?;
        if let Some(mode) = &self.config().dump {
            let mail_args = dump_text(self.config(), address_args(args));
            let header = Header {
                start: self.config().start_string.as_deref(),
                client: &self.client,
                proto: self.proto_name(),
                helo: self.helo.as_deref(),
                auth_user: self.sasl.user.as_deref(),
                mail_args: &mail_args,
            };
            match Dump::begin(mode, now_secs(), &header) {
                Ok(dump) => self.dump = Some(dump),
                // The 250 above reached the client only if no further
                // input was pending, as in Postfix.
                Err(text) => return Err(Flow::Fatal(text)),
            }
        }
        Ok(Flow::Continue)
    }

    /// RCPT: one more recipient of the open transaction.
    async fn rcpt(&mut self, args: &[u8]) -> Result<Flow, Flow> {
        if !self.in_tx {
            self.reply(Cmd::Rcpt, reply::NEED_MAIL).await?;
            return Ok(Flow::Continue);
        }
        let decision = self
            .decide(|e, s, now| e.on_rcpt(s, address_args(args), now))
            .await;
        if let Some(d) = policy::refusal(decision) {
            return self.refuse(Cmd::Rcpt, d).await;
        }
        self.rcpts += 1;
        if let Some(dump) = &mut self.dump {
            dump.rcpt(&dump_text(&self.shared.config, address_args(args)));
        }
        self.reply(Cmd::Rcpt, policy::reply_bytes(decision, reply::RCPT_OK))
            .await?;
        Ok(Flow::Continue)
    }

    /// DATA: switch to reading content (`-A` aborts it, `-H` holds it).
    async fn data(&mut self) -> Result<Flow, Flow> {
        if self.chunks.used {
            self.reply(Cmd::Data, crate::proto::bdat::MIXED).await?;
            return Ok(Flow::Continue);
        }
        if !self.in_tx || self.rcpts == 0 {
            self.reply(Cmd::Data, reply::NEED_RCPT).await?;
            return Ok(Flow::Continue);
        }
        self.reply(Cmd::Data, reply::START_DATA).await?;
        self.start_content();
        self.mode = Mode::Data;
        self.scanner = DataScanner::new();
        if let Some(secs) = self.config().abort_delay {
            // Deviation S5 (docs/deviations.md): stop reading; after the delay 550 and close.
            self.flush().await?;
            sleep(Duration::from_secs(u64::from(secs))).await;
            self.abort_transaction();
            self.queue(Some(Cmd::Data), reply::VIOLATION);
            return Ok(Flow::Close(CloseKind::Quiet));
        }
        if let Some(secs) = self.config().read_hold {
            self.hold_until = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
        }
        Ok(Flow::Continue)
    }

    /// The content of a message starts (DATA, or the first BDAT chunk):
    /// tracking restarts and the dump gets its `Received:` line.
    fn start_content(&mut self) {
        let proto = self.proto_name();
        if let Some(t) = &mut self.track {
            t.reset();
        }
        if let Some(dump) = &mut self.dump {
            let config = &self.shared.config;
            dump.received(self.helo.as_deref(), &self.client, &config.hostname, proto);
        }
    }

    /// The reply to the end of a message (or to `.` typed as a command),
    /// counted as the reply to `to` (`.`, or BDAT for the last chunk).
    async fn dot(&mut self, to: Cmd) -> Result<Flow, Flow> {
        if let Some(d) = policy::refusal(self.end_decision.take()) {
            return self.refuse_message(to, d).await;
        }
        if self.config().lmtp {
            // RFC 2033 §4.2: one reply per recipient, and the flush check
            // even with none. Deviation S9 (docs/deviations.md): the count
            // stops at 0.
            let times = std::mem::take(&mut self.rcpts);
            self.replies(to, reply::LMTP_DOT_OK, times).await?;
        } else {
            self.reply(to, reply::OK).await?;
        }
        Ok(Flow::Continue)
    }

    /// RSET: the transaction (and its dump) is dropped.
    async fn rset(&mut self) -> Result<Flow, Flow> {
        self.abort_transaction();
        self.tell(|e, s| e.on_reset(s));
        self.reply(Cmd::Rset, reply::MAIL_OK).await?;
        Ok(Flow::Continue)
    }

    /// QUIT: `221`, written at once, and the `-n` count.
    async fn quit(&mut self) -> Result<Flow, Flow> {
        self.queue(Some(Cmd::Quit), reply::BYE);
        self.flush().await?;
        self.shared.counters.quit.fetch_add(1, Ordering::Relaxed);
        Ok(Flow::Close(CloseKind::Disconnect))
    }

    /// The terminating `.` was received (docs/smtp-sink.md §10, §14).
    async fn end_of_data(&mut self) -> Flow {
        self.mode = Mode::Command;
        self.hold_until = None;
        self.command_since = Instant::now();
        self.message_done(End::Dot).await
    }

    /// A message is complete, by `.` or the LAST BDAT chunk (docs/smtp-sink.md §10, §14):
    /// the dump, the measurements, the `-c` counters, the reply, then `-M`.
    async fn message_done(&mut self, end: End) -> Flow {
        self.in_tx = false;
        self.chunks.used = false;
        let decision = self.decide(|e, s, now| e.on_message_end(s, now)).await;
        if policy::refusal(decision).is_some() {
            // Refused: neither dumped nor counted as received.
            if let Some(dump) = self.dump.take() {
                dump.abort();
            }
        }
        self.end_decision = decision;
        let dumped = self.dump.is_some();
        if let Some(mut dump) = self.dump.take() {
            if end == End::LastChunk {
                dump.write(crate::proto::bdat::dump_end());
            }
            if let Err(text) = dump.complete() {
                return Flow::Fatal(text);
            }
        }
        let shared = self.shared;
        if let Some(m) = shared.measure.as_ref().filter(|_| !self.refused_message()) {
            m.message(self.track.as_ref().and_then(|t| t.tag()), dumped);
        }
        let mesg = shared.counters.mesg.fetch_add(1, Ordering::Relaxed) + 1;
        if shared.config.counters {
            shared.counters.print();
        }
        let quitting = shared.config.message_quit == Some(mesg);
        let flow = match end {
            End::Dot => {
                if shared.config.verbose > 0 && !quitting {
                    // The end of data is handled as the command line `.`
                    // (docs/smtp-sink.md §10), and Postfix logs it like every command
                    // line (docs/smtp-sink.md §17), unless `-M` already ended the process.
                    diag::info(".");
                }
                self.dispatch(Cmd::Dot, b".", b"").await
            }
            // `.`'s own fault controls do not apply to a BDAT chunk.
            End::LastChunk => self.dot(Cmd::Bdat).await.unwrap_or_else(|flow| flow),
        };
        // `-f`/`-r` on `.` answered instead of the policy.
        self.end_decision = None;
        if quitting {
            // Deviation S2 (docs/deviations.md): the reply to this message and everything before it are
            // written, then the server exits 0.
            return match flow {
                Flow::Fatal(text) => Flow::Fatal(text),
                _ => Flow::Exit,
            };
        }
        flow
    }
}

/// The host name of a HELO/EHLO/LHLO argument line.
fn helo_name(args: &[u8]) -> &[u8] {
    let start = args
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(args.len());
    let rest = &args[start..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// How a message ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum End {
    /// The terminating `.` of DATA.
    Dot,
    /// The LAST BDAT chunk (RFC 3030 §2).
    LastChunk,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};

    /// A stream that counts the writes that reach it (each one a write(2)
    /// on a socket).
    struct CountingStream<S> {
        inner: S,
        writes: Arc<AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            polled
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// docs/smtp-sink.md §18: a pipelined batch (RFC 2920) is answered with one write,
    /// so no small reply trails a large one.
    #[tokio::test]
    async fn pipelined_batch_is_answered_in_one_write() {
        let argv: Vec<std::ffi::OsString> = ["smtp-sink", "127.0.0.1:0", "10"]
            .iter()
            .map(Into::into)
            .collect();
        let Ok(super::super::Command::Run(config)) = SinkConfig::from_args(&argv) else {
            panic!("config");
        };
        let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            replies: Replies::new(&config),
            counters: Counters::default(),
            events,
            timeout: Duration::from_secs(10),
            tls: None,
            measure: None,
            policy: None,
            epoch: Instant::now(),
            config: *config,
        });
        let (ours, mut peer) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let stream = CountingStream {
            inner: ours,
            writes: writes.clone(),
        };
        let mut body = vec![b'x'; 200_000];
        body.extend_from_slice(b"\r\n.\r\n");
        let mut batch =
            b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nDATA\r\n".to_vec();
        batch.extend_from_slice(&body);
        batch.extend_from_slice(b"NOOP\r\nQUIT\r\n");
        let client = ClientAddr {
            prefix: "",
            addr: "127.0.0.1".into(),
        };
        let session = tokio::spawn(run(shared, stream, client));
        let mut got = vec![0u8; 64];
        let n = peer.read(&mut got).await.unwrap();
        got.truncate(n);
        assert_eq!(got, b"220 smtp-sink ESMTP\r\n");
        peer.write_all(&batch).await.unwrap();
        peer.read_to_end(&mut got).await.unwrap();
        session.await.unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("220 "), "{text}");
        assert!(text.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 Bye\r\n"), "{text}");
        // The greeting, then every reply of the batch together.
        assert_eq!(writes.load(Ordering::Relaxed), 2, "{text}");
    }

    #[test]
    fn address_args_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"FROM :  <x>", b"<x>"),
            (b"TO::: <y>", b"<y>"),
            (b"FROM:<s@x> SIZE=10", b"<s@x> SIZE=10"),
            (b"FROM <x>", b""),
            (b"", b""),
            (b"FROM:", b""),
            (b"FROM: :x", b":x"),
        ];
        for &(input, want) in cases {
            assert_eq!(address_args(input), want, "{input:?}");
        }
    }

    #[test]
    fn utf8_dump_text() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"<a@b>", b"<a@b>"),
            (
                "<jörg@exämple.de>".as_bytes(),
                "<jörg@exämple.de>".as_bytes(),
            ),
            (b"x\x01y\x7f", b"x?y?"),
            (b"\xff\xfe", b"??"),
            (b"\xc3", b"?"),
            ("a\u{85}b".as_bytes(), b"a?b"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_utf8(input), *want, "{input:?}");
        }
        // Without --smtputf8 the same bytes get Postfix's treatment.
        assert_eq!(diag::sanitize_bytes("ö".as_bytes()), b"??");
    }
}
