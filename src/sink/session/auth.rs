//! The AUTH exchange of a sink session (RFC 4954), only with `--auth`:
//! without it AUTH keeps Postfix's plain `250` reply.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{done, Cmd, Flow, Mode, Session};
use crate::proto::auth::{self, Step};

/// Per-session AUTH state.
#[derive(Debug, Default)]
pub(super) struct AuthState {
    /// The user of a successful AUTH (sanitised for the dump).
    pub user: Option<Vec<u8>>,
    /// An AUTH exchange between challenges.
    exchange: Option<auth::Exchange>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    /// `--auth-required` and no successful AUTH yet.
    pub(super) fn auth_missing(&self) -> bool {
        self.config().auth.is_some_and(|a| a.required) && self.sasl.user.is_none()
    }

    /// AUTH with `--auth` (RFC 4954 §4).
    pub(super) async fn auth(&mut self, args: &[u8]) -> Flow {
        if self.sasl.user.is_some() {
            return done(self.reply(Cmd::Auth, auth::ALREADY).await);
        }
        if self.in_tx {
            return done(self.reply(Cmd::Auth, auth::IN_TRANSACTION).await);
        }
        let (exchange, step) = auth::start(args);
        self.sasl.exchange = exchange;
        self.auth_step(step).await
    }

    /// A client line during an AUTH exchange (in `self.line`, with CR LF).
    pub(super) async fn auth_response(&mut self) -> Flow {
        let line = std::mem::take(&mut self.line);
        let response = line.strip_suffix(b"\r\n").unwrap_or(&line);
        let step = match &mut self.sasl.exchange {
            Some(exchange) => exchange.respond(response),
            None => Step::Reject(auth::ABORTED),
        };
        self.line = line;
        self.auth_step(step).await
    }

    async fn auth_step(&mut self, step: Step) -> Flow {
        let text: &[u8] = match step {
            Step::Challenge(challenge) => {
                self.mode = Mode::Auth;
                challenge
            }
            Step::Credentials(credentials) => {
                self.mode = Mode::Command;
                self.sasl.exchange = None;
                if self.config().auth.is_some_and(|a| a.fail) {
                    auth::FAILED
                } else {
                    self.sasl.user = Some(super::dump_text(self.config(), &credentials.user));
                    auth::SUCCESS
                }
            }
            Step::Reject(reply) => {
                self.mode = Mode::Command;
                self.sasl.exchange = None;
                reply
            }
        };
        done(self.reply(Cmd::Auth, text).await)
    }
}
