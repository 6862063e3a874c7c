//! Who watches which key (`WATCH`), per database.
//!
//! Every change to a key the command layer makes under a shard lock "touches" the key: each
//! client watching it gets its flag set, and its next `EXEC` answers a null reply instead of
//! running. When nobody watches anything in a database, a write pays one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Key;

/// Set when a key a client watches changed; shared by the client's session and the registry.
pub type WatchFlag = Arc<AtomicBool>;

/// One client's watch on one key.
#[derive(Debug)]
struct Watcher {
    flag: WatchFlag,
    /// The key existed but had already expired when `WATCH` ran (Redis's "stale" key): its
    /// deletion is not a change.
    stale: bool,
}

/// The watchers of one database.
#[derive(Debug, Default)]
pub struct Watchers {
    /// Number of (key, client) watches: the write path skips the map when it is zero.
    count: AtomicUsize,
    map: Mutex<HashMap<Key, Vec<Watcher>>>,
}

impl Watchers {
    /// True when at least one client watches a key in this database.
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Registers `flag` as watching `key`. Watching the same key twice is one watch; returns
    /// false then.
    pub fn watch(&self, key: &[u8], flag: &WatchFlag, stale: bool) -> bool {
        let mut map = self.map.lock();
        let list = map.entry(Key::from_slice(key)).or_default();
        if list.iter().any(|w| Arc::ptr_eq(&w.flag, flag)) {
            return false;
        }
        list.push(Watcher {
            flag: flag.clone(),
            stale,
        });
        self.count.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Removes `flag`'s watch on `key`, if any.
    pub fn unwatch(&self, key: &[u8], flag: &WatchFlag) {
        let mut map = self.map.lock();
        let Some(list) = map.get_mut(key) else {
            return;
        };
        let before = list.len();
        list.retain(|w| !Arc::ptr_eq(&w.flag, flag));
        let removed = before - list.len();
        if list.is_empty() {
            map.remove(key);
        }
        self.count.fetch_sub(removed, Ordering::AcqRel);
    }

    /// `key` changed; `live` tells whether it holds a live value now. Flags every watcher,
    /// except those that watched an already-expired key which is now simply gone.
    pub fn touch(&self, key: &[u8], live: bool) {
        let map = self.map.lock();
        if let Some(list) = map.get(key) {
            for w in list.iter().filter(|w| live || !w.stale) {
                w.flag.store(true, Ordering::Release);
            }
        }
    }

    /// The watched keys of this database, for callers that change many keys at once
    /// (`FLUSHDB`) and must find which of them held a value.
    pub fn keys(&self) -> Vec<Key> {
        self.map.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_flags_watchers_of_that_key_only() {
        let w = Watchers::default();
        assert!(!w.active());
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        assert!(w.watch(b"k", &a, false));
        assert!(
            !w.watch(b"k", &a, false),
            "a second WATCH of a key is no new watch"
        );
        w.watch(b"other", &b, false);
        assert!(w.active());
        w.touch(b"k", true);
        assert!(a.load(Ordering::Acquire));
        assert!(!b.load(Ordering::Acquire));
    }

    #[test]
    fn deleting_a_stale_key_is_no_change() {
        let w = Watchers::default();
        let a = WatchFlag::default();
        w.watch(b"k", &a, true);
        w.touch(b"k", false);
        assert!(!a.load(Ordering::Acquire));
        w.touch(b"k", true);
        assert!(a.load(Ordering::Acquire));
    }

    #[test]
    fn unwatch_restores_the_idle_fast_path() {
        let w = Watchers::default();
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        w.watch(b"k", &a, false);
        w.watch(b"k", &b, false);
        w.unwatch(b"k", &a);
        w.touch(b"k", true);
        assert!(!a.load(Ordering::Acquire));
        assert!(b.load(Ordering::Acquire));
        w.unwatch(b"k", &b);
        w.unwatch(b"never", &b);
        assert!(!w.active());
        assert!(w.keys().is_empty());
    }
}
