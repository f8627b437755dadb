//! Endpoints as both tools take them: `unix:PATH`, `[inet:]host:port`,
//! `[host]:port`, `[IPv6:addr]:port`, service names, and `-4`/`-6`.
//!
//! OWNER: foundation helper. The signatures below are the contract used by
//! `source` and `sink`; bodies are being written.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::diag::Result;

/// Address-family restriction from `-4` / `-6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Both families (no option).
    #[default]
    Any,
    /// `-4`: IPv4 only.
    V4,
    /// `-6`: IPv6 only.
    V6,
}

/// A parsed (not yet resolved) endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP endpoint.
    Inet {
        /// The operand with any `inet:` prefix removed; used in messages.
        text: String,
        /// Host name or address; `None` for the wildcard (sink only).
        host: Option<String>,
        /// Port number or service name.
        port: String,
    },
    /// A UNIX-domain stream socket.
    Unix(PathBuf),
}

/// Parse an smtp-source operand (`[inet:]host[:port]`, `unix:PATH`); a
/// missing port means the `smtp` service (port 25).
pub fn parse_source(operand: &[u8]) -> Result<Endpoint> {
    let _ = operand;
    todo!("endpoint::parse_source")
}

/// Parse an smtp-sink operand (`[inet:][host]:port`, `unix:PATH`); there is
/// no default port.
pub fn parse_sink(operand: &[u8]) -> Result<Endpoint> {
    let _ = operand;
    todo!("endpoint::parse_sink")
}

/// Resolve an `Endpoint::Inet` to its first address with `getaddrinfo`
/// semantics; `passive` for a listener (wildcard host allowed). Errors are
/// `TEXT: <gai_strerror>` as Postfix prints them.
pub fn resolve(endpoint: &Endpoint, family: Family, passive: bool) -> Result<SocketAddr> {
    let _ = (endpoint, family, passive);
    todo!("endpoint::resolve")
}
