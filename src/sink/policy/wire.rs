//! Policy replies: validated once at load and rendered to wire bytes
//! (RFC 5321 §4.2 reply lines, RFC 3463 enhanced status codes).

/// Longest reply line, CR LF included (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;
/// Most lines in one reply: a multi-line reply longer than this is a
/// mistake in the file, not something a provider sends.
pub const MAX_REPLY_LINES: usize = 32;

/// What a reply announces, by its first digit (RFC 5321 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `2yz`.
    Success,
    /// `4yz`.
    Transient,
    /// `5yz`.
    Permanent,
}

impl Class {
    /// The class of a reply code.
    pub fn of(code: u16) -> Option<Self> {
        match code / 100 {
            2 => Some(Class::Success),
            4 => Some(Class::Transient),
            5 => Some(Class::Permanent),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Success => "2xx",
            Class::Transient => "4xx",
            Class::Permanent => "5xx",
        }
    }
}

/// One reply, rendered to wire bytes with CR LF after every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    bytes: Box<[u8]>,
}

impl Reply {
    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The whole reply as sent, every line ending in CR LF.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the server closes the connection after sending it: `421`
    /// (RFC 5321 §3.8).
    pub fn closes(&self) -> bool {
        self.code == 421
    }

    /// Parse and render a reply written as in a transcript: one or more
    /// lines separated by LF, each starting with the same code followed by
    /// SPACE, `-` or the end of the line. The separators are rewritten
    /// (`-` on every line but the last), so a file may use either.
    /// `allowed` lists the acceptable classes; `codes`, if not empty, the
    /// only acceptable codes.
    pub fn parse(text: &str, allowed: &[Class], codes: &[u16]) -> Result<Reply, String> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        if lines.len() > MAX_REPLY_LINES {
            return Err(format!(
                "reply has {} lines, at most {MAX_REPLY_LINES} allowed",
                lines.len()
            ));
        }
        let code = parse_code(lines[0])?;
        let class = Class::of(code).ok_or_else(|| {
            format!("reply code {code} is not a 2xx, 4xx or 5xx code (RFC 5321 §4.2.1)")
        })?;
        if !allowed.contains(&class) {
            let names: Vec<&str> = allowed.iter().map(|c| c.name()).collect();
            return Err(format!(
                "reply code {code} here must be {}",
                names.join(" or ")
            ));
        }
        if !codes.is_empty() && !codes.contains(&code) {
            let list: Vec<String> = codes.iter().map(u16::to_string).collect();
            return Err(format!(
                "reply code {code} here must be one of {}",
                list.join(", ")
            ));
        }
        let mut bytes = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let rest = line_text(line, code, i + 1)?;
            check_enhanced(rest, code, i + 1)?;
            let sep = if i + 1 == lines.len() { b' ' } else { b'-' };
            let start = bytes.len();
            bytes.extend_from_slice(&line.as_bytes()[..3]);
            bytes.push(sep);
            bytes.extend_from_slice(rest.as_bytes());
            bytes.extend_from_slice(b"\r\n");
            if bytes.len() - start > MAX_REPLY_LINE {
                return Err(format!(
                    "reply line {} is longer than {MAX_REPLY_LINE} bytes (RFC 5321 §4.5.3.1.5)",
                    i + 1
                ));
            }
        }
        Ok(Reply {
            code,
            bytes: bytes.into_boxed_slice(),
        })
    }
}

fn parse_code(line: &str) -> Result<u16, String> {
    let b = line.as_bytes();
    if b.len() < 3
        || !b[..3].iter().all(u8::is_ascii_digit)
        || b.get(3).is_some_and(u8::is_ascii_digit)
    {
        return Err(format!("reply {line:?} does not start with a 3-digit code"));
    }
    Ok(line[..3].parse().unwrap_or(0))
}

/// The text after `CODE` and its separator, checking every line has the
/// first line's code and only printable ASCII.
fn line_text(line: &str, code: u16, number: usize) -> Result<&str, String> {
    if parse_code(line).ok() != Some(code) {
        return Err(format!(
            "reply line {number} does not start with the first line's code {code}"
        ));
    }
    let rest = &line[3..];
    let rest = match rest.as_bytes().first() {
        None => rest,
        Some(b' ' | b'-') => &rest[1..],
        Some(_) => {
            return Err(format!(
                "reply line {number}: code {code} must be followed by a space or '-'"
            ))
        }
    };
    if let Some(bad) = rest
        .bytes()
        .find(|b| !(0x20..=0x7e).contains(b) && *b != b'\t')
    {
        return Err(format!(
            "reply line {number} has a control or non-ASCII byte 0x{bad:02x}"
        ));
    }
    Ok(rest)
}

/// An enhanced status code (`C.S.D`, RFC 3463 §2) at the start of the text
/// must have the reply code's class.
fn check_enhanced(text: &str, code: u16, number: usize) -> Result<(), String> {
    let word = text.split(' ').next().unwrap_or("");
    let parts: Vec<&str> = word.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return Ok(());
    }
    let class = (code / 100).to_string();
    if parts[0] != class {
        return Err(format!(
            "reply line {number}: enhanced status code {word} does not match reply code {code} (RFC 3463 §2)"
        ));
    }
    Ok(())
}

/// Replies of one outcome, chosen among at random.
#[derive(Debug, Clone)]
pub struct ReplySet {
    replies: Box<[Reply]>,
}

impl ReplySet {
    /// A set of at least one reply.
    pub fn new(replies: Vec<Reply>) -> Option<Self> {
        (!replies.is_empty()).then(|| ReplySet {
            replies: replies.into_boxed_slice(),
        })
    }

    /// The reply for a random draw.
    pub fn pick(&self, draw: u32) -> &Reply {
        let len = self.replies.len() as u64;
        &self.replies[((u64::from(draw) * len) >> 32) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: &[Class] = &[Class::Success, Class::Transient, Class::Permanent];

    #[test]
    fn single_line() {
        let r = Reply::parse("450 4.2.0 Greylisted", &[Class::Transient], &[]).unwrap();
        assert_eq!(r.bytes(), b"450 4.2.0 Greylisted\r\n");
        assert_eq!(r.code(), 450);
        assert!(!r.closes());
        assert!(Reply::parse("421 4.7.0 Bye", ANY, &[]).unwrap().closes());
    }

    #[test]
    fn multi_line_separators_rewritten() {
        let r = Reply::parse(
            "550-5.1.1 first\n550 5.1.1 second\n550 5.1.1 third\n",
            ANY,
            &[],
        )
        .unwrap();
        assert_eq!(
            r.bytes(),
            b"550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n"
        );
        let bare = Reply::parse("250", ANY, &[]).unwrap();
        assert_eq!(bare.bytes(), b"250 \r\n");
    }

    #[test]
    fn rejects_bad_replies() {
        let err = |t: &str, allowed: &[Class], codes: &[u16]| {
            Reply::parse(t, allowed, codes).unwrap_err()
        };
        assert!(err("45 short", ANY, &[]).contains("3-digit"));
        assert!(err("4500 x", ANY, &[]).contains("3-digit"));
        assert!(err("350 x", ANY, &[]).contains("2xx, 4xx or 5xx"));
        assert!(err("550 5.1.1 no", &[Class::Transient], &[]).contains("must be 4xx"));
        assert!(err("450 5.1.1 no", ANY, &[]).contains("does not match"));
        assert!(err("450 ok\n451 other", ANY, &[]).contains("line 2"));
        assert!(err("450x", ANY, &[]).contains("space or '-'"));
        assert!(err("450 a\u{7}", ANY, &[]).contains("0x07"));
        assert!(err("450 4.7.0 x", ANY, &[421]).contains("one of 421"));
        let long = format!("450 {}", "x".repeat(600));
        assert!(err(&long, ANY, &[]).contains("512"));
        let many = vec!["450 x"; MAX_REPLY_LINES + 1].join("\n");
        assert!(err(&many, ANY, &[]).contains("lines"));
    }

    #[test]
    fn pick_covers_every_reply() {
        let set = ReplySet::new(vec![
            Reply::parse("450 a", ANY, &[]).unwrap(),
            Reply::parse("450 b", ANY, &[]).unwrap(),
        ])
        .unwrap();
        assert_eq!(set.pick(0).bytes(), b"450 a\r\n");
        assert_eq!(set.pick(u32::MAX).bytes(), b"450 b\r\n");
        assert!(ReplySet::new(Vec::new()).is_none());
    }
}
