//! The sink's reply strings, built once from the configuration (docs/smtp-sink.md §7, §9).

use super::config::SinkConfig;

/// `500` for an empty line.
pub const EMPTY_COMMAND: &[u8] = b"500 5.5.2 Error: unknown command\r\n";
/// `500` for an unknown or disabled command.
pub const UNKNOWN_COMMAND: &[u8] = b"500 5.5.1 Error: unknown command\r\n";
/// XCLIENT, XFORWARD, AUTH, NOOP, VRFY, `.` (SMTP).
pub const OK: &[u8] = b"250 2.0.0 Ok\r\n";
/// MAIL and RSET.
pub const MAIL_OK: &[u8] = b"250 2.1.0 Ok\r\n";
/// RCPT.
pub const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
/// LMTP `.`, once per recipient (RFC 2033 §4.2).
pub const LMTP_DOT_OK: &[u8] = b"250 2.2.0 Ok\r\n";
/// MAIL inside a transaction.
pub const NESTED_MAIL: &[u8] = b"503 5.5.1 Error: nested MAIL command\r\n";
/// RCPT without MAIL.
pub const NEED_MAIL: &[u8] = b"503 5.5.1 Error: need MAIL command\r\n";
/// DATA without MAIL or RCPT.
pub const NEED_RCPT: &[u8] = b"503 5.5.1 Error: need RCPT command\r\n";
/// DATA accepted.
pub const START_DATA: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
/// QUIT.
pub const BYE: &[u8] = b"221 Bye\r\n";
/// `-Q`.
pub const CLOSING: &[u8] = b"421 4.0.0 Server closing connection\r\n";
/// `-A`.
pub const VIOLATION: &[u8] = b"550 This violates SMTP\r\n";

/// Replies that depend on the configuration, with CR LF.
#[derive(Debug, Clone)]
pub struct Replies {
    /// `220 ...`.
    pub greeting: Vec<u8>,
    /// `250 HOSTNAME`.
    pub helo: Vec<u8>,
    /// The whole EHLO/LHLO reply.
    pub ehlo: Vec<u8>,
    /// The EHLO/LHLO reply inside TLS: without `STARTTLS` (RFC 3207 §4.2).
    /// Equal to `ehlo` unless STARTTLS is offered.
    pub ehlo_tls: Vec<u8>,
    /// `-b` reply.
    pub soft: Vec<u8>,
    /// `-B` reply.
    pub hard: Vec<u8>,
}

fn line(parts: &[&[u8]]) -> Vec<u8> {
    let mut v: Vec<u8> = parts.concat();
    v.extend_from_slice(b"\r\n");
    v
}

impl Replies {
    /// Build every configurable reply.
    pub fn new(c: &SinkConfig) -> Self {
        let greeting = if c.paranoid {
            line(&[b"220 ********"])
        } else if c.esmtp {
            line(&[b"220 ", &c.hostname, b" ESMTP"])
        } else {
            line(&[b"220 ", &c.hostname])
        };
        let starttls = c.tls.as_ref().is_some_and(|t| !t.implicit);
        let ehlo_list = |starttls: bool| {
            let mut ehlo = line(&[b"250-", &c.hostname]);
            // Postfix's list, with the STARTTLS/AUTH/CHUNKING/SMTPUTF8
            // keywords only when their option is given: STARTTLS where
            // Postfix's smtpd puts it (before AUTH), SMTPUTF8 and CHUNKING
            // last.
            let extensions: [(bool, &[u8]); 10] = [
                (c.announce_pipelining, b"250-PIPELINING"),
                (c.announce_8bitmime, b"250-8BITMIME"),
                (starttls, b"250-STARTTLS"),
                (c.announce_auth, b"250-AUTH PLAIN LOGIN"),
                (c.xclient, b"250-XCLIENT NAME HELO"),
                (c.xforward, b"250-XFORWARD NAME ADDR PROTO HELO"),
                (c.announce_enhanced, b"250-ENHANCEDSTATUSCODES"),
                (c.announce_dsn, b"250-DSN"),
                (c.smtputf8, b"250-SMTPUTF8"),
                (c.chunking, b"250-CHUNKING"),
            ];
            for (on, text) in extensions {
                if on {
                    ehlo.extend_from_slice(&line(&[text]));
                }
            }
            ehlo.extend_from_slice(b"250 \r\n");
            ehlo
        };
        Replies {
            greeting,
            helo: line(&[b"250 ", &c.hostname]),
            ehlo: ehlo_list(starttls),
            ehlo_tls: ehlo_list(false),
            soft: line(&[&c.soft_reply]),
            hard: line(&[&c.hard_reply]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_lists() {
        let c = SinkConfig::default();
        let r = Replies::new(&c);
        assert_eq!(
            r.ehlo,
            b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
              250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
              250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n"
        );
        assert_eq!(r.greeting, b"220 smtp-sink ESMTP\r\n");
        let c = SinkConfig {
            announce_pipelining: false,
            announce_8bitmime: false,
            announce_auth: false,
            xclient: false,
            xforward: false,
            announce_enhanced: false,
            announce_dsn: false,
            ..SinkConfig::default()
        };
        assert_eq!(Replies::new(&c).ehlo, b"250-smtp-sink\r\n250 \r\n");
        let c = SinkConfig {
            tls: Some(super::super::config::TlsOptions {
                identity: super::super::config::TlsIdentity::SelfSigned,
                implicit: false,
            }),
            chunking: true,
            smtputf8: true,
            ..c
        };
        let r = Replies::new(&c);
        assert_eq!(
            r.ehlo,
            b"250-smtp-sink\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n"
        );
        assert_eq!(
            r.ehlo_tls,
            b"250-smtp-sink\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n"
        );
        let c = SinkConfig {
            esmtp: false,
            hostname: b"mx".to_vec(),
            ..SinkConfig::default()
        };
        assert_eq!(Replies::new(&c).greeting, b"220 mx\r\n");
        assert_eq!(Replies::new(&c).helo, b"250 mx\r\n");
        let c = SinkConfig {
            paranoid: true,
            esmtp: false,
            ..SinkConfig::default()
        };
        assert_eq!(Replies::new(&c).greeting, b"220 ********\r\n");
    }
}
