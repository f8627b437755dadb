//! DATA content as smtp-sink reads it: end-of-data detection and the dump
//! transformation (docs/smtp-sink.md §10 and §16.4).
//!
//! The reference reads DATA with a per-byte state machine
//! (ANY, CR, CRLF, DOT, DOTCR; initial state CRLF). Its state after a byte is
//! exactly "the longest suffix of the stream so far that is a prefix of
//! `CR LF . CR LF`", with the stream taken to start with a virtual CR LF. So:
//! * the data ends right after the first occurrence of `CR LF . CR LF` in
//!   `CR LF` + content (RFC 5321 §4.1.1.4), found here with one SIMD
//!   substring search per buffer, carrying at most 4 bytes of state;
//! * the dump drops every CR and every `.` that moves the machine into state
//!   DOT, i.e. every `.` that follows CR LF (RFC 5321 §4.5.2 transparency),
//!   done with `memchr` jumps from CR to CR, emitting whole runs.
//!
//! Sans-IO: the caller feeds whatever it received; the scanner carries the
//! small state across calls, so any split of the input gives the same result.
//!
//! The sending side ([`content_writes`]) plans how a client writes the
//! content: in slices of bounded size, the final `.` line always in the same
//! write as the last body bytes (a small write behind a large one waits for
//! the peer's delayed ACK under Nagle's algorithm, RFC 1122 §4.2.3.4).

use memchr::memchr;
use memchr::memmem;

/// The end-of-data marker, including the CR LF that ends the last line.
pub const END_OF_DATA: &[u8] = b"\r\n.\r\n";

/// The line that ends DATA content after the body's final CRLF
/// (RFC 5321 §4.1.1.4).
pub const DOT_LINE: &[u8] = b".\r\n";

/// One write of a DATA body: the body bytes in `range`, then `tail`
/// ([`DOT_LINE`] on the last write, empty before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentWrite {
    /// The body bytes of this write.
    pub range: std::ops::Range<usize>,
    /// Bytes that follow them in the same write.
    pub tail: &'static [u8],
}

/// Split a body of `len` bytes into writes of at most `max` body bytes
/// (`max` > 0), each under its own time limit, with the final `.` line in
/// the last one. The slices are of equal size (to a byte), so the last one
/// is never a small remainder behind a large write.
pub fn content_writes(len: usize, max: usize) -> impl Iterator<Item = ContentWrite> {
    let count = len.div_ceil(max.max(1)).max(1);
    (0..count).map(move |i| ContentWrite {
        range: len * i / count..len * (i + 1) / count,
        tail: if i + 1 == count { DOT_LINE } else { b"" },
    })
}

/// States of the reference machine, as matched-prefix lengths of
/// [`END_OF_DATA`].
const ANY: u8 = 0;
const CR: u8 = 1;
const CRLF: u8 = 2;
const DOT: u8 = 3;
const DOTCR: u8 = 4;
const END: u8 = 5;

/// One step of the reference state machine (docs/smtp-sink.md §10 table).
fn step(state: u8, byte: u8) -> u8 {
    let expected = END_OF_DATA[state as usize];
    if byte == expected {
        state + 1
    } else if byte == b'\r' {
        CR
    } else {
        ANY
    }
}

/// End-of-data scanner with the dump transformation.
#[derive(Debug, Clone)]
pub struct DataScanner {
    state: u8,
}

impl Default for DataScanner {
    fn default() -> Self {
        DataScanner::new()
    }
}

impl DataScanner {
    /// A scanner at the start of the content (state CRLF: a `.` line right
    /// after the 354 reply ends the data).
    pub fn new() -> Self {
        DataScanner { state: CRLF }
    }

    /// Find the end of data in `buf`, continuing from the previous calls.
    /// Returns the number of bytes up to and including the terminating
    /// CR LF, or `None` when `buf` holds only content (all of it consumed).
    pub fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        // A terminator that starts in earlier input ends within the first 4
        // bytes of `buf`: follow those with the exact machine.
        let head = buf.len().min(END_OF_DATA.len() - 1);
        let mut state = self.state;
        for (i, &b) in buf[..head].iter().enumerate() {
            state = step(state, b);
            if state == END {
                self.state = CRLF;
                return Some(i + 1);
            }
        }
        // Any other terminator lies wholly inside `buf`.
        if let Some(pos) = memmem::find(buf, END_OF_DATA) {
            self.state = CRLF;
            return Some(pos + END_OF_DATA.len());
        }
        if buf.len() > head {
            state = suffix_state(buf);
        }
        self.state = state;
        None
    }

    /// Like [`find_end`](Self::find_end), and also hand the dump form of the
    /// consumed bytes to `out` in runs: every CR removed, and every `.`
    /// that follows CR LF (or starts the content) removed.
    pub fn scan_dump(&mut self, buf: &[u8], mut out: impl FnMut(&[u8])) -> Option<usize> {
        let start = self.state;
        let end = self.find_end(buf);
        let n = end.unwrap_or(buf.len());
        transform(start, &buf[..n], &mut out);
        end
    }
}

/// The machine state after `buf` (at least 4 bytes long), regardless of what
/// came before it.
fn suffix_state(buf: &[u8]) -> u8 {
    for k in (1..=DOTCR as usize).rev() {
        if buf.ends_with(&END_OF_DATA[..k]) {
            return k as u8;
        }
    }
    ANY
}

/// Emit the dump form of `buf` given the machine state before it.
fn transform(mut state: u8, buf: &[u8], out: &mut impl FnMut(&[u8])) {
    let mut emit = |run: &[u8]| {
        if !run.is_empty() {
            out(run)
        }
    };
    let mut i = 0;
    let mut run = 0;
    while i < buf.len() {
        if state == ANY {
            match memchr(b'\r', &buf[i..]) {
                None => i = buf.len(),
                Some(p) => {
                    let cr = i + p;
                    emit(&buf[run..cr]);
                    i = cr + 1;
                    run = i;
                    state = CR;
                }
            }
            continue;
        }
        let b = buf[i];
        let next = step(state, b);
        if b == b'\r' || next == DOT {
            // Dropped byte: close the run before it.
            emit(&buf[run..i]);
            run = i + 1;
        }
        state = if next == END { CRLF } else { next };
        i += 1;
    }
    emit(&buf[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_writes_put_the_dot_with_the_last_body_bytes() {
        const MAX: usize = 1 << 20;
        // The -l 1048576 body is 1048578 bytes: just over one slice.
        for len in [
            0,
            1,
            5,
            MAX - 1,
            MAX,
            MAX + 2,
            2 * MAX,
            2 * MAX + 1,
            5 * MAX + 7,
        ] {
            let writes: Vec<ContentWrite> = content_writes(len, MAX).collect();
            let last = writes.last().expect("at least one write");
            assert_eq!(last.tail, DOT_LINE, "len {len}");
            assert_eq!(last.range.end, len, "len {len}");
            let mut at = 0;
            for w in &writes {
                assert_eq!(w.range.start, at, "len {len}: contiguous");
                assert!(w.range.len() <= MAX, "len {len}: bounded");
                // No small write behind a large one: every slice of a
                // multi-write body is at least half a slice.
                if writes.len() > 1 {
                    assert!(w.range.len() >= MAX / 2, "len {len}: {:?}", w.range);
                }
                at = w.range.end;
            }
            assert!(writes[..writes.len() - 1].iter().all(|w| w.tail.is_empty()));
        }
    }

    /// Trivially correct reference: the docs/smtp-sink.md §10 machine one byte at a time, with
    /// the docs/smtp-sink.md §16.4 rule applied to each byte.
    fn reference(input: &[u8]) -> (Option<usize>, Vec<u8>) {
        let mut state = CRLF;
        let mut dump = Vec::new();
        for (i, &b) in input.iter().enumerate() {
            let next = match state {
                ANY | CR | CRLF | DOT | DOTCR if b == END_OF_DATA[state as usize] => state + 1,
                _ if b == b'\r' => CR,
                _ => ANY,
            };
            if b != b'\r' && next != DOT {
                dump.push(b);
            }
            state = next;
            if state == END {
                return (Some(i + 1), dump);
            }
        }
        (None, dump)
    }

    /// Feed `input` in pieces split at `cuts`; return where the data ended
    /// (offset in `input`) and the dump bytes up to there.
    fn run(input: &[u8], cuts: &[usize], dump: bool) -> (Option<usize>, Vec<u8>) {
        let mut scanner = DataScanner::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            let piece = &input[pos..end];
            let found = if dump {
                scanner.scan_dump(piece, |run| out.extend_from_slice(run))
            } else {
                scanner.find_end(piece)
            };
            if let Some(n) = found {
                return (Some(pos + n), out);
            }
            pos = end;
        }
        (None, out)
    }

    fn check(input: &[u8]) -> (Option<usize>, Vec<u8>) {
        let want = reference(input);
        let whole = run(input, &[], true);
        assert_eq!(whole, want, "whole {input:?}");
        assert_eq!(run(input, &[], false).0, want.0, "find_end {input:?}");
        for cut in 0..=input.len() {
            assert_eq!(run(input, &[cut], true), want, "cut {cut} of {input:?}");
            assert_eq!(run(input, &[cut], false).0, want.0, "cut {cut}");
        }
        let ones: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input, &ones, true), want, "bytes of {input:?}");
        assert_eq!(run(input, &ones, false).0, want.0, "bytes of {input:?}");
        want
    }

    #[test]
    fn end_table() {
        let cases: &[(&[u8], Option<usize>, &[u8])] = &[
            (b".\r\n", Some(3), b"\n"),
            (b"x\r\n.\r\n", Some(6), b"x\n\n"),
            (b"x\n.\n", None, b"x\n.\n"),
            (b"x\n.\n\r\n.\r\nQUIT\r\n", Some(9), b"x\n.\n\n\n"),
            (b"a\r\r\n.\r\n", Some(7), b"a\n\n"),
            (b"a\r\n.\r\r\n", None, b"a\n\n"),
            (b"a\r\n.\r\r\n.\r\n", Some(10), b"a\n\n\n"),
            (b"..x\r\n.\r\n", Some(8), b".x\n\n"),
            (b".x\r\n.\r\n", Some(7), b"x\n\n"),
            (b"\r\n.\r\n", Some(5), b"\n\n"),
            (b"\r\r\r\n.\r\n", Some(7), b"\n\n"),
            (b"x\r\n.\r\n.\r\n", Some(6), b"x\n\n"),
            (
                b"x\n.\ny\r\n.\r\r\n.z\r\n..\r\n.\r\n",
                Some(22),
                b"x\n.\ny\n\nz\n.\n\n",
            ),
            (
                b"\x00\xff\r\n\x80.\r\n.\r\n",
                Some(11),
                b"\x00\xff\n\x80.\n\n",
            ),
            (b"", None, b""),
            (b"abc", None, b"abc"),
        ];
        for &(input, end, dump) in cases {
            assert_eq!(check(input), (end, dump.to_vec()), "input {input:?}");
        }
    }

    #[test]
    fn random_inputs_match_reference() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 5 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'.',
                    3 => b'x',
                    _ => (next() % 256) as u8,
                })
                .collect();
            check(&input);
        }
        // Longer inputs with a few random cuts.
        for _ in 0..200 {
            let len = (next() % 5000) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 40 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'.',
                    _ => b'a',
                })
                .collect();
            let mut cuts: Vec<usize> = (0..(next() % 8))
                .map(|_| (next() as usize) % (len + 1))
                .collect();
            cuts.sort_unstable();
            assert_eq!(run(&input, &cuts, true), reference(&input));
            assert_eq!(run(&input, &cuts, false).0, reference(&input).0);
        }
    }
}
