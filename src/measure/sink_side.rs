//! smtp-sink's side of the measurements: `--track` accounting, `--stats`
//! lines, and the tracking report at exit (`-M`, `-n`, a fatal error,
//! SIGINT, SIGTERM).
//!
//! Without a measurement option the server holds no [`SinkMeasure`] and
//! the sessions no scanner: the Postfix path is a `None` check per hook.
//!
//! `--metrics` serves these same counters (read when scraped) and the
//! tracking report (`/runs`); it adds only what nothing else counts: the
//! replies by command and class, the dumps written, and the delivery
//! latencies in fixed buckets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::options::SinkOptions;
use super::output::{print_stderr, write_json};
use super::stats::{self, SinkStats};
use super::track::{self, HeaderScanner, Tag, Tracker};
use crate::diag::{self, Result};
use crate::metrics::histogram::Counts;
use crate::metrics::http::{Listener, Server, Site};
use crate::metrics::sink::{self as families, ReplyCounts, SinkReadings, SinkReadout};

/// The measurement state of one smtp-sink.
#[derive(Debug)]
pub struct SinkMeasure {
    opts: SinkOptions,
    tracker: Option<Mutex<Tracker>>,
    stats: Arc<SinkStats>,
    /// `--stats` or `--metrics`: count the bytes received.
    count_bytes: bool,
    reported: AtomicBool,
    metrics: Option<Metrics>,
    /// `--policy`: reads the engine's accounting (set by the sink, which
    /// owns the engine; this layer does not know its types).
    decisions: OnceLock<Decisions>,
}

/// Reads (rule, outcome, count) rows of the policy's accounting.
pub struct Decisions(pub Box<dyn Fn() -> Vec<(String, &'static str, u64)> + Send + Sync>);

impl std::fmt::Debug for Decisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decisions")
    }
}

/// `rows` as `{"rule": {"outcome": n, ...}, ...}`, rules in order.
fn decisions_json(rows: &[(String, &'static str, u64)]) -> serde_json::Value {
    let mut rules = serde_json::Map::new();
    for (rule, outcome, n) in rows {
        let entry = rules
            .entry(rule.clone())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(m) = entry {
            m.insert((*outcome).to_owned(), (*n).into());
        }
    }
    serde_json::Value::Object(rules)
}

/// ` policy OUTCOME=N ...` totals over all rules, for `--stats` lines.
fn decisions_line(rows: &[(String, &'static str, u64)]) -> String {
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for (_, outcome, n) in rows {
        match totals.iter_mut().find(|(o, _)| o == outcome) {
            Some((_, t)) => *t += n,
            None => totals.push((outcome, *n)),
        }
    }
    let mut line = String::from(" policy");
    for (outcome, n) in totals {
        line.push_str(&format!(" {outcome}={n}"));
    }
    line
}

/// What only `--metrics` needs.
#[derive(Debug)]
struct Metrics {
    replies: ReplyCounts,
    dumps: AtomicU64,
    /// Bound at start-up (before privileges are dropped), served by
    /// [`SinkMeasure::serve_metrics`].
    listener: Mutex<Option<Listener>>,
}

impl SinkMeasure {
    /// The state for `opts`, or `None` when no measurement option is on.
    /// With `--metrics`, binds its listener; `commands` are the names of
    /// the command numbers given to [`SinkMeasure::reply`].
    pub fn new(opts: &SinkOptions, commands: &[&'static str]) -> Result<Option<SinkMeasure>> {
        if !opts.any() {
            return Ok(None);
        }
        let metrics = match opts.metrics {
            Some(addr) => Some(Metrics {
                listener: Mutex::new(Some(Listener::bind(addr)?)),
                replies: ReplyCounts::new(commands),
                dumps: AtomicU64::new(0),
            }),
            None => None,
        };
        let tracker = Tracker {
            buckets: metrics.as_ref().map(|_| Counts::default()),
            ..Tracker::new()
        };
        Ok(Some(SinkMeasure {
            tracker: opts.track.then(|| Mutex::new(tracker)),
            stats: Arc::new(SinkStats::new()),
            count_bytes: opts.stats.is_some() || metrics.is_some(),
            opts: opts.clone(),
            reported: AtomicBool::new(false),
            metrics,
            decisions: OnceLock::new(),
        }))
    }

    /// Serve `/metrics` (and `/runs` with `--track`) on the current
    /// runtime, when `--metrics` is on; stops when the result is dropped.
    pub fn serve_metrics(self: &Arc<Self>) -> Result<Option<Server>> {
        let listener = self
            .metrics
            .as_ref()
            .and_then(|m| m.listener.lock().ok()?.take());
        let Some(listener) = listener else {
            return Ok(None);
        };
        let mut site = Site::new(families::registry(Arc::clone(self)));
        if self.tracker.is_some() {
            let me = Arc::clone(self);
            site = site.with_runs(Box::new(move || me.runs_json()));
        }
        listener.serve(site).map(Some)
    }

    /// The live tracking report (`GET /runs`): the document `--json`
    /// writes at exit, as it stands now.
    pub fn runs_json(&self) -> String {
        match self.tracker.as_ref().map(|t| t.lock()) {
            Some(Ok(t)) => t.to_json(),
            _ => "{}\n".to_string(),
        }
    }

    /// Hook (`--metrics`): a reply was queued for command number
    /// `command` (`None`: an unknown or empty command).
    #[inline]
    pub fn reply(&self, command: Option<usize>, reply: &[u8]) {
        if let Some(m) = &self.metrics {
            m.replies.add(command, reply);
        }
    }

    /// A session's header scanner, when tracking.
    pub fn scanner(&self) -> Option<Box<HeaderScanner>> {
        self.tracker
            .as_ref()
            .map(|_| Box::new(HeaderScanner::new()))
    }

    /// `--policy`: where the `--stats` lines, `--json`, the report and
    /// `/metrics` read the policy's accounting.
    pub fn set_decisions(&self, read: Decisions) {
        let _ = self.decisions.set(read);
    }

    /// The `--json` document with the policy's accounting as `"policy"`.
    fn with_decisions(&self, json: String) -> String {
        if self.decisions.get().is_none() {
            return json;
        }
        let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str(&json) else {
            return json;
        };
        doc.insert("policy".into(), decisions_json(&self.decision_rows()));
        let mut text =
            serde_json::to_string_pretty(&serde_json::Value::Object(doc)).unwrap_or(json);
        text.push('\n');
        text
    }

    fn decision_rows(&self) -> Vec<(String, &'static str, u64)> {
        self.decisions
            .get()
            .map(|read| (read.0)())
            .unwrap_or_default()
    }

    /// A session started.
    pub fn session_started(&self) {
        self.stats.session_started();
    }

    /// A session ended.
    pub fn session_ended(&self) {
        self.stats.session_ended();
    }

    /// `n` bytes were read from a client.
    #[inline]
    pub fn bytes(&self, n: usize) {
        if self.count_bytes {
            self.stats.bytes(n);
        }
    }

    /// A message's end of data was received; `tag` is what its scanner
    /// found; `dumped`: it was written to the `-d`/`-D` dump.
    pub fn message(&self, tag: Option<Tag>, dumped: bool) {
        self.stats.message();
        if let Some(m) = self.metrics.as_ref().filter(|_| dumped) {
            m.dumps.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tracker) = &self.tracker {
            let now = track::now_micros();
            if let Ok(mut t) = tracker.lock() {
                t.record(tag, now);
            }
        }
    }

    /// Whether `--track` is on (the sink then has a report to print when
    /// a signal ends it).
    pub fn tracks(&self) -> bool {
        self.tracker.is_some()
    }

    /// Start the `--stats` lines; they stop when the returned guard is
    /// dropped.
    pub fn spawn_stats(self: &Arc<Self>) -> Option<StatsTask> {
        let every = self.opts.stats?;
        let counters = Arc::clone(&self.stats);
        let me = Arc::clone(self);
        Some(StatsTask(tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval_at(start + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut prev = counters.snapshot();
            let mut prev_t = start;
            loop {
                let now = tick.tick().await;
                let snap = counters.snapshot();
                let mut line = stats::line(now - prev_t, &prev, &snap);
                if me.decisions.get().is_some() {
                    line.push_str(&decisions_line(&me.decision_rows()));
                }
                diag::info(&line);
                prev = snap;
                prev_t = now;
            }
        })))
    }

    /// The end of a sink: print the tracking report, then pass `result`
    /// on (a report-writing error only when `result` is `Ok`).
    pub fn ended(&self, result: Result<()>) -> Result<()> {
        let reported = self.finish();
        result?;
        reported
    }

    /// Print the tracking report on stderr and write its JSON, once (the
    /// first exit path wins).
    pub fn finish(&self) -> Result<()> {
        let Some(tracker) = &self.tracker else {
            return Ok(());
        };
        if self.reported.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let (text, json) = match tracker.lock() {
            Ok(t) => (
                t.render(),
                self.opts
                    .json
                    .as_ref()
                    .map(|_| self.with_decisions(t.to_json())),
            ),
            Err(_) => return Ok(()),
        };
        print_stderr(&text);
        match (&self.opts.json, json) {
            (Some(out), Some(json)) => write_json(out, &json),
            _ => Ok(()),
        }
    }
}

impl SinkReadout for SinkMeasure {
    fn readings(&self) -> SinkReadings {
        let s = self.stats.snapshot();
        SinkReadings {
            sessions: s.sessions,
            sessions_ended: s.ended,
            messages: s.messages,
            bytes: s.bytes,
            dumps: self
                .metrics
                .as_ref()
                .map_or(0, |m| m.dumps.load(Ordering::Relaxed)),
            tracking: self
                .tracker
                .as_ref()
                .and_then(|t| Some(t.lock().ok()?.readings())),
            policy: self.decision_rows(),
        }
    }

    fn replies(&self) -> Option<&ReplyCounts> {
        self.metrics.as_ref().map(|m| &m.replies)
    }
}

/// The running `--stats` task; aborted when dropped.
#[derive(Debug)]
pub struct StatsTask(JoinHandle<()>);

impl Drop for StatsTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The signals that end a sink orderly under `--track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// SIGINT/SIGTERM handlers, for a sink that has a report to print.
/// Installing them replaces the default action (death), so install them
/// only then; after the report, [`die_of`] restores it.
#[derive(Debug)]
pub struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Install the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Wait for the first of the two signals.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.int.recv() => Stop::Interrupt,
            _ = self.term.recv() => Stop::Terminate,
        }
    }
}

/// After the report: die of `stop` as if it had not been caught, so the
/// exit status is what Postfix's sink (which does not catch it) gives.
pub fn die_of(stop: Stop) -> ! {
    use nix::sys::signal::{raise, signal, SigHandler, Signal};
    let sig = match stop {
        Stop::Interrupt => Signal::SIGINT,
        Stop::Terminate => Signal::SIGTERM,
    };
    // SAFETY: restoring the default action of a signal; no handler code runs.
    unsafe {
        let _ = signal(sig, SigHandler::SigDfl);
    }
    let _ = raise(sig);
    // Only reached if the signal is blocked.
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_without_options() {
        assert!(SinkMeasure::new(&SinkOptions::default(), &[])
            .expect("new")
            .is_none());
        let stats_only = SinkMeasure::new(
            &SinkOptions {
                stats: Some(std::time::Duration::from_secs(1)),
                ..SinkOptions::default()
            },
            &[],
        )
        .expect("new")
        .expect("measure");
        assert!(stats_only.scanner().is_none());
        assert!(stats_only.finish().is_ok());
    }

    #[test]
    fn metrics_read_the_sink_counters() {
        let opts = SinkOptions {
            track: true,
            metrics: "127.0.0.1:0".parse().ok(),
            ..SinkOptions::default()
        };
        let m = SinkMeasure::new(&opts, &["helo", "."])
            .expect("new")
            .expect("measure");
        m.session_started();
        m.reply(Some(0), b"250 ok\r\n");
        m.reply(None, b"502 unknown\r\n");
        m.bytes(300);
        let mut scanner = m.scanner().expect("scanner");
        scanner.feed(b"X-Smtpstone-Run: 1\r\nX-Smtpstone-Seq: 3\r\nX-Smtpstone-Sent: 1\r\n\r\n");
        m.message(scanner.tag(), true);
        m.message(None, false);
        let r = m.readings();
        assert_eq!((r.sessions, r.sessions_ended, r.messages), (1, 0, 2));
        assert_eq!((r.bytes, r.dumps), (300, 1));
        let t = r.tracking.expect("tracking");
        assert_eq!((t.received, t.gaps, t.latency.count()), (1, 3, 1));
        let cells: Vec<_> = m
            .replies()
            .expect("replies")
            .cells()
            .filter(|c| c.2 > 0)
            .collect();
        assert_eq!(cells, [("helo", "2xx", 1), ("unknown", "5xx", 1)]);
        let runs: serde_json::Value = serde_json::from_str(&m.runs_json()).expect("json");
        assert_eq!(runs["messages"], 2);
    }

    #[test]
    fn tracking_report_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        let m = SinkMeasure::new(
            &SinkOptions {
                track: true,
                json: Some(super::super::options::JsonOut::File(path.clone())),
                ..SinkOptions::default()
            },
            &[],
        )
        .expect("new")
        .expect("measure");
        let mut scanner = m.scanner().expect("scanner");
        scanner.feed(b"X-Smtpstone-Run: 2a\r\nX-Smtpstone-Seq: 0\r\nX-Smtpstone-Sent: 1\r\n\r\n");
        m.message(scanner.tag(), false);
        m.message(None, true);
        m.finish().expect("finish");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(json["messages"], 2);
        assert_eq!(json["runs"][0]["run_id"], "000000000000002a");
        std::fs::remove_file(&path).expect("rm");
        m.finish().expect("second finish is a no-op");
        assert!(!path.exists());
    }
}
