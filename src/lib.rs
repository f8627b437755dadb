//! smtpstone: drop-in Rust replacements for Postfix's `smtp-source` (a
//! parallel SMTP/LMTP load generator) and `smtp-sink` (an SMTP/LMTP server
//! that accepts mail and discards or dumps it).
//!
//! Data flows one way: argv → [`args`] → checked config → sessions → summary.
//! Protocol rules live in [`proto`] (sans-IO, no tokio), sockets in
//! [`conn`] and [`endpoint`]; [`source`] and [`sink`] never import each other.

pub mod args;
pub mod conn;
pub mod diag;
pub mod endpoint;
pub mod manpage;
pub mod measure;
pub mod metrics;
pub mod proto;
pub mod sink;
pub mod source;
pub mod tls;
pub mod workers;

pub use diag::{Error, Result};
