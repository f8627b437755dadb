//! The run's timeline (`smtp-source --json`, `--report=timeline`, `--html`):
//! what happened in each interval of wall-clock time.
//!
//! Intervals are aligned to the Unix epoch (an interval of width `w` ms
//! starts at a multiple of `w`), so timelines of runs on several machines
//! line up and merge interval by interval: counts add, histograms merge.
//!
//! Each session keeps its own [`SessionTimeline`] (no state shared between
//! sessions): the current interval's counters and a live latency histogram,
//! and the finished intervals in compact [`Sparse`] form. The run merges them
//! once at the end ([`Timeline::merge_all`]).
//!
//! Memory is bounded: a timeline holds at most [`MAX_INTERVALS`] intervals;
//! one more makes it [coarsen](Timeline::coarsen): the width doubles and
//! adjacent pairs merge. Coarsening keeps every count and every histogram
//! value (only the time resolution drops), and because widths stay
//! epoch-aligned, coarsened timelines still merge exactly.
//!
//! Cost per interval, measured by `memory_per_interval` below (1000
//! messages with latencies spread over 0.2–50 ms, 822 distinct buckets):
//! in memory an [`Interval`] is 88 bytes plus 16 bytes per non-empty
//! histogram bucket (13 KiB for that spread; a session that accepted a few
//! messages in an interval holds a few dozen bytes); serialized in the JSON
//! report its histogram is 2.0 KiB of base64 (HdrHistogram V2 is run-length
//! and variable-length encoded). A full `Histogram<u64>` per interval would
//! hold 7168 counters (56 KiB) for values up to 50 ms, which is why
//! finished intervals are kept sparse. Each session also keeps one live
//! `Histogram<u32>` for its current interval (28 KiB at that range).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::{Counter, Histogram};
use serde::{Deserialize, Serialize};

use super::hist::{self, Hist, LatencyJson, SessionHist};
use super::recorder::Tick;

/// Default `--interval`: one second, the resolution of most load-test
/// dashboards (k6, Grafana) and of the sink's `--stats` lines.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;

/// Most intervals a timeline holds before it coarsens. 1024 points is more
/// than a chart 1200 pixels wide can show apart, keeps a 17-minute run at
/// 1 s resolution, and bounds a run's merged timeline, however long, to
/// about 13 MiB in memory and 2 MiB of JSON at the dense spread measured
/// above (well under the report reader's size limit); past it, resolution
/// halves instead.
pub const MAX_INTERVALS: usize = 1024;

/// The counters of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Messages started.
    pub attempted: u64,
    /// Messages accepted (2xx end of data).
    pub accepted: u64,
    /// Messages that ended without acceptance (4xx/5xx under `-A`).
    pub rejected: u64,
    /// Messages cut short by a fatal error.
    pub failed: u64,
    /// Failed connect attempts.
    pub connect_errors: u64,
    /// Connections established.
    pub connects: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Counts {
    /// Add `o` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.attempted += o.attempted;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.failed += o.failed;
        self.connect_errors += o.connect_errors;
        self.connects += o.connects;
        self.bytes += o.bytes;
    }
}

/// A histogram's non-empty buckets, `(value, count)` sorted by value (each
/// value the top of its bucket, as [`Histogram::iter_recorded`] gives it):
/// what a finished interval keeps instead of the full counts array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse(Vec<(u64, u64)>);

impl Sparse {
    /// The buckets of `h`.
    pub fn of<T: Counter>(h: &Histogram<T>) -> Sparse {
        let mut buckets: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value().as_u64()))
            .collect();
        buckets.shrink_to_fit();
        Sparse(buckets)
    }

    /// Add `other`'s buckets (a sorted merge; equal values add up).
    pub fn merge(&mut self, other: &Sparse) {
        if other.0.is_empty() {
            return;
        }
        let (a, b) = (&self.0, &other.0);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
                Ordering::Equal => {
                    out.push((a[i].0, a[i].1 + b[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.0 = out;
    }

    /// Record the buckets into `h`.
    pub fn add_to(&self, h: &mut Hist) {
        for &(v, n) in &self.0 {
            let _ = h.record_n(v.min(hist::MAX_MICROS), n);
        }
    }

    /// As a histogram.
    pub fn to_hist(&self) -> Hist {
        let mut h = hist::new();
        self.add_to(&mut h);
        h
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|b| b.1).sum()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

/// One interval: `[start_ms, start_ms + width)` of Unix epoch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// Start, Unix epoch milliseconds (a multiple of the width).
    pub start_ms: u64,
    /// Counters.
    pub counts: Counts,
    /// Message latency (µs) of the messages accepted in the interval.
    pub latency: Sparse,
}

impl Interval {
    fn absorb(&mut self, other: &Interval) {
        self.counts.add(&other.counts);
        self.latency.merge(&other.latency);
    }
}

/// Greatest common divisor (widths are merged at their least common
/// multiple, which both divide, so epoch-aligned intervals nest exactly).
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Intervals of one width, sorted by start, at most [`MAX_INTERVALS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    width_ms: u64,
    intervals: Vec<Interval>,
}

impl Timeline {
    /// An empty timeline of `width_ms`-wide intervals (at least 1 ms).
    pub fn new(width_ms: u64) -> Timeline {
        Timeline {
            width_ms: width_ms.max(1),
            intervals: Vec::new(),
        }
    }

    /// Width of an interval, milliseconds.
    pub fn width_ms(&self) -> u64 {
        self.width_ms
    }

    /// The intervals, oldest first (intervals where nothing happened are
    /// absent).
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// Add an interval (its start is aligned down to the width; one that
    /// exists is merged into), coarsening past [`MAX_INTERVALS`].
    pub fn add(&mut self, mut iv: Interval) {
        iv.start_ms -= iv.start_ms % self.width_ms;
        match self
            .intervals
            .binary_search_by_key(&iv.start_ms, |i| i.start_ms)
        {
            Ok(pos) => self.intervals[pos].absorb(&iv),
            Err(pos) => self.intervals.insert(pos, iv),
        }
        while self.intervals.len() > MAX_INTERVALS {
            self.coarsen();
        }
    }

    /// Double the width, merging adjacent intervals: every count and
    /// histogram value is kept.
    pub fn coarsen(&mut self) {
        self.regroup(self.width_ms.saturating_mul(2));
    }

    /// Regroup into intervals of `width_ms`, a multiple of the current
    /// width (so each old interval lies in exactly one new one).
    fn regroup(&mut self, width_ms: u64) {
        self.width_ms = width_ms;
        let mut out: Vec<Interval> = Vec::with_capacity(self.intervals.len());
        for mut iv in self.intervals.drain(..) {
            iv.start_ms -= iv.start_ms % width_ms;
            match out.last_mut() {
                Some(last) if last.start_ms == iv.start_ms => last.absorb(&iv),
                _ => out.push(iv),
            }
        }
        self.intervals = out;
    }

    /// Merge timelines interval by interval into one of `width_ms` (or the
    /// least common multiple of all widths, if larger): counts add,
    /// histograms merge. Each output interval's histogram is built once.
    pub fn merge_all<'a>(width_ms: u64, parts: impl IntoIterator<Item = &'a Timeline>) -> Timeline {
        let parts: Vec<&Timeline> = parts.into_iter().collect();
        let mut width = width_ms.max(1);
        for p in &parts {
            let g = gcd(width, p.width_ms);
            width = (width / g).saturating_mul(p.width_ms);
        }
        let mut groups: BTreeMap<u64, (Counts, Vec<&Sparse>)> = BTreeMap::new();
        for iv in parts.iter().flat_map(|p| &p.intervals) {
            let g = groups.entry(iv.start_ms - iv.start_ms % width).or_default();
            g.0.add(&iv.counts);
            g.1.push(&iv.latency);
        }
        let mut scratch = hist::new();
        let mut out = Timeline::new(width);
        for (start_ms, (counts, hists)) in groups {
            let latency = match hists.as_slice() {
                [one] => (*one).clone(),
                many => {
                    scratch.reset();
                    for s in many {
                        s.add_to(&mut scratch);
                    }
                    Sparse::of(&scratch)
                }
            };
            out.add(Interval {
                start_ms,
                counts,
                latency,
            });
        }
        out
    }

    /// Sum of all intervals' counters, and of their latency counts.
    pub fn totals(&self) -> (Counts, u64) {
        let mut c = Counts::default();
        let mut n = 0;
        for iv in &self.intervals {
            c.add(&iv.counts);
            n += iv.latency.count();
        }
        (c, n)
    }

    /// Bytes held in memory (the structure, the intervals and their
    /// histograms).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Timeline>()
            + self.intervals.capacity() * std::mem::size_of::<Interval>()
            + self
                .intervals
                .iter()
                .map(|i| i.latency.heap_bytes())
                .sum::<usize>()
    }

    /// The JSON form.
    pub fn to_json(&self) -> TimelineJson {
        TimelineJson {
            interval_ms: self.width_ms,
            intervals: self
                .intervals
                .iter()
                .map(|iv| IntervalJson {
                    start_ms: iv.start_ms,
                    counts: iv.counts,
                    latency_us: LatencyJson::of(&iv.latency.to_hist()),
                })
                .collect(),
        }
    }

    /// Read the JSON form back (starts must be aligned to the width).
    pub fn from_json(json: &TimelineJson) -> Result<Timeline, String> {
        if json.interval_ms == 0 {
            return Err("timeline: interval_ms is 0".to_string());
        }
        let mut t = Timeline::new(json.interval_ms);
        for iv in &json.intervals {
            if iv.start_ms % json.interval_ms != 0 {
                return Err(format!(
                    "timeline: start_ms {} is not a multiple of interval_ms {}",
                    iv.start_ms, json.interval_ms
                ));
            }
            let h = iv
                .latency_us
                .histogram()
                .map_err(|e| format!("timeline {}: {e}", iv.start_ms))?;
            t.add(Interval {
                start_ms: iv.start_ms,
                counts: iv.counts,
                latency: Sparse::of(&h),
            });
        }
        Ok(t)
    }

    /// The `--report=timeline` table (lines end in `\n`).
    pub fn render(&self) -> String {
        let secs = self.width_ms as f64 / 1000.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  timeline ({} intervals, UTC)",
            interval_text(self.width_ms)
        );
        let _ = writeln!(
            out,
            "    {:<12} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "start",
            "attempted",
            "accepted",
            "rejected",
            "failed",
            "conn.err",
            "connects",
            "bytes",
            "msg/s",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        for iv in &self.intervals {
            let c = &iv.counts;
            let s = hist::summary(&iv.latency.to_hist());
            let _ = writeln!(
                out,
                "    {:<12} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>11} {:>9.1} {:>9} {:>9} {:>9}",
                clock_text(iv.start_ms),
                c.attempted,
                c.accepted,
                c.rejected,
                c.failed,
                c.connect_errors,
                c.connects,
                c.bytes,
                c.accepted as f64 / secs,
                hist::ms(s.p50),
                hist::ms(s.p99),
                hist::ms(s.max),
            );
        }
        out
    }
}

/// `1 s`, `250 ms`, `1.5 s`.
pub fn interval_text(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

/// Time of day of an epoch time, UTC: `HH:MM:SS.mmm`.
pub fn clock_text(epoch_ms: u64) -> String {
    let day_ms = epoch_ms % 86_400_000;
    let s = day_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        day_ms % 1000
    )
}

/// The timeline in a JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineJson {
    /// Width of each interval, milliseconds.
    pub interval_ms: u64,
    /// Intervals where something happened, oldest first.
    pub intervals: Vec<IntervalJson>,
}

/// One interval in a JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalJson {
    /// Start, Unix epoch milliseconds.
    pub start_ms: u64,
    /// Counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// Latency of the messages accepted in the interval.
    pub latency_us: LatencyJson,
}

/// Maps the recorders' monotonic [`Tick`]s to Unix epoch time: taken once
/// per run, so every session of the run agrees on interval boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Epoch nanoseconds minus ticks (wrapping).
    offset_ns: u64,
    /// Interval width, milliseconds.
    width_ms: u64,
}

impl Clock {
    /// The mapping now, for intervals of `width_ms`.
    pub fn new(width_ms: u64) -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(0))
            .unwrap_or(0);
        Clock::at(wall, super::recorder::tick(), width_ms)
    }

    /// The mapping where tick `tick` is epoch nanosecond `wall_ns`.
    pub fn at(wall_ns: u64, tick: Tick, width_ms: u64) -> Clock {
        Clock {
            offset_ns: wall_ns.wrapping_sub(tick),
            width_ms: width_ms.max(1),
        }
    }

    /// Interval width, milliseconds.
    pub fn width_ms(&self) -> u64 {
        self.width_ms
    }
}

/// One session's timeline: the current interval live, the finished ones in
/// a [`Timeline`]. Touched only by its session.
#[derive(Debug)]
pub struct SessionTimeline {
    clock: Clock,
    /// The current interval, in ticks: `[from, to)`.
    from: Tick,
    to: Tick,
    start_ms: u64,
    counts: Counts,
    hist: SessionHist,
    done: Timeline,
}

impl SessionTimeline {
    /// A timeline whose current interval holds `now`.
    pub fn new(clock: Clock, now: Tick) -> SessionTimeline {
        let mut t = SessionTimeline {
            clock,
            from: 0,
            to: 0,
            start_ms: 0,
            counts: Counts::default(),
            hist: hist::new_session(),
            done: Timeline::new(clock.width_ms),
        };
        t.enter(now);
        t
    }

    /// Make the interval holding `now` current (its counters are zero).
    fn enter(&mut self, now: Tick) {
        let width_ns = self.done.width_ms.saturating_mul(1_000_000);
        let epoch = now.wrapping_add(self.clock.offset_ns);
        let start = epoch - epoch % width_ns;
        self.start_ms = start / 1_000_000;
        self.from = start.wrapping_sub(self.clock.offset_ns);
        self.to = self.from.saturating_add(width_ns);
    }

    /// Move the current interval into the finished ones.
    fn flush(&mut self) {
        if self.counts != Counts::default() || !self.hist.is_empty() {
            self.done.add(Interval {
                start_ms: self.start_ms,
                counts: self.counts,
                latency: Sparse::of(&self.hist),
            });
            self.counts = Counts::default();
            self.hist.reset();
        }
    }

    /// The counters of the interval holding `now` (a comparison unless the
    /// interval changes).
    #[inline]
    pub fn at(&mut self, now: Tick) -> &mut Counts {
        if now >= self.to || now < self.from {
            self.flush();
            self.enter(now);
        }
        &mut self.counts
    }

    /// The counters of the current interval (for events without a clock
    /// read of their own, such as bytes written right after a reply).
    #[inline]
    pub fn current(&mut self) -> &mut Counts {
        &mut self.counts
    }

    /// A message accepted at `now` took `us` microseconds.
    #[inline]
    pub fn accepted(&mut self, now: Tick, us: u64) {
        self.at(now).accepted += 1;
        hist::record(&mut self.hist, us);
    }

    /// The finished timeline (the current interval included).
    pub fn finish(mut self) -> Timeline {
        self.flush();
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn interval(start_ms: u64, attempted: u64, lat: &[u64]) -> Interval {
        let mut h = hist::new();
        for &v in lat {
            hist::record(&mut h, v);
        }
        Interval {
            start_ms,
            counts: Counts {
                attempted,
                accepted: lat.len() as u64,
                bytes: 100 * attempted,
                ..Counts::default()
            },
            latency: Sparse::of(&h),
        }
    }

    #[test]
    fn session_intervals_follow_the_epoch() {
        // Tick 5 s is epoch 1000.25 s: the first interval starts at 1000 s.
        let clock = Clock::at(1000 * SEC + SEC / 4, 5 * SEC, 1000);
        let mut t = SessionTimeline::new(clock, 5 * SEC);
        t.at(5 * SEC).attempted += 1;
        t.current().bytes += 10;
        t.accepted(5 * SEC + SEC / 2, 700); // epoch 1000.75
        t.at(5 * SEC + SEC * 3 / 4).attempted += 1; // epoch 1001.0: next
        t.at(8 * SEC).connects += 1; // epoch 1003.25
        let done = t.finish();
        let starts: Vec<u64> = done.intervals().iter().map(|i| i.start_ms).collect();
        assert_eq!(starts, [1_000_000, 1_001_000, 1_003_000]);
        let first = &done.intervals()[0];
        assert_eq!((first.counts.attempted, first.counts.accepted), (1, 1));
        assert_eq!(first.counts.bytes, 10);
        assert_eq!(first.latency.count(), 1);
        assert_eq!(done.intervals()[2].counts.connects, 1);
    }

    #[test]
    fn sparse_merge_is_exact() {
        let a = interval(0, 0, &[1, 5, 5, 900, 70_000]).latency;
        let b = interval(0, 0, &[5, 6, 70_000, 3_000_000]).latency;
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.count(), 9);
        let mut direct = hist::new();
        a.add_to(&mut direct);
        b.add_to(&mut direct);
        assert_eq!(m, Sparse::of(&direct));
        assert_eq!(hist::summary(&m.to_hist()), hist::summary(&direct));
    }

    #[test]
    fn a_very_long_run_stays_within_the_cap_and_keeps_its_totals() {
        // A day of one-second intervals, each with its own latencies.
        let mut t = Timeline::new(1000);
        let mut whole = hist::new();
        let mut expect = Counts::default();
        for s in 0..86_400u64 {
            let lat = [s % 997 + 1, 2_000 + s % 50_000];
            let iv = interval(1_700_000_000_000 + s * 1000, 3, &lat);
            expect.add(&iv.counts);
            iv.latency.add_to(&mut whole);
            t.add(iv);
            assert!(t.intervals().len() <= MAX_INTERVALS);
        }
        // 86400 s / 128 s = 675 intervals; 64 s would be 1350 > cap.
        assert_eq!(t.width_ms(), 128_000);
        assert!(t.intervals().len() > MAX_INTERVALS / 2);
        let (counts, values) = t.totals();
        assert_eq!(counts, expect);
        assert_eq!(values, 2 * 86_400);
        let merged = Timeline::merge_all(1, [&t]);
        let mut all = hist::new();
        for iv in merged.intervals() {
            iv.latency.add_to(&mut all);
        }
        assert_eq!(hist::summary(&all), hist::summary(&whole));
        for iv in t.intervals() {
            assert_eq!(iv.start_ms % t.width_ms(), 0, "epoch-aligned");
        }
    }

    #[test]
    fn coarsening_preserves_totals_exactly() {
        let mut t = Timeline::new(250);
        for i in 0..10 {
            t.add(interval(i * 250, i + 1, &[i * 10 + 1, 5]));
        }
        let before = t.totals();
        let lat_before = Timeline::merge_all(1 << 40, [&t]);
        t.coarsen();
        assert_eq!(t.width_ms(), 500);
        assert_eq!(t.intervals().len(), 5);
        assert_eq!(t.totals(), before);
        t.coarsen();
        assert_eq!(t.intervals().len(), 3);
        assert_eq!(t.totals(), before);
        let lat_after = Timeline::merge_all(1 << 40, [&t]);
        assert_eq!(lat_before.intervals(), lat_after.intervals());
    }

    #[test]
    fn merge_all_lines_up_by_epoch() {
        let mut a = Timeline::new(1000);
        a.add(interval(10_000, 2, &[100, 200]));
        a.add(interval(11_000, 1, &[300]));
        let mut b = Timeline::new(1000);
        b.add(interval(11_000, 4, &[100]));
        b.add(interval(13_000, 1, &[]));
        let m = Timeline::merge_all(1000, [&a, &b]);
        let got: Vec<(u64, u64, u64)> = m
            .intervals()
            .iter()
            .map(|i| (i.start_ms, i.counts.attempted, i.latency.count()))
            .collect();
        assert_eq!(got, [(10_000, 2, 2), (11_000, 5, 2), (13_000, 1, 0)]);
        // Different widths merge at their least common multiple.
        let mut c = Timeline::new(1500);
        c.add(interval(10_500, 1, &[9]));
        let m = Timeline::merge_all(1000, [&a, &c]);
        assert_eq!(m.width_ms(), 3000);
        assert_eq!(m.intervals()[0].start_ms, 9_000);
        assert_eq!(m.totals().0.attempted, 4);
    }

    #[test]
    fn json_round_trip_and_bad_input() {
        let mut t = Timeline::new(1000);
        t.add(interval(5_000, 2, &[100, 20_000]));
        t.add(interval(7_000, 1, &[]));
        let json = serde_json::to_string(&t.to_json()).expect("json");
        let v: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(v["intervals"][0]["attempted"], 2);
        assert_eq!(v["intervals"][0]["latency_us"]["count"], 2);
        let back: TimelineJson = serde_json::from_str(&json).expect("parse");
        assert_eq!(Timeline::from_json(&back).expect("timeline"), t);
        let mut bad = back.clone();
        bad.intervals[0].start_ms = 5_001;
        assert!(Timeline::from_json(&bad).is_err());
        let mut bad = back;
        bad.interval_ms = 0;
        assert!(Timeline::from_json(&bad).is_err());
    }

    #[test]
    fn table_rows() {
        let mut t = Timeline::new(1000);
        t.add(interval(3_723_000, 2, &[1500, 2500]));
        let text = t.render();
        assert!(
            text.starts_with("  timeline (1 s intervals, UTC)\n"),
            "{text}"
        );
        let row = text.lines().nth(2).expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "01:02:03.000",
                "2",
                "2",
                "0",
                "0",
                "0",
                "0",
                "200",
                "2.0",
                "1.500",
                "2.500",
                "2.500"
            ]
        );
        assert_eq!(interval_text(250), "250 ms");
        assert_eq!(interval_text(1500), "1.5 s");
    }

    #[test]
    fn memory_per_interval() {
        // Measured figures quoted in the module docs.
        let mut h = hist::new_session();
        for i in 0..1000u64 {
            hist::record(&mut h, 200 + (i * i * 37) % 50_000);
        }
        let iv = Interval {
            start_ms: 0,
            counts: Counts::default(),
            latency: Sparse::of(&h),
        };
        let mut full = hist::new();
        hist::add(&mut full, &h);
        let encoded = hist::encode(&full).len();
        let sparse = iv.latency.heap_bytes();
        eprintln!(
            "interval struct {} B, sparse histogram {} B ({} buckets), V2 base64 {} B, \
             full Histogram<u64> {} counts",
            std::mem::size_of::<Interval>(),
            sparse,
            iv.latency.0.len(),
            encoded,
            full.distinct_values()
        );
        assert!(std::mem::size_of::<Interval>() <= 96);
        assert_eq!(sparse, 16 * iv.latency.0.len());
        assert!(iv.latency.0.len() < 1000, "buckets merge close values");
        assert!(encoded < 4096);
        assert!(sparse < full.distinct_values() * 8, "sparse beats full");
    }
}
