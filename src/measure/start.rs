//! `smtp-source --start-at TIME`: begin the load at an agreed instant, so
//! that the shards of one run (README, "Scaling out") start together
//! without a coordinator. `TIME` is Unix epoch seconds, possibly fractional
//! (`1767225600.5`), or a delay from now (`+30s`, `+2m`).
//!
//! The value is resolved to an epoch time once, when the options are read;
//! [`wait`] sleeps until then on the monotonic clock, so a wall-clock step
//! during the wait does not move the start.

use std::time::Duration;

use tokio::time::Instant;

use super::rate::parse_duration;
use super::track::now_micros;
use crate::diag::{self, sanitize, Error, Result};

/// Furthest start accepted: long enough to schedule a run for a quiet hour,
/// short enough that an epoch given in milliseconds (a thousand times too
/// far) or a typo is refused instead of leaving a process or pod waiting.
pub const MAX_START_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Fraction digits kept (microseconds); further ones are refused rather
/// than silently dropped.
const FRACTION_DIGITS: usize = 6;

/// Integer digits of an epoch in seconds read (any `u64`), so that an
/// epoch in milliseconds or microseconds is refused as too far ahead rather
/// than as malformed.
const SECONDS_DIGITS: usize = 19;

/// Parse `--start-at`: the start as Unix epoch microseconds, `now_us` being
/// the current time.
pub fn parse_start_at(value: &[u8], now_us: u64) -> Result<u64> {
    let shown = sanitize(value);
    let bad = || {
        Error::fatal(format!(
            "bad --start-at value: {shown} (epoch seconds such as 1767225600.5, or +DELAY such as +30s)"
        ))
    };
    let at = match value.strip_prefix(b"+") {
        Some(delay) => {
            let delay = std::str::from_utf8(delay)
                .ok()
                .filter(|d| !d.starts_with(['+', '-', ' ']))
                .and_then(parse_duration)
                .ok_or_else(bad)?;
            let us = u64::try_from(delay.as_micros()).map_err(|_| bad())?;
            now_us.saturating_add(us)
        }
        None => epoch_micros(value).ok_or_else(bad)?,
    };
    let limit = u64::try_from(MAX_START_WAIT.as_micros()).unwrap_or(u64::MAX);
    if at > now_us.saturating_add(limit) {
        return Err(Error::fatal(format!(
            "bad --start-at value: {shown} (more than {} hours ahead)",
            MAX_START_WAIT.as_secs() / 3600
        )));
    }
    Ok(at)
}

/// `SECONDS[.FRACTION]` as microseconds.
fn epoch_micros(value: &[u8]) -> Option<u64> {
    let (secs, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    let digits = |t: &[u8], max: usize| t.len() <= max && t.iter().all(u8::is_ascii_digit);
    if secs.is_empty() || !digits(secs, SECONDS_DIGITS) || !digits(frac, FRACTION_DIGITS) {
        return None;
    }
    if value.ends_with(b".") {
        return None;
    }
    let secs: u64 = std::str::from_utf8(secs).ok()?.parse().ok()?;
    let mut micros = 0u64;
    for i in 0..FRACTION_DIGITS {
        micros = micros * 10 + frac.get(i).map_or(0, |d| u64::from(d - b'0'));
    }
    Some(secs.saturating_mul(1_000_000).saturating_add(micros))
}

/// Wait until epoch microsecond `at`; returns the instant the load starts.
/// A time already past starts at once, with a warning.
pub async fn wait(at: u64) -> Instant {
    wait_from(at, now_micros()).await
}

/// [`wait`], the wall clock reading `now` (epoch microseconds).
async fn wait_from(at: u64, now: u64) -> Instant {
    if at < now {
        let late = Duration::from_micros(now - at);
        diag::warning(&format!(
            "--start-at: the start time passed {:.3} s ago; starting now",
            late.as_secs_f64()
        ));
        return Instant::now();
    }
    let due = Instant::now() + Duration::from_micros(at - now);
    tokio::time::sleep_until(due).await;
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000_000;

    fn fatal(r: Result<u64>) -> String {
        match r {
            Err(Error::Fatal(t)) => t,
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn epochs_and_delays() {
        let p = |v: &str| parse_start_at(v.as_bytes(), NOW);
        assert_eq!(p("1767225600").expect("now"), NOW);
        assert_eq!(p("1767225630.5").expect("frac"), NOW + 30_500_000);
        assert_eq!(p("1767225630.000001").expect("us"), NOW + 30_000_001);
        assert_eq!(p("+30s").expect("rel"), NOW + 30_000_000);
        assert_eq!(p("+1m30s").expect("rel"), NOW + 90_000_000);
        assert_eq!(p("+90").expect("plain seconds"), NOW + 90_000_000);
        assert_eq!(p("+24h").expect("the limit"), NOW + 86_400_000_000);
        // The past is accepted here; wait() warns and starts at once.
        assert_eq!(p("1000").expect("past"), 1_000_000_000);
        for bad in [
            "",
            "+",
            "+0s",
            "+-5s",
            "++5s",
            "soon",
            "-5",
            "1e9",
            "1767225600.",
            ".5",
            "1767225600.1234567",
            " 1767225600",
            "1767225600 ",
        ] {
            assert_eq!(
                fatal(p(bad)),
                format!(
                    "bad --start-at value: {bad} (epoch seconds such as 1767225600.5, or +DELAY such as +30s)"
                ),
            );
        }
        for far in ["+25h", "1767312001", "1767225600000", "1767225600000000"] {
            assert_eq!(
                fatal(p(far)),
                format!("bad --start-at value: {far} (more than 24 hours ahead)")
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_the_time_or_starts_at_once_when_past() {
        let before = Instant::now();
        let started = wait_from(NOW + 5_000_000, NOW).await;
        assert_eq!(started - before, Duration::from_secs(5));
        assert_eq!(Instant::now(), started);
        let before = Instant::now();
        let started = wait_from(NOW - 1_000_000, NOW).await;
        assert_eq!(started, before);
    }
}
