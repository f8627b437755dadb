//! What a capacity-search step must meet (`--slo`), what a step measured,
//! and the verdict: pass, or fail with every reason.
//!
//! Latency is the message latency from its *intended* start (open loop,
//! see [`crate::measure::rate`]), so a server that stalls shows as latency
//! instead of lowering the load.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Share of the offered rate a step must achieve (and, with `--sink-url`,
/// deliver): below it the load generator or the server fell behind.
pub const MIN_SHARE: f64 = 0.95;

/// A latency percentile an objective can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quantile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest value.
    Max,
}

impl Quantile {
    /// Its name in `--slo` and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P90 => "p90",
            Quantile::P99 => "p99",
            Quantile::P999 => "p99.9",
            Quantile::Max => "max",
        }
    }

    fn parse(name: &str) -> Option<Quantile> {
        [
            Quantile::P50,
            Quantile::P90,
            Quantile::P99,
            Quantile::P999,
            Quantile::Max,
        ]
        .into_iter()
        .find(|q| q.name() == name)
    }

    /// The value of this percentile in `p`.
    pub fn of(self, p: &Percentiles) -> u64 {
        match self {
            Quantile::P50 => p.p50,
            Quantile::P90 => p.p90,
            Quantile::P99 => p.p99,
            Quantile::P999 => p.p999,
            Quantile::Max => p.max,
        }
    }
}

/// Latency percentiles of a step, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Smallest value.
    pub min: u64,
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

impl From<super::super::hist::Summary> for Percentiles {
    fn from(s: super::super::hist::Summary) -> Percentiles {
        Percentiles {
            min: s.min,
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            p999: s.p999,
            max: s.max,
        }
    }
}

/// The objectives every step is judged by.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Objective {
    /// `--slo pNN=D`: message latency limits.
    pub latency: Vec<(Quantile, Duration)>,
    /// `--slo errors=N%`: largest share of failed messages (0..1).
    pub errors: Option<f64>,
    /// `--slo delivery-p99=D` (needs `--sink-url`).
    pub delivery_p99: Option<Duration>,
    /// `--sink-url` was given: delivery is judged too.
    pub delivery: bool,
}

impl Objective {
    /// Take one `--slo NAME=VALUE`; `Err` holds the reason.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or("expected NAME=VALUE, e.g. p99=500ms or errors=1%")?;
        let duration =
            || super::super::rate::parse_duration(value).ok_or(format!("bad duration {value}"));
        if name == "errors" {
            let share = value
                .strip_suffix('%')
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or("errors takes a percentage from 0% to 100%, e.g. errors=1%")?;
            self.errors = Some(share / 100.0);
        } else if name == "delivery-p99" {
            self.delivery_p99 = Some(duration()?);
        } else if let Some(q) = Quantile::parse(name) {
            self.latency.push((q, duration()?));
        } else {
            return Err(format!(
                "unknown objective {name} (p50, p90, p99, p99.9, max, errors, delivery-p99)"
            ));
        }
        Ok(())
    }
}

/// What the sink behind the server saw of one step (`--sink-url`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// Distinct messages of the step received by the end of the step plus
    /// the grace period.
    pub in_time: u64,
    /// Messages the server accepted that had not arrived by then (its
    /// queue).
    pub backlog: u64,
    /// Delivery latency (sent to received) p99, microseconds.
    pub p99_us: u64,
    /// From the first to the last of those arrivals, microseconds.
    #[serde(default)]
    pub span_us: u64,
}

impl Delivery {
    /// Messages delivered per second in a step of `step`: those in time
    /// over the time they took to arrive, never less than the step.
    ///
    /// A server that keeps up delivers a step's messages over about the
    /// step (shifted by its delivery latency), so this is the offered
    /// rate. One whose queue grows delivers them at its own pace, spread
    /// beyond the step into the grace period, so this is that pace however
    /// long the grace: counting arrivals by the deadline alone would let a
    /// step of `D` seconds pass at up to `(D + grace) / (0.95 D)` times the
    /// server's capacity.
    pub fn rate(&self, step: Duration) -> f64 {
        let span = (self.span_us as f64 / 1e6).max(step.as_secs_f64());
        self.in_time as f64 / span
    }
}

/// What one step measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepMeasure {
    /// Messages started (the schedule's tickets).
    pub attempted: u64,
    /// Messages accepted at end of data.
    pub accepted: u64,
    /// Rejected (4xx/5xx) and failed messages, failed connects.
    pub errors: u64,
    /// From the step's start to its last reply, seconds.
    pub elapsed_secs: f64,
    /// Message latency from its intended start.
    pub latency: Percentiles,
    /// A fatal error that ended the step early (a lost connection, a
    /// timeout).
    pub run_error: Option<String>,
    /// With `--sink-url`.
    pub delivery: Option<Delivery>,
}

impl StepMeasure {
    /// The figures of an open-loop run's report (no delivery, no error).
    pub fn of_report(report: &super::super::report::Report) -> StepMeasure {
        let c = &report.counters;
        let latency = &report.latency[super::super::recorder::Phase::Message.index()];
        StepMeasure {
            attempted: c.attempted,
            accepted: c.accepted,
            errors: c.rejected + c.failed + c.connect_failures,
            elapsed_secs: report.elapsed.as_secs_f64(),
            latency: super::super::hist::summary(latency).into(),
            run_error: None,
            delivery: None,
        }
    }

    /// Accepted messages per second over the span of the schedule: the
    /// wall time less the fastest message's latency (the time the last
    /// message needs anyway), never less than the step. A backlog that
    /// the server or the sessions cannot clear lengthens that span.
    pub fn achieved(&self, step: Duration) -> f64 {
        let span = (self.elapsed_secs - self.latency.min as f64 / 1e6).max(step.as_secs_f64());
        self.accepted as f64 / span
    }

    /// Share of attempted messages that failed.
    pub fn error_share(&self) -> f64 {
        (self.errors as f64 / self.attempted.max(1) as f64).min(1.0)
    }
}

/// The judgement of one step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// Every objective met.
    pub pass: bool,
    /// Why not: one entry per objective missed.
    pub reasons: Vec<String>,
}

/// `us` microseconds for people: `850ms`, `1.25s`.
pub fn us_text(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{}ms", us / 1_000)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Judge step `m`, run at `offered` msg/s for `step`.
pub fn judge(obj: &Objective, offered: f64, step: Duration, m: &StepMeasure) -> Verdict {
    let mut why = Vec::new();
    if let Some(e) = &m.run_error {
        why.push(format!("step ended early: {e}"));
    }
    let achieved = m.achieved(step);
    if achieved < MIN_SHARE * offered {
        why.push(format!(
            "achieved {:.0}% of offered < {:.0}%",
            100.0 * achieved / offered,
            100.0 * MIN_SHARE
        ));
    }
    for &(q, limit) in &obj.latency {
        let v = q.of(&m.latency);
        if m.accepted == 0 {
            why.push(format!("{} not measured: no message accepted", q.name()));
        } else if v > duration_us(limit) {
            why.push(format!(
                "{} {} > {}",
                q.name(),
                us_text(v),
                us_text(duration_us(limit))
            ));
        }
    }
    if let Some(limit) = obj.errors {
        if m.error_share() > limit {
            why.push(format!(
                "errors {:.1}% > {}%",
                100.0 * m.error_share(),
                100.0 * limit
            ));
        }
    }
    if obj.delivery {
        judge_delivery(obj, offered, step, m.delivery.as_ref(), &mut why);
    }
    Verdict {
        pass: why.is_empty(),
        reasons: why,
    }
}

fn judge_delivery(
    obj: &Objective,
    offered: f64,
    step: Duration,
    d: Option<&Delivery>,
    why: &mut Vec<String>,
) {
    let Some(d) = d else {
        why.push("no delivery figures from the sink".to_string());
        return;
    };
    let rate = d.rate(step);
    if rate < MIN_SHARE * offered {
        let mut text = format!(
            "delivered {:.0}% of offered < {:.0}%",
            100.0 * rate / offered,
            100.0 * MIN_SHARE
        );
        if d.backlog > 0 {
            let _ = write!(text, " ({} accepted, still queued)", d.backlog);
        }
        why.push(text);
    }
    if let Some(limit) = obj.delivery_p99 {
        if d.p99_us > duration_us(limit) {
            why.push(format!(
                "delivery-p99 {} > {}",
                us_text(d.p99_us),
                us_text(duration_us(limit))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(accepted: u64, errors: u64, p99_ms: u64) -> StepMeasure {
        StepMeasure {
            attempted: accepted + errors,
            accepted,
            errors,
            elapsed_secs: 10.05,
            latency: Percentiles {
                min: 50_000,
                p50: 60_000,
                p90: 70_000,
                p99: p99_ms * 1000,
                p999: p99_ms * 1000,
                max: p99_ms * 1000,
            },
            ..StepMeasure::default()
        }
    }

    #[test]
    fn objectives_parse_with_one_clear_reason() {
        let mut o = Objective::default();
        o.add("p99=500ms").expect("p99");
        o.add("p99.9=2s").expect("p99.9");
        o.add("errors=1%").expect("errors");
        o.add("delivery-p99=2s").expect("delivery");
        assert_eq!(
            o.latency,
            [
                (Quantile::P99, Duration::from_millis(500)),
                (Quantile::P999, Duration::from_secs(2))
            ]
        );
        assert_eq!(o.errors, Some(0.01));
        assert_eq!(o.delivery_p99, Some(Duration::from_secs(2)));
        assert_eq!(
            o.add("p98=1s").unwrap_err(),
            "unknown objective p98 (p50, p90, p99, p99.9, max, errors, delivery-p99)"
        );
        assert_eq!(o.add("p99=soon").unwrap_err(), "bad duration soon");
        assert!(o.add("errors=1").unwrap_err().starts_with("errors takes"));
        assert!(o.add("errors=101%").is_err());
        assert!(o.add("p99").unwrap_err().starts_with("expected NAME=VALUE"));
    }

    #[test]
    fn a_step_passes_or_fails_with_every_reason() {
        let mut o = Objective::default();
        o.add("p99=500ms").expect("p99");
        o.add("errors=1%").expect("errors");
        let step = Duration::from_secs(10);
        let ok = judge(&o, 100.0, step, &measure(1000, 0, 120));
        assert!(ok.pass, "{ok:?}");
        let bad = judge(&o, 100.0, step, &measure(800, 200, 900));
        assert!(!bad.pass);
        assert_eq!(
            bad.reasons,
            [
                "achieved 80% of offered < 95%",
                "p99 900ms > 500ms",
                "errors 20.0% > 1%"
            ]
        );
    }

    #[test]
    fn a_backlog_lowers_the_achieved_rate() {
        let mut m = measure(1000, 0, 100);
        assert!((m.achieved(Duration::from_secs(10)) - 100.0).abs() < 1e-9);
        // The last replies came 5 s after the schedule ended.
        m.elapsed_secs = 15.05;
        assert!((m.achieved(Duration::from_secs(10)) - 1000.0 / 15.0).abs() < 1e-9);
    }

    #[test]
    fn delivery_is_judged_as_a_rate_against_the_offered_one() {
        let o = Objective {
            delivery: true,
            delivery_p99: Some(Duration::from_secs(2)),
            ..Objective::default()
        };
        let step = Duration::from_secs(10);
        let mut m = measure(1000, 0, 100);
        assert_eq!(
            judge(&o, 100.0, step, &m).reasons,
            ["no delivery figures from the sink"]
        );
        // Arrived over the step (a span shorter than the step counts as
        // the step).
        m.delivery = Some(Delivery {
            in_time: 990,
            backlog: 10,
            p99_us: 300_000,
            span_us: 9_900_000,
        });
        assert!(judge(&o, 100.0, step, &m).pass);
        // Every message in before the deadline, but spread over 15 s: the
        // queue grew at a third of the offered rate.
        m.delivery = Some(Delivery {
            in_time: 1000,
            backlog: 0,
            p99_us: 1_500_000,
            span_us: 15_000_000,
        });
        assert_eq!(
            judge(&o, 100.0, step, &m).reasons,
            ["delivered 67% of offered < 95%"]
        );
        m.delivery = Some(Delivery {
            in_time: 600,
            backlog: 400,
            p99_us: 4_000_000,
            span_us: 10_000_000,
        });
        assert_eq!(
            judge(&o, 100.0, step, &m).reasons,
            [
                "delivered 60% of offered < 95% (400 accepted, still queued)",
                "delivery-p99 4.00s > 2.00s"
            ]
        );
    }
}
