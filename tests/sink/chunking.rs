//! smtp-sink `--chunking` (RFC 3030 BDAT) and `--smtputf8` (RFC 6531)
//!: EHLO lines, exact chunk byte counts whatever the TCP split,
//! the same dump as DATA, fault controls by name, counters, and Postfix's
//! behaviour without the options.

use crate::common;

use std::time::Duration;

use common::sink::{files_in, mask_dump, ours, ours_fails, ours_in, shared_tempdir, wait_until};
use common::Client;

const OK_DOT: &[u8] = b"250 2.0.0 Ok\r\n";

fn bdat(content: &[u8], last: bool) -> Vec<u8> {
    let mut v = format!(
        "BDAT {}{}\r\n",
        content.len(),
        if last { " LAST" } else { "" }
    )
    .into_bytes();
    v.extend_from_slice(content);
    v
}

fn chunk_ok(n: usize) -> Vec<u8> {
    format!("250 2.0.0 Ok: {n} bytes\r\n").into_bytes()
}

fn greet(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    assert_eq!(c.reply(), b"220 smtp-sink ESMTP\r\n");
    c
}

fn one(c: &mut Client, send: &[u8]) -> String {
    c.send(send);
    String::from_utf8_lossy(&c.reply()).into_owned()
}

#[test]
fn ehlo_lines() {
    let sink = ours(&["--chunking", "--smtputf8"]);
    let mut c = greet(sink.addr);
    assert_eq!(
        one(&mut c, b"EHLO x\r\n"),
        "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
         250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n"
    );
    let sink = ours(&["--chunking", "-8", "-a", "-C", "-E", "-F", "-N", "-p"]);
    let mut c = greet(sink.addr);
    assert_eq!(
        one(&mut c, b"EHLO x\r\n"),
        "250-smtp-sink\r\n250-CHUNKING\r\n250 \r\n"
    );
}

#[test]
fn without_chunking_bdat_is_unknown() {
    let sink = ours(&["--smtputf8"]);
    let mut c = greet(sink.addr);
    assert_eq!(
        one(&mut c, b"BDAT 3 LAST\r\n"),
        "500 5.5.1 Error: unknown command\r\n"
    );
    for opt in ["-q", "-Q", "-f", "-r", "-s"] {
        let out = ours_fails(&[opt, "bdat", "127.0.0.1:0", "1"]);
        assert_eq!(out.code(), Some(1));
        assert_eq!(
            out.stderr_text(),
            "smtp-sink: fatal: unknown command: bdat\n"
        );
    }
    let out = ours_fails(&["-W", "bdat:1", "127.0.0.1:0", "1"]);
    assert_eq!(
        out.stderr_text(),
        "smtp-sink: fatal: unknown command: bdat\n"
    );
    // With --chunking the name is known, in any option order.
    let sink = ours(&["-f", "bdat", "--chunking"]);
    drop(sink);
}

/// Chunk contents that look like SMTP must stay content: a split that
/// puts `.\r\nQUIT\r\n` inside a chunk must not end or quit anything.
const PART1: &[u8] = b"Subject: t\r\n\r\n.leading dot\r\n";
const PART2: &[u8] = b"..two\r\n.\r\nQUIT\r\nbare\rcr\n";
const PART3: &[u8] = b"end\r\n";

#[test]
fn bdat_dump_equals_data_dump_whatever_the_split() {
    let dir = shared_tempdir();
    let data_dir = dir.path().join("data");
    let bdat_dir = dir.path().join("bdat");
    let sink = ours_in(&["--chunking", "-d", "out/m."], dir.path());

    // The DATA form of the same message (dot-stuffed).
    let mut c = greet(sink.addr);
    c.send(b"EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(4);
    c.send(b"Subject: t\r\n\r\n..leading dot\r\n...two\r\n..\r\nQUIT\r\nbare\rcr\nend\r\n.\r\n");
    assert_eq!(c.reply(), OK_DOT);
    assert!(wait_until(Duration::from_secs(5), || files_in(
        &dir.path().join("out")
    )
    .len()
        == 1));
    std::fs::rename(dir.path().join("out"), &data_dir).unwrap();

    // BDAT, each chunk sent in several writes, and one byte at a time.
    for piece in [usize::MAX, 3, 1] {
        let mut c = greet(sink.addr);
        c.send(b"EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
        c.replies(3);
        let mut wire = bdat(PART1, false);
        wire.extend(bdat(PART2, false));
        wire.extend(bdat(PART3, true));
        for p in wire.chunks(piece.min(wire.len())) {
            c.send(p);
        }
        let want = [
            chunk_ok(PART1.len()),
            chunk_ok(PART2.len()),
            OK_DOT.to_vec(),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&c.replies(3)),
            String::from_utf8_lossy(&want),
            "piece {piece}"
        );
        // The session is intact: the QUIT inside the chunk did not run.
        c.send(b"NOOP\r\n");
        assert_eq!(c.reply(), OK_DOT);
    }
    assert!(wait_until(Duration::from_secs(5), || files_in(
        &dir.path().join("out")
    )
    .len()
        == 3));
    std::fs::rename(dir.path().join("out"), &bdat_dir).unwrap();

    let read = |p: &std::path::Path| String::from_utf8(std::fs::read(p).unwrap()).unwrap();
    let want = mask_dump(&read(&files_in(&data_dir)[0]));
    assert!(
        want.ends_with("\n.leading dot\n..two\n.\nQUIT\nbarecr\nend\n\n"),
        "{want}"
    );
    for f in files_in(&bdat_dir) {
        assert_eq!(mask_dump(&read(&f)), want);
    }
}

#[test]
fn sequencing_and_errors() {
    let sink = ours(&["--chunking"]);
    let mut c = greet(sink.addr);
    // No transaction: refused, and the chunk is still skipped exactly.
    c.send(&bdat(b"NOOP\r\n", true));
    c.send(b"NOOP\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.replies(2)),
        "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n"
    );
    assert_eq!(
        one(&mut c, b"BDAT x\r\n"),
        "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
    );
    assert_eq!(
        one(&mut c, b"BDAT 1 FIRST\r\n"),
        "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
    );
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"abc", false));
    assert_eq!(c.reply(), chunk_ok(3));
    // RFC 3030 §2: DATA and BDAT are not mixed in one transaction.
    assert_eq!(
        one(&mut c, b"DATA\r\n"),
        "503 5.5.1 Error: BDAT and DATA cannot be mixed\r\n"
    );
    // BDAT 0 LAST ends the message.
    assert_eq!(one(&mut c, b"BDAT 0 LAST\r\n").as_bytes(), OK_DOT);
    // The transaction is over.
    c.send(&bdat(b"x", true));
    assert_eq!(c.reply(), b"503 5.5.1 Error: need RCPT command\r\n");
    // RSET between chunks abandons the message.
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"abc", false));
    c.reply();
    assert_eq!(one(&mut c, b"RSET\r\n"), "250 2.1.0 Ok\r\n");
    c.send(&bdat(b"x", true));
    assert_eq!(c.reply(), b"503 5.5.1 Error: need RCPT command\r\n");
}

#[test]
fn lmtp_bdat_last_replies_per_recipient() {
    let sink = ours(&["--chunking", "-L"]);
    let mut c = greet(sink.addr);
    c.send(b"LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\n");
    c.replies(4);
    c.send(&bdat(b"hi\r\n", true));
    assert_eq!(c.replies(2), b"250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n");
}

#[test]
fn fault_controls_apply_to_bdat_by_name() {
    // -f: the chunk is read and thrown away, then the hard error.
    let sink = ours(&["--chunking", "-f", "bdat"]);
    let mut c = greet(sink.addr);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"QUIT\r\n", true));
    c.send(b"NOOP\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.replies(2)),
        "500 5.3.0 Error: command failed\r\n250 2.0.0 Ok\r\n"
    );
    // -q: close without a reply.
    let sink = ours(&["--chunking", "-q", "BDAT"]);
    let mut c = greet(sink.addr);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"x", true));
    assert_eq!(c.read_to_eof(), b"");
    // -r with LMTP LAST: one soft error per recipient.
    let sink = ours(&["--chunking", "-L", "-r", "bdat"]);
    let mut c = greet(sink.addr);
    c.send(b"LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\n");
    c.replies(4);
    c.send(&bdat(b"x", true));
    assert_eq!(
        c.replies(2),
        b"450 4.3.0 Error: command failed\r\n450 4.3.0 Error: command failed\r\n"
    );
}

#[test]
fn counters_and_message_quit() {
    let sink = ours(&["--chunking", "-c", "-M", "2"]);
    let mut c = greet(sink.addr);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"one\r\n", true));
    assert_eq!(c.reply(), OK_DOT);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    c.send(&bdat(b"two\r\n", false));
    c.reply();
    c.send(b"BDAT 0 LAST\r\n");
    // Deviation S2 (docs/deviations.md): the reply to the last message is written before the exit.
    assert_eq!(c.reply(), OK_DOT);
    let out = sink.finish();
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stdout_text(),
        "sess=0 quit=0 mesg=1\rsess=0 quit=0 mesg=2\r"
    );
}

#[test]
fn smtputf8_accepted_and_kept_in_dump() {
    let dir = shared_tempdir();
    let sink = ours_in(&["--smtputf8", "-d", "m."], dir.path());
    let mut c = greet(sink.addr);
    c.send("EHLO c\r\nMAIL FROM:<jörg@exämple.de> SMTPUTF8\r\nRCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\nDATA\r\nx\r\n.\r\n".as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&c.replies(5)),
        "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
         250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n250 \r\n\
         250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n"
    );
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 1));
    let dump = String::from_utf8(std::fs::read(&files_in(dir.path())[0]).unwrap()).unwrap();
    // Valid UTF-8 is kept; anything else still becomes '?'.
    assert!(
        dump.contains("X-Mail-Args: <jörg@exämple.de> SMTPUTF8\n"),
        "{dump}"
    );
    assert!(
        dump.contains("X-Rcpt-Args: <δοκιμή@παράδειγμα.δοκιμή>\n"),
        "{dump}"
    );
}
