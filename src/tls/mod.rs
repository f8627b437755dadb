//! TLS plumbing shared by both tools: rustls with the `ring`
//! provider through tokio-rustls. No OpenSSL.
//!
//! * [`MaybeTls`] is the one stream type: plain, server-side TLS or
//!   client-side TLS. It implements `AsyncRead + AsyncWrite`, so
//!   [`crate::conn::Connection`] works over it unchanged, and it can be
//!   upgraded in place (STARTTLS, RFC 3207) without giving the
//!   `Connection` up.
//! * [`server`] builds the server configuration (`--tls-cert`/`--tls-key`
//!   PEM files, or a certificate generated at start-up for
//!   `--tls-self-signed`).
//!
//! The RFC 3207 rule that input buffered before the handshake is discarded
//! is a protocol rule and lives in [`crate::proto::starttls`]; this module
//! only moves bytes.

pub mod client;
pub mod server;

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The crypto provider every configuration is built with (explicitly, so
/// nothing depends on a process-wide default being installed).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Errors building a TLS configuration. Display texts are complete
/// diagnostic messages (without the `PROG: fatal: ` prefix).
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read: `open FILE: ERRNO-TEXT`.
    Read { path: String, err: io::Error },
    /// A PEM file holds no certificate: `FILE: no certificate found`.
    NoCertificate { path: String },
    /// A PEM file holds no private key: `FILE: no private key found`.
    NoKey { path: String },
    /// A PEM file could not be parsed.
    Pem { path: String, reason: String },
    /// Certificate generation failed (`--tls-self-signed`).
    Generate(String),
    /// rustls refused the configuration (e.g. key does not match).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, err } => {
                write!(f, "open {path}: {}", crate::diag::errno_text(err))
            }
            TlsError::NoCertificate { path } => write!(f, "{path}: no certificate found"),
            TlsError::NoKey { path } => write!(f, "{path}: no private key found"),
            TlsError::Pem { path, reason } => write!(f, "{path}: {reason}"),
            TlsError::Generate(reason) => write!(f, "cannot generate TLS certificate: {reason}"),
            TlsError::Config(reason) => write!(f, "TLS configuration: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for crate::Error {
    fn from(e: TlsError) -> Self {
        crate::Error::fatal(e.to_string())
    }
}

/// A byte stream that is plain text, or TLS on either side.
///
/// The TLS variants are boxed: rustls connection state is a few kilobytes,
/// and most sessions of a load test stay plain, so the plain variant keeps
/// the per-session footprint small.
pub enum MaybeTls<S> {
    /// Plain text.
    Plain(S),
    /// TLS, we are the server (smtp-sink).
    Server(Box<tokio_rustls::server::TlsStream<S>>),
    /// TLS, we are the client (smtp-source).
    Client(Box<tokio_rustls::client::TlsStream<S>>),
    /// A handshake failed part-way; the stream is gone. Every I/O call
    /// fails with `NotConnected`.
    Closed,
}

impl<S> fmt::Debug for MaybeTls<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaybeTls::Plain(_) => "MaybeTls::Plain",
            MaybeTls::Server(_) => "MaybeTls::Server",
            MaybeTls::Client(_) => "MaybeTls::Client",
            MaybeTls::Closed => "MaybeTls::Closed",
        })
    }
}

/// What a finished handshake negotiated (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: rustls::ProtocolVersion,
    pub suite: rustls::CipherSuite,
    /// True when the session was resumed (no full handshake).
    pub resumed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeTls<S> {
    /// True once a TLS handshake has completed on this stream.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Server(_) | MaybeTls::Client(_))
    }

    /// The plain stream underneath (also under TLS); `None` once closed.
    pub fn get_ref(&self) -> Option<&S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Server(t) => Some(t.get_ref().0),
            MaybeTls::Client(t) => Some(t.get_ref().0),
            MaybeTls::Closed => None,
        }
    }

    /// Protocol version and cipher suite, once TLS is up.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        let common: &rustls::CommonState = match self {
            MaybeTls::Server(t) => t.get_ref().1,
            MaybeTls::Client(t) => t.get_ref().1,
            _ => return None,
        };
        Some(TlsInfo {
            version: common.protocol_version()?,
            suite: common.negotiated_cipher_suite()?.suite(),
            resumed: matches!(
                common.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed)
            ),
        })
    }

    /// Take the plain stream out for a handshake. Fails when the stream is
    /// already TLS (a second STARTTLS is a protocol error the caller must
    /// have rejected) or closed.
    fn take_plain(&mut self) -> io::Result<S> {
        match std::mem::replace(self, MaybeTls::Closed) {
            MaybeTls::Plain(s) => Ok(s),
            other => {
                *self = other;
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS is already active on this stream",
                ))
            }
        }
    }

    /// Run the server side of a TLS handshake on the plain stream and
    /// switch to TLS. On failure the stream is dropped (closed) and
    /// `self` becomes [`MaybeTls::Closed`].
    ///
    /// The caller must have flushed its reply (`220`) and discarded any
    /// buffered plain-text input first (RFC 3207 section 4.2).
    pub async fn accept(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let plain = self.take_plain()?;
        let tls = acceptor.accept(plain).await?;
        *self = MaybeTls::Server(Box::new(tls));
        Ok(())
    }

    /// Run the client side of a TLS handshake on the plain stream and
    /// switch to TLS. On failure `self` becomes [`MaybeTls::Closed`].
    pub async fn connect(
        &mut self,
        connector: &TlsConnector,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<()> {
        let plain = self.take_plain()?;
        let tls = connector.connect(server_name, plain).await?;
        *self = MaybeTls::Client(Box::new(tls));
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS handshake failed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Server(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            MaybeTls::Client(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Server(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            MaybeTls::Client(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Server(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTls::Client(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTls::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Server(t) => t.is_write_vectored(),
            MaybeTls::Client(t) => t.is_write_vectored(),
            MaybeTls::Closed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Server(t) => Pin::new(t.as_mut()).poll_flush(cx),
            MaybeTls::Client(t) => Pin::new(t.as_mut()).poll_flush(cx),
            MaybeTls::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Server(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            MaybeTls::Client(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            MaybeTls::Closed => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Connection;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client config that trusts exactly `cert` (test only; the real
    /// client side lives in the source's TLS module).
    fn client_trusting(cert: &rustls::pki_types::CertificateDer<'static>) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(cfg))
    }

    #[tokio::test]
    async fn starttls_upgrade_in_place_both_sides() {
        let identity = server::Identity::self_signed("mx.example").unwrap();
        let acceptor = server::acceptor(&identity).unwrap();
        let connector = client_trusting(identity.cert_chain().first().unwrap());

        let (a, b) = tokio::io::duplex(4096);
        let server = async move {
            let mut conn = Connection::new(MaybeTls::Plain(a), 1024);
            conn.write_buf().extend_from_slice(b"220 ready\r\n");
            conn.flush().await.unwrap();
            // Pipelined garbage after STARTTLS is in our buffer: discard.
            while !conn.read_buf().ends_with(b"EVIL\r\n") {
                assert!(conn.fill().await.unwrap() > 0);
            }
            conn.read_buf().clear();
            conn.write_buf().extend_from_slice(b"220 go ahead\r\n");
            conn.flush().await.unwrap();
            conn.stream_mut().accept(&acceptor).await.unwrap();
            assert!(conn.stream().is_tls());
            let info = conn.stream().tls_info().unwrap();
            assert_eq!(info.version, rustls::ProtocolVersion::TLSv1_3);
            while !conn.read_buf().ends_with(b"\r\n") {
                assert!(conn.fill().await.unwrap() > 0);
            }
            let got = conn.read_buf().split().freeze();
            conn.flush_with(b"250 ", b"ok\r\n").await.unwrap();
            conn.shutdown().await.unwrap();
            got
        };
        let client = async move {
            let mut s = MaybeTls::Plain(b);
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"220 ready\r\n");
            s.write_all(b"STARTTLS\r\nEVIL\r\n").await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"220 go ahead\r\n");
            let name = rustls::pki_types::ServerName::try_from("mx.example").unwrap();
            s.connect(&connector, name).await.unwrap();
            s.write_all(b"EHLO secret\r\n").await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            rest
        };
        let (got, rest) = tokio::join!(server, client);
        assert_eq!(&got[..], b"EHLO secret\r\n");
        assert_eq!(rest, b"250 ok\r\n");
    }

    #[tokio::test]
    async fn failed_handshake_leaves_closed_stream() {
        let identity = server::Identity::self_signed("mx.example").unwrap();
        let acceptor = server::acceptor(&identity).unwrap();
        let (a, mut b) = tokio::io::duplex(4096);
        let mut s = MaybeTls::Plain(a);
        b.write_all(b"this is not a client hello\r\n")
            .await
            .unwrap();
        assert!(s.accept(&acceptor).await.is_err());
        assert!(matches!(s, MaybeTls::Closed));
        let mut buf = [0u8; 4];
        assert!(s.read(&mut buf).await.is_err());
        // A second upgrade attempt is refused rather than panicking.
        assert!(s.accept(&acceptor).await.is_err());
    }
}
