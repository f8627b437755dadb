//! smtp-source's timeline (`--interval`, `--report=timeline`) and HTML
//! report (`--html`) against our sink: the timeline's intervals add up to
//! the run's totals, `--merge` lines timelines up by epoch, and the page is
//! self-contained with one throughput point per interval.

use crate::common;

use common::measure::*;
use common::sink::ours;
use common::*;
use serde_json::Value;

fn source(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Check that the intervals of `report` add up to its totals; returns the
/// intervals.
fn check_sums(report: &Value) -> Vec<Value> {
    let tl = &report["timeline"];
    let width = u(&tl["interval_ms"]);
    let intervals = tl["intervals"].as_array().expect("intervals").clone();
    assert!(!intervals.is_empty(), "{tl}");
    let sum = |key: &str| intervals.iter().map(|i| u(&i[key])).sum::<u64>();
    let c = &report["counters"];
    for (interval_key, counter) in [
        ("attempted", "attempted"),
        ("accepted", "accepted"),
        ("rejected", "rejected"),
        ("failed", "failed"),
        ("connects", "connects"),
        ("connect_errors", "connect_failures"),
        ("bytes", "bytes_sent"),
    ] {
        assert_eq!(sum(interval_key), u(&c[counter]), "{interval_key}");
    }
    let latencies: u64 = intervals.iter().map(|i| u(&i["latency_us"]["count"])).sum();
    assert_eq!(latencies, u(&report["latency_us"]["message"]["count"]));
    let mut prev = None;
    for i in &intervals {
        let start = u(&i["start_ms"]);
        assert_eq!(start % width, 0, "epoch-aligned: {start}");
        assert!(prev.is_none_or(|p| p < start), "sorted, distinct");
        prev = Some(start);
    }
    intervals
}

/// No URL of any kind that a browser would fetch or follow.
fn assert_self_contained(page: &str) {
    for bad in [
        "http://", "https://", "src=", "href=", "url(", "<script", "@import", "//",
    ] {
        assert!(!page.contains(bad), "{bad:?} in the page");
    }
}

#[test]
fn timeline_sums_equal_the_totals_and_the_page_has_a_point_per_interval() {
    let sink = ours(&[]);
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let ep = sink.addr.to_string();
    let out = source(&[
        "-s",
        "3",
        "-d",
        "-l",
        "500",
        "--rate",
        "100",
        "--duration",
        "2500ms",
        "--interval",
        "500ms",
        "--report=timeline",
        "--json",
        json.to_str().expect("path"),
        "--html",
        html.to_str().expect("path"),
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let report = read_json(&json);
    assert_eq!(report["timeline"]["interval_ms"], 500);
    let c = &report["counters"];
    assert!(u(&c["accepted"]) > 0 && u(&c["accepted"]) == u(&c["attempted"]));
    let intervals = check_sums(&report);

    // The text table: one row per interval, same accepted counts.
    let text = out.stderr_text();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("  timeline (500 ms intervals, UTC)"))
        .skip(2)
        .collect();
    assert_eq!(table.len(), intervals.len(), "{text}");
    for (row, iv) in table.iter().zip(&intervals) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], iv["accepted"].to_string(), "{row}");
        assert_eq!(cols[7], iv["bytes"].to_string(), "{row}");
    }

    let page = std::fs::read_to_string(&html).expect("html");
    assert_self_contained(&page);
    assert_eq!(
        page.matches("data-series=\"accepted\"").count(),
        intervals.len()
    );
    assert!(page.contains(&format!("{} accepted", u(&c["accepted"]))));
}

#[test]
fn merge_adds_timelines_interval_by_interval() {
    let sink = ours(&[]);
    let dir = tempdir();
    let ep = sink.addr.to_string();
    let path = |name: &str| dir.path().join(name).to_str().expect("path").to_string();
    let (a, b) = (path("a.json"), path("b.json"));
    // Two runs at once, as on two load machines.
    let runs: Vec<Proc> = [(&a, "2"), (&b, "3")]
        .into_iter()
        .map(|(json, sessions)| {
            Proc::spawn(
                &our_source(),
                "smtp-source",
                [
                    "-s",
                    sessions,
                    "--rate",
                    "60",
                    "--duration",
                    "2s",
                    "--json",
                    json,
                    &ep,
                ],
            )
        })
        .collect();
    for p in runs {
        let out = p.finish(TIMEOUT);
        assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    }
    let (ra, rb) = (read_json(a.as_ref()), read_json(b.as_ref()));
    let html = path("m.html");
    let merged_json = path("m.json");
    let out = source(&[
        "--merge",
        "--report=timeline",
        "--json",
        &merged_json,
        "--html",
        &html,
        &a,
        &b,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let m = read_json(merged_json.as_ref());
    let merged = check_sums(&m);
    // Each merged interval is the sum of the inputs' intervals at the same
    // epoch start.
    let at = |r: &Value, start: u64, key: &str| {
        r["timeline"]["intervals"]
            .as_array()
            .expect("intervals")
            .iter()
            .filter(|i| u(&i["start_ms"]) == start)
            .map(|i| u(&i[key]))
            .sum::<u64>()
    };
    for iv in &merged {
        let start = u(&iv["start_ms"]);
        for key in ["attempted", "accepted", "bytes", "connects"] {
            assert_eq!(
                u(&iv[key]),
                at(&ra, start, key) + at(&rb, start, key),
                "{key} at {start}"
            );
        }
        assert_eq!(
            u(&iv["latency_us"]["count"]),
            at(&ra, start, "accepted") + at(&rb, start, "accepted")
        );
    }
    assert_eq!(
        u(&m["counters"]["accepted"]),
        u(&ra["counters"]["accepted"]) + u(&rb["counters"]["accepted"])
    );
    let text = out.stdout_text();
    assert!(text.contains("  timeline (1 s intervals, UTC)\n"), "{text}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert_self_contained(&page);
    assert_eq!(
        page.matches("data-series=\"accepted\"").count(),
        merged.len()
    );
}

#[test]
fn bad_interval_and_report_values() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["--interval", "0", "127.0.0.1:9"],
            "smtp-source: fatal: bad --interval value: 0 (whole milliseconds, at least 1ms)\n",
        ),
        (
            &["--report=daily", "127.0.0.1:9"],
            "smtp-source: fatal: bad --report value: daily (only --report=timeline)\n",
        ),
    ];
    for (args, want) in cases {
        let out = source(args);
        assert_eq!(out.code(), Some(1));
        assert_eq!(out.stderr_text(), want);
    }
}
