//! `--threads N` on both tools: the -m pool, the -s split, the sink's
//! shared -m/-c/-M/-n, dumps and --track stay exact over several event
//! loops (README "Scaling out").

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::measure::{read_json, signal_and_finish};
use common::sink::{files_in, ours, ours_in, shared_tempdir};
use common::*;
use nix::sys::signal::Signal;

fn source(args: &[&str]) -> Output {
    run(&our_source(), "smtp-source", args)
}

/// The `--track` summary line of one run.
fn track_line(stderr: &str, n: u64) -> bool {
    stderr.contains(&format!(
        ": received {n}, distinct {n}, duplicates 0, gaps 0, highest seq {}\n",
        n - 1
    ))
}

#[test]
fn source_threads_draw_exactly_m_from_one_pool() {
    let dir = shared_tempdir();
    let track = dir.path().join("track.json");
    let report = dir.path().join("source.json");
    let sink = ours(&["--track", "--json", track.to_str().expect("path")]);
    let ep = sink.addr.to_string();
    let rep = report.to_str().expect("path");
    let out = source(&[
        "--threads",
        "2",
        "--track",
        "--json",
        rep,
        "-d",
        "-s",
        "5",
        "-m",
        "301",
        &ep,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(out.stderr.is_empty(), "{}", out.stderr_text());
    let sunk = signal_and_finish(sink.proc, Signal::SIGTERM);
    assert!(
        track_line(&sunk.stderr_text(), 301),
        "{}",
        sunk.stderr_text()
    );
    assert_eq!(read_json(&track)["messages"], 301);
    let r = read_json(&report);
    assert_eq!(r["counters"]["accepted"], 301);
    // Every one of the -s sessions ran, over both loops.
    assert_eq!(r["counters"]["sessions"], 5);
}

#[test]
fn source_threads_keep_the_c_counter() {
    let sink = ours(&["-c"]);
    let ep = sink.addr.to_string();
    let out = source(&["--threads", "2", "-c", "-s", "2", "-m", "20", &ep]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    // smtp-source -c: the count of sent messages, then a newline.
    assert!(
        out.stdout_text().ends_with("20\r\n"),
        "{:?}",
        out.stdout_text()
    );
    let sunk = sink.kill();
    assert!(
        sunk.stdout_text().contains("mesg=20\r"),
        "{}",
        sunk.stdout_text()
    );
    assert!(!sunk.stdout_text().contains("mesg=21"));
}

#[test]
fn sink_threads_exit_on_n_with_exact_counts_and_tracking() {
    let dir = shared_tempdir();
    let track = dir.path().join("track.json");
    let sink = ours_in(
        &[
            "--threads",
            "2",
            "-c",
            "-n",
            "4",
            "--track",
            "--json",
            "track.json",
            "-d",
            "m.",
        ],
        dir.path(),
    );
    let ep = sink.addr.to_string();
    let out = source(&["--track", "-d", "-s", "4", "-m", "120", &ep]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let sunk = sink.finish();
    assert_eq!(sunk.code(), Some(0), "{}", sunk.stderr_text());
    assert!(
        track_line(&sunk.stderr_text(), 120),
        "{}",
        sunk.stderr_text()
    );
    assert!(
        sunk.stdout_text().ends_with("sess=4 quit=4 mesg=120\r"),
        "{:?}",
        sunk.stdout_text()
    );
    assert_eq!(read_json(&track)["messages"], 120);
    // One dump file per message.
    let dumps = files_in(dir.path())
        .into_iter()
        .filter(|f| is_dump(f))
        .count();
    assert_eq!(dumps, 120);
}

fn is_dump(f: &Path) -> bool {
    f.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("m."))
}

#[test]
fn sink_threads_exit_on_m_after_exactly_m_messages() {
    let dir = shared_tempdir();
    let sink = ours_in(
        &["--threads", "2", "-c", "-M", "40", "-d", "m."],
        dir.path(),
    );
    let ep = sink.addr.to_string();
    // Exactly -M messages: the sink exits when the last is accepted (the
    // source may see the other sessions' connections close).
    let _ = source(&["-d", "-s", "4", "-m", "40", &ep]);
    let sunk = sink.finish();
    assert_eq!(sunk.code(), Some(0), "{}", sunk.stderr_text());
    assert!(
        sunk.stdout_text().contains("mesg=40\r"),
        "{}",
        sunk.stdout_text()
    );
    assert!(!sunk.stdout_text().contains("mesg=41"));
    let dumps = files_in(dir.path())
        .into_iter()
        .filter(|f| is_dump(f))
        .count();
    assert_eq!(dumps, 40);
}

#[test]
fn sink_threads_on_a_unix_socket() {
    let dir = shared_tempdir();
    let path = dir.path().join("sink.sock");
    let ep = format!("unix:{}", path.display());
    let mut args: Vec<String> = sink_user_args();
    args.extend(["--threads", "3", "-c", "-n", "3", &ep, "100"].map(String::from));
    let sink = Proc::spawn(&our_sink(), "smtp-sink", &args);
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = source(&["-d", "-s", "3", "-m", "30", &ep]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let sunk = sink.finish(TIMEOUT);
    assert_eq!(sunk.code(), Some(0), "{}", sunk.stderr_text());
    assert!(
        sunk.stdout_text().ends_with("sess=3 quit=3 mesg=30\r"),
        "{:?}",
        sunk.stdout_text()
    );
}

#[test]
fn bad_thread_counts_are_one_clear_line() {
    for bad in ["0", "257", "two", ""] {
        let arg = format!("--threads={bad}");
        for out in [
            source(&[&arg, "127.0.0.1:25"]),
            run(
                &our_sink(),
                "smtp-sink",
                [arg.as_str(), "127.0.0.1:0", "10"],
            ),
        ] {
            assert_eq!(out.code(), Some(1), "{bad}");
            let err = out.stderr_text();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("bad --threads value"), "{err}");
        }
    }
    // More loops than sessions: every loop runs at least one.
    let out = source(&["--threads", "3", "-s", "2", "127.0.0.1:25"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("--threads 3 is more than the 2 sessions to run"),
        "{}",
        out.stderr_text()
    );
    // The sessions counted are this shard's part of -s (3 over 2 shards:
    // 2 and 1).
    let shard = |i: &str| {
        source(&[
            "--threads",
            "2",
            "--shard",
            i,
            "--run-id",
            "1",
            "-s",
            "3",
            "127.0.0.1:25",
        ])
    };
    let out = shard("1/2");
    assert!(
        out.stderr_text()
            .contains("--threads 2 is more than the 1 sessions to run"),
        "{}",
        out.stderr_text()
    );
}
