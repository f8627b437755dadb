//! The manual pages (`doc/*.1`) and shell completions (`completions/`) are
//! generated from the option tables that `--help` comes from; these tests
//! regenerate them and fail on any difference with the committed files.
//! `UPDATE_GENERATED=1 cargo test --test generated_docs` rewrites them.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap_complete::Shell;
use smtpstone::args::{clap_command, help_text, ToolSpec};
use smtpstone::manpage::{self, Page};

fn tools() -> [(&'static ToolSpec, &'static Page); 2] {
    [
        (&smtpstone::source::config::SPEC, &manpage::SOURCE_PAGE),
        (&smtpstone::sink::config::SPEC, &manpage::SINK_PAGE),
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compare `want` with the committed file, or rewrite it under
/// `UPDATE_GENERATED=1`. Returns a description of the drift, if any.
fn check(path: &Path, want: &[u8]) -> Option<String> {
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, want).expect("write generated file");
        return None;
    }
    match std::fs::read(path) {
        Ok(have) if have == want => None,
        Ok(_) => Some(format!("{} differs from its generator", path.display())),
        Err(e) => Some(format!("{}: {e}", path.display())),
    }
}

fn man_path(spec: &ToolSpec) -> PathBuf {
    root().join("doc").join(format!("{}.1", spec.name))
}

#[test]
fn man_pages_match_their_generator() {
    let drift: Vec<String> = tools()
        .iter()
        .filter_map(|(spec, page)| check(&man_path(spec), manpage::render(spec, page).as_bytes()))
        .collect();
    assert!(
        drift.is_empty(),
        "{drift:?}: run UPDATE_GENERATED=1 cargo test --test generated_docs"
    );
}

fn completion(spec: &ToolSpec, shell: Shell) -> Vec<u8> {
    let mut cmd = clap_command(spec);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, spec.name, &mut out);
    out
}

#[test]
fn completions_match_their_generator() {
    let mut drift = Vec::new();
    for (spec, _) in tools() {
        for (shell, file) in [
            (Shell::Bash, format!("{}.bash", spec.name)),
            (Shell::Zsh, format!("_{}", spec.name)),
            (Shell::Fish, format!("{}.fish", spec.name)),
        ] {
            let path = root().join("completions").join(file);
            drift.extend(check(&path, &completion(spec, shell)));
        }
    }
    assert!(
        drift.is_empty(),
        "{drift:?}: run UPDATE_GENERATED=1 cargo test --test generated_docs"
    );
}

/// Every option `--help` shows appears in the page (`-s`, `--json`, …).
#[test]
fn man_pages_list_every_help_option() {
    for (spec, page) in tools() {
        let help = help_text(spec);
        let roff = manpage::render(spec, page);
        for opt in spec.shorts {
            let flag = format!("-{}", opt.letter);
            assert!(help.contains(&flag), "{flag} not in --help");
            assert!(
                roff.contains(&format!("\\fB\\-{}\\fR", opt.letter)),
                "{flag} not in the page"
            );
        }
        for opt in spec.longs {
            let flag = format!("--{}", opt.name);
            assert!(help.contains(&flag), "{flag} not in --help");
            let roff_name = format!("\\fB\\-\\-{}\\fR", opt.name.replace('-', "\\-"));
            assert!(roff.contains(&roff_name), "{flag} not in the page");
        }
    }
}

/// Run a formatter on the committed pages, or skip loudly when it is absent
/// (CI installs groff and man-db and sets REQUIRE_POSTFIX=1, which makes a
/// skip a failure there).
fn formatter(program: &str) -> Option<Command> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return Some(Command::new(program));
    }
    assert!(
        std::env::var_os("REQUIRE_POSTFIX").is_none(),
        "{program} is required (REQUIRE_POSTFIX=1) but absent"
    );
    eprintln!("SKIP: {program} not installed; the page formatting check did not run");
    None
}

#[test]
fn groff_formats_the_pages_without_warnings() {
    let Some(_) = formatter("groff") else { return };
    for (spec, _) in tools() {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(man_path(spec))
            .output()
            .expect("run groff");
        assert!(out.status.success(), "groff failed for {}", spec.name);
        assert!(
            out.stderr.is_empty(),
            "groff warnings for {}: {}",
            spec.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn man_shows_every_option() {
    let Some(_) = formatter("man") else { return };
    for (spec, _) in tools() {
        let out = Command::new("man")
            .arg("-l")
            .arg(man_path(spec))
            .env("MANWIDTH", "200")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("PAGER", "cat")
            .output()
            .expect("run man");
        assert!(out.status.success(), "man -l failed for {}", spec.name);
        // Strip overstrike formatting (bold: c\bc, underline: _\bc).
        let raw = String::from_utf8_lossy(&out.stdout);
        let mut text = String::new();
        for c in raw.chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        for opt in spec.shorts {
            let flag = format!("-{}", opt.letter);
            assert!(text.contains(&flag), "{flag} not shown by man -l");
        }
        for opt in spec.longs {
            let flag = format!("--{}", opt.name);
            assert!(text.contains(&flag), "{flag} not shown by man -l");
        }
    }
}
