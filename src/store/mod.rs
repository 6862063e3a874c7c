//! The keyspace: a fixed number of lock-sharded maps of key -> [`Entry`].
//!
//! Each shard is a [`Table`] (dense 48-byte slots found through a small hash index; see
//! [`table`] for the layout and why) behind a `parking_lot` mutex. Atomicity is per
//! key: a command locks the key's shard, reads the entry, runs its (pure) transition and writes
//! the result back before the lock drops. Multi-key commands lock every shard they touch in
//! ascending order, so they cannot deadlock.
//!
//! Why not dashmap: the active expiry sweep must visit a bounded number of entries per tick and
//! resume where it stopped, and SCAN needs a stable per-shard cursor. An index-addressable map
//! per shard gives both in a few lines; dashmap exposes neither without its raw API.
//!
//! Expiry is lazy (an expired entry found on access is removed and treated as absent) plus an
//! active sweep ([`expire`]). This module does no I/O and never reads a clock: callers pass
//! `now`.

pub mod entry;
pub mod evict;
pub mod expire;
pub mod stream;
pub mod table;
pub mod watch;
pub mod zset;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Nanos;
pub use entry::{Entry, Value};
pub use expire::ExpiryListener;
pub use table::{Key, Table};
pub use watch::{WatchFlag, Watchers};

type Hasher = foldhash::fast::RandomState;

/// One shard: its table plus the active-expiry cursor.
#[derive(Debug)]
pub struct Shard {
    map: Table,
    /// Where the active sweep resumes in `map`.
    sweep_cursor: usize,
    /// Keys expired under the current lock, not yet added to the store's total.
    expired: u64,
    /// Set by every mutation under the current lock ([`Shard::take_dirty`] reads and clears
    /// it): lets the command layer journal and signal only real changes.
    dirty: bool,
    /// The store's switch: record expired keys in `expired_keys` (keyspace notifications).
    log_expired: Arc<AtomicBool>,
    /// Keys expired under the current lock, for `expired` notifications (see [`expire`]).
    expired_keys: Vec<bytes::Bytes>,
}

impl Shard {
    fn new(hasher: Hasher, log_expired: Arc<AtomicBool>) -> Shard {
        Shard {
            map: Table::new(hasher),
            sweep_cursor: 0,
            expired: 0,
            dirty: false,
            log_expired,
            expired_keys: Vec::new(),
        }
    }

    /// The live entry for `key`, for modification (marks the shard dirty when found); an
    /// expired entry is removed first and reads as absent. Use [`Shard::get_live`] to read.
    pub fn get_mut(&mut self, key: &[u8], now: Nanos) -> Option<&mut Entry> {
        let idx = self.live_index(key, now)?;
        self.dirty = true;
        Some(self.map.entry_mut(idx))
    }

    /// The live entry for `key`, for reading; an expired entry is removed first (lazy
    /// expiry, which is not a change: the entry was already logically gone).
    pub fn get_live(&mut self, key: &[u8], now: Nanos) -> Option<&Entry> {
        let idx = self.live_index(key, now)?;
        Some(self.map.entry(idx))
    }

    /// Whether anything was modified since the last call; clears the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The live entry for `key` without modifying the shard (expired entries read as absent).
    pub fn get(&self, key: &[u8], now: Nanos) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now))
    }

    fn live_index(&mut self, key: &[u8], now: Nanos) -> Option<usize> {
        let idx = self.map.index_of(key)?;
        if self.map.entry(idx).is_expired(now) {
            self.note_expired(key);
            self.map.swap_remove_index(idx);
            return None;
        }
        Some(idx)
    }

    /// Inserts or replaces `key`. The key bytes are copied (inline when short) so the map never
    /// pins a network buffer.
    pub fn insert(&mut self, key: &[u8], entry: Entry) {
        self.dirty = true;
        self.map.insert(key, entry);
    }

    /// Read-modify-write of `key`'s value with one hash lookup: `f` sees the live entry (`None`
    /// when absent or expired) and returns the new value, which keeps a live entry's expiry
    /// (a new or expired key gets none). When `f` fails nothing is stored and the shard is not
    /// marked dirty; an expired entry is removed either way, as [`Shard::get_live`] does.
    pub fn upsert<E>(
        &mut self,
        key: &[u8],
        now: Nanos,
        f: impl FnOnce(Option<&Entry>) -> Result<Value, E>,
    ) -> Result<(), E> {
        match self.map.index_of(key) {
            Some(idx) if !self.map.entry(idx).is_expired(now) => {
                let value = f(Some(self.map.entry(idx)))?;
                self.map.entry_mut(idx).value = value;
            }
            Some(idx) => {
                self.note_expired(key);
                match f(None) {
                    Ok(value) => *self.map.entry_mut(idx) = Entry::new(value),
                    Err(e) => {
                        self.map.swap_remove_index(idx);
                        return Err(e);
                    }
                }
            }
            None => {
                let value = f(None)?;
                self.map.insert(key, Entry::new(value));
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Read-then-write of `key` with one lookup (the limiters' hot path): `f` sees the live
    /// entry (`None` when absent or expired; an expired one is removed first, as
    /// [`Shard::get_live`] does) and returns its result and what to store. Only a
    /// [`Change::Put`] or the removal of a live entry marks the shard dirty.
    #[inline]
    pub fn update<R>(
        &mut self,
        key: &[u8],
        now: Nanos,
        f: impl FnOnce(Option<&Entry>) -> (R, Change),
    ) -> R {
        let found = match self.map.find(key) {
            Ok(idx) if self.map.entry(idx).is_expired(now) => {
                self.note_expired(key);
                self.map.swap_remove_index(idx);
                // Absent now; the second probe only recovers the hash for the insert (rare).
                self.map.find(key)
            }
            other => other,
        };
        match found {
            Ok(idx) => {
                let (r, change) = f(Some(self.map.entry(idx)));
                match change {
                    Change::Keep => {}
                    Change::Put(e) => {
                        *self.map.entry_mut(idx) = e;
                        self.dirty = true;
                    }
                    Change::Remove => {
                        self.map.swap_remove_index(idx);
                        self.dirty = true;
                    }
                }
                r
            }
            Err(h) => {
                let (r, change) = f(None);
                if let Change::Put(e) = change {
                    self.map.push_new(h, key, e);
                    self.dirty = true;
                }
                r
            }
        }
    }

    /// Removes `key`; returns the live entry it held (an expired one counts as absent).
    pub fn remove(&mut self, key: &[u8], now: Nanos) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        if entry.is_expired(now) {
            self.note_expired(key);
            return None;
        }
        self.dirty = true;
        Some(entry)
    }

    /// The key of entry number `idx` (`0..len()`), if it is live; an expired entry there is
    /// removed (lazy expiry) and reads as none.
    pub fn key_at(&mut self, idx: usize, now: Nanos) -> Option<bytes::Bytes> {
        let (k, e) = self.map.slot(idx)?;
        if e.is_expired(now) {
            let k = bytes::Bytes::copy_from_slice(k);
            self.map.swap_remove_index(idx);
            self.note_expired(&k);
            return None;
        }
        Some(bytes::Bytes::copy_from_slice(k))
    }

    /// Whether `key` has an entry, live or expired but not yet removed.
    pub fn holds(&self, key: &[u8]) -> bool {
        self.map.index_of(key).is_some()
    }

    /// Number of entries, including expired ones not yet swept (as Redis counts).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the shard holds no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Buckets of the shard's hash index (for the load factor `INFO keyspace` reports).
    pub fn index_buckets(&self) -> usize {
        self.map.buckets()
    }

    /// Live keys with their entries.
    pub fn iter_live(&self, now: Nanos) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter().filter(move |(_, e)| !e.is_expired(now))
    }

    /// Number of live entries carrying an expiry.
    pub fn count_volatile(&self, now: Nanos) -> usize {
        self.iter_live(now)
            .filter(|(_, e)| e.expires_at().is_some())
            .count()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.dirty |= !self.map.is_empty();
        self.map.clear();
        self.sweep_cursor = 0;
    }
}

/// What [`Shard::update`] stores.
#[derive(Debug)]
pub enum Change {
    /// Nothing changes.
    Keep,
    /// Store this entry (insert or replace).
    Put(Entry),
    /// Remove the key.
    Remove,
}

/// The sharded keyspace.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: Hasher,
    shift: u32,
    /// Keys removed by the active sweep and by lazy expiry, since start.
    expired_total: AtomicU64,
    /// Clients watching keys of this database (`WATCH`).
    pub watchers: Watchers,
    /// Shared with every shard: record expired keys for the listener.
    log_expired: Arc<AtomicBool>,
    /// Told of every key that expires, when `log_expired` is on (keyspace notifications).
    expiry_listener: OnceLock<Arc<dyn ExpiryListener>>,
}

impl Store {
    /// A keyspace with `shards` shards (rounded up to a power of two, at least 1).
    pub fn new(shards: usize) -> Store {
        let n = shards.max(1).next_power_of_two();
        let hasher = Hasher::default();
        let log_expired = Arc::new(AtomicBool::new(false));
        let shards = (0..n)
            .map(|_| Mutex::new(Shard::new(hasher.clone(), log_expired.clone())))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Store {
            shards,
            hasher,
            shift: 64 - n.trailing_zeros(),
            expired_total: AtomicU64::new(0),
            watchers: Watchers::default(),
            log_expired,
            expiry_listener: OnceLock::new(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard index that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        // Middle bits: the per-shard hash table uses the low bits for bucket selection and the
        // top seven as tags, so picking shards by either would cluster keys inside a shard.
        let h = self.hasher.hash_one(key);
        ((h << 16) >> self.shift) as usize
    }

    /// Locks the shard that owns `key`. Compute under the guard, drop it, then do I/O.
    pub fn lock(&self, key: &[u8]) -> ShardGuard<'_> {
        self.lock_shard(self.shard_of(key))
    }

    /// Locks shard `idx`.
    pub fn lock_shard(&self, idx: usize) -> ShardGuard<'_> {
        ShardGuard {
            guard: self.shards[idx].lock(),
            store: self,
        }
    }

    /// Locks every shard owning one of `keys`, in ascending shard order (deadlock-free).
    pub fn lock_keys<'a, K: AsRef<[u8]>>(&'a self, keys: &[K]) -> MultiGuard<'a> {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.shard_of(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx.iter().map(|&i| (i, self.lock_shard(i))).collect();
        MultiGuard {
            store: self,
            guards,
        }
    }

    /// Tries to lock shard `idx` without waiting.
    pub fn try_lock_shard(&self, idx: usize) -> Option<ShardGuard<'_>> {
        Some(ShardGuard {
            guard: self.shards[idx].try_lock()?,
            store: self,
        })
    }

    /// Tries to lock shard `idx`, waiting at most `timeout`.
    pub fn try_lock_shard_for(
        &self,
        idx: usize,
        timeout: std::time::Duration,
    ) -> Option<ShardGuard<'_>> {
        Some(ShardGuard {
            guard: self.shards[idx].try_lock_for(timeout)?,
            store: self,
        })
    }

    /// Locks all shards, in order; for whole-keyspace atomic operations.
    pub fn lock_all(&self) -> MultiGuard<'_> {
        MultiGuard {
            store: self,
            guards: (0..self.shards.len())
                .map(|i| (i, self.lock_shard(i)))
                .collect(),
        }
    }

    /// Runs `f` on shard `idx`, under its lock (tests walk the shards as `SCAN` does).
    #[cfg(test)]
    fn with_shard_at_for_test<R>(&self, idx: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.lock_shard(idx))
    }

    /// Runs `f` on the shard owning `key`, under its lock.
    pub fn with_shard<R>(&self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.lock(key))
    }

    /// Total entries (including expired ones not yet swept, like Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when no shard holds an entry.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    /// Live entries and how many of them carry an expiry.
    pub fn counts(&self, now: Nanos) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(k, v), s| {
            let s = s.lock();
            (k + s.len(), v + s.count_volatile(now))
        })
    }

    /// Removes every key.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().clear();
        }
    }

    /// Keys expired since start (lazily and by the sweep).
    pub fn expired_total(&self) -> u64 {
        self.expired_total.load(Ordering::Relaxed)
    }
}

/// Several shards locked together (see [`Store::lock_keys`]).
pub struct MultiGuard<'a> {
    store: &'a Store,
    guards: Vec<(usize, ShardGuard<'a>)>,
}

impl MultiGuard<'_> {
    /// The locked shard owning `key`.
    ///
    /// Panics if `key` was not among the keys locked; that is a bug in the caller.
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let idx = self.store.shard_of(key);
        self.shard_at(idx)
    }

    /// The locked shard owning `key`, for reading: shared borrows of several keys' shards
    /// can be held at once (set algebra reads all its sources together).
    ///
    /// Panics if `key` was not among the keys locked; that is a bug in the caller.
    pub fn shard_ref(&self, key: &[u8]) -> &Shard {
        let idx = self.store.shard_of(key);
        let pos = self
            .guards
            .binary_search_by_key(&idx, |(i, _)| *i)
            .expect("invariant: MultiGuard::shard_ref is only called with keys it locked");
        &self.guards[pos].1
    }
}

/// A locked shard. On drop, expirations it performed are added to the store's counter.
pub struct ShardGuard<'a> {
    guard: MutexGuard<'a, Shard>,
    store: &'a Store,
}

impl std::ops::Deref for ShardGuard<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl std::ops::DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl<'a> MultiGuard<'a> {
    /// Locked shard number `idx`.
    ///
    /// Panics if that shard was not locked; that is a bug in the caller.
    pub fn shard_at(&mut self, idx: usize) -> &mut Shard {
        let pos = self
            .guards
            .binary_search_by_key(&idx, |(i, _)| *i)
            .expect("invariant: MultiGuard::shard_at is only called with shards it locked");
        &mut self.guards[pos].1
    }

    /// Every locked shard.
    pub fn shards(&mut self) -> impl Iterator<Item = &mut Shard> + use<'_, 'a> {
        self.guards.iter_mut().map(|(_, g)| &mut **g)
    }

    /// True if shard `idx` is held.
    pub fn holds(&self, idx: usize) -> bool {
        self.guards.binary_search_by_key(&idx, |(i, _)| *i).is_ok()
    }

    /// True if every shard of the store is held.
    pub fn holds_all(&self) -> bool {
        self.guards.len() == self.store.shard_count()
    }

    /// The highest shard index held, if any.
    pub fn max_held(&self) -> Option<usize> {
        self.guards.last().map(|(i, _)| *i)
    }

    /// Adds shard `idx` (not yet held) with `guard`, keeping the shards in index order.
    pub fn add(&mut self, idx: usize, guard: ShardGuard<'a>) {
        let pos = self
            .guards
            .binary_search_by_key(&idx, |(i, _)| *i)
            .expect_err("invariant: MultiGuard::add is only called with shards it does not hold");
        self.guards.insert(pos, (idx, guard));
    }

    /// The store these shards belong to.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// An empty guard (locks nothing): for transactions that touch no keys.
    pub fn none(store: &Store) -> MultiGuard<'_> {
        MultiGuard {
            store,
            guards: Vec::new(),
        }
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let n = std::mem::take(&mut self.guard.expired);
        if n > 0 {
            self.store.expired_total.fetch_add(n, Ordering::Relaxed);
            self.store.tell_expired(&mut self.guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn s(b: &str) -> Value {
        Value::str(Bytes::copy_from_slice(b.as_bytes()))
    }

    #[test]
    fn expired_entries_read_as_absent_and_are_removed_on_access() {
        let store = Store::new(4);
        store.with_shard(b"k", |sh| {
            sh.insert(b"k", Entry::with_expiry(s("v"), Some(Nanos(100))))
        });
        store.with_shard(b"k", |sh| {
            assert!(sh.get(b"k", Nanos(99)).is_some());
            assert!(sh.get(b"k", Nanos(100)).is_none());
            assert!(sh.get_mut(b"k", Nanos(100)).is_none());
            assert_eq!(sh.len(), 0);
        });
        assert_eq!(store.expired_total(), 1);
    }

    #[test]
    fn upsert_reads_and_writes_with_the_get_live_rules() {
        let store = Store::new(1);
        let mut sh = store.lock(b"k");
        let bump = |e: Option<&Entry>| match e.map(|e| &e.value) {
            None => Ok(Value::Int(1)),
            Some(Value::Int(n)) => Ok(Value::Int(n + 1)),
            Some(_) => Err("not a counter"),
        };
        // Absent: inserted without expiry.
        assert_eq!(sh.upsert(b"k", Nanos(1), bump), Ok(()));
        assert!(sh.take_dirty());
        assert_eq!(sh.get(b"k", Nanos(1)).unwrap().value, Value::Int(1));
        // Live: the value changes, the expiry stays.
        sh.get_mut(b"k", Nanos(1))
            .unwrap()
            .set_expires_at(Some(Nanos(10)));
        sh.take_dirty();
        assert_eq!(sh.upsert(b"k", Nanos(5), bump), Ok(()));
        assert!(sh.take_dirty());
        let e = sh.get(b"k", Nanos(5)).unwrap();
        assert_eq!(
            (&e.value, e.expires_at()),
            (&Value::Int(2), Some(Nanos(10)))
        );
        // Expired: read as absent, stored fresh without the old expiry.
        assert_eq!(sh.upsert(b"k", Nanos(10), bump), Ok(()));
        let e = sh.get(b"k", Nanos(1_000)).unwrap();
        assert_eq!((&e.value, e.expires_at()), (&Value::Int(1), None));
        // A failure on a live entry stores nothing and is not a change.
        sh.insert(b"s", Entry::with_expiry(s("v"), Some(Nanos(20))));
        sh.take_dirty();
        assert_eq!(sh.upsert(b"s", Nanos(15), bump), Err("not a counter"));
        assert!(!sh.take_dirty());
        assert_eq!(sh.get(b"s", Nanos(15)).unwrap().value, s("v"));
        // A failure on an expired entry still removes it, as get_live does.
        assert_eq!(sh.upsert(b"s", Nanos(20), |_| Err("no")), Err("no"));
        assert!(!sh.holds(b"s"));
        assert_eq!(sh.len(), 1);
        drop(sh);
        assert_eq!(store.expired_total(), 2);
    }

    #[test]
    fn only_mutations_mark_the_shard_dirty() {
        let store = Store::new(1);
        let mut sh = store.lock(b"k");
        assert!(sh.get_live(b"k", Nanos(1)).is_none());
        assert!(!sh.take_dirty(), "a miss is not a change");
        sh.insert(b"k", Entry::with_expiry(s("v"), Some(Nanos(10))));
        assert!(sh.take_dirty());
        assert!(sh.get_live(b"k", Nanos(5)).is_some());
        assert!(sh.get(b"k", Nanos(5)).is_some());
        assert!(!sh.take_dirty(), "reads are not changes");
        assert!(sh.get_mut(b"k", Nanos(5)).is_some());
        assert!(sh.take_dirty(), "get_mut is for writing");
        assert!(sh.remove(b"k", Nanos(20)).is_none());
        assert!(
            !sh.take_dirty(),
            "removing an expired entry changes nothing"
        );
    }

    #[test]
    fn shards_spread_keys() {
        let store = Store::new(16);
        let mut used = [0usize; 16];
        for i in 0..1600 {
            used[store.shard_of(format!("key:{i}").as_bytes())] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "uneven spread: {used:?}");
    }

    #[test]
    fn multi_guard_locks_each_shard_once() {
        let store = Store::new(8);
        let keys = ["a", "b", "c", "a"];
        let mut g = store.lock_keys(&keys);
        for k in keys {
            g.shard(k.as_bytes()).insert(k.as_bytes(), Entry::new(s(k)));
        }
        drop(g);
        assert_eq!(store.len(), 3);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::{HashMap, HashSet};

        #[derive(Debug, Clone)]
        enum Op {
            Put(u16, Option<u64>),
            Del(u16),
            Persist(u16),
            Sweep(usize),
            Advance(u64),
            ScanStep,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                5 => (0u16..400, proptest::option::of(1u64..50)).prop_map(|(k, t)| Op::Put(k, t)),
                2 => (0u16..400).prop_map(Op::Del),
                1 => (0u16..400).prop_map(Op::Persist),
                1 => (1usize..40).prop_map(Op::Sweep),
                1 => (1u64..10).prop_map(Op::Advance),
                3 => Just(Op::ScanStep),
            ]
        }

        fn key(k: u16) -> Vec<u8> {
            if k % 4 == 0 {
                format!("a-key-too-long-to-be-stored-inline:{k}").into_bytes()
            } else {
                format!("user:{k:012}").into_bytes()
            }
        }

        proptest! {
            /// The sharded store against a model map, with lazy and active expiry, and a SCAN
            /// (one shard per step, as the command does) running across the changes: every
            /// key present for the whole scan is returned, none twice, and none that never
            /// existed.
            #[test]
            fn store_matches_a_model_map_under_scan_and_expiry(
                ops in proptest::collection::vec(op(), 1..800)
            ) {
                let store = Store::new(8);
                let mut model: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
                let mut now = 0u64;
                let mut cursor = 0usize;
                let mut returned: Vec<Vec<u8>> = Vec::new();
                let mut ever: HashSet<Vec<u8>> = HashSet::new();
                // Keys live since the scan started and not removed since.
                let mut stable: HashSet<Vec<u8>> = model.keys().cloned().collect();
                let live = |m: &HashMap<Vec<u8>, Option<u64>>, k: &[u8], now: u64| {
                    m.get(k).is_some_and(|at| at.is_none_or(|at| at > now))
                };
                for op in ops {
                    match op {
                        Op::Put(k, ttl) => {
                            let k = key(k);
                            let at = ttl.map(|t| now + t);
                            store.with_shard(&k, |s| {
                                s.insert(&k, Entry::with_expiry(Value::Int(1), at.map(Nanos)))
                            });
                            model.insert(k.clone(), at);
                            ever.insert(k.clone());
                            if at.is_some() {
                                stable.remove(&k);
                            }
                        }
                        Op::Del(k) => {
                            let k = key(k);
                            let got = store.with_shard(&k, |s| s.remove(&k, Nanos(now)).is_some());
                            prop_assert_eq!(got, live(&model, &k, now));
                            model.remove(&k);
                            stable.remove(&k);
                        }
                        Op::Persist(k) => {
                            let k = key(k);
                            store.with_shard(&k, |s| {
                                if let Some(e) = s.get_mut(&k, Nanos(now)) {
                                    e.set_expires_at(None);
                                }
                            });
                            if live(&model, &k, now) {
                                model.insert(k, None);
                            }
                        }
                        Op::Sweep(budget) => {
                            store.sweep(Nanos(now), budget);
                        }
                        Op::Advance(d) => {
                            now += d;
                            stable.retain(|k| live(&model, k, now));
                        }
                        Op::ScanStep => {
                            store.with_shard_at_for_test(cursor, |s| {
                                returned.extend(s.iter_live(Nanos(now)).map(|(k, _)| k.to_vec()));
                            });
                            cursor += 1;
                            if cursor == store.shard_count() {
                                let got: HashSet<_> = returned.iter().cloned().collect();
                                prop_assert_eq!(got.len(), returned.len(), "a key returned twice");
                                prop_assert!(got.is_subset(&ever), "a key that never existed");
                                prop_assert!(stable.is_subset(&got), "a stable key was missed");
                                cursor = 0;
                                returned.clear();
                                stable = model
                                    .keys()
                                    .filter(|k| live(&model, k, now))
                                    .cloned()
                                    .collect();
                            }
                        }
                    }
                    // Every operation leaves the store equal to the model's live keys.
                    for (k, at) in &model {
                        let got = store.with_shard(k, |s| s.get(k, Nanos(now)).map(|e| e.expires_at()));
                        if live(&model, k, now) {
                            prop_assert_eq!(got, Some(at.map(Nanos)));
                        } else {
                            prop_assert_eq!(got, None);
                        }
                    }
                }
                let (keys, _) = store.counts(Nanos(now));
                prop_assert!(keys >= model.keys().filter(|k| live(&model, k, now)).count());
            }
        }
    }
}
