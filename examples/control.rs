//! The control experiment: the library's sink and the library's source in
//! one process, over loopback, with no Postfix involved.
//!
//! ```text
//! cargo run --release --example control -- -s 20 -l 5120 -m 10000
//! ```
//!
//! The arguments are smtp-source options; the endpoint is supplied here (an
//! ephemeral 127.0.0.1 port the sink is bound to). Prints messages, seconds
//! and messages per second.

use std::ffi::OsString;
use std::time::Instant;

use smtpstone::sink::{self, Server, SinkConfig};
use smtpstone::source::{self, SourceConfig};
use smtpstone::{diag, Error};

fn main() {
    diag::set_prog(b"control");
    if let Err(err) = real_main() {
        diag::report(&err, "control [smtp-source options]");
        std::process::exit(diag::EXIT_FATAL);
    }
}

fn real_main() -> smtpstone::Result<()> {
    let sink_argv: Vec<OsString> = ["smtp-sink", "127.0.0.1:0", "1000"]
        .iter()
        .map(OsString::from)
        .collect();
    let sink::Command::Run(mut sink_config) = SinkConfig::from_args(&sink_argv)? else {
        return Err(Error::fatal("unexpected sink command"));
    };
    // We are embedding the sink; it has no privileges to drop.
    sink_config.require_user_as_root = false;

    // Two workers: the sink and the source each get a core, as they would
    // as separate processes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::fatal(format!("cannot start runtime: {e}")))?;
    runtime.block_on(async move {
        let server = Server::bind(*sink_config)?;
        let addr = server
            .local_addr()
            .ok_or_else(|| Error::fatal("sink has no TCP address"))?;
        let sink_task = tokio::spawn(server.run());

        let mut argv: Vec<OsString> = vec![OsString::from("smtp-source")];
        argv.extend(std::env::args_os().skip(1));
        argv.push(OsString::from(addr.to_string()));
        let source::Command::Run(config) = SourceConfig::from_args(&argv)? else {
            return Err(smtpstone::Error::Usage);
        };
        let config = *config;

        let start = Instant::now();
        let summary = source::run(config).await;
        let seconds = start.elapsed().as_secs_f64();
        sink_task.abort();
        let summary = summary?;
        println!(
            "messages {}  seconds {:.3}  msg/s {:.0}",
            summary.messages,
            seconds,
            summary.messages as f64 / seconds.max(1e-9)
        );
        Ok(())
    })
}
