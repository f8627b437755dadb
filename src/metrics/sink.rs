//! smtp-sink's metric families (`smtpsink_` prefix, base units).
//!
//! Label sets are fixed and small: `command` is one of the sink's command
//! names (as in `-q`/`-f` option values, `.` being the end of data, plus
//! `unknown`), `class` one of [`CLASSES`]. Nothing is labelled by run id,
//! client address or session.
//!
//! Most values are the sink's own counters, read when scraped
//! ([`SinkReadout`]); only the replies by command and class, which nothing
//! else counts, have their table here ([`ReplyCounts`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::family::{counter, counters, gauge, histogram};
use super::histogram::Counts;

/// Reply classes, by the first digit of the reply code (RFC 5321 §4.2.1);
/// `other` would be a reply that does not start with 2..5.
pub const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];

/// The `command` label of replies to unknown or empty command lines.
pub const UNKNOWN: &str = "unknown";

/// Replies by command and class, shared by the sessions: one relaxed
/// atomic add per reply (the sink's sessions share one thread, so these
/// cache lines never move between cores).
#[derive(Debug)]
pub struct ReplyCounts {
    commands: Vec<&'static str>,
    /// One row per command, then one for [`UNKNOWN`].
    counts: Box<[[AtomicU64; CLASSES.len()]]>,
}

impl ReplyCounts {
    /// A table for `commands` (their index is the `command` argument of
    /// [`ReplyCounts::add`]).
    pub fn new(commands: &[&'static str]) -> ReplyCounts {
        ReplyCounts {
            commands: commands.to_vec(),
            counts: (0..=commands.len()).map(|_| Default::default()).collect(),
        }
    }

    /// Count `reply`, sent for command number `command` (`None`: an
    /// unknown or empty command).
    #[inline]
    pub fn add(&self, command: Option<usize>, reply: &[u8]) {
        let last = self.commands.len();
        let row = command.map_or(last, |c| c.min(last));
        let class = match reply.first() {
            Some(d @ b'2'..=b'5') => usize::from(d - b'2'),
            _ => CLASSES.len() - 1,
        };
        self.counts[row][class].fetch_add(1, Ordering::Relaxed);
    }

    /// `(command, class, count)` for every cell.
    pub fn cells(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .flat_map(move |(row, classes)| {
                let command = self.commands.get(row).copied().unwrap_or(UNKNOWN);
                classes
                    .iter()
                    .zip(CLASSES)
                    .map(move |(n, class)| (command, class, n.load(Ordering::Relaxed)))
            })
    }
}

/// The sink's values at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReadings {
    /// Sessions started.
    pub sessions: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Messages received (end of data, or BDAT LAST).
    pub messages: u64,
    /// Message content bytes received (DATA and BDAT).
    pub bytes: u64,
    /// Messages written to a `-d`/`-D` dump.
    pub dumps: u64,
    /// With `--track`.
    pub tracking: Option<TrackReadings>,
    /// With `--policy`: (rule, outcome, count); bounded by the policy's
    /// rule cap times its six outcomes.
    pub policy: Vec<(String, &'static str, u64)>,
}

/// `--track` values at one scrape (sums over all runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackReadings {
    /// Messages with tracking headers.
    pub received: u64,
    /// Arrivals of a sequence number already seen.
    pub duplicates: u64,
    /// Sequence numbers below each run's highest that have not arrived.
    pub gaps: u64,
    /// Delivery latency of first arrivals.
    pub latency: Counts,
}

/// Where the collector reads the sink's values.
pub trait SinkReadout: std::fmt::Debug + Send + Sync + 'static {
    /// The counters now.
    fn readings(&self) -> SinkReadings;
    /// The reply table (`None`: no replies counted).
    fn replies(&self) -> Option<&ReplyCounts>;
}

/// The registry behind smtp-sink's `/metrics`.
pub fn registry<T: SinkReadout>(readout: Arc<T>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SinkCollector(readout)));
    registry
}

#[derive(Debug)]
struct SinkCollector<T>(Arc<T>);

impl<T: SinkReadout> Collector for SinkCollector<T> {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let r = self.0.readings();
        let e = &mut enc;
        counter(e, "smtpsink_sessions", "Sessions started.", r.sessions)?;
        let active = r.sessions.saturating_sub(r.sessions_ended);
        gauge(
            e,
            "smtpsink_sessions_active",
            "Sessions open now.",
            i64::try_from(active).unwrap_or(i64::MAX),
        )?;
        counter(e, "smtpsink_messages", "Messages received.", r.messages)?;
        counter(
            e,
            "smtpsink_received_bytes",
            "Message content bytes received (DATA and BDAT), as on the wire.",
            r.bytes,
        )?;
        counters(
            e,
            "smtpsink_replies",
            "Replies sent, by command and reply class.",
            // Most of the command x class cells stay 0: only those seen.
            self.0
                .replies()
                .into_iter()
                .flat_map(ReplyCounts::cells)
                .filter(|cell| cell.2 > 0)
                .map(|(command, class, n)| ([("command", command), ("class", class)], n)),
        )?;
        counter(
            e,
            "smtpsink_dumps_written",
            "Messages written to the -d/-D dump.",
            r.dumps,
        )?;
        if let Some(t) = &r.tracking {
            encode_tracking(e, t)?;
        }
        if !r.policy.is_empty() {
            counters(
                e,
                "smtpsink_policy_decisions",
                "--policy decisions, by rule and outcome.",
                r.policy.iter().map(|(rule, outcome, n)| {
                    ([("rule", rule.as_str()), ("outcome", *outcome)], *n)
                }),
            )?;
        }
        Ok(())
    }
}

fn encode_tracking(e: &mut DescriptorEncoder, t: &TrackReadings) -> std::fmt::Result {
    counter(
        e,
        "smtpsink_tracked_received",
        "Messages received with smtp-source --track headers.",
        t.received,
    )?;
    counter(
        e,
        "smtpsink_tracked_duplicates",
        "Tracked messages whose sequence number had arrived before.",
        t.duplicates,
    )?;
    gauge(
        e,
        "smtpsink_tracked_gaps",
        "Sequence numbers below each run's highest that have not arrived (yet).",
        i64::try_from(t.gaps).unwrap_or(i64::MAX),
    )?;
    histogram(
        e,
        "smtpsink_delivery_latency_seconds",
        "Delivery latency of tracked messages: receive time minus the X-Smtpstone-Sent stamp.",
        &t.latency,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    #[derive(Debug)]
    struct Fixed(SinkReadings, ReplyCounts);

    impl SinkReadout for Fixed {
        fn readings(&self) -> SinkReadings {
            self.0.clone()
        }
        fn replies(&self) -> Option<&ReplyCounts> {
            Some(&self.1)
        }
    }

    fn scrape(readings: SinkReadings, replies: ReplyCounts) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry(Arc::new(Fixed(readings, replies))))
            .expect("encode");
        out
    }

    #[test]
    fn reply_classes_and_rows() {
        let t = ReplyCounts::new(&["helo", "."]);
        t.add(Some(0), b"250 ok\r\n");
        t.add(Some(1), b"250 ok\r\n");
        t.add(Some(1), b"451 later\r\n");
        t.add(None, b"502 5.5.2 Error: command not recognized\r\n");
        t.add(Some(99), b"354 go\r\n");
        t.add(Some(0), b"");
        let cells: Vec<_> = t.cells().filter(|c| c.2 > 0).collect();
        assert_eq!(
            cells,
            [
                ("helo", "2xx", 1),
                ("helo", "other", 1),
                (".", "2xx", 1),
                (".", "4xx", 1),
                ("unknown", "3xx", 1),
                ("unknown", "5xx", 1),
            ]
        );
    }

    #[test]
    fn text_exposition() {
        let replies = ReplyCounts::new(&["mail"]);
        replies.add(Some(0), b"250 2.1.0 Ok\r\n");
        let mut latency = Counts::default();
        latency.record(700);
        latency.record(2_000_000);
        let readings = SinkReadings {
            sessions: 5,
            sessions_ended: 3,
            messages: 7,
            bytes: 1234,
            dumps: 1,
            tracking: Some(TrackReadings {
                received: 6,
                duplicates: 1,
                gaps: 2,
                latency,
            }),
            policy: vec![("gmail".into(), "deferred", 3)],
        };
        let text = scrape(readings.clone(), replies);
        for line in [
            "# TYPE smtpsink_sessions_total counter\n",
            "smtpsink_sessions_total 5\n",
            "smtpsink_sessions_active 2\n",
            "smtpsink_messages_total 7\n",
            "smtpsink_received_bytes_total 1234\n",
            "smtpsink_replies_total{command=\"mail\",class=\"2xx\"} 1\n",
            "smtpsink_dumps_written_total 1\n",
            "smtpsink_policy_decisions_total{rule=\"gmail\",outcome=\"deferred\"} 3\n",
            "smtpsink_tracked_received_total 6\n",
            "smtpsink_tracked_duplicates_total 1\n",
            "smtpsink_tracked_gaps 2\n",
            "# TYPE smtpsink_delivery_latency_seconds histogram\n",
            "smtpsink_delivery_latency_seconds_sum 2.0007\n",
            "smtpsink_delivery_latency_seconds_count 2\n",
            "smtpsink_delivery_latency_seconds_bucket{le=\"0.0005\"} 0\n",
            "smtpsink_delivery_latency_seconds_bucket{le=\"0.001\"} 1\n",
            "smtpsink_delivery_latency_seconds_bucket{le=\"2.5\"} 2\n",
            "smtpsink_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        assert!(!text.contains("class=\"4xx\""), "zero series are left out");
        let untracked = scrape(
            SinkReadings {
                tracking: None,
                ..readings
            },
            ReplyCounts::new(&[]),
        );
        assert!(!untracked.contains("tracked"), "{untracked}");
        assert!(!untracked.contains("latency"), "{untracked}");
    }
}
