//! smtp-sink command line: usage, option validation messages, exit codes,
//! start-up fatals (docs/smtp-sink.md §1–§4, §20 rows 12, 27, 28; deviation S6, docs/deviations.md).

use crate::common;

use common::sink::ours_fails;

const USAGE: &str = "smtp-sink: fatal: usage: smtp-sink [-468acCeEFLpPv] [-A abort_delay] \
[-b soft_bounce_reply] [-B hard_bounce_reply] [-d dump-template] [-D dump-template] \
[-f commands] [-h hostname] [-m max_concurrency] [-M message_quit_count] [-n quit_count] \
[-q commands] [-r commands] [-R root-dir] [-s commands] [-S start-string] [-u user_privs] \
[-w delay] [host]:port backlog\n";

fn check(args: &[&str], stderr: &str) {
    let out = ours_fails(args);
    assert_eq!(out.code(), Some(1), "{args:?}");
    assert_eq!(out.stderr_text(), stderr, "{args:?}");
    assert_eq!(out.stdout_text(), "", "{args:?}");
}

#[test]
fn usage_errors() {
    for args in [
        &[][..],
        &["127.0.0.1:0"],
        &["127.0.0.1:0", "0"],
        &["127.0.0.1:0", "abc"],
        &["127.0.0.1:0", "-5"],
        &["127.0.0.1:0", "1", "x"],
        &["-A", "1x", "127.0.0.1:0", "1"],
        &["-w", "0", "127.0.0.1:0", "1"],
    ] {
        check(args, USAGE);
    }
    check(
        &["-x", "127.0.0.1:0", "1"],
        &format!("smtp-sink: invalid option -- 'x'\n{USAGE}"),
    );
    check(&["127.0.0.1:0", "1", "-u"], USAGE);
    check(
        &["-u"],
        &format!("smtp-sink: option requires an argument -- 'u'\n{USAGE}"),
    );
    check(
        &["-b", "550", "127.0.0.1:0", "1"],
        &format!("smtp-sink: error: bad soft error reply: 550\n{USAGE}"),
    );
    check(
        &["-B", "5000", "127.0.0.1:0", "1"],
        &format!("smtp-sink: error: bad hard error reply: 5000\n{USAGE}"),
    );
}

#[test]
fn option_fatals() {
    for (args, text) in [
        (&["-f", "FOO"][..], "unknown command: FOO"),
        (&["-W", "data"], "invalid command delay argument: data"),
        (&["-W", "DATA:0"], "non-positive 'DATA' delay"),
        (&["-W", "data:1:100"], "delay odds for 'data' out of range"),
        (&["-t", "0"], "bad timeout: 0"),
        (&["-m", "0"], "bad concurrency limit: 0"),
        (&["-M", "-1"], "bad message quit count: -1"),
        (&["-n", "x"], "bad quit count: x"),
        (&["-H", "0"], "bad data read delay: 0"),
        (&["-T", "0"], "bad TCP window size: 0"),
        (
            &["-d", "a", "-D", "b"],
            "use only one of -d or -D, but not both",
        ),
        (&["-d", ""], "empty dump template"),
    ] {
        let mut argv = args.to_vec();
        argv.extend(["127.0.0.1:0", "1"]);
        check(&argv, &format!("smtp-sink: fatal: {text}\n"));
    }
}

#[test]
fn startup_fatals() {
    let user = common::sink_user_args();
    let u: Vec<&str> = user.iter().map(String::as_str).collect();
    let with_user = |rest: &[&str]| -> Vec<String> {
        u.iter().chain(rest.iter()).map(|s| s.to_string()).collect()
    };
    for (rest, text) in [
        (vec!["[::1]", "1"], "[::1]: missing service information"),
        (
            vec!["localhost", "1"],
            "localhost: Servname not supported for ai_socktype",
        ),
        (
            vec!["1.2.3.4:0", "1"],
            "bind 1.2.3.4 port 0: Cannot assign requested address",
        ),
        (
            vec!["-4", "[::1]:0", "1"],
            "[::1]:0: Address family for hostname not supported",
        ),
        (
            vec!["unix:/nonexistent/dir/sock", "1"],
            "bind: /nonexistent/dir/sock: No such file or directory",
        ),
    ] {
        let argv = with_user(&rest);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        check(&argv, &format!("smtp-sink: fatal: {text}\n"));
    }
    let long = format!("unix:/{}", "a".repeat(120));
    let argv = with_user(&[&long, "1"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    check(
        &argv,
        &format!(
            "smtp-sink: fatal: unix-domain name too long: /{}\n",
            "a".repeat(120)
        ),
    );
    if common::is_root() {
        check(
            &["127.0.0.1:0", "1"],
            "smtp-sink: fatal: -u option is required if running as root\n",
        );
        check(
            &["-u", "no-such-user-xyz", "127.0.0.1:0", "1"],
            "smtp-sink: fatal: unknown user: no-such-user-xyz\n",
        );
        check(
            &["-u", "nobody", "-R", "/nonexistent-dir", "127.0.0.1:0", "1"],
            "smtp-sink: fatal: chroot(/nonexistent-dir): No such file or directory\n",
        );
    }
}

#[test]
fn help_documents_every_option() {
    let out = common::run(&common::our_sink(), "smtp-sink", ["--help"]);
    assert_eq!(out.code(), Some(0));
    let text = out.stdout_text();
    for letter in "468aAbBcCdDeEfFhHLmMnNpPqQrRsStTuvwW".chars() {
        assert!(
            text.contains(&format!("-{letter}")),
            "-{letter} missing in {text}"
        );
    }
}
