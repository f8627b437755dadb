//! SMTP AUTH client exchanges (RFC 4954) for the PLAIN and LOGIN SASL
//! mechanisms, sans-IO: the command lines to send and the stage each reply
//! is judged against.
//!
//! * PLAIN (RFC 4616) goes in one command with an initial response
//!   (RFC 4954 §4): `AUTH PLAIN base64(authzid NUL authcid NUL passwd)`
//!   with an empty authzid; the server answers 235.
//! * LOGIN (draft-murchison-sasl-login) takes three round trips:
//!   `AUTH LOGIN` → 334, `base64(user)` → 334, `base64(password)` → 235.
//!   The server's challenges ("Username:", "Password:") are not
//!   interpreted, as in every common client: the order is fixed.
//!
//! `-v` must not print credentials, so every step also carries the line to
//! log in their place.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::ehlo::Mechanism;
use super::pipeline::Stage;

/// One client step of an AUTH exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The command line without CRLF.
    pub line: Vec<u8>,
    /// What `-v` logs instead (credentials masked).
    pub log: &'static str,
    /// The stage the reply is judged against.
    pub stage: Stage,
}

/// The client steps of an AUTH exchange with `mech`.
pub fn steps(mech: Mechanism, user: &[u8], password: &[u8]) -> Vec<Step> {
    match mech {
        Mechanism::Plain => {
            let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
            raw.push(0); // empty authorization identity: act as `user`
            raw.extend_from_slice(user);
            raw.push(0);
            raw.extend_from_slice(password);
            let mut line = b"AUTH PLAIN ".to_vec();
            line.extend_from_slice(STANDARD.encode(raw).as_bytes());
            vec![Step {
                line,
                log: "AUTH PLAIN ********",
                stage: Stage::AuthDone,
            }]
        }
        Mechanism::Login => vec![
            Step {
                line: b"AUTH LOGIN".to_vec(),
                log: "AUTH LOGIN",
                stage: Stage::AuthChallenge,
            },
            Step {
                line: STANDARD.encode(user).into_bytes(),
                log: "********",
                stage: Stage::AuthChallenge,
            },
            Step {
                line: STANDARD.encode(password).into_bytes(),
                log: "********",
                stage: Stage::AuthDone,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pipeline::{Pipeline, Verdict};
    use crate::proto::reply::{Event, ReplyParser};

    #[test]
    fn plain_matches_rfc4616_example() {
        // RFC 4616 §4: authcid "tim", password "tanstaaftanstaaf".
        let s = steps(Mechanism::Plain, b"tim", b"tanstaaftanstaaf");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        assert_eq!(s[0].stage, Stage::AuthDone);
        assert!(!s[0].log.contains("AHRpbQ"));
    }

    #[test]
    fn login_steps() {
        let s = steps(Mechanism::Login, b"username", b"p\xc3\xa4ss\x00");
        let lines: Vec<&[u8]> = s.iter().map(|s| &s.line[..]).collect();
        assert_eq!(
            lines,
            vec![&b"AUTH LOGIN"[..], b"dXNlcm5hbWU=", b"cMOkc3MA"]
        );
        let stages: Vec<Stage> = s.iter().map(|s| s.stage).collect();
        assert_eq!(
            stages,
            vec![Stage::AuthChallenge, Stage::AuthChallenge, Stage::AuthDone]
        );
    }

    #[test]
    fn empty_credentials_still_encode() {
        let s = steps(Mechanism::Plain, b"", b"");
        assert_eq!(s[0].line, b"AUTH PLAIN AAA=");
        let s = steps(Mechanism::Login, b"", b"");
        assert_eq!(s[1].line, b"");
    }

    /// The server side of a LOGIN exchange, fed through the reply parser
    /// whole, in pieces and a byte at a time, judged step by step.
    #[test]
    fn login_exchange_replies() {
        let cases: &[(&[u8], &[Verdict])] = &[
            (
                b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
                &[Verdict::Ok, Verdict::Ok, Verdict::Ok],
            ),
            (
                b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 bad\r\n",
                &[
                    Verdict::Ok,
                    Verdict::Ok,
                    Verdict::Rejected {
                        what: "authentication failed",
                        close: false,
                    },
                ],
            ),
            (
                b"504 5.5.4 mechanism not available\r\n",
                &[Verdict::Rejected {
                    what: "authentication failed",
                    close: false,
                }],
            ),
        ];
        for (wire, want) in cases {
            for step in [0, 1, 4] {
                let mut pipe = Pipeline::new();
                for s in steps(Mechanism::Login, b"u", b"p") {
                    pipe.push(s.stage);
                }
                let mut parser = ReplyParser::new();
                let mut got = Vec::new();
                let step = if step == 0 { wire.len() } else { step };
                let mut pending = Vec::new();
                for chunk in wire.chunks(step) {
                    pending.extend_from_slice(chunk);
                    loop {
                        let (n, ev) = parser.feed(&pending);
                        pending.drain(..n);
                        match ev {
                            None => break,
                            Some(Event::Line { last: true, .. }) => {
                                got.push(pipe.on_reply(parser.code()).unwrap().1);
                            }
                            Some(_) => {}
                        }
                    }
                }
                assert_eq!(&got[..], *want);
            }
        }
    }
}
