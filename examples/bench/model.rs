//! Pure logic of the benchmark: workload table, `/proc` parsing, statistics,
//! per-round ratio arithmetic, target checks and Markdown rendering.
//!
//! Nothing here starts processes, reads files or looks at the clock, so all
//! of it is unit tested below (`cargo test --example bench`, also run by a
//! plain `cargo test` because the example is declared with `test = true`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Implementations and cells
// ---------------------------------------------------------------------------

/// Whose binary plays a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Postfix,
    Ours,
    /// The in-process minimal pair (examples/bench/floor.rs).
    Floor,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Postfix => "Postfix",
            Side::Ours => "ours",
            Side::Floor => "floor",
        })
    }
}

/// One (source, sink) combination of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    pub source: Side,
    pub sink: Side,
}

/// The traffic cells, in the order they run within every round (A B C D
/// E, A B C D E, … so that drift hits all of them alike): the four source ×
/// sink combinations, then the floor.
pub const CELLS: [Cell; 5] = [
    Cell {
        source: Side::Postfix,
        sink: Side::Postfix,
    },
    Cell {
        source: Side::Postfix,
        sink: Side::Ours,
    },
    Cell {
        source: Side::Ours,
        sink: Side::Postfix,
    },
    Cell {
        source: Side::Ours,
        sink: Side::Ours,
    },
    Cell {
        source: Side::Floor,
        sink: Side::Floor,
    },
];

/// Names of the cells for `--cells`, in [`CELLS`] order.
pub const CELL_NAMES: [&str; 5] = ["pp", "po", "op", "oo", "floor"];

/// The cell named `name` (see [`CELL_NAMES`]).
pub fn cell_by_name(name: &str) -> Option<Cell> {
    CELL_NAMES.iter().position(|n| *n == name).map(|i| CELLS[i])
}

/// The idle workload has no source: one cell per sink.
pub const IDLE_SINKS: [Side; 2] = [Side::Postfix, Side::Ours];

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/// What a workload does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// smtp-source against smtp-sink.
    Traffic {
        sessions: u64,
        msg_len: u64,
        messages: u64,
        /// `-d`: keep the connection open for the next message.
        reuse: bool,
    },
    /// The bench itself holds this many connected idle sessions against
    /// the sink and looks at the sink's resident memory.
    Idle { sessions: u64 },
}

/// A named workload at full scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub name: &'static str,
    pub kind: Kind,
    /// Extra sink options (before the endpoint operands).
    pub sink_max_sessions: Option<u64>,
    /// smtpstone extension options added to the source (the extension workloads).
    pub source_extra: &'static [&'static str],
    /// smtpstone extension options added to the sink.
    pub sink_extra: &'static [&'static str],
    /// Extension workloads run only ours → ours (Postfix has no such options).
    pub ours_only: bool,
    /// What the bench adds to each cell at run time.
    pub harness: Harness,
}

/// What the bench adds to a cell at run time, beyond the static options
/// (bench/README.md, "Workloads").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Harness {
    /// Nothing.
    Plain,
    /// `--metrics 127.0.0.1:PORT` on both tools (free ports picked per
    /// cell), and a scraper in the bench polling both `/metrics` pages
    /// every [`SCRAPE_INTERVAL`] while the source runs.
    Scrape,
    /// `--policy FILE` on the sink, FILE holding [`accept_all_policy`]
    /// with this many rules, written by the bench for the cell.
    Policy { rules: usize },
}

/// The option that turns on a tool's metrics listener (README.md,
/// "Prometheus metrics").
pub const METRICS_OPTION: &str = "--metrics";
/// The sink's policy option (docs/policy.md).
pub const POLICY_OPTION: &str = "--policy";

/// Interval between two scrapes of each `/metrics` page in the `metrics`
/// workload: the cell's spec (bench/README.md) polls every 100 ms, 100 to
/// 600 times as often as a usual Prometheus scrape interval, so that the
/// cost of being scraped shows at all.
pub const SCRAPE_INTERVAL: Duration = Duration::from_millis(100);

/// Rules of the `policy` workload's file: the spec's cell (bench/README.md)
/// walks 100 rules for every message.
pub const POLICY_RULES: usize = 100;

const NONE: &[&str] = &[];

/// Every workload, in report order. Sizes are those the benchmark brief set.
pub const WORKLOADS: [Workload; 11] = [
    Workload {
        name: "conn",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 20_000,
            reuse: false,
        },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: false,
        harness: Harness::Plain,
    },
    Workload {
        name: "reuse",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 50_000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: false,
        harness: Harness::Plain,
    },
    Workload {
        name: "big",
        kind: Kind::Traffic {
            sessions: 4,
            msg_len: 1_048_576,
            messages: 1000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: false,
        harness: Harness::Plain,
    },
    Workload {
        name: "bigtls",
        kind: Kind::Traffic {
            sessions: 4,
            msg_len: 1_048_576,
            messages: 1000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: &["--starttls"],
        sink_extra: &["--tls-self-signed"],
        ours_only: true,
        harness: Harness::Plain,
    },
    Workload {
        name: "wide",
        kind: Kind::Traffic {
            sessions: 1000,
            msg_len: 1024,
            messages: 100_000,
            reuse: true,
        },
        sink_max_sessions: Some(5000),
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: false,
        harness: Harness::Plain,
    },
    Workload {
        name: "idle",
        kind: Kind::Idle { sessions: 10_000 },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: false,
        harness: Harness::Plain,
    },
    Workload {
        name: "pipe",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 50_000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: &["--ehlo", "--pipelining"],
        sink_extra: NONE,
        ours_only: true,
        harness: Harness::Plain,
    },
    Workload {
        name: "tls",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 50_000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: &["--starttls"],
        sink_extra: &["--tls-self-signed"],
        ours_only: true,
        harness: Harness::Plain,
    },
    Workload {
        name: "tlsconn",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 5000,
            reuse: false,
        },
        sink_max_sessions: None,
        source_extra: &["--starttls"],
        sink_extra: &["--tls-self-signed"],
        ours_only: true,
        harness: Harness::Plain,
    },
    Workload {
        name: "metrics",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 50_000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: true,
        harness: Harness::Scrape,
    },
    Workload {
        name: "policy",
        kind: Kind::Traffic {
            sessions: 20,
            msg_len: 5120,
            messages: 50_000,
            reuse: true,
        },
        sink_max_sessions: None,
        source_extra: NONE,
        sink_extra: NONE,
        ours_only: true,
        harness: Harness::Policy {
            rules: POLICY_RULES,
        },
    },
];

/// Look a workload up by name.
pub fn workload(name: &str) -> Option<Workload> {
    WORKLOADS.iter().copied().find(|w| w.name == name)
}

/// What smtp-source's dialogue looks like for a workload, as far as the
/// floor client must copy it (examples/bench/floor.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dialogue {
    /// EHLO instead of HELO (any extension option takes the ESMTP path).
    pub ehlo: bool,
    /// STARTTLS after the first EHLO, then EHLO again (RFC 3207).
    pub starttls: bool,
    /// `--pipelining`: command groups and content + next group in one write.
    pub pipelining: bool,
}

impl Workload {
    /// The dialogue the source options of this workload give.
    pub fn dialogue(&self) -> Dialogue {
        let has = |o: &str| self.source_extra.contains(&o);
        Dialogue {
            ehlo: !self.source_extra.is_empty(),
            starttls: has("--starttls"),
            pipelining: has("--pipelining"),
        }
    }

    /// The same dialogue with one session and at most `messages` messages
    /// (the floor check: one session makes the byte counts exact, as the
    /// Message-Id counter never goes negative mid-message).
    pub fn for_check(self, messages: u64) -> Workload {
        let kind = match self.kind {
            Kind::Traffic {
                msg_len,
                messages: m,
                reuse,
                ..
            } => Kind::Traffic {
                sessions: 1,
                msg_len,
                messages: m.min(messages),
                reuse,
            },
            idle => idle,
        };
        Workload { kind, ..self }
    }

    /// The workload scaled down by `scale` (message count, idle session
    /// count). Session counts of traffic workloads stay, but never exceed the
    /// message count.
    pub fn scaled(self, scale: u64) -> Workload {
        let scale = scale.max(1);
        let kind = match self.kind {
            Kind::Traffic {
                sessions,
                msg_len,
                messages,
                reuse,
            } => {
                let messages = (messages / scale).max(1);
                Kind::Traffic {
                    sessions: sessions.min(messages),
                    msg_len,
                    messages,
                    reuse,
                }
            }
            Kind::Idle { sessions } => Kind::Idle {
                sessions: (sessions / scale).max(1),
            },
        };
        Workload { kind, ..self }
    }

    /// Messages per source run (0 for idle).
    pub fn messages(&self) -> u64 {
        match self.kind {
            Kind::Traffic { messages, .. } => messages,
            Kind::Idle { .. } => 0,
        }
    }

    /// smtp-source options (without the endpoint).
    pub fn source_args(&self) -> Vec<String> {
        match self.kind {
            Kind::Traffic {
                sessions,
                msg_len,
                messages,
                reuse,
            } => {
                let mut v = vec!["-s".to_string(), sessions.to_string()];
                if reuse {
                    v.push("-d".into());
                }
                v.extend([
                    "-l".into(),
                    msg_len.to_string(),
                    "-m".into(),
                    messages.to_string(),
                ]);
                v.extend(self.source_extra.iter().map(|a| a.to_string()));
                v
            }
            Kind::Idle { .. } => Vec::new(),
        }
    }

    /// smtp-sink options particular to this workload (without `-u`, `-h`
    /// and the operands).
    pub fn sink_args(&self) -> Vec<String> {
        match self.kind {
            Kind::Traffic { .. } => {
                let mut v = match self.sink_max_sessions {
                    Some(m) => vec!["-m".into(), m.to_string()],
                    None => Vec::new(),
                };
                v.extend(self.sink_extra.iter().map(|a| a.to_string()));
                v
            }
            // One more than the idle sessions (the readiness probe has ended
            // by then, but the margin costs nothing), and an idle timeout
            // far above the time needed to open them all.
            Kind::Idle { sessions } => {
                vec![
                    "-m".into(),
                    (sessions + 1).to_string(),
                    "-t".into(),
                    "600".into(),
                ]
            }
        }
    }

    /// One-line description for the report.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Traffic { .. } => {
                let mut source = self.source_args();
                let mut sink = self.sink_args();
                let mut note = String::new();
                match self.harness {
                    Harness::Plain => {}
                    Harness::Scrape => {
                        let m = [METRICS_OPTION.into(), "127.0.0.1:PORT".into()];
                        source.extend(m.clone());
                        sink.extend(m);
                        note = format!(
                            "; both `/metrics` pages scraped every {} ms (HTTP/1.1 keep-alive)",
                            SCRAPE_INTERVAL.as_millis()
                        );
                    }
                    Harness::Policy { rules } => {
                        sink.extend([POLICY_OPTION.into(), "FILE".into()]);
                        note = format!(
                            "; FILE: {rules} rules that match no message, the default accepts"
                        );
                    }
                }
                let mut s = format!("smtp-source {}", source.join(" "));
                if !sink.is_empty() {
                    let _ = write!(s, "; smtp-sink {}", sink.join(" "));
                }
                s + &note
            }
            Kind::Idle { sessions } => format!(
                "{sessions} idle connected sessions held by the bench; smtp-sink {}",
                self.sink_args().join(" ")
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// What the harnesses need: the policy file, HTTP response heads
// ---------------------------------------------------------------------------

/// The `policy` workload's file (docs/policy.md): `rules` rules that match
/// none of the bench's traffic, then a default that accepts, so that the
/// MAIL and the RCPT of every message test every rule. The bench's sessions
/// come from 127.0.0.1 with sender and recipient `foo@HOSTNAME` and HELO
/// HOSTNAME (smtp-source's defaults); the rules name domains under
/// `.invalid` (RFC 2606), documentation networks (RFC 5737, RFC 3849) and
/// local parts starting with a letter and a digit. Were a rule to match
/// after all, it would defer half of the recipients, which the source
/// reports.
pub fn accept_all_policy(rules: usize) -> String {
    let mut text = format!(
        "# smtpstone bench, `policy` workload: {rules} rules that match no message\n\
         # of the bench's traffic, and a default that accepts (bench/README.md).\n"
    );
    for i in 0..rules {
        let _ = write!(text, "\n[[rule]]\nname = \"r{i}\"\n");
        // Two shapes, as a real file mixes them: recipient domains and a
        // sender pattern (as the 100-rule policy of src/sink/policy/tests.rs),
        // or client networks and a recipient pattern.
        let _ = if i % 2 == 0 {
            write!(
                text,
                "recipient_domain = [\"d{i}.invalid\", \"*.d{i}.invalid\"]\n\
                 sender = [\"s{i}-*@*\"]\n"
            )
        } else {
            write!(
                text,
                "client = [\"192.0.2.{}/32\", \"2001:db8::{i:x}/128\"]\n\
                 recipient = [\"r{i}-*@*\"]\n",
                i % 256
            )
        };
        let _ = write!(
            text,
            "[[rule.rcpt]]\noutcome = \"defer\"\nprobability = 0.5\n\
             replies = [\"451 4.3.0 bench policy rule r{i} matched\"]\n"
        );
    }
    text.push_str("\n[[default.rcpt]]\noutcome = \"accept\"\nprobability = 1.0\n");
    text
}

/// What the scraper needs of an HTTP/1.1 response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_length: usize,
    /// `Connection: close`: the server closes after this response.
    pub close: bool,
}

/// Bytes up to and including the blank line ending the head of an HTTP
/// response in `buf`, if it is complete.
pub fn response_head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parse an HTTP/1.1 response head (RFC 9112 §4 and §6). Our metrics
/// server (src/metrics/http.rs) sends every page as one whole body with a
/// Content-Length, so a chunked or unframed response is an error.
pub fn parse_response_head(head: &str) -> Result<ResponseHead, ParseError> {
    let err = |m: String| Err(ParseError(m));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return err(format!("status line {status_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return err(format!("status line {status_line:?}"));
    }
    let Ok(status) = code.parse::<u16>() else {
        return err(format!("status line {status_line:?}"));
    };
    let mut length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return err(format!("header line {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => match value.parse::<usize>() {
                Ok(n) => length = Some(n),
                Err(_) => return err(format!("Content-Length {value:?}")),
            },
            "transfer-encoding" => return err(format!("Transfer-Encoding {value:?}")),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    match length {
        Some(content_length) => Ok(ResponseHead {
            status,
            content_length,
            close,
        }),
        None => err("no Content-Length".into()),
    }
}

// ---------------------------------------------------------------------------
// /proc parsing
// ---------------------------------------------------------------------------

/// The parts of `/proc/PID/stat` the bench needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub comm: String,
    pub state: char,
    /// Field 14, clock ticks, summed over all threads of the process.
    pub utime: u64,
    /// Field 15, clock ticks.
    pub stime: u64,
}

/// Why `/proc` text could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse `/proc/PID/stat`. The comm field (2) is in parentheses and may
/// itself contain spaces and `)`, so the remaining fields are split after
/// the LAST `)` of the line.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, ParseError> {
    let open = text
        .find('(')
        .ok_or_else(|| ParseError("stat: no '('".into()))?;
    let close = text
        .rfind(')')
        .ok_or_else(|| ParseError("stat: no ')'".into()))?;
    if close < open {
        return Err(ParseError("stat: ')' before '('".into()));
    }
    let comm = text[open + 1..close].to_string();
    // Fields after the comm start with field 3 (state).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    const FIRST: usize = 3;
    let field = |n: usize| -> Result<&str, ParseError> {
        rest.get(n - FIRST)
            .copied()
            .ok_or_else(|| ParseError(format!("stat: no field {n}")))
    };
    let num = |n: usize| -> Result<u64, ParseError> {
        let f = field(n)?;
        f.parse::<u64>()
            .map_err(|_| ParseError(format!("stat: field {n} not a number: {f:?}")))
    };
    let state = field(3)?
        .chars()
        .next()
        .ok_or_else(|| ParseError("stat: empty state".into()))?;
    Ok(ProcStat {
        comm,
        state,
        utime: num(14)?,
        stime: num(15)?,
    })
}

/// `VmRSS` of `/proc/PID/status`, in KiB (`None` if absent, e.g. a zombie).
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmRSS:")?;
        let mut it = rest.split_whitespace();
        let n = it.next()?.parse::<u64>().ok()?;
        match it.next() {
            Some("kB") | None => Some(n),
            Some(_) => None,
        }
    })
}

/// Number of LISTEN sockets on `port` in the text of `/proc/net/tcp` (or
/// `tcp6`). Used to make sure no other process shares the sink's port
/// (both sinks set SO_REUSEPORT, so a second listener would silently take
/// half of the connections).
pub fn count_tcp_listeners(proc_net_tcp: &str, port: u16) -> usize {
    const TCP_LISTEN: &str = "0A";
    proc_net_tcp
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != TCP_LISTEN {
                return false;
            }
            f[1].rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
        })
        .count()
}

// ---------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The source (traffic) exited with this non-zero status.
    Exit(i32),
    /// The source was killed by this signal (not by the bench's timeout).
    Signal(i32),
    /// The run exceeded its time limit and was killed.
    Timeout,
    /// The sink could not be started (after retries).
    SinkStart,
    /// The sink died during the run.
    SinkDied,
    /// Something else (spawn failure, /proc unreadable, idle session
    /// failure, …); the sample's `detail` says what.
    Error,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }

    /// Short label for failure tables.
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Exit(c) => format!("exit {c}"),
            Outcome::Signal(s) => format!("signal {s}"),
            Outcome::Timeout => "timeout".into(),
            Outcome::SinkStart => "sink start failed".into(),
            Outcome::SinkDied => "sink died".into(),
            Outcome::Error => "error".into(),
        }
    }
}

/// One source run against one sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSample {
    pub workload: String,
    pub round: u32,
    pub source: Side,
    pub sink: Side,
    pub messages: u64,
    pub outcome: Outcome,
    pub wall_s: Option<f64>,
    pub source_user_s: Option<f64>,
    pub source_sys_s: Option<f64>,
    pub sink_cpu_s: Option<f64>,
    /// First part of stderr or an error text, for failures.
    pub detail: Option<String>,
    /// Scrapes of both `/metrics` pages during the run (the `metrics`
    /// workload only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrapes: Option<Scrapes>,
}

/// Scrapes of the two `/metrics` pages during one run. Failures of the
/// source's page before its listener is up are expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scrapes {
    pub sink_ok: u64,
    pub sink_failed: u64,
    pub source_ok: u64,
    pub source_failed: u64,
}

impl fmt::Display for Scrapes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scrapes: sink {} ok, {} failed; source {} ok, {} failed",
            self.sink_ok, self.sink_failed, self.source_ok, self.source_failed
        )
    }
}

impl RunSample {
    pub fn cell(&self) -> Cell {
        Cell {
            source: self.source,
            sink: self.sink,
        }
    }

    pub fn source_cpu_s(&self) -> Option<f64> {
        Some(self.source_user_s? + self.source_sys_s?)
    }

    pub fn msgs_per_s(&self) -> Option<f64> {
        let w = self.wall_s?;
        (w > 0.0).then(|| self.messages as f64 / w)
    }
}

/// One idle-memory measurement of one sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleSample {
    pub workload: String,
    pub round: u32,
    pub sink: Side,
    pub sessions_target: u64,
    pub sessions_open: u64,
    pub outcome: Outcome,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub detail: Option<String>,
}

impl IdleSample {
    /// (RSS with the sessions − RSS before) / sessions, in KiB.
    pub fn kib_per_session(&self) -> Option<f64> {
        if self.sessions_open == 0 {
            return None;
        }
        let grown = self.rss_after_kib? as f64 - self.rss_before_kib? as f64;
        Some(grown / self.sessions_open as f64)
    }
}

/// What the floor server received from one client run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorCounters {
    pub connections: u64,
    /// Lines answered in command mode.
    pub commands: u64,
    pub command_bytes: u64,
    /// Every byte received (after TLS: plain text).
    pub bytes_in: u64,
    /// Ends of data seen.
    pub messages: u64,
    /// Writes of replies: one per round trip.
    pub reply_writes: u64,
}

impl FloorCounters {
    /// Bytes received in DATA (headers, body and the final `.`).
    pub fn data_bytes(&self) -> u64 {
        self.bytes_in.saturating_sub(self.command_bytes)
    }

    /// (name, value) of every count, for tables and comparisons.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("connections", self.connections),
            ("commands", self.commands),
            ("command bytes", self.command_bytes),
            ("data bytes", self.data_bytes()),
            ("messages", self.messages),
            ("round trips", self.reply_writes),
        ]
    }

    /// Names of the counts that differ.
    pub fn differences(&self, other: &FloorCounters) -> Vec<&'static str> {
        self.fields()
            .iter()
            .zip(other.fields())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }
}

/// Our source and the floor client, each against a fresh floor server with
/// the same workload at one session: the counts must be equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloorCheck {
    pub workload: String,
    pub messages: u64,
    pub ours: Option<FloorCounters>,
    pub floor: Option<FloorCounters>,
    pub detail: Option<String>,
}

impl FloorCheck {
    /// True when both runs succeeded and every count is equal.
    pub fn same(&self) -> bool {
        match (&self.ours, &self.floor) {
            (Some(o), Some(f)) => self.detail.is_none() && o.differences(f).is_empty(),
            _ => false,
        }
    }
}

/// CPU seconds of a process between two `/proc/PID/stat` readings.
pub fn cpu_delta_s(before: &ProcStat, after: &ProcStat, ticks_per_s: u64) -> f64 {
    let b = before.utime + before.stime;
    let a = after.utime + after.stime;
    a.saturating_sub(b) as f64 / ticks_per_s.max(1) as f64
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Median (mean of the two middle values for an even count); `None` if empty.
/// NaNs are ignored.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median with min and max of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn spread(xs: &[f64]) -> Option<Spread> {
    let median = median(xs)?;
    let v = xs.iter().copied().filter(|x| !x.is_nan());
    let min = v.clone().fold(f64::INFINITY, f64::min);
    let max = v.clone().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread {
        median,
        min,
        max,
        n: v.count(),
    })
}

/// Failure counts by outcome label (successes not included).
pub fn failure_counts<'a>(
    outcomes: impl IntoIterator<Item = &'a Outcome>,
) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes.into_iter().filter(|o| !o.is_ok()) {
        *m.entry(o.label()).or_insert(0) += 1;
    }
    m
}

// ---------------------------------------------------------------------------
// Ratios and targets
// ---------------------------------------------------------------------------

/// A ratio ours/Postfix between two cells of the same round.
///
/// The targets are defined against the Postfix counterpart
/// (`SinkCpu`, `SourceWall`, `SourceCpu`, `PairRate`). The `…Ours…` variants
/// show the same comparison with our program as the counterpart: when the
/// Postfix sink is the bottleneck, a faster source cannot shorten the wall
/// time against it, but it can against our sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatioKind {
    /// Sink CPU, ours-sink / Postfix-sink, both fed by the Postfix source.
    SinkCpu,
    /// Sink CPU, ours-sink / Postfix-sink, both fed by our source.
    SinkCpuOursSource,
    /// Source wall time, ours-source / Postfix-source, both against the Postfix sink.
    SourceWall,
    /// Source wall time, ours-source / Postfix-source, both against our sink.
    SourceWallOursSink,
    /// Source CPU (user+sys), ours-source / Postfix-source, Postfix sink.
    SourceCpu,
    /// Source CPU (user+sys), ours-source / Postfix-source, our sink.
    SourceCpuOursSink,
    /// msg/s of the all-ours pair / the all-Postfix pair.
    PairRate,
    /// msg/s of the all-ours pair / the floor: how much is left.
    FloorRate,
    /// CPU (source + sink) of the all-ours pair / the floor's: steadier
    /// than msg/s on a busy machine.
    FloorCpu,
}

pub const RATIOS: [RatioKind; 9] = [
    RatioKind::SinkCpu,
    RatioKind::SinkCpuOursSource,
    RatioKind::SourceWall,
    RatioKind::SourceWallOursSink,
    RatioKind::SourceCpu,
    RatioKind::SourceCpuOursSink,
    RatioKind::PairRate,
    RatioKind::FloorRate,
    RatioKind::FloorCpu,
];

const PP: Cell = CELLS[0];
const PO: Cell = CELLS[1];
const OP: Cell = CELLS[2];
const OO: Cell = CELLS[3];
const FF: Cell = CELLS[4];

impl RatioKind {
    pub fn label(self) -> &'static str {
        match self {
            RatioKind::SinkCpu => "sink CPU ours/Postfix (Postfix source)",
            RatioKind::SinkCpuOursSource => "sink CPU ours/Postfix (our source)",
            RatioKind::SourceWall => "source wall ours/Postfix (Postfix sink)",
            RatioKind::SourceWallOursSink => "source wall ours/Postfix (our sink)",
            RatioKind::SourceCpu => "source CPU ours/Postfix (Postfix sink)",
            RatioKind::SourceCpuOursSink => "source CPU ours/Postfix (our sink)",
            RatioKind::PairRate => "msg/s ours pair / Postfix pair",
            RatioKind::FloorRate => "msg/s ours pair / floor",
            RatioKind::FloorCpu => "pair CPU ours / floor",
        }
    }

    /// (numerator cell, denominator cell).
    pub fn cells(self) -> (Cell, Cell) {
        match self {
            RatioKind::SinkCpu => (PO, PP),
            RatioKind::SinkCpuOursSource => (OO, OP),
            RatioKind::SourceWall | RatioKind::SourceCpu => (OP, PP),
            RatioKind::SourceWallOursSink | RatioKind::SourceCpuOursSink => (OO, PO),
            RatioKind::PairRate => (OO, PP),
            RatioKind::FloorRate | RatioKind::FloorCpu => (OO, FF),
        }
    }

    fn value(self, s: &RunSample) -> Option<f64> {
        match self {
            RatioKind::SinkCpu | RatioKind::SinkCpuOursSource => s.sink_cpu_s,
            RatioKind::SourceWall | RatioKind::SourceWallOursSink => s.wall_s,
            RatioKind::SourceCpu | RatioKind::SourceCpuOursSink => s.source_cpu_s(),
            RatioKind::PairRate | RatioKind::FloorRate => s.msgs_per_s(),
            RatioKind::FloorCpu => Some(s.source_cpu_s()? + s.sink_cpu_s?),
        }
    }
}

/// Comparison direction of a target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub fn met(self, v: f64) -> bool {
        match self {
            Target::AtMost(t) => v <= t,
            Target::AtLeast(t) => v >= t,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::AtMost(t) => write!(f, "≤ {t}"),
            Target::AtLeast(t) => write!(f, "≥ {t}"),
        }
    }
}

/// Targets for the ratio rows (bench/README.md).
pub fn ratio_target(workload: &str, kind: RatioKind) -> Option<Target> {
    use RatioKind::*;
    match (workload, kind) {
        ("big", SinkCpu) => Some(Target::AtMost(0.2)),
        ("reuse", SinkCpu) => Some(Target::AtMost(0.7)),
        ("conn", SinkCpu) => Some(Target::AtMost(0.9)),
        ("reuse", SourceWall) => Some(Target::AtMost(0.75)),
        ("reuse", SourceCpu) => Some(Target::AtMost(0.7)),
        ("conn", SourceCpu) => Some(Target::AtMost(0.8)),
        ("wide", SourceWall) => Some(Target::AtMost(0.75)),
        ("reuse", PairRate) => Some(Target::AtLeast(2.0)),
        ("reuse" | "conn" | "big" | "pipe", FloorRate) => Some(Target::AtLeast(0.8)),
        _ => None,
    }
}

const RATIO_TABLE_HEAD: &str =
    "\n| ratio | median (min–max) | rounds | target | status |\n|---|---|---|---|---|";

/// The cells a workload runs: all five, or only ours → ours and the floor
/// for the extension workloads, without the floor for a workload with a
/// harness (the floor has no metrics listener and no policy: it has
/// nothing to add there).
pub fn workload_cells(w: &Workload) -> Vec<Cell> {
    CELLS
        .into_iter()
        .filter(|c| !w.ours_only || *c == OO || *c == FF)
        .filter(|c| *c != FF || w.harness == Harness::Plain)
        .collect()
}

/// What a [`CrossRatio`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossMetric {
    /// msg/s (source wall clock).
    MsgRate,
    /// Sink CPU seconds of the whole cell; both cells send the same number
    /// of messages, so this is the ratio per message too.
    SinkCpu,
}

impl CrossMetric {
    fn value(self, s: &RunSample) -> Option<f64> {
        match self {
            CrossMetric::MsgRate => s.msgs_per_s(),
            CrossMetric::SinkCpu => s.sink_cpu_s,
        }
    }
}

/// An extension workload (ours → ours) compared with a cell of a base
/// workload run in the same round (the extension targets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossRatio {
    pub workload: &'static str,
    pub label: &'static str,
    pub metric: CrossMetric,
    pub base_workload: &'static str,
    pub base_cell: Cell,
    pub target: Option<Target>,
}

pub const CROSS_RATIOS: [CrossRatio; 7] = [
    CrossRatio {
        workload: "pipe",
        label: "msg/s pipe (ours pair) / reuse (Postfix pair)",
        metric: CrossMetric::MsgRate,
        base_workload: "reuse",
        base_cell: PP,
        target: Some(Target::AtLeast(3.0)),
    },
    CrossRatio {
        workload: "tls",
        label: "msg/s tls (ours pair) / reuse (ours pair)",
        metric: CrossMetric::MsgRate,
        base_workload: "reuse",
        base_cell: OO,
        target: Some(Target::AtLeast(0.6)),
    },
    CrossRatio {
        workload: "bigtls",
        label: "msg/s bigtls (ours pair) / big (ours pair)",
        metric: CrossMetric::MsgRate,
        base_workload: "big",
        base_cell: OO,
        target: None,
    },
    // The cost of being scraped (bench/README.md): msg/s within 3 %, sink
    // CPU within 5 % of the same round's plain pair.
    CrossRatio {
        workload: "metrics",
        label: "msg/s metrics / reuse (ours pair)",
        metric: CrossMetric::MsgRate,
        base_workload: "reuse",
        base_cell: OO,
        target: Some(Target::AtLeast(0.97)),
    },
    CrossRatio {
        workload: "metrics",
        label: "sink CPU metrics / reuse (ours pair)",
        metric: CrossMetric::SinkCpu,
        base_workload: "reuse",
        base_cell: OO,
        target: Some(Target::AtMost(1.05)),
    },
    // The cost of walking 100 rules per message (bench/README.md).
    CrossRatio {
        workload: "policy",
        label: "sink CPU policy / reuse (ours pair)",
        metric: CrossMetric::SinkCpu,
        base_workload: "reuse",
        base_cell: OO,
        target: Some(Target::AtMost(1.15)),
    },
    CrossRatio {
        workload: "policy",
        label: "msg/s policy / reuse (ours pair)",
        metric: CrossMetric::MsgRate,
        base_workload: "reuse",
        base_cell: OO,
        target: None,
    },
];

/// Per-round ratio of `c.metric` of `c.workload` (ours → ours) to its base
/// cell, for rounds in which both succeeded.
pub fn cross_per_round(samples: &[RunSample], c: &CrossRatio) -> Vec<(u32, f64)> {
    let find = |workload: &str, round: u32, cell: Cell| {
        samples.iter().find(|s| {
            s.workload == workload && s.round == round && s.cell() == cell && s.outcome.is_ok()
        })
    };
    distinct_rounds(
        samples
            .iter()
            .filter(|s| s.workload == c.workload)
            .map(|s| s.round),
    )
    .into_iter()
    .filter_map(|r| {
        let n = c.metric.value(find(c.workload, r, OO)?)?;
        let d = c.metric.value(find(c.base_workload, r, c.base_cell)?)?;
        (d > 0.0).then(|| (r, n / d))
    })
    .collect()
}

/// Ratio rows of an extension workload, its CPU cost per message, and the
/// scrapes of the `metrics` workload.
fn render_extension(out: &mut String, r: &Report<'_>, w: &Workload) {
    let _ = writeln!(out, "{RATIO_TABLE_HEAD}");
    for c in CROSS_RATIOS.iter().filter(|c| c.workload == w.name) {
        let vals: Vec<f64> = cross_per_round(r.runs, c)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let sp = spread(&vals);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.label,
            fmt_spread(sp, 2),
            vals.len(),
            c.target.map(|t| t.to_string()).unwrap_or_default(),
            status(c.target, sp.map(|s| s.median)),
        );
    }
    if workload_cells(w).contains(&FF) {
        render_ratio_row(out, r, w, RatioKind::FloorRate);
        render_ratio_row(out, r, w, RatioKind::FloorCpu);
    }
    let ok: Vec<&RunSample> = r
        .runs
        .iter()
        .filter(|s| s.workload == w.name && s.cell() == OO && s.outcome.is_ok())
        .collect();
    render_per_message(out, w, &ok);
    if w.harness == Harness::Scrape {
        render_scrapes(out, &ok);
    }
}

/// CPU cost per message of the ours → ours runs `ok` (with `tlsconn`, a
/// message is a TLS handshake).
fn render_per_message(out: &mut String, w: &Workload, ok: &[&RunSample]) {
    let per_msg_us = |f: &dyn Fn(&RunSample) -> Option<f64>| -> Vec<f64> {
        ok.iter()
            .filter_map(|s| Some(f(s)? * 1e6 / s.messages.max(1) as f64))
            .collect()
    };
    let unit = if w.name == "tlsconn" {
        "handshake"
    } else {
        "message"
    };
    let _ = writeln!(
        out,
        "\n| per {unit} (ours pair) | median (min–max) |\n|---|---|\n\
         | {unit}s/s | {} |\n\
         | source CPU µs per {unit} | {} |\n\
         | sink CPU µs per {unit} | {} |",
        fmt_spread(spread(&col(ok, |s| s.msgs_per_s())), 0),
        fmt_spread(spread(&per_msg_us(&|s| s.source_cpu_s())), 0),
        fmt_spread(spread(&per_msg_us(&|s| s.sink_cpu_s)), 0),
    );
}

/// Scrapes per run of the `metrics` workload's successful runs `ok`, so
/// that a reader sees the pages were polled.
fn render_scrapes(out: &mut String, ok: &[&RunSample]) {
    let count = |f: fn(&Scrapes) -> u64| {
        fmt_spread(
            spread(&col(ok, |s| s.scrapes.as_ref().map(|c| f(c) as f64))),
            0,
        )
    };
    let _ = writeln!(
        out,
        "\n| `/metrics` scrapes per run | ok | failed |\n|---|---|---|\n\
         | sink | {} | {} |\n\
         | source | {} | {} |",
        count(|c| c.sink_ok),
        count(|c| c.sink_failed),
        count(|c| c.source_ok),
        count(|c| c.source_failed),
    );
}

/// Target for our sink's resident memory per idle session, KiB.
pub const IDLE_TARGET: Target = Target::AtMost(64.0);

/// The distinct round numbers, sorted.
fn distinct_rounds(rounds: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = rounds.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Per-round ratio values for one workload: for each round in which both
/// cells succeeded and the denominator is positive, numerator/denominator.
/// Returned as (round, ratio), sorted by round.
pub fn per_round_ratios(samples: &[RunSample], workload: &str, kind: RatioKind) -> Vec<(u32, f64)> {
    let (num_cell, den_cell) = kind.cells();
    let find = |round: u32, cell: Cell| {
        samples.iter().find(|s| {
            s.workload == workload && s.round == round && s.cell() == cell && s.outcome.is_ok()
        })
    };
    distinct_rounds(
        samples
            .iter()
            .filter(|s| s.workload == workload)
            .map(|s| s.round),
    )
    .into_iter()
    .filter_map(|r| {
        let n = kind.value(find(r, num_cell)?)?;
        let d = kind.value(find(r, den_cell)?)?;
        (d > 0.0).then(|| (r, n / d))
    })
    .collect()
}

/// Per-round ours/Postfix ratio of idle KiB per session.
pub fn idle_per_round_ratios(samples: &[IdleSample], workload: &str) -> Vec<(u32, f64)> {
    let find = |round: u32, sink: Side| {
        samples.iter().find(|s| {
            s.workload == workload && s.round == round && s.sink == sink && s.outcome.is_ok()
        })
    };
    distinct_rounds(
        samples
            .iter()
            .filter(|s| s.workload == workload)
            .map(|s| s.round),
    )
    .into_iter()
    .filter_map(|r| {
        let n = find(r, Side::Ours)?.kib_per_session()?;
        let d = find(r, Side::Postfix)?.kib_per_session()?;
        (d > 0.0).then(|| (r, n / d))
    })
    .collect()
}

// ---------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------

/// Everything the report shows.
pub struct Report<'a> {
    /// Free text lines placed before the tables (machine, command, …).
    pub header: Vec<String>,
    pub workloads: &'a [Workload],
    pub rounds: u32,
    pub runs: &'a [RunSample],
    pub idle: &'a [IdleSample],
    pub checks: &'a [FloorCheck],
    /// True when the sizes were scaled down (targets are then indicative).
    pub scaled: bool,
}

fn fmt_spread(s: Option<Spread>, decimals: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 => format!("{:.*}", decimals, s.median),
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            decimals, s.median, decimals, s.min, decimals, s.max
        ),
    }
}

fn fmt_failures(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "0".into();
    }
    m.iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status(target: Option<Target>, value: Option<f64>) -> &'static str {
    match (target, value) {
        (None, _) => "",
        (Some(_), None) => "no data",
        (Some(t), Some(v)) if t.met(v) => "met",
        (Some(_), Some(_)) => "**NOT met**",
    }
}

fn col<T>(xs: &[T], f: impl Fn(&T) -> Option<f64>) -> Vec<f64> {
    xs.iter().filter_map(f).collect()
}

/// Render the whole report as Markdown.
pub fn render_markdown(r: &Report<'_>) -> String {
    let mut out = String::new();
    for line in &r.header {
        let _ = writeln!(out, "{line}");
    }
    if !r.header.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Medians over {} round(s), (min–max) in parentheses. Ratios are computed per round, \
         then medianed. CPU = user+sys seconds (source: wait4 rusage; sink: /proc/PID/stat \
         utime+stime delta across the run).",
        r.rounds
    );
    if r.scaled {
        let _ = writeln!(
            out,
            "\n**Scaled-down run**: targets are shown for orientation only."
        );
    }
    let mut failures: Vec<String> = Vec::new();
    for w in r.workloads {
        let _ = writeln!(out, "\n### `{}` — {}\n", w.name, w.describe());
        match w.kind {
            Kind::Traffic { .. } => render_traffic(&mut out, &mut failures, r, w),
            Kind::Idle { .. } => render_idle(&mut out, &mut failures, r, w),
        }
    }
    render_summary(&mut out, r);
    render_checks(&mut out, &mut failures, r);
    if !failures.is_empty() {
        let _ = writeln!(out, "\n### Failures\n");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

fn render_traffic(out: &mut String, failures: &mut Vec<String>, r: &Report<'_>, w: &Workload) {
    let _ = writeln!(
        out,
        "| source | sink | failed/runs | wall s | msg/s | source CPU s | sink CPU s |\n\
         |---|---|---|---|---|---|---|"
    );
    for cell in workload_cells(w) {
        let all: Vec<&RunSample> = r
            .runs
            .iter()
            .filter(|s| s.workload == w.name && s.cell() == cell)
            .collect();
        if all.is_empty() {
            continue; // not selected (--cells)
        }
        let ok: Vec<&RunSample> = all.iter().copied().filter(|s| s.outcome.is_ok()).collect();
        let fails = failure_counts(all.iter().map(|s| &s.outcome));
        let nfail: usize = fails.values().sum();
        let _ = writeln!(
            out,
            "| {} | {} | {}/{}{} | {} | {} | {} | {} |",
            cell.source,
            cell.sink,
            nfail,
            all.len(),
            if nfail > 0 {
                format!(" ({})", fmt_failures(&fails))
            } else {
                String::new()
            },
            fmt_spread(spread(&col(&ok, |s| s.wall_s)), 3),
            fmt_spread(spread(&col(&ok, |s| s.msgs_per_s())), 0),
            fmt_spread(spread(&col(&ok, |s| s.source_cpu_s())), 3),
            fmt_spread(spread(&col(&ok, |s| s.sink_cpu_s)), 3),
        );
        for s in all.iter().filter(|s| !s.outcome.is_ok()) {
            failures.push(format!(
                "`{}` round {} source {} → sink {}: {}{}",
                s.workload,
                s.round,
                s.source,
                s.sink,
                s.outcome.label(),
                s.detail
                    .as_deref()
                    .map(|d| format!(" — `{}`", one_line(d)))
                    .unwrap_or_default()
            ));
        }
    }
    if w.ours_only {
        render_extension(out, r, w);
        return;
    }
    let _ = writeln!(out, "{RATIO_TABLE_HEAD}");
    for kind in RATIOS {
        render_ratio_row(out, r, w, kind);
    }
}

/// One row of a ratio table: per-round values, medianed, and the target.
fn render_ratio_row(out: &mut String, r: &Report<'_>, w: &Workload, kind: RatioKind) {
    let vals: Vec<f64> = per_round_ratios(r.runs, w.name, kind)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let sp = spread(&vals);
    let target = ratio_target(w.name, kind);
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |",
        kind.label(),
        fmt_spread(sp, 2),
        vals.len(),
        target.map(|t| t.to_string()).unwrap_or_default(),
        status(target, sp.map(|s| s.median)),
    );
}

fn render_idle(out: &mut String, failures: &mut Vec<String>, r: &Report<'_>, w: &Workload) {
    let _ = writeln!(
        out,
        "| sink | failed/runs | sessions | RSS before KiB | RSS with sessions KiB | KiB/session | target | status |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for sink in IDLE_SINKS {
        let all: Vec<&IdleSample> = r
            .idle
            .iter()
            .filter(|s| s.workload == w.name && s.sink == sink)
            .collect();
        let ok: Vec<&IdleSample> = all.iter().copied().filter(|s| s.outcome.is_ok()).collect();
        let fails = failure_counts(all.iter().map(|s| &s.outcome));
        let nfail: usize = fails.values().sum();
        let per = spread(&col(&ok, |s| s.kib_per_session()));
        let target = (sink == Side::Ours).then_some(IDLE_TARGET);
        let _ = writeln!(
            out,
            "| {} | {}/{}{} | {} | {} | {} | {} | {} | {} |",
            sink,
            nfail,
            all.len(),
            if nfail > 0 {
                format!(" ({})", fmt_failures(&fails))
            } else {
                String::new()
            },
            fmt_spread(spread(&col(&ok, |s| Some(s.sessions_open as f64))), 0),
            fmt_spread(spread(&col(&ok, |s| s.rss_before_kib.map(|v| v as f64))), 0),
            fmt_spread(spread(&col(&ok, |s| s.rss_after_kib.map(|v| v as f64))), 0),
            fmt_spread(per, 2),
            target.map(|t| t.to_string()).unwrap_or_default(),
            status(target, per.map(|s| s.median)),
        );
        for s in all.iter().filter(|s| !s.outcome.is_ok()) {
            failures.push(format!(
                "`{}` round {} sink {}: {} ({} of {} sessions open){}",
                s.workload,
                s.round,
                s.sink,
                s.outcome.label(),
                s.sessions_open,
                s.sessions_target,
                s.detail
                    .as_deref()
                    .map(|d| format!(" — `{}`", one_line(d)))
                    .unwrap_or_default()
            ));
        }
    }
    let vals: Vec<f64> = idle_per_round_ratios(r.idle, w.name)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let _ = writeln!(
        out,
        "\n| ratio | median (min–max) | rounds |\n|---|---|---|\n| KiB/session ours/Postfix | {} | {} |",
        fmt_spread(spread(&vals), 2),
        vals.len()
    );
}

/// Median msg/s of a workload's cell, if it ran.
fn cell_rate(r: &Report<'_>, workload: &str, cell: Cell) -> Option<f64> {
    let v: Vec<f64> = r
        .runs
        .iter()
        .filter(|s| s.workload == workload && s.cell() == cell && s.outcome.is_ok())
        .filter_map(RunSample::msgs_per_s)
        .collect();
    median(&v)
}

/// One table of every traffic workload: pair msg/s of ours, Postfix and
/// the floor, ours/Postfix and ours/floor (per round, medianed).
fn render_summary(out: &mut String, r: &Report<'_>) {
    // A workload with neither Postfix's pair nor the floor (`metrics`,
    // `policy`) has nothing to show here.
    let traffic: Vec<&Workload> = r
        .workloads
        .iter()
        .filter(|w| matches!(w.kind, Kind::Traffic { .. }))
        .filter(|w| {
            let cells = workload_cells(w);
            cells.contains(&PP) || cells.contains(&FF)
        })
        .collect();
    if traffic.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Pairs: ours against Postfix and against the floor\n\n\
         | workload | ours msg/s | Postfix msg/s | floor msg/s | ours/Postfix | ours/floor | target ours/floor | status | pair CPU ours/floor |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let rate = |w: &Workload, c| {
        cell_rate(r, w.name, c)
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "–".into())
    };
    for w in traffic {
        let ratio = |kind| {
            let v: Vec<f64> = per_round_ratios(r.runs, w.name, kind)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            median(&v)
        };
        let fmt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
        let floor = ratio(RatioKind::FloorRate);
        let target = ratio_target(w.name, RatioKind::FloorRate);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.name,
            rate(w, OO),
            rate(w, PP),
            rate(w, FF),
            fmt(ratio(RatioKind::PairRate)),
            fmt(floor),
            target.map(|t| t.to_string()).unwrap_or_default(),
            status(target, floor),
            fmt(ratio(RatioKind::FloorCpu)),
        );
    }
}

/// The floor check: server-side counts for our source and the floor
/// client on the same workload.
fn render_checks(out: &mut String, failures: &mut Vec<String>, r: &Report<'_>) {
    if r.checks.is_empty() {
        return;
    }
    let names = FloorCounters::default().fields().map(|f| f.0);
    let _ = writeln!(
        out,
        "\n### Floor check: what the floor server received (one session)\n\n\
         | workload | messages | client | {} | same |\n|---|---|---|{}---|",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for c in r.checks {
        for (who, counts) in [("our source", &c.ours), ("floor client", &c.floor)] {
            let cols = match counts {
                Some(k) => k.fields().map(|f| f.1.to_string()).join(" | "),
                None => vec!["–"; names.len()].join(" | "),
            };
            let same = match (who, c.same()) {
                ("our source", _) => "",
                (_, true) => "yes",
                (_, false) => "**NO**",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {who} | {cols} | {same} |",
                c.workload, c.messages
            );
        }
        if !c.same() {
            let diff = match (&c.ours, &c.floor) {
                (Some(o), Some(f)) => o.differences(f).join(", "),
                _ => "a run failed".into(),
            };
            failures.push(format!(
                "floor check `{}`: {diff}{}",
                c.workload,
                c.detail
                    .as_deref()
                    .map(|d| format!(" — `{}`", one_line(d)))
                    .unwrap_or_default()
            ));
        }
    }
}

/// Collapse a multi-line detail into one short line fit for a table/list.
pub fn one_line(s: &str) -> String {
    const MAX: usize = 200;
    let joined = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('`', "'");
    if joined.chars().count() > MAX {
        let cut: String = joined.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

// ---------------------------------------------------------------------------
// Dates (UTC, no extra dependency)
// ---------------------------------------------------------------------------

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (proleptic Gregorian,
/// H. Hinnant's days-to-civil algorithm).
pub fn utc_string(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_LINE: &str = "7119 (smtp-sink) S 1 7116 4107 0 -1 4194560 6379 0 11 0 33 28 0 0 20 0 1 0 \
        44464 47992832 2416 18446744073709551615 94304633049088 94304633061209 140732665860688 0 0 0 0 \
        4102 0 1 0 0 17 0 0 0 0 0 0 94304633072400 94304633074672 94305634308096 140732665866918 \
        140732665866979 140732665866979 140732665868260 0\n";

    #[test]
    fn proc_stat_plain() {
        let s = parse_proc_stat(STAT_LINE).unwrap();
        assert_eq!(
            s,
            ProcStat {
                comm: "smtp-sink".into(),
                state: 'S',
                utime: 33,
                stime: 28
            }
        );
    }

    #[test]
    fn proc_stat_comm_with_spaces_and_parens() {
        // A comm of "a) b (c)) R 9" must not shift the fields.
        let line = "42 (a) b (c)) R 9) R 1 42 42 0 -1 0 0 0 0 0 1234 567 0 0 20 0 3 0 1 1 1\n";
        let s = parse_proc_stat(line).unwrap();
        assert_eq!(s.comm, "a) b (c)) R 9");
        assert_eq!(s.state, 'R');
        assert_eq!((s.utime, s.stime), (1234, 567));
    }

    #[test]
    fn proc_stat_errors() {
        assert!(parse_proc_stat("").is_err());
        assert!(parse_proc_stat("1 (x S 1 2").is_err());
        assert!(parse_proc_stat("1 (x) S 1 2 3").is_err(), "too few fields");
        assert!(
            parse_proc_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 zz 5").is_err(),
            "utime not numeric"
        );
        assert!(parse_proc_stat(") 1 (x").is_err());
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\tsmtp-sink\nUmask:\t0022\nVmPeak:\t   46868 kB\nVmRSS:\t    9788 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(9788));
        assert_eq!(
            parse_vm_rss_kib("Name:\tzombie\nState:\tZ (zombie)\n"),
            None
        );
        assert_eq!(parse_vm_rss_kib("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn tcp_listeners() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:5FEB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:5FEB 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
   2: 00000000:5FEB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n\
   3: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0\n";
        assert_eq!(count_tcp_listeners(text, 0x5FEB), 2);
        assert_eq!(count_tcp_listeners(text, 25), 1);
        assert_eq!(count_tcp_listeners(text, 26), 0);
    }

    #[test]
    fn cpu_delta() {
        let a = ProcStat {
            comm: "x".into(),
            state: 'S',
            utime: 100,
            stime: 50,
        };
        let b = ProcStat {
            comm: "x".into(),
            state: 'S',
            utime: 130,
            stime: 70,
        };
        assert!((cpu_delta_s(&a, &b, 100) - 0.5).abs() < 1e-12);
        assert_eq!(cpu_delta_s(&b, &a, 100), 0.0, "never negative");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[5.0, f64::NAN, 1.0]), Some(3.0));
        let s = spread(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 2.5,
                min: 1.0,
                max: 4.0,
                n: 4
            }
        );
        assert_eq!(spread(&[]), None);
    }

    fn run(
        workload: &str,
        round: u32,
        cell: Cell,
        wall: f64,
        cpu: f64,
        sink_cpu: f64,
    ) -> RunSample {
        RunSample {
            workload: workload.into(),
            round,
            source: cell.source,
            sink: cell.sink,
            messages: 1000,
            outcome: Outcome::Ok,
            wall_s: Some(wall),
            source_user_s: Some(cpu / 2.0),
            source_sys_s: Some(cpu / 2.0),
            sink_cpu_s: Some(sink_cpu),
            detail: None,
            scrapes: None,
        }
    }

    #[test]
    fn extension_workloads_run_ours_only_with_their_options() {
        let pipe = workload("pipe").unwrap();
        assert_eq!(workload_cells(&pipe), vec![OO, FF]);
        assert!(pipe
            .source_args()
            .ends_with(&["--ehlo".into(), "--pipelining".into()]));
        let tls = workload("tlsconn").unwrap();
        assert!(!tls.source_args().contains(&"-d".to_string()));
        assert_eq!(tls.sink_args(), vec!["--tls-self-signed".to_string()]);
        assert_eq!(workload_cells(&workload("reuse").unwrap()).len(), 5);
        assert_eq!(workload("reuse").unwrap().sink_args(), Vec::<String>::new());
    }

    #[test]
    fn cross_ratios_pair_rounds_across_workloads() {
        // 1000 messages each: msg/s = 1000 / wall.
        let samples = vec![
            run("reuse", 1, PP, 4.0, 1.0, 1.0), // 250 msg/s
            run("reuse", 1, OO, 1.0, 1.0, 1.0), // 1000 msg/s
            run("pipe", 1, OO, 0.5, 1.0, 1.0),  // 2000 msg/s
            run("tls", 1, OO, 2.0, 1.0, 1.0),   // 500 msg/s
            run("reuse", 2, PP, 2.0, 1.0, 1.0), // 500 msg/s
            run("pipe", 2, OO, 1.0, 1.0, 1.0),  // 1000 msg/s
            run("pipe", 3, OO, 1.0, 1.0, 1.0),  // no base in round 3
        ];
        assert_eq!(
            cross_per_round(&samples, &CROSS_RATIOS[0]),
            vec![(1, 8.0), (2, 2.0)]
        );
        assert_eq!(cross_per_round(&samples, &CROSS_RATIOS[1]), vec![(1, 0.5)]);
    }

    #[test]
    fn ratios_are_per_round_then_medianed() {
        // Round 1: sink CPU 1.0 vs 0.5 → 0.5. Round 2: 4.0 vs 1.0 → 0.25.
        // Round 3: 1.0 vs 0.4 → 0.4. Median of ratios = 0.4, whereas the
        // ratio of medians would be 0.5/1.0 = 0.5.
        let s = vec![
            run("reuse", 1, PP, 1.0, 1.0, 1.0),
            run("reuse", 1, PO, 1.0, 1.0, 0.5),
            run("reuse", 2, PP, 1.0, 1.0, 4.0),
            run("reuse", 2, PO, 1.0, 1.0, 1.0),
            run("reuse", 3, PP, 1.0, 1.0, 1.0),
            run("reuse", 3, PO, 1.0, 1.0, 0.4),
        ];
        let r = per_round_ratios(&s, "reuse", RatioKind::SinkCpu);
        assert_eq!(r, vec![(1, 0.5), (2, 0.25), (3, 0.4)]);
        let vals: Vec<f64> = r.iter().map(|x| x.1).collect();
        assert_eq!(median(&vals), Some(0.4));
    }

    #[test]
    fn ratio_cells_and_failed_rounds() {
        let mut s = vec![
            run("conn", 1, PP, 2.0, 1.0, 1.0),
            run("conn", 1, OP, 1.0, 0.5, 1.0),
            run("conn", 1, OO, 0.5, 0.5, 1.0),
            run("conn", 2, PP, 2.0, 1.0, 1.0),
            run("conn", 2, OP, 1.5, 0.5, 1.0),
            run("conn", 2, OO, 0.5, 0.5, 1.0),
            run("other", 1, PP, 9.0, 9.0, 9.0),
        ];
        s[4].outcome = Outcome::Exit(1); // round 2 ours source failed
        assert_eq!(
            per_round_ratios(&s, "conn", RatioKind::SourceWall),
            vec![(1, 0.5)]
        );
        assert_eq!(
            per_round_ratios(&s, "conn", RatioKind::SourceCpu),
            vec![(1, 0.5)]
        );
        // Pair rate: msgs/s ours pair 2000 vs Postfix pair 500 → 4.
        assert_eq!(
            per_round_ratios(&s, "conn", RatioKind::PairRate),
            vec![(1, 4.0), (2, 4.0)]
        );
        // No ours-sink cell at all → no sink CPU ratio.
        assert!(per_round_ratios(&s, "conn", RatioKind::SinkCpu).is_empty());
        // Zero denominator is skipped, not infinite.
        let z = vec![
            run("x", 1, PP, 1.0, 1.0, 0.0),
            run("x", 1, PO, 1.0, 1.0, 0.1),
        ];
        assert!(per_round_ratios(&z, "x", RatioKind::SinkCpu).is_empty());
    }

    #[test]
    fn ratios_against_our_counterpart() {
        // Cells: PP, PO, OP, OO with distinct values so each ratio picks a
        // recognisable pair.
        let s = vec![
            run("reuse", 1, PP, 8.0, 4.0, 2.0),
            run("reuse", 1, PO, 4.0, 2.0, 1.0),
            run("reuse", 1, OP, 8.0, 2.0, 4.0),
            run("reuse", 1, OO, 1.0, 1.0, 1.0),
        ];
        let r = |k| per_round_ratios(&s, "reuse", k);
        assert_eq!(r(RatioKind::SinkCpu), vec![(1, 0.5)]); // PO/PP sink
        assert_eq!(r(RatioKind::SinkCpuOursSource), vec![(1, 0.25)]); // OO/OP sink
        assert_eq!(r(RatioKind::SourceWall), vec![(1, 1.0)]); // OP/PP wall
        assert_eq!(r(RatioKind::SourceWallOursSink), vec![(1, 0.25)]); // OO/PO wall
        assert_eq!(r(RatioKind::SourceCpu), vec![(1, 0.5)]); // OP/PP cpu
        assert_eq!(r(RatioKind::SourceCpuOursSink), vec![(1, 0.5)]); // OO/PO cpu
        assert_eq!(r(RatioKind::PairRate), vec![(1, 8.0)]); // PP wall / OO wall
        for k in RATIOS {
            let t = ratio_target("reuse", k);
            // Comparisons with our own counterpart, and the floor CPU,
            // are reported without a target.
            let reported = matches!(
                k,
                RatioKind::SinkCpuOursSource
                    | RatioKind::SourceWallOursSink
                    | RatioKind::SourceCpuOursSink
                    | RatioKind::FloorCpu
            );
            assert_eq!(t.is_none(), reported, "{k:?}");
        }
    }

    #[test]
    fn failures_are_counted() {
        let outs = [
            Outcome::Ok,
            Outcome::Exit(1),
            Outcome::Timeout,
            Outcome::Exit(1),
            Outcome::Exit(2),
            Outcome::Ok,
            Outcome::SinkStart,
        ];
        let m = failure_counts(outs.iter());
        let want: BTreeMap<String, usize> = [
            ("exit 1".to_string(), 2),
            ("exit 2".to_string(), 1),
            ("timeout".to_string(), 1),
            ("sink start failed".to_string(), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(m, want);
        assert_eq!(
            fmt_failures(&m),
            "2× exit 1, 1× exit 2, 1× sink start failed, 1× timeout"
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            ratio_target("big", RatioKind::SinkCpu),
            Some(Target::AtMost(0.2))
        );
        assert_eq!(
            ratio_target("reuse", RatioKind::PairRate),
            Some(Target::AtLeast(2.0))
        );
        assert_eq!(ratio_target("big", RatioKind::SourceWall), None);
        assert!(Target::AtMost(0.7).met(0.7));
        assert!(!Target::AtMost(0.7).met(0.71));
        assert!(Target::AtLeast(2.0).met(2.5));
        assert!(!Target::AtLeast(2.0).met(1.9));
    }

    #[test]
    fn idle_per_session() {
        let mut a = IdleSample {
            workload: "idle".into(),
            round: 1,
            sink: Side::Ours,
            sessions_target: 10_000,
            sessions_open: 10_000,
            outcome: Outcome::Ok,
            rss_before_kib: Some(2_000),
            rss_after_kib: Some(162_000),
            detail: None,
        };
        assert_eq!(a.kib_per_session(), Some(16.0));
        let mut b = a.clone();
        b.sink = Side::Postfix;
        b.rss_after_kib = Some(82_000);
        assert_eq!(
            idle_per_round_ratios(&[a.clone(), b.clone()], "idle"),
            vec![(1, 2.0)]
        );
        a.outcome = Outcome::Error;
        assert!(idle_per_round_ratios(&[a.clone(), b], "idle").is_empty());
        a.sessions_open = 0;
        assert_eq!(a.kib_per_session(), None);
    }

    #[test]
    fn workloads_and_scaling() {
        let w = workload("reuse").unwrap();
        assert_eq!(
            w.source_args(),
            ["-s", "20", "-d", "-l", "5120", "-m", "50000"]
        );
        assert!(w.sink_args().is_empty());
        assert_eq!(
            workload("conn").unwrap().source_args(),
            ["-s", "20", "-l", "5120", "-m", "20000"]
        );
        let wide = workload("wide").unwrap();
        assert_eq!(wide.sink_args(), ["-m", "5000"]);
        let q = wide.scaled(10);
        assert_eq!(
            q.source_args(),
            ["-s", "1000", "-d", "-l", "1024", "-m", "10000"]
        );
        let tiny = wide.scaled(1_000_000);
        assert_eq!(
            tiny.source_args(),
            ["-s", "1", "-d", "-l", "1024", "-m", "1"]
        );
        let idle = workload("idle").unwrap();
        assert_eq!(idle.sink_args(), ["-m", "10001", "-t", "600"]);
        assert_eq!(idle.scaled(10).kind, Kind::Idle { sessions: 1000 });
        assert!(workload("nope").is_none());
    }

    #[test]
    fn markdown_table() {
        let mut s = vec![
            run("reuse", 1, PP, 2.0, 1.0, 1.0),
            run("reuse", 1, PO, 2.0, 1.0, 0.5),
            run("reuse", 1, OP, 1.0, 0.5, 1.0),
            run("reuse", 1, OO, 0.5, 0.5, 0.5),
            run("reuse", 2, PP, 2.0, 1.0, 1.0),
            run("reuse", 2, PO, 2.0, 1.0, 0.8),
            run("reuse", 2, OP, 1.0, 0.5, 1.0),
            run("reuse", 2, OO, 0.5, 0.5, 0.5),
        ];
        s[7].outcome = Outcome::Timeout;
        s[7].detail = Some("killed after\n5 s".into());
        let idle = vec![IdleSample {
            workload: "idle".into(),
            round: 1,
            sink: Side::Ours,
            sessions_target: 100,
            sessions_open: 100,
            outcome: Outcome::Ok,
            rss_before_kib: Some(1000),
            rss_after_kib: Some(1800),
            detail: None,
        }];
        let ws = [workload("reuse").unwrap(), workload("idle").unwrap()];
        let md = render_markdown(&Report {
            header: vec!["# Bench".into()],
            workloads: &ws,
            rounds: 2,
            runs: &s,
            idle: &idle,
            checks: &[],
            scaled: false,
        });
        assert!(md.starts_with("# Bench\n"), "{md}");
        assert!(md.contains("| Postfix | Postfix | 0/2 | 2.000 (2.000–2.000) | 500 (500–500) | 1.000 (1.000–1.000) | 1.000 (1.000–1.000) |"), "{md}");
        assert!(
            md.contains("| ours | ours | 1/2 (1× timeout) | 0.500 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| sink CPU ours/Postfix (Postfix source) | 0.65 (0.50–0.80) | 2 | ≤ 0.7 | met |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| source wall ours/Postfix (Postfix sink) | 0.50 (0.50–0.50) | 2 | ≤ 0.75 | met |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| msg/s ours pair / Postfix pair | 4.00 | 1 | ≥ 2 | met |"),
            "{md}"
        );
        assert!(
            md.contains("- `reuse` round 2 source ours → sink ours: timeout — `killed after 5 s`"),
            "{md}"
        );
        assert!(
            md.contains("| ours | 0/1 | 100 | 1000 | 1800 | 8.00 | ≤ 64 | met |"),
            "{md}"
        );
        assert!(
            md.contains("| Postfix | 0/0 | – | – | – | – |  |  |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_not_met_and_no_data() {
        let s = vec![
            run("big", 1, PP, 1.0, 1.0, 1.0),
            run("big", 1, PO, 1.0, 1.0, 0.9),
        ];
        let ws = [workload("big").unwrap()];
        let md = render_markdown(&Report {
            header: vec![],
            workloads: &ws,
            rounds: 1,
            runs: &s,
            idle: &[],
            checks: &[],
            scaled: true,
        });
        assert!(
            md.contains(
                "| sink CPU ours/Postfix (Postfix source) | 0.90 | 1 | ≤ 0.2 | **NOT met** |"
            ),
            "{md}"
        );
        assert!(md.contains("Scaled-down run"), "{md}");
        assert!(!md.contains("### Failures"), "{md}");
    }

    #[test]
    fn floor_cells_and_dialogues() {
        assert_eq!(cell_by_name("floor"), Some(FF));
        assert_eq!(cell_by_name("po"), Some(PO));
        assert_eq!(cell_by_name("x"), None);
        let d = |n: &str| workload(n).unwrap().dialogue();
        assert_eq!(d("reuse"), Dialogue::default());
        assert_eq!(
            d("pipe"),
            Dialogue {
                ehlo: true,
                starttls: false,
                pipelining: true
            }
        );
        assert!(d("bigtls").starttls && d("tls").starttls && d("tlsconn").starttls);
        let big = workload("bigtls").unwrap();
        assert_eq!(workload_cells(&big), vec![OO, FF]);
        assert!(big
            .source_args()
            .starts_with(&["-s".into(), "4".into(), "-d".into()]));
        let c = workload("wide").unwrap().for_check(10);
        assert_eq!(c.source_args(), ["-s", "1", "-d", "-l", "1024", "-m", "10"]);
        assert_eq!(workload("conn").unwrap().for_check(10).messages(), 10);
    }

    #[test]
    fn floor_ratio_and_summary() {
        let s = vec![
            run("big", 1, PP, 4.0, 1.0, 1.0), // 250 msg/s
            run("big", 1, OO, 1.0, 1.0, 1.0), // 1000 msg/s
            run("big", 1, FF, 0.5, 1.0, 1.0), // 2000 msg/s
            run("pipe", 1, OO, 1.0, 1.0, 1.0),
            run("pipe", 1, FF, 1.2, 1.0, 1.0),
        ];
        assert_eq!(
            per_round_ratios(&s, "big", RatioKind::FloorRate),
            vec![(1, 0.5)]
        );
        let ws = [workload("big").unwrap(), workload("pipe").unwrap()];
        let md = render_markdown(&Report {
            header: vec![],
            workloads: &ws,
            rounds: 1,
            runs: &s,
            idle: &[],
            checks: &[],
            scaled: false,
        });
        assert!(
            md.contains("| msg/s ours pair / floor | 0.50 | 1 | ≥ 0.8 | **NOT met** |"),
            "{md}"
        );
        assert!(
            md.contains("| big | 1000 | 250 | 2000 | 4.00 | 0.50 | ≥ 0.8 | **NOT met** | 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| pipe | 1000 | – | 833 | – | 1.20 | ≥ 0.8 | met | 1.00 |"),
            "{md}"
        );
        // Cells that did not run (--cells) get no row.
        assert!(!md.contains("| Postfix | ours |"), "{md}");
    }

    #[test]
    fn floor_check_compares_every_count() {
        let a = FloorCounters {
            connections: 1,
            commands: 32,
            command_bytes: 455,
            bytes_in: 52_805,
            messages: 10,
            reply_writes: 42,
        };
        assert_eq!(a.data_bytes(), 52_350);
        let mut b = a;
        b.bytes_in += 4;
        b.reply_writes += 1;
        assert_eq!(a.differences(&b), vec!["data bytes", "round trips"]);
        let mut c = FloorCheck {
            workload: "reuse".into(),
            messages: 10,
            ours: Some(a),
            floor: Some(a),
            detail: None,
        };
        assert!(c.same());
        c.floor = Some(b);
        assert!(!c.same());
        let ws = [workload("reuse").unwrap()];
        let checks = [c.clone()];
        let md = render_markdown(&Report {
            header: vec![],
            workloads: &ws,
            rounds: 1,
            runs: &[],
            idle: &[],
            checks: &checks,
            scaled: false,
        });
        assert!(
            md.contains("| reuse | 10 | floor client | 1 | 32 | 455 | 52354 | 10 | 43 | **NO** |"),
            "{md}"
        );
        assert!(
            md.contains("- floor check `reuse`: data bytes, round trips"),
            "{md}"
        );
        c.floor = None;
        c.detail = Some("floor client: refused".into());
        assert!(!c.same());
    }

    #[test]
    fn harness_workloads_run_ours_only_without_the_floor() {
        let reuse = workload("reuse").unwrap();
        for name in ["metrics", "policy"] {
            let w = workload(name).unwrap();
            assert_eq!(workload_cells(&w), vec![OO], "{name}");
            assert_eq!(
                w.source_args(),
                reuse.source_args(),
                "{name}: reuse's traffic"
            );
            assert!(w.sink_args().is_empty(), "{name}");
            assert_eq!(w.dialogue(), Dialogue::default(), "{name}");
            assert_eq!(w.scaled(10).harness, w.harness, "{name}");
            assert_eq!(w.scaled(10).source_args(), reuse.scaled(10).source_args());
        }
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        assert_eq!(names[9..], ["metrics", "policy"], "after the others");
        assert_eq!(workload("metrics").unwrap().harness, Harness::Scrape);
        assert_eq!(
            workload("policy").unwrap().harness,
            Harness::Policy { rules: 100 }
        );
        assert_eq!(
            workload("metrics").unwrap().describe(),
            "smtp-source -s 20 -d -l 5120 -m 50000 --metrics 127.0.0.1:PORT; \
             smtp-sink --metrics 127.0.0.1:PORT; \
             both `/metrics` pages scraped every 100 ms (HTTP/1.1 keep-alive)"
        );
        assert_eq!(
            workload("policy").unwrap().describe(),
            "smtp-source -s 20 -d -l 5120 -m 50000; smtp-sink --policy FILE; \
             FILE: 100 rules that match no message, the default accepts"
        );
        // The other workloads keep their cells and descriptions.
        assert_eq!(workload_cells(&workload("pipe").unwrap()), vec![OO, FF]);
        assert_eq!(reuse.describe(), "smtp-source -s 20 -d -l 5120 -m 50000");
    }

    #[test]
    fn accept_all_policy_loads_and_every_message_walks_every_rule() {
        use smtpstone::sink::policy::{Outcome as Counted, Policy, PolicyEngine};
        let text = accept_all_policy(POLICY_RULES);
        assert_eq!(text.matches("[[rule]]").count(), 100);
        assert_eq!(text.matches("[[default.rcpt]]").count(), 1);
        let policy = Policy::parse(&text, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
        let e = PolicyEngine::new(policy, 1);
        // The bench's traffic: smtp-source's defaults from 127.0.0.1, any
        // host name (sender, recipient foo@HOSTNAME, HELO HOSTNAME).
        for host in ["localhost", "bench-host.example.com", "d4.example"] {
            let mut s = e.session();
            let before = s.rules_evaluated();
            let client = Some(std::net::IpAddr::from([127, 0, 0, 1]));
            assert!(e.on_connect(&mut s, client, Duration::ZERO).is_accept());
            e.on_helo(&mut s, host.as_bytes());
            let addr = format!("<foo@{host}>");
            for _ in 0..10 {
                assert!(e
                    .on_mail(&mut s, addr.as_bytes(), Duration::ZERO)
                    .is_accept());
                assert!(e
                    .on_rcpt(&mut s, addr.as_bytes(), Duration::ZERO)
                    .is_accept());
                assert!(e.on_message_end(&mut s, Duration::ZERO).is_accept());
            }
            // Connect, then MAIL and RCPT of each message: all 100 rules.
            assert_eq!(s.rules_evaluated() - before, 100 + 10 * 200, "{host}");
        }
        let snap = e.snapshot();
        assert_eq!(snap.rule("default").unwrap().get(Counted::Accepted), 30);
        assert_eq!(snap.rule("r0").unwrap().get(Counted::Deferred), 0);
    }

    #[test]
    fn response_heads() {
        let ours = "HTTP/1.1 200 OK\r\n\
            content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
            content-length: 1234\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT";
        assert_eq!(
            parse_response_head(ours),
            Ok(ResponseHead {
                status: 200,
                content_length: 1234,
                close: false
            })
        );
        let closing = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close";
        assert_eq!(
            parse_response_head(closing),
            Ok(ResponseHead {
                status: 404,
                content_length: 0,
                close: true
            })
        );
        assert!(parse_response_head("HTTP/1.0 200 OK\r\nContent-Length: 1").is_ok_and(|h| h.close));
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked";
        assert!(parse_response_head(chunked).is_err());
        assert!(parse_response_head("HTTP/1.1 200 OK").is_err(), "unframed");
        assert!(parse_response_head("SMTP 220 hi").is_err());
        assert!(parse_response_head("HTTP/1.1 2x0 OK\r\nContent-Length: 1").is_err());
        assert!(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: -1").is_err());
        assert!(parse_response_head("HTTP/1.1 200 OK\r\nno colon").is_err());
        assert_eq!(response_head_len(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(response_head_len(b"HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn cross_ratios_compare_msg_rate_or_sink_cpu() {
        // 1000 messages each: msg/s = 1000 / wall.
        let mut samples = vec![
            run("reuse", 1, OO, 1.0, 1.0, 2.0),    // 1000 msg/s, sink 2 s
            run("metrics", 1, OO, 1.02, 1.0, 2.2), // 980 msg/s, sink 2.2 s
            run("policy", 1, OO, 1.25, 1.0, 2.2),  // 800 msg/s, sink 2.2 s
            run("reuse", 2, OO, 1.0, 1.0, 2.0),
            run("metrics", 2, OO, 1.0, 1.0, 2.0),
            run("policy", 2, OO, 1.0, 1.0, 0.0), // sink CPU 0: no ratio
        ];
        samples[4].outcome = Outcome::Error; // no sink scrape in round 2
        let by_label = |label: &str| {
            let c = CROSS_RATIOS.iter().find(|c| c.label == label).unwrap();
            let v = cross_per_round(&samples, c);
            (c.metric, c.target, v)
        };
        let close = |v: Vec<(u32, f64)>, want: &[(u32, f64)]| {
            assert_eq!(v.len(), want.len(), "{v:?}");
            for (a, b) in v.iter().zip(want) {
                assert!(a.0 == b.0 && (a.1 - b.1).abs() < 1e-9, "{v:?} vs {want:?}");
            }
        };
        let (m, t, v) = by_label("msg/s metrics / reuse (ours pair)");
        assert_eq!((m, t), (CrossMetric::MsgRate, Some(Target::AtLeast(0.97))));
        close(v, &[(1, 1.0 / 1.02)]);
        let (m, t, v) = by_label("sink CPU metrics / reuse (ours pair)");
        assert_eq!((m, t), (CrossMetric::SinkCpu, Some(Target::AtMost(1.05))));
        close(v, &[(1, 1.1)]);
        let (m, t, v) = by_label("sink CPU policy / reuse (ours pair)");
        assert_eq!((m, t), (CrossMetric::SinkCpu, Some(Target::AtMost(1.15))));
        close(v, &[(1, 1.1), (2, 0.0)]);
        let (m, t, v) = by_label("msg/s policy / reuse (ours pair)");
        assert_eq!((m, t), (CrossMetric::MsgRate, None));
        close(v, &[(1, 0.8), (2, 1.0)]);
        // The rows of the other extension workloads still compare msg/s.
        let earlier = ["pipe", "tls", "bigtls"];
        assert!(CROSS_RATIOS
            .iter()
            .filter(|c| earlier.contains(&c.workload))
            .all(|c| c.metric == CrossMetric::MsgRate));
        // Base CPU zero: skipped, not infinite.
        let z = vec![
            run("reuse", 1, OO, 1.0, 1.0, 0.0),
            run("policy", 1, OO, 1.0, 1.0, 1.0),
        ];
        assert!(cross_per_round(&z, &CROSS_RATIOS[5]).is_empty());
    }

    #[test]
    fn markdown_of_harness_workloads() {
        let mut s = vec![
            run("reuse", 1, PP, 2.0, 1.0, 1.0),
            run("reuse", 1, OO, 1.0, 1.0, 2.0),
            run("metrics", 1, OO, 1.02, 1.0, 2.2),
            run("policy", 1, OO, 1.25, 1.0, 2.2),
        ];
        s[2].scrapes = Some(Scrapes {
            sink_ok: 11,
            sink_failed: 0,
            source_ok: 9,
            source_failed: 2,
        });
        let ws = [
            workload("reuse").unwrap(),
            workload("metrics").unwrap(),
            workload("policy").unwrap(),
        ];
        let md = render_markdown(&Report {
            header: vec![],
            workloads: &ws,
            rounds: 1,
            runs: &s,
            idle: &[],
            checks: &[],
            scaled: false,
        });
        for row in [
            "| msg/s metrics / reuse (ours pair) | 0.98 | 1 | ≥ 0.97 | met |",
            "| sink CPU metrics / reuse (ours pair) | 1.10 | 1 | ≤ 1.05 | **NOT met** |",
            "| sink CPU policy / reuse (ours pair) | 1.10 | 1 | ≤ 1.15 | met |",
            "| msg/s policy / reuse (ours pair) | 0.80 | 1 |  |  |",
            "| `/metrics` scrapes per run | ok | failed |",
            "| sink | 11 | 0 |",
            "| source | 9 | 2 |",
            "| messages/s | 800 |",
            "| sink CPU µs per message | 2200 |",
        ] {
            assert!(md.contains(row), "{row}\n{md}");
        }
        // No floor rows and no Pairs row for them; one scrape table.
        let (_, harnessed) = md.split_once("### `metrics`").unwrap();
        let (harnessed, _) = harnessed.split_once("### Pairs").unwrap();
        assert!(!harnessed.contains("floor"), "{harnessed}");
        assert!(
            !md.contains("| metrics |") && !md.contains("| policy |"),
            "{md}"
        );
        assert_eq!(md.matches("scrapes per run").count(), 1, "{md}");
        assert!(md.contains("| reuse | 1000 | 500 | – |"), "{md}");
    }

    #[test]
    fn scrapes_are_shown_and_optional_in_json() {
        let c = Scrapes {
            sink_ok: 30,
            sink_failed: 1,
            source_ok: 28,
            source_failed: 3,
        };
        assert_eq!(
            c.to_string(),
            "scrapes: sink 30 ok, 1 failed; source 28 ok, 3 failed"
        );
        let plain = run("reuse", 1, OO, 1.0, 1.0, 1.0);
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("scrapes"), "{text}");
        // Samples saved before the field existed still load (--render).
        assert_eq!(serde_json::from_str::<RunSample>(&text).unwrap(), plain);
        let mut m = plain.clone();
        m.scrapes = Some(c);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<RunSample>(&text).unwrap(), m);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_string(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_string(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn one_line_details() {
        assert_eq!(one_line("a\n  b\tc `x`"), "a b c 'x'");
        assert_eq!(one_line(&"y".repeat(300)).chars().count(), 201);
    }
}
