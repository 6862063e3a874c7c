//! The sorted set value: members ordered by `(score, member)`, with a member -> score index.
//!
//! Scores are finite or infinite `f64`s, never NaN, and `-0` is stored as `0` (Redis compares
//! scores with `<`, so the two are one score; storing one of them keeps the total order used
//! by the tree consistent with that). Pure data structure: no I/O, no clock.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

type Hasher = foldhash::fast::RandomState;

/// A score with a total order. Invariant: never NaN, never `-0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(f64);

impl Score {
    /// Wraps `v`, turning `-0` into `0`. `v` must not be NaN.
    pub fn new(v: f64) -> Score {
        debug_assert!(!v.is_nan(), "invariant: scores are never NaN");
        // Adding +0 maps -0 to +0 and leaves every other value unchanged.
        Score(v + 0.0)
    }

    /// The score as a float.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The least float greater than `v` (`f64::next_up`, which is newer than the crate's MSRV).
/// `v` is not NaN; `+inf` maps to itself.
fn next_up(v: f64) -> f64 {
    if v == f64::INFINITY {
        v
    } else if v == 0.0 {
        f64::from_bits(1)
    } else if v > 0.0 {
        f64::from_bits(v.to_bits() + 1)
    } else {
        f64::from_bits(v.to_bits() - 1)
    }
}

/// One end of a score range, as `ZCOUNT` / `ZRANGEBYSCORE` read it (`(1` is exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// True for an exclusive bound.
    pub exclusive: bool,
}

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, Score, Hasher>,
    ordered: BTreeSet<(Score, Bytes)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.ordered == other.ordered
    }
}

impl ZSet {
    /// An empty set.
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.get())
    }

    /// Sets `member`'s score (`score` must not be NaN); returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let score = Score::new(score);
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.ordered.remove(&(old, member.clone()));
        }
        self.ordered.insert((score, member));
        old.map(Score::get)
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (member, score) = self.scores.remove_entry(member)?;
        self.ordered.remove(&(score, member));
        Some(score.get())
    }

    /// Members in ascending `(score, member)` order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + '_ {
        self.ordered.iter().map(|(s, m)| (m, s.get()))
    }

    /// Members whose score lies within `[min, max]` (each end possibly exclusive), ascending;
    /// reverse the iterator for descending order. Empty when the range is empty.
    pub fn range(
        &self,
        min: ScoreBound,
        max: ScoreBound,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + '_ {
        // The empty member sorts before every other member of the same score, so
        // `(s, "")` is the first possible key with score `s`; an inclusive upper bound `s`
        // becomes "below the first key of the next larger score".
        let lo = match (min.exclusive, min.value) {
            (false, v) if v == f64::NEG_INFINITY => Some(Bound::Unbounded),
            (false, v) => Some(Bound::Included(Score::new(v))),
            (true, v) if v == f64::INFINITY => None,
            (true, v) => Some(Bound::Included(Score::new(next_up(v)))),
        };
        let hi = match (max.exclusive, max.value) {
            (false, v) if v == f64::INFINITY => Some(Bound::Unbounded),
            (false, v) => Some(Bound::Excluded(Score::new(next_up(v)))),
            (true, v) if v == f64::NEG_INFINITY => None,
            (true, v) => Some(Bound::Excluded(Score::new(v))),
        };
        let range = match (lo, hi) {
            (Some(lo), Some(hi)) => {
                let empty = match (lo, hi) {
                    (Bound::Included(a), Bound::Excluded(b)) => a > b,
                    _ => false,
                };
                (!empty).then(|| {
                    let key = |b: Bound<Score>| match b {
                        Bound::Included(s) => Bound::Included((s, Bytes::new())),
                        Bound::Excluded(s) => Bound::Excluded((s, Bytes::new())),
                        Bound::Unbounded => Bound::Unbounded,
                    };
                    self.ordered.range((key(lo), key(hi)))
                })
            }
            _ => None,
        };
        range.into_iter().flatten().map(|(s, m)| (m, s.get()))
    }

    /// Removes the members whose score lies within the range; returns how many.
    pub fn remove_range(&mut self, min: ScoreBound, max: ScoreBound) -> usize {
        let doomed: Vec<Bytes> = self.range(min, max).map(|(m, _)| m.clone()).collect();
        for m in &doomed {
            self.remove(m);
        }
        doomed.len()
    }

    /// A rough count of heap bytes owned by the set.
    pub fn heap_size(&self) -> usize {
        self.ordered
            .iter()
            .map(|(_, m)| m.len() + 2 * std::mem::size_of::<(Score, Bytes)>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(value: f64, exclusive: bool) -> ScoreBound {
        ScoreBound { value, exclusive }
    }

    fn members(z: &ZSet, min: ScoreBound, max: ScoreBound) -> Vec<String> {
        z.range(min, max)
            .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    #[test]
    fn orders_by_score_then_member_and_reindexes_on_update() {
        let mut z = ZSet::new();
        z.insert(Bytes::from_static(b"b"), 1.0);
        z.insert(Bytes::from_static(b"a"), 1.0);
        z.insert(Bytes::from_static(b"c"), 0.5);
        assert_eq!(z.insert(Bytes::from_static(b"c"), 2.0), Some(0.5));
        let order: Vec<_> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
        assert_eq!(
            order,
            vec![
                (Bytes::from_static(b"a"), 1.0),
                (Bytes::from_static(b"b"), 1.0),
                (Bytes::from_static(b"c"), 2.0)
            ]
        );
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!(z.len(), 2);
        assert_eq!(z.score(b"a"), None);
    }

    #[test]
    fn ranges_honour_exclusive_and_infinite_bounds() {
        let mut z = ZSet::new();
        for (m, s) in [
            ("n", f64::NEG_INFINITY),
            ("a", 1.0),
            ("b", 2.0),
            ("p", f64::INFINITY),
        ] {
            z.insert(Bytes::copy_from_slice(m.as_bytes()), s);
        }
        let all = (b(f64::NEG_INFINITY, false), b(f64::INFINITY, false));
        assert_eq!(members(&z, all.0, all.1), ["n", "a", "b", "p"]);
        assert_eq!(members(&z, b(1.0, false), b(2.0, false)), ["a", "b"]);
        assert_eq!(members(&z, b(1.0, true), b(2.0, false)), ["b"]);
        assert_eq!(members(&z, b(1.0, false), b(2.0, true)), ["a"]);
        assert_eq!(
            members(&z, b(1.0, true), b(2.0, true)),
            Vec::<String>::new()
        );
        assert_eq!(
            members(&z, b(2.0, false), b(1.0, false)),
            Vec::<String>::new()
        );
        assert_eq!(
            members(&z, b(f64::INFINITY, true), all.1),
            Vec::<String>::new()
        );
        assert_eq!(
            members(&z, all.0, b(f64::NEG_INFINITY, true)),
            Vec::<String>::new()
        );
        assert_eq!(members(&z, b(f64::INFINITY, false), all.1), ["p"]);
        assert_eq!(z.remove_range(b(0.0, false), b(f64::INFINITY, true)), 2);
        assert_eq!(members(&z, all.0, all.1), ["n", "p"]);
    }

    #[test]
    fn next_up_steps_one_ulp() {
        for v in [f64::NEG_INFINITY, -1.5, -0.0, 0.0, 1.0, f64::MAX] {
            assert_eq!(next_up(v), v.next_up(), "{v}");
        }
    }

    #[test]
    fn negative_zero_is_zero() {
        let mut z = ZSet::new();
        z.insert(Bytes::from_static(b"a"), -0.0);
        assert!(z.score(b"a").unwrap().is_sign_positive());
        assert_eq!(members(&z, b(0.0, false), b(0.0, false)), ["a"]);
    }
}
