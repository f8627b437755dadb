//! Command-line framing and splitting, as Postfix's smtp-sink does it.
//!
//! Sans-IO: the caller keeps received bytes in one contiguous buffer and asks
//! [`LineReader::next`] whether it starts with a complete line. The reader
//! remembers how far it already searched, so a line that trickles in one
//! byte at a time is still searched only once, and the search never looks
//! beyond [`LINE_BUFFER_LIMIT`] bytes (bounded work and memory whatever the
//! peer sends).
//!
//! Rules (docs/smtp-sink.md §8.1):
//! * a line ends only at the byte pair CR LF (RFC 5321 §2.3.8); a bare CR or
//!   bare LF is an ordinary byte;
//! * a NUL byte ends the line content for parsing ([`split_command`]);
//! * the sink accumulates at most 2048 bytes (CR and LF included); a byte that
//!   arrives while 2048 bytes are held without a CR LF makes the line "too
//!   long" and ends the session. So the longest accepted line is 2046 bytes
//!   plus CR LF.

use memchr::memchr;

/// Size of smtp-sink's command buffer, CR LF included. RFC 5321 §4.5.3.1.4
/// only requires 512; Postfix's sink allows 2048 and we follow it.
pub const LINE_BUFFER_LIMIT: usize = 2048;

/// What the start of the buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of this many bytes, the final CR LF included.
    Line(usize),
    /// No complete line yet: read more.
    Partial,
    /// More than [`LINE_BUFFER_LIMIT`] bytes without a CR LF: give up.
    TooLong,
}

/// Incremental CR LF finder for the front of a growing buffer.
#[derive(Debug, Clone, Default)]
pub struct LineReader {
    /// Bytes at the front of the buffer already searched without success.
    scanned: usize,
}

impl LineReader {
    /// A reader at the start of a line.
    pub fn new() -> Self {
        LineReader::default()
    }

    /// Forget any partial search (the caller dropped its buffer).
    pub fn reset(&mut self) {
        self.scanned = 0;
    }

    /// Look for a complete line at the start of `buf`.
    ///
    /// Between calls the caller either consumed exactly the `n` bytes of a
    /// returned `Frame::Line(n)`, or only appended to `buf`.
    pub fn next(&mut self, buf: &[u8]) -> Frame {
        let window = &buf[..buf.len().min(LINE_BUFFER_LIMIT)];
        // An LF at `scanned - 1` or earlier was already rejected; an LF at
        // `scanned` may pair with a CR just before it.
        let mut from = self.scanned.min(window.len());
        while let Some(i) = memchr(b'\n', &window[from..]) {
            let lf = from + i;
            if lf > 0 && window[lf - 1] == b'\r' {
                self.scanned = 0;
                return Frame::Line(lf + 1);
            }
            from = lf + 1;
        }
        if buf.len() > LINE_BUFFER_LIMIT {
            self.scanned = 0;
            Frame::TooLong
        } else {
            self.scanned = window.len();
            Frame::Partial
        }
    }
}

/// A command line split the way smtp-sink splits it (docs/smtp-sink.md §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The line without its CR LF, cut at the first NUL.
    pub text: &'a [u8],
    /// The command word (empty for an empty or whitespace-only line).
    pub token: &'a [u8],
    /// Everything after the single SPACE/TAB that ended the token (further
    /// whitespace kept); not yet sanitised.
    pub args: &'a [u8],
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Split a line (with or without its final CR LF) into token and arguments.
pub fn split_command(line: &[u8]) -> CommandLine<'_> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let text = match memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let start = text
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(text.len());
    let rest = &text[start..];
    let end = rest.iter().position(|&b| is_blank(b)).unwrap_or(rest.len());
    let token = &rest[..end];
    let args = if end < rest.len() {
        &rest[end + 1..]
    } else {
        &rest[end..]
    };
    CommandLine { text, token, args }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Frames = Vec<Result<Vec<u8>, Frame>>;
    type SplitCase<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);

    /// Trivially correct reference: the first CR LF within the limit.
    fn reference(buf: &[u8]) -> Frame {
        for i in 1..buf.len().min(LINE_BUFFER_LIMIT) {
            if buf[i - 1] == b'\r' && buf[i] == b'\n' {
                return Frame::Line(i + 1);
            }
        }
        if buf.len() > LINE_BUFFER_LIMIT {
            Frame::TooLong
        } else {
            Frame::Partial
        }
    }

    /// Feed `input` in the given pieces; collect every frame (lines as
    /// byte strings, and a final marker).
    fn frames(input: &[u8], cuts: &[usize]) -> Frames {
        let mut reader = LineReader::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            buf.extend_from_slice(&input[pos..end]);
            pos = end;
            loop {
                match reader.next(&buf) {
                    Frame::Line(n) => {
                        assert_eq!(reference(&buf), Frame::Line(n));
                        out.push(Ok(buf[..n].to_vec()));
                        buf.drain(..n);
                    }
                    Frame::Partial => {
                        assert_eq!(reference(&buf), Frame::Partial);
                        break;
                    }
                    Frame::TooLong => {
                        assert_eq!(reference(&buf), Frame::TooLong);
                        out.push(Err(Frame::TooLong));
                        return out;
                    }
                }
            }
        }
        out.push(Err(Frame::Partial));
        out
    }

    fn lines(v: &[&[u8]], last: Frame) -> Frames {
        let mut out: Vec<_> = v.iter().map(|l| Ok(l.to_vec())).collect();
        out.push(Err(last));
        out
    }

    fn check(input: &[u8], want: &[Result<Vec<u8>, Frame>]) {
        assert_eq!(frames(input, &[]), want, "whole {input:?}");
        for cut in 0..=input.len() {
            assert_eq!(frames(input, &[cut]), want, "cut {cut}");
        }
        let ones: Vec<usize> = (1..input.len()).collect();
        assert_eq!(frames(input, &ones), want, "byte at a time");
    }

    #[test]
    fn framing_table() {
        let p = Frame::Partial;
        let cases: Vec<(&[u8], Frames)> = vec![
            (b"NOOP\r\n", lines(&[b"NOOP\r\n"], p)),
            (b"NOOP\n", lines(&[], p)),
            (b"NOOP\nHELO x\r\n", lines(&[b"NOOP\nHELO x\r\n"], p)),
            (b"NOOP\r\r\n", lines(&[b"NOOP\r\r\n"], p)),
            (b"a\rb\r\n\r\nc", lines(&[b"a\rb\r\n", b"\r\n"], p)),
            (b"\n\r\n", lines(&[b"\n\r\n"], p)),
            (b"", lines(&[], p)),
            (b"x\r", lines(&[], p)),
        ];
        for (input, want) in cases {
            check(input, &want);
        }
    }

    #[test]
    fn length_limit() {
        // 2046 bytes + CR LF is the longest line accepted.
        let mut ok = vec![b'a'; 2046];
        ok.extend_from_slice(b"\r\n");
        ok.extend_from_slice(b"NOOP\r\n");
        assert_eq!(
            frames(&ok, &[1000, 2047]),
            lines(&[&ok[..2048], b"NOOP\r\n"], Frame::Partial)
        );
        // 2047 bytes + CR LF: the LF arrives while 2048 bytes are held.
        let mut long = vec![b'a'; 2047];
        long.extend_from_slice(b"\r\n");
        assert_eq!(frames(&long, &[]), vec![Err(Frame::TooLong)]);
        let ones: Vec<usize> = (1..long.len()).collect();
        assert_eq!(frames(&long, &ones), vec![Err(Frame::TooLong)]);
        // Exactly 2048 bytes without CR LF: still waiting for the next byte.
        assert_eq!(frames(&[b'a'; 2048], &[]), vec![Err(Frame::Partial)]);
        assert_eq!(frames(&[b'a'; 2049], &[]), vec![Err(Frame::TooLong)]);
    }

    #[test]
    fn random_inputs_match_reference() {
        // Fixed-seed xorshift: reproducible, no dependency on `rand` here.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let len = (next() % 3000) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 8 {
                    0 => b'\r',
                    1 => b'\n',
                    _ => b'a',
                })
                .collect();
            let mut cuts: Vec<usize> = (0..(next() % 6))
                .map(|_| (next() as usize) % (len + 1))
                .collect();
            cuts.sort_unstable();
            // frames() asserts agreement with the reference at every step.
            let got = frames(&input, &cuts);
            assert_eq!(got, frames(&input, &[]));
        }
    }

    #[test]
    fn split_table() {
        let cases: &[SplitCase] = &[
            (b"NOOP\r\n", b"NOOP", b"NOOP", b""),
            (b"MAIL FROM:<a>\r\n", b"MAIL FROM:<a>", b"MAIL", b"FROM:<a>"),
            (b"  \tHELO   a b", b"  \tHELO   a b", b"HELO", b"  a b"),
            (b"EHLO\tx", b"EHLO\tx", b"EHLO", b"x"),
            (b"", b"", b"", b""),
            (b"   ", b"   ", b"", b""),
            (b"NOOP\0junk\r\n", b"NOOP", b"NOOP", b""),
            (b"\0NOOP", b"", b"", b""),
            (b"NOOP\r", b"NOOP\r", b"NOOP\r", b""),
            (b"NOOP\nHELO x", b"NOOP\nHELO x", b"NOOP\nHELO", b"x"),
            (b"NOOP ", b"NOOP ", b"NOOP", b""),
        ];
        for &(line, text, token, args) in cases {
            let got = split_command(line);
            assert_eq!(
                (got.text, got.token, got.args),
                (text, token, args),
                "line {line:?}"
            );
        }
    }
}
