//! smtp-source's extension options against a scripted ESMTP
//! server: EHLO and capability checks, pipelined groups (a strict server
//! that withholds replies until a group ends proves the grouping), RSET
//! travelling with the next MAIL, STARTTLS and implicit TLS, certificate
//! verification, session resumption, AUTH, BDAT and the MAIL parameters.
//! Exact bytes on the wire where they matter.

use crate::common;

use std::sync::Arc;

use common::capture::mask;
use common::esmtp::{r, Act, Cmd, Ev, Opts, Record, Server};
use common::*;

/// Run our smtp-source with `args` against `server`.
fn source(server: &Server, args: &[&str]) -> Output {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.push(server.endpoint());
    run(&our_source(), "smtp-source", &argv)
}

fn ok(out: &Output) {
    assert_eq!(
        out.code(),
        Some(0),
        "exit status; stderr:\n{}",
        out.stderr_text()
    );
}

fn strict() -> Opts {
    Opts {
        strict_pipelining: true,
        ..Opts::default()
    }
}

fn with_script(opts: Opts, f: impl Fn(&Cmd) -> Option<Act> + Send + Sync + 'static) -> Opts {
    Opts {
        script: Arc::new(f),
        ..opts
    }
}

fn lines(rec: &Record) -> Vec<String> {
    rec.lines()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The DATA contents of a connection.
fn contents(rec: &Record) -> Vec<Vec<u8>> {
    rec.events
        .iter()
        .filter_map(|e| match e {
            Ev::Content(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The BDAT chunks of a connection: (size, last).
fn chunks(rec: &Record) -> Vec<(usize, bool)> {
    rec.events
        .iter()
        .filter_map(|e| match e {
            Ev::Chunk { data, last } => Some((data.len(), *last)),
            _ => None,
        })
        .collect()
}

fn chunk_data(rec: &Record) -> Vec<u8> {
    rec.events
        .iter()
        .filter_map(|e| match e {
            Ev::Chunk { data, .. } => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn ehlo_without_pipelining_exact_wire() {
    let server = Server::start(Opts::default());
    let out = source(&server, &["--ehlo", "-M", "vm", "-f", "a@x", "-t", "b@y"]);
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 1);
    let want = "EHLO vm\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n\
From: <a@x>\r\nTo: <b@y>\r\nDate: DATE\r\nMessage-Id: <P.F.0000@vm>\r\n\r\n\
La de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n\
.\r\nQUIT\r\n";
    assert_eq!(
        String::from_utf8_lossy(&mask(&recs[0].raw)),
        want,
        "wire bytes"
    );
    assert_eq!(out.stdout, b"");
    assert_eq!(out.stderr_text(), "");
}

#[test]
fn pipelining_groups_mail_rcpt_data_and_chains_messages() {
    let server = Server::start(strict());
    let out = source(
        &server,
        &[
            "--ehlo",
            "--pipelining",
            "-d",
            "-m",
            "3",
            "-r",
            "2",
            "-M",
            "vm",
            "-c",
        ],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 1, "one connection with -d");
    assert_eq!(recs[0].stalls, 0, "every group arrived whole");
    let group = |a: u32| {
        vec![
            "MAIL FROM:<foo@vm>".to_string(),
            format!("RCPT TO:<foo{a}@vm>"),
            format!("RCPT TO:<foo{}@vm>", a + 1),
            "DATA".to_string(),
            ".".to_string(),
        ]
    };
    let mut want = vec!["EHLO vm".to_string()];
    want.extend(group(0));
    want.extend(group(2));
    want.extend(group(4));
    want.push("QUIT".into());
    assert_eq!(lines(&recs[0]), want);
    assert_eq!(out.stdout, b"1\r2\r3\r\n");
    // To: carries the last recipient number of each message.
    let c = contents(&recs[0]);
    assert_eq!(c.len(), 3);
    for (i, content) in c.iter().enumerate() {
        let to = format!("To: <foo{}@vm>\r\n", 2 * i + 1);
        assert!(
            String::from_utf8_lossy(content).contains(&to),
            "{i}: {:?}",
            String::from_utf8_lossy(content)
        );
    }
}

#[test]
fn pipelining_without_reuse_sends_quit_with_the_content() {
    let server = Server::start(strict());
    let out = source(&server, &["--ehlo", "--pipelining", "-m", "2", "-M", "vm"]);
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        assert_eq!(rec.stalls, 0);
        assert_eq!(
            lines(rec),
            strs(&[
                "EHLO vm",
                "MAIL FROM:<foo@vm>",
                "RCPT TO:<foo@vm>",
                "DATA",
                ".",
                "QUIT"
            ])
        );
    }
}

#[test]
fn pipelined_replies_are_judged_per_stage_and_rset_travels_with_next_mail() {
    // The first MAIL is refused; the server then answers RCPT and DATA
    // with 503, as a real one does.
    let opts = with_script(strict(), |c| match (c.verb.as_str(), c.nth) {
        ("MAIL", 0) => r("550 5.1.0 sender refused"),
        ("RCPT", 0) => r("503 5.5.1 need MAIL"),
        ("DATA", 0) => r("503 5.5.1 need RCPT"),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(
        &server,
        &["-A", "--ehlo", "--pipelining", "-d", "-m", "2", "-M", "vm"],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].stalls, 0);
    assert_eq!(
        lines(&recs[0]),
        strs(&[
            "EHLO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            "RSET",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "QUIT",
        ])
    );
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: sender rejected: 550 5.1.0 sender refused\n\
smtp-source: warning: recipient rejected: 503 5.5.1 need MAIL\n\
smtp-source: warning: data rejected: 503 5.5.1 need RCPT\n"
    );
}

#[test]
fn pipelined_rejection_without_a_is_fatal_at_its_own_stage() {
    let opts = with_script(Opts::default(), |c| match c.verb.as_str() {
        "RCPT" => r("550 5.1.1 no such user"),
        "DATA" => r("554 5.5.1 no valid recipients"),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(&server, &["--ehlo", "--pipelining", "-M", "vm"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: fatal: recipient rejected: 550 5.1.1 no such user\n"
    );
}

#[test]
fn data_accepted_without_recipients_gets_a_lone_dot() {
    let opts = with_script(Opts::default(), |c| match c.verb.as_str() {
        "RCPT" => r("550 no"),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(&server, &["-A", "--ehlo", "--pipelining", "-M", "vm", "-c"]);
    ok(&out);
    let recs = server.records();
    assert_eq!(
        lines(&recs[0]),
        strs(&[
            "EHLO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "QUIT"
        ])
    );
    assert_eq!(
        contents(&recs[0]),
        vec![Vec::<u8>::new()],
        "nothing but the dot"
    );
    assert_eq!(out.stdout, b"\n", "no message counted");
}

#[test]
fn pipelined_421_closes_at_once() {
    let opts = with_script(Opts::default(), |c| match (c.verb.as_str(), c.conn) {
        ("RCPT", 0) => Some(Act::ReplyClose(vec!["421 4.3.2 going down".into()])),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(
        &server,
        &["-A", "--ehlo", "--pipelining", "-m", "2", "-M", "vm"],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 2, "second message on a new connection");
    assert!(!lines(&recs[0]).contains(&"QUIT".to_string()));
    assert_eq!(lines(&recs[1]).last().map(String::as_str), Some("QUIT"));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: recipient rejected: 421 4.3.2 going down\n"
    );
}

#[test]
fn missing_extension_fails_the_session_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--pipelining"],
            "--pipelining: server does not advertise PIPELINING",
        ),
        (
            &["--starttls"],
            "--starttls: server does not advertise STARTTLS",
        ),
        (&["--bdat"], "--bdat: server does not advertise CHUNKING"),
        (
            &["--smtputf8"],
            "--smtputf8: server does not advertise SMTPUTF8",
        ),
        (
            &["--8bitmime"],
            "--8bitmime: server does not advertise 8BITMIME",
        ),
        (&["--size"], "--size: server does not advertise SIZE"),
        (
            &[
                "--auth",
                "login",
                "--auth-user",
                "u",
                "--auth-password",
                "p",
                "--auth-plaintext",
            ],
            "--auth: server does not advertise AUTH LOGIN",
        ),
    ];
    for (extra, text) in cases {
        let server = Server::start(Opts {
            caps: vec!["AUTH PLAIN".into()],
            ..Opts::default()
        });
        let mut args = vec!["--ehlo", "-M", "vm"];
        args.extend_from_slice(extra);
        let out = source(&server, &args);
        assert_eq!(out.code(), Some(1), "{extra:?}");
        assert_eq!(
            out.stderr_text(),
            format!("smtp-source: fatal: {text}\n"),
            "{extra:?}"
        );
        // With -A: a warning, QUIT, and the run goes on.
        let server = Server::start(Opts {
            caps: vec!["AUTH PLAIN".into()],
            ..Opts::default()
        });
        args.extend_from_slice(&["-A", "-m", "2"]);
        let out = source(&server, &args);
        ok(&out);
        assert_eq!(
            out.stderr_text(),
            format!("smtp-source: warning: {text}\n").repeat(2),
            "{extra:?}"
        );
        let recs = server.records();
        assert_eq!(recs.len(), 2);
        for rec in &recs {
            assert_eq!(lines(rec), strs(&["EHLO vm", "QUIT"]), "{extra:?}");
        }
    }
}

fn tls_of(rec: &Record) -> (String, bool, Option<String>) {
    match rec.handshakes().first() {
        Some(Ev::Tls {
            version,
            resumed,
            sni,
            ..
        }) => (version.clone(), *resumed, sni.clone()),
        _ => panic!("no TLS handshake in {:?}", rec.events),
    }
}

#[test]
fn starttls_then_ehlo_again_inside_tls() {
    let server = Server::start(strict());
    let out = source(
        &server,
        &[
            "--starttls",
            "--pipelining",
            "-d",
            "-m",
            "2",
            "-M",
            "vm",
            "-v",
        ],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.stalls, 0);
    // Before TLS: EHLO and STARTTLS only; everything after under TLS.
    let plain: Vec<&str> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::Line { text, tls: false } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(plain, vec!["EHLO vm", "STARTTLS"]);
    let tls: Vec<&str> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::Line { text, tls: true } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        tls,
        vec![
            "EHLO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "QUIT"
        ]
    );
    let (version, resumed, sni) = tls_of(rec);
    assert_eq!(version, "TLSv1_3");
    assert!(!resumed);
    assert_eq!(sni, None, "no SNI for an IP address");
    assert_eq!(contents(rec).len(), 2);
    assert!(
        out.stderr_text()
            .contains("smtp-source: TLS established: TLSv1_3 "),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn implicit_tls_keeps_helo() {
    let server = Server::start(Opts {
        implicit_tls: true,
        ..Opts::default()
    });
    let out = source(&server, &["--tls", "-M", "vm", "-m", "2", "-d"]);
    ok(&out);
    let recs = server.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        lines(&recs[0]),
        strs(&[
            "HELO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "DATA",
            ".",
            "QUIT"
        ])
    );
    assert!(recs[0]
        .events
        .iter()
        .all(|e| !matches!(e, Ev::Line { tls: false, .. })));
    tls_of(&recs[0]);
}

#[test]
fn tls_verify_with_ca_and_sni() {
    let server = Server::start(Opts {
        cert_host: "localhost".into(),
        ..Opts::default()
    });
    let dir = tempdir();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let endpoint = format!("localhost:{}", server.addr.port());
    let ca_arg = ca.to_str().unwrap();
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "-4",
            "--starttls",
            "--tls-verify",
            "--tls-ca",
            ca_arg,
            "-M",
            "vm",
            &endpoint,
        ],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(tls_of(&recs[0]).2.as_deref(), Some("localhost"), "SNI");
    assert_eq!(contents(&recs[0]).len(), 1);

    // A certificate for another name: refused.
    let other = Server::start(Opts::default()); // mx.test
    let ca2 = dir.path().join("other.pem");
    std::fs::write(&ca2, &other.cert_pem).unwrap();
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "--starttls",
            "--tls-verify",
            "--tls-ca",
            ca2.to_str().unwrap(),
            "-M",
            "vm",
            &other.endpoint(),
        ],
    );
    assert_eq!(out.code(), Some(1));
    let err = out.stderr_text();
    assert!(
        err.starts_with("smtp-source: fatal: TLS handshake failed: invalid peer certificate"),
        "{err}"
    );
    // The default (no verification) talks to the same server.
    let out = source(&other, &["--starttls", "-M", "vm"]);
    ok(&out);
}

#[test]
fn tls_resume_reuses_sessions_across_connections() {
    for (resume, want) in [(false, [false, false, false]), (true, [false, true, true])] {
        let server = Server::start(Opts::default());
        let mut args = vec!["--starttls", "-m", "3", "-M", "vm"];
        if resume {
            args.push("--tls-resume");
        }
        let out = source(&server, &args);
        ok(&out);
        let recs = server.records();
        assert_eq!(recs.len(), 3);
        let got: Vec<bool> = recs.iter().map(|r| tls_of(r).1).collect();
        assert_eq!(got, want, "--tls-resume {resume}");
    }
}

#[test]
fn auth_plain_and_login_after_starttls() {
    for mech in ["PLAIN", "login"] {
        let server = Server::start(Opts::default());
        let out = source(
            &server,
            &[
                "--starttls",
                "--auth",
                mech,
                "--auth-user",
                "user@x",
                "--auth-password",
                "s3cret",
                "-M",
                "vm",
                "-v",
            ],
        );
        ok(&out);
        let recs = server.records();
        let auth: Vec<&Ev> = recs[0]
            .events
            .iter()
            .filter(|e| matches!(e, Ev::Auth { .. }))
            .collect();
        assert_eq!(
            auth,
            vec![&Ev::Auth {
                mech: mech.to_ascii_uppercase(),
                user: b"user@x".to_vec(),
                pass: b"s3cret".to_vec()
            }]
        );
        // AUTH comes after the TLS EHLO and before MAIL.
        let l = lines(&recs[0]);
        let pos = |p: &str| l.iter().position(|x| x.starts_with(p)).unwrap();
        assert!(pos("STARTTLS") < pos("AUTH") && pos("AUTH") < pos("MAIL"));
        // -v never shows the credentials.
        let err = out.stderr_text();
        assert!(
            !err.contains("czNjcmV0") && !err.contains("dXNlckB4"),
            "{err}"
        );
        assert!(err.contains("smtp-source: AUTH "), "{err}");
    }
}

#[test]
fn auth_plain_exact_wire_over_plaintext() {
    let server = Server::start(Opts::default());
    let out = source(
        &server,
        &[
            "--ehlo",
            "--auth",
            "PLAIN",
            "--auth-user",
            "tim",
            "--auth-password",
            "tanstaaftanstaaf",
            "--auth-plaintext",
            "-M",
            "vm",
        ],
    );
    ok(&out);
    let l = lines(&server.records()[0]);
    assert_eq!(l[1], "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

#[test]
fn auth_rejected() {
    let opts = with_script(Opts::default(), |c| match c.verb.as_str() {
        "AUTH" => r("535 5.7.8 Error: authentication failed"),
        _ => None,
    });
    let server = Server::start(opts.clone());
    let args = [
        "--ehlo",
        "--auth",
        "plain",
        "--auth-user",
        "u",
        "--auth-password",
        "p",
        "--auth-plaintext",
        "-M",
        "vm",
    ];
    let out = source(&server, &args);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: fatal: authentication failed: 535 5.7.8 Error: authentication failed\n"
    );
    // -A: warn and carry on (as after a rejected HELO).
    let server = Server::start(opts);
    let mut a = args.to_vec();
    a.push("-A");
    let out = source(&server, &a);
    ok(&out);
    assert_eq!(contents(&server.records()[0]).len(), 1);
}

#[test]
fn bdat_chunks_without_dot_stuffing() {
    let dir = tempdir();
    let file = dir.path().join("msg");
    std::fs::write(&file, b"Subject: x\n\n.leading dot\nbody\n").unwrap();
    let f = file.to_str().unwrap();
    for pipelining in [false, true] {
        let server = Server::start(if pipelining {
            strict()
        } else {
            Opts::default()
        });
        let mut args = vec!["--ehlo", "--bdat=10", "-F", f, "-M", "vm", "-c"];
        if pipelining {
            args.push("--pipelining");
        }
        let out = source(&server, &args);
        ok(&out);
        let recs = server.records();
        assert_eq!(recs[0].stalls, 0);
        let data = chunk_data(&recs[0]);
        // The file's lines, CRLF, one extra empty line; the dot is not
        // doubled and no end-of-data line is sent.
        assert_eq!(
            data,
            b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n\r\n".to_vec()
        );
        let sizes = chunks(&recs[0]);
        assert_eq!(
            sizes,
            vec![(10, false), (10, false), (10, false), (6, true)],
            "pipelining {pipelining}"
        );
        let l = lines(&recs[0]);
        assert_eq!(
            l,
            strs(&[
                "EHLO vm",
                "MAIL FROM:<foo@vm>",
                "RCPT TO:<foo@vm>",
                "BDAT 10",
                "BDAT 10",
                "BDAT 10",
                "BDAT 6 LAST",
                "QUIT"
            ])
        );
        assert_eq!(out.stdout, b"1\r\n");
    }
}

#[test]
fn bdat_default_chunk_size_and_headers() {
    let server = Server::start(strict());
    let out = source(
        &server,
        &[
            "--ehlo",
            "--pipelining",
            "--bdat",
            "-l",
            "100000",
            "-M",
            "vm",
            "-d",
            "-m",
            "2",
        ],
    );
    ok(&out);
    let recs = server.records();
    assert_eq!(recs[0].stalls, 0);
    let sizes = chunks(&recs[0]);
    assert_eq!(sizes.len(), 4, "{sizes:?}");
    assert_eq!(sizes[0], (65536, false));
    assert!(sizes[1].1);
    let data = chunk_data(&recs[0]);
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("From: <foo@vm>\r\nTo: <foo@vm>\r\nDate: "));
    assert_eq!(text.matches("Message-Id: ").count(), 2);
}

#[test]
fn bdat_chunk_rejected_then_rset() {
    let opts = with_script(Opts::default(), |c| match c.verb.as_str() {
        "BDAT" if c.nth == 0 => r("552 5.3.4 too big"),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(&server, &["-A", "--ehlo", "--bdat=5", "-M", "vm", "-c"]);
    ok(&out);
    let l = lines(&server.records()[0]);
    assert_eq!(
        l,
        strs(&[
            "EHLO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo@vm>",
            "BDAT 5",
            "RSET",
            "QUIT"
        ])
    );
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: BDAT rejected: 552 5.3.4 too big\n"
    );
    assert_eq!(out.stdout, b"\n");
}

#[test]
fn mail_parameters_and_utf8_addresses() {
    let server = Server::start(Opts::default());
    let out = source(
        &server,
        &[
            "--ehlo",
            "--smtputf8",
            "--8bitmime",
            "--size",
            "-f",
            "jösé@exämple.test",
            "-t",
            "δοκιμή@παράδειγμα.δοκιμή",
            "-M",
            "vm",
            "-v",
        ],
    );
    ok(&out);
    // Diagnostics show each non-ASCII byte as `?`, as Postfix prints them.
    assert!(
        out.stderr_text()
            .contains("smtp-source: MAIL FROM:<j??s??@ex??mple.test> SIZE="),
        "{}",
        out.stderr_text()
    );
    let rec = &server.records()[0];
    let l = lines(rec);
    let content = &contents(rec)[0];
    let want_mail = format!(
        "MAIL FROM:<jösé@exämple.test> SIZE={} BODY=8BITMIME SMTPUTF8",
        content.len()
    );
    assert_eq!(l[1], want_mail);
    assert_eq!(l[2], "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>");
}

#[test]
fn size_counts_the_unstuffed_message() {
    let dir = tempdir();
    let file = dir.path().join("m");
    std::fs::write(&file, b".a\n..b\nc\n").unwrap();
    for extra in [&[][..], &["--bdat"][..]] {
        let server = Server::start(Opts::default());
        let mut args = vec!["--ehlo", "--size", "-F", file.to_str().unwrap(), "-M", "vm"];
        args.extend_from_slice(extra);
        ok(&source(&server, &args));
        let rec = &server.records()[0];
        // ".a\r\n..b\r\nc\r\n\r\n" = 4 + 5 + 3 + 2 octets.
        assert_eq!(lines(rec)[1], "MAIL FROM:<foo@vm> SIZE=14", "{extra:?}");
    }
}

#[test]
fn lmtp_lhlo_pipelined_replies_per_recipient() {
    let opts = with_script(
        Opts {
            lmtp: true,
            strict_pipelining: true,
            ..Opts::default()
        },
        |c| match (c.verb.as_str(), c.nth) {
            ("RCPT", 1) => r("550 5.1.1 unknown"),
            _ => None,
        },
    );
    let server = Server::start(opts);
    let out = source(
        &server,
        &[
            "-L",
            "--ehlo",
            "--pipelining",
            "-A",
            "-r",
            "3",
            "-d",
            "-m",
            "2",
            "-M",
            "vm",
        ],
    );
    ok(&out);
    let rec = &server.records()[0];
    assert_eq!(rec.stalls, 0);
    assert_eq!(lines(rec)[0], "LHLO vm");
    assert_eq!(lines(rec).iter().filter(|l| *l == ".").count(), 2);
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: recipient rejected: 550 5.1.1 unknown\n"
    );
}

#[test]
fn lmtp_bdat_last_replies_per_recipient() {
    let server = Server::start(Opts {
        lmtp: true,
        ..Opts::default()
    });
    let out = source(
        &server,
        &[
            "-L", "--ehlo", "--bdat", "-r", "3", "-m", "2", "-d", "-M", "vm", "-c",
        ],
    );
    ok(&out);
    let rec = &server.records()[0];
    assert_eq!(chunks(rec), vec![(chunks(rec)[0].0, true); 2]);
    assert_eq!(out.stdout, b"1\r2\r\n");
    assert_eq!(lines(rec).last().map(String::as_str), Some("QUIT"));
}

#[test]
fn starttls_response_injection_is_discarded() {
    // A server (or a man in the middle) that sends extra bytes after the
    // 220: they must not be read as a reply inside TLS.
    let opts = with_script(Opts::default(), |c| match c.verb.as_str() {
        "STARTTLS" if !c.tls => Some(Act::Reply(vec![
            "220 2.0.0 Ready".into(),
            "250 injected".into(),
        ])),
        _ => None,
    });
    let server = Server::start(opts);
    let out = source(&server, &["--starttls", "-M", "vm"]);
    // The injected line arrives with the 220 (one write): it is either
    // discarded with a warning, or (if it came in a later packet) it
    // breaks the TLS handshake. It is never taken as a reply.
    let err = out.stderr_text();
    if out.code() == Some(0) {
        assert_eq!(
            err,
            "smtp-source: warning: discarding 14 bytes received after the STARTTLS reply\n"
        );
        assert_eq!(contents(&server.records()[0]).len(), 1);
    } else {
        assert!(
            err.contains("TLS handshake failed"),
            "{err} {:?}",
            out.status
        );
    }
}

#[test]
fn option_errors_are_one_line_fatals() {
    let cases: &[(&[&str], &str)] = &[
        (&["--pipelining"], "--pipelining requires --ehlo"),
        (&["--bdat"], "--bdat requires --ehlo"),
        (&["--size"], "--size requires --ehlo"),
        (&["--8bitmime"], "--8bitmime requires --ehlo"),
        (&["--smtputf8"], "--smtputf8 requires --ehlo"),
        (&["--ehlo", "--bdat=0"], "bad BDAT chunk size: 0"),
        (&["--ehlo", "--bdat=x"], "bad BDAT chunk size: x"),
        (&["--ehlo", "--bdat="], "bad BDAT chunk size: "),
        (
            &["--tls", "--starttls"],
            "--tls and --starttls cannot be used together",
        ),
        (
            &["--tls-verify"],
            "--tls-verify requires --starttls or --tls",
        ),
        (
            &["--tls-resume"],
            "--tls-resume requires --starttls or --tls",
        ),
        (
            &["--tls", "--tls-ca", "f"],
            "--tls-ca requires --tls-verify",
        ),
        (
            &["--tls", "--tls-verify"],
            "--tls-verify requires --tls-ca FILE",
        ),
        (
            &["--ehlo", "--auth", "CRAM-MD5"],
            "unsupported --auth mechanism: CRAM-MD5 (use PLAIN or LOGIN)",
        ),
        (
            &["--tls", "--auth", "plain"],
            "--auth requires --auth-user and --auth-password",
        ),
        (
            &["--tls", "--auth", "plain", "--auth-user", "u"],
            "--auth requires --auth-user and --auth-password",
        ),
        (&["--auth-user", "u"], "--auth-user requires --auth"),
        (&["--auth-password", "p"], "--auth-password requires --auth"),
        (&["--auth-plaintext"], "--auth-plaintext requires --auth"),
        (
            &[
                "--ehlo",
                "--auth",
                "plain",
                "--auth-user",
                "u",
                "--auth-password",
                "p",
            ],
            "--auth requires --starttls or --tls (or --auth-plaintext)",
        ),
        (
            &[
                "--tls",
                "--auth",
                "plain",
                "--auth-user",
                "u",
                "--auth-password",
                "p",
            ],
            "--auth requires --ehlo",
        ),
        (&["-o", "--ehlo"], "--ehlo cannot be used with -o"),
        (&["-o", "--starttls"], "--starttls cannot be used with -o"),
    ];
    for (args, want) in cases {
        let mut argv = args.to_vec();
        argv.push("127.0.0.1:1");
        let out = run(&our_source(), "smtp-source", &argv);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert_eq!(
            out.stderr_text(),
            format!("smtp-source: fatal: {want}\n"),
            "{args:?}"
        );
    }
    // A missing CA file is reported at start-up.
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "--tls",
            "--tls-verify",
            "--tls-ca",
            "/nonexistent/ca.pem",
            "127.0.0.1:1",
        ],
    );
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: fatal: open /nonexistent/ca.pem: No such file or directory\n"
    );
}

#[test]
fn help_lists_the_extension_options() {
    let out = run(&our_source(), "smtp-source", ["--help"]);
    ok(&out);
    let text = out.stdout_text();
    for opt in [
        "--ehlo",
        "--pipelining",
        "--starttls",
        "--tls ",
        "--tls-verify",
        "--tls-ca <FILE>",
        "--tls-resume",
        "--auth <MECH>",
        "--auth-user <USER>",
        "--auth-password <PASSWORD>",
        "--auth-plaintext",
        "--bdat[=<SIZE>]",
        "--smtputf8",
        "--8bitmime",
        "--size",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help:\n{text}");
    }
}

#[test]
fn tls_verify_against_an_ip_address_certificate() {
    // An IP address endpoint is verified against the certificate's IP
    // subjectAltName (no SNI is sent for addresses).
    let server = Server::start(Opts {
        cert_host: "127.0.0.1".into(),
        ..Opts::default()
    });
    let dir = tempdir();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let out = source(
        &server,
        &[
            "--tls-verify",
            "--tls-ca",
            ca.to_str().unwrap(),
            "--starttls",
            "-M",
            "vm",
        ],
    );
    ok(&out);
    assert_eq!(tls_of(&server.records()[0]).2, None);
}

#[test]
fn report_shows_tls_version_suite_and_handshake_percentiles() {
    let server = Server::start(Opts::default());
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let out = source(
        &server,
        &[
            "--starttls",
            "--tls-resume",
            "-m",
            "3",
            "-M",
            "vm",
            "--report",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    ok(&out);
    let err = out.stderr_text();
    assert!(
        err.contains("  TLS          3 handshakes, 2 resumed: TLSv1_3 TLS13_"),
        "{err}"
    );
    let row = err
        .lines()
        .find(|l| l.trim_start().starts_with("TLS ") && !l.contains("handshakes"))
        .unwrap_or_else(|| panic!("no TLS latency row in\n{err}"));
    assert_eq!(row.split_whitespace().nth(1), Some("3"), "{row}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["counters"]["tls_handshakes"], 3);
    assert_eq!(v["counters"]["tls_resumed"], 2);
    assert_eq!(v["latency_us"]["tls"]["count"], 3);
    let tls = v["tls"].as_object().unwrap();
    assert_eq!(tls.len(), 1);
    let (name, n) = tls.iter().next().unwrap();
    assert!(name.starts_with("TLSv1_3 TLS13_"), "{name}");
    assert_eq!(n, 3);
}

#[test]
fn report_without_tls_has_no_tls_lines() {
    let server = Server::start(Opts::default());
    let out = source(&server, &["--ehlo", "--pipelining", "-M", "vm", "--report"]);
    ok(&out);
    assert!(!out.stderr_text().contains("TLS"), "{}", out.stderr_text());
}
