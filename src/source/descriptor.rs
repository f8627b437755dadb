//! The descriptor numbers Postfix's smtp-source would give its sockets,
//! for the second field of the `Message-Id` header (docs/smtp-source.md
//! §7.1: the connection socket's file descriptor).
//!
//! Our process holds more descriptors than Postfix's (the runtime's epoll
//! and wake-up descriptors, `--metrics`, `--threads`), so its own socket
//! numbers start higher and move with the options. Postfix's follow POSIX's
//! lowest-free rule in a process that holds only 0, 1 and 2, plus its event
//! loop's epoll descriptor, which it makes right after its first socket and
//! keeps (so that one is 4): a run's sockets are 3, 5, 6, 7, …, each closed
//! socket's number being reused by the next one. Measured with 3.7:
//! `-m 3` → 3, 3, 3; `-s 2 -m 2` → 3, 5; `-s 3 -m 9` → 3, 5, 6, then
//! numbers reused as sessions reconnect.
//!
//! [`DescriptorNumbers`] keeps that table with atomics (sessions on
//! several `--threads` loops share it; one claim per connection, none per
//! message).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Descriptors open before the first socket: stdin, stdout, stderr.
const FIRST_FREE: usize = 3;

/// The event loop's epoll descriptor, made right after the first socket.
const EPOLL: usize = 4;

/// Room beyond `-s` sockets: the reserved numbers and one connect in
/// progress (docs/smtp-source.md §5: at most one at a time).
const SPARE: usize = 8;

/// The table of numbers in use.
#[derive(Debug)]
pub struct DescriptorNumbers {
    words: Box<[AtomicU64]>,
}

impl DescriptorNumbers {
    /// A table for `sessions` concurrent sessions.
    pub fn new(sessions: u32) -> DescriptorNumbers {
        let bits = sessions as usize + SPARE;
        let words: Box<[AtomicU64]> = (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let reserved = (0..FIRST_FREE).chain([EPOLL]).fold(0u64, |m, b| m | 1 << b);
        words[0].store(reserved, Ordering::Relaxed);
        DescriptorNumbers { words }
    }

    /// Claim the lowest free number; `None` when the table is full (it is
    /// sized for `-s` sessions, so only a caller that holds more sockets
    /// than sessions would see it).
    fn claim(&self) -> Option<usize> {
        for (i, word) in self.words.iter().enumerate() {
            let mut current = word.load(Ordering::Relaxed);
            while current != u64::MAX {
                let bit = (!current).trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    current,
                    current | 1 << bit,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(i * 64 + bit),
                    Err(now) => current = now,
                }
            }
        }
        None
    }

    fn release(&self, n: usize) {
        if let Some(word) = self.words.get(n / 64) {
            word.fetch_and(!(1 << (n % 64)), Ordering::Relaxed);
        }
    }
}

/// One socket's number, given back when dropped (the socket is closed).
#[derive(Debug)]
pub struct Descriptor {
    table: Arc<DescriptorNumbers>,
    n: Option<usize>,
    /// The real descriptor, shown when the table was full.
    real: i32,
}

impl Descriptor {
    /// The number for a socket whose real descriptor is `real`.
    pub fn claim(table: &Arc<DescriptorNumbers>, real: i32) -> Descriptor {
        Descriptor {
            table: table.clone(),
            n: table.claim(),
            real,
        }
    }

    /// The number Postfix's process would have used.
    pub fn number(&self) -> i32 {
        self.n
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(self.real)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        if let Some(n) = self.n {
            self.table.release(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_postfixs_process() {
        let t = Arc::new(DescriptorNumbers::new(3));
        // -m 3, one session: the same number each time.
        for _ in 0..3 {
            assert_eq!(Descriptor::claim(&t, 9).number(), 3);
        }
        // -s 3: 3, then 5 and 6 (4 is the event loop's).
        let a = Descriptor::claim(&t, 9);
        let b = Descriptor::claim(&t, 10);
        let c = Descriptor::claim(&t, 11);
        assert_eq!((a.number(), b.number(), c.number()), (3, 5, 6));
        // A closed socket's number is the next one's.
        drop(b);
        assert_eq!(Descriptor::claim(&t, 12).number(), 5);
    }

    #[test]
    fn past_the_first_word_and_when_full() {
        let t = Arc::new(DescriptorNumbers::new(100));
        let held: Vec<Descriptor> = (0..100).map(|i| Descriptor::claim(&t, 1000 + i)).collect();
        // 0..=2 and 4 reserved: 3, then 5.. up to 103.
        assert_eq!(held[0].number(), 3);
        assert_eq!(held[99].number(), 103);
        // One word: 60 numbers besides the reserved four, then the real
        // descriptor shows.
        let full = Arc::new(DescriptorNumbers::new(0));
        let kept: Vec<Descriptor> = (0..60).map(|i| Descriptor::claim(&full, 50 + i)).collect();
        assert_eq!(kept[59].number(), 63);
        assert_eq!(Descriptor::claim(&full, 777).number(), 777);
    }
}
