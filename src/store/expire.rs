//! Active expiry: a bounded sweep that frees idle keys nobody touches again.
//!
//! Each call visits at most `budget` entries per shard, resuming where the previous call
//! stopped, so the time a shard stays locked is bounded whatever its size, and every entry is
//! visited once per full pass. The server calls [`Store::sweep`] from a timer task; the sweep
//! itself does no I/O and takes `now` from the caller.
//!
//! Expired keys, lazily or by the sweep, are also reported to the store's [`ExpiryListener`]
//! while keyspace notifications want `expired` events: recorded under the shard lock and
//! reported by the caller (a command, before its own events) or when the lock drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;

use super::{Shard, Store};

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    /// Entries examined.
    pub examined: usize,
    /// Expired entries removed.
    pub removed: usize,
}

/// Told of each key that expires (lazily or by the sweep) while [`Store::set_log_expired`] is
/// on: the engine publishes keyspace notifications (`expired`) through it.
pub trait ExpiryListener: Send + Sync + std::fmt::Debug {
    /// `key` expired and was removed.
    fn expired(&self, key: &[u8]);
}

impl Shard {
    /// Counts an expired key being removed and, while notifications want it, records it.
    pub(super) fn note_expired(&mut self, key: &[u8]) {
        self.expired += 1;
        if self.log_expired.load(Ordering::Relaxed) {
            self.expired_keys.push(Bytes::copy_from_slice(key));
        }
    }

    /// The keys expired under this lock and not yet reported (the caller reports them).
    pub fn take_expired_keys(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.expired_keys)
    }
}

impl Store {
    /// Sets who is told of expired keys (once, when the engine is built).
    pub fn set_expiry_listener(&self, listener: Arc<dyn ExpiryListener>) {
        let _ = self.expiry_listener.set(listener);
    }

    /// Turns the recording of expired keys for the listener on or off.
    pub fn set_log_expired(&self, on: bool) {
        self.log_expired.store(on, Ordering::Relaxed);
    }

    /// Reports the keys `shard` expired and nobody reported yet (a lock being released).
    pub(super) fn tell_expired(&self, shard: &mut Shard) {
        if shard.expired_keys.is_empty() {
            return;
        }
        let keys = shard.take_expired_keys();
        if let Some(l) = self.expiry_listener.get() {
            for k in &keys {
                l.expired(k);
            }
        }
    }

    /// Examines up to `budget` entries in every shard and removes those expired at `now`.
    /// A shard someone else holds is skipped until the next sweep: the sweep runs on a worker
    /// thread and must not wait behind a long holder (a running Lua script holds its shards
    /// for the whole script).
    pub fn sweep(&self, now: Nanos, budget: usize) -> SweepStats {
        let mut stats = SweepStats::default();
        for idx in 0..self.shard_count() {
            let Some(mut shard) = self.try_lock_shard(idx) else {
                continue;
            };
            let mut seen = 0;
            while seen < budget && !shard.map.is_empty() {
                if shard.sweep_cursor >= shard.map.len() {
                    shard.sweep_cursor = 0;
                }
                let i = shard.sweep_cursor;
                seen += 1;
                if shard.map.entry(i).is_expired(now) {
                    // The last entry moves into slot i; examine that slot again next.
                    let (key, _) = shard.map.swap_remove_index(i);
                    shard.note_expired(key.as_slice());
                    stats.removed += 1;
                } else {
                    shard.sweep_cursor += 1;
                }
            }
            stats.examined += seen;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Entry, Value};

    fn fill(store: &Store, n: usize, expires_at: Option<Nanos>) {
        for i in 0..n {
            let k = format!("k{i}");
            store.with_shard(k.as_bytes(), |s| {
                s.insert(k.as_bytes(), Entry::with_expiry(Value::Int(1), expires_at))
            });
        }
    }

    #[test]
    fn sweep_is_bounded_per_shard_and_eventually_frees_everything() {
        let store = Store::new(4);
        fill(&store, 1000, Some(Nanos(10)));
        let stats = store.sweep(Nanos(11), 5);
        assert!(stats.examined <= 20, "examined {}", stats.examined);
        assert_eq!(stats.removed, stats.examined);
        let mut rounds = 0;
        while !store.is_empty() {
            store.sweep(Nanos(11), 50);
            rounds += 1;
            assert!(rounds < 100, "sweep never finished");
        }
        assert_eq!(store.expired_total(), 1000);
    }

    #[test]
    fn sweep_keeps_live_and_persistent_keys() {
        let store = Store::new(2);
        fill(&store, 100, None);
        let stats = store.sweep(Nanos(1_000), 1_000);
        assert_eq!(stats.removed, 0);
        assert_eq!(store.len(), 100);
    }
}
