//! smtp-source: reply handling per stage (docs/smtp-source.md §6.2, §6.3, §10), with and
//! without `-A`, lost connections, over-long and odd replies, and the LMTP
//! deviation D3 (docs/deviations.md).

use crate::common;

use std::sync::Arc;

use common::capture::{default_action, reply, run_source, Action, Capture, Cmd};
use common::{our_source, Output};

/// Run ours with `args` (plus `-M vm`) against a server whose `rules` may
/// override the default answer; returns the output and per-connection
/// command lists.
fn run_with(
    args: &[&str],
    banner: Action,
    lmtp: bool,
    rules: impl Fn(&Cmd) -> Option<Action> + Send + Sync + 'static,
) -> (Output, Vec<Vec<String>>) {
    let script = Arc::new(move |cmd: &Cmd| rules(cmd).unwrap_or_else(|| default_action(cmd, lmtp)));
    let cap = Capture::start(banner, script);
    let mut argv = vec!["-M", "vm"];
    argv.extend_from_slice(args);
    let out = run_source(&our_source(), &argv, &cap);
    let cmds = cap.commands();
    (out, cmds)
}

fn banner() -> Action {
    reply("220 fake ESMTP")
}

fn on(verb: &'static str, action: Action) -> impl Fn(&Cmd) -> Option<Action> + Send + Sync {
    move |cmd: &Cmd| (cmd.verb == verb).then(|| action.clone())
}

fn fatal(out: &Output, text: &str) {
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    assert_eq!(out.stderr_text(), format!("smtp-source: fatal: {text}\n"));
    assert!(out.stdout.is_empty());
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const FULL: [&str; 6] = [
    "HELO vm",
    "MAIL FROM:<foo@vm>",
    "RCPT TO:<foo@vm>",
    "DATA",
    ".",
    "QUIT",
];

#[test]
fn rejects_without_a_are_fatal() {
    let cases: Vec<(&str, Action, &str)> = vec![
        ("HELO", reply("501 no"), "HELO rejected: 501 no"),
        (
            "MAIL",
            reply("550 5.1.0 no"),
            "sender rejected: 550 5.1.0 no",
        ),
        ("MAIL", reply("2500 ok"), "sender rejected: 0 ok"),
        ("RCPT", reply("550 no"), "recipient rejected: 550 no"),
        ("DATA", reply("451 later"), "data rejected: 451 later"),
        ("DATA", reply("250 ok"), "data rejected: 250 ok"),
        (".", reply("554 spam"), "end of data rejected: 554 spam"),
        (
            "MAIL",
            Action::Reply(b"550-a\tb\x80\r\n550 c\r\n".to_vec()),
            "sender rejected: 550 a?b??c",
        ),
    ];
    for (verb, action, text) in cases {
        let (out, _) = run_with(&[], banner(), false, on(verb, action));
        fatal(&out, text);
    }
    let (out, cmds) = run_with(
        &[],
        Action::Reply(b"554-no way\r\n554 go away\r\n".to_vec()),
        false,
        |_| None,
    );
    fatal(&out, "rejected at server banner: 554 no way?go away");
    assert!(cmds[0].is_empty());
    let (out, _) = run_with(&["-L"], banner(), true, on("LHLO", reply("500 what")));
    fatal(&out, "LHLO rejected: 500 what");
}

#[test]
fn rejects_with_a_warn_and_continue() {
    // (verb, reply, warning, expected commands)
    let cases: Vec<(&str, Action, &str, Vec<&str>)> = vec![
        (
            "HELO",
            reply("501 no"),
            "HELO rejected: 501 no",
            FULL.to_vec(),
        ),
        (
            "HELO",
            reply("421 bye"),
            "HELO rejected: 421 bye",
            vec!["HELO vm"],
        ),
        (
            "MAIL",
            reply("550 no"),
            "sender rejected: 550 no",
            vec!["HELO vm", "MAIL FROM:<foo@vm>", "RSET", "QUIT"],
        ),
        (
            "MAIL",
            reply("354 what"),
            "sender rejected: 354 what",
            vec!["HELO vm", "MAIL FROM:<foo@vm>", "RSET", "QUIT"],
        ),
        (
            "MAIL",
            reply("521 closing"),
            "sender rejected: 521 closing",
            vec!["HELO vm", "MAIL FROM:<foo@vm>"],
        ),
        (
            "DATA",
            reply("451 later"),
            "data rejected: 451 later",
            vec![
                "HELO vm",
                "MAIL FROM:<foo@vm>",
                "RCPT TO:<foo@vm>",
                "DATA",
                "RSET",
                "QUIT",
            ],
        ),
        (
            "DATA",
            reply("421 bye"),
            "data rejected: 421 bye",
            vec!["HELO vm", "MAIL FROM:<foo@vm>", "RCPT TO:<foo@vm>", "DATA"],
        ),
        (
            ".",
            reply("554 spam"),
            "end of data rejected: 554 spam",
            FULL.to_vec(),
        ),
        (
            ".",
            reply("421 bye"),
            "end of data rejected: 421 bye",
            FULL[..5].to_vec(),
        ),
    ];
    for (verb, action, warning, want) in cases {
        let (out, cmds) = run_with(&["-A"], banner(), false, on(verb, action));
        assert_eq!(out.code(), Some(0), "{verb}: {}", out.stderr_text());
        assert_eq!(
            out.stderr_text(),
            format!("smtp-source: warning: {warning}\n"),
            "{verb}"
        );
        assert_eq!(cmds.len(), 1, "{verb}");
        assert_eq!(strs(&cmds[0]), want, "{verb} {warning}");
    }
    // Banner rejects never close, even 421.
    let (out, cmds) = run_with(&["-A"], reply("421 busy"), false, |_| None);
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: rejected at server banner: 421 busy\n"
    );
    assert_eq!(strs(&cmds[0]), FULL);
}

#[test]
fn rset_reply_rules() {
    let rules = |cmd: &Cmd| match cmd.verb.as_str() {
        "MAIL" => Some(reply("550 no")),
        "RSET" => Some(reply("500 huh")),
        _ => None,
    };
    let (out, cmds) = run_with(&["-A"], banner(), false, rules);
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: sender rejected: 550 no\nsmtp-source: warning: rset rejected: 500 huh\n"
    );
    assert_eq!(
        strs(&cmds[0]),
        ["HELO vm", "MAIL FROM:<foo@vm>", "RSET", "QUIT"]
    );

    let rules = |cmd: &Cmd| match cmd.verb.as_str() {
        "MAIL" => Some(reply("550 no")),
        "RSET" => Some(reply("421 gone")),
        _ => None,
    };
    let (out, cmds) = run_with(&["-A"], banner(), false, rules);
    assert_eq!(out.code(), Some(0));
    assert_eq!(strs(&cmds[0]), ["HELO vm", "MAIL FROM:<foo@vm>", "RSET"]);

    let (out, _) = run_with(&[], banner(), false, |cmd: &Cmd| match cmd.verb.as_str() {
        "MAIL" => Some(reply("550 no")),
        _ => None,
    });
    fatal(&out, "sender rejected: 550 no");
}

#[test]
fn rejected_mail_with_reuse() {
    // docs/smtp-source.md §14 row 13.
    let (out, cmds) = run_with(
        &["-A", "-d", "-m", "2"],
        banner(),
        false,
        on("MAIL", reply("550 no")),
    );
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stderr_text()
            .matches("warning: sender rejected: 550 no")
            .count(),
        2
    );
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        strs(&cmds[0]),
        [
            "HELO vm",
            "MAIL FROM:<foo@vm>",
            "RSET",
            "MAIL FROM:<foo@vm>",
            "RSET",
            "QUIT"
        ]
    );
}

#[test]
fn recipient_rejects() {
    // docs/smtp-source.md §14 row 14: all rejected -> RSET, QUIT, no DATA.
    let (out, cmds) = run_with(
        &["-A", "-r", "2"],
        banner(),
        false,
        on("RCPT", reply("550 no")),
    );
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stderr_text()
            .matches("recipient rejected: 550 no")
            .count(),
        2
    );
    assert_eq!(
        strs(&cmds[0]),
        [
            "HELO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo0@vm>",
            "RCPT TO:<foo1@vm>",
            "RSET",
            "QUIT"
        ]
    );
    // One of two rejected: DATA goes ahead; To: has the last number sent.
    let (out, cmds) = run_with(&["-A", "-r", "2"], banner(), false, |cmd: &Cmd| {
        (cmd.verb == "RCPT" && cmd.nth == 1).then(|| reply("550 no"))
    });
    assert_eq!(out.code(), Some(0));
    assert!(cmds[0].contains(&"DATA".to_string()));
    // docs/smtp-source.md §14 row 15: 421 on the first RCPT closes at once; numbering goes on.
    let (out, cmds) = run_with(
        &["-A", "-r", "2", "-m", "2"],
        banner(),
        false,
        |cmd: &Cmd| (cmd.verb == "RCPT" && cmd.conn == 0).then(|| reply("421 closing")),
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: recipient rejected: 421 closing\n"
    );
    assert_eq!(cmds.len(), 2);
    assert_eq!(
        strs(&cmds[0]),
        ["HELO vm", "MAIL FROM:<foo@vm>", "RCPT TO:<foo0@vm>"]
    );
    assert_eq!(
        strs(&cmds[1]),
        [
            "HELO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo1@vm>",
            "RCPT TO:<foo2@vm>",
            "DATA",
            ".",
            "QUIT"
        ]
    );
}

#[test]
fn quit_reply_is_not_checked_but_required() {
    let (out, _) = run_with(
        &[],
        banner(),
        false,
        on("QUIT", Action::ReplyClose(b"500 no\r\n".to_vec())),
    );
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stderr_text(), "");
    let (out, _) = run_with(&["-A"], banner(), false, on("QUIT", Action::Close));
    fatal(&out, "lost connection while sending message");
}

#[test]
fn lost_connection_contexts() {
    let (out, _) = run_with(&[], Action::Close, false, |_| None);
    fatal(&out, "lost connection while reading server greeting");
    let cases: Vec<(&str, &[&str], &str)> = vec![
        ("HELO", &[], "lost connection while sending HELO"),
        ("LHLO", &["-L"], "lost connection while sending LHLO"),
        ("MAIL", &[], "lost connection while sending sender"),
        ("RCPT", &[], "lost connection while sending recipient"),
        ("DATA", &[], "lost connection while sending DATA command"),
        (".", &[], "lost connection while sending message"),
    ];
    for (verb, args, text) in cases {
        let (out, _) = run_with(
            args,
            banner(),
            args.contains(&"-L"),
            on(verb, Action::Close),
        );
        fatal(&out, text);
    }
    // RSET reply lost: "sending message".
    let (out, _) = run_with(&["-A"], banner(), false, |cmd: &Cmd| {
        match cmd.verb.as_str() {
            "MAIL" => Some(reply("550 no")),
            "RSET" => Some(Action::Close),
            _ => None,
        }
    });
    assert_eq!(out.code(), Some(1));
    assert!(out
        .stderr_text()
        .ends_with("smtp-source: fatal: lost connection while sending message\n"));
}

#[test]
fn long_reply_lines() {
    // 15000 bytes: accepted, text cut to the first 10240 bytes of the line.
    let mut line = b"554 ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 15000 - 4));
    line.extend_from_slice(b"\r\n");
    let (out, _) = run_with(&[], Action::Reply(line), false, |_| None);
    assert_eq!(out.code(), Some(1));
    let want = format!(
        "smtp-source: fatal: rejected at server banner: 554 {}\n",
        "x".repeat(10240 - 4)
    );
    assert_eq!(out.stderr_text(), want);

    // 30000 bytes (Postfix 3.12): input disabled, then the next read fails.
    let mut line = b"220 ".to_vec();
    line.extend(std::iter::repeat_n(b'y', 30000 - 4));
    line.extend_from_slice(b"\r\n");
    let (out, cmds) = run_with(&[], Action::Reply(line), false, |_| None);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: disabling input from unknown_stream\n\
smtp-source: fatal: lost connection while sending HELO\n"
    );
    assert_eq!(strs(&cmds[0]), ["HELO vm"]);

    // An endless line: memory stays bounded and the run ends the same way.
    let mut line = b"220-".to_vec();
    line.extend(std::iter::repeat_n(b'z', 4 << 20));
    let (out, _) = run_with(&[], Action::Reply(line), false, |_| None);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: disabling input from unknown_stream\n\
smtp-source: fatal: lost connection while reading server greeting\n"
    );
}

#[test]
fn reply_syntax_variants() {
    // Bare LF, extra CRs, continuation with odd digit counts.
    let banner = Action::Reply(b"220-a\n2-b\r\r\n-c\r\n220 d\r\n".to_vec());
    let (out, cmds) = run_with(
        &["-v"],
        banner,
        false,
        on("HELO", Action::Reply(b"250 ok\n".to_vec())),
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(strs(&cmds[0]), FULL);
    let err = out.stderr_text();
    assert!(err.starts_with(
        "smtp-source: <<< 220-a\nsmtp-source: <<< 2-b\nsmtp-source: <<< -c\nsmtp-source: <<< 220 d\n"
    ), "{err}");
}

#[test]
fn lmtp_one_reply_per_accepted_recipient() {
    // Deviation D3 (docs/deviations.md): one RCPT of two rejected, the server answers once.
    let (out, cmds) = run_with(&["-L", "-A", "-r", "2"], banner(), true, |cmd: &Cmd| {
        (cmd.verb == "RCPT" && cmd.nth == 0).then(|| reply("550 no"))
    });
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(
        strs(&cmds[0]),
        [
            "LHLO vm",
            "MAIL FROM:<foo@vm>",
            "RCPT TO:<foo0@vm>",
            "RCPT TO:<foo1@vm>",
            "DATA",
            ".",
            "QUIT"
        ]
    );
    // Each end-of-data reply is judged: the second of three rejected.
    let (out, _) = run_with(&["-L", "-A", "-r", "3"], banner(), true, |cmd: &Cmd| {
        (cmd.verb == ".").then(|| Action::Reply(b"250 a\r\n550 b\r\n250 c\r\n".to_vec()))
    });
    assert_eq!(out.code(), Some(0));
    assert_eq!(
        out.stderr_text(),
        "smtp-source: warning: end of data rejected: 550 b\n"
    );
    let (out, _) = run_with(&["-L", "-r", "3"], banner(), true, |cmd: &Cmd| {
        (cmd.verb == ".").then(|| Action::Reply(b"250 a\r\n550 b\r\n250 c\r\n".to_vec()))
    });
    fatal(&out, "end of data rejected: 550 b");
}

#[test]
fn counter_has_no_final_newline_on_fatal() {
    let (out, _) = run_with(&["-c", "-m", "2"], banner(), false, |cmd: &Cmd| {
        (cmd.conn == 1 && cmd.verb == "MAIL").then(|| reply("550 no"))
    });
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, b"1\r");
    assert_eq!(
        out.stderr_text(),
        "smtp-source: fatal: sender rejected: 550 no\n"
    );
}

#[test]
fn verbose_reports_eof_before_the_fatal() {
    let (out, _) = run_with(&["-v"], banner(), false, on("MAIL", Action::Close));
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().ends_with(
            "smtp-source: MAIL FROM:<foo@vm>\nsmtp-source: smtp_get: EOF\n\
smtp-source: fatal: lost connection while sending sender\n"
        ),
        "{}",
        out.stderr_text()
    );
}
