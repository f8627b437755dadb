//! Sink-specific test helpers: start a sink (ours or Postfix's) without
//! opening a probe session (so `-c` counters stay exact), and small
//! conversation helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{free_port, our_sink, sink_user_args, Client, Output, Proc, TIMEOUT};

/// A running sink on a loopback port.
pub struct Sink {
    /// The process (killed on drop).
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Sink {
    /// Connect a test client.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Kill the sink and collect its output.
    pub fn kill(self) -> Output {
        self.proc.kill()
    }

    /// Kill the sink once it has finished with every session that it has
    /// closed (see [`settle`]), and collect its output.
    pub fn kill_settled(self) -> Output {
        let held = settle(self.addr);
        let out = self.proc.kill();
        drop(held);
        out
    }

    /// Wait for the sink to exit on its own (bounded), then collect.
    pub fn finish(self) -> Output {
        self.proc.finish(TIMEOUT)
    }
}

/// True when a TCP socket in LISTEN state has local port `port`
/// (read from /proc/net/tcp{,6}: no connection is made).
pub fn listening(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3
                    && format!("{} ", fields[1]).ends_with(&needle)
                    && fields[3] == "0A"
            })
        })
    })
}

/// Start `program` with `args`, then `HOST:PORT 100` on a free port (IPv4
/// loopback unless `host` says otherwise). Adds `-u nobody` as root. Waits
/// until the port listens, without connecting.
pub fn start_at(
    program: &Path,
    argv0: &str,
    args: &[&str],
    host: &str,
    dir: Option<&Path>,
) -> Sink {
    start_with(program, argv0, args, host, dir, |_| {})
}

/// Like [`start_at`], letting `prepare` adjust the command before each
/// spawn attempt (for example a `pre_exec` hook).
pub fn start_with(
    program: &Path,
    argv0: &str,
    args: &[&str],
    host: &str,
    dir: Option<&Path>,
    prepare: impl Fn(&mut std::process::Command),
) -> Sink {
    for _ in 0..10 {
        let port = free_port();
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("addr");
        let mut argv = sink_user_args();
        argv.extend(args.iter().map(|s| s.to_string()));
        argv.push(format!("{host}:{port}"));
        argv.push("100".into());
        let mut proc = Proc::spawn_with(program, argv0, &argv, dir, &prepare);
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline && proc.running() {
            if listening(port) {
                return Sink { proc, addr };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = proc.kill();
        if !out.stderr_text().contains("in use") {
            panic!(
                "sink {} did not start: {}",
                program.display(),
                out.stderr_text()
            );
        }
    }
    panic!("no free port for {}", program.display());
}

/// Our sink on 127.0.0.1 with `args`.
pub fn ours(args: &[&str]) -> Sink {
    start_at(&our_sink(), "smtp-sink", args, "127.0.0.1", None)
}

/// Our sink with a working directory.
pub fn ours_in(args: &[&str], dir: &Path) -> Sink {
    start_at(&our_sink(), "smtp-sink", args, "127.0.0.1", Some(dir))
}

/// Run our sink expecting it to exit at once; returns its output.
pub fn ours_fails(args: &[&str]) -> Output {
    super::run(&our_sink(), "smtp-sink", args)
}

/// A temporary directory the `-u nobody` sink can write into.
pub fn shared_tempdir() -> tempfile::TempDir {
    let dir = super::tempdir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// Connect, read the greeting, send `input` in one write, read until `n`
/// final reply lines arrived; returns (greeting, replies).
pub fn converse(addr: SocketAddr, input: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut c = Client::connect(addr);
    let greeting = c.reply();
    c.send(input);
    let replies = c.replies(n);
    (greeting, replies)
}

/// Files directly in `dir` (sorted).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Wait (bounded) until `pred` holds.
pub fn wait_until(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pred()
}

/// Replace the 8-hex id and the date of a dump so two dumps compare.
pub fn mask_dump(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if let Some(at) = line.find(" id ") {
            if line.starts_with("\tby ") {
                out.push(format!("{} id XXXXXXXX;", &line[..at]));
                continue;
            }
        }
        if line.starts_with('\t')
            && (line.contains(" +") || line.contains(" -"))
            && line.contains(':')
            && line.ends_with(')')
        {
            out.push("\tDATE".to_string());
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n")
}

/// True when nothing at all (no data, no EOF) arrives within `limit`.
pub fn silent_for(c: &mut Client, limit: Duration) -> bool {
    use std::io::Read;
    let _ = c.stream.set_read_timeout(Some(limit));
    let mut buf = [0u8; 1024];
    let silent = matches!(
        c.stream.read(&mut buf),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    );
    let _ = c.stream.set_read_timeout(Some(TIMEOUT));
    silent
}

/// Wait until the sink at `addr` has finished with every session it has
/// closed: connect and wait (bounded) for the first byte or the close.
///
/// A sink (ours with one loop, Postfix's) accounts a session's end (the
/// `-c` line, the `-v` `disconnect`, the dump file) in the same event-loop
/// step as its close, and a new connection's first event comes from a
/// later step. Keep the returned connection open until the sink is killed,
/// so that it is not accounted itself.
pub fn settle(addr: SocketAddr) -> Option<std::net::TcpStream> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    let _ = s.read(&mut [0u8; 1]);
    Some(s)
}
