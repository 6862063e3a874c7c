//! Choosing keys to evict when memory is over `maxmemory` under an evicting
//! `maxmemory-policy`: approximated, sampling-based, as Redis does it.
//!
//! Each round draws `maxmemory-samples` random slots per database (a random shard, then a
//! random slot: slots are dense, so a draw costs one lock and one index), ranks the sampled
//! keys and keeps the best candidates across rounds in a small pool ([`POOL`] entries, Redis's
//! `EVPOOL_SIZE`). The caller removes the pool's best, through the engine so that the removal
//! is journaled, replicated and signalled to `WATCH`ers. This module only chooses; it does no
//! I/O, reads no clock (callers pass `now`) and owns no keys.
//!
//! **What "least recently used" means here.** No entry carries an access clock: a keyspace
//! entry is 24 bytes and every one of them is spoken for (issue 21), and a limiter server holds
//! tens of millions of keys. Instead every limiter state already records the instant from
//! which forgetting it loses little or nothing, its *settling instant* ([`settles_at`]):
//!
//! | family | settling instant | why |
//! |---|---|---|
//! | GCRA (`CL.THROTTLE`, `GCRA`, `RATE.*`, policy rules) | the TAT | from the TAT on, the bucket is full: the state equals no state |
//! | `WINDOW.*`, rolling `COST.*` | start of the current fixed window | charged in that window or later |
//! | `QUOTA.*`, calendar `COST.*` | end of the current period | then the count resets anyway |
//! | `LEASE.*` | the latest lease expiry | then no lease is held |
//! | `BREAKER.*` | window start (closed), cooldown end (open), round start (half-open) | the last change of phase or counters |
//! | reservations | their expiry | |
//!
//! The LRU rank of a state is `now - settling instant`: largest first. A state that settled
//! long ago (a bucket full for an hour) goes first; a bucket charged heavily just now, whose
//! TAT lies far in the future, goes last. For one rate this is the order of last use; across
//! rates it is the order of harm done by forgetting. Values without an instant of their own
//! (strings, lists, hashes, sets, sorted sets) rank as if they settled at `now`: after every
//! settled limiter state, before every state still recovering. Sampling makes all of this
//! approximate, as it is in Redis.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::breaker::BreakerState;
use crate::limiter::cost::CostState;

use super::{Entry, Store, Value};

/// Candidates kept across rounds (Redis's `EVPOOL_SIZE`).
pub const POOL: usize = 16;

/// How long (server clock) a full walk that found nothing evictable stands.
const REWALK_AFTER: Nanos = Nanos(100_000_000);

/// Draws per wanted sample before a round gives up on a database (empty shards, keys that
/// the policy may not evict).
const DRAWS_PER_SAMPLE: usize = 8;

/// Sampling rounds that may find no candidate before the keyspace is walked in full (the
/// evictable keys may be a small part of it: keys with an expiry under a `volatile-*` policy).
const EMPTY_ROUNDS: usize = 8;

/// How sampled keys are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Longest past its settling instant first (the `*-lru` policies; see the module docs).
    Idle,
    /// Nearest expiry first (`volatile-ttl`).
    Ttl,
    /// Any (`*-random`).
    Random,
}

/// Which keys an evicting policy may evict, and in what order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    /// Only keys with an expiry (`volatile-*`).
    pub volatile_only: bool,
    /// The order.
    pub rank: Rank,
}

impl Eviction {
    /// The eviction score of `entry` at `now` (higher goes first), or `None` when this policy
    /// may not evict it. `noise` is a random number, the score under [`Rank::Random`].
    pub fn score(self, entry: &Entry, now: Nanos, noise: u64) -> Option<i128> {
        let expiry = entry.expires_at();
        if self.volatile_only && expiry.is_none() {
            return None;
        }
        Some(match self.rank {
            Rank::Idle => i128::from(now.0) - i128::from(settles_at(&entry.value).unwrap_or(now).0),
            // Only volatile keys reach here (volatile-ttl is volatile_only).
            Rank::Ttl => -i128::from(expiry.map_or(u64::MAX, |t| t.0)),
            Rank::Random => i128::from(noise),
        })
    }
}

/// The instant from which forgetting `value` loses little or nothing (see the module docs);
/// `None` for values that record no time.
pub fn settles_at(value: &Value) -> Option<Nanos> {
    match value {
        Value::Gcra(tat) => Some(*tat),
        Value::GcraRule(s) => Some(s.tat),
        Value::Window(w) => Some(w.start),
        Value::Quota(q) => Some(q.period.end),
        Value::Cost(c) => Some(match **c {
            CostState::Calendar { period, .. } => period.end,
            CostState::Rolling { start, .. } => start,
        }),
        Value::Lease(l) => l.leases.iter().map(|l| l.expires_at).max(),
        Value::Breaker(b) => Some(match **b {
            BreakerState::Closed { start, .. } => start,
            BreakerState::Open { until } => until,
            BreakerState::HalfOpen { since, .. } => since,
        }),
        Value::Reservation(r) => Some(r.expires_at),
        Value::Str(_)
        | Value::Int(_)
        | Value::List(_)
        | Value::Hash(_)
        | Value::Set(_)
        | Value::ZSet(_)
        | Value::Stream(_) => None,
    }
}

/// Roughly the bytes removing `key` and `entry` frees: its table slot and index bucket, a key
/// too long to be inline, and the value's heap.
pub fn footprint(key: &[u8], entry: &Entry) -> u64 {
    // A 48-byte slot plus a 4-byte index entry and its control byte at 7/8 load.
    const SLOT: usize = 48 + 6;
    let key_heap = if key.len() > super::table::INLINE {
        key.len()
    } else {
        0
    };
    (SLOT + key_heap + entry.value.heap_size()) as u64
}

/// A small, fast generator (splitmix64) for the draws; seeded, so a run is repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // The multiply-shift reduction: unbiased enough for sampling.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// One candidate: its score, database and key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    score: i128,
    db: usize,
    key: Bytes,
}

/// The sampler: the pool of best candidates kept across rounds, and its generator.
#[derive(Debug)]
pub struct Sampler {
    /// Sorted by score, best last; at most [`POOL`] entries, no key twice.
    pool: Vec<Candidate>,
    /// The policy the pool was filled under (a change empties it).
    filled_for: Option<Eviction>,
    /// When a full walk last found nothing evictable.
    walked_empty_at: Option<Nanos>,
    rng: Rng,
}

impl Default for Sampler {
    fn default() -> Sampler {
        // A fixed seed: which keys a run evicts is repeatable for the same commands.
        Sampler::new(0x6c69_6d69_746b_7600)
    }
}

impl Sampler {
    /// An empty pool with a generator seeded by `seed`.
    pub fn new(seed: u64) -> Sampler {
        Sampler {
            pool: Vec::with_capacity(POOL + 1),
            filled_for: None,
            walked_empty_at: None,
            rng: Rng::new(seed),
        }
    }

    /// The next key to evict from `dbs` under `eviction` at `now`, sampling `samples` slots
    /// per database per round, as `(database, key)`; `None` when no key may be evicted.
    /// The key may have changed or gone since it was sampled; the caller removes it only if it
    /// is still there and may still be evicted ([`Eviction::score`]).
    pub fn next_victim(
        &mut self,
        dbs: &[Store],
        eviction: Eviction,
        samples: usize,
        now: Nanos,
    ) -> Option<(usize, Bytes)> {
        if self.filled_for != Some(eviction) {
            self.pool.clear();
            self.filled_for = Some(eviction);
            self.walked_empty_at = None;
        }
        let mut empty_rounds = 0;
        while self.pool.is_empty() {
            if empty_rounds == EMPTY_ROUNDS {
                // Rare: evictable keys are scarce. Walk everything once; the pool then holds
                // the best of all of them. A walk that found nothing is not repeated for
                // [`REWALK_AFTER`]: over the limit with nothing evictable, every write would
                // otherwise pay a walk of the whole keyspace before its `-OOM`.
                if self
                    .walked_empty_at
                    .is_some_and(|at| now < at.saturating_add(REWALK_AFTER))
                {
                    return None;
                }
                self.walk(dbs, eviction, now);
                if self.pool.is_empty() {
                    self.walked_empty_at = Some(now);
                    return None;
                }
                self.walked_empty_at = None;
                break;
            }
            self.sample(dbs, eviction, samples.max(1), now);
            empty_rounds += 1;
        }
        // Topped up every time, as Redis does, so the pool keeps getting better.
        if empty_rounds == 0 {
            self.sample(dbs, eviction, samples.max(1), now);
        }
        self.pool.pop().map(|c| (c.db, c.key))
    }

    /// Draws random slots from each database into the pool until `samples` candidates were
    /// found there or [`DRAWS_PER_SAMPLE`] times as many draws were made: Redis samples a
    /// `volatile-*` policy's keys from its index of keys with an expiry, which limitkv does not
    /// keep (it would cost bytes per key), so draws that hit a key without one are retried.
    fn sample(&mut self, dbs: &[Store], eviction: Eviction, samples: usize, now: Nanos) {
        for (db, store) in dbs.iter().enumerate() {
            let (mut found, mut hits) = (0, 0);
            for draw in 0..samples * DRAWS_PER_SAMPLE {
                // An (almost) empty database is given up after `samples` draws of empty
                // shards; the full walk still finds its keys if nothing else is evictable.
                if found == samples || (draw == samples && hits == 0) {
                    break;
                }
                let shard = store.lock_shard(self.rng.below(store.shard_count()));
                if shard.map.is_empty() {
                    continue;
                }
                hits += 1;
                let idx = self.rng.below(shard.map.len());
                let Some((key, entry)) = shard.map.slot(idx) else {
                    continue;
                };
                if entry.is_expired(now) {
                    continue;
                }
                let noise = self.rng.next_u64();
                if let Some(score) = eviction.score(entry, now, noise) {
                    let key = Bytes::copy_from_slice(key);
                    drop(shard);
                    found += 1;
                    self.offer(Candidate { score, db, key });
                }
            }
        }
    }

    /// Offers every live key of every database to the pool.
    fn walk(&mut self, dbs: &[Store], eviction: Eviction, now: Nanos) {
        for (db, store) in dbs.iter().enumerate() {
            for idx in 0..store.shard_count() {
                let mut found = Vec::new();
                {
                    let shard = store.lock_shard(idx);
                    for (key, entry) in shard.iter_live(now) {
                        let noise = self.rng.next_u64();
                        if let Some(score) = eviction.score(entry, now, noise) {
                            // Only what could enter the pool is copied out.
                            if found.len() < POOL
                                || self.pool.first().is_none_or(|c| score > c.score)
                            {
                                found.push((score, Bytes::copy_from_slice(key)));
                            }
                        }
                    }
                }
                for (score, key) in found {
                    self.offer(Candidate { score, db, key });
                }
            }
        }
    }

    /// Inserts `c` in score order, keeping the best [`POOL`].
    fn offer(&mut self, c: Candidate) {
        if let Some(old) = self
            .pool
            .iter()
            .position(|p| p.db == c.db && p.key == c.key)
        {
            self.pool.remove(old);
        }
        let at = self.pool.partition_point(|p| p.score <= c.score);
        if self.pool.len() == POOL && at == 0 {
            return;
        }
        self.pool.insert(at, c);
        if self.pool.len() > POOL {
            self.pool.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::gcra::GcraState;

    fn put(store: &Store, key: &str, value: Value, expiry: Option<u64>) {
        store.with_shard(key.as_bytes(), |s| {
            s.insert(key.as_bytes(), Entry::with_expiry(value, expiry.map(Nanos)))
        });
    }

    const LRU: Eviction = Eviction {
        volatile_only: false,
        rank: Rank::Idle,
    };
    const TTL: Eviction = Eviction {
        volatile_only: true,
        rank: Rank::Ttl,
    };

    #[test]
    fn idle_ranks_settled_states_first_and_timeless_values_at_now() {
        let now = Nanos(1_000);
        let settled = Entry::new(Value::Gcra(Nanos(100)));
        let busy = Entry::new(Value::gcra(GcraState {
            tat: Nanos(5_000),
            emission: Nanos(10),
        }));
        let plain = Entry::new(Value::Int(3));
        let s = |e: &Entry| LRU.score(e, now, 0).unwrap();
        assert!(
            s(&settled) > s(&plain),
            "a full bucket goes before a string"
        );
        assert!(
            s(&plain) > s(&busy),
            "a string goes before a recovering bucket"
        );
        assert_eq!(s(&plain), 0);
    }

    #[test]
    fn ttl_ranks_the_nearest_expiry_first_and_skips_persistent_keys() {
        let now = Nanos(0);
        let soon = Entry::with_expiry(Value::Int(1), Some(Nanos(10)));
        let later = Entry::with_expiry(Value::Int(1), Some(Nanos(20)));
        assert!(TTL.score(&soon, now, 0) > TTL.score(&later, now, 0));
        assert_eq!(TTL.score(&Entry::new(Value::Int(1)), now, 0), None);
    }

    #[test]
    fn the_pool_keeps_the_best_without_duplicates() {
        let mut s = Sampler::new(1);
        for i in 0..40 {
            s.offer(Candidate {
                score: i,
                db: 0,
                key: Bytes::from(format!("k{i}")),
            });
        }
        s.offer(Candidate {
            score: 39,
            db: 0,
            key: Bytes::from("k39"),
        });
        assert_eq!(s.pool.len(), POOL);
        let scores: Vec<i128> = s.pool.iter().map(|c| c.score).collect();
        assert_eq!(scores, (24..40).collect::<Vec<_>>());
    }

    #[test]
    fn volatile_ttl_finds_scarce_volatile_keys_shortest_first() {
        let dbs = [Store::new(8)];
        for i in 0..2_000 {
            put(&dbs[0], &format!("p{i}"), Value::Int(i), None);
        }
        put(&dbs[0], "late", Value::Int(1), Some(900));
        put(&dbs[0], "soon", Value::Int(1), Some(500));
        let mut s = Sampler::new(7);
        let now = Nanos(1);
        let first = s.next_victim(&dbs, TTL, 5, now).unwrap();
        assert_eq!(first, (0, Bytes::from("soon")));
        dbs[0].with_shard(b"soon", |sh| sh.remove(b"soon", now));
        let second = s.next_victim(&dbs, TTL, 5, now).unwrap();
        assert_eq!(second, (0, Bytes::from("late")));
        dbs[0].with_shard(b"late", |sh| sh.remove(b"late", now));
        assert_eq!(
            s.next_victim(&dbs, TTL, 5, now),
            None,
            "only persistent keys left"
        );
        // A walk that found nothing stands for a while (no walk per refused write: only
        // sampling, which may or may not hit a new key), then the keyspace is walked again.
        put(&dbs[0], "new", Value::Int(1), Some(1 << 40));
        let later = now.saturating_add(REWALK_AFTER);
        assert_eq!(
            s.next_victim(&dbs, TTL, 5, later),
            Some((0, Bytes::from("new")))
        );
    }

    #[test]
    fn lru_sampling_evicts_settled_buckets_well_before_busy_ones() {
        // 1,000 settled buckets and 1,000 busy ones; the first 500 victims should be almost
        // all settled (Redis's approximation with 5 samples and a pool of 16 does as well).
        let dbs = [Store::new(16)];
        let now = Nanos(1_000_000);
        for i in 0..1_000 {
            put(&dbs[0], &format!("idle{i}"), Value::Gcra(Nanos(i)), None);
            put(
                &dbs[0],
                &format!("busy{i}"),
                Value::Gcra(Nanos(2_000_000 + i)),
                None,
            );
        }
        let mut s = Sampler::new(42);
        let mut busy = 0;
        for _ in 0..500 {
            let (_, key) = s.next_victim(&dbs, LRU, 5, now).unwrap();
            busy += usize::from(key.starts_with(b"busy"));
            dbs[0].with_shard(&key, |sh| sh.remove(&key, now));
        }
        assert!(busy < 25, "{busy} busy buckets among the first 500 victims");
    }
}
