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

/// The prose of `smtp-source(1)`.
pub const SOURCE_PAGE: Page = Page {
    summary: "parallel SMTP/LMTP load generator (drop-in for Postfix's smtp-source)",
    synopsis: &["[options] [inet:]host[:port]", "[options] unix:pathname", "--merge [options] report.json ..."],
    description: &[
        "smtp-source connects to host (default port smtp, 25; 465 with --tls) or to the UNIX-domain socket pathname, and sends messages over -s parallel sessions until -m messages were sent, one transaction per connection unless -d keeps connections open. It answers one question: how much mail can the server at the other end handle.",
        "Every Postfix option, default, reply rule and byte on the wire is Postfix's. Options are parsed the getopt way: options end at the first operand, flags bundle (-cd), values may be attached (-s20), and -- ends the options. Diagnostics are Postfix's (PROG: fatal: TEXT).",
        "The long options under EXTENSIONS add ESMTP, pipelining, TLS, AUTH, BDAT, open-loop rates, run reports with exact latency percentiles, end-to-end tracking and live metrics. Without them the tool behaves exactly as Postfix's.",
    ],
    examples: &[
        ("Measure an MTA: 20 sessions, 5 KB messages, 100 messages, with a counter:", "time smtp-source -s 20 -l 5120 -m 100 -c -f a -t b localhost:25"),
        ("Reuse connections, pipeline, and write a report with latency percentiles:", "smtp-source --ehlo --pipelining -s 20 -d -l 5120 -m 50000 --report 127.0.0.1:2525"),
        ("An open-loop soak test at 500 messages per second for five minutes:", "smtp-source --rate 500 --duration 5m -s 50 --json run.json 127.0.0.1:25"),
        ("Merge the reports of several load machines exactly:", "smtp-source --merge a.json b.json"),
    ],
    exit_status: &[
        "0 when every message was processed (or the merge succeeded); 1 on any fatal error (usage, bad option, connection or protocol failure), after a PROG: fatal: line on stderr.",
    ],
    differences: &[
        "Fatal errors exit at once (Postfix sleeps one second first). The 300 s timeout bounds the whole wait for a reply. In LMTP one reply is read per accepted recipient (RFC 2033). The Postfix 3.12 behaviour is followed where the Debian 3.7 binaries differ. The full list, with the reason for each, is docs/deviations.md in the source distribution.",
    ],
    see_also: &["smtp-sink(1)", "postfix(1)", "swaks(1)"],
};

/// The prose of `smtp-sink(1)`.
pub const SINK_PAGE: Page = Page {
    summary: "SMTP/LMTP test server that discards or dumps mail (drop-in for Postfix's smtp-sink)",
    synopsis: &["[options] [inet:][host]:port backlog", "[options] unix:pathname backlog"],
    description: &[
        "smtp-sink listens on the given address (there is no default port; an empty host listens on all addresses) with the given listen backlog, and accepts mail: it answers SMTP or LMTP commands, reads each message and throws it away, or dumps it to files with -d or -D. It is the fast receiving end of a control experiment and a scriptable fake server for developers of mail software: commands can be refused, delayed or made to disconnect.",
        "Every Postfix option, default, reply and byte on the wire is Postfix's. As root, -u user is required: privileges are dropped after binding. Options are parsed the getopt way.",
        "The long options under EXTENSIONS add STARTTLS and implicit TLS, real AUTH exchanges, BDAT, SMTPUTF8, end-to-end tracking of messages stamped by smtp-source --track, periodic statistics and live metrics. Without them the tool behaves exactly as Postfix's.",
    ],
    examples: &[
        ("A sink on port 25 with a backlog of 1000 and counters on stdout:", "smtp-sink -c localhost:25 1000"),
        ("As root, dropping privileges, dumping every message into its own file:", "smtp-sink -u nobody -d /tmp/dump/%Y%m%d/ 127.0.0.1:2525 100"),
        ("Behind an MTA under test, tracking what arrives:", "smtp-sink -u nobody --track --json track.json 127.0.0.1:2526 100"),
        ("Refuse RCPT with the soft error and delay DATA by 2 seconds:", "smtp-sink -r rcpt -W data:2 127.0.0.1:2525 100"),
    ],
    exit_status: &[
        "0 after the -M or -n condition was met; 1 on any fatal error, after a PROG: fatal: line on stderr. SIGINT and SIGTERM end the process by the signal.",
    ],
    differences: &[
        "Fatal errors exit at once (Postfix sleeps one second first). -M flushes the reply to the last message before exiting; -n works without -c; delayed replies stay in order; an empty dump template is rejected; in LMTP, DATA without an accepted RCPT always gets 503. The full list, with the reason for each, is docs/deviations.md in the source distribution.",
    ],
    see_also: &["smtp-source(1)", "postfix(1)", "swaks(1)"],
};

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
