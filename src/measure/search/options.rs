//! The capacity-search options of smtp-source: raw values as given, then
//! one conversion into a checked [`SearchConfig`] that owns every message.

use std::time::Duration;

use super::objective::{Objective, Quantile};
use crate::args::LongOpt;
use crate::diag::{Error, Result};
use crate::measure::rate::{parse_duration, parse_rate};

/// The search's long options, for smtp-source's option table.
pub const FIND_LONGS: &[LongOpt] = &[
    LongOpt {
        name: "find-max",
        value: None,
        help: "Capacity search: open-loop steps, ramping then bisecting, for the highest \
               rate that meets every --slo; prints 'sustainable: N msg/s'",
    },
    LongOpt {
        name: "find-start",
        value: Some("N"),
        help: "First step's rate, msg/s (default 10)",
    },
    LongOpt {
        name: "find-factor",
        value: Some("F"),
        help: "Ramp: multiply the rate by F after each passing step (default 2)",
    },
    LongOpt {
        name: "find-step",
        value: Some("D"),
        help: "Length of each step (default 10s; the confirmation step is twice as long)",
    },
    LongOpt {
        name: "find-precision",
        value: Some("P%"),
        help: "Bisect until the passing and failing rates are within P% (default 5%)",
    },
    LongOpt {
        name: "find-timeout",
        value: Some("D"),
        help: "Bound on the whole search (default 10m); no step starts that would end later",
    },
    LongOpt {
        name: "slo",
        value: Some("OBJ"),
        help: "Objective per step, repeatable: p50|p90|p99|p99.9|max=D (latency from the \
               intended start), errors=N%, delivery-p99=D (default p99=500ms, errors=1%)",
    },
    LongOpt {
        name: "sink-url",
        value: Some("URL"),
        help: "http://HOST:PORT of an smtp-sink --track --metrics behind the server: each \
               step's messages must also arrive there at 95% of the offered rate",
    },
];

/// Defaults (see [`FIND_LONGS`]).
const DEFAULT_START: f64 = 10.0;
const DEFAULT_FACTOR: f64 = 2.0;
const DEFAULT_STEP: Duration = Duration::from_secs(10);
const DEFAULT_PRECISION: f64 = 0.05;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_P99: Duration = Duration::from_millis(500);
const DEFAULT_ERRORS: f64 = 0.01;
/// Shortest step: fewer messages than this makes the percentiles noise.
const MIN_STEP: Duration = Duration::from_millis(500);
/// Largest ramp factor: beyond it the bisection does all the work anyway.
const MAX_FACTOR: f64 = 100.0;

/// The search options as given (each value checked in [`FindRaw::check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindRaw {
    /// `--find-max`.
    pub on: bool,
    /// The other options as `(name, value)`, in argv order.
    pub values: Vec<(String, String)>,
}

/// Where the sink behind the server answers (`--sink-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkUrl {
    /// `HOST:PORT`, as given.
    pub authority: String,
}

/// A checked capacity search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// First rate, msg/s.
    pub start: f64,
    /// Ramp factor (> 1).
    pub factor: f64,
    /// Step length.
    pub step: Duration,
    /// Bisection precision (share of the passing rate).
    pub precision: f64,
    /// Bound on the whole search.
    pub timeout: Duration,
    /// What each step must meet.
    pub objective: Objective,
    /// `--sink-url`.
    pub sink: Option<SinkUrl>,
}

impl Default for SearchConfig {
    fn default() -> SearchConfig {
        SearchConfig {
            start: DEFAULT_START,
            factor: DEFAULT_FACTOR,
            step: DEFAULT_STEP,
            precision: DEFAULT_PRECISION,
            timeout: DEFAULT_TIMEOUT,
            objective: Objective::default(),
            sink: None,
        }
    }
}

fn bad(name: &str, value: &str, why: &str) -> Error {
    Error::fatal(format!("bad --{name} value: {value} ({why})"))
}

/// `5%` or `5`: a percentage, as a share.
fn percent(text: &str) -> Option<f64> {
    text.strip_suffix('%')
        .unwrap_or(text)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p < 100.0)
        .map(|p| p / 100.0)
}

/// `http://HOST:PORT[/]`.
fn sink_url(text: &str) -> Option<SinkUrl> {
    let rest = text.strip_prefix("http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':')?;
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-[]:".contains(c);
    (!host.is_empty() && host.chars().all(plain) && port.parse::<u16>().is_ok_and(|p| p > 0)).then(
        || SinkUrl {
            authority: authority.to_string(),
        },
    )
}

impl FindRaw {
    /// Take one `--name value` occurrence; `false` when it is not ours.
    pub fn apply(&mut self, name: &str, value: &[u8]) -> bool {
        if name == "find-max" {
            self.on = true;
        } else if FIND_LONGS.iter().any(|o| o.name == name) {
            let value = String::from_utf8_lossy(value).into_owned();
            self.values.push((name.to_string(), value));
        } else {
            return false;
        }
        true
    }

    /// The checked search, `None` without `--find-max`. `open_loop`: the
    /// user gave `--rate` or `--duration` (each step sets both).
    pub fn check(&self, open_loop: bool) -> Result<Option<SearchConfig>> {
        if !self.on {
            if let Some((name, _)) = self.values.first() {
                return Err(Error::fatal(format!("--{name} needs --find-max")));
            }
            return Ok(None);
        }
        if open_loop {
            return Err(Error::fatal(
                "--find-max sets each step's rate and duration: not with --rate or --duration",
            ));
        }
        let mut c = SearchConfig::default();
        for (name, v) in &self.values {
            let value = v.as_str();
            match name.as_str() {
                "find-start" => {
                    c.start = parse_rate(value).ok_or_else(|| bad(name, value, "msg/s > 0"))?;
                }
                "find-factor" => {
                    c.factor = value
                        .parse::<f64>()
                        .ok()
                        .filter(|f| *f > 1.0 && *f <= MAX_FACTOR)
                        .ok_or_else(|| bad(name, value, "a number above 1, at most 100"))?;
                }
                "find-step" => {
                    c.step = parse_duration(value)
                        .filter(|d| *d >= MIN_STEP)
                        .ok_or_else(|| bad(name, value, "a duration of at least 500ms"))?;
                }
                "find-precision" => {
                    c.precision = percent(value)
                        .ok_or_else(|| bad(name, value, "a percentage between 0% and 100%"))?;
                }
                "find-timeout" => {
                    c.timeout = parse_duration(value)
                        .ok_or_else(|| bad(name, value, "a duration, e.g. 10m"))?;
                }
                "slo" => c
                    .objective
                    .add(value)
                    .map_err(|why| bad(name, value, &why))?,
                "sink-url" => {
                    c.sink = Some(
                        sink_url(value)
                            .ok_or_else(|| bad(name, value, "expected http://HOST:PORT"))?,
                    );
                }
                _ => {}
            }
        }
        if c.objective.delivery_p99.is_some() && c.sink.is_none() {
            return Err(Error::fatal("--slo delivery-p99 needs --sink-url"));
        }
        c.objective.delivery = c.sink.is_some();
        if c.objective.latency.is_empty() {
            c.objective.latency.push((Quantile::P99, DEFAULT_P99));
        }
        c.objective.errors.get_or_insert(DEFAULT_ERRORS);
        if c.timeout < c.step * 2 {
            return Err(Error::fatal(format!(
                "--find-timeout {} leaves no room for a confirmation step of {}",
                humantime::format_duration(c.timeout),
                humantime::format_duration(c.step * 2)
            )));
        }
        Ok(Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[(&str, &str)]) -> Result<Option<SearchConfig>> {
        let mut raw = FindRaw::default();
        for (name, value) in args {
            assert!(raw.apply(name, value.as_bytes()), "{name} is ours");
        }
        raw.check(false)
    }

    fn fatal(args: &[(&str, &str)]) -> String {
        match check(args) {
            Err(Error::Fatal(t)) => t,
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(check(&[]).expect("none"), None);
        let c = check(&[("find-max", "")]).expect("ok").expect("on");
        assert_eq!((c.start, c.factor, c.precision), (10.0, 2.0, 0.05));
        assert_eq!((c.step, c.timeout), (DEFAULT_STEP, DEFAULT_TIMEOUT));
        assert_eq!(c.objective.latency, [(Quantile::P99, DEFAULT_P99)]);
        assert_eq!(c.objective.errors, Some(0.01));
        assert!(!c.objective.delivery);
        let c = check(&[
            ("find-max", ""),
            ("find-start", "50"),
            ("find-factor", "1.5"),
            ("find-step", "2s"),
            ("find-precision", "10%"),
            ("find-timeout", "1m"),
            ("slo", "p90=100ms"),
            ("slo", "errors=0.5%"),
            ("sink-url", "http://127.0.0.1:9100/"),
            ("slo", "delivery-p99=2s"),
        ])
        .expect("ok")
        .expect("on");
        assert_eq!((c.start, c.factor, c.precision), (50.0, 1.5, 0.1));
        assert_eq!(c.step, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(60));
        assert_eq!(
            c.objective.latency,
            [(Quantile::P90, Duration::from_millis(100))]
        );
        assert_eq!(c.objective.errors, Some(0.005));
        assert!(c.objective.delivery);
        assert_eq!(
            c.sink.map(|s| s.authority).as_deref(),
            Some("127.0.0.1:9100")
        );
    }

    #[test]
    fn one_clear_line_per_bad_value() {
        let on = ("find-max", "");
        assert_eq!(
            fatal(&[("find-start", "5")]),
            "--find-start needs --find-max"
        );
        assert_eq!(
            fatal(&[on, ("find-start", "0")]),
            "bad --find-start value: 0 (msg/s > 0)"
        );
        assert_eq!(
            fatal(&[on, ("find-factor", "1")]),
            "bad --find-factor value: 1 (a number above 1, at most 100)"
        );
        assert_eq!(
            fatal(&[on, ("find-step", "100ms")]),
            "bad --find-step value: 100ms (a duration of at least 500ms)"
        );
        assert_eq!(
            fatal(&[on, ("find-precision", "0%")]),
            "bad --find-precision value: 0% (a percentage between 0% and 100%)"
        );
        assert_eq!(
            fatal(&[on, ("find-timeout", "soon")]),
            "bad --find-timeout value: soon (a duration, e.g. 10m)"
        );
        assert_eq!(
            fatal(&[on, ("slo", "p42=1s")]),
            "bad --slo value: p42=1s (unknown objective p42 (p50, p90, p99, p99.9, max, \
             errors, delivery-p99))"
        );
        for url in [
            "127.0.0.1:9100",
            "https://h:1",
            "http://h",
            "http://h:0",
            "http://:1",
        ] {
            assert_eq!(
                fatal(&[on, ("sink-url", url)]),
                format!("bad --sink-url value: {url} (expected http://HOST:PORT)")
            );
        }
        assert_eq!(
            fatal(&[on, ("slo", "delivery-p99=1s")]),
            "--slo delivery-p99 needs --sink-url"
        );
        assert_eq!(
            fatal(&[on, ("find-step", "10s"), ("find-timeout", "15s")]),
            "--find-timeout 15s leaves no room for a confirmation step of 20s"
        );
        let mut raw = FindRaw::default();
        raw.apply("find-max", b"");
        assert!(matches!(raw.check(true), Err(Error::Fatal(t)) if t.contains("not with --rate")));
        assert!(!raw.apply("rate", b"5"));
    }
}
