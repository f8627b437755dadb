//! Fuzz the sink's input parsers: the command-line reader (with command
//! splitting) and the DATA scanner, each fed the input in fuzzer-chosen
//! pieces, checked against trivially correct per-byte references.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpstone::proto::data::DataScanner;
use smtpstone::proto::line::{split_command, Frame, LineReader, LINE_BUFFER_LIMIT};

/// Reference line framing: first CR LF within the limit.
fn ref_frame(buf: &[u8]) -> Frame {
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

/// Reference DATA machine (spec §10, §16.4), one byte at a time.
fn ref_data(input: &[u8]) -> (Option<usize>, Vec<u8>) {
    const EOD: &[u8] = b"\r\n.\r\n";
    let mut state = 2usize;
    let mut dump = Vec::new();
    for (i, &b) in input.iter().enumerate() {
        let next = if b == EOD[state] {
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

fuzz_target!(|data: &[u8]| {
    // First byte picks the piece size (1..=256), the rest is the input.
    let Some((&size, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(size) + 1;

    // Command lines.
    let mut reader = LineReader::new();
    let mut buf: Vec<u8> = Vec::new();
    'lines: for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let frame = reader.next(&buf);
            assert_eq!(frame, ref_frame(&buf));
            match frame {
                Frame::Line(n) => {
                    let cl = split_command(&buf[..n]);
                    assert!(!cl.text.contains(&0));
                    assert!(!cl.token.iter().any(|&b| b == b' ' || b == b'\t'));
                    buf.drain(..n);
                }
                Frame::Partial => break,
                Frame::TooLong => break 'lines,
            }
        }
    }

    // DATA content.
    let want = ref_data(input);
    let mut scanner = DataScanner::new();
    let mut dump = Vec::new();
    let mut pos = 0;
    let mut end = None;
    for chunk in input.chunks(piece) {
        if let Some(n) = scanner.scan_dump(chunk, |run| dump.extend_from_slice(run)) {
            end = Some(pos + n);
            break;
        }
        pos += chunk.len();
    }
    assert_eq!((end, dump), want);
});
