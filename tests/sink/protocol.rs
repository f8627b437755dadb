//! smtp-sink wire behaviour: exact reply bytes for every command, greeting
//! and EHLO variants, sequencing, framing, LMTP, pipelining (docs/smtp-sink.md §7–§10,
//! §18, §20).

use crate::common;

use std::io::Read;
use std::time::Duration;

use common::sink::{converse, ours};
use common::Client;

const EHLO_FULL: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";

/// Send each (command, expected reply) pair one at a time.
fn script(addr: std::net::SocketAddr, steps: &[(&[u8], &[u8])]) {
    let mut c = Client::connect(addr);
    assert_eq!(c.reply(), b"220 smtp-sink ESMTP\r\n");
    for (send, want) in steps {
        c.send(send);
        let got = c.reply();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "after {:?}",
            String::from_utf8_lossy(send)
        );
    }
}

#[test]
fn every_command_default() {
    let sink = ours(&[]);
    script(
        sink.addr,
        &[
            (b"EHLO foo\r\n", EHLO_FULL),
            (b"HELO foo\r\n", b"250 smtp-sink\r\n"),
            (b"XCLIENT NAME=x\r\n", b"250 2.0.0 Ok\r\n"),
            (b"XFORWARD NAME=x\r\n", b"250 2.0.0 Ok\r\n"),
            (b"AUTH PLAIN\r\n", b"250 2.0.0 Ok\r\n"),
            (b"NOOP\r\n", b"250 2.0.0 Ok\r\n"),
            (b"VRFY x\r\n", b"250 2.0.0 Ok\r\n"),
            (b"noop\r\n", b"250 2.0.0 Ok\r\n"),
            (
                b"RCPT TO:<a>\r\n",
                b"503 5.5.1 Error: need MAIL command\r\n",
            ),
            (b"DATA\r\n", b"503 5.5.1 Error: need RCPT command\r\n"),
            (b"MAIL\r\n", b"250 2.1.0 Ok\r\n"),
            (
                b"MAIL FROM:<a>\r\n",
                b"503 5.5.1 Error: nested MAIL command\r\n",
            ),
            (b"DATA\r\n", b"503 5.5.1 Error: need RCPT command\r\n"),
            (b"RCPT TO:<b>\r\n", b"250 2.1.5 Ok\r\n"),
            (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
            (b"hello\r\n.\r\n", b"250 2.0.0 Ok\r\n"),
            (b"RSET\r\n", b"250 2.1.0 Ok\r\n"),
            (b"DATA\r\n", b"503 5.5.1 Error: need RCPT command\r\n"),
            (b".\r\n", b"250 2.0.0 Ok\r\n"),
            (b"LHLO x\r\n", b"500 5.5.1 Error: unknown command\r\n"),
            (b"CONNECT\r\n", b"500 5.5.1 Error: unknown command\r\n"),
            (b"\r\n", b"500 5.5.2 Error: unknown command\r\n"),
            (b"   \r\n", b"500 5.5.2 Error: unknown command\r\n"),
            (b"FOO\r\n", b"500 5.5.1 Error: unknown command\r\n"),
            (b"NOOP\0junk\r\n", b"250 2.0.0 Ok\r\n"),
            (b"NOOP\r\r\n", b"500 5.5.1 Error: unknown command\r\n"),
            (b"NOOP\nHELO x\r\n", b"500 5.5.1 Error: unknown command\r\n"),
            (b" \tnoop  x\r\n", b"250 2.0.0 Ok\r\n"),
            (b"QUIT\r\n", b"221 Bye\r\n"),
        ],
    );
}

#[test]
fn quit_closes() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"QUIT\r\nNOOP\r\n");
    assert_eq!(c.read_to_eof(), b"221 Bye\r\n");
}

#[test]
fn bare_lf_waits_for_crlf() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"NOOP\n");
    assert!(common::sink::silent_for(&mut c, Duration::from_millis(300)));
    c.send(b"\r\n");
    assert_eq!(c.reply(), b"500 5.5.1 Error: unknown command\r\n");
}

#[test]
fn ehlo_switches() {
    let all = ours(&["-8", "-a", "-C", "-E", "-F", "-N", "-p"]);
    let (_, r) = converse(
        all.addr,
        b"EHLO x\r\nXCLIENT a\r\nXFORWARD a\r\nAUTH x\r\n",
        4,
    );
    assert_eq!(
        r,
        b"250-smtp-sink\r\n250 \r\n500 5.5.1 Error: unknown command\r\n\
          500 5.5.1 Error: unknown command\r\n250 2.0.0 Ok\r\n"
    );
    for (opt, missing) in [
        ("-8", "250-8BITMIME\r\n"),
        ("-a", "250-AUTH PLAIN LOGIN\r\n"),
        ("-E", "250-ENHANCEDSTATUSCODES\r\n"),
        ("-N", "250-DSN\r\n"),
        ("-p", "250-PIPELINING\r\n"),
    ] {
        let sink = ours(&[opt]);
        let (_, r) = converse(sink.addr, b"EHLO x\r\n", 1);
        let want = String::from_utf8_lossy(EHLO_FULL).replace(missing, "");
        assert_eq!(String::from_utf8_lossy(&r), want, "{opt}");
    }
}

#[test]
fn greeting_variants() {
    for (args, greeting, probe, reply) in [
        (
            vec!["-e"],
            "220 smtp-sink\r\n",
            "EHLO x\r\n",
            "500 5.5.1 Error: unknown command\r\n",
        ),
        (
            vec!["-P"],
            "220 ********\r\n",
            "EHLO x\r\n",
            "500 5.5.1 Error: unknown command\r\n",
        ),
        (
            vec!["-h", "mx.example"],
            "220 mx.example ESMTP\r\n",
            "HELO x\r\n",
            "250 mx.example\r\n",
        ),
        (
            vec!["-L"],
            "220 smtp-sink ESMTP\r\n",
            "HELO x\r\n",
            "500 5.5.1 Error: unknown command\r\n",
        ),
        (
            vec!["-e", "-L"],
            "220 smtp-sink\r\n",
            "EHLO x\r\n",
            "500 5.5.1 Error: unknown command\r\n",
        ),
        (
            vec!["-e"],
            "220 smtp-sink\r\n",
            "HELO x\r\n",
            "250 smtp-sink\r\n",
        ),
    ] {
        let sink = ours(&args);
        let (g, r) = converse(sink.addr, probe.as_bytes(), 1);
        assert_eq!(String::from_utf8_lossy(&g), greeting, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&r), reply, "{args:?}");
    }
}

#[test]
fn lmtp_replies_per_recipient() {
    let sink = ours(&["-L"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"LHLO x\r\n");
    assert_eq!(c.reply(), EHLO_FULL);
    // `.` with no recipients: no reply at all.
    c.send(b".\r\nNOOP\r\n");
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\n");
    assert_eq!(
        c.replies(5),
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n\
          354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    c.send(b"body\r\n.\r\n");
    assert_eq!(
        c.replies(3),
        b"250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"
    );
    // Deviation S9 (docs/deviations.md): the counter stops at 0; DATA after a stray `.` still needs RCPT.
    c.send(b"MAIL FROM:<a>\r\n.\r\nDATA\r\n");
    assert_eq!(
        c.replies(2),
        b"250 2.1.0 Ok\r\n503 5.5.1 Error: need RCPT command\r\n"
    );
    // `.` outside DATA after MAIL + 2 RCPT: two replies.
    c.send(b"RSET\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\n.\r\n");
    assert_eq!(
        c.replies(6),
        b"250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n\
          250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"
    );
}

#[test]
fn lmtp_hard_error_dot() {
    let sink = ours(&["-L", "-f", "."]);
    let (_, r) = converse(
        sink.addr,
        b"LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\nx\r\n.\r\n",
        9,
    );
    let text = String::from_utf8_lossy(&r);
    assert!(
        text.ends_with(
            "354 End data with <CR><LF>.<CR><LF>\r\n500 5.3.0 Error: command failed\r\n\
             500 5.3.0 Error: command failed\r\n500 5.3.0 Error: command failed\r\n"
        ),
        "{text}"
    );
}

#[test]
fn data_terminator_edge_cases() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(3);
    // Split terminator, one segment at a time.
    for piece in [&b"x\r"[..], b"\n.", b"\r"] {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(common::sink::silent_for(&mut c, Duration::from_millis(100)));
    c.send(b"\n");
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    // Bare-LF dot and `.\r\r\n` do not end the data.
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(3);
    c.send(b"x\n.\n.\r\r\n");
    assert!(common::sink::silent_for(&mut c, Duration::from_millis(200)));
    c.send(b"\r\n.\r\nNOOP\r\n");
    assert_eq!(c.replies(2), b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
}

#[test]
fn line_length_limit() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    let mut ok = b"NOOP ".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 2041));
    ok.extend_from_slice(b"\r\n");
    assert_eq!(ok.len(), 2048);
    c.send(&ok);
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 2042));
    long.extend_from_slice(b"\r\n");
    c.send(b"NOOP\r\n");
    c.send(&long);
    assert_eq!(c.read_to_eof(), b"250 2.0.0 Ok\r\n");
    let out = sink.kill();
    assert!(
        out.stderr_text()
            .contains("smtp-sink: warning: command line too long"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn pipelined_batch_is_one_write() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhello\r\n.\r\nNOOP\r\n");
    let want: Vec<u8> = [
        EHLO_FULL,
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
        b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n",
    ]
    .concat();
    // One read returns everything: the replies were written at once.
    let mut buf = vec![0u8; 65536];
    let n = c.stream.read(&mut buf).expect("read");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        String::from_utf8_lossy(&want)
    );
    // The whole transaction plus QUIT in one write works as well.
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
    assert_eq!(
        c.read_to_eof(),
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
          250 2.0.0 Ok\r\n221 Bye\r\n"
    );
}

#[test]
fn eof_mid_data_closes_silently() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(3);
    c.send(b"partial");
    c.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert_eq!(c.read_to_eof(), b"");
    // The sink keeps serving.
    let (_, r) = converse(sink.addr, b"NOOP\r\n", 1);
    assert_eq!(r, b"250 2.0.0 Ok\r\n");
    let out = sink.kill();
    assert_eq!(out.stderr_text(), "");
}

#[test]
fn unix_socket_listener() {
    let dir = common::sink::shared_tempdir();
    let path = dir.path().join("sink.sock");
    let mut argv = common::sink_user_args();
    argv.push(format!("unix:{}", path.display()));
    argv.push("10".into());
    // A stale file at the path is removed first.
    std::fs::write(&path, b"stale").expect("write");
    let _sink = common::Proc::spawn(&common::our_sink(), "smtp-sink", &argv);
    assert!(common::wait_for_unix(&path, common::TIMEOUT));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    s.set_read_timeout(Some(common::TIMEOUT)).expect("timeout");
    use std::io::Write;
    s.write_all(b"QUIT\r\n").expect("write");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    assert_eq!(got, b"220 smtp-sink ESMTP\r\n221 Bye\r\n");
}

#[test]
fn replies_wait_while_input_is_pending() {
    // docs/smtp-sink.md §18: the flush decision is made when a reply is produced; content
    // that arrived with DATA keeps the replies queued until the end of data.
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nabc\r\n");
    assert!(common::sink::silent_for(&mut c, Duration::from_millis(300)));
    c.send(b".\r\n");
    assert_eq!(
        c.replies(4),
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
          250 2.0.0 Ok\r\n"
    );
}

/// Deviation S9 (docs/deviations.md): after MAIL and a stray `.`, a DATA that gets 503 leaves the session
/// in command mode: the lines that follow (in the same write or later) are
/// commands with their own replies, never swallowed as message content.
#[test]
fn lmtp_refused_data_stays_in_command_mode() {
    let sink = ours(&["-L"]);
    let (_, r) = converse(
        sink.addr,
        b"LHLO x\r\nMAIL FROM:<a>\r\n.\r\nDATA\r\nNOOP\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
        8,
    );
    let r = String::from_utf8_lossy(&r);
    let finals: Vec<&str> = r
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .collect();
    assert_eq!(
        finals,
        [
            "250 ",
            "250 2.1.0 Ok",
            "503 5.5.1 Error: need RCPT command",
            "250 2.0.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.2.0 Ok",
            "221 Bye",
        ]
    );
    // Separate writes: the refused DATA still leaves command mode.
    let mut c = sink.client();
    c.reply();
    c.send(b"LHLO x\r\nMAIL FROM:<a>\r\n.\r\nDATA\r\n");
    c.replies(3);
    c.send(b"NOOP\r\n");
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    c.send(b"RSET\r\n");
    assert_eq!(c.reply(), b"250 2.1.0 Ok\r\n");
}
