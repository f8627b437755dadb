//! `-s`: log commands to syslog the way Postfix's sink does (docs/smtp-sink.md §15):
//! `openlog(basename(argv0), LOG_PID, LOG_MAIL)` and
//! `syslog(LOG_INFO, "%s %.100s", token, args)`.

use std::ffi::CString;
use std::sync::OnceLock;

/// Maximum number of argument bytes logged (`%.100s`).
const MAX_LOGGED_ARGS: usize = 100;

static IDENT: OnceLock<CString> = OnceLock::new();

/// Open the log with `ident` (the basename of argv[0]). Only the first call
/// counts; the ident must outlive every later `syslog` call, so it is kept
/// in a static.
pub(crate) fn open(ident: &str) {
    let ident = IDENT.get_or_init(|| {
        CString::new(ident.replace('\0', "?")).unwrap_or_else(|_| CString::default())
    });
    // SAFETY: `ident` is a valid NUL-terminated string that lives for the
    // rest of the process, as openlog(3) requires.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_MAIL) };
}

/// Log one command: its token as typed and the first 100 bytes of its
/// sanitised arguments.
pub(crate) fn log_command(token: &[u8], args: &[u8]) {
    let mut msg = Vec::with_capacity(token.len() + 1 + MAX_LOGGED_ARGS);
    msg.extend(token.iter().map(|&b| if b == 0 { b'?' } else { b }));
    msg.push(b' ');
    msg.extend_from_slice(&args[..args.len().min(MAX_LOGGED_ARGS)]);
    let Ok(msg) = CString::new(msg) else {
        return;
    };
    // SAFETY: constant "%s" format with one valid C string argument.
    unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr()) };
}
