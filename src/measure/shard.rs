//! One smtp-source run split exactly over several processes or machines
//! (`--shard I/N`, `--run-id ID`), and the checks `--merge` makes before it
//! combines the shards' reports.
//!
//! The run's messages are numbered globally from 0 (`j`); shard `I` of `N`
//! sends those with `j mod N = I`, so the shards together send exactly `-m`
//! and none is sent twice. Under `--track` the stamped sequence number is
//! `j`, so a sink sees one run with no gaps when every shard did its part;
//! under `--rate R` message `j` is due at `start + j / R` on every shard
//! (README, "Scaling out"). Nothing here reads a clock or a socket.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use crate::diag::{sanitize, Error, Result};

/// Most shards of one run: as many pods as a Kubernetes Indexed Job may
/// have (its `completions` are at most 100000), and a bound on the index
/// lists a merged report keeps.
pub const MAX_SHARDS: u32 = 100_000;

/// The environment variable that holds a pod's index in a Kubernetes
/// Indexed Job, read by `--shard auto/N`.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Missing shard indices named in a warning before "and K more".
pub const MISSING_LISTED: usize = 20;

/// This process's part of a sharded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// `I`, from 0.
    pub index: u32,
    /// `N`, at least 1.
    pub count: u32,
}

/// A decimal number of at most 9 digits (no sign, no spaces).
fn decimal(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

impl Shard {
    /// Parse a `--shard` value: `I/N`, or `auto/N` with `I` taken from
    /// `env_index` (the value of [`INDEX_ENV`], if set).
    pub fn parse(value: &[u8], env_index: Option<&OsStr>) -> Result<Shard> {
        let shown = sanitize(value);
        let bad = |why: &str| Error::fatal(format!("bad --shard value: {shown} ({why})"));
        let slash = value
            .iter()
            .position(|&b| b == b'/')
            .ok_or_else(|| bad("I/N or auto/N"))?;
        let (index, count) = (&value[..slash], &value[slash + 1..]);
        let count = decimal(count)
            .filter(|n| (1..=MAX_SHARDS).contains(n))
            .ok_or_else(|| bad(&format!("N from 1 to {MAX_SHARDS}")))?;
        let index = if index == b"auto" {
            Self::env_index(&shown, env_index)?
        } else {
            decimal(index).ok_or_else(|| bad("I/N or auto/N"))?
        };
        if index >= count {
            return Err(Error::fatal(format!(
                "bad --shard value: {shown} (index {index} is not below {count})"
            )));
        }
        Ok(Shard { index, count })
    }

    /// The index of `--shard auto/N`, from [`INDEX_ENV`].
    fn env_index(shown: &str, env_index: Option<&OsStr>) -> Result<u32> {
        let Some(raw) = env_index else {
            return Err(Error::fatal(format!(
                "--shard {shown}: {INDEX_ENV} is not set (Kubernetes sets it in the pods \
                 of an Indexed Job; elsewhere give the index: --shard I/N)"
            )));
        };
        decimal(raw.as_bytes()).ok_or_else(|| {
            Error::fatal(format!(
                "--shard {shown}: bad {INDEX_ENV} value: {}",
                sanitize(raw.as_bytes())
            ))
        })
    }

    /// How many of a run's `total` messages this shard sends: the `j` in
    /// `0..total` with `j mod N = I`.
    pub fn messages(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if total > i {
            (total - i - 1) / n + 1
        } else {
            0
        }
    }

    /// This shard's share of `total` sessions: as even as possible (the
    /// first `total mod N` shards have one more), and at least one.
    pub fn sessions(&self, total: u32) -> u32 {
        let extra = u32::from(self.index < total % self.count);
        (total / self.count + extra).max(1)
    }

    /// The global number `j` of this shard's `k`-th message (from 0).
    #[inline]
    pub fn global(&self, k: u64) -> u64 {
        k.saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }

    /// `I/N`, as shown in reports.
    pub fn text(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// Parse a `--run-id` value: the id `--track` stamps in `X-Smtpstone-Run`,
/// 1 to 16 hex digits (printed back as 16 lowercase digits).
pub fn parse_run_id(value: &[u8]) -> Result<u64> {
    let ok = !value.is_empty() && value.len() <= 16 && value.iter().all(u8::is_ascii_hexdigit);
    ok.then(|| std::str::from_utf8(value).ok())
        .flatten()
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .ok_or_else(|| {
            Error::fatal(format!(
                "bad --run-id value: {} (1 to 16 hex digits, as X-Smtpstone-Run carries)",
                sanitize(value)
            ))
        })
}

/// The shards a report covers: one index for a shard's own report, several
/// once merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSet {
    /// `N`.
    pub count: u32,
    /// Indices covered, ascending, distinct, each below `count`.
    pub indices: Vec<u32>,
}

impl ShardSet {
    /// The set of one shard.
    pub fn of(shard: Shard) -> ShardSet {
        ShardSet {
            count: shard.count,
            indices: vec![shard.index],
        }
    }

    /// Check a set read from a report.
    pub fn checked(count: u32, mut indices: Vec<u32>) -> std::result::Result<ShardSet, String> {
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(format!("bad shard count {count}"));
        }
        indices.sort_unstable();
        indices.dedup();
        if indices.is_empty() || indices.iter().any(|&i| i >= count) {
            return Err(format!("bad shard indices for a count of {count}"));
        }
        Ok(ShardSet { count, indices })
    }

    /// Add another set of the same count.
    pub fn add(&mut self, other: &ShardSet) {
        self.indices.extend_from_slice(&other.indices);
        self.indices.sort_unstable();
        self.indices.dedup();
    }

    /// Indices not covered, ascending.
    pub fn missing(&self) -> Vec<u32> {
        let mut have = self.indices.iter().peekable();
        (0..self.count)
            .filter(|i| {
                if have.peek() == Some(&i) {
                    have.next();
                    false
                } else {
                    true
                }
            })
            .collect()
    }

    /// `2/4` for one shard; `4 of 4`, or `3 of 4 (missing 1)`, once merged.
    pub fn text(&self) -> String {
        if let [index] = self.indices[..] {
            return format!("shard {index}/{}", self.count);
        }
        let mut out = format!("shards {} of {}", self.indices.len(), self.count);
        let missing = self.missing();
        if !missing.is_empty() {
            let _ = write!(out, " (missing {})", list(&missing));
        }
        out
    }
}

/// `1, 3, 5` (at most [`MISSING_LISTED`] numbers, then `and K more`).
fn list(indices: &[u32]) -> String {
    let mut out = String::new();
    for (n, i) in indices.iter().take(MISSING_LISTED).enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{i}");
    }
    if indices.len() > MISSING_LISTED {
        let _ = write!(out, " and {} more", indices.len() - MISSING_LISTED);
    }
    out
}

/// What `--merge` needs to know of one report to check it.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// How the report is named in messages (its file name).
    pub name: &'a str,
    /// Its run ids.
    pub run_ids: &'a [String],
    /// Its shards, if it is a shard's report.
    pub shards: Option<&'a ShardSet>,
    /// A fatal error ended its run early.
    pub incomplete: bool,
}

/// The reports `--merge` keeps, and what it warns about.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Positions (in the input) of the reports to merge, in input order.
    pub keep: Vec<usize>,
    /// One line per warning.
    pub warnings: Vec<String>,
}

/// Choose the reports to merge. Reports without shards merge as they
/// always did (several independent runs). Shards must all be of one run
/// and one `N` (an error names the first report that is not); a shard index
/// covered twice keeps one report (a complete one before an incomplete one,
/// else the first given) and warns, and indices no report covers are named
/// in a warning.
pub fn select(parts: &[Part]) -> Result<Selection> {
    let Some(first) = parts.iter().find(|p| p.shards.is_some()) else {
        return Ok(Selection {
            keep: (0..parts.len()).collect(),
            warnings: Vec::new(),
        });
    };
    let (run, count) = (first.run_ids, first.shards.map_or(0, |s| s.count));
    for p in parts {
        let Some(set) = p.shards else {
            return Err(Error::fatal(format!(
                "{}: not a shard's report, but {} is: shards merge only with shards of their run",
                p.name, first.name
            )));
        };
        if set.count != count {
            return Err(Error::fatal(format!(
                "{}: shard of {}, but {} is a shard of {count}: not one run",
                p.name, set.count, first.name
            )));
        }
        if p.run_ids != run {
            return Err(Error::fatal(format!(
                "{}: run {}, but {} is run {}: shards of different runs cannot be merged",
                p.name,
                p.run_ids.join(", "),
                first.name,
                run.join(", ")
            )));
        }
    }
    // Complete reports first, each group in the order given.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].incomplete);
    let mut covered: Vec<Option<usize>> = vec![None; count as usize];
    let mut sel = Selection::default();
    for i in order {
        let set = parts[i].shards.map_or(&[][..], |s| &s.indices[..]);
        let clash = set
            .iter()
            .find_map(|&s| covered[s as usize].map(|k| (s, k)));
        if let Some((s, k)) = clash {
            sel.warnings.push(format!(
                "shard {s}/{count} is in both {} and {}: keeping {}",
                parts[k].name, parts[i].name, parts[k].name
            ));
            continue;
        }
        for &s in set {
            covered[s as usize] = Some(i);
        }
        sel.keep.push(i);
    }
    sel.keep.sort_unstable();
    let missing: Vec<u32> = (0..count)
        .filter(|&s| covered[s as usize].is_none())
        .collect();
    if !missing.is_empty() {
        sel.warnings.push(format!(
            "missing {} of {count} shards of run {}: {}",
            missing.len(),
            run.join(", "),
            list(&missing)
        ));
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fatal<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(Error::Fatal(t)) => t,
            other => panic!("expected fatal, got {other:?}"),
        }
    }

    fn shard(index: u32, count: u32) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn parse_explicit_and_auto() {
        assert_eq!(Shard::parse(b"2/4", None).expect("2/4"), shard(2, 4));
        assert_eq!(Shard::parse(b"0/1", None).expect("0/1"), shard(0, 1));
        let env = |v: &str| Some(OsStr::new(v).to_os_string());
        assert_eq!(
            Shard::parse(b"auto/4", env("3").as_deref()).expect("auto"),
            shard(3, 4)
        );
        assert_eq!(
            Shard::parse(b"1/4", env("3").as_deref()).expect("explicit wins"),
            shard(1, 4)
        );
        assert_eq!(
            fatal(Shard::parse(b"auto/4", None)),
            "--shard auto/4: JOB_COMPLETION_INDEX is not set (Kubernetes sets it in the pods \
             of an Indexed Job; elsewhere give the index: --shard I/N)"
        );
        assert_eq!(
            fatal(Shard::parse(b"auto/4", env("x1").as_deref())),
            "--shard auto/4: bad JOB_COMPLETION_INDEX value: x1"
        );
        assert_eq!(
            fatal(Shard::parse(b"auto/4", env("4").as_deref())),
            "bad --shard value: auto/4 (index 4 is not below 4)"
        );
        assert_eq!(
            fatal(Shard::parse(b"4/4", None)),
            "bad --shard value: 4/4 (index 4 is not below 4)"
        );
        for bad in ["", "4", "1/", "/4", "-1/4", "1/-4", "a/4", "1/4/2", " 1/4"] {
            let text = fatal(Shard::parse(bad.as_bytes(), None));
            assert!(
                text.starts_with(&format!("bad --shard value: {bad} (")),
                "{text}"
            );
        }
        assert_eq!(
            fatal(Shard::parse(b"0/0", None)),
            "bad --shard value: 0/0 (N from 1 to 100000)"
        );
        assert!(Shard::parse(b"0/100000", None).is_ok());
        assert!(Shard::parse(b"0/100001", None).is_err());
        assert!(Shard::parse(b"0/99999999999999999999", None).is_err());
    }

    #[test]
    fn shards_send_every_message_exactly_once() {
        for total in [0u64, 1, 2, 3, 4, 5, 7, 100, 1001] {
            for count in [1u32, 2, 3, 4, 7, 10] {
                let mut seen = vec![0u32; total as usize];
                let mut sum = 0;
                for index in 0..count {
                    let s = shard(index, count);
                    let n = s.messages(total);
                    sum += n;
                    for k in 0..n {
                        let j = s.global(k);
                        assert_eq!(j % u64::from(count), u64::from(index));
                        seen[j as usize] += 1;
                    }
                }
                assert_eq!(sum, total, "-m {total} over {count}");
                assert!(seen.iter().all(|&n| n == 1), "-m {total} over {count}");
            }
        }
        // 10 messages over 4: 3, 3, 2, 2.
        let counts: Vec<u64> = (0..4).map(|i| shard(i, 4).messages(10)).collect();
        assert_eq!(counts, [3, 3, 2, 2]);
        assert_eq!(shard(3, 4).messages(3), 0);
        assert_eq!(shard(2, 4).global(5), 22);
    }

    #[test]
    fn sessions_split_evenly_with_one_at_least() {
        let split = |total: u32, count: u32| -> Vec<u32> {
            (0..count)
                .map(|i| shard(i, count).sessions(total))
                .collect()
        };
        assert_eq!(split(10, 4), [3, 3, 2, 2]);
        assert_eq!(split(8, 4), [2, 2, 2, 2]);
        assert_eq!(split(1, 1), [1]);
        assert_eq!(split(2, 4), [1, 1, 1, 1], "at least one each");
        assert_eq!(split(5, 4), [2, 1, 1, 1]);
        for total in 1..50 {
            for count in 1..=total {
                let s = split(total, count);
                assert_eq!(s.iter().sum::<u32>(), total);
                assert!(s.iter().max().unwrap_or(&0) - s.iter().min().unwrap_or(&0) <= 1);
            }
        }
    }

    #[test]
    fn run_ids() {
        assert_eq!(parse_run_id(b"00000000000000aa").expect("16"), 0xaa);
        assert_eq!(parse_run_id(b"DEADbeef").expect("mixed case"), 0xdead_beef);
        assert_eq!(parse_run_id(b"ffffffffffffffff").expect("max"), u64::MAX);
        for bad in ["", "xyz", "0x12", "00000000000000000", "12 ", "-1"] {
            assert_eq!(
                fatal(parse_run_id(bad.as_bytes())),
                format!(
                    "bad --run-id value: {bad} (1 to 16 hex digits, as X-Smtpstone-Run carries)"
                )
            );
        }
    }

    #[test]
    fn shard_sets() {
        let mut a = ShardSet::of(shard(2, 4));
        assert_eq!(a.text(), "shard 2/4");
        a.add(&ShardSet::of(shard(0, 4)));
        assert_eq!(a.indices, [0, 2]);
        assert_eq!(a.missing(), [1, 3]);
        assert_eq!(a.text(), "shards 2 of 4 (missing 1, 3)");
        a.add(&ShardSet::checked(4, vec![3, 1, 1]).expect("valid"));
        assert_eq!(a.text(), "shards 4 of 4");
        assert!(ShardSet::checked(4, vec![4]).is_err());
        assert!(ShardSet::checked(0, vec![0]).is_err());
        assert!(ShardSet::checked(4, vec![]).is_err());
        let many: Vec<u32> = (0..25).collect();
        assert_eq!(
            list(&many),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 and 5 more"
        );
    }

    fn ids(id: &str) -> Vec<String> {
        vec![id.to_string()]
    }

    #[test]
    fn select_keeps_one_report_per_shard_and_names_the_missing() {
        let run = ids("00000000000000aa");
        let sets: Vec<ShardSet> = [0, 2, 2, 1]
            .iter()
            .map(|&i| ShardSet::of(shard(i, 5)))
            .collect();
        let names = ["s0", "s2", "s2b", "s1"];
        let mut parts: Vec<Part> = (0..4)
            .map(|i| Part {
                name: names[i],
                run_ids: &run,
                shards: Some(&sets[i]),
                incomplete: false,
            })
            .collect();
        let sel = select(&parts).expect("select");
        assert_eq!(sel.keep, [0, 1, 3]);
        assert_eq!(
            sel.warnings,
            [
                "shard 2/5 is in both s2 and s2b: keeping s2",
                "missing 2 of 5 shards of run 00000000000000aa: 3, 4",
            ]
        );
        // An incomplete report gives way to a complete one of its shard.
        parts[1].incomplete = true;
        let sel = select(&parts).expect("select");
        assert_eq!(sel.keep, [0, 2, 3]);
        assert_eq!(
            sel.warnings[0],
            "shard 2/5 is in both s2b and s2: keeping s2b"
        );
    }

    #[test]
    fn select_refuses_other_runs_and_counts() {
        let (a, b) = (ids("00000000000000aa"), ids("00000000000000bb"));
        let (s0, s1, t1) = (
            ShardSet::of(shard(0, 2)),
            ShardSet::of(shard(1, 2)),
            ShardSet::of(shard(1, 3)),
        );
        let part = |name, run_ids, shards| Part {
            name,
            run_ids,
            shards,
            incomplete: false,
        };
        assert_eq!(
            fatal(select(&[
                part("x", &a, Some(&s0)),
                part("y", &b, Some(&s1))
            ])),
            "y: run 00000000000000bb, but x is run 00000000000000aa: \
             shards of different runs cannot be merged"
        );
        assert_eq!(
            fatal(select(&[
                part("x", &a, Some(&s0)),
                part("y", &a, Some(&t1))
            ])),
            "y: shard of 3, but x is a shard of 2: not one run"
        );
        assert_eq!(
            fatal(select(&[part("x", &a, None), part("y", &a, Some(&s1))])),
            "x: not a shard's report, but y is: shards merge only with shards of their run"
        );
        // Runs without shards merge as before, whatever their ids.
        let sel = select(&[part("x", &a, None), part("y", &b, None)]).expect("plain");
        assert_eq!(sel.keep, [0, 1]);
        assert!(sel.warnings.is_empty());
        // All shards there: nothing to say.
        let sel = select(&[part("x", &a, Some(&s1)), part("y", &a, Some(&s0))]).expect("all");
        assert_eq!(sel.keep, [0, 1]);
        assert!(sel.warnings.is_empty());
    }
}
