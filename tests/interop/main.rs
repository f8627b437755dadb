//! Tests against other programs and hostile peers, one test binary:
//! differential runs against Postfix's smtp-source and smtp-sink, a real
//! Postfix MTA and swaks as independent peers, hostile-peer robustness,
//! and the checks of the shared test helpers themselves.

#[path = "../common/mod.rs"]
mod common;

mod differential_sink;
mod differential_source;
mod harness;
mod hostile;
mod mta;
mod mta_tls;
mod source_modern;
mod swaks;
