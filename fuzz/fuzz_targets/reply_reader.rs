//! Fuzzing of smtp-source's reply reader: whatever a server sends, in
//! whatever pieces, the parser never panics, never loops, keeps its memory
//! within the 10240-byte limits, and gives the same replies however the
//! input is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpstone::proto::reply::{Event, ReplyParser, LINE_LIMIT};

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    line: Vec<u8>,
    last: bool,
    disabled: bool,
    code: u32,
    text: Option<Vec<u8>>,
}

fn run(chunks: &[&[u8]]) -> Vec<Seen> {
    let mut parser = ReplyParser::new();
    let mut seen = Vec::new();
    for chunk in chunks {
        let mut off = 0;
        while off < chunk.len() {
            let (n, event) = parser.feed(&chunk[off..]);
            assert!(n > 0 || event.is_some(), "feed made no progress");
            assert!(n <= chunk.len() - off, "consumed more than given");
            off += n;
            if let Some(Event::Line { last, disabled }) = event {
                assert!(parser.line().len() <= LINE_LIMIT);
                assert!(parser.text().len() <= LINE_LIMIT);
                seen.push(Seen {
                    line: parser.line().to_vec(),
                    last,
                    disabled,
                    code: parser.code(),
                    text: last.then(|| parser.text().to_vec()),
                });
                if disabled {
                    // The source stops reading here (input shut down).
                    return seen;
                }
            }
        }
    }
    seen
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let step = usize::from(seed % 97) + 1;
    let pieces: Vec<&[u8]> = data.chunks(step).collect();
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    let whole = run(&[data]);
    assert_eq!(run(&pieces), whole, "pieces of {step}");
    assert_eq!(run(&bytes), whole, "one byte at a time");
});
