//! Postfix-style diagnostics on stderr and the library's error type.
//!
//! Every line is `PROG: TEXT`, `PROG: warning: TEXT`, `PROG: error: TEXT` or
//! `PROG: fatal: TEXT`, where PROG is `argv[0]` exactly as invoked. As in
//! Postfix's `msg_vstream`, every byte outside printable ASCII is shown as `?`.
//!
//! Exit codes (both tools): 0 success, 1 any fatal error (usage, bad option,
//! start-up failure, protocol failure). Unlike Postfix we do not sleep one
//! second before a fatal exit (deviations D1/S1, docs/deviations.md).

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

static PROG: OnceLock<String> = OnceLock::new();

/// Record `argv[0]` for every later diagnostic. Only the first call counts.
pub fn set_prog(argv0: &[u8]) {
    let _ = PROG.set(sanitize(argv0));
}

/// The program name used in diagnostics (`argv[0]` as invoked).
pub fn prog() -> &'static str {
    PROG.get().map(String::as_str).unwrap_or("smtpstone")
}

/// `strerror(errno)` text without Rust's ` (os error N)` suffix, as
/// Postfix's `%m` prints it.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The text of an I/O error as `%m` prints it: `strerror` for an OS error,
/// the error's own text otherwise.
pub fn errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => strerror(code),
        None => err.to_string(),
    }
}

/// A path as diagnostics show it: one `?` per byte outside printable ASCII.
pub fn show_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    sanitize(path.as_os_str().as_bytes())
}

/// Replace every byte outside printable ASCII (0x20..=0x7e) with `?`.
pub fn sanitize(bytes: &[u8]) -> String {
    // Every byte of the result is printable ASCII, so this cannot fail.
    String::from_utf8(sanitize_bytes(bytes)).unwrap_or_default()
}

/// [`sanitize`] as bytes, for output that is not a diagnostic line (dump
/// headers).
pub fn sanitize_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| if (0x20..=0x7e).contains(&b) { b } else { b'?' })
        .collect()
}

fn emit(kind: &str, text: &str) {
    let line = format!("{}: {}{}\n", prog(), kind, sanitize(text.as_bytes()));
    // One write per line so that lines from concurrent tasks never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `PROG: TEXT` (verbose/info output).
pub fn info(text: &str) {
    emit("", text);
}

/// `PROG: warning: TEXT`.
pub fn warning(text: &str) {
    emit("warning: ", text);
}

/// `PROG: error: TEXT`.
pub fn error(text: &str) {
    emit("error: ", text);
}

/// `PROG: fatal: TEXT` (the caller decides how to exit).
pub fn fatal_line(text: &str) {
    emit("fatal: ", text);
}

/// Errors that end a tool run. The binaries print them with [`report`] and
/// exit with status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Print the tool's usage line as a fatal error.
    Usage,
    /// `PROG: fatal: TEXT`.
    Fatal(String),
}

impl Error {
    /// Shorthand for [`Error::Fatal`].
    pub fn fatal(text: impl Into<String>) -> Self {
        Error::Fatal(text.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => f.write_str("usage error"),
            Error::Fatal(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Error {}

/// Library-wide result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Exit status for a fatal error (both tools, as Postfix).
pub const EXIT_FATAL: i32 = 1;

/// Print `err` the Postfix way. `usage` is the tool's usage text after
/// `usage: ` (it already contains PROG where Postfix puts it).
pub fn report(err: &Error, usage: &str) {
    match err {
        Error::Usage => fatal_line(&format!("usage: {usage}")),
        Error::Fatal(text) => fatal_line(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain text", "plain text"),
            (b"tab\there", "tab?here"),
            (b"crlf\r\n", "crlf??"),
            (b"\x00\x7f\x80\xff~ ", "????~ "),
            (b"", ""),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn strerror_has_no_rust_suffix() {
        assert_eq!(strerror(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }

    #[test]
    fn errno_text_of_os_and_other_errors() {
        let os = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(errno_text(&os), "Permission denied");
        let other = std::io::Error::other("custom");
        assert_eq!(errno_text(&other), "custom");
    }

    #[test]
    fn show_path_one_mark_per_invalid_byte() {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\xffb"));
        assert_eq!(show_path(path), "/tmp/a?b");
    }

    #[test]
    fn error_display() {
        assert_eq!(
            Error::fatal("bad session count: 0").to_string(),
            "bad session count: 0"
        );
        assert_eq!(Error::Usage.to_string(), "usage error");
    }
}
