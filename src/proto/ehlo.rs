//! EHLO/LHLO reply → the server's capability set (client side), sans-IO.
//!
//! RFC 5321 §4.1.1.1: the first line of a 250 EHLO reply is the greeting
//! (`domain [text]`); every further line is `ehlo-keyword *(SP ehlo-param)`.
//! Keywords are case-insensitive. An LMTP server answers LHLO the same way
//! (RFC 2033 §4.1).
//!
//! Input is the joined reply text that [`crate::proto::reply::ReplyParser`]
//! produces (code and separator removed from every line, lines joined with
//! `\n`), so multi-line parsing, CR stripping and censoring already happened
//! there. Unknown keywords are ignored; malformed parameters of a known
//! keyword are read as leniently as the RFCs allow (a server that advertises
//! something odd is the server's problem, never a panic here).

/// SASL mechanisms this client can use (RFC 4954 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthMechs {
    /// `PLAIN` (RFC 4616).
    pub plain: bool,
    /// `LOGIN` (draft-murchison-sasl-login; what most MTAs still offer).
    pub login: bool,
}

/// What an EHLO reply advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `AUTH mech...` (RFC 4954), also the pre-standard `AUTH=mech...` form
    /// that Postfix adds for broken clients.
    pub auth: Option<AuthMechs>,
    /// `CHUNKING` (RFC 3030).
    pub chunking: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `8BITMIME` (RFC 6152).
    pub eightbitmime: bool,
    /// `SIZE [n]` (RFC 1870): `Some(None)` when advertised without a limit
    /// (no parameter, or `0`, which RFC 1870 §4 defines as "no fixed maximum").
    pub size: Option<Option<u64>>,
}

/// An extension a command-line option needs, for "not advertised" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// PIPELINING.
    Pipelining,
    /// STARTTLS.
    Starttls,
    /// AUTH with a given mechanism.
    Auth(Mechanism),
    /// CHUNKING.
    Chunking,
    /// SMTPUTF8.
    Smtputf8,
    /// 8BITMIME.
    EightBitMime,
    /// SIZE.
    Size,
}

/// The SASL mechanisms (shared with the server side's exchange).
pub use super::auth::Mechanism;

impl Extension {
    /// How the extension appears in diagnostics (`AUTH LOGIN`, `CHUNKING`).
    pub fn describe(self) -> String {
        match self {
            Extension::Pipelining => "PIPELINING".into(),
            Extension::Starttls => "STARTTLS".into(),
            Extension::Auth(m) => format!("AUTH {}", m.name()),
            Extension::Chunking => "CHUNKING".into(),
            Extension::Smtputf8 => "SMTPUTF8".into(),
            Extension::EightBitMime => "8BITMIME".into(),
            Extension::Size => "SIZE".into(),
        }
    }
}

/// ASCII whitespace that separates parameters (the RFC says SP; servers
/// sometimes use TAB).
fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Capabilities {
    /// Parse the joined text of a 2xx EHLO/LHLO reply. The first line (the
    /// greeting) carries no capability and is skipped.
    pub fn from_reply_text(text: &[u8]) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in text.split(|&b| b == b'\n').skip(1) {
            caps.add_line(line);
        }
        caps
    }

    /// Add one capability line (`KEYWORD [params]`, code already removed).
    pub fn add_line(&mut self, line: &[u8]) {
        let line = trim(line);
        let end = line
            .iter()
            .position(|&b| is_sep(b) || b == b'=')
            .unwrap_or(line.len());
        let (keyword, rest) = line.split_at(end);
        // `AUTH=LOGIN PLAIN`: the old form glues the first mechanism on.
        let params = rest.strip_prefix(b"=").unwrap_or(rest);
        let is = |name: &[u8]| keyword.eq_ignore_ascii_case(name);
        if is(b"PIPELINING") {
            self.pipelining = true;
        } else if is(b"STARTTLS") {
            self.starttls = true;
        } else if is(b"AUTH") {
            let mechs = self.auth.get_or_insert_with(AuthMechs::default);
            for word in params.split(|&b| is_sep(b)).filter(|w| !w.is_empty()) {
                match Mechanism::parse(word) {
                    Some(Mechanism::Plain) => mechs.plain = true,
                    Some(Mechanism::Login) => mechs.login = true,
                    None => {}
                }
            }
        } else if is(b"CHUNKING") {
            self.chunking = true;
        } else if is(b"SMTPUTF8") {
            self.smtputf8 = true;
        } else if is(b"8BITMIME") {
            self.eightbitmime = true;
        } else if is(b"SIZE") {
            let limit = params
                .split(|&b| is_sep(b))
                .find(|w| !w.is_empty())
                .and_then(parse_u64)
                .filter(|&n| n > 0);
            self.size = Some(limit);
        }
    }

    /// Whether the server advertised `ext`.
    pub fn has(&self, ext: Extension) -> bool {
        match ext {
            Extension::Pipelining => self.pipelining,
            Extension::Starttls => self.starttls,
            Extension::Auth(Mechanism::Plain) => self.auth.is_some_and(|a| a.plain),
            Extension::Auth(Mechanism::Login) => self.auth.is_some_and(|a| a.login),
            Extension::Chunking => self.chunking,
            Extension::Smtputf8 => self.smtputf8,
            Extension::EightBitMime => self.eightbitmime,
            Extension::Size => self.size.is_some(),
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !last.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}

/// All-digit decimal, no overflow (a SIZE beyond u64 is treated as absent).
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::{Event, ReplyParser};

    /// Run wire bytes through the reply parser in `step`-byte pieces (0 =
    /// whole) and parse the capabilities of the first complete reply.
    fn caps_of(wire: &[u8], step: usize) -> (u32, Capabilities) {
        let mut p = ReplyParser::new();
        let step = if step == 0 { wire.len().max(1) } else { step };
        let mut pending = Vec::new();
        for chunk in wire.chunks(step) {
            pending.extend_from_slice(chunk);
            loop {
                let (n, ev) = p.feed(&pending);
                pending.drain(..n);
                match ev {
                    None => break,
                    Some(Event::Line { last: true, .. }) => {
                        return (p.code(), Capabilities::from_reply_text(p.text()));
                    }
                    Some(_) => {}
                }
            }
        }
        panic!("no complete reply in {wire:?}");
    }

    #[test]
    fn table() {
        let all_plain_login = Some(AuthMechs {
            plain: true,
            login: true,
        });
        let cases: Vec<(&[u8], Capabilities)> = vec![
            (b"250 mx.example\r\n", Capabilities::default()),
            (
                b"250-mx.example ESMTP\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
                Capabilities {
                    pipelining: true,
                    starttls: true,
                    auth: all_plain_login,
                    chunking: true,
                    smtputf8: true,
                    eightbitmime: true,
                    size: Some(Some(10_240_000)),
                },
            ),
            // Case-insensitive keywords and mechanisms, bare-LF lines, TABs.
            (
                b"250-hi\n250-pipelining\n250-size\n250-auth\tlogin cram-md5\n250 8bitmime\n",
                Capabilities {
                    pipelining: true,
                    eightbitmime: true,
                    size: Some(None),
                    auth: Some(AuthMechs {
                        plain: false,
                        login: true,
                    }),
                    ..Capabilities::default()
                },
            ),
            // The pre-standard AUTH= form, SIZE 0 = no limit, junk keywords.
            (
                b"250-x\r\n250-AUTH=PLAIN\r\n250-SIZE 0\r\n250-XFORWARD NAME ADDR\r\n\
250-STARTTLSX\r\n250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n",
                Capabilities {
                    size: Some(None),
                    auth: Some(AuthMechs {
                        plain: true,
                        login: false,
                    }),
                    ..Capabilities::default()
                },
            ),
            // A keyword on the greeting line is not a capability.
            (
                b"250-PIPELINING\r\n250 STARTTLS\r\n",
                Capabilities {
                    starttls: true,
                    ..Capabilities::default()
                },
            ),
            // AUTH with no usable mechanism is still AUTH; bad SIZE values.
            (
                b"250-x\r\n250-AUTH GSSAPI\r\n250 SIZE 12x\r\n",
                Capabilities {
                    auth: Some(AuthMechs::default()),
                    size: Some(None),
                    ..Capabilities::default()
                },
            ),
            (
                b"250-x\r\n250 SIZE 99999999999999999999999\r\n",
                Capabilities {
                    size: Some(None),
                    ..Capabilities::default()
                },
            ),
            // Trailing spaces and CRs are not part of the keyword.
            (
                b"250-x\r\n250-CHUNKING  \r\r\n250    SMTPUTF8\r\n",
                Capabilities {
                    chunking: true,
                    smtputf8: true,
                    ..Capabilities::default()
                },
            ),
        ];
        for (wire, want) in &cases {
            for step in [0, 1, 2, 5, 13] {
                let (code, got) = caps_of(wire, step);
                assert_eq!(code, 250);
                assert_eq!(
                    got,
                    *want,
                    "{:?} step {step}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }

    #[test]
    fn has_and_describe() {
        let caps = caps_of(b"250-x\r\n250-AUTH LOGIN\r\n250 SIZE\r\n", 0).1;
        assert!(caps.has(Extension::Auth(Mechanism::Login)));
        assert!(!caps.has(Extension::Auth(Mechanism::Plain)));
        assert!(caps.has(Extension::Size));
        assert!(!caps.has(Extension::Pipelining));
        assert_eq!(Extension::Auth(Mechanism::Plain).describe(), "AUTH PLAIN");
        assert_eq!(Extension::EightBitMime.describe(), "8BITMIME");
        assert_eq!(Mechanism::parse(b"login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::parse(b"CRAM-MD5"), None);
    }

    #[test]
    fn hostile_input_never_panics() {
        for text in [
            &b""[..],
            b"\n",
            b"\n=",
            b"\nAUTH=",
            b"\n \t ",
            b"\nSIZE ",
            b"\n\xff\xfe",
        ] {
            let _ = Capabilities::from_reply_text(text);
        }
    }
}
