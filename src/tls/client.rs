//! The client side of TLS for smtp-source (`--starttls`, `--tls`).
//!
//! * By default the server certificate is **not verified**: a load tool
//!   talks to test servers with throw-away certificates. The verifier used
//!   then still checks the handshake signatures (TLS 1.2 ServerKeyExchange,
//!   TLS 1.3 CertificateVerify) against the presented certificate's key, so
//!   the handshake does the same cryptographic work as a verified one and
//!   a broken server is still caught; only the chain and name checks are
//!   skipped.
//! * `--tls-verify --tls-ca FILE` verifies the chain against the PEM roots
//!   in FILE (webpki), and the host name of the endpoint against the
//!   certificate; the same name goes out as SNI (RFC 6066).
//! * Session resumption is off unless `--tls-resume`: rustls would cache
//!   sessions by default, which would make a "handshake per connection"
//!   benchmark measure resumptions. With it, one in-memory cache in the
//!   shared [`rustls::ClientConfig`] serves every connection of the run
//!   (TLS 1.3 tickets, TLS 1.2 session ids and tickets).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::{provider, TlsError};

/// Sessions kept for `--tls-resume`: one per server name is what a load
/// test needs; the headroom covers a handful of names and both TLS
/// versions without letting the cache grow with the connection count.
pub const RESUME_CACHE_SESSIONS: usize = 256;

/// The name used for SNI and verification when the endpoint is a UNIX
/// socket (there is no host name; the server is local by definition).
pub const UNIX_SERVER_NAME: &str = "localhost";

/// How smtp-source's TLS client behaves.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions<'a> {
    /// `--tls-ca FILE` with `--tls-verify`: verify against these PEM roots.
    /// `None`: no verification.
    pub verify_roots: Option<&'a Path>,
    /// `--tls-resume`: share a session cache across connections.
    pub resume: bool,
}

/// Build the connector shared by every connection of a run.
pub fn connector(opts: &ClientOptions<'_>) -> Result<TlsConnector, TlsError> {
    Ok(TlsConnector::from(Arc::new(config(opts)?)))
}

/// Build the client configuration (see the module documentation).
pub fn config(opts: &ClientOptions<'_>) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = match opts.verify_roots {
        Some(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth(),
    };
    cfg.resumption = if opts.resume {
        Resumption::in_memory_sessions(RESUME_CACHE_SESSIONS)
            .tls12_resumption(Tls12Resumption::SessionIdOrTickets)
    } else {
        Resumption::disabled()
    };
    cfg.enable_sni = true;
    Ok(cfg)
}

/// Read PEM trust anchors (`CERTIFICATE` blocks; other blocks are skipped).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let shown = path.display().to_string();
    let pem_err = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(err) => TlsError::Read {
            path: shown.clone(),
            err,
        },
        other => TlsError::Pem {
            path: shown.clone(),
            reason: other.to_string(),
        },
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(pem_err)? {
        let cert = cert.map_err(pem_err)?;
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: shown.clone(),
            reason: format!("bad CA certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate { path: shown });
    }
    Ok(roots)
}

/// The server name for SNI and verification: the endpoint's host (a DNS
/// name, or an IP address, which rustls never sends as SNI), or
/// [`UNIX_SERVER_NAME`] for `unix:` endpoints. `None` when the host is
/// neither a valid DNS name nor an address (only possible for names
/// getaddrinfo accepted but RFC 5890 does not, e.g. with `_`).
pub fn server_name(host: Option<&str>) -> Option<ServerName<'static>> {
    let host = host.unwrap_or(UNIX_SERVER_NAME);
    ServerName::try_from(host.to_string()).ok()
}

/// Accept any certificate, but verify handshake signatures with the
/// provider's algorithms (see the module documentation).
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::server;
    use crate::tls::MaybeTls;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One handshake over an in-memory pipe; returns the client's result,
    /// whether it resumed, and the SNI the server saw.
    async fn handshake(
        connector: &TlsConnector,
        acceptor: &tokio_rustls::TlsAcceptor,
        name: ServerName<'static>,
    ) -> (std::io::Result<bool>, Option<String>) {
        let (a, b) = tokio::io::duplex(16 * 1024);
        let server = async {
            let mut s = MaybeTls::Plain(a);
            match s.accept(acceptor).await {
                Ok(()) => {
                    let sni = match &s {
                        MaybeTls::Server(t) => t.get_ref().1.server_name().map(str::to_string),
                        _ => None,
                    };
                    // Echo one line so the client sees a working channel
                    // (and TLS 1.3 tickets get delivered).
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                        let _ = s.flush().await;
                    }
                    sni
                }
                Err(_) => None,
            }
        };
        let client = async {
            let mut s = MaybeTls::Plain(b);
            s.connect(connector, name).await?;
            s.write_all(b"PING\n").await?;
            s.flush().await?;
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"PING\n");
            Ok(s.tls_info().map(|i| i.resumed).unwrap_or(false))
        };
        let (sni, res) = tokio::join!(server, client);
        (res, sni)
    }

    fn write_pem(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn no_verification_by_default() {
        let identity = server::Identity::self_signed("mx.example").unwrap();
        let acceptor = server::acceptor(&identity).unwrap();
        let conn = connector(&ClientOptions::default()).unwrap();
        // Any name works, even one the certificate does not carry.
        for name in ["other.example", "other.example", "127.0.0.1"] {
            let name = server_name(Some(name)).unwrap();
            let (res, _) = handshake(&conn, &acceptor, name).await;
            assert!(!res.unwrap(), "no resumption without --tls-resume");
        }
    }

    #[tokio::test]
    async fn verification_with_ca_and_sni() {
        let identity = server::Identity::self_signed("mx.example").unwrap();
        let acceptor = server::acceptor(&identity).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = write_pem(dir.path(), "ca.pem", &identity.cert_pem());
        let opts = ClientOptions {
            verify_roots: Some(&ca),
            resume: false,
        };
        let conn = connector(&opts).unwrap();
        let (res, sni) =
            handshake(&conn, &acceptor, server_name(Some("mx.example")).unwrap()).await;
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(sni.as_deref(), Some("mx.example"));
        // Wrong name: refused.
        let (res, _) =
            handshake(&conn, &acceptor, server_name(Some("evil.example")).unwrap()).await;
        let err = res.unwrap_err().to_string();
        assert!(err.contains("certificate"), "{err}");
        // A CA that did not issue the server's certificate: refused.
        let other = server::Identity::self_signed("mx.example").unwrap();
        let other_ca = write_pem(dir.path(), "other.pem", &other.cert_pem());
        let conn = connector(&ClientOptions {
            verify_roots: Some(&other_ca),
            resume: false,
        })
        .unwrap();
        let (res, _) = handshake(&conn, &acceptor, server_name(Some("mx.example")).unwrap()).await;
        assert!(res.is_err());
    }

    #[tokio::test]
    async fn resumption_only_with_tls_resume() {
        let identity = server::Identity::self_signed("mx.example").unwrap();
        let acceptor = server::acceptor(&identity).unwrap();
        let name = || server_name(Some("mx.example")).unwrap();
        let conn = connector(&ClientOptions {
            verify_roots: None,
            resume: true,
        })
        .unwrap();
        let (first, _) = handshake(&conn, &acceptor, name()).await;
        assert!(!first.unwrap());
        let (second, _) = handshake(&conn, &acceptor, name()).await;
        assert!(second.unwrap(), "second handshake resumes");
    }

    #[test]
    fn roots_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = load_roots(&missing).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("open {}: No such file or directory", missing.display())
        );
        let empty = write_pem(dir.path(), "empty.pem", "no pem here\n");
        let err = load_roots(&empty).unwrap_err().to_string();
        assert_eq!(err, format!("{}: no certificate found", empty.display()));
        let garbage = write_pem(
            dir.path(),
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
        );
        assert!(load_roots(&garbage).is_err());
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name(Some("mx.example")),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name(Some("::1")),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name(None), Some(ServerName::DnsName(_))));
        assert!(server_name(Some("bad name")).is_none());
    }
}
