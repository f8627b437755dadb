//! `--policy`: the session side of the policy engine ([`crate::sink::policy`],
//! `docs/policy.md`). Each command handler makes one engine call through
//! [`Session::decide`]; the decision's delay (tarpit) is slept before the
//! reply, and a policy reply replaces the sink's own.
//!
//! Precedence with Postfix's own fault controls: `-q`, `-Q`, `-f` and `-r`
//! act in [`Session::dispatch`] before the handler runs, so a command they
//! cover never reaches the engine (Postfix's behaviour wins); a `-W` delay
//! is slept first and the policy's tarpit after it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{CloseKind, Flow, Session, Shared};
use crate::diag::{self, Error};
use crate::measure::sink_side::Decisions;
use crate::sink::config::{Cmd, SinkConfig};
use crate::sink::policy::{Decision, Outcome, Policy, PolicyEngine, SessionPolicy};

/// The reply to every command but QUIT after a `554` greeting (RFC 5321
/// §3.1: the server "MUST wait for the client to send a QUIT command before
/// closing the connection and SHOULD respond to any intervening commands
/// with "503 bad sequence of commands"").
pub(super) const NO_SERVICE: &[u8] = b"503 5.5.1 Error: bad sequence of commands, no service\r\n";

/// Read and check `--policy` (before binding: a bad file is one fatal line
/// `FILE:LINE:COL: message`).
pub(crate) fn load_policy(config: &SinkConfig) -> crate::diag::Result<Option<Arc<PolicyEngine>>> {
    let Some(path) = &config.policy else {
        return Ok(None);
    };
    let policy = Policy::load(path).map_err(|e| Error::fatal(e.to_string()))?;
    let seed = config.seed.unwrap_or_else(rand::random);
    Ok(Some(Arc::new(PolicyEngine::new(policy, seed))))
}

impl Shared {
    /// Give the measurements (`--stats`, `--json`, `/metrics`) a reader of
    /// the policy's accounting.
    pub(crate) fn share_policy_accounting(&self) {
        let (Some(m), Some(engine)) = (&self.measure, &self.policy) else {
            return;
        };
        let engine = Arc::clone(engine);
        m.set_decisions(Decisions(Box::new(move || decision_rows(&engine))));
    }

    /// The policy's accounting on stderr, one line per rule, when the
    /// server ends (`-M`, `-n`, a signal).
    pub(crate) fn report_policy(&self) {
        let Some(engine) = &self.policy else {
            return;
        };
        for line in snapshot_lines(engine) {
            diag::info(&line);
        }
    }
}

/// (rule, outcome, count) for every rule and outcome.
fn decision_rows(engine: &PolicyEngine) -> Vec<(String, &'static str, u64)> {
    let snap = engine.snapshot();
    let mut rows = Vec::with_capacity(snap.rules.len() * Outcome::ALL.len());
    for r in snap.rules {
        for o in Outcome::ALL {
            rows.push((r.rule.clone(), o.label(), r.get(o)));
        }
    }
    rows
}

/// `policy: rule=NAME accepted=N deferred=N ...` for every rule.
pub(crate) fn snapshot_lines(engine: &PolicyEngine) -> Vec<String> {
    engine
        .snapshot()
        .rules
        .iter()
        .map(|r| {
            let mut line = format!("policy: rule={}", r.rule);
            for o in Outcome::ALL {
                line.push_str(&format!(" {}={}", o.label(), r.get(o)));
            }
            line
        })
        .collect()
}

/// The policy's reply if it replaces `own`, else `own`.
pub(super) fn reply_bytes<'e>(decision: Option<Decision<'e>>, own: &'e [u8]) -> &'e [u8] {
    decision.and_then(|d| d.bytes()).unwrap_or(own)
}

/// A decision that refuses (a non-2xx policy reply).
pub(super) fn refusal(decision: Option<Decision<'_>>) -> Option<Decision<'_>> {
    decision.filter(|d| !d.is_accept())
}

impl<'a, S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Session<'a, S> {
    /// One engine call (`None` without `--policy`), its delay slept.
    pub(super) async fn decide(
        &mut self,
        stage: impl FnOnce(&'a PolicyEngine, &mut SessionPolicy, Duration) -> Decision<'a>,
    ) -> Option<Decision<'a>> {
        let engine: &'a PolicyEngine = self.shared.policy.as_deref()?;
        let state = self.policy.as_mut()?;
        let decision = stage(engine, state, self.shared.epoch.elapsed());
        if !decision.delay.is_zero() {
            // Replies already queued go out before the tarpit.
            if self.flush().await.is_err() {
                return Some(decision);
            }
            tokio::time::sleep(decision.delay).await;
        }
        Some(decision)
    }

    /// The engine call without a decision (HELO, RSET).
    pub(super) fn tell(&mut self, event: impl FnOnce(&'a PolicyEngine, &mut SessionPolicy)) {
        if let (Some(engine), Some(state)) = (self.shared.policy.as_deref(), self.policy.as_mut()) {
            event(engine, state);
        }
    }

    /// Send a refusing policy reply to `cmd`; a `421` closes the session
    /// (RFC 5321 §3.8).
    pub(super) async fn refuse(&mut self, cmd: Cmd, d: Decision<'a>) -> Result<Flow, Flow> {
        let bytes = d.bytes().unwrap_or_default();
        if d.closes() {
            self.queue(Some(cmd), bytes);
            return Ok(Flow::Close(CloseKind::Disconnect));
        }
        self.reply(cmd, bytes).await?;
        Ok(Flow::Continue)
    }

    /// The earlier of the policy's command and session deadlines.
    pub(super) fn policy_deadline(&self) -> Option<Instant> {
        let d = self.shared.policy.as_deref()?.policy().deadlines();
        let command = d.command.map(|c| self.command_since + c);
        let session = d.session.map(|s| self.session_since + s);
        match (command, session) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A deadline passed: the policy's `421`, then close.
    pub(super) fn deadline_passed(&mut self) -> Flow {
        if let Some(engine) = self.shared.policy.as_deref() {
            let reply = &engine.policy().deadlines().reply;
            self.queue(None, reply.bytes());
        }
        diag::warning("policy deadline exceeded");
        Flow::Close(CloseKind::Disconnect)
    }

    /// The message being ended is refused by the policy.
    pub(super) fn refused_message(&self) -> bool {
        refusal(self.end_decision).is_some()
    }

    /// The policy's refusal of a whole message: in LMTP once per recipient
    /// (RFC 2033 §4.2).
    pub(super) async fn refuse_message(&mut self, to: Cmd, d: Decision<'a>) -> Result<Flow, Flow> {
        if self.config().lmtp {
            while self.rcpts > 1 {
                self.rcpts -= 1;
                self.reply(to, d.bytes().unwrap_or_default()).await?;
            }
            self.rcpts = 0;
        }
        self.refuse(to, d).await
    }
}
