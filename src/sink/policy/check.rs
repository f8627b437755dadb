//! The checked policy: built once from the raw file (`raw.rs`), owning
//! every validation message, each with the line and column of the value
//! at fault.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use super::pattern::{Cidr, Glob};
use super::raw::{RawOutcome, RawOutcomes, RawPolicy, RawRate, RawTarpit, Text};
use super::table::Rate;
use super::wire::{Class, Reply, ReplySet};

/// Most rules in a file: rule names are metric labels, which must stay
/// bounded.
pub const MAX_RULES: usize = 4096;
/// Longest rule name (a metric label value).
pub const MAX_RULE_NAME: usize = 64;
/// Longest delay a tarpit may hold a reply: past an hour every client
/// timeout (RFC 5321 §4.5.3.2) has long fired.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// The label of the outcomes taken when no rule matches.
pub const DEFAULT_RULE: &str = "default";

const GREYLIST_DELAY: Duration = Duration::from_secs(300);
const GREYLIST_EXPIRE: Duration = Duration::from_secs(86_400);
const GREYLIST_REPLY: &str = "450 4.2.0 Greylisted, please try again later";
const CONNECTION_REPLY: &str =
    "421 4.7.0 Too many concurrent connections from your address, try again later";
const CLIENT_RATE_REPLY: &str = "451 4.7.1 Too many messages from your address, try again later";
const DOMAIN_RATE_REPLY: &str = "452 4.2.1 Too many messages for this domain, try again later";
const DEFER_TRIGGER_REPLY: &str = "451 4.3.0 Temporary failure, please try again later";
const BOUNCE_TRIGGER_REPLY: &str = "550 5.1.1 Recipient address rejected: User unknown";
const DEADLINE_REPLY: &str = "421 4.4.2 Error: timeout exceeded";
/// Codes a rate-limit reply may have: close (421), or refuse the command
/// for now (450/451/452).
const RATE_CODES: &[u16] = &[421, 450, 451, 452];

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    origin: String,
    position: Option<(usize, usize)>,
    message: String,
}

impl PolicyError {
    /// The 1-based line and column of the value at fault, when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.position
    }

    /// The message, without the file and position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error reading the file itself.
    pub fn unreadable(origin: &str, err: &std::io::Error) -> Self {
        PolicyError {
            origin: origin.to_owned(),
            position: None,
            message: crate::diag::errno_text(err),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

/// What an outcome does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The sink's usual reply, or a configured 2xx.
    Accept,
    /// A 4xx reply.
    Defer,
    /// A 5xx reply.
    Bounce,
}

/// The SMTP stages that take outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before the greeting.
    Connect = 0,
    /// MAIL FROM.
    Mail = 1,
    /// Each RCPT TO.
    Rcpt = 2,
    /// End of DATA, or the last BDAT chunk.
    Data = 3,
}

impl Stage {
    const NAMES: [&'static str; 4] = ["connect", "mail", "rcpt", "data"];
}

/// A delay, fixed or drawn uniformly within a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Least delay.
    pub min: Duration,
    /// Greatest delay (equal to `min` when fixed).
    pub max: Duration,
}

impl Delay {
    /// The delay for a random draw.
    pub fn pick(&self, draw: u32) -> Duration {
        let span = self.max.saturating_sub(self.min).as_nanos() as u64;
        let offset = ((u128::from(span) * u128::from(draw)) >> 32) as u64;
        self.min + Duration::from_nanos(offset)
    }
}

/// One weighted outcome of a stage.
#[derive(Debug, Clone)]
pub struct Choice {
    /// What it does.
    pub kind: Kind,
    /// Upper bound (exclusive) of its share of 32-bit draws, cumulative
    /// over the stage's earlier choices.
    pub until: u64,
    /// Its replies; `None` for an accept that keeps the sink's reply.
    pub replies: Option<ReplySet>,
    /// Delay before its reply, instead of the stage's tarpit.
    pub delay: Option<Delay>,
}

/// A stage's choices and tarpit.
#[derive(Debug, Clone, Default)]
pub struct StagePlan {
    /// Choices, in file order.
    pub choices: Vec<Choice>,
    /// Delay before every reply of the stage.
    pub tarpit: Option<Delay>,
}

/// The conditions of a rule; all given ones must hold, any entry of a list.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// Recipient address globs.
    pub rcpt: Vec<Glob>,
    /// Recipient domain globs.
    pub rcpt_domain: Vec<Glob>,
    /// Sender address globs.
    pub sender: Vec<Glob>,
    /// Sender domain globs.
    pub sender_domain: Vec<Glob>,
    /// Client address blocks.
    pub client: Vec<Cidr>,
    /// HELO/EHLO name globs.
    pub helo: Vec<Glob>,
}

/// A named rule (or the default).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its accounting label.
    pub name: String,
    /// When it applies.
    pub conditions: Conditions,
    /// Plans by [`Stage`].
    pub stages: [StagePlan; 4],
}

/// A message rate limit.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Bucket shape.
    pub rate: Rate,
    /// Reply to the excess.
    pub reply: Reply,
}

/// `[limits]`.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Concurrent connections per client address, and the `421`.
    pub connections: Option<(u32, Reply)>,
    /// Messages (MAIL commands) per client address.
    pub client_messages: Option<RateLimit>,
    /// Messages per recipient domain.
    pub domain_messages: Option<RateLimit>,
}

/// Greylisting settings (used by the trigger even when disabled).
#[derive(Debug, Clone)]
pub struct GreylistPlan {
    /// Greylist every recipient, not only the trigger.
    pub enabled: bool,
    /// Least time before a retry passes.
    pub delay: Duration,
    /// Entries unseen this long are forgotten.
    pub expire: Duration,
    /// The refusal.
    pub reply: Reply,
}

/// Recipient local parts that force an outcome (lowercased).
#[derive(Debug, Clone)]
pub struct Triggers {
    /// Always deferred.
    pub defer: Box<[u8]>,
    /// Always bounced.
    pub bounce: Box<[u8]>,
    /// Always greylisted.
    pub greylist: Box<[u8]>,
    /// The defer trigger's reply.
    pub defer_reply: Reply,
    /// The bounce trigger's reply.
    pub bounce_reply: Reply,
}

/// Opt-in deadlines the session layer enforces.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// Longest time to receive one command line (or the whole message
    /// content, for DATA).
    pub command: Option<Duration>,
    /// Longest session.
    pub session: Option<Duration>,
    /// The `421` that ends a session past a deadline.
    pub reply: Reply,
}

/// A checked policy, ready for [`PolicyEngine`](super::PolicyEngine).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rules in order, then the default (always last).
    pub(super) rules: Vec<Rule>,
    /// Rate limits.
    pub(super) limits: Limits,
    /// Greylisting.
    pub(super) greylist: GreylistPlan,
    /// Triggers.
    pub(super) triggers: Triggers,
    /// Deadlines.
    pub(super) deadlines: Deadlines,
}

impl Policy {
    /// Read and check a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| PolicyError::unreadable(&origin, &e))?;
        Policy::parse(&text, &origin)
    }

    /// Parse and check a policy from its text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let checker = Checker { text, origin };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            checker.error(e.span(), message)
        })?;
        checker.policy(raw)
    }

    /// The deadlines for the session layer.
    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    /// The accounting labels: rule names in file order, then `default`.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

type Checked<T> = Result<T, PolicyError>;

impl Checker<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> PolicyError {
        let position = span.map(|s| {
            let before = &self.text[..s.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, col)
        });
        PolicyError {
            origin: self.origin.to_owned(),
            position,
            message,
        }
    }

    fn at(&self, text: &Text, message: String) -> PolicyError {
        self.error(Some(text.span()), message)
    }

    fn policy(&self, raw: RawPolicy) -> Checked<Policy> {
        if raw.rules.len() > MAX_RULES {
            return Err(self.error(
                None,
                format!("{} rules, at most {MAX_RULES} allowed", raw.rules.len()),
            ));
        }
        let mut rules = Vec::with_capacity(raw.rules.len() + 1);
        for (i, mut rule) in raw.rules.into_iter().enumerate() {
            let name = self.rule_name(rule.name.as_ref(), i, &rules)?;
            let conditions = Conditions {
                rcpt: rule
                    .recipient
                    .iter()
                    .map(|t| Glob::new(t.get_ref()))
                    .collect(),
                rcpt_domain: rule
                    .recipient_domain
                    .iter()
                    .map(|t| Glob::new(t.get_ref()))
                    .collect(),
                sender: rule.sender.iter().map(|t| Glob::new(t.get_ref())).collect(),
                sender_domain: rule
                    .sender_domain
                    .iter()
                    .map(|t| Glob::new(t.get_ref()))
                    .collect(),
                client: self.cidrs(&rule.client)?,
                helo: rule.helo.iter().map(|t| Glob::new(t.get_ref())).collect(),
            };
            let stages = self.stages(rule.take_outcomes())?;
            rules.push(Rule {
                name,
                conditions,
                stages,
            });
        }
        let stages = self.stages(raw.default)?;
        rules.push(Rule {
            name: DEFAULT_RULE.to_owned(),
            conditions: Conditions::default(),
            stages,
        });
        Ok(Policy {
            rules,
            limits: self.limits(raw.limits)?,
            greylist: self.greylist(raw.greylist)?,
            triggers: self.triggers(raw.triggers)?,
            deadlines: self.deadlines(raw.deadlines)?,
        })
    }

    fn rule_name(&self, name: Option<&Text>, index: usize, earlier: &[Rule]) -> Checked<String> {
        let Some(name) = name else {
            return Ok(format!("rule-{}", index + 1));
        };
        let text = name.get_ref();
        let valid = !text.is_empty()
            && text.len() <= MAX_RULE_NAME
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(self.at(
                name,
                format!(
                "rule name {text:?} must be 1 to {MAX_RULE_NAME} letters, digits, '_', '.' or '-'"
            ),
            ));
        }
        if text == DEFAULT_RULE || earlier.iter().any(|r| r.name == *text) {
            return Err(self.at(name, format!("rule name {text:?} is already used")));
        }
        Ok(text.clone())
    }

    fn cidrs(&self, list: &[Text]) -> Checked<Vec<Cidr>> {
        list.iter()
            .map(|t| Cidr::parse(t.get_ref()).map_err(|m| self.at(t, m)))
            .collect()
    }

    fn stages(&self, raw: RawOutcomes) -> Checked<[StagePlan; 4]> {
        let RawTarpit {
            greeting,
            mail,
            rcpt,
            data,
        } = raw.tarpit;
        Ok([
            self.stage(Stage::Connect, raw.connect, greeting)?,
            self.stage(Stage::Mail, raw.mail, mail)?,
            self.stage(Stage::Rcpt, raw.rcpt, rcpt)?,
            self.stage(Stage::Data, raw.data, data)?,
        ])
    }

    fn stage(
        &self,
        stage: Stage,
        raw: Vec<RawOutcome>,
        tarpit: Option<Text>,
    ) -> Checked<StagePlan> {
        let tarpit = tarpit.as_ref().map(|t| self.delay(t)).transpose()?;
        let mut choices = Vec::with_capacity(raw.len());
        let mut total = 0.0f64;
        for outcome in raw {
            let p = *outcome.probability.get_ref();
            let p_span = outcome.probability.span();
            if !(0.0..=1.0).contains(&p) {
                return Err(self.error(
                    Some(p_span),
                    format!("probability {p} must be between 0 and 1"),
                ));
            }
            total += p;
            if total > 1.0 + 1e-9 {
                return Err(self.error(
                    Some(p_span),
                    format!(
                        "the {} probabilities add up to {total}, more than 1",
                        Stage::NAMES[stage as usize]
                    ),
                ));
            }
            let kind = self.kind(stage, &outcome.outcome)?;
            let replies = self.outcome_replies(stage, kind, &outcome)?;
            let delay = outcome.delay.as_ref().map(|t| self.delay(t)).transpose()?;
            let until = ((total.min(1.0) * 4_294_967_296.0).round()) as u64;
            choices.push(Choice {
                kind,
                until,
                replies,
                delay,
            });
        }
        Ok(StagePlan { choices, tarpit })
    }

    fn kind(&self, stage: Stage, text: &Text) -> Checked<Kind> {
        let kind = match text.get_ref().as_str() {
            "accept" => Kind::Accept,
            "defer" => Kind::Defer,
            "bounce" => Kind::Bounce,
            other => {
                return Err(self.at(
                    text,
                    format!("outcome {other:?} must be accept, defer or bounce"),
                ))
            }
        };
        if stage == Stage::Connect && kind == Kind::Accept {
            return Err(self.at(
                text,
                "connect outcomes are defer (421) or bounce (554)".to_owned(),
            ));
        }
        Ok(kind)
    }

    fn outcome_replies(
        &self,
        stage: Stage,
        kind: Kind,
        raw: &RawOutcome,
    ) -> Checked<Option<ReplySet>> {
        let (class, codes): (Class, &[u16]) = match (stage, kind) {
            // RFC 5321 §3.1: a server refusing service greets with 554 or,
            // for a temporary condition, 421.
            (Stage::Connect, Kind::Defer) => (Class::Transient, &[421]),
            (Stage::Connect, _) => (Class::Permanent, &[554]),
            (_, Kind::Accept) => (Class::Success, &[]),
            (_, Kind::Defer) => (Class::Transient, &[]),
            (_, Kind::Bounce) => (Class::Permanent, &[]),
        };
        let replies = raw
            .replies
            .iter()
            .map(|t| Reply::parse(t.get_ref(), &[class], codes).map_err(|m| self.at(t, m)))
            .collect::<Checked<Vec<_>>>()?;
        if replies.is_empty() && kind != Kind::Accept {
            return Err(self.at(
                &raw.outcome,
                "a defer or bounce outcome needs at least one reply".to_owned(),
            ));
        }
        Ok(ReplySet::new(replies))
    }

    fn duration(&self, text: &Text, value: &str) -> Checked<Duration> {
        let d = humantime::parse_duration(value.trim())
            .map_err(|e| self.at(text, format!("bad duration {value:?}: {e}")))?;
        if d > MAX_DELAY {
            return Err(self.at(text, format!("duration {value:?} is longer than an hour")));
        }
        Ok(d)
    }

    /// `"2s"` or `"1s..5s"`.
    fn delay(&self, text: &Text) -> Checked<Delay> {
        let value = text.get_ref();
        let (min, max) = match value.split_once("..") {
            Some((a, b)) => (self.duration(text, a)?, self.duration(text, b)?),
            None => {
                let d = self.duration(text, value)?;
                (d, d)
            }
        };
        if min > max {
            return Err(self.at(text, format!("delay range {value:?} runs backwards")));
        }
        Ok(Delay { min, max })
    }

    /// A duration that is not a tarpit (no hour limit: greylist expiry).
    fn long_duration(&self, text: &Text) -> Checked<Duration> {
        humantime::parse_duration(text.get_ref().trim())
            .map_err(|e| self.at(text, format!("bad duration {:?}: {e}", text.get_ref())))
    }

    fn reply(
        &self,
        text: Option<&Text>,
        default: &str,
        class: Class,
        codes: &[u16],
    ) -> Checked<Reply> {
        match text {
            Some(t) => Reply::parse(t.get_ref(), &[class], codes).map_err(|m| self.at(t, m)),
            None => Reply::parse(default, &[class], codes).map_err(|m| self.error(None, m)),
        }
    }

    fn limits(&self, raw: super::raw::RawLimits) -> Checked<Limits> {
        let connections = match raw.connections_per_client {
            None => None,
            Some(n) => {
                let limit = u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| {
                        self.error(
                            Some(n.span()),
                            "connections_per_client must be a positive number".to_owned(),
                        )
                    })?;
                let reply = self.reply(
                    raw.connection_reply.as_ref(),
                    CONNECTION_REPLY,
                    Class::Transient,
                    &[421],
                )?;
                Some((limit, reply))
            }
        };
        Ok(Limits {
            connections,
            client_messages: raw
                .client_messages
                .map(|r| self.rate(r, CLIENT_RATE_REPLY))
                .transpose()?,
            domain_messages: raw
                .domain_messages
                .map(|r| self.rate(r, DOMAIN_RATE_REPLY))
                .transpose()?,
        })
    }

    fn rate(&self, raw: RawRate, default_reply: &str) -> Checked<RateLimit> {
        let positive = |v: &toml::Spanned<i64>, what: &str| {
            u64::try_from(*v.get_ref())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    self.error(Some(v.span()), format!("{what} must be a positive number"))
                })
        };
        let count = positive(&raw.count, "count")?;
        let burst = match &raw.burst {
            Some(b) => positive(b, "burst")?,
            None => count,
        };
        let interval = self.long_duration(&raw.interval)?;
        if interval.is_zero() {
            return Err(self.at(
                &raw.interval,
                "interval must be longer than zero".to_owned(),
            ));
        }
        let interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        let reply = self.reply(
            raw.reply.as_ref(),
            default_reply,
            Class::Transient,
            RATE_CODES,
        )?;
        Ok(RateLimit {
            rate: Rate::new(count, interval_ns, burst),
            reply,
        })
    }

    fn greylist(&self, raw: Option<super::raw::RawGreylist>) -> Checked<GreylistPlan> {
        let Some(raw) = raw else {
            return Ok(GreylistPlan {
                enabled: false,
                delay: GREYLIST_DELAY,
                expire: GREYLIST_EXPIRE,
                reply: self.reply(None, GREYLIST_REPLY, Class::Transient, &[])?,
            });
        };
        let delay = raw
            .delay
            .as_ref()
            .map(|t| self.long_duration(t))
            .transpose()?
            .unwrap_or(GREYLIST_DELAY);
        let expire = raw
            .expire
            .as_ref()
            .map(|t| self.long_duration(t))
            .transpose()?
            .unwrap_or(GREYLIST_EXPIRE);
        if expire < delay {
            let at = raw.expire.as_ref().or(raw.delay.as_ref());
            return Err(self.error(
                at.map(Text::span),
                "greylist expire must not be shorter than its delay".to_owned(),
            ));
        }
        Ok(GreylistPlan {
            enabled: raw.enabled,
            delay,
            expire,
            reply: self.reply(raw.reply.as_ref(), GREYLIST_REPLY, Class::Transient, &[])?,
        })
    }

    fn trigger(&self, text: Option<&Text>, default: &str) -> Checked<Box<[u8]>> {
        let Some(t) = text else {
            return Ok(default.as_bytes().into());
        };
        let v = t.get_ref();
        if v.is_empty() || v.bytes().any(|b| b == b'@' || !(0x21..=0x7e).contains(&b)) {
            return Err(self.at(
                t,
                format!("trigger {v:?} must be a non-empty local part without '@'"),
            ));
        }
        Ok(v.to_ascii_lowercase().into_bytes().into_boxed_slice())
    }

    fn triggers(&self, raw: super::raw::RawTriggers) -> Checked<Triggers> {
        Ok(Triggers {
            defer: self.trigger(raw.defer.as_ref(), "defer")?,
            bounce: self.trigger(raw.bounce.as_ref(), "bounce")?,
            greylist: self.trigger(raw.greylist.as_ref(), "greylist")?,
            defer_reply: self.reply(
                raw.defer_reply.as_ref(),
                DEFER_TRIGGER_REPLY,
                Class::Transient,
                &[],
            )?,
            bounce_reply: self.reply(
                raw.bounce_reply.as_ref(),
                BOUNCE_TRIGGER_REPLY,
                Class::Permanent,
                &[],
            )?,
        })
    }

    fn deadlines(&self, raw: super::raw::RawDeadlines) -> Checked<Deadlines> {
        let positive = |t: &Text| -> Checked<Duration> {
            let d = self.long_duration(t)?;
            if d.is_zero() {
                return Err(self.at(t, "a deadline must be longer than zero".to_owned()));
            }
            Ok(d)
        };
        Ok(Deadlines {
            command: raw.command.as_ref().map(positive).transpose()?,
            session: raw.session.as_ref().map(positive).transpose()?,
            reply: self.reply(raw.reply.as_ref(), DEADLINE_REPLY, Class::Transient, &[421])?,
        })
    }
}
