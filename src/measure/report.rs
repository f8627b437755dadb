//! The smtp-source run report: built from the session recorders, printed
//! for humans (`--report`, on stderr), written and read as JSON (`--json`,
//! `--merge`).
//!
//! Counters add up and histograms merge exactly across reports (the JSON
//! carries every histogram as HdrHistogram V2 + base64), so the report of
//! several machines' runs is the report of one big run. When merging,
//! `elapsed` runs from the earliest start to the latest end (runs on several
//! machines overlap in time; reports without start and end times fall back
//! to the longest run), so msg/s and MB/s are the combined throughput. The
//! shards of one run (`--shard`) merge into the report of that run; the
//! checks before merging are in [`super::shard::select`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::hist::{self, Hist, LatencyJson};
use super::recorder::{Counters, Phase, Recorder};
use super::search::output::SearchJson;
use super::shard::ShardSet;
use super::timeline::{clock_text, Timeline, TimelineJson};

/// `format` value of a JSON report; bumped on incompatible changes.
pub const FORMAT: &str = "smtpstone-source-report/1";

/// Bytes in a megabyte for MB/s (SI, as network throughput is usually given).
const MB: f64 = 1_000_000.0;

/// Longest JSON report read by [`Report::from_json`].
pub const MAX_JSON: usize = 64 << 20;

/// What the whole run (or several merged runs) measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// `SMTP`, `LMTP` or `mixed` (merged runs of both).
    pub protocol: String,
    /// Run ids (the `--track` id of each run, or a random id).
    pub run_ids: Vec<String>,
    /// Number of runs in this report (1 unless merged).
    pub runs: u64,
    /// A run ended by a fatal error before all its messages were done.
    pub incomplete: bool,
    /// Wall time of the run (from the earliest start to the latest end,
    /// when merged).
    pub elapsed: Duration,
    /// When the load started, Unix epoch microseconds (the earliest start,
    /// when merged); `None` in reports written before it was recorded.
    pub start_us: Option<u64>,
    /// When the run ended, Unix epoch microseconds (the latest end).
    pub end_us: Option<u64>,
    /// The shards of the run this report covers (`--shard`).
    pub shards: Option<ShardSet>,
    /// `--rate` target in messages per second (summed when merged).
    pub target_rate: Option<f64>,
    /// Counters.
    pub counters: Counters,
    /// Reply codes per phase: code → count.
    pub replies: [BTreeMap<u16, u64>; Phase::COUNT],
    /// Replies per phase beyond the recorder's code slots.
    pub other_replies: [u64; Phase::COUNT],
    /// Latency per phase, microseconds.
    pub latency: [Hist; Phase::COUNT],
    /// TLS handshakes by negotiated `VERSION SUITE` (rustls names).
    pub tls: BTreeMap<String, u64>,
    /// Per-interval counts and message latency (`--json`, `--html`,
    /// `--report=timeline`).
    pub timeline: Option<Timeline>,
    /// The command line of each run (secrets masked), for the settings
    /// shown by `--html`.
    pub commands: Vec<String>,
    /// `--find-max`: every step of the capacity search and its outcome.
    pub search: Option<SearchJson>,
}

/// `VERSION SUITE` of a TLS handshake from IANA code points, in rustls's
/// names (`TLSv1_3 TLS13_AES_256_GCM_SHA384`).
pub fn tls_name(version: u16, suite: u16) -> String {
    format!(
        "{:?} {:?}",
        rustls::ProtocolVersion::from(version),
        rustls::CipherSuite::from(suite)
    )
}

impl Report {
    /// An empty report of one run.
    pub fn new(lmtp: bool, run_id: String, target_rate: Option<f64>) -> Report {
        Report {
            protocol: if lmtp { "LMTP" } else { "SMTP" }.to_string(),
            run_ids: vec![run_id],
            runs: 1,
            incomplete: false,
            elapsed: Duration::ZERO,
            start_us: None,
            end_us: None,
            shards: None,
            target_rate,
            counters: Counters::default(),
            replies: Default::default(),
            other_replies: [0; Phase::COUNT],
            latency: std::array::from_fn(|_| hist::new()),
            tls: BTreeMap::new(),
            timeline: None,
            commands: Vec::new(),
            search: None,
        }
    }

    /// Add one session's measurements.
    pub fn add_recorder(&mut self, rec: &Recorder) {
        self.counters.add(&rec.counters);
        for &(version, suite, n) in rec.tls.pairs() {
            *self.tls.entry(tls_name(version, suite)).or_default() += n;
        }
        if rec.tls.other > 0 {
            *self.tls.entry("other".to_string()).or_default() += rec.tls.other;
        }
        for phase in Phase::ALL {
            let i = phase.index();
            for &(code, n) in rec.replies[i].codes() {
                *self.replies[i].entry(code).or_default() += n;
            }
            self.other_replies[i] += rec.replies[i].other;
            if let Some(h) = rec.latency(phase) {
                hist::add(&mut self.latency[i], h);
            }
        }
    }

    /// The run started at `start_us` (Unix epoch microseconds) and lasted
    /// `elapsed`: record its start and end times.
    pub fn set_times(&mut self, start_us: u64, elapsed: Duration) {
        self.elapsed = elapsed;
        self.start_us = Some(start_us);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.end_us = Some(start_us.saturating_add(us));
    }

    /// Merge another run's report into this one (shards of one run, or
    /// independent runs; [`super::shard::select`] decides which may be).
    pub fn merge(&mut self, other: &Report) {
        if self.protocol != other.protocol {
            self.protocol = "mixed".to_string();
        }
        for id in &other.run_ids {
            if !self.run_ids.contains(id) {
                self.run_ids.push(id.clone());
            }
        }
        self.runs += other.runs;
        self.incomplete |= other.incomplete;
        self.merge_times(other);
        self.shards = match (self.shards.take(), &other.shards) {
            (Some(mut a), Some(b)) if a.count == b.count => {
                a.add(b);
                Some(a)
            }
            _ => None,
        };
        self.target_rate = match (self.target_rate, other.target_rate) {
            // Rounded to a millionth, so that N shares of R add up to R.
            (Some(a), Some(b)) => Some(((a + b) * 1e6).round() / 1e6),
            (a, b) => a.or(b),
        };
        self.counters.add(&other.counters);
        self.commands.extend(other.commands.iter().cloned());
        if self.search.is_none() {
            self.search.clone_from(&other.search);
        }
        self.timeline = match (&self.timeline, &other.timeline) {
            (Some(a), Some(b)) => Some(Timeline::merge_all(a.width_ms(), [a, b])),
            (a, b) => a.as_ref().or(b.as_ref()).cloned(),
        };
        for (name, &n) in &other.tls {
            *self.tls.entry(name.clone()).or_default() += n;
        }
        for i in 0..Phase::COUNT {
            for (&code, &n) in &other.replies[i] {
                *self.replies[i].entry(code).or_default() += n;
            }
            self.other_replies[i] += other.other_replies[i];
            hist::add(&mut self.latency[i], &other.latency[i]);
        }
    }

    /// Elapsed time from the earliest start to the latest end when both
    /// reports have them, else the longer run.
    fn merge_times(&mut self, other: &Report) {
        let times = (self.start_us, self.end_us, other.start_us, other.end_us);
        if let (Some(s1), Some(e1), Some(s2), Some(e2)) = times {
            let (start, end) = (s1.min(s2), e1.max(e2));
            self.start_us = Some(start);
            self.end_us = Some(end);
            self.elapsed = Duration::from_micros(end.saturating_sub(start));
        } else {
            self.start_us = None;
            self.end_us = None;
            self.elapsed = self.elapsed.max(other.elapsed);
        }
    }

    fn per_sec(&self, amount: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            amount / secs
        } else {
            0.0
        }
    }

    /// Accepted messages per second of wall time.
    pub fn msgs_per_sec(&self) -> f64 {
        self.per_sec(self.counters.accepted as f64)
    }

    /// Megabytes (10^6) sent per second of wall time.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.counters.bytes_sent as f64 / MB)
    }

    /// The human-readable report (several lines, each ending in `\n`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_totals(&mut out);
        self.render_replies(&mut out);
        self.render_latency(&mut out);
        out
    }

    /// The run, its time, counts and throughput (and TLS) lines.
    fn render_totals(&self, out: &mut String) {
        let c = &self.counters;
        let runs = match &self.shards {
            Some(set) => format!("run {}, {}", self.run_ids.join(", "), set.text()),
            None if self.runs == 1 => format!("run {}", self.run_ids.join(", ")),
            None => format!("{} runs ({})", self.runs, self.run_ids.join(", ")),
        };
        let _ = writeln!(out, "smtp-source report: {runs}, {}", self.protocol);
        if self.incomplete {
            let _ = writeln!(out, "  INCOMPLETE: ended by a fatal error");
        }
        let _ = writeln!(
            out,
            "  elapsed      {:.3} s, {} sessions",
            self.elapsed.as_secs_f64(),
            c.sessions
        );
        if let (Some(start), Some(end)) = (self.start_us, self.end_us) {
            let _ = writeln!(
                out,
                "  time (UTC)   {} to {}",
                clock_text(start / 1000),
                clock_text(end / 1000)
            );
        }
        let _ = writeln!(
            out,
            "  connections  {} established, {} failed attempts",
            c.connects, c.connect_failures
        );
        let _ = writeln!(
            out,
            "  messages     {} attempted, {} accepted, {} rejected, {} failed",
            c.attempted, c.accepted, c.rejected, c.failed
        );
        let _ = writeln!(
            out,
            "  recipients   {} sent, {} accepted",
            c.rcpts_sent, c.rcpts_accepted
        );
        let _ = write!(
            out,
            "  throughput   {:.1} msg/s, {:.3} MB/s ({} bytes sent)",
            self.msgs_per_sec(),
            self.mb_per_sec(),
            c.bytes_sent
        );
        match self.target_rate {
            Some(rate) => {
                let _ = writeln!(out, ", target {rate} msg/s");
            }
            None => out.push('\n'),
        }
        if c.tls_handshakes > 0 {
            let _ = write!(
                out,
                "  TLS          {} handshakes, {} resumed:",
                c.tls_handshakes, c.tls_resumed
            );
            for (name, n) in &self.tls {
                let _ = write!(out, " {name} x{n}");
            }
            out.push('\n');
        }
    }

    /// The `reply codes` lines: the codes each stage got.
    fn render_replies(&self, out: &mut String) {
        let lmtp = self.protocol == "LMTP";
        let _ = writeln!(out, "  reply codes");
        for phase in Phase::ALL.into_iter().filter(|p| p.has_replies()) {
            let i = phase.index();
            if self.replies[i].is_empty() && self.other_replies[i] == 0 {
                continue;
            }
            let _ = write!(out, "    {:<12}", phase.label(lmtp));
            for (code, n) in &self.replies[i] {
                let _ = write!(out, " {code:03} x{n}");
            }
            if self.other_replies[i] > 0 {
                let _ = write!(out, " other x{}", self.other_replies[i]);
            }
            out.push('\n');
        }
    }

    /// The latency table: percentiles per phase, in milliseconds.
    fn render_latency(&self, out: &mut String) {
        let lmtp = self.protocol == "LMTP";
        let _ = writeln!(
            out,
            "  {:<15}{:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency ms", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for phase in Phase::ALL {
            let h = &self.latency[phase.index()];
            if h.is_empty() {
                continue;
            }
            let s = hist::summary(h);
            let _ = writeln!(
                out,
                "    {:<12} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
                phase.label(lmtp),
                s.count,
                hist::ms(s.p50),
                hist::ms(s.p90),
                hist::ms(s.p99),
                hist::ms(s.p999),
                hist::ms(s.max)
            );
        }
    }

    /// The `--report=timeline` table (lines end in `\n`).
    pub fn render_timeline(&self) -> String {
        match &self.timeline {
            Some(t) => t.render(),
            None => "  timeline: none in this report\n".to_string(),
        }
    }

    /// The JSON report (pretty-printed, ends in `\n`).
    pub fn to_json(&self) -> String {
        let mut replies = BTreeMap::new();
        let mut latency = BTreeMap::new();
        for phase in Phase::ALL {
            let i = phase.index();
            if phase.has_replies() {
                let mut codes: BTreeMap<String, u64> = self.replies[i]
                    .iter()
                    .map(|(code, n)| (format!("{code:03}"), *n))
                    .collect();
                if self.other_replies[i] > 0 {
                    codes.insert("other".to_string(), self.other_replies[i]);
                }
                replies.insert(phase.key().to_string(), codes);
            }
            latency.insert(phase.key().to_string(), LatencyJson::of(&self.latency[i]));
        }
        let json = ReportJson {
            format: FORMAT.to_string(),
            tool: "smtp-source".to_string(),
            protocol: self.protocol.clone(),
            run_ids: self.run_ids.clone(),
            runs: self.runs,
            incomplete: self.incomplete,
            elapsed_secs: self.elapsed.as_secs_f64(),
            start_epoch_us: self.start_us,
            end_epoch_us: self.end_us,
            shard: self.shards.as_ref().map(|s| ShardJson {
                count: s.count,
                indices: s.indices.clone(),
            }),
            target_rate: self.target_rate,
            msgs_per_sec: self.msgs_per_sec(),
            mb_per_sec: self.mb_per_sec(),
            counters: self.counters,
            replies,
            latency_us: latency,
            tls: self.tls.clone(),
            timeline: self.timeline.as_ref().map(Timeline::to_json),
            commands: self.commands.clone(),
            search: self.search.clone(),
        };
        let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Read a report written by [`Report::to_json`]. Summary numbers in the
    /// file (percentiles, rates) are ignored: they are recomputed from the
    /// counters and histograms.
    pub fn from_json(text: &str) -> Result<Report, String> {
        if text.len() > MAX_JSON {
            return Err(format!("report larger than {MAX_JSON} bytes"));
        }
        let json: ReportJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if json.format != FORMAT {
            return Err(format!(
                "unsupported report format \"{}\" (expected \"{FORMAT}\")",
                json.format
            ));
        }
        if !json.elapsed_secs.is_finite() || json.elapsed_secs < 0.0 {
            return Err("bad elapsed_secs".to_string());
        }
        let mut report = Report::new(false, String::new(), json.target_rate);
        report.protocol = json.protocol;
        report.run_ids = json.run_ids;
        report.runs = json.runs;
        report.incomplete = json.incomplete;
        report.elapsed = Duration::try_from_secs_f64(json.elapsed_secs)
            .map_err(|_| "bad elapsed_secs".to_string())?;
        if let (Some(start), Some(end)) = (json.start_epoch_us, json.end_epoch_us) {
            if start > end {
                return Err("start_epoch_us is after end_epoch_us".to_string());
            }
            report.start_us = Some(start);
            report.end_us = Some(end);
        }
        report.shards = json
            .shard
            .map(|s| ShardSet::checked(s.count, s.indices))
            .transpose()?;
        report.counters = json.counters;
        report.tls = json.tls;
        report.commands = json.commands;
        report.search = json.search;
        report.timeline = json
            .timeline
            .as_ref()
            .map(Timeline::from_json)
            .transpose()?;
        for (key, codes) in &json.replies {
            let phase = Phase::from_key(key).ok_or_else(|| format!("unknown phase \"{key}\""))?;
            let i = phase.index();
            for (code, &n) in codes {
                if code == "other" {
                    report.other_replies[i] += n;
                    continue;
                }
                let value: u16 = code
                    .parse()
                    .ok()
                    .filter(|v| *v <= 999)
                    .ok_or_else(|| format!("bad reply code \"{code}\""))?;
                *report.replies[i].entry(value).or_default() += n;
            }
        }
        for (key, lat) in &json.latency_us {
            let phase = Phase::from_key(key).ok_or_else(|| format!("unknown phase \"{key}\""))?;
            report.latency[phase.index()] = lat
                .histogram()
                .map_err(|e| format!("latency_us.{key}: {e}"))?;
        }
        Ok(report)
    }
}

/// The JSON report's shape.
#[derive(Debug, Serialize, Deserialize)]
struct ReportJson {
    format: String,
    tool: String,
    protocol: String,
    run_ids: Vec<String>,
    runs: u64,
    #[serde(default)]
    incomplete: bool,
    elapsed_secs: f64,
    /// When the load started, Unix epoch microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_epoch_us: Option<u64>,
    /// When the run ended, Unix epoch microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_epoch_us: Option<u64>,
    /// The shards this report covers (absent unless `--shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<ShardJson>,
    target_rate: Option<f64>,
    #[serde(default)]
    msgs_per_sec: f64,
    #[serde(default)]
    mb_per_sec: f64,
    counters: Counters,
    replies: BTreeMap<String, BTreeMap<String, u64>>,
    latency_us: BTreeMap<String, LatencyJson>,
    /// TLS handshakes by `VERSION SUITE` (absent in reports without TLS).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tls: BTreeMap<String, u64>,
    /// One entry per interval (absent in reports written without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeline: Option<TimelineJson>,
    /// The command line of each run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    commands: Vec<String>,
    /// `--find-max`: the capacity search's steps and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    search: Option<SearchJson>,
}

/// The shards of a JSON report: `N` and the indices it covers (one for a
/// shard's own report).
#[derive(Debug, Serialize, Deserialize)]
struct ShardJson {
    count: u32,
    indices: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::recorder::tick;

    /// A session that sent `n` messages, each phase taking `step` ms.
    fn session(n: u64, step: u64, dot_code: u32) -> Recorder {
        let t0 = tick();
        let mut r = Recorder::new(t0);
        let mut t = t0;
        let mut tick = |ms: u64| {
            t += ms * 1_000_000;
            t
        };
        for _ in 0..n {
            let start = tick(0);
            r.begin_message(start, start);
            r.mark(start);
            r.connected(tick(step));
            r.reply(Phase::Banner, 220, tick(step));
            for (phase, code) in [
                (Phase::Helo, 250),
                (Phase::Mail, 250),
                (Phase::Rcpt, 250),
                (Phase::Data, 354),
                (Phase::Dot, dot_code),
                (Phase::Quit, 221),
            ] {
                r.sent(100);
                r.reply(phase, code, tick(step));
            }
            r.end_message(true);
        }
        r
    }

    fn report_of(recs: &[Recorder], secs: u64) -> Report {
        let mut rep = Report::new(false, "00000000000000aa".into(), None);
        for r in recs {
            rep.add_recorder(r);
        }
        rep.elapsed = Duration::from_secs(secs);
        rep
    }

    #[test]
    fn contents_of_a_report() {
        let rep = report_of(&[session(3, 1, 250), session(2, 2, 554)], 2);
        let c = rep.counters;
        assert_eq!(
            (c.sessions, c.connects, c.attempted, c.accepted, c.rejected),
            (2, 5, 5, 3, 2)
        );
        assert_eq!(c.bytes_sent, 5 * 600);
        assert_eq!(rep.msgs_per_sec(), 1.5);
        assert_eq!(rep.mb_per_sec(), 3000.0 / 1e6 / 2.0);
        assert_eq!(rep.replies[Phase::Dot.index()].get(&250), Some(&3));
        assert_eq!(rep.replies[Phase::Dot.index()].get(&554), Some(&2));
        assert_eq!(rep.latency[Phase::Message.index()].len(), 3);
        assert_eq!(rep.latency[Phase::Helo.index()].len(), 5);

        let text = rep.render();
        let expect_lines = [
            "smtp-source report: run 00000000000000aa, SMTP",
            "  elapsed      2.000 s, 2 sessions",
            "  connections  5 established, 0 failed attempts",
            "  messages     5 attempted, 3 accepted, 2 rejected, 0 failed",
            "  recipients   5 sent, 5 accepted",
            "  throughput   1.5 msg/s, 0.002 MB/s (3000 bytes sent)",
            "  reply codes",
            "    banner       220 x5",
            "    HELO         250 x5",
            "    DATA         354 x5",
            "    end of data  250 x3 554 x2",
            "    QUIT         221 x5",
        ];
        for line in expect_lines {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("RSET"),
            "unused phases are not listed:\n{text}"
        );
        let helo = text
            .lines()
            .find(|l| l.starts_with("    HELO ") && l.contains('.'))
            .expect("HELO latency row");
        // 3 values of 1 ms and 2 of 2 ms: p50 1 ms, max 2 ms.
        let cols: Vec<&str> = helo.split_whitespace().collect();
        assert_eq!(
            cols,
            ["HELO", "5", "1.000", "2.000", "2.000", "2.000", "2.000"]
        );
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let mut rep = report_of(&[session(4, 3, 250)], 1);
        rep.target_rate = Some(4.0);
        rep.other_replies[Phase::Mail.index()] = 7;
        let text = rep.to_json();
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["format"], FORMAT);
        assert_eq!(value["counters"]["accepted"], 4);
        assert_eq!(value["replies"]["dot"]["250"], 4);
        assert_eq!(value["replies"]["mail"]["other"], 7);
        assert_eq!(value["latency_us"]["helo"]["p50"], 3000);
        assert_eq!(value["latency_us"]["rset"]["count"], 0);
        assert_eq!(value["msgs_per_sec"], 4.0);
        let back = Report::from_json(&text).expect("parse");
        assert_eq!(back.counters, rep.counters);
        assert_eq!(back.replies, rep.replies);
        assert_eq!(back.other_replies, rep.other_replies);
        assert_eq!(back.elapsed, rep.elapsed);
        assert_eq!(back.target_rate, Some(4.0));
        assert_eq!(back.run_ids, rep.run_ids);
        for i in 0..Phase::COUNT {
            assert_eq!(
                hist::summary(&back.latency[i]),
                hist::summary(&rep.latency[i])
            );
        }
        assert_eq!(back.render(), rep.render());
    }

    #[test]
    fn merging_reports_equals_one_big_run() {
        let a = report_of(&[session(10, 1, 250)], 2);
        let mut b = report_of(&[session(30, 5, 250), session(5, 1, 451)], 3);
        b.run_ids = vec!["00000000000000bb".into()];
        let mut merged = Report::from_json(&a.to_json()).expect("a");
        merged.merge(&Report::from_json(&b.to_json()).expect("b"));
        let whole = report_of(
            &[session(10, 1, 250), session(30, 5, 250), session(5, 1, 451)],
            3,
        );
        assert_eq!(merged.counters, whole.counters);
        assert_eq!(merged.replies, whole.replies);
        assert_eq!(merged.elapsed, Duration::from_secs(3));
        assert_eq!(merged.runs, 2);
        assert_eq!(merged.run_ids, ["00000000000000aa", "00000000000000bb"]);
        for i in 0..Phase::COUNT {
            assert_eq!(
                hist::summary(&merged.latency[i]),
                hist::summary(&whole.latency[i]),
                "{:?}",
                Phase::ALL[i]
            );
        }
        // 40 of 45 messages at 1 ms/5 ms: the merged p50 is from the
        // combined distribution (5 ms steps dominate), not an average.
        assert_eq!(
            hist::summary(&merged.latency[Phase::Helo.index()]).p50,
            5000
        );
        assert!(merged.render().starts_with("smtp-source report: 2 runs ("));
        // Rates: combined throughput over the longest run.
        assert_eq!(merged.msgs_per_sec(), 40.0 / 3.0);
    }

    #[test]
    fn timelines_survive_json_and_merge_by_epoch() {
        use crate::measure::timeline::{Clock, Timeline};
        // Two runs whose clocks put tick t0 at epoch 100.2 s and 100.7 s.
        let t0 = tick();
        let run = |wall_ns: u64, n: u64| {
            let clock = Clock::at(wall_ns, t0, 1000);
            let mut r = Recorder::new(t0).with_timeline(clock, t0);
            for i in 0..n {
                let t = t0 + i * 200_000_000;
                r.begin_message(t, t);
                r.sent(10);
                r.reply(Phase::Dot, 250, t + 1_000_000);
                r.end_message(true);
            }
            let mut rep = report_of(&[], 1);
            rep.add_recorder(&r);
            let parts = r.take_timeline();
            rep.timeline = Some(Timeline::merge_all(1000, &parts));
            rep
        };
        let a = run(100_200_000_000, 5); // 100.2 .. 101.0 s
        let b = run(100_700_000_000, 3); // 100.7 .. 101.1 s
        let a = Report::from_json(&a.to_json()).expect("a");
        let b = Report::from_json(&b.to_json()).expect("b");
        let counts = |r: &Report| -> Vec<(u64, u64, u64)> {
            let t = r.timeline.as_ref().expect("timeline");
            t.intervals()
                .iter()
                .map(|i| (i.start_ms, i.counts.accepted, i.latency.count()))
                .collect()
        };
        assert_eq!(counts(&a), [(100_000, 4, 4), (101_000, 1, 1)]);
        assert_eq!(counts(&b), [(100_000, 2, 2), (101_000, 1, 1)]);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(counts(&m), [(100_000, 6, 6), (101_000, 2, 2)]);
        assert!(m.render_timeline().contains("00:01:40.000"));
        assert_eq!(
            report_of(&[], 1).render_timeline(),
            "  timeline: none in this report\n"
        );
    }

    #[test]
    fn shards_merge_into_their_run_over_the_whole_wall_time() {
        use crate::measure::shard::Shard;
        // Shard 0 ran 10.0 .. 12.0 s, shard 1 ran 10.5 .. 13.0 s (epoch).
        let shard = |index, n, start_us, secs| {
            let mut r = report_of(&[session(n, 1, 250)], 0);
            r.set_times(start_us, Duration::from_secs(secs));
            r.shards = Some(ShardSet::of(Shard { index, count: 3 }));
            r.target_rate = Some(100.0 / 3.0);
            Report::from_json(&r.to_json()).expect("round trip")
        };
        let a = shard(0, 6, 10_000_000, 2);
        let b = shard(1, 4, 10_500_000, 2);
        assert_eq!((a.start_us, a.end_us), (Some(10_000_000), Some(12_000_000)));
        assert!(a
            .render()
            .starts_with("smtp-source report: run 00000000000000aa, shard 0/3, SMTP\n"));
        assert!(a
            .render()
            .contains("\n  time (UTC)   00:00:10.000 to 00:00:12.000\n"));
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.elapsed, Duration::from_millis(2500));
        assert_eq!((m.start_us, m.end_us), (Some(10_000_000), Some(12_500_000)));
        assert_eq!(m.counters.accepted, 10);
        assert_eq!(m.msgs_per_sec(), 4.0);
        assert_eq!(m.run_ids, ["00000000000000aa"], "one run");
        assert_eq!(m.runs, 2);
        assert!(m.render().starts_with(
            "smtp-source report: run 00000000000000aa, shards 2 of 3 (missing 2), SMTP\n"
        ));
        m.merge(&shard(2, 1, 9_000_000, 1));
        assert!(m.render().contains(", shards 3 of 3, SMTP\n"));
        assert_eq!(m.elapsed, Duration::from_millis(3500));
        assert_eq!(
            m.target_rate,
            Some(100.0),
            "three thirds make the run's rate"
        );
        let back = Report::from_json(&m.to_json()).expect("merged round trip");
        assert_eq!(back.shards, m.shards);
        assert_eq!(back.elapsed, m.elapsed);
        // A report without times: the longest run, no times.
        let mut old = report_of(&[], 5);
        old.merge(&m);
        assert_eq!(old.elapsed, Duration::from_secs(5));
        assert_eq!(old.start_us, None);
        assert_eq!(old.shards, None);
    }

    #[test]
    fn merge_protocol_and_rates() {
        let mut a = Report::new(false, "a".into(), Some(10.0));
        let b = Report::new(true, "b".into(), Some(5.0));
        let c = Report::new(true, "c".into(), None);
        a.merge(&b);
        a.merge(&c);
        assert_eq!(a.protocol, "mixed");
        assert_eq!(a.target_rate, Some(15.0));
        let mut d = Report::new(true, "d".into(), None);
        d.merge(&c);
        assert_eq!(d.protocol, "LMTP");
        assert_eq!(d.target_rate, None);
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let good = report_of(&[session(1, 1, 250)], 1).to_json();
        let cases = [
            String::new(),
            "{}".to_string(),
            "[1,2]".to_string(),
            good.replace(FORMAT, "other/9"),
            good.replace("\"dot\"", "\"dott\""),
            good.replace("\"250\"", "\"2500\""),
            good.replace("\"elapsed_secs\": 1.0", "\"elapsed_secs\": -1.0"),
            good.replace(
                "\"elapsed_secs\": 1.0,",
                "\"elapsed_secs\": 1.0, \"start_epoch_us\": 5, \"end_epoch_us\": 4,",
            ),
            good.replace(
                "\"elapsed_secs\": 1.0,",
                "\"elapsed_secs\": 1.0, \"shard\": {\"count\": 2, \"indices\": [2]},",
            ),
            good.replace(
                "\"elapsed_secs\": 1.0,",
                "\"elapsed_secs\": 1.0, \"shard\": {\"count\": 0, \"indices\": [0]},",
            ),
        ];
        for case in &cases {
            assert!(Report::from_json(case).is_err(), "{case}");
        }
        // The hdr strings are checked too.
        let value: serde_json::Value = serde_json::from_str(&good).expect("json");
        let hdr = value["latency_us"]["helo"]["hdr"].as_str().expect("hdr");
        assert!(Report::from_json(&good.replace(hdr, "AAAA")).is_err());
        assert!(Report::from_json(&good).is_ok());
    }
}
