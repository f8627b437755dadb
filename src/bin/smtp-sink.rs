//! `smtp-sink`: parse argv, run [`smtpstone::sink::Server`], map errors to
//! exit codes (0 after -M/-n, 1 on any fatal error). With `--track` or
//! `--policy`, SIGINT/SIGTERM print the tracking report and the policy's
//! accounting, then the process dies of the signal as Postfix's sink does.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use smtpstone::diag::{self, EXIT_FATAL};
use smtpstone::measure::sink_side::{die_of, StopSignals};
use smtpstone::sink::{usage, Command, Server, SinkConfig};

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    diag::set_prog(argv.first().map(|a| a.as_bytes()).unwrap_or(b"smtp-sink"));
    let code = match run(&argv) {
        Ok(()) => 0,
        Err(err) => {
            match err.downcast_ref::<diag::Error>() {
                Some(e) => diag::report(e, &usage()),
                None => diag::fatal_line(&format!("{err:#}")),
            }
            EXIT_FATAL
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run(argv: &[OsString]) -> anyhow::Result<()> {
    let config = match SinkConfig::from_args(argv)? {
        Command::Run(config) => *config,
        Command::Print(text) => {
            // As Postfix's usage output: a closed stdout is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            return Ok(());
        }
    };
    // One thread, like Postfix's single-process event loop: the cheapest in
    // CPU, and sessions never contend.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config)?;
        // Only a sink with an exit report catches the signals; otherwise
        // they kill as usual.
        let mut signals = match server.reports_at_exit() {
            true => Some(StopSignals::install().context("signal handlers")?),
            false => None,
        };
        let stop = async {
            match &mut signals {
                Some(signals) => signals.recv().await,
                None => std::future::pending().await,
            }
        };
        match server.run_until(stop).await? {
            Some(stop) => die_of(stop),
            None => Ok(()),
        }
    })
}
