//! The real-world check of `--policy`: our smtp-source `--track` sends mail
//! into a real Postfix MTA on loopback with short retry times, Postfix
//! relays it to our smtp-sink `--policy examples/policies/relay-test.toml`
//! (10% deferred, 2% bounced, greylisting on). Every message not bounced
//! arrives exactly once; the sink's deferrals and bounces are the ones in
//! Postfix's log. Skips loudly without Postfix (or root); fails under
//! REQUIRE_POSTFIX=1.

use crate::common;

use common::measure::{read_json, signal_and_finish};
use common::mta::Mta;
use common::sink::{ours, shared_tempdir};
use common::{our_source, Proc};
use nix::sys::signal::Signal;
use std::time::Duration;

const TEST: &str = "policy_deferrals_and_bounces_match_postfix";
const MESSAGES: u64 = 100;

fn sum(report: &serde_json::Value, outcome: &str) -> u64 {
    report["policy"]
        .as_object()
        .expect("policy accounting")
        .values()
        .map(|r| r[outcome].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn policy_deferrals_and_bounces_match_postfix() {
    let dir = shared_tempdir();
    let sink_json = dir.path().join("sink.json");
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/relay-test.toml"
    );
    let sink = ours(&[
        "--policy",
        policy,
        "--seed",
        "7",
        "--track",
        "--json",
        sink_json.to_str().expect("utf-8 path"),
    ]);
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let retry = [
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 2s",
        "queue_run_delay = 1s",
    ];
    let Some(mta) = Mta::start_or_skip(TEST, &relay, &retry) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let m = MESSAGES.to_string();
    let out = Proc::spawn(
        &our_source(),
        "smtp-source",
        [
            "--track", "-s", "5", "-m", &m, "-f", "a@x.test", "-t", "b@y.test", &endpoint,
        ],
    )
    .finish(Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "source failed: {}", out.stderr_text());
    assert!(
        mta.wait_queue_empty(Duration::from_secs(45)),
        "queue not drained: {}",
        mta.maillog()
    );
    let out = signal_and_finish(sink.proc, Signal::SIGTERM);
    let log = mta.maillog();
    let report = read_json(&sink_json);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{report}");
    let r = &runs[0];
    // Postfix's log: every attempt the sink refused.
    let deferred_in_log = log
        .lines()
        .filter(|l| l.contains("status=deferred"))
        .count() as u64;
    let bounced_in_log = log.lines().filter(|l| l.contains("status=bounced")).count() as u64;
    let tracked_bounced = log
        .lines()
        .filter(|l| l.contains("status=bounced") && l.contains("to=<b@y.test>"))
        .count() as u64;
    assert_eq!(
        sum(&report, "deferred") + sum(&report, "greylisted"),
        deferred_in_log,
        "{report}\n{log}"
    );
    assert!(sum(&report, "greylisted") > 0, "{report}");
    assert_eq!(sum(&report, "bounced"), bounced_in_log, "{report}\n{log}");
    // Every message not bounced arrived exactly once.
    assert_eq!(r["duplicates"], 0, "{report}");
    assert_eq!(r["distinct"], r["received"], "{report}");
    assert_eq!(
        r["received"].as_u64().expect("received") + tracked_bounced,
        MESSAGES,
        "{report}\n{log}"
    );
    eprintln!("{}", out.stderr_text());
}
