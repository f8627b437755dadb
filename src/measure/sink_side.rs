//! smtp-sink's side of the measurements: `--track` accounting, `--stats`
//! lines, and the tracking report at exit (`-M`, `-n`, a fatal error,
//! SIGINT, SIGTERM).
//!
//! Without a measurement option the server holds no [`SinkMeasure`] and
//! the sessions no scanner: the Postfix path is a `None` check per hook.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::options::SinkOptions;
use super::output::{print_stderr, write_json};
use super::stats::{self, SinkStats};
use super::track::{self, HeaderScanner, Tag, Tracker};
use crate::diag::{self, Result};

/// The measurement state of one smtp-sink.
#[derive(Debug)]
pub struct SinkMeasure {
    opts: SinkOptions,
    tracker: Option<Mutex<Tracker>>,
    stats: Arc<SinkStats>,
    reported: AtomicBool,
}

impl SinkMeasure {
    /// The state for `opts`, or `None` when no measurement option is on.
    pub fn new(opts: &SinkOptions) -> Option<SinkMeasure> {
        opts.any().then(|| SinkMeasure {
            tracker: opts.track.then(|| Mutex::new(Tracker::new())),
            stats: Arc::new(SinkStats::new()),
            opts: opts.clone(),
            reported: AtomicBool::new(false),
        })
    }

    /// A session's header scanner, when tracking.
    pub fn scanner(&self) -> Option<Box<HeaderScanner>> {
        self.tracker
            .as_ref()
            .map(|_| Box::new(HeaderScanner::new()))
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
        if self.opts.stats.is_some() {
            self.stats.bytes(n);
        }
    }

    /// A message's end of data was received; `tag` is what its scanner
    /// found.
    pub fn message(&self, tag: Option<Tag>) {
        self.stats.message();
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
    pub fn spawn_stats(&self) -> Option<StatsTask> {
        let every = self.opts.stats?;
        let counters = Arc::clone(&self.stats);
        Some(StatsTask(tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval_at(start + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut prev = counters.snapshot();
            let mut prev_t = start;
            loop {
                let now = tick.tick().await;
                let snap = counters.snapshot();
                diag::info(&stats::line(now - prev_t, &prev, &snap));
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
            Ok(t) => (t.render(), self.opts.json.as_ref().map(|_| t.to_json())),
            Err(_) => return Ok(()),
        };
        print_stderr(&text);
        match (&self.opts.json, json) {
            (Some(out), Some(json)) => write_json(out, &json),
            _ => Ok(()),
        }
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
        assert!(SinkMeasure::new(&SinkOptions::default()).is_none());
        let stats_only = SinkMeasure::new(&SinkOptions {
            stats: Some(std::time::Duration::from_secs(1)),
            ..SinkOptions::default()
        })
        .expect("measure");
        assert!(stats_only.scanner().is_none());
        assert!(stats_only.finish().is_ok());
    }

    #[test]
    fn tracking_report_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        let m = SinkMeasure::new(&SinkOptions {
            track: true,
            json: Some(super::super::options::JsonOut::File(path.clone())),
            stats: None,
        })
        .expect("measure");
        let mut scanner = m.scanner().expect("scanner");
        scanner.feed(b"X-Smtpstone-Run: 2a\r\nX-Smtpstone-Seq: 0\r\nX-Smtpstone-Sent: 1\r\n\r\n");
        m.message(scanner.tag());
        m.message(None);
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
