//! BDAT framing for the sending side (RFC 3030 CHUNKING), sans-IO.
//!
//! A message is sent as `BDAT <n>\r\n` followed by exactly n octets, the
//! final chunk as `BDAT <n> LAST\r\n` (RFC 3030 §2). Chunk data is sent
//! as-is: no dot-stuffing and no end-of-data line (§2: "no special
//! treatment" of the data), so the body must be the *unstuffed* message
//! ([`dot_unstuff`]).
//!
//! The message lives in several buffers (per-message headers, the shared
//! body), which must not be copied per message. [`Framer`] therefore
//! produces a plan: command lines in its own reusable buffer, plus
//! references into the caller's parts, in wire order and grouped by chunk,
//! ready for vectored writes. The buffers are reused from message to
//! message, so the steady state allocates nothing.

use std::ops::Range;

use memchr::memchr_iter;

/// Default chunk size of `--bdat` without a value: 64 KiB keeps a typical
/// message in one chunk while bounding the server's per-chunk buffer.
pub const DEFAULT_CHUNK: usize = 64 * 1024;

/// One contiguous run of bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A command line (with CRLF) in [`Framer::cmds`].
    Cmd(Range<usize>),
    /// Bytes `range` of the caller's part number `part`.
    Part {
        /// Index into the caller's parts.
        part: usize,
        /// Byte range within that part.
        range: Range<usize>,
    },
}

/// One BDAT command and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The command line without CRLF, in [`Framer::cmds`] (for `-v`).
    pub line: Range<usize>,
    /// Its pieces (command first) in [`Framer::pieces`].
    pub pieces: Range<usize>,
    /// Data octets in this chunk.
    pub size: usize,
    /// The `LAST` chunk.
    pub last: bool,
}

/// Reusable BDAT framing plan.
#[derive(Debug, Default)]
pub struct Framer {
    cmds: Vec<u8>,
    pieces: Vec<Piece>,
    chunks: Vec<Chunk>,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plan the chunks of a message made of parts with lengths `parts`
    /// (in order), in chunks of at most `size` octets (`size` ≥ 1; 0 is
    /// treated as 1). An empty message is one `BDAT 0 LAST`.
    pub fn frame(&mut self, parts: &[usize], size: usize) {
        use std::io::Write as _;
        let size = size.max(1);
        self.cmds.clear();
        self.pieces.clear();
        self.chunks.clear();
        let total: usize = parts.iter().sum();
        let mut part = 0;
        let mut offset = 0; // within `part`
        let mut sent = 0;
        loop {
            let n = size.min(total - sent);
            let last = sent + n == total;
            let start = self.cmds.len();
            // Writing to a Vec cannot fail.
            let _ = write!(self.cmds, "BDAT {n}{}", if last { " LAST" } else { "" });
            let line = start..self.cmds.len();
            self.cmds.extend_from_slice(b"\r\n");
            let first_piece = self.pieces.len();
            self.pieces.push(Piece::Cmd(start..self.cmds.len()));
            let mut left = n;
            while left > 0 {
                let avail = parts[part] - offset;
                if avail == 0 {
                    part += 1;
                    offset = 0;
                    continue;
                }
                let take = avail.min(left);
                self.pieces.push(Piece::Part {
                    part,
                    range: offset..offset + take,
                });
                offset += take;
                left -= take;
            }
            sent += n;
            self.chunks.push(Chunk {
                line,
                pieces: first_piece..self.pieces.len(),
                size: n,
                last,
            });
            if last {
                break;
            }
        }
    }

    /// The command bytes the pieces refer to.
    pub fn cmds(&self) -> &[u8] {
        &self.cmds
    }

    /// All pieces in wire order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The chunks in order (the last one has `last` set).
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The bytes of `piece`, given the caller's parts.
    pub fn bytes<'a>(&'a self, piece: &Piece, parts: &[&'a [u8]]) -> &'a [u8] {
        match piece {
            Piece::Cmd(r) => &self.cmds[r.clone()],
            Piece::Part { part, range } => &parts[*part][range.clone()],
        }
    }
}

/// Undo SMTP dot-stuffing (RFC 5321 §4.5.2) of DATA content: a `.` at the
/// start of a line (the start of `stuffed`, or right after an LF) is
/// removed. This is the exact inverse of smtp-source's `-F` stuffing, which
/// doubles the `.` of every line that starts with one; bodies without such
/// lines come back unchanged.
pub fn dot_unstuff(stuffed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stuffed.len());
    let mut start = 0;
    let starts = std::iter::once(0).chain(memchr_iter(b'\n', stuffed).map(|p| p + 1));
    for pos in starts {
        if stuffed.get(pos) == Some(&b'.') {
            out.extend_from_slice(&stuffed[start..pos]);
            start = pos + 1;
        }
    }
    out.extend_from_slice(&stuffed[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference BDAT reader: parse a framed stream fed in `step`-byte
    /// pieces; return (chunk sizes, LAST flags, data).
    fn unframe(wire: &[u8], step: usize) -> (Vec<usize>, Vec<bool>, Vec<u8>) {
        let mut sizes = Vec::new();
        let mut lasts = Vec::new();
        let mut data = Vec::new();
        let mut buf = Vec::new();
        let mut want_data = 0usize;
        let step = if step == 0 { wire.len().max(1) } else { step };
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                if want_data > 0 {
                    let take = want_data.min(buf.len());
                    data.extend(buf.drain(..take));
                    want_data -= take;
                    if want_data > 0 {
                        break;
                    }
                    continue;
                }
                let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                    break;
                };
                let line = String::from_utf8(buf.drain(..end + 2).collect()).unwrap();
                let mut words = line.trim_end().split(' ');
                assert_eq!(words.next(), Some("BDAT"), "{line:?}");
                let n: usize = words.next().unwrap().parse().unwrap();
                let last = match words.next() {
                    Some("LAST") => true,
                    None => false,
                    other => panic!("{other:?}"),
                };
                assert!(!lasts.last().copied().unwrap_or(false), "data after LAST");
                sizes.push(n);
                lasts.push(last);
                want_data = n;
            }
        }
        assert_eq!(want_data, 0);
        (sizes, lasts, data)
    }

    fn wire(framer: &Framer, parts: &[&[u8]]) -> Vec<u8> {
        framer
            .pieces()
            .iter()
            .flat_map(|p| framer.bytes(p, parts).iter().copied())
            .collect()
    }

    #[test]
    fn framing_table() {
        let head = b"From: <a@b>\r\n\r\n";
        let body = b"line 1\r\n.line 2\r\nline 3\r\n";
        /// (message parts, chunk size, expected chunk sizes)
        type Case<'a> = (Vec<&'a [u8]>, usize, Vec<usize>);
        let cases: Vec<Case> = vec![
            (
                vec![head, body],
                DEFAULT_CHUNK,
                vec![head.len() + body.len()],
            ),
            (vec![head, body], 10, vec![10, 10, 10, 10]),
            (vec![head, body], 15, vec![15, 15, 10]),
            (vec![head, body], 41, vec![40]),
            (vec![head, body], 40, vec![40]),
            (vec![head, body], 39, vec![39, 1]),
            (vec![head, body], 1, vec![1; 40]),
            (vec![&b""[..], body], 8, vec![8, 8, 8, 1]),
            (vec![head, &b""[..]], 100, vec![15]),
            (vec![&b""[..], &b""[..]], 100, vec![0]),
            (vec![], 100, vec![0]),
            (vec![&b"abc"[..], &b""[..], &b"def"[..]], 2, vec![2, 2, 2]),
            (vec![&b"x"[..]], 0, vec![1]),
        ];
        let mut framer = Framer::new();
        for (parts, size, want_sizes) in &cases {
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            framer.frame(&lens, *size);
            let w = wire(&framer, parts);
            let want_data: Vec<u8> = parts.concat();
            for step in [0, 1, 3, 16] {
                let (sizes, lasts, data) = unframe(&w, step);
                assert_eq!(&sizes, want_sizes, "{parts:?} size {size}");
                assert_eq!(data, want_data);
                let mut want_lasts = vec![false; sizes.len()];
                *want_lasts.last_mut().unwrap() = true;
                assert_eq!(lasts, want_lasts);
            }
            // Chunk records agree with the wire.
            let chunks = framer.chunks();
            assert_eq!(chunks.len(), want_sizes.len());
            for (c, &n) in chunks.iter().zip(want_sizes) {
                assert_eq!(c.size, n);
                let line = &framer.cmds()[c.line.clone()];
                let want_line = if c.last {
                    format!("BDAT {n} LAST")
                } else {
                    format!("BDAT {n}")
                };
                assert_eq!(line, want_line.as_bytes());
                assert!(matches!(framer.pieces()[c.pieces.start], Piece::Cmd(_)));
            }
            // No empty data pieces.
            assert!(framer
                .pieces()
                .iter()
                .all(|p| !matches!(p, Piece::Part { range, .. } if range.is_empty())));
        }
    }

    #[test]
    fn exact_bytes() {
        let mut f = Framer::new();
        f.frame(&[3, 4], 5);
        assert_eq!(
            wire(&f, &[b"abc", b"defg"]),
            b"BDAT 5\r\nabcdeBDAT 2 LAST\r\nfg".to_vec()
        );
        f.frame(&[0], 5);
        assert_eq!(wire(&f, &[b""]), b"BDAT 0 LAST\r\n".to_vec());
    }

    #[test]
    fn unstuff_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"abc\r\n", b"abc\r\n"),
            (b"..x\r\n", b".x\r\n"),
            (b"a\r\n..b\r\n...c\r\n.\r\n", b"a\r\n.b\r\n..c\r\n\r\n"),
            (b"a\r\r\n..b", b"a\r\r\n.b"),
            (b"x.y\r\n", b"x.y\r\n"),
            (b".", b""),
            (b"\n.\n.", b"\n\n"),
        ];
        for (input, want) in cases {
            assert_eq!(dot_unstuff(input), *want, "{input:?}");
        }
    }

    #[test]
    fn unstuff_inverts_source_file_stuffing() {
        // smtp-source's -F rule: split at LF, double a leading dot, CRLF.
        let content: &[u8] = b"Subject: t\n\n.dot\n..two\n\nlast\r\nnoeol";
        let mut stuffed = Vec::new();
        let mut plain = Vec::new();
        for line in content.split(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
            stuffed.extend_from_slice(b"\r\n");
            plain.extend_from_slice(line);
            plain.extend_from_slice(b"\r\n");
        }
        assert_eq!(dot_unstuff(&stuffed), plain);
    }
}
