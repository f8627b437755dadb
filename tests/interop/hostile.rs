//! Hostile peers: one test per class of abuse. Each asserts that memory
//! stays bounded (VmHWM/VmRSS of our process, from /proc/PID/status), that
//! the hostile session is dropped within the tool's own timeout (`-t`,
//! set small), that other sessions are still served meanwhile, and that
//! nothing panicked. The waits are bounded by [`common::TIMEOUT`]; nothing
//! here asserts on elapsed time.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sink::{files_in, mask_dump, ours, shared_tempdir, start_at, wait_until};
use common::tls::{any_cert_config, TlsClient};
use common::{our_source, Client, Output, Proc, TIMEOUT};

/// Peak memory allowed for a tool under one hostile session. A quiet
/// sink or source (debug build) peaks at about 7–9 MiB; the attacks below
/// send up to 10 MiB, which must not be buffered whole.
const PEAK_KIB: u64 = 16 * 1024;

/// Peak memory allowed with [`IDLE_SESSIONS`] open (each one is also
/// bounded on its own by `IDLE_KIB_PER_SESSION`).
const IDLE_PEAK_KIB: u64 = 48 * 1024;

/// Idle sessions held open at once.
const IDLE_SESSIONS: usize = 2000;

/// Memory allowed per idle session (about 7 KiB measured).
const IDLE_KIB_PER_SESSION: f64 = 32.0;

/// Hard data-segment limit for the source runs (`RLIMIT_DATA`), so that
/// unbounded growth fails the run even between two samples.
const DATA_LIMIT: libc::rlim_t = 256 << 20;

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn assert_peak(pid: u32, what: &str) {
    assert_peak_below(pid, what, PEAK_KIB);
}

fn assert_peak_below(pid: u32, what: &str, limit: u64) {
    let peak = status_kib(pid, "VmHWM");
    assert!(peak > 0, "{what}: no VmHWM for pid {pid}");
    assert!(peak < limit, "{what}: peak RSS {peak} KiB >= {limit} KiB");
    eprintln!("{what}: peak RSS {peak} KiB");
}

fn assert_no_panic(out: &Output, what: &str) {
    let err = out.stderr_text();
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.contains("memory allocation"), "{what}: {err}");
}

/// A normal client gets a whole transaction through.
fn assert_served(addr: SocketAddr, what: &str) {
    let mut c = Client::connect(addr);
    let greeting = c.reply();
    assert!(
        greeting.starts_with(b"220 "),
        "{what}: greeting {greeting:?}"
    );
    c.send(b"HELO ok\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    let got = c.replies(4);
    assert!(
        got.ends_with(b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{what}: {got:?}"
    );
    c.send(b"hi\r\n.\r\nQUIT\r\n");
    let got = c.read_to_eof();
    assert!(
        got.starts_with(b"250 ") && got.ends_with(b"221 Bye\r\n"),
        "{what}: {got:?}"
    );
}

#[test]
fn sink_long_line_without_crlf() {
    let sink = ours(&["-t", "2"]);
    let mut c = Client::connect(sink.addr);
    c.reply();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    // 10 MiB, no line end; the sink may drop the session before the end.
    while sent < 10 << 20 {
        match c.stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    eprintln!("long line: {sent} bytes taken before the sink stopped reading");
    assert_served(sink.addr, "long line");
    assert!(
        c.closed_within(TIMEOUT),
        "the long-line session was not dropped"
    );
    assert_peak(sink.proc.pid(), "sink, 10 MiB line");
    let out = sink.kill();
    assert_no_panic(&out, "long line");
    // As Postfix's smtp-sink: the session ends with this warning.
    assert!(
        out.stderr_text().contains("warning: command line too long"),
        "{}",
        out.stderr_text()
    );
}

/// SMTP smuggling (end-of-data variants with a bare CR or LF): our sink
/// must see exactly the messages Postfix's sees, with the same dumps.
#[test]
fn sink_smuggling_matches_postfix() {
    let Some(reference) =
        common::postfix_or_skip(common::POSTFIX_SINK, "sink_smuggling_matches_postfix")
    else {
        return;
    };
    let variants: &[&[u8]] = &[
        b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\r", b"\r\n.\n", b"\n.\r", b"\r.\r\n", b"\r.\r",
    ];
    for end in variants {
        let mut input =
            b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nSubject: first\r\n\r\nbody"
                .to_vec();
        input.extend_from_slice(end);
        input.extend_from_slice(b"MAIL FROM:<evil>\r\nRCPT TO:<victim>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n");
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let run = |program: &Path| {
            let dir = shared_tempdir();
            let sink = start_at(
                program,
                "smtp-sink",
                &["-c", "-d", "d/"],
                "127.0.0.1",
                Some(dir.path()),
            );
            std::fs::create_dir(dir.path().join("d")).expect("mkdir");
            std::fs::set_permissions(
                dir.path().join("d"),
                std::os::unix::fs::PermissionsExt::from_mode(0o777),
            )
            .expect("chmod");
            let mut c = Client::connect(sink.addr);
            c.reply();
            c.send(&input);
            let replies = c.read_to_eof();
            let d = dir.path().join("d");
            assert!(
                wait_until(TIMEOUT, || !files_in(&d).is_empty()),
                "no dump for {end:?}"
            );
            let dumps: Vec<String> = files_in(&d)
                .iter()
                .map(|f| mask_dump(&std::fs::read_to_string(f).expect("dump")))
                .collect();
            let out = sink.kill();
            assert_no_panic(&out, "smuggling");
            // The last `mesg=` counter (-c): the sink's own message count.
            // (The session counters are printed after the close, so they
            // may still be missing when the client sees the end.)
            let text = out.stdout_text();
            let mesg = text.rsplit("mesg=").next().map(|m| m.trim().to_string());
            (String::from_utf8_lossy(&replies).into_owned(), dumps, mesg)
        };
        let theirs = run(&reference);
        let ours = run(&common::our_sink());
        assert_eq!(ours, theirs, "end of data {end:?}");
    }
}

#[test]
fn sink_starttls_with_pipelined_plaintext() {
    let sink = ours(&["-t", "2", "--tls-self-signed"]);
    let mut c = TlsClient::plain(sink.addr);
    c.reply();
    // A megabyte of plain-text commands injected behind STARTTLS: none may
    // be executed in the TLS session, and none may be buffered for it.
    let mut input = b"EHLO x\r\nSTARTTLS\r\n".to_vec();
    while input.len() < 1 << 20 {
        input.extend_from_slice(b"MAIL FROM:<injected>\r\n");
    }
    c.send(&input);
    let got = c.replies(2);
    // After the 220 only TLS records may follow (the sink's alert for the
    // injected "ClientHello", which TCP_NODELAY can deliver in the same
    // read): never a plain-text reply to an injected command.
    const READY: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";
    let after = got
        .windows(READY.len())
        .position(|w| w == READY)
        .map(|at| &got[at + READY.len()..]);
    let tls_record = |b: &[u8]| b.is_empty() || matches!(b[0], 0x15 | 0x16);
    assert!(
        after.is_some_and(tls_record),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let (cfg, _) = any_cert_config();
    // The handshake may fail: the injected bytes are not a ClientHello.
    let _ = c.start_tls(cfg, "smtp-sink");
    assert_served(sink.addr, "starttls injection");
    let mut tls = TlsClient::plain(sink.addr);
    tls.reply();
    tls.send(b"EHLO x\r\nSTARTTLS\r\n");
    tls.replies(2);
    let (cfg, _) = any_cert_config();
    tls.start_tls(cfg, "smtp-sink").expect("handshake");
    let reply = tls.cmd("EHLO y\r\n");
    assert!(reply.starts_with("250-"), "{reply}");
    assert_peak(sink.proc.pid(), "sink, STARTTLS + 1 MiB plaintext");
    assert_no_panic(&sink.kill(), "starttls injection");
}

#[test]
fn sink_all_slots_held_by_silent_clients() {
    let sink = ours(&["-t", "2", "-m", "3"]);
    let mut silent: Vec<Client> = (0..3).map(|_| Client::connect(sink.addr)).collect();
    for c in &mut silent {
        c.reply();
    }
    // Every slot is taken; this client waits until the timeout frees one.
    assert_served(sink.addr, "after silent clients");
    for c in &mut silent {
        assert!(c.closed_within(TIMEOUT), "a silent session was not dropped");
    }
    assert_served(sink.addr, "slots released");
    assert_no_panic(&sink.kill(), "silent clients");
}

#[test]
fn sink_pipelined_flood_never_read() {
    let sink = ours(&["-t", "2"]);
    let pid = sink.proc.pid();
    let before = fd_count(pid);
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let chunk = b"NOOP\r\n".repeat(64 * 1024 / 6);
    let mut sent = 0;
    // Up to 8 MiB of commands, replies never read: the sink must stop
    // reading when its replies cannot be written, then time out.
    while sent < 8 << 20 {
        match c.stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert_served(sink.addr, "flood");
    assert!(
        wait_until(TIMEOUT, || fd_count(pid) <= before),
        "the flooding session was not dropped ({} fds, {before} before)",
        fd_count(pid)
    );
    eprintln!("flood: {sent} bytes accepted before the sink stopped reading");
    assert_peak(pid, "sink, pipelined flood");
    drop(c);
    assert_no_panic(&sink.kill(), "flood");
}

#[test]
fn sink_many_idle_sessions() {
    let slots = (IDLE_SESSIONS + 100).to_string();
    let sink = ours(&["-t", "30", "-m", &slots]);
    let pid = sink.proc.pid();
    let base = status_kib(pid, "VmRSS");
    let mut idle = Vec::with_capacity(IDLE_SESSIONS);
    for _ in 0..IDLE_SESSIONS {
        let mut c = Client::connect(sink.addr);
        c.reply();
        idle.push(c);
    }
    assert_served(sink.addr, "idle sessions");
    let rss = status_kib(pid, "VmRSS");
    let per = (rss.saturating_sub(base)) as f64 / IDLE_SESSIONS as f64;
    eprintln!("idle: {IDLE_SESSIONS} sessions, VmRSS {base} -> {rss} KiB, {per:.1} KiB/session");
    assert!(per < IDLE_KIB_PER_SESSION, "{per:.1} KiB per idle session");
    assert_peak_below(pid, "sink, idle sessions", IDLE_PEAK_KIB);
    let fds = fd_count(pid);
    drop(idle);
    assert!(
        wait_until(TIMEOUT, || fd_count(pid) + IDLE_SESSIONS <= fds),
        "sessions not closed"
    );
    assert_no_panic(&sink.kill(), "idle");
}

#[test]
fn sink_connect_close_cycles_leak_no_fd() {
    const CYCLES: usize = 5000;
    let sink = ours(&[]);
    let pid = sink.proc.pid();
    assert_served(sink.addr, "warm-up");
    let before = fd_count(pid);
    for i in 0..CYCLES {
        let mut s = TcpStream::connect_timeout(&sink.addr, TIMEOUT).expect("connect");
        if i % 2 == 0 {
            // Half of them reset at once: linger 0 sends RST on close.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        } else {
            // The other half wait for the greeting, which also keeps the
            // listen backlog from overflowing (SYN retries are slow).
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let _ = s.read(&mut [0u8; 512]);
        }
        drop(s);
    }
    assert_served(sink.addr, "cycles");
    assert!(
        wait_until(TIMEOUT, || fd_count(pid) <= before),
        "fd leak: {} open after {CYCLES} cycles, {before} before",
        fd_count(pid)
    );
    assert_peak(pid, "sink, connect/close cycles");
    assert_no_panic(&sink.kill(), "cycles");
}

/// A server that runs `behave` on every connection until the test ends.
fn hostile_server(behave: fn(TcpStream, &AtomicBool)) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    let flag = flag.clone();
                    std::thread::spawn(move || behave(s, &flag));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, stop)
}

/// Write `pattern` until the peer goes or the test ends.
fn endless(mut s: TcpStream, stop: &AtomicBool, head: &[u8], pattern: &[u8]) {
    let _ = s.write_all(head);
    let block = pattern.repeat(64 * 1024 / pattern.len());
    while !stop.load(Ordering::Relaxed) {
        match s.write(&block) {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// Run our smtp-source against a hostile server for a bounded time and
/// return its output and peak memory (sampled while it runs).
fn source_against(behave: fn(TcpStream, &AtomicBool), what: &str) -> Output {
    let (addr, stop) = hostile_server(behave);
    let args = ["-s", "2", "-m", "4", &addr.to_string()];
    let mut proc = Proc::spawn_with(&our_source(), "smtp-source", args, None, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: one raw system call between fork and exec. The limit
        // catches growth that the sampling below could miss in a short run.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: DATA_LIMIT,
                    rlim_max: DATA_LIMIT,
                };
                match libc::setrlimit(libc::RLIMIT_DATA, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    });
    let pid = proc.pid();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && proc.running() {
        peak = peak.max(status_kib(pid, "VmHWM"));
        std::thread::sleep(Duration::from_millis(20));
    }
    peak = peak.max(status_kib(pid, "VmHWM"));
    let out = proc.finish(Duration::ZERO);
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "source vs {what}: peak RSS {peak} KiB, exit {:?}, stderr {:?}",
        out.code(),
        out.stderr_text()
    );
    assert!(peak < PEAK_KIB, "source vs {what}: peak RSS {peak} KiB");
    assert_no_panic(&out, what);
    out
}

/// The banner line never ends: as Postfix 3.12 (docs/smtp-source.md,
/// over-long reply line), input is shut down after a bounded amount and the run fails.
#[test]
fn source_endless_reply_line() {
    let out = source_against(|s, stop| endless(s, stop, b"220 ", b"x"), "endless line");
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    let err = out.stderr_text();
    assert!(
        err.contains("warning: disabling input from unknown_stream"),
        "{err}"
    );
    assert!(err.contains("fatal: "), "{err}");
}

/// An endless multi-line reply (`250-` forever): like Postfix's, the
/// source keeps reading (the reply never completes and never stalls);
/// what matters is that it holds no more than one line at a time.
#[test]
fn source_flooding_multiline_reply() {
    source_against(
        |s, stop| endless(s, stop, b"", b"250-flood\r\n"),
        "flooding",
    );
}

#[test]
fn source_reset_after_greeting() {
    let out = source_against(
        |mut s, _| {
            let _ = s.write_all(b"220 hi\r\n");
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        },
        "resetting",
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("fatal: "),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn source_garbage_server() {
    let out = source_against(
        |s, stop| {
            endless(
                s,
                stop,
                b"",
                b"\x00\xff\x1b[2J\x80\r\r\n\x07\xfe garbage \xc3",
            )
        },
        "garbage",
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("fatal: "),
        "{}",
        out.stderr_text()
    );
}
