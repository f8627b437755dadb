//! smtp-source's measurement options against our sink:
//! `--report`, `--json`, `--merge`, `--rate`, `--duration`, `--progress`,
//! `--track` on the wire. Counts are asserted exactly; times only as coarse
//! lower bounds.

use crate::common;

use common::measure::*;
use common::sink::{ours, shared_tempdir};
use common::*;
use std::time::{Duration, Instant};

fn source(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

fn endpoint(addr: std::net::SocketAddr) -> String {
    addr.to_string()
}

#[test]
fn report_counts_replies_and_latency_rows() {
    let sink = ours(&[]);
    let ep = endpoint(sink.addr);
    let out = source(&["-s", "2", "-m", "10", "-l", "100", "--report", &ep]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(out.stdout.is_empty(), "the report goes to stderr");
    let text = out.stderr_text();
    assert!(text.starts_with("smtp-source report: run "), "{text}");
    for line in [
        "  connections  10 established, 0 failed attempts",
        "  messages     10 attempted, 10 accepted, 0 rejected, 0 failed",
        "  recipients   10 sent, 10 accepted",
        "    banner       220 x10",
        "    HELO         250 x10",
        "    MAIL         250 x10",
        "    RCPT         250 x10",
        "    DATA         354 x10",
        "    end of data  250 x10",
        "    QUIT         221 x10",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    assert!(line_starting(&text, "  elapsed ").is_some_and(|l| l.ends_with(", 2 sessions")));
    for phase in [
        "connect",
        "banner",
        "HELO",
        "MAIL",
        "RCPT",
        "DATA",
        "end of data",
        "QUIT",
        "message",
    ] {
        let row = text
            .lines()
            .find(|l| {
                l.strip_prefix("    ")
                    .and_then(|r| r.strip_prefix(phase))
                    .is_some_and(|r| r.trim_start().starts_with("10 "))
            })
            .unwrap_or_else(|| panic!("no latency row for {phase}:\n{text}"));
        assert_eq!(
            row.split_whitespace().count(),
            phase.split(' ').count() + 6,
            "{row}"
        );
    }
    // Bytes: commands + headers + 100-byte body for each message.
    let bytes: u64 = line_starting(&text, "  throughput ")
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("bytes sent");
    assert!(bytes > 10 * 102, "{bytes}");
}

#[test]
fn report_of_rejections_under_a() {
    let sink = ours(&["-f", "rcpt"]);
    let out = source(&["-A", "-m", "3", "--report", &endpoint(sink.addr)]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let text = out.stderr_text();
    assert!(
        text.contains("  messages     3 attempted, 0 accepted, 3 rejected, 0 failed\n"),
        "{text}"
    );
    assert!(text.contains("    RCPT         500 x3\n"), "{text}");
    assert!(text.contains("    RSET         250 x3\n"), "{text}");
    // The -A warnings come first, exactly as without --report.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("smtp-source: warning: recipient rejected: 500"))
            .count(),
        3
    );
}

#[test]
fn report_after_a_fatal_error_is_marked_incomplete() {
    let sink = ours(&["-f", "mail"]);
    let out = source(&["-m", "2", "--report", &endpoint(sink.addr)]);
    assert_eq!(out.code(), Some(1));
    let text = out.stderr_text();
    assert!(
        text.contains("  INCOMPLETE: ended by a fatal error\n"),
        "{text}"
    );
    assert!(text.contains("    MAIL         500 x1\n"), "{text}");
    assert!(
        text.ends_with("smtp-source: fatal: sender rejected: 500 5.3.0 Error: command failed\n"),
        "the fatal line stays last:\n{text}"
    );
}

#[test]
fn json_reports_merge_across_runs() {
    let dir = tempdir();
    let sink = ours(&["-L"]);
    let ep = endpoint(sink.addr);
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let out = source(&[
        "-L",
        "-m",
        "4",
        "-r",
        "2",
        "--json",
        a.to_str().unwrap(),
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(out.stderr.is_empty(), "--json alone prints nothing");
    let out = source(&[
        "-L",
        "-s",
        "3",
        "-m",
        "6",
        "--json",
        b.to_str().unwrap(),
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let ja = read_json(&a);
    assert_eq!(ja["format"], "smtpstone-source-report/1");
    assert_eq!(ja["protocol"], "LMTP");
    assert_eq!(ja["counters"]["accepted"], 4);
    assert_eq!(ja["counters"]["rcpts_sent"], 8);
    assert_eq!(
        ja["replies"]["dot"]["250"], 8,
        "one LMTP reply per recipient"
    );
    assert_eq!(ja["latency_us"]["message"]["count"], 4);
    assert!(ja["latency_us"]["connect"]["hdr"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));

    // Human-readable merge on stdout.
    let out = source(&["--merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let text = out.stdout_text();
    assert!(text.starts_with("smtp-source report: 2 runs ("), "{text}");
    assert!(
        text.contains("  messages     10 attempted, 10 accepted, 0 rejected, 0 failed\n"),
        "{text}"
    );
    assert!(text.contains("    end of data  250 x14\n"), "{text}");

    // JSON merge on stdout: the histograms merged (counts add up).
    let out = source(&[
        "--merge",
        "--json",
        "-",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("merged json");
    assert_eq!(m["runs"], 2);
    assert_eq!(m["counters"]["sessions"], 4);
    assert_eq!(m["latency_us"]["message"]["count"], 10);
    assert_eq!(m["latency_us"]["rcpt"]["count"], 14);
    assert_eq!(
        m["run_ids"],
        serde_json::json!([ja["run_ids"][0], read_json(&b)["run_ids"][0]])
    );
}

#[test]
fn option_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-c", "--json", "-", "h"],
            "smtp-source: fatal: --json - cannot be used with -c\n",
        ),
        (
            &["--rate", "0", "h"],
            "smtp-source: fatal: bad --rate value: 0\n",
        ),
        (
            &["--duration", "soon", "h"],
            "smtp-source: fatal: bad --duration value: soon\n",
        ),
        (
            &["--merge"],
            "smtp-source: fatal: --merge needs one or more report files\n",
        ),
        (
            &["--progress=sometimes", "h"],
            "smtp-source: fatal: bad --progress value: sometimes (only --progress=always)\n",
        ),
    ];
    for (args, want) in cases {
        let out = source(args);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert_eq!(out.stderr_text(), *want, "{args:?}");
    }
    let dir = tempdir();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"x\"}").expect("write");
    let out = source(&["--merge", bad.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().contains("bad.json: bad report: "),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn open_loop_rate_with_duration_sends_the_schedule() {
    let sink = ours(&["-c"]);
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let started = Instant::now();
    let out = source(&[
        "-s",
        "4",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
        &endpoint(sink.addr),
    ]);
    let took = started.elapsed();
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    // Messages 0..39 are due before 1 s; each is sent, late or not.
    let r = read_json(&json);
    assert_eq!(r["counters"]["attempted"], 40);
    assert_eq!(r["counters"]["accepted"], 40);
    assert_eq!(r["target_rate"], 40.0);
    // The last message was due at 975 ms.
    assert!(took >= Duration::from_millis(975), "{took:?}");
    assert!(r["elapsed_secs"].as_f64().is_some_and(|e| e >= 0.975));
}

#[test]
fn rate_with_a_message_count() {
    let sink = ours(&[]);
    let started = Instant::now();
    let out = source(&["-m", "5", "--rate", "10", "--report", &endpoint(sink.addr)]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(started.elapsed() >= Duration::from_millis(400));
    let text = out.stderr_text();
    assert!(
        text.contains("  messages     5 attempted, 5 accepted, 0 rejected, 0 failed\n"),
        "{text}"
    );
    assert!(text.contains(", target 10 msg/s\n"), "{text}");
}

#[test]
fn duration_alone_ends_a_closed_loop_run_and_quits_kept_connections() {
    let sink = ours(&[]);
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let started = Instant::now();
    let out = source(&[
        "-s",
        "2",
        "-d",
        "-w",
        "1",
        "--duration",
        "1500ms",
        "--json",
        json.to_str().unwrap(),
        &endpoint(sink.addr),
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let r = read_json(&json);
    // Each session: messages at 0 s and 1 s (-w 1), then the run is over.
    assert_eq!(r["counters"]["accepted"], 4);
    assert_eq!(
        r["counters"]["connects"], 2,
        "-d kept one connection per session"
    );
    assert_eq!(
        r["replies"]["quit"]["221"], 2,
        "kept connections end with QUIT"
    );
}

#[test]
fn progress_always_prints_status_lines_when_not_a_terminal() {
    let sink = ours(&[]);
    let out = source(&[
        "-w",
        "1",
        "--duration",
        "2500ms",
        "--progress=always",
        &endpoint(sink.addr),
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let text = out.stderr_text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" msg/s, errors "))
        .collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(lines[0].starts_with("smtp-source: 1.0s sent "), "{text}");
    assert!(lines.iter().all(|l| l.contains(", p99 ")), "{text}");
    // Not a terminal: plain lines, no carriage returns or escapes.
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    // --progress without "always" is off when stderr is a pipe.
    let out = source(&["-m", "2", "--progress", &endpoint(sink.addr)]);
    assert_eq!(out.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", out.stderr_text());
}

#[test]
fn track_stamps_headers_in_every_mode() {
    let dir = shared_tempdir();
    let file = dir.path().join("msg.txt");
    std::fs::write(&file, "Subject: from a file\n\nbody\n").expect("write");
    let file = file.to_str().unwrap().to_string();
    for (mode, extra) in [
        ("headers", vec![]),
        ("-o", vec!["-o"]),
        ("-F", vec!["-F", file.as_str()]),
    ] {
        let dump = dir.path().join(format!("d{}.", mode.replace('-', "")));
        let sink = ours(&["-d", dump.to_str().unwrap()]);
        let mut args = vec!["-m", "2", "-d", "--track", "--json", "-"];
        args.extend(&extra);
        let ep = endpoint(sink.addr);
        args.push(&ep);
        let out = source(&args);
        assert_eq!(out.code(), Some(0), "{mode}: {}", out.stderr_text());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let run = report["run_ids"][0].as_str().expect("run id").to_string();
        drop(sink);
        let mut dumps: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("d{}.", mode.replace('-', "")))
            })
            .map(|e| std::fs::read_to_string(e.path()).expect("dump"))
            .collect();
        dumps.sort();
        assert_eq!(dumps.len(), 2, "{mode}");
        let mut seqs = Vec::new();
        for d in &dumps {
            assert!(
                d.contains(&format!("\nX-Smtpstone-Run: {run}\n")),
                "{mode}: {d}"
            );
            let seq = d
                .lines()
                .find_map(|l| l.strip_prefix("X-Smtpstone-Seq: "))
                .expect("seq");
            seqs.push(seq.to_string());
            let sent: u64 = d
                .lines()
                .find_map(|l| l.strip_prefix("X-Smtpstone-Sent: "))
                .and_then(|v| v.parse().ok())
                .expect("sent stamp");
            assert!(sent > 1_700_000_000_000_000, "{sent}");
            // The stamps are in the header section: before the first empty line.
            let headers = d.split("\n\n").next().unwrap_or("");
            assert!(headers.contains("X-Smtpstone-Seq"), "{mode}: {d}");
        }
        seqs.sort();
        assert_eq!(seqs, ["0", "1"], "{mode}");
        match mode {
            "headers" => assert!(dumps[0].contains("\nMessage-Id: <"), "{}", dumps[0]),
            "-o" => assert!(dumps[0].contains("\n\nLa de da de da 1.\n"), "{}", dumps[0]),
            _ => assert!(
                dumps[0].contains("\nSubject: from a file\n\nbody\n"),
                "{}",
                dumps[0]
            ),
        }
    }
}

#[test]
fn help_lists_the_measurement_options() {
    let out = source(&["--help"]);
    assert_eq!(out.code(), Some(0));
    let text = out.stdout_text();
    for opt in [
        "--report",
        "--json <PATH>",
        "--merge",
        "--rate <N>",
        "--duration <D>",
        "--progress",
        "--track",
    ] {
        assert!(text.contains(opt), "{opt} missing:\n{text}");
    }
}

#[test]
fn measurements_on_the_esmtp_path() {
    let dir = shared_tempdir();
    let json = dir.path().join("t.json");
    let sink = ours(&["--track", "--json", json.to_str().unwrap()]);
    let ep = endpoint(sink.addr);
    // Pipelined, with chaining: every reply is counted per phase.
    let out = source(&[
        "--ehlo",
        "--pipelining",
        "-s",
        "2",
        "-d",
        "-m",
        "10",
        "--track",
        "--report",
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let text = out.stderr_text();
    for line in [
        "  messages     10 attempted, 10 accepted, 0 rejected, 0 failed",
        "    HELO         250 x2",
        "    MAIL         250 x10",
        "    end of data  250 x10",
        "    QUIT         221 x2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    // Under --rate the messages are paced (no chaining), and all are sent.
    let out = source(&[
        "--ehlo",
        "--pipelining",
        "-d",
        "--rate",
        "20",
        "--duration",
        "500ms",
        "--track",
        "--report",
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(
        out.stderr_text()
            .contains("  messages     10 attempted, 10 accepted, 0 rejected, 0 failed\n"),
        "{}",
        out.stderr_text()
    );
    let out = signal_and_finish(sink.proc, nix::sys::signal::Signal::SIGTERM);
    let text = out.stderr_text();
    assert!(
        text.starts_with("smtp-sink tracking report: 20 messages, 0 without tracking headers\n"),
        "{text}"
    );
    assert_eq!(
        text.matches(", duplicates 0, gaps 0, highest seq 9\n")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(read_json(&json)["runs"].as_array().map(Vec::len), Some(2));
}
