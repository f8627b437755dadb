//! `--threads N`: extra event loops for both tools.
//!
//! By default each tool runs one current-thread tokio runtime, like
//! Postfix's single-process event loop. With `--threads N` the caller's
//! runtime stays loop 0 and [`Loops`] adds N − 1 OS threads, each running
//! its own current-thread runtime; tasks are placed on a loop with
//! `JoinSet::spawn_on`, so one `JoinSet` still joins (and aborts) every
//! session wherever it runs. Sessions share only atomics, as with one loop
//! (README "Scaling out").

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::args::LongOpt;
use crate::diag::{self, Error, Result};

/// The most event loops a tool runs: one per core is the useful maximum,
/// and this bounds the threads (and their stacks) a typo can ask for.
pub const MAX_THREADS: u32 = 256;

/// The `--threads` option, shared by both tools' option tables.
pub const THREADS_OPT: LongOpt = LongOpt {
    name: "threads",
    value: Some("N"),
    help: "Run N event loops on N OS threads (default 1, one loop as Postfix; at most 256)",
};

/// Parse a `--threads` value: 1 ..= [`MAX_THREADS`].
pub fn parse_threads(value: &[u8]) -> Result<u32> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|n| (1..=MAX_THREADS).contains(n))
        .ok_or_else(|| {
            Error::fatal(format!(
                "bad --threads value: {} (1 to {MAX_THREADS})",
                diag::sanitize(value)
            ))
        })
}

/// The extra event loops (none with `--threads 1`); dropping it stops
/// them (their remaining tasks are dropped) and joins their threads.
#[derive(Debug, Default)]
pub struct Loops {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Loops {
    /// Start `threads − 1` loops beside the caller's (loop 0).
    pub fn start(threads: u32) -> Result<Loops> {
        let mut loops = Loops::default();
        for i in 1..threads {
            let (ready, handle) = mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("loop-{i}"))
                .spawn(move || run_loop(ready, stopped))
                .map_err(|e| Error::fatal(format!("cannot start thread: {e}")))?;
            loops.stops.push(stop);
            loops.threads.push(thread);
            match handle.recv() {
                Ok(Ok(h)) => loops.handles.push(h),
                Ok(Err(e)) => return Err(Error::fatal(format!("cannot start runtime: {e}"))),
                Err(_) => return Err(Error::fatal("cannot start runtime")),
            }
        }
        Ok(loops)
    }

    /// The runtime of loop `k` (counting the caller's as 0), or `None` for
    /// loop 0: the caller spawns there as usual.
    pub fn handle(&self, k: usize) -> Option<&Handle> {
        let n = self.handles.len() + 1;
        match k % n {
            0 => None,
            i => self.handles.get(i - 1),
        }
    }

    /// How many loops run, the caller's included.
    pub fn count(&self) -> usize {
        self.handles.len() + 1
    }
}

/// One extra loop: a current-thread runtime driving its tasks until told
/// to stop (or until [`Loops`] is dropped).
fn run_loop(ready: mpsc::Sender<std::io::Result<Handle>>, stopped: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(runtime.handle().clone())).is_err() {
        return;
    }
    let _ = runtime.block_on(stopped);
}

impl Drop for Loops {
    fn drop(&mut self) {
        // Dropping a sender ends its loop's block_on.
        self.stops.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_values() {
        assert_eq!(parse_threads(b"1").ok(), Some(1));
        assert_eq!(parse_threads(b"256").ok(), Some(256));
        for bad in [&b"0"[..], b"257", b"-1", b"x", b""] {
            let err = parse_threads(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("bad --threads value")),
                "{bad:?}: {err:?}"
            );
        }
    }

    /// Tasks placed on the extra loops run on their own threads, and one
    /// JoinSet joins them all.
    #[test]
    fn tasks_run_on_every_loop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let names = rt.block_on(async {
            let loops = Loops::start(3).expect("loops");
            assert_eq!(loops.count(), 3);
            let mut tasks = tokio::task::JoinSet::new();
            for k in 0..3 {
                let task = async { std::thread::current().name().map(str::to_owned) };
                match loops.handle(k) {
                    Some(h) => tasks.spawn_on(task, h),
                    None => tasks.spawn(task),
                };
            }
            let mut names = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                names.push(joined.expect("task"));
            }
            names.sort();
            names
        });
        let on = |name: &str| names.iter().filter(|n| n.as_deref() == Some(name)).count();
        assert_eq!((on("loop-1"), on("loop-2"), names.len()), (1, 1, 3));
    }
}
