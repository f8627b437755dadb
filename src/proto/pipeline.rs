//! Client-side command stages, their reply rules, and in-order matching of
//! pipelined replies (RFC 2920), sans-IO.
//!
//! Every command the client waits on is a [`Stage`]. What counts as success
//! for each stage, the diagnostic text of a rejection and whether a
//! 421/521 reply closes the connection under `-A` are data
//! ([`Stage::rule`]), the same table smtp-source applies one command at a
//! time (docs/smtp-source.md §6.2) extended with the ESMTP stages.
//!
//! With PIPELINING the client writes a whole group (`[RSET] MAIL RCPT…
//! DATA`, or BDAT chunks instead of DATA, possibly behind the previous
//! message's content) and then reads the replies, which the server must
//! send in command order (RFC 2920 §3.1). [`Pipeline`] keeps the stages in
//! flight in that order, matches each reply to its own stage, and tallies
//! the transaction so that the client knows what comes next once the
//! group's replies are all in: the content, a lone `.` (DATA accepted
//! although no recipient was: RFC 2920 §3.1 says the client "should send a
//! single dot"), or RSET.

use std::collections::VecDeque;

/// A command whose reply the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The server greeting (no command).
    Banner,
    /// `HELO` (`lmtp` = false) or `LHLO` (`lmtp` = true) without extensions.
    Helo {
        /// LMTP's LHLO.
        lmtp: bool,
    },
    /// `EHLO` (or LHLO under LMTP) whose reply is parsed for capabilities.
    Ehlo {
        /// LMTP's LHLO.
        lmtp: bool,
    },
    /// `STARTTLS` (RFC 3207): 220 to go ahead.
    Starttls,
    /// A SASL step that must get `334` (RFC 4954 §4: a server challenge).
    AuthChallenge,
    /// The final SASL step: `235` (any 2xx) when authenticated.
    AuthDone,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA`: exactly 354.
    Data,
    /// A `BDAT n` chunk that is not the last (RFC 3030).
    Chunk,
    /// `BDAT n LAST`: the end of the message (LMTP: one reply per accepted
    /// recipient, RFC 2033 §4.2).
    LastChunk,
    /// The `.` after DATA content (LMTP: one per accepted recipient).
    Dot,
    /// The `.` that aborts a DATA accepted with no recipient accepted; its
    /// reply is read and not judged (nothing was being delivered).
    AbortDot,
    /// `RSET`.
    Rset,
    /// `QUIT`: any reply will do.
    Quit,
}

/// What a stage counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// `code / 100 == 2`.
    Positive,
    /// Exactly this code (DATA: 354, SASL challenge: 334).
    Exactly(u32),
    /// Any reply (QUIT, abort dot).
    Any,
}

/// The per-stage reply rule (docs/smtp-source.md §6.2, plus the ESMTP stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Which replies succeed.
    pub success: Success,
    /// The text before `: CODE TEXT` in the fatal/warning.
    pub what: &'static str,
    /// Under `-A`, whether 421/521 closes the connection at once (the
    /// banner has no such special case in Postfix).
    pub closing: bool,
}

/// How one reply was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// As expected.
    Ok,
    /// Unexpected: fatal without `-A`, else a warning `what: CODE TEXT`;
    /// `close` = under `-A` the connection is closed at once (421/521).
    Rejected {
        /// Diagnostic text before `: CODE TEXT`.
        what: &'static str,
        /// Close at once (no QUIT) under `-A`.
        close: bool,
    },
}

/// `421`/`521` mean the server is closing the channel (RFC 5321 §3.8,
/// RFC 7504).
pub fn is_closing(code: u32) -> bool {
    code == 421 || code == 521
}

impl Stage {
    /// The reply rule of this stage.
    pub const fn rule(self) -> Rule {
        const fn r(success: Success, what: &'static str, closing: bool) -> Rule {
            Rule {
                success,
                what,
                closing,
            }
        }
        match self {
            Stage::Banner => r(Success::Positive, "rejected at server banner", false),
            Stage::Helo { lmtp: false } => r(Success::Positive, "HELO rejected", true),
            Stage::Helo { lmtp: true } | Stage::Ehlo { lmtp: true } => {
                r(Success::Positive, "LHLO rejected", true)
            }
            Stage::Ehlo { lmtp: false } => r(Success::Positive, "EHLO rejected", true),
            Stage::Starttls => r(Success::Positive, "STARTTLS rejected", true),
            Stage::AuthChallenge => r(Success::Exactly(334), "authentication failed", true),
            Stage::AuthDone => r(Success::Positive, "authentication failed", true),
            Stage::Mail => r(Success::Positive, "sender rejected", true),
            Stage::Rcpt => r(Success::Positive, "recipient rejected", true),
            Stage::Data => r(Success::Exactly(354), "data rejected", true),
            Stage::Chunk => r(Success::Positive, "BDAT rejected", true),
            Stage::LastChunk | Stage::Dot => r(Success::Positive, "end of data rejected", true),
            Stage::AbortDot => r(Success::Any, "end of data rejected", true),
            Stage::Rset => r(Success::Positive, "rset rejected", true),
            Stage::Quit => r(Success::Any, "", false),
        }
    }

    /// Judge `code` against this stage's rule.
    pub fn judge(self, code: u32) -> Verdict {
        let rule = self.rule();
        let ok = match rule.success {
            Success::Positive => code / 100 == 2,
            Success::Exactly(want) => code == want,
            Success::Any => true,
        };
        if ok {
            Verdict::Ok
        } else {
            Verdict::Rejected {
                what: rule.what,
                close: rule.closing && is_closing(code),
            }
        }
    }
}

/// What to do once every reply of a transaction's group is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// DATA got 354 and a recipient was accepted: send the content and `.`.
    Content,
    /// DATA got 354 but nothing can be delivered (MAIL rejected or no
    /// recipient accepted): send a lone `.` (RFC 2920 §3.1).
    AbortDot,
    /// The transaction failed: RSET (docs/smtp-source.md §6.2 under `-A`).
    Rset,
    /// BDAT LAST was answered: the message is done (judged already).
    Finished,
}

/// The tally of one mail transaction, fed by [`Pipeline::on_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Txn {
    /// MAIL was accepted.
    pub mail_ok: bool,
    /// RCPTs accepted.
    pub accepted: u32,
    /// DATA got 354.
    pub data_ok: bool,
    /// A non-final BDAT chunk was rejected.
    pub chunk_failed: bool,
    /// BDAT LAST (or its first LMTP reply) was answered.
    pub last_answered: bool,
}

impl Txn {
    /// The next step after the group's last reply.
    pub fn next(&self) -> Next {
        if self.last_answered {
            if self.mail_ok && self.accepted > 0 && !self.chunk_failed {
                Next::Finished
            } else {
                Next::Rset
            }
        } else if self.data_ok {
            if self.mail_ok && self.accepted > 0 {
                Next::Content
            } else {
                Next::AbortDot
            }
        } else {
            Next::Rset
        }
    }
}

/// The stages in flight on one connection, oldest first, and the tally of
/// the transaction their replies belong to.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    inflight: VecDeque<Stage>,
    txn: Txn,
    lmtp: bool,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pipeline for LMTP: `BDAT LAST` is answered once per
    /// accepted recipient (RFC 2033 §4.2), a number only known once the
    /// RCPT replies are in, so the extra replies are expected from the
    /// first `BDAT LAST` reply on.
    pub fn lmtp() -> Self {
        Pipeline {
            lmtp: true,
            ..Self::default()
        }
    }

    /// Forget everything (a new connection).
    pub fn reset(&mut self) {
        self.inflight.clear();
        self.txn = Txn::default();
    }

    /// A command of `stage` was queued for writing: its reply comes after
    /// every reply already expected.
    pub fn push(&mut self, stage: Stage) {
        self.inflight.push_back(stage);
    }

    /// Queue `n` stages of one kind (LMTP end-of-data replies).
    pub fn push_n(&mut self, stage: Stage, n: u32) {
        for _ in 0..n {
            self.inflight.push_back(stage);
        }
    }

    /// The stage the next reply answers.
    pub fn expecting(&self) -> Option<Stage> {
        self.inflight.front().copied()
    }

    /// Replies still expected.
    pub fn pending(&self) -> usize {
        self.inflight.len()
    }

    /// The transaction tally.
    pub fn txn(&self) -> &Txn {
        &self.txn
    }

    /// A reply with `code` arrived: match it to the oldest stage in flight,
    /// update the tally and judge it. `None` when no reply was expected
    /// (a server speaking out of turn; the caller decides).
    pub fn on_reply(&mut self, code: u32) -> Option<(Stage, Verdict)> {
        let stage = self.inflight.pop_front()?;
        let verdict = stage.judge(code);
        let ok = verdict == Verdict::Ok;
        match stage {
            // A new transaction starts with its MAIL reply; the replies of
            // the previous one (`.`, RSET) always come before it.
            Stage::Mail => {
                self.txn = Txn {
                    mail_ok: ok,
                    ..Txn::default()
                }
            }
            Stage::Rcpt if ok => self.txn.accepted += 1,
            Stage::Data => self.txn.data_ok = ok,
            Stage::Chunk if !ok => self.txn.chunk_failed = true,
            Stage::LastChunk => {
                if self.lmtp && !self.txn.last_answered {
                    for _ in 1..self.txn.accepted {
                        self.inflight.push_front(Stage::LastChunk);
                    }
                }
                self.txn.last_answered = true;
            }
            _ => {}
        }
        Some((stage, verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::{Event, ReplyParser};

    /// Feed `wire` in `step`-byte pieces (0 = whole) through the reply
    /// parser and the pipeline; collect (stage, code, verdict) per reply.
    fn run(stages: &[Stage], wire: &[u8], step: usize) -> (Vec<(Stage, u32, Verdict)>, Pipeline) {
        let mut pipe = Pipeline::new();
        for &s in stages {
            pipe.push(s);
        }
        let mut parser = ReplyParser::new();
        let mut out = Vec::new();
        let step = if step == 0 { wire.len().max(1) } else { step };
        let mut pending = Vec::new();
        for chunk in wire.chunks(step) {
            pending.extend_from_slice(chunk);
            loop {
                let (n, ev) = parser.feed(&pending);
                pending.drain(..n);
                match ev {
                    None => break,
                    Some(Event::Line { last: true, .. }) => {
                        let code = parser.code();
                        let (stage, verdict) = pipe.on_reply(code).expect("reply expected");
                        out.push((stage, code, verdict));
                    }
                    Some(_) => {}
                }
            }
        }
        (out, pipe)
    }

    fn rej(what: &'static str, close: bool) -> Verdict {
        Verdict::Rejected { what, close }
    }

    #[test]
    fn rule_table() {
        use Stage::*;
        let ok = Verdict::Ok;
        let cases: &[(Stage, u32, Verdict)] = &[
            (Banner, 220, ok),
            (Banner, 421, rej("rejected at server banner", false)),
            (Banner, 554, rej("rejected at server banner", false)),
            (Helo { lmtp: false }, 250, ok),
            (Helo { lmtp: false }, 501, rej("HELO rejected", false)),
            (Helo { lmtp: true }, 421, rej("LHLO rejected", true)),
            (Ehlo { lmtp: false }, 250, ok),
            (Ehlo { lmtp: false }, 521, rej("EHLO rejected", true)),
            (Ehlo { lmtp: true }, 500, rej("LHLO rejected", false)),
            (Starttls, 220, ok),
            (Starttls, 454, rej("STARTTLS rejected", false)),
            (AuthChallenge, 334, ok),
            (AuthChallenge, 235, rej("authentication failed", false)),
            (AuthDone, 235, ok),
            (AuthDone, 535, rej("authentication failed", false)),
            (Mail, 250, ok),
            (Mail, 0, rej("sender rejected", false)),
            (Mail, 354, rej("sender rejected", false)),
            (Mail, 421, rej("sender rejected", true)),
            (Rcpt, 251, ok),
            (Rcpt, 550, rej("recipient rejected", false)),
            (Data, 354, ok),
            (Data, 250, rej("data rejected", false)),
            (Data, 554, rej("data rejected", false)),
            (Chunk, 250, ok),
            (Chunk, 452, rej("BDAT rejected", false)),
            (LastChunk, 250, ok),
            (LastChunk, 521, rej("end of data rejected", true)),
            (Dot, 250, ok),
            (Dot, 451, rej("end of data rejected", false)),
            (AbortDot, 554, ok),
            (Rset, 250, ok),
            (Rset, 500, rej("rset rejected", false)),
            (Quit, 500, ok),
            (Quit, 0, ok),
        ];
        for &(stage, code, want) in cases {
            assert_eq!(stage.judge(code), want, "{stage:?} {code}");
        }
    }

    #[test]
    fn pipelined_groups() {
        use Stage::*;
        let ok = Verdict::Ok;
        type Case = (
            &'static [Stage],
            &'static [u8],
            Vec<(Stage, u32, Verdict)>,
            Next,
        );
        let cases: &[Case] = &[
            // Everything accepted.
            (
                &[Mail, Rcpt, Rcpt, Data],
                b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 250, ok),
                    (Rcpt, 250, ok),
                    (Data, 354, ok),
                ],
                Next::Content,
            ),
            // One recipient rejected, one accepted: content.
            (
                &[Mail, Rcpt, Rcpt, Data],
                b"250 ok\r\n550-no\r\n550 such user\r\n250 ok\r\n354 go\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 550, rej("recipient rejected", false)),
                    (Rcpt, 250, ok),
                    (Data, 354, ok),
                ],
                Next::Content,
            ),
            // All recipients rejected, DATA properly rejected: RSET.
            (
                &[Mail, Rcpt, Data],
                b"250 ok\r\n550 no\r\n554 5.5.1 Error: no valid recipients\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 550, rej("recipient rejected", false)),
                    (Data, 554, rej("data rejected", false)),
                ],
                Next::Rset,
            ),
            // All recipients rejected but DATA accepted: a lone dot.
            (
                &[Mail, Rcpt, Data],
                b"250 ok\r\n550 no\r\n354 go\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 550, rej("recipient rejected", false)),
                    (Data, 354, ok),
                ],
                Next::AbortDot,
            ),
            // MAIL rejected: the rest fails too.
            (
                &[Mail, Rcpt, Data],
                b"553 bad sender\r\n503 need MAIL\r\n503 need RCPT\r\n",
                vec![
                    (Mail, 553, rej("sender rejected", false)),
                    (Rcpt, 503, rej("recipient rejected", false)),
                    (Data, 503, rej("data rejected", false)),
                ],
                Next::Rset,
            ),
            // Previous message's dot and a RSET ahead of the next group.
            (
                &[Dot, Rset, Mail, Rcpt, Data],
                b"250 queued\n250 reset\n250 ok\n250 ok\n354 go\n",
                vec![
                    (Dot, 250, ok),
                    (Rset, 250, ok),
                    (Mail, 250, ok),
                    (Rcpt, 250, ok),
                    (Data, 354, ok),
                ],
                Next::Content,
            ),
            // A 421 mid-group says close.
            (
                &[Mail, Rcpt, Data],
                b"250 ok\r\n421 4.4.2 bye\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 421, rej("recipient rejected", true)),
                ],
                Next::Rset,
            ),
            // BDAT: all chunks accepted.
            (
                &[Mail, Rcpt, Chunk, Chunk, LastChunk],
                b"250 ok\r\n250 ok\r\n250 1 octets\r\n250 2 octets\r\n250 queued\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 250, ok),
                    (Chunk, 250, ok),
                    (Chunk, 250, ok),
                    (LastChunk, 250, ok),
                ],
                Next::Finished,
            ),
            // BDAT with a failed chunk: RSET after LAST.
            (
                &[Mail, Rcpt, Chunk, LastChunk],
                b"250 ok\r\n250 ok\r\n552 too big\r\n503 discarded\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 250, ok),
                    (Chunk, 552, rej("BDAT rejected", false)),
                    (LastChunk, 503, rej("end of data rejected", false)),
                ],
                Next::Rset,
            ),
            // BDAT with no recipient: RSET.
            (
                &[Mail, Rcpt, LastChunk],
                b"250 ok\r\n550 no\r\n554 no valid recipients\r\n",
                vec![
                    (Mail, 250, ok),
                    (Rcpt, 550, rej("recipient rejected", false)),
                    (LastChunk, 554, rej("end of data rejected", false)),
                ],
                Next::Rset,
            ),
        ];
        for (stages, wire, want, next) in cases {
            for step in [0, 1, 2, 7] {
                let (got, pipe) = run(stages, wire, step);
                assert_eq!(&got[..], &want[..], "{stages:?} step {step}");
                if got.len() == stages.len() {
                    assert_eq!(pipe.txn().next(), *next, "{stages:?}");
                    assert_eq!(pipe.pending(), 0);
                    assert_eq!(pipe.expecting(), None);
                } else {
                    assert_eq!(pipe.pending(), stages.len() - got.len());
                }
            }
        }
    }

    #[test]
    fn lmtp_last_chunk_replies_per_accepted_recipient() {
        use Stage::*;
        for (codes, accepted_want) in [
            (&[250, 250, 550, 250, 250, 250][..], 2),
            (&[250, 550, 550, 550, 503][..], 0),
        ] {
            let mut p = Pipeline::lmtp();
            for s in [Mail, Rcpt, Rcpt, Rcpt, LastChunk] {
                p.push(s);
            }
            p.push(Quit);
            let mut stages = Vec::new();
            for &code in codes {
                stages.push(p.on_reply(code).unwrap().0);
            }
            assert_eq!(p.txn().accepted, accepted_want);
            let lasts = stages.iter().filter(|&&s| s == LastChunk).count();
            assert_eq!(lasts as u32, accepted_want.max(1));
            // QUIT is still expected after every LAST reply.
            assert_eq!(p.expecting(), Some(Quit));
        }
    }

    #[test]
    fn tally_and_unexpected_reply() {
        let mut p = Pipeline::new();
        assert_eq!(p.on_reply(250), None, "nothing in flight");
        p.push(Stage::Mail);
        p.push_n(Stage::Rcpt, 3);
        assert_eq!(p.pending(), 4);
        assert_eq!(p.expecting(), Some(Stage::Mail));
        for code in [250, 250, 451, 250] {
            p.on_reply(code);
        }
        assert_eq!(
            *p.txn(),
            Txn {
                mail_ok: true,
                accepted: 2,
                ..Txn::default()
            }
        );
        p.reset();
        assert_eq!(p.pending(), 0);
        assert_eq!(*p.txn(), Txn::default());
    }
}
