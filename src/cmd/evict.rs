//! Eviction on the command path: with memory over `maxmemory` and an evicting
//! `maxmemory-policy`, a command that may grow memory first evicts keys until the memory in use
//! is estimated under the limit, as Redis's `performEvictions` does before running it.
//!
//! The store's sampler chooses the keys ([`crate::store::evict`], which also says what "least
//! recently used" means for each limiter family); this module removes them through the engine,
//! so each eviction is journaled to the AOF and the replication stream as a deletion (a
//! replica and a restart agree with the master), signalled to `WATCH`ers and counted in
//! `evicted_keys`, and published as the `evicted` keyspace event (class `e`).

use crate::config::{MaxmemoryPolicy, NotifyFlags};
use crate::store::evict::{footprint, Eviction, Rank};

use super::{Ctx, Shared};
use crate::clock::Nanos;
use crate::engine::Call;

/// Evicts keys until the memory in use is estimated under `maxmemory`. True when it is (the
/// command may run); false under `noeviction`, inside `EXEC` or a script (whose held shard
/// locks eviction must not wait behind), on a replica, or when nothing evictable is left (the command then
/// gets `-OOM`, as under `noeviction`).
pub(crate) fn make_room(ctx: &mut Ctx<'_>) -> bool {
    if ctx.locked.is_some() {
        return false;
    }
    let (shared, now) = (ctx.shared, ctx.now);
    make_room_with(shared, now, &mut ctx.call())
}

/// [`make_room`] for a caller without a connection (the HTTP check API), through its `call`.
pub(crate) fn make_room_with(shared: &Shared, now: Nanos, call: &mut Call<'_, '_>) -> bool {
    let (eviction, samples) = {
        let cfg = shared.engine.config.read();
        (
            eviction_of(cfg.maxmemory_policy),
            cfg.maxmemory_samples as usize,
        )
    };
    let Some(eviction) = eviction else {
        return false;
    };
    // A replica's keyspace is the master's: it never evicts on its own (Redis's
    // `replica-ignore-maxmemory yes`), the master's evictions reach it as deletions.
    if shared.repl.is_replica() {
        return false;
    }
    let mut sampler = shared.evictor.lock();
    // Measured under the lock: another command may have made room while this one waited.
    let mut to_free = shared.metrics.memory_over_max();
    let (mut keys, mut bytes) = (0u64, 0u64);
    while to_free > 0 {
        let Some((db, key)) = sampler.next_victim(&shared.engine.dbs, eviction, samples, now)
        else {
            break;
        };
        // Checked again under the key's lock: it may have gone, or lost its expiry, since it
        // was sampled.
        let freed = call
            .with_shard_in(db, &key, |s| {
                let e = s.get(&key, now)?;
                eviction.score(e, now, 0)?;
                let size = footprint(&key, e);
                s.remove(&key, now).map(|_| size)
            })
            .flatten();
        if let Some(size) = freed {
            // Redis publishes `evicted` (class `e`) for each key `performEvictions` removes.
            shared
                .engine
                .notify_key(db, NotifyFlags::EVICTED, "evicted", &key);
            keys += 1;
            bytes += size;
            to_free = to_free.saturating_sub(size);
        }
    }
    shared.metrics.count_eviction(keys, bytes);
    if keys > 0 {
        tracing::debug!(keys, bytes, "evicted keys over maxmemory");
    }
    to_free == 0
}

/// How `policy` chooses keys; `None` for `noeviction`.
pub fn eviction_of(policy: MaxmemoryPolicy) -> Option<Eviction> {
    let (volatile_only, rank) = match policy {
        MaxmemoryPolicy::NoEviction => return None,
        MaxmemoryPolicy::AllKeysLru => (false, Rank::Idle),
        MaxmemoryPolicy::AllKeysRandom => (false, Rank::Random),
        MaxmemoryPolicy::VolatileLru => (true, Rank::Idle),
        MaxmemoryPolicy::VolatileRandom => (true, Rank::Random),
        MaxmemoryPolicy::VolatileTtl => (true, Rank::Ttl),
    };
    Some(Eviction {
        volatile_only,
        rank,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_map_to_their_ranks() {
        assert_eq!(eviction_of(MaxmemoryPolicy::NoEviction), None);
        let lru = eviction_of(MaxmemoryPolicy::AllKeysLru).unwrap();
        assert!(!lru.volatile_only && lru.rank == Rank::Idle);
        let ttl = eviction_of(MaxmemoryPolicy::VolatileTtl).unwrap();
        assert!(ttl.volatile_only && ttl.rank == Rank::Ttl);
        let r = eviction_of(MaxmemoryPolicy::VolatileRandom).unwrap();
        assert!(r.volatile_only && r.rank == Rank::Random);
    }
}
