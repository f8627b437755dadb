//! What the sessions of one run share: the checked configuration, the
//! prepared message, the target, and atomics (the message pool, the
//! recipient counter, the statistics). No locks: a one-permit semaphore
//! keeps at most one connect in progress, first come first served, as
//! Postfix does.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use tokio::sync::Semaphore;

use crate::measure::source_side::SourceMeasure;
use crate::proto::date;

use super::config::SourceConfig;
use super::descriptor::DescriptorNumbers;
use super::message::Message;
use super::net::Target;
use super::session::esmtp;

/// State shared by all sessions of a run (read-only, or atomics).
pub(crate) struct Shared {
    pub(super) config: SourceConfig,
    /// The commands and content every session sends.
    pub(super) message: Message,
    pub(super) target: Target,
    /// Postfix's global `message_count` (C int): checked, then decremented.
    pub(super) remaining: AtomicI32,
    /// Global recipient number (3.12 numbering, starts at 0).
    pub(super) rcpt_counter: AtomicI32,
    pub(super) messages: AtomicU64,
    pub(super) connections: AtomicU64,
    /// The ESMTP/TLS settings; `None` keeps Postfix's dialogue.
    pub(super) esmtp: Option<Arc<esmtp::Setup>>,
    date: OnceLock<String>,
    pub(super) connect_gate: Semaphore,
    pub(super) pid: u32,
    /// The socket numbers Postfix's process would use (`Message-Id`).
    pub(super) descriptors: Arc<DescriptorNumbers>,
    /// Measurements; `None` without a measurement option.
    pub(super) measure: Option<SourceMeasure>,
}

impl Shared {
    /// `measure`: [`SourceMeasure::start`] of `config.measure`, made once
    /// the load may start (`--start-at`).
    pub(super) fn new(
        config: SourceConfig,
        message: Message,
        target: Target,
        esmtp: Option<Arc<esmtp::Setup>>,
        measure: Option<SourceMeasure>,
    ) -> Shared {
        Shared {
            esmtp,
            message,
            target,
            remaining: AtomicI32::new(config.measure.message_count(config.messages)),
            rcpt_counter: AtomicI32::new(0),
            messages: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            date: OnceLock::new(),
            connect_gate: Semaphore::new(1),
            pid: std::process::id(),
            descriptors: Arc::new(DescriptorNumbers::new(config.sessions)),
            measure,
            config,
        }
    }

    /// Start a message: true if one was left. The counter is decremented
    /// in every case (docs/smtp-source.md §4: `-s 3 -m 2` leaves it at -1).
    pub(super) fn take_message(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::Relaxed) > 0
    }

    /// The Date header value, made once per run at the first DATA.
    pub(super) fn date(&self) -> &str {
        self.date.get_or_init(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            date::rfc2822(now)
        })
    }

    /// LOCAL [n] DOMAIN.
    pub(super) fn write_recipient(&self, out: &mut BytesMut, n: Option<i32>) {
        self.message.write_recipient(out, n);
    }

    /// The header block of one message, for every path (plain, ESMTP,
    /// BDAT): generated headers, then the measurement stamp if any.
    /// `numbered` is the `To:` number, `fd` the session's socket.
    pub(super) fn write_headers(&self, out: &mut BytesMut, numbered: Option<i32>, fd: i32) {
        let remaining = self.remaining.load(Ordering::Relaxed);
        let template = &self.message.template;
        template.write_headers(
            out,
            |out| self.write_recipient(out, numbered),
            self.date(),
            self.pid,
            fd,
            remaining,
        );
        if let Some(m) = &self.measure {
            m.stamp(out, template.headers, self.config.file.is_none());
        }
    }
}
