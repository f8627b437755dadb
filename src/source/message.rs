//! The bytes of a message: the body is built once per run and shared by
//! every session; only the small header block is written per message.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use memchr::memchr_iter;

use crate::diag::{errno_text, Error, Result};

use super::config::SourceConfig;

/// The default body (no `-l`, no `-F`, or an empty `-F` file).
pub const DEFAULT_BODY: &[u8] =
    b"La de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n";

/// Length of one generated `-l` body line, CRLF included.
const GENERATED_LINE: usize = 80;

/// The generated body of `-l length` (docs/smtp-source.md §7.2): `length` bytes of `X` where
/// every complete 80-byte line (one that is not the last 1..80 bytes) starts
/// with the digit `k mod 10` and ends in CRLF, followed by one CRLF.
pub fn generated_body(length: usize) -> Vec<u8> {
    let mut buf = vec![b'X'; length + 2];
    let mut k = 1;
    while GENERATED_LINE * k < length {
        buf[GENERATED_LINE * (k - 1)] = b'0' + (k % 10) as u8;
        buf[GENERATED_LINE * k - 2] = b'\r';
        buf[GENERATED_LINE * k - 1] = b'\n';
        k += 1;
    }
    buf[length] = b'\r';
    buf[length + 1] = b'\n';
    buf
}

/// The wire form of a `-F` file (docs/smtp-source.md §7.4): split at LF, a leading `.` is
/// doubled (RFC 5321 §4.5.2 transparency), CR bytes are kept, each line gets
/// CRLF, and one extra CRLF follows the last line. An empty file gives the
/// default body.
pub fn file_body(content: &[u8]) -> Vec<u8> {
    if content.is_empty() {
        return DEFAULT_BODY.to_vec();
    }
    let mut out = Vec::with_capacity(content.len() + content.len() / 16 + 8);
    let mut start = 0;
    let push_line = |line: &[u8], out: &mut Vec<u8>| {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    };
    for lf in memchr_iter(b'\n', content) {
        push_line(&content[start..lf], &mut out);
        start = lf + 1;
    }
    if start < content.len() {
        push_line(&content[start..], &mut out);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Read a `-F` file: `open FILE: ERRNO` / `read FILE: ERRNO` on failure.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let shown = crate::diag::sanitize(path.as_os_str().as_bytes());
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::fatal(format!("open {shown}: {}", errno_text(&e))))?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|e| Error::fatal(format!("read {shown}: {}", errno_text(&e))))?;
    Ok(content)
}

/// What a session needs to write a message: built once, shared read-only.
#[derive(Debug)]
pub struct Template {
    /// Headers are generated (not `-o`, not `-F`).
    pub headers: bool,
    /// `From: <SENDER>\r\nTo: <` prefix bytes.
    pub from_line: Vec<u8>,
    /// `Subject: ...\r\n` or empty.
    pub subject_line: Vec<u8>,
    /// The hostname for Message-Id.
    pub hostname: Vec<u8>,
    /// The body, without the final `.` line.
    pub body: Arc<[u8]>,
}

impl Template {
    /// Append the header block of one message to `out`.
    ///
    /// `to` is the `To:` address (numbered or not, written by the caller's
    /// closure), `date` the per-run Date value, `fd` the socket's descriptor
    /// and `remaining` the global counter now (C `int`, printed `%04x`).
    pub fn write_headers(
        &self,
        out: &mut BytesMut,
        to: impl FnOnce(&mut BytesMut),
        date: &str,
        pid: u32,
        fd: i32,
        remaining: i32,
    ) {
        if !self.headers {
            return;
        }
        out.extend_from_slice(&self.from_line);
        out.extend_from_slice(b"To: <");
        to(out);
        out.extend_from_slice(b">\r\nDate: ");
        out.extend_from_slice(date.as_bytes());
        // `%04x` of C ints: negative values print as 32-bit two's complement.
        let _ = write!(
            out,
            "\r\nMessage-Id: <{:04x}.{:04x}.{:04x}@",
            pid, fd as u32, remaining as u32
        );
        out.extend_from_slice(&self.hostname);
        out.extend_from_slice(b">\r\n");
        out.extend_from_slice(&self.subject_line);
        out.extend_from_slice(b"\r\n");
    }
}

/// The message body of a run (docs/smtp-source.md §7): the `-F` file, the `-l` generated
/// body, or the default one; without the final `.` line.
pub fn body(config: &SourceConfig) -> Result<Vec<u8>> {
    Ok(match (&config.file, config.length) {
        (Some(path), _) => file_body(&read_file(path)?),
        (None, Some(length)) => generated_body(length),
        (None, None) => DEFAULT_BODY.to_vec(),
    })
}

/// The commands and content every session sends, built once per run.
#[derive(Debug)]
pub struct Message {
    /// The content (headers rendered per message).
    pub template: Template,
    /// `HELO host` / `LHLO host`.
    pub helo: Vec<u8>,
    /// `MAIL FROM:<sender>`.
    pub mail: Vec<u8>,
    /// The recipient split at its last `@`: local part, `@domain`.
    rcpt_local: Vec<u8>,
    rcpt_domain: Vec<u8>,
}

impl Message {
    /// Build the run's message for `host` (the `-M` or system name) from
    /// the options: sender and recipient default to `foo@host`.
    pub fn build(config: &SourceConfig, host: &[u8], body: Vec<u8>) -> Message {
        let default_addr = || [&b"foo@"[..], host].concat();
        let sender = config.sender.clone().unwrap_or_else(default_addr);
        let recipient = config.recipient.clone().unwrap_or_else(default_addr);
        let split = recipient
            .iter()
            .rposition(|&b| b == b'@')
            .unwrap_or(recipient.len());
        let (rcpt_local, rcpt_domain) = recipient.split_at(split);
        let template = Template {
            headers: !config.old_mode && config.file.is_none(),
            from_line: [&b"From: <"[..], &sender, b">\r\n"].concat(),
            subject_line: match &config.subject {
                Some(s) => [&b"Subject: "[..], s, b"\r\n"].concat(),
                None => Vec::new(),
            },
            hostname: host.to_vec(),
            body: body.into(),
        };
        let verb: &[u8] = if config.lmtp { b"LHLO " } else { b"HELO " };
        Message {
            template,
            helo: [verb, host].concat(),
            mail: [&b"MAIL FROM:<"[..], &sender, b">"].concat(),
            rcpt_local: rcpt_local.to_vec(),
            rcpt_domain: rcpt_domain.to_vec(),
        }
    }

    /// LOCAL [n] DOMAIN.
    pub fn write_recipient(&self, out: &mut BytesMut, n: Option<i32>) {
        out.extend_from_slice(&self.rcpt_local);
        if let Some(n) = n {
            let _ = write!(out, "{n}");
        }
        out.extend_from_slice(&self.rcpt_domain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(digit: Option<u8>) -> Vec<u8> {
        let mut l = Vec::new();
        match digit {
            Some(d) => {
                l.push(b'0' + d);
                l.extend(std::iter::repeat_n(b'X', 77));
            }
            None => l.extend(std::iter::repeat_n(b'X', 78)),
        }
        l.extend_from_slice(b"\r\n");
        l
    }

    #[test]
    fn generated_body_table() {
        let x = |n: usize| {
            let mut v = vec![b'X'; n];
            v.extend_from_slice(b"\r\n");
            v
        };
        let cat = |parts: Vec<Vec<u8>>| parts.concat();
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (1, x(1)),
            (2, x(2)),
            (79, x(79)),
            (80, x(80)),
            (81, cat(vec![line(Some(1)), x(1)])),
            (159, cat(vec![line(Some(1)), x(79)])),
            (160, cat(vec![line(Some(1)), x(80)])),
            (161, cat(vec![line(Some(1)), line(Some(2)), x(1)])),
            (
                801,
                cat((1..=10)
                    .map(|k| line(Some((k % 10) as u8)))
                    .chain([x(1)])
                    .collect()),
            ),
        ];
        for (len, want) in cases {
            let got = generated_body(len);
            assert_eq!(got.len(), len + 2);
            assert_eq!(got, want, "-l {len}");
        }
        // Every line of a big body is at most 80 bytes + CRLF (the tail).
        let big = generated_body(5120);
        assert_eq!(big.len(), 5122);
        assert!(big.split(|&b| b == b'\n').all(|l| l.len() <= 81));
    }

    #[test]
    fn file_body_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", DEFAULT_BODY),
            (
                b"Subject: test\n\n.dot line\n..two dots\n\nlast\r\nnoeol",
                b"Subject: test\r\n\r\n..dot line\r\n...two dots\r\n\r\nlast\r\r\nnoeol\r\n\r\n",
            ),
            (b".x\na\r\nz", b"..x\r\na\r\r\nz\r\n\r\n"),
            (b"a\n", b"a\r\n\r\n"),
            (b"\n", b"\r\n\r\n"),
            (b"n\x00ul\n", b"n\x00ul\r\n\r\n"),
            (b".", b"..\r\n\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(file_body(input), *want, "{input:?}");
        }
    }

    #[test]
    fn headers() {
        let t = Template {
            headers: true,
            from_line: b"From: <foo@vm>\r\n".to_vec(),
            subject_line: b"Subject: hi\r\n".to_vec(),
            hostname: b"vm".to_vec(),
            body: Arc::from(&b""[..]),
        };
        let mut out = BytesMut::new();
        t.write_headers(
            &mut out,
            |o| o.extend_from_slice(b"foo@vm"),
            "Sat, 28 Nov 2026 11:55:59 +0000 (UTC)",
            0x237e,
            3,
            -1,
        );
        assert_eq!(
            &out[..],
            b"From: <foo@vm>\r\nTo: <foo@vm>\r\nDate: Sat, 28 Nov 2026 11:55:59 +0000 (UTC)\r\n\
Message-Id: <237e.0003.ffffffff@vm>\r\nSubject: hi\r\n\r\n"
        );
    }
}
