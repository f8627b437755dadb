//! smtp-source end to end: against our smtp-sink and Postfix's smtp-sink
//! (SMTP and LMTP, several sessions, connection reuse, large messages).

use crate::common;

use common::{our_sink, our_source, postfix_or_skip, run, start_sink, POSTFIX_SINK};

const SMTP_RUNS: &[&[&str]] = &[
    &["-s", "5", "-m", "200", "-d", "-l", "1000"],
    &["-s", "5", "-m", "50", "-l", "100000", "-c"],
    &["-s", "3", "-m", "30", "-r", "5", "-d", "-S", "e2e"],
    &["-s", "200", "-m", "2000", "-d", "-l", "1024"],
];

const LMTP_RUNS: &[&[&str]] = &[
    &["-L", "-s", "3", "-m", "30", "-r", "3", "-d"],
    &["-L", "-m", "5", "-o"],
];

fn run_against(program: &std::path::Path, argv0: &str) {
    run_set(program, argv0, &[], SMTP_RUNS);
    run_set(program, argv0, &["-L"], LMTP_RUNS);
}

fn run_set(program: &std::path::Path, argv0: &str, sink_args: &[&str], runs: &[&[&str]]) {
    let sink = start_sink(program, argv0, sink_args);
    for args in runs {
        let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        argv.push(sink.addr.to_string());
        let out = run(&our_source(), "smtp-source", &argv);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr_text());
        assert_eq!(out.stderr_text(), "", "{args:?}");
        if args.contains(&"-c") {
            let m: usize = 50;
            let want: String = (1..=m).map(|n| format!("{n}\r")).collect::<String>() + "\n";
            assert_eq!(out.stdout_text(), want);
        }
    }
}

#[test]
fn against_our_sink() {
    run_against(&our_sink(), "smtp-sink");
}

#[test]
fn against_postfix_sink() {
    let Some(sink) = postfix_or_skip(POSTFIX_SINK, "source_e2e::against_postfix_sink") else {
        return;
    };
    run_against(&sink, "smtp-sink");
}
