//! smtp-sink `--auth`: a real RFC 4954 exchange with PLAIN
//! (with and without an initial response) and LOGIN, `--auth-fail`,
//! `--auth-required`, the user name in the dump, and Postfix's one-line
//! `250` to AUTH when `--auth` is not given.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::sink::{converse, files_in, mask_dump, ours, ours_in, shared_tempdir, wait_until};
use common::tls::{any_cert_config, TlsClient};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

const OK_235: &str = "235 2.7.0 Authentication successful\r\n";
const FAIL_535: &str = "535 5.7.8 Error: authentication failed: authentication failure\r\n";

fn session(args: &[&str]) -> (common::sink::Sink, TlsClient) {
    let sink = ours(args);
    let mut c = TlsClient::plain(sink.addr);
    assert_eq!(c.reply(), b"220 smtp-sink ESMTP\r\n");
    (sink, c)
}

#[test]
fn without_auth_option_any_auth_gets_postfix_250() {
    let (_s, mut c) = session(&[]);
    assert_eq!(c.cmd("AUTH PLAIN"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("AUTH LOGIN"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("AUTH"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("MAIL FROM:<a>"), "250 2.1.0 Ok\r\n");
}

#[test]
fn plain_with_initial_response() {
    let (_s, mut c) = session(&["--auth"]);
    let ehlo = c.cmd("EHLO x");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0pw"))),
        OK_235
    );
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0pw"))),
        "503 5.5.1 Error: already authenticated\r\n"
    );
}

#[test]
fn plain_without_initial_response() {
    let (_s, mut c) = session(&["--auth"]);
    assert_eq!(c.cmd("AUTH PLAIN"), "334 \r\n");
    assert_eq!(c.cmd(&b64(b"authz\0bob\0secret")), OK_235);
}

#[test]
fn login_with_challenges() {
    let (_s, mut c) = session(&["--auth"]);
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64(b"carol")), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(c.cmd(&b64(b"pw")), OK_235);
    // LOGIN with the user name as initial response, in a new session.
    let (_s, mut c) = session(&["--auth"]);
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64(b"dave"))),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(c.cmd(&b64(b"pw")), OK_235);
}

#[test]
fn errors_and_cancel() {
    let (_s, mut c) = session(&["--auth"]);
    assert_eq!(c.cmd("AUTH"), "501 5.5.4 Syntax: AUTH mechanism\r\n");
    assert_eq!(
        c.cmd("AUTH CRAM-MD5"),
        "504 5.5.4 Unrecognized authentication type\r\n"
    );
    assert_eq!(c.cmd("AUTH PLAIN"), "334 \r\n");
    assert_eq!(c.cmd("*"), "501 5.7.0 Authentication aborted\r\n");
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd("%%%"), "501 5.5.2 Cannot decode response\r\n");
    assert_eq!(c.cmd("MAIL FROM:<a>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64(b"\0u\0p"))),
        "503 5.5.1 Error: MAIL transaction in progress\r\n"
    );
    assert_eq!(c.cmd("RSET"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0u\0p"))), OK_235);
}

#[test]
fn auth_fail_answers_535() {
    // --auth-fail implies --auth.
    let (_s, mut c) = session(&["--auth-fail"]);
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0u\0p"))), FAIL_535);
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64(b"u")), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(c.cmd(&b64(b"p")), FAIL_535);
    // Not required: mail still flows.
    assert_eq!(c.cmd("MAIL FROM:<a>"), "250 2.1.0 Ok\r\n");
}

#[test]
fn auth_required_refuses_mail_until_authenticated() {
    let (_s, mut c) = session(&["--auth-required"]);
    assert_eq!(
        c.cmd("MAIL FROM:<a>"),
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<b>"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0u\0p"))), OK_235);
    assert_eq!(c.cmd("MAIL FROM:<a>"), "250 2.1.0 Ok\r\n");
    // A failed AUTH does not authenticate.
    let (_s, mut c) = session(&["--auth-required", "--auth-fail"]);
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0u\0p"))), FAIL_535);
    assert_eq!(
        c.cmd("MAIL FROM:<a>"),
        "530 5.7.0 Authentication required\r\n"
    );
}

#[test]
fn pipelined_auth_and_transaction() {
    let sink = ours(&["--auth-required"]);
    let input = format!(
        "EHLO x\r\nAUTH PLAIN {}\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
        b64(b"\0u\0p")
    );
    let (_, replies) = converse(sink.addr, input.as_bytes(), 5);
    let replies = String::from_utf8_lossy(&replies).into_owned();
    assert!(
        replies.ends_with(&format!(
            "250 \r\n{OK_235}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        )),
        "{replies}"
    );
}

#[test]
fn fault_controls_apply_to_auth() {
    let (_s, mut c) = session(&["--auth", "-f", "auth"]);
    assert_eq!(c.cmd("AUTH PLAIN"), "500 5.3.0 Error: command failed\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn user_name_in_dump_and_rfc3848_protocol() {
    let dir = shared_tempdir();
    let sink = ours_in(&["--auth", "-d", "m."], dir.path());
    let input = format!(
        "EHLO client\r\nAUTH PLAIN {}\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\n",
        b64(b"\0al\x01ice\0pw")
    );
    let (_, _) = converse(sink.addr, input.as_bytes(), 6);
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 1));
    let dump = String::from_utf8(std::fs::read(&files_in(dir.path())[0]).unwrap()).unwrap();
    assert_eq!(
        mask_dump(&dump),
        "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTPA\nX-Helo-Args: client\n\
         X-Auth-User: al?ice\nX-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
         Received: from client ([127.0.0.1])\n\
         \tby smtp-sink (smtp-sink) with ESMTPA id XXXXXXXX;\n\tDATE\nhi\n\n"
    );
}

#[test]
fn starttls_forgets_authentication() {
    let dir = shared_tempdir();
    let sink = ours_in(
        &["--auth-required", "--tls-self-signed", "-d", "m."],
        dir.path(),
    );
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0plain\0p"))), OK_235);
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    let (cfg, _) = any_cert_config();
    c.start_tls(cfg, "smtp-sink").expect("handshake");
    assert_eq!(
        c.cmd("MAIL FROM:<a>"),
        "530 5.7.0 Authentication required\r\n"
    );
    c.cmd("EHLO c");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64(b"\0tls\0p"))), OK_235);
    c.cmd("MAIL FROM:<a>");
    c.cmd("RCPT TO:<b>");
    c.cmd("DATA");
    assert_eq!(c.cmd("."), "250 2.0.0 Ok\r\n");
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 1));
    let dump = String::from_utf8(std::fs::read(&files_in(dir.path())[0]).unwrap()).unwrap();
    assert!(
        dump.contains("X-Client-Proto: ESMTPSA\nX-Helo-Args: c\nX-Auth-User: tls\n"),
        "{dump}"
    );
    assert!(dump.contains(" with ESMTPSA id "), "{dump}");
}
