//! `smtp-source --find-max` against our sink: a tarpit whose capacity
//! follows from its delay and `-s`, a first step that already fails, the
//! options' messages, and end to end through a real Postfix MTA into
//! `smtp-sink --track --metrics` behind a slow-receiver policy (skips
//! loudly without Postfix). Steps are short (1 s here, 4 s through
//! Postfix) so that each search stays within about a minute; every run is
//! bounded by `--find-timeout` and a process timeout.

use crate::common;

use common::mta::Mta;
use common::sink::{ours, shared_tempdir};
use common::*;
use smtpstone::measure::report::Report;
use smtpstone::measure::search::{judge, Objective, StepMeasure, Verdict};
use smtpstone::source::find_max::{SinkClient, DELIVERY_GRACE};
use std::time::Duration;

/// Bound on one search process (its `--find-timeout` is shorter).
const SEARCH_LIMIT: Duration = Duration::from_secs(90);

fn search(args: &[&str]) -> Output {
    Proc::spawn(&our_source(), "smtp-source", args).finish(SEARCH_LIMIT)
}

/// The rate of the `sustainable: N msg/s (…)` line.
fn sustainable(out: &Output) -> f64 {
    let text = out.stdout_text();
    text.strip_prefix("sustainable: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text}\n{}", out.stderr_text()))
}

#[test]
fn a_tarpit_sustains_sessions_over_delay() {
    // Each message waits 1 s for its DATA reply (-w 1), and 10 sessions
    // carry at most 10 messages a second: above that the backlog grows and
    // the achieved rate stays behind the offered one.
    let sink = ours(&["-w", "1"]);
    let dir = shared_tempdir();
    let json = dir.path().join("search.json");
    let html = dir.path().join("search.html");
    let ep = sink.addr.to_string();
    let out = search(&[
        "--find-max",
        "--find-start",
        "5",
        "--find-step",
        "1s",
        "--find-precision",
        "10%",
        "--find-timeout",
        "75s",
        "--slo",
        "p99=1500ms",
        "--json",
        json.to_str().expect("path"),
        "--html",
        html.to_str().expect("path"),
        "--report",
        "-s",
        "10",
        &ep,
    ]);
    sink.kill();
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let rate = sustainable(&out);
    assert!(
        (8.5..=11.5).contains(&rate),
        "{rate}: {}",
        out.stderr_text()
    );
    let stderr = out.stderr_text();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("smtp-source: step 1 ramp: offered 5.00 msg/s")),
        "{stderr}"
    );
    assert!(
        stderr.contains(": FAIL ("),
        "a step above the knee fails: {stderr}"
    );
    let report = common::measure::read_json(&json);
    let steps = report["search"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), stderr.matches(" msg/s, achieved ").count());
    assert_eq!(report["search"]["outcome"]["result"], "sustainable");
    let last = steps.last().expect("a step");
    assert_eq!(last["kind"], "confirm");
    assert_eq!(last["verdict"]["pass"], true);
    assert_eq!(last["duration_secs"], 2.0);
    let attempted: u64 = steps
        .iter()
        .map(|s| s["measure"]["attempted"].as_u64().expect("attempted"))
        .sum();
    assert_eq!(report["counters"]["attempted"], attempted);
    // --report: the steps' runs merged, on stderr after the step lines.
    let merged = format!("smtp-source report: {} runs (", steps.len());
    assert!(stderr.contains(&merged), "{stderr}");
    assert!(
        stderr.contains(&format!("  messages     {attempted} attempted, ")),
        "{stderr}"
    );
    assert!(report["timeline"]["intervals"]
        .as_array()
        .is_some_and(|i| !i.is_empty()));
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.contains("Achieved against offered rate"),
        "html charts"
    );
    assert!(page.contains("Latency against offered rate"), "html charts");
}

#[test]
fn a_failing_first_step_is_an_error_with_its_reasons() {
    let sink = ours(&["-w", "1"]);
    let ep = sink.addr.to_string();
    let out = search(&[
        "--find-max",
        "--find-start",
        "20",
        "--find-step",
        "1s",
        "--slo",
        "p99=1500ms",
        "-s",
        "2",
        &ep,
    ]);
    sink.kill();
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = out.stderr_text();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "smtp-source: fatal: no sustainable rate: the first step (20.0 msg/s) failed: achieved "
        ),
        "{stderr}"
    );
    assert_eq!(stderr.matches(" msg/s, achieved ").count(), 1, "{stderr}");
}

#[test]
fn refusals_count_as_errors_without_a_warning_each() {
    // Every RCPT gets a 4xx (-r rcpt): each message is an error.
    let sink = ours(&["-r", "rcpt"]);
    let ep = sink.addr.to_string();
    let out = search(&[
        "--find-max",
        "--find-start",
        "10",
        "--find-step",
        "1s",
        "-s",
        "2",
        &ep,
    ]);
    sink.kill();
    assert_eq!(out.code(), Some(1));
    let stderr = out.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "a step line and the fatal line: {stderr}");
    assert!(lines[0].contains(", errors 100.0%: FAIL ("), "{stderr}");
    assert!(lines[0].contains("errors 100.0% > 1%"), "{stderr}");
}

#[test]
fn bad_search_options_are_one_line() {
    for (args, want) in [
        (
            &["--find-max", "--find-step", "1ms"][..],
            "smtp-source: fatal: bad --find-step value: 1ms (a duration of at least 500ms)",
        ),
        (
            &["--find-max", "--slo", "p99"][..],
            "smtp-source: fatal: bad --slo value: p99 (expected NAME=VALUE, e.g. p99=500ms or errors=1%)",
        ),
        (
            &["--find-max", "--rate", "5"][..],
            "smtp-source: fatal: --find-max sets each step's rate and duration: not with --rate or --duration",
        ),
        (
            &["--find-max", "--metrics", "127.0.0.1:0"][..],
            "smtp-source: fatal: --find-max cannot be used with --metrics",
        ),
        (
            &["--sink-url", "http://127.0.0.1:9"][..],
            "smtp-source: fatal: --sink-url needs --find-max",
        ),
        (
            &["--find-max", "-m", "100"][..],
            "smtp-source: fatal: --find-max sets each step's messages by its rate and duration: not with -m",
        ),
        (
            &["--find-max", "--shard", "0/2"][..],
            "smtp-source: fatal: --find-max runs each step as a run of its own: not with --shard, --run-id or --start-at",
        ),
        (
            &["--find-max", "--run-id", "00000000000000ab"][..],
            "smtp-source: fatal: --find-max runs each step as a run of its own: not with --shard, --run-id or --start-at",
        ),
    ] {
        let mut argv = args.to_vec();
        argv.push("127.0.0.1:9");
        let out = run(&our_source(), "smtp-source", &argv);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert_eq!(out.stderr_text(), format!("{want}\n"), "{args:?}");
    }
}

const E2E: &str = "find_max_through_postfix_into_the_sink";

/// An open-loop run at `rate` for `secs` through `mta`, judged as a search
/// step would be (the objective `p99=2s`, errors 1%, achieved and
/// delivered at 95% of `rate`), from its report and the sink's `/runs`.
fn follow_up(mta: &str, metrics: &str, rate: f64, secs: u64, dir: &std::path::Path) -> Verdict {
    let json = dir.join(format!("follow-{rate}.json"));
    let started = std::time::Instant::now();
    let out = Proc::spawn(
        &our_source(),
        "smtp-source",
        [
            "--track",
            "-A",
            "--rate",
            &rate.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--json",
            json.to_str().expect("path"),
            "-s",
            "20",
            "-f",
            "a@x.test",
            "-t",
            "b@y.test",
            mta,
        ],
    )
    .finish(SEARCH_LIMIT);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let report =
        Report::from_json(&std::fs::read_to_string(&json).expect("report")).expect("report");
    let mut m = StepMeasure::of_report(&report);
    let run_id = report.run_ids[0].clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let step = Duration::from_secs(secs);
    m.delivery = Some(
        runtime
            .block_on(async {
                let deadline = tokio::time::Instant::from_std(started + step + DELIVERY_GRACE);
                SinkClient::new(metrics)
                    .delivery(&run_id, m.accepted, deadline)
                    .await
            })
            .expect("/runs"),
    );
    let mut objective = Objective::default();
    for slo in ["p99=2s", "errors=1%"] {
        objective.add(slo).expect("slo");
    }
    objective.delivery = true;
    judge(&objective, rate, step, &m)
}

/// Concurrent deliveries Postfix makes to the sink (`main.cf`
/// `smtp_destination_concurrency_limit`).
const MTA_DELIVERY_CONCURRENCY: u32 = 4;

/// The sink's pause before each end-of-data reply (`--policy`
/// `[default.tarpit] data`), milliseconds: with the concurrency above it
/// sets the MTA's delivery capacity at about 4 / 0.32 s = 12.5 msg/s, less
/// Postfix's own time per delivery. Chosen so that a step passes with a
/// margin or fails with one: the pass boundary (capacity / 0.95, about
/// 13.2 msg/s) lies between the rates the search tries from
/// `--find-start 5` (12.5 and 13.75).
const SINK_DATA_DELAY_MS: u64 = 320;

#[test]
fn find_max_through_postfix_into_the_sink() {
    // The knee is put where a real MTA has one and where it does not move
    // with the machine's load: delivery to a slow receiver. Postfix accepts
    // far faster than it may deliver (a few connections to a receiver that
    // takes 320 ms per message), so above the knee every message is
    // accepted within the latency objective and only its queue grows: the
    // steps that fail must fail on delivery, read from the sink's `/runs`.
    let dir = shared_tempdir();
    let policy = dir.path().join("slow-receiver.toml");
    std::fs::write(
        &policy,
        format!("[default.tarpit]\ndata = \"{SINK_DATA_DELAY_MS}ms\"\n"),
    )
    .expect("write policy");
    let (sink, smtp, metrics) =
        crate::metrics::sink(&["--track", "--policy", policy.to_str().expect("path")]);
    let relay = format!("[127.0.0.1]:{}", smtp.port());
    let concurrency = format!("smtp_destination_concurrency_limit = {MTA_DELIVERY_CONCURRENCY}");
    let Some(mta) = Mta::start_or_skip(E2E, &relay, &[&concurrency]) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let metrics = metrics.to_string();
    let html = dir.path().join("search.html");
    let out = search(&[
        "--find-max",
        "--html",
        html.to_str().expect("path"),
        "--sink-url",
        &format!("http://{metrics}"),
        "--find-start",
        "5",
        "--find-step",
        "4s",
        "--find-precision",
        "10%",
        "--find-timeout",
        "80s",
        "--slo",
        "p99=2s",
        "-s",
        "20",
        "-f",
        "a@x.test",
        "-t",
        "b@y.test",
        &endpoint,
    ]);
    let stderr = out.stderr_text();
    assert_eq!(out.code(), Some(0), "{stderr}\nmaillog: {}", mta.maillog());
    let rate = sustainable(&out);
    let stdout = out.stdout_text();
    // Shown with --nocapture.
    eprint!("{stderr}{stdout}");
    assert!(stdout.contains(", delivered "), "{stdout}");
    let capacity = f64::from(MTA_DELIVERY_CONCURRENCY) * 1000.0 / SINK_DATA_DELAY_MS as f64;
    // Within +-15% of it, as the other searches: a step passes while its
    // delivery keeps 95% of its rate, so the answer may be a little above.
    assert!(
        (0.85 * capacity..=1.15 * capacity).contains(&rate),
        "{rate} msg/s, delivery capacity {capacity:.1}\n{stderr}"
    );
    // Every failing step failed on delivery (and maybe more): acceptance
    // alone would have passed them.
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains(": FAIL (")).collect();
    assert!(!failed.is_empty(), "{stderr}");
    for line in failed {
        assert!(line.contains("FAIL (delivered "), "{line}\n{stderr}");
    }
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("Achieved against offered rate"));
    assert!(page.contains("Latency against offered rate"));
    // A delivered point per step beside the achieved ones.
    let steps = stderr
        .lines()
        .filter(|l| l.contains(" msg/s, achieved "))
        .count();
    assert_eq!(page.matches("data-series=\"delivered\"").count(), steps);
    let low = follow_up(&endpoint, &metrics, 0.8 * rate, 5, dir.path());
    assert!(low.pass, "0.8 x {rate}: {low:?}\n{stderr}");
    let high = follow_up(&endpoint, &metrics, 1.5 * rate, 5, dir.path());
    assert!(!high.pass, "1.5 x {rate} passed\n{stderr}");
    assert!(
        high.reasons.iter().any(|r| r.starts_with("delivered ")),
        "1.5 x {rate}: {high:?}"
    );
    drop(mta);
    drop(sink);
}

#[test]
fn a_client_message_rate_limit_is_found() {
    // 40 MAIL commands a second per client address (docs/policy.md,
    // `[limits.client_messages]`, decided at MAIL), answered 451 above it.
    // The bucket is kept small: a 1 s step can pass `burst - 1` messages
    // beyond the limit (GCRA, src/sink/policy/table.rs), which with the
    // default (burst = count) would let a step at twice the limit pass.
    // With 4 tokens (75 ms of arrival jitter at 25 ms a token, enough for
    // the pacer's scheduling noise at 40 msg/s) a step carries at most ~43
    // messages, so the answer lands in 40..43 msg/s (runs found 41.2),
    // well inside the +-15% bound.
    let dir = shared_tempdir();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[limits.client_messages]\ncount = 40\ninterval = \"1s\"\nburst = 4\n\
         reply = \"451 4.7.1 Too many messages, slow down\"\n",
    )
    .expect("write policy");
    let sink = ours(&["--policy", policy.to_str().expect("path")]);
    let ep = sink.addr.to_string();
    let out = search(&[
        "--find-max",
        "--find-start",
        "10",
        "--find-step",
        "1s",
        "--find-precision",
        "5%",
        "--find-timeout",
        "30s",
        "--slo",
        "errors=1%",
        "-s",
        "10",
        &ep,
    ]);
    sink.kill();
    let stderr = out.stderr_text();
    assert_eq!(out.code(), Some(0), "{stderr}");
    let rate = sustainable(&out);
    assert!((34.0..=46.0).contains(&rate), "{rate}: {stderr}");
    // A step offered above the limit fails on its refused messages.
    let refused_above = stderr.lines().any(|l| {
        offered(l).is_some_and(|o| o > 42.0) && l.contains(": FAIL (") && l.contains("errors ")
    });
    assert!(refused_above, "{stderr}");
    // Shown with --nocapture.
    eprint!("{stderr}{}", out.stdout_text());
}

/// The offered rate of a `step N KIND: offered R msg/s, …` line.
fn offered(line: &str) -> Option<f64> {
    line.split_once("offered ")?
        .1
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn start_up_errors_end_the_search_before_its_first_step() {
    // What a plain run reports at start-up is reported the same way, once,
    // before any step: not as a failing first step.
    for args in [
        &["no-such-host.invalid"][..],
        &["-F", "/nonexistent/body", "127.0.0.1:9"],
        &["inet:[::1"],
    ] {
        let plain = run(&our_source(), "smtp-source", args);
        let mut argv = vec!["--find-max", "--find-step", "1s"];
        argv.extend_from_slice(args);
        let out = run(&our_source(), "smtp-source", &argv);
        assert_eq!(plain.code(), Some(1), "{args:?}");
        assert_eq!(out.code(), Some(1), "{args:?}");
        let stderr = out.stderr_text();
        assert!(stderr.starts_with("smtp-source: fatal: "), "{stderr}");
        assert_eq!(stderr, plain.stderr_text(), "{args:?}");
        assert!(!stderr.contains(" msg/s, achieved "), "{stderr}");
    }
    // A --sink-url where nothing listens: checked before the first step.
    let sink_url = format!("http://127.0.0.1:{}", free_port());
    let out = run(
        &our_source(),
        "smtp-source",
        ["--find-max", "--sink-url", &sink_url, "127.0.0.1:9"],
    );
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        format!("smtp-source: fatal: --sink-url {sink_url}/runs: Connection refused\n")
    );
}
