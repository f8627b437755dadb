//! Prometheus metrics over HTTP (`--metrics ADDR`, both tools).
//!
//! * [`http`]: the listener (hyper): `GET /metrics` in the Prometheus text
//!   exposition format, and smtp-sink's `GET /runs`;
//! * [`sink`] / [`source`]: each tool's metric families, encoded at scrape
//!   time (prometheus-client collectors) from counters the tools keep
//!   anyway, or from per-session blocks that only their session writes;
//! * [`histogram`]: the fixed latency buckets both tools export;
//! * [`family`]: writing one family from a plain value.
//!
//! This module knows neither SMTP nor the tools: `measure` hands it the
//! values. Without `--metrics` none of it runs and nothing listens.

pub mod family;
pub mod histogram;
pub mod http;
pub mod sink;
pub mod source;
