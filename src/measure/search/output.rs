//! What a capacity search prints: a line per step (stderr), the answer
//! line, and the search as it goes into the JSON report.

use serde::{Deserialize, Serialize};

use super::objective::us_text;
use super::{Outcome, Search, Step};

/// The search in a JSON report (`search` key): every step and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchJson {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// How it ended.
    pub outcome: Outcome,
}

impl SearchJson {
    /// The JSON form of a finished `search` (`None` while it runs).
    pub fn of(search: &Search) -> Option<SearchJson> {
        Some(SearchJson {
            steps: search.steps().to_vec(),
            outcome: search.outcome()?.clone(),
        })
    }
}

/// A rate for people: `8.25`, `120`.
pub fn rate_text(rate: f64) -> String {
    if rate < 10.0 {
        format!("{rate:.2}")
    } else if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// `errors E%[, delivered R msg/s]` of a step.
fn errors_delivered(step: &Step) -> String {
    let m = &step.measure;
    let mut text = format!("errors {:.1}%", 100.0 * m.error_share());
    if let Some(d) = &m.delivery {
        let rate = d.rate(std::time::Duration::from_secs_f64(step.duration_secs));
        text.push_str(&format!(", delivered {} msg/s", rate_text(rate)));
    }
    text
}

/// One step's line: `step N KIND: offered …, achieved …, p50 …, p99 …,
/// errors …[, delivered …]: pass|FAIL (why)`.
pub fn step_line(index: usize, step: &Step) -> String {
    let m = &step.measure;
    let verdict = if step.verdict.pass {
        "pass".to_string()
    } else {
        format!("FAIL ({})", step.verdict.reasons.join("; "))
    };
    format!(
        "step {} {}: offered {} msg/s, achieved {} msg/s, p50 {}, p99 {}, {}: {verdict}",
        index + 1,
        step.kind.name(),
        rate_text(step.offered),
        rate_text(step.achieved),
        us_text(m.latency.p50),
        us_text(m.latency.p99),
        errors_delivered(step),
    )
}

/// The final line: `sustainable: N msg/s (p99 …, errors …[, delivered …])`,
/// or `Err` with the reason there is no answer.
pub fn answer(search: &Search) -> Result<String, String> {
    let first = search.steps().first();
    match search.outcome() {
        Some(Outcome::Sustainable { rate, step }) => {
            let s = &search.steps()[*step];
            Ok(format!(
                "sustainable: {} msg/s (p99 {}, {})",
                rate_text(*rate),
                us_text(s.measure.latency.p99),
                errors_delivered(s)
            ))
        }
        Some(Outcome::FirstStepFailed) => Err(format!(
            "no sustainable rate: the first step ({} msg/s) failed: {}{}",
            rate_text(search.config().start),
            first.map_or(String::new(), |s| s.verdict.reasons.join("; ")),
            // A step cut short by an error says what to fix; else the
            // rate was too high.
            match first.and_then(|s| s.measure.run_error.as_ref()) {
                Some(_) => "",
                None => "; try a lower --find-start",
            }
        )),
        Some(Outcome::OutOfTime { best }) => Err(format!(
            "the search ran out of time (--find-timeout {}) before a rate was confirmed{}",
            humantime::format_duration(search.config().timeout),
            best.map_or(String::new(), |b| format!(
                "; highest passing step: {} msg/s",
                rate_text(b)
            ))
        )),
        Some(Outcome::Unconfirmed) => Err(format!(
            "no rate held for a confirmation step ({} failed in a row): the capacity keeps \
             falling; try a longer --find-step",
            super::MAX_CONFIRMATIONS
        )),
        None => Err("the search did not finish".to_string()),
    }
}
