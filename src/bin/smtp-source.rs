//! `smtp-source`: parse argv, run [`smtpstone::source::run_until`], map
//! errors to Postfix's messages and exit codes.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use smtpstone::diag;
use smtpstone::source::{self, config, Command, SourceConfig};

fn main() {
    let argv: Vec<_> = std::env::args_os().collect();
    diag::set_prog(argv.first().map(|a| a.as_bytes()).unwrap_or(b"smtp-source"));
    let result = match SourceConfig::from_args(&argv) {
        Ok(Command::Print(text)) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
        Ok(Command::Run(config)) => run(*config),
        Err(err) => Err(err.into()),
    };
    if let Err(err) = result {
        match err.downcast_ref::<diag::Error>() {
            Some(e) => diag::report(e, &config::usage()),
            None => diag::fatal_line(&format!("{err:#}")),
        }
        std::process::exit(diag::EXIT_FATAL);
    }
}

fn run(config: SourceConfig) -> anyhow::Result<()> {
    // One thread: like Postfix, the sessions are event driven in a single
    // process, and a current-thread runtime has the lowest CPU cost.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    // No signal handlers: SIGINT and SIGTERM end the process with their
    // default action, as they end Postfix's smtp-source.
    runtime.block_on(source::run_until(config, std::future::pending()))?;
    Ok(())
}
