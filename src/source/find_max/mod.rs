//! `smtp-source --find-max`: the capacity search ([`crate::measure::search`])
//! run with real steps: each step is an open-loop run of this source
//! (`--rate R --duration D`, errors counted instead of fatal as with `-A`),
//! measured by its own run report; with `--sink-url`, also by what the sink
//! behind the server received of it.
//!
//! Draining between steps: a step's run ends only when every message it
//! started has its final reply (each bounded by `-t`), so the server holds
//! none of its load on our side. With `--sink-url`, the next step also
//! waits until the sink has every message the server accepted, at most
//! [`MAX_DRAIN`]; without it, a pause of [`SETTLE`].

mod sink_url;

pub use sink_url::SinkClient;

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::diag::{self, Error, Result};
use crate::measure::options::{JsonOut, SourceOptions};
use crate::measure::output::{print_stderr, write_json};
use crate::measure::report::Report;
use crate::measure::search::output::{answer, step_line, SearchJson};
use crate::measure::search::{self, SearchConfig, StepMeasure, StepRunner};
use crate::measure::source_side::command_line;
use crate::measure::{html, timeline};

use super::{SourceConfig, Summary};

/// After a step's schedule ends, how long its messages may take to arrive
/// at the sink behind the server and still count as delivered in time.
pub const DELIVERY_GRACE: Duration = Duration::from_secs(5);

/// Longest wait, with `--sink-url`, for the server's queue to empty into
/// the sink before the next step.
pub const MAX_DRAIN: Duration = Duration::from_secs(30);

/// Pause between steps without `--sink-url`.
pub const SETTLE: Duration = Duration::from_millis(250);

/// The real steps: open-loop runs of the source.
struct SourceSteps {
    base: SourceConfig,
    sink: Option<SinkClient>,
    /// Where each step's run report is written, then read back.
    report_path: PathBuf,
    /// Every step's run report, in order.
    reports: Vec<Report>,
    /// With `--sink-url`: the last step's run id and accepted count.
    pending: Option<(String, u64)>,
}

impl SourceSteps {
    /// The configuration of one step.
    fn step_config(&self, rate: f64, duration: Duration) -> SourceConfig {
        let mut c = self.base.clone();
        let o = &self.base.measure;
        c.measure = SourceOptions {
            rate: Some(rate),
            duration: Some(duration),
            json: Some(JsonOut::File(self.report_path.clone())),
            interval_ms: o.interval_ms,
            progress: o.progress,
            track: o.track || self.sink.is_some(),
            quiet_rejects: true,
            ..SourceOptions::default()
        };
        // A refused message is a measurement here, not the end of the run.
        c.ignore_errors = true;
        c.counter = false;
        c
    }

    async fn measure_step(&mut self, rate: f64, duration: Duration) -> Result<StepMeasure> {
        let started = Instant::now();
        let outcome =
            super::run_once(self.step_config(rate, duration), std::future::pending()).await;
        // A run that failed before its first message wrote no report:
        // its own error is the reason.
        let text = match std::fs::read_to_string(&self.report_path) {
            Ok(text) => text,
            Err(e) => {
                let missing = Error::fatal(format!("step report: {}", diag::errno_text(&e)));
                return Err(outcome.err().unwrap_or(missing));
            }
        };
        let _ = std::fs::remove_file(&self.report_path);
        let report =
            Report::from_json(&text).map_err(|e| Error::fatal(format!("step report: {e}")))?;
        let mut m = StepMeasure::of_report(&report);
        m.run_error = outcome.err().map(|e| e.to_string());
        if let (Some(sink), Some(run_id)) = (&self.sink, report.run_ids.first()) {
            let deadline = started + duration + DELIVERY_GRACE;
            m.delivery = Some(sink.delivery(run_id, m.accepted, deadline).await?);
            self.pending = Some((run_id.clone(), m.accepted));
        }
        self.reports.push(report);
        Ok(m)
    }
}

impl StepRunner for SourceSteps {
    async fn run_step(&mut self, rate: f64, duration: Duration) -> StepMeasure {
        match self.measure_step(rate, duration).await {
            Ok(m) => m,
            Err(e) => StepMeasure {
                run_error: Some(e.to_string()),
                ..StepMeasure::default()
            },
        }
    }

    async fn drain(&mut self) {
        let (Some(sink), Some((run_id, accepted))) = (&self.sink, self.pending.take()) else {
            tokio::time::sleep(SETTLE).await;
            return;
        };
        let deadline = Instant::now() + MAX_DRAIN;
        if let Err(e) = sink.delivery(&run_id, accepted, deadline).await {
            diag::warning(&e.to_string());
        }
    }

    fn max_drain(&self) -> Duration {
        if self.sink.is_some() {
            MAX_DRAIN
        } else {
            SETTLE
        }
    }
}

/// Run the capacity search of `config` (`--find-max`): a line per step on
/// stderr, the answer on stdout, `--json`/`--html` with every step.
pub async fn run(config: SourceConfig, search: SearchConfig) -> Result<Summary> {
    // What a plain run checks before its first session is fatal here too,
    // before the first step: an unknown host, a bad endpoint, an unreadable
    // -F file (docs/smtp-source.md §3).
    super::target(&config)?;
    super::message::body(&config)?;
    let report_path = std::env::temp_dir().join(format!(
        "smtp-source-find-max.{}.{:x}.json",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut steps = SourceSteps {
        sink: search.sink.as_ref().map(|s| SinkClient::new(&s.authority)),
        base: config,
        report_path,
        reports: Vec::new(),
        pending: None,
    };
    if let Some(sink) = &steps.sink {
        sink.check().await?;
    }
    let mut n = 0;
    let done = search::find_max(search, &mut steps, |step| {
        print_stderr(&format!("{}: {}\n", diag::prog(), step_line(n, step)));
        n += 1;
    })
    .await;
    write_outputs(&steps.base.measure, &steps.reports, &done)?;
    let line = answer(&done).map_err(Error::Fatal)?;
    if steps.base.measure.json == Some(JsonOut::Stdout) {
        // stdout holds the JSON report.
        print_stderr(&format!("{line}\n"));
    } else {
        println!("{line}");
    }
    let c = steps.reports.iter().fold((0, 0), |(m, k), r| {
        (m + r.counters.accepted, k + r.counters.connects)
    });
    Ok(Summary {
        messages: c.0,
        connections: c.1,
    })
}

/// `--report` (stderr), `--json`, `--html`: the steps' run reports merged
/// (their timelines line up on the epoch) with the search's steps and
/// outcome.
fn write_outputs(o: &SourceOptions, reports: &[Report], done: &search::Search) -> Result<()> {
    if !o.report && o.json.is_none() && o.html.is_none() {
        return Ok(());
    }
    let mut all = reports
        .iter()
        .cloned()
        .reduce(|mut a, b| {
            a.merge(&b);
            a
        })
        .unwrap_or_else(|| Report::new(false, String::new(), None));
    all.elapsed = reports.iter().map(|r| r.elapsed).sum();
    all.target_rate = None;
    all.commands = vec![command_line(std::env::args_os())];
    all.search = SearchJson::of(done);
    if all.timeline.is_none() {
        all.timeline = Some(timeline::Timeline::merge_all(o.interval_ms(), []));
    }
    if o.report {
        let mut text = all.render();
        if o.report_timeline {
            text.push_str(&all.render_timeline());
        }
        print_stderr(&text);
    }
    if let Some(out) = &o.json {
        write_json(out, &all.to_json())?;
    }
    if let Some(path) = &o.html {
        write_json(&JsonOut::File(path.clone()), &html::page(&all))?;
    }
    Ok(())
}
