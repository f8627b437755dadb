//! `--metrics ADDR` on both tools: the address printed for port 0, the
//! HTTP routes, `promtool check metrics` on a scrape of each tool, the
//! sink's live `/runs`, and a real Prometheus server (started here on a
//! loopback port with a temporary config and storage) that scrapes the
//! sink during a run and agrees with the sink's own count.
//!
//! promtool and prometheus come from Debian's `prometheus` package: the
//! tests that need them skip loudly without it, and fail under
//! `REQUIRE_POSTFIX=1` (CI installs it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use common::sink::{converse, listening, wait_until};
use common::*;

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// The Prometheus tool `path`, or `None` after a loud skip notice; panics
/// under `REQUIRE_POSTFIX=1`.
fn prometheus_tool(path: &str, test: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(PathBuf::from(path));
    }
    if postfix_required() {
        panic!("{test}: {path} is missing and REQUIRE_POSTFIX=1");
    }
    eprintln!("\n*** SKIPPED {test}: {path} not installed (apt-get install prometheus) ***\n");
    None
}

/// A child whose stderr goes to a file (read while it runs); killed and
/// reaped when dropped.
pub(crate) struct Running {
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn spawn(program: &Path, argv0: &str, args: &[&str]) -> Running {
        use std::os::unix::process::CommandExt;
        let dir = tempdir();
        let stderr = dir.path().join("stderr");
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let child = Command::new(program)
            .arg0(argv0)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Running {
            child,
            stderr,
            _dir: dir,
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The address of the `PROG: metrics: listening on http://ADDR/metrics`
    /// line (waits for it, bounded), or `None` if the process ended first.
    fn try_metrics_addr(&mut self, prog: &str) -> Option<SocketAddr> {
        let prefix = format!("{prog}: metrics: listening on http://");
        let mut found = None;
        wait_until(TIMEOUT, || {
            found = self.stderr_text().lines().find_map(|l| {
                l.strip_prefix(&prefix)?
                    .strip_suffix("/metrics")?
                    .parse::<SocketAddr>()
                    .ok()
            });
            found.is_some() || !matches!(self.child.try_wait(), Ok(None))
        });
        found
    }

    /// Like [`Running::try_metrics_addr`], panicking without the line.
    fn metrics_addr(&mut self, prog: &str) -> SocketAddr {
        self.try_metrics_addr(prog)
            .unwrap_or_else(|| panic!("no metrics line from {prog}: {}", self.stderr_text()))
    }

    /// Wait (bounded) for the process to exit; its status code.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sink with `--metrics 127.0.0.1:0` and `args`; its SMTP and metrics
/// addresses.
pub(crate) fn sink(args: &[&str]) -> (Running, SocketAddr, SocketAddr) {
    for _ in 0..10 {
        let smtp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut argv: Vec<String> = sink_user_args();
        argv.extend(["--metrics", "127.0.0.1:0"].map(String::from));
        argv.extend(args.iter().map(|s| s.to_string()));
        argv.extend([smtp.to_string(), "100".into()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut proc = Running::spawn(&our_sink(), "smtp-sink", &argv);
        if let Some(metrics) = proc.try_metrics_addr("smtp-sink") {
            // Without a probe connection, which would count as a session.
            if wait_until(TIMEOUT, || listening(smtp.port())) {
                return (proc, smtp, metrics);
            }
        }
        // Only a lost race for the SMTP port is retried.
        assert!(
            proc.stderr_text().contains("in use"),
            "{}",
            proc.stderr_text()
        );
    }
    panic!("no free port for the sink");
}

/// One HTTP/1.1 request; (status, headers, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> String {
    let (status, head, body) = http(addr, "GET", path);
    assert_eq!(status, 200, "{head}\n{body}");
    body
}

/// The value of the series `name` (exact text before the value).
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `promtool check metrics` on `scrape`: panics with its output unless it
/// accepts it without a complaint.
fn promtool_accepts(promtool: &Path, scrape: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{scrape}"
    );
}

fn source(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

#[test]
fn sink_scrape_counts_what_the_sink_did_and_passes_promtool() {
    let dumps = common::sink::shared_tempdir();
    let dir = dumps.path().to_str().expect("utf-8").to_string();
    let (_sink, smtp, metrics) = sink(&["--track", "-D", &format!("{dir}/dump")]);
    let out = source(&["--track", "-s", "3", "-m", "40", &smtp.to_string()]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    // An unknown command and a refused DATA, from a plain client.
    let (_, replies) = converse(smtp, b"HELO x\r\nFOO\r\nDATA\r\nQUIT\r\n", 4);
    assert!(String::from_utf8_lossy(&replies).contains("503"));

    let mut scrape = String::new();
    assert!(wait_until(TIMEOUT, || {
        scrape = get(metrics, "/metrics");
        value(&scrape, "smtpsink_sessions_active") == Some(0.0)
    }));
    let want = [
        ("smtpsink_sessions_total", 41.0),
        ("smtpsink_messages_total", 40.0),
        ("smtpsink_dumps_written_total", 40.0),
        ("smtpsink_tracked_received_total", 40.0),
        ("smtpsink_tracked_duplicates_total", 0.0),
        ("smtpsink_tracked_gaps", 0.0),
        ("smtpsink_delivery_latency_seconds_count", 40.0),
        (
            "smtpsink_replies_total{command=\"connect\",class=\"2xx\"}",
            41.0,
        ),
        (
            "smtpsink_replies_total{command=\"helo\",class=\"2xx\"}",
            41.0,
        ),
        (
            "smtpsink_replies_total{command=\"data\",class=\"3xx\"}",
            40.0,
        ),
        (
            "smtpsink_replies_total{command=\"data\",class=\"5xx\"}",
            1.0,
        ),
        (
            "smtpsink_replies_total{command=\"unknown\",class=\"5xx\"}",
            1.0,
        ),
        ("smtpsink_replies_total{command=\".\",class=\"2xx\"}", 40.0),
        (
            "smtpsink_replies_total{command=\"quit\",class=\"2xx\"}",
            41.0,
        ),
    ];
    for (series, n) in want {
        assert_eq!(value(&scrape, series), Some(n), "{series}\n{scrape}");
    }
    assert!(value(&scrape, "smtpsink_received_bytes_total").is_some_and(|b| b > 40.0 * 100.0));
    if let Some(promtool) = prometheus_tool(PROMTOOL, "sink promtool check") {
        promtool_accepts(&promtool, &scrape);
    }
}

#[test]
fn source_scrape_mid_run_passes_promtool() {
    let (_sink, smtp, _) = sink(&[]);
    let smtp = smtp.to_string();
    let args = [
        "--metrics",
        "127.0.0.1:0",
        "--rate",
        "40",
        "--duration",
        "3s",
        "-s",
        "2",
        &smtp,
    ];
    let mut src = Running::spawn(&our_source(), "smtp-source", &args);
    let metrics = src.metrics_addr("smtp-source");
    let accepted = "smtpsource_messages_total{outcome=\"accepted\"}";
    let mut scrape = String::new();
    assert!(
        wait_until(TIMEOUT, || {
            scrape = get(metrics, "/metrics");
            value(&scrape, accepted).is_some_and(|n| n > 0.0)
        }),
        "{scrape}"
    );
    for series in [
        "smtpsource_messages_started_total",
        "smtpsource_connects_total",
        "smtpsource_connect_errors_total",
        "smtpsource_sent_bytes_total",
        "smtpsource_achieved_messages_per_second",
        "smtpsource_message_latency_seconds_count",
        "smtpsource_messages_total{outcome=\"failed\"}",
    ] {
        assert!(value(&scrape, series).is_some(), "{series}\n{scrape}");
    }
    assert_eq!(
        value(&scrape, "smtpsource_target_messages_per_second"),
        Some(40.0)
    );
    if let Some(promtool) = prometheus_tool(PROMTOOL, "source promtool check") {
        promtool_accepts(&promtool, &scrape);
    }
    assert_eq!(src.wait(), Some(0), "{}", src.stderr_text());
}

#[test]
fn runs_serves_the_live_tracking_report() {
    let (_sink, smtp, metrics) = sink(&["--track"]);
    let smtp = smtp.to_string();
    let args = [
        "--track",
        "--json",
        "-",
        "--rate",
        "30",
        "--duration",
        "3s",
        &smtp,
    ];
    let mut src = Running::spawn(&our_source(), "smtp-source", &args);
    let mut runs = serde_json::Value::Null;
    // Mid-run: the source is still sending when the first messages show.
    assert!(wait_until(TIMEOUT, || {
        runs = serde_json::from_str(&get(metrics, "/runs")).expect("json");
        runs["messages"].as_u64().is_some_and(|n| n > 0)
    }));
    assert!(
        matches!(src.child.try_wait(), Ok(None)),
        "the run is still going"
    );
    assert_eq!(runs["format"], "smtpstone-track-report/1");
    assert_eq!(runs["tool"], "smtp-sink");
    let run = &runs["runs"][0];
    assert_eq!(run["run_id"].as_str().map(str::len), Some(16));
    assert!(run["received"].as_u64().is_some_and(|n| n > 0));
    assert!(run["latency_us"]["hdr"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert_eq!(src.wait(), Some(0), "{}", src.stderr_text());

    // Without --track there is no report to serve.
    let (_plain, _, plain_metrics) = sink(&[]);
    let (status, _, body) = http(plain_metrics, "GET", "/runs");
    assert_eq!(
        (status, body.as_str()),
        (404, "no runs: tracking is off (smtp-sink --track)\n")
    );
}

#[test]
fn routes_methods_and_the_printed_address() {
    let (mut proc, _, metrics) = sink(&[]);
    assert_eq!(metrics.ip().to_string(), "127.0.0.1");
    assert_ne!(metrics.port(), 0, "port 0 is replaced by the chosen port");
    assert!(proc.stderr_text().starts_with(&format!(
        "smtp-sink: metrics: listening on http://{metrics}/metrics\n"
    )));
    let (status, head, _) = http(metrics, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert_eq!(http(metrics, "GET", "/").0, 404);
    assert_eq!(http(metrics, "GET", "/metrics/x").0, 404);
    let (status, head, _) = http(metrics, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    assert_eq!(http(metrics, "PUT", "/runs").0, 405);
    assert!(matches!(proc.child.try_wait(), Ok(None)), "still serving");
}

/// TCP sockets in LISTEN state that process `pid` holds (inodes of its
/// socket descriptors matched against /proc/net/tcp{,6}).
fn listening_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|f| f.len() > 9 && f[3] == "0A" && inodes.contains(&f[9]))
        .count()
}

#[test]
fn without_metrics_only_the_smtp_port_listens() {
    let (mut with, _, _) = sink(&[]);
    assert_eq!(listening_sockets(with.child.id()), 2, "SMTP and metrics");
    let plain = common::sink::ours(&[]);
    assert_eq!(listening_sockets(plain.proc.pid()), 1, "SMTP only");
    assert!(matches!(with.child.try_wait(), Ok(None)));
}

#[test]
fn bad_and_busy_addresses_are_one_clear_line() {
    let out = run(
        &our_sink(),
        "smtp-sink",
        ["--metrics", "localhost:9100", "127.0.0.1:0", "1"],
    );
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr_text().starts_with(
        "smtp-sink: fatal: bad --metrics address: localhost:9100 (want IP:PORT, e.g. 127.0.0.1:9100)\n"
    ), "{}", out.stderr_text());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").to_string();
    let out = source(&["--metrics", &busy, "-m", "1", "127.0.0.1:1"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        format!("smtp-source: fatal: metrics: bind {busy}: Address already in use\n")
    );
}

/// Prometheus (a temporary config and storage, a loopback port chosen now)
/// scrapes the sink every second during a run; its answer for
/// `smtpsink_messages_total` ends equal to the sink's own count.
#[test]
fn prometheus_scrapes_the_sink_during_a_run() {
    let test = "prometheus_scrapes_the_sink_during_a_run";
    let Some(prometheus) = prometheus_tool(PROMETHEUS, test) else {
        return;
    };
    let (_sink, smtp, metrics) = sink(&["--track"]);
    let dir = tempdir();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: smtpsink\n    static_configs:\n      \
             - targets: ['{metrics}']\n"
        ),
    )
    .expect("config");
    let (mut prom, web) = start_prometheus(&prometheus, &config, &dir.path().join("data"));
    // Scraping before the run starts: `up` is 1.
    assert!(
        wait_until(Duration::from_secs(60), || query(web, "up") == Some(1.0)),
        "prometheus never scraped the sink: {}",
        prom.stderr_text()
    );
    let smtp = smtp.to_string();
    let out = source(&[
        "--track",
        "--rate",
        "50",
        "--duration",
        "3s",
        "-s",
        "2",
        &smtp,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let runs: serde_json::Value = serde_json::from_str(&get(metrics, "/runs")).expect("json");
    let own = runs["messages"].as_u64().expect("the sink's own count") as f64;
    assert!(own > 0.0);
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            seen = query(web, "smtpsink_messages_total");
            seen == Some(own)
        }),
        "prometheus says {seen:?}, the sink counted {own}: {}",
        prom.stderr_text()
    );
    assert!(matches!(prom.child.try_wait(), Ok(None)));
}

/// Start Prometheus on a free loopback port; (process, web address).
fn start_prometheus(program: &Path, config: &Path, data: &Path) -> (Running, SocketAddr) {
    for _ in 0..5 {
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={web}"),
            "--log.level=warn".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut prom = Running::spawn(program, "prometheus", &args);
        let ready = wait_until(Duration::from_secs(60), || {
            !matches!(prom.child.try_wait(), Ok(None))
                || TcpStream::connect(web).is_ok() && http(web, "GET", "/-/ready").0 == 200
        });
        if ready && matches!(prom.child.try_wait(), Ok(None)) {
            return (prom, web);
        }
        assert!(
            prom.stderr_text().contains("address already in use"),
            "prometheus did not start: {}",
            prom.stderr_text()
        );
    }
    panic!("no free port for prometheus");
}

/// The single value of an instant query, if there is exactly one.
fn query(web: SocketAddr, q: &str) -> Option<f64> {
    let (status, _, body) = http(web, "GET", &format!("/api/v1/query?query={q}"));
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}
