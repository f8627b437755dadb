//! smtp-source's side of the measurements: what a run and each of its
//! sessions hold when a measurement option is on, and the output at the end.
//!
//! Without any measurement option the run holds no [`SourceMeasure`] and the
//! sessions no [`Probe`]: the Postfix path is a `None` check per hook.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::html;
use super::options::{JsonOut, ProgressMode, SourceOptions};
use super::output::{print_stderr, write_json};
use super::progress::{self, Live, Meter, Snapshot};
use super::rate::Pacing;
use super::recorder::{tick, Handle, Phase, Recorder, Tick};
use super::report::Report;
use super::shard::{self, Shard, ShardSet};
use super::start;
use super::timeline::{Clock, Timeline};
use super::track::{self, Stamper};
use crate::diag::errno_text;
use crate::diag::{self, Error, Result};
use crate::metrics::http::{Listener, Server, Site};
use crate::metrics::source::{SessionCounters, SourceMetrics};

/// The measurement state of one smtp-source run.
#[derive(Debug)]
pub struct SourceMeasure {
    opts: SourceOptions,
    lmtp: bool,
    start: Instant,
    /// `start` in Unix epoch microseconds, for the report.
    start_us: u64,
    run_id: u64,
    pacing: Option<Pacing>,
    stamper: Option<Stamper>,
    tx: Sender<Box<Recorder>>,
    rx: Mutex<Receiver<Box<Recorder>>>,
    lives: Arc<Mutex<Vec<Arc<Live>>>>,
    /// Epoch mapping of the timeline's intervals, when a timeline is kept.
    clock: Option<Clock>,
    /// This run's command line, for the report's settings.
    command: String,
    /// `--metrics`: the sessions' counter blocks.
    metrics: Option<Arc<SourceMetrics>>,
}

/// Options whose value is a secret: masked in the command line a report
/// keeps.
const SECRET_OPTIONS: &[&str] = &["--auth-password"];

/// `args` as one shell-like line (arguments with spaces or quotes in single
/// quotes), the values of [`SECRET_OPTIONS`] replaced by `***`.
pub fn command_line(args: impl IntoIterator<Item = OsString>) -> String {
    let mut words = Vec::new();
    let mut secret_next = false;
    for arg in args {
        let mut word = arg.to_string_lossy().into_owned();
        if secret_next {
            word = "***".to_string();
        }
        secret_next = SECRET_OPTIONS.contains(&word.as_str());
        for name in SECRET_OPTIONS {
            if word.starts_with(&format!("{name}=")) {
                word = format!("{name}=***");
            }
        }
        if word.is_empty() || word.contains([' ', '\'', '"', '\t', '\n']) {
            word = format!("'{}'", word.replace('\'', "'\\''"));
        }
        words.push(word);
    }
    words.join(" ")
}

impl SourceMeasure {
    /// The state for a run with `opts`, or `None` when no measurement
    /// option is on. The run's clock starts now.
    pub fn new(opts: &SourceOptions, lmtp: bool) -> Option<SourceMeasure> {
        Self::new_at(opts, lmtp, Instant::now())
    }

    /// Wait for `--start-at`, if given, then [`SourceMeasure::new`] with
    /// the run's clock started at that instant (so that the shards of a
    /// run share one schedule).
    pub async fn start(opts: &SourceOptions, lmtp: bool) -> Option<SourceMeasure> {
        let start = match opts.start_at {
            Some(at) => start::wait(at).await,
            None => Instant::now(),
        };
        Self::new_at(opts, lmtp, start)
    }

    fn new_at(opts: &SourceOptions, lmtp: bool, start: Instant) -> Option<SourceMeasure> {
        if !opts.any() {
            return None;
        }
        let since = Instant::now().saturating_duration_since(start);
        let start_us = track::now_micros()
            .saturating_sub(u64::try_from(since.as_micros()).unwrap_or(u64::MAX));
        let run_id = opts.run_id.unwrap_or_else(rand::random::<u64>);
        let shard = opts.shard.unwrap_or(Shard { index: 0, count: 1 });
        let (tx, rx) = channel();
        Some(SourceMeasure {
            pacing: (opts.rate.is_some() || opts.duration.is_some())
                .then(|| Pacing::new(start, opts.rate, opts.duration).sharded(shard)),
            stamper: opts.track.then(|| Stamper::new(run_id).sharded(shard)),
            opts: opts.clone(),
            lmtp,
            start,
            start_us,
            run_id,
            tx,
            rx: Mutex::new(rx),
            lives: Arc::new(Mutex::new(Vec::new())),
            clock: opts.timeline().then(|| Clock::new(opts.interval_ms())),
            command: command_line(std::env::args_os()),
            metrics: opts
                .metrics
                .map(|_| Arc::new(SourceMetrics::new(opts.rate))),
        })
    }

    /// With `--metrics`, bind its address and serve `/metrics` on the
    /// current runtime until the result is dropped.
    pub fn serve_metrics(&self) -> Result<Option<Server>> {
        match (&self.metrics, self.opts.metrics) {
            (Some(m), Some(addr)) => Listener::bind(addr)?
                .serve(Site::new(m.registry()))
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The run id (stamped by `--track`, shown in reports).
    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// A new session's probe, when the run records.
    pub fn probe(&self) -> Option<Box<Probe>> {
        if !self.opts.records() {
            return None;
        }
        let live = (self.opts.progress != ProgressMode::Off).then(|| {
            let live = Arc::new(Live::new());
            if let Ok(mut lives) = self.lives.lock() {
                lives.push(Arc::clone(&live));
            }
            live
        });
        let now = tick();
        let mut rec = Recorder::new(now);
        if let Some(clock) = self.clock {
            rec = rec.with_timeline(clock, now);
        }
        Some(Box::new(Probe {
            rec: Handle::new(rec, self.tx.clone()),
            live,
            start: now,
            metrics: self.metrics.as_ref().map(|m| m.session()),
        }))
    }

    /// Wait for a session's next message start (see [`Pacing::next`]),
    /// or `None` when `--duration` is over.
    pub async fn next_start(&self) -> Option<Start> {
        let Some(pacing) = &self.pacing else {
            let now = tick();
            return Some(Start { intended: now, now });
        };
        let intended = pacing.next().await?;
        // The schedule runs on tokio's clock; the recorders on ticks of the
        // same monotonic clock: carry over how late this start is.
        let late = Instant::now().saturating_duration_since(intended);
        let now = tick();
        let late = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        Some(Start {
            intended: now.saturating_sub(late),
            now,
        })
    }

    /// Whether `--rate` or `--duration` schedules the messages (a session
    /// must then not send a message's commands ahead of its turn).
    pub fn paces(&self) -> bool {
        self.pacing.is_some()
    }

    /// Whether more messages may start (a `-d` session keeps its
    /// connection only then).
    pub fn open(&self) -> bool {
        self.pacing.as_ref().is_none_or(Pacing::open)
    }

    /// `--duration` without an explicit `-m`: the message count is
    /// unlimited.
    pub fn unlimited(&self) -> bool {
        self.opts.duration.is_some()
    }

    /// With `--track`, add the tracking header lines of the next message
    /// to `out`, which holds what the message template wrote:
    /// * `headers`: the generated header block, ended by its empty line;
    ///   the stamps go before that empty line;
    /// * otherwise nothing (`-o`, `-F`): the stamps start the message; with
    ///   `separate` (`-o` without `-F`) an empty line follows, so that the
    ///   generated body stays body; a `-F` file's own headers join them.
    #[inline]
    pub fn stamp(&self, out: &mut BytesMut, headers: bool, separate: bool) {
        let Some(s) = &self.stamper else {
            return;
        };
        let blank = headers && out.ends_with(b"\r\n\r\n");
        if blank {
            out.truncate(out.len() - 2);
        }
        s.write(out, track::now_micros());
        if blank || (!headers && separate) {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Whether messages are stamped.
    pub fn tracks(&self) -> bool {
        self.stamper.is_some()
    }

    /// Start the `--progress` line, if wanted and possible.
    pub fn spawn_progress(&self) -> Option<ProgressTask> {
        let tty = std::io::stderr().is_terminal();
        let on = match self.opts.progress {
            ProgressMode::Off => false,
            ProgressMode::Terminal => tty,
            ProgressMode::Always => true,
        };
        if !on {
            return None;
        }
        let lives = Arc::clone(&self.lives);
        let start = self.start;
        let handle = tokio::spawn(async move {
            let mut meter = Meter::new(start);
            let mut tick = tokio::time::interval_at(start + progress::REFRESH, progress::REFRESH);
            // A stalled runtime must not make up for lost refreshes.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n: u32 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let snap = match lives.lock() {
                    Ok(l) => Snapshot::take(l.iter().map(|a| a.as_ref())),
                    Err(_) => return,
                };
                let status = meter.tick(Instant::now(), snap);
                let text = format!("{}: {}", diag::prog(), progress::line(&status));
                if tty {
                    // Redraw in place; `ESC [ K` clears what a longer line left.
                    print_stderr(&format!("\r{text}\x1b[K"));
                } else if n % progress::REFRESH_PER_SEC == 0 {
                    print_stderr(&format!("{text}\n"));
                }
            }
        });
        Some(ProgressTask { handle, tty })
    }

    /// End of the run: collect every session's recorder (sessions must be
    /// gone), print the report (`--report`, stderr) and write the JSON
    /// (`--json`). `incomplete`: a fatal error ended the run.
    pub fn finish(&self, incomplete: bool) -> Result<()> {
        let o = &self.opts;
        if !o.report && o.json.is_none() && o.html.is_none() {
            return Ok(());
        }
        let mut report = Report::new(self.lmtp, track::run_id_text(self.run_id), o.own_rate());
        report.set_times(self.start_us, self.start.elapsed());
        report.shards = o.shard.map(ShardSet::of);
        report.incomplete = incomplete;
        report.commands = vec![self.command.clone()];
        let mut parts = Vec::new();
        if let Ok(rx) = self.rx.lock() {
            for mut rec in rx.try_iter() {
                report.add_recorder(&rec);
                parts.extend(rec.take_timeline());
            }
        }
        if self.clock.is_some() {
            report.timeline = Some(Timeline::merge_all(o.interval_ms(), &parts));
        }
        if o.report {
            let mut text = report.render();
            if o.report_timeline {
                text.push_str(&report.render_timeline());
            }
            print_stderr(&text);
        }
        write_outputs(&report, o.json.as_ref(), o.html.as_deref())
    }
}

/// When a message starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Its scheduled start (`--rate`), else `now`.
    pub intended: Tick,
    /// Now.
    pub now: Tick,
}

/// The running `--progress` task.
#[derive(Debug)]
pub struct ProgressTask {
    handle: JoinHandle<()>,
    tty: bool,
}

impl ProgressTask {
    /// Stop it and clear the status line.
    pub fn stop(self) {
        self.handle.abort();
        if self.tty {
            print_stderr("\r\x1b[K");
        }
    }
}

/// One session's hooks. Each method is a few adds and at most one clock
/// read; nothing is shared with other sessions except the progress block
/// (written only by this session).
#[derive(Debug)]
pub struct Probe {
    rec: Handle,
    live: Option<Arc<Live>>,
    start: Tick,
    /// `--metrics`: this session's block.
    metrics: Option<Arc<SessionCounters>>,
}

impl Probe {
    /// A message starts.
    #[inline]
    pub fn begin_message(&mut self, start: Start) {
        self.start = start.intended;
        self.rec.get().begin_message(start.intended, start.now);
        if let Some(m) = &self.metrics {
            m.started();
        }
    }

    /// The message is over; `ok` false when a fatal error cut it short.
    #[inline]
    pub fn end_message(&mut self, ok: bool) {
        let rec = self.rec.get();
        if !rec.accepted() {
            if let Some(live) = &self.live {
                live.error();
            }
            if let Some(m) = &self.metrics {
                m.not_accepted(ok);
            }
        }
        rec.end_message(ok);
    }

    /// A timed step that does not follow a reply (a connect, a QUIT after
    /// waiting) starts now.
    #[inline]
    pub fn mark(&mut self) {
        self.rec.get().mark(tick());
    }

    /// A connect attempt failed.
    #[inline]
    pub fn connect_failed(&mut self) {
        self.rec.get().connect_failed();
        if let Some(m) = &self.metrics {
            m.connect_failed();
        }
    }

    /// Connected.
    #[inline]
    pub fn connected(&mut self) {
        self.rec.get().connected(tick());
        if let Some(m) = &self.metrics {
            m.connected();
        }
    }

    /// `n` bytes written.
    #[inline]
    pub fn sent(&mut self, n: usize) {
        self.rec.get().sent(n);
        if let Some(m) = &self.metrics {
            m.sent(n);
        }
    }

    /// A TLS handshake finished (see [`Recorder::tls_handshake`]).
    pub fn tls_handshake(
        &mut self,
        took: std::time::Duration,
        version: u16,
        suite: u16,
        resumed: bool,
    ) {
        self.rec.get().tls_handshake(took, version, suite, resumed);
    }

    /// A complete reply for `phase`.
    #[inline]
    pub fn reply(&mut self, phase: Phase, code: u32) {
        let now = tick();
        let rec = self.rec.get();
        let before = rec.accepted();
        rec.reply(phase, code, now);
        if !before && rec.accepted() {
            let us = now.saturating_sub(self.start) / 1000;
            if let Some(live) = &self.live {
                live.accepted(us);
            }
            if let Some(m) = &self.metrics {
                m.accepted(us);
            }
        }
    }
}

/// The session's hooks on its optional probe: each is a no-op without one,
/// so a hook is one line at its call site and one branch on the Postfix
/// path.
pub trait Hooks {
    /// See [`Probe::begin_message`].
    fn begin_message(&mut self, start: Start);
    /// See [`Probe::end_message`].
    fn end_message(&mut self, ok: bool);
    /// See [`Probe::mark`].
    fn mark(&mut self);
    /// See [`Probe::connect_failed`].
    fn connect_failed(&mut self);
    /// See [`Probe::connected`].
    fn connected(&mut self);
    /// See [`Probe::sent`].
    fn sent(&mut self, n: usize);
    /// See [`Probe::reply`].
    fn reply(&mut self, phase: Phase, code: u32);
    /// See [`Probe::tls_handshake`].
    fn tls_handshake(&mut self, took: std::time::Duration, version: u16, suite: u16, resumed: bool);
}

impl Hooks for Option<Box<Probe>> {
    #[inline]
    fn begin_message(&mut self, start: Start) {
        if let Some(p) = self {
            p.begin_message(start);
        }
    }
    #[inline]
    fn end_message(&mut self, ok: bool) {
        if let Some(p) = self {
            p.end_message(ok);
        }
    }
    #[inline]
    fn mark(&mut self) {
        if let Some(p) = self {
            p.mark();
        }
    }
    #[inline]
    fn connect_failed(&mut self) {
        if let Some(p) = self {
            p.connect_failed();
        }
    }
    #[inline]
    fn connected(&mut self) {
        if let Some(p) = self {
            p.connected();
        }
    }
    #[inline]
    fn sent(&mut self, n: usize) {
        if let Some(p) = self {
            p.sent(n);
        }
    }
    #[inline]
    fn reply(&mut self, phase: Phase, code: u32) {
        if let Some(p) = self {
            p.reply(phase, code);
        }
    }
    fn tls_handshake(
        &mut self,
        took: std::time::Duration,
        version: u16,
        suite: u16,
        resumed: bool,
    ) {
        if let Some(p) = self {
            p.tls_handshake(took, version, suite, resumed);
        }
    }
}

/// Write the JSON (`--json`) and HTML (`--html`) forms of `report`.
fn write_outputs(report: &Report, json: Option<&JsonOut>, html: Option<&Path>) -> Result<()> {
    if let Some(out) = json {
        write_json(out, &report.to_json())?;
    }
    if let Some(path) = html {
        write_json(&JsonOut::File(path.to_path_buf()), &html::page(report))?;
    }
    Ok(())
}

/// `--merge`: read the JSON reports (the operands), print the combined
/// report on stdout (with the timeline table under `--report=timeline`)
/// and, with `--json`, write it as JSON (to stdout instead of the text with
/// `--json -`); with `--html`, as an HTML page.
pub fn merge_files(opts: &SourceOptions) -> Result<()> {
    let (files, json) = (&opts.files, opts.json.as_ref());
    if files.is_empty() {
        return Err(Error::fatal("--merge needs one or more report files"));
    }
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let shown = file.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::fatal(format!("read {shown}: {}", errno_text(&e))))?;
        let report = Report::from_json(&text)
            .map_err(|e| Error::fatal(format!("{shown}: bad report: {e}")))?;
        reports.push((shown, report));
    }
    let parts: Vec<shard::Part> = reports
        .iter()
        .map(|(name, r)| shard::Part {
            name,
            run_ids: &r.run_ids,
            shards: r.shards.as_ref(),
            incomplete: r.incomplete,
        })
        .collect();
    let selection = shard::select(&parts)?;
    for warning in &selection.warnings {
        diag::warning(warning);
    }
    let mut merged: Option<Report> = None;
    for &i in &selection.keep {
        let report = &reports[i].1;
        match &mut merged {
            Some(m) => m.merge(report),
            None => merged = Some(report.clone()),
        }
    }
    let merged = merged.ok_or_else(|| Error::fatal("no report"))?;
    if json != Some(&JsonOut::Stdout) {
        let mut text = merged.render();
        if opts.report_timeline {
            text.push_str(&merged.render_timeline());
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    write_outputs(&merged, json, opts.html.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(f: impl FnOnce(&mut SourceOptions)) -> SourceOptions {
        let mut o = SourceOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn nothing_without_options() {
        assert!(SourceMeasure::new(&SourceOptions::default(), false).is_none());
        let m = SourceMeasure::new(&opts(|o| o.track = true), false).expect("measure");
        assert!(m.probe().is_none(), "--track alone records nothing");
        assert!(m.tracks() && m.open() && !m.unlimited());
    }

    #[tokio::test]
    async fn probes_feed_the_report_even_when_sessions_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        let o = opts(|o| o.json = Some(JsonOut::File(path.clone())));
        let m = SourceMeasure::new(&o, true).expect("measure");
        let mut a = m.probe().expect("probe");
        let mut b = m.probe().expect("probe");
        for p in [&mut a, &mut b] {
            let start = m.next_start().await.expect("start");
            p.begin_message(start);
            p.mark();
            p.connected();
            p.reply(Phase::Banner, 220);
            p.sent(10);
            p.reply(Phase::Dot, 250);
        }
        a.end_message(true);
        // b is cut short: it never ends its message (a cancelled task).
        drop(a);
        drop(b);
        m.finish(true).expect("finish");
        let report =
            Report::from_json(&std::fs::read_to_string(&path).expect("json")).expect("report");
        assert_eq!(report.counters.sessions, 2);
        assert_eq!(report.counters.accepted, 2);
        assert_eq!(report.counters.bytes_sent, 20);
        assert!(report.incomplete);
        assert_eq!(report.protocol, "LMTP");
        assert_eq!(report.run_ids, [track::run_id_text(m.run_id())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_start_keeps_its_intended_time() {
        let m = SourceMeasure::new(&opts(|o| o.rate = Some(10.0)), false).expect("measure");
        let first = m.next_start().await.expect("ticket 0");
        assert_eq!(first.intended, first.now);
        // The session was busy for 300 ms: ticket 1 was due at 100 ms.
        tokio::time::advance(std::time::Duration::from_millis(300)).await;
        let late = m.next_start().await.expect("ticket 1");
        assert_eq!(late.now - late.intended, 200_000_000);
        // Ticket 2 (due at 200 ms) is late by 100 ms; ticket 3 is on time.
        let t2 = m.next_start().await.expect("ticket 2");
        assert_eq!(t2.now - t2.intended, 100_000_000);
        let t3 = m.next_start().await.expect("ticket 3");
        assert_eq!(t3.now - t3.intended, 0);
    }

    #[test]
    fn stamps_go_into_the_header_section() {
        let m = SourceMeasure::new(&opts(|o| o.track = true), false).expect("measure");
        let run = track::run_id_text(m.run_id());
        let strip = |b: &BytesMut| {
            String::from_utf8_lossy(b)
                .lines()
                .map(|l| {
                    if l.starts_with("X-Smtpstone-Sent: ") {
                        "X-Smtpstone-Sent: T"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        };
        let mut out = BytesMut::from(&b"From: <a>\r\nTo: <b>\r\n\r\n"[..]);
        m.stamp(&mut out, true, true);
        assert_eq!(
            strip(&out),
            format!(
                "From: <a>|To: <b>|X-Smtpstone-Run: {run}|X-Smtpstone-Seq: 0|X-Smtpstone-Sent: T|"
            )
        );
        assert!(out.ends_with(b"\r\n\r\n"));
        let mut out = BytesMut::new();
        m.stamp(&mut out, false, true);
        assert_eq!(
            strip(&out),
            format!("X-Smtpstone-Run: {run}|X-Smtpstone-Seq: 1|X-Smtpstone-Sent: T|")
        );
        let mut out = BytesMut::new();
        m.stamp(&mut out, false, false);
        assert!(!out.ends_with(b"\r\n\r\n"));
        let none = SourceMeasure::new(&opts(|o| o.report = true), false).expect("measure");
        let mut out = BytesMut::from(&b"x\r\n\r\n"[..]);
        none.stamp(&mut out, true, true);
        assert_eq!(&out[..], b"x\r\n\r\n");
    }

    #[test]
    fn command_lines_mask_secrets() {
        let args = |a: &[&str]| command_line(a.iter().map(OsString::from));
        assert_eq!(
            args(&[
                "smtp-source",
                "--auth-password",
                "s3cret",
                "-S",
                "a b",
                "h:25"
            ]),
            "smtp-source --auth-password *** -S 'a b' h:25"
        );
        assert_eq!(
            args(&["smtp-source", "--auth-password=s3cret", "-f", "it's"]),
            "smtp-source --auth-password=*** -f 'it'\\''s'"
        );
    }

    #[test]
    fn merge_files_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{}").expect("write");
        let missing = dir.path().join("missing.json");
        let fatal = |files: &[OsString]| match merge_files(&opts(|o| o.files = files.to_vec())) {
            Err(Error::Fatal(t)) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(fatal(&[]), "--merge needs one or more report files");
        assert!(fatal(&[missing.clone().into()]).ends_with("No such file or directory"));
        assert!(fatal(&[bad.clone().into()]).contains("bad.json: bad report: "));
    }
}
