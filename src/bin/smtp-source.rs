//! `smtp-source`: parse argv, run [`smtpstone::source::run`], map errors to
//! Postfix's messages and exit codes.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use smtpstone::diag;
use smtpstone::source::{self, config, Command, SourceConfig};

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    diag::set_prog(argv.first().map(|a| a.as_bytes()).unwrap_or(b"smtp-source"));
    let code = match real_main(&argv) {
        Ok(()) => 0,
        Err(err) => {
            diag::report(&err, &config::usage());
            diag::EXIT_FATAL
        }
    };
    std::process::exit(code);
}

fn real_main(argv: &[OsString]) -> smtpstone::Result<()> {
    let config = match SourceConfig::parse_command(argv)? {
        Command::Print(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            return Ok(());
        }
        Command::Run(config) => *config,
    };
    // One thread: like Postfix, the sessions are event driven in a single
    // process, and a current-thread runtime has the lowest CPU cost.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| smtpstone::Error::fatal(format!("cannot start runtime: {e}")))?;
    runtime.block_on(source::run(config)).map(|_| ())
}
