//! Endpoints as both tools take them: `unix:PATH`, `[inet:]host:port`,
//! `[host]:port`, `[IPv6:addr]:port`, service names, and `-4`/`-6`.
//!
//! Parsing follows Postfix's `host_port()` (docs/smtp-source.md §3,
//! docs/smtp-sink.md §4) including its error texts; the two tools differ
//! only in their defaults: smtp-source has a default *service* (`smtp`) and
//! no default host, smtp-sink a default (wildcard) *host* and no default
//! service, which is why a bare `localhost` is a port name to the sink.
//! Resolution is libc `getaddrinfo`, so service names, `/etc/hosts` and the
//! error texts (`gai_strerror`) are exactly the system's, as in Postfix.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use socket2::SockAddr;

use crate::diag::{sanitize, Error, Result};
use crate::proto::hostname;

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
        /// Bytes outside printable ASCII are already shown as `?` (as every
        /// Postfix diagnostic shows them), so the text is always valid UTF-8.
        text: String,
        /// Host name or address; `None` for the wildcard (sink only).
        /// Brackets and an `IPv6:` prefix are removed (`[IPv6:::1]` → `::1`).
        host: Option<String>,
        /// Port number or service name.
        port: String,
    },
    /// A UNIX-domain stream socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// The text Postfix uses for this endpoint in messages: the operand
    /// without `inet:` for TCP, the path for `unix:`.
    pub fn display_text(&self) -> Cow<'_, str> {
        match self {
            Endpoint::Inet { text, .. } => Cow::Borrowed(text),
            Endpoint::Unix(path) => Cow::Owned(sanitize(path.as_os_str().as_bytes())),
        }
    }
}

/// `sizeof(struct sockaddr_un.sun_path)` on Linux; Postfix rejects a path of
/// this length or more (it needs room for the terminating NUL).
pub const UNIX_PATH_MAX: usize = 108;

/// The socket address for `unix:PATH`, as Postfix builds it for both tools
/// (docs/smtp-source.md §3, docs/smtp-sink.md §4): a zero-filled
/// `sockaddr_un` holding PATH, passed with the size of the whole structure.
///
/// For a non-empty PATH the kernel reads the path up to its NUL, so the
/// shorter length socket2 passes names the same socket. An empty PATH
/// leaves `sun_path` all zeros, which Linux reads as an abstract name
/// (unix(7)): the 107 NUL bytes after the leading one. Connecting there is
/// refused when nothing listens (`connect: Connection refused`), and a
/// listener binds there; the bare family with no path that socket2 would
/// pass instead is `EINVAL` for connect and an autobind for bind.
pub fn unix_sockaddr(path: &Path) -> std::io::Result<SockAddr> {
    if path.as_os_str().is_empty() {
        return SockAddr::unix(OsStr::from_bytes(&[0; UNIX_PATH_MAX]));
    }
    SockAddr::unix(path)
}

/// The service smtp-source uses when the operand names none (RFC 5321
/// section 4.5.4.2: SMTP servers listen on port 25).
pub const DEFAULT_SERVICE: &str = "smtp";

/// The port smtp-source uses with implicit TLS (`--tls`) when the operand
/// names none: submissions, RFC 8314 §3.3 (numeric, as services databases
/// name it differently).
pub const SUBMISSIONS_PORT: &str = "465";

/// Port used for the `smtp` service when the services database lacks it,
/// so that a minimal system (no /etc/services) still works.
const SMTP_PORT_FALLBACK: &str = "25";

const UNIX_PREFIX: &[u8] = b"unix:";
const INET_PREFIX: &[u8] = b"inet:";

/// Which tool's `host_port()` defaults apply.
#[derive(Clone, Copy)]
enum Tool {
    /// No default host; this default service.
    Source(&'static str),
    /// Default host = wildcard; no default service.
    Sink,
}

/// A host or port as `host_port()` found it: taken from the operand, or the
/// caller's default. Postfix validates only values from the operand (it
/// compares pointers against the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Given(&'a [u8]),
    Default(&'a [u8]),
}

/// Parse an smtp-source operand (`[inet:]host[:port]`, `unix:PATH`); a
/// missing port means the `smtp` service (port 25).
pub fn parse_source(operand: &[u8]) -> Result<Endpoint> {
    parse(operand, Tool::Source(DEFAULT_SERVICE))
}

/// [`parse_source`] with another default service (for implicit TLS:
/// [`SUBMISSIONS_PORT`]).
pub fn parse_source_default(operand: &[u8], service: &'static str) -> Result<Endpoint> {
    parse(operand, Tool::Source(service))
}

/// Parse an smtp-sink operand (`[inet:][host]:port`, `unix:PATH`); there is
/// no default port.
pub fn parse_sink(operand: &[u8]) -> Result<Endpoint> {
    parse(operand, Tool::Sink)
}

fn parse(operand: &[u8], tool: Tool) -> Result<Endpoint> {
    if let Some(path) = operand.strip_prefix(UNIX_PREFIX) {
        if path.len() >= UNIX_PATH_MAX {
            return Err(Error::fatal(format!(
                "unix-domain name too long: {}",
                sanitize(path)
            )));
        }
        return Ok(Endpoint::Unix(PathBuf::from(OsStr::from_bytes(path))));
    }
    let rest = operand.strip_prefix(INET_PREFIX).unwrap_or(operand);
    let text = sanitize(rest);
    let (def_host, def_service): (Option<&[u8]>, Option<&[u8]>) = match tool {
        Tool::Source(service) => (None, Some(service.as_bytes())),
        Tool::Sink => (Some(b""), None),
    };
    let (host, port) = host_port(rest, def_host, def_service)
        .map_err(|reason| Error::fatal(format!("{text}: {reason}")))?;
    let host = match host {
        Part::Given(h) => Some(String::from_utf8_lossy(h).into_owned()),
        // Only the sink has a default host: the empty wildcard.
        Part::Default(_) => None,
    };
    let port = match port {
        Part::Given(p) | Part::Default(p) => String::from_utf8_lossy(p).into_owned(),
    };
    Ok(Endpoint::Inet { text, host, port })
}

/// Postfix `host_port()`: split into host and port and sanity-check them.
/// Forms: `[host]:port`, `[host]:`, `[host]`, `[IPv6:addr]…`, `host:port`
/// (split at the last `:`), `host:`, `:port`, and a bare word that is the
/// host when there is no default host, else the port.
fn host_port<'a>(
    buf: &'a [u8],
    def_host: Option<&'a [u8]>,
    def_service: Option<&'a [u8]>,
) -> std::result::Result<(Part<'a>, Part<'a>), &'static str> {
    let non_empty = |s: &'a [u8]| (!s.is_empty()).then_some(Part::Given(s));
    let (host, port) = if let Some(inner) = buf.strip_prefix(b"[") {
        let (ipv6, inner) = match hostname::strip_ipv6_col(inner) {
            Some(bare) => (true, bare),
            None => (false, inner),
        };
        // The host ends at the *first* `]`.
        let close = memchr::memchr(b']', inner).ok_or("missing \"]\"")?;
        let host = &inner[..close];
        let mut after = &inner[close + 1..];
        if let Some((&first, tail)) = after.split_first() {
            if first != b':' {
                return Err("garbage after \"]\"");
            }
            after = tail;
        }
        if ipv6 && hostname::valid_ipv6_hostaddr(host).is_err() {
            return Err("malformed IPv6 address");
        }
        (
            Some(Part::Given(host)),
            non_empty(after).or(def_service.map(Part::Default)),
        )
    } else if let Some(colon) = memchr::memrchr(b':', buf) {
        (
            non_empty(&buf[..colon]).or(def_host.map(Part::Default)),
            non_empty(&buf[colon + 1..]).or(def_service.map(Part::Default)),
        )
    } else {
        (
            def_host.map(Part::Default).or(non_empty(buf)),
            def_service.map(Part::Default).or(non_empty(buf)),
        )
    };
    let host = host.ok_or("missing host information")?;
    let port = port.ok_or("missing service information")?;
    // Postfix is "still sloppy, allowing bare numerical network addresses
    // instead of requiring proper [ipaddress] forms".
    if let Part::Given(h) = host {
        if hostname::valid_hostname(h).is_err() && hostname::valid_hostaddr(h).is_err() {
            return Err("valid hostname or network address required");
        }
    }
    if let Part::Given(p) = port {
        if p[0].is_ascii_digit() && !all_digits(p) {
            return Err("garbage after numerical service");
        }
    }
    Ok((host, port))
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Resolve an `Endpoint::Inet` to its first address with `getaddrinfo`
/// semantics; `passive` for a listener (wildcard host allowed). Errors are
/// `TEXT: <gai_strerror>` as Postfix prints them.
///
/// This blocks (name service lookups); call it at start-up only.
pub fn resolve(endpoint: &Endpoint, family: Family, passive: bool) -> Result<SocketAddr> {
    let (text, host, port) = match endpoint {
        Endpoint::Inet { text, host, port } => (text, host, port),
        Endpoint::Unix(_) => {
            return Err(Error::fatal(format!(
                "{}: not an internet endpoint",
                endpoint.display_text()
            )))
        }
    };
    let mut result = getaddrinfo_first(host.as_deref(), port, family, passive);
    if port == DEFAULT_SERVICE && matches!(result, Err(GaiError::Code(libc::EAI_SERVICE))) {
        result = getaddrinfo_first(host.as_deref(), SMTP_PORT_FALLBACK, family, passive);
    }
    result.map_err(|err| Error::fatal(format!("{text}: {err}")))
}

/// Why `getaddrinfo` produced no usable address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GaiError {
    /// A `getaddrinfo` error code (`EAI_*`).
    Code(i32),
    /// `EAI_SYSTEM`, with the errno value.
    System(i32),
    /// A host or service with a NUL byte (cannot come from argv).
    Nul,
    /// Only non-IP results (cannot happen with SOCK_STREAM hints).
    NoUsable,
}

impl std::fmt::Display for GaiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            // SAFETY: gai_strerror returns a pointer to a static,
            // NUL-terminated message for every code.
            GaiError::Code(code) => {
                let msg = unsafe { CStr::from_ptr(libc::gai_strerror(code)) };
                f.write_str(&msg.to_string_lossy())
            }
            GaiError::System(errno) => f.write_str(&crate::diag::strerror(errno)),
            GaiError::Nul => f.write_str(&crate::diag::strerror(libc::EINVAL)),
            GaiError::NoUsable => f.write_str("host found but no usable address"),
        }
    }
}

/// Owns a `getaddrinfo` result list and frees it on drop.
struct AddrInfoList(*mut libc::addrinfo);

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful getaddrinfo call
            // and is freed exactly once.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

fn getaddrinfo_first(
    host: Option<&str>,
    port: &str,
    family: Family,
    passive: bool,
) -> std::result::Result<SocketAddr, GaiError> {
    let c_host = match host {
        Some(h) => Some(CString::new(h).map_err(|_| GaiError::Nul)?),
        None => None,
    };
    let c_port = CString::new(port).map_err(|_| GaiError::Nul)?;
    // SAFETY: addrinfo is a plain C struct; all-zero is its documented
    // "no hints" state, which we then fill in.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        Family::Any => libc::AF_UNSPEC,
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    hints.ai_socktype = libc::SOCK_STREAM;
    if host.is_none() && passive {
        hints.ai_flags |= libc::AI_PASSIVE;
    }
    if all_digits(port.as_bytes()) {
        hints.ai_flags |= libc::AI_NUMERICSERV;
    }
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `res` receives a list
    // that AddrInfoList frees.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
            c_port.as_ptr(),
            &hints,
            &mut res,
        )
    };
    if rc != 0 {
        if rc == libc::EAI_SYSTEM {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(GaiError::System(errno));
        }
        return Err(GaiError::Code(rc));
    }
    let list = AddrInfoList(res);
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getaddrinfo returned, which stays
        // alive until `list` is dropped at the end of this function.
        let ai = unsafe { &*cur };
        if let Some(addr) = unsafe { sockaddr_to_std(ai.ai_addr, ai.ai_addrlen) } {
            return Ok(addr);
        }
        cur = ai.ai_next;
    }
    Err(GaiError::NoUsable)
}

/// Convert an IPv4/IPv6 `sockaddr` to a `SocketAddr`; `None` for others.
///
/// # Safety
/// `sa` must be null or point to a valid socket address of `len` bytes.
unsafe fn sockaddr_to_std(sa: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    let len = len as usize;
    match i32::from((*sa).sa_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(text: &str, host: Option<&str>, port: &str) -> Endpoint {
        Endpoint::Inet {
            text: text.to_string(),
            host: host.map(str::to_string),
            port: port.to_string(),
        }
    }

    fn fatal_text(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Fatal(t)) => t,
            other => panic!("expected a fatal error, got {other:?}"),
        }
    }

    /// Parse errors: every row was run through Postfix 3.7.11
    /// (`/usr/sbin/smtp-source -4 OPERAND` and
    /// `/usr/sbin/smtp-sink -u nobody OPERAND 10`); the text is what follows
    /// `fatal: `. A `-` column means that tool accepts the operand.
    #[test]
    fn parse_errors_verified_against_postfix() {
        let long108 = format!("unix:{}", "x".repeat(108));
        let cases: Vec<(&str, Option<&str>, Option<&str>)> = vec![
            // operand, smtp-source error, smtp-sink error
            (
                "inet:",
                Some(": missing host information"),
                Some(": missing service information"),
            ),
            (
                "",
                Some(": missing host information"),
                Some(": missing service information"),
            ),
            (
                ":",
                Some(":: missing host information"),
                Some(":: missing service information"),
            ),
            (":25", Some(":25: missing host information"), None),
            (
                "[::1",
                Some("[::1: missing \"]\""),
                Some("[::1: missing \"]\""),
            ),
            (
                "inet:[::1",
                Some("[::1: missing \"]\""),
                Some("[::1: missing \"]\""),
            ),
            (
                "[::1]x",
                Some("[::1]x: garbage after \"]\""),
                Some("[::1]x: garbage after \"]\""),
            ),
            (
                "[IPv6:::1]x",
                Some("[IPv6:::1]x: garbage after \"]\""),
                Some("[IPv6:::1]x: garbage after \"]\""),
            ),
            (
                "[foo]]:25",
                Some("[foo]]:25: garbage after \"]\""),
                Some("[foo]]:25: garbage after \"]\""),
            ),
            (
                "[ipv6:zz]:25",
                Some("[ipv6:zz]:25: malformed IPv6 address"),
                Some("[ipv6:zz]:25: malformed IPv6 address"),
            ),
            (
                "[ipv6:1.2.3.4]:25",
                Some("[ipv6:1.2.3.4]:25: malformed IPv6 address"),
                Some("[ipv6:1.2.3.4]:25: malformed IPv6 address"),
            ),
            (
                "foo_bar!:25",
                Some("foo_bar!:25: valid hostname or network address required"),
                Some("foo_bar!:25: valid hostname or network address required"),
            ),
            (
                "[]:25",
                Some("[]:25: valid hostname or network address required"),
                Some("[]:25: valid hostname or network address required"),
            ),
            (
                "[]",
                Some("[]: valid hostname or network address required"),
                Some("[]: missing service information"),
            ),
            (
                "::1",
                Some("::1: valid hostname or network address required"),
                Some("::1: valid hostname or network address required"),
            ),
            (
                "a..b:25",
                Some("a..b:25: valid hostname or network address required"),
                Some("a..b:25: valid hostname or network address required"),
            ),
            (
                "1234:25",
                Some("1234:25: valid hostname or network address required"),
                Some("1234:25: valid hostname or network address required"),
            ),
            (
                "[1234]:25",
                Some("[1234]:25: valid hostname or network address required"),
                Some("[1234]:25: valid hostname or network address required"),
            ),
            (
                "a:b:c",
                Some("a:b:c: valid hostname or network address required"),
                Some("a:b:c: valid hostname or network address required"),
            ),
            (
                "127.0.0.1:25x",
                Some("127.0.0.1:25x: garbage after numerical service"),
                Some("127.0.0.1:25x: garbage after numerical service"),
            ),
            (
                "127.0.0.1:0x",
                Some("127.0.0.1:0x: garbage after numerical service"),
                Some("127.0.0.1:0x: garbage after numerical service"),
            ),
            ("33x", None, Some("33x: garbage after numerical service")),
            ("[::1]", None, Some("[::1]: missing service information")),
            (
                "inet:[::1]",
                None,
                Some("[::1]: missing service information"),
            ),
            ("[::1]:", None, Some("[::1]:: missing service information")),
            ("foo:", None, Some("foo:: missing service information")),
            (&long108, Some(&long108[..]), Some(&long108[..])),
        ];
        for (operand, source_err, sink_err) in &cases {
            let fix = |e: &str| match e.strip_prefix("unix:") {
                Some(path) => format!("unix-domain name too long: {path}"),
                None => e.to_string(),
            };
            let got = parse_source(operand.as_bytes());
            match source_err {
                Some(e) => assert_eq!(fatal_text(got), fix(e), "source {operand:?}"),
                None => assert!(got.is_ok(), "source {operand:?}: {got:?}"),
            }
            let got = parse_sink(operand.as_bytes());
            match sink_err {
                Some(e) => assert_eq!(fatal_text(got), fix(e), "sink {operand:?}"),
                None => assert!(got.is_ok(), "sink {operand:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn parse_source_default_service() {
        let port = |ep: Endpoint| match ep {
            Endpoint::Inet { port, .. } => port,
            Endpoint::Unix(_) => String::new(),
        };
        let tls = |op: &[u8]| port(parse_source_default(op, SUBMISSIONS_PORT).unwrap());
        assert_eq!(tls(b"mx.example"), "465");
        assert_eq!(tls(b"[::1]"), "465");
        assert_eq!(tls(b"mx.example:25"), "25");
        assert_eq!(tls(b"mx.example:smtp"), "smtp");
        assert_eq!(port(parse_source(b"mx.example").unwrap()), "smtp");
    }

    #[test]
    fn parse_source_accepts() {
        let long107 = "x".repeat(107);
        let unix107 = format!("unix:{long107}");
        let cases: Vec<(&[u8], Endpoint)> = vec![
            (
                b"127.0.0.1:25",
                inet("127.0.0.1:25", Some("127.0.0.1"), "25"),
            ),
            (
                b"inet:127.0.0.1:25",
                inet("127.0.0.1:25", Some("127.0.0.1"), "25"),
            ),
            (b"localhost", inet("localhost", Some("localhost"), "smtp")),
            (b"localhost:", inet("localhost:", Some("localhost"), "smtp")),
            (
                b"mail.example:submission",
                inet(
                    "mail.example:submission",
                    Some("mail.example"),
                    "submission",
                ),
            ),
            (b"[::1]:2525", inet("[::1]:2525", Some("::1"), "2525")),
            (b"[::1]:", inet("[::1]:", Some("::1"), "smtp")),
            (b"[::1]", inet("[::1]", Some("::1"), "smtp")),
            (b"[IPv6:::1]:25", inet("[IPv6:::1]:25", Some("::1"), "25")),
            (b"[ipv6:::1]:25", inet("[ipv6:::1]:25", Some("::1"), "25")),
            (
                b"[host.example]:26",
                inet("[host.example]:26", Some("host.example"), "26"),
            ),
            (
                b"[127.0.0.1]",
                inet("[127.0.0.1]", Some("127.0.0.1"), "smtp"),
            ),
            // Bare numeric addresses are accepted ("still sloppy").
            (b"10.1.2.3:25", inet("10.1.2.3:25", Some("10.1.2.3"), "25")),
            (b"1.2.3.4:a1", inet("1.2.3.4:a1", Some("1.2.3.4"), "a1")),
            (
                b"127.0.0.1:-1",
                inet("127.0.0.1:-1", Some("127.0.0.1"), "-1"),
            ),
            (b"a_b:25", inet("a_b:25", Some("a_b"), "25")),
            (b"unix:", Endpoint::Unix(PathBuf::new())),
            (b"unix:/tmp/s", Endpoint::Unix(PathBuf::from("/tmp/s"))),
            (unix107.as_bytes(), Endpoint::Unix(PathBuf::from(&long107))),
        ];
        for (operand, want) in cases {
            assert_eq!(
                parse_source(operand).unwrap(),
                want,
                "{:?}",
                String::from_utf8_lossy(operand)
            );
        }
    }

    #[test]
    fn parse_sink_accepts() {
        let cases: Vec<(&[u8], Endpoint)> = vec![
            (b":25", inet(":25", None, "25")),
            (b"25", inet("25", None, "25")),
            (b"0", inet("0", None, "0")),
            (b"127.0.0.1:0", inet("127.0.0.1:0", Some("127.0.0.1"), "0")),
            (
                b"inet:127.0.0.1:0",
                inet("127.0.0.1:0", Some("127.0.0.1"), "0"),
            ),
            (b"localhost", inet("localhost", None, "localhost")),
            (b"smtp", inet("smtp", None, "smtp")),
            (b"[::1]:0", inet("[::1]:0", Some("::1"), "0")),
            (
                b"[IPv6:::1]:33016",
                inet("[IPv6:::1]:33016", Some("::1"), "33016"),
            ),
            (
                b"localhost:2525",
                inet("localhost:2525", Some("localhost"), "2525"),
            ),
            (
                b"unix:/tmp/sink.sock",
                Endpoint::Unix(PathBuf::from("/tmp/sink.sock")),
            ),
        ];
        for (operand, want) in cases {
            assert_eq!(
                parse_sink(operand).unwrap(),
                want,
                "{:?}",
                String::from_utf8_lossy(operand)
            );
        }
    }

    #[test]
    fn text_shows_unprintable_bytes_as_question_marks() {
        assert_eq!(
            fatal_text(parse_source(b"inet:h\xe9llo:25")),
            "h?llo:25: valid hostname or network address required"
        );
        assert_eq!(parse_sink(b":\tx").unwrap(), inet(":?x", None, "\tx"),);
        assert_eq!(parse_source(b"unix:a\xffb").unwrap().display_text(), "a?b");
    }

    #[test]
    fn display_text() {
        assert_eq!(
            parse_source(b"inet:[::1]:25").unwrap().display_text(),
            "[::1]:25"
        );
        assert_eq!(parse_sink(b"unix:/tmp/x").unwrap().display_text(), "/tmp/x");
    }

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn resolve_numeric_and_wildcard() {
        let cases: Vec<(&[u8], bool, Family, bool, &str)> = vec![
            // (operand, sink?, family, passive, expected address)
            (b"127.0.0.1:0", true, Family::Any, true, "127.0.0.1:0"),
            (b"127.0.0.1:0", true, Family::V4, true, "127.0.0.1:0"),
            (b"[::1]:0", true, Family::Any, true, "[::1]:0"),
            (b"[::1]:0", true, Family::V6, true, "[::1]:0"),
            (b"[IPv6:::1]:2525", false, Family::Any, false, "[::1]:2525"),
            // Linux getaddrinfo lists 0.0.0.0 first for a wildcard.
            (b":0", true, Family::Any, true, "0.0.0.0:0"),
            (b"33013", true, Family::Any, true, "0.0.0.0:33013"),
            (b"33014", true, Family::V6, true, "[::]:33014"),
            (b":0", true, Family::V4, true, "0.0.0.0:0"),
            (b"127.0.0.1", false, Family::Any, false, "127.0.0.1:25"),
            (b"127.0.0.1:smtp", false, Family::V4, false, "127.0.0.1:25"),
            (b"[127.0.0.1]", false, Family::Any, false, "127.0.0.1:25"),
            // The glibc service parser keeps the low 16 bits (as Postfix
            // showed: `trying... [127.0.0.1]:34463`).
            (
                b"127.0.0.1:99999",
                true,
                Family::V4,
                true,
                "127.0.0.1:34463",
            ),
            (
                b"localhost:2525",
                false,
                Family::V4,
                false,
                "127.0.0.1:2525",
            ),
        ];
        for (operand, sink, family, passive, want) in cases {
            let ep = if sink {
                parse_sink(operand)
            } else {
                parse_source(operand)
            }
            .unwrap();
            let got = resolve(&ep, family, passive)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(operand)));
            assert_eq!(
                got,
                v4(want),
                "{:?} {family:?}",
                String::from_utf8_lossy(operand)
            );
        }
    }

    /// Error texts verified against Postfix 3.7.11: `smtp-source -4
    /// '[::1]:33999'`, `smtp-source 127.0.0.1:nosuchservice`, `smtp-sink -u
    /// nobody localhost 10`, `smtp-sink -u nobody -4 inet:[::1]:33012 10`.
    #[test]
    fn resolve_errors_verified_against_postfix() {
        let cases: Vec<(&[u8], bool, Family, &str)> = vec![
            (
                b"[::1]:33999",
                false,
                Family::V4,
                "[::1]:33999: Address family for hostname not supported",
            ),
            (
                b"inet:[::1]:33012",
                true,
                Family::V4,
                "[::1]:33012: Address family for hostname not supported",
            ),
            (
                b"127.0.0.1:33012",
                true,
                Family::V6,
                "127.0.0.1:33012: Address family for hostname not supported",
            ),
            (
                b"127.0.0.1:33012",
                false,
                Family::V6,
                "127.0.0.1:33012: Address family for hostname not supported",
            ),
            (
                b"127.0.0.1:nosuchservice",
                false,
                Family::Any,
                "127.0.0.1:nosuchservice: Servname not supported for ai_socktype",
            ),
            (
                b"[127.0.0.1]:a1",
                false,
                Family::Any,
                "[127.0.0.1]:a1: Servname not supported for ai_socktype",
            ),
            (
                b"127.0.0.1:-1",
                false,
                Family::V4,
                "127.0.0.1:-1: Servname not supported for ai_socktype",
            ),
            (
                b"localhost",
                true,
                Family::Any,
                "localhost: Servname not supported for ai_socktype",
            ),
            (
                b"inet:localhost",
                true,
                Family::Any,
                "localhost: Servname not supported for ai_socktype",
            ),
        ];
        for (operand, sink, family, want) in cases {
            let ep = if sink {
                parse_sink(operand)
            } else {
                parse_source(operand)
            }
            .unwrap();
            assert_eq!(fatal_text(resolve(&ep, family, sink)), want);
        }
    }

    /// The lookup of a name that does not exist depends on the resolver
    /// set-up (a machine without DNS may report a temporary failure), so
    /// check the format and that the reason is a genuine gai_strerror text.
    #[test]
    fn resolve_unknown_host_reports_gai_text() {
        let ep = parse_source(b"nonexistent.invalid:25").unwrap();
        let text = fatal_text(resolve(&ep, Family::Any, false));
        let reason = text.strip_prefix("nonexistent.invalid:25: ").expect(&text);
        let known: Vec<String> = [
            libc::EAI_NONAME,
            libc::EAI_AGAIN,
            libc::EAI_NODATA,
            libc::EAI_FAIL,
        ]
        .iter()
        .map(|&c| GaiError::Code(c).to_string())
        .collect();
        assert!(known.iter().any(|k| k == reason), "{text}");
    }

    #[test]
    fn resolve_unix_endpoint_is_an_error() {
        let ep = parse_sink(b"unix:/tmp/x").unwrap();
        assert_eq!(
            fatal_text(resolve(&ep, Family::Any, true)),
            "/tmp/x: not an internet endpoint"
        );
    }
}
