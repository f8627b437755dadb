//! Per-session measurements for `smtp-source --report/--json/--progress`.
//!
//! Every session task owns one [`Recorder`]: a histogram per phase and
//! counters in fixed arrays, touched only by its owner, so the hot path has
//! no lock, no shared cache line and no allocation per message (a histogram
//! only allocates when a new maximum needs a larger range). The recorders
//! are merged once at the end into a [`Report`](super::report::Report).
//!
//! The timing rules (what each phase measures) live here, as plain methods
//! taking the current [`Tick`], so they are unit tested without sockets:
//! * `connect`: from asking for a connection (the connect queue wait
//!   included, as Postfix serialises connects) to the connected socket;
//! * `banner`: from the connected socket to the complete greeting;
//! * `helo`, `mail`, `rcpt`, `data`, `rset`, `quit`: from the command's write
//!   to its complete reply;
//! * `dot`: from the write of the content and `.` to each end-of-data reply;
//! * `message`: from the message's start (its *intended* start under
//!   `--rate`, see [`super::rate`]) to the first 2xx end-of-data reply.
//!
//! A session writes its next command right after it has read a reply, so
//! the time of that reply is also the start of the next step: one clock
//! read per reply, plus one per message start and per connect, is all the
//! hot path pays (a command's own formatting, nanoseconds, is counted with
//! its reply). Times are plain nanosecond counts of the monotonic clock
//! ([`tick`]): a difference is one subtraction.

use std::sync::mpsc::Sender;

use super::hist::{self, SessionHist};
use super::timeline::{Clock, SessionTimeline, Timeline};
use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds of `CLOCK_MONOTONIC` (the clock behind
/// `std::time::Instant` on Linux).
pub type Tick = u64;

/// Now, as a [`Tick`].
#[inline]
pub fn tick() -> Tick {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A measured step of the dialogue. Reply codes are counted per phase too
/// (all but `Connect` and `Message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// TCP/UNIX connect.
    Connect,
    /// Server greeting.
    Banner,
    /// HELO or LHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO (one value per recipient).
    Rcpt,
    /// DATA command.
    Data,
    /// Content and the final `.` (LMTP: one value per reply).
    Dot,
    /// RSET after a rejection.
    Rset,
    /// QUIT.
    Quit,
    /// The whole message, start to accepted end of data.
    Message,
    /// A TLS handshake (implicit TLS at connect, or after STARTTLS).
    Tls,
}

impl Phase {
    /// Number of phases.
    pub const COUNT: usize = 11;
    /// All phases, in dialogue order.
    pub const ALL: [Phase; Phase::COUNT] = [
        Phase::Connect,
        Phase::Banner,
        Phase::Helo,
        Phase::Mail,
        Phase::Rcpt,
        Phase::Data,
        Phase::Dot,
        Phase::Rset,
        Phase::Quit,
        Phase::Message,
        Phase::Tls,
    ];

    /// Index into per-phase arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Key in JSON reports.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Banner => "banner",
            Phase::Helo => "helo",
            Phase::Mail => "mail",
            Phase::Rcpt => "rcpt",
            Phase::Data => "data",
            Phase::Dot => "dot",
            Phase::Rset => "rset",
            Phase::Quit => "quit",
            Phase::Message => "message",
            Phase::Tls => "tls",
        }
    }

    /// Phase for a JSON key.
    pub fn from_key(key: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Label in the human-readable report.
    pub fn label(self, lmtp: bool) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Banner => "banner",
            Phase::Helo if lmtp => "LHLO",
            Phase::Helo => "HELO",
            Phase::Mail => "MAIL",
            Phase::Rcpt => "RCPT",
            Phase::Data => "DATA",
            Phase::Dot => "end of data",
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
            Phase::Message => "message",
            Phase::Tls => "TLS",
        }
    }

    /// Whether the phase ends with a server reply (and so has reply codes).
    pub fn has_replies(self) -> bool {
        !matches!(self, Phase::Connect | Phase::Message | Phase::Tls)
    }
}

/// Distinct reply codes kept per phase; real servers use a handful. Codes
/// beyond this are counted as `other` (no allocation on the hot path).
pub const CODE_SLOTS: usize = 12;

/// Reply-code counts of one phase in a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeTable {
    slots: [(u16, u64); CODE_SLOTS],
    used: u8,
    /// Replies whose code did not fit in the slots.
    pub other: u64,
}

impl Default for CodeTable {
    fn default() -> Self {
        CodeTable {
            slots: [(0, 0); CODE_SLOTS],
            used: 0,
            other: 0,
        }
    }
}

impl CodeTable {
    /// Count one reply. `code` is 0..=999 (0: not a valid 3-digit code).
    #[inline]
    pub fn add(&mut self, code: u32) {
        let code = code.min(999) as u16;
        let used = usize::from(self.used);
        for slot in &mut self.slots[..used] {
            if slot.0 == code {
                slot.1 += 1;
                return;
            }
        }
        if used < CODE_SLOTS {
            self.slots[used] = (code, 1);
            self.used += 1;
        } else {
            self.other += 1;
        }
    }

    /// `(code, count)` pairs in first-seen order.
    pub fn codes(&self) -> &[(u16, u64)] {
        &self.slots[..usize::from(self.used)]
    }
}

/// Plain counters of a session (and of a merged report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Session tasks.
    pub sessions: u64,
    /// Connections established.
    pub connects: u64,
    /// Failed connect attempts (each `-C` retry counts).
    pub connect_failures: u64,
    /// Messages started (taken from the `-m` pool / the rate schedule).
    pub attempted: u64,
    /// Messages whose end of data got a 2xx (LMTP: at least one).
    pub accepted: u64,
    /// Messages that ended without acceptance under `-A` (rejected or
    /// closed by the server).
    pub rejected: u64,
    /// Messages cut short by a fatal error (lost connection, timeout,
    /// unexpected reply without `-A`).
    pub failed: u64,
    /// RCPT commands sent.
    pub rcpts_sent: u64,
    /// RCPT commands answered 2xx.
    pub rcpts_accepted: u64,
    /// Bytes written to the server (commands and content).
    pub bytes_sent: u64,
    /// TLS handshakes completed.
    #[serde(default)]
    pub tls_handshakes: u64,
    /// Of those, resumed sessions (`--tls-resume`).
    #[serde(default)]
    pub tls_resumed: u64,
}

impl Counters {
    /// Add `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.sessions += other.sessions;
        self.connects += other.connects;
        self.connect_failures += other.connect_failures;
        self.attempted += other.attempted;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.rcpts_sent += other.rcpts_sent;
        self.rcpts_accepted += other.rcpts_accepted;
        self.bytes_sent += other.bytes_sent;
        self.tls_handshakes += other.tls_handshakes;
        self.tls_resumed += other.tls_resumed;
    }
}

/// One session's measurements.
#[derive(Debug)]
pub struct Recorder {
    /// Counters.
    pub counters: Counters,
    /// Reply codes per phase (indexed by [`Phase::index`]).
    pub replies: [CodeTable; Phase::COUNT],
    /// Latency per phase, microseconds; made at a phase's first value, so
    /// phases a run never uses cost nothing.
    pub latency: [Option<SessionHist>; Phase::COUNT],
    /// Start of the step being timed (connect request, command write).
    mark: Tick,
    /// Start of the current message (intended start under `--rate`).
    message_start: Tick,
    /// The current message got its 2xx end-of-data reply.
    accepted: bool,
    /// Set while a message is in progress.
    in_message: bool,
    /// Negotiated TLS (protocol version, cipher suite) pairs with counts.
    pub tls: TlsTable,
    /// Per-interval counts and message latency, when a timeline is wanted.
    timeline: Option<Box<SessionTimeline>>,
}

/// Distinct (TLS version, cipher suite) pairs kept per session; a run
/// normally negotiates one. Further pairs are counted in `other`.
pub const TLS_SLOTS: usize = 4;

/// (version, suite, count) of TLS handshakes, IANA code points, in a fixed
/// array (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsTable {
    slots: [(u16, u16, u64); TLS_SLOTS],
    used: u8,
    /// Handshakes whose pair did not fit.
    pub other: u64,
}

impl TlsTable {
    /// Count one handshake.
    pub fn add(&mut self, version: u16, suite: u16) {
        let used = usize::from(self.used);
        for slot in &mut self.slots[..used] {
            if slot.0 == version && slot.1 == suite {
                slot.2 += 1;
                return;
            }
        }
        if used < TLS_SLOTS {
            self.slots[used] = (version, suite, 1);
            self.used += 1;
        } else {
            self.other += 1;
        }
    }

    /// `(version, suite, count)` in first-seen order.
    pub fn pairs(&self) -> &[(u16, u16, u64)] {
        &self.slots[..usize::from(self.used)]
    }
}

impl Recorder {
    /// A recorder for one session (counts itself as one session).
    pub fn new(now: Tick) -> Recorder {
        Recorder {
            counters: Counters {
                sessions: 1,
                ..Counters::default()
            },
            replies: [CodeTable::default(); Phase::COUNT],
            latency: Default::default(),
            mark: now,
            message_start: now,
            accepted: false,
            in_message: false,
            tls: TlsTable::default(),
            timeline: None,
        }
    }

    /// Also keep a timeline of intervals on `clock` (see
    /// [`super::timeline`]).
    pub fn with_timeline(mut self, clock: Clock, now: Tick) -> Recorder {
        self.timeline = Some(Box::new(SessionTimeline::new(clock, now)));
        self
    }

    /// The finished timeline, if one was kept (taken out).
    pub fn take_timeline(&mut self) -> Option<Timeline> {
        self.timeline.take().map(|t| t.finish())
    }

    /// A message starts `now`; `start` is when it should have started (its
    /// intended time under `--rate`, else `now`).
    #[inline]
    pub fn begin_message(&mut self, start: Tick, now: Tick) {
        self.counters.attempted += 1;
        if let Some(t) = &mut self.timeline {
            t.at(now).attempted += 1;
        }
        self.message_start = start;
        self.mark = now;
        self.accepted = false;
        self.in_message = true;
    }

    /// The message ended: `ok` false when a fatal error cut it short.
    #[inline]
    pub fn end_message(&mut self, ok: bool) {
        if !self.in_message {
            return;
        }
        self.in_message = false;
        if !self.accepted {
            let (rejected, failed) = if ok { (1, 0) } else { (0, 1) };
            self.counters.rejected += rejected;
            self.counters.failed += failed;
            if let Some(t) = &mut self.timeline {
                let counts = t.current();
                counts.rejected += rejected;
                counts.failed += failed;
            }
        }
    }

    /// Start timing a step (a connect request, a command write).
    #[inline]
    pub fn mark(&mut self, now: Tick) {
        self.mark = now;
        if let Some(t) = &mut self.timeline {
            // Events without a clock read of their own (bytes written,
            // a failed connect) count in the interval of the latest one.
            t.at(now);
        }
    }

    /// A connect attempt failed.
    #[inline]
    pub fn connect_failed(&mut self) {
        self.counters.connect_failures += 1;
        if let Some(t) = &mut self.timeline {
            t.current().connect_errors += 1;
        }
    }

    /// The connection is up: records the connect time and starts timing the
    /// banner.
    #[inline]
    pub fn connected(&mut self, now: Tick) {
        self.counters.connects += 1;
        if let Some(t) = &mut self.timeline {
            t.at(now).connects += 1;
        }
        self.record(Phase::Connect, self.mark, now);
        self.mark = now;
    }

    /// A TLS handshake took `took` and negotiated `version`/`suite` (IANA
    /// code points); `resumed` for an abbreviated handshake.
    pub fn tls_handshake(
        &mut self,
        took: std::time::Duration,
        version: u16,
        suite: u16,
        resumed: bool,
    ) {
        self.counters.tls_handshakes += 1;
        self.counters.tls_resumed += u64::from(resumed);
        self.tls.add(version, suite);
        let h = self.latency[Phase::Tls.index()].get_or_insert_with(hist::new_session);
        hist::record(h, hist::micros(took));
    }

    /// `n` bytes were written.
    #[inline]
    pub fn sent(&mut self, n: usize) {
        self.counters.bytes_sent += n as u64;
        if let Some(t) = &mut self.timeline {
            t.current().bytes += n as u64;
        }
    }

    /// A complete reply with `code` arrived for `phase` at `now`, which
    /// also starts the next step.
    #[inline]
    pub fn reply(&mut self, phase: Phase, code: u32, now: Tick) {
        let i = phase.index();
        self.replies[i].add(code);
        self.record(phase, self.mark, now);
        self.mark = now;
        let ok = code / 100 == 2;
        match phase {
            Phase::Rcpt => {
                self.counters.rcpts_sent += 1;
                self.counters.rcpts_accepted += u64::from(ok);
            }
            Phase::Dot if ok && !self.accepted && self.in_message => {
                self.accepted = true;
                self.counters.accepted += 1;
                self.record(Phase::Message, self.message_start, now);
                if let Some(t) = &mut self.timeline {
                    t.accepted(now, now.saturating_sub(self.message_start) / 1000);
                }
            }
            _ => {}
        }
    }

    #[inline]
    fn record(&mut self, phase: Phase, from: Tick, to: Tick) {
        let us = to.saturating_sub(from) / 1000;
        let h = self.latency[phase.index()].get_or_insert_with(hist::new_session);
        hist::record(h, us);
    }

    /// The latency histogram of `phase`, if it has values.
    pub fn latency(&self, phase: Phase) -> Option<&SessionHist> {
        self.latency[phase.index()].as_ref()
    }

    /// Whether the current message has been accepted.
    pub fn accepted(&self) -> bool {
        self.accepted
    }
}

/// A [`Recorder`] that hands itself over when dropped, whether its session
/// ended normally or was cancelled by another session's fatal error, so the
/// run can always report what every session measured.
#[derive(Debug)]
pub struct Handle {
    rec: Option<Box<Recorder>>,
    tx: Sender<Box<Recorder>>,
}

impl Handle {
    /// Wrap `rec`; it is sent to `tx` on drop.
    pub fn new(rec: Recorder, tx: Sender<Box<Recorder>>) -> Handle {
        Handle {
            rec: Some(Box::new(rec)),
            tx,
        }
    }

    /// The recorder.
    #[inline]
    pub fn get(&mut self) -> &mut Recorder {
        // Only `drop` takes it out.
        self.rec.as_mut().expect("recorder present until drop")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(rec) = self.rec.take() {
            // The receiver is gone only when nobody reports any more.
            let _ = self.tx.send(rec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest value of a phase, as the value recorded (histograms
    /// report the top of its bucket).
    fn max_us(r: &Recorder, p: Phase) -> u64 {
        r.latency(p).map_or(0, |h| h.lowest_equivalent(h.max()))
    }

    /// `us` as the histogram stores it (the bottom of its bucket).
    fn bucket(r: &Recorder, p: Phase, us: u64) -> u64 {
        r.latency(p).map_or(0, |h| h.lowest_equivalent(us))
    }

    fn at(start: Tick, ms: u64) -> Tick {
        start + ms * 1_000_000
    }

    #[test]
    fn code_table_counts_and_overflows_without_allocating() {
        let mut t = CodeTable::default();
        t.add(250);
        t.add(250);
        t.add(550);
        t.add(1234); // clamped
        assert_eq!(t.codes(), &[(250, 2), (550, 1), (999, 1)]);
        for code in 300..320 {
            t.add(code);
        }
        assert_eq!(t.codes().len(), CODE_SLOTS);
        assert_eq!(t.other, 20 - (CODE_SLOTS as u64 - 3));
        let total: u64 = t.codes().iter().map(|c| c.1).sum::<u64>() + t.other;
        assert_eq!(total, 24);
    }

    #[test]
    fn phase_keys_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_key(p.key()), Some(p));
            assert_eq!(Phase::ALL[p.index()], p);
        }
        assert_eq!(Phase::from_key("nope"), None);
        assert_eq!(Phase::Helo.label(true), "LHLO");
        assert_eq!(Phase::Helo.label(false), "HELO");
    }

    #[test]
    fn one_smtp_message_timeline() {
        let t0 = tick();
        let mut r = Recorder::new(t0);
        r.begin_message(t0, t0);
        r.mark(t0);
        r.connected(at(t0, 2));
        r.reply(Phase::Banner, 220, at(t0, 3));
        r.mark(at(t0, 3));
        r.sent(9);
        r.reply(Phase::Helo, 250, at(t0, 5));
        r.mark(at(t0, 5));
        r.reply(Phase::Mail, 250, at(t0, 6));
        r.mark(at(t0, 6));
        r.reply(Phase::Rcpt, 250, at(t0, 7));
        r.mark(at(t0, 7));
        r.reply(Phase::Rcpt, 550, at(t0, 9));
        r.mark(at(t0, 9));
        r.reply(Phase::Data, 354, at(t0, 10));
        r.mark(at(t0, 10));
        r.sent(1000);
        r.reply(Phase::Dot, 250, at(t0, 14));
        r.mark(at(t0, 14));
        r.reply(Phase::Quit, 221, at(t0, 15));
        r.end_message(true);

        let c = r.counters;
        assert_eq!(
            (c.sessions, c.connects, c.attempted, c.accepted, c.rejected),
            (1, 1, 1, 1, 0)
        );
        assert_eq!((c.rcpts_sent, c.rcpts_accepted, c.bytes_sent), (2, 1, 1009));
        let max = |p: Phase| max_us(&r, p);
        assert_eq!(max(Phase::Connect), 2000);
        assert_eq!(max(Phase::Banner), 1000);
        assert_eq!(max(Phase::Helo), 2000);
        assert_eq!(max(Phase::Rcpt), 2000);
        assert_eq!(r.latency(Phase::Rcpt).map(|h| h.len()), Some(2));
        assert_eq!(max(Phase::Dot), 4000);
        assert_eq!(max(Phase::Message), bucket(&r, Phase::Message, 14_000));
        assert_eq!(
            r.replies[Phase::Rcpt.index()].codes(),
            &[(250, 1), (550, 1)]
        );
        assert!(r.latency(Phase::Rset).is_none());
    }

    #[test]
    fn message_latency_counts_from_the_intended_start() {
        let t0 = tick();
        let mut r = Recorder::new(t0);
        // Intended at t0, actually started 500 ms late.
        r.begin_message(t0, at(t0, 500));
        r.reply(Phase::Dot, 250, at(t0, 510));
        r.end_message(true);
        let max = |p: Phase| max_us(&r, p);
        assert_eq!(max(Phase::Message), bucket(&r, Phase::Message, 510_000));
        assert_eq!(max(Phase::Dot), 10_000);
    }

    #[test]
    fn outcomes_rejected_failed_and_lmtp_first_accept() {
        let t0 = tick();
        let mut r = Recorder::new(t0);
        // Rejected at MAIL under -A.
        r.begin_message(t0, t0);
        r.reply(Phase::Mail, 550, t0);
        r.reply(Phase::Rset, 250, t0);
        r.end_message(true);
        // Lost connection.
        r.begin_message(t0, t0);
        r.end_message(false);
        // LMTP: two replies, the first 2xx accepts once.
        r.begin_message(t0, t0);
        r.reply(Phase::Dot, 250, at(t0, 1));
        r.reply(Phase::Dot, 452, at(t0, 2));
        assert!(r.accepted());
        r.end_message(true);
        // end_message without a message is a no-op.
        r.end_message(false);
        let c = r.counters;
        assert_eq!(
            (c.attempted, c.accepted, c.rejected, c.failed),
            (3, 1, 1, 1)
        );
        assert_eq!(r.latency(Phase::Message).map(|h| h.len()), Some(1));
        assert_eq!(r.latency(Phase::Dot).map(|h| h.len()), Some(2));
    }

    #[test]
    fn the_timeline_sums_to_the_counters() {
        let t0 = tick();
        // 100 ms intervals; the run starts at epoch 0.05 s.
        let clock = Clock::at(50_000_000, t0, 100);
        let mut r = Recorder::new(t0).with_timeline(clock, t0);
        for i in 0..10 {
            let start = at(t0, i * 30);
            r.begin_message(start, start);
            r.mark(start);
            if i % 4 == 3 {
                r.connect_failed();
                r.end_message(false);
                continue;
            }
            r.connected(at(t0, i * 30 + 1));
            r.sent(100);
            let code = if i % 3 == 0 { 550 } else { 250 };
            r.reply(Phase::Dot, code, at(t0, i * 30 + 20));
            r.end_message(true);
        }
        let c = r.counters;
        let t = r.take_timeline().expect("timeline");
        assert!(r.take_timeline().is_none());
        let (sum, latencies) = t.totals();
        assert_eq!(
            (sum.attempted, sum.accepted, sum.rejected, sum.failed),
            (c.attempted, c.accepted, c.rejected, c.failed)
        );
        assert_eq!(
            (sum.connects, sum.connect_errors, sum.bytes),
            (c.connects, c.connect_failures, c.bytes_sent)
        );
        assert_eq!(latencies, c.accepted);
        // 10 messages over 290 ms from epoch 50 ms: intervals 0, 100, 200, 300 ms.
        let starts: Vec<u64> = t.intervals().iter().map(|i| i.start_ms).collect();
        assert_eq!(starts, [0, 100, 200, 300]);
        assert!(c.rejected > 0 && c.failed > 0 && c.accepted > 0);
    }

    #[test]
    fn ticks_follow_the_monotonic_clock() {
        let a = tick();
        let i = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = tick();
        let elapsed = i.elapsed().as_nanos() as u64;
        assert!(b - a >= 20_000_000);
        // Same clock as Instant: the two intervals agree closely.
        assert!(
            (b - a).abs_diff(elapsed) < 5_000_000,
            "{} vs {elapsed}",
            b - a
        );
    }

    #[test]
    fn handle_delivers_on_drop() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut h = Handle::new(Recorder::new(tick()), tx);
        h.get().sent(5);
        assert!(rx.try_recv().is_err());
        drop(h);
        let rec = rx.try_recv().expect("delivered");
        assert_eq!(rec.counters.bytes_sent, 5);
    }
}
