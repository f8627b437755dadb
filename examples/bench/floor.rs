//! The floor: the least work an SMTP pair can do for a workload, measured
//! in process in the same rounds as the real cells (bench/README.md,
//! "Floor").
//!
//! * [`Server`]: one current-thread tokio runtime on its own OS thread. It
//!   greets, answers the first line of a session (HELO/EHLO) with a fixed
//!   EHLO reply, `DATA` with 354, `STARTTLS` with 220 (then the
//!   handshake), every other line with 250, and finds the end of data with
//!   one `memmem` scan for CRLF `.` CRLF: no SMTP parsing. Replies to all
//!   lines of one read go out in one write.
//! * [`run_client`]: one current-thread runtime on its own OS thread, `-s`
//!   tasks sharing the `-m` counter as smtp-source does (docs/smtp-source.md §4),
//!   writing the same bytes (same commands, same headers and body) in the
//!   same round trips: lock-step, or the pipelined groups of our source's
//!   `--pipelining` (RFC 2920), over STARTTLS for the TLS workloads.
//!
//! Both sides set `TCP_NODELAY`; the client sends headers, body and `.`
//! (and, pipelined, the next group or `QUIT`) in one vectored write. Both
//! use the stream type and TLS configurations of our tools
//! ([`smtpstone::tls`]), so a TLS floor does the same cryptographic work.
//! The server counts what it receives ([`FloorCounters`]); the bench
//! compares those counts for our source and for this client
//! (`floor_check` in main.rs).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use memchr::memmem;
use smtpstone::tls::client::{self as tls_client, ClientOptions};
use smtpstone::tls::rustls::pki_types::ServerName;
use smtpstone::tls::server::{self as tls_server, Identity};
use smtpstone::tls::{MaybeTls, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::model::{Dialogue, FloorCounters, Kind, Workload};

/// Reads of the same size as our tools' ([`smtpstone::conn::READ_CHUNK`]),
/// so that the floor differs from them in protocol work, not in buffers.
const READ_CHUNK: usize = smtpstone::conn::READ_CHUNK;
const END_OF_DATA: &[u8] = b"\r\n.\r\n";
const GREETING: &[u8] = b"220 floor\r\n";
const EHLO_REPLY: &[u8] = b"250-floor\r\n250 PIPELINING\r\n";
const EHLO_REPLY_TLS: &[u8] = b"250-floor\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
const OK: &[u8] = b"250 Ok\r\n";
const GO_AHEAD: &[u8] = b"354 go\r\n";
const TLS_READY: &[u8] = b"220 ready\r\n";
/// How long the server thread may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

type Stream = MaybeTls<TcpStream>;

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// What the server received, updated as it goes (one thread: relaxed
/// atomics cost next to nothing).
#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    commands: AtomicU64,
    command_bytes: AtomicU64,
    bytes_in: AtomicU64,
    messages: AtomicU64,
    reply_writes: AtomicU64,
}

fn bump(n: &AtomicU64, by: usize) {
    n.fetch_add(by as u64, Ordering::Relaxed);
}

impl Tally {
    fn snapshot(&self) -> FloorCounters {
        let g = |n: &AtomicU64| n.load(Ordering::Relaxed);
        FloorCounters {
            connections: g(&self.connections),
            commands: g(&self.commands),
            command_bytes: g(&self.command_bytes),
            bytes_in: g(&self.bytes_in),
            messages: g(&self.messages),
            reply_writes: g(&self.reply_writes),
        }
    }
}

/// A running floor server; [`Server::stop`] ends it.
pub struct Server {
    pub addr: SocketAddr,
    /// Thread id of the server thread (for `/proc/self/task/TID/stat`).
    pub tid: i32,
    tally: Arc<Tally>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Listen on a loopback port (offering STARTTLS with a self-signed
    /// certificate when `tls`) and serve until stopped.
    pub fn start(tls: bool, backlog: u32) -> Result<Server, String> {
        let acceptor = if tls {
            let id = Identity::self_signed("floor").map_err(|e| format!("floor TLS: {e}"))?;
            Some(tls_server::acceptor(&id).map_err(|e| format!("floor TLS: {e}"))?)
        } else {
            None
        };
        let tally = Arc::new(Tally::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let t = Arc::clone(&tally);
        let thread = std::thread::Builder::new()
            .name("floor-server".into())
            .spawn(move || {
                runtime()?.block_on(async move {
                    let sock = TcpSocket::new_v4()?;
                    sock.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
                    let listener = sock.listen(backlog)?;
                    let _ = ready_tx.send((listener.local_addr()?, gettid()));
                    tokio::select! {
                        r = accept_loop(listener, acceptor, t) => r,
                        _ = stop_rx => Ok(()),
                    }
                })
            })
            .map_err(|e| format!("floor server thread: {e}"))?;
        let mut server = Server {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tid: 0,
            tally,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok((addr, tid)) => {
                server.addr = addr;
                server.tid = tid;
                Ok(server)
            }
            Err(_) => Err(match server.join() {
                Err(e) => e,
                Ok(()) => "floor server did not start".into(),
            }),
        }
    }

    /// Stop serving; the counts at that moment.
    pub fn stop(mut self) -> Result<FloorCounters, String> {
        self.join()?;
        Ok(self.tally.snapshot())
    }

    fn join(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => Err(format!("floor server: {e}")),
            Some(Err(_)) => Err("floor server panicked".into()),
            _ => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    tally: Arc<Tally>,
) -> io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        bump(&tally.connections, 1);
        let conn = ServerConn {
            tally: Arc::clone(&tally),
            acceptor: acceptor.clone(),
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::new(),
            first: true,
            scan: None,
            finder: memmem::Finder::new(END_OF_DATA),
        };
        // A session that fails (reset by the client) just ends.
        tokio::spawn(conn.run(MaybeTls::Plain(tcp)));
    }
}

struct ServerConn {
    tally: Arc<Tally>,
    /// `Some` while STARTTLS is on offer (TLS workloads, before TLS).
    acceptor: Option<TlsAcceptor>,
    buf: BytesMut,
    /// Replies to the lines of the current read.
    out: Vec<u8>,
    /// The next line is the session's first (HELO/EHLO).
    first: bool,
    /// In DATA: where the search for the end of data resumes in `buf`.
    scan: Option<usize>,
    finder: memmem::Finder<'static>,
}

impl ServerConn {
    async fn run(mut self, mut s: Stream) -> io::Result<()> {
        s.write_all(GREETING).await?;
        loop {
            self.buf.reserve(READ_CHUNK);
            let n = s.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Ok(());
            }
            bump(&self.tally.bytes_in, n);
            let starttls = self.answer();
            if !self.out.is_empty() {
                s.write_all(&self.out).await?;
                s.flush().await?;
                self.out.clear();
                bump(&self.tally.reply_writes, 1);
            }
            if starttls {
                if let Some(acceptor) = self.acceptor.take() {
                    // RFC 3207 section 4.2: nothing sent before the
                    // handshake counts (the buffer was cleared).
                    s.accept(&acceptor).await?;
                    self.first = true;
                }
            }
        }
    }

    /// Queue replies for every complete line (or end of data) in the
    /// buffer and drop what is consumed. True when STARTTLS was asked.
    fn answer(&mut self) -> bool {
        let mut pos = 0;
        loop {
            if let Some(from) = self.scan {
                match self.finder.find(&self.buf[from..]) {
                    Some(k) => {
                        pos = from + k + END_OF_DATA.len();
                        self.scan = None;
                        self.out.extend_from_slice(OK);
                        bump(&self.tally.messages, 1);
                        continue;
                    }
                    None => {
                        // Keep the bytes that may start the end of data.
                        let keep = self.buf.len().saturating_sub(END_OF_DATA.len() - 1);
                        let keep = keep.max(from);
                        self.buf.advance(keep);
                        self.scan = Some(0);
                        return false;
                    }
                }
            }
            let Some(nl) = memchr::memchr(b'\n', &self.buf[pos..]) else {
                break;
            };
            let end = pos + nl + 1;
            let line = &self.buf[pos..end];
            bump(&self.tally.commands, 1);
            bump(&self.tally.command_bytes, line.len());
            pos = end;
            if std::mem::take(&mut self.first) {
                let reply = match self.acceptor {
                    Some(_) => EHLO_REPLY_TLS,
                    None => EHLO_REPLY,
                };
                self.out.extend_from_slice(reply);
            } else if line.eq_ignore_ascii_case(b"DATA\r\n") {
                self.out.extend_from_slice(GO_AHEAD);
                // The CRLF of the DATA line may start the end of data.
                self.scan = Some(end - 2);
            } else if self.acceptor.is_some() && line.eq_ignore_ascii_case(b"STARTTLS\r\n") {
                self.out.extend_from_slice(TLS_READY);
                self.buf.clear();
                return true;
            } else {
                self.out.extend_from_slice(OK);
            }
        }
        self.buf.advance(pos);
        false
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// What the client sends for a workload, built once.
pub struct Script {
    sessions: u64,
    messages: u64,
    reuse: bool,
    dialogue: Dialogue,
    /// `HELO host` or `EHLO host`, with CRLF.
    helo: Vec<u8>,
    mail: Vec<u8>,
    rcpt: Vec<u8>,
    /// `MAIL … RCPT … DATA`, the pipelined group.
    group: Vec<u8>,
    /// The headers up to the Message-Id's first field (docs/smtp-source.md §7.1).
    header_head: Vec<u8>,
    /// `@host>` CRLF CRLF: the rest after the Message-Id's fields.
    header_tail: Vec<u8>,
    body: Vec<u8>,
    /// The process id shown in Message-Id.
    pid: u32,
}

impl Script {
    /// The dialogue of smtp-source for `w` with its default sender,
    /// recipient and hostname; `pid` goes into the Message-Id.
    pub fn new(w: &Workload, pid: u32) -> Result<Script, String> {
        let Kind::Traffic {
            sessions,
            msg_len,
            messages,
            reuse,
        } = w.kind
        else {
            return Err(format!("{}: no traffic to send", w.name));
        };
        let host = nix::unistd::gethostname()
            .map_err(|e| format!("gethostname: {e}"))?
            .to_string_lossy()
            .into_owned();
        let dialogue = w.dialogue();
        let verb = if dialogue.ehlo { "EHLO" } else { "HELO" };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let date = smtpstone::proto::date::rfc2822(now);
        let mail = format!("MAIL FROM:<foo@{host}>\r\n").into_bytes();
        let rcpt = format!("RCPT TO:<foo@{host}>\r\n").into_bytes();
        Ok(Script {
            sessions,
            messages,
            reuse,
            dialogue,
            helo: format!("{verb} {host}\r\n").into_bytes(),
            group: [&mail[..], &rcpt[..], b"DATA\r\n"].concat(),
            mail,
            rcpt,
            header_head: format!(
                "From: <foo@{host}>\r\nTo: <foo@{host}>\r\nDate: {date}\r\nMessage-Id: <"
            )
            .into_bytes(),
            header_tail: format!("@{host}>\r\n\r\n").into_bytes(),
            body: smtpstone::source::message::generated_body(msg_len as usize),
            pid,
        })
    }
}

/// A finished client run.
pub struct ClientRun {
    pub wall: Duration,
    pub user_s: f64,
    pub sys_s: f64,
    /// Messages whose content went out.
    pub messages: u64,
}

/// Run the client against `addr` on its own thread, within `limit`.
pub fn run_client(addr: SocketAddr, script: Script, limit: Duration) -> Result<ClientRun, String> {
    let thread = std::thread::Builder::new()
        .name("floor-client".into())
        .spawn(move || {
            let before = thread_cpu();
            let start = Instant::now();
            let res = runtime().and_then(|rt| {
                rt.block_on(async {
                    tokio::time::timeout(limit, sessions(addr, Arc::new(script)))
                        .await
                        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                })
            });
            let wall = start.elapsed();
            let after = thread_cpu();
            res.map(|messages| ClientRun {
                wall,
                user_s: after.0 - before.0,
                sys_s: after.1 - before.1,
                messages,
            })
        })
        .map_err(|e| format!("floor client thread: {e}"))?;
    match thread.join() {
        Ok(res) => res.map_err(|e| format!("floor client: {e}")),
        Err(_) => Err("floor client panicked".into()),
    }
}

/// (user, system) CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: rusage is plain old data; getrusage gets a valid pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let s = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// Everything one run's sessions share.
struct Shared {
    addr: SocketAddr,
    script: Arc<Script>,
    /// smtp-source's `remaining` (docs/smtp-source.md §4): decremented by every take.
    remaining: AtomicI64,
    sent: AtomicU64,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Shared {
    fn take(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::Relaxed) > 0
    }
}

async fn sessions(addr: SocketAddr, script: Arc<Script>) -> io::Result<u64> {
    let tls = if script.dialogue.starttls {
        let connector =
            tls_client::connector(&ClientOptions::default()).map_err(io::Error::other)?;
        let name = tls_client::server_name(Some("127.0.0.1"))
            .ok_or_else(|| io::Error::other("server name"))?;
        Some((connector, name))
    } else {
        None
    };
    let shared = Arc::new(Shared {
        addr,
        remaining: AtomicI64::new(script.messages as i64),
        sent: AtomicU64::new(0),
        tls,
        script,
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..shared.script.sessions {
        let sh = Arc::clone(&shared);
        set.spawn(async move {
            if sh.script.dialogue.pipelining {
                pipelined(&sh).await
            } else {
                lockstep(&sh).await
            }
        });
    }
    while let Some(res) = set.join_next().await {
        res.map_err(io::Error::other)??;
    }
    Ok(shared.sent.load(Ordering::Relaxed))
}

/// smtp-source without pipelining: one command per round trip.
async fn lockstep(sh: &Shared) -> io::Result<()> {
    let mut kept: Option<Conn> = None;
    while sh.take() {
        let mut c = match kept.take() {
            Some(c) => c,
            None => Conn::open(sh).await?,
        };
        c.render(sh, false)?;
        c.send(&[&sh.script.mail], 1).await?;
        c.send(&[&sh.script.rcpt], 1).await?;
        c.send(&[b"DATA\r\n"], 1).await?;
        c.content(sh, b".\r\n", &[], 1).await?;
        if sh.script.reuse && sh.remaining.load(Ordering::Relaxed) >= 1 {
            kept = Some(c);
        } else {
            c.send(&[b"QUIT\r\n"], 1).await?;
        }
    }
    // Kept for a message another session took: end it properly.
    if let Some(mut c) = kept {
        c.send(&[b"QUIT\r\n"], 1).await?;
    }
    Ok(())
}

/// Our source's `--pipelining`: `MAIL RCPT DATA` in one write; then each
/// content with `.` and the next group (or `QUIT`) in one write.
async fn pipelined(sh: &Shared) -> io::Result<()> {
    let mut more = sh.take();
    while more {
        let mut c = Conn::open(sh).await?;
        c.render(sh, false)?;
        c.send(&[&sh.script.group], 3).await?;
        loop {
            if sh.script.reuse && sh.take() {
                c.render(sh, true)?;
                c.content(sh, b".\r\n", &sh.script.group, 4).await?;
                std::mem::swap(&mut c.headers, &mut c.next);
                continue;
            }
            c.content(sh, b".\r\nQUIT\r\n", &[], 2).await?;
            more = !sh.script.reuse && sh.take();
            break;
        }
    }
    Ok(())
}

struct Conn {
    io: Stream,
    fd: i32,
    buf: BytesMut,
    /// Headers of the current message.
    headers: Vec<u8>,
    /// Headers of the next message while a chained group goes out.
    next: Vec<u8>,
}

impl Conn {
    /// Connect, greeting, HELO/EHLO, and for TLS workloads STARTTLS, the
    /// handshake and EHLO again.
    async fn open(sh: &Shared) -> io::Result<Conn> {
        use std::os::fd::AsRawFd;
        let tcp = TcpStream::connect(sh.addr).await?;
        tcp.set_nodelay(true)?;
        // As smtp-source (docs/smtp-source.md §5): close with RST.
        socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO))?;
        let mut c = Conn {
            fd: tcp.as_raw_fd(),
            io: MaybeTls::Plain(tcp),
            buf: BytesMut::with_capacity(READ_CHUNK),
            headers: Vec::new(),
            next: Vec::new(),
        };
        c.replies(1).await?;
        c.send(&[&sh.script.helo], 1).await?;
        if let Some((connector, name)) = &sh.tls {
            c.send(&[b"STARTTLS\r\n"], 1).await?;
            c.io.connect(connector, name.clone()).await?;
            c.send(&[&sh.script.helo], 1).await?;
        }
        Ok(c)
    }

    /// Write `parts` and read `replies` replies.
    async fn send(&mut self, parts: &[&[u8]], replies: usize) -> io::Result<()> {
        write_all_vectored(&mut self.io, parts).await?;
        self.io.flush().await?;
        self.replies(replies).await
    }

    /// Render the headers of the message just taken (into `next` for a
    /// chained group), as our source does when a message starts: the
    /// Message-Id shows the `-m` counter of that moment (docs/smtp-source.md §7.1).
    fn render(&mut self, sh: &Shared, next: bool) -> io::Result<()> {
        use std::io::Write as _;
        let s = &sh.script;
        let remaining = sh.remaining.load(Ordering::Relaxed) as i32;
        let h = if next {
            &mut self.next
        } else {
            &mut self.headers
        };
        h.clear();
        h.extend_from_slice(&s.header_head);
        // `%04x` of C ints.
        write!(
            h,
            "{:04x}.{:04x}.{:04x}",
            s.pid, self.fd as u32, remaining as u32
        )?;
        h.extend_from_slice(&s.header_tail);
        Ok(())
    }

    /// Headers, body, `dot` and `next` in one write, then `replies`.
    async fn content(
        &mut self,
        sh: &Shared,
        dot: &[u8],
        next: &[u8],
        replies: usize,
    ) -> io::Result<()> {
        let h = std::mem::take(&mut self.headers);
        let res = self.send(&[&h, &sh.script.body, dot, next], replies).await;
        self.headers = h;
        sh.sent.fetch_add(1, Ordering::Relaxed);
        res
    }

    /// Read until `n` replies have ended (a line with a space after the
    /// code ends a reply).
    async fn replies(&mut self, n: usize) -> io::Result<()> {
        let mut seen = 0;
        loop {
            while let Some(nl) = memchr::memchr(b'\n', &self.buf) {
                if self.buf.get(3) == Some(&b' ') {
                    seen += 1;
                }
                self.buf.advance(nl + 1);
            }
            if seen >= n {
                return Ok(());
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Write all of `parts` (at most 4) with vectored writes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices = [IoSlice::new(&[]); 4];
    for (slot, part) in slices.iter_mut().zip(parts) {
        *slot = IoSlice::new(part);
    }
    let mut bufs = &mut slices[..parts.len().min(4)];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
