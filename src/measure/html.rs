//! `smtp-source --html FILE`: the run report as one self-contained HTML
//! page. It opens offline in any browser: the style is inline, there is no
//! script, and the charts are inline SVG written here from the report's
//! data (a plotting crate would bring a dependency tree for a few polylines;
//! the SVG below is small enough to read and to test).
//!
//! The page is a list of [`SECTIONS`], each a function of the report; a
//! chart section builds a [`Chart`] (axes and series) and [`svg`] draws it.
//! A new chart (for example rate against latency for a capacity search) is
//! one more function in that list.

use std::fmt::Write as _;

use super::hist::{self, Hist};
use super::recorder::Phase;
use super::report::Report;
use super::timeline::{clock_text, interval_text, Timeline};

/// Width and height of a chart, in SVG user units (CSS pixels).
const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 260.0;
/// Plot area margins: room for tick labels (left, bottom) and the legend.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;

/// Inline style of the page: system fonts only, nothing fetched.
const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff;max-width:1140px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 4px}
p.note{margin:0 0 8px;color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px;word-break:break-all}
svg{display:block;background:#fcfcfc;border:1px solid #e4e4e4}
svg text{font-size:11px;fill:#444}.grid{stroke:#e6e6e6}.axis{stroke:#888}
polyline.line{fill:none;stroke-width:1.6}
.c0{stroke:#1f77b4;fill:#1f77b4}.c1{stroke:#d62728;fill:#d62728}.c2{stroke:#ff7f0e;fill:#ff7f0e}
.c3{stroke:#2ca02c;fill:#2ca02c}.c4{stroke:#9467bd;fill:#9467bd}.c5{stroke:#8c564b;fill:#8c564b}
.c6{stroke:#e377c2;fill:#e377c2}.c7{stroke:#7f7f7f;fill:#7f7f7f}.c8{stroke:#bcbd22;fill:#bcbd22}
.c9{stroke:#17becf;fill:#17becf}.c10{stroke:#393b79;fill:#393b79}
.k2{fill:#2ca02c}.k3{fill:#1f77b4}.k4{fill:#ff7f0e}.k5{fill:#d62728}.kx{fill:#7f7f7f}
";

/// One part of the page.
pub struct Section {
    /// Heading.
    pub title: String,
    /// One line under the heading.
    pub note: String,
    /// HTML (an `<svg>` or a `<table>`).
    pub body: String,
}

/// The page's sections, in order; each returns `None` when the report has
/// no data for it.
pub const SECTIONS: &[fn(&Report) -> Option<Section>] = &[
    settings,
    throughput,
    latency_over_time,
    latency_spectrum,
    reply_codes,
    achieved_vs_offered,
    latency_vs_rate,
];

/// The whole page.
pub fn page(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = match &report.search {
        Some(search) => format!("smtp-source capacity search: {} steps", search.steps.len()),
        None => format!("smtp-source report: {}", report.run_ids.join(", ")),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    for section in SECTIONS.iter().filter_map(|f| f(report)) {
        let _ = write!(
            out,
            "<section><h2>{}</h2><p class=\"note\">{}</p>\n{}\n</section>\n",
            esc(&section.title),
            esc(&section.note),
            section.body
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// `text` escaped for HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// From 0 (or the smallest value, if negative) to the largest.
    Linear,
    /// Decades from the smallest to the largest positive value.
    Log,
}

/// One axis.
pub struct Axis {
    /// Label under / beside the axis.
    pub label: String,
    /// Scale.
    pub scale: Scale,
    /// Tick label for a value.
    pub format: fn(f64) -> String,
}

/// One series: a line, with a marker per point when `points` is set.
pub struct Series {
    /// Name in the legend and in each marker's `data-series`.
    pub name: String,
    /// `(x, y)` values.
    pub values: Vec<(f64, f64)>,
    /// Draw a marker (`<circle class="pt" data-series=…>`) per value.
    pub points: bool,
}

/// A line chart.
pub struct Chart {
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Series, drawn in order (colours `c0`, `c1`, … of the style).
    pub series: Vec<Series>,
}

/// `[lo, hi]` of an axis over `values`, and its ticks.
fn range_and_ticks(scale: Scale, values: impl Iterator<Item = f64>) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (1.0, 1.0);
    }
    match scale {
        Scale::Linear => {
            let lo = lo.min(0.0);
            let hi = if hi > lo { hi } else { lo + 1.0 };
            // A 1-2-5 step giving at most 8 ticks.
            let raw = (hi - lo) / 8.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            let top = (hi / step).ceil() * step;
            let ticks = (0..=((top - lo) / step).round() as usize)
                .map(|i| lo + i as f64 * step)
                .collect();
            (lo, top, ticks)
        }
        Scale::Log => {
            let lo = 10f64.powf(lo.log10().floor());
            let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
            let decades = (hi / lo).log10().round() as i32;
            let ticks = (0..=decades).map(|d| lo * 10f64.powi(d)).collect();
            (lo, hi, ticks)
        }
    }
}

/// Position of `v` in `[lo, hi]` as a fraction.
fn frac(scale: Scale, lo: f64, hi: f64, v: f64) -> f64 {
    match scale {
        Scale::Linear => (v - lo) / (hi - lo),
        Scale::Log => (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
    }
}

/// Draw `chart` as an inline `<svg>`.
pub fn svg(chart: &Chart) -> String {
    let all = || chart.series.iter().flat_map(|s| s.values.iter());
    let (x0, x1, xt) = range_and_ticks(chart.x.scale, all().map(|v| v.0));
    let (y0, y1, yt) = range_and_ticks(chart.y.scale, all().map(|v| v.1));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + frac(chart.x.scale, x0, x1, x) * pw;
    let py = |y: f64| TOP + ph - frac(chart.y.scale, y0, y1, y) * ph;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\">"
    );
    for &t in &xt {
        let x = px(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph,
            TOP + ph + 15.0,
            esc(&(chart.x.format)(t))
        );
    }
    for &t in &yt {
        let y = py(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            esc(&(chart.y.format)(t))
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b:.1}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{:.1}\" y2=\"{b:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + pw,
        LEFT + pw / 2.0,
        HEIGHT - 8.0,
        esc(&chart.x.label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(&chart.y.label),
        b = TOP + ph,
    );
    let mut legend_x = LEFT + 8.0;
    for (i, s) in chart.series.iter().enumerate() {
        let class = format!("c{}", i % 11);
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{legend_x:.1}\" y=\"9\" width=\"12\" height=\"4\"/>\
             <text x=\"{:.1}\" y=\"15\">{}</text>",
            legend_x + 16.0,
            esc(&s.name)
        );
        legend_x += 30.0 + 7.0 * s.name.chars().count() as f64;
        let keep = |v: &&(f64, f64)| chart.y.scale == Scale::Linear || v.1 > 0.0;
        let pts: Vec<String> = s
            .values
            .iter()
            .filter(keep)
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line {class}\" points=\"{}\"/>",
            pts.join(" ")
        );
        if s.points {
            for &(x, y) in s.values.iter().filter(keep) {
                let _ = write!(
                    out,
                    "<circle class=\"pt {class}\" data-series=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\">\
                     <title>{}: {} at {}</title></circle>",
                    esc(&s.name),
                    px(x),
                    py(y),
                    esc(&s.name),
                    esc(&(chart.y.format)(y)),
                    esc(&(chart.x.format)(x)),
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// A number with at most three significant decimals, no trailing zeros.
fn num(v: f64) -> String {
    let text = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn timeline(report: &Report) -> Option<&Timeline> {
    report
        .timeline
        .as_ref()
        .filter(|t| !t.intervals().is_empty())
}

/// Seconds since the first interval's start, and that start's label.
fn time_axis(t: &Timeline) -> (u64, String) {
    let first = t.intervals().first().map_or(0, |i| i.start_ms);
    (
        first,
        format!(
            "seconds since {} UTC ({} intervals)",
            clock_text(first),
            interval_text(t.width_ms())
        ),
    )
}

/// The run's settings and totals.
fn settings(report: &Report) -> Option<Section> {
    let c = &report.counters;
    let mut rows: Vec<(String, String)> = vec![
        ("protocol".into(), report.protocol.clone()),
        (
            "runs".into(),
            format!("{} ({})", report.runs, report.run_ids.join(", ")),
        ),
        (
            "elapsed".into(),
            format!("{:.3} s", report.elapsed.as_secs_f64()),
        ),
        (
            "target rate".into(),
            report
                .target_rate
                .map_or("closed loop".into(), |r| format!("{} msg/s", num(r))),
        ),
        ("sessions".into(), c.sessions.to_string()),
        (
            "messages".into(),
            format!(
                "{} attempted, {} accepted, {} rejected, {} failed",
                c.attempted, c.accepted, c.rejected, c.failed
            ),
        ),
        (
            "connections".into(),
            format!(
                "{} established, {} failed attempts",
                c.connects, c.connect_failures
            ),
        ),
        (
            "throughput".into(),
            format!(
                "{:.1} msg/s, {:.3} MB/s ({} bytes sent)",
                report.msgs_per_sec(),
                report.mb_per_sec(),
                c.bytes_sent
            ),
        ),
    ];
    if let Some(t) = &report.timeline {
        rows.push(("interval".into(), interval_text(t.width_ms())));
    }
    if let Some(set) = &report.shards {
        rows.push(("shards".into(), set.text()));
    }
    if report.incomplete {
        rows.push(("status".into(), "INCOMPLETE: ended by a fatal error".into()));
    }
    let mut body = String::from("<table>");
    for (k, v) in &rows {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    for cmd in &report.commands {
        let _ = write!(
            body,
            "<tr><th>command</th><td><code>{}</code></td></tr>",
            esc(cmd)
        );
    }
    body.push_str("</table>");
    Some(Section {
        title: "Run".into(),
        note: "Settings and totals of the run (of every run, when merged).".into(),
        body,
    })
}

/// Accepted, rejected (and failed) messages per second, per interval.
fn throughput(report: &Report) -> Option<Section> {
    let t = timeline(report)?;
    let (first, label) = time_axis(t);
    let secs = t.width_ms() as f64 / 1000.0;
    let at = |start: u64| (start - first) as f64 / 1000.0;
    let series = |name: &str, f: fn(&super::timeline::Counts) -> u64| Series {
        name: name.into(),
        values: t
            .intervals()
            .iter()
            .map(|i| (at(i.start_ms), f(&i.counts) as f64 / secs))
            .collect(),
        points: true,
    };
    let mut all = vec![
        series("accepted", |c| c.accepted),
        series("rejected", |c| c.rejected),
    ];
    if report.counters.failed > 0 {
        all.push(series("failed", |c| c.failed));
    }
    let chart = Chart {
        x: Axis {
            label,
            scale: Scale::Linear,
            format: num,
        },
        y: Axis {
            label: "messages per second".into(),
            scale: Scale::Linear,
            format: num,
        },
        series: all,
    };
    Some(Section {
        title: "Throughput over time".into(),
        note: "Messages per second in each interval, by outcome at end of data (rejected: \
               4xx/5xx under -A; failed: cut short by an error)."
            .into(),
        body: svg(&chart),
    })
}

/// p50, p99 and max message latency per interval.
fn latency_over_time(report: &Report) -> Option<Section> {
    let t = timeline(report)?;
    let (first, label) = time_axis(t);
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut max = Vec::new();
    for iv in t.intervals() {
        if iv.latency.count() == 0 {
            continue;
        }
        let s = hist::summary(&iv.latency.to_hist());
        let x = (iv.start_ms - first) as f64 / 1000.0;
        p50.push((x, s.p50 as f64 / 1000.0));
        p99.push((x, s.p99 as f64 / 1000.0));
        max.push((x, s.max as f64 / 1000.0));
    }
    if p50.is_empty() {
        return None;
    }
    let line = |name: &str, values| Series {
        name: name.into(),
        values,
        points: true,
    };
    let chart = Chart {
        x: Axis {
            label,
            scale: Scale::Linear,
            format: num,
        },
        y: Axis {
            label: "message latency, ms (log)".into(),
            scale: Scale::Log,
            format: num,
        },
        series: vec![line("p50", p50), line("p99", p99), line("max", max)],
    };
    Some(Section {
        title: "Latency over time".into(),
        note: "Message latency (start to accepted end of data) of the messages accepted in \
               each interval."
            .into(),
        body: svg(&chart),
    })
}

/// `(1 / (1 - q), value ms)` along the percentile distribution of `h`:
/// ten points per decade of the tail, up to the largest value.
fn spectrum(h: &Hist) -> Vec<(f64, f64)> {
    let n = h.len() as f64;
    let mut out = Vec::new();
    let mut k = 0;
    loop {
        let x = 10f64.powf(f64::from(k) / 10.0);
        if x > n || k > 70 {
            break;
        }
        let q = 1.0 - 1.0 / x;
        out.push((
            x,
            h.lowest_equivalent(h.value_at_quantile(q)) as f64 / 1000.0,
        ));
        k += 1;
    }
    out.push((n.max(1.0), h.lowest_equivalent(h.max()) as f64 / 1000.0));
    out
}

/// `90%`, `99.9%`… for a spectrum's `1 / (1 - q)`.
fn percentile_label(x: f64) -> String {
    format!("{}%", num(100.0 * (1.0 - 1.0 / x)))
}

/// The percentile distribution of every phase, log-log.
fn latency_spectrum(report: &Report) -> Option<Section> {
    let lmtp = report.protocol == "LMTP";
    let series: Vec<Series> = Phase::ALL
        .into_iter()
        .filter(|p| !report.latency[p.index()].is_empty())
        .map(|p| Series {
            name: p.label(lmtp).into(),
            values: spectrum(&report.latency[p.index()]),
            points: false,
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let chart = Chart {
        x: Axis {
            label: "percentile (log scale of 1/(1-q))".into(),
            scale: Scale::Log,
            format: percentile_label,
        },
        y: Axis {
            label: "latency, ms (log)".into(),
            scale: Scale::Log,
            format: num,
        },
        series,
    };
    Some(Section {
        title: "Latency percentile spectrum per phase".into(),
        note: "HdrHistogram percentile distribution of the whole run: each line reaches the \
               largest value of its phase."
            .into(),
        body: svg(&chart),
    })
}

/// One reply code's part of a stage's bar: label, style class, count.
type CodeSegment = (String, &'static str, u64);

/// The reply codes of `phase`, coloured by class (2xx … 5xx, other).
fn segments(report: &Report, phase: Phase) -> Vec<CodeSegment> {
    let i = phase.index();
    let mut codes: Vec<CodeSegment> = report.replies[i]
        .iter()
        .map(|(&code, &n)| {
            let class = match code / 100 {
                2 => "k2",
                3 => "k3",
                4 => "k4",
                5 => "k5",
                _ => "kx",
            };
            (format!("{code:03}"), class, n)
        })
        .collect();
    if report.other_replies[i] > 0 {
        codes.push(("other".into(), "kx", report.other_replies[i]));
    }
    codes
}

/// One stacked bar per stage, a segment per reply code.
fn reply_codes(report: &Report) -> Option<Section> {
    let lmtp = report.protocol == "LMTP";
    let rows: Vec<(Phase, Vec<CodeSegment>)> = Phase::ALL
        .into_iter()
        .filter(|p| p.has_replies())
        .map(|p| (p, segments(report, p)))
        .filter(|(_, codes)| !codes.is_empty())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let (row_h, label_w, bar_w) = (26.0, 110.0, 640.0);
    let height = rows.len() as f64 * row_h + 10.0;
    let mut body = format!(
        "<svg viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">"
    );
    for (r, (phase, codes)) in rows.iter().enumerate() {
        let y = 5.0 + r as f64 * row_h;
        let total: u64 = codes.iter().map(|c| c.2).sum();
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 15.0,
            esc(phase.label(lmtp))
        );
        let mut x = label_w;
        let mut legend = Vec::new();
        for (code, class, n) in codes {
            let w = bar_w * *n as f64 / total as f64;
            let _ = write!(
                body,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"18\">\
                 <title>{code}: {n}</title></rect>"
            );
            x += w;
            legend.push(format!("{code} ×{n}"));
        }
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w + bar_w + 10.0,
            y + 15.0,
            esc(&legend.join("  "))
        );
    }
    body.push_str("</svg>");
    Some(Section {
        title: "Reply codes per stage".into(),
        note: "Share of each reply code at each stage (green 2xx, blue 3xx, orange 4xx, red 5xx)."
            .into(),
        body,
    })
}

/// `--find-max`: the search's steps by offered rate, `(offered, step)`.
fn steps_by_rate(report: &Report) -> Option<Vec<&super::search::Step>> {
    let search = report.search.as_ref()?;
    let mut steps: Vec<_> = search.steps.iter().filter(|s| s.offered > 0.0).collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    (!steps.is_empty()).then_some(steps)
}

fn rate_axis() -> Axis {
    Axis {
        label: "offered rate, messages per second".into(),
        scale: Scale::Linear,
        format: num,
    }
}

/// Capacity search: achieved against offered rate, passing and failing
/// steps apart, with the line where the two are equal.
fn achieved_vs_offered(report: &Report) -> Option<Section> {
    let steps = steps_by_rate(report)?;
    let points = |pass: bool| Series {
        name: if pass { "passed" } else { "failed" }.into(),
        values: steps
            .iter()
            .filter(|s| s.verdict.pass == pass)
            .map(|s| (s.offered, s.achieved))
            .collect(),
        points: true,
    };
    let ideal = Series {
        name: "achieved = offered".into(),
        values: steps.iter().map(|s| (s.offered, s.offered)).collect(),
        points: false,
    };
    let mut series = vec![ideal, points(true), points(false)];
    // With --sink-url: the rate the step's messages reached the sink at.
    let delivered: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| {
            let step = std::time::Duration::from_secs_f64(s.duration_secs);
            Some((s.offered, s.measure.delivery?.rate(step)))
        })
        .collect();
    if !delivered.is_empty() {
        series.push(Series {
            name: "delivered".into(),
            values: delivered,
            points: true,
        });
    }
    let chart = Chart {
        x: rate_axis(),
        y: Axis {
            label: "achieved rate, messages per second".into(),
            scale: Scale::Linear,
            format: num,
        },
        series,
    };
    Some(Section {
        title: "Achieved against offered rate".into(),
        note: "One point per step of the capacity search: where the points leave the \
               diagonal, the server (or the sessions) fell behind the offered load. \
               With --sink-url, \"delivered\" is the rate the step's messages reached the \
               sink at: below the diagonal, the server's queue grew."
            .into(),
        body: svg(&chart),
    })
}

/// Capacity search: message latency percentiles against the offered rate
/// (the "hockey stick").
fn latency_vs_rate(report: &Report) -> Option<Section> {
    let steps = steps_by_rate(report)?;
    let line = |name: &str, f: fn(&super::search::objective::Percentiles) -> u64| Series {
        name: name.into(),
        values: steps
            .iter()
            .filter(|s| s.measure.accepted > 0)
            .map(|s| (s.offered, f(&s.measure.latency) as f64 / 1000.0))
            .collect(),
        points: true,
    };
    let chart = Chart {
        x: rate_axis(),
        y: Axis {
            label: "message latency, ms (log)".into(),
            scale: Scale::Log,
            format: num,
        },
        series: vec![
            line("p50", |p| p.p50),
            line("p99", |p| p.p99),
            line("max", |p| p.max),
        ],
    };
    Some(Section {
        title: "Latency against offered rate".into(),
        note: "Message latency from each message's intended start, per step of the capacity \
               search: the knee is where it turns upwards."
            .into(),
        body: svg(&chart),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::timeline::{Counts, Interval, Sparse};

    fn report(intervals: u64) -> Report {
        let mut r = Report::new(false, "00000000000000aa".into(), Some(50.0));
        let mut t = Timeline::new(1000);
        for i in 0..intervals {
            let mut h = hist::new();
            for v in 0..40 {
                hist::record(&mut h, 900 + v * 37 + i * 10);
            }
            t.add(Interval {
                start_ms: 1_760_000_000_000 + i * 1000,
                counts: Counts {
                    attempted: 42,
                    accepted: 40,
                    rejected: 2,
                    ..Counts::default()
                },
                latency: Sparse::of(&h),
            });
            hist::add(&mut r.latency[Phase::Message.index()], &h);
            hist::add(&mut r.latency[Phase::Dot.index()], &h);
        }
        r.timeline = Some(t);
        r.replies[Phase::Dot.index()].insert(250, 40 * intervals);
        r.replies[Phase::Dot.index()].insert(554, 2 * intervals);
        r.commands = vec!["smtp-source -s 4 --html 'a b.html' <x>".into()];
        r
    }

    #[test]
    fn the_page_is_self_contained() {
        let page = page(&report(30));
        for bad in [
            "http://", "https://", "src=", "href=", "url(", "<script", "@import",
        ] {
            assert!(!page.contains(bad), "{bad} in page");
        }
        assert!(page.contains("&lt;x&gt;"), "settings are escaped");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 4);
    }

    #[test]
    fn one_throughput_point_per_interval() {
        for n in [1, 7, 300] {
            let page = page(&report(n));
            assert_eq!(
                page.matches("data-series=\"accepted\"").count(),
                n as usize,
                "{n} intervals"
            );
            assert_eq!(page.matches("data-series=\"rejected\"").count(), n as usize);
        }
    }

    #[test]
    fn a_report_without_a_timeline_still_renders() {
        let r = Report::new(true, "x".into(), None);
        let page = page(&r);
        assert!(page.contains("<table>"));
        assert!(!page.contains("<svg"));
        assert!(!page.contains("<th>shards</th>"));
    }

    #[test]
    fn shards_are_listed_in_the_settings() {
        use crate::measure::shard::{Shard, ShardSet};
        let mut r = report(1);
        let mut set = ShardSet::of(Shard { index: 0, count: 3 });
        set.add(&ShardSet::of(Shard { index: 2, count: 3 }));
        r.shards = Some(set);
        assert!(page(&r).contains("<tr><th>shards</th><td>shards 2 of 3 (missing 1)</td></tr>"));
    }

    #[test]
    fn ticks() {
        let (lo, hi, t) = range_and_ticks(Scale::Linear, [3.0, 47.0].into_iter());
        assert_eq!((lo, hi), (0.0, 50.0));
        assert_eq!(t.len(), 6);
        let (lo, hi, t) = range_and_ticks(Scale::Log, [0.3, 47.0, 0.0].into_iter());
        assert_eq!((lo, hi), (0.1, 100.0));
        assert_eq!(t.len(), 4);
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(1234.4), "1234");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1.0), "0%");
    }
}
