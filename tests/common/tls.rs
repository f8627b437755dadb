//! TLS test helpers: a blocking SMTP client that can start plain and
//! upgrade (STARTTLS) or start in TLS (implicit), built on rustls; test
//! certificates made with rcgen. Every read is bounded by [`TIMEOUT`].
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::{count_final_lines, last_reply_complete, TIMEOUT};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate (the sink's `--tls-self-signed` one is
/// unknown in advance) and remembers the leaf it saw.
#[derive(Debug, Default)]
pub struct AcceptAny {
    pub seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("lock") = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config that accepts any certificate; the verifier records it.
pub fn any_cert_config() -> (Arc<ClientConfig>, Arc<AcceptAny>) {
    let verifier = Arc::new(AcceptAny::default());
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    (Arc::new(cfg), verifier)
}

/// A client config that trusts exactly `root` (full verification).
pub fn trusting_config(root: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("root");
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A certificate for `host` and its key, written as PEM files into `dir`
/// (readable by the `-u nobody` sink... which reads them before dropping
/// privileges anyway). Returns (cert path, key path, cert DER).
pub fn write_cert(dir: &Path, host: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.der().clone())
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// A blocking SMTP test client, plain or TLS.
pub struct TlsClient {
    stream: Stream,
    buf: Vec<u8>,
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

impl TlsClient {
    /// A plain connection (upgrade later with [`TlsClient::start_tls`]).
    pub fn plain(addr: SocketAddr) -> TlsClient {
        TlsClient {
            stream: Stream::Plain(tcp(addr)),
            buf: Vec::new(),
        }
    }

    /// Implicit TLS: handshake right after connecting.
    pub fn implicit(addr: SocketAddr, cfg: Arc<ClientConfig>, name: &str) -> TlsClient {
        let mut c = TlsClient::plain(addr);
        c.start_tls(cfg, name).expect("implicit TLS handshake");
        c
    }

    /// Run the TLS handshake on the plain connection. Anything already
    /// read and not consumed is an error in the caller's script.
    pub fn start_tls(&mut self, cfg: Arc<ClientConfig>, name: &str) -> Result<(), String> {
        assert!(self.buf.is_empty(), "unread plain-text bytes before TLS");
        let Stream::Plain(sock) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            panic!("not a plain connection");
        };
        let name = ServerName::try_from(name.to_string()).expect("server name");
        let conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        let deadline = Instant::now() + TIMEOUT;
        while tls.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err("handshake timeout".into());
            }
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// The negotiated TLS version, once in TLS.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.stream {
            Stream::Tls(t) => t.conn.protocol_version(),
            _ => None,
        }
    }

    /// The server's leaf certificate, once in TLS.
    pub fn peer_cert(&self) -> Option<CertificateDer<'static>> {
        match &self.stream {
            Stream::Tls(t) => t
                .conn
                .peer_certificates()?
                .first()
                .map(|c| c.clone().into_owned()),
            _ => None,
        }
    }

    /// Send raw bytes (plain or encrypted).
    pub fn send(&mut self, bytes: &[u8]) {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).expect("send"),
            Stream::Tls(t) => {
                t.write_all(bytes).expect("send");
                t.flush().expect("flush");
            }
            Stream::Gone => panic!("connection gone"),
        }
    }

    fn read_some(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut chunk)?,
            Stream::Tls(t) => t.read(&mut chunk)?,
            Stream::Gone => 0,
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Read until `pred` holds (or EOF/error/timeout); returns and clears
    /// everything read.
    pub fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while !pred(&self.buf) && Instant::now() < deadline {
            match self.read_some() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Read one complete reply.
    pub fn reply(&mut self) -> Vec<u8> {
        self.read_until(last_reply_complete)
    }

    /// Read until `n` final reply lines arrived.
    pub fn replies(&mut self, n: usize) -> Vec<u8> {
        self.read_until(|b| count_final_lines(b) >= n)
    }

    /// Read until the peer closes (EOF, TLS close_notify or reset).
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        self.read_until(|_| false)
    }

    /// Send, then read one reply, as text.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        String::from_utf8_lossy(&self.reply()).into_owned()
    }

    /// True if the peer closed within `limit` without sending anything.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let set = |s: &TcpStream, t| {
            let _ = s.set_read_timeout(Some(t));
        };
        match &self.stream {
            Stream::Plain(s) => set(s, limit),
            Stream::Tls(t) => set(&t.sock, limit),
            Stream::Gone => return true,
        }
        let closed = match self.read_some() {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        match &self.stream {
            Stream::Plain(s) => set(s, TIMEOUT),
            Stream::Tls(t) => set(&t.sock, TIMEOUT),
            Stream::Gone => {}
        }
        closed
    }
}

/// True when `der` names `host` (the DNS name bytes appear in the
/// certificate: enough to tell which host a test certificate was made for).
pub fn cert_names(der: &[u8], host: &str) -> bool {
    der.windows(host.len()).any(|w| w == host.as_bytes())
}
