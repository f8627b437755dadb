//! getopt-compatible argv handling shared by both tools, built on clap.
//!
//! Scripts call these tools the getopt way, so clap is configured to behave
//! like glibc `getopt(argc, argv, "+...")`:
//! * options end at the first operand (POSIX `+` mode); everything after it,
//!   even `-5`, is an operand;
//! * bundled flags (`-cd`), attached values (`-s20`), detached values that
//!   start with `-` (`-s -5`), repeated options, and `--`;
//! * unknown options and missing values print glibc's own line
//!   (`PROG: invalid option -- 'x'`, `PROG: option requires an argument -- 'l'`)
//!   and then the tool's usage fatal.
//!
//! The result is the ordered list of occurrences, because Postfix checks
//! options left to right and some checks depend on order (`-l`/`-F`,
//! `-w`/`-R`). Each tool's `config.rs` turns that list into a checked
//! configuration and owns every validation message.
//!
//! Long options (`--help`, `--version`, and the smtpstone extensions) have no
//! short form, so they never change what a Postfix command line means.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command as ClapCommand};

use crate::diag::{self, Error, Result};

/// One short option of a tool (`-s count`).
#[derive(Debug, Clone, Copy)]
pub struct ShortOpt {
    /// The option letter or digit.
    pub letter: char,
    /// Value name for `--help`, or `None` for a flag.
    pub value: Option<&'static str>,
    /// One-line description for `--help`.
    pub help: &'static str,
}

/// One long-only option (`--report`, `--json PATH`, `--bdat[=SIZE]`).
#[derive(Debug, Clone, Copy)]
pub struct LongOpt {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// Value name for `--help`, or `None` for a flag. A name in brackets
    /// (`Some("[SIZE]")`) makes the value optional: it can only be attached
    /// with `=` (`--bdat=4096`), and a bare `--bdat` gives an occurrence
    /// whose value is `None`.
    pub value: Option<&'static str>,
    /// One-line description for `--help`.
    pub help: &'static str,
}

/// Join two lists of long options at compile time, so that a tool can keep
/// its option groups apart:
/// `const ALL: [LongOpt; A.len() + B.len()] = args::join_longs(A, B);`
pub const fn join_longs<const N: usize>(a: &[LongOpt], b: &[LongOpt]) -> [LongOpt; N] {
    assert!(
        a.len() + b.len() == N,
        "join_longs: N must be a.len() + b.len()"
    );
    let mut out = [LongOpt {
        name: "",
        value: None,
        help: "",
    }; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[a.len() + j] = b[j];
        j += 1;
    }
    out
}

/// Everything `parse` needs to know about a tool's command line.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// Binary name used in `--help`/`--version` (not in diagnostics).
    pub name: &'static str,
    /// One-paragraph description for `--help`.
    pub about: &'static str,
    /// Operand synopsis for `--help`, e.g. `[inet:]host[:port]`.
    pub operands: &'static str,
    /// Short options, in the order `--help` lists them.
    pub shorts: &'static [ShortOpt],
    /// Long-only options.
    pub longs: &'static [LongOpt],
    /// Text shown after the option list in `--help`.
    pub after_help: &'static str,
}

/// Which option an occurrence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A short option, by letter.
    Short(char),
    /// A long option, by name.
    Long(&'static str),
}

/// One option as it appeared on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Which option.
    pub key: Key,
    /// Its value, for options that take one.
    pub value: Option<OsString>,
}

impl Occurrence {
    /// The value as bytes (empty for flags).
    pub fn bytes(&self) -> &[u8] {
        self.value.as_deref().map(OsStr::as_bytes).unwrap_or(b"")
    }
}

/// The outcome of argv parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the tool with these options (in argv order) and operands.
    Run {
        /// Options in the order they were given.
        opts: Vec<Occurrence>,
        /// Operands after the options.
        operands: Vec<OsString>,
    },
    /// `--help` was given: print this to stdout and exit 0.
    Help(String),
    /// `--version` was given: print this to stdout and exit 0.
    Version(String),
}

const OPERANDS_ID: &str = "\u{0}operands";
/// What clap stores for an optional long value that was not given: argv
/// strings cannot contain NUL, so no command line can produce it.
const MISSING_VALUE: &str = "\u{0}";

/// The value name of an optional-value long option (`[SIZE]` → `SIZE`).
fn optional_value(name: &str) -> Option<&str> {
    name.strip_prefix('[')?.strip_suffix(']')
}
const HELP_ID: &str = "\u{0}help";
const VERSION_ID: &str = "\u{0}version";

fn short_id(letter: char) -> String {
    letter.to_string()
}

fn command(spec: &ToolSpec) -> ClapCommand {
    let mut cmd = ClapCommand::new(spec.name)
        .about(spec.about)
        .version(env!("CARGO_PKG_VERSION"))
        .override_usage(format!("{} [options] {}", spec.name, spec.operands))
        .after_help(spec.after_help)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .dont_delimit_trailing_values(true)
        .args_override_self(false)
        .arg(
            Arg::new(HELP_ID)
                .long("help")
                .action(ArgAction::Help)
                .help("Print this help and exit"),
        )
        .arg(
            Arg::new(VERSION_ID)
                .long("version")
                .action(ArgAction::Version)
                .help("Print the version and exit"),
        );
    for opt in spec.shorts {
        let mut arg = Arg::new(short_id(opt.letter))
            .short(opt.letter)
            .help(opt.help);
        arg = match opt.value {
            Some(name) => arg
                .value_name(name)
                .num_args(1)
                .allow_hyphen_values(true)
                .allow_negative_numbers(true)
                .action(ArgAction::Append)
                .value_parser(clap::builder::OsStringValueParser::new()),
            // Append with no value (not Count) so that every occurrence keeps
            // its own argv index.
            None => arg
                .action(ArgAction::Append)
                .num_args(0)
                .default_missing_value(""),
        };
        cmd = cmd.arg(arg);
    }
    for opt in spec.longs {
        let mut arg = Arg::new(opt.name).long(opt.name).help(opt.help);
        arg = match opt.value {
            // `--name[=VALUE]` (clap: 0..=1 values, `=` required).
            Some(name) if optional_value(name).is_some() => arg
                .value_name(optional_value(name).unwrap_or(name))
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value(MISSING_VALUE)
                .allow_hyphen_values(true)
                .action(ArgAction::Append)
                .value_parser(clap::builder::OsStringValueParser::new()),
            Some(name) => arg
                .value_name(name)
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append)
                .value_parser(clap::builder::OsStringValueParser::new()),
            // Append with no value (not Count) so that every occurrence keeps
            // its own argv index.
            None => arg
                .action(ArgAction::Append)
                .num_args(0)
                .default_missing_value(""),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new(OPERANDS_ID)
            .num_args(0..)
            .trailing_var_arg(true)
            .hide(true)
            .value_parser(clap::builder::OsStringValueParser::new()),
    )
}

/// The `--help` text of a tool.
pub fn help_text(spec: &ToolSpec) -> String {
    command(spec).render_help().to_string()
}

/// The clap command a tool's argv is parsed with: the one source of `--help`,
/// the manual pages' option lists and the shell completions.
pub fn clap_command(spec: &ToolSpec) -> ClapCommand {
    command(spec)
}

/// Parse `argv` (including `argv[0]`) the getopt way.
///
/// On an unknown option or a missing value this prints glibc's line to
/// stderr and returns [`Error::Usage`]; the caller prints the usage fatal.
pub fn parse(spec: &ToolSpec, argv: &[OsString]) -> Result<Parsed> {
    let matches = match command(spec).try_get_matches_from(argv) {
        Ok(m) => m,
        Err(err) => {
            return match err.kind() {
                ErrorKind::DisplayHelp => Ok(Parsed::Help(err.render().to_string())),
                ErrorKind::DisplayVersion => Ok(Parsed::Version(err.render().to_string())),
                _ => Err(map_clap_error(spec, argv, err)),
            }
        }
    };
    let mut indexed: Vec<(usize, Occurrence)> = Vec::new();
    for opt in spec.shorts {
        let id = short_id(opt.letter);
        collect(
            &matches,
            &id,
            Key::Short(opt.letter),
            opt.value.is_some(),
            &mut indexed,
        );
    }
    for opt in spec.longs {
        collect(
            &matches,
            opt.name,
            Key::Long(opt.name),
            opt.value.is_some(),
            &mut indexed,
        );
    }
    indexed.sort_by_key(|(i, _)| *i);
    let operands = matches
        .get_many::<OsString>(OPERANDS_ID)
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    Ok(Parsed::Run {
        opts: indexed.into_iter().map(|(_, o)| o).collect(),
        operands,
    })
}

fn collect(
    matches: &clap::ArgMatches,
    id: &str,
    key: Key,
    takes_value: bool,
    out: &mut Vec<(usize, Occurrence)>,
) {
    if matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
        return;
    }
    let Some(indices) = matches.indices_of(id) else {
        return;
    };
    if takes_value {
        let values = matches.get_many::<OsString>(id).into_iter().flatten();
        for (index, value) in indices.zip(values) {
            let value = (value != MISSING_VALUE).then(|| value.clone());
            out.push((index, Occurrence { key, value }));
        }
    } else {
        for index in indices {
            out.push((index, Occurrence { key, value: None }));
        }
    }
}

fn map_clap_error(spec: &ToolSpec, argv: &[OsString], err: clap::Error) -> Error {
    let line = getopt_message(diag::prog(), spec, argv, &err);
    eprintln!("{}", diag::sanitize(line.as_bytes()));
    Error::Usage
}

/// glibc's line for a clap parse error.
///
/// clap names an unknown short option `-C`, so a `-` inside a cluster
/// (`-c-d`, `-a-`) arrives as exactly `--`, as does a long option with an
/// empty name (`--=x`). glibc getopt reports both as
/// `invalid option -- '-'` (docs/smtp-source.md §1, docs/smtp-sink.md §1);
/// only a named unknown long option (`--foo`) gets getopt_long's
/// `unrecognized option` (docs/deviations.md, "Unknown long options").
fn getopt_message(prog: &str, spec: &ToolSpec, argv: &[OsString], err: &clap::Error) -> String {
    let offending = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match err.kind() {
        ErrorKind::InvalidValue | ErrorKind::WrongNumberOfValues | ErrorKind::TooFewValues => {
            let letter = offending
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .unwrap_or('?');
            if offending.starts_with("--") {
                let name = offending.trim_start_matches('-');
                let name = name.split([' ', '=']).next().unwrap_or(name);
                format!("{prog}: option '--{name}' requires an argument")
            } else {
                format!("{prog}: option requires an argument -- '{letter}'")
            }
        }
        _ if offending.starts_with("--") && offending != "--" => {
            format!("{prog}: unrecognized option '{offending}'")
        }
        _ => {
            let letter = offending
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .or_else(|| first_unknown_letter(spec, argv))
                .unwrap_or('?');
            format!("{prog}: invalid option -- '{letter}'")
        }
    }
}

/// Fallback for clap errors without context: scan argv the getopt way.
fn first_unknown_letter(spec: &ToolSpec, argv: &[OsString]) -> Option<char> {
    for arg in argv.iter().skip(1) {
        let bytes = arg.as_bytes();
        if bytes == b"--" || bytes.first() != Some(&b'-') || bytes.len() == 1 {
            return None;
        }
        for ch in String::from_utf8_lossy(&bytes[1..]).chars() {
            match spec.shorts.iter().find(|o| o.letter == ch) {
                None => return Some(ch),
                Some(o) if o.value.is_some() => break,
                Some(_) => {}
            }
        }
    }
    None
}

/// What a tool's command line asks for, once its options are checked.
#[derive(Debug)]
pub enum Command<C> {
    /// Run with this checked configuration.
    Run(Box<C>),
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// C `atoi`: optional leading whitespace, optional sign, leading digits;
/// anything else is ignored; no digits gives 0. Like glibc (`(int) strtol`),
/// the value saturates at the `long` range and is then truncated to `int`,
/// so a huge negative number gives 0 and a huge positive one -1.
pub fn atoi(bytes: &[u8]) -> i32 {
    let mut i = 0;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        negative = bytes[i] == b'-';
        i += 1;
    }
    let mut value: i128 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        value = (value * 10 + i128::from(bytes[i] - b'0')).min(i128::from(i64::MAX) + 1);
        i += 1;
    }
    if negative {
        value = -value;
    }
    let long = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    long as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_table() {
        let cases: &[(&str, i32)] = &[
            ("5", 5),
            ("5abc", 5),
            ("abc", 0),
            ("", 0),
            ("  42", 42),
            ("\t-7", -7),
            ("+3", 3),
            ("-0", 0),
            ("- 3", 0),
            ("2147483647", i32::MAX),
            ("2147483648", i32::MIN),
            ("4294967297", 1),
            ("99999999999999999999999", -1),
            ("-99999999999999999999999", 0),
        ];
        for (input, want) in cases {
            assert_eq!(atoi(input.as_bytes()), *want, "atoi({input:?})");
        }
    }

    const SHORTS: &[ShortOpt] = &[
        ShortOpt {
            letter: 'c',
            value: None,
            help: "counter",
        },
        ShortOpt {
            letter: 'd',
            value: None,
            help: "reuse",
        },
        ShortOpt {
            letter: '4',
            value: None,
            help: "v4",
        },
        ShortOpt {
            letter: 's',
            value: Some("count"),
            help: "sessions",
        },
        ShortOpt {
            letter: 'f',
            value: Some("from"),
            help: "sender",
        },
        ShortOpt {
            letter: 'h',
            value: Some("host"),
            help: "hostname",
        },
    ];
    const LONGS: &[LongOpt] = &[
        LongOpt {
            name: "report",
            value: None,
            help: "report",
        },
        LongOpt {
            name: "json",
            value: Some("PATH"),
            help: "json",
        },
        LongOpt {
            name: "bdat",
            value: Some("[SIZE]"),
            help: "chunks",
        },
    ];
    const SPEC: ToolSpec = ToolSpec {
        name: "tool",
        about: "test tool",
        operands: "host",
        shorts: SHORTS,
        longs: LONGS,
        after_help: "",
    };

    /// Options as (key, value) text pairs, and operands.
    type Flat = (Vec<(String, String)>, Vec<String>);

    fn run(argv: &[&str]) -> Result<Flat> {
        let argv: Vec<OsString> = std::iter::once("tool")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        match parse(&SPEC, &argv)? {
            Parsed::Run { opts, operands } => Ok((
                opts.iter()
                    .map(|o| {
                        let k = match o.key {
                            Key::Short(c) => c.to_string(),
                            Key::Long(n) => n.to_string(),
                        };
                        (k, String::from_utf8_lossy(o.bytes()).into_owned())
                    })
                    .collect(),
                operands
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect(),
            )),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn o(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn getopt_table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        type Case = (Vec<&'static str>, Vec<(String, String)>, Vec<String>);
        let cases: Vec<Case> = vec![
            (vec!["-c", "x"], vec![o("c", "")], s(&["x"])),
            (vec!["-cd", "x"], vec![o("c", ""), o("d", "")], s(&["x"])),
            (vec!["-s20", "x"], vec![o("s", "20")], s(&["x"])),
            (vec!["-s", "20", "x"], vec![o("s", "20")], s(&["x"])),
            (
                vec!["-cs20", "x"],
                vec![o("c", ""), o("s", "20")],
                s(&["x"]),
            ),
            (vec!["-s", "-5", "x"], vec![o("s", "-5")], s(&["x"])),
            (vec!["-s", "--", "x"], vec![o("s", "--")], s(&["x"])),
            (vec!["-f", "", "x"], vec![o("f", "")], s(&["x"])),
            (
                vec!["-s", "1", "-c", "-s", "2", "x"],
                vec![o("s", "1"), o("c", ""), o("s", "2")],
                s(&["x"]),
            ),
            (vec!["x", "-s", "2"], vec![], s(&["x", "-s", "2"])),
            (vec!["x", "-5"], vec![], s(&["x", "-5"])),
            (vec!["--", "-c"], vec![], s(&["-c"])),
            (vec!["-c", "-", "y"], vec![o("c", "")], s(&["-", "y"])),
            (
                vec!["-h", "name", "-4", "a", "b"],
                vec![o("h", "name"), o("4", "")],
                s(&["a", "b"]),
            ),
            (
                vec!["--report", "-c", "x"],
                vec![o("report", ""), o("c", "")],
                s(&["x"]),
            ),
            (
                vec!["--json", "out.json", "x"],
                vec![o("json", "out.json")],
                s(&["x"]),
            ),
            (vec!["-cc", "x"], vec![o("c", ""), o("c", "")], s(&["x"])),
            // A `-` inside a value is part of the value.
            (vec!["-s5-", "x"], vec![o("s", "5-")], s(&["x"])),
            (vec!["-cs-", "x"], vec![o("c", ""), o("s", "-")], s(&["x"])),
            (vec!["-", "-c"], vec![], s(&["-", "-c"])),
            (vec![], vec![], s(&[])),
        ];
        for (argv, opts, operands) in cases {
            let got = run(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(got, (opts, operands), "argv {argv:?}");
        }
    }

    #[test]
    fn getopt_errors_are_usage() {
        for argv in [
            vec!["-x", "host"],
            vec!["-cx", "host"],
            vec!["-s"],
            vec!["-c", "-s"],
            vec!["--nope", "host"],
            vec!["--json"],
        ] {
            assert_eq!(run(&argv), Err(Error::Usage), "argv {argv:?}");
        }
    }

    /// glibc's line for each getopt error, as `map_clap_error` prints it.
    #[test]
    fn getopt_messages() {
        let cases: &[(&[&str], &str)] = &[
            (&["-x", "host"], "tool: invalid option -- 'x'"),
            (&["-cx", "host"], "tool: invalid option -- 'x'"),
            (&["-c-d", "host"], "tool: invalid option -- '-'"),
            (&["-c-", "host"], "tool: invalid option -- '-'"),
            (&["-c--", "host"], "tool: invalid option -- '-'"),
            (&["-c-5", "host"], "tool: invalid option -- '-'"),
            (&["--=x", "host"], "tool: invalid option -- '-'"),
            (&["-s"], "tool: option requires an argument -- 's'"),
            (&["-c", "-s"], "tool: option requires an argument -- 's'"),
            (&["--nope", "host"], "tool: unrecognized option '--nope'"),
            (&["---", "host"], "tool: unrecognized option '---'"),
            (&["--json"], "tool: option '--json' requires an argument"),
        ];
        for (args, want) in cases {
            let argv: Vec<OsString> = std::iter::once("tool")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            let err = command(&SPEC)
                .try_get_matches_from(&argv)
                .expect_err("a getopt error");
            assert_eq!(
                getopt_message("tool", &SPEC, &argv, &err),
                *want,
                "{args:?}"
            );
        }
    }

    #[test]
    fn optional_long_value() {
        let argv = |v: &[&str]| -> Vec<OsString> {
            std::iter::once("tool")
                .chain(v.iter().copied())
                .map(OsString::from)
                .collect()
        };
        type Case = (
            Vec<&'static str>,
            Vec<Option<&'static str>>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (vec!["--bdat", "host"], vec![None], vec!["host"]),
            (
                vec!["--bdat=4096", "host"],
                vec![Some("4096")],
                vec!["host"],
            ),
            (vec!["--bdat=", "host"], vec![Some("")], vec!["host"]),
            (vec!["--bdat=-1", "host"], vec![Some("-1")], vec!["host"]),
            (
                vec!["--bdat", "--bdat=7", "-c", "host"],
                vec![None, Some("7"), None],
                vec!["host"],
            ),
            // The value is never taken from the next argument.
            (vec!["--bdat", "4096"], vec![None], vec!["4096"]),
        ];
        for (args, want, want_operands) in cases {
            let Parsed::Run { opts, operands } = parse(&SPEC, &argv(&args)).unwrap() else {
                panic!("{args:?}");
            };
            let got: Vec<Option<&str>> = opts
                .iter()
                .map(|o| o.value.as_ref().map(|v| v.to_str().unwrap()))
                .collect();
            assert_eq!(got, want, "{args:?}");
            let got: Vec<&str> = operands.iter().map(|o| o.to_str().unwrap()).collect();
            assert_eq!(got, want_operands, "{args:?}");
        }
        let text = help_text(&SPEC);
        assert!(text.contains("--bdat[=<SIZE>]"), "{text}");
    }

    #[test]
    fn help_and_version() {
        let argv: Vec<OsString> = ["tool", "--help"].iter().map(OsString::from).collect();
        match parse(&SPEC, &argv).unwrap() {
            Parsed::Help(text) => {
                assert!(text.contains("-s <count>"), "{text}");
                assert!(text.contains("--report"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        let argv: Vec<OsString> = ["tool", "--version"].iter().map(OsString::from).collect();
        match parse(&SPEC, &argv).unwrap() {
            Parsed::Version(text) => assert!(text.contains(env!("CARGO_PKG_VERSION"))),
            other => panic!("{other:?}"),
        }
    }
}
