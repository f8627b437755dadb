//! SMTP/LMTP reply reader (client side), sans-IO, with Postfix 3.12's rules.
//!
//! A reply is one or more lines (RFC 5321 §4.2: `CODE-text` continuation
//! lines, then `CODE text`). As smtp-source reads them:
//! * a line ends at LF; every CR right before the LF is removed, and a bare
//!   LF is accepted;
//! * at most [`LINE_LIMIT`] bytes of a line are kept, the rest of the line is
//!   discarded; once [`LINE_LIMIT`] further bytes have been discarded without
//!   an LF, input is disabled (Postfix 3.12: `disabling input from
//!   unknown_stream`), the line ends there and every later read is EOF;
//! * in the kept part each byte that is neither printable ASCII nor ASCII
//!   whitespace becomes `?`;
//! * the code is the run of leading digits if it is exactly 3 digits long,
//!   else 0; the reply code is the code of the last line;
//! * a `-` right after the digit run (any number of digits, even none) marks
//!   a continuation line and is skipped; then ASCII whitespace is skipped and
//!   the rest is the line text;
//! * the texts are joined with `\n`: a line's text is appended whole as long
//!   as the joined text so far is shorter than [`LINE_LIMIT`] (so the result
//!   may pass the limit, by at most one line), and the `\n` after it only if
//!   the text is still shorter; lines after that are dropped.
//!
//! The parser consumes every byte it is given until a line completes, so the
//! caller's buffer never grows with an over-long line: memory is bounded by
//! one [`LINE_LIMIT`]-sized line and a joined text under twice
//! [`LINE_LIMIT`], whatever the server sends.

use memchr::memchr;

/// Postfix `line_length_limit` (2048 by default, but smtp-source uses
/// 10240): bytes kept of one reply line, bytes discarded before input is
/// disabled, and the cap of the joined reply text.
pub const LINE_LIMIT: usize = 10240;

/// What [`ReplyParser::feed`] found in the bytes it consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A line is complete: see [`ReplyParser::line`]. When `last` is true the
    /// reply is complete too: see [`ReplyParser::code`] and
    /// [`ReplyParser::text`].
    Line {
        /// True when this line ends the reply.
        last: bool,
        /// True when this line was cut short because input got disabled
        /// (Postfix 3.12's over-long line rule): report
        /// `disabling input from unknown_stream` and treat any further read
        /// as end of stream.
        disabled: bool,
    },
}

/// Incremental reply reader; reuse one per connection (its buffers are
/// reused from reply to reply, so steady state allocates nothing).
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Kept bytes of the line being read (at most `LINE_LIMIT`).
    line: Vec<u8>,
    /// Bytes of the current line discarded beyond `LINE_LIMIT`.
    discarded: usize,
    /// Joined text of the reply so far.
    text: Vec<u8>,
    /// Code of the most recent line.
    code: u32,
    /// The previous call completed a reply: the next byte starts a new one.
    reply_done: bool,
    /// The previous call completed a line: the next byte starts a new one.
    line_done: bool,
}

impl ReplyParser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any partial reply (for a new connection).
    pub fn reset(&mut self) {
        self.line.clear();
        self.discarded = 0;
        self.text.clear();
        self.code = 0;
        self.reply_done = false;
        self.line_done = false;
    }

    /// Consume bytes from `input`. Returns how many bytes were consumed and
    /// whether a line completed. Bytes after a completed line are left for
    /// the next call. With `None` every byte was consumed and more input is
    /// needed.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        if self.line_done {
            self.line.clear();
            self.discarded = 0;
            self.line_done = false;
        }
        if self.reply_done {
            self.text.clear();
            self.code = 0;
            self.reply_done = false;
        }
        let (chunk, consumed, complete) = match memchr(b'\n', input) {
            Some(pos) => (&input[..pos], pos + 1, true),
            None => (input, input.len(), false),
        };
        let room = LINE_LIMIT - self.line.len();
        let keep = room.min(chunk.len());
        self.line.extend_from_slice(&chunk[..keep]);
        let excess = chunk.len() - keep;
        if excess > 0 {
            if self.discarded + excess >= LINE_LIMIT {
                // Input is disabled at the byte where the discard count
                // reaches the limit; the rest of the input is never looked at.
                let used = keep + (LINE_LIMIT - self.discarded);
                self.discarded = LINE_LIMIT;
                let last = self.finish_line();
                return (
                    used,
                    Some(Event::Line {
                        last,
                        disabled: true,
                    }),
                );
            }
            self.discarded += excess;
        }
        if !complete {
            return (consumed, None);
        }
        let last = self.finish_line();
        (
            consumed,
            Some(Event::Line {
                last,
                disabled: false,
            }),
        )
    }

    /// Strip CRs, censor, parse the code and append the text. Returns true
    /// when the line ends the reply.
    fn finish_line(&mut self) -> bool {
        while self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        for b in self.line.iter_mut() {
            if !(is_print(*b) || is_space(*b)) {
                *b = b'?';
            }
        }
        let digits = self.line.iter().take_while(|b| b.is_ascii_digit()).count();
        self.code = if digits == 3 {
            self.line[..3]
                .iter()
                .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
        } else {
            0
        };
        let mut pos = digits;
        let more = self.line.get(pos) == Some(&b'-');
        if more {
            pos += 1;
        }
        while self.line.get(pos).is_some_and(|&b| is_space(b)) {
            pos += 1;
        }
        let rest = &self.line[pos..];
        if self.text.len() < LINE_LIMIT {
            self.text.extend_from_slice(rest);
        }
        if more && self.text.len() < LINE_LIMIT {
            self.text.push(b'\n');
        }
        self.line_done = true;
        self.reply_done = !more;
        !more
    }

    /// The most recently completed line, censored, without line end.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// The reply code (of the last line): 0 when it was not exactly 3 digits.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// The joined reply text (lines separated by `\n`).
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

/// Printable ASCII (C `isprint` in the C locale).
fn is_print(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// ASCII whitespace (C `isspace` in the C locale).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` split into `pieces`-byte chunks (0 = whole) and collect
    /// (lines, replies as (code, text), disabled).
    type Outcome = (Vec<Vec<u8>>, Vec<(u32, Vec<u8>)>, bool);

    fn run(input: &[u8], pieces: usize) -> Outcome {
        let mut p = ReplyParser::new();
        let mut lines = Vec::new();
        let mut replies = Vec::new();
        let step = if pieces == 0 {
            input.len().max(1)
        } else {
            pieces
        };
        let mut pending: Vec<u8> = Vec::new();
        for chunk in input.chunks(step) {
            pending.extend_from_slice(chunk);
            loop {
                let (n, ev) = p.feed(&pending);
                assert!(n <= pending.len());
                pending.drain(..n);
                match ev {
                    None => {
                        assert!(pending.is_empty(), "None must consume everything");
                        break;
                    }
                    Some(Event::Line { last, disabled }) => {
                        lines.push(p.line().to_vec());
                        if last {
                            replies.push((p.code(), p.text().to_vec()));
                        }
                        if disabled {
                            return (lines, replies, true);
                        }
                    }
                }
            }
        }
        (lines, replies, false)
    }

    #[test]
    fn table() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&[u8], &[&[u8]], &[(u32, &[u8])])] = &[
            (b"220 hi\r\n", &[b"220 hi"], &[(220, b"hi")]),
            (b"250 ok\n", &[b"250 ok"], &[(250, b"ok")]),
            (b"220 hi\r\r\n", &[b"220 hi"], &[(220, b"hi")]),
            (
                b"554-no way\r\n554 go away\r\n",
                &[b"554-no way", b"554 go away"],
                &[(554, b"no way\ngo away")],
            ),
            (
                b"220-ok\r\n554 last\r\n",
                &[b"220-ok", b"554 last"],
                &[(554, b"ok\nlast")],
            ),
            (b"2500 ok\r\n", &[b"2500 ok"], &[(0, b"ok")]),
            (b"hello\r\n", &[b"hello"], &[(0, b"hello")]),
            (b"25 x\r\n", &[b"25 x"], &[(0, b"x")]),
            (
                b"-cont\r\n250 z\r\n",
                &[b"-cont", b"250 z"],
                &[(250, b"cont\nz")],
            ),
            (b"250\r\n", &[b"250"], &[(250, b"")]),
            (
                b"250-\r\n250 \t x\r\n",
                &[b"250-", b"250 \t x"],
                &[(250, b"\nx")],
            ),
            (
                b"250 a\x80b\x00c\td\r\n",
                &[b"250 a?b?c\td"],
                &[(250, b"a?b?c\td")],
            ),
            (b"250 mid\rcr\r\n", &[b"250 mid\rcr"], &[(250, b"mid\rcr")]),
            (
                b"250 one\r\n251 two\r\n",
                &[b"250 one", b"251 two"],
                &[(250, b"one"), (251, b"two")],
            ),
            (b"\r\n", &[b""], &[(0, b"")]),
            (b"250 partial", &[], &[]),
        ];
        for (input, want_lines, want_replies) in cases {
            for pieces in [0, 1, 2, 3, 7] {
                let (lines, replies, disabled) = run(input, pieces);
                assert!(!disabled);
                let want_lines: Vec<Vec<u8>> = want_lines.iter().map(|l| l.to_vec()).collect();
                let want_replies: Vec<(u32, Vec<u8>)> =
                    want_replies.iter().map(|(c, t)| (*c, t.to_vec())).collect();
                assert_eq!(lines, want_lines, "{input:?} pieces {pieces}");
                assert_eq!(replies, want_replies, "{input:?} pieces {pieces}");
            }
        }
    }

    #[test]
    fn long_line_is_truncated() {
        let mut input = b"250 ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 15000 - 4));
        input.extend_from_slice(b"\r\n250 next\r\n");
        for pieces in [0, 1, 1000, 4096] {
            let (lines, replies, disabled) = run(&input, pieces);
            assert!(!disabled);
            assert_eq!(lines.len(), 2);
            assert_eq!(lines[0].len(), LINE_LIMIT);
            assert_eq!(replies[0].0, 250);
            assert_eq!(replies[0].1.len(), LINE_LIMIT - 4);
            assert_eq!(replies[1], (250, b"next".to_vec()));
        }
    }

    #[test]
    fn over_long_line_disables_input() {
        let mut input = b"220 ".to_vec();
        input.extend(std::iter::repeat_n(b'y', 30000 - 4));
        input.extend_from_slice(b"\r\n250 never\r\n");
        for pieces in [0, 1, 999, 8192] {
            let (lines, replies, disabled) = run(&input, pieces);
            assert!(disabled, "pieces {pieces}");
            assert_eq!(lines.len(), 1);
            assert_eq!(replies, vec![(220, [b'y'].repeat(LINE_LIMIT - 4))]);
        }
        // Exactly at the limit: 10240 kept + 10240 discarded disables.
        let mut input = vec![b'z'; 2 * LINE_LIMIT];
        input.extend_from_slice(b"\n");
        let (_, _, disabled) = run(&input, 0);
        assert!(disabled);
        // One byte less: accepted.
        let mut input = vec![b'z'; 2 * LINE_LIMIT - 1];
        input.extend_from_slice(b"\n");
        let (lines, _, disabled) = run(&input, 0);
        assert!(!disabled);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn disabled_continuation_line_leaves_reply_incomplete() {
        let mut input = b"220-".to_vec();
        input.extend(std::iter::repeat_n(b'y', 25000));
        let (lines, replies, disabled) = run(&input, 0);
        assert!(disabled);
        assert_eq!(lines.len(), 1);
        assert!(replies.is_empty());
    }

    /// Reply of `texts` as continuation lines and a final line (code 554).
    fn reply_of(texts: &[usize]) -> Vec<u8> {
        let mut input = Vec::new();
        for (i, &n) in texts.iter().enumerate() {
            let sep = if i + 1 < texts.len() { b'-' } else { b' ' };
            input.extend_from_slice(b"554");
            input.push(sep);
            input.extend(std::iter::repeat_n(b'x', n));
            input.extend_from_slice(b"\r\n");
        }
        input
    }

    #[test]
    fn joined_text_appends_whole_lines_while_shorter_than_the_limit() {
        // (line text lengths, joined text as (x-run, separator) pieces);
        // lengths checked against Postfix 3.7's smtp-source.
        let x = |n: usize| "x".repeat(n);
        let cases: &[(&[usize], String)] = &[
            (&[6000, 6000], format!("{}\n{}", x(6000), x(6000))),
            // A line over the limit keeps LINE_LIMIT bytes, "554-" included.
            (&[10239, 5], format!("{}\n{}", x(10236), x(5))),
            (&[10238, 5, 7], format!("{}\n{}", x(10236), x(5))),
            (&[3000; 5], [x(3000), x(3000), x(3000), x(3000)].join("\n")),
            // 10239 bytes joined: the newline still goes on, the next line not.
            (&[6000, 4238, 5], format!("{}\n{}\n", x(6000), x(4238))),
            // Exactly at the limit: neither newline nor next line.
            (&[6000, 4239, 5], format!("{}\n{}", x(6000), x(4239))),
            (
                &[6000, 4237, 5],
                format!("{}\n{}\n{}", x(6000), x(4237), x(5)),
            ),
            (&[0, 1], "\nx".to_string()),
        ];
        for (texts, want) in cases {
            let input = reply_of(texts);
            for pieces in [0, 1, 333] {
                let (_, replies, _) = run(&input, pieces);
                assert_eq!(replies.len(), 1, "{texts:?}");
                assert_eq!(replies[0].0, 554);
                assert!(
                    replies[0].1 == want.as_bytes(),
                    "{texts:?} in {pieces}-byte pieces"
                );
            }
        }
    }

    #[test]
    fn joined_text_is_bounded() {
        // Many long lines: the text stops growing one line past the limit.
        let (_, replies, _) = run(&reply_of(&[10000; 50]), 0);
        assert_eq!(replies[0].1.len(), 10000 * 2 + 1);
    }
}
