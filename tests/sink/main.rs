//! smtp-sink integration tests, one test binary: each module covers one
//! area of the server (protocol, options, dumps, counters, TLS, AUTH,
//! BDAT, syslog, command line). Grouped into one crate so `tests/common`
//! is compiled and linked once rather than once per file.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod chunking;
mod cli;
mod counters;
mod dump;
mod options;
mod policy;
mod protocol;
mod relay;
mod syslog;
mod tls;
