//! Writing one metric family at scrape time from a plain value: the
//! collectors read the tools' own counters when scraped, so nothing is
//! kept twice in prometheus-client's metric types.

use std::fmt::Result;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::histogram::Counts;

/// A counter; `name` without `_total`, which the encoder appends.
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// A counter with one series per label set.
pub fn counters<L: prometheus_client::encoding::EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    Ok(())
}

/// A gauge holding a count.
pub fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A gauge holding a real number.
pub fn gauge_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A latency histogram in seconds.
pub fn histogram(enc: &mut DescriptorEncoder, name: &str, help: &str, counts: &Counts) -> Result {
    counts.encode(enc.encode_descriptor(name, help, None, MetricType::Histogram)?)
}
