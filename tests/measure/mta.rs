//! The real-world check of the measurements: our smtp-source `--track` sends 500
//! messages into a real Postfix MTA on loopback, Postfix relays them to our
//! smtp-sink `--track`, and the sink's tracking report must account for
//! every message exactly once, with plausible delivery latencies.
//! Skips loudly without Postfix (or root); fails under REQUIRE_POSTFIX=1.

use crate::common;

use common::measure::*;
use common::mta::Mta;
use common::sink::{ours, shared_tempdir};
use common::*;
use nix::sys::signal::Signal;
use std::time::Duration;

const TEST: &str = "tracked_messages_through_postfix_all_arrive_once";

#[test]
fn tracked_messages_through_postfix_all_arrive_once() {
    let dir = shared_tempdir();
    let sink_json = dir.path().join("sink.json");
    let source_json = dir.path().join("source.json");
    let sink = ours(&["--track", "--json", sink_json.to_str().unwrap()]);
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let Some(mta) = Mta::start_or_skip(TEST, &relay, &[]) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let out = Proc::spawn(
        &our_source(),
        "smtp-source",
        [
            "--track",
            "--json",
            source_json.to_str().unwrap(),
            "-s",
            "20",
            "-l",
            "5120",
            "-m",
            "500",
            "-f",
            "a@x.test",
            "-t",
            "b@y.test",
            &endpoint,
        ],
    )
    .finish(Duration::from_secs(120));
    assert_eq!(out.code(), Some(0), "source failed: {}", out.stderr_text());
    let source_report = read_json(&source_json);
    assert_eq!(source_report["counters"]["accepted"], 500);
    let run = source_report["run_ids"][0]
        .as_str()
        .expect("run id")
        .to_string();

    assert!(
        mta.wait_queue_empty(Duration::from_secs(120)),
        "queue not drained: {}",
        mta.maillog()
    );
    let out = signal_and_finish(sink.proc, Signal::SIGTERM);
    let text = out.stderr_text();
    assert!(
        text.contains(&format!(
            "  run {run}: received 500, distinct 500, duplicates 0, gaps 0, highest seq 499\n"
        )),
        "{text}\nmaillog: {}",
        mta.maillog()
    );
    let report = read_json(&sink_json);
    assert_eq!(report["untagged"], 0, "{report}");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{report}");
    let r = &runs[0];
    assert_eq!(r["run_id"], run.as_str());
    assert_eq!(r["received"], 500);
    assert_eq!(r["distinct"], 500);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["gaps"], 0);
    assert_eq!(r["future_stamps"], 0, "same clock on both ends");
    let lat = &r["latency_us"];
    assert_eq!(lat["count"], 500);
    // Plausible: every message took some time through the queue, and none
    // took longer than the test allowed for the whole relay.
    let min = lat["min"].as_u64().expect("min");
    let max = lat["max"].as_u64().expect("max");
    assert!(min > 0, "{lat}");
    assert!(max < 240_000_000, "{lat}");
    assert!(lat["p50"].as_u64().expect("p50") <= max);
    eprintln!("{text}");
}
