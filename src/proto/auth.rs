//! Server side of SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and
//! LOGIN mechanisms, as smtp-sink's `--auth` serves it.
//!
//! Sans-IO: [`start`] takes the arguments of the `AUTH` command line,
//! [`Exchange::respond`] each further client line (CR LF removed); both
//! return a [`Step`] that says what to send. The caller owns the policy:
//! on [`Step::Credentials`] it answers [`SUCCESS`] or [`FAILED`]. Any
//! credentials are acceptable here; nothing is verified.
//!
//! Reply texts follow Postfix's smtpd where it has one, else RFC 4954 §6.
//! Every reply constant includes its CR LF.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// `235`: authentication succeeded (RFC 4954 §6).
pub const SUCCESS: &[u8] = b"235 2.7.0 Authentication successful\r\n";
/// `535`: credentials refused (`--auth-fail`), Postfix smtpd's text.
pub const FAILED: &[u8] = b"535 5.7.8 Error: authentication failed: authentication failure\r\n";
/// `535`: a PLAIN response that is not `authzid NUL authcid NUL passwd`.
pub const MALFORMED: &[u8] =
    b"535 5.7.8 Error: authentication failed: malformed PLAIN response\r\n";
/// `501`: the client cancelled with `*` (RFC 4954 §4).
pub const ABORTED: &[u8] = b"501 5.7.0 Authentication aborted\r\n";
/// `501`: a response that is not base64 (RFC 4954 §4: 501 with 5.5.2).
pub const BAD_BASE64: &[u8] = b"501 5.5.2 Cannot decode response\r\n";
/// `501`: `AUTH` without a mechanism or with too many arguments.
pub const SYNTAX: &[u8] = b"501 5.5.4 Syntax: AUTH mechanism\r\n";
/// `504`: a mechanism we do not offer (RFC 4954 §6).
pub const UNKNOWN_MECHANISM: &[u8] = b"504 5.5.4 Unrecognized authentication type\r\n";
/// `503`: a second AUTH after success (RFC 4954 §4), Postfix smtpd's text.
pub const ALREADY: &[u8] = b"503 5.5.1 Error: already authenticated\r\n";
/// `503`: AUTH inside a mail transaction (RFC 4954 §4), Postfix smtpd's text.
pub const IN_TRANSACTION: &[u8] = b"503 5.5.1 Error: MAIL transaction in progress\r\n";
/// `530`: MAIL before a successful AUTH under `--auth-required` (RFC 4954 §6).
pub const REQUIRED: &[u8] = b"530 5.7.0 Authentication required\r\n";

/// The EHLO keyword line body (the sink's list already says `PLAIN LOGIN`).
pub const MECHANISMS: &[u8] = b"PLAIN LOGIN";

/// PLAIN without an initial response: an empty challenge (RFC 4954 §4:
/// "334" followed by a space).
const PLAIN_CHALLENGE: &[u8] = b"334 \r\n";
/// LOGIN: base64 of `Username:`.
const LOGIN_USER_CHALLENGE: &[u8] = b"334 VXNlcm5hbWU6\r\n";
/// LOGIN: base64 of `Password:`.
const LOGIN_PASSWORD_CHALLENGE: &[u8] = b"334 UGFzc3dvcmQ6\r\n";

/// Standard alphabet; padding accepted but not required (some clients
/// drop it, and it carries no information).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A supported SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// The mechanism name as registered with IANA.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// Parse a mechanism name (case-insensitive, RFC 4422 §3.1 names are
    /// upper case but peers vary).
    pub fn parse(name: &[u8]) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case(b"PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case(b"LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }
}

/// What the client presented. Bytes as decoded, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mechanism: Mechanism,
    /// PLAIN authorization identity (often empty); empty for LOGIN.
    pub authzid: Vec<u8>,
    /// The user name (authentication identity).
    pub user: Vec<u8>,
    pub password: Vec<u8>,
}

/// What the server does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this `334` challenge and feed the client's next line to
    /// [`Exchange::respond`].
    Challenge(&'static [u8]),
    /// The exchange is complete: decide, then send [`SUCCESS`] or
    /// [`FAILED`].
    Credentials(Credentials),
    /// The exchange is over: send this reply.
    Reject(&'static [u8]),
}

/// An AUTH exchange in progress (between `334` challenges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// PLAIN, waiting for the response to the empty challenge.
    Plain,
    /// LOGIN, waiting for the user name.
    LoginUser,
    /// LOGIN, waiting for the password.
    LoginPassword { user: Vec<u8> },
}

/// Begin an exchange from the arguments of `AUTH` (everything after
/// `AUTH `): `MECHANISM [INITIAL-RESPONSE]`, separated by spaces or tabs.
///
/// Returns the exchange to keep when the step is a challenge, else `None`.
pub fn start(args: &[u8]) -> (Option<Exchange>, Step) {
    let mut words = args
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let (Some(mech), initial, None) = (words.next(), words.next(), words.next()) else {
        return (None, Step::Reject(SYNTAX));
    };
    let Some(mechanism) = Mechanism::parse(mech) else {
        return (None, Step::Reject(UNKNOWN_MECHANISM));
    };
    match (mechanism, initial) {
        (Mechanism::Plain, None) => (
            Some(Exchange {
                state: State::Plain,
            }),
            Step::Challenge(PLAIN_CHALLENGE),
        ),
        (Mechanism::Login, None) => (
            Some(Exchange {
                state: State::LoginUser,
            }),
            Step::Challenge(LOGIN_USER_CHALLENGE),
        ),
        (_, Some(resp)) => {
            let initial_state = match mechanism {
                Mechanism::Plain => State::Plain,
                Mechanism::Login => State::LoginUser,
            };
            let mut ex = Exchange {
                state: initial_state,
            };
            match ex.feed(resp, true) {
                step @ Step::Challenge(_) => (Some(ex), step),
                step => (None, step),
            }
        }
    }
}

impl Exchange {
    /// Feed the client's next line (CR LF removed). When the result is a
    /// [`Step::Challenge`] keep the exchange, otherwise it is finished.
    pub fn respond(&mut self, line: &[u8]) -> Step {
        self.feed(line, false)
    }

    fn feed(&mut self, line: &[u8], initial: bool) -> Step {
        let line = trim(line);
        // RFC 4954 §4: a lone "*" cancels; only in a response, an initial
        // response of "*" is just bad base64.
        if !initial && line == b"*" {
            return Step::Reject(ABORTED);
        }
        // RFC 4954 §4: an initial response of "=" is an empty response.
        let decoded = if initial && line == b"=" {
            Vec::new()
        } else {
            match B64.decode(line) {
                Ok(d) => d,
                Err(_) => return Step::Reject(BAD_BASE64),
            }
        };
        match std::mem::replace(&mut self.state, State::Plain) {
            State::Plain => plain(&decoded),
            State::LoginUser => {
                self.state = State::LoginPassword { user: decoded };
                Step::Challenge(LOGIN_PASSWORD_CHALLENGE)
            }
            State::LoginPassword { user } => Step::Credentials(Credentials {
                mechanism: Mechanism::Login,
                authzid: Vec::new(),
                user,
                password: decoded,
            }),
        }
    }
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
fn plain(msg: &[u8]) -> Step {
    let mut parts = msg.splitn(3, |&b| b == 0);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(authzid), Some(user), Some(password)) if !user.is_empty() => {
            Step::Credentials(Credentials {
                mechanism: Mechanism::Plain,
                authzid: authzid.to_vec(),
                user: user.to_vec(),
                password: password.to_vec(),
            })
        }
        _ => Step::Reject(MALFORMED),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn creds(m: Mechanism, authzid: &[u8], user: &[u8], pw: &[u8]) -> Step {
        Step::Credentials(Credentials {
            mechanism: m,
            authzid: authzid.to_vec(),
            user: user.to_vec(),
            password: pw.to_vec(),
        })
    }

    /// Run a whole exchange: the AUTH arguments, then client lines; returns
    /// every step in order.
    fn run(args: &str, lines: &[String]) -> Vec<Step> {
        let (mut ex, step) = start(args.as_bytes());
        let mut steps = vec![step];
        for line in lines {
            let ex_ref = ex.as_mut().expect("exchange still open");
            let step = ex_ref.respond(line.as_bytes());
            if !matches!(step, Step::Challenge(_)) {
                ex = None;
            }
            steps.push(step);
        }
        assert!(
            ex.is_none() || matches!(steps.last(), Some(Step::Challenge(_))),
            "exchange must be open exactly while challenging"
        );
        steps
    }

    #[test]
    fn exchanges() {
        use Mechanism::*;
        let plain_ir = b64(b"\0alice\0secret");
        let cases: Vec<(String, Vec<String>, Vec<Step>)> = vec![
            // PLAIN with an initial response.
            (
                format!("PLAIN {plain_ir}"),
                vec![],
                vec![creds(Plain, b"", b"alice", b"secret")],
            ),
            // Mechanism names are case-insensitive; extra blanks ignored.
            (
                format!("plain   {plain_ir}  "),
                vec![],
                vec![creds(Plain, b"", b"alice", b"secret")],
            ),
            // PLAIN with an authorization identity.
            (
                format!("PLAIN {}", b64(b"boss\0alice\0pw")),
                vec![],
                vec![creds(Plain, b"boss", b"alice", b"pw")],
            ),
            // PLAIN without one: empty challenge first.
            (
                "PLAIN".into(),
                vec![plain_ir.clone()],
                vec![
                    Step::Challenge(b"334 \r\n"),
                    creds(Plain, b"", b"alice", b"secret"),
                ],
            ),
            // Password may contain NUL-free anything, even be empty.
            (
                format!("PLAIN {}", b64(b"\0bob\0")),
                vec![],
                vec![creds(Plain, b"", b"bob", b"")],
            ),
            // LOGIN with its two challenges.
            (
                "LOGIN".into(),
                vec![b64(b"alice"), b64(b"secret")],
                vec![
                    Step::Challenge(b"334 VXNlcm5hbWU6\r\n"),
                    Step::Challenge(b"334 UGFzc3dvcmQ6\r\n"),
                    creds(Login, b"", b"alice", b"secret"),
                ],
            ),
            // LOGIN with the user name as initial response.
            (
                format!("LOGIN {}", b64(b"alice")),
                vec![b64(b"secret")],
                vec![
                    Step::Challenge(b"334 UGFzc3dvcmQ6\r\n"),
                    creds(Login, b"", b"alice", b"secret"),
                ],
            ),
            // Unpadded base64 is accepted.
            (
                "LOGIN".into(),
                vec!["YQ".into(), "Yg".into()],
                vec![
                    Step::Challenge(LOGIN_USER_CHALLENGE),
                    Step::Challenge(LOGIN_PASSWORD_CHALLENGE),
                    creds(Login, b"", b"a", b"b"),
                ],
            ),
            // Cancel at each point.
            (
                "PLAIN".into(),
                vec!["*".into()],
                vec![Step::Challenge(PLAIN_CHALLENGE), Step::Reject(ABORTED)],
            ),
            (
                "LOGIN".into(),
                vec![b64(b"u"), "*".into()],
                vec![
                    Step::Challenge(LOGIN_USER_CHALLENGE),
                    Step::Challenge(LOGIN_PASSWORD_CHALLENGE),
                    Step::Reject(ABORTED),
                ],
            ),
            // Errors.
            ("".into(), vec![], vec![Step::Reject(SYNTAX)]),
            ("   ".into(), vec![], vec![Step::Reject(SYNTAX)]),
            ("PLAIN a b".into(), vec![], vec![Step::Reject(SYNTAX)]),
            (
                "CRAM-MD5".into(),
                vec![],
                vec![Step::Reject(UNKNOWN_MECHANISM)],
            ),
            ("PLAIN !!!".into(), vec![], vec![Step::Reject(BAD_BASE64)]),
            ("PLAIN *".into(), vec![], vec![Step::Reject(BAD_BASE64)]),
            ("PLAIN =".into(), vec![], vec![Step::Reject(MALFORMED)]),
            (
                format!("PLAIN {}", b64(b"alice secret")),
                vec![],
                vec![Step::Reject(MALFORMED)],
            ),
            (
                format!("PLAIN {}", b64(b"\0\0pw")),
                vec![],
                vec![Step::Reject(MALFORMED)],
            ),
            (
                "LOGIN".into(),
                vec!["not base64!".into()],
                vec![
                    Step::Challenge(LOGIN_USER_CHALLENGE),
                    Step::Reject(BAD_BASE64),
                ],
            ),
            // LOGIN "=" as initial response: an empty user name.
            (
                "LOGIN =".into(),
                vec![b64(b"pw")],
                vec![
                    Step::Challenge(LOGIN_PASSWORD_CHALLENGE),
                    creds(Login, b"", b"", b"pw"),
                ],
            ),
        ];
        for (args, lines, want) in cases {
            assert_eq!(run(&args, &lines), want, "AUTH {args} / {lines:?}");
        }
    }

    #[test]
    fn every_reply_is_one_crlf_line() {
        for r in [
            SUCCESS,
            FAILED,
            MALFORMED,
            ABORTED,
            BAD_BASE64,
            SYNTAX,
            UNKNOWN_MECHANISM,
            ALREADY,
            IN_TRANSACTION,
            REQUIRED,
            PLAIN_CHALLENGE,
            LOGIN_USER_CHALLENGE,
            LOGIN_PASSWORD_CHALLENGE,
        ] {
            assert!(r.ends_with(b"\r\n"));
            assert_eq!(memchr::memchr(b'\n', r), Some(r.len() - 1));
            assert!(r[..3].iter().all(u8::is_ascii_digit) && r[3] == b' ');
        }
    }

    #[test]
    fn no_panic_on_arbitrary_input() {
        // Every byte value as a mechanism, initial response and response.
        for b in 0..=255u8 {
            let one = [b];
            let _ = start(&one);
            let _ = start(&[b"PLAIN ".as_slice(), &one].concat());
            let (ex, _) = start(b"LOGIN");
            let mut ex = ex.unwrap();
            let _ = ex.respond(&one);
            let _ = ex.respond(&one);
        }
    }
}
