//! The `--metrics ADDR` listener: HTTP/1.1 served by hyper on the tool's
//! own tokio runtime, with two pages:
//!
//! * `GET /metrics`: the registry in the Prometheus text exposition format
//!   (version 0.0.4), encoded at scrape time;
//! * `GET /runs`: a JSON document the tool provides (smtp-sink `--track`:
//!   the live tracking report), 404 when it has none.
//!
//! Other paths are 404, other methods on these paths 405. The listener is
//! bounded: at most [`MAX_CONNECTIONS`] connections are served at once
//! (later ones wait in the kernel's backlog), a request head must arrive
//! within [`HEADER_READ_TIMEOUT`] (which also closes idle keep-alive
//! connections), and no connection lives longer than [`CONNECTION_TIME`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::diag::{self, Error, Result};

/// Connections served at once: a monitoring server or two and a person
/// with curl; more only cost memory and scrape time on the tool's thread.
pub const MAX_CONNECTIONS: usize = 8;

/// Time allowed for a request head, from the moment the server waits for
/// it: a client that connects and sends nothing (or stays idle after a
/// response) loses its connection slot after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head accepted (hyper answers 431 beyond it); scrapers
/// send a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Longest life of one connection, whatever it does (a client that never
/// reads its response cannot keep a slot).
pub const CONNECTION_TIME: Duration = Duration::from_secs(60);

/// Pause after a failed accept (out of file descriptors, for example), so
/// that a persistent error does not spin the tool's only thread.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A page computed on each request.
pub type Page = Box<dyn Fn() -> String + Send + Sync>;

/// What the listener serves.
pub struct Site {
    registry: Registry,
    runs: Option<Page>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("runs", &self.runs.is_some())
            .finish_non_exhaustive()
    }
}

impl Site {
    /// `/metrics` from `registry`, no `/runs`.
    pub fn new(registry: Registry) -> Site {
        Site {
            registry,
            runs: None,
        }
    }

    /// Serve `runs` as `/runs` (JSON).
    pub fn with_runs(mut self, runs: Page) -> Site {
        self.runs = Some(runs);
        self
    }

    /// The response to `method path`.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let page = match path {
            "/metrics" => Some(Kind::Metrics),
            "/runs" => Some(Kind::Runs),
            _ => None,
        };
        match page {
            None => text(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
            Some(_) if method != Method::GET => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET"));
                r
            }
            Some(Kind::Metrics) => {
                let mut body = String::new();
                match prometheus_text::encode(&mut body, &self.registry) {
                    Ok(()) => page_of(body, prometheus_text::CONTENT_TYPE),
                    Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
                }
            }
            Some(Kind::Runs) => match &self.runs {
                Some(runs) => page_of(runs(), "application/json"),
                None => text(
                    StatusCode::NOT_FOUND,
                    "no runs: tracking is off (smtp-sink --track)\n",
                ),
            },
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Metrics,
    Runs,
}

fn page_of(body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = page_of(body.to_string(), "text/plain; charset=utf-8");
    *r.status_mut() = status;
    r
}

/// A bound metrics socket, not yet served.
#[derive(Debug)]
pub struct Listener {
    socket: std::net::TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Bind `addr` (port 0: a free port) and print the address on stderr:
    /// `PROG: metrics: listening on http://ADDR/metrics`.
    pub fn bind(addr: SocketAddr) -> Result<Listener> {
        let fail = |e: std::io::Error| {
            Error::fatal(format!("metrics: bind {addr}: {}", diag::errno_text(&e)))
        };
        let socket = std::net::TcpListener::bind(addr).map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        let addr = socket.local_addr().map_err(fail)?;
        diag::info(&format!("metrics: listening on http://{addr}/metrics"));
        Ok(Listener { socket, addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve `site` on the current tokio runtime until the returned
    /// [`Server`] is dropped.
    pub fn serve(self, site: Site) -> Result<Server> {
        let listener = tokio::net::TcpListener::from_std(self.socket).map_err(|e| {
            Error::fatal(format!(
                "metrics: listen {}: {}",
                self.addr,
                diag::errno_text(&e)
            ))
        })?;
        Ok(Server(tokio::spawn(accept_loop(listener, Arc::new(site)))))
    }
}

/// The running listener; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct Server(JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, site: Arc<Site>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped with this task: aborting the loop ends every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                let site = Arc::clone(&site);
                connections.spawn(async move {
                    serve_connection(stream, site).await;
                    drop(slot);
                });
            }
            Err(e) => {
                diag::warning(&format!("metrics: accept: {}", diag::errno_text(&e)));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, site: Arc<Site>) {
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let response = site.respond(req.method(), req.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    // Errors (a reset, a timeout, a malformed request) end this connection
    // only; hyper has already answered what deserved an answer.
    let _ = tokio::time::timeout(CONNECTION_TIME, connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use prometheus_client::metrics::counter::Counter;

    async fn body(r: Response<Full<Bytes>>) -> String {
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn routes_and_methods() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("demo_things", "Things.", c.clone());
        c.inc_by(3);
        let site = Site::new(registry);
        let r = site.respond(&Method::GET, "/metrics");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], prometheus_text::CONTENT_TYPE);
        assert!(body(r).await.contains("demo_things_total 3\n"));
        assert_eq!(site.respond(&Method::GET, "/").status(), 404);
        assert_eq!(site.respond(&Method::POST, "/nope").status(), 404);
        let r = site.respond(&Method::POST, "/metrics");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[ALLOW], "GET");
        assert_eq!(site.respond(&Method::GET, "/runs").status(), 404);
        let site = site.with_runs(Box::new(|| "{}\n".to_string()));
        let r = site.respond(&Method::GET, "/runs");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body(r).await, "{}\n");
        assert_eq!(site.respond(&Method::DELETE, "/runs").status(), 405);
    }
}
