//! One per-minute series: the counts of every minute that had activity, oldest first, for at
//! most [`RETENTION_MINUTES`] minutes. Sparse, so an identity active for ten minutes costs ten
//! entries, and a series never holds more than [`RETENTION_MINUTES`] entries.
//!
//! Terms: a *minute* is a whole minute since the UNIX epoch (`now_ns / 60e9`); the *window*
//! `[from, to]` is inclusive at both ends.

use std::collections::VecDeque;

/// How many minutes of history are kept: 48 hours.
pub const RETENTION_MINUTES: u32 = 48 * 60;

/// What happened in one minute (or, summed, over a window). Tokens and cost can go down: a
/// settle that records less than its reservation's estimate refunds the difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Decisions made (checks and reserves; status reads are not decisions).
    pub decisions: u64,
    /// Decisions that refused the request.
    pub denials: u64,
    /// Admitted decisions past a rule's warning threshold.
    pub warnings: u64,
    /// Tokens charged (settles add the difference to the estimate).
    pub tokens: i64,
    /// Cost charged, in micro-units (as COST rules count it).
    pub cost: i64,
}

impl Counts {
    /// Adds `other` (saturating).
    pub fn add(&mut self, other: &Counts) {
        self.decisions = self.decisions.saturating_add(other.decisions);
        self.denials = self.denials.saturating_add(other.denials);
        self.warnings = self.warnings.saturating_add(other.warnings);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost = self.cost.saturating_add(other.cost);
    }

    /// Admitted decisions.
    pub fn admitted(&self) -> u64 {
        self.decisions.saturating_sub(self.denials)
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// One stored minute: 32 bytes (counts per minute fit 32 bits; 4 billion decisions a minute
/// is 71 million a second, far beyond one server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    minute: u32,
    decisions: u32,
    denials: u32,
    warnings: u32,
    tokens: i64,
    cost: i64,
}

impl Slot {
    fn counts(&self) -> Counts {
        Counts {
            decisions: u64::from(self.decisions),
            denials: u64::from(self.denials),
            warnings: u64::from(self.warnings),
            tokens: self.tokens,
            cost: self.cost,
        }
    }

    fn add(&mut self, c: &Counts) {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.decisions = self.decisions.saturating_add(narrow(c.decisions));
        self.denials = self.denials.saturating_add(narrow(c.denials));
        self.warnings = self.warnings.saturating_add(narrow(c.warnings));
        self.tokens = self.tokens.saturating_add(c.tokens);
        self.cost = self.cost.saturating_add(c.cost);
    }
}

/// Bytes one stored minute takes (for the memory budget).
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// A sparse per-minute series, minutes ascending, none older than the retention.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    slots: VecDeque<Slot>,
}

impl Series {
    /// An empty series.
    pub fn new() -> Series {
        Series::default()
    }

    /// Adds `counts` to `minute`, then drops minutes that fell out of the retention before
    /// `now_minute`. A minute older than the retention is ignored.
    pub fn add(&mut self, minute: u32, counts: &Counts, now_minute: u32) {
        let oldest = oldest_kept(now_minute);
        if minute >= oldest && !counts.is_empty() {
            match self.slots.back() {
                Some(last) if last.minute == minute => {
                    if let Some(s) = self.slots.back_mut() {
                        s.add(counts);
                    }
                }
                Some(last) if last.minute > minute => {
                    // A late sample (another worker's batch flushed first): merge in place.
                    match self.slots.binary_search_by_key(&minute, |s| s.minute) {
                        Ok(i) => self.slots[i].add(counts),
                        Err(i) => {
                            let mut s = Slot {
                                minute,
                                ..Slot::default()
                            };
                            s.add(counts);
                            self.slots.insert(i, s);
                        }
                    }
                }
                _ => {
                    let mut s = Slot {
                        minute,
                        ..Slot::default()
                    };
                    s.add(counts);
                    self.slots.push_back(s);
                }
            }
        }
        self.prune(now_minute);
    }

    /// Drops the minutes older than the retention at `now_minute`.
    pub fn prune(&mut self, now_minute: u32) {
        let oldest = oldest_kept(now_minute);
        while self.slots.front().is_some_and(|s| s.minute < oldest) {
            self.slots.pop_front();
        }
    }

    /// The minutes in `[from, to]` that had activity, ascending.
    pub fn range(&self, from: u32, to: u32) -> impl Iterator<Item = (u32, Counts)> + '_ {
        let start = self.slots.partition_point(|s| s.minute < from);
        self.slots
            .range(start..)
            .take_while(move |s| s.minute <= to)
            .map(|s| (s.minute, s.counts()))
    }

    /// The sum over `[from, to]`.
    pub fn sum(&self, from: u32, to: u32) -> Counts {
        let mut c = Counts::default();
        for (_, x) in self.range(from, to) {
            c.add(&x);
        }
        c
    }

    /// Minutes stored.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no minute is stored.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every stored minute, ascending (for the snapshot).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Counts)> + '_ {
        self.slots.iter().map(|s| (s.minute, s.counts()))
    }
}

/// The oldest minute kept at `now_minute`.
pub fn oldest_kept(now_minute: u32) -> u32 {
    now_minute.saturating_sub(RETENTION_MINUTES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(decisions: u64, denials: u64) -> Counts {
        Counts {
            decisions,
            denials,
            ..Counts::default()
        }
    }

    #[test]
    fn late_samples_merge_in_order() {
        let mut s = Series::new();
        s.add(100, &one(1, 0), 100);
        s.add(102, &one(1, 1), 102);
        s.add(101, &one(2, 0), 102);
        s.add(100, &one(1, 0), 102);
        let got: Vec<_> = s
            .range(0, u32::MAX)
            .map(|(m, c)| (m, c.decisions))
            .collect();
        assert_eq!(got, [(100, 2), (101, 2), (102, 1)]);
        assert_eq!(s.sum(101, 102), one(3, 1));
    }

    #[test]
    fn minutes_past_the_retention_are_dropped() {
        let mut s = Series::new();
        s.add(10, &one(1, 0), 10);
        s.add(
            10 + RETENTION_MINUTES - 1,
            &one(1, 0),
            10 + RETENTION_MINUTES - 1,
        );
        assert_eq!(s.len(), 2, "the 48th hour still holds the first minute");
        s.prune(10 + RETENTION_MINUTES);
        assert_eq!(s.len(), 1);
        s.add(5, &one(1, 0), 10 + RETENTION_MINUTES);
        assert_eq!(s.len(), 1, "a sample older than the retention is ignored");
    }

    proptest! {
        /// Whatever the order samples arrive in, the series equals a dense per-minute tally
        /// of the samples within the retention, and never holds more than the retention.
        #[test]
        fn series_matches_a_dense_tally(
            samples in proptest::collection::vec((0u32..4000, 0u64..5, 0u64..5), 0..300),
        ) {
            let mut s = Series::new();
            let mut now = 0u32;
            let mut dense = std::collections::BTreeMap::<u32, Counts>::new();
            for (m, d, x) in &samples {
                now = now.max(*m);
                let c = one(d + x, *x);
                s.add(*m, &c, now);
                if *m >= oldest_kept(now) {
                    dense.entry(*m).or_default().add(&c);
                }
            }
            let oldest = oldest_kept(now);
            let want: Vec<_> = dense
                .into_iter()
                .filter(|(m, c)| *m >= oldest && !c.is_empty())
                .collect();
            let got: Vec<_> = s.iter().collect();
            prop_assert_eq!(got, want);
            prop_assert!(s.len() <= RETENTION_MINUTES as usize);
        }
    }
}
