//! The `metrics` workload's scraper (bench/README.md, "Workloads"): a
//! thread of the bench polling the `/metrics` pages of our sink and our
//! source every [`SCRAPE_INTERVAL`], as Prometheus does: HTTP/1.1 over one
//! kept-alive connection per page, reopened after any error, from the
//! moment the source starts until it exits. The source's listener exists
//! only while the source runs, so its first scrapes may be refused; they
//! count as failed and the next tick tries again.

use crate::model::{self, Scrapes, SCRAPE_INTERVAL};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time to connect. On loopback a connect succeeds or is refused at once;
/// this bounds only a listener whose backlog is full (our metrics server
/// serves at most 8 connections at once, src/metrics/http.rs).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time for the request's write and each read of the response. Our tools
/// encode a page in well under a millisecond, but on the thread that also
/// serves SMTP, on a busy machine; a longer stall counts as a failed
/// scrape (and the connection is reopened), as Prometheus's
/// `scrape_timeout` would have it.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest response head accepted: ours is about 150 bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Largest body accepted: our pages are tens of KiB, histograms included;
/// a far larger one is not our server.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Bytes asked of one read.
const READ_CHUNK: usize = 16 * 1024;

/// One `/metrics` page, polled over one kept-alive connection.
struct Page {
    addr: SocketAddr,
    request: Vec<u8>,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Page {
    fn new(addr: SocketAddr) -> Page {
        Page {
            addr,
            request: format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
            conn: None,
            buf: Vec::new(),
            ok: 0,
            failed: 0,
            last_error: None,
        }
    }

    /// One scrape, counted; after an error the connection is dropped and
    /// the next scrape opens a new one.
    fn tick(&mut self) {
        match self.get() {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.conn = None;
                self.last_error = Some(e);
            }
        }
    }

    /// GET the page and read the whole response: the head, then exactly
    /// Content-Length bytes of body (our server, src/metrics/http.rs, sends
    /// every page whole, never chunked).
    fn get(&mut self) -> Result<(), String> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(connect(self.addr)?),
        };
        conn.write_all(&self.request)
            .map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let head_len = loop {
            if let Some(n) = model::response_head_len(&self.buf) {
                break n;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(format!("response head over {MAX_HEAD} bytes"));
            }
            read_some(conn, &mut self.buf)?;
        };
        let head = std::str::from_utf8(&self.buf[..head_len])
            .map_err(|_| "response head not UTF-8".to_string())?;
        let head = model::parse_response_head(head.trim_end()).map_err(|e| e.to_string())?;
        if head.content_length > MAX_BODY {
            return Err(format!("body of {} bytes", head.content_length));
        }
        let want = head_len + head.content_length;
        while self.buf.len() < want {
            read_some(conn, &mut self.buf)?;
        }
        if self.buf.len() > want {
            return Err("bytes after the body".into());
        }
        if head.status != 200 {
            return Err(format!("status {}", head.status));
        }
        if head.close {
            self.conn = None;
        }
        Ok(())
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let conn =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| conn.set_nodelay(true))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(conn)
}

/// Append what one read returns to `buf`; the end of the stream is an
/// error (the response is not complete yet).
fn read_some(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; READ_CHUNK];
    match conn.read(&mut chunk) {
        Ok(0) => Err("connection closed by the server".into()),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

/// A running scraper.
pub struct Scraper {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<(Page, Page)>,
}

/// What a scraper did: the counts, and the last error of the sink's page
/// (for the report when no scrape of it succeeded).
pub struct Finished {
    pub scrapes: Scrapes,
    pub sink_error: Option<String>,
}

impl Scraper {
    /// Start polling `sink` and `source` (their `/metrics` addresses) now.
    pub fn start(sink: SocketAddr, source: SocketAddr) -> Result<Scraper, String> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("scraper".into())
            .spawn(move || poll(&stopped, Page::new(sink), Page::new(source)))
            .map_err(|e| format!("scraper thread: {e}"))?;
        Ok(Scraper { stop, thread })
    }

    /// Stop after the scrapes in progress, if any.
    pub fn finish(self) -> Result<Finished, String> {
        // A send error means the thread has ended already; join says how.
        let _ = self.stop.send(());
        let (sink, source) = self
            .thread
            .join()
            .map_err(|_| "scraper thread panicked".to_string())?;
        Ok(Finished {
            scrapes: Scrapes {
                sink_ok: sink.ok,
                sink_failed: sink.failed,
                source_ok: source.ok,
                source_failed: source.failed,
            },
            sink_error: sink.last_error,
        })
    }
}

/// Scrape both pages at once, then every [`SCRAPE_INTERVAL`] until told to
/// stop. A tick that overran skips the ticks it missed rather than
/// bunching them, as Prometheus keeps its cadence.
fn poll(stop: &mpsc::Receiver<()>, mut sink: Page, mut source: Page) -> (Page, Page) {
    let mut next = Instant::now();
    loop {
        sink.tick();
        source.tick();
        let now = Instant::now();
        while next <= now {
            next += SCRAPE_INTERVAL;
        }
        match stop.recv_timeout(next - now) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return (sink, source),
        }
    }
}
