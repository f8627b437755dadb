//! smtp-sink --policy and --seed: the engine's decisions on the wire
//! (docs/policy.md).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sink::{ours, ours_fails};
use common::Client;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/policies")
        .join(name)
}

/// A policy file in a temporary directory (kept alive with it).
fn policy_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = common::sink::shared_tempdir();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    (dir, path.display().to_string())
}

/// Send one command line, read its reply.
fn ask(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\n").as_bytes());
    String::from_utf8_lossy(&c.reply()).into_owned()
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or("")
}

/// The triggers decide at RCPT in every example policy, whatever its
/// shares: sessions refused earlier by a random outcome are retried.
#[test]
fn triggers_in_every_example() {
    for file in [
        "gmail.toml",
        "microsoft.toml",
        "yahoo.toml",
        "relay-test.toml",
    ] {
        let path = example(file).display().to_string();
        let sink = ours(&["--policy", &path]);
        let mut checked = 0;
        for attempt in 0..20 {
            let mut c = sink.client();
            if !c.reply().starts_with(b"220") {
                continue;
            }
            ask(&mut c, "EHLO client.example");
            if !ask(&mut c, &format!("MAIL FROM:<s{attempt}@example.org>")).starts_with("250") {
                continue;
            }
            for _ in 0..3 {
                let d = ask(&mut c, "RCPT TO:<defer@example.com>");
                assert!(code(&d).starts_with('4'), "{file}: defer: {d}");
                let b = ask(&mut c, "RCPT TO:<bounce@example.com>");
                assert!(code(&b).starts_with('5'), "{file}: bounce: {b}");
            }
            let g = ask(&mut c, "RCPT TO:<greylist+first@example.com>");
            assert!(code(&g).starts_with('4'), "{file}: greylist: {g}");
            checked += 1;
            if checked == 3 {
                break;
            }
        }
        assert!(checked > 0, "{file}: no session reached RCPT");
        sink.kill();
    }
}

const SHARES: &str = r#"
[[default.rcpt]]
outcome = "defer"
probability = 0.3
replies = ["451 4.3.0 one", "452 4.3.1 two"]
[[default.rcpt]]
outcome = "bounce"
probability = 0.2
replies = ["550 5.1.1 three", "553 5.1.3 four"]
"#;

/// One session's replies to 100 recipients.
fn seeded_run(path: &str, seed: &str) -> String {
    let sink = ours(&["--policy", path, "--seed", seed]);
    let mut c = sink.client();
    let mut all = String::from_utf8_lossy(&c.reply()).into_owned();
    all += &ask(&mut c, "EHLO x");
    all += &ask(&mut c, "MAIL FROM:<a@example.org>");
    for i in 0..100 {
        all += &ask(&mut c, &format!("RCPT TO:<u{i}@example.com>"));
    }
    sink.kill();
    all
}

#[test]
fn seed_repeats_a_run() {
    let (_dir, path) = policy_file(SHARES);
    let first = seeded_run(&path, "12345");
    let second = seeded_run(&path, "12345");
    assert_eq!(first, second);
    for text in ["250 2.1.5 Ok", "one", "two", "three", "four"] {
        assert!(first.contains(text), "{text} missing: {first}");
    }
}

/// A bad file is reported before binding: a UNIX-domain endpoint in a
/// missing directory would fail otherwise.
#[test]
fn bad_policy_file_fails_before_binding() {
    let (_dir, path) = policy_file("[[default.rcpt]]\noutcome = \"defer\"\nprobability = 2.0\n");
    let out = ours_fails(&["--policy", &path, "unix:/nonexistent/dir/sock", "10"]);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr_text();
    assert!(
        err.starts_with(&format!("smtp-sink: fatal: {path}:3:")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = ours_fails(&["--seed", "x1", "--policy", &path, "127.0.0.1:0", "10"]);
    assert_eq!(
        out.stderr_text(),
        "smtp-sink: fatal: bad --seed value: x1\n"
    );
}

#[test]
fn greylist_retry_after_the_delay_is_accepted() {
    let (_dir, path) = policy_file("[greylist]\nenabled = true\ndelay = \"2s\"\n");
    let sink = ours(&["--policy", &path]);
    let mut c = sink.client();
    c.reply();
    ask(&mut c, "MAIL FROM:<a@example.org>");
    let first = ask(&mut c, "RCPT TO:<b@example.com>");
    assert!(first.starts_with("450 4.2.0"), "{first}");
    let early = ask(&mut c, "RCPT TO:<b@example.com>");
    assert!(early.starts_with("450 4.2.0"), "{early}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ask(&mut c, "RCPT TO:<b@example.com>"), "250 2.1.5 Ok\r\n");
    sink.kill();
}

#[test]
fn connection_limit_refuses_at_connect() {
    let (_dir, path) = policy_file(
        "[limits]\nconnections_per_client = 1\n\
         connection_reply = \"421 4.7.0 Too many connections\"\n",
    );
    let sink = ours(&["--policy", &path]);
    let mut first = sink.client();
    assert!(first.reply().starts_with(b"220"));
    let mut second = sink.client();
    assert_eq!(second.read_to_eof(), b"421 4.7.0 Too many connections\r\n");
    // The slot is released when the first session ends.
    first.send(b"QUIT\r\n");
    first.read_to_eof();
    let mut third = sink.client();
    let mut greeting = Vec::new();
    for _ in 0..50 {
        greeting = third.reply();
        if greeting.starts_with(b"220") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        third = sink.client();
    }
    assert!(greeting.starts_with(b"220"), "{greeting:?}");
    sink.kill();
}

#[test]
fn refused_greeting_serves_only_quit() {
    let (_dir, path) = policy_file(
        "[[default.connect]]\noutcome = \"bounce\"\nprobability = 1.0\n\
         replies = [\"554 5.7.1 No service for you\"]\n",
    );
    let sink = ours(&["--policy", &path]);
    let mut c = sink.client();
    assert_eq!(c.reply(), b"554 5.7.1 No service for you\r\n");
    assert!(ask(&mut c, "EHLO x").starts_with("503 5.5.1"));
    assert!(ask(&mut c, "MAIL FROM:<a>").starts_with("503 5.5.1"));
    c.send(b"QUIT\r\n");
    assert_eq!(c.read_to_eof(), b"221 Bye\r\n");
    sink.kill();
}

/// The "one byte a second" client: the idle timer alone never ends it,
/// the policy's command deadline does, with its 421.
#[test]
fn command_deadline_ends_a_slow_client() {
    let (_dir, path) = policy_file("[deadlines]\ncommand = \"1s\"\n");
    let sink = ours(&["--policy", &path]);
    let mut c = sink.client();
    c.reply();
    let mut got = Vec::new();
    for &b in b"NOOP NOOP NOOP\r\n" {
        if std::io::Write::write(&mut c.stream, &[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        c.stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        if let Ok(n) = std::io::Read::read(&mut c.stream, &mut buf) {
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                break;
            }
        }
    }
    c.stream
        .set_read_timeout(Some(common::TIMEOUT))
        .expect("timeout");
    got.extend_from_slice(&c.read_to_eof());
    assert_eq!(
        String::from_utf8_lossy(&got),
        "421 4.4.2 Error: timeout exceeded\r\n"
    );
    sink.kill();
}

/// A rejected message is answered with the policy's reply at the end of
/// DATA; the accounting line appears at exit.
#[test]
fn message_end_outcome_and_exit_report() {
    let (_dir, path) = policy_file(
        "[[rule]]\nname = \"spam\"\nsender = [\"spam@*\"]\n\
         [[rule.data]]\noutcome = \"bounce\"\nprobability = 1.0\n\
         replies = [\"550 5.7.1 Message rejected\"]\n",
    );
    let json = _dir.path().join("report.json");
    let json_arg = json.display().to_string();
    let sink = ours(&["--policy", &path, "-M", "2", "--track", "--json", &json_arg]);
    let mut c = sink.client();
    c.reply();
    ask(&mut c, "MAIL FROM:<spam@example.org>");
    ask(&mut c, "RCPT TO:<b@example.com>");
    ask(&mut c, "DATA");
    assert_eq!(ask(&mut c, "x\r\n."), "550 5.7.1 Message rejected\r\n");
    ask(&mut c, "MAIL FROM:<ok@example.org>");
    ask(&mut c, "RCPT TO:<b@example.com>");
    ask(&mut c, "DATA");
    assert_eq!(ask(&mut c, "x\r\n."), "250 2.0.0 Ok\r\n");
    let out = sink.finish();
    assert_eq!(out.code(), Some(0));
    let err = out.stderr_text();
    assert!(
        err.contains("policy: rule=spam accepted=0 deferred=0 bounced=1 "),
        "{err}"
    );
    assert!(err.contains("policy: rule=default accepted=1 "), "{err}");
    let doc = common::measure::read_json(&json);
    assert_eq!(doc["policy"]["spam"]["bounced"], 1, "{doc}");
    assert_eq!(doc["policy"]["default"]["accepted"], 1, "{doc}");
    // The refused message is not counted as received.
    assert_eq!(doc["messages"], 1, "{doc}");
}

/// `smtp-source --rate` above a per-address message limit: the excess gets
/// the configured reply at MAIL. A token bucket lets `burst` through at
/// once and then `count` per interval, so at most burst + rate × elapsed
/// are accepted; a source running behind its schedule sends in bursts that
/// find the bucket capped, hence the lower tolerance.
#[test]
fn source_rate_above_the_client_limit() {
    let (dir, path) = policy_file(
        "[limits.client_messages]\ncount = 10\ninterval = \"1s\"\nburst = 5\n\
         reply = \"451 4.7.1 Too many messages, slow down\"\n",
    );
    let sink = ours(&["--policy", &path]);
    let json = dir.path().join("source.json");
    let out = common::run(
        &common::our_source(),
        "smtp-source",
        [
            "-A",
            "--rate",
            "40",
            "-m",
            "80",
            "-s",
            "4",
            "--json",
            json.to_str().expect("utf-8 path"),
            &sink.addr.to_string(),
        ],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let doc = common::measure::read_json(&json);
    let accepted = doc["counters"]["accepted"].as_u64().expect("accepted");
    let limited = doc["replies"]["mail"]["451"].as_u64().unwrap_or(0);
    assert_eq!(accepted + limited, 80, "{doc}");
    let elapsed = doc["elapsed_secs"].as_f64().expect("elapsed");
    let expected = (5.0 + 10.0 * elapsed).min(80.0);
    assert!(accepted as f64 <= expected + 1.0, "{accepted} > {expected}");
    assert!(
        accepted as f64 >= expected * 0.6,
        "{accepted} << {expected}"
    );
    assert!(
        out.stderr_text()
            .lines()
            .all(|l| l.ends_with("sender rejected: 451 4.7.1 Too many messages, slow down")),
        "{}",
        out.stderr_text()
    );
    sink.kill();
}
