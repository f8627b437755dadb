//! Side-by-side benchmark of our `smtp-source`/`smtp-sink` and Postfix's.
//!
//! ```text
//! cargo run --release --example bench -- [--rounds N] [--workload NAME…] [--cells CELL…]
//!     [--json FILE] [--ours-dir DIR] [--postfix-dir DIR] [--quick | --scale N]
//!     [--timeout SECS] [--no-build]
//! ```
//!
//! Every traffic workload runs the matrix source ∈ {Postfix, ours} × sink ∈
//! {Postfix, ours}, plus the floor (an in-process minimal pair, floor.rs);
//! the cells alternate within each round so that machine drift hits all of
//! them alike. Each cell gets a fresh sink on a free
//! loopback port. Measured: the source's wall time and CPU (wait4 rusage),
//! the sink's CPU (utime+stime delta of /proc/PID/stat across the run). The
//! `idle` workload holds N connected idle sessions against each sink and
//! reports the sink's resident memory growth per session. The `metrics` and
//! `policy` workloads run ours → ours only, with `/metrics` of both tools
//! scraped (scrape.rs) or a 100-rule policy on the sink. Markdown goes to
//! stdout, progress to stderr, raw samples to `--json FILE`.
//!
//! Without `--ours-dir`, the bench runs `cargo build --release --bins` and
//! uses the binaries of the target directory it was itself built in. Point
//! `--ours-dir /usr/sbin` (or env `SMTPSTONE_BENCH_OURS_DIR`) at Postfix to
//! check the bench itself with Postfix in all four roles.

mod floor;
mod model;
mod scrape;

use model::{
    Cell, FloorCheck, Harness, IdleSample, Kind, Outcome, Report, RunSample, Side, Workload,
    CELL_NAMES, IDLE_SINKS, WORKLOADS,
};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Listen backlog passed to the sinks; the kernel caps it at somaxconn.
const SINK_BACKLOG: u32 = 4096;
/// Listen backlog for the idle workload (sessions arrive in bursts).
const IDLE_BACKLOG: u32 = 16384;
/// How long a fresh sink may take to accept its first connection.
const SINK_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting a sink on a free port before giving up on a cell.
const SINK_START_ATTEMPTS: u32 = 8;
/// Idle sessions opened before their greetings are collected (bounds the
/// number of connections waiting in the sink's accept queue).
const IDLE_BATCH: usize = 256;
/// Pause after the last idle greeting before reading VmRSS, so that the
/// sink has finished whatever it does right after greeting.
const IDLE_SETTLE: Duration = Duration::from_millis(500);
/// Bytes of a failing process's stderr kept for the report.
const DETAIL_BYTES: usize = 2000;
/// Messages of the floor check (one session): enough for several
/// transactions on one connection, quick even for `big`.
const CHECK_MESSAGES: u64 = 10;

struct Options {
    rounds: u32,
    workloads: Vec<Workload>,
    /// Traffic cells to run (`--cells`), in [`model::CELLS`] order.
    cells: Vec<Cell>,
    json: Option<PathBuf>,
    ours_source: PathBuf,
    ours_sink: PathBuf,
    postfix_source: PathBuf,
    postfix_sink: PathBuf,
    scale: u64,
    timeout: Duration,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn cli() -> clap::Command {
    use clap::{value_parser, Arg, ArgAction};
    let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
    clap::Command::new("bench")
        .about("Benchmark our smtp-source/smtp-sink against Postfix's, side by side")
        .arg(
            Arg::new("rounds")
                .long("rounds")
                .value_name("N")
                .default_value("3")
                .value_parser(value_parser!(u32).range(1..))
                .help("Rounds; every round runs every cell of every workload once"),
        )
        .arg(
            Arg::new("workload")
                .long("workload")
                .value_name("NAME")
                .num_args(1..)
                .action(ArgAction::Append)
                .value_parser(names)
                .help("Workloads to run, in this order (default: all)"),
        )
        .arg(
            Arg::new("cells")
                .long("cells")
                .value_name("CELL")
                .num_args(1..)
                .action(ArgAction::Append)
                .value_parser(CELL_NAMES)
                .help("Traffic cells to run: pp po op oo (source×sink, p = Postfix, o = ours) and floor (default: all)"),
        )
        .arg(Arg::new("json").long("json").value_name("FILE").help("Write every raw sample as JSON"))
        .arg(
            Arg::new("ours-dir")
                .long("ours-dir")
                .value_name("DIR")
                .help("Directory with our smtp-source and smtp-sink [env SMTPSTONE_BENCH_OURS_DIR; default: build and use target/release]"),
        )
        .arg(
            Arg::new("postfix-dir")
                .long("postfix-dir")
                .value_name("DIR")
                .default_value("/usr/sbin")
                .help("Directory with Postfix's smtp-source and smtp-sink"),
        )
        .arg(
            Arg::new("quick")
                .long("quick")
                .action(ArgAction::SetTrue)
                .conflicts_with("scale")
                .help("Scale message and idle-session counts down by 10"),
        )
        .arg(
            Arg::new("scale")
                .long("scale")
                .value_name("N")
                .value_parser(value_parser!(u64).range(1..))
                .help("Scale message and idle-session counts down by N"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECS")
                .default_value("300")
                .value_parser(value_parser!(u64).range(1..))
                .help("Time limit of every single run"),
        )
        .arg(
            Arg::new("render")
                .long("render")
                .value_name("JSON")
                .help("Run nothing: print the Markdown report of a JSON file written by --json"),
        )
        .arg(
            Arg::new("no-build")
                .long("no-build")
                .action(ArgAction::SetTrue)
                .help("Do not run `cargo build --release --bins` first"),
        )
}

fn real_main() -> Result<ExitCode, String> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let m = cli().get_matches_from(&argv);
    if let Some(path) = m.get_one::<String>("render") {
        print!("{}", render_saved(Path::new(path))?);
        return Ok(ExitCode::SUCCESS);
    }
    let opts = options(&m)?;
    raise_nofile_limit();
    let started = Instant::now();
    let load_before = loadavg();
    let samples = run_all(&opts, started);
    let header = report_header(&argv, &opts, &load_before, started.elapsed());
    let md = model::render_markdown(&Report {
        header: header.clone(),
        workloads: &opts.workloads,
        rounds: opts.rounds,
        runs: &samples.runs,
        idle: &samples.idle,
        checks: &samples.checks,
        scaled: opts.scale != 1,
    });
    print!("{md}");
    if let Some(path) = &opts.json {
        write_json(path, &argv, &opts, &header, &samples)?;
    }
    let failed = samples.runs.iter().filter(|s| !s.outcome.is_ok()).count()
        + samples.idle.iter().filter(|s| !s.outcome.is_ok()).count()
        + samples.checks.iter().filter(|c| !c.same()).count();
    if failed > 0 {
        eprintln!("bench: {failed} run(s) failed (see the Failures section)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The checked options of a run (builds our binaries unless told where
/// they are).
fn options(m: &clap::ArgMatches) -> Result<Options, String> {
    let scale = if m.get_flag("quick") {
        10
    } else {
        m.get_one::<u64>("scale").copied().unwrap_or(1)
    };
    let workloads: Vec<Workload> = match m.get_many::<String>("workload") {
        None => WORKLOADS.to_vec(),
        Some(names) => {
            let mut v: Vec<Workload> = Vec::new();
            for n in names {
                let w = model::workload(n).ok_or_else(|| format!("unknown workload {n}"))?;
                if !v.contains(&w) {
                    v.push(w);
                }
            }
            v
        }
    };
    let workloads: Vec<Workload> = workloads.into_iter().map(|w| w.scaled(scale)).collect();
    let cells: Vec<Cell> = match m.get_many::<String>("cells") {
        None => model::CELLS.to_vec(),
        Some(names) => {
            let chosen: Vec<Cell> = names.filter_map(|n| model::cell_by_name(n)).collect();
            model::CELLS
                .into_iter()
                .filter(|c| chosen.contains(c))
                .collect()
        }
    };
    let ours_dir = match m.get_one::<String>("ours-dir").map(PathBuf::from) {
        Some(d) => d,
        None => match std::env::var_os("SMTPSTONE_BENCH_OURS_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                if !m.get_flag("no-build") {
                    cargo_build()?;
                }
                release_dir()?
            }
        },
    };
    let postfix_dir = PathBuf::from(m.get_one::<String>("postfix-dir").expect("has default"));
    let opts = Options {
        rounds: *m.get_one::<u32>("rounds").expect("has default"),
        workloads,
        cells,
        json: m.get_one::<String>("json").map(PathBuf::from),
        ours_source: ours_dir.join("smtp-source"),
        ours_sink: ours_dir.join("smtp-sink"),
        postfix_source: postfix_dir.join("smtp-source"),
        postfix_sink: postfix_dir.join("smtp-sink"),
        scale,
        timeout: Duration::from_secs(*m.get_one::<u64>("timeout").expect("has default")),
    };
    for p in [
        &opts.ours_source,
        &opts.ours_sink,
        &opts.postfix_source,
        &opts.postfix_sink,
    ] {
        if !p.is_file() {
            return Err(format!("{}: no such file", p.display()));
        }
    }
    Ok(opts)
}

/// Everything one bench run measured.
struct Samples {
    runs: Vec<RunSample>,
    idle: Vec<IdleSample>,
    checks: Vec<FloorCheck>,
}

/// The floor checks, then every round of every workload's cells.
fn run_all(opts: &Options, started: Instant) -> Samples {
    let mut out = Samples {
        runs: Vec::new(),
        idle: Vec::new(),
        checks: Vec::new(),
    };
    if opts.cells.contains(&model::CELLS[4]) {
        for w in &opts.workloads {
            let traffic = matches!(w.kind, Kind::Traffic { .. });
            if traffic && model::workload_cells(w).contains(&model::CELLS[4]) {
                let c = floor_check(opts, w);
                progress_check(&c, started);
                out.checks.push(c);
            }
        }
    }
    for round in 1..=opts.rounds {
        for w in &opts.workloads {
            match w.kind {
                Kind::Traffic { .. } => {
                    let cells = model::workload_cells(w);
                    for cell in cells.into_iter().filter(|c| opts.cells.contains(c)) {
                        let s = match cell.source {
                            Side::Floor => run_floor(opts, w, round),
                            _ => run_cell(opts, w, round, cell),
                        };
                        progress_run(opts, &s, started);
                        out.runs.push(s);
                    }
                }
                Kind::Idle { sessions } => {
                    for sink in IDLE_SINKS {
                        let s = run_idle(opts, w, round, sink, sessions);
                        progress_idle(opts, &s, started);
                        out.idle.push(s);
                    }
                }
            }
        }
    }
    out
}

/// `--json FILE`: every raw sample with the settings that produced them.
fn write_json(
    path: &Path,
    argv: &[OsString],
    opts: &Options,
    header: &[String],
    samples: &Samples,
) -> Result<(), String> {
    let doc = serde_json::json!({
        "header": header,
        "command": argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "rounds": opts.rounds,
        "scale": opts.scale,
        "timeout_s": opts.timeout.as_secs(),
        "binaries": {
            "ours_source": opts.ours_source, "ours_sink": opts.ours_sink,
            "postfix_source": opts.postfix_source, "postfix_sink": opts.postfix_sink,
        },
        "workloads": opts.workloads.iter().map(|w| serde_json::json!({
            "name": w.name, "description": w.describe(),
            "source_args": w.source_args(), "sink_args": w.sink_args(),
        })).collect::<Vec<_>>(),
        "runs": samples.runs,
        "idle": samples.idle,
        "floor_checks": samples.checks,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("json: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// Re-render the report of a `--json` file (e.g. after a change of the
/// report format, without re-running an hour of benchmarks).
fn render_saved(path: &Path) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Saved {
        header: Vec<String>,
        rounds: u32,
        scale: u64,
        workloads: Vec<SavedWorkload>,
        runs: Vec<RunSample>,
        idle: Vec<IdleSample>,
        #[serde(default)]
        floor_checks: Vec<FloorCheck>,
    }
    #[derive(serde::Deserialize)]
    struct SavedWorkload {
        name: String,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: Saved =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let workloads = saved
        .workloads
        .iter()
        .map(|w| {
            model::workload(&w.name)
                .map(|w| w.scaled(saved.scale))
                .ok_or_else(|| format!("{}: unknown workload {}", path.display(), w.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(model::render_markdown(&Report {
        header: saved.header,
        workloads: &workloads,
        rounds: saved.rounds,
        runs: &saved.runs,
        idle: &saved.idle,
        checks: &saved.floor_checks,
        scaled: saved.scale != 1,
    }))
}

// ---------------------------------------------------------------------------
// Locating binaries, machine description
// ---------------------------------------------------------------------------

/// Variables `cargo run` sets for the program it runs. They must not reach
/// the nested build: a build script that watches one of them (ring's
/// watches `CARGO_MANIFEST_DIR`) would then run again, here and again in the
/// next `cargo run`, rebuilding the crates above it (a minute of both
/// cores) right before every measurement.
const CARGO_RUN_ENV_PREFIXES: [&str; 5] = [
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
];

fn cargo_build() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: cargo build --release --bins");
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let set_by_run = name
            .to_str()
            .is_some_and(|n| CARGO_RUN_ENV_PREFIXES.iter().any(|p| n.starts_with(p)));
        if set_by_run {
            cmd.env_remove(name);
        }
    }
    let st = cmd
        .args(["build", "--release", "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build --release --bins failed: {st}"));
    }
    Ok(())
}

/// The `release` directory of the target directory this example lives in
/// (`target/release/examples/bench` → `target/release`).
fn release_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: unexpected location", exe.display()))?;
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        return Ok(profile_dir.to_path_buf());
    }
    let sibling = profile_dir.with_file_name("release");
    eprintln!(
        "bench: warning: the bench itself was not built with --release; using {}",
        sibling.display()
    );
    Ok(sibling)
}

/// `commit abc1234` (plus ` + uncommitted changes`) of the checkout this
/// bench was built from.
fn git_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "commit {c}{}",
                if dirty { " + uncommitted changes" } else { "" }
            )
        }
        None => "unknown commit".into(),
    }
}

fn mtime_utc(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| model::utc_string(d.as_secs() as i64))
        .unwrap_or_else(|| "unknown".into())
}

/// The first three fields of /proc/loadavg (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn report_header(
    argv: &[OsString],
    opts: &Options,
    load_before: &str,
    took: Duration,
) -> Vec<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let cmd: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    vec![
        "## smtpstone benchmark".into(),
        String::new(),
        format!("- date: {}", model::utc_string(now)),
        format!("- machine: {nproc} CPU(s), {cpu}, Linux {kernel}"),
        format!(
            "- load average (1/5/15 min): {load_before} at start, {} at end; run took {:.0} s",
            loadavg(),
            took.as_secs_f64()
        ),
        format!(
            "- command: `cargo run --release --example bench --{}{}`",
            if cmd.is_empty() { "" } else { " " },
            cmd.join(" ")
        ),
        format!(
            "- smtpstone checkout: {}; our binaries built {} / {}",
            git_commit(),
            mtime_utc(&opts.ours_source),
            mtime_utc(&opts.ours_sink)
        ),
        format!(
            "- ours: `{}`, `{}`; Postfix: `{}`, `{}`",
            opts.ours_source.display(),
            opts.ours_sink.display(),
            opts.postfix_source.display(),
            opts.postfix_sink.display()
        ),
    ]
}

fn progress_run(opts: &Options, s: &RunSample, started: Instant) {
    let what = match (&s.outcome, s.wall_s) {
        (Outcome::Ok, Some(w)) => format!(
            "{w:.3} s, {:.0} msg/s, source CPU {:.3} s, sink CPU {:.3} s{}",
            s.msgs_per_s().unwrap_or(0.0),
            s.source_cpu_s().unwrap_or(0.0),
            s.sink_cpu_s.unwrap_or(0.0),
            s.scrapes.map(|c| format!(", {c}")).unwrap_or_default()
        ),
        (o, _) => format!(
            "FAILED: {}{}",
            o.label(),
            s.detail
                .as_deref()
                .map(|d| format!(": {}", model::one_line(d)))
                .unwrap_or_default()
        ),
    };
    eprintln!(
        "[{:>6.1}s] round {}/{} {:<5} source {:<7} sink {:<7} {what}",
        started.elapsed().as_secs_f64(),
        s.round,
        opts.rounds,
        s.workload,
        s.source.to_string(),
        s.sink.to_string()
    );
}

fn progress_idle(opts: &Options, s: &IdleSample, started: Instant) {
    let what = match (&s.outcome, s.kib_per_session()) {
        (Outcome::Ok, Some(k)) => format!(
            "{} sessions, RSS {} → {} KiB, {k:.2} KiB/session",
            s.sessions_open,
            s.rss_before_kib.unwrap_or(0),
            s.rss_after_kib.unwrap_or(0)
        ),
        (o, _) => format!(
            "FAILED: {} ({} of {} open){}",
            o.label(),
            s.sessions_open,
            s.sessions_target,
            s.detail
                .as_deref()
                .map(|d| format!(": {}", model::one_line(d)))
                .unwrap_or_default()
        ),
    };
    eprintln!(
        "[{:>6.1}s] round {}/{} {:<5} sink {:<7} {what}",
        started.elapsed().as_secs_f64(),
        s.round,
        opts.rounds,
        s.workload,
        s.sink.to_string()
    );
}

// ---------------------------------------------------------------------------
// Process plumbing
// ---------------------------------------------------------------------------

/// Raise the soft open-file limit to the hard limit; children inherit it.
/// (`wide` needs >1000 descriptors per process, `idle` >10,000.)
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("bench: warning: cannot raise RLIMIT_NOFILE to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("bench: warning: getrlimit: {e}"),
    }
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn read_stat(pid: u32) -> Result<model::ProcStat, String> {
    read_stat_file(&format!("/proc/{pid}/stat"))
}

/// CPU of one thread of the bench itself (the floor server).
fn read_thread_stat(tid: i32) -> Result<model::ProcStat, String> {
    read_stat_file(&format!("/proc/self/task/{tid}/stat"))
}

fn read_stat_file(path: &str) -> Result<model::ProcStat, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    model::parse_proc_stat(&text).map_err(|e| e.to_string())
}

fn read_rss_kib(pid: u32) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    model::parse_vm_rss_kib(&text).ok_or_else(|| format!("/proc/{pid}/status: no VmRSS"))
}

/// The first `DETAIL_BYTES` of a captured stderr file, or `None` if empty.
fn captured(mut f: &File) -> Option<String> {
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.take(DETAIL_BYTES as u64).read_to_end(&mut buf).ok()?;
    let s = String::from_utf8_lossy(&buf).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A running sink. Killed (SIGKILL) and reaped on drop.
struct Sink {
    child: Child,
    port: u16,
    /// The `--metrics` address, when the sink serves one.
    metrics: Option<SocketAddr>,
    stderr: File,
}

impl Sink {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(detail)` if the sink has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!(
                "sink exited ({st}){}",
                captured(&self.stderr)
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            Ok(None) => None,
            Err(e) => Some(format!("sink wait: {e}")),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port below the kernel's ephemeral range (so that neither other
/// processes binding port 0 nor the tens of thousands of outgoing source
/// connections can be handed the same number) that is free right now.
fn pick_port() -> Option<u16> {
    use rand::Rng;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (lo, hi) = if low > 12_000 {
        (10_000u16, low)
    } else {
        (40_000u16, 60_000u16)
    };
    let mut rng = rand::thread_rng();
    for _ in 0..100 {
        let p = rng.gen_range(lo..hi);
        // std's bind sets SO_REUSEADDR but not SO_REUSEPORT: this fails if
        // anybody listens on the port.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return Some(p);
        }
    }
    // Fall back to a kernel-chosen port.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// Start a sink and wait until it greets with our unique hostname and is
/// the only listener on its port. Retries on port races. With `metrics`,
/// the sink also serves `/metrics` on a free loopback port of its own.
fn start_sink(
    bin: &Path,
    workload_args: &[String],
    backlog: u32,
    metrics: bool,
) -> Result<Sink, String> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut last_err = String::from("no attempt");
    for _ in 0..SINK_START_ATTEMPTS {
        let Some(port) = pick_port() else {
            last_err = "no free port".into();
            continue;
        };
        // A metrics port taken meanwhile makes the sink exit: next attempt.
        let metrics = match metrics.then(pick_port) {
            None => None,
            Some(Some(p)) => Some(SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            Some(None) => {
                last_err = "no free port for --metrics".into();
                continue;
            }
        };
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("bench{}x{n}", std::process::id());
        let stderr = tempfile::tempfile().map_err(|e| format!("tempfile: {e}"))?;
        let mut cmd = Command::new(bin);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(["-h", &token]).args(workload_args);
        if let Some(addr) = metrics {
            cmd.args([model::METRICS_OPTION.to_string(), addr.to_string()]);
        }
        cmd.arg(format!("127.0.0.1:{port}"))
            .arg(backlog.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                stderr.try_clone().map_err(|e| format!("dup: {e}"))?,
            ));
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut sink = Sink {
            child,
            port,
            metrics,
            stderr,
        };
        match wait_sink_ready(&mut sink, &token) {
            Ok(()) => return Ok(sink),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn wait_sink_ready(sink: &mut Sink, token: &str) -> Result<(), String> {
    let deadline = Instant::now() + SINK_READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, sink.port));
    loop {
        if let Some(e) = sink.exited() {
            return Err(e);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sink did not accept on port {} within {:?}",
                sink.port, SINK_READY_TIMEOUT
            ));
        }
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let greeting = read_line(&stream, Duration::from_secs(5))?;
        let want = format!("220 {token}");
        if !greeting.starts_with(&want) {
            return Err(format!("port {}: foreign greeting {greeting:?}", sink.port));
        }
        let _ = (&stream).write_all(b"QUIT\r\n");
        let _ = read_line(&stream, Duration::from_secs(5));
        drop(stream);
        let listeners = std::fs::read_to_string("/proc/net/tcp")
            .map(|t| model::count_tcp_listeners(&t, sink.port))
            .unwrap_or(1);
        if listeners != 1 {
            return Err(format!("port {}: {listeners} listeners", sink.port));
        }
        return Ok(());
    }
}

/// Read one CRLF-terminated line (bounded in time and size).
fn read_line(mut stream: &TcpStream, timeout: Duration) -> Result<String, String> {
    const MAX_LINE: usize = 4096;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    while !buf.ends_with(b"\r\n") && buf.len() < MAX_LINE {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("EOF after {:?}", String::from_utf8_lossy(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

/// Exit status and rusage of a reaped child.
struct Reaped {
    status: libc::c_int,
    rusage: libc::rusage,
    timed_out: bool,
}

fn tv_s(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Wait for `pid` (not yet reaped, not waited on by anybody else) for at
/// most `timeout`; SIGKILL it on timeout; reap it with wait4 to get its
/// rusage. Uses a pidfd so the exit is noticed at once.
fn wait_with_timeout(pid: libc::pid_t, timeout: Duration) -> Result<Reaped, String> {
    let deadline = Instant::now() + timeout;
    // SAFETY: plain syscalls on integers we own; the pidfd is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        if pidfd >= 0 {
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: pfd is a valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if r > 0 {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll(pidfd): {}", std::io::Error::last_os_error()));
            }
        } else {
            // No pidfd (old kernel): peek at the child's state (WNOWAIT
            // leaves it for the wait4 below).
            // SAFETY: siginfo_t is plain old data; waitid gets a valid pointer.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: see above.
            let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
            // SAFETY: si_pid is valid to read after a successful waitid.
            if r == 0 && unsafe { info.si_pid() } == pid {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if timed_out {
        // SAFETY: the child is not reaped yet, so the pid still names it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if pidfd >= 0 {
        // SAFETY: closing the descriptor we opened.
        unsafe { libc::close(pidfd) };
    }
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return Ok(Reaped {
                status,
                rusage,
                timed_out,
            });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

fn run_cell(opts: &Options, w: &Workload, round: u32, cell: Cell) -> RunSample {
    let mut s = RunSample {
        workload: w.name.into(),
        round,
        source: cell.source,
        sink: cell.sink,
        messages: w.messages(),
        outcome: Outcome::Error,
        wall_s: None,
        source_user_s: None,
        source_sys_s: None,
        sink_cpu_s: None,
        detail: None,
        scrapes: None,
    };
    let (source_bin, sink_bin) = (
        if cell.source == Side::Ours {
            &opts.ours_source
        } else {
            &opts.postfix_source
        },
        if cell.sink == Side::Ours {
            &opts.ours_sink
        } else {
            &opts.postfix_sink
        },
    );
    // The policy file lives as long as the cell.
    let policy = match w.harness {
        Harness::Policy { rules } => match policy_file(rules) {
            Ok(f) => Some(f),
            Err(e) => {
                s.detail = Some(e);
                return s;
            }
        },
        Harness::Plain | Harness::Scrape => None,
    };
    let mut sink_args = w.sink_args();
    if let Some(f) = &policy {
        sink_args.extend([
            model::POLICY_OPTION.to_string(),
            f.path().display().to_string(),
        ]);
    }
    let scraped = w.harness == Harness::Scrape;
    let mut sink = match start_sink(sink_bin, &sink_args, SINK_BACKLOG, scraped) {
        Ok(sink) => sink,
        Err(e) => {
            s.outcome = Outcome::SinkStart;
            s.detail = Some(e);
            return s;
        }
    };
    if let Err(e) = run_source(opts, w, &mut sink, source_bin, &mut s) {
        s.outcome = Outcome::Error;
        s.detail = Some(e);
    }
    s
}

fn run_source(
    opts: &Options,
    w: &Workload,
    sink: &mut Sink,
    bin: &Path,
    s: &mut RunSample,
) -> Result<(), String> {
    let ticks = ticks_per_second();
    let mut args = w.source_args();
    let scrape_addrs = source_metrics(sink, &mut args)?;
    let sink_before = read_stat(sink.pid())?;
    let stderr = tempfile::tempfile().map_err(|e| format!("tempfile: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg(format!("127.0.0.1:{}", sink.port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            stderr.try_clone().map_err(|e| format!("dup: {e}"))?,
        ));
    // Started just before the source, so that the first tick finds the
    // source starting (bench/README.md, "Workloads").
    let scraper = scrape_addrs
        .map(|(sink, source)| scrape::Scraper::start(sink, source))
        .transpose()?;
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
    let reaped = wait_with_timeout(child.id() as libc::pid_t, opts.timeout)?;
    let wall = start.elapsed().as_secs_f64();
    // The child was reaped by wait4; std's handle must not wait again.
    drop(child);
    let sink_after = read_stat(sink.pid());
    let sink_gone = sink.exited();
    let scraped = scraper.map(scrape::Scraper::finish).transpose()?;

    s.wall_s = Some(wall);
    s.source_user_s = Some(tv_s(reaped.rusage.ru_utime));
    s.source_sys_s = Some(tv_s(reaped.rusage.ru_stime));
    if let Ok(after) = &sink_after {
        s.sink_cpu_s = Some(model::cpu_delta_s(&sink_before, after, ticks));
    }
    let st = reaped.status;
    s.outcome = if reaped.timed_out {
        Outcome::Timeout
    } else if libc::WIFSIGNALED(st) {
        Outcome::Signal(libc::WTERMSIG(st))
    } else if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) != 0 {
        Outcome::Exit(libc::WEXITSTATUS(st))
    } else if sink_gone.is_some() {
        Outcome::SinkDied
    } else if let Err(e) = sink_after {
        s.detail = Some(e);
        Outcome::Error
    } else {
        Outcome::Ok
    };
    if !s.outcome.is_ok() && s.detail.is_none() {
        let mut d = Vec::new();
        if reaped.timed_out {
            d.push(format!("killed after {} s", opts.timeout.as_secs()));
        }
        if let Some(e) = captured(&stderr) {
            d.push(format!("source stderr: {e}"));
        }
        if let Some(e) = sink_gone {
            d.push(e);
        }
        s.detail = (!d.is_empty()).then(|| d.join("; "));
    }
    if let Some(f) = scraped {
        check_scrapes(s, f);
    }
    Ok(())
}

/// With a sink serving `/metrics`, give the source `--metrics` on a free
/// loopback port too; the two addresses to scrape.
fn source_metrics(
    sink: &Sink,
    source_args: &mut Vec<String>,
) -> Result<Option<(SocketAddr, SocketAddr)>, String> {
    let Some(sink_addr) = sink.metrics else {
        return Ok(None);
    };
    let port = pick_port().ok_or("no free port for the source's --metrics")?;
    let source_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    source_args.extend([model::METRICS_OPTION.to_string(), source_addr.to_string()]);
    Ok(Some((sink_addr, source_addr)))
}

/// Record the scrapes; a run in which no scrape of the sink's page
/// succeeded measured nothing of their cost and is an error.
fn check_scrapes(s: &mut RunSample, f: scrape::Finished) {
    s.scrapes = Some(f.scrapes);
    if s.outcome.is_ok() && f.scrapes.sink_ok == 0 {
        s.outcome = Outcome::Error;
        s.detail = Some(format!(
            "no successful scrape of the sink's /metrics ({}){}",
            f.scrapes,
            f.sink_error
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        ));
    }
}

/// The `policy` workload's file (model::accept_all_policy) in a temporary
/// file, removed when dropped.
fn policy_file(rules: usize) -> Result<tempfile::NamedTempFile, String> {
    let mut f = tempfile::Builder::new()
        .prefix("smtpstone-bench-policy-")
        .suffix(".toml")
        .tempfile()
        .map_err(|e| format!("policy file: {e}"))?;
    f.write_all(model::accept_all_policy(rules).as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| format!("policy file {}: {e}", f.path().display()))?;
    Ok(f)
}

fn run_idle(opts: &Options, w: &Workload, round: u32, side: Side, sessions: u64) -> IdleSample {
    let mut s = IdleSample {
        workload: w.name.into(),
        round,
        sink: side,
        sessions_target: sessions,
        sessions_open: 0,
        outcome: Outcome::Error,
        rss_before_kib: None,
        rss_after_kib: None,
        detail: None,
    };
    let bin = if side == Side::Ours {
        &opts.ours_sink
    } else {
        &opts.postfix_sink
    };
    let mut sink = match start_sink(bin, &w.sink_args(), IDLE_BACKLOG, false) {
        Ok(sink) => sink,
        Err(e) => {
            s.outcome = Outcome::SinkStart;
            s.detail = Some(e);
            return s;
        }
    };
    let deadline = Instant::now() + opts.timeout;
    match idle_measure(&mut sink, sessions, deadline, &mut s) {
        Ok(()) => s.outcome = Outcome::Ok,
        Err((outcome, e)) => {
            s.outcome = outcome;
            s.detail = Some(e);
        }
    }
    s
}

fn idle_measure(
    sink: &mut Sink,
    sessions: u64,
    deadline: Instant,
    s: &mut IdleSample,
) -> Result<(), (Outcome, String)> {
    let err = |e: String| (Outcome::Error, e);
    s.rss_before_kib = Some(read_rss_kib(sink.pid()).map_err(err)?);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, sink.port));
    let mut open: Vec<TcpStream> = Vec::with_capacity(sessions as usize);
    let mut greeted = 0usize;
    while (open.len() as u64) < sessions {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err((
                Outcome::Timeout,
                format!("{} connected, {greeted} greeted", open.len()),
            ));
        }
        let stream = TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(10)))
            .map_err(|e| err(format!("connect #{}: {e}", open.len() + 1)))?;
        open.push(stream);
        if open.len() - greeted >= IDLE_BATCH || open.len() as u64 == sessions {
            for st in &open[greeted..] {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                let line = read_line(st, left)
                    .map_err(|e| err(format!("greeting #{}: {e}", greeted + 1)))?;
                if !line.starts_with("220 ") {
                    return Err(err(format!("greeting #{}: {line:?}", greeted + 1)));
                }
                greeted += 1;
                s.sessions_open = greeted as u64;
            }
        }
    }
    std::thread::sleep(IDLE_SETTLE);
    if let Some(e) = sink.exited() {
        return Err((Outcome::SinkDied, e));
    }
    s.rss_after_kib = Some(read_rss_kib(sink.pid()).map_err(err)?);
    drop(open);
    Ok(())
}

// ---------------------------------------------------------------------------
// The floor (examples/bench/floor.rs)
// ---------------------------------------------------------------------------

/// The floor cell: the in-process client against the in-process server,
/// measured as the other cells (client thread: rusage; server thread:
/// utime+stime delta of its /proc stat).
fn run_floor(opts: &Options, w: &Workload, round: u32) -> RunSample {
    let mut s = RunSample {
        workload: w.name.into(),
        round,
        source: Side::Floor,
        sink: Side::Floor,
        messages: w.messages(),
        outcome: Outcome::Error,
        wall_s: None,
        source_user_s: None,
        source_sys_s: None,
        sink_cpu_s: None,
        detail: None,
        scrapes: None,
    };
    let server = match floor::Server::start(w.dialogue().starttls, SINK_BACKLOG) {
        Ok(server) => server,
        Err(e) => {
            s.outcome = Outcome::SinkStart;
            s.detail = Some(e);
            return s;
        }
    };
    match floor_measure(opts, w, server, &mut s) {
        Ok(()) => s.outcome = Outcome::Ok,
        Err(e) => s.detail = Some(e),
    }
    s
}

fn floor_measure(
    opts: &Options,
    w: &Workload,
    server: floor::Server,
    s: &mut RunSample,
) -> Result<(), String> {
    let script = floor::Script::new(w, std::process::id())?;
    let before = read_thread_stat(server.tid)?;
    let run = floor::run_client(server.addr, script, opts.timeout)?;
    let after = read_thread_stat(server.tid)?;
    let counters = server.stop()?;
    s.wall_s = Some(run.wall.as_secs_f64());
    s.source_user_s = Some(run.user_s);
    s.source_sys_s = Some(run.sys_s);
    s.sink_cpu_s = Some(model::cpu_delta_s(&before, &after, ticks_per_second()));
    if run.messages != w.messages() || counters.messages != w.messages() {
        return Err(format!(
            "{} messages sent, {} received, {} expected",
            run.messages,
            counters.messages,
            w.messages()
        ));
    }
    Ok(())
}

/// Our source and the floor client, one session each, against fresh floor
/// servers: what the server received must be the same (commands, bytes,
/// messages, round trips).
fn floor_check(opts: &Options, w: &Workload) -> FloorCheck {
    let wc = w.for_check(CHECK_MESSAGES);
    let mut c = FloorCheck {
        workload: w.name.into(),
        messages: wc.messages(),
        ours: None,
        floor: None,
        detail: None,
    };
    let tls = wc.dialogue().starttls;
    let ours = floor::Server::start(tls, SINK_BACKLOG).and_then(|server| {
        let pid = check_source(opts, &wc, server.addr)?;
        Ok((pid, server.stop()?))
    });
    let pid = match ours {
        Ok((pid, counters)) => {
            c.ours = Some(counters);
            pid
        }
        Err(e) => {
            c.detail = Some(format!("our source: {e}"));
            return c;
        }
    };
    // The source's pid in Message-Id, so that the bytes are the same.
    let floor = floor::Server::start(tls, SINK_BACKLOG).and_then(|server| {
        let script = floor::Script::new(&wc, pid)?;
        floor::run_client(server.addr, script, opts.timeout)?;
        server.stop()
    });
    match floor {
        Ok(counters) => c.floor = Some(counters),
        Err(e) => c.detail = Some(format!("floor client: {e}")),
    }
    c
}

/// Run our source for `w` against `addr`; its pid once it exited 0.
fn check_source(opts: &Options, w: &Workload, addr: SocketAddr) -> Result<u32, String> {
    let stderr = tempfile::tempfile().map_err(|e| format!("tempfile: {e}"))?;
    let child = Command::new(&opts.ours_source)
        .args(w.source_args())
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            stderr.try_clone().map_err(|e| format!("dup: {e}"))?,
        ))
        .spawn()
        .map_err(|e| format!("{}: {e}", opts.ours_source.display()))?;
    let pid = child.id();
    let reaped = wait_with_timeout(pid as libc::pid_t, opts.timeout)?;
    drop(child);
    let st = reaped.status;
    if reaped.timed_out || !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
        return Err(format!(
            "exit status {st:#x}{}",
            captured(&stderr)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    Ok(pid)
}

fn progress_check(c: &FloorCheck, started: Instant) {
    let what = match (c.same(), &c.ours, &c.floor) {
        (true, Some(k), _) => format!(
            "same counts: {}",
            k.fields().map(|(n, v)| format!("{n} {v}")).join(", ")
        ),
        (false, Some(o), Some(f)) => format!("DIFFERENT: {:?} vs {:?}", o, f),
        _ => format!("FAILED: {}", c.detail.as_deref().unwrap_or("?")),
    };
    eprintln!(
        "[{:>6.1}s] floor check {:<7} {what}",
        started.elapsed().as_secs_f64(),
        c.workload
    );
}
