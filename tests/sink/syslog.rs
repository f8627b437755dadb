//! smtp-sink `-s`: syslog datagrams (spec §15). The test listens on
//! /dev/log itself, so it runs only where no syslog daemon owns /dev/log.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::sink::start_at;
use common::Client;

/// Removes the test's /dev/log socket on drop.
struct DevLog(UnixDatagram);

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/log");
    }
}

fn messages(log: &DevLog) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    log.0
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    while let Ok(n) = log.0.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // "<22>Nov 28 12:03:57 smtp-sink[23250]: connect " -> priority and
        // the text after the pid.
        let prio = text.split('>').next().unwrap_or("").to_string();
        let msg = text
            .split_once("]: ")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        let ident = text.contains(" smtp-sink[");
        out.push(format!("{prio}> ident={ident} {msg}"));
    }
    out
}

fn session(program: &Path) -> Vec<u8> {
    let sink = start_at(
        program,
        "/some/dir/smtp-sink",
        &["-s", "connect,helo,DATA,noop,."],
        "127.0.0.1",
        None,
    );
    let mut c = Client::connect(sink.addr);
    let mut got = c.reply();
    c.send(b"HELO   a b\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\ndata\r\n");
    got.extend(c.replies(4));
    c.send(b"x\r\n.\r\nNOOP \x01\xff\r\nQUIT\r\n");
    got.extend(c.read_to_eof());
    got
}

#[test]
fn commands_are_logged() {
    if Path::new("/dev/log").exists() {
        eprintln!("\n*** SKIPPED commands_are_logged: /dev/log belongs to a syslog daemon ***\n");
        return;
    }
    let log = match UnixDatagram::bind("/dev/log") {
        Ok(s) => DevLog(s),
        Err(e) => {
            eprintln!("\n*** SKIPPED commands_are_logged: cannot bind /dev/log: {e} ***\n");
            return;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions("/dev/log", std::fs::Permissions::from_mode(0o666));
    let replies = session(&common::our_sink());
    let ours = messages(&log);
    assert_eq!(
        ours,
        vec![
            "<22> ident=true connect ",
            "<22> ident=true HELO   a b",
            "<22> ident=true data ",
            "<22> ident=true . ",
            "<22> ident=true NOOP ??",
        ]
    );
    if let Some(reference) =
        common::postfix_or_skip(common::POSTFIX_SINK, "commands_are_logged (Postfix part)")
    {
        assert_eq!(session(&reference), replies);
        assert_eq!(messages(&log), ours);
    }
}
