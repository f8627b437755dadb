//! End-to-end delivery tracking (`--track`).
//!
//! `smtp-source --track` stamps every message with three header fields:
//!
//! ```text
//! X-Smtpstone-Run: 3f9a0c2e51d4b786      (run id: 16 lowercase hex digits)
//! X-Smtpstone-Seq: 41                    (message number in the run, from 0)
//! X-Smtpstone-Sent: 1767225600123456     (send time, Unix epoch microseconds)
//! ```
//!
//! and `smtp-sink --track` recognises them in the header section of the
//! messages it receives (directly or relayed by an MTA), and accounts per run
//! id: messages received, duplicates, gaps (sequence numbers below the
//! highest one seen that never arrived) and the delivery latency, receive
//! time (end of data) minus the `Sent` stamp. The stamp is wall-clock time,
//! so across machines the latency includes their clock offset; a stamp in
//! the future is counted (`future_stamps`) and recorded as 0.
//!
//! [`HeaderScanner`] is sans-IO: the sink feeds it the raw DATA bytes in
//! whatever pieces they arrive; it looks at the header section only (up to
//! the first empty line, or [`MAX_HEADER_SCAN`] bytes), jumps from line end
//! to line end with `memchr`, and keeps at most one [`MAX_LINE`]-byte line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use memchr::memchr;
use serde::Serialize;

use super::hist::{self, Hist, LatencyJson};
use super::shard::Shard;
use crate::metrics::histogram::Counts;
use crate::metrics::sink::TrackReadings;

/// Header field carrying the run id.
pub const RUN_HEADER: &str = "X-Smtpstone-Run";
/// Header field carrying the message's sequence number in its run.
pub const SEQ_HEADER: &str = "X-Smtpstone-Seq";
/// Header field carrying the send time, Unix epoch microseconds.
pub const SENT_HEADER: &str = "X-Smtpstone-Sent";

/// Longest header line examined; ours are under 40 bytes, RFC 5322 §2.1.1
/// lines are at most 998. Longer lines are skipped without being kept.
pub const MAX_LINE: usize = 128;

/// Header bytes examined per message before giving up (an MTA adds a few
/// Received lines above ours; a message without an empty line after its
/// headers must not be scanned to the end).
pub const MAX_HEADER_SCAN: usize = 256 * 1024;

/// Distinct run ids a sink accounts for; messages of further runs are only
/// counted (`overflow`), so a peer cannot grow the sink's memory at will.
pub const MAX_RUNS: usize = 1024;

/// Sequence ranges kept per run: one per hole plus one. Beyond that,
/// numbers that would need a new range are counted as `untracked` (gaps and
/// duplicates then become lower bounds).
pub const MAX_RANGES: usize = 1 << 16;

/// Missing ranges listed in reports (the count of missing numbers is exact).
pub const MISSING_LISTED: usize = 20;

/// `format` value of the sink's JSON tracking report.
pub const FORMAT: &str = "smtpstone-track-report/1";

/// Now, Unix epoch microseconds.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A run id as printed and stamped: 16 lowercase hex digits.
pub fn run_id_text(run: u64) -> String {
    format!("{run:016x}")
}

/// The source side: stamps messages of one run.
#[derive(Debug)]
pub struct Stamper {
    run: u64,
    next: AtomicU64,
    /// This process's part of the run (`0/1` unless `--shard`).
    shard: Shard,
}

impl Stamper {
    /// A stamper for run `run` (a random id: [`rand::random`]).
    pub fn new(run: u64) -> Stamper {
        Stamper {
            run,
            next: AtomicU64::new(0),
            shard: Shard { index: 0, count: 1 },
        }
    }

    /// A stamper of `shard`'s messages: its `k`-th message carries the
    /// run's number `I + kN` (see [`Shard::global`]).
    pub fn sharded(mut self, shard: Shard) -> Stamper {
        self.shard = shard;
        self
    }

    /// The run id.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Messages stamped so far.
    pub fn stamped(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Append the three header lines of the next message, sent at
    /// `sent_us` (Unix microseconds); returns its sequence number (its
    /// number in the run). No allocation beyond `out`'s growth.
    pub fn write(&self, out: &mut BytesMut, sent_us: u64) -> u64 {
        let seq = self.shard.global(self.next.fetch_add(1, Ordering::Relaxed));
        let _ = write!(
            out,
            "{RUN_HEADER}: {:016x}\r\n{SEQ_HEADER}: {seq}\r\n{SENT_HEADER}: {sent_us}\r\n",
            self.run
        );
        seq
    }
}

/// The tracking fields of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Run id.
    pub run: u64,
    /// Sequence number.
    pub seq: u64,
    /// Send time, Unix microseconds.
    pub sent_us: u64,
}

/// Finds the tracking fields in a message's header section, fed in pieces.
#[derive(Debug, Clone)]
pub struct HeaderScanner {
    line: [u8; MAX_LINE],
    len: usize,
    /// The current line is longer than [`MAX_LINE`]: not ours, skipped.
    long: bool,
    scanned: usize,
    done: bool,
    run: Option<u64>,
    seq: Option<u64>,
    sent: Option<u64>,
}

impl Default for HeaderScanner {
    fn default() -> Self {
        HeaderScanner::new()
    }
}

/// Field name match, ASCII case-insensitive (RFC 5322 §1.2.2).
fn field<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let n = name.len();
    if line.len() > n && line[n] == b':' && line[..n].eq_ignore_ascii_case(name.as_bytes()) {
        let value = &line[n + 1..];
        let start = value
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(start, |e| e + 1);
        Some(&value[start..end.max(start)])
    } else {
        None
    }
}

fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn parse_hex(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 16 || !v.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(v).ok()?, 16).ok()
}

impl HeaderScanner {
    /// A scanner at the start of a message.
    pub fn new() -> HeaderScanner {
        HeaderScanner {
            line: [0; MAX_LINE],
            len: 0,
            long: false,
            scanned: 0,
            done: false,
            run: None,
            seq: None,
            sent: None,
        }
    }

    /// Start over for the next message.
    pub fn reset(&mut self) {
        self.len = 0;
        self.long = false;
        self.scanned = 0;
        self.done = false;
        self.run = None;
        self.seq = None;
        self.sent = None;
    }

    /// Nothing more to look at in this message (header section over, all
    /// fields found, or the scan limit reached): feeding is a no-op.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The tracking fields, when all three were found.
    pub fn tag(&self) -> Option<Tag> {
        Some(Tag {
            run: self.run?,
            seq: self.seq?,
            sent_us: self.sent?,
        })
    }

    /// Feed the next piece of DATA content (raw wire bytes).
    pub fn feed(&mut self, mut data: &[u8]) {
        while !self.done && !data.is_empty() {
            let (piece, complete) = match memchr(b'\n', data) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            if !self.long {
                if self.len + piece.len() <= MAX_LINE {
                    self.line[self.len..self.len + piece.len()].copy_from_slice(piece);
                    self.len += piece.len();
                } else {
                    self.long = true;
                }
            }
            let used = piece.len() + usize::from(complete);
            self.scanned += used;
            data = &data[used..];
            if complete {
                self.end_line();
            }
            if self.scanned >= MAX_HEADER_SCAN {
                self.done = true;
            }
        }
    }

    fn end_line(&mut self) {
        if !self.long {
            let mut line = &self.line[..self.len];
            while let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                // RFC 5322 §2.1: the empty line ends the header section.
                self.done = true;
            } else if self.run.is_none() && field(line, RUN_HEADER).is_some() {
                self.run = field(line, RUN_HEADER).and_then(parse_hex);
            } else if self.seq.is_none() && field(line, SEQ_HEADER).is_some() {
                self.seq = field(line, SEQ_HEADER).and_then(parse_dec);
            } else if self.sent.is_none() && field(line, SENT_HEADER).is_some() {
                self.sent = field(line, SENT_HEADER).and_then(parse_dec);
            }
        }
        self.len = 0;
        self.long = false;
        if self.tag().is_some() {
            self.done = true;
        }
    }
}

/// What inserting a sequence number found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First arrival.
    New,
    /// Arrived before.
    Duplicate,
    /// Not recorded: the range limit was reached.
    Untracked,
}

/// The set of sequence numbers seen, as disjoint ranges `start..end`.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    ranges: BTreeMap<u64, u64>,
    distinct: u64,
}

impl SeqSet {
    /// Record `seq`.
    pub fn insert(&mut self, seq: u64) -> Seen {
        // Ranges are half-open, so the very last number has no room.
        let Some(end_of_seq) = seq.checked_add(1) else {
            return Seen::Untracked;
        };
        let below = self.ranges.range(..=seq).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, e)) = below {
            if seq < e {
                return Seen::Duplicate;
            }
        }
        let above = self.ranges.get(&end_of_seq).copied();
        match (below.filter(|&(_, e)| e == seq), above) {
            (Some((s, _)), Some(next_end)) => {
                // Fills the hole between two ranges.
                self.ranges.remove(&end_of_seq);
                self.ranges.insert(s, next_end);
            }
            (Some((s, _)), None) => {
                self.ranges.insert(s, end_of_seq);
            }
            (None, Some(next_end)) => {
                self.ranges.remove(&end_of_seq);
                self.ranges.insert(seq, next_end);
            }
            (None, None) => {
                if self.ranges.len() >= MAX_RANGES {
                    return Seen::Untracked;
                }
                self.ranges.insert(seq, end_of_seq);
            }
        }
        self.distinct += 1;
        Seen::New
    }

    /// Distinct numbers seen.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The highest number seen.
    pub fn highest(&self) -> Option<u64> {
        self.ranges.values().next_back().map(|&e| e - 1)
    }

    /// Numbers from 0 to the highest seen that are missing.
    pub fn missing(&self) -> u64 {
        self.highest().map_or(0, |h| h + 1 - self.distinct)
    }

    /// The first `limit` missing ranges, inclusive `(first, last)`.
    pub fn missing_ranges(&self, limit: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 0u64;
        for (&s, &e) in &self.ranges {
            if out.len() == limit {
                break;
            }
            if s > next {
                out.push((next, s - 1));
            }
            next = e;
        }
        out
    }
}

/// The tally of one run id.
#[derive(Debug, Clone)]
pub struct RunTally {
    /// Messages received (duplicates included).
    pub received: u64,
    /// Arrivals of a number already seen.
    pub duplicates: u64,
    /// Arrivals not recorded in the sequence set (range limit).
    pub untracked: u64,
    /// Stamps later than the receive time (clock offset).
    pub future_stamps: u64,
    /// Sequence numbers seen.
    pub seqs: SeqSet,
    /// Delivery latency of first arrivals, microseconds.
    pub latency: Hist,
    /// Receive times (epoch microseconds) of the earliest and the latest
    /// first arrival: how long the run's messages took to come in, which
    /// `--find-max --sink-url` turns into a delivery rate.
    pub arrivals: Option<(u64, u64)>,
}

impl Default for RunTally {
    fn default() -> Self {
        RunTally {
            received: 0,
            duplicates: 0,
            untracked: 0,
            future_stamps: 0,
            seqs: SeqSet::default(),
            latency: hist::new(),
            arrivals: None,
        }
    }
}

impl RunTally {
    /// Account one message received at `recv_us`; returns the delivery
    /// latency recorded (none for a duplicate).
    pub fn record(&mut self, seq: u64, sent_us: u64, recv_us: u64) -> Option<u64> {
        self.received += 1;
        match self.seqs.insert(seq) {
            Seen::Duplicate => {
                self.duplicates += 1;
                return None;
            }
            Seen::Untracked => self.untracked += 1,
            Seen::New => {}
        }
        let latency = match recv_us.checked_sub(sent_us) {
            Some(us) => us,
            None => {
                self.future_stamps += 1;
                0
            }
        };
        hist::record(&mut self.latency, latency);
        self.arrivals = Some(match self.arrivals {
            Some((first, last)) => (first.min(recv_us), last.max(recv_us)),
            None => (recv_us, recv_us),
        });
        Some(latency)
    }
}

/// The sink's tracking state (behind one lock, taken once per message).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Per run id.
    pub runs: BTreeMap<u64, RunTally>,
    /// Messages received in all.
    pub messages: u64,
    /// Messages without (complete, valid) tracking headers.
    pub untagged: u64,
    /// Tagged messages of runs beyond [`MAX_RUNS`].
    pub overflow: u64,
    /// `--metrics`: delivery latencies of all runs in the fixed buckets of
    /// the Prometheus histogram (counted as they arrive: re-bucketing up
    /// to [`MAX_RUNS`] HdrHistograms at every scrape would cost more).
    pub buckets: Option<Counts>,
}

impl Tracker {
    /// A tracker with nothing received.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Account one received message.
    pub fn record(&mut self, tag: Option<Tag>, recv_us: u64) {
        self.messages += 1;
        let Some(tag) = tag else {
            self.untagged += 1;
            return;
        };
        if !self.runs.contains_key(&tag.run) && self.runs.len() >= MAX_RUNS {
            self.overflow += 1;
            return;
        }
        let latency = self
            .runs
            .entry(tag.run)
            .or_default()
            .record(tag.seq, tag.sent_us, recv_us);
        if let (Some(b), Some(us)) = (&mut self.buckets, latency) {
            b.record(us);
        }
    }

    /// The sums over all runs that `/metrics` shows (a scrape takes the
    /// lock once; up to [`MAX_RUNS`] additions).
    pub fn readings(&self) -> TrackReadings {
        TrackReadings {
            received: self.messages - self.untagged,
            duplicates: self.runs.values().map(|t| t.duplicates).sum(),
            gaps: self.runs.values().map(|t| t.seqs.missing()).sum(),
            latency: self.buckets.unwrap_or_default(),
        }
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "smtp-sink tracking report: {} messages, {} without tracking headers",
            self.messages, self.untagged
        );
        if self.overflow > 0 {
            let _ = writeln!(
                out,
                "  {} messages of further runs not accounted (more than {MAX_RUNS} runs)",
                self.overflow
            );
        }
        for (&run, t) in &self.runs {
            let highest = t
                .seqs
                .highest()
                .map_or_else(|| "-".to_string(), |h| h.to_string());
            let _ = writeln!(
                out,
                "  run {}: received {}, distinct {}, duplicates {}, gaps {}, highest seq {}",
                run_id_text(run),
                t.received,
                t.seqs.distinct(),
                t.duplicates,
                t.seqs.missing(),
                highest
            );
            let s = hist::summary(&t.latency);
            let _ = writeln!(
                out,
                "    delivery latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
                hist::ms(s.p50),
                hist::ms(s.p90),
                hist::ms(s.p99),
                hist::ms(s.p999),
                hist::ms(s.max)
            );
            let missing = t.seqs.missing_ranges(MISSING_LISTED);
            if !missing.is_empty() {
                let list: Vec<String> = missing
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                let more = if missing.len() == MISSING_LISTED {
                    ", ..."
                } else {
                    ""
                };
                let _ = writeln!(out, "    missing: {}{more}", list.join(", "));
            }
            if t.future_stamps > 0 {
                let _ = writeln!(
                    out,
                    "    {} messages stamped in the future (clock offset; counted as 0 ms)",
                    t.future_stamps
                );
            }
            if t.untracked > 0 {
                let _ = writeln!(
                    out,
                    "    {} sequence numbers not tracked (more than {MAX_RANGES} holes)",
                    t.untracked
                );
            }
        }
        out
    }

    /// The JSON report (pretty-printed, ends in `\n`).
    pub fn to_json(&self) -> String {
        let runs = self
            .runs
            .iter()
            .map(|(&run, t)| {
                let missing = t.seqs.missing_ranges(MISSING_LISTED);
                RunJson {
                    run_id: run_id_text(run),
                    received: t.received,
                    distinct: t.seqs.distinct(),
                    duplicates: t.duplicates,
                    gaps: t.seqs.missing(),
                    highest_seq: t.seqs.highest(),
                    missing_truncated: missing.len() == MISSING_LISTED,
                    missing,
                    future_stamps: t.future_stamps,
                    untracked: t.untracked,
                    latency_us: LatencyJson::of(&t.latency),
                    first_received_us: t.arrivals.map(|a| a.0),
                    last_received_us: t.arrivals.map(|a| a.1),
                }
            })
            .collect();
        let json = TrackJson {
            format: FORMAT,
            tool: "smtp-sink",
            messages: self.messages,
            untagged: self.untagged,
            overflow: self.overflow,
            runs,
        };
        let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[derive(Serialize)]
struct RunJson {
    run_id: String,
    received: u64,
    distinct: u64,
    duplicates: u64,
    gaps: u64,
    highest_seq: Option<u64>,
    missing: Vec<(u64, u64)>,
    missing_truncated: bool,
    future_stamps: u64,
    untracked: u64,
    latency_us: LatencyJson,
    first_received_us: Option<u64>,
    last_received_us: Option<u64>,
}

#[derive(Serialize)]
struct TrackJson {
    format: &'static str,
    tool: &'static str,
    messages: u64,
    untagged: u64,
    overflow: u64,
    runs: Vec<RunJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(run: u64, seqs: std::ops::Range<u64>, sent: u64) -> Vec<u8> {
        let s = Stamper::new(run);
        let mut out = BytesMut::new();
        for _ in 0..seqs.start {
            s.write(&mut BytesMut::new(), 0);
        }
        out.extend_from_slice(b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n");
        assert_eq!(s.write(&mut out, sent), seqs.start);
        out.extend_from_slice(b"Subject: hi\r\n\r\nbody line\r\n");
        out.to_vec()
    }

    /// Feed `msg` whole, in pieces of every size 1..=7, and one byte at a
    /// time; all must agree.
    fn scan_all_ways(msg: &[u8]) -> Option<Tag> {
        let mut whole = HeaderScanner::new();
        whole.feed(msg);
        let want = whole.tag();
        for size in 1..=7 {
            let mut s = HeaderScanner::new();
            for piece in msg.chunks(size) {
                s.feed(piece);
            }
            assert_eq!(s.tag(), want, "pieces of {size}");
        }
        let mut bytewise = HeaderScanner::new();
        for b in msg {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert_eq!(bytewise.tag(), want, "one byte at a time");
        want
    }

    #[test]
    fn stamper_writes_documented_headers() {
        let s = Stamper::new(0x3f9a_0c2e_51d4_b786);
        let mut out = BytesMut::new();
        assert_eq!(s.write(&mut out, 1_767_225_600_123_456), 0);
        assert_eq!(s.write(&mut out, 7), 1);
        assert_eq!(
            &out[..],
            &b"X-Smtpstone-Run: 3f9a0c2e51d4b786\r\nX-Smtpstone-Seq: 0\r\nX-Smtpstone-Sent: 1767225600123456\r\n\
X-Smtpstone-Run: 3f9a0c2e51d4b786\r\nX-Smtpstone-Seq: 1\r\nX-Smtpstone-Sent: 7\r\n"[..]
        );
        assert_eq!(s.stamped(), 2);
        assert_eq!(run_id_text(0xab), "00000000000000ab");
    }

    #[test]
    fn a_shard_stamps_its_numbers_in_the_run() {
        let s = Stamper::new(1).sharded(Shard { index: 2, count: 3 });
        let seqs: Vec<u64> = (0..4).map(|_| s.write(&mut BytesMut::new(), 0)).collect();
        assert_eq!(seqs, [2, 5, 8, 11]);
        assert_eq!(s.stamped(), 4);
        let mut out = BytesMut::new();
        s.write(&mut out, 9);
        assert!(out.starts_with(b"X-Smtpstone-Run: 0000000000000001\r\nX-Smtpstone-Seq: 14\r\n"));
    }

    #[test]
    fn scanner_finds_the_tag_however_the_data_is_split() {
        let msg = stamped(0xabc, 5..6, 1234);
        assert_eq!(
            scan_all_ways(&msg),
            Some(Tag {
                run: 0xabc,
                seq: 5,
                sent_us: 1234
            })
        );
    }

    #[test]
    fn scanner_table() {
        let full = "X-Smtpstone-Run: 00ff\r\nX-Smtpstone-Seq: 9\r\nX-Smtpstone-Sent: 77\r\n";
        let tag = Some(Tag {
            run: 0xff,
            seq: 9,
            sent_us: 77,
        });
        let long = format!("X-Long: {}\r\n", "a".repeat(MAX_LINE * 3));
        let cases: Vec<(String, Option<Tag>)> =
            vec![
            (format!("{full}\r\nbody"), tag),
            // Case-insensitive names, blanks around values, bare LF, CRs.
            (
                "x-smtpstone-run:\t00FF \nX-SMTPSTONE-SEQ:9\r\r\nx-Smtpstone-sent:   77\t\r\n\r\n"
                    .to_string(),
                tag,
            ),
            // After a long line (skipped, not kept).
            (format!("{long}{full}\r\n"), tag),
            // In the body: not ours.
            (format!("Subject: x\r\n\r\n{full}"), None),
            // Missing one field.
            (
                "X-Smtpstone-Run: 1\r\nX-Smtpstone-Seq: 2\r\n\r\nX-Smtpstone-Sent: 3\r\n"
                    .to_string(),
                None,
            ),
            // Bad values.
            (full.replace("00ff", "xyz"), None),
            (full.replace("00ff", "11112222333344445"), None),
            (full.replace(": 9", ": -9"), None),
            (full.replace(": 77", ": 7 7"), None),
            (full.replace(": 9", ": 99999999999999999999999"), None),
            // Not a field of that name.
            (full.replace("X-Smtpstone-Run:", "X-Smtpstone-Runs:"), None),
            // First occurrence wins.
            (format!("X-Smtpstone-Seq: 1\r\n{full}\r\n"), tag.map(|t| Tag { seq: 1, ..t })),
            (String::new(), None),
        ];
        for (msg, want) in cases {
            assert_eq!(scan_all_ways(msg.as_bytes()), want, "{msg:?}");
        }
    }

    #[test]
    fn scanner_stops_at_the_limit_and_resets() {
        let mut s = HeaderScanner::new();
        let filler =
            "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(MAX_HEADER_SCAN / 30);
        s.feed(filler.as_bytes());
        assert!(s.is_done());
        s.feed(b"X-Smtpstone-Run: 1\r\nX-Smtpstone-Seq: 2\r\nX-Smtpstone-Sent: 3\r\n");
        assert_eq!(s.tag(), None);
        s.reset();
        assert!(!s.is_done());
        s.feed(b"X-Smtpstone-Run: 1\r\nX-Smtpstone-Seq: 2\r\nX-Smtpstone-Sent: 3\r\n");
        assert!(s.is_done(), "all fields found: done before the empty line");
        assert_eq!(
            s.tag(),
            Some(Tag {
                run: 1,
                seq: 2,
                sent_us: 3
            })
        );
    }

    #[test]
    fn seqset_in_order_out_of_order_duplicates_and_gaps() {
        let mut s = SeqSet::default();
        assert_eq!(s.highest(), None);
        assert_eq!(s.missing(), 0);
        for n in [0, 1, 2] {
            assert_eq!(s.insert(n), Seen::New);
        }
        assert_eq!(s.insert(1), Seen::Duplicate);
        assert_eq!(s.insert(6), Seen::New);
        assert_eq!(s.insert(9), Seen::New);
        // 0-2, 6, 9: missing 3-5, 7-8.
        assert_eq!(s.missing(), 5);
        assert_eq!(s.missing_ranges(10), [(3, 5), (7, 8)]);
        assert_eq!(s.missing_ranges(1), [(3, 5)]);
        // Fill in out of order; ranges join.
        for n in [4, 8, 3, 5, 7] {
            assert_eq!(s.insert(n), Seen::New, "{n}");
        }
        assert_eq!(s.missing(), 0);
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.insert(9), Seen::Duplicate);
        assert_eq!(s.insert(0), Seen::Duplicate);
        assert_eq!(s.distinct(), 10);
        // Missing at the start.
        let mut late = SeqSet::default();
        late.insert(3);
        assert_eq!(late.missing_ranges(5), [(0, 2)]);
        assert_eq!(late.missing(), 3);
        assert_eq!(late.insert(u64::MAX), Seen::Untracked);
        assert_eq!(late.insert(u64::MAX - 1), Seen::New);
        assert_eq!(late.insert(u64::MAX - 1), Seen::Duplicate);
    }

    #[test]
    fn seqset_is_bounded() {
        let mut s = SeqSet::default();
        for k in 0..MAX_RANGES as u64 {
            assert_eq!(s.insert(2 * k), Seen::New);
        }
        assert_eq!(s.insert(10 * MAX_RANGES as u64), Seen::Untracked);
        // Joining existing ranges still works at the limit.
        assert_eq!(s.insert(1), Seen::New);
        assert_eq!(s.ranges.len(), MAX_RANGES - 1);
    }

    #[test]
    fn tracker_arithmetic() {
        let mut t = Tracker::new();
        let tag = |run, seq, sent_us| Some(Tag { run, seq, sent_us });
        // Run 1: 0..10 minus 4 and 7, 2 arrives twice, latency = seq ms.
        for seq in (0..10).filter(|s| *s != 4 && *s != 7) {
            t.record(tag(1, seq, 1_000_000), 1_000_000 + seq * 1000);
        }
        t.record(tag(1, 2, 1_000_000), 9_999_999);
        // Run 2: stamped in the future.
        t.record(tag(2, 0, 5_000), 4_000);
        t.record(None, 1);
        assert_eq!((t.messages, t.untagged), (11, 1));
        let r1 = &t.runs[&1];
        assert_eq!((r1.received, r1.duplicates), (9, 1));
        assert_eq!((r1.seqs.distinct(), r1.seqs.missing()), (8, 2));
        let s = hist::summary(&r1.latency);
        assert_eq!((s.count, s.min, s.max), (8, 0, 9000));
        // First arrivals only: the late duplicate does not stretch it.
        assert_eq!(r1.arrivals, Some((1_000_000, 1_009_000)));
        let r2 = &t.runs[&2];
        assert_eq!((r2.future_stamps, r2.latency.len()), (1, 1));
        let r = t.readings();
        assert_eq!((r.received, r.duplicates, r.gaps), (10, 1, 2));
        assert_eq!(r.latency.count(), 0, "no buckets without --metrics");

        let text = t.render();
        assert!(text
            .starts_with("smtp-sink tracking report: 11 messages, 1 without tracking headers\n"));
        assert!(
            text.contains(
                "  run 0000000000000001: received 9, distinct 8, duplicates 1, gaps 2, highest seq 9\n"
            ),
            "{text}"
        );
        assert!(text.contains("    missing: 4, 7\n"), "{text}");
        assert!(
            text.contains("    1 messages stamped in the future"),
            "{text}"
        );

        let json: serde_json::Value = serde_json::from_str(&t.to_json()).expect("json");
        assert_eq!(json["format"], FORMAT);
        assert_eq!(json["messages"], 11);
        let run = &json["runs"][0];
        assert_eq!(run["run_id"], "0000000000000001");
        assert_eq!(run["gaps"], 2);
        assert_eq!(run["duplicates"], 1);
        assert_eq!(run["missing"], serde_json::json!([[4, 4], [7, 7]]));
        assert_eq!(run["latency_us"]["max"], 9000);
        assert_eq!(run["first_received_us"], 1_000_000);
        assert_eq!(run["last_received_us"], 1_009_000);
        let hdr = run["latency_us"]["hdr"].as_str().expect("hdr");
        assert_eq!(hist::decode(hdr).expect("decode").len(), 8);
    }

    #[test]
    fn tracker_buckets_first_arrivals_for_metrics() {
        let mut t = Tracker {
            buckets: Some(Counts::default()),
            ..Tracker::new()
        };
        let tag = |seq| {
            Some(Tag {
                run: 7,
                seq,
                sent_us: 1_000_000,
            })
        };
        t.record(tag(0), 1_000_400);
        t.record(tag(1), 3_000_000);
        t.record(tag(1), 9_000_000);
        t.record(None, 0);
        let r = t.readings();
        assert_eq!((r.received, r.duplicates, r.gaps), (3, 1, 0));
        assert_eq!(r.latency.count(), 2, "duplicates are not latencies");
        assert_eq!(r.latency.sum_us, 2_000_400);
    }

    #[test]
    fn tracker_bounds_runs() {
        let mut t = Tracker::new();
        for run in 0..MAX_RUNS as u64 + 5 {
            t.record(
                Some(Tag {
                    run,
                    seq: 0,
                    sent_us: 0,
                }),
                0,
            );
        }
        assert_eq!(t.runs.len(), MAX_RUNS);
        assert_eq!(t.overflow, 5);
        t.record(
            Some(Tag {
                run: 0,
                seq: 1,
                sent_us: 0,
            }),
            0,
        );
        assert_eq!(t.runs[&0].received, 2);
    }
}
