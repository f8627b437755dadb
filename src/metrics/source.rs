//! smtp-source's metric families (`smtpsource_` prefix, base units).
//!
//! Each session task owns one [`SessionCounters`] block and is its only
//! writer (plain loads and stores of relaxed atomics: no lock, no locked
//! instruction, nothing another session writes); a scrape sums the blocks.
//! The blocks live as long as the run, one per `-s` session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::family::{counter, counters, gauge_f64, histogram};
use super::histogram::{bump, Counts, Live};

/// The achieved rate is measured over at least this long (between the
/// scrapes that update it), so that frequent scrapes do not make it jumpy.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One session's counters (see the module comment).
#[derive(Debug, Default)]
pub struct SessionCounters {
    started: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    connects: AtomicU64,
    connect_errors: AtomicU64,
    bytes: AtomicU64,
    latency: Live,
}

impl SessionCounters {
    /// A message started.
    #[inline]
    pub fn started(&self) {
        bump(&self.started, 1);
    }

    /// A message was accepted `us` microseconds after its (intended) start.
    #[inline]
    pub fn accepted(&self, us: u64) {
        bump(&self.accepted, 1);
        self.latency.record(us);
    }

    /// A message ended without acceptance: rejected (`ok`), or cut short
    /// by an error.
    #[inline]
    pub fn not_accepted(&self, ok: bool) {
        bump(if ok { &self.rejected } else { &self.failed }, 1);
    }

    /// A connection was established.
    #[inline]
    pub fn connected(&self) {
        bump(&self.connects, 1);
    }

    /// A connect attempt failed.
    #[inline]
    pub fn connect_failed(&self) {
        bump(&self.connect_errors, 1);
    }

    /// `n` bytes were written.
    #[inline]
    pub fn sent(&self, n: usize) {
        bump(&self.bytes, n as u64);
    }
}

/// Sums over the sessions at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTotals {
    /// Messages started.
    pub started: u64,
    /// Messages accepted (a 2xx end-of-data reply).
    pub accepted: u64,
    /// Messages rejected (under `-A`, or closed by the server).
    pub rejected: u64,
    /// Messages cut short by an error.
    pub failed: u64,
    /// Connections established.
    pub connects: u64,
    /// Failed connect attempts.
    pub connect_errors: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Message latency of accepted messages.
    pub latency: Counts,
}

#[derive(Debug)]
struct RateWindow {
    since: Instant,
    started: u64,
    rate: f64,
}

/// A run's metrics: the session blocks, the `--rate` target and the
/// achieved rate.
#[derive(Debug)]
pub struct SourceMetrics {
    sessions: Mutex<Vec<Arc<SessionCounters>>>,
    target: Option<f64>,
    window: Mutex<RateWindow>,
}

impl SourceMetrics {
    /// Metrics of a run starting now, with `--rate` `target`.
    pub fn new(target: Option<f64>) -> SourceMetrics {
        SourceMetrics {
            sessions: Mutex::new(Vec::new()),
            target,
            window: Mutex::new(RateWindow {
                since: Instant::now(),
                started: 0,
                rate: 0.0,
            }),
        }
    }

    /// A new session's block (once per session task, not per message).
    pub fn session(&self) -> Arc<SessionCounters> {
        let block = Arc::new(SessionCounters::default());
        if let Ok(mut all) = self.sessions.lock() {
            all.push(Arc::clone(&block));
        }
        block
    }

    /// The sums now.
    pub fn totals(&self) -> SourceTotals {
        let mut t = SourceTotals::default();
        let Ok(all) = self.sessions.lock() else {
            return t;
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for s in all.iter() {
            t.started += get(&s.started);
            t.accepted += get(&s.accepted);
            t.rejected += get(&s.rejected);
            t.failed += get(&s.failed);
            t.connects += get(&s.connects);
            t.connect_errors += get(&s.connect_errors);
            t.bytes += get(&s.bytes);
            s.latency.add_to(&mut t.latency);
        }
        t
    }

    /// Messages started per second over the last window of at least
    /// [`RATE_WINDOW`] that ended at a scrape (0 until the first).
    fn achieved(&self, started: u64, now: Instant) -> f64 {
        let Ok(mut w) = self.window.lock() else {
            return 0.0;
        };
        let span = now.saturating_duration_since(w.since);
        if span >= RATE_WINDOW {
            w.rate = started.saturating_sub(w.started) as f64 / span.as_secs_f64();
            w.since = now;
            w.started = started;
        }
        w.rate
    }

    /// The registry behind smtp-source's `/metrics`.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        registry
    }
}

impl Collector for SourceMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let t = self.totals();
        let e = &mut enc;
        counter(
            e,
            "smtpsource_messages_started",
            "Messages started.",
            t.started,
        )?;
        counters(
            e,
            "smtpsource_messages",
            "Messages ended, by outcome: accepted (2xx end of data), rejected, failed (an error cut them short).",
            [
                ([("outcome", "accepted")], t.accepted),
                ([("outcome", "rejected")], t.rejected),
                ([("outcome", "failed")], t.failed),
            ],
        )?;
        counter(
            e,
            "smtpsource_connects",
            "Connections established.",
            t.connects,
        )?;
        counter(
            e,
            "smtpsource_connect_errors",
            "Failed connect attempts.",
            t.connect_errors,
        )?;
        counter(
            e,
            "smtpsource_sent_bytes",
            "Bytes written to the server (commands and content).",
            t.bytes,
        )?;
        if let Some(target) = self.target {
            gauge_f64(
                e,
                "smtpsource_target_messages_per_second",
                "The --rate target: message starts per second.",
                target,
            )?;
        }
        gauge_f64(
            e,
            "smtpsource_achieved_messages_per_second",
            "Message starts per second, measured between scrapes at least 1 s apart.",
            self.achieved(t.started, Instant::now()),
        )?;
        histogram(
            e,
            "smtpsource_message_latency_seconds",
            "Message latency: from the message's (intended, under --rate) start to its 2xx end-of-data reply.",
            &t.latency,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    #[test]
    fn sessions_add_up() {
        let m = Arc::new(SourceMetrics::new(Some(50.0)));
        let (a, b) = (m.session(), m.session());
        for s in [&a, &b] {
            s.started();
            s.connected();
            s.sent(100);
        }
        a.accepted(800);
        b.not_accepted(true);
        b.started();
        b.not_accepted(false);
        a.connect_failed();
        let t = m.totals();
        assert_eq!((t.started, t.accepted, t.rejected, t.failed), (3, 1, 1, 1));
        assert_eq!((t.connects, t.connect_errors, t.bytes), (2, 1, 200));
        assert_eq!(t.latency.count(), 1);

        let mut text = String::new();
        prometheus_text::encode(&mut text, &m.registry()).expect("encode");
        for line in [
            "smtpsource_messages_started_total 3\n",
            "smtpsource_messages_total{outcome=\"accepted\"} 1\n",
            "smtpsource_messages_total{outcome=\"rejected\"} 1\n",
            "smtpsource_messages_total{outcome=\"failed\"} 1\n",
            "smtpsource_connects_total 2\n",
            "smtpsource_connect_errors_total 1\n",
            "smtpsource_sent_bytes_total 200\n",
            "smtpsource_target_messages_per_second 50.0\n",
            "smtpsource_message_latency_seconds_bucket{le=\"0.001\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        let plain = Arc::new(SourceMetrics::new(None));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &plain.registry()).expect("encode");
        assert!(!text.contains("target"), "{text}");
    }

    #[test]
    fn achieved_rate_over_windows() {
        let m = SourceMetrics::new(None);
        let t0 = m.window.lock().expect("lock").since;
        assert_eq!(m.achieved(10, t0 + Duration::from_millis(500)), 0.0);
        assert_eq!(m.achieved(100, t0 + Duration::from_secs(2)), 50.0);
        // Within the next window: the last value stands.
        assert_eq!(m.achieved(110, t0 + Duration::from_millis(2500)), 50.0);
        assert_eq!(m.achieved(400, t0 + Duration::from_secs(4)), 150.0);
    }
}
