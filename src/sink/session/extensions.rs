//! Issue #7 extensions of a sink session: STARTTLS (RFC 3207) and implicit
//! TLS, the AUTH exchange (RFC 4954), BDAT (RFC 3030) and the SMTPUTF8 dump
//! text. None of this is reachable without its long option: the commands
//! are disabled (`500 5.5.1`) and their names unknown to `-q` & co., so the
//! Postfix behaviour is unchanged byte for byte.

use std::fmt;
use std::io::Write as _;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};

use super::{reply, CloseKind, Cmd, Flow, Mode, Session};
use crate::diag;
use crate::proto::auth::{self, Step};
use crate::proto::bdat::{self, Chunk};
use crate::proto::starttls;
use crate::tls::TlsAcceptor;

/// The TLS service of a server: the acceptor (certificate loaded once at
/// start-up, shared read-only by all sessions) and whether TLS starts at
/// connect (`--tls`) or on STARTTLS.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub implicit: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("implicit", &self.implicit)
            .finish_non_exhaustive()
    }
}

/// What ends a BDAT chunk once all its bytes are read.
#[derive(Debug, Default, Clone, Copy)]
enum ChunkEnd<'a> {
    /// Accepted: `250 ... bytes`, or for LAST the end of the message.
    #[default]
    Accept,
    /// No transaction with a recipient: `503`, the bytes are skipped.
    NeedRcpt,
    /// `-f`/`-r bdat`: this reply, the bytes are skipped. For LAST in
    /// LMTP the reply is repeated once per recipient, as for `.`.
    Refuse(&'a [u8]),
}

/// Room for `250 2.0.0 Ok: <u64> bytes` CR LF.
const CHUNK_REPLY_MAX: usize = 64;

/// Per-session state of the extensions.
#[derive(Debug, Default)]
pub(super) struct State<'a> {
    /// The user of a successful AUTH (sanitised for the dump).
    pub auth_user: Option<Vec<u8>>,
    /// An AUTH exchange between challenges.
    exchange: Option<auth::Exchange>,
    /// The current transaction has accepted a BDAT chunk (no DATA then,
    /// RFC 3030 §2; the Received lines are written).
    pub bdat_used: bool,
    chunk: Option<Chunk>,
    chunk_size: u64,
    chunk_last: bool,
    chunk_end: ChunkEnd<'a>,
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

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    fn done(result: Result<(), Flow>) -> Flow {
        result.err().unwrap_or(Flow::Continue)
    }

    /// `--tls`: the handshake comes before the greeting.
    pub(super) async fn implicit_tls(&mut self) -> Result<(), Flow> {
        match &self.shared.tls {
            Some(tls) if tls.implicit => self.handshake().await,
            _ => Ok(()),
        }
    }

    /// Server side of the TLS handshake, within the `-t` time limit. A
    /// failure ends this session only.
    async fn handshake(&mut self) -> Result<(), Flow> {
        let Some(tls) = &self.shared.tls else {
            return Ok(());
        };
        let deadline = Instant::now() + self.shared.timeout;
        let why = match timeout_at(deadline, self.conn.stream_mut().accept(&tls.acceptor)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timeout".to_string(),
        };
        diag::warning(&format!("TLS handshake failed: {why}"));
        Err(Flow::Close(CloseKind::Quiet))
    }

    /// STARTTLS (RFC 3207).
    pub(super) async fn starttls(&mut self, args: &[u8]) -> Flow {
        if starttls::has_arguments(args) {
            return Self::done(self.reply(starttls::NO_PARAMETERS).await);
        }
        if self.conn.stream().is_tls() {
            return Self::done(self.reply(starttls::ALREADY_ACTIVE).await);
        }
        // The 220 goes out now, whatever else is pending.
        self.queue(starttls::READY);
        if let Err(flow) = self.flush().await {
            return flow;
        }
        // RFC 3207 §4.2, CVE-2011-0411: whatever the client sent after
        // STARTTLS before the handshake is dropped, never executed.
        let dropped = starttls::discard_pending(self.conn.read_buf());
        self.conn.consume(dropped.bytes);
        self.lines.reset();
        if !dropped.is_empty() && self.config().verbose > 0 {
            diag::info(&format!(
                "discarding {} bytes ({} lines) sent before the TLS handshake",
                dropped.bytes, dropped.lines
            ));
        }
        if let Err(flow) = self.handshake().await {
            return flow;
        }
        // RFC 3207 §4.2: forget everything learnt from the client before
        // TLS: HELO, protocol, transaction, authentication.
        self.abort_transaction();
        self.helo = None;
        self.proto = if self.config().lmtp { "LMTP" } else { "SMTP" };
        self.ext.auth_user = None;
        Flow::Continue
    }

    /// The protocol name for dumps: RFC 3848 `ESMTPS`/`ESMTPA`/`ESMTPSA`
    /// (and `LMTP…`) once TLS or AUTH is in use, else Postfix's.
    pub(super) fn proto_name(&self) -> &'static str {
        let tls = self.conn.stream().is_tls();
        let auth = self.ext.auth_user.is_some();
        match (self.proto, tls, auth) {
            ("ESMTP", true, true) => "ESMTPSA",
            ("ESMTP", true, false) => "ESMTPS",
            ("ESMTP", false, true) => "ESMTPA",
            ("LMTP", true, true) => "LMTPSA",
            ("LMTP", true, false) => "LMTPS",
            ("LMTP", false, true) => "LMTPA",
            (name, _, _) => name,
        }
    }

    /// `--auth-required` and no successful AUTH yet.
    pub(super) fn auth_missing(&self) -> bool {
        self.config().auth.is_some_and(|a| a.required) && self.ext.auth_user.is_none()
    }

    /// AUTH with `--auth` (RFC 4954 §4).
    pub(super) async fn auth(&mut self, args: &[u8]) -> Flow {
        if self.ext.auth_user.is_some() {
            return Self::done(self.reply(auth::ALREADY).await);
        }
        if self.in_tx {
            return Self::done(self.reply(auth::IN_TRANSACTION).await);
        }
        let (exchange, step) = auth::start(args);
        self.ext.exchange = exchange;
        self.auth_step(step).await
    }

    /// A client line during an AUTH exchange (in `self.line`, with CR LF).
    pub(super) async fn auth_response(&mut self) -> Flow {
        let line = std::mem::take(&mut self.line);
        let response = line.strip_suffix(b"\r\n").unwrap_or(&line);
        let step = match &mut self.ext.exchange {
            Some(exchange) => exchange.respond(response),
            None => Step::Reject(auth::ABORTED),
        };
        self.line = line;
        self.auth_step(step).await
    }

    async fn auth_step(&mut self, step: Step) -> Flow {
        let text: &[u8] = match step {
            Step::Challenge(challenge) => {
                self.mode = Mode::Auth;
                challenge
            }
            Step::Credentials(credentials) => {
                self.mode = Mode::Command;
                self.ext.exchange = None;
                if self.config().auth.is_some_and(|a| a.fail) {
                    auth::FAILED
                } else {
                    self.ext.auth_user = Some(super::dump_text(self.config(), &credentials.user));
                    auth::SUCCESS
                }
            }
            Step::Reject(reply) => {
                self.mode = Mode::Command;
                self.ext.exchange = None;
                reply
            }
        };
        Self::done(self.reply(text).await)
    }

    /// BDAT (RFC 3030): start reading the chunk. `refused` is the `-f`/`-r`
    /// reply, given after the chunk.
    pub(super) async fn bdat(&mut self, args: &[u8], refused: Option<&'a [u8]>) -> Flow {
        let Ok(parsed) = bdat::parse_args(args) else {
            // The chunk size is unknown: what follows is read as commands.
            return Self::done(self.reply(bdat::SYNTAX).await);
        };
        let end = match refused {
            Some(text) => ChunkEnd::Refuse(text),
            None if !self.in_tx || self.rcpts == 0 => ChunkEnd::NeedRcpt,
            None => {
                if !self.ext.bdat_used {
                    self.ext.bdat_used = true;
                    if let Some(t) = &mut self.track {
                        t.reset();
                    }
                    let proto = self.proto_name();
                    if let Some(dump) = &mut self.dump {
                        let config = &self.shared.config;
                        dump.received(self.helo.as_deref(), &self.client, &config.hostname, proto);
                    }
                }
                ChunkEnd::Accept
            }
        };
        self.ext.chunk = Some(Chunk::new(parsed.size));
        self.ext.chunk_size = parsed.size;
        self.ext.chunk_last = parsed.last;
        self.ext.chunk_end = end;
        self.mode = Mode::Chunk;
        Flow::Continue
    }

    /// Take the buffered bytes that belong to the chunk (exact count, no
    /// dot-unstuffing); at its end, reply.
    pub(super) async fn chunk_input(&mut self) -> Flow {
        let Some(chunk) = &mut self.ext.chunk else {
            self.mode = Mode::Command;
            return Flow::Continue;
        };
        let rbuf = self.conn.read_buf();
        let n = chunk.take(rbuf.len());
        if let ChunkEnd::Accept = self.ext.chunk_end {
            let content = &rbuf[..n];
            if let Some(dump) = &mut self.dump {
                bdat::dump_transform(content, |run| dump.write(run));
            }
            // Issue #6 measurements see BDAT content as they see DATA.
            if let Some(m) = &self.shared.measure {
                m.bytes(content.len());
                if let Some(t) = self.track.as_mut().filter(|t| !t.is_done()) {
                    t.feed(content);
                }
            }
        }
        self.conn.consume(n);
        if !chunk.is_complete() {
            return Flow::Continue;
        }
        self.ext.chunk = None;
        self.mode = Mode::Command;
        match std::mem::take(&mut self.ext.chunk_end) {
            ChunkEnd::NeedRcpt => Self::done(self.reply(reply::NEED_RCPT).await),
            ChunkEnd::Refuse(text) => {
                let times = if self.ext.chunk_last && self.config().lmtp {
                    self.rcpts.max(1)
                } else {
                    1
                };
                for _ in 0..times {
                    if let Err(flow) = self.reply(text).await {
                        return flow;
                    }
                }
                Flow::Continue
            }
            ChunkEnd::Accept if !self.ext.chunk_last => {
                let mut text = [0u8; CHUNK_REPLY_MAX];
                let mut w = &mut text[..];
                let _ = write!(w, "250 2.0.0 Ok: {} bytes\r\n", self.ext.chunk_size);
                let len = CHUNK_REPLY_MAX - w.len();
                Self::done(self.reply(&text[..len]).await)
            }
            ChunkEnd::Accept => self.bdat_last().await,
        }
    }

    /// The LAST chunk is in: the message is complete, accounted for and
    /// answered exactly like the end of DATA (`.` reply; LMTP once per
    /// recipient), except that `.`'s own fault controls do not apply.
    async fn bdat_last(&mut self) -> Flow {
        self.in_tx = false;
        self.ext.bdat_used = false;
        let dumped = self.dump.is_some();
        if let Some(mut dump) = self.dump.take() {
            dump.write(bdat::dump_end());
            if let Err(text) = dump.complete() {
                return Flow::Fatal(text);
            }
        }
        let shared = self.shared;
        if let Some(m) = &shared.measure {
            m.message(self.track.as_ref().and_then(|t| t.tag()), dumped);
        }
        let mesg = shared
            .counters
            .mesg
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if shared.config.counters {
            shared.counters.print();
        }
        let flow = match self.normal(Cmd::Dot, b"").await {
            Ok(flow) | Err(flow) => flow,
        };
        if shared.config.message_quit == Some(mesg) {
            // S2, as for DATA.
            return match flow {
                Flow::Fatal(text) => Flow::Fatal(text),
                _ => Flow::Exit,
            };
        }
        flow
    }
}

#[cfg(test)]
mod tests {
    use super::super::sanitize_bytes;
    use super::*;

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
        assert_eq!(sanitize_bytes("ö".as_bytes()), b"??");
    }
}
