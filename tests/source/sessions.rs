//! smtp-source: the shared message pool, sessions, delays (docs/smtp-source.md §4), the
//! I/O time limit (deviation D2 (docs/deviations.md), through the library API so the limit can
//! be lowered without a command-line option) and independence of sessions.

use crate::common;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capture::{default_action, reply, run_source, Action, Capture, Cmd};
use common::our_source;
use smtpstone::source::{self, SourceConfig};
use smtpstone::Error;

#[test]
fn pool_is_checked_before_decrement() {
    // docs/smtp-source.md §14 row 20: -s 3 -m 2 makes two connections; the counter is -1.
    // QUIT is answered late so that no session ends (and decrements the
    // counter again) before the other has sent its headers.
    let script = Arc::new(|cmd: &Cmd| {
        if cmd.verb == "QUIT" {
            Action::Delay(Duration::from_millis(300), b"221 bye\r\n".to_vec())
        } else {
            default_action(cmd, false)
        }
    });
    let cap = Capture::start(reply("220 hi"), script);
    let out = run_source(&our_source(), &["-M", "vm", "-s", "3", "-m", "2"], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let t = cap.transcripts();
    assert_eq!(t.len(), 2);
    for conn in &t {
        let text = String::from_utf8_lossy(conn);
        let id = text
            .lines()
            .find(|l| l.starts_with("Message-Id: "))
            .expect("Message-Id");
        assert!(id.ends_with(".ffffffff@vm>"), "{id}");
    }
}

#[test]
fn fixed_delay_applies_after_the_last_message() {
    // docs/smtp-source.md §14 row 21 (coarse lower bound only).
    let cap = Capture::default_smtp();
    let start = Instant::now();
    let out = run_source(&our_source(), &["-M", "vm", "-w", "1"], &cap);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(start.elapsed() >= Duration::from_secs(1));
    let out = run_source(
        &our_source(),
        &["-M", "vm", "-R", "1", "-m", "2", "-d"],
        &cap,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
}

#[test]
fn a_slow_session_does_not_stall_the_others() {
    // Connection 0 gets its end-of-data reply after 2 s; meanwhile the
    // other session takes every other message of the pool.
    let script = Arc::new(|cmd: &Cmd| {
        if cmd.conn == 0 && cmd.verb == "." {
            Action::Delay(Duration::from_secs(2), b"250 slow\r\n".to_vec())
        } else {
            default_action(cmd, false)
        }
    });
    let cap = Capture::start(reply("220 hi"), script);
    let out = run_source(
        &our_source(),
        &["-M", "vm", "-s", "2", "-m", "20", "-d", "-l", "100000"],
        &cap,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let cmds = cap.commands();
    assert_eq!(cmds.len(), 2);
    let dots = |c: &Vec<String>| c.iter().filter(|l| *l == ".").count();
    assert_eq!(dots(&cmds[0]), 1);
    assert_eq!(dots(&cmds[1]), 19);
}

#[test]
fn many_sessions_and_connections() {
    let cap = Capture::default_smtp();
    let out = run_source(
        &our_source(),
        &["-M", "vm", "-s", "10", "-m", "50", "-c"],
        &cap,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(cap.transcripts().len(), 50);
    let want: String = (1..=50).map(|n| format!("{n}\r")).collect::<String>() + "\n";
    assert_eq!(out.stdout_text(), want);
}

fn config(args: &[&str], cap: &Capture, limit: Duration) -> SourceConfig {
    let argv: Vec<OsString> = std::iter::once("smtp-source".to_string())
        .chain(args.iter().map(|s| s.to_string()))
        .chain([cap.endpoint()])
        .map(OsString::from)
        .collect();
    let source::Command::Run(mut c) = SourceConfig::from_args(&argv).expect("config") else {
        panic!("{argv:?} runs");
    };
    c.io_timeout = limit;
    *c
}

fn run_lib(c: SourceConfig) -> smtpstone::Result<source::Summary> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(source::run(c))
}

#[test]
fn timeout_covers_the_first_byte_of_a_reply() {
    // Deviation D2 (docs/deviations.md): a silent server is a timeout, not an endless wait.
    let limit = Duration::from_millis(300);
    let cap = Capture::start(Action::Silent, Arc::new(|c: &Cmd| default_action(c, false)));
    let start = Instant::now();
    let res = run_lib(config(&["-M", "vm"], &cap, limit));
    assert_eq!(
        res,
        Err(Error::fatal("timeout while reading server greeting"))
    );
    assert!(start.elapsed() >= limit);

    let cap = Capture::start(
        Action::Reply(b"220-first\r\n".to_vec()),
        Arc::new(|c: &Cmd| default_action(c, false)),
    );
    let res = run_lib(config(&["-M", "vm"], &cap, limit));
    assert_eq!(
        res,
        Err(Error::fatal("timeout while reading server greeting"))
    );

    let cap = Capture::start(
        reply("220 hi"),
        Arc::new(|c: &Cmd| {
            if c.verb == "DATA" {
                Action::Silent
            } else {
                default_action(c, false)
            }
        }),
    );
    let res = run_lib(config(&["-M", "vm"], &cap, limit));
    assert_eq!(res, Err(Error::fatal("timeout while sending DATA command")));
}

#[test]
fn library_summary() {
    let cap = Capture::default_smtp();
    let res = run_lib(config(
        &["-M", "vm", "-s", "2", "-m", "5"],
        &cap,
        Duration::from_secs(20),
    ));
    let summary = res.expect("run");
    assert_eq!(summary.messages, 5);
    assert_eq!(summary.connections, 5);
    let res = run_lib(config(
        &["-M", "vm", "-d", "-m", "5"],
        &cap,
        Duration::from_secs(20),
    ));
    assert_eq!(res.expect("run").connections, 1);
}

#[test]
fn run_until_stops_at_shutdown() {
    // A server that never answers: only the shutdown can end this run
    // before the (long) reply limit.
    let cap = Capture::start(Action::Silent, Arc::new(|c: &Cmd| default_action(c, false)));
    let c = config(&["-s", "3", "-m", "9"], &cap, Duration::from_secs(600));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connected = async {
        while cap.connections() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let run = source::run_until(c, connected);
    let summary = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), run).await })
        .expect("the run ends at shutdown")
        .expect("a shutdown is not an error");
    assert_eq!(summary.messages, 0);
    // The third connect may be accepted before its session counted it.
    assert!((2..=3).contains(&summary.connections), "{summary:?}");
}
