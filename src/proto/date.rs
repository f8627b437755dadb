//! Dates as Postfix writes them (`mail_date`), and strftime for templates.
//!
//! OWNER: foundation helper. Signatures are the contract; bodies pending.

/// RFC 2822 date of `unix_secs` in local time, Postfix 3.12 style:
/// `%a, %d %b %Y %H:%M:%S ±hhmm (%Z)`, e.g. `Thu, 05 Mar 2026 08:40:00 +0000 (UTC)`.
pub fn rfc2822(unix_secs: i64) -> String {
    let _ = unix_secs;
    todo!("date::rfc2822")
}

/// `strftime(template)` in local time at `unix_secs`, C locale, no size limit.
pub fn strftime_local(template: &[u8], unix_secs: i64) -> Vec<u8> {
    let _ = (template, unix_secs);
    todo!("date::strftime_local")
}
