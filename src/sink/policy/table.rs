//! The policy's shared, bounded tables: token buckets, concurrent
//! connections and greylisting. Times are monotonic nanoseconds since the
//! engine's epoch, passed in by the caller. Keys are 64-bit hashes (or the
//! 128-bit client address), so no entry owns a string and every entry has
//! a fixed size.
//!
//! Each table has a cap. When a table is full, expired entries are swept
//! (at most once per [`SWEEP_INTERVAL_NS`], the sweep being O(entries));
//! if it is still full an arbitrary entry is evicted, which at worst
//! resets one sender's bucket or greylist state: never unbounded memory.

use std::collections::HashMap;

/// Greylist triples kept at most. A test MTA retrying a few hundred
/// thousand distinct (client, sender, recipient) triples within one expiry
/// window is beyond any load smtp-source makes; full, the table takes
/// 13.1 MB (measured, 50 bytes an entry).
pub const GREYLIST_MAX_ENTRIES: usize = 1 << 18;
/// Token buckets kept at most per table (client addresses, recipient
/// domains): more than the distinct clients or domains of any test; full,
/// a table takes 2.2 MB (measured, 34 bytes an entry).
pub const BUCKET_MAX_ENTRIES: usize = 1 << 16;
/// Client addresses whose concurrent connections are counted at most:
/// sessions, hence addresses, are bounded by the sink's own limits long
/// before this; a new address past it is not limited. Full: 4.3 MB
/// (measured, 66 bytes an entry).
pub const CONNECTION_MAX_ENTRIES: usize = 1 << 16;
/// Least time between two sweeps of a full table, so that a table full of
/// live entries does not cost O(entries) per insertion.
pub const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

/// A token bucket's shape: `burst` tokens, refilled at one token every
/// `period_ns` (i.e. `count` per `interval`). Kept as GCRA (RFC 2697-style
/// virtual scheduling): one "theoretical arrival time" per key, which is
/// equivalent to a token bucket and needs no floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time to earn one token.
    pub period_ns: u64,
    /// How far ahead of `now` the arrival time may run: `period × (burst − 1)`.
    pub tolerance_ns: u64,
}

impl Rate {
    /// `count` tokens per `interval_ns`, holding at most `burst` (≥ 1).
    pub fn new(count: u64, interval_ns: u64, burst: u64) -> Self {
        let period_ns = (interval_ns / count.max(1)).max(1);
        Rate {
            period_ns,
            tolerance_ns: period_ns.saturating_mul(burst.max(1) - 1),
        }
    }
}

/// Token buckets by key.
///
/// Cost per entry: 8-byte key + 8-byte arrival time in a `HashMap`
/// (SwissTable: one control byte, load factor ≤ 7/8, capacity a power of
/// two): a 17-byte slot, 20–39 bytes an entry depending on where the
/// table is in its growth.
#[derive(Debug)]
pub struct Buckets {
    rate: Rate,
    cap: usize,
    tat: HashMap<u64, u64>,
    last_sweep: Option<u64>,
}

impl Buckets {
    /// Empty buckets of one shape, holding at most `cap` keys.
    pub fn new(rate: Rate, cap: usize) -> Self {
        Buckets {
            rate,
            cap,
            tat: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Take one token for `key` at `now`; false when the bucket is empty.
    pub fn take(&mut self, key: u64, now: u64) -> bool {
        let rate = self.rate;
        if !self.tat.contains_key(&key) {
            // An entry whose arrival time has passed is a full bucket, the
            // same as no entry.
            make_room(
                &mut self.tat,
                self.cap,
                &mut self.last_sweep,
                now,
                |_, t| *t > now,
            );
        }
        let tat = self.tat.entry(key).or_insert(now);
        let start = (*tat).max(now);
        if start - now > rate.tolerance_ns {
            return false;
        }
        *tat = start + rate.period_ns;
        true
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.tat.len()
    }
}

/// Make room for one insertion: sweep entries `keep` rejects when full
/// (rate-limited by `SWEEP_INTERVAL_NS`), then evict one if still full.
fn make_room<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    last_sweep: &mut Option<u64>,
    now: u64,
    keep: impl FnMut(&K, &mut V) -> bool,
) {
    if map.len() < cap {
        return;
    }
    if last_sweep.is_none_or(|t| now.saturating_sub(t) >= SWEEP_INTERVAL_NS) {
        *last_sweep = Some(now);
        map.retain(keep);
    }
    if map.len() >= cap {
        if let Some(&victim) = map.keys().next() {
            map.remove(&victim);
        }
    }
}

/// Concurrent connections per client address.
///
/// Cost per entry: 16-byte key + 4-byte count, padded to 32 bytes, plus
/// the control byte: a 33-byte slot, 38–75 bytes an entry with spare
/// capacity. Entries leave when
/// their count drops to zero.
#[derive(Debug)]
pub struct Connections {
    limit: u32,
    open: HashMap<u128, u32>,
}

impl Connections {
    /// No connections yet; at most `limit` per address.
    pub fn new(limit: u32) -> Self {
        Connections {
            limit,
            open: HashMap::new(),
        }
    }

    /// Count a new connection from `key`: `Some(true)` counted, `Some(false)`
    /// over the limit (not counted), `None` not tracked (table full).
    pub fn open(&mut self, key: u128) -> Option<bool> {
        if !self.open.contains_key(&key) && self.open.len() >= CONNECTION_MAX_ENTRIES {
            return None;
        }
        let n = self.open.entry(key).or_insert(0);
        if *n >= self.limit {
            if *n == 0 {
                self.open.remove(&key);
            }
            return Some(false);
        }
        *n += 1;
        Some(true)
    }

    /// A counted connection from `key` ended.
    pub fn close(&mut self, key: u128) {
        if let Some(n) = self.open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&key);
            }
        }
    }

    /// Addresses with open connections.
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

/// Greylisting's answer for one triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greylist {
    /// Refuse with the greylist reply (first attempt, or a retry too early).
    Defer,
    /// The retry came after the delay.
    Pass,
}

#[derive(Debug, Clone, Copy)]
struct Triple {
    first_ns: u64,
    last_ns: u64,
}

/// Greylist entries by (client, sender, recipient) hash.
///
/// Cost per entry: 8-byte key + two 8-byte times + the control byte in a
/// `HashMap`: a 25-byte slot, 29–57 bytes an entry depending on where the
/// table is in its growth.
#[derive(Debug)]
pub struct Greylisting {
    delay_ns: u64,
    expire_ns: u64,
    cap: usize,
    entries: HashMap<u64, Triple>,
    last_sweep: Option<u64>,
}

impl Greylisting {
    /// Retries pass after `delay_ns`; entries unseen for `expire_ns` are
    /// forgotten (the next attempt is a first attempt again).
    pub fn new(delay_ns: u64, expire_ns: u64, cap: usize) -> Self {
        Greylisting {
            delay_ns,
            expire_ns,
            cap,
            entries: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Judge an attempt for `key` at `now` and record it.
    pub fn check(&mut self, key: u64, now: u64) -> Greylist {
        let expire = self.expire_ns;
        if let Some(e) = self.entries.get_mut(&key) {
            if now.saturating_sub(e.last_ns) <= expire {
                e.last_ns = now;
                return if now.saturating_sub(e.first_ns) >= self.delay_ns {
                    Greylist::Pass
                } else {
                    Greylist::Defer
                };
            }
            *e = Triple {
                first_ns: now,
                last_ns: now,
            };
            return Greylist::Defer;
        }
        make_room(
            &mut self.entries,
            self.cap,
            &mut self.last_sweep,
            now,
            |_, e| now.saturating_sub(e.last_ns) <= expire,
        );
        self.entries.insert(
            key,
            Triple {
                first_ns: now,
                last_ns: now,
            },
        );
        Greylist::Defer
    }

    /// Triples held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bucket_burst_then_refill() {
        // 10 per second, burst 3.
        let mut b = Buckets::new(Rate::new(10, SEC, 3), 8);
        assert!(b.take(1, 0));
        assert!(b.take(1, 0));
        assert!(b.take(1, 0));
        assert!(!b.take(1, 0));
        assert!(b.take(2, 0), "other keys have their own bucket");
        assert!(!b.take(1, SEC / 10 - 1));
        assert!(b.take(1, SEC / 10));
        assert!(!b.take(1, SEC / 10));
        // After a long idle the bucket is full again, not more.
        let t = 100 * SEC;
        assert_eq!((0..5).filter(|_| b.take(1, t)).count(), 3);
    }

    #[test]
    fn bucket_steady_rate() {
        // 60 per minute, burst 1: one a second exactly.
        let mut b = Buckets::new(Rate::new(60, 60 * SEC, 1), 8);
        let taken = (0..100).filter(|i| b.take(7, i * SEC / 2)).count();
        assert_eq!(taken, 50);
    }

    #[test]
    fn bucket_table_cap() {
        let mut b = Buckets::new(Rate::new(1, SEC, 1), 4);
        for key in 0..100 {
            assert!(b.take(key, 0), "a new key always has a full bucket");
            assert!(b.len() <= 4);
        }
        // Later, expired entries are swept instead of evicting live ones.
        for key in 100..104 {
            b.take(key, 10 * SEC);
        }
        assert_eq!(b.len(), 4);
        assert!(!b.take(103, 10 * SEC));
    }

    #[test]
    fn connections_limit_and_release() {
        let mut c = Connections::new(2);
        assert_eq!(c.open(1), Some(true));
        assert_eq!(c.open(1), Some(true));
        assert_eq!(c.open(1), Some(false));
        assert_eq!(c.open(2), Some(true));
        c.close(1);
        assert_eq!(c.open(1), Some(true));
        c.close(1);
        c.close(1);
        c.close(2);
        assert_eq!(c.len(), 0, "entries leave at zero");
        c.close(9);
        assert_eq!(Connections::new(0).open(1), Some(false));
        assert_eq!(Connections::new(0).len(), 0);
    }

    #[test]
    fn connections_cap() {
        let mut c = Connections::new(1);
        for key in 0..CONNECTION_MAX_ENTRIES as u128 {
            assert_eq!(c.open(key), Some(true));
        }
        assert_eq!(c.open(u128::MAX), None, "past the cap: not tracked");
        assert_eq!(c.len(), CONNECTION_MAX_ENTRIES);
    }

    #[test]
    fn greylist_delay_and_expiry() {
        let mut g = Greylisting::new(60 * SEC, 3600 * SEC, 16);
        assert_eq!(g.check(1, 0), Greylist::Defer);
        assert_eq!(g.check(1, 30 * SEC), Greylist::Defer, "too early");
        assert_eq!(g.check(1, 60 * SEC), Greylist::Pass);
        assert_eq!(g.check(1, 61 * SEC), Greylist::Pass);
        assert_eq!(g.check(2, 61 * SEC), Greylist::Defer, "other triple");
        // Unseen for longer than the expiry: a first attempt again.
        let later = 61 * SEC + 3601 * SEC;
        assert_eq!(g.check(1, later), Greylist::Defer);
        assert_eq!(g.check(1, later + 60 * SEC), Greylist::Pass);
    }

    #[test]
    fn greylist_cap_sweeps_then_evicts() {
        let mut g = Greylisting::new(SEC, 10 * SEC, 8);
        for key in 0..8 {
            g.check(key, 0);
        }
        // Full of live entries: one is evicted per insertion.
        g.check(100, SEC);
        assert_eq!(g.len(), 8);
        // All expired: the sweep empties the table but the new entry.
        g.check(200, 100 * SEC);
        assert_eq!(g.len(), 1);
        for key in 0..10_000 {
            g.check(key, 200 * SEC);
            assert!(g.len() <= 8);
        }
    }
}
