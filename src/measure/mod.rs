//! Measurements a load tool owes its users, all behind long
//! options so that a Postfix command line behaves exactly as before:
//!
//! * [`recorder`]: per-session phase latencies (HdrHistogram) and reply-code
//!   counters for `smtp-source --report/--json`, merged once at the end;
//! * [`report`]: the run report, human-readable and JSON (`--json`,
//!   `--merge`);
//! * [`rate`]: open-loop pacing for `--rate`/`--duration`, free of
//!   coordinated omission;
//! * [`html`]: the `--html` page, charts as inline SVG;
//! * [`progress`]: the live `--progress` line;
//! * [`track`]: the `--track` headers stamped by smtp-source and the sink's
//!   per-run delivery accounting;
//! * [`timeline`]: the per-interval timeline of a run report, bounded by
//!   coarsening;
//! * [`shard`]: one run split exactly over processes or machines
//!   (`--shard`, `--run-id`) and the checks `--merge` makes on the shards;
//! * [`start`]: `--start-at`, the agreed instant the load begins;
//! * [`stats`]: smtp-sink's `--stats` interval line;
//! * [`options`]: the long options of both tools and their checks;
//! * [`source_side`] / [`sink_side`]: what a run and its sessions hold when
//!   an option is on, and the output at exit ([`output`]).
//!
//! The measuring itself is plain data and pure functions, tested without
//! sockets (the pacing against tokio's paused clock); only the two `*_side`
//! modules spawn tasks and write output.

pub mod hist;
pub mod html;
pub mod options;
pub mod output;
pub mod progress;
pub mod rate;
pub mod recorder;
pub mod report;
pub mod search;
pub mod shard;
pub mod sink_side;
pub mod source_side;
pub mod start;
pub mod stats;
pub mod timeline;
pub mod track;
