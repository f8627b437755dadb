//! Open-loop pacing for `smtp-source --rate N` and `--duration D`.
//!
//! Closed loop (Postfix's way, and the default) starts a session's next
//! message when its last one is done, so a slow server silently lowers the
//! load and its stalls never show in the latencies ("coordinated
//! omission"). Open loop fixes the schedule up front: message k of the run
//! is due at `start + k / N`. A session that is free takes the next ticket
//! (one shared atomic counter, no lock) and sleeps until that time; if every
//! session is busy, tickets fall behind and are sent late, at once. A
//! message's latency is measured from its *intended* start, so time spent
//! waiting for a free session counts, as a user of a real system would
//! experience it.
//!
//! A shard of a run (`--shard I/N`) keeps the run's schedule: its `k`-th
//! message is the run's message `j = I + kN`, due at `start + j / R`, so
//! the shards together keep the single-machine schedule at the run's rate.
//!
//! `--duration D` ends the run: no message is started at or after
//! `start + D` (by its intended time under `--rate`, else by the clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::shard::Shard;

/// The schedule of a run.
#[derive(Debug)]
pub struct Pacing {
    start: Instant,
    /// Messages per second over all sessions (`--rate`).
    rate: Option<f64>,
    /// No message starts at or after this (`--duration`).
    end: Option<Instant>,
    /// The next ticket (this process's message number in the schedule).
    next: AtomicU64,
    /// This process's part of the run (`0/1` unless `--shard`).
    shard: Shard,
}

impl Pacing {
    /// A schedule starting at `start`. `rate` must be finite and positive.
    pub fn new(start: Instant, rate: Option<f64>, duration: Option<Duration>) -> Pacing {
        Pacing {
            start,
            rate,
            end: duration.map(|d| start + d),
            next: AtomicU64::new(0),
            shard: Shard { index: 0, count: 1 },
        }
    }

    /// The schedule of `shard`'s messages only: `rate` stays the run's.
    pub fn sharded(mut self, shard: Shard) -> Pacing {
        self.shard = shard;
        self
    }

    /// The run's start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The `--rate` target, if any.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// When this process's message `k` of the schedule is due (`start +
    /// j / rate`, `j` its number in the run; `start` without a rate).
    pub fn intended(&self, k: u64) -> Instant {
        match self.rate {
            Some(rate) => {
                // Computed from k each time, so rounding never accumulates.
                let j = self.shard.global(k);
                let nanos = (j as f64 * 1e9 / rate).min(u64::MAX as f64 / 2.0);
                self.start + Duration::from_nanos(nanos as u64)
            }
            None => self.start,
        }
    }

    /// Whether `--duration` has run out at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }

    /// Whether more messages may start (used to decide between keeping a
    /// `-d` connection and sending QUIT).
    pub fn open(&self) -> bool {
        match self.rate {
            // The next ticket's time decides; peeking does not take it.
            Some(_) => {
                let k = self.next.load(Ordering::Relaxed);
                self.end.is_none_or(|end| self.intended(k) < end)
            }
            None => !self.expired(Instant::now()),
        }
    }

    /// Wait for this session's next message: its intended start, after
    /// sleeping until then (open loop), or now (closed loop). `None` when
    /// the run is over.
    pub async fn next(&self) -> Option<Instant> {
        match self.rate {
            None => {
                let now = Instant::now();
                (!self.expired(now)).then_some(now)
            }
            Some(_) => {
                let k = self.next.fetch_add(1, Ordering::Relaxed);
                let due = self.intended(k);
                if self.end.is_some_and(|end| due >= end) {
                    return None;
                }
                sleep_until(due).await;
                Some(due)
            }
        }
    }
}

/// Parse a `--rate` value: messages per second, a positive finite number
/// (`100`, `0.5`).
pub fn parse_rate(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// Parse a `--duration` value: `90`, `90s`, `1m30s`, `500ms`, `2h` (plain
/// numbers are seconds). Must be positive.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let d = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(text.parse().ok()?)
    } else {
        humantime::parse_duration(text).ok()?
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// `sessions` workers, each "sending" a message that takes `work`;
    /// returns (intended ms, started ms, finished ms) for every message.
    async fn simulate(
        rate: f64,
        duration: Duration,
        sessions: usize,
        work: Duration,
    ) -> Vec<(u64, u64, u64)> {
        let pacing = Arc::new(Pacing::new(Instant::now(), Some(rate), Some(duration)));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..sessions {
            let pacing = Arc::clone(&pacing);
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                while let Some(intended) = pacing.next().await {
                    let started = Instant::now();
                    tokio::time::sleep(work).await;
                    let done = Instant::now();
                    let t0 = pacing.start();
                    log.lock().expect("log").push((
                        ms(intended - t0),
                        ms(started - t0),
                        ms(done - t0),
                    ));
                }
            }));
        }
        for t in tasks {
            t.await.expect("worker");
        }
        let mut v = log.lock().expect("log").clone();
        v.sort();
        v
    }

    #[tokio::test(start_paused = true)]
    async fn sends_at_the_intended_times_across_sessions() {
        let log = simulate(10.0, Duration::from_secs(1), 3, Duration::from_millis(5)).await;
        let intended: Vec<u64> = log.iter().map(|e| e.0).collect();
        assert_eq!(intended, (0..10).map(|k| k * 100).collect::<Vec<_>>());
        // Every message started exactly on time: sessions were free.
        assert!(log.iter().all(|&(i, s, _)| i == s), "{log:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rates_do_not_drift() {
        let log = simulate(3.0, Duration::from_secs(10), 2, Duration::ZERO).await;
        assert_eq!(log.len(), 30);
        assert_eq!(log[29].0, 9_666); // 29 / 3 s, not 29 × 333 ms
        assert_eq!(log[3].0, 1_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_server_shows_in_latency_instead_of_lowering_the_load() {
        // One session, 10 msg/s wanted, each message takes 250 ms.
        let log = simulate(10.0, Duration::from_secs(1), 1, Duration::from_millis(250)).await;
        // All 10 scheduled messages are still sent (late, back to back) ...
        assert_eq!(log.len(), 10);
        for (k, &(intended, started, done)) in log.iter().enumerate() {
            let k = k as u64;
            assert_eq!(intended, 100 * k);
            assert_eq!(started, 250 * k);
            assert_eq!(done, 250 * (k + 1));
            // ... and the latency from the intended start grows by the
            // backlog: 250, 400, 550, ... ms (closed loop would say 250).
            assert_eq!(done - intended, 250 + 150 * k);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_with_duration_stops_starting_after_d() {
        let pacing = Pacing::new(Instant::now(), None, Some(Duration::from_millis(350)));
        let mut starts = Vec::new();
        while let Some(t) = pacing.next().await {
            assert_eq!(t, Instant::now());
            starts.push(ms(t - pacing.start()));
            assert!(pacing.open());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(starts, [0, 100, 200, 300]);
        assert!(!pacing.open());
    }

    #[tokio::test(start_paused = true)]
    async fn shards_together_keep_the_single_schedule() {
        // 10 msg/s for 1 s over 3 shards: the shards' due times are the
        // single run's 0, 100, ..., 900 ms, each exactly once.
        let start = Instant::now();
        let mut all = Vec::new();
        for index in 0..3 {
            let pacing = Pacing::new(start, Some(10.0), Some(Duration::from_secs(1)))
                .sharded(Shard { index, count: 3 });
            let mut own = Vec::new();
            while let Some(t) = pacing.next().await {
                own.push(ms(t - start));
            }
            // A shard's own rate is 10/3 msg/s, phased by index × 100 ms.
            let expect: Vec<u64> = (0..own.len() as u64)
                .map(|k| 100 * index as u64 + 300 * k)
                .collect();
            assert_eq!(own, expect, "shard {index}");
            all.extend(own);
        }
        all.sort_unstable();
        assert_eq!(all, (0..10).map(|k| k * 100).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_means_always_now() {
        let pacing = Pacing::new(Instant::now(), None, None);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(pacing.next().await, Some(Instant::now()));
        assert!(pacing.open());
    }

    #[tokio::test(start_paused = true)]
    async fn open_peeks_without_taking_a_ticket() {
        let pacing = Pacing::new(Instant::now(), Some(2.0), Some(Duration::from_secs(1)));
        assert!(pacing.open());
        assert_eq!(pacing.next().await.map(|t| ms(t - pacing.start())), Some(0));
        assert!(pacing.open());
        assert_eq!(
            pacing.next().await.map(|t| ms(t - pacing.start())),
            Some(500)
        );
        // Ticket 2 would be due at 1 s = the end.
        assert!(!pacing.open());
        assert_eq!(pacing.next().await, None);
    }

    #[test]
    fn parse_values() {
        assert_eq!(parse_rate("100"), Some(100.0));
        assert_eq!(parse_rate("0.5"), Some(0.5));
        for bad in ["0", "-1", "abc", "", "inf", "NaN"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["0", "0s", "", "abc", "-5s", "5 parsecs"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
