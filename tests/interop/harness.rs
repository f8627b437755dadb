//! Tests of the shared test helpers themselves (reply framing, process
//! handling), so that a broken helper cannot make other tests pass vacuously.

use crate::common;

use common::*;
use std::time::Duration;

#[test]
fn reply_framing_table() {
    let cases: &[(&[u8], bool, usize)] = &[
        (b"", false, 0),
        (b"220 ok\r\n", true, 1),
        (b"220 ok", false, 0),
        (b"250-a\r\n", false, 0),
        (b"250-a\r\n250 b\r\n", true, 1),
        (b"250 a\r\n354 b\r\n", true, 2),
        (b"250 a\r\n250-b\r\n", false, 1),
        (b"250\r\n", false, 0),
        (b"250 \r\n", true, 1),
    ];
    for (bytes, complete, finals) in cases {
        assert_eq!(last_reply_complete(bytes), *complete, "{bytes:?}");
        assert_eq!(count_final_lines(bytes), *finals, "{bytes:?}");
    }
}

#[test]
fn proc_collects_output_and_status() {
    let out = run(
        std::path::Path::new("/bin/sh"),
        "sh",
        ["-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn proc_is_killed_after_timeout() {
    let p = Proc::spawn(std::path::Path::new("/bin/sleep"), "sleep", ["30"]);
    let out = p.finish(Duration::from_millis(100));
    assert_eq!(out.status, None, "sleep 30 cannot have exited on its own");
}
