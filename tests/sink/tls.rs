//! smtp-sink TLS: STARTTLS (RFC 3207) with a generated or a
//! given certificate, implicit TLS (`--tls`), the session reset and the
//! discard of input pipelined after STARTTLS, fault controls by name, and
//! option validation. Without the new options nothing changes (checked
//! here for STARTTLS and the fault-control names; the differential suites
//! check the rest byte for byte).

use crate::common;

use std::time::{Duration, Instant};

use common::sink::{files_in, mask_dump, ours, ours_fails, ours_in, shared_tempdir, wait_until};
use common::tls::{any_cert_config, cert_names, trusting_config, write_cert, TlsClient};
use common::Client;

/// The EHLO reply with STARTTLS (before TLS) or without it (after).
fn ehlo(host: &str, starttls: bool) -> String {
    format!(
        "250-{host}\r\n250-PIPELINING\r\n250-8BITMIME\r\n{}250-AUTH PLAIN LOGIN\r\n\
         250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n",
        if starttls { "250-STARTTLS\r\n" } else { "" }
    )
}

const READY: &str = "220 2.0.0 Ready to start TLS\r\n";

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn starttls_self_signed_upgrade_and_full_transaction() {
    let sink = ours(&["--tls-self-signed", "-h", "mx.test", "-c", "-n", "1"]);
    let mut c = TlsClient::plain(sink.addr);
    assert_eq!(text(c.reply()), "220 mx.test ESMTP\r\n");
    assert_eq!(c.cmd("EHLO client"), ehlo("mx.test", true));
    assert_eq!(c.cmd("STARTTLS"), READY);
    let (cfg, seen) = any_cert_config();
    c.start_tls(cfg, "mx.test").expect("handshake");
    assert!(c.tls_version().is_some());
    let cert = seen.seen.lock().unwrap().clone().expect("certificate seen");
    assert!(
        cert_names(&cert, "mx.test"),
        "certificate is for the -h name"
    );
    // RFC 3207 §4.2: STARTTLS is not offered again.
    assert_eq!(c.cmd("EHLO client"), ehlo("mx.test", false));
    assert_eq!(c.cmd("MAIL FROM:<a@x>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<b@y>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(c.cmd("hello\r\n."), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("STARTTLS"), "554 5.5.1 Error: TLS already active\r\n");
    assert_eq!(c.cmd("QUIT"), "221 Bye\r\n");
    assert!(c.closed_within(Duration::from_secs(5)));
    // -n 1: the sink exits after this QUIT session, output complete.
    let out = sink.finish();
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stdout_text(),
        "sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=1\r"
    );
    assert_eq!(out.stderr_text(), "");
}

#[test]
fn starttls_with_certificate_files_verifies() {
    let dir = common::tempdir();
    let (cert, key, der) = write_cert(dir.path(), "mail.example");
    let sink = ours(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    assert_eq!(c.cmd("STARTTLS"), READY);
    // Full verification against the certificate we gave the sink.
    c.start_tls(trusting_config(&der), "mail.example")
        .expect("verified handshake");
    assert_eq!(c.peer_cert().expect("cert").as_ref(), der.as_ref());
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn certificate_and_key_in_one_file() {
    let dir = common::tempdir();
    let (cert, key, der) = write_cert(dir.path(), "both.example");
    let both = dir.path().join("both.pem");
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    std::fs::write(&both, pem).unwrap();
    let sink = ours(&["--tls-cert", both.to_str().unwrap()]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    assert_eq!(c.cmd("STARTTLS"), READY);
    c.start_tls(trusting_config(&der), "both.example")
        .expect("handshake");
}

#[test]
fn pipelined_commands_after_starttls_are_discarded() {
    let dir = shared_tempdir();
    let sink = ours_in(&["--tls-self-signed", "-d", "m."], dir.path());
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    // CVE-2011-0411 class: commands injected after STARTTLS in the same
    // packet must never run inside the TLS session.
    c.send(b"EHLO before\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n");
    let got = text(c.replies(2));
    assert_eq!(got, format!("{}{READY}", ehlo("smtp-sink", true)));
    let (cfg, _) = any_cert_config();
    c.start_tls(cfg, "smtp-sink").expect("handshake");
    // The injected MAIL was not executed: RCPT needs MAIL, DATA needs RCPT.
    assert_eq!(
        c.cmd("RCPT TO:<x>"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 Error: need RCPT command\r\n");
    // State was reset: no HELO args, protocol back to SMTP.
    assert_eq!(c.cmd("MAIL FROM:<a>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<b>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(c.cmd("x\r\n."), "250 2.0.0 Ok\r\n");
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 1));
    let dump = String::from_utf8(std::fs::read(&files_in(dir.path())[0]).unwrap()).unwrap();
    assert_eq!(
        mask_dump(&dump),
        "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\nX-Mail-Args: <a>\n\
         X-Rcpt-Args: <b>\nReceived: from [127.0.0.1] ([127.0.0.1])\n\
         \tby smtp-sink (smtp-sink) with SMTP id XXXXXXXX;\n\tDATE\nx\n\n"
    );
}

#[test]
fn starttls_aborts_an_open_transaction_and_protocol_names() {
    let dir = shared_tempdir();
    let sink = ours_in(&["--tls-self-signed", "-d", "m."], dir.path());
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    c.cmd("EHLO a");
    assert_eq!(c.cmd("MAIL FROM:<plain>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd("STARTTLS"), READY);
    let (cfg, _) = any_cert_config();
    c.start_tls(cfg, "smtp-sink").expect("handshake");
    // The plain-text transaction is gone (RFC 3207 §4.2).
    assert_eq!(
        c.cmd("RCPT TO:<x>"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    c.cmd("EHLO secure.example");
    c.cmd("MAIL FROM:<s>");
    c.cmd("RCPT TO:<r>");
    c.cmd("DATA");
    assert_eq!(c.cmd("."), "250 2.0.0 Ok\r\n");
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 1));
    let dump = String::from_utf8(std::fs::read(&files_in(dir.path())[0]).unwrap()).unwrap();
    // RFC 3848: ESMTPS once TLS is up.
    assert_eq!(
        mask_dump(&dump),
        "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTPS\nX-Helo-Args: secure.example\n\
         X-Mail-Args: <s>\nX-Rcpt-Args: <r>\nReceived: from secure.example ([127.0.0.1])\n\
         \tby smtp-sink (smtp-sink) with ESMTPS id XXXXXXXX;\n\tDATE\n\n"
    );
}

#[test]
fn implicit_tls() {
    let sink = ours(&["--tls", "--tls-self-signed", "-h", "smtps.test"]);
    let (cfg, _) = any_cert_config();
    let mut c = TlsClient::implicit(sink.addr, cfg, "smtps.test");
    // The greeting arrives inside TLS; STARTTLS is not offered.
    assert_eq!(text(c.reply()), "220 smtps.test ESMTP\r\n");
    assert_eq!(c.cmd("EHLO x"), ehlo("smtps.test", false));
    assert_eq!(c.cmd("STARTTLS"), "554 5.5.1 Error: TLS already active\r\n");
    assert_eq!(c.cmd("QUIT"), "221 Bye\r\n");
}

#[test]
fn implicit_tls_over_a_unix_socket() {
    let dir = shared_tempdir();
    let path = dir.path().join("s");
    let mut argv = common::sink_user_args();
    argv.extend(["--tls", "--tls-self-signed"].map(String::from));
    argv.push(format!("unix:{}", path.display()));
    argv.push("10".into());
    let proc = common::Proc::spawn(&common::our_sink(), "smtp-sink", &argv);
    assert!(common::wait_for_unix(&path, common::TIMEOUT));
    let sock = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    sock.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let (cfg, _) = any_cert_config();
    let name = rustls::pki_types::ServerName::try_from("smtp-sink").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut tls, &mut buf).expect("greeting over TLS");
    assert_eq!(&buf[..n], b"220 smtp-sink ESMTP\r\n");
    drop(tls);
    proc.kill();
}

#[test]
fn starttls_refusals() {
    let sink = ours(&["--tls-self-signed"]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    assert_eq!(c.cmd("STARTTLS now"), "501 5.5.4 Syntax: STARTTLS\r\n");
    // Still plain and working.
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("starttls"), READY);
}

#[test]
fn failed_handshake_ends_only_that_session() {
    let sink = ours(&["--tls-self-signed"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"STARTTLS\r\n");
    assert_eq!(c.reply(), READY.as_bytes());
    c.send(b"this is not a TLS client hello\r\n");
    // The sink answers with a TLS alert or nothing, then closes.
    let _ = c.read_to_eof();
    // The server keeps serving.
    let mut d = TlsClient::plain(sink.addr);
    assert_eq!(text(d.reply()), "220 smtp-sink ESMTP\r\n");
    let out = sink.kill();
    assert!(
        out.stderr_text()
            .starts_with("smtp-sink: warning: TLS handshake failed: "),
        "{out:?}"
    );
}

#[test]
fn fault_controls_apply_to_starttls_by_name() {
    // -q: close without a reply.
    let sink = ours(&["--tls-self-signed", "-q", "starttls"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"STARTTLS\r\n");
    assert_eq!(c.read_to_eof(), b"");
    // -Q: 421 and close.
    let sink = ours(&["--tls-self-signed", "-Q", "STARTTLS"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"STARTTLS\r\n");
    assert_eq!(c.read_to_eof(), b"421 4.0.0 Server closing connection\r\n");
    // -f: hard error, the session stays plain.
    let sink = ours(&["--tls-self-signed", "-f", "starttls"]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    // -f also removes PIPELINING, as for any -f list.
    let list = c.cmd("EHLO x");
    assert!(!list.contains("PIPELINING") && list.contains("250-STARTTLS\r\n"));
    assert_eq!(c.cmd("STARTTLS"), "500 5.3.0 Error: command failed\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    // -r: soft error.
    let sink = ours(&["--tls-self-signed", "-r", "starttls"]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    assert_eq!(c.cmd("STARTTLS"), "450 4.3.0 Error: command failed\r\n");
    // -W: the 220 comes after the delay, and TLS then works.
    let sink = ours(&["--tls-self-signed", "-W", "starttls:1"]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    let start = Instant::now();
    assert_eq!(c.cmd("STARTTLS"), READY);
    assert!(start.elapsed() >= Duration::from_millis(900));
    let (cfg, _) = any_cert_config();
    c.start_tls(cfg, "smtp-sink").expect("handshake");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn without_tls_options_nothing_changes() {
    let sink = ours(&[]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"STARTTLS\r\n");
    assert_eq!(c.reply(), b"500 5.5.1 Error: unknown command\r\n");
    c.send(b"EHLO x\r\n");
    assert_eq!(text(c.reply()), ehlo("smtp-sink", false));
    // The command names exist only with their feature, as in Postfix.
    for opt in ["-q", "-Q", "-f", "-r", "-s"] {
        let out = ours_fails(&[opt, "starttls", "127.0.0.1:0", "1"]);
        assert_eq!(out.code(), Some(1));
        assert_eq!(
            out.stderr_text(),
            "smtp-sink: fatal: unknown command: starttls\n"
        );
    }
    let out = ours_fails(&["-W", "starttls:2", "127.0.0.1:0", "1"]);
    assert_eq!(
        out.stderr_text(),
        "smtp-sink: fatal: unknown command: starttls\n"
    );
}

#[test]
fn option_validation() {
    let dir = common::tempdir();
    let (cert, key, _) = write_cert(dir.path(), "x.example");
    let cert = cert.to_str().unwrap();
    let key = key.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--tls"], "--tls requires --tls-cert or --tls-self-signed"),
        (&["--tls-key", key], "--tls-key requires --tls-cert"),
        (
            &["--tls-self-signed", "--tls-cert", cert],
            "use only one of --tls-cert or --tls-self-signed",
        ),
        (
            &["--tls-cert", "/nonexistent/c.pem"],
            "open /nonexistent/c.pem: No such file or directory",
        ),
        (
            &["--tls-cert", cert, "--tls-key", "/nonexistent/k.pem"],
            "open /nonexistent/k.pem: No such file or directory",
        ),
        (
            &["--tls-cert", key, "--tls-key", key],
            &format!("{key}: no certificate found"),
        ),
        (
            &["--tls-cert", cert],
            &format!("{cert}: no private key found"),
        ),
    ];
    for (args, want) in cases {
        let mut argv: Vec<&str> = args.to_vec();
        argv.extend(["127.0.0.1:0", "1"]);
        let out = ours_fails(&argv);
        assert_eq!(out.code(), Some(1), "{argv:?}");
        assert_eq!(
            out.stderr_text(),
            format!("smtp-sink: fatal: {want}\n"),
            "{argv:?}"
        );
    }
    // A mismatched key is refused at start-up, not at the first handshake.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key, _) = write_cert(other.path(), "y.example");
    let out = ours_fails(&[
        "--tls-cert",
        cert,
        "--tls-key",
        other_key.to_str().unwrap(),
        "127.0.0.1:0",
        "1",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text()
            .starts_with("smtp-sink: fatal: TLS configuration: "),
        "{out:?}"
    );
}

#[test]
fn help_documents_the_new_options() {
    let out = common::run(&common::our_sink(), "smtp-sink", ["--help"]);
    assert_eq!(out.code(), Some(0));
    let text = out.stdout_text();
    for name in [
        "--tls-cert",
        "--tls-key",
        "--tls-self-signed",
        "--tls ",
        "--auth ",
        "--auth-fail",
        "--auth-required",
        "--chunking",
        "--smtputf8",
    ] {
        assert!(text.contains(name), "{name} missing in {text}");
    }
}
