//! Server-side TLS configuration for smtp-sink: a certificate chain and
//! key from PEM files (`--tls-cert`/`--tls-key`), or a self-signed
//! certificate generated at start-up (`--tls-self-signed`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::{provider, TlsError};

/// How many TLS 1.3 session tickets the server sends after a full
/// handshake. One is enough for an SMTP client that reconnects (resumption
/// for the handshake-per-message benchmark); rustls' default is 2.
const TLS13_TICKETS: usize = 1;

/// A certificate chain (leaf first) and its private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Load a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1). The key may be in the certificate file (then pass the
    /// same path twice).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Identity::from_pem(
            &cert_pem,
            &key_pem,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    /// Parse PEM text; `cert_name`/`key_name` only label error messages.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_name: &str,
        key_name: &str,
    ) -> Result<Identity, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: cert_name.to_string(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert_name.to_string(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                path: key_name.to_string(),
            },
            other => TlsError::Pem {
                path: key_name.to_string(),
                reason: other.to_string(),
            },
        })?;
        Ok(Identity { chain, key })
    }

    /// Generate a self-signed certificate (ECDSA P-256: the cheapest
    /// handshake) for `host`: a DNS or IP subjectAltName when `host` is a
    /// valid one, and `host` as the common name in any case, so that an
    /// odd `-h` value still yields a working certificate.
    pub fn self_signed(host: &str) -> Result<Identity, TlsError> {
        let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
            .or_else(|_| rcgen::CertificateParams::new(Vec::<String>::new()))
            .map_err(gen)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let key = rcgen::KeyPair::generate().map_err(gen)?;
        let cert = params.self_signed(&key).map_err(gen)?;
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate as PEM (for tests and for clients that want to
    /// pin it).
    pub fn cert_pem(&self) -> String {
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.chain[0]);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        path: path.display().to_string(),
        err,
    })
}

/// A rustls server configuration for `identity`: TLS 1.2 and 1.3, no
/// client certificates, stateless session tickets (no lock shared between
/// sessions) so clients can resume.
pub fn config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cfg_err = |e: rustls::Error| TlsError::Config(e.to_string());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg_err)?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(cfg_err)?;
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(cfg_err)?;
    cfg.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(cfg))
}

/// A ready acceptor for `identity` (see [`config`]).
pub fn acceptor(identity: &Identity) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(config(identity)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_for_odd_host_names() {
        for host in [
            "smtp-sink",
            "mx.example.com",
            "127.0.0.1",
            "********",
            "a b",
        ] {
            let id = Identity::self_signed(host).unwrap();
            assert_eq!(id.cert_chain().len(), 1);
            config(&id).unwrap();
        }
    }

    #[test]
    fn pem_round_trip_and_errors() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        let id = Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), "c", "k").unwrap();
        config(&id).unwrap();
        assert_eq!(id.cert_pem(), cert_pem.replace("\r\n", "\n"));

        // Key and certificate in one file.
        let both = format!("{cert_pem}{key_pem}");
        Identity::from_pem(both.as_bytes(), both.as_bytes(), "b", "b").unwrap();

        let e =
            Identity::from_pem(key_pem.as_bytes(), key_pem.as_bytes(), "c.pem", "k").unwrap_err();
        assert_eq!(e.to_string(), "c.pem: no certificate found");
        let e =
            Identity::from_pem(cert_pem.as_bytes(), cert_pem.as_bytes(), "c", "k.pem").unwrap_err();
        assert_eq!(e.to_string(), "k.pem: no private key found");

        // A key that does not belong to the certificate.
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let id = Identity::from_pem(cert_pem.as_bytes(), other.as_bytes(), "c", "k").unwrap();
        let e = config(&id).unwrap_err();
        assert!(e.to_string().starts_with("TLS configuration: "), "{e}");
    }

    #[test]
    fn missing_file_is_reported_like_postfix() {
        let e =
            Identity::from_pem_files(Path::new("/nonexistent/c.pem"), Path::new("/k")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "open /nonexistent/c.pem: No such file or directory"
        );
    }
}
