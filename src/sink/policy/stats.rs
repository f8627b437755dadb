//! Accounting per rule and outcome: relaxed atomic counters (no lock
//! shared between sessions), read through [`Snapshot`]. Labels are bounded:
//! the rule names of the file (at most `MAX_RULES` + 1) times the six
//! outcomes.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the accounting counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A message accepted at the end of DATA (or the last BDAT chunk).
    Accepted = 0,
    /// A 4xx refusal from an outcome or the defer trigger, at any stage.
    Deferred = 1,
    /// A 5xx refusal from an outcome or the bounce trigger, at any stage.
    Bounced = 2,
    /// A recipient refused by greylisting.
    Greylisted = 3,
    /// A refusal by a rate or connection limit.
    RateLimited = 4,
    /// A reply delayed by a tarpit or an outcome's delay.
    Tarpitted = 5,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Accepted,
        Outcome::Deferred,
        Outcome::Bounced,
        Outcome::Greylisted,
        Outcome::RateLimited,
        Outcome::Tarpitted,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        [
            "accepted",
            "deferred",
            "bounced",
            "greylisted",
            "rate_limited",
            "tarpitted",
        ][self as usize]
    }
}

/// Counters for `rules` rules.
#[derive(Debug)]
pub struct Accounting {
    counts: Box<[AtomicU64]>,
}

impl Accounting {
    /// Zeroed counters.
    pub fn new(rules: usize) -> Self {
        Accounting {
            counts: (0..rules * Outcome::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Count one `outcome` for rule `rule`.
    pub fn add(&self, rule: usize, outcome: Outcome) {
        if let Some(c) = self
            .counts
            .get(rule * Outcome::ALL.len() + outcome as usize)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts of rule `rule`, in [`Outcome::ALL`] order.
    pub fn rule(&self, rule: usize) -> [u64; 6] {
        let mut out = [0; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self
                .counts
                .get(rule * 6 + i)
                .map_or(0, |c| c.load(Ordering::Relaxed));
        }
        out
    }
}

/// One rule's counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleCounts {
    /// The rule's name (`default` for the default).
    pub rule: String,
    /// Counts in [`Outcome::ALL`] order.
    pub counts: [u64; 6],
}

impl RuleCounts {
    /// One outcome's count.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.counts[outcome as usize]
    }
}

/// All counts at one moment, rules in file order, the default last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Per rule.
    pub rules: Vec<RuleCounts>,
    /// Greylist triples held (see `GREYLIST_MAX_ENTRIES` for the cost).
    pub greylist_entries: usize,
    /// Token buckets held, both tables.
    pub bucket_entries: usize,
    /// Client addresses with counted connections.
    pub connection_entries: usize,
}

impl Snapshot {
    /// Sum of one outcome over all rules.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.rules.iter().map(|r| r.get(outcome)).sum()
    }

    /// The counts of the rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&RuleCounts> {
        self.rules.iter().find(|r| r.rule == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_rule_and_outcome() {
        let a = Accounting::new(2);
        a.add(0, Outcome::Deferred);
        a.add(1, Outcome::Tarpitted);
        a.add(1, Outcome::Tarpitted);
        a.add(5, Outcome::Accepted); // out of range: ignored, no panic
        assert_eq!(a.rule(0), [0, 1, 0, 0, 0, 0]);
        assert_eq!(a.rule(1), [0, 0, 0, 0, 0, 2]);
        assert_eq!(Outcome::RateLimited.label(), "rate_limited");
    }
}
