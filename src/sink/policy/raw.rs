//! The policy file as written: serde structures mirroring the TOML, with
//! spans kept for the checked-config step (`check.rs`), which owns every
//! validation message. See `docs/policy.md` for the format.

use serde::Deserialize;
use toml::Spanned;

/// A string value with its place in the file.
pub type Text = Spanned<String>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Rules, in order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
    /// Outcomes when no rule matches.
    #[serde(default)]
    pub default: RawOutcomes,
    /// Rate limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Greylisting.
    pub greylist: Option<RawGreylist>,
    /// Trigger local parts.
    #[serde(default)]
    pub triggers: RawTriggers,
    /// Session deadlines.
    #[serde(default)]
    pub deadlines: RawDeadlines,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<Text>,
    #[serde(default)]
    pub recipient: Vec<Text>,
    #[serde(default)]
    pub recipient_domain: Vec<Text>,
    #[serde(default)]
    pub sender: Vec<Text>,
    #[serde(default)]
    pub sender_domain: Vec<Text>,
    #[serde(default)]
    pub client: Vec<Text>,
    #[serde(default)]
    pub helo: Vec<Text>,
    // The outcome fields, as in `RawOutcomes` (serde's `flatten` would
    // lose the spans and `deny_unknown_fields`).
    #[serde(default)]
    pub connect: Vec<RawOutcome>,
    #[serde(default)]
    pub mail: Vec<RawOutcome>,
    #[serde(default)]
    pub rcpt: Vec<RawOutcome>,
    #[serde(default)]
    pub data: Vec<RawOutcome>,
    #[serde(default)]
    pub tarpit: RawTarpit,
}

impl RawRule {
    /// The rule's outcomes, moved out.
    pub fn take_outcomes(&mut self) -> RawOutcomes {
        RawOutcomes {
            connect: std::mem::take(&mut self.connect),
            mail: std::mem::take(&mut self.mail),
            rcpt: std::mem::take(&mut self.rcpt),
            data: std::mem::take(&mut self.data),
            tarpit: std::mem::take(&mut self.tarpit),
        }
    }
}

/// Outcomes by stage, and the stage tarpits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcomes {
    #[serde(default)]
    pub connect: Vec<RawOutcome>,
    #[serde(default)]
    pub mail: Vec<RawOutcome>,
    #[serde(default)]
    pub rcpt: Vec<RawOutcome>,
    #[serde(default)]
    pub data: Vec<RawOutcome>,
    #[serde(default)]
    pub tarpit: RawTarpit,
}

/// One `[[rule.STAGE]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcome {
    /// `accept`, `defer` or `bounce`.
    pub outcome: Text,
    /// Share of attempts, 0.0 to 1.0.
    pub probability: Spanned<f64>,
    /// Replies chosen among at random.
    #[serde(default)]
    pub replies: Vec<Text>,
    /// Delay before the reply: `"2s"` or `"1s..5s"`.
    pub delay: Option<Text>,
}

/// Delays before every reply of a stage.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarpit {
    pub greeting: Option<Text>,
    pub mail: Option<Text>,
    pub rcpt: Option<Text>,
    pub data: Option<Text>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub connections_per_client: Option<Spanned<i64>>,
    pub connection_reply: Option<Text>,
    pub client_messages: Option<RawRate>,
    pub domain_messages: Option<RawRate>,
}

/// A message rate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub count: Spanned<i64>,
    pub interval: Text,
    pub burst: Option<Spanned<i64>>,
    pub reply: Option<Text>,
}

/// `[greylist]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGreylist {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub delay: Option<Text>,
    pub expire: Option<Text>,
    pub reply: Option<Text>,
}

fn yes() -> bool {
    true
}

/// `[triggers]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriggers {
    pub defer: Option<Text>,
    pub bounce: Option<Text>,
    pub greylist: Option<Text>,
    pub defer_reply: Option<Text>,
    pub bounce_reply: Option<Text>,
}

/// `[deadlines]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadlines {
    pub command: Option<Text>,
    pub session: Option<Text>,
    pub reply: Option<Text>,
}
