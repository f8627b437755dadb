//! The Kubernetes manifests in `deploy/kubernetes/`: valid against the
//! Kubernetes API schemas (`kubernetes-validate --strict`, offline: the
//! schemas ship with it; `.ci/run` installs it from PyPI), and in step with
//! the tools: every long option they pass exists, and the source Job runs
//! as many shards as `--shard auto/N` says.
//!
//! Without `kubernetes-validate` the schema test skips loudly, and fails
//! under `REQUIRE_POSTFIX=1` (CI), like the tests that need Postfix.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const VALIDATOR: &str = "kubernetes-validate";

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every `*.yaml` manifest, sorted.
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir())
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "manifests: {files:?}");
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validator, or `None` after a loud skip notice (a panic under
/// `REQUIRE_POSTFIX=1`, so that CI never counts a skip as a pass).
fn validator_or_skip(test: &str) -> Option<()> {
    let found = Command::new(VALIDATOR)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    if postfix_required() {
        panic!("{test}: {VALIDATOR} is missing and REQUIRE_POSTFIX=1 (pip install {VALIDATOR})");
    }
    eprintln!("\n*** SKIPPED {test}: {VALIDATOR} not installed (pip install {VALIDATOR}) ***\n");
    None
}

/// Run the validator on `files`: (success, output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(VALIDATOR)
        .arg("--strict")
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn manifests_are_valid_kubernetes_objects() {
    if validator_or_skip("manifests_are_valid_kubernetes_objects").is_none() {
        return;
    }
    let files = manifests();
    let (ok, text) = validate(&files);
    assert!(ok, "{text}");
    for f in &files {
        let name = f.to_string_lossy();
        assert!(
            text.lines()
                .any(|l| l.contains(&*name) && l.contains("passed")),
            "{name} not validated:\n{text}"
        );
    }
    // The validator does reject a mistake: a misspelt field of the Job.
    let dir = tempdir();
    let bad = dir.path().join("job.yaml");
    let job = read(&manifest_dir().join("source-job.yaml"));
    assert!(job.contains("  parallelism: "));
    std::fs::write(&bad, job.replace("  parallelism: ", "  paralelism: ")).expect("write");
    let (ok, text) = validate(&[bad]);
    assert!(!ok && text.contains("paralelism"), "{text}");
}

/// The `--name` words of `text`.
fn long_options(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        if i > 0 && !text[..i].ends_with([' ', '"', '\'', '[', ',', '\n']) {
            continue;
        }
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            names.insert(name);
        }
    }
    names
}

fn help(program: &Path, argv0: &str) -> BTreeSet<String> {
    let out = run(program, argv0, ["--help"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    long_options(&out.stdout_text())
}

#[test]
fn manifests_use_only_options_the_tools_have() {
    for (file, program, argv0) in [
        ("sink.yaml", our_sink(), "smtp-sink"),
        ("source-job.yaml", our_source(), "smtp-source"),
    ] {
        let text = read(&manifest_dir().join(file));
        assert!(text.contains(&format!("{argv0} ")) || text.contains(&format!("/{argv0}\"")));
        let used = long_options(&text);
        assert!(!used.is_empty(), "{file}");
        let known = help(&program, argv0);
        let unknown: Vec<&String> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "{file}: unknown options {unknown:?}");
    }
}

/// The number after the first `key` in `text` that a number follows.
fn number_after(text: &str, key: &str) -> u32 {
    text.match_indices(key)
        .find_map(|(at, _)| {
            let digits: String = text[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no number after {key}"))
}

#[test]
fn the_source_job_runs_every_shard_at_once() {
    let job = read(&manifest_dir().join("source-job.yaml"));
    let n = number_after(&job, "--shard auto/");
    assert_eq!(number_after(&job, "\n  completions: "), n);
    assert_eq!(number_after(&job, "\n  parallelism: "), n);
    assert_eq!(number_after(&job, "\n  backoffLimit: "), 0);
    for line in [
        "\n  completionMode: Indexed\n",
        "\n      restartPolicy: Never\n",
    ] {
        assert!(job.contains(line), "{line:?}");
    }
    for option in ["--run-id ", "--start-at ", "--track", "--json "] {
        assert!(job.contains(option), "{option}");
    }
}
