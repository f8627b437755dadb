//! One smtp-source session: connect, greet, transactions, the per-stage
//! reply rules of docs/smtp-source.md §6, QUIT or connection reuse, and the pause
//! between messages. A session owns its connection and buffers; the only
//! state shared with other sessions is in [`Shared`] (atomics, no locks).

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::conn::Connection;
use crate::diag::{self, errno_text, Error, Result};
use crate::measure::recorder::Phase;
use crate::measure::source_side::{Hooks as _, Probe};
use crate::proto::data;
use crate::proto::pipeline::is_closing;
use crate::proto::reply::{Event, ReplyParser};

use crate::tls::MaybeTls;

use super::descriptor::Descriptor;
use super::net::{self, ConnectError, Stream};
use super::shared::Shared;

/// Bytes asked for per read: replies are short, and a small buffer keeps
/// thousands of sessions cheap.
const READ_CHUNK: usize = 4096;

/// Largest piece of a message body written under one time limit: a
/// message of any size may take longer than the limit as a whole, as long
/// as it keeps moving (Postfix limits each write, not the message).
const WRITE_SLICE: usize = 1 << 20;

/// Pause between connect attempts (Postfix: 10 µs).
const RETRY_PAUSE: Duration = Duration::from_micros(10);

pub(super) mod esmtp;

/// What the session was doing when an I/O failure happened (docs/smtp-source.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Greeting,
    Helo,
    /// ESMTP path only.
    Ehlo,
    Starttls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Message,
}

/// How a rejected step continues under `-A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Warning printed; carry on as the table says.
    Continue,
    /// 421/521: close the connection at once (no QUIT).
    Close,
}

struct Conn {
    /// Plain unless the ESMTP path started TLS.
    io: Connection<MaybeTls<Stream>>,
    /// The socket's number in the `Message-Id` (Postfix's, see
    /// `descriptor`), given back when the connection closes.
    fd: Descriptor,
    /// Input disabled by the over-long reply rule: every read is EOF.
    disabled: bool,
}

/// One session's state.
pub(crate) struct Session {
    shared: Arc<Shared>,
    conn: Option<Conn>,
    parser: ReplyParser,
    /// `-C` attempts left; never reset during the session's life.
    attempts_left: u32,
    /// The number used in this session's last numbered RCPT.
    last_rcpt: i32,
    rng: Option<SmallRng>,
    /// Measurement hooks; `None` unless the run records.
    probe: Option<Box<Probe>>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, index: u32) -> Session {
        let probe = shared.measure.as_ref().and_then(|m| m.probe());
        let rng = shared
            .config
            .random_delay
            .map(|_| SmallRng::seed_from_u64(u64::from(shared.pid) << 32 | u64::from(index)));
        Session {
            attempts_left: shared.config.connect_attempts,
            shared,
            conn: None,
            parser: ReplyParser::new(),
            last_rcpt: 0,
            rng,
            probe,
        }
    }

    /// Run messages until the shared pool is empty. `first` is the outcome
    /// of the start-up check (done in session order by the caller).
    pub(crate) async fn run(mut self, first: bool) -> Result<()> {
        if let Some(setup) = self.shared.esmtp.clone() {
            return esmtp::Esmtp::new(self, setup).run(first).await;
        }
        let mut go = first;
        while go {
            if !self.measured_start().await {
                self.quit_kept().await?;
                break;
            }
            let res = self.message().await;
            self.probe.end_message(res.is_ok());
            res?;
            self.pause().await;
            go = self.shared.take_message();
        }
        Ok(())
    }

    /// Measurements: wait for this message's turn under
    /// `--rate`, and start timing it. False when `--duration` is over.
    async fn measured_start(&mut self) -> bool {
        if self.shared.measure.is_none() {
            return true;
        }
        let shared = Arc::clone(&self.shared);
        let Some(m) = &shared.measure else {
            return true;
        };
        let Some(start) = m.next_start().await else {
            return false;
        };
        self.probe.begin_message(start);
        true
    }

    /// `--duration` is over while `-d` kept the connection: end it with QUIT.
    async fn quit_kept(&mut self) -> Result<()> {
        if self.conn.is_some() {
            self.probe.mark();
            self.command(b"QUIT", Ctx::Message).await?;
            let code = self.reply(Ctx::Message).await?;
            self.probe.reply(Phase::Quit, code);
            self.close();
        }
        Ok(())
    }

    async fn pause(&mut self) {
        let config = &self.shared.config;
        let secs = if let Some(w) = config.fixed_delay {
            u64::from(w)
        } else if let (Some(r), Some(rng)) = (config.random_delay, self.rng.as_mut()) {
            rng.gen_range(0..=u64::from(r))
        } else {
            return;
        };
        if secs > 0 {
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    }

    fn ctx_text(&self, ctx: Ctx) -> &'static str {
        match ctx {
            Ctx::Greeting => "reading server greeting",
            Ctx::Helo if self.shared.config.lmtp => "sending LHLO",
            Ctx::Helo => "sending HELO",
            Ctx::Ehlo if self.shared.config.lmtp => "sending LHLO",
            Ctx::Ehlo => "sending EHLO",
            Ctx::Starttls => "sending STARTTLS",
            Ctx::Auth => "sending AUTH",
            Ctx::Mail => "sending sender",
            Ctx::Rcpt => "sending recipient",
            Ctx::Data => "sending DATA command",
            Ctx::Message => "sending message",
        }
    }

    fn lost(&self, ctx: Ctx) -> Error {
        Error::fatal(format!("lost connection while {}", self.ctx_text(ctx)))
    }

    fn timeout(&self, ctx: Ctx) -> Error {
        Error::fatal(format!("timeout while {}", self.ctx_text(ctx)))
    }

    /// The open connection. Every caller runs after a successful connect
    /// in this message; a missing connection is reported as lost rather
    /// than trusted as an invariant.
    fn conn(&mut self, ctx: Ctx) -> Result<&mut Conn> {
        if self.conn.is_none() {
            return Err(self.lost(ctx));
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::fatal("lost connection"))
    }

    async fn connect(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.probe.mark();
        // At most one connect in progress for the whole process, FIFO.
        let _permit = shared
            .connect_gate
            .acquire()
            .await
            .map_err(|_| Error::fatal("connect queue closed"))?;
        let stream = loop {
            match net::connect(&shared.target, shared.config.window).await {
                Ok(stream) => break stream,
                Err(ConnectError::Socket(e)) => {
                    return Err(Error::fatal(format!("socket: {}", errno_text(&e))));
                }
                Err(ConnectError::Connect(e)) => {
                    self.attempts_left = self.attempts_left.saturating_sub(1);
                    let text = format!("connect: {}", errno_text(&e));
                    self.probe.connect_failed();
                    if self.attempts_left == 0 {
                        return Err(Error::fatal(text));
                    }
                    diag::warning(&text);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        self.probe.connected();
        self.parser.reset();
        self.conn = Some(Conn {
            fd: Descriptor::claim(&shared.descriptors, stream.fd()),
            io: Connection::new(MaybeTls::Plain(stream), READ_CHUNK),
            disabled: false,
        });
        Ok(())
    }

    /// Close at once; with `SO_LINGER 0` the peer sees a reset.
    fn close(&mut self) {
        self.conn = None;
    }

    /// Send what is queued in the write buffer (one command line), logging
    /// it first under `-v`.
    async fn send(&mut self, ctx: Ctx) -> Result<()> {
        let verbose = self.shared.config.verbose > 0;
        let limit = self.shared.config.io_timeout;
        if self.probe.is_some() {
            let n = self.conn(ctx)?.io.write_buf().len();
            self.probe.sent(n);
        }
        let conn = self.conn(ctx)?;
        if verbose {
            let buf = conn.io.write_buf();
            let line = &buf[..buf.len().saturating_sub(2)];
            diag::info(&diag::sanitize(line));
        }
        let res = tokio::time::timeout(limit, conn.io.flush()).await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.lost(ctx)),
            Err(_) => Err(self.timeout(ctx)),
        }
    }

    /// Queue `line` (without CRLF) and send it.
    async fn command(&mut self, line: &[u8], ctx: Ctx) -> Result<()> {
        let buf = self.conn(ctx)?.io.write_buf();
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\r\n");
        self.send(ctx).await
    }

    /// Read one complete reply; returns its code (text in the parser).
    ///
    /// Deviation D2 (docs/deviations.md): the time limit covers the whole wait for the reply,
    /// from the first byte on (Postfix waits for the first byte forever).
    async fn reply(&mut self, ctx: Ctx) -> Result<u32> {
        let verbose = self.shared.config.verbose > 0;
        let deadline = tokio::time::Instant::now() + self.shared.config.io_timeout;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(self.lost(ctx));
            };
            let (used, event) = self.parser.feed(conn.io.read_buf());
            conn.io.consume(used);
            match event {
                Some(Event::Line { last, disabled }) => {
                    if disabled {
                        // Postfix 3.12 stops reading after an over-long
                        // line; whatever follows is never seen.
                        diag::warning("disabling input from unknown_stream");
                        conn.disabled = true;
                        let pending = conn.io.read_buf().len();
                        conn.io.consume(pending);
                    }
                    if verbose {
                        diag::info(&format!("<<< {}", diag::sanitize(self.parser.line())));
                    }
                    if last {
                        return Ok(self.parser.code());
                    }
                }
                None => {
                    if conn.disabled {
                        if verbose {
                            diag::info("smtp_get: EOF");
                        }
                        return Err(self.lost(ctx));
                    }
                    match tokio::time::timeout_at(deadline, conn.io.fill()).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            if verbose {
                                diag::info("smtp_get: EOF");
                            }
                            return Err(self.lost(ctx));
                        }
                        Ok(Ok(_)) => {}
                        Err(_) => {
                            if verbose {
                                diag::info("smtp_get: timeout");
                            }
                            return Err(self.timeout(ctx));
                        }
                    }
                }
            }
        }
    }

    /// An unexpected reply: fatal without `-A`, else a warning and how to
    /// go on.
    fn reject(&self, what: &str, code: u32, closing_rule: bool) -> Result<Next> {
        let text = format!("{what}: {code} {}", diag::sanitize(self.parser.text()));
        if !self.shared.config.ignore_errors {
            return Err(Error::Fatal(text));
        }
        if !self.shared.config.measure.quiet_rejects {
            diag::warning(&text);
        }
        Ok(if closing_rule && is_closing(code) {
            Next::Close
        } else {
            Next::Continue
        })
    }

    /// One message attempt (docs/smtp-source.md §6.1/§6.2).
    async fn message(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        if self.conn.is_none() {
            self.connect().await?;
            let code = self.reply(Ctx::Greeting).await?;
            self.probe.reply(Phase::Banner, code);
            if code / 100 != 2 {
                // No 421/521 special case for the banner.
                self.reject("rejected at server banner", code, false)?;
            }
            if !config.old_mode {
                self.command(&shared.message.helo, Ctx::Helo).await?;
                let code = self.reply(Ctx::Helo).await?;
                self.probe.reply(Phase::Helo, code);
                if code / 100 != 2 {
                    let what = if config.lmtp {
                        "LHLO rejected"
                    } else {
                        "HELO rejected"
                    };
                    if self.reject(what, code, true)? == Next::Close {
                        self.close();
                        return Ok(());
                    }
                }
            }
        }

        self.command(&shared.message.mail, Ctx::Mail).await?;
        let code = self.reply(Ctx::Mail).await?;
        self.probe.reply(Phase::Mail, code);
        if code / 100 != 2 {
            return match self.reject("sender rejected", code, true)? {
                Next::Close => {
                    self.close();
                    Ok(())
                }
                Next::Continue => self.rset(Ctx::Mail).await,
            };
        }

        let mut accepted = 0u32;
        for _ in 0..config.recipients {
            self.queue_rcpt()?;
            self.send(Ctx::Rcpt).await?;
            let code = self.reply(Ctx::Rcpt).await?;
            self.probe.reply(Phase::Rcpt, code);
            if code / 100 == 2 {
                accepted += 1;
            } else if self.reject("recipient rejected", code, true)? == Next::Close {
                self.close();
                return Ok(());
            }
        }
        if accepted == 0 {
            return self.rset(Ctx::Rcpt).await;
        }

        self.command(b"DATA", Ctx::Data).await?;
        let code = self.reply(Ctx::Data).await?;
        self.probe.reply(Phase::Data, code);
        if code != 354 {
            return match self.reject("data rejected", code, true)? {
                Next::Close => {
                    self.close();
                    Ok(())
                }
                Next::Continue => self.rset(Ctx::Data).await,
            };
        }

        self.send_content().await?;
        // RFC 2033 §4.2: LMTP answers the end of data once per accepted
        // recipient (deviation D3 (docs/deviations.md): Postfix waits for one per RCPT sent).
        let replies = if config.lmtp { accepted } else { 1 };
        for _ in 0..replies {
            let code = self.reply(Ctx::Message).await?;
            self.probe.reply(Phase::Dot, code);
            if code / 100 != 2 && self.reject("end of data rejected", code, true)? == Next::Close {
                self.close();
                return Ok(());
            }
        }
        self.finish().await
    }

    /// Queue `RCPT TO:<...>` with the process-wide numbering (docs/smtp-source.md §8).
    fn queue_rcpt(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let n = if shared.config.numbering {
            let n = shared.rcpt_counter.fetch_add(1, Ordering::Relaxed);
            self.last_rcpt = n;
            Some(n)
        } else {
            None
        };
        let buf = self.conn(Ctx::Rcpt)?.io.write_buf();
        buf.extend_from_slice(b"RCPT TO:<");
        shared.write_recipient(buf, n);
        buf.extend_from_slice(b">\r\n");
        Ok(())
    }

    /// Headers (per message), the shared body and the final `.`, in one
    /// vectored write.
    async fn send_content(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let numbered = config.numbering.then_some(self.last_rcpt);
        let limit = config.io_timeout;
        if config.verbose > 0 {
            diag::info(".");
        }
        let conn = self.conn(Ctx::Message)?;
        shared.write_headers(conn.io.write_buf(), numbered, conn.fd.number());
        let head = conn.io.write_buf().len();
        // The time limit is per write, not per message: a huge body is
        // written in slices, each with its own limit (the first slice also
        // carries the headers, the last one the final dot).
        let body: &[u8] = &shared.message.template.body;
        for write in data::content_writes(body.len(), WRITE_SLICE) {
            let part = &body[write.range];
            match tokio::time::timeout(limit, conn.io.flush_with(part, write.tail)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.lost(Ctx::Message)),
                Err(_) => return Err(self.timeout(Ctx::Message)),
            }
        }
        self.probe.sent(head + body.len() + data::DOT_LINE.len());
        let sent = shared.messages.fetch_add(1, Ordering::Relaxed) + 1;
        if config.counter {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{sent}\r");
            let _ = out.flush();
        }
        Ok(())
    }

    /// RSET after a rejection; a write failure is reported with the context
    /// of the step that triggered it.
    async fn rset(&mut self, trigger: Ctx) -> Result<()> {
        self.command(b"RSET", trigger).await?;
        let code = self.reply(Ctx::Message).await?;
        self.probe.reply(Phase::Rset, code);
        if code / 100 != 2 && self.reject("rset rejected", code, true)? == Next::Close {
            self.close();
            return Ok(());
        }
        self.finish().await
    }

    /// After a transaction: QUIT unless `-d` and messages are left.
    async fn finish(&mut self) -> Result<()> {
        if self.shared.config.reuse
            && self.shared.remaining.load(Ordering::Relaxed) >= 1
            && self.shared.measure.as_ref().is_none_or(|m| m.open())
        {
            return Ok(());
        }
        self.command(b"QUIT", Ctx::Message).await?;
        // Any reply will do; only its absence is an error.
        let code = self.reply(Ctx::Message).await?;
        self.probe.reply(Phase::Quit, code);
        self.close();
        Ok(())
    }
}
