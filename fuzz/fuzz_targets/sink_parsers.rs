//! Differential fuzzing of the sink's command-line reader (with command
//! splitting) and DATA scanner:
//! the memchr-based implementations, fed the input in fuzzer-chosen pieces,
//! must agree with a per-byte reference of Postfix's rules (docs/smtp-sink.md
//! §8.1 and §10/§16.4) and must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpstone::proto::data::DataScanner;
use smtpstone::proto::line::{split_command, Frame, LineReader, LINE_BUFFER_LIMIT};

/// Split `data` into pieces whose sizes come from `seed` (1..=64 bytes).
fn pieces(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut x = u32::from(seed) | 1;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x % 64 + 1) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// Command lines per byte, as Postfix reads them: a line ends at CR LF; a
/// byte arriving while 2048 bytes are held ends the session.
fn reference_lines(data: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut lines = Vec::new();
    let mut cur = Vec::new();
    for &b in data {
        if cur.len() >= LINE_BUFFER_LIMIT {
            return (lines, true);
        }
        cur.push(b);
        if cur.ends_with(b"\r\n") {
            lines.push(std::mem::take(&mut cur));
        }
    }
    (lines, false)
}

fn fast_lines(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut reader = LineReader::new();
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&buf) {
                Frame::Line(n) => {
                    // The parser's view of the line: a NUL ends the text,
                    // the command token holds no separator.
                    let cl = split_command(&buf[..n]);
                    assert!(!cl.text.contains(&0));
                    assert!(!cl.token.iter().any(|&b| b == b' ' || b == b'\t'));
                    lines.push(buf[..n].to_vec());
                    buf.drain(..n);
                }
                Frame::Partial => break,
                Frame::TooLong => return (lines, true),
            }
        }
    }
    (lines, false)
}

/// DATA per byte (docs/smtp-sink.md §10 state machine, §16.4 dump rule): the end offset and
/// the dump bytes.
fn reference_data(data: &[u8]) -> (Option<usize>, Vec<u8>) {
    const END: &[u8] = b"\r\n.\r\n";
    let mut state = 2usize; // CRLF
    let mut dump = Vec::new();
    for (i, &b) in data.iter().enumerate() {
        let next = if b == END[state] {
            state + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if b != b'\r' && next != 3 {
            dump.push(b);
        }
        state = next;
        if state == 5 {
            return (Some(i + 1), dump);
        }
    }
    (None, dump)
}

fn fast_data(chunks: &[&[u8]]) -> (Option<usize>, Vec<u8>) {
    let mut scanner = DataScanner::new();
    let mut dump = Vec::new();
    let mut offset = 0;
    for chunk in chunks {
        if let Some(n) = scanner.scan_dump(chunk, |run| dump.extend_from_slice(run)) {
            return (Some(offset + n), dump);
        }
        offset += chunk.len();
    }
    (None, dump)
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let chunks = pieces(data, seed);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();

    let want = reference_lines(data);
    assert_eq!(fast_lines(&[data]), want, "lines, whole");
    assert_eq!(fast_lines(&chunks), want, "lines, pieces");
    assert_eq!(fast_lines(&bytes), want, "lines, bytes");

    let want = reference_data(data);
    assert_eq!(fast_data(&[data]), want, "data, whole");
    assert_eq!(fast_data(&chunks), want, "data, pieces");
    assert_eq!(fast_data(&bytes), want, "data, bytes");
});
