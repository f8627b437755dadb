//! One run split over shards (`--shard`, `--run-id`, `--start-at`) and
//! their reports merged (`--merge`): a Kubernetes Indexed Job played on
//! one machine, and the merge's checks on duplicated, missing and foreign
//! shards.

use crate::common;

use common::measure::*;
use common::sink::{ours, shared_tempdir};
use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;
use smtpstone::measure::hist;
use std::path::{Path, PathBuf};

const RUN: &str = "5ca1ab1e0000beef";

/// Start shard `index` of `count` as a pod would: `--shard auto/N` with
/// `JOB_COMPLETION_INDEX` set.
fn pod(index: u32, count: u32, args: &[String]) -> Proc {
    let mut argv = vec![
        format!("--shard=auto/{count}"),
        "--run-id".to_string(),
        RUN.to_string(),
    ];
    argv.extend_from_slice(args);
    Proc::spawn_with(&our_source(), "smtp-source", &argv, None, |cmd| {
        cmd.env("JOB_COMPLETION_INDEX", index.to_string());
    })
}

fn merge(files: &[PathBuf], extra: &[&str]) -> Output {
    let mut argv: Vec<String> = vec!["--merge".into()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    run(&our_source(), "smtp-source", &argv)
}

/// `p50`, `p90`, `p99`, `max` of the histograms of `key` in `reports`,
/// added with hdrhistogram itself (not with the report code under test).
fn merged_percentiles(reports: &[Value], key: &str) -> [u64; 4] {
    let mut all = hist::new();
    for r in reports {
        let h = hist::decode(r["latency_us"][key]["hdr"].as_str().expect("hdr")).expect("decode");
        all.add(&h).expect("add");
    }
    let at = |q: f64| all.lowest_equivalent(all.value_at_quantile(q));
    [at(0.5), at(0.9), at(0.99), all.lowest_equivalent(all.max())]
}

fn percentiles(report: &Value, key: &str) -> [u64; 4] {
    let l = &report["latency_us"][key];
    ["p50", "p90", "p99", "max"].map(|f| l[f].as_u64().expect(f))
}

#[test]
fn an_indexed_job_of_four_shards_sends_one_run_exactly() {
    const MESSAGES: u64 = 203;
    let dir = shared_tempdir();
    let track = dir.path().join("track.json");
    let sink = ours(&["--track", "--json", track.to_str().expect("path")]);
    let ep = sink.addr.to_string();
    let files: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("s{i}.json")))
        .collect();
    let pods: Vec<Proc> = (0..4)
        .map(|i| {
            let json = files[i as usize].to_string_lossy().into_owned();
            let args = [
                "--start-at",
                "+1s",
                "--track",
                "--json",
                &json,
                "-d",
                "-s",
                "6",
                "-m",
                "203",
                "-l",
                "300",
                "--rate",
                "2000",
                &ep,
            ];
            pod(i, 4, &args.map(String::from))
        })
        .collect();
    for (i, p) in pods.into_iter().enumerate() {
        let out = p.finish(TIMEOUT);
        assert_eq!(out.code(), Some(0), "shard {i}: {}", out.stderr_text());
        assert!(out.stderr.is_empty(), "shard {i}: {}", out.stderr_text());
    }
    let out = signal_and_finish(sink.proc, Signal::SIGTERM);
    assert!(
        out.stderr_text().contains(&format!(
            "  run {RUN}: received {MESSAGES}, distinct {MESSAGES}, duplicates 0, gaps 0, highest seq {}\n",
            MESSAGES - 1
        )),
        "{}",
        out.stderr_text()
    );
    let t = read_json(&track);
    assert_eq!(t["messages"], MESSAGES);
    assert_eq!(t["runs"].as_array().map(Vec::len), Some(1), "{t}");
    assert_eq!(t["runs"][0]["run_id"], RUN);
    assert_eq!(t["runs"][0]["duplicates"], 0);
    assert_eq!(t["runs"][0]["gaps"], 0);

    // Each shard: its part of -m (203 = 51 + 51 + 51 + 50), of -s (6 = 2 +
    // 2 + 1 + 1) and of --rate, its shard and the run id.
    let shards: Vec<Value> = files.iter().map(|f| read_json(f)).collect();
    for (i, r) in shards.iter().enumerate() {
        let want = if i < 3 { 51 } else { 50 };
        assert_eq!(r["counters"]["accepted"], want, "shard {i}");
        assert_eq!(
            r["counters"]["sessions"],
            if i < 2 { 2 } else { 1 },
            "shard {i}"
        );
        assert_eq!(r["run_ids"], serde_json::json!([RUN]));
        assert_eq!(r["target_rate"], 500.0, "a quarter of --rate");
        assert_eq!(r["shard"], serde_json::json!({"count": 4, "indices": [i]}));
        let (start, end) = (&r["start_epoch_us"], &r["end_epoch_us"]);
        assert!(start.as_u64() <= end.as_u64() && start.is_u64(), "{r}");
    }

    let merged_json = dir.path().join("merged.json");
    let out = merge(&files, &["--json", merged_json.to_str().expect("path")]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(out.stderr.is_empty(), "no warning: {}", out.stderr_text());
    assert!(
        out.stdout_text().starts_with(&format!(
            "smtp-source report: run {RUN}, shards 4 of 4, SMTP\n"
        )),
        "{}",
        out.stdout_text()
    );
    let m = read_json(&merged_json);
    let counters = m["counters"].as_object().expect("counters");
    assert!(!counters.is_empty());
    for (name, value) in counters {
        let sum: u64 = shards
            .iter()
            .map(|r| r["counters"][name].as_u64().expect(name))
            .sum();
        assert_eq!(value.as_u64(), Some(sum), "{name}");
    }
    assert_eq!(m["counters"]["accepted"], MESSAGES);
    assert_eq!(m["target_rate"], 2000.0);
    for key in ["message", "helo", "dot"] {
        assert_eq!(
            percentiles(&m, key),
            merged_percentiles(&shards, key),
            "{key}"
        );
        let count: u64 = shards
            .iter()
            .map(|r| r["latency_us"][key]["count"].as_u64().expect("count"))
            .sum();
        assert_eq!(m["latency_us"][key]["count"], count, "{key}");
    }
    // Elapsed: from the earliest start to the latest end.
    let field = |r: &Value, f: &str| r[f].as_u64().expect(f);
    let first = shards
        .iter()
        .map(|r| field(r, "start_epoch_us"))
        .min()
        .expect("start");
    let last = shards
        .iter()
        .map(|r| field(r, "end_epoch_us"))
        .max()
        .expect("end");
    assert_eq!(
        (field(&m, "start_epoch_us"), field(&m, "end_epoch_us")),
        (first, last)
    );
    let elapsed = m["elapsed_secs"].as_f64().expect("elapsed");
    assert!(
        (elapsed - (last - first) as f64 / 1e6).abs() < 1e-6,
        "{elapsed}"
    );
}

/// A finished shard's report of run `run`: `index` of `count`.
fn shard_report(dir: &Path, name: &str, run: &str, index: u32, count: u32, ep: &str) -> PathBuf {
    let path = dir.join(name);
    let out = run_source(&[
        &format!("--shard={index}/{count}"),
        "--run-id",
        run,
        "--json",
        path.to_str().expect("path"),
        "-m",
        "9",
        ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    path
}

fn run_source(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

#[test]
fn merge_names_duplicated_and_missing_shards_and_refuses_other_runs() {
    let dir = tempdir();
    let sink = ours(&[]);
    let ep = sink.addr.to_string();
    let d = dir.path();
    let s0 = shard_report(d, "s0.json", RUN, 0, 3, &ep);
    let s1 = shard_report(d, "s1.json", RUN, 1, 3, &ep);
    let s1b = shard_report(d, "s1b.json", RUN, 1, 3, &ep);
    let out = merge(&[s0.clone(), s1.clone(), s1b.clone()], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let (n0, n1, n1b) = (s0.display(), s1.display(), s1b.display());
    assert_eq!(
        out.stderr_text(),
        format!(
            "smtp-source: warning: shard 1/3 is in both {n1} and {n1b}: keeping {n1}\n\
             smtp-source: warning: missing 1 of 3 shards of run {RUN}: 2\n"
        )
    );
    let text = out.stdout_text();
    assert!(
        text.starts_with(&format!(
            "smtp-source report: run {RUN}, shards 2 of 3 (missing 2), SMTP\n"
        )),
        "{text}"
    );
    // Shards 0 and 1 of -m 9 over 3: 3 + 3 messages, the duplicate dropped.
    assert!(
        text.contains("  messages     6 attempted, 6 accepted, 0 rejected, 0 failed\n"),
        "{text}"
    );

    let other = shard_report(d, "other.json", "00000000000000aa", 2, 3, &ep);
    let out = merge(&[s0.clone(), other], &[]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().contains(&format!(
            "other.json: run 00000000000000aa, but {n0} is run {RUN}: \
             shards of different runs cannot be merged\n"
        )),
        "{}",
        out.stderr_text()
    );
    let four = shard_report(d, "four.json", RUN, 2, 4, &ep);
    let out = merge(&[s0.clone(), four], &[]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().contains(&format!(
            "four.json: shard of 4, but {n0} is a shard of 3: not one run\n"
        )),
        "{}",
        out.stderr_text()
    );
    let plain = d.join("plain.json");
    let out = run_source(&["--json", plain.to_str().expect("path"), "-m", "1", &ep]);
    assert_eq!(out.code(), Some(0));
    let out = merge(&[plain, s0], &[]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("plain.json: not a shard's report, but "),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn shard_option_errors() {
    let fails = |env: Option<&str>, args: &[&str]| -> String {
        let p = Proc::spawn_with(&our_source(), "smtp-source", args, None, |cmd| {
            cmd.env_remove("JOB_COMPLETION_INDEX");
            if let Some(v) = env {
                cmd.env("JOB_COMPLETION_INDEX", v);
            }
        });
        let out = p.finish(TIMEOUT);
        assert_eq!(out.code(), Some(1), "{args:?}");
        out.stderr_text()
    };
    let ep = "127.0.0.1:9";
    assert_eq!(
        fails(None, &["--shard", "auto/4", "--run-id", "1", ep]),
        "smtp-source: fatal: --shard auto/4: JOB_COMPLETION_INDEX is not set (Kubernetes sets \
         it in the pods of an Indexed Job; elsewhere give the index: --shard I/N)\n"
    );
    assert_eq!(
        fails(Some("4"), &["--shard", "auto/4", "--run-id", "1", ep]),
        "smtp-source: fatal: bad --shard value: auto/4 (index 4 is not below 4)\n"
    );
    assert_eq!(
        fails(Some("one"), &["--shard", "auto/4", "--run-id", "1", ep]),
        "smtp-source: fatal: --shard auto/4: bad JOB_COMPLETION_INDEX value: one\n"
    );
    assert_eq!(
        fails(None, &["--shard", "0/4", ep]),
        "smtp-source: fatal: --shard needs --run-id: one id shared by all shards of the run\n"
    );
    assert_eq!(
        fails(None, &["--run-id", "12345678901234567", ep]),
        "smtp-source: fatal: bad --run-id value: 12345678901234567 \
         (1 to 16 hex digits, as X-Smtpstone-Run carries)\n"
    );
    assert_eq!(
        fails(None, &["--start-at", "+2d", ep]),
        "smtp-source: fatal: bad --start-at value: +2d (more than 24 hours ahead)\n"
    );
}

#[test]
fn a_start_time_past_starts_at_once_with_a_warning() {
    let sink = ours(&[]);
    let out = run_source(&[
        "--start-at",
        "1000000000.5",
        "-m",
        "2",
        &sink.addr.to_string(),
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let text = out.stderr_text();
    assert!(
        text.starts_with("smtp-source: warning: --start-at: the start time passed ")
            && text.ends_with(" s ago; starting now\n")
            && text.lines().count() == 1,
        "{text}"
    );
}
