//! Rule conditions matched on borrowed bytes: case-insensitive globs for
//! addresses, domains and HELO names, CIDR blocks for client addresses.
//! Patterns are lowercased once at load; matching never allocates.

use std::net::IpAddr;

/// A glob over bytes: `*` matches any run (also empty), `?` one byte,
/// everything else itself, ASCII case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    lower: Box<[u8]>,
}

impl Glob {
    /// A glob from its text (lowercased here, once).
    pub fn new(text: &str) -> Self {
        Glob {
            lower: text.to_ascii_lowercase().into_bytes().into_boxed_slice(),
        }
    }

    /// Whether `input` matches, comparing `input` case-insensitively.
    /// Iterative with one backtrack point: linear in practice, never
    /// exponential.
    pub fn matches(&self, input: &[u8]) -> bool {
        let p = &self.lower;
        let (mut pi, mut ii) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ii < input.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, ii));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == input[ii].to_ascii_lowercase() => {
                    pi += 1;
                    ii += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        pi = sp + 1;
                        ii = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// A client address block, IPv4 or IPv6. IPv4-mapped IPv6 clients
/// (`::ffff:a.b.c.d`) match IPv4 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    v4: bool,
    network: u128,
    mask: u128,
}

impl Cidr {
    /// Parse `ADDR` or `ADDR/LEN`. Host bits must be zero, so a typo
    /// such as `10.1.2.3/8` is an error rather than a surprise.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address or CIDR block"))?;
        let (v4, bits, max) = match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (false, u128::from(a), 128),
        };
        let len: u32 = match len {
            None => max,
            Some(l) => l
                .parse()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
        };
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (max - len)) & width_mask(max)
        };
        if bits & !mask != 0 {
            return Err(format!(
                "{text:?}: address has bits set beyond the /{len} prefix"
            ));
        }
        Ok(Cidr {
            v4,
            network: bits,
            mask,
        })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, bits) = key_parts(ip);
        v4 == self.v4 && bits & self.mask == self.network
    }
}

fn width_mask(max: u32) -> u128 {
    if max == 128 {
        u128::MAX
    } else {
        (1u128 << max) - 1
    }
}

fn key_parts(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (true, u128::from(u32::from(v4))),
            None => (false, u128::from(a)),
        },
    }
}

/// A table key for a client address: IPv4 (also IPv4-mapped) in the low
/// 32 bits with a tag bit, IPv6 as is.
pub fn ip_key(ip: IpAddr) -> u128 {
    match key_parts(ip) {
        (true, bits) => bits | 1 << 127,
        (false, bits) => bits,
    }
}

/// The mailbox in a MAIL or RCPT argument (the text after `FROM:`/`TO:`):
/// inside `<...>` when present, else up to the first blank; source routes
/// (`@a,@b:user@d`, RFC 5321 §4.1.2) dropped.
pub fn mailbox(args: &[u8]) -> &[u8] {
    let args = trim_start(args);
    let path = match args.first() {
        Some(b'<') => {
            let end = memchr::memchr(b'>', args).unwrap_or(args.len());
            &args[1..end]
        }
        _ => {
            let end = args
                .iter()
                .position(|&b| b == b' ' || b == b'\t')
                .unwrap_or(args.len());
            &args[..end]
        }
    };
    match (path.first(), memchr::memchr(b':', path)) {
        (Some(b'@'), Some(colon)) => &path[colon + 1..],
        _ => path,
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &b[n..]
}

/// The domain of a mailbox (after the last `@`), empty without one.
pub fn domain(mailbox: &[u8]) -> &[u8] {
    match memchr::memrchr(b'@', mailbox) {
        Some(at) => &mailbox[at + 1..],
        None => b"",
    }
}

/// The local part of a mailbox (before the last `@`).
pub fn local_part(mailbox: &[u8]) -> &[u8] {
    match memchr::memrchr(b'@', mailbox) {
        Some(at) => &mailbox[..at],
        None => mailbox,
    }
}

/// 64-bit FNV-1a over ASCII-lowercased bytes: table keys for domains and
/// greylist triples without copying them. Deterministic (no per-process
/// key), which `--seed` repeatability needs; a sink under test is not
/// exposed to adversarial collisions, and a collision only merges two
/// entries' counts.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A fresh hasher.
    pub fn new() -> Self {
        KeyHasher(Self::OFFSET)
    }

    fn byte(mut self, b: u8) -> Self {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        self
    }

    /// Feed text bytes, lowercased.
    pub fn bytes(self, bytes: &[u8]) -> Self {
        bytes
            .iter()
            .fold(self, |h, &b| h.byte(b.to_ascii_lowercase()))
    }

    /// Feed a separator that cannot occur inside a mailbox, so that
    /// `("ab", "c")` and `("a", "bc")` differ.
    pub fn separator(mut self) -> Self {
        self.0 = (self.0 ^ 0x100).wrapping_mul(Self::PRIME);
        self
    }

    /// Feed a client address key (binary: not case-folded).
    pub fn ip(self, key: u128) -> Self {
        key.to_le_bytes()
            .iter()
            .fold(self, |h, &b| h.byte(b))
            .separator()
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        let g = |p: &str, s: &str| Glob::new(p).matches(s.as_bytes());
        assert!(g("*@example.com", "user@EXAMPLE.com"));
        assert!(!g("*@example.com", "user@example.comx"));
        assert!(g("user*@*", "user42@x.org"));
        assert!(!g("user*@*", "xuser@x.org"));
        assert!(g("Gmail.com", "gmail.COM"));
        assert!(g("*.example.net", "mx.a.example.net"));
        assert!(!g("*.example.net", "example.net"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("*", ""));
        assert!(!g("a", ""));
        assert!(g("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!g("*a*b*c", "xxaxxbxxcxx"));
        // Many stars against a long non-matching input stays quick.
        let long = "a".repeat(4000);
        assert!(!g("*a*a*a*a*a*a*a*b", &long));
    }

    #[test]
    fn cidr_v4_v6_and_mapped() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.200.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("::a00:1".parse().unwrap()));
        let six = Cidr::parse("2001:db8::/32").unwrap();
        assert!(six.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!six.contains("2001:db9::1".parse().unwrap()));
        assert!(!six.contains("10.0.0.1".parse().unwrap()));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::/0")
            .unwrap()
            .contains("2001::1".parse().unwrap()));
        assert!(Cidr::parse("[::1]/128").is_ok());
        assert!(Cidr::parse("10.1.2.3/8")
            .unwrap_err()
            .contains("beyond the /8"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("example.com")
            .unwrap_err()
            .contains("not an IPv4"));
    }

    #[test]
    fn mailbox_domain_local_part() {
        assert_eq!(mailbox(b"<a@b.c> NOTIFY=NEVER"), b"a@b.c");
        assert_eq!(mailbox(b" a@b.c SIZE=10"), b"a@b.c");
        assert_eq!(mailbox(b"<>"), b"");
        assert_eq!(mailbox(b"<@relay,@r2:u@d>"), b"u@d");
        assert_eq!(mailbox(b"<unterminated@x"), b"unterminated@x");
        assert_eq!(domain(b"a@b@c.d"), b"c.d");
        assert_eq!(domain(b"postmaster"), b"");
        assert_eq!(local_part(b"defer+1@x"), b"defer+1");
    }

    #[test]
    fn keys_fold_case_and_separate_fields() {
        let h = |a: &str, b: &str| {
            KeyHasher::new()
                .bytes(a.as_bytes())
                .separator()
                .bytes(b.as_bytes())
                .finish()
        };
        assert_eq!(h("A@X", "b"), h("a@x", "B"));
        assert_ne!(h("ab", "c"), h("a", "bc"));
        let v4 = ip_key("10.0.0.1".parse().unwrap());
        assert_eq!(v4, ip_key("::ffff:10.0.0.1".parse().unwrap()));
        assert_ne!(v4, ip_key("::a00:1".parse().unwrap()));
        // Address bytes that look like ASCII letters are not case-folded.
        let a = KeyHasher::new()
            .ip(ip_key("10.0.0.65".parse().unwrap()))
            .finish();
        let b = KeyHasher::new()
            .ip(ip_key("10.0.0.97".parse().unwrap()))
            .finish();
        assert_ne!(a, b);
    }
}
