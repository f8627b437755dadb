//! TLS in a sink session: implicit TLS (`--tls`) and STARTTLS (RFC 3207),
//! only with a certificate (`--tls-cert`/`--tls-self-signed`); without one
//! STARTTLS is an unknown command, as in Postfix.

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};

use super::{done, CloseKind, Cmd, Flow, Session};
use crate::diag;
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

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
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
            return done(self.reply(Cmd::Starttls, starttls::NO_PARAMETERS).await);
        }
        if self.conn.stream().is_tls() {
            return done(self.reply(Cmd::Starttls, starttls::ALREADY_ACTIVE).await);
        }
        // The 220 goes out now, whatever else is pending.
        self.queue(Some(Cmd::Starttls), starttls::READY);
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
        self.sasl.user = None;
        Flow::Continue
    }

    /// The protocol name for dumps: RFC 3848 `ESMTPS`/`ESMTPA`/`ESMTPSA`
    /// (and `LMTP…`) once TLS or AUTH is in use, else Postfix's.
    pub(super) fn proto_name(&self) -> &'static str {
        let tls = self.conn.stream().is_tls();
        let auth = self.sasl.user.is_some();
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
}
