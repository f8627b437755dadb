//! End to end through a real Postfix MTA on loopback: our smtp-source sends
//! into Postfix's smtpd, Postfix relays every message to our smtp-sink.

use crate::common;

use common::mta::Mta;
use common::*;
use std::time::Duration;

/// The last `mesg=N` of a sink's `-c` counter output.
fn last_mesg(stdout: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stdout);
    text.rsplit('\r')
        .find_map(|line| line.rsplit("mesg=").next()?.trim().parse().ok())
}

#[test]
fn source_into_postfix_relays_every_message_to_our_sink() {
    let sink = start_sink(&our_sink(), "smtp-sink", &["-c"]);
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let Some(mta) = Mta::start_or_skip(
        "source_into_postfix_relays_every_message_to_our_sink",
        &relay,
        &[],
    ) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "-s", "10", "-m", "100", "-l", "2000", "-f", "a@x.test", "-t", "b@y.test", &endpoint,
        ],
    );
    assert_eq!(out.code(), Some(0), "source failed: {}", out.stderr_text());
    assert!(
        mta.wait_queue_empty(Duration::from_secs(60)),
        "queue not drained: {}",
        mta.maillog()
    );
    let log = mta.maillog();
    assert_eq!(
        log.matches("status=sent").count(),
        100,
        "every message relayed once: {log}"
    );
    let sink_out = sink.proc.kill();
    assert_eq!(last_mesg(&sink_out.stdout), Some(100), "{sink_out:?}");
}

#[test]
fn counter_parser() {
    assert_eq!(
        last_mesg(b"sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=2\r"),
        Some(2)
    );
    assert_eq!(last_mesg(b""), None);
}
