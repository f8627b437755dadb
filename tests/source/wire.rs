//! smtp-source: exact bytes on the wire (docs/smtp-source.md §6.1, §7, §8), checked
//! against the scripted capture server.

use crate::common;

use common::capture::{self, mask, run_source, show, Capture};
use common::our_source;

/// Lines joined with CRLF, each terminated by CRLF.
fn wire(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

const LA_DE_DA: [&str; 4] = [
    "La de da de da 1.",
    "La de da de da 2.",
    "La de da de da 3.",
    "La de da de da 4.",
];

fn headers(to: &str, counter: &str) -> Vec<String> {
    vec![
        "From: <foo@vm>".into(),
        format!("To: <{to}>"),
        "Date: DATE".into(),
        format!("Message-Id: <P.F.{counter}@vm>"),
        String::new(),
    ]
}

/// Run ours with `args` against a default capture server; assert exit 0
/// and return the masked transcripts.
fn transcripts(args: &[&str]) -> Vec<Vec<u8>> {
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), args, &cap);
    assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr_text());
    assert_eq!(out.stderr_text(), "", "{args:?}");
    cap.transcripts().iter().map(|t| mask(t)).collect()
}

fn assert_wire(got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "transcript mismatch\n--- got\n{}\n--- want\n{}",
        show(got),
        show(want)
    );
}

#[test]
fn default_run() {
    let t = transcripts(&["-M", "vm"]);
    assert_eq!(t.len(), 1);
    let mut want: Vec<String> = vec![
        "HELO vm".into(),
        "MAIL FROM:<foo@vm>".into(),
        "RCPT TO:<foo@vm>".into(),
        "DATA".into(),
    ];
    want.extend(headers("foo@vm", "0000"));
    want.extend(LA_DE_DA.iter().map(|s| s.to_string()));
    want.extend([".".to_string(), "QUIT".to_string()]);
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_wire(&t[0], &wire(&want));
}

/// `Thu, 05 Mar 2026 03:40:00 -0500 (EST)`: Postfix 3.12 zero-pads the
/// day (deviation D4 (docs/deviations.md): 3.7 space-pads it).
fn date_is_3_12_format(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() >= 33
        && b[0].is_ascii_uppercase()
        && b[3..5] == *b", "
        && b[5].is_ascii_digit()
        && b[6].is_ascii_digit()
        && b[7] == b' '
        && b[11] == b' '
        && b[12..16].iter().all(u8::is_ascii_digit)
        && b[16] == b' '
        && b[19] == b':'
        && b[22] == b':'
        && (b[26] == b'+' || b[26] == b'-')
        && b[27..31].iter().all(u8::is_ascii_digit)
        && b[31..33] == *b" ("
        && value.ends_with(')')
}

#[test]
fn date_header_is_made_once_in_3_12_format() {
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), &["-M", "vm", "-m", "3", "-s", "3"], &cap);
    assert_eq!(out.code(), Some(0));
    let dates: Vec<String> = cap
        .transcripts()
        .iter()
        .flat_map(|t| {
            String::from_utf8_lossy(t)
                .lines()
                .filter_map(|l| l.strip_prefix("Date: ").map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dates.len(), 3);
    assert!(date_is_3_12_format(&dates[0]), "{}", dates[0]);
    assert!(dates.iter().all(|d| *d == dates[0]));
}

#[test]
fn default_hostname_is_the_system_hostname() {
    let host = nix::unistd::gethostname().expect("gethostname");
    let host = host.to_string_lossy();
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), &[], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let cmds = &cap.commands()[0];
    assert_eq!(cmds[0], format!("HELO {host}"));
    assert_eq!(cmds[1], format!("MAIL FROM:<foo@{host}>"));
    assert_eq!(cmds[2], format!("RCPT TO:<foo@{host}>"));
}

#[test]
fn old_mode_reuse_lmtp_and_subject() {
    // -d -m 2 -o: one connection, no HELO, no headers, no RSET between.
    let t = transcripts(&["-M", "vm", "-d", "-m", "2", "-o"]);
    assert_eq!(t.len(), 1);
    let mut want = Vec::new();
    for _ in 0..2 {
        want.extend(["MAIL FROM:<foo@vm>", "RCPT TO:<foo@vm>", "DATA"]);
        want.extend(LA_DE_DA);
        want.push(".");
    }
    want.push("QUIT");
    assert_wire(&t[0], &wire(&want));

    // -d -m 3: Message-Id counters 2, 1, 0 over one connection.
    let t = transcripts(&["-M", "vm", "-d", "-m", "3", "-S", "hi there"]);
    assert_eq!(t.len(), 1);
    let mut want: Vec<String> = vec!["HELO vm".into()];
    for counter in ["0002", "0001", "0000"] {
        want.extend(["MAIL FROM:<foo@vm>", "RCPT TO:<foo@vm>", "DATA"].map(String::from));
        let mut h = headers("foo@vm", counter);
        h.insert(4, "Subject: hi there".into());
        want.extend(h);
        want.extend(LA_DE_DA.map(String::from));
        want.push(".".into());
    }
    want.push("QUIT".into());
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_wire(&t[0], &wire(&want));

    // Without -d every message has its own connection with HELO.
    let t = transcripts(&["-M", "vm", "-m", "2", "-o", "-L"]);
    assert_eq!(t.len(), 2);
    for conn in &t {
        assert!(
            conn.starts_with(b"MAIL FROM:<foo@vm>\r\n"),
            "{}",
            show(conn)
        );
        assert!(conn.ends_with(b".\r\nQUIT\r\n"));
    }
    let cap = Capture::start(capture::reply("220 lmtp"), capture::lmtp_script());
    let out = run_source(&our_source(), &["-M", "vm", "-L", "-S", ""], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let t = mask(&cap.transcripts()[0]);
    assert!(t.starts_with(b"LHLO vm\r\nMAIL FROM:<foo@vm>\r\n"));
    assert!(
        t.windows(13).any(|w| w == b"Subject: \r\n\r\n"),
        "{}",
        show(&t)
    );
}

#[test]
fn recipient_numbering() {
    // -r 3: numbering on (3.12), To: uses the last number.
    let t = transcripts(&["-M", "vm", "-r", "3", "-t", "foo+@example.com"]);
    let text = String::from_utf8_lossy(&t[0]).into_owned();
    assert!(text.contains(
        "RCPT TO:<foo+0@example.com>\r\nRCPT TO:<foo+1@example.com>\r\nRCPT TO:<foo+2@example.com>\r\nDATA\r\n"
    ), "{text}");
    assert!(text.contains("To: <foo+2@example.com>\r\n"), "{text}");

    // -N -r 2 -m 2 -d: 0,1 then 2,3; To: 1 and 3.
    let t = transcripts(&[
        "-M",
        "vm",
        "-N",
        "-r",
        "2",
        "-m",
        "2",
        "-d",
        "-t",
        "foo+@example.com",
    ]);
    let text = String::from_utf8_lossy(&t[0]).into_owned();
    let rcpts: Vec<&str> = text.lines().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(
        rcpts,
        [
            "RCPT TO:<foo+0@example.com>",
            "RCPT TO:<foo+1@example.com>",
            "RCPT TO:<foo+2@example.com>",
            "RCPT TO:<foo+3@example.com>"
        ]
    );
    let tos: Vec<&str> = text.lines().filter(|l| l.starts_with("To:")).collect();
    assert_eq!(tos, ["To: <foo+1@example.com>", "To: <foo+3@example.com>"]);

    let cases: &[(&[&str], &str, &str)] = &[
        (&["-N", "-t", "bar"], "RCPT TO:<bar0>", "To: <bar0>"),
        (&["-N", "-t", "a@b@c"], "RCPT TO:<a@b0@c>", "To: <a@b0@c>"),
        (&["-r", "1"], "RCPT TO:<foo0@vm>", "To: <foo0@vm>"),
        (&["-t", "x@y"], "RCPT TO:<x@y>", "To: <x@y>"),
    ];
    for (args, rcpt, to) in cases {
        let mut argv = vec!["-M", "vm"];
        argv.extend_from_slice(args);
        let t = transcripts(&argv);
        let text = String::from_utf8_lossy(&t[0]).into_owned();
        assert!(text.contains(&format!("{rcpt}\r\n")), "{args:?}: {text}");
        assert!(text.contains(&format!("{to}\r\n")), "{args:?}: {text}");
    }

    // Empty sender and recipient, no numbering.
    let t = transcripts(&["-M", "vm", "-f", "", "-t", ""]);
    let text = String::from_utf8_lossy(&t[0]).into_owned();
    assert!(text.contains("MAIL FROM:<>\r\nRCPT TO:<>\r\n"), "{text}");
    assert!(text.contains("From: <>\r\nTo: <>\r\n"), "{text}");
}

#[test]
fn numbering_is_shared_across_sessions() {
    let t = transcripts(&["-M", "vm", "-s", "2", "-m", "4", "-d", "-N"]);
    assert_eq!(t.len(), 2);
    let mut numbers: Vec<u32> = t
        .iter()
        .flat_map(|conn| {
            String::from_utf8_lossy(conn)
                .lines()
                .filter_map(|l| l.strip_prefix("RCPT TO:<foo"))
                .filter_map(|l| l.split('@').next().and_then(|n| n.parse().ok()))
                .collect::<Vec<u32>>()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3]);
}

/// The bytes between `354` and the end of the transcript's first message.
fn content(t: &[u8]) -> Vec<u8> {
    let start = t
        .windows(6)
        .position(|w| w == b"DATA\r\n")
        .expect("DATA sent")
        + 6;
    let end = t
        .windows(5)
        .rposition(|w| w == b"\r\n.\r\n")
        .expect("final dot")
        + 2;
    t[start..end].to_vec()
}

fn body_line(digit: Option<u8>) -> Vec<u8> {
    let mut l = match digit {
        Some(d) => vec![b'0' + d],
        None => vec![b'X'],
    };
    l.extend(std::iter::repeat_n(b'X', 77));
    l.extend_from_slice(b"\r\n");
    l
}

#[test]
fn generated_body_bytes() {
    let xs = |n: usize| {
        let mut v = vec![b'X'; n];
        v.extend_from_slice(b"\r\n");
        v
    };
    let mut big = Vec::new();
    for k in 1..=63 {
        big.extend(body_line(Some((k % 10) as u8)));
    }
    big.extend(xs(80));
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (1, xs(1)),
        (79, xs(79)),
        (80, xs(80)),
        (81, [body_line(Some(1)), xs(1)].concat()),
        (160, [body_line(Some(1)), xs(80)].concat()),
        (5120, big),
    ];
    for (len, want) in cases {
        let t = transcripts(&["-M", "vm", "-o", "-l", &len.to_string()]);
        let got = content(&t[0]);
        assert_eq!(got.len(), len + 2, "-l {len}");
        assert!(got == want, "-l {len}: {}", show(&got));
    }
    // With headers the body follows the empty line.
    let t = transcripts(&["-M", "vm", "-l", "81"]);
    let got = content(&t[0]);
    assert!(got.ends_with(&[body_line(Some(1)), xs(1)].concat()));
}

#[test]
fn file_body() {
    let dir = common::tempdir();
    let path = dir.path().join("msg");
    std::fs::write(
        &path,
        b"Subject: test\n\n.dot line\n..two dots\n\nlast\r\nnoeol",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let t = transcripts(&["-M", "vm", "-F", p]);
    let want = b"HELO vm\r\nMAIL FROM:<foo@vm>\r\nRCPT TO:<foo@vm>\r\nDATA\r\n\
Subject: test\r\n\r\n..dot line\r\n...two dots\r\n\r\nlast\r\r\nnoeol\r\n\r\n.\r\nQUIT\r\n";
    assert_wire(&t[0], want);

    // Empty file: default body, still no headers.
    std::fs::write(&path, b"").unwrap();
    let t = transcripts(&["-M", "vm", "-F", p]);
    let mut want = vec!["HELO vm", "MAIL FROM:<foo@vm>", "RCPT TO:<foo@vm>", "DATA"];
    want.extend(LA_DE_DA);
    want.extend([".", "QUIT"]);
    assert_wire(&t[0], &wire(&want));

    // docs/smtp-source.md §14 row 5: .x, a\r, no final LF.
    std::fs::write(&path, b".x\na\r\nlast").unwrap();
    let t = transcripts(&["-M", "vm", "-o", "-F", p]);
    assert_eq!(content(&t[0]), b"..x\r\na\r\r\nlast\r\n\r\n");
}

#[test]
fn address_literal_hostname_is_used_verbatim() {
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), &["-M", "[1.2.3.4]"], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let t = String::from_utf8_lossy(&cap.transcripts()[0]).into_owned();
    assert!(
        t.starts_with("HELO [1.2.3.4]\r\nMAIL FROM:<foo@[1.2.3.4]>\r\n"),
        "{t}"
    );
    assert!(t.contains(".0000@[1.2.3.4]>\r\n"), "{t}");
}

#[test]
fn counter_output() {
    for extra in [&[][..], &["-d"][..]] {
        let cap = Capture::default_smtp();
        let mut args = vec!["-M", "vm", "-c", "-m", "3"];
        args.extend_from_slice(extra);
        let out = run_source(&our_source(), &args, &cap);
        assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
        assert_eq!(out.stdout, b"1\r2\r3\r\n", "{extra:?}");
    }
}

#[test]
fn verbose_transcript() {
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), &["-v", "-M", "vm"], &cap);
    assert_eq!(out.code(), Some(0));
    let want = "smtp-source: <<< 220 fake ESMTP
smtp-source: HELO vm
smtp-source: <<< 250 ok
smtp-source: MAIL FROM:<foo@vm>
smtp-source: <<< 250 ok
smtp-source: RCPT TO:<foo@vm>
smtp-source: <<< 250 ok
smtp-source: DATA
smtp-source: <<< 354 go
smtp-source: .
smtp-source: <<< 250 2.0.0 queued
smtp-source: QUIT
smtp-source: <<< 221 bye
";
    assert_eq!(out.stderr_text(), want);
}

#[test]
fn unix_endpoint() {
    let dir = common::tempdir();
    let path = dir.path().join("s");
    let cap = Capture::start_unix(&path, capture::reply("220 unix"), capture::default_script());
    let out = run_source(&our_source(), &["-M", "vm", "-m", "2", "-T", "65536"], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let t = cap.commands();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0][0], "HELO vm");
}

#[test]
fn body_larger_than_one_write_slice() {
    let len = 2_500_001usize;
    let t = transcripts(&["-M", "vm", "-o", "-l", &len.to_string()]);
    let got = content(&t[0]);
    assert_eq!(got.len(), len + 2);
    assert!(got.starts_with(&body_line(Some(1))));
    assert!(got.ends_with(b"X\r\n"));
    let lines = got.split(|&b| b == b'\n').count() - 1;
    assert_eq!(lines, len / 80 + 1);
    assert!(t[0].ends_with(b"\r\n.\r\nQUIT\r\n"));
}

#[test]
fn non_utf8_arguments_go_on_the_wire_verbatim() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let cap = Capture::default_smtp();
    let args: Vec<OsString> = vec![
        "-v".into(),
        "-M".into(),
        "vm".into(),
        "-f".into(),
        OsString::from_vec(b"\xff\xfe@x".to_vec()),
        cap.endpoint().into(),
    ];
    let out = common::run(&our_source(), "smtp-source", &args);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let t = &cap.transcripts()[0];
    assert!(t.windows(18).any(|w| w == b"MAIL FROM:<\xff\xfe@x>\r\n"));
    assert!(out
        .stderr_text()
        .contains("smtp-source: MAIL FROM:<??@x>\n"));
}
