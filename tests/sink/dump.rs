//! smtp-sink dump files: -d, -D, -S, layout, aborts, permissions, fatals
//! (docs/smtp-sink.md §16; deviations S6, S7, S8, docs/deviations.md).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sink::{converse, files_in, mask_dump, ours_in, shared_tempdir, start_at, wait_until};
use common::{our_sink, Client};

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in files_in(dir) {
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).expect("read dump")).into_owned()
}

const MESSAGE: &[u8] = b"EHLO   client.example  extra\r\nMAIL FROM :  <x>\r\nRCPT TO::: <y>\r\n\
RCPT TO:<z\x01>\r\nDATA\r\nx\n.\ny\r\n.\r\r\n.z\r\n..\r\n.\r\nQUIT\r\n";

#[test]
fn single_file_layout() {
    let dir = shared_tempdir();
    let sink = ours_in(&["-d", "dumps/%Y/x.", "-S", "A\\tB\\101\\0x"], dir.path());
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(MESSAGE);
    c.read_to_eof();
    let files = all_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let id = name.strip_prefix("x.").expect("prefix");
    assert_eq!(id.len(), 8);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(u32::from_str_radix(id, 16).unwrap() < 0x8000_0000);
    let text = read(&files[0]);
    assert_eq!(
        mask_dump(&text),
        "A\tBAX-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\n\
         X-Helo-Args: client.example  extra\nX-Mail-Args: <x>\nX-Rcpt-Args: <y>\n\
         X-Rcpt-Args: <z?>\n\
         Received: from client.example  extra ([127.0.0.1])\n\
         \tby smtp-sink (smtp-sink) with ESMTP id XXXXXXXX;\n\tDATE\n\
         x\n.\ny\n\nz\n.\n\n"
    );
    assert!(text.contains(&format!(" id {id};\n")));
    // 3.12 date format: two-digit day, numeric zone, zone name.
    let date = text.lines().nth(8).expect("date line");
    assert!(date.starts_with('\t') && date.ends_with(')'), "{date:?}");
    let d = date.as_bytes();
    assert!(
        d[6].is_ascii_digit() && d[7].is_ascii_digit() && d[8] == b' ',
        "zero-padded day {date:?}"
    );
    // Deviation S8 (docs/deviations.md): exactly 0644; parents 0755 less the umask, as mkdir(2) gives.
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let dmode = std::fs::metadata(files[0].parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o755 & !process_umask());
}

/// This process's umask (the sink inherits it), read from /proc without
/// changing it.
fn process_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask line");
    u32::from_str_radix(line.trim(), 8).expect("octal umask")
}

#[test]
fn no_helo_empty_message_and_protocols() {
    let dir = shared_tempdir();
    let sink = ours_in(&["-d", "m."], dir.path());
    let (_, _) = converse(
        sink.addr,
        b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n",
        4,
    );
    let (_, _) = converse(sink.addr, b"EHLO\r\nMAIL\r\nRCPT\r\nDATA\r\n.\r\n", 5);
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
        .len()
        == 2));
    let mut texts: Vec<String> = files_in(dir.path())
        .iter()
        .map(|p| mask_dump(&read(p)))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: \nX-Mail-Args: \n\
             X-Rcpt-Args: \nReceived: from  ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id XXXXXXXX;\n\
             \tDATE\n\n"
                .to_string(),
            "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\nX-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
             Received: from [127.0.0.1] ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with SMTP id XXXXXXXX;\n\
             \tDATE\n\n"
                .to_string(),
        ]
    );
}

#[test]
fn aborted_transactions_leave_nothing() {
    let dir = shared_tempdir();
    let sink = ours_in(&["-d", "x."], dir.path());
    for abort in [&b"RSET\r\n"[..], b"HELO y\r\n", b"EHLO y\r\n"] {
        let mut c = Client::connect(sink.addr);
        c.reply();
        c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
        c.replies(2);
        assert_eq!(files_in(dir.path()).len(), 1);
        c.send(abort);
        c.reply();
        assert!(files_in(dir.path()).is_empty(), "{abort:?}");
    }
    // EOF in the middle of DATA.
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    c.replies(3);
    c.send(b"partial\r\n");
    drop(c);
    assert!(wait_until(Duration::from_secs(5), || files_in(dir.path()).is_empty()));
    // A rejected MAIL creates no file.
    drop(sink);
    let sink = ours_in(&["-d", "x.", "-f", "mail"], dir.path());
    converse(sink.addr, b"MAIL FROM:<a>\r\n", 1);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn shared_file_appends_complete_dumps() {
    let dir = shared_tempdir();
    let sink = ours_in(&["-D", "sub/shared-%Y", "-h", "mx"], dir.path());
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"HELO a\r\nMAIL FROM:<1>\r\nRCPT TO:<r>\r\nDATA\r\none\r\n.\r\n");
    c.replies(5);
    c.send(b"MAIL FROM:<2>\r\nRCPT TO:<r>\r\nRSET\r\n");
    c.replies(3);
    c.send(b"MAIL FROM:<3>\r\nRCPT TO:<r>\r\nDATA\r\nthree\r\n.\r\nQUIT\r\n");
    c.read_to_eof();
    let sub = dir.path().join("sub");
    let files = files_in(&sub);
    assert_eq!(files.len(), 1, "no temp files left: {files:?}");
    let text = mask_dump(&read(&files[0]));
    let one = "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\nX-Helo-Args: a\nX-Mail-Args: <1>\n\
               X-Rcpt-Args: <r>\nReceived: from a ([127.0.0.1])\n\
               \tby mx (smtp-sink) with SMTP id XXXXXXXX;\n\tDATE\none\n\n";
    let three = one.replace("<1>", "<3>").replace("one", "three");
    assert_eq!(text, format!("{one}{three}"));
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn ipv6_and_unix_clients() {
    let dir = shared_tempdir();
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let sink = start_at(
            &our_sink(),
            "smtp-sink",
            &["-d", "v6."],
            "[::1]",
            Some(dir.path()),
        );
        converse(
            sink.addr,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n",
            4,
        );
        assert!(wait_until(Duration::from_secs(5), || files_in(dir.path())
            .len()
            == 1));
        let text = read(&files_in(dir.path())[0]);
        assert!(text.starts_with("X-Client-Addr: ipv6:::1\n"), "{text}");
        assert!(
            text.contains("Received: from [ipv6:::1] ([ipv6:::1])\n"),
            "{text}"
        );
        std::fs::remove_file(&files_in(dir.path())[0]).unwrap();
    } else {
        eprintln!("*** no IPv6 loopback: IPv6 part skipped ***");
    }
    let path = dir.path().join("s.sock");
    let mut argv = common::sink_user_args();
    argv.extend([
        "-d".into(),
        "u.".into(),
        format!("unix:{}", path.display()),
        "5".into(),
    ]);
    let _sink = common::Proc::spawn_in(&our_sink(), "smtp-sink", &argv, Some(dir.path()));
    assert!(common::wait_for_unix(&path, common::TIMEOUT));
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"HELO me\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nQUIT\r\n")
        .unwrap();
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let dumps: Vec<PathBuf> = files_in(dir.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("u."))
        .collect();
    assert_eq!(dumps.len(), 1);
    let text = read(&dumps[0]);
    assert!(text.starts_with("X-Client-Addr: local\n"), "{text}");
    assert!(text.contains("Received: from me ([local])\n"), "{text}");
}

#[test]
fn unwritable_dump_is_fatal() {
    if !common::is_root() {
        eprintln!("*** not root: -u nobody case skipped ***");
        return;
    }
    let dir = common::tempdir();
    // Root-owned 0755: nobody can search it but not write into it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let template = format!("{}/x.", dir.path().display());
    let sink = ours_in(&["-d", &template], dir.path());
    let mut c = Client::connect(sink.addr);
    c.reply();
    c.send(b"MAIL FROM:<a>\r\n");
    assert_eq!(c.reply(), b"250 2.1.0 Ok\r\n");
    let out = sink.finish();
    assert_eq!(out.code(), Some(1));
    let err = out.stderr_text();
    assert!(
        err.starts_with(&format!("smtp-sink: fatal: open {template}"))
            && err.ends_with(": Permission denied\n"),
        "{err}"
    );
    // mkdir failure.
    let template = format!("{}/sub/x.", dir.path().display());
    let sink = ours_in(&["-d", &template], dir.path());
    converse(sink.addr, b"MAIL FROM:<a>\r\n", 1);
    let out = sink.finish();
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr_text(),
        format!(
            "smtp-sink: fatal: mkdir {}/sub: Permission denied\n",
            dir.path().display()
        )
    );
}

#[test]
fn ids_are_os_seeded_s7() {
    // Deviation S7 (docs/deviations.md): two sinks started in the same second still draw different ids.
    let (d1, d2) = (shared_tempdir(), shared_tempdir());
    let s1 = ours_in(&["-d", "x."], d1.path());
    let s2 = ours_in(&["-d", "x."], d2.path());
    for s in [&s1, &s2] {
        converse(s.addr, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n", 4);
    }
    let (f1, f2) = (files_in(d1.path()), files_in(d2.path()));
    assert_eq!((f1.len(), f2.len()), (1, 1));
    assert_ne!(f1[0].file_name(), f2[0].file_name());
}
