//! STARTTLS (RFC 3207) rules that are about bytes, not crypto.
//!
//! RFC 3207 §4.2 and §6: after the `220` reply to STARTTLS the next bytes on
//! the connection are the TLS handshake, and nothing learnt from the client
//! before TLS may be trusted. A client (or an attacker on the path) that
//! pipelines commands after `STARTTLS` in the same packet would otherwise
//! have them executed as if they had arrived inside the TLS session: the
//! CVE-2011-0411 command-injection class. So every byte already buffered
//! when the `220` is sent is discarded, never parsed. The client side has
//! the mirror rule (bytes after the `220` reply are discarded before its
//! handshake).
//!
//! Sans-IO: the caller keeps the unconsumed input in one buffer; these
//! functions say what to drop, the caller drops it.

use memchr::memchr_iter;

/// The reply to STARTTLS before the handshake (RFC 3207 §4).
pub const READY: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";
/// STARTTLS with arguments (RFC 3207 §4: the command takes none). Postfix
/// smtpd's text.
pub const NO_PARAMETERS: &[u8] = b"501 5.5.4 Syntax: STARTTLS\r\n";
/// STARTTLS inside a TLS session (RFC 3207 §4.2). Postfix smtpd's text.
pub const ALREADY_ACTIVE: &[u8] = b"554 5.5.1 Error: TLS already active\r\n";

/// What was thrown away at the STARTTLS boundary (for verbose logging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Discarded {
    /// Bytes dropped.
    pub bytes: usize,
    /// Complete CR LF lines among them (pipelined commands that were not
    /// executed).
    pub lines: usize,
}

impl Discarded {
    /// True when nothing was pending.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

/// The discard rule: given the input still buffered after the STARTTLS
/// command line was consumed, at the moment the `220` goes out, ALL of it
/// is dropped. Returns how much that was; the caller then clears exactly
/// `pending.len()` bytes.
pub fn discard_pending(pending: &[u8]) -> Discarded {
    let lines = memchr_iter(b'\n', pending)
        .filter(|&i| i > 0 && pending[i - 1] == b'\r')
        .count();
    Discarded {
        bytes: pending.len(),
        lines,
    }
}

/// True when a STARTTLS command line carries arguments (only blanks after
/// the verb are tolerated, as in Postfix smtpd which tokenises the line).
pub fn has_arguments(args: &[u8]) -> bool {
    args.iter().any(|&b| b != b' ' && b != b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::line::{split_command, Frame, LineReader};

    /// A minimal server loop over `input` arriving in `piece`-byte reads
    /// before the handshake: parses lines, "executes" each (records its
    /// verb) and at STARTTLS applies the discard rule. Bytes that arrive
    /// after the 220 went out (a later read) would be fed to the TLS
    /// handshake; they are returned separately, never executed.
    /// Returns (executed verbs, discarded, handshake bytes).
    fn serve(input: &[u8], piece: usize) -> (Vec<Vec<u8>>, Discarded, Vec<u8>) {
        let mut reads = input.chunks(piece.max(1));
        let mut buf: Vec<u8> = Vec::new();
        let mut lines = LineReader::new();
        let mut executed = Vec::new();
        loop {
            match lines.next(&buf) {
                Frame::Line(n) => {
                    let line: Vec<u8> = buf.drain(..n).collect();
                    let cmd = split_command(&line[..n - 2]);
                    executed.push(cmd.token.to_vec());
                    if cmd.token.eq_ignore_ascii_case(b"STARTTLS") {
                        let d = discard_pending(&buf);
                        buf.drain(..d.bytes);
                        lines.reset();
                        let handshake: Vec<u8> = reads.flatten().copied().collect();
                        return (executed, d, handshake);
                    }
                }
                Frame::Partial => match reads.next() {
                    Some(r) => buf.extend_from_slice(r),
                    None => return (executed, Discarded::default(), Vec::new()),
                },
                Frame::TooLong => panic!("too long"),
            }
        }
    }

    #[test]
    fn nothing_after_starttls_is_ever_executed() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"EHLO a\r\nSTARTTLS\r\n", &[b"EHLO", b"STARTTLS"]),
            (
                b"STARTTLS\r\nMAIL FROM:<evil>\r\nRCPT TO:<x>\r\n",
                &[b"STARTTLS"],
            ),
            (
                b"EHLO a\r\nSTARTTLS\r\nRSET\r\npartial",
                &[b"EHLO", b"STARTTLS"],
            ),
            (b"starttls\r\n\x16\x03\x01\x00\x05hello", &[b"starttls"]),
        ];
        for (input, want) in cases {
            let after =
                memchr::memmem::find(&input.to_ascii_uppercase(), b"STARTTLS\r\n").unwrap() + 10;
            for piece in [input.len(), 5, 1] {
                let (executed, d, handshake) = serve(input, piece);
                let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
                assert_eq!(
                    executed,
                    want,
                    "{:?} piece {piece}",
                    String::from_utf8_lossy(input)
                );
                // Every byte after STARTTLS was either discarded or left
                // for the handshake: none was parsed.
                assert_eq!(d.bytes + handshake.len(), input.len() - after);
                if piece == input.len() {
                    // One read: all of it was pending, all discarded.
                    assert_eq!(d.bytes, input.len() - after);
                    assert_eq!(d.lines, discard_pending(&input[after..]).lines);
                }
            }
        }
    }

    #[test]
    fn discard_counts() {
        let cases: &[(&[u8], Discarded)] = &[
            (b"", Discarded { bytes: 0, lines: 0 }),
            (
                b"MAIL FROM:<a>\r\n",
                Discarded {
                    bytes: 15,
                    lines: 1,
                },
            ),
            (b"A\r\nB\nC\r\nD", Discarded { bytes: 9, lines: 2 }),
            (b"\n\r\n", Discarded { bytes: 3, lines: 1 }),
        ];
        for (pending, want) in cases {
            assert_eq!(discard_pending(pending), *want);
            assert_eq!(discard_pending(pending).is_empty(), pending.is_empty());
        }
    }

    #[test]
    fn arguments() {
        assert!(!has_arguments(b""));
        assert!(!has_arguments(b"  \t"));
        assert!(has_arguments(b" x"));
    }
}
