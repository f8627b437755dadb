//! smtp-sink `--stats SECONDS`: one line per interval on stderr with the
//! sessions, messages, msg/s and MB/s of that interval.
//!
//! Sessions bump relaxed atomic counters (only when `--stats` is on); a
//! timer task takes a [`StatsSnapshot`] per interval and prints [`line`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bytes in a megabyte (SI, as network throughput is usually given).
const MB: f64 = 1_000_000.0;

/// Counters shared by the sink's sessions.
#[derive(Debug, Default)]
pub struct SinkStats {
    sessions: AtomicU64,
    ended: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl SinkStats {
    /// Zeroed counters.
    pub fn new() -> SinkStats {
        SinkStats::default()
    }

    /// A session started.
    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended.
    pub fn session_ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was received completely.
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` bytes were read from a client.
    pub fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            sessions: self.sessions.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Counter values at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Sessions started.
    pub sessions: u64,
    /// Sessions ended.
    pub ended: u64,
    /// Messages received.
    pub messages: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// The text of one interval's line (without the program prefix):
/// `stats: 10.0s: 5 sessions (3 open), 1200 messages, 120.0 msg/s, 6.144 MB/s`.
pub fn line(interval: Duration, prev: &StatsSnapshot, now: &StatsSnapshot) -> String {
    let secs = interval.as_secs_f64();
    let per_sec = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
    let messages = now.messages.saturating_sub(prev.messages);
    let bytes = now.bytes.saturating_sub(prev.bytes);
    format!(
        "stats: {secs:.1}s: {} sessions ({} open), {messages} messages, {:.1} msg/s, {:.3} MB/s",
        now.sessions.saturating_sub(prev.sessions),
        now.sessions.saturating_sub(now.ended),
        per_sec(messages as f64),
        per_sec(bytes as f64 / MB),
    )
}

/// Parse a `--stats` interval: whole seconds, at least 1.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let secs: u64 = text.trim().parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_lines() {
        let s = SinkStats::new();
        let t0 = s.snapshot();
        for _ in 0..5 {
            s.session_started();
        }
        s.session_ended();
        s.session_ended();
        for _ in 0..1200 {
            s.message();
            s.bytes(5120);
        }
        let t1 = s.snapshot();
        assert_eq!(
            line(Duration::from_secs(10), &t0, &t1),
            "stats: 10.0s: 5 sessions (3 open), 1200 messages, 120.0 msg/s, 0.614 MB/s"
        );
        s.session_ended();
        let t2 = s.snapshot();
        assert_eq!(
            line(Duration::from_secs(2), &t1, &t2),
            "stats: 2.0s: 0 sessions (2 open), 0 messages, 0.0 msg/s, 0.000 MB/s"
        );
        assert_eq!(
            line(Duration::ZERO, &t0, &t1),
            "stats: 0.0s: 5 sessions (3 open), 1200 messages, 0.0 msg/s, 0.000 MB/s"
        );
    }

    #[test]
    fn parse_intervals() {
        assert_eq!(parse_interval("10"), Some(Duration::from_secs(10)));
        for bad in ["0", "-1", "1.5", "", "x"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }
}
