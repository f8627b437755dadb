//! The `--sink-url` client: reads the live tracking report of an
//! `smtp-sink --track --metrics` (`GET /runs`, the document its `--json`
//! writes at exit) with hyper's HTTP/1.1 client.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::diag::{Error, Result};
use crate::measure::search::objective::Delivery;

/// How often `/runs` is read while waiting for deliveries.
const POLL: Duration = Duration::from_millis(200);

/// Bound on one request, connect to last body byte: the sink answers from
/// memory, so a slow answer means something is wrong.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `/runs` document read: the tracking report lists at most a
/// bounded number of runs and missing ranges (see `measure::track`).
const MAX_BODY: usize = 16 << 20;

/// What the search reads of one run in `/runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct RunFigures {
    /// Distinct messages received.
    pub distinct: u64,
    /// Delivery latency p99, microseconds.
    pub p99_us: u64,
    /// From its first to its last arrival, microseconds.
    pub span_us: u64,
}

#[derive(Deserialize)]
struct RunsDoc {
    runs: Vec<RunDoc>,
}

#[derive(Deserialize)]
struct RunDoc {
    run_id: String,
    distinct: u64,
    latency_us: LatencyDoc,
    first_received_us: Option<u64>,
    last_received_us: Option<u64>,
}

#[derive(Deserialize)]
struct LatencyDoc {
    p99: u64,
}

/// A sink's `/runs` endpoint.
#[derive(Debug, Clone)]
pub struct SinkClient {
    authority: String,
}

fn http_error(authority: &str, what: impl std::fmt::Display) -> Error {
    Error::fatal(format!("--sink-url http://{authority}/runs: {what}"))
}

impl SinkClient {
    /// The sink at `authority` (`HOST:PORT`).
    pub fn new(authority: &str) -> SinkClient {
        SinkClient {
            authority: authority.to_string(),
        }
    }

    /// Whether the sink answers `/runs` with a tracking report: checked
    /// once before the search, so that a wrong `--sink-url` is one fatal
    /// line instead of a failing first step.
    pub async fn check(&self) -> Result<()> {
        self.run("").await.map(|_| ())
    }

    /// The figures of run `run_id` now (zero before its first message).
    pub async fn run(&self, run_id: &str) -> Result<RunFigures> {
        let body = tokio::time::timeout(HTTP_TIMEOUT, self.get("/runs"))
            .await
            .map_err(|_| http_error(&self.authority, "timed out"))??;
        parse_runs(&body, run_id).map_err(|e| http_error(&self.authority, e))
    }

    /// What the sink received of run `run_id` by `deadline` (earlier
    /// when all `accepted` messages are there).
    pub async fn delivery(
        &self,
        run_id: &str,
        accepted: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Delivery> {
        loop {
            let figures = self.run(run_id).await?;
            if figures.distinct >= accepted || tokio::time::Instant::now() >= deadline {
                return Ok(Delivery {
                    in_time: figures.distinct,
                    backlog: accepted.saturating_sub(figures.distinct),
                    p99_us: figures.p99_us,
                    span_us: figures.span_us,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let fail = |e: &dyn std::fmt::Display| http_error(&self.authority, e);
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| fail(&crate::diag::errno_text(&e)))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(&e))?;
        let driver = tokio::spawn(conn);
        let request = Request::get(path)
            .header(hyper::header::HOST, &self.authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(&e))?;
        let response = sender.send_request(request).await.map_err(|e| fail(&e));
        let body = match response {
            Ok(r) if r.status() == hyper::StatusCode::OK => Limited::new(r.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| fail(&e)),
            Ok(r) => Err(fail(&format!(
                "HTTP status {} (is it smtp-sink --track --metrics?)",
                r.status()
            ))),
            Err(e) => Err(e),
        };
        driver.abort();
        body
    }
}

/// `run_id`'s figures in a `/runs` document.
pub fn parse_runs(body: &[u8], run_id: &str) -> std::result::Result<RunFigures, String> {
    let doc: RunsDoc = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    Ok(doc
        .runs
        .iter()
        .find(|r| r.run_id == run_id)
        .map(|r| RunFigures {
            distinct: r.distinct,
            p99_us: r.latency_us.p99,
            span_us: match (r.first_received_us, r.last_received_us) {
                (Some(first), Some(last)) => last.saturating_sub(first),
                _ => 0,
            },
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::track::{run_id_text, HeaderScanner, Tracker};

    #[test]
    fn reads_a_run_from_the_sinks_tracking_report() {
        let mut tracker = Tracker::new();
        for seq in [0u64, 1, 1, 3] {
            let mut s = HeaderScanner::new();
            let head = format!(
                "X-Smtpstone-Run: {}\r\nX-Smtpstone-Seq: {seq}\r\nX-Smtpstone-Sent: 1000\r\n\r\n",
                run_id_text(0xab)
            );
            s.feed(head.as_bytes());
            tracker.record(s.tag(), 251_000 + seq * 1_000);
        }
        let doc = tracker.to_json();
        let got = parse_runs(doc.as_bytes(), &run_id_text(0xab)).expect("parse");
        assert_eq!(got.distinct, 3);
        // First arrivals 0, 1 and 3 ms after the first: the duplicate of
        // 1 does not count.
        assert_eq!(got.span_us, 3_000);
        // The histogram's buckets are within 0.1%.
        assert!(got.p99_us.abs_diff(253_000) <= 253, "{}", got.p99_us);
        let none = parse_runs(doc.as_bytes(), &run_id_text(0xcd)).expect("parse");
        assert_eq!(none, RunFigures::default());
        assert!(parse_runs(b"<html>", "x").is_err());
    }
}
