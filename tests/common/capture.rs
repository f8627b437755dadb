//! A scripted SMTP/LMTP capture server for smtp-source tests: records the
//! exact bytes received on every connection and answers with replies chosen
//! by a script (rejects at any stage, 421, multi-line and non-printable
//! replies, drops, silence, delays, floods). Binds 127.0.0.1:0 (or a unix
//! socket); one thread per connection; every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// What the server does in answer to a command (or at connect, for the
/// banner).
#[derive(Debug, Clone)]
pub enum Action {
    /// Send these bytes (one or more complete reply lines, CRLF included).
    Reply(Vec<u8>),
    /// Send these bytes, then close the connection.
    ReplyClose(Vec<u8>),
    /// Wait, then send the bytes.
    Delay(Duration, Vec<u8>),
    /// Close without replying.
    Close,
    /// Never reply; keep reading until the client goes away.
    Silent,
}

/// Shorthand for `Action::Reply(text + "\r\n")`.
pub fn reply(text: &str) -> Action {
    Action::Reply(format!("{text}\r\n").into_bytes())
}

/// One command as the script sees it.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Connection number (0-based, in accept order).
    pub conn: usize,
    /// Upper-cased verb: `HELO`, `LHLO`, `MAIL`, `RCPT`, `DATA`, `.` (end of
    /// data), `RSET`, `QUIT`, or the first word of anything else.
    pub verb: String,
    /// How many earlier commands with this verb this connection has seen.
    pub nth: usize,
    /// The line without CRLF.
    pub line: Vec<u8>,
    /// RCPTs answered 2xx since the last MAIL (for LMTP end-of-data).
    pub accepted: usize,
}

/// The reply rules of a capture server.
pub type Script = Arc<dyn Fn(&Cmd) -> Action + Send + Sync>;

/// Postfix-like default answers: 220 banner, 250 to everything, 354 to
/// DATA, one 250 per accepted recipient after `.` when `lmtp`, 221 + close
/// for QUIT.
pub fn default_action(cmd: &Cmd, lmtp: bool) -> Action {
    match cmd.verb.as_str() {
        "DATA" => reply("354 go"),
        "." if lmtp => Action::Reply(b"250 2.0.0 ok\r\n".repeat(cmd.accepted.max(1))),
        "." => reply("250 2.0.0 queued"),
        "QUIT" => Action::ReplyClose(b"221 bye\r\n".to_vec()),
        _ => reply("250 ok"),
    }
}

/// The default SMTP script.
pub fn default_script() -> Script {
    Arc::new(|cmd: &Cmd| default_action(cmd, false))
}

/// The default LMTP script.
pub fn lmtp_script() -> Script {
    Arc::new(|cmd: &Cmd| default_action(cmd, true))
}

/// What one connection received.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// Every byte, in order.
    pub raw: Vec<u8>,
    /// The command lines (and `.`), without CRLF, as the server parsed them.
    pub cmds: Vec<String>,
}

#[derive(Default)]
struct State {
    transcripts: Mutex<Vec<Arc<Mutex<Record>>>>,
    active: AtomicUsize,
    stop: AtomicBool,
}

/// A running capture server.
pub struct Capture {
    /// TCP address (unset for unix sockets).
    pub addr: Option<SocketAddr>,
    /// Unix socket path.
    pub path: Option<PathBuf>,
    state: Arc<State>,
}

trait Io: Read + Write + Send {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Io>>;
    fn set_timeout(&self, d: Duration);
}
impl Io for TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
        let _ = self.set_write_timeout(Some(d));
    }
}
impl Io for UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
        let _ = self.set_write_timeout(Some(d));
    }
}

impl Capture {
    /// Start on 127.0.0.1:0 with `banner` and `script`.
    pub fn start(banner: Action, script: Script) -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            accept_loop(&st, banner, script, || match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    Some(Box::new(s) as Box<dyn Io>)
                }
                Err(_) => None,
            })
        });
        Capture {
            addr: Some(addr),
            path: None,
            state,
        }
    }

    /// Start with the default banner and script.
    pub fn default_smtp() -> Capture {
        Self::start(reply("220 fake ESMTP"), default_script())
    }

    /// Start on a unix socket `path`.
    pub fn start_unix(path: &Path, banner: Action, script: Script) -> Capture {
        let listener = UnixListener::bind(path).expect("bind unix");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            accept_loop(&st, banner, script, || match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    Some(Box::new(s) as Box<dyn Io>)
                }
                Err(_) => None,
            })
        });
        Capture {
            addr: None,
            path: Some(path.to_path_buf()),
            state,
        }
    }

    /// The endpoint operand for smtp-source.
    pub fn endpoint(&self) -> String {
        match (&self.addr, &self.path) {
            (Some(a), _) => a.to_string(),
            (None, Some(p)) => format!("unix:{}", p.display()),
            _ => unreachable!(),
        }
    }

    /// Wait until every accepted connection has ended (bounded), then
    /// return the bytes received on each, in accept order.
    pub fn transcripts(&self) -> Vec<Vec<u8>> {
        self.records().into_iter().map(|r| r.raw).collect()
    }

    /// Like [`Capture::transcripts`], the parsed command lines.
    pub fn commands(&self) -> Vec<Vec<String>> {
        self.records().into_iter().map(|r| r.cmds).collect()
    }

    /// Wait until every connection has ended (bounded); all records.
    pub fn records(&self) -> Vec<Record> {
        let deadline = Instant::now() + TIMEOUT;
        while self.state.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.snapshot()
    }

    /// The records so far, without waiting.
    pub fn snapshot(&self) -> Vec<Record> {
        let list = self.state.transcripts.lock().expect("lock");
        list.iter()
            .map(|t| t.lock().expect("lock").clone())
            .collect()
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.transcripts.lock().expect("lock").len()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn accept_loop(
    state: &Arc<State>,
    banner: Action,
    script: Script,
    mut accept: impl FnMut() -> Option<Box<dyn Io>>,
) {
    while !state.stop.load(Ordering::SeqCst) {
        let Some(stream) = accept() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let transcript = Arc::new(Mutex::new(Record::default()));
        let conn = {
            let mut list = state.transcripts.lock().expect("lock");
            list.push(Arc::clone(&transcript));
            list.len() - 1
        };
        state.active.fetch_add(1, Ordering::SeqCst);
        let st = Arc::clone(state);
        let banner = banner.clone();
        let script = Arc::clone(&script);
        std::thread::spawn(move || {
            serve(stream, conn, &banner, &script, &transcript);
            st.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Perform `action`; false when the connection must end.
fn act(out: &mut dyn Io, action: &Action) -> bool {
    match action {
        Action::Reply(bytes) => out.write_all(bytes).is_ok(),
        Action::ReplyClose(bytes) => {
            let _ = out.write_all(bytes);
            false
        }
        Action::Delay(d, bytes) => {
            std::thread::sleep(*d);
            out.write_all(bytes).is_ok()
        }
        Action::Close => false,
        Action::Silent => true,
    }
}

fn serve(
    stream: Box<dyn Io>,
    conn: usize,
    banner: &Action,
    script: &Script,
    transcript: &Mutex<Record>,
) {
    stream.set_timeout(TIMEOUT);
    let Ok(mut out) = stream.try_clone_box() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    if !act(out.as_mut(), banner) {
        return;
    }
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut accepted = 0;
    let mut in_data = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        transcript
            .lock()
            .expect("lock")
            .raw
            .extend_from_slice(&line);
        let text = line.strip_suffix(b"\r\n").unwrap_or(&line).to_vec();
        if in_data {
            if text != b"." {
                continue;
            }
            in_data = false;
        }
        let verb = if text == b"." {
            ".".to_string()
        } else {
            String::from_utf8_lossy(text.split(|&b| b == b' ').next().unwrap_or(b""))
                .to_ascii_uppercase()
        };
        transcript
            .lock()
            .expect("lock")
            .cmds
            .push(String::from_utf8_lossy(&text).into_owned());
        let nth = counts.entry(verb.clone()).or_insert(0);
        let cmd = Cmd {
            conn,
            verb: verb.clone(),
            nth: *nth,
            line: text,
            accepted,
        };
        *nth += 1;
        let action = script(&cmd);
        match verb.as_str() {
            "MAIL" => accepted = 0,
            "RCPT" => {
                if let Action::Reply(b) | Action::Delay(_, b) = &action {
                    if b.first() == Some(&b'2') {
                        accepted += 1;
                    }
                }
            }
            "DATA" => {
                if let Action::Reply(b) | Action::Delay(_, b) = &action {
                    in_data = b.starts_with(b"354");
                }
            }
            _ => {}
        }
        if !act(out.as_mut(), &action) {
            return;
        }
    }
}

/// Split a transcript into its CRLF-terminated lines (as text, lossy).
pub fn lines(transcript: &[u8]) -> Vec<String> {
    transcript
        .split_inclusive(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r\n").unwrap_or(l)).into_owned())
        .collect()
}

/// Run `program` (argv[0] `smtp-source`) with `args` and the capture
/// server's endpoint as the operand.
pub fn run_source(program: &Path, args: &[&str], cap: &Capture) -> super::Output {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.push(cap.endpoint());
    super::run(program, "smtp-source", &argv)
}

/// Replace the Date header value with `DATE` and the first two
/// Message-Id fields (process id, socket descriptor) with `P.F`, keeping
/// the counter and the hostname.
pub fn mask(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"Date: ") {
            out.extend_from_slice(b"Date: DATE\r\n");
        } else if let Some(rest) = line.strip_prefix(b"Message-Id: <") {
            let mut parts = rest.splitn(3, |&b| b == b'.');
            let (_, _, tail) = (parts.next(), parts.next(), parts.next().unwrap_or(b""));
            out.extend_from_slice(b"Message-Id: <P.F.");
            out.extend_from_slice(tail);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// [`mask`], keeping the Message-Id's descriptor field (ours gives the
/// numbers Postfix's process would, src/source/descriptor.rs): for
/// comparing with Postfix's smtp-source.
pub fn mask_pid(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b"Message-Id: <") {
            Some(rest) => {
                let descriptor = rest.splitn(2, |&b| b == b'.').nth(1).unwrap_or(b"");
                out.extend_from_slice(b"Message-Id: <P.");
                out.extend_from_slice(descriptor);
            }
            None => out.extend_from_slice(&mask(line)),
        }
    }
    out
}

/// Printable form of bytes for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n\n")
}
