//! Shared helpers for the integration tests: spawning our binaries and
//! Postfix's (killed on drop), skipping loudly when Postfix is absent, port
//! and unix-socket helpers, and a scripted SMTP client. Every wait here is
//! bounded by a timeout.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for any single wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Our smtp-source binary.
pub fn our_source() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smtp-source"))
}

/// Our smtp-sink binary.
pub fn our_sink() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smtp-sink"))
}

/// Where Debian's postfix package puts the reference binaries.
pub const POSTFIX_SOURCE: &str = "/usr/sbin/smtp-source";
/// See [`POSTFIX_SOURCE`].
pub const POSTFIX_SINK: &str = "/usr/sbin/smtp-sink";

/// True when `REQUIRE_POSTFIX=1`: then a missing Postfix fails the test.
pub fn postfix_required() -> bool {
    std::env::var("REQUIRE_POSTFIX").is_ok_and(|v| v == "1")
}

/// The Postfix binary `path`, or `None` after a loud skip notice. Panics
/// under `REQUIRE_POSTFIX=1` so that CI never reports a skip as a pass.
pub fn postfix_or_skip(path: &str, test: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(PathBuf::from(path));
    }
    if postfix_required() {
        panic!("{test}: {path} is missing and REQUIRE_POSTFIX=1");
    }
    eprintln!("\n*** SKIPPED {test}: {path} not installed (apt-get install postfix) ***\n");
    None
}

/// True when running as root (then sinks need `-u nobody`).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Privilege arguments a sink needs in this environment.
pub fn sink_user_args() -> Vec<String> {
    if is_root() {
        vec!["-u".into(), "nobody".into()]
    } else {
        Vec::new()
    }
}

/// A child process that is killed (and reaped) when dropped. Its stdout and
/// stderr are collected by background threads.
pub struct Proc {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    status: Option<ExitStatus>,
}

/// Everything a finished process produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (None when it was killed by us after a timeout).
    pub status: Option<ExitStatus>,
    /// All of stdout.
    pub stdout: Vec<u8>,
    /// All of stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    /// stderr as lossy text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// stdout as lossy text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Proc {
    /// Start `program` with `args`, argv[0] set to `argv0` (as Postfix
    /// prints argv[0] verbatim in diagnostics).
    pub fn spawn<I, S>(program: &Path, argv0: &str, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_in(program, argv0, args, None)
    }

    /// Like [`Proc::spawn`] with a working directory.
    pub fn spawn_in<I, S>(program: &Path, argv0: &str, args: I, dir: Option<&Path>) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with(program, argv0, args, dir, |_| {})
    }

    /// Like [`Proc::spawn_in`], letting `prepare` adjust the command first
    /// (environment, a `pre_exec` hook).
    pub fn spawn_with<I, S>(
        program: &Path,
        argv0: &str,
        args: I,
        dir: Option<&Path>,
        prepare: impl FnOnce(&mut Command),
    ) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        cmd.arg0(argv0)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        prepare(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Proc {
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to `limit` for the process to exit on its own.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return self.status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// True if the process is still running.
    pub fn running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait up to `limit` (then kill) and collect everything it wrote.
    pub fn finish(mut self, limit: Duration) -> Output {
        let status = self.wait_timeout(limit);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.collect(status)
    }

    /// Kill now and collect everything it wrote.
    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.status = status;
        self.collect(None)
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> Output {
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run a command to completion (bounded by [`TIMEOUT`]).
pub fn run<I, S>(program: &Path, argv0: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Proc::spawn(program, argv0, args).finish(TIMEOUT)
}

/// A port that was free a moment ago on 127.0.0.1 (for programs that must
/// be told a port; prefer binding port 0 where the program allows it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Wait until something accepts connections at `addr`.
pub fn wait_for_listener(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Wait until a unix socket at `path` accepts connections.
pub fn wait_for_unix(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A sink (ours or Postfix's) started on a free loopback port; see
/// [`sink::start_at`], which waits for the listener without connecting to it
/// (so `-c` counters stay exact).
pub use sink::Sink as RunningSink;

/// Start `program` as a sink on 127.0.0.1 with `args` and backlog 100.
/// Adds `-u nobody` when running as root.
pub fn start_sink(program: &Path, argv0: &str, args: &[&str]) -> RunningSink {
    start_sink_in(program, argv0, args, None)
}

/// Like [`start_sink`] with a working directory (for relative dump paths).
pub fn start_sink_in(
    program: &Path,
    argv0: &str,
    args: &[&str],
    dir: Option<&Path>,
) -> RunningSink {
    sink::start_at(program, argv0, args, "127.0.0.1", dir)
}

/// A scripted SMTP client for tests: sends raw bytes, reads with timeouts.
pub struct Client {
    /// The connection.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connect to `addr` with read/write timeouts.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Read until the buffered input ends with a complete SMTP reply (a
    /// line `DDD ...\r\n`) and return everything read so far.
    pub fn reply(&mut self) -> Vec<u8> {
        self.read_until(last_reply_complete)
    }

    /// Read until `n` complete final reply lines have arrived.
    pub fn replies(&mut self, n: usize) -> Vec<u8> {
        self.read_until(|b| count_final_lines(b) >= n)
    }

    /// Read until `pred` holds for the bytes read (or EOF/timeout) and
    /// return them, clearing the buffer.
    pub fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while !pred(&self.buf) && Instant::now() < deadline {
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Read everything until the peer closes (bounded by [`TIMEOUT`]).
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            if Instant::now() > deadline {
                break;
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Close our side and wait (bounded) for the peer's close.
    pub fn hang_up(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.read_to_eof();
    }

    /// True if the peer has closed (EOF or reset) within `limit`, with no
    /// data in between; data read is kept for the next call.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(limit));
        let mut chunk = [0u8; 4096];
        let closed = match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        let _ = self.stream.set_read_timeout(Some(TIMEOUT));
        closed
    }
}

/// True when `bytes` ends with a complete final reply line (`DDD ` … CRLF).
pub fn last_reply_complete(bytes: &[u8]) -> bool {
    if !bytes.ends_with(b"\r\n") {
        return false;
    }
    let body = &bytes[..bytes.len() - 2];
    let start = body
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map(|p| p + 2)
        .unwrap_or(0);
    let line = &body[start..];
    line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' '
}

/// Number of final reply lines (`DDD ` … CRLF) in `bytes`.
pub fn count_final_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\r"))
        .filter(|l| l.len() >= 4 && l[..3].iter().all(u8::is_ascii_digit) && l[3] == b' ')
        .count()
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}
pub mod capture;
pub mod esmtp;
pub mod measure;
pub mod mta;
pub mod sink;
pub mod tls;
