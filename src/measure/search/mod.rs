//! Capacity search (`smtp-source --find-max`): the highest open-loop rate
//! a server sustains within its objectives ([`objective`]).
//!
//! The search is plain data ([`Search`]): it says which step to run next
//! and takes each step's measurements; [`find_max`] drives it through a
//! [`StepRunner`], so the logic is tested against simulated servers on
//! tokio's paused clock, and the real runner (open-loop runs of the source)
//! lives with the source.
//!
//! Steps: ramp from `--find-start`, multiplying by `--find-factor` while
//! steps pass; after the first failure, bisect between the last passing
//! and the first failing rate until they are within `--find-precision`;
//! then confirm the answer with a step twice as long. A failed confirmation
//! makes that rate the failing bound and the search goes on below it.

pub mod objective;
pub mod options;
pub mod output;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use objective::{judge, Objective, StepMeasure, Verdict};
pub use options::SearchConfig;

/// Highest rate the ramp offers: beyond it the answer is "at least this"
/// (a million messages a second is past any single SMTP server).
pub const MAX_RATE: f64 = 1e6;

/// Failed confirmations after which the search gives up (a server whose
/// capacity keeps falling has no steady answer).
pub const MAX_CONFIRMATIONS: usize = 3;

/// What a step is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Ramping up by the factor.
    Ramp,
    /// Between the last pass and the first failure.
    Bisect,
    /// At the answer, twice as long.
    Confirm,
}

impl StepKind {
    /// Its name in the output.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Ramp => "ramp",
            StepKind::Bisect => "bisect",
            StepKind::Confirm => "confirm",
        }
    }
}

/// A step to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Offered rate, msg/s.
    pub rate: f64,
    /// How long messages are started.
    pub duration: Duration,
    /// What for.
    pub kind: StepKind,
}

/// A step that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Offered rate, msg/s.
    pub offered: f64,
    /// Achieved rate, msg/s (see [`StepMeasure::achieved`]).
    pub achieved: f64,
    /// Step length, seconds.
    pub duration_secs: f64,
    /// What for.
    pub kind: StepKind,
    /// What it measured.
    pub measure: StepMeasure,
    /// Pass or fail, and why.
    pub verdict: Verdict,
}

/// How the search ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The highest confirmed rate.
    Sustainable {
        /// msg/s.
        rate: f64,
        /// Index of the confirming step.
        step: usize,
    },
    /// The first step already failed: nothing below it was tried.
    FirstStepFailed,
    /// `--find-timeout` ran out before a rate was confirmed.
    OutOfTime {
        /// The highest passing rate seen, unconfirmed.
        best: Option<f64>,
    },
    /// [`MAX_CONFIRMATIONS`] confirmation steps failed in a row.
    Unconfirmed,
}

/// The search's state: what passed, what failed, what comes next.
#[derive(Debug, Clone)]
pub struct Search {
    cfg: SearchConfig,
    /// Every step so far.
    steps: Vec<Step>,
    /// Highest passing rate not refuted by a confirmation.
    lo: Option<f64>,
    /// Lowest failing rate.
    hi: Option<f64>,
    confirmations_failed: usize,
    /// After a failed confirmation, every step is as long as a
    /// confirmation: short steps passed where the long one did not.
    long: bool,
    done: Option<Outcome>,
}

impl Search {
    /// A search with `cfg`.
    pub fn new(cfg: SearchConfig) -> Search {
        Search {
            cfg,
            steps: Vec::new(),
            lo: None,
            hi: None,
            confirmations_failed: 0,
            long: false,
            done: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SearchConfig {
        &self.cfg
    }

    /// The steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.done.as_ref()
    }

    /// The next step, or `None` when the search is over.
    pub fn next(&self) -> Option<Plan> {
        if self.done.is_some() {
            return None;
        }
        let step = if self.long {
            self.cfg.step * 2
        } else {
            self.cfg.step
        };
        let plan = |rate: f64, kind| {
            Some(Plan {
                rate,
                duration: step,
                kind,
            })
        };
        match (self.lo, self.hi) {
            (None, None) => plan(self.cfg.start, StepKind::Ramp),
            (Some(lo), None) if lo >= MAX_RATE => self.confirm(lo),
            (Some(lo), None) => plan((lo * self.cfg.factor).min(MAX_RATE), StepKind::Ramp),
            (Some(lo), Some(hi)) if hi - lo > self.cfg.precision * lo => {
                plan((lo + hi) / 2.0, StepKind::Bisect)
            }
            (Some(lo), Some(_)) => self.confirm(lo),
            // Unreachable: a failure with nothing passed ends the search.
            (None, Some(_)) => None,
        }
    }

    fn confirm(&self, rate: f64) -> Option<Plan> {
        Some(Plan {
            rate,
            duration: self.cfg.step * 2,
            kind: StepKind::Confirm,
        })
    }

    /// Take the measurements of `plan`'s step.
    pub fn record(&mut self, plan: Plan, measure: StepMeasure) -> &Step {
        let verdict = judge(&self.cfg.objective, plan.rate, plan.duration, &measure);
        let pass = verdict.pass;
        self.steps.push(Step {
            offered: plan.rate,
            achieved: measure.achieved(plan.duration),
            duration_secs: plan.duration.as_secs_f64(),
            kind: plan.kind,
            measure,
            verdict,
        });
        let index = self.steps.len() - 1;
        match (plan.kind, pass) {
            (StepKind::Confirm, true) => {
                self.done = Some(Outcome::Sustainable {
                    rate: plan.rate,
                    step: index,
                })
            }
            (StepKind::Confirm, false) => self.refute(plan.rate),
            (_, true) => self.lo = Some(self.lo.map_or(plan.rate, |lo| lo.max(plan.rate))),
            (_, false) if self.lo.is_none() => self.done = Some(Outcome::FirstStepFailed),
            (_, false) => self.hi = Some(self.hi.map_or(plan.rate, |hi| hi.min(plan.rate))),
        }
        &self.steps[index]
    }

    /// A confirmation at `rate` failed: it becomes the failing bound; the
    /// short steps that passed below it prove little now, so the search
    /// goes on with long steps from one ramp factor below (which a later
    /// confirmation tests if nothing above it passes).
    fn refute(&mut self, rate: f64) {
        self.confirmations_failed += 1;
        self.long = true;
        self.hi = Some(rate);
        self.lo = Some(rate / self.cfg.factor);
        if self.confirmations_failed >= MAX_CONFIRMATIONS {
            self.done = Some(Outcome::Unconfirmed);
        }
    }

    /// The deadline left no room for `plan` (plus a drain).
    pub fn out_of_time(&mut self) {
        self.done = Some(Outcome::OutOfTime { best: self.lo });
    }
}

/// Runs the steps: an open-loop run at a rate for a while, then a drain.
pub trait StepRunner {
    /// Run one step at `rate` msg/s, starting messages for `duration`.
    fn run_step(&mut self, rate: f64, duration: Duration) -> impl Future<Output = StepMeasure>;
    /// Let the server settle before the next step; at most
    /// [`StepRunner::max_drain`].
    fn drain(&mut self) -> impl Future<Output = ()>;
    /// The longest [`StepRunner::drain`] can take (for the deadline).
    fn max_drain(&self) -> Duration;
}

/// Run the whole search with `runner`; `on_step` sees each step as it
/// ends. The deadline (`--find-timeout`) is checked before each step: a
/// step that would not end (with its drain) in time is not started.
pub async fn find_max<R: StepRunner>(
    cfg: SearchConfig,
    runner: &mut R,
    mut on_step: impl FnMut(&Step),
) -> Search {
    let deadline = Instant::now() + cfg.timeout;
    let mut search = Search::new(cfg);
    while let Some(plan) = search.next() {
        let needs = plan.duration + runner.max_drain();
        if Instant::now() + needs > deadline {
            search.out_of_time();
            break;
        }
        let measure = runner.run_step(plan.rate, plan.duration).await;
        on_step(search.record(plan, measure));
        if search.outcome().is_none() {
            runner.drain().await;
        }
    }
    search
}

#[cfg(test)]
mod tests;
