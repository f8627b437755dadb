//! Interop with a real Postfix MTA: Postfix's smtp client relays
//! into our sink over STARTTLS (`smtp_tls_security_level = encrypt`, so a
//! failed TLS negotiation would defer the mail, not send it in clear), and
//! with SASL AUTH on top. Every message must arrive exactly once.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::mta::Mta;
use common::sink::{ours_in, shared_tempdir};
use common::*;

const MESSAGES: usize = 40;

/// The last `mesg=N` of a sink's `-c` counter output.
fn last_mesg(stdout: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stdout);
    text.rsplit('\r')
        .find_map(|line| line.rsplit("mesg=").next()?.trim().parse().ok())
}

/// Inject `MESSAGES` messages into the MTA with our smtp-source and wait
/// until its queue is empty; returns the MTA log.
fn send_through(mta: &Mta) -> String {
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "-s",
            "5",
            "-m",
            &MESSAGES.to_string(),
            "-l",
            "3000",
            "-f",
            "a@x.test",
            "-t",
            "b@y.test",
            &endpoint,
        ],
    );
    assert_eq!(out.code(), Some(0), "source failed: {}", out.stderr_text());
    assert!(
        mta.wait_queue_empty(Duration::from_secs(90)),
        "queue not drained: {}",
        mta.maillog()
    );
    mta.maillog()
}

#[test]
fn postfix_relays_over_starttls_into_our_sink() {
    let dir = shared_tempdir();
    let sink = ours_in(
        &["--tls-self-signed", "-h", "sink.smtpstone.test", "-c"],
        dir.path(),
    );
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let Some(mta) = Mta::start_or_skip(
        "postfix_relays_over_starttls_into_our_sink",
        &relay,
        &["smtp_tls_security_level = encrypt", "smtp_tls_loglevel = 1"],
    ) else {
        return;
    };
    let log = send_through(&mta);
    assert_eq!(
        log.matches("status=sent").count(),
        MESSAGES,
        "every message relayed once: {log}"
    );
    // Postfix's own words that the channel was TLS (our certificate is
    // self-signed, hence "Untrusted").
    assert!(
        log.contains("Untrusted TLS connection established to"),
        "no TLS in the Postfix log: {log}"
    );
    assert!(!log.contains("status=deferred"), "{log}");
    let out = sink.kill();
    assert_eq!(last_mesg(&out.stdout), Some(MESSAGES as u64), "{out:?}");
}

#[test]
fn postfix_relays_over_starttls_with_sasl_auth() {
    let plain = Path::new("/usr/lib/x86_64-linux-gnu/sasl2/libplain.so");
    if !plain.exists() {
        let why = "Cyrus SASL PLAIN module missing (apt-get install libsasl2-modules)";
        if postfix_required() {
            panic!("postfix_relays_over_starttls_with_sasl_auth: {why} and REQUIRE_POSTFIX=1");
        }
        eprintln!("\n*** SKIPPED postfix_relays_over_starttls_with_sasl_auth: {why} ***\n");
        return;
    }
    let dir = shared_tempdir();
    let sink = ours_in(
        &[
            "--tls-self-signed",
            "--auth-required",
            "-c",
            "-D",
            "all.dump",
        ],
        dir.path(),
    );
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let Some(mta) = Mta::start_or_skip(
        "postfix_relays_over_starttls_with_sasl_auth",
        &relay,
        &[
            "smtp_tls_security_level = encrypt",
            "smtp_tls_loglevel = 1",
            "smtp_sasl_auth_enable = yes",
            "smtp_sasl_password_maps = static:relayuser:relaypass",
            "smtp_sasl_security_options = noanonymous",
            "smtp_sasl_tls_security_options = noanonymous",
        ],
    ) else {
        return;
    };
    let log = send_through(&mta);
    assert_eq!(
        log.matches("status=sent").count(),
        MESSAGES,
        "every message relayed once: {log}"
    );
    assert!(log.contains("TLS connection established to"), "{log}");
    let out = sink.kill();
    assert_eq!(last_mesg(&out.stdout), Some(MESSAGES as u64), "{out:?}");
    let dump = std::fs::read_to_string(dir.path().join("all.dump")).expect("dump");
    assert_eq!(dump.matches("X-Auth-User: relayuser\n").count(), MESSAGES);
    assert_eq!(dump.matches("X-Client-Proto: ESMTPSA\n").count(), MESSAGES);
}
