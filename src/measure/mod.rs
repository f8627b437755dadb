//! Measurements a load tool owes its users (issue #6), all behind long
//! options so that a Postfix command line behaves exactly as before:
//!
//! * [`recorder`]: per-session phase latencies (HdrHistogram) and reply-code
//!   counters for `smtp-source --report/--json`, merged once at the end;
//! * [`report`]: the run report, human-readable and JSON (`--json`,
//!   `--merge`);
//! * [`rate`]: open-loop pacing for `--rate`/`--duration`, free of
//!   coordinated omission;
//! * [`progress`]: the live `--progress` line;
//! * [`track`]: the `--track` headers stamped by smtp-source and the sink's
//!   per-run delivery accounting;
//! * [`stats`]: smtp-sink's `--stats` interval line.
//!
//! Everything here is plain data and pure functions (the pacing uses tokio
//! time only), tested without sockets.

pub mod hist;
pub mod progress;
pub mod rate;
pub mod recorder;
pub mod report;
pub mod stats;
pub mod track;
