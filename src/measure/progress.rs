//! The live `--progress` status line of smtp-source.
//!
//! Sessions publish into their own [`Live`] block (single writer, relaxed
//! atomics on the session's own cache lines; no lock, nothing another
//! session writes). A progress task sums the blocks at most
//! [`REFRESH_PER_SEC`] times a second and prints rate, messages sent,
//! errors and the p99 message latency over the last [`WINDOW`]. The live
//! p99 comes from a coarse log-linear histogram (within 12.5 %, good enough
//! for a status line); the report's percentiles come from HdrHistogram.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::hist;

/// Refreshes per second, at most.
pub const REFRESH_PER_SEC: u32 = 4;

/// Interval between refreshes.
pub const REFRESH: Duration = Duration::from_millis(1000 / REFRESH_PER_SEC as u64);

/// Rate and p99 are computed over this trailing window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Values below this are their own bucket.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two (3 mantissa bits: within 12.5 %).
const SUB: usize = 8;
/// Buckets covering all of u64.
pub const BUCKETS: usize = LINEAR as usize + (64 - 4) * SUB;

/// The bucket of `v` (microseconds).
pub fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 4
    let m = ((v >> (e - 3)) & 7) as usize;
    LINEAR as usize + (e - 4) * SUB + m
}

/// The largest value of bucket `i`.
pub fn bucket_high(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let e = (i - LINEAR as usize) / SUB + 4;
    let m = ((i - LINEAR as usize) % SUB) as u64;
    let low = (8 + m) << (e - 3);
    low + ((1u64 << (e - 3)) - 1)
}

/// One session's live counters.
#[derive(Debug)]
pub struct Live {
    accepted: AtomicU64,
    errors: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    /// Zeroed counters.
    pub fn new() -> Live {
        Live {
            accepted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A message was accepted after `latency`.
    #[inline]
    pub fn accepted(&self, latency: Duration) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.buckets[bucket(hist::micros(latency))].fetch_add(1, Ordering::Relaxed);
    }

    /// A message ended without acceptance.
    #[inline]
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Totals of all sessions at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Messages accepted.
    pub accepted: u64,
    /// Messages not accepted.
    pub errors: u64,
    /// Latency bucket counts.
    pub buckets: Vec<u64>,
}

impl Snapshot {
    /// The sum over `lives`.
    pub fn take<'a>(lives: impl IntoIterator<Item = &'a Live>) -> Snapshot {
        let mut s = Snapshot {
            accepted: 0,
            errors: 0,
            buckets: vec![0; BUCKETS],
        };
        for live in lives {
            s.accepted += live.accepted.load(Ordering::Relaxed);
            s.errors += live.errors.load(Ordering::Relaxed);
            for (sum, b) in s.buckets.iter_mut().zip(live.buckets.iter()) {
                *sum += b.load(Ordering::Relaxed);
            }
        }
        s
    }
}

/// The `q` quantile (upper bucket bound) of what `new` has beyond `old`.
pub fn quantile_between(old: &Snapshot, new: &Snapshot, q: f64) -> Option<u64> {
    let delta = |i: usize| new.buckets[i].saturating_sub(old.buckets[i]);
    let total: u64 = (0..BUCKETS).map(delta).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for i in 0..BUCKETS {
        seen += delta(i);
        if seen >= rank {
            return Some(bucket_high(i));
        }
    }
    None
}

/// What one status line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Messages accepted so far.
    pub sent: u64,
    /// Messages not accepted so far.
    pub errors: u64,
    /// Accepted messages per second over the window.
    pub rate: f64,
    /// p99 message latency over the window, microseconds.
    pub p99: Option<u64>,
}

/// Keeps the snapshots of the trailing window.
#[derive(Debug)]
pub struct Meter {
    start: Instant,
    ring: VecDeque<(Instant, Snapshot)>,
}

impl Meter {
    /// A meter for a run that started at `start`.
    pub fn new(start: Instant) -> Meter {
        Meter {
            start,
            ring: VecDeque::new(),
        }
    }

    /// Add the snapshot taken at `now` and compute the status.
    pub fn tick(&mut self, now: Instant, snap: Snapshot) -> Status {
        let zero = Snapshot {
            accepted: 0,
            errors: 0,
            buckets: vec![0; BUCKETS],
        };
        if self.ring.is_empty() {
            self.ring.push_back((self.start, zero));
        }
        // Keep the newest snapshot that is at least WINDOW old as the base.
        while self.ring.len() > 1 && now.saturating_duration_since(self.ring[1].0) >= WINDOW {
            self.ring.pop_front();
        }
        let (base_t, base) = &self.ring[0];
        let dt = now.saturating_duration_since(*base_t).as_secs_f64();
        let rate = if dt > 0.0 {
            snap.accepted.saturating_sub(base.accepted) as f64 / dt
        } else {
            0.0
        };
        let status = Status {
            elapsed: now.saturating_duration_since(self.start),
            sent: snap.accepted,
            errors: snap.errors,
            rate,
            p99: quantile_between(base, &snap, 0.99),
        };
        self.ring.push_back((now, snap));
        status
    }
}

/// The status line text (without the program prefix).
pub fn line(s: &Status) -> String {
    let p99 = s
        .p99
        .map_or_else(|| "-".to_string(), |us| format!("{} ms", hist::ms(us)));
    format!(
        "{:.1}s sent {}, {:.1} msg/s, errors {}, p99 {}",
        s.elapsed.as_secs_f64(),
        s.sent,
        s.rate,
        s.errors,
        p99
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_u64_within_an_eighth() {
        let mut last = 0;
        for i in 0..BUCKETS {
            let high = bucket_high(i);
            assert!(i == 0 || high > last, "monotonic at {i}");
            assert_eq!(bucket(high), i);
            if i > 0 {
                assert_eq!(bucket(last + 1), i);
            }
            last = high;
        }
        assert_eq!(last, u64::MAX);
        for v in [0u64, 1, 15, 16, 17, 100, 1_000, 123_456, 1 << 40, u64::MAX] {
            let high = bucket_high(bucket(v));
            assert!(high >= v);
            assert!((high - v) as f64 <= v as f64 / 8.0 + 1.0, "{v} -> {high}");
        }
    }

    #[test]
    fn live_snapshot_and_quantiles() {
        let a = Live::new();
        let b = Live::new();
        for _ in 0..98 {
            a.accepted(Duration::from_micros(1_000));
        }
        b.accepted(Duration::from_micros(50_000));
        b.accepted(Duration::from_micros(60_000));
        b.error();
        let snap = Snapshot::take([&a, &b]);
        assert_eq!((snap.accepted, snap.errors), (100, 1));
        let zero = Snapshot::take([]);
        let p50 = quantile_between(&zero, &snap, 0.5).expect("p50");
        assert!((1_000..=1_125).contains(&p50), "{p50}");
        let p99 = quantile_between(&zero, &snap, 0.99).expect("p99");
        assert!((50_000..=56_250).contains(&p99), "{p99}");
        assert_eq!(quantile_between(&snap, &snap, 0.99), None);
    }

    #[tokio::test(start_paused = true)]
    async fn meter_rate_over_the_trailing_window() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        let live = Live::new();
        let mut statuses = Vec::new();
        // 100 msg/s for 2 s, then nothing.
        for tick in 1..=12u32 {
            tokio::time::advance(REFRESH).await;
            if tick <= 8 {
                for _ in 0..25 {
                    live.accepted(Duration::from_millis(2));
                }
            }
            statuses.push(meter.tick(Instant::now(), Snapshot::take([&live])));
        }
        assert_eq!(statuses[0].sent, 25);
        assert_eq!(statuses[0].rate, 100.0);
        assert_eq!(statuses[7].rate, 100.0);
        assert_eq!(statuses[7].elapsed, Duration::from_secs(2));
        // A second after the sending stopped the window is empty.
        assert_eq!(statuses[11].rate, 0.0);
        assert_eq!(statuses[11].p99, None);
        assert_eq!(statuses[11].sent, 200);
        assert!(statuses[7].p99.is_some());
        assert_eq!(
            line(&statuses[7]),
            format!(
                "2.0s sent 200, 100.0 msg/s, errors 0, p99 {} ms",
                hist::ms(statuses[7].p99.unwrap_or(0))
            )
        );
        assert_eq!(
            line(&statuses[11]),
            "3.0s sent 200, 0.0 msg/s, errors 0, p99 -"
        );
    }
}
