//! CHUNKING (RFC 3030): the `BDAT <size> [LAST]` command and the exact
//! byte counting of its chunk, plus the dump transformation that makes a
//! BDAT message dump exactly like the same message sent with DATA.
//!
//! Sans-IO: [`parse_args`] reads the command arguments; a [`Chunk`] is fed
//! whatever bytes are buffered and says how many belong to the chunk, so
//! any split of the input over reads gives the same result. BDAT content
//! is binary-transparent: no dot-stuffing, no end marker, and the bytes
//! after the chunk are the next command (RFC 3030 §2).

use memchr::memchr;

/// Reply to a syntax error in the BDAT arguments (the chunk length is then
/// unknown, so the following bytes are read as commands, as Postfix does).
pub const SYNTAX: &[u8] = b"501 5.5.4 Syntax: BDAT count [LAST]\r\n";
/// Reply to DATA in a transaction that already used BDAT, or BDAT after
/// DATA was refused (RFC 3030 §2: the two are not mixed).
pub const MIXED: &[u8] = b"503 5.5.1 Error: BDAT and DATA cannot be mixed\r\n";

/// Parsed `BDAT` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdatArgs {
    /// Exact chunk length in bytes.
    pub size: u64,
    /// `LAST`: this chunk ends the message.
    pub last: bool,
}

/// Why the arguments were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdatError {
    /// Not `1*DIGIT [SP "LAST"]`.
    Syntax,
}

impl std::fmt::Display for BdatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BDAT syntax error")
    }
}

impl std::error::Error for BdatError {}

/// Parse `chunk-size [SP end-marker]` (RFC 3030 §4: `bdat-cmd ::= "BDAT"
/// SP chunk-size [ SP end-marker ] CR LF`, `chunk-size ::= 1*DIGIT`,
/// `end-marker ::= "LAST"`). Separators may be runs of spaces or tabs;
/// `LAST` is case-insensitive. A size that does not fit in 64 bits is a
/// syntax error (no client can send that much anyway).
pub fn parse_args(args: &[u8]) -> Result<BdatArgs, BdatError> {
    let mut words = args
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let size = words.next().ok_or(BdatError::Syntax)?;
    if !size.iter().all(u8::is_ascii_digit) {
        return Err(BdatError::Syntax);
    }
    let size = size.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    let size = size.ok_or(BdatError::Syntax)?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(BdatError::Syntax),
    };
    if words.next().is_some() {
        return Err(BdatError::Syntax);
    }
    Ok(BdatArgs { size, last })
}

/// Counts the bytes of one chunk as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    remaining: u64,
}

impl Chunk {
    /// A chunk of `size` bytes, none received yet.
    pub fn new(size: u64) -> Self {
        Chunk { remaining: size }
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// True once every byte has been taken.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Take the chunk's bytes from the front of `buffered`: returns how many
    /// of them belong to the chunk (the rest is the next command).
    pub fn take(&mut self, buffered: usize) -> usize {
        let n = usize::try_from(self.remaining).map_or(buffered, |r| r.min(buffered));
        self.remaining -= n as u64;
        n
    }
}

/// The dump form of chunk content: every CR removed, as for DATA (smtp-sink
/// docs/smtp-sink.md §16.4: CR LF becomes LF, bare CRs vanish), but no dot-unstuffing
/// since BDAT content is not dot-stuffed. Whole CR-free runs are passed to
/// `out` (memchr jumps, no per-byte calls).
///
/// A DATA dump ends with the LF of the terminating `.` line; call
/// [`dump_end`] after the LAST chunk to append the same.
pub fn dump_transform(content: &[u8], mut out: impl FnMut(&[u8])) {
    let mut rest = content;
    while let Some(i) = memchr(b'\r', rest) {
        if i > 0 {
            out(&rest[..i]);
        }
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        out(rest);
    }
}

/// What ends a BDAT dump after the LAST chunk: the LF that a DATA dump gets
/// from its terminating `.` CR LF line, so both dumps are identical.
pub fn dump_end() -> &'static [u8] {
    b"\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::DataScanner;

    #[test]
    fn args() {
        let ok = |size, last| Ok(BdatArgs { size, last });
        let cases: &[(&[u8], Result<BdatArgs, BdatError>)] = &[
            (b"0", ok(0, false)),
            (b"0 LAST", ok(0, true)),
            (b"1234", ok(1234, false)),
            (b"1234 LAST", ok(1234, true)),
            (b"1234 last", ok(1234, true)),
            (b"  7\tLaSt  ", ok(7, true)),
            (b"007", ok(7, false)),
            (b"18446744073709551615", ok(u64::MAX, false)),
            (b"18446744073709551616", Err(BdatError::Syntax)),
            (b"", Err(BdatError::Syntax)),
            (b"LAST", Err(BdatError::Syntax)),
            (b"-1", Err(BdatError::Syntax)),
            (b"+1", Err(BdatError::Syntax)),
            (b"1x", Err(BdatError::Syntax)),
            (b"1 LASTX", Err(BdatError::Syntax)),
            (b"1 LAST x", Err(BdatError::Syntax)),
            (b"1 2", Err(BdatError::Syntax)),
            (b"\xff", Err(BdatError::Syntax)),
        ];
        for (args, want) in cases {
            assert_eq!(
                parse_args(args),
                *want,
                "{:?}",
                String::from_utf8_lossy(args)
            );
        }
    }

    /// Simulate a session reading `BDAT` chunks followed by commands from
    /// `input` delivered in `pieces`; returns (chunk contents, trailing
    /// command bytes).
    fn frame(input: &[u8], sizes: &[u64], piece: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut feed = input.chunks(piece.max(1));
        let mut chunks = Vec::new();
        for &size in sizes {
            let mut chunk = Chunk::new(size);
            let mut got = Vec::new();
            while !chunk.is_complete() {
                if buf.is_empty() {
                    buf.extend_from_slice(feed.next().expect("input ran out"));
                }
                let n = chunk.take(buf.len());
                got.extend_from_slice(&buf[..n]);
                buf.drain(..n);
            }
            chunks.push(got);
        }
        for rest in feed {
            buf.extend_from_slice(rest);
        }
        (chunks, buf)
    }

    #[test]
    fn exact_byte_counts_whatever_the_split() {
        // Chunk content that looks like SMTP must stay content.
        let c1: &[u8] = b"Subject: x\r\n\r\n.\r\nQUIT\r\n";
        let c2: &[u8] = b"\r\n.\r\n..\r\x00\xff";
        let c3: &[u8] = b"";
        let tail: &[u8] = b"NOOP\r\nQUIT\r\n";
        let input = [c1, c2, c3, tail].concat();
        let sizes = [c1.len() as u64, c2.len() as u64, 0];
        for piece in [input.len(), 7, 3, 1] {
            let (chunks, rest) = frame(&input, &sizes, piece);
            assert_eq!(
                chunks,
                vec![c1.to_vec(), c2.to_vec(), c3.to_vec()],
                "piece {piece}"
            );
            assert_eq!(rest, tail, "piece {piece}");
        }
    }

    #[test]
    fn take_never_overruns() {
        let mut c = Chunk::new(5);
        assert_eq!(c.take(0), 0);
        assert_eq!(c.take(3), 3);
        assert_eq!(c.remaining(), 2);
        assert_eq!(c.take(100), 2);
        assert!(c.is_complete());
        assert_eq!(c.take(100), 0);
        let mut huge = Chunk::new(u64::MAX);
        assert_eq!(huge.take(1 << 20), 1 << 20);
        assert_eq!(huge.remaining(), u64::MAX - (1 << 20));
    }

    /// Dump of a message sent with DATA (dot-stuffed, terminated).
    fn data_dump(content: &[u8]) -> Vec<u8> {
        let mut stuffed = Vec::new();
        for line in content.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        stuffed.extend_from_slice(b".\r\n");
        let mut out = Vec::new();
        let end = DataScanner::new().scan_dump(&stuffed, |run| out.extend_from_slice(run));
        assert_eq!(end, Some(stuffed.len()));
        out
    }

    /// Dump of the same message sent as BDAT chunks of `piece` bytes.
    fn bdat_dump(content: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in content.chunks(piece.max(1)) {
            dump_transform(chunk, |run| {
                assert!(!run.is_empty() && !run.contains(&b'\r'));
                out.extend_from_slice(run)
            });
        }
        out.extend_from_slice(dump_end());
        out
    }

    #[test]
    fn dump_matches_data_dump() {
        let messages: &[&[u8]] = &[
            b"",
            b"x\r\n",
            b"Subject: t\r\n\r\nbody\r\n",
            b".leading dot\r\n..two\r\n.\r\nmid\r\n",
            b"bare\rcr\r\r\nand\nlf\r\n",
            b"\xff\x00binary\r\n",
            b"\r\n\r\n\r\n",
        ];
        for m in messages {
            let want = data_dump(m);
            for piece in [m.len().max(1), 4, 2, 1] {
                assert_eq!(
                    bdat_dump(m, piece),
                    want,
                    "{:?} piece {piece}",
                    String::from_utf8_lossy(m)
                );
            }
        }
    }
}
