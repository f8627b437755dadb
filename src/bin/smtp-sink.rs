//! `smtp-sink`: parse argv, run [`smtpstone::sink::Server`], map errors to
//! exit codes (0 after -M/-n, 1 on any fatal error).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use smtpstone::diag::{self, EXIT_FATAL};
use smtpstone::measure::sink_side::{die_of, StopSignals};
use smtpstone::sink::{self, Command, Server, SinkConfig};

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    diag::set_prog(argv.first().map(|a| a.as_bytes()).unwrap_or(b"smtp-sink"));
    let config = match SinkConfig::from_args(&argv) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Help(text)) | Ok(Command::Version(text)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            std::process::exit(0);
        }
        Err(err) => {
            diag::report(&err, &sink::usage());
            std::process::exit(EXIT_FATAL);
        }
    };
    match run(config) {
        Ok(()) => {
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        Err(err) => {
            match err.downcast_ref::<diag::Error>() {
                Some(e) => diag::report(e, &sink::usage()),
                None => diag::fatal_line(&format!("{err:#}")),
            }
            std::process::exit(EXIT_FATAL);
        }
    }
}

fn run(config: SinkConfig) -> anyhow::Result<()> {
    // One thread, like Postfix's single-process event loop: the cheapest in
    // CPU, and sessions never contend.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config)?;
        // --track (issue #6): SIGINT/SIGTERM print the tracking report, then
        // the process dies of the signal as Postfix's sink does.
        let Some(measure) = server.measure().filter(|m| m.tracks()) else {
            return server.run().await.map_err(anyhow::Error::from);
        };
        let mut signals = StopSignals::install().context("signal handlers")?;
        tokio::select! {
            result = server.run() => result.map_err(anyhow::Error::from),
            stop = signals.recv() => {
                if let Err(e) = measure.finish() {
                    diag::report(&e, &sink::usage());
                }
                die_of(stop)
            }
        }
    })?;
    Ok(())
}
