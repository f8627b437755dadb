//! smtp-source integration tests, one test binary: each module covers one
//! area of the client (wire format, replies, sessions, options, the
//! extension options, end to end against both sinks). Grouped into one
//! crate so `tests/common` is compiled and linked once.

#[path = "../common/mod.rs"]
mod common;

mod e2e;
mod modern;
mod options;
mod replies;
mod sessions;
mod wire;
