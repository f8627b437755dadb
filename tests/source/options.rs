//! smtp-source: command line, option validation, start-up order, endpoint
//! errors and connect retries (docs/smtp-source.md §1-§3, §5, §12).

use crate::common;

use common::capture::{run_source, Capture};
use common::{our_source, run, Output};

const USAGE: &str = "smtp-source: fatal: usage: smtp-source -cdLNov -s sess -l msglen -m msgs -C count -M myhostname -f from -t to -r rcptcount -R delay -w delay host[:port]\n";

fn ours(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

fn assert_fatal(out: &Output, stderr: &str) {
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    assert_eq!(out.stderr_text(), stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors() {
    assert_fatal(&ours(&[]), USAGE);
    assert_fatal(&ours(&["a", "b"]), USAGE);
    // Options end at the first operand.
    assert_fatal(&ours(&["host", "-m", "2"]), USAGE);
    assert_fatal(
        &ours(&["-x", "host"]),
        &format!("smtp-source: invalid option -- 'x'\n{USAGE}"),
    );
    assert_fatal(
        &ours(&["-l"]),
        &format!("smtp-source: option requires an argument -- 'l'\n{USAGE}"),
    );
    // argv[0] is used verbatim.
    let out = run(&our_source(), "./some/smtp-source", &[] as &[&str]);
    assert_eq!(out.code(), Some(1));
    assert!(out
        .stderr_text()
        .starts_with("./some/smtp-source: fatal: usage: ./some/smtp-source -cdLNov"));
}

#[test]
fn bad_values() {
    let cases: &[(&[&str], &str)] = &[
        (&["-C", "0"], "bad connection count: 0"),
        (&["-C", "abc"], "bad connection count: abc"),
        (&["-l", "0"], "bad message length: 0"),
        (&["-l", "-5"], "bad message length: -5"),
        (&["-m", "0"], "bad message count: 0"),
        (&["-r", "0"], "bad recipient count: 0"),
        (&["-R", "0"], "bad random delay: 0"),
        (&["-w", "0"], "bad fixed delay: 0"),
        (&["-s", "0"], "bad session count: 0"),
        (&["-T", "0"], "bad TCP window size: 0"),
        (
            &["-w", "1", "-R", "1"],
            "do not use -w and -R options at the same time",
        ),
        (
            &["-R", "1", "-w", "1"],
            "do not use -w and -R options at the same time",
        ),
        (&["-l", "10", "-F", "f"], "-l option cannot be used with -F"),
        (&["-F", "f", "-l", "10"], "-l option cannot be used with -F"),
    ];
    for (args, text) in cases {
        let mut argv = args.to_vec();
        argv.push("127.0.0.1:1");
        assert_fatal(&ours(&argv), &format!("smtp-source: fatal: {text}\n"));
    }
}

#[test]
fn hostname_option() {
    let cases: &[(&str, &str)] = &[
        (
            "1234",
            "smtp-source: warning: valid_hostname: numeric hostname: 1234\nsmtp-source: fatal: bad hostname: 1234\n",
        ),
        (
            "a..b",
            "smtp-source: warning: valid_hostname: misplaced delimiter: a..b\nsmtp-source: fatal: bad hostname: a..b\n",
        ),
        (
            "[::1]",
            "smtp-source: warning: valid_ipv4_hostaddr: invalid character 58(decimal): ::1\nsmtp-source: fatal: bad address literal: [::1]\n",
        ),
        (
            "[1.2.3.4",
            "smtp-source: warning: valid_mailhost_literal: ']' expected at end: [1.2.3.4\nsmtp-source: fatal: bad address literal: [1.2.3.4\n",
        ),
    ];
    for (name, stderr) in cases {
        // -M is checked during option parsing: before the operand count
        // and before a bad endpoint.
        assert_fatal(&ours(&["-M", name, "nonexistent.invalid:25"]), stderr);
        assert_fatal(&ours(&["-M", name]), stderr);
    }
    let cap = Capture::default_smtp();
    let out = run_source(&our_source(), &["-M", "[IPv6:::1]"], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(cap.commands()[0][0], "HELO [IPv6:::1]");
}

#[test]
fn file_errors_come_before_endpoint_errors() {
    assert_fatal(
        &ours(&["-F", "/nonexistent/file", "inet:[::1"]),
        "smtp-source: fatal: open /nonexistent/file: No such file or directory\n",
    );
    let dir = common::tempdir();
    let d = dir.path().to_str().unwrap().to_string();
    assert_fatal(
        &ours(&["-F", &d, "127.0.0.1:1"]),
        &format!("smtp-source: fatal: read {d}: Is a directory\n"),
    );
}

#[test]
fn endpoint_errors() {
    let cases: &[(&str, &str)] = &[
        ("inet:[::1", "[::1: missing \"]\""),
        ("[::1]x", "[::1]x: garbage after \"]\""),
        ("[ipv6:zz]:25", "[ipv6:zz]:25: malformed IPv6 address"),
        (":25", ":25: missing host information"),
        ("inet:", ": missing host information"),
        (
            "foo_bar!:25",
            "foo_bar!:25: valid hostname or network address required",
        ),
        (
            "127.0.0.1:25x",
            "127.0.0.1:25x: garbage after numerical service",
        ),
        (
            "127.0.0.1:nosuchservice",
            "127.0.0.1:nosuchservice: Servname not supported for ai_socktype",
        ),
    ];
    for (operand, text) in cases {
        assert_fatal(&ours(&[operand]), &format!("smtp-source: fatal: {text}\n"));
    }
    let long = format!("unix:/{}", "x".repeat(120));
    assert_fatal(
        &ours(&[&long]),
        &format!(
            "smtp-source: fatal: unix-domain name too long: {}\n",
            &long[5..]
        ),
    );
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    common::free_port()
}

#[test]
fn connect_retries() {
    let ep = format!("127.0.0.1:{}", closed_port());
    let out = ours(&["-C", "3", &ep]);
    assert_fatal(
        &out,
        "smtp-source: warning: connect: Connection refused\n\
smtp-source: warning: connect: Connection refused\n\
smtp-source: fatal: connect: Connection refused\n",
    );
    let out = ours(&[&ep]);
    assert_fatal(&out, "smtp-source: fatal: connect: Connection refused\n");
    let dir = common::tempdir();
    let path = dir.path().join("missing");
    let ep = format!("unix:{}", path.display());
    assert_fatal(
        &ours(&["-C", "2", &ep]),
        "smtp-source: warning: connect: No such file or directory\n\
smtp-source: fatal: connect: No such file or directory\n",
    );
}

#[test]
fn help_documents_every_option() {
    let out = ours(&["--help"]);
    assert_eq!(out.code(), Some(0));
    let text = out.stdout_text();
    for letter in "46AcCdfFlLmMNorRsStTvw".chars() {
        assert!(
            text.contains(&format!("-{letter}")),
            "-{letter} missing:\n{text}"
        );
    }
}
