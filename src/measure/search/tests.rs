//! The search against simulated servers (latency and errors as functions of
//! the offered rate), on tokio's paused clock: a ten-minute search takes
//! milliseconds and the deadline logic runs on the same virtual time.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::objective::Percentiles;
use super::output::{answer, step_line};
use super::*;

/// A server model: what a step at `rate` for `duration` measures.
type ModelFn = Box<dyn FnMut(f64, Duration) -> StepMeasure>;

struct Model {
    f: ModelFn,
    /// Offered rates, in order.
    rates: Vec<f64>,
}

const DRAIN: Duration = Duration::from_secs(1);

impl StepRunner for Model {
    async fn run_step(&mut self, rate: f64, duration: Duration) -> StepMeasure {
        self.rates.push(rate);
        let m = (self.f)(rate, duration);
        tokio::time::sleep(Duration::from_secs_f64(m.elapsed_secs)).await;
        m
    }
    async fn drain(&mut self) {
        tokio::time::sleep(DRAIN).await;
    }
    fn max_drain(&self) -> Duration {
        DRAIN
    }
}

fn latency(p50: f64, p99: f64) -> Percentiles {
    let us = |s: f64| (s * 1e6) as u64;
    Percentiles {
        min: us(p50 * 0.8),
        p50: us(p50),
        p90: us((p50 + p99) / 2.0),
        p99: us(p99),
        p999: us(p99 * 1.2),
        max: us(p99 * 1.5),
    }
}

/// A queue that serves `capacity` msg/s with `service` seconds per message
/// alone: latency `service / (1 - load)` below capacity; above it, a
/// backlog that grows for the whole step. `noise`: relative jitter of the
/// latency.
fn queue(capacity: f64, service: f64, noise: f64, seed: u64) -> ModelFn {
    let mut rng = SmallRng::seed_from_u64(seed);
    Box::new(move |rate, d| {
        let secs = d.as_secs_f64();
        let n = (rate * secs).ceil() as u64;
        let jitter = 1.0 + noise * rng.gen_range(-1.0..=1.0);
        let load = rate / capacity;
        let (p99, elapsed) = if load < 1.0 {
            (service / (1.0 - load) * jitter, secs + service)
        } else {
            let backlog = secs * (1.0 - 1.0 / load);
            (backlog + service, n as f64 / capacity + service)
        };
        StepMeasure {
            attempted: n,
            accepted: n,
            elapsed_secs: elapsed,
            latency: latency(service * jitter, p99),
            ..StepMeasure::default()
        }
    })
}

fn config(start: f64) -> SearchConfig {
    let mut c = SearchConfig {
        start,
        step: Duration::from_secs(10),
        ..SearchConfig::default()
    };
    c.objective.add("p99=500ms").expect("p99");
    c.objective.add("errors=1%").expect("errors");
    c
}

async fn run(cfg: SearchConfig, f: ModelFn) -> (Search, Vec<f64>, Vec<String>) {
    let mut model = Model {
        f,
        rates: Vec::new(),
    };
    let mut lines = Vec::new();
    let mut n = 0;
    let search = find_max(cfg, &mut model, |s| {
        lines.push(step_line(n, s));
        n += 1;
    })
    .await;
    (search, model.rates, lines)
}

fn sustainable(search: &Search) -> f64 {
    match search.outcome() {
        Some(Outcome::Sustainable { rate, .. }) => *rate,
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn monotonic_model_finds_the_knee_within_the_precision() {
    // p99 = 50 ms / (1 - load) meets 500 ms up to 90% of 1000 msg/s.
    let (search, rates, lines) = run(config(10.0), queue(1000.0, 0.05, 0.0, 1)).await;
    let found = sustainable(&search);
    assert!((900.0 / 1.05..=900.0).contains(&found), "{found} {rates:?}");
    // Ramp 10, 20, … 640 passes, 1280 fails, then bisection.
    assert_eq!(
        &rates[..8],
        [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0]
    );
    let last = search.steps().last().expect("steps");
    assert_eq!(last.kind, StepKind::Confirm);
    assert_eq!(last.duration_secs, 20.0);
    assert!(lines[7].contains("FAIL (achieved"), "{}", lines[7]);
    assert!(
        lines[0].starts_with("step 1 ramp: offered 10.0 msg/s"),
        "{}",
        lines[0]
    );
    let text = answer(&search).expect("answer");
    assert!(text.starts_with("sustainable: "), "{text}");
}

#[tokio::test(start_paused = true)]
async fn noisy_model_lands_near_the_knee() {
    for seed in 0..20 {
        let (search, _, _) = run(config(10.0), queue(1000.0, 0.05, 0.1, seed)).await;
        let found = sustainable(&search);
        assert!((765.0..=1035.0).contains(&found), "seed {seed}: {found}");
    }
}

#[tokio::test(start_paused = true)]
async fn knee_at_the_first_step_is_an_error_with_the_reason() {
    let (search, rates, _) = run(config(500.0), queue(100.0, 0.05, 0.0, 1)).await;
    assert_eq!(search.outcome(), Some(&Outcome::FirstStepFailed));
    assert_eq!(rates, [500.0]);
    let err = answer(&search).expect_err("no answer");
    assert!(
        err.starts_with("no sustainable rate: the first step (500 msg/s) failed: "),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_knee_below_the_session_cap_finds_the_cap() {
    // The server answers in 20 ms at any rate; the load generator has 4
    // sessions, so it cannot start more than 200 msg/s on time.
    let sessions = 4.0;
    let service = 0.02;
    let cap = sessions / service;
    let f: ModelFn = Box::new(move |rate, d| {
        let secs = d.as_secs_f64();
        let n = (rate * secs).ceil() as u64;
        let (p99, elapsed) = if rate <= cap {
            (service, secs + service)
        } else {
            (
                secs * (1.0 - cap / rate) + service,
                n as f64 / cap + service,
            )
        };
        StepMeasure {
            attempted: n,
            accepted: n,
            elapsed_secs: elapsed,
            latency: latency(service, p99),
            ..StepMeasure::default()
        }
    });
    let mut cfg = config(10.0);
    cfg.objective.latency = vec![(objective::Quantile::P99, Duration::from_secs(5))];
    let (search, _, _) = run(cfg, f).await;
    let found = sustainable(&search);
    // The achieved rate may fall 5% short of the offered one.
    assert!((cap / 1.05..=cap * 1.05).contains(&found), "{found}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_shows_as_errors() {
    // Above 300 msg/s, the excess is refused (421).
    let f: ModelFn = Box::new(|rate, d| {
        let n = (rate * d.as_secs_f64()).ceil() as u64;
        let refused = ((rate - 300.0).max(0.0) * d.as_secs_f64()) as u64;
        StepMeasure {
            attempted: n,
            accepted: n - refused,
            errors: refused,
            elapsed_secs: d.as_secs_f64() + 0.01,
            latency: latency(0.01, 0.02),
            ..StepMeasure::default()
        }
    });
    let (search, _, lines) = run(config(10.0), f).await;
    let found = sustainable(&search);
    assert!((300.0 / 1.05..=303.0).contains(&found), "{found}");
    assert!(lines
        .iter()
        .any(|l| l.contains("errors ") && l.contains("% > 1%")));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_search_before_a_step_that_would_overrun() {
    let mut cfg = config(10.0);
    cfg.timeout = Duration::from_secs(40);
    let start = tokio::time::Instant::now();
    let (search, rates, _) = run(cfg, queue(1000.0, 0.05, 0.0, 1)).await;
    assert!(start.elapsed() <= Duration::from_secs(40));
    assert_eq!(rates, [10.0, 20.0, 40.0]);
    assert_eq!(
        search.outcome(),
        Some(&Outcome::OutOfTime { best: Some(40.0) })
    );
    let err = answer(&search).expect_err("out of time");
    assert!(
        err.contains("ran out of time (--find-timeout 40s)"),
        "{err}"
    );
    assert!(err.ends_with("highest passing step: 40.0 msg/s"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_confirmation_moves_the_answer_down() {
    // Steps pass up to 900 msg/s while they are short; the long
    // confirmation steps pass only up to 700.
    let f: ModelFn = Box::new(|rate, d| {
        let limit = if d > Duration::from_secs(10) {
            700.0
        } else {
            900.0
        };
        let n = (rate * d.as_secs_f64()).ceil() as u64;
        let p99 = if rate <= limit { 0.05 } else { 2.0 };
        StepMeasure {
            attempted: n,
            accepted: n,
            elapsed_secs: d.as_secs_f64() + 0.05,
            latency: latency(0.04, p99),
            ..StepMeasure::default()
        }
    });
    let (search, _, _) = run(config(100.0), f).await;
    let found = sustainable(&search);
    assert!(found <= 700.0, "{found}");
    let confirms = search
        .steps()
        .iter()
        .filter(|s| s.kind == StepKind::Confirm)
        .count();
    assert!(confirms >= 2);
}

#[tokio::test(start_paused = true)]
async fn a_capacity_that_keeps_falling_is_unconfirmed() {
    // Every confirmation fails, whatever the rate.
    let f: ModelFn = Box::new(|rate, d| {
        let n = (rate * d.as_secs_f64()).ceil() as u64;
        let p99 = if d > Duration::from_secs(10) || rate > 100.0 {
            2.0
        } else {
            0.05
        };
        StepMeasure {
            attempted: n,
            accepted: n,
            elapsed_secs: d.as_secs_f64() + 0.05,
            latency: latency(0.04, p99),
            ..StepMeasure::default()
        }
    });
    let (search, _, _) = run(config(10.0), f).await;
    assert_eq!(search.outcome(), Some(&Outcome::Unconfirmed));
    let confirms = search
        .steps()
        .iter()
        .filter(|s| s.kind == StepKind::Confirm)
        .count();
    assert_eq!(confirms, MAX_CONFIRMATIONS);
    let err = answer(&search).expect_err("no answer");
    assert!(
        err.starts_with("no rate held for a confirmation step (3 failed"),
        "{err}"
    );
}
