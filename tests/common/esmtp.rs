//! A scripted ESMTP/LMTP test server for smtp-source's extension options:
//! EHLO capability lists, STARTTLS and implicit TLS (rustls, blocking),
//! AUTH PLAIN/LOGIN, BDAT chunks, and a strict pipelining mode that
//! withholds replies until a group ends, so a client that waits for each
//! reply stalls (and the stall is recorded) instead of passing by timing
//! luck. Binds 127.0.0.1:0; one thread per connection; every wait bounded.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use smtpstone::tls::server::{self, Identity};

use super::TIMEOUT;

/// How long strict pipelining mode waits for the rest of a group before
/// it gives up, answers anyway and records a stall.
pub const HOLD: Duration = Duration::from_secs(2);

/// The host name in the test certificate.
pub const CERT_HOST: &str = "mx.test";

/// What a script wants done with a command.
#[derive(Debug, Clone)]
pub enum Act {
    /// Send these reply lines (each without CRLF).
    Reply(Vec<String>),
    /// Send the lines, then close.
    ReplyClose(Vec<String>),
    /// Close without a reply.
    Close,
}

/// One reply line.
pub fn r(line: &str) -> Option<Act> {
    Some(Act::Reply(vec![line.to_string()]))
}

/// A command as the script sees it.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Connection number, in accept order.
    pub conn: usize,
    /// Upper-cased verb; `.` for the end of DATA content.
    pub verb: String,
    /// Earlier commands with this verb on this connection.
    pub nth: usize,
    /// The line without CRLF.
    pub line: String,
    /// Under TLS.
    pub tls: bool,
    /// RCPTs accepted since MAIL.
    pub accepted: usize,
}

/// A script: `None` = the default answer.
pub type Script = Arc<dyn Fn(&Cmd) -> Option<Act> + Send + Sync>;

/// Server settings.
#[derive(Clone)]
pub struct Opts {
    /// Greeting line.
    pub banner: String,
    /// EHLO/LHLO keywords after the greeting line.
    pub caps: Vec<String>,
    /// TLS from the first byte (port-465 style).
    pub implicit_tls: bool,
    /// Withhold replies to MAIL/RCPT/RSET/`.`/non-final BDAT until a group
    /// end (DATA, BDAT LAST, QUIT, EHLO/HELO/LHLO, STARTTLS, AUTH, NOOP).
    pub strict_pipelining: bool,
    /// LMTP: one end-of-data reply per accepted recipient.
    pub lmtp: bool,
    /// Reply overrides.
    pub script: Script,
    /// Host name (or address) in the server certificate.
    pub cert_host: String,
}

/// Every extension the client knows.
pub fn all_caps() -> Vec<String> {
    [
        "PIPELINING",
        "SIZE 10240000",
        "STARTTLS",
        "AUTH PLAIN LOGIN",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            banner: "220 mx.test ESMTP".into(),
            caps: all_caps(),
            implicit_tls: false,
            strict_pipelining: false,
            lmtp: false,
            script: Arc::new(|_| None),
            cert_host: CERT_HOST.into(),
        }
    }
}

/// Something that happened on a connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// A command line (without CRLF); `tls` = received under TLS.
    Line { text: String, tls: bool },
    /// DATA content as received (still dot-stuffed), without the `.` line.
    Content(Vec<u8>),
    /// The data of one BDAT chunk.
    Chunk { data: Vec<u8>, last: bool },
    /// A finished TLS handshake.
    Tls {
        version: String,
        suite: String,
        resumed: bool,
        sni: Option<String>,
    },
    /// Credentials of an AUTH exchange.
    Auth {
        mech: String,
        user: Vec<u8>,
        pass: Vec<u8>,
    },
    /// Bytes that were buffered when STARTTLS was answered (discarded).
    DiscardedAtStarttls(Vec<u8>),
}

/// What one connection saw.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// Events in order.
    pub events: Vec<Ev>,
    /// Every application byte received (decrypted under TLS), in order.
    pub raw: Vec<u8>,
    /// Strict mode: times a group did not arrive whole.
    pub stalls: usize,
}

impl Record {
    /// The command lines (and `.`), in order.
    pub fn lines(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Line { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// TLS handshakes seen.
    pub fn handshakes(&self) -> Vec<&Ev> {
        self.events
            .iter()
            .filter(|e| matches!(e, Ev::Tls { .. }))
            .collect()
    }
}

#[derive(Default)]
struct State {
    records: Mutex<Vec<Arc<Mutex<Record>>>>,
    active: AtomicUsize,
    stop: AtomicBool,
}

/// A running server; stops accepting when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate (PEM), for `--tls-ca`.
    pub cert_pem: String,
    state: Arc<State>,
}

impl Server {
    /// Start with `opts`.
    pub fn start(opts: Opts) -> Server {
        let identity = Identity::self_signed(&opts.cert_host).expect("test certificate");
        let tls = server::config(&identity).expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                let Ok((sock, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let _ = sock.set_nonblocking(false);
                let rec = Arc::new(Mutex::new(Record::default()));
                let n = {
                    let mut list = st.records.lock().expect("lock");
                    list.push(Arc::clone(&rec));
                    list.len() - 1
                };
                st.active.fetch_add(1, Ordering::SeqCst);
                let st2 = Arc::clone(&st);
                let opts = opts.clone();
                let tls = Arc::clone(&tls);
                std::thread::spawn(move || {
                    let _ = serve(sock, n, &opts, tls, &rec);
                    st2.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            cert_pem: identity.cert_pem(),
            state,
        }
    }

    /// The endpoint operand.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Wait (bounded) until every connection has ended; all records.
    pub fn records(&self) -> Vec<Record> {
        let deadline = Instant::now() + TIMEOUT;
        while self.state.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let list = self.state.records.lock().expect("lock");
        list.iter()
            .map(|r| r.lock().expect("lock").clone())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Io {
    fn sock(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(t) => &t.sock,
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(t) => t.flush(),
        }
    }
}

struct Conn<'a> {
    io: Option<Io>,
    buf: Vec<u8>,
    out: Vec<u8>,
    rec: &'a Mutex<Record>,
}

fn other(e: impl ToString) -> io::Error {
    io::Error::other(e.to_string())
}

impl Conn<'_> {
    fn io(&mut self) -> io::Result<&mut Io> {
        self.io.as_mut().ok_or_else(|| other("closed"))
    }

    fn tls(&self) -> bool {
        matches!(self.io, Some(Io::Tls(_)))
    }

    /// Read more input; Ok(false) at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        let mut tmp = [0u8; 16 * 1024];
        let n = match self.io()?.read(&mut tmp) {
            Ok(n) => n,
            // A TLS peer that resets instead of close_notify: EOF.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        self.buf.extend_from_slice(&tmp[..n]);
        self.rec
            .lock()
            .expect("lock")
            .raw
            .extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let mut l: Vec<u8> = self.buf.drain(..=p).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(Some(l));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.drain(..n).collect()))
    }

    fn queue(&mut self, lines: &[String]) {
        for l in lines {
            self.out.extend_from_slice(l.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let io = self.io()?;
        io.write_all(&out)?;
        io.flush()
    }

    /// Strict mode: is more input coming within [`HOLD`]?
    fn more_within_hold(&mut self) -> io::Result<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        self.io()?.sock().set_read_timeout(Some(HOLD))?;
        let res = self.fill();
        self.io()?.sock().set_read_timeout(Some(TIMEOUT))?;
        match res {
            Ok(more) => Ok(more),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn event(&self, ev: Ev) {
        self.rec.lock().expect("lock").events.push(ev);
    }

    fn handshake(&mut self, tls: &Arc<rustls::ServerConfig>) -> io::Result<()> {
        let Some(Io::Plain(sock)) = self.io.take() else {
            return Err(other("not plain"));
        };
        let conn = rustls::ServerConnection::new(Arc::clone(tls)).map_err(other)?;
        let mut stream = rustls::StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        let c = &stream.conn;
        let ev = Ev::Tls {
            version: format!("{:?}", c.protocol_version().expect("version")),
            suite: format!("{:?}", c.negotiated_cipher_suite().expect("suite").suite()),
            resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            sni: c.server_name().map(str::to_string),
        };
        self.io = Some(Io::Tls(Box::new(stream)));
        self.event(ev);
        Ok(())
    }
}

fn b64(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .unwrap_or_else(|_| b"<bad base64>".to_vec())
}

fn serve(
    sock: TcpStream,
    n: usize,
    opts: &Opts,
    tls: Arc<rustls::ServerConfig>,
    rec: &Mutex<Record>,
) -> io::Result<()> {
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_write_timeout(Some(TIMEOUT))?;
    let mut c = Conn {
        io: Some(Io::Plain(sock)),
        buf: Vec::new(),
        out: Vec::new(),
        rec,
    };
    if opts.implicit_tls {
        c.handshake(&tls)?;
    }
    c.queue(std::slice::from_ref(&opts.banner));
    c.flush()?;
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let mut accepted = 0usize;
    loop {
        let Some(line) = c.line()? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let tls_now = c.tls();
        c.event(Ev::Line {
            text: text.clone(),
            tls: tls_now,
        });
        let mut words = text.split(' ');
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let nth = counts.entry(verb.clone()).or_insert(0);
        let cmd = Cmd {
            conn: n,
            verb: verb.clone(),
            nth: *nth,
            line: text.clone(),
            tls: tls_now,
            accepted,
        };
        *nth += 1;
        // Protocol work the script does not control.
        let mut group_end = true;
        let mut bdat_data = None;
        match verb.as_str() {
            "MAIL" => accepted = 0,
            "BDAT" => {
                let size: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                let Some(data) = c.exact(size)? else {
                    return Ok(());
                };
                c.event(Ev::Chunk {
                    data: data.clone(),
                    last,
                });
                group_end = last;
                bdat_data = Some((size, last));
            }
            "AUTH" => {
                let mech = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(|w| w.as_bytes().to_vec());
                let (user, pass) = match mech.as_str() {
                    "PLAIN" => {
                        let raw = b64(&initial.unwrap_or_default());
                        let mut parts = raw.split(|&b| b == 0).skip(1);
                        (
                            parts.next().unwrap_or(b"").to_vec(),
                            parts.next().unwrap_or(b"").to_vec(),
                        )
                    }
                    "LOGIN" => {
                        c.queue(&["334 VXNlcm5hbWU6".into()]);
                        c.flush()?;
                        let Some(u) = c.line()? else { return Ok(()) };
                        c.queue(&["334 UGFzc3dvcmQ6".into()]);
                        c.flush()?;
                        let Some(p) = c.line()? else { return Ok(()) };
                        (b64(&u), b64(&p))
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                c.event(Ev::Auth { mech, user, pass });
            }
            _ => {}
        }
        if verb == "MAIL" || verb == "RCPT" || verb == "RSET" {
            group_end = false;
        }
        let act = (opts.script)(&cmd).unwrap_or_else(|| default_act(&cmd, opts, bdat_data));
        let mut in_data = false;
        let mut starttls = false;
        let (lines, close) = match act {
            Act::Reply(l) => (l, false),
            Act::ReplyClose(l) => (l, true),
            Act::Close => (Vec::new(), true),
        };
        if verb == "RCPT" && lines.last().is_some_and(|l| l.starts_with('2')) {
            accepted += 1;
        }
        if verb == "DATA" && lines.last().is_some_and(|l| l.starts_with("354")) {
            in_data = true;
        }
        if verb == "STARTTLS" && !tls_now && lines.first().is_some_and(|l| l.starts_with("220")) {
            starttls = true;
        }
        c.queue(&lines);
        if close {
            let _ = c.flush();
            return Ok(());
        }
        if starttls {
            c.flush()?;
            if !c.buf.is_empty() {
                let junk = std::mem::take(&mut c.buf);
                c.event(Ev::DiscardedAtStarttls(junk));
            }
            c.handshake(&tls)?;
            continue;
        }
        if in_data {
            c.flush()?;
            // Content up to the lone dot.
            let mut content = Vec::new();
            loop {
                let Some(l) = c.line()? else { return Ok(()) };
                if l == b"." {
                    break;
                }
                content.extend_from_slice(&l);
                content.extend_from_slice(b"\r\n");
            }
            c.event(Ev::Content(content));
            c.event(Ev::Line {
                text: ".".into(),
                tls: c.tls(),
            });
            let dot = Cmd {
                conn: n,
                verb: ".".into(),
                nth: 0,
                line: ".".into(),
                tls: c.tls(),
                accepted,
            };
            let act = (opts.script)(&dot).unwrap_or_else(|| default_act(&dot, opts, None));
            match act {
                Act::Reply(l) => c.queue(&l),
                Act::ReplyClose(l) => {
                    c.queue(&l);
                    let _ = c.flush();
                    return Ok(());
                }
                Act::Close => return Ok(()),
            }
            group_end = false;
        }
        let flush_now = if opts.strict_pipelining {
            if group_end {
                true
            } else if c.more_within_hold()? {
                false
            } else {
                rec.lock().expect("lock").stalls += 1;
                true
            }
        } else {
            // RFC 2920 §3.2 server rule: flush when no input is pending.
            c.buf.is_empty()
        };
        if flush_now {
            c.flush()?;
        }
    }
}

fn default_act(cmd: &Cmd, opts: &Opts, bdat: Option<(usize, bool)>) -> Act {
    let one = |s: &str| Act::Reply(vec![s.to_string()]);
    match cmd.verb.as_str() {
        "EHLO" | "LHLO" => {
            let mut lines = vec!["mx.test".to_string()];
            // RFC 3207 §4.2: no STARTTLS inside TLS.
            lines.extend(
                opts.caps
                    .iter()
                    .filter(|c| !(cmd.tls && c.eq_ignore_ascii_case("STARTTLS")))
                    .cloned(),
            );
            let n = lines.len();
            Act::Reply(
                lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i + 1 == n { ' ' } else { '-' }))
                    .collect(),
            )
        }
        "STARTTLS" => one("220 2.0.0 Ready to start TLS"),
        "AUTH" => one("235 2.7.0 Authentication successful"),
        "DATA" => one("354 End data with <CR><LF>.<CR><LF>"),
        "." | "BDAT" => {
            let (size, last) = bdat.unwrap_or((0, true));
            if !last {
                one(&format!("250 2.0.0 {size} octets received"))
            } else if opts.lmtp {
                Act::Reply(vec!["250 2.0.0 delivered".to_string(); cmd.accepted.max(1)])
            } else {
                one("250 2.0.0 Ok: queued")
            }
        }
        "QUIT" => Act::ReplyClose(vec!["221 2.0.0 Bye".into()]),
        _ => one("250 2.0.0 Ok"),
    }
}
