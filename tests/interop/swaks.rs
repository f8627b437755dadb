//! swaks (a real, independent SMTP client) against our sink's extension
//! features: STARTTLS (`--tls`), implicit TLS (`--tlsc`), `--auth PLAIN`
//! and LOGIN, `--pipeline`, and `--protocol ESMTPSA` (EHLO + STARTTLS +
//! AUTH). Skips loudly when swaks or its TLS support is missing; fails
//! instead under `REQUIRE_POSTFIX=1` (CI installs swaks and
//! libnet-ssleay-perl).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::sink::{ours, Sink};

const SWAKS: &str = "/usr/bin/swaks";

/// swaks with TLS support, or a loud skip (a panic under REQUIRE_POSTFIX=1).
fn swaks_or_skip(test: &str) -> bool {
    let why = if !Path::new(SWAKS).exists() {
        Some("swaks not installed (apt-get install swaks)".to_string())
    } else {
        match Command::new(SWAKS).arg("--support").output() {
            Ok(out)
                if String::from_utf8_lossy(&out.stdout).contains("TLS supported")
                    || String::from_utf8_lossy(&out.stderr).contains("TLS supported") =>
            {
                None
            }
            Ok(out) => Some(format!(
                "swaks has no TLS support (apt-get install libnet-ssleay-perl): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Some(format!("cannot run swaks: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if common::postfix_required() => {
            panic!("{test}: {why} and REQUIRE_POSTFIX=1")
        }
        Some(why) => {
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            false
        }
    }
}

/// Run swaks against `sink` with `args`; returns (exit code, transcript).
fn swaks(sink: &Sink, args: &[&str]) -> (Option<i32>, String) {
    let port = sink.addr.port().to_string();
    let out = Command::new(SWAKS)
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--from",
            "sender@example.com",
            "--to",
            "rcpt@example.net",
            "--helo",
            "swaks.example",
            "--timeout",
            "20",
        ])
        .args(args)
        .output()
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn last_mesg(stdout: &str) -> Option<u64> {
    stdout
        .rsplit('\r')
        .find_map(|line| line.rsplit("mesg=").next()?.trim().parse().ok())
}

#[test]
fn swaks_starttls_auth_pipelining_esmtpsa() {
    if !swaks_or_skip("swaks_starttls_auth_pipelining_esmtpsa") {
        return;
    }
    let sink = ours(&["--tls-self-signed", "--auth-required", "-c"]);
    let auth = ["--auth-user", "alice", "--auth-password", "secret"];

    // STARTTLS (swaks --tls), with AUTH since the sink requires it.
    let (code, text) = swaks(&sink, &[&["--tls", "--auth", "PLAIN"][..], &auth].concat());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("-> STARTTLS") && text.contains("<-  220 2.0.0 Ready to start TLS"),
        "{text}"
    );
    assert!(
        text.contains("235 2.7.0 Authentication successful"),
        "{text}"
    );

    // AUTH PLAIN and LOGIN.
    for mech in ["PLAIN", "LOGIN"] {
        let (code, text) = swaks(&sink, &[&["--auth", mech][..], &auth].concat());
        assert_eq!(code, Some(0), "{mech}: {text}");
        assert!(
            text.contains("235 2.7.0 Authentication successful"),
            "{text}"
        );
    }

    // PIPELINING.
    let (code, text) = swaks(
        &sink,
        &[&["--pipeline", "--auth", "PLAIN"][..], &auth].concat(),
    );
    assert_eq!(code, Some(0), "{text}");

    // ESMTPSA: EHLO, STARTTLS, AUTH in one protocol setting.
    let (code, text) = swaks(
        &sink,
        &[&["--protocol", "ESMTPSA", "--auth", "PLAIN"][..], &auth].concat(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("STARTTLS") && text.contains("235 2.7.0"),
        "{text}"
    );

    // Without credentials the required AUTH refuses the mail.
    let (code, text) = swaks(&sink, &[]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("530 5.7.0 Authentication required"), "{text}");

    let out = sink.kill();
    assert_eq!(last_mesg(&out.stdout_text()), Some(5), "{out:?}");
}

#[test]
fn swaks_implicit_tls() {
    if !swaks_or_skip("swaks_implicit_tls") {
        return;
    }
    let sink = ours(&["--tls", "--tls-self-signed", "--auth", "-c"]);
    let (code, text) = swaks(
        &sink,
        &[
            "--tlsc",
            "--auth",
            "LOGIN",
            "--auth-user",
            "u",
            "--auth-password",
            "p",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("220 smtp-sink ESMTP"), "{text}");
    let out = sink.kill();
    assert_eq!(last_mesg(&out.stdout_text()), Some(1), "{out:?}");
}
