//! Engine-level tests: parsing errors, rule order, outcomes, triggers,
//! limits, greylisting, tarpits, determinism, accounting, allocation.

use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's allocations, so a test can assert that a code path
/// allocates nothing (other tests' threads do not disturb the count).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes this thread allocated and has not freed.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize, allocation: bool) {
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + bytes));
    if allocation {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, true);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), false);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, true);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

const SEC: Duration = Duration::from_secs(1);

fn engine(text: &str) -> PolicyEngine {
    PolicyEngine::new(
        Policy::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}")),
        1,
    )
}

fn error(text: &str) -> String {
    Policy::parse(text, "test.toml").unwrap_err().to_string()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// Connect, HELO and MAIL, expecting all accepted.
fn open(e: &PolicyEngine, client: &str, sender: &str) -> SessionPolicy {
    let mut s = e.session();
    assert!(e.on_connect(&mut s, ip(client), Duration::ZERO).is_accept());
    e.on_helo(&mut s, b"client.example");
    assert!(e
        .on_mail(&mut s, sender.as_bytes(), Duration::ZERO)
        .is_accept());
    s
}

fn rcpt_reply(
    e: &PolicyEngine,
    s: &mut SessionPolicy,
    rcpt: &str,
    now: Duration,
) -> Option<Vec<u8>> {
    e.on_rcpt(s, rcpt.as_bytes(), now)
        .bytes()
        .map(<[u8]>::to_vec)
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = error("[greylist]\ndelay = \"1s\"\nexpire = \n");
    assert!(e.starts_with("test.toml:3:10: "), "{e}");
    let e = error("[[rule]]\nname = \"a\"\nrecipent = [\"x\"]\n");
    assert!(
        e.starts_with("test.toml:3:1: unknown field `recipent`"),
        "{e}"
    );
    let p = Policy::parse("[limits]\nconnections_per_client = \"ten\"\n", "f").unwrap_err();
    assert_eq!(p.position(), Some((2, 26)));
}

#[test]
fn checked_errors_have_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("[[default.rcpt]]\noutcome = \"defer\"\nprobability = 0.5\nreplies = [\"550 5.1.1 x\"]\n",
         "test.toml:4:12: reply code 550 here must be 4xx"),
        ("[[default.rcpt]]\noutcome = \"defer\"\nprobability = 1.5\nreplies = [\"450 x\"]\n",
         "test.toml:3:15: probability 1.5 must be between 0 and 1"),
        ("[[default.mail]]\noutcome = \"defer\"\nprobability = 0.6\nreplies = [\"450 x\"]\n\
          [[default.mail]]\noutcome = \"bounce\"\nprobability = 0.6\nreplies = [\"550 x\"]\n",
         "test.toml:7:15: the mail probabilities add up to 1.2, more than 1"),
        ("[[rule]]\nclient = [\"10.0.0.1/8\"]\n", "test.toml:2:11: \"10.0.0.1/8\": address has bits set"),
        ("[[rule]]\nname = \"x\"\n[[rule]]\nname = \"x\"\n", "test.toml:4:8: rule name \"x\" is already used"),
        ("[[rule]]\nname = \"default\"\n", "rule name \"default\" is already used"),
        ("[[rule]]\nname = \"a b\"\n", "rule name \"a b\" must be"),
        ("[[default.connect]]\noutcome = \"accept\"\nprobability = 0.1\n", "connect outcomes are defer (421) or bounce (554)"),
        ("[[default.connect]]\noutcome = \"defer\"\nprobability = 0.1\nreplies = [\"450 x\"]\n", "must be one of 421"),
        ("[[default.rcpt]]\noutcome = \"bounce\"\nprobability = 0.1\n", "needs at least one reply"),
        ("[[default.rcpt]]\noutcome = \"drop\"\nprobability = 0.1\n", "outcome \"drop\" must be accept, defer or bounce"),
        ("[default.tarpit]\nrcpt = \"2x\"\n", "test.toml:2:8: bad duration \"2x\""),
        ("[default.tarpit]\nrcpt = \"5s..1s\"\n", "runs backwards"),
        ("[default.tarpit]\nrcpt = \"2h\"\n", "longer than an hour"),
        ("[limits]\nconnections_per_client = 0\n", "test.toml:2:26: connections_per_client must be a positive"),
        ("[limits.client_messages]\ncount = 5\ninterval = \"1m\"\nreply = \"450 x\\n550 y\"\n", "line 2 does not start"),
        ("[limits.domain_messages]\ncount = 5\ninterval = \"1m\"\nreply = \"454 4.7.0 x\"\n", "must be one of 421, 450, 451, 452"),
        ("[limits.domain_messages]\ncount = -1\ninterval = \"1m\"\n", "count must be a positive"),
        ("[greylist]\ndelay = \"10m\"\nexpire = \"1m\"\n", "test.toml:3:10: greylist expire must not be shorter"),
        ("[triggers]\ndefer = \"a@b\"\n", "must be a non-empty local part"),
        ("[deadlines]\ncommand = \"0s\"\n", "a deadline must be longer than zero"),
        ("[deadlines]\nreply = \"451 4.4.2 slow\"\n", "must be one of 421"),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.contains(want), "{text:?}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn load_reads_a_file_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "[greylist]\n").unwrap();
    assert!(Policy::load(&path).unwrap().greylist.enabled);
    let missing = Policy::load(&dir.path().join("none.toml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .ends_with("none.toml: No such file or directory"),
        "{missing}"
    );
    assert_eq!(missing.position(), None);
}

#[test]
fn empty_policy_accepts_everything_without_delay() {
    let e = engine("");
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    let d = e.on_rcpt(&mut s, b"<x@y>", Duration::ZERO);
    assert_eq!(
        d,
        Decision {
            delay: Duration::ZERO,
            reply: None
        }
    );
    assert!(e.on_message_end(&mut s, Duration::ZERO).is_accept());
    assert_eq!(
        e.snapshot().rule("default").unwrap().get(Outcome::Accepted),
        1
    );
    assert!(e.policy().deadlines().command.is_none());
}

const RULES: &str = r#"
[[rule]]
name = "lan"
client = ["10.0.0.0/8", "2001:db8::/32"]
[[rule.rcpt]]
outcome = "bounce"
probability = 1.0
replies = ["550 5.7.1 lan"]

[[rule]]
name = "both"
recipient_domain = ["example.com"]
sender_domain = ["*.org"]
[[rule.rcpt]]
outcome = "defer"
probability = 1.0
replies = ["451 4.7.1 both"]

[[rule]]
name = "users"
recipient = ["user*@*"]
helo = ["*.example"]
[[rule.rcpt]]
outcome = "defer"
probability = 1.0
replies = ["452 4.2.2 users"]
"#;

#[test]
fn rules_first_match_wins_and_conditions_combine() {
    let e = engine(RULES);
    let cases = [
        (
            "10.9.9.9",
            "<a@x.org>",
            "<user1@example.com>",
            Some(&b"550 5.7.1 lan\r\n"[..]),
        ),
        (
            "2001:db8::5",
            "<a@x.org>",
            "<z@z>",
            Some(b"550 5.7.1 lan\r\n"),
        ),
        (
            "192.0.2.1",
            "<a@x.ORG>",
            "<user1@Example.com>",
            Some(b"451 4.7.1 both\r\n"),
        ),
        (
            "192.0.2.1",
            "<a@x.net>",
            "<user1@example.com>",
            Some(b"452 4.2.2 users\r\n"),
        ),
        ("192.0.2.1", "<a@x.net>", "<other@example.com>", None),
        ("192.0.2.1", "<>", "<USER@x>", Some(b"452 4.2.2 users\r\n")),
    ];
    for (client, sender, rcpt, want) in cases {
        let mut s = open(&e, client, sender);
        assert_eq!(
            rcpt_reply(&e, &mut s, rcpt, Duration::ZERO).as_deref(),
            want,
            "{client} {sender} {rcpt}"
        );
    }
    // Without HELO, the `helo` condition fails.
    let mut s = e.session();
    e.on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO);
    e.on_mail(&mut s, b"<a@x.net>", Duration::ZERO);
    assert_eq!(rcpt_reply(&e, &mut s, "<user1@x>", Duration::ZERO), None);
    let snap = e.snapshot();
    assert_eq!(snap.rule("lan").unwrap().get(Outcome::Bounced), 2);
    assert_eq!(snap.rule("users").unwrap().get(Outcome::Deferred), 2);
    assert_eq!(snap.rules.last().unwrap().rule, DEFAULT_RULE);
}

#[test]
fn outcomes_at_each_stage() {
    let e = engine(
        r#"
[[rule]]
client = ["192.0.2.66"]
[[rule.connect]]
outcome = "bounce"
probability = 1.0
replies = ["554 5.7.1 go away"]

[[rule]]
sender = ["bad@*"]
[[rule.mail]]
outcome = "bounce"
probability = 1.0
replies = ["553 5.7.1 no"]

[[default.data]]
outcome = "defer"
probability = 1.0
replies = ["421-4.3.0 first\n421 4.3.0 closing"]
"#,
    );
    let mut s = e.session();
    let d = e.on_connect(&mut s, ip("192.0.2.66"), Duration::ZERO);
    assert_eq!(d.bytes(), Some(&b"554 5.7.1 go away\r\n"[..]));
    assert!(!d.closes());
    let mut s = e.session();
    assert!(e
        .on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO)
        .is_accept());
    assert_eq!(
        e.on_mail(&mut s, b"<BAD@x>", Duration::ZERO).bytes(),
        Some(&b"553 5.7.1 no\r\n"[..])
    );
    e.on_mail(&mut s, b"<good@x>", Duration::ZERO);
    assert!(e.on_rcpt(&mut s, b"<r@x>", Duration::ZERO).is_accept());
    let d = e.on_message_end(&mut s, Duration::ZERO);
    assert_eq!(
        d.bytes(),
        Some(&b"421-4.3.0 first\r\n421 4.3.0 closing\r\n"[..])
    );
    assert!(d.closes());
    let snap = e.snapshot();
    assert_eq!(snap.rule("rule-1").unwrap().get(Outcome::Bounced), 1);
    assert_eq!(snap.rule("rule-2").unwrap().get(Outcome::Bounced), 1);
    assert_eq!(snap.rule("default").unwrap().get(Outcome::Deferred), 1);
    assert_eq!(snap.total(Outcome::Accepted), 0);
}

const MIXED: &str = r#"
[[default.rcpt]]
outcome = "defer"
probability = 0.3
replies = ["450 4.2.1 a", "451 4.3.0 b"]
[[default.rcpt]]
outcome = "bounce"
probability = 0.1
replies = ["550 5.1.1 c"]
[[default.rcpt]]
outcome = "accept"
probability = 0.1
replies = ["250 2.1.5 custom"]
"#;

fn run_mixed(seed: u64, n: usize) -> Vec<Option<Vec<u8>>> {
    let e = PolicyEngine::new(Policy::parse(MIXED, "m").unwrap(), seed);
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    (0..n)
        .map(|i| rcpt_reply(&e, &mut s, &format!("<r{i}@d>"), Duration::ZERO))
        .collect()
}

#[test]
fn probabilities_and_seed_repeatability() {
    let replies = run_mixed(7, 10_000);
    let count = |want: &[u8]| {
        replies
            .iter()
            .filter(|r| r.as_deref() == Some(want))
            .count()
    };
    let defers = count(b"450 4.2.1 a\r\n") + count(b"451 4.3.0 b\r\n");
    // Deterministic for the seed; the bounds are the binomial's ±5 sigma.
    assert!((2770..=3230).contains(&defers), "{defers}");
    assert!(count(b"450 4.2.1 a\r\n") > 1000 && count(b"451 4.3.0 b\r\n") > 1000);
    assert!((850..=1150).contains(&count(b"550 5.1.1 c\r\n")));
    assert!((850..=1150).contains(&count(b"250 2.1.5 custom\r\n")));
    assert_eq!(
        replies,
        run_mixed(7, 10_000),
        "same seed, same replies in the same order"
    );
    assert_ne!(
        replies[..50],
        run_mixed(8, 50)[..],
        "another seed, other replies"
    );
}

#[test]
fn triggers_win_in_any_policy() {
    let always_accept = "[[default.rcpt]]\noutcome = \"accept\"\nprobability = 1.0\n";
    for text in ["", RULES, MIXED, always_accept] {
        let e = engine(text);
        let mut s = open(&e, "192.0.2.1", "<a@b>");
        for _ in 0..20 {
            let d = rcpt_reply(&e, &mut s, "<defer@x>", Duration::ZERO).unwrap();
            assert!(
                d.starts_with(b"451 4.3.0 "),
                "{}",
                String::from_utf8_lossy(&d)
            );
            let b = rcpt_reply(&e, &mut s, "<Bounce+7@x>", Duration::ZERO).unwrap();
            assert!(b.starts_with(b"550 5.1.1 "));
            let g = rcpt_reply(&e, &mut s, "<greylist@x>", Duration::ZERO).unwrap();
            assert!(g.starts_with(b"450 4.2.0 "));
        }
        assert_ne!(
            rcpt_reply(&e, &mut s, "<deferred@x>", Duration::ZERO).as_deref(),
            Some(&b"451 4.3.0 Temporary failure, please try again later\r\n"[..])
        );
    }
    let e = engine("[triggers]\ndefer = \"Later\"\ndefer_reply = \"421 4.7.0 bye\"\n");
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    assert_eq!(
        rcpt_reply(&e, &mut s, "<later@x>", Duration::ZERO).as_deref(),
        Some(&b"421 4.7.0 bye\r\n"[..])
    );
    assert_eq!(rcpt_reply(&e, &mut s, "<defer@x>", Duration::ZERO), None);
}

#[test]
fn greylisting_refuses_until_the_delay_then_accepts() {
    let e = engine(
        "[greylist]\ndelay = \"60s\"\nexpire = \"1h\"\nreply = \"450 4.2.0 come back later\"\n",
    );
    let gl = Some(b"450 4.2.0 come back later\r\n".to_vec());
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    assert_eq!(rcpt_reply(&e, &mut s, "<r@d>", Duration::ZERO), gl);
    assert_eq!(rcpt_reply(&e, &mut s, "<r@d>", 59 * SEC), gl, "too early");
    assert_eq!(rcpt_reply(&e, &mut s, "<r@d>", 60 * SEC), None);
    assert_eq!(
        rcpt_reply(&e, &mut s, "<R@D>", 61 * SEC),
        None,
        "case-insensitive triple"
    );
    // Another client, sender or recipient is another triple.
    let mut t = open(&e, "192.0.2.2", "<a@b>");
    assert_eq!(rcpt_reply(&e, &mut t, "<r@d>", 61 * SEC), gl);
    let mut u = open(&e, "192.0.2.1", "<other@b>");
    assert_eq!(rcpt_reply(&e, &mut u, "<r@d>", 61 * SEC), gl);
    // Expired: a first attempt again.
    assert_eq!(rcpt_reply(&e, &mut s, "<r@d>", 61 * SEC + 3601 * SEC), gl);
    let snap = e.snapshot();
    assert_eq!(snap.total(Outcome::Greylisted), 5);
    assert_eq!(snap.greylist_entries, 3);
}

#[test]
fn greylist_trigger_uses_the_greylist_delay() {
    let e = engine("[greylist]\nenabled = false\ndelay = \"10s\"\n");
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    assert_eq!(rcpt_reply(&e, &mut s, "<plain@d>", Duration::ZERO), None);
    assert!(rcpt_reply(&e, &mut s, "<greylist+1@d>", Duration::ZERO).is_some());
    assert!(rcpt_reply(&e, &mut s, "<greylist+1@d>", 5 * SEC).is_some());
    assert_eq!(rcpt_reply(&e, &mut s, "<greylist+1@d>", 10 * SEC), None);
}

#[test]
fn connection_limit_gives_421_and_releases_on_disconnect() {
    let e = engine("[limits]\nconnections_per_client = 2\n");
    let mut a = e.session();
    let mut b = e.session();
    let mut c = e.session();
    assert!(e
        .on_connect(&mut a, ip("192.0.2.1"), Duration::ZERO)
        .is_accept());
    assert!(e
        .on_connect(&mut b, ip("::ffff:192.0.2.1"), Duration::ZERO)
        .is_accept());
    let d = e.on_connect(&mut c, ip("192.0.2.1"), Duration::ZERO);
    assert!(d.closes());
    assert!(d.bytes().unwrap().starts_with(b"421 4.7.0 "));
    e.on_disconnect(&mut c);
    let mut other = e.session();
    assert!(e
        .on_connect(&mut other, ip("192.0.2.2"), Duration::ZERO)
        .is_accept());
    e.on_disconnect(&mut a);
    e.on_disconnect(&mut a);
    let mut again = e.session();
    assert!(e
        .on_connect(&mut again, ip("192.0.2.1"), Duration::ZERO)
        .is_accept());
    // UNIX-domain clients have no address and are not limited.
    for _ in 0..5 {
        assert!(e
            .on_connect(&mut e.session(), None, Duration::ZERO)
            .is_accept());
    }
    assert_eq!(e.snapshot().total(Outcome::RateLimited), 1);
    for s in [&mut b, &mut other, &mut again] {
        e.on_disconnect(s);
    }
    assert_eq!(e.snapshot().connection_entries, 0);
}

#[test]
fn client_message_rate_at_mail() {
    let e = engine(
        "[limits.client_messages]\ncount = 2\ninterval = \"1m\"\nreply = \"421 4.7.0 slow down\"\n",
    );
    let mut s = e.session();
    e.on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO);
    assert!(e.on_mail(&mut s, b"<a@b>", Duration::ZERO).is_accept());
    assert!(e.on_mail(&mut s, b"<a@b>", Duration::ZERO).is_accept());
    let d = e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    assert_eq!(d.bytes(), Some(&b"421 4.7.0 slow down\r\n"[..]));
    assert!(d.closes());
    assert!(
        e.on_mail(&mut s, b"<a@b>", 30 * SEC).is_accept(),
        "one token back after 30 s"
    );
    let mut t = e.session();
    e.on_connect(&mut t, ip("192.0.2.9"), Duration::ZERO);
    assert!(
        e.on_mail(&mut t, b"<a@b>", Duration::ZERO).is_accept(),
        "per client address"
    );
}

#[test]
fn domain_message_rate_once_per_transaction() {
    let e = engine("[limits.domain_messages]\ncount = 2\ninterval = \"1h\"\nburst = 2\n");
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    // One message to three recipients of d.example takes one token.
    for r in ["<1@d.example>", "<2@D.example>", "<3@d.example>"] {
        assert_eq!(rcpt_reply(&e, &mut s, r, Duration::ZERO), None);
    }
    assert!(e.on_message_end(&mut s, Duration::ZERO).is_accept());
    e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    assert_eq!(
        rcpt_reply(&e, &mut s, "<1@d.example>", Duration::ZERO),
        None
    );
    e.on_reset(&mut s);
    e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    let refused = rcpt_reply(&e, &mut s, "<1@d.example>", Duration::ZERO).unwrap();
    assert!(refused.starts_with(b"452 4.2.1 "));
    assert_eq!(
        rcpt_reply(&e, &mut s, "<1@other.example>", Duration::ZERO),
        None
    );
    assert_eq!(e.snapshot().total(Outcome::RateLimited), 1);
}

#[test]
fn tarpits_fixed_and_ranged() {
    let e = engine(
        r#"
[default.tarpit]
greeting = "3s"
rcpt = "100ms..200ms"
[[default.mail]]
outcome = "defer"
probability = 1.0
delay = "7s"
replies = ["451 4.7.0 wait"]
"#,
    );
    let mut s = e.session();
    assert_eq!(
        e.on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO).delay,
        3 * SEC
    );
    let d = e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    assert_eq!(
        (d.delay, d.bytes()),
        (7 * SEC, Some(&b"451 4.7.0 wait\r\n"[..]))
    );
    let mut seen = std::collections::HashSet::new();
    for i in 0..200 {
        let d = e.on_rcpt(&mut s, format!("<r{i}@d>").as_bytes(), Duration::ZERO);
        assert!(d.is_accept());
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&d.delay),
            "{:?}",
            d.delay
        );
        seen.insert(d.delay);
    }
    assert!(seen.len() > 100, "the range is drawn from, not fixed");
    assert_eq!(
        e.on_message_end(&mut s, Duration::ZERO).delay,
        Duration::ZERO
    );
    assert_eq!(e.snapshot().total(Outcome::Tarpitted), 202);
}

#[test]
fn message_end_uses_the_first_accepted_recipients_rule() {
    let e = engine(
        r#"
[[rule]]
name = "slow"
recipient_domain = ["slow.example"]
[[rule.data]]
outcome = "defer"
probability = 1.0
replies = ["451 4.3.0 slow"]
"#,
    );
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    e.on_rcpt(&mut s, b"<bounce@slow.example>", Duration::ZERO);
    e.on_rcpt(&mut s, b"<x@fast.example>", Duration::ZERO);
    e.on_rcpt(&mut s, b"<y@slow.example>", Duration::ZERO);
    assert!(e.on_message_end(&mut s, Duration::ZERO).is_accept());
    e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    e.on_rcpt(&mut s, b"<y@slow.example>", Duration::ZERO);
    e.on_rcpt(&mut s, b"<x@fast.example>", Duration::ZERO);
    assert_eq!(
        e.on_message_end(&mut s, Duration::ZERO).bytes(),
        Some(&b"451 4.3.0 slow\r\n"[..])
    );
    let snap = e.snapshot();
    assert_eq!(snap.rule("default").unwrap().counts, [1, 0, 0, 0, 0, 0]);
    assert_eq!(snap.rule("slow").unwrap().counts, [0, 1, 1, 0, 0, 0]);
}

#[test]
fn deadlines_are_carried() {
    let p = Policy::parse("[deadlines]\ncommand = \"30s\"\nsession = \"5m\"\n", "d").unwrap();
    let d = p.deadlines();
    assert_eq!((d.command, d.session), (Some(30 * SEC), Some(300 * SEC)));
    assert_eq!(d.reply.bytes(), b"421 4.4.2 Error: timeout exceeded\r\n");
}

/// A 100-rule policy whose rules never match the test traffic and whose
/// default accepts everything.
fn hundred_rules() -> String {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nrecipient_domain = [\"d{i}.example\", \"*.d{i}.example\"]\n\
             sender = [\"s{i}*@*\"]\n[[rule.rcpt]]\noutcome = \"defer\"\nprobability = 0.5\nreplies = [\"451 4.3.0 r{i}\"]\n"
        ));
    }
    text
}

#[test]
fn hundred_rule_accept_all_allocates_nothing_per_message() {
    let e = engine(&hundred_rules());
    let mut s = e.session();
    // The first transaction fills the session's reusable buffers.
    e.on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO);
    e.on_helo(&mut s, b"client.example");
    e.on_mail(&mut s, b"<sender@example.org>", Duration::ZERO);
    e.on_rcpt(&mut s, b"<rcpt@example.net>", Duration::ZERO);
    e.on_message_end(&mut s, Duration::ZERO);
    let before_rules = s.rules_evaluated();
    let before = allocations();
    for i in 0..1000u32 {
        let now = Duration::from_millis(u64::from(i));
        assert!(e
            .on_mail(&mut s, b"<sender@example.org> SIZE=100", now)
            .is_accept());
        assert!(e.on_rcpt(&mut s, b"<rcpt@example.net>", now).is_accept());
        assert!(e
            .on_rcpt(&mut s, b"<other@mx.example.com> NOTIFY=NEVER", now)
            .is_accept());
        assert!(e.on_message_end(&mut s, now).is_accept());
    }
    assert_eq!(allocations() - before, 0, "no allocation per message");
    // MAIL and two RCPTs test every rule; the end of DATA reuses the
    // recipient's rule.
    assert_eq!(s.rules_evaluated() - before_rules, 1000 * 300);
    assert_eq!(
        e.snapshot().rule("default").unwrap().get(Outcome::Accepted),
        1001
    );
    // A match stops the scan: the 4th rule costs 4 tests.
    let mut t = open(&e, "192.0.2.1", "<s3@b>");
    let before = t.rules_evaluated();
    let d = e.on_rcpt(&mut t, b"<x@sub.d3.example>", Duration::ZERO);
    assert!(d.is_accept() || d.bytes() == Some(b"451 4.3.0 r3\r\n"));
    assert_eq!(t.rules_evaluated() - before, 4);
    let before = t.rules_evaluated();
    e.on_rcpt(&mut t, b"<x@sub.d4.example>", Duration::ZERO);
    assert_eq!(
        t.rules_evaluated() - before,
        100,
        "sender s3 does not match rule r4"
    );
}

#[test]
fn every_example_policy_loads_and_honours_triggers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let e = PolicyEngine::new(policy, 3);
        let mut s = e.session();
        // Past any connect outcome or tarpit: triggers act at RCPT.
        e.on_connect(&mut s, ip("192.0.2.1"), Duration::ZERO);
        e.on_mail(&mut s, b"<a@example.org>", Duration::ZERO);
        for (local, class) in [("defer", 4), ("bounce", 5), ("greylist", 4)] {
            let d = e.on_rcpt(
                &mut s,
                format!("<{local}@gmail.com>").as_bytes(),
                Duration::ZERO,
            );
            let code = d.reply.map(Reply::code).unwrap_or(0);
            assert_eq!(code / 100, class, "{}: {local}", path.display());
        }
        loaded += 1;
    }
    assert!(loaded >= 3, "examples/policies has {loaded} policies");
}

#[test]
fn the_documented_example_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/policy.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let policy = Policy::parse(text, "docs/policy.md").unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = policy.rule_names().collect();
    assert_eq!(names, ["gmail", "lan", DEFAULT_RULE]);
    assert!(policy.greylist.enabled);
    assert_eq!(policy.deadlines().command, Some(60 * SEC));
}

/// The documented memory figures, measured: each table filled past its cap
/// stays at the cap, within the bytes `docs/policy.md` states.
#[test]
fn tables_at_their_caps_stay_within_the_documented_memory() {
    let e = engine("[greylist]\n[limits.client_messages]\ncount = 1\ninterval = \"1h\"\n");
    let before = live_bytes();
    let mut s = open(&e, "192.0.2.1", "<a@b>");
    for i in 0..GREYLIST_MAX_ENTRIES + 1000 {
        let rcpt = format!("<r{i}@d>");
        assert!(e
            .on_rcpt(&mut s, rcpt.as_bytes(), Duration::ZERO)
            .reply
            .is_some());
    }
    let snap = e.snapshot();
    assert_eq!(snap.greylist_entries, GREYLIST_MAX_ENTRIES);
    let greylist = (live_bytes() - before) as usize;
    assert!(greylist <= 14 << 20, "greylist at cap: {greylist} bytes");
    assert!(
        greylist / GREYLIST_MAX_ENTRIES <= 57,
        "{} bytes an entry",
        greylist / GREYLIST_MAX_ENTRIES
    );

    let before = live_bytes();
    for i in 0..BUCKET_MAX_ENTRIES as u32 + 1000 {
        let mut s = e.session();
        e.on_connect(&mut s, Some(IpAddr::from(i.to_be_bytes())), Duration::ZERO);
        e.on_mail(&mut s, b"<a@b>", Duration::ZERO);
    }
    assert_eq!(e.snapshot().bucket_entries, BUCKET_MAX_ENTRIES);
    let buckets = (live_bytes() - before) as usize;
    assert!(
        buckets / BUCKET_MAX_ENTRIES <= 39,
        "{} bytes an entry",
        buckets / BUCKET_MAX_ENTRIES
    );

    let e = engine("[limits]\nconnections_per_client = 1\n");
    let before = live_bytes();
    let mut sessions: Vec<SessionPolicy> = Vec::with_capacity(CONNECTION_MAX_ENTRIES + 10);
    let sessions_bytes = live_bytes() - before;
    for i in 0..CONNECTION_MAX_ENTRIES as u32 + 10 {
        let mut s = e.session();
        assert!(e
            .on_connect(&mut s, Some(IpAddr::from(i.to_be_bytes())), Duration::ZERO)
            .is_accept());
        sessions.push(s);
    }
    assert_eq!(e.snapshot().connection_entries, CONNECTION_MAX_ENTRIES);
    let connections = (live_bytes() - before - sessions_bytes) as usize;
    assert!(
        connections / CONNECTION_MAX_ENTRIES <= 75,
        "{} bytes an entry",
        connections / CONNECTION_MAX_ENTRIES
    );
    for s in &mut sessions {
        e.on_disconnect(s);
    }
    assert_eq!(e.snapshot().connection_entries, 0);
}
