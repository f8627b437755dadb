//! The sink's policy engine (`smtp-sink --policy FILE`): a realistic
//! receiver that defers, bounces, rate-limits, greylists and tarpits by
//! rules read from a TOML file. The format and what each outcome looks like
//! on the wire are in `docs/policy.md`.
//!
//! Decision code does no I/O: time comes in as a monotonic [`Duration`]
//! since a start the caller chooses, randomness from a per-session RNG
//! derived from the engine's seed (the same seed and the same sessions in
//! the same order give the same decisions), and every reply is rendered to
//! wire bytes once at load. Evaluating a policy without limits or
//! greylisting takes no lock and allocates nothing per message.
//!
//! Session use, one call per stage, each returning a [`Decision`] (the
//! sink's own reply or a policy reply, and a delay to sleep first):
//!
//! ```
//! use std::time::Duration;
//! use smtpstone::sink::policy::{Policy, PolicyEngine};
//! let policy = Policy::parse("[[default.rcpt]]\noutcome = \"defer\"\nprobability = 1.0\n\
//!     replies = [\"451 4.3.0 Try later\"]\n", "example").unwrap();
//! let engine = PolicyEngine::new(policy, 42);
//! let mut session = engine.session();
//! let now = Duration::ZERO;
//! assert!(engine.on_connect(&mut session, Some("192.0.2.1".parse().unwrap()), now).is_accept());
//! engine.on_helo(&mut session, b"client.example");
//! assert!(engine.on_mail(&mut session, b"<a@example.org>", now).is_accept());
//! let rcpt = engine.on_rcpt(&mut session, b"<b@example.net>", now);
//! assert_eq!(rcpt.bytes(), Some(&b"451 4.3.0 Try later\r\n"[..]));
//! engine.on_disconnect(&mut session);
//! ```

mod check;
mod pattern;
mod raw;
mod stats;
mod table;
mod wire;

#[cfg(test)]
mod tests;

pub use check::{
    Deadlines, Delay, Kind, Policy, PolicyError, Stage, DEFAULT_RULE, MAX_DELAY, MAX_RULES,
    MAX_RULE_NAME,
};
pub use pattern::mailbox;
pub use stats::{Outcome, RuleCounts, Snapshot};
pub use table::{BUCKET_MAX_ENTRIES, CONNECTION_MAX_ENTRIES, GREYLIST_MAX_ENTRIES};
pub use wire::{Reply, MAX_REPLY_LINE};

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use check::{Choice, Conditions, StagePlan};
use pattern::{domain, ip_key, local_part, Glob, KeyHasher};
use stats::Accounting;
use table::{Buckets, Connections, Greylist, Greylisting};

/// Recipient domains remembered per transaction so that a message to
/// several recipients of one domain takes one token of the domain's
/// bucket; past this many distinct domains every further one is charged.
const CHARGED_DOMAINS: usize = 8;

/// What the session does at one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'e> {
    /// Sleep this long before replying (zero: none).
    pub delay: Duration,
    /// The policy's reply, or `None` for the sink's own.
    pub reply: Option<&'e Reply>,
}

impl<'e> Decision<'e> {
    /// The sink replies as it would without a policy (possibly after a delay).
    pub fn is_accept(&self) -> bool {
        self.reply.is_none_or(|r| r.code() / 100 == 2)
    }

    /// The policy's reply bytes, if it replaces the sink's.
    pub fn bytes(&self) -> Option<&'e [u8]> {
        self.reply.map(Reply::bytes)
    }

    /// The session ends after the reply (`421`, RFC 5321 §3.8).
    pub fn closes(&self) -> bool {
        self.reply.is_some_and(Reply::closes)
    }
}

/// Per-session policy state, owned by the session.
#[derive(Debug)]
pub struct SessionPolicy {
    rng: SmallRng,
    client: Option<IpAddr>,
    client_key: u128,
    counted: bool,
    helo: Option<Vec<u8>>,
    sender: Option<Vec<u8>>,
    message_rule: Option<usize>,
    charged: [u64; CHARGED_DOMAINS],
    charged_len: usize,
    rules_evaluated: u64,
}

impl SessionPolicy {
    /// Rules tested so far (for tests of the evaluation's cost).
    pub fn rules_evaluated(&self) -> u64 {
        self.rules_evaluated
    }

    fn end_transaction(&mut self) {
        self.message_rule = None;
        self.charged_len = 0;
    }
}

/// The tables shared by all sessions. Behind one lock taken only by calls
/// that need a limit or greylisting; a multi-loop sink can shard this type
/// per loop instead.
#[derive(Debug)]
struct Tables {
    connections: Option<Connections>,
    client_messages: Option<Buckets>,
    domain_messages: Option<Buckets>,
    greylist: Greylisting,
}

/// The facts known at a stage; a condition on an unknown fact fails.
#[derive(Clone, Copy)]
struct Facts<'a> {
    client: Option<IpAddr>,
    helo: Option<&'a [u8]>,
    sender: Option<&'a [u8]>,
    rcpt: Option<&'a [u8]>,
}

/// A checked policy with its shared state and accounting.
#[derive(Debug)]
pub struct PolicyEngine {
    policy: Policy,
    seed: u64,
    sessions: AtomicU64,
    tables: Mutex<Tables>,
    stats: Accounting,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn globs_match(list: &[Glob], value: Option<&[u8]>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|g| g.matches(v)))
}

fn matches(c: &Conditions, f: &Facts<'_>) -> bool {
    (c.client.is_empty()
        || f.client
            .is_some_and(|ip| c.client.iter().any(|b| b.contains(ip))))
        && globs_match(&c.helo, f.helo)
        && globs_match(&c.sender, f.sender)
        && globs_match(&c.sender_domain, f.sender.map(domain))
        && globs_match(&c.rcpt, f.rcpt)
        && globs_match(&c.rcpt_domain, f.rcpt.map(domain))
}

/// `local` is `trigger` or `trigger+anything` (a subaddress, so that tests
/// can make distinct greylist triples).
fn is_trigger(local: &[u8], trigger: &[u8]) -> bool {
    local.len() >= trigger.len()
        && local[..trigger.len()].eq_ignore_ascii_case(trigger)
        && matches!(local.get(trigger.len()), None | Some(b'+'))
}

impl PolicyEngine {
    /// An engine for `policy`; `seed` fixes every random choice.
    pub fn new(policy: Policy, seed: u64) -> Self {
        let g = &policy.greylist;
        let tables = Tables {
            connections: policy
                .limits
                .connections
                .as_ref()
                .map(|(n, _)| Connections::new(*n)),
            client_messages: policy
                .limits
                .client_messages
                .as_ref()
                .map(|l| Buckets::new(l.rate, table::BUCKET_MAX_ENTRIES)),
            domain_messages: policy
                .limits
                .domain_messages
                .as_ref()
                .map(|l| Buckets::new(l.rate, table::BUCKET_MAX_ENTRIES)),
            greylist: Greylisting::new(
                nanos(g.delay),
                nanos(g.expire),
                table::GREYLIST_MAX_ENTRIES,
            ),
        };
        PolicyEngine {
            stats: Accounting::new(policy.rules.len()),
            policy,
            seed,
            sessions: AtomicU64::new(0),
            tables: Mutex::new(tables),
        }
    }

    /// The checked policy (deadlines for the session layer, rule names).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// State for a new session. The N-th session of an engine always gets
    /// the same random sequence for a given seed.
    pub fn session(&self) -> SessionPolicy {
        let serial = self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionPolicy {
            rng: SmallRng::seed_from_u64(self.seed ^ serial.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            client: None,
            client_key: 0,
            counted: false,
            helo: None,
            sender: None,
            message_rule: None,
            charged: [0; CHARGED_DOMAINS],
            charged_len: 0,
            rules_evaluated: 0,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic elsewhere while holding the lock leaves counters that are
        // still consistent enough for a test server.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rule_for(&self, facts: &Facts<'_>, evaluated: &mut u64) -> usize {
        let last = self.policy.rules.len() - 1;
        for (i, rule) in self.policy.rules[..last].iter().enumerate() {
            *evaluated += 1;
            if matches(&rule.conditions, facts) {
                return i;
            }
        }
        last
    }

    fn plan(&self, rule: usize, stage: Stage) -> &StagePlan {
        &self.policy.rules[rule].stages[stage as usize]
    }

    fn choose<'p>(plan: &'p StagePlan, rng: &mut SmallRng) -> Option<&'p Choice> {
        if plan.choices.is_empty() {
            return None;
        }
        let draw = u64::from(rng.next_u32());
        plan.choices.iter().find(|c| draw < c.until)
    }

    /// A decision with the stage's tarpit (or `delay`), counted.
    fn decide<'e>(
        &'e self,
        s: &mut SessionPolicy,
        rule: usize,
        stage: Stage,
        reply: Option<&'e Reply>,
        delay: Option<Delay>,
    ) -> Decision<'e> {
        let delay = match delay.or(self.plan(rule, stage).tarpit) {
            Some(d) => d.pick(s.rng.next_u32()),
            None => Duration::ZERO,
        };
        if !delay.is_zero() {
            self.stats.add(rule, Outcome::Tarpitted);
        }
        Decision { delay, reply }
    }

    /// Count and apply the stage's random outcome.
    fn outcome<'e>(
        &'e self,
        s: &mut SessionPolicy,
        rule: usize,
        stage: Stage,
    ) -> (Kind, Decision<'e>) {
        let Some(choice) = Self::choose(self.plan(rule, stage), &mut s.rng) else {
            return (Kind::Accept, self.decide(s, rule, stage, None, None));
        };
        let reply = choice
            .replies
            .as_ref()
            .map(|set| set.pick(s.rng.next_u32()));
        match choice.kind {
            Kind::Accept => {}
            Kind::Defer => self.stats.add(rule, Outcome::Deferred),
            Kind::Bounce => self.stats.add(rule, Outcome::Bounced),
        }
        (
            choice.kind,
            self.decide(s, rule, stage, reply, choice.delay),
        )
    }

    /// A new connection from `client` (`None` for a UNIX-domain socket):
    /// the connection limit, connect outcomes and the greeting tarpit.
    /// A `421` or `554` reply replaces the greeting (RFC 5321 §3.1).
    pub fn on_connect(
        &self,
        s: &mut SessionPolicy,
        client: Option<IpAddr>,
        now: Duration,
    ) -> Decision<'_> {
        let _ = now;
        s.client = client;
        s.client_key = client.map_or(0, ip_key);
        let facts = Facts {
            client,
            helo: None,
            sender: None,
            rcpt: None,
        };
        let rule = self.rule_for(&facts, &mut s.rules_evaluated);
        if let (Some((_, reply)), Some(_)) = (&self.policy.limits.connections, client) {
            let counted = self
                .tables()
                .connections
                .as_mut()
                .and_then(|c| c.open(s.client_key));
            if counted == Some(false) {
                self.stats.add(rule, Outcome::RateLimited);
                return self.decide(s, rule, Stage::Connect, Some(reply), None);
            }
            s.counted = counted == Some(true);
        }
        self.outcome(s, rule, Stage::Connect).1
    }

    /// HELO, EHLO or LHLO with its argument (for `helo` conditions).
    pub fn on_helo(&self, s: &mut SessionPolicy, helo: &[u8]) {
        let buf = s.helo.get_or_insert_with(Vec::new);
        buf.clear();
        buf.extend_from_slice(helo);
    }

    /// MAIL FROM, with the text after `FROM:`: the per-client message rate
    /// and the MAIL outcomes. Starts a transaction.
    pub fn on_mail(&self, s: &mut SessionPolicy, args: &[u8], now: Duration) -> Decision<'_> {
        s.end_transaction();
        let buf = s.sender.get_or_insert_with(Vec::new);
        buf.clear();
        buf.extend_from_slice(mailbox(args));
        let facts = Facts {
            client: s.client,
            helo: s.helo.as_deref(),
            sender: s.sender.as_deref(),
            rcpt: None,
        };
        let rule = self.rule_for(&facts, &mut s.rules_evaluated);
        if let Some(limit) = &self.policy.limits.client_messages {
            let key = KeyHasher::new().ip(s.client_key).finish();
            let ok = self
                .tables()
                .client_messages
                .as_mut()
                .is_none_or(|b| b.take(key, nanos(now)));
            if !ok {
                self.stats.add(rule, Outcome::RateLimited);
                return self.decide(s, rule, Stage::Mail, Some(&limit.reply), None);
            }
        }
        self.outcome(s, rule, Stage::Mail).1
    }

    /// RCPT TO, with the text after `TO:`: triggers, the per-domain message
    /// rate, greylisting and the RCPT outcomes, in that order.
    pub fn on_rcpt(&self, s: &mut SessionPolicy, args: &[u8], now: Duration) -> Decision<'_> {
        let rcpt = mailbox(args);
        let sender = s.sender.as_deref();
        let facts = Facts {
            client: s.client,
            helo: s.helo.as_deref(),
            sender,
            rcpt: Some(rcpt),
        };
        let rule = self.rule_for(&facts, &mut s.rules_evaluated);
        let t = &self.policy.triggers;
        let local = local_part(rcpt);
        if is_trigger(local, &t.defer) {
            self.stats.add(rule, Outcome::Deferred);
            return self.decide(s, rule, Stage::Rcpt, Some(&t.defer_reply), None);
        }
        if is_trigger(local, &t.bounce) {
            self.stats.add(rule, Outcome::Bounced);
            return self.decide(s, rule, Stage::Rcpt, Some(&t.bounce_reply), None);
        }
        if let Some(d) = self.limit_domain(s, rcpt, now) {
            self.stats.add(rule, Outcome::RateLimited);
            return self.decide(s, rule, Stage::Rcpt, Some(d), None);
        }
        if self.policy.greylist.enabled || is_trigger(local, &t.greylist) {
            let key = KeyHasher::new()
                .ip(s.client_key)
                .bytes(s.sender.as_deref().unwrap_or_default())
                .separator()
                .bytes(rcpt)
                .finish();
            if self.tables().greylist.check(key, nanos(now)) == Greylist::Defer {
                self.stats.add(rule, Outcome::Greylisted);
                return self.decide(
                    s,
                    rule,
                    Stage::Rcpt,
                    Some(&self.policy.greylist.reply),
                    None,
                );
            }
        }
        let (kind, decision) = self.outcome(s, rule, Stage::Rcpt);
        if kind == Kind::Accept && s.message_rule.is_none() {
            s.message_rule = Some(rule);
        }
        decision
    }

    /// Take a token of the recipient domain's bucket, once per domain per
    /// transaction; the rate-limit reply when the bucket is empty.
    fn limit_domain(&self, s: &mut SessionPolicy, rcpt: &[u8], now: Duration) -> Option<&Reply> {
        let limit = self.policy.limits.domain_messages.as_ref()?;
        let key = KeyHasher::new().bytes(domain(rcpt)).finish();
        if s.charged[..s.charged_len].contains(&key) {
            return None;
        }
        if s.charged_len < CHARGED_DOMAINS {
            s.charged[s.charged_len] = key;
            s.charged_len += 1;
        }
        let ok = self
            .tables()
            .domain_messages
            .as_mut()
            .is_none_or(|b| b.take(key, nanos(now)));
        (!ok).then_some(&limit.reply)
    }

    /// End of DATA or the last BDAT chunk: the outcomes of the rule that
    /// took the transaction's first accepted recipient (or, without one,
    /// the rule for the sender). Ends the transaction. `now` is unused
    /// today: every stage call has the same shape.
    pub fn on_message_end(&self, s: &mut SessionPolicy, _now: Duration) -> Decision<'_> {
        let rule = match s.message_rule {
            Some(rule) => rule,
            None => {
                let facts = Facts {
                    client: s.client,
                    helo: s.helo.as_deref(),
                    sender: s.sender.as_deref(),
                    rcpt: None,
                };
                self.rule_for(&facts, &mut s.rules_evaluated)
            }
        };
        let (kind, decision) = self.outcome(s, rule, Stage::Data);
        if kind == Kind::Accept {
            self.stats.add(rule, Outcome::Accepted);
        }
        s.end_transaction();
        decision
    }

    /// RSET, or a transaction abandoned otherwise.
    pub fn on_reset(&self, s: &mut SessionPolicy) {
        s.end_transaction();
    }

    /// The session ended (whatever the reason): releases its connection slot.
    pub fn on_disconnect(&self, s: &mut SessionPolicy) {
        if std::mem::take(&mut s.counted) {
            if let Some(c) = self.tables().connections.as_mut() {
                c.close(s.client_key);
            }
        }
    }

    /// The counts so far, per rule and outcome.
    pub fn snapshot(&self) -> Snapshot {
        let rules = self
            .policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleCounts {
                rule: r.name.clone(),
                counts: self.stats.rule(i),
            })
            .collect();
        let t = self.tables();
        Snapshot {
            rules,
            greylist_entries: t.greylist.len(),
            bucket_entries: t.client_messages.as_ref().map_or(0, Buckets::len)
                + t.domain_messages.as_ref().map_or(0, Buckets::len),
            connection_entries: t.connections.as_ref().map_or(0, Connections::len),
        }
    }
}
