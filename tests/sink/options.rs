//! smtp-sink failure injection, delays, timeouts and the session cap
//! (docs/smtp-sink.md §7, §11–§13, §6; deviations S4, S5, docs/deviations.md).

use crate::common;

use std::time::{Duration, Instant};

use common::sink::{converse, ours};
use common::Client;

const START: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";

#[test]
fn hard_and_soft_errors() {
    let sink = ours(&["-f", "MAIL,Rcpt"]);
    let (_, r) = converse(sink.addr, b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n", 3);
    let text = String::from_utf8_lossy(&r);
    assert!(!text.contains("PIPELINING"), "{text}");
    assert!(text.ends_with(
        "250 \r\n500 5.3.0 Error: command failed\r\n500 5.3.0 Error: command failed\r\n"
    ));
    let sink = ours(&["-b", "421-custom", "-r", "noop"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"NOOP\r\n");
    assert_eq!(c.read_until(|b| b.ends_with(b"\r\n")), b"421-custom\r\n");
    let sink = ours(&["-B", "554 no", "-f", "vrfy", "-r", "vrfy"]);
    let (_, r) = converse(sink.addr, b"VRFY x\r\n", 1);
    assert_eq!(r, b"554 no\r\n");
    // -f quit: the session stays open.
    let sink = ours(&["-f", "quit"]);
    let (_, r) = converse(sink.addr, b"QUIT\r\nNOOP\r\n", 2);
    assert_eq!(r, b"500 5.3.0 Error: command failed\r\n250 2.0.0 Ok\r\n");
    // Rejected MAIL does not open a transaction.
    let sink = ours(&["-r", "mail"]);
    let (_, r) = converse(sink.addr, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n", 2);
    assert_eq!(
        r,
        b"450 4.3.0 Error: command failed\r\n503 5.5.1 Error: need MAIL command\r\n"
    );
    // Disabled commands never reach failure injection.
    let sink = ours(&["-f", "lhlo"]);
    let (_, r) = converse(sink.addr, b"LHLO x\r\n", 1);
    assert_eq!(r, b"500 5.5.1 Error: unknown command\r\n");
}

#[test]
fn drop_and_close() {
    let sink = ours(&["-q", "rcpt"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nNOOP\r\n");
    assert_eq!(c.read_to_eof(), b"250 2.1.0 Ok\r\n");
    let sink = ours(&["-Q", "noop"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"HELO x\r\nNOOP\r\nNOOP\r\n");
    assert_eq!(
        c.read_to_eof(),
        b"250 smtp-sink\r\n421 4.0.0 Server closing connection\r\n"
    );
    // Precedence: -q before -Q before -f.
    let sink = ours(&["-q", "noop", "-Q", "noop", "-f", "noop"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"NOOP\r\n");
    assert_eq!(c.read_to_eof(), b"");
    let sink = ours(&["-Q", ".", "-f", "."]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n");
    let got = c.read_to_eof();
    assert!(got.ends_with(b"421 4.0.0 Server closing connection\r\n"));
}

#[test]
fn connect_injection() {
    let sink = ours(&["-Q", "connect"]);
    let mut c = Client::connect(sink.addr);
    assert_eq!(c.read_to_eof(), b"421 4.0.0 Server closing connection\r\n");
    let sink = ours(&["-q", "connect"]);
    let mut c = Client::connect(sink.addr);
    assert_eq!(c.read_to_eof(), b"");
    let sink = ours(&["-f", "connect"]);
    let mut c = Client::connect(sink.addr);
    assert_eq!(c.reply(), b"500 5.3.0 Error: command failed\r\n");
    c.send(b"NOOP\r\n");
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    let sink = ours(&["-r", "connect"]);
    let mut c = Client::connect(sink.addr);
    assert_eq!(c.reply(), b"450 4.3.0 Error: command failed\r\n");
}

#[test]
fn delayed_reply_in_order_s4() {
    // Deviation S4 (docs/deviations.md): with -W rcpt:1 and a pipelined MAIL/RCPT/DATA, replies stay in
    // order and DATA sees the counted recipient.
    let sink = ours(&["-W", "rcpt:1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    let t0 = Instant::now();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    let r = c.replies(3);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        r,
        [&b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"[..], START].concat()
    );
    // Two delayed commands: both replies, in order.
    let sink = ours(&["-W", "noop:1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    let t0 = Instant::now();
    c.send(b"NOOP\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(
        c.read_to_eof(),
        b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 Bye\r\n"
    );
    assert!(t0.elapsed() >= Duration::from_millis(1900));
    // A delay longer than -t does not end the session.
    let sink = ours(&["-W", "noop:2", "-t", "1"]);
    let (_, r) = converse(sink.addr, b"NOOP\r\n", 1);
    assert_eq!(r, b"250 2.0.0 Ok\r\n");
    // A delayed greeting.
    let sink = ours(&["-W", "connect:1"]);
    let t0 = Instant::now();
    let mut c = Client::connect(sink.addr);
    assert_eq!(c.reply(), b"220 smtp-sink ESMTP\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // -w is -W data.
    let sink = ours(&["-w", "1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    c.replies(2);
    let t0 = Instant::now();
    c.send(b"DATA\r\n");
    assert_eq!(c.reply(), START);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // A session that ends during a delay is simply closed.
    let sink = ours(&["-W", "noop:1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"NOOP\r\n");
    drop(c);
    std::thread::sleep(Duration::from_millis(1300));
    let (_, r) = converse(sink.addr, b"VRFY x\r\n", 1);
    assert_eq!(r, b"250 2.0.0 Ok\r\n");
}

#[test]
fn abort_after_data_s5() {
    let sink = ours(&["-A", "0"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    let got = c.read_to_eof();
    assert_eq!(
        got,
        [
            &b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"[..],
            START,
            b"550 This violates SMTP\r\n"
        ]
        .concat()
    );
    // Deviation S5 (docs/deviations.md): pipelined content is not parsed as commands; -t does not win.
    let sink = ours(&["-A", "2", "-t", "1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nNOOP\r\nhello\r\n");
    let got = c.read_to_eof();
    assert_eq!(
        got,
        [
            &b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"[..],
            START,
            b"550 This violates SMTP\r\n"
        ]
        .concat()
    );
    let out = sink.kill();
    assert!(!out.stderr_text().contains("read timeout"));
}

#[test]
fn read_timeout() {
    let sink = ours(&["-t", "1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    assert_eq!(c.read_to_eof(), b"");
    let out = sink.kill();
    assert!(
        out.stderr_text()
            .contains("smtp-sink: warning: read timeout"),
        "{}",
        out.stderr_text()
    );
    // -H longer than -t: read timeout during the hold.
    let sink = ours(&["-H", "3", "-t", "1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    assert_eq!(
        c.read_to_eof(),
        [&b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"[..], START].concat()
    );
}

#[test]
fn read_hold_after_354() {
    let sink = ours(&["-H", "1"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(3);
    let t0 = Instant::now();
    c.send(b"x\r\n.\r\n");
    assert_eq!(c.reply(), b"250 2.0.0 Ok\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(800));
}

#[test]
fn concurrency_cap() {
    let sink = ours(&["-m", "1"]);
    let mut first = Client::connect(sink.addr);
    assert_eq!(first.reply(), b"220 smtp-sink ESMTP\r\n");
    let mut second = Client::connect(sink.addr);
    // Connected (kernel backlog) but no greeting while the first is open.
    assert!(common::sink::silent_for(
        &mut second,
        Duration::from_millis(300)
    ));
    first.send(b"QUIT\r\n");
    assert_eq!(first.read_to_eof(), b"221 Bye\r\n");
    assert_eq!(second.reply(), b"220 smtp-sink ESMTP\r\n");
}

#[test]
fn verbose_lines() {
    let sink = ours(&["-v"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"  \x01noop\r\nQUIT\r\n");
    c.read_to_eof();
    let err = sink.kill_settled().stderr_text();
    let port = err
        .lines()
        .nth(1)
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("?")
        .to_string();
    assert_eq!(
        err,
        format!(
            "smtp-sink: name_mask: all\nsmtp-sink: trying... [127.0.0.1]:{port}\n\
             smtp-sink: connect (AF_INET 127.0.0.1)\nsmtp-sink:   ?noop\nsmtp-sink: QUIT\n\
             smtp-sink: disconnect\n\
             smtp-sink: connect (AF_INET 127.0.0.1)\n"
        ),
        "the last connect is kill_settled's"
    );
}

#[test]
fn many_concurrent_sessions() {
    // 300 clients at once, each with a whole transaction; -T on the listener.
    let sink = ours(&["-c", "-m", "1000", "-T", "65536"]);
    let addr = sink.addr;
    let threads: Vec<_> = (0..300)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.reply();
                c.send(b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
                c.read_to_eof()
            })
        })
        .collect();
    for t in threads {
        let got = t.join().expect("client");
        assert!(
            got.ends_with(b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n221 Bye\r\n")
        );
    }
    let out = sink.kill_settled();
    assert!(
        out.stdout_text().ends_with("sess=300 quit=300 mesg=300\r"),
        "{}",
        out.stdout_text()
    );
}
