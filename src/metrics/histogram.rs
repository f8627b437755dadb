//! Latency histograms with fixed buckets, as Prometheus histograms are:
//! the same bounds for every scrape and every process, so that
//! `histogram_quantile` can add them up across instances. (The run
//! reports' exact percentiles come from HdrHistogram, `measure::hist`.)
//!
//! Values are whole microseconds, compared with integer bounds (no float on
//! the hot path); they are exported in seconds, the base unit.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// Upper bounds (`le`) of the buckets, microseconds: 0.5 ms to 5 min. Mail
/// relayed by an MTA may wait in its queue for minutes; a direct SMTP
/// transaction on loopback takes well under a millisecond.
pub const BOUNDS_US: [u64; 17] = [
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// Buckets: one per bound, plus `+Inf`.
pub const SLOTS: usize = BOUNDS_US.len() + 1;

/// The bucket of `us`: the first whose bound is `>= us` (Prometheus
/// buckets count values less than or equal to their bound).
#[inline]
pub fn slot(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

/// Bucket counts and the sum of the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Values per bucket (not cumulative).
    pub slots: [u64; SLOTS],
    /// Sum of the values, microseconds.
    pub sum_us: u64,
}

impl Counts {
    /// Count one value.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.slots[slot(us)] += 1;
        self.sum_us = self.sum_us.wrapping_add(us);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.slots.iter().sum()
    }

    /// Add `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.slots.iter_mut().zip(other.slots) {
            *a += b;
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    /// Write as a Prometheus histogram in seconds.
    pub fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let mut buckets = [(f64::INFINITY, 0u64); SLOTS];
        for (i, (bucket, n)) in buckets.iter_mut().zip(self.slots).enumerate() {
            if let Some(&bound) = BOUNDS_US.get(i) {
                bucket.0 = seconds(bound);
            }
            bucket.1 = n;
        }
        encoder.encode_histogram::<NoLabelSet>(seconds(self.sum_us), self.count(), &buckets, None)
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Add `n` to a counter that only one task ever writes: a plain load and
/// store, no locked read-modify-write. Readers on other threads see the old
/// or the new value, never a torn one.
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// A histogram written by one task and read at scrape time by another
/// (see [`bump`]).
#[derive(Debug, Default)]
pub struct Live {
    slots: [AtomicU64; SLOTS],
    sum_us: AtomicU64,
}

impl Live {
    /// Count one value; only the owning task may call this.
    #[inline]
    pub fn record(&self, us: u64) {
        bump(&self.slots[slot(us)], 1);
        bump(&self.sum_us, us);
    }

    /// Add the current counts into `into`.
    pub fn add_to(&self, into: &mut Counts) {
        for (a, b) in into.slots.iter_mut().zip(&self.slots) {
            *a += b.load(Ordering::Relaxed);
        }
        into.sum_us = into
            .sum_us
            .wrapping_add(self.sum_us.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_le_semantics() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(500), 0, "a value equal to a bound is in its bucket");
        assert_eq!(slot(501), 1);
        assert_eq!(slot(1_000_000), 10);
        assert_eq!(slot(300_000_000), SLOTS - 2);
        assert_eq!(slot(u64::MAX), SLOTS - 1, "+Inf");
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn counts_and_live_agree() {
        let mut c = Counts::default();
        let live = Live::default();
        for us in [10, 500, 700, 2_000_000, 400_000_000] {
            c.record(us);
            live.record(us);
        }
        let mut from_live = Counts::default();
        live.add_to(&mut from_live);
        assert_eq!(c, from_live);
        assert_eq!(c.count(), 5);
        assert_eq!(c.sum_us, 402_001_210);
        let mut twice = c;
        twice.add(&c);
        assert_eq!(twice.count(), 10);
        assert_eq!(twice.slots[0], 4);
    }
}
