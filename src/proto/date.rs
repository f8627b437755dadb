//! Dates as Postfix writes them (`mail_date`), and strftime for templates.
//!
//! Both go through the C library (`localtime_r`, `gmtime_r`, `strftime`) so
//! the local time zone, its abbreviation and the day/month names are exactly
//! those Postfix would print on the same system. A Rust program never calls
//! `setlocale`, so `strftime` runs in the "C" locale, as Postfix does.

use std::ffi::CString;
use std::sync::Once;

/// Minutes in an hour / a day, for the UTC offset arithmetic.
const HOUR_MIN: i32 = 60;
const DAY_MIN: i32 = 24 * HOUR_MIN;
const MIN_SEC: i32 = 60;

/// Upper bound for one `strftime` expansion. Postfix grows its buffer
/// without limit; a field width such as `%999999999Y` would then exhaust
/// memory, so beyond this size the template is returned unexpanded.
pub const STRFTIME_MAX: usize = 1 << 20;

/// First buffer size tried for an expansion.
const STRFTIME_INITIAL: usize = 128;

/// `tzset()` once, so `localtime_r` sees `TZ` (glibc's `localtime_r` does
/// not promise to read it on its own).
fn tz_init() {
    static TZSET: Once = Once::new();
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset has no arguments and only initialises libc's zone data.
    TZSET.call_once(|| unsafe { tzset() });
}

fn zeroed_tm() -> libc::tm {
    // SAFETY: struct tm is plain data; all-zero is a valid value
    // (tm_zone becomes a null pointer, which strftime treats as "").
    unsafe { std::mem::zeroed() }
}

/// Broken-down local time of `unix_secs`.
fn local_tm(unix_secs: i64) -> libc::tm {
    tz_init();
    let t = unix_secs as libc::time_t;
    let mut tm = zeroed_tm();
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        // Out of the representable range: fall back to UTC.
        return utc_tm(unix_secs);
    }
    tm
}

/// Broken-down UTC time of `unix_secs`.
fn utc_tm(unix_secs: i64) -> libc::tm {
    let t = unix_secs as libc::time_t;
    let mut tm = zeroed_tm();
    // SAFETY: both pointers are valid for the duration of the call.
    unsafe { libc::gmtime_r(&t, &mut tm) };
    tm
}

/// The UTC offset in minutes, computed as Postfix's `mail_date` does (from
/// the two broken-down times, not from `tm_gmtoff`): hour/minute difference,
/// a day's correction when the dates differ, and a minute's correction when
/// the seconds fields are a minute or more apart.
pub fn gmtoff_minutes(lt: &libc::tm, gmt: &libc::tm) -> i32 {
    let mut off = (lt.tm_hour - gmt.tm_hour) * HOUR_MIN + lt.tm_min - gmt.tm_min;
    if lt.tm_year < gmt.tm_year {
        off -= DAY_MIN;
    } else if lt.tm_year > gmt.tm_year {
        off += DAY_MIN;
    } else if lt.tm_yday < gmt.tm_yday {
        off -= DAY_MIN;
    } else if lt.tm_yday > gmt.tm_yday {
        off += DAY_MIN;
    }
    if lt.tm_sec <= gmt.tm_sec - MIN_SEC {
        off -= 1;
    } else if lt.tm_sec >= gmt.tm_sec + MIN_SEC {
        off += 1;
    }
    off
}

/// `±hhmm` as Postfix prints it: `%+03d%02d` of minutes/60 and
/// |minutes| % 60, so −30 minutes prints `+0030` (the sign is lost when the
/// hour part is 0; kept for byte compatibility).
pub fn format_offset(minutes: i32) -> String {
    format!(
        "{:+03}{:02}",
        minutes / HOUR_MIN,
        (minutes % HOUR_MIN).abs()
    )
}

/// RFC 2822 date of `unix_secs` in local time, Postfix 3.12 style:
/// `%a, %d %b %Y %H:%M:%S ±hhmm (%Z)`, e.g. `Thu, 05 Mar 2026 08:40:00 +0000 (UTC)`.
pub fn rfc2822(unix_secs: i64) -> String {
    let lt = local_tm(unix_secs);
    let gmt = utc_tm(unix_secs);
    format_rfc2822(&lt, gmtoff_minutes(&lt, &gmt))
}

/// The date text for an already broken-down local time and offset.
/// RFC 5322 section 3.3 (`date-time`); the two-digit day is Postfix 3.12's
/// choice (3.7 space-padded it).
pub fn format_rfc2822(lt: &libc::tm, gmtoff_min: i32) -> String {
    let mut out = strftime_tm(b"%a, %d %b %Y %H:%M:%S ", lt).unwrap_or_default();
    out.extend_from_slice(format_offset(gmtoff_min).as_bytes());
    out.extend_from_slice(&strftime_tm(b" (%Z)", lt).unwrap_or_default());
    String::from_utf8_lossy(&out).into_owned()
}

/// `strftime(template)` in local time at `unix_secs`, C locale, no size limit.
///
/// A NUL byte ends the template (as for the C string Postfix passes). An
/// expansion larger than [`STRFTIME_MAX`] returns the template unexpanded.
pub fn strftime_local(template: &[u8], unix_secs: i64) -> Vec<u8> {
    let template = match memchr::memchr(0, template) {
        Some(nul) => &template[..nul],
        None => template,
    };
    strftime_tm(template, &local_tm(unix_secs)).unwrap_or_else(|| template.to_vec())
}

/// `strftime` into a growing buffer. `None` if the result would exceed
/// [`STRFTIME_MAX`] or the template holds a NUL byte.
///
/// `strftime` returns 0 both for "buffer too small" and for an empty
/// result, so a sentinel byte is appended to the template: the expansion is
/// then never empty, 0 always means "too small", and the sentinel is cut
/// off again afterwards.
fn strftime_tm(template: &[u8], tm: &libc::tm) -> Option<Vec<u8>> {
    if template.is_empty() {
        return Some(Vec::new());
    }
    let mut fmt = Vec::with_capacity(template.len() + 1);
    fmt.extend_from_slice(template);
    fmt.push(b'|');
    let fmt = CString::new(fmt).ok()?;
    let mut size = STRFTIME_INITIAL.max(template.len() * 4);
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: buf has `size` writable bytes, fmt is NUL-terminated and
        // tm is a valid struct tm.
        let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), size, fmt.as_ptr(), tm) };
        if n > 0 {
            buf.truncate(n - 1); // drop the sentinel
            return Some(buf);
        }
        if size >= STRFTIME_MAX {
            return None;
        }
        size = (size * 2).min(STRFTIME_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// A broken-down time built by hand (no time zone involved), with
    /// `zone` as the %Z text.
    #[allow(clippy::too_many_arguments)]
    fn tm(
        year: i32,
        mon: i32,
        mday: i32,
        wday: i32,
        yday: i32,
        hms: (i32, i32, i32),
        zone: &'static CStr,
    ) -> libc::tm {
        let mut t = zeroed_tm();
        t.tm_year = year - 1900;
        t.tm_mon = mon - 1;
        t.tm_mday = mday;
        t.tm_wday = wday;
        t.tm_yday = yday;
        t.tm_hour = hms.0;
        t.tm_min = hms.1;
        t.tm_sec = hms.2;
        t.tm_zone = zone.as_ptr();
        t
    }

    #[test]
    fn format_table() {
        let cases: Vec<(libc::tm, i32, &str)> = vec![
            (
                tm(2026, 3, 5, 4, 63, (8, 40, 0), c"UTC"),
                0,
                "Thu, 05 Mar 2026 08:40:00 +0000 (UTC)",
            ),
            (
                tm(2026, 3, 5, 4, 63, (3, 40, 0), c"EST"),
                -300,
                "Thu, 05 Mar 2026 03:40:00 -0500 (EST)",
            ),
            (
                tm(1996, 12, 9, 1, 343, (5, 38, 26), c"EST"),
                -300,
                "Mon, 09 Dec 1996 05:38:26 -0500 (EST)",
            ),
            (
                tm(2026, 11, 28, 6, 331, (23, 59, 59), c"IST"),
                330,
                "Sat, 28 Nov 2026 23:59:59 +0530 (IST)",
            ),
            (
                tm(2026, 1, 1, 4, 0, (0, 0, 0), c"NST"),
                -210,
                "Thu, 01 Jan 2026 00:00:00 -0330 (NST)",
            ),
            // Postfix's %+03d of minutes/60: the sign of -00:30 is lost
            // (verified: Postfix 3.7.11 sink and source under TZ='<-0030>0:30'
            // both print `+0030 (-0030)`).
            (
                tm(2026, 6, 14, 0, 164, (12, 0, 0), c"-0030"),
                -30,
                "Sun, 14 Jun 2026 12:00:00 +0030 (-0030)",
            ),
            (
                tm(2026, 2, 10, 2, 40, (7, 5, 9), c"CHAST"),
                13 * 60 + 45,
                "Tue, 10 Feb 2026 07:05:09 +1345 (CHAST)",
            ),
            (
                tm(2026, 9, 30, 3, 272, (1, 2, 3), c"-12"),
                -12 * 60,
                "Wed, 30 Sep 2026 01:02:03 -1200 (-12)",
            ),
        ];
        for (t, off, want) in &cases {
            assert_eq!(format_rfc2822(t, *off), *want);
        }
    }

    #[test]
    fn every_weekday_and_month_name() {
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (i, m) in months.iter().enumerate() {
            let t = tm(2026, i as i32 + 1, 1, i as i32 % 7, 0, (0, 0, 0), c"UTC");
            let got = format_rfc2822(&t, 0);
            assert_eq!(&got[8..11], *m, "{got}");
            assert_eq!(&got[..3], days[i % 7], "{got}");
        }
    }

    #[test]
    fn gmtoff_table() {
        let utc = |h, m, s, yday, year| tm(year, 1, 1, 0, yday, (h, m, s), c"UTC");
        let cases = [
            // (local, gmt, minutes)
            (utc(8, 40, 0, 63, 2026), utc(8, 40, 0, 63, 2026), 0),
            (utc(3, 40, 0, 63, 2026), utc(8, 40, 0, 63, 2026), -300),
            (utc(14, 10, 0, 63, 2026), utc(8, 40, 0, 63, 2026), 330),
            // Local date behind / ahead of UTC.
            (utc(20, 0, 0, 62, 2026), utc(1, 0, 0, 63, 2026), -300),
            (utc(1, 0, 0, 64, 2026), utc(20, 0, 0, 63, 2026), 300),
            // Across a year boundary.
            (utc(23, 0, 0, 364, 2025), utc(4, 0, 0, 0, 2026), -300),
            (utc(0, 30, 0, 0, 2026), utc(23, 0, 0, 364, 2025), 90),
            // Offsets with seconds: the seconds fields correct by a minute.
            (utc(0, 10, 11, 0, 2026), utc(0, 0, 50, 0, 2026), 10),
            (utc(0, 9, 0, 0, 2026), utc(0, 0, 0, 0, 2026), 9),
        ];
        for (lt, gmt, want) in &cases {
            assert_eq!(gmtoff_minutes(lt, gmt), *want);
        }
        assert_eq!(format_offset(0), "+0000");
        assert_eq!(format_offset(-300), "-0500");
        assert_eq!(format_offset(-30), "+0030");
        assert_eq!(format_offset(-90), "-0130");
        assert_eq!(format_offset(840), "+1400");
    }

    #[test]
    fn strftime_edge_cases() {
        let t = tm(2026, 11, 28, 6, 331, (12, 5, 7), c"UTC");
        let cases: Vec<(&[u8], Vec<u8>)> = vec![
            (b"", b"".to_vec()),
            (b"plain", b"plain".to_vec()),
            (b"dumps/%Y%m%d/%H.", b"dumps/20261128/12.".to_vec()),
            (b"%%", b"%".to_vec()),
            (b"%a %b %e|%d", b"Sat Nov 28|28".to_vec()),
            (b"%Z", b"UTC".to_vec()),
            (b"\xff%Y", b"\xff2026".to_vec()),
        ];
        for (template, want) in cases {
            assert_eq!(
                strftime_tm(template, &t).unwrap(),
                want,
                "{:?}",
                String::from_utf8_lossy(template)
            );
        }
        // glibc shows an empty tm_zone as the zone's tzname, so an empty
        // expansion cannot be produced in the C locale; the sentinel byte
        // makes the loop independent of that anyway.
        let empty_zone = tm(2026, 11, 28, 6, 331, (12, 5, 7), c"");
        assert!(strftime_tm(b"%Z", &empty_zone).is_some());
        // Needs several buffer doublings.
        let long = b"%Y-%m-%d ".repeat(5000);
        let got = strftime_tm(&long, &t).unwrap();
        assert_eq!(got, b"2026-11-28 ".repeat(5000));
        // Field widths beyond the cap give up instead of exhausting memory.
        assert_eq!(strftime_tm(b"%2000000Y", &t), None);
    }

    #[test]
    fn strftime_local_nul_and_cap() {
        assert_eq!(strftime_local(b"ab\0%Y", 0), b"ab");
        assert_eq!(strftime_local(b"x%2000000Y", 0), b"x%2000000Y");
    }

    /// Time-zone dependent checks run in a child process with `TZ` set
    /// from the start: changing `TZ` inside this multi-threaded test
    /// process would race with other tests reading the environment.
    #[test]
    fn local_time_zones() {
        let exe = std::env::current_exe().expect("test binary path");
        for tz in ["UTC0", "EST5EDT,M3.2.0,M11.1.0", "<-0030>0:30", "IST-5:30"] {
            let out = std::process::Command::new(&exe)
                .args(["--exact", "proto::date::tests::tz_child", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env("TZ", tz)
                .output()
                .expect("run the test binary");
            assert!(
                out.status.success(),
                "TZ={tz}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // Make sure the child really ran the checks.
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "TZ={tz}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Run only by `local_time_zones` (ignored in a normal run because it
    /// needs `TZ` set in its environment before the process starts).
    #[test]
    #[ignore = "run by local_time_zones in a child process with TZ set"]
    fn tz_child() {
        let tz = std::env::var("TZ").expect("TZ set by the parent test");
        // 2026-03-05 08:40:00 UTC (a Thursday, day 5: zero padded in 3.12).
        let t = 1_772_700_000;
        let (date, dump) = match tz.as_str() {
            "UTC0" => ("Thu, 05 Mar 2026 08:40:00 +0000 (UTC)", "20260305/08."),
            "EST5EDT,M3.2.0,M11.1.0" => ("Thu, 05 Mar 2026 03:40:00 -0500 (EST)", "20260305/03."),
            "<-0030>0:30" => ("Thu, 05 Mar 2026 08:10:00 +0030 (-0030)", "20260305/08."),
            "IST-5:30" => ("Thu, 05 Mar 2026 14:10:00 +0530 (IST)", "20260305/14."),
            other => panic!("unexpected TZ {other}"),
        };
        assert_eq!(rfc2822(t), date);
        assert_eq!(strftime_local(b"%Y%m%d/%H.", t), dump.as_bytes());
        if tz == "EST5EDT,M3.2.0,M11.1.0" {
            // After the switch to daylight saving time (8 March 2026).
            assert_eq!(
                rfc2822(t + 7 * 86_400),
                "Thu, 12 Mar 2026 04:40:00 -0400 (EDT)"
            );
        }
        // A negative offset that crosses midnight backwards.
        if tz == "<-0030>0:30" {
            assert_eq!(
                rfc2822(1_772_668_800 + 60),
                "Wed, 04 Mar 2026 23:31:00 +0030 (-0030)"
            );
        }
    }
}
