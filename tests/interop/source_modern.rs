//! Interop of smtp-source's extension options with real servers: a real
//! Postfix MTA on loopback (temporary configuration, high port, a test
//! certificate generated here with rcgen) relaying to our smtp-sink, and
//! our smtp-sink directly. Every message must be accounted for. Skips
//! loudly without Postfix; fails under `REQUIRE_POSTFIX=1`.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::mta::Mta;
use common::*;

/// The last `mesg=N` of a sink's `-c` counter output.
fn last_mesg(stdout: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stdout);
    text.rsplit('\r')
        .find_map(|line| line.rsplit("mesg=").next()?.trim().parse().ok())
}

/// Write a self-signed certificate and its key for `host` as PEM files.
fn test_cert(dir: &Path, host: &str) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// A Postfix MTA with STARTTLS (`may`), relaying to a fresh sink of ours.
fn postfix_with_tls(test: &str) -> Option<(Mta, RunningSink, tempfile::TempDir)> {
    let sink = start_sink(&our_sink(), "smtp-sink", &["-c"]);
    let relay = format!("[127.0.0.1]:{}", sink.addr.port());
    let dir = tempdir();
    let (cert, key) = test_cert(dir.path(), "mta.smtpstone.test");
    let lines = [
        // The chain-files form takes any key type (rcgen makes ECDSA keys,
        // which the older cert/key_file parameters treat as RSA).
        format!("smtpd_tls_chain_files = {key}, {cert}"),
        "smtpd_tls_security_level = may".to_string(),
        "smtpd_tls_loglevel = 1".to_string(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mta = Mta::start_or_skip(test, &relay, &refs)?;
    Some((mta, sink, dir))
}

/// `n` messages of `rcpts` recipients each: one `status=sent` per
/// recipient, `n` messages at the sink.
fn check_relayed(mta: &Mta, sink: RunningSink, n: usize, rcpts: usize) -> String {
    assert!(
        mta.wait_queue_empty(Duration::from_secs(60)),
        "queue not drained: {}",
        mta.maillog()
    );
    let log = mta.maillog();
    assert_eq!(
        log.matches("status=sent").count(),
        n * rcpts,
        "every message relayed once: {log}"
    );
    let sink_out = sink.proc.kill();
    assert_eq!(last_mesg(&sink_out.stdout), Some(n as u64), "{sink_out:?}");
    log
}

#[test]
fn ehlo_pipelining_starttls_into_postfix() {
    let test = "ehlo_pipelining_starttls_into_postfix";
    let Some((mta, sink, _dir)) = postfix_with_tls(test) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    // Connection reuse with chained groups, and a connection per message.
    for extra in [&["-d"][..], &[][..]] {
        let mut args = vec![
            "--ehlo",
            "--pipelining",
            "--starttls",
            "-s",
            "4",
            "-m",
            "40",
            "-r",
            "2",
            "-l",
            "3000",
            "-f",
            "a@x.test",
            "-t",
            "b@y.test",
            "-c",
        ];
        args.extend_from_slice(extra);
        args.push(&endpoint);
        let out = run(&our_source(), "smtp-source", &args);
        assert_eq!(
            out.code(),
            Some(0),
            "{extra:?}: {}\n{}",
            out.stderr_text(),
            mta.maillog()
        );
        assert_eq!(out.stderr_text(), "");
        assert!(out.stdout.ends_with(b"40\r\n"), "{:?}", out.stdout_text());
    }
    let log = check_relayed(&mta, sink, 80, 2);
    // Every connection of ours was TLS: 4 with -d, 40 without.
    let tls = log.matches("TLS connection established from").count();
    assert_eq!(tls, 44, "TLS on every connection: {log}");
}

#[test]
fn bdat_and_mail_parameters_into_postfix() {
    let test = "bdat_and_mail_parameters_into_postfix";
    let Some((mta, sink, _dir)) = postfix_with_tls(test) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", mta.addr.port());
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "--ehlo",
            "--pipelining",
            "--bdat=1000",
            "--8bitmime",
            "--size",
            "-s",
            "2",
            "-m",
            "20",
            "-d",
            "-l",
            "5000",
            "-f",
            "a@x.test",
            "-t",
            "b@y.test",
            &endpoint,
        ],
    );
    assert_eq!(
        out.code(),
        Some(0),
        "{}\n{}",
        out.stderr_text(),
        mta.maillog()
    );
    let log = check_relayed(&mta, sink, 20, 1);
    // smtpd's per-connection command counts: BDAT, never DATA, on both
    // connections (-s 2 -d).
    let disconnects: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("disconnect from") && l.contains("mail="))
        .collect();
    assert_eq!(disconnects.len(), 2, "{log}");
    for line in disconnects {
        assert!(
            line.contains(" bdat=") && !line.contains(" data="),
            "{line}"
        );
    }
}

#[test]
fn ehlo_pipelining_into_our_sink() {
    let sink = start_sink(&our_sink(), "smtp-sink", &["-c"]);
    let endpoint = format!("127.0.0.1:{}", sink.addr.port());
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "--ehlo",
            "--pipelining",
            "-s",
            "5",
            "-m",
            "500",
            "-d",
            "-r",
            "3",
            "-l",
            "2000",
            &endpoint,
        ],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let sink_out = sink.proc.kill();
    assert_eq!(last_mesg(&sink_out.stdout), Some(500), "{sink_out:?}");
}

/// Our source with every extension into our sink with TLS, CHUNKING,
/// AUTH and SMTPUTF8 on: every message accounted for, as dumps.
#[test]
fn every_extension_into_our_sink() {
    let dir = tempdir();
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    // The sink runs as nobody when we are root: it must write the dumps.
    if is_root() {
        let _ = std::process::Command::new("chown")
            .args(["nobody", dump.to_str().unwrap()])
            .status();
    }
    let pattern = format!("{}/m.", dump.display());
    let sink = start_sink(
        &our_sink(),
        "smtp-sink",
        &[
            "-c",
            "--tls-self-signed",
            "--auth-required",
            "--chunking",
            "--smtputf8",
            "-d",
            &pattern,
        ],
    );
    let endpoint = format!("127.0.0.1:{}", sink.addr.port());
    let out = run(
        &our_source(),
        "smtp-source",
        [
            "--starttls",
            "--tls-resume",
            "--pipelining",
            "--bdat=700",
            "--smtputf8",
            "--auth",
            "LOGIN",
            "--auth-user",
            "user",
            "--auth-password",
            "secret",
            "-s",
            "3",
            "-m",
            "30",
            "-d",
            "-l",
            "2000",
            "-f",
            "ünï@x.test",
            &endpoint,
        ],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let sink_out = sink.proc.kill();
    assert_eq!(last_mesg(&sink_out.stdout), Some(30), "{sink_out:?}");
    let files = std::fs::read_dir(&dump).unwrap().count();
    assert_eq!(files, 30, "one dump per message");
}
