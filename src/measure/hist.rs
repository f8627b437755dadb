//! Latency histograms: HdrHistogram in microseconds, with the V2 + base64
//! text form used in JSON reports so that reports from several machines can
//! be merged exactly (percentiles of a merge are not merges of percentiles).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::{Counter, Histogram};
use serde::{Deserialize, Serialize};

/// A latency histogram, values in microseconds (reports and merges).
pub type Hist = Histogram<u64>;

/// A session's own histogram: 32-bit counts halve its memory (a session
/// never records four billion values in one bucket; counts saturate).
pub type SessionHist = Histogram<u32>;

/// Significant decimal digits kept: 3 is HdrHistogram's usual setting (values
/// within 0.1 %), and what wrk2 and most load tools report with.
pub const SIGFIG: u8 = 3;

/// Longest latency recorded as is (one day); longer values are clamped so a
/// bogus clock can never make a histogram grow without bound.
pub const MAX_MICROS: u64 = 86_400_000_000;

/// An empty histogram that grows as larger values arrive (starting tiny:
/// a histogram that only sees sub-millisecond values stays a few KiB).
pub fn new() -> Hist {
    // Constant, valid arguments: sigfig 3 is within 0..=5.
    Histogram::new(SIGFIG).expect("sigfig 3 is valid")
}

/// An empty per-session histogram (see [`SessionHist`]).
pub fn new_session() -> SessionHist {
    Histogram::new(SIGFIG).expect("sigfig 3 is valid")
}

/// Whole microseconds of `d`, clamped to [`MAX_MICROS`].
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(MAX_MICROS)
        .min(MAX_MICROS)
}

/// Record one value (microseconds). Resizing is the only allocation and
/// happens only when a new maximum needs a larger range.
#[inline]
pub fn record<T: Counter>(h: &mut Histogram<T>, us: u64) {
    // Cannot fail: auto-resize is on and the value is clamped.
    let _ = h.record(us.min(MAX_MICROS));
}

/// Add `src` into `dst` (growing `dst` as needed), bucket by bucket: works
/// across counter types and across histograms of other precisions.
pub fn add<T: Counter>(dst: &mut Hist, src: &Histogram<T>) {
    for v in src.iter_recorded() {
        let _ = dst.record_n(
            v.value_iterated_to().min(MAX_MICROS),
            v.count_at_value().as_u64(),
        );
    }
}

/// The V2 serialization of `h`, base64 encoded (standard alphabet, padded),
/// as HdrHistogram's own tools write it.
pub fn encode(h: &Hist) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail; an error would mean a broken histogram.
    if V2Serializer::new().serialize(h, &mut bytes).is_err() {
        bytes.clear();
    }
    STANDARD.encode(bytes)
}

/// Longest encoded histogram accepted by [`decode`] (a full-range
/// microsecond histogram is far smaller than this).
pub const MAX_ENCODED: usize = 4 << 20;

/// Parse the output of [`encode`] (or any V2 / V2-deflate histogram in
/// base64) into a growable histogram.
pub fn decode(text: &str) -> Result<Hist, String> {
    if text.len() > MAX_ENCODED {
        return Err(format!("histogram longer than {MAX_ENCODED} bytes"));
    }
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("bad base64 histogram: {e}"))?;
    let decoded: Hist = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("bad HdrHistogram V2 data: {e:?}"))?;
    let mut out = new();
    add(&mut out, &decoded);
    Ok(out)
}

/// The numbers a report prints for one histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min: u64,
    /// Mean value.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

/// Percentiles of `h` (all zero when empty). Each value is the bottom of
/// its bucket, so a value recorded exactly (all values below 2048 µs, and
/// round ones above) prints as recorded; buckets are within 0.1 %.
pub fn summary<T: Counter>(h: &Histogram<T>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let at = |q: f64| h.lowest_equivalent(h.value_at_quantile(q));
    Summary {
        count: h.len(),
        min: h.lowest_equivalent(h.min()),
        mean: h.mean(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: h.lowest_equivalent(h.max()),
    }
}

/// One histogram in a JSON report (microseconds): the summary numbers for
/// readers, and the histogram itself (HdrHistogram V2, base64) for merges.
/// Used by the source's run report, its timeline and the sink's tracking
/// report alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyJson {
    /// Number of values.
    #[serde(default)]
    pub count: u64,
    /// Smallest value.
    #[serde(default)]
    pub min: u64,
    /// Mean value.
    #[serde(default)]
    pub mean: f64,
    /// Median.
    #[serde(default)]
    pub p50: u64,
    /// 90th percentile.
    #[serde(default)]
    pub p90: u64,
    /// 99th percentile.
    #[serde(default)]
    pub p99: u64,
    /// 99.9th percentile.
    #[serde(default)]
    pub p99_9: u64,
    /// Largest value.
    #[serde(default)]
    pub max: u64,
    /// HdrHistogram V2, base64: the data; the numbers above are derived
    /// (and ignored when a report is read back).
    pub hdr: String,
}

impl LatencyJson {
    /// The JSON form of `h`.
    pub fn of(h: &Hist) -> LatencyJson {
        let s = summary(h);
        LatencyJson {
            count: s.count,
            min: s.min,
            mean: s.mean,
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            p99_9: s.p999,
            max: s.max,
            hdr: encode(h),
        }
    }

    /// The histogram back (only `hdr` is read).
    pub fn histogram(&self) -> Result<Hist, String> {
        decode(&self.hdr)
    }
}

/// `us` microseconds as milliseconds with three decimals (`1.234`).
pub fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_clamps() {
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
        assert_eq!(micros(Duration::from_secs(2)), 2_000_000);
        assert_eq!(micros(Duration::MAX), MAX_MICROS);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new();
        for v in 1..=1000 {
            record(&mut h, v);
        }
        let s = summary(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert_eq!(s.max, 1000);
        assert_eq!(summary(&new()), Summary::default());
    }

    #[test]
    fn encode_decode_round_trip_and_merge() {
        let mut a = new();
        let mut b = new();
        for v in 0..500 {
            record(&mut a, 100 + v);
            record(&mut b, 50_000 + v * 10);
        }
        record(&mut b, MAX_MICROS + 5);
        let da = decode(&encode(&a)).expect("decode a");
        let db = decode(&encode(&b)).expect("decode b");
        assert_eq!(summary(&da), summary(&a));
        assert_eq!(summary(&db), summary(&b));
        let mut merged = new();
        add(&mut merged, &da);
        add(&mut merged, &db);
        let mut direct = new();
        add(&mut direct, &a);
        add(&mut direct, &b);
        assert_eq!(merged.len(), 1001);
        assert_eq!(summary(&merged), summary(&direct));
        // The median of the merge lies between the two populations.
        let p50 = merged.value_at_quantile(0.5);
        assert_eq!(summary(&merged).p50, merged.lowest_equivalent(p50));
        assert!(summary(&merged).p50 >= 599);
        // Empty histograms survive the trip.
        assert!(decode(&encode(&new())).expect("empty").is_empty());
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode("not base64!").is_err());
        assert!(decode(&STANDARD.encode(b"HISTxxxx")).is_err());
        assert!(decode("").is_err());
        assert!(decode(&"A".repeat(MAX_ENCODED + 1)).is_err());
    }

    #[test]
    fn ms_format() {
        assert_eq!(ms(0), "0.000");
        assert_eq!(ms(1_234), "1.234");
        assert_eq!(ms(12_000_001), "12000.001");
    }

    #[test]
    fn memory_stays_small_for_typical_latencies() {
        // A histogram's size follows its largest value, not its count.
        let mut h = new_session();
        for v in [30, 80, 2_000, 90_000] {
            record(&mut h, v);
        }
        assert!(h.distinct_values() <= 8 * 1024, "{}", h.distinct_values());
        let mut small = new_session();
        record(&mut small, 40);
        assert!(
            small.distinct_values() <= 2 * 1024,
            "{}",
            small.distinct_values()
        );
    }
}
