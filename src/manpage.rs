//! Manual pages in roff (`man(7)` macros), written from the same option
//! tables that `--help` comes from ([`crate::args::ToolSpec`]), so the pages
//! and `--help` cannot drift apart: `doc/smtp-source.1` and
//! `doc/smtp-sink.1` are this module's output, and a test regenerates them
//! and fails on any difference.
//!
//! The option lists are generated; the prose (description, examples, exit
//! status, differences from Postfix) lives in [`Page`] values beside the
//! tool's configuration.

use std::fmt::Write as _;

use crate::args::{LongOpt, ShortOpt, ToolSpec};

/// The hand-written parts of one manual page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// One line for the NAME section, after `name \-`.
    pub summary: &'static str,
    /// SYNOPSIS lines (each one command form).
    pub synopsis: &'static [&'static str],
    /// DESCRIPTION paragraphs.
    pub description: &'static [&'static str],
    /// EXAMPLES: (what it does, the command).
    pub examples: &'static [(&'static str, &'static str)],
    /// EXIT STATUS paragraphs.
    pub exit_status: &'static [&'static str],
    /// DIFFERENCES FROM POSTFIX paragraphs.
    pub differences: &'static [&'static str],
    /// SEE ALSO entries, e.g. `smtp-sink(1)`.
    pub see_also: &'static [&'static str],
}

/// Escape text for roff: backslashes, a leading `.` or `'` (which would start
/// a request), and hyphens (which `groff -ww` wants as `\-` in option names).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '.' | '\'' if i == 0 => {
                out.push_str("\\&");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn paragraphs(out: &mut String, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        let _ = writeln!(out, "{}", escape(text));
    }
}

fn short_item(out: &mut String, opt: &ShortOpt) {
    let _ = match opt.value {
        Some(value) => writeln!(
            out,
            ".TP\n\\fB\\-{}\\fR \\fI{}\\fR",
            opt.letter,
            escape(value)
        ),
        None => writeln!(out, ".TP\n\\fB\\-{}\\fR", opt.letter),
    };
    let _ = writeln!(out, "{}", escape(opt.help));
}

fn long_item(out: &mut String, opt: &LongOpt) {
    let name = escape(opt.name);
    let _ = match opt.value {
        Some(value) if value.starts_with('[') => {
            let inner = value.trim_start_matches('[').trim_end_matches(']');
            writeln!(out, ".TP\n\\fB\\-\\-{name}\\fR[=\\fI{}\\fR]", escape(inner))
        }
        Some(value) => writeln!(out, ".TP\n\\fB\\-\\-{name}\\fR \\fI{}\\fR", escape(value)),
        None => writeln!(out, ".TP\n\\fB\\-\\-{name}\\fR"),
    };
    let _ = writeln!(out, "{}", escape(opt.help));
}

/// The whole page for `spec`, section 1.
pub fn render(spec: &ToolSpec, page: &Page) -> String {
    let mut out = String::new();
    let upper = spec.name.to_uppercase();
    let _ = writeln!(
        out,
        ".TH {} 1 \"\" \"smtpstone {}\" \"User Commands\"",
        escape(&upper),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        ".SH NAME\n{} \\- {}",
        escape(spec.name),
        escape(page.summary)
    );
    out.push_str(".SH SYNOPSIS\n");
    for (i, line) in page.synopsis.iter().enumerate() {
        if i > 0 {
            out.push_str(".br\n");
        }
        let _ = writeln!(out, "\\fB{}\\fR {}", escape(spec.name), escape(line));
    }
    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, page.description);
    out.push_str(".SH OPTIONS\n");
    for opt in spec.shorts {
        short_item(&mut out, opt);
    }
    out.push_str(".SH EXTENSIONS\n");
    out.push_str("Long options only; none of them changes what a Postfix command line means.\n");
    long_item(
        &mut out,
        &LongOpt {
            name: "help",
            value: None,
            help: "Print the option summary and exit.",
        },
    );
    long_item(
        &mut out,
        &LongOpt {
            name: "version",
            value: None,
            help: "Print the version and exit.",
        },
    );
    for opt in spec.longs {
        long_item(&mut out, opt);
    }
    out.push_str(".SH EXAMPLES\n");
    for (i, (what, command)) in page.examples.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        let _ = writeln!(
            out,
            "{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE",
            escape(what),
            escape(command)
        );
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    paragraphs(&mut out, page.exit_status);
    out.push_str(".SH \"DIFFERENCES FROM POSTFIX\"\n");
    paragraphs(&mut out, page.differences);
    out.push_str(".SH \"SEE ALSO\"\n");
    let refs: Vec<String> = page
        .see_also
        .iter()
        .map(|r| match r.split_once('(') {
            Some((name, section)) => format!("\\fB{}\\fR({section}", escape(name)),
            None => escape(r),
        })
        .collect();
    let _ = writeln!(out, "{}", refs.join(",\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORTS: &[ShortOpt] = &[ShortOpt {
        letter: 's',
        value: Some("count"),
        help: "Run count sessions",
    }];
    const LONGS: &[LongOpt] = &[
        LongOpt {
            name: "json",
            value: Some("PATH"),
            help: "Write the report as JSON",
        },
        LongOpt {
            name: "bdat",
            value: Some("[SIZE]"),
            help: "Send with BDAT",
        },
    ];
    const SPEC: ToolSpec = ToolSpec {
        name: "tool-x",
        about: "",
        operands: "host",
        shorts: SHORTS,
        longs: LONGS,
        after_help: "",
    };
    const PAGE: Page = Page {
        summary: "a tool",
        synopsis: &["[options] host"],
        description: &["First.", ".dot starts"],
        examples: &[("Run it:", "tool-x -s 2 host")],
        exit_status: &["0 on success."],
        differences: &["None."],
        see_also: &["smtp-sink(1)", "postconf(5)"],
    };

    #[test]
    fn every_option_and_section_is_written() {
        let page = render(&SPEC, &PAGE);
        for needle in [
            ".TH TOOL\\-X 1",
            ".SH NAME\ntool\\-x \\- a tool",
            "\\fB\\-s\\fR \\fIcount\\fR\nRun count sessions",
            "\\fB\\-\\-json\\fR \\fIPATH\\fR",
            "\\fB\\-\\-bdat\\fR[=\\fISIZE\\fR]",
            "\\fB\\-\\-help\\fR",
            ".SH \"EXIT STATUS\"",
            ".SH \"DIFFERENCES FROM POSTFIX\"",
            "\\fBsmtp\\-sink\\fR(1),\n\\fBpostconf\\fR(5)",
        ] {
            assert!(page.contains(needle), "missing {needle:?} in\n{page}");
        }
    }

    #[test]
    fn text_cannot_start_a_request() {
        let page = render(&SPEC, &PAGE);
        assert!(page.contains("\n\\&.dot starts\n"), "{page}");
        assert_eq!(escape("a\\b"), "a\\eb");
    }
}
