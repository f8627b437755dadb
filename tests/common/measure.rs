//! Helpers for the measurement tests: ending a sink with a
//! signal, reading reports.
#![allow(dead_code)]

use super::{Output, Proc, TIMEOUT};

/// Send `signal` to `proc`, then wait (bounded) and collect its output.
pub fn signal_and_finish(proc: Proc, signal: nix::sys::signal::Signal) -> Output {
    let pid = nix::unistd::Pid::from_raw(proc.pid() as i32);
    nix::sys::signal::kill(pid, signal).expect("kill");
    proc.finish(TIMEOUT)
}

/// The signal that ended a process, if any.
pub fn killed_by(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.and_then(|s| s.signal())
}

/// The first line of `text` that starts with `prefix`.
pub fn line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// Parse a JSON file.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}
