//! Usage history (issue 18): what every policy decided, minute by minute, over the last 48
//! hours, and the same for the identities that matter — the top-K by denials and the top-K by
//! admitted requests, found by two space-saving sketches ([`sketch`]) of
//! `usage-history-identities` counters each.
//!
//! Pure data: no clock reads, no locks, no I/O. The engine (`engine::usage`) feeds it from the
//! check, reserve and settle paths, with the minute (`now_ns / 60e9`) of each decision, and
//! saves its [`snapshot`] next to the append-only file.
//!
//! Memory: a policy's series and a tracked identity's series hold at most
//! [`series::RETENTION_MINUTES`] minutes of [`series::SLOT_BYTES`] bytes each, and only the
//! minutes that had activity. At most `2 × usage-history-identities` identities have a series
//! (an identity evicted from both sketches loses its series). docs/operations.md has the
//! arithmetic.

pub mod series;
pub mod sketch;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

pub use series::{Counts, Series, RETENTION_MINUTES};
pub use sketch::{Estimate, SpaceSaving};

/// Nanoseconds in a minute.
pub const MINUTE_NS: u64 = 60_000_000_000;

/// The minute (since the UNIX epoch) of a time in nanoseconds since the epoch.
pub fn minute_of(now_ns: u64) -> u32 {
    u32::try_from(now_ns / MINUTE_NS).unwrap_or(u32::MAX)
}

/// An identity under one policy: usage is counted per (policy, identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    /// The policy's name.
    pub policy: Arc<str>,
    /// The identity.
    pub identity: Bytes,
}

/// What [`History::top`] ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Denied decisions.
    Denied,
    /// Admitted decisions.
    Usage,
    /// Tokens charged.
    Tokens,
    /// Cost charged.
    Cost,
}

impl Rank {
    fn key(self, c: &Counts) -> i128 {
        match self {
            Rank::Denied => i128::from(c.denials),
            Rank::Usage => i128::from(c.admitted()),
            Rank::Tokens => i128::from(c.tokens),
            Rank::Cost => i128::from(c.cost),
        }
    }

    /// The lowercase name (`denied`, `usage`, `tokens`, `cost`).
    pub fn name(self) -> &'static str {
        match self {
            Rank::Denied => "denied",
            Rank::Usage => "usage",
            Rank::Tokens => "tokens",
            Rank::Cost => "cost",
        }
    }
}

/// One identity's line in a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    /// The policy and identity.
    pub id: Id,
    /// Its counts over the window.
    pub counts: Counts,
    /// Its denial sketch estimate (since it was first tracked), if monitored there.
    pub denied_estimate: Option<Estimate>,
    /// Its usage sketch estimate, if monitored there.
    pub usage_estimate: Option<Estimate>,
}

/// The usage history: per-policy series, the two sketches and the tracked identities' series.
#[derive(Debug, Clone)]
pub struct History {
    policies: HashMap<Arc<str>, Series>,
    denied: SpaceSaving<Id>,
    used: SpaceSaving<Id>,
    identities: HashMap<Id, Series>,
}

impl History {
    /// An empty history tracking up to `identities` identities per ranking (0: policies only).
    pub fn new(identities: usize) -> History {
        History {
            policies: HashMap::new(),
            denied: SpaceSaving::new(identities),
            used: SpaceSaving::new(identities),
            identities: HashMap::new(),
        }
    }

    /// The sketches' capacity (`usage-history-identities`).
    pub fn capacity(&self) -> usize {
        self.denied.capacity()
    }

    fn intern(&mut self, policy: &str) -> Arc<str> {
        match self.policies.get_key_value(policy) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(policy);
                self.policies.insert(k.clone(), Series::new());
                k
            }
        }
    }

    /// Counts `counts` for `identity` under `policy` in `minute`, at `now_minute`.
    pub fn record(
        &mut self,
        policy: &str,
        identity: &Bytes,
        minute: u32,
        counts: &Counts,
        now_minute: u32,
    ) {
        let name = self.intern(policy);
        if let Some(s) = self.policies.get_mut(policy) {
            s.add(minute, counts, now_minute);
        }
        if self.capacity() == 0 {
            return;
        }
        let id = Id {
            policy: name,
            identity: identity.clone(),
        };
        let gone = [
            self.denied.add(&id, counts.denials),
            self.used.add(&id, counts.admitted()),
        ];
        for g in gone.into_iter().flatten() {
            if !self.is_tracked(&g) {
                self.identities.remove(&g);
            }
        }
        if self.is_tracked(&id) {
            self.identities
                .entry(id)
                .or_default()
                .add(minute, counts, now_minute);
        }
    }

    fn is_tracked(&self, id: &Id) -> bool {
        self.denied.contains(id) || self.used.contains(id)
    }

    /// Drops every minute past the retention at `now_minute` (series left empty stay until
    /// their identity leaves the sketches).
    pub fn prune(&mut self, now_minute: u32) {
        for s in self.policies.values_mut() {
            s.prune(now_minute);
        }
        for s in self.identities.values_mut() {
            s.prune(now_minute);
        }
    }

    /// The policies with a series, sorted by name.
    pub fn policies(&self) -> Vec<Arc<str>> {
        let mut v: Vec<_> = self.policies.keys().cloned().collect();
        v.sort();
        v
    }

    /// `policy`'s series, if it has one.
    pub fn policy(&self, policy: &str) -> Option<&Series> {
        self.policies.get(policy)
    }

    /// `identity`'s series under `policy`, if it is tracked.
    pub fn identity(&self, policy: &str, identity: &[u8]) -> Option<&Series> {
        let id = Id {
            policy: Arc::from(policy),
            identity: Bytes::copy_from_slice(identity),
        };
        self.identities.get(&id)
    }

    /// The tracked identities (of `policy`, or all) ranked by `rank` over `[from, to]`,
    /// largest first, those with nothing to rank left out, at most `count`.
    pub fn top(
        &self,
        rank: Rank,
        from: u32,
        to: u32,
        policy: Option<&str>,
        count: usize,
    ) -> Vec<TopEntry> {
        let mut v: Vec<TopEntry> = self
            .identities
            .iter()
            .filter(|(id, _)| policy.is_none_or(|p| &*id.policy == p))
            .map(|(id, s)| TopEntry {
                id: id.clone(),
                counts: s.sum(from, to),
                denied_estimate: self.denied.get(id),
                usage_estimate: self.used.get(id),
            })
            .filter(|e| rank.key(&e.counts) > 0)
            .collect();
        v.sort_by(|a, b| {
            rank.key(&b.counts)
                .cmp(&rank.key(&a.counts))
                .then_with(|| a.id.cmp(&b.id))
        });
        v.truncate(count);
        v
    }

    /// Identities with a series.
    pub fn tracked(&self) -> usize {
        self.identities.len()
    }

    /// Minutes stored over every series (policies and identities).
    pub fn stored_minutes(&self) -> usize {
        self.policies.values().map(Series::len).sum::<usize>()
            + self.identities.values().map(Series::len).sum::<usize>()
    }

    /// An estimate of the bytes the history holds: the stored minutes, plus the sketches'
    /// and maps' entries (about 160 bytes per tracked identity and per counter).
    pub fn memory(&self) -> usize {
        const PER_ENTRY: usize = 160;
        let names: usize = self
            .identities
            .keys()
            .map(|id| id.identity.len())
            .sum::<usize>();
        self.stored_minutes() * series::SLOT_BYTES
            + (self.identities.len() + self.denied.len() + self.used.len()) * PER_ENTRY
            + names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(decisions: u64, denials: u64) -> Counts {
        Counts {
            decisions,
            denials,
            ..Counts::default()
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_most_denied_identity_ranks_first() {
        let mut h = History::new(4);
        for i in 0..10 {
            h.record("free", &b(&format!("u{i}")), 100, &c(1, 0), 100);
        }
        h.record("free", &b("u3"), 100, &c(9, 7), 100);
        h.record("free", &b("u5"), 101, &c(3, 2), 101);
        let top = h.top(Rank::Denied, 0, 200, None, 10);
        let names: Vec<_> = top.iter().map(|e| e.id.identity.clone()).collect();
        assert_eq!(names, [b("u3"), b("u5")]);
        assert_eq!(top[0].counts.denials, 7);
        assert_eq!(h.policy("free").unwrap().sum(0, 200), c(22, 9));
        assert_eq!(h.top(Rank::Denied, 101, 101, None, 10).len(), 1);
        assert!(h.top(Rank::Denied, 0, 200, Some("other"), 10).is_empty());
    }

    #[test]
    fn identities_evicted_from_both_sketches_lose_their_series() {
        let mut h = History::new(2);
        for i in 0..50 {
            h.record("p", &b(&format!("u{i}")), 100, &c(1, 1), 100);
        }
        assert!(
            h.tracked() <= 4,
            "at most 2 × capacity series: {}",
            h.tracked()
        );
    }

    #[test]
    fn zero_capacity_keeps_policies_only() {
        let mut h = History::new(0);
        h.record("p", &b("u"), 100, &c(1, 1), 100);
        assert_eq!(h.tracked(), 0);
        assert_eq!(h.policy("p").unwrap().sum(0, 200), c(1, 1));
    }
}
