//! The measurement long options of both tools, and their checks.
//!
//! The tools' `config.rs` hands every `--name` occurrence to
//! [`SourceOptions::apply`] / [`SinkOptions::apply`] (in argv order) and
//! calls `check` once at the end; this module owns these options' messages.
//! None of them has a short form, so a Postfix command line never reaches
//! this code.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::LongOpt;
use crate::diag::{Error, Result};

use super::search::options::{FindRaw, FIND_LONGS};
use super::search::SearchConfig;
use super::shard::{self, Shard};
use super::{rate, start, stats, timeline, track};

/// smtp-source's measurement options and the capacity search's, for its
/// `ToolSpec`.
pub const SOURCE_LONGS: &[LongOpt] = &crate::args::join_longs::<
    { MEASURE_LONGS.len() + FIND_LONGS.len() },
>(MEASURE_LONGS, FIND_LONGS);

/// smtp-source's measurement options.
const MEASURE_LONGS: &[LongOpt] = &[
    LongOpt {
        name: "report",
        value: Some("[timeline]"),
        help: "At the end, print a run report on stderr: counts, reply codes per stage, \
               throughput, latency percentiles per phase; --report=timeline adds a \
               table per --interval",
    },
    LongOpt {
        name: "interval",
        value: Some("D"),
        help: "Width of the report's timeline intervals, aligned to epoch time \
               (default 1s; e.g. 500ms, 10s)",
    },
    LongOpt {
        name: "html",
        value: Some("FILE"),
        help: "Write the run report as one self-contained HTML file with charts \
               (also with --merge)",
    },
    LongOpt {
        name: "json",
        value: Some("PATH"),
        help: "Write the run report as JSON to PATH ('-': stdout, not with -c); \
               histograms included so that reports can be merged",
    },
    LongOpt {
        name: "merge",
        value: None,
        help: "Send nothing: print the combined report of the JSON reports given as \
               operands (with --json PATH, also write it as JSON)",
    },
    LongOpt {
        name: "rate",
        value: Some("N"),
        help: "Open loop: start N messages per second over all sessions, on schedule; \
               latency counts from each message's intended start",
    },
    LongOpt {
        name: "duration",
        value: Some("D"),
        help: "Start no message after D (e.g. 60s, 1m30s); without -m the message \
               count is then unlimited",
    },
    LongOpt {
        name: "progress",
        value: Some("[always]"),
        help: "Live status line on stderr (rate, sent, errors, p99) when stderr is a \
               terminal; --progress=always also when it is not (one line per second)",
    },
    LongOpt {
        name: "track",
        value: None,
        help: "Stamp each message with X-Smtpstone-Run, X-Smtpstone-Seq and \
               X-Smtpstone-Sent headers for smtp-sink --track",
    },
    LongOpt {
        name: "shard",
        value: Some("I/N"),
        help: "Send shard I of N of the run: the messages j (from 0) with j mod N = I, \
               -s split over the N shards, --rate shared on one schedule; auto/N takes I \
               from JOB_COMPLETION_INDEX (Kubernetes Indexed Job); needs --run-id",
    },
    LongOpt {
        name: "run-id",
        value: Some("ID"),
        help: "Run id for the --track stamps and the report, 1 to 16 hex digits, the same \
               on every shard of a run (default: random)",
    },
    LongOpt {
        name: "start-at",
        value: Some("TIME"),
        help: "Start the load at TIME: Unix epoch seconds (1767225600.5) or +DELAY (+30s), \
               at most 24 hours ahead; a time past starts at once",
    },
    LongOpt {
        name: "metrics",
        value: Some("ADDR"),
        help: "Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, port 0: any free \
               port, printed on stderr)",
    },
];

/// smtp-sink's measurement options, for its `ToolSpec`.
pub const SINK_LONGS: &[LongOpt] = &[
    LongOpt {
        name: "track",
        value: None,
        help: "Account for messages stamped by smtp-source --track: per run, received, \
               duplicates, gaps and delivery latency; report on stderr at exit \
               (-M, -n, SIGINT, SIGTERM)",
    },
    LongOpt {
        name: "json",
        value: Some("PATH"),
        help: "Also write the tracking report as JSON to PATH at exit (implies --track)",
    },
    LongOpt {
        name: "stats",
        value: Some("SECONDS"),
        help: "Every SECONDS, print a line on stderr: sessions, messages, msg/s, MB/s",
    },
    LongOpt {
        name: "metrics",
        value: Some("ADDR"),
        help: "Serve Prometheus metrics at http://ADDR/metrics and, with --track, the live \
               tracking report at /runs (IP:PORT, port 0: any free port, printed on stderr)",
    },
];

/// Where a JSON report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOut {
    /// Standard output (`-`).
    Stdout,
    /// A file.
    File(PathBuf),
}

impl JsonOut {
    fn parse(value: &[u8]) -> JsonOut {
        if value == b"-" {
            JsonOut::Stdout
        } else {
            JsonOut::File(PathBuf::from(OsStr::from_bytes(value)))
        }
    }
}

/// When the live status line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Never (default).
    #[default]
    Off,
    /// When stderr is a terminal (`--progress`).
    Terminal,
    /// Always (`--progress=always`).
    Always,
}

/// smtp-source's measurement settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOptions {
    /// `--report[=timeline]`.
    pub report: bool,
    /// `--report=timeline`: the text report ends with the timeline table.
    pub report_timeline: bool,
    /// `--interval D`, milliseconds (default
    /// [`timeline::DEFAULT_INTERVAL_MS`]).
    pub interval_ms: Option<u64>,
    /// `--html FILE`.
    pub html: Option<PathBuf>,
    /// `--json PATH`.
    pub json: Option<JsonOut>,
    /// `--merge`: the operands are report files.
    pub merge: bool,
    /// `--rate N`.
    pub rate: Option<f64>,
    /// `--duration D`.
    pub duration: Option<Duration>,
    /// `--progress[=always]`.
    pub progress: ProgressMode,
    /// `--track`.
    pub track: bool,
    /// `--metrics ADDR`.
    pub metrics: Option<SocketAddr>,
    /// `-m` was given (with `--duration` and no `-m`, the count is
    /// unlimited).
    pub count_given: bool,
    /// `--merge`: the report files (the operands).
    pub files: Vec<OsString>,
    /// The capacity-search options as given.
    pub find: FindRaw,
    /// `--find-max`: the checked search.
    pub search: Option<SearchConfig>,
    /// Set for the steps of `--find-max` (no option): refused messages
    /// are counted in the step's line instead of warned about one by one.
    pub quiet_rejects: bool,
    /// `--shard I/N`.
    pub shard: Option<Shard>,
    /// `--run-id ID`.
    pub run_id: Option<u64>,
    /// `--start-at TIME`, Unix epoch microseconds.
    pub start_at: Option<u64>,
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// A `--metrics` address: IP:PORT (`[v6]:PORT`).
fn metrics_addr(value: &[u8]) -> Result<SocketAddr> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::fatal(format!(
                "bad --metrics address: {} (want IP:PORT, e.g. 127.0.0.1:9100)",
                text(value)
            ))
        })
}

impl SourceOptions {
    /// Take one `--name [value]` occurrence. Unknown names are not ours:
    /// `Ok(false)`.
    pub fn apply(&mut self, name: &str, value: &[u8]) -> Result<bool> {
        match name {
            "report" => {
                self.report = true;
                self.report_timeline = match value {
                    b"" => false,
                    b"timeline" => true,
                    _ => {
                        return Err(Error::fatal(format!(
                            "bad --report value: {} (only --report=timeline)",
                            text(value)
                        )))
                    }
                };
            }
            "interval" => {
                let ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(rate::parse_duration)
                    .filter(|d| d.subsec_nanos() % 1_000_000 == 0)
                    .and_then(|d| u64::try_from(d.as_millis()).ok());
                self.interval_ms = Some(ms.ok_or_else(|| {
                    Error::fatal(format!(
                        "bad --interval value: {} (whole milliseconds, at least 1ms)",
                        text(value)
                    ))
                })?);
            }
            "html" => self.html = Some(PathBuf::from(OsStr::from_bytes(value))),
            "json" => self.json = Some(JsonOut::parse(value)),
            "merge" => self.merge = true,
            "rate" => {
                let rate = std::str::from_utf8(value).ok().and_then(rate::parse_rate);
                self.rate =
                    Some(rate.ok_or_else(|| {
                        Error::fatal(format!("bad --rate value: {}", text(value)))
                    })?);
            }
            "duration" => {
                let d = std::str::from_utf8(value)
                    .ok()
                    .and_then(rate::parse_duration);
                self.duration = Some(d.ok_or_else(|| {
                    Error::fatal(format!("bad --duration value: {}", text(value)))
                })?);
            }
            "progress" => {
                self.progress = match value {
                    b"" => ProgressMode::Terminal,
                    b"always" => ProgressMode::Always,
                    _ => {
                        return Err(Error::fatal(format!(
                            "bad --progress value: {} (only --progress=always)",
                            text(value)
                        )))
                    }
                }
            }
            "track" => self.track = true,
            "shard" => {
                let index = std::env::var_os(shard::INDEX_ENV);
                self.shard = Some(Shard::parse(value, index.as_deref())?);
            }
            "run-id" => self.run_id = Some(shard::parse_run_id(value)?),
            "start-at" => self.start_at = Some(start::parse_start_at(value, track::now_micros())?),
            "metrics" => self.metrics = Some(metrics_addr(value)?),
            _ => return Ok(self.find.apply(name, value)),
        }
        Ok(true)
    }

    /// Checks across options, once all are known. `counter` is `-c`.
    pub fn check(&mut self, counter: bool) -> Result<()> {
        if counter && self.json == Some(JsonOut::Stdout) && !self.merge {
            return Err(Error::fatal("--json - cannot be used with -c"));
        }
        if self.merge && (self.shard.is_some() || self.run_id.is_some() || self.start_at.is_some())
        {
            return Err(Error::fatal(
                "--merge sends nothing: --shard, --run-id and --start-at do not apply",
            ));
        }
        let open_loop = self.rate.is_some() || self.duration.is_some();
        self.search = self.find.check(open_loop)?;
        if self.search.is_some() && self.count_given {
            return Err(Error::fatal(
                "--find-max sets each step's messages by its rate and duration: not with -m",
            ));
        }
        if self.search.is_some()
            && (self.shard.is_some() || self.run_id.is_some() || self.start_at.is_some())
        {
            return Err(Error::fatal(
                "--find-max runs each step as a run of its own: not with --shard, --run-id \
                 or --start-at",
            ));
        }
        if self.shard.is_some() && self.run_id.is_none() {
            return Err(Error::fatal(
                "--shard needs --run-id: one id shared by all shards of the run",
            ));
        }
        if self.merge && self.metrics.is_some() {
            return Err(Error::fatal("--metrics cannot be used with --merge"));
        }
        if self.search.is_some() && self.merge {
            return Err(Error::fatal("--find-max cannot be used with --merge"));
        }
        if self.search.is_some() && self.metrics.is_some() {
            // Each step is a run of its own; one listener per step would
            // move with port 0.
            return Err(Error::fatal("--find-max cannot be used with --metrics"));
        }
        Ok(())
    }

    /// The `-m` limit of a run: unlimited with `--duration` and no `-m`;
    /// a shard's part of `m` with `--shard`.
    pub fn message_count(&self, m: i32) -> i32 {
        if self.duration.is_some() && !self.count_given {
            return i32::MAX;
        }
        match self.shard {
            // A shard's part is at most m, so it fits.
            Some(s) => i32::try_from(s.messages(u64::try_from(m).unwrap_or(0))).unwrap_or(m),
            None => m,
        }
    }

    /// The `-s` sessions of a run: a shard's part of `s` with `--shard`.
    pub fn session_count(&self, s: u32) -> u32 {
        self.shard.map_or(s, |shard| shard.sessions(s))
    }

    /// The `--rate` of this process: a shard's part of the run's rate.
    pub fn own_rate(&self) -> Option<f64> {
        let n = self.shard.map_or(1, |s| s.count);
        self.rate.map(|r| r / f64::from(n))
    }

    /// Whether a run needs per-session recorders.
    pub fn records(&self) -> bool {
        self.report
            || self.json.is_some()
            || self.html.is_some()
            || self.progress != ProgressMode::Off
            || self.metrics.is_some()
    }

    /// Whether the report carries a timeline (JSON, HTML, timeline table).
    pub fn timeline(&self) -> bool {
        self.json.is_some() || self.html.is_some() || self.report_timeline
    }

    /// Timeline interval width, milliseconds.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(timeline::DEFAULT_INTERVAL_MS)
    }

    /// Whether any measurement option changes a run.
    pub fn any(&self) -> bool {
        self.records()
            || self.rate.is_some()
            || self.duration.is_some()
            || self.track
            || self.search.is_some()
            || self.shard.is_some()
            || self.run_id.is_some()
            || self.start_at.is_some()
    }
}

/// smtp-sink's measurement settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkOptions {
    /// `--track` (or implied by `--json`).
    pub track: bool,
    /// `--json PATH`.
    pub json: Option<JsonOut>,
    /// `--stats SECONDS`.
    pub stats: Option<Duration>,
    /// `--metrics ADDR`.
    pub metrics: Option<SocketAddr>,
}

impl SinkOptions {
    /// Take one `--name [value]` occurrence. Unknown names are not ours:
    /// `Ok(false)`.
    pub fn apply(&mut self, name: &str, value: &[u8]) -> Result<bool> {
        match name {
            "track" => self.track = true,
            "json" => {
                self.json = Some(JsonOut::parse(value));
                self.track = true;
            }
            "stats" => {
                let every = std::str::from_utf8(value)
                    .ok()
                    .and_then(stats::parse_interval);
                self.stats = Some(every.ok_or_else(|| {
                    Error::fatal(format!("bad --stats interval: {}", text(value)))
                })?);
            }
            "metrics" => self.metrics = Some(metrics_addr(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks across options. `counters` is the sink's `-c` (stdout).
    pub fn check(&self, counters: bool) -> Result<()> {
        if counters && self.json == Some(JsonOut::Stdout) {
            return Err(Error::fatal("--json - cannot be used with -c"));
        }
        Ok(())
    }

    /// Whether any measurement option is on.
    pub fn any(&self) -> bool {
        self.track || self.stats.is_some() || self.metrics.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(args: &[(&str, &str)]) -> Result<SourceOptions> {
        let mut o = SourceOptions::default();
        for (name, value) in args {
            assert!(o.apply(name, value.as_bytes())?, "{name} is ours");
        }
        Ok(o)
    }

    fn fatal<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(Error::Fatal(t)) => t,
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn source_values() {
        let o = source(&[
            ("report", ""),
            ("json", "out.json"),
            ("rate", "250"),
            ("duration", "1m"),
            ("progress", ""),
            ("track", ""),
        ])
        .expect("valid");
        assert!(o.report && o.track && !o.merge);
        assert_eq!(o.json, Some(JsonOut::File("out.json".into())));
        assert_eq!(o.rate, Some(250.0));
        assert_eq!(o.duration, Some(Duration::from_secs(60)));
        assert_eq!(o.progress, ProgressMode::Terminal);
        assert!(o.records() && o.any());
        assert!(!o.report_timeline && o.timeline());
        assert_eq!(o.interval_ms(), 1000);
        let o = source(&[
            ("report", "timeline"),
            ("interval", "250ms"),
            ("html", "r.html"),
        ])
        .expect("valid");
        assert!(o.report && o.report_timeline && o.timeline());
        assert_eq!(o.interval_ms(), 250);
        assert_eq!(o.html, Some(PathBuf::from("r.html")));
        let o = source(&[("report", "")]).expect("valid");
        assert!(o.report && !o.timeline());
        let o = source(&[("progress", "always")]).expect("valid");
        assert_eq!(o.progress, ProgressMode::Always);
        let o = source(&[("rate", "5")]).expect("valid");
        assert!(!o.records() && o.any());
        assert!(!SourceOptions::default().any());
        let mut d = source(&[("duration", "5s")]).expect("valid");
        assert_eq!(d.message_count(1), i32::MAX);
        d.count_given = true;
        assert_eq!(d.message_count(1), 1);
        assert_eq!(SourceOptions::default().message_count(7), 7);
        let mut o = SourceOptions::default();
        assert!(!o.apply("starttls", b"").expect("not ours"));
    }

    #[test]
    fn source_messages() {
        assert_eq!(fatal(source(&[("rate", "0")])), "bad --rate value: 0");
        assert_eq!(
            fatal(source(&[("progress", "never")])),
            "bad --progress value: never (only --progress=always)"
        );
        assert_eq!(fatal(source(&[("rate", "fast")])), "bad --rate value: fast");
        assert_eq!(
            fatal(source(&[("report", "full")])),
            "bad --report value: full (only --report=timeline)"
        );
        for bad in ["0", "500us", "1.5ms", "soon"] {
            assert_eq!(
                fatal(source(&[("interval", bad)])),
                format!("bad --interval value: {bad} (whole milliseconds, at least 1ms)")
            );
        }
        assert_eq!(
            fatal(source(&[("duration", "soon")])),
            "bad --duration value: soon"
        );
        assert_eq!(
            fatal(source(&[("duration", "0s")])),
            "bad --duration value: 0s"
        );
        let mut o = source(&[("json", "-")]).expect("valid");
        assert_eq!(o.json, Some(JsonOut::Stdout));
        assert_eq!(fatal(o.check(true)), "--json - cannot be used with -c");
        assert!(o.check(false).is_ok());
        let o = source(&[("metrics", "127.0.0.1:9100")]).expect("valid");
        assert!(o.records() && o.any());
        assert_eq!(
            fatal(source(&[("metrics", "9100")])),
            "bad --metrics address: 9100 (want IP:PORT, e.g. 127.0.0.1:9100)"
        );
        let mut o = source(&[("metrics", "127.0.0.1:0"), ("merge", "")]).expect("valid");
        assert_eq!(
            fatal(o.check(false)),
            "--metrics cannot be used with --merge"
        );
        let mut m = source(&[("json", "-"), ("merge", "")]).expect("valid");
        assert!(
            m.check(true).is_ok(),
            "--merge sends nothing, so -c prints nothing"
        );
    }

    #[test]
    fn shard_options() {
        let mut o = source(&[("shard", "1/4"), ("run-id", "ab"), ("rate", "100")]).expect("valid");
        assert_eq!(o.shard, Some(Shard { index: 1, count: 4 }));
        assert_eq!(o.run_id, Some(0xab));
        assert!(o.any() && !o.records());
        assert!(o.check(false).is_ok());
        assert_eq!(o.message_count(10), 3);
        assert_eq!(o.session_count(10), 3);
        assert_eq!(o.session_count(2), 1);
        assert_eq!(o.own_rate(), Some(25.0));
        let mut unlimited = o.clone();
        unlimited.duration = Some(Duration::from_secs(1));
        assert_eq!(unlimited.message_count(10), i32::MAX);
        let plain = source(&[("rate", "100")]).expect("valid");
        assert_eq!(
            (
                plain.message_count(10),
                plain.session_count(10),
                plain.own_rate()
            ),
            (10, 10, Some(100.0))
        );
        assert_eq!(
            fatal(source(&[("shard", "1/4")]).expect("parsed").check(false)),
            "--shard needs --run-id: one id shared by all shards of the run"
        );
        for (name, value) in [("shard", "0/2"), ("run-id", "1"), ("start-at", "+1s")] {
            let mut m = source(&[(name, value), ("run-id", "1")]).expect("parsed");
            m.merge = true;
            assert_eq!(
                fatal(m.check(false)),
                "--merge sends nothing: --shard, --run-id and --start-at do not apply"
            );
        }
        let before = track::now_micros();
        let at = source(&[("start-at", "+10s")]).expect("valid");
        let after = track::now_micros();
        let at = at.start_at.expect("start") - 10_000_000;
        assert!(before <= at && at <= after, "{before} {at} {after}");
        assert!(source(&[("run-id", "xyz")]).is_err());
        assert!(source(&[("start-at", "+25h")]).is_err());
    }

    #[test]
    fn sink_values_and_messages() {
        let mut o = SinkOptions::default();
        assert!(!o.any());
        assert!(o.apply("json", b"t.json").expect("json"));
        assert!(o.track, "--json implies --track");
        assert!(o.apply("stats", b"5").expect("stats"));
        assert_eq!(o.stats, Some(Duration::from_secs(5)));
        assert!(!o.apply("tls-cert", b"x").expect("not ours"));
        assert_eq!(fatal(o.apply("stats", b"0")), "bad --stats interval: 0");
        assert!(o.apply("metrics", b"[::1]:0").expect("metrics"));
        assert_eq!(o.metrics, "[::1]:0".parse().ok());
        assert_eq!(
            fatal(o.apply("metrics", b"localhost:9100")),
            "bad --metrics address: localhost:9100 (want IP:PORT, e.g. 127.0.0.1:9100)"
        );
        let mut s = SinkOptions::default();
        s.apply("json", b"-").expect("json");
        assert_eq!(fatal(s.check(true)), "--json - cannot be used with -c");
        assert!(s.check(false).is_ok());
    }

    #[test]
    fn long_option_names_are_unique() {
        assert_eq!(SOURCE_LONGS.len(), MEASURE_LONGS.len() + FIND_LONGS.len());
        for longs in [SOURCE_LONGS, SINK_LONGS] {
            let mut names: Vec<&str> = longs.iter().map(|o| o.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), longs.len());
        }
    }
}
