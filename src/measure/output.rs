//! Writing reports: stderr in one write, JSON to a file or stdout.

use std::io::Write as _;

use super::options::JsonOut;
use crate::diag::{errno_text, Error, Result};

/// Write `text` to `out`; `write PATH: ERRNO` on failure.
pub fn write_json(out: &JsonOut, text: &str) -> Result<()> {
    match out {
        JsonOut::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::fatal(format!("write stdout: {}", errno_text(&e))))
        }
        JsonOut::File(path) => std::fs::write(path, text)
            .map_err(|e| Error::fatal(format!("write {}: {}", path.display(), errno_text(&e)))),
    }
}

/// Print a multi-line text on stderr in one write.
pub fn print_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_name_the_file() {
        let out = JsonOut::File("/nonexistent-dir/r.json".into());
        assert_eq!(
            write_json(&out, "{}"),
            Err(Error::fatal(
                "write /nonexistent-dir/r.json: No such file or directory"
            ))
        );
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(errno_text(&e), "Permission denied");
    }
}
