//! Measurement extensions (latency, throughput and counter reports) of
//! both tools, one test binary: the source's and the sink's reports, and
//! the two measured through a real Postfix MTA.

#[path = "../common/mod.rs"]
mod common;

mod find_max;
mod metrics;
mod mta;
mod shard;
mod sink;
mod source;
mod threads;
mod timeline;
