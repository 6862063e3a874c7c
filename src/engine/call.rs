//! [`Call`]: one command's view of the engine, and the only way anything changes the keyspace.
//!
//! Every change made through a `Call` is counted and journaled (the key's new state, or its
//! deletion) before the shard lock drops, so the log's order per key is the order of the
//! changes, and `WATCH`ers of the key are signalled.

use std::sync::Arc;

use crate::clock::Nanos;
use crate::config::NotifyFlags;
use crate::metrics::LocalStats;
use crate::persist::{record, Feed, Record, Seq, Writer};
use crate::store::{MultiGuard, Shard, Store};

use super::notify::{Change, EventSpec};
use super::Engine;

/// One command's access to the engine: which database, the time it runs at (read once), the
/// shards an `EXEC` already holds, and where its counts and AOF position go.
pub struct Call<'c, 'g> {
    /// The engine.
    pub engine: &'c Engine,
    /// The database the command runs in.
    pub db: usize,
    /// The time of this command.
    pub now: Nanos,
    /// Shards already held for the whole of an `EXEC`; keyspace access goes through them.
    pub locked: Option<&'c mut MultiGuard<'g>>,
    /// Counts: changes (`dirty`), admissions and denials.
    pub stats: &'c mut LocalStats,
    /// The last AOF record this call appended (a reply waits until it is durable under
    /// `appendfsync always`).
    pub aof_seq: &'c mut Option<Seq>,
    /// The keyspace events of the command's changes, while notifications are on.
    pub events: Option<&'c EventSpec>,
}

impl<'c, 'g> Call<'c, 'g> {
    /// A call in database `db` at `now`, outside a transaction.
    pub fn new(
        engine: &'c Engine,
        db: usize,
        now: Nanos,
        stats: &'c mut LocalStats,
        aof_seq: &'c mut Option<Seq>,
    ) -> Call<'c, 'g> {
        Call {
            engine,
            db,
            now,
            locked: None,
            stats,
            aof_seq,
            events: None,
        }
    }

    /// The call's database. Changes go through [`Call::with_shard`] and friends instead, so
    /// that commands inside `EXEC` use the shards the transaction already holds.
    pub fn store(&self) -> &'c Store {
        &self.engine.dbs[self.db]
    }

    /// Counts a take's outcome (peeks are not counted).
    pub fn count_outcome(&mut self, allowed: bool) {
        if allowed {
            self.stats.allowed += 1;
        } else {
            self.stats.denied += 1;
        }
    }

    /// Runs `f` on the shard owning `key`, under its lock. A change `f` makes is counted and
    /// journaled (the key's new state, or its deletion) before the lock drops, so the log's
    /// order per key is the order of the changes.
    pub fn with_shard<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        let db = self.store();
        let journal = Journal::new(self.engine, self.db, self.now);
        let (stats, aof_seq, now) = (&mut *self.stats, &mut *self.aof_seq, self.now);
        let notify = self.events.map(|spec| (spec, self.engine, self.db));
        let run = |shard: &mut Shard| {
            shard.take_dirty();
            let existed = notify.is_some() && shard.get(key, now).is_some();
            let r = f(shard);
            if shard.take_dirty() {
                stats.dirty += 1;
                journal.key(shard, key, aof_seq);
                if db.watchers.active() {
                    db.watchers.touch(key, shard.get(key, now).is_some());
                }
                if let Some((spec, engine, db)) = notify {
                    report_expired(engine, db, shard);
                    let live = shard.get(key, now).is_some();
                    let change = Change {
                        live,
                        created: !existed,
                        foreign: false,
                    };
                    spec.publish(engine, db, key, change);
                }
            }
            r
        };
        match &mut self.locked {
            Some(g) => run(g.shard(key)),
            None => run(&mut db.lock(key)),
        }
    }

    /// Runs `f` on the shard owning `key` in database `db` (not the call's), journaling and
    /// signalling a change as [`Call::with_shard`] does. `None` inside `EXEC`, whose locks
    /// cover the call's database only (taking another's could deadlock with a transaction
    /// there).
    pub fn with_shard_in<R>(
        &mut self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(&mut Shard) -> R,
    ) -> Option<R> {
        if self.locked.is_some() {
            return None;
        }
        let store = &self.engine.dbs[db];
        let journal = Journal::new(self.engine, db, self.now);
        let mut shard = store.lock(key);
        shard.take_dirty();
        let existed = self.events.is_some() && shard.get(key, self.now).is_some();
        let r = f(&mut shard);
        if shard.take_dirty() {
            self.stats.dirty += 1;
            journal.key(&shard, key, self.aof_seq);
            if store.watchers.active() {
                store
                    .watchers
                    .touch(key, shard.get(key, self.now).is_some());
            }
            if let Some(spec) = self.events {
                report_expired(self.engine, db, &mut shard);
                let change = Change {
                    live: shard.get(key, self.now).is_some(),
                    created: !existed,
                    foreign: db != self.db,
                };
                spec.publish(self.engine, db, key, change);
            }
        }
        Some(r)
    }

    /// Runs `f` with every shard owning one of `keys` locked (atomic across the keys).
    pub fn with_keys<K: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        f: impl for<'x> FnOnce(&mut MultiGuard<'x>) -> R,
    ) -> R {
        self.with_keys_writing(keys, keys, f)
    }

    /// [`Call::with_keys`] for a command that reads `keys` but changes only `written` (a subset:
    /// `SUNIONSTORE`'s destination): after a change only the `written` keys are journaled and
    /// signalled to their `WATCH`ers, so watching a source is not disturbed, as in Redis.
    pub fn with_keys_writing<K: AsRef<[u8]>, W: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        written: &[W],
        f: impl for<'x> FnOnce(&mut MultiGuard<'x>) -> R,
    ) -> R {
        self.with_keys_then(
            keys,
            |g| (f(g), ()),
            |(), visit| {
                for w in written {
                    visit(w.as_ref());
                }
            },
        )
    }

    /// [`Call::with_keys`] for a command that decides under the locks which keys it changed:
    /// `f` returns, with its result, the indices in `keys` of the keys it changed, and only
    /// those are journaled and signalled to their `WATCH`ers (`SMOVE` leaves a destination that
    /// already holds the member untouched, as in Redis).
    pub fn with_keys_reporting<K: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        f: impl for<'x> FnOnce(&mut MultiGuard<'x>) -> (R, Vec<usize>),
    ) -> R {
        self.with_keys_then(keys, f, |written, visit| {
            for k in written.iter().filter_map(|&i| keys.get(i)) {
                visit(k.as_ref());
            }
        })
    }

    /// Runs `f` with every shard owning one of `keys` locked; after a change, journals and
    /// signals the keys `written` visits (given what `f` returned besides its result).
    fn with_keys_then<K: AsRef<[u8]>, R, T>(
        &mut self,
        keys: &[K],
        f: impl for<'x> FnOnce(&mut MultiGuard<'x>) -> (R, T),
        written: impl Fn(&T, &mut dyn FnMut(&[u8])),
    ) -> R {
        let db = self.store();
        let journal = Journal::new(self.engine, self.db, self.now);
        let (stats, aof_seq, now) = (&mut *self.stats, &mut *self.aof_seq, self.now);
        let notify = self.events.map(|spec| (spec, self.engine, self.db));
        let run = |g: &mut MultiGuard<'_>| {
            for k in keys {
                g.shard(k.as_ref()).take_dirty();
            }
            // With notifications on: which keys held a value before (for `new`).
            let existed: Vec<bool> = match notify {
                Some(_) => keys
                    .iter()
                    .map(|k| g.shard(k.as_ref()).get(k.as_ref(), now).is_some())
                    .collect(),
                None => Vec::new(),
            };
            let (r, t) = f(g);
            let mut changed = false;
            for k in keys {
                changed |= g.shard(k.as_ref()).take_dirty();
            }
            if changed {
                // Which of the keys changed is not tracked per key; journaling each key's
                // current state is exact either way, since records are full states.
                stats.dirty += 1;
                let watched = db.watchers.active();
                if let Some((_, engine, dbi)) = notify {
                    for k in keys {
                        report_expired(engine, dbi, g.shard(k.as_ref()));
                    }
                }
                written(&t, &mut |k| {
                    journal.key(g.shard(k), k, aof_seq);
                    if watched {
                        let live = g.shard(k).get(k, now).is_some();
                        db.watchers.touch(k, live);
                    }
                    if let Some((spec, engine, dbi)) = notify {
                        let live = g.shard(k).get(k, now).is_some();
                        let created = keys
                            .iter()
                            .position(|x| x.as_ref() == k)
                            .is_some_and(|i| !existed[i]);
                        let change = Change {
                            live,
                            created,
                            foreign: false,
                        };
                        spec.publish(engine, dbi, k, change);
                    }
                });
            }
            r
        };
        match &mut self.locked {
            Some(g) => run(g),
            None => run(&mut db.lock_keys(keys)),
        }
    }

    /// Runs `f` with every shard of the call's database locked; `record`, if given, is
    /// journaled before the locks drop (`FLUSHDB`).
    pub fn with_all_shards<R>(
        &mut self,
        record: Option<Record>,
        f: impl for<'x> FnOnce(&mut MultiGuard<'x>) -> R,
    ) -> R {
        let db = self.store();
        let journal = Journal::new(self.engine, self.db, self.now);
        let (stats, aof_seq, now) = (&mut *self.stats, &mut *self.aof_seq, self.now);
        let run = |g: &mut MultiGuard<'_>| {
            // Watched keys holding a value before a whole-keyspace change (`FLUSHDB`) and none
            // after it were changed by it.
            let watched_live: Vec<_> = if db.watchers.active() {
                db.watchers
                    .keys()
                    .into_iter()
                    .filter(|k| g.shard(k).get(k, now).is_some())
                    .collect()
            } else {
                Vec::new()
            };
            let r = f(g);
            for k in &watched_live {
                if g.shard(k).get(k, now).is_none() {
                    db.watchers.touch(k, false);
                }
            }
            if let Some(rec) = record {
                stats.dirty += 1;
                journal.record(&rec, aof_seq);
            }
            r
        };
        match &mut self.locked {
            Some(g) => run(g),
            None => run(&mut db.lock_all()),
        }
    }

    /// Runs `f` on shard number `idx`, for whole-keyspace reads (`KEYS`, `SCAN`, `DBSIZE`).
    pub fn with_shard_at<R>(&mut self, idx: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let db = self.store();
        let stats = &mut *self.stats;
        let run = |shard: &mut Shard| {
            shard.take_dirty();
            let r = f(shard);
            if shard.take_dirty() {
                stats.dirty += 1;
            }
            r
        };
        match &mut self.locked {
            Some(g) => run(g.shard_at(idx)),
            None => run(&mut db.lock_shard(idx)),
        }
    }

    /// Journals a record that is not a key's effect (a policy, override or access-list
    /// change). Call it while holding the lock that orders such changes, so the log's order
    /// is the order of the changes.
    pub fn journal(&mut self, record: &Record) {
        self.stats.dirty += 1;
        self.engine.journal_record(record, self.aof_seq);
    }
}

impl Engine {
    /// Appends a record that is not a key's effect (a script, a policy) to the AOF and the
    /// replication stream; `aof_seq` gets its AOF position.
    pub fn journal_record(&self, record: &Record, aof_seq: &mut Option<Seq>) {
        if let Some(w) = self.aof.get() {
            *aof_seq = Some(w.append(record));
        }
        self.feed.append_with(|out| record::encode(record, out));
    }
}

/// Publishes `expired` for the keys `shard` expired under this lock (before the command's
/// own events, as Redis's lazy expiry comes before the command's change).
fn report_expired(engine: &Engine, db: usize, shard: &mut Shard) {
    for key in shard.take_expired_keys() {
        engine.notify_key(db, NotifyFlags::EXPIRED, "expired", &key);
    }
}

/// Appends effect records for changes made under a shard lock.
struct Journal<'a> {
    writer: Option<&'a Arc<Writer>>,
    /// Checked when appending, under the shard lock, not when the journal is made: a full
    /// sync activates the feed and then snapshots the shards, so a change made under a lock
    /// taken after the snapshot visited that shard must see the feed active.
    feed: &'a Feed,
    db: u32,
    now: Nanos,
}

impl<'a> Journal<'a> {
    fn new(engine: &'a Engine, db: usize, now: Nanos) -> Journal<'a> {
        Journal {
            writer: engine.aof.get(),
            feed: &engine.feed,
            db: u32::try_from(db).expect("invariant: databases are capped at 1024"),
            now,
        }
    }

    /// Journals `key`'s state in `shard` as it is now: a `Put` of the live entry or a `Del`,
    /// encoded straight from the entry into the writer's queue.
    fn key(&self, shard: &Shard, key: &[u8], aof_seq: &mut Option<Seq>) {
        let feed = self.feed.is_active();
        if self.writer.is_none() && !feed {
            return;
        }
        let db = self.db;
        let entry = shard.get(key, self.now);
        let encode = |out: &mut Vec<u8>| match entry {
            Some(e) => record::encode_put(db, key, &e.value, e.expires_at(), out),
            None => record::encode_del(db, key, out),
        };
        if let Some(w) = self.writer {
            *aof_seq = Some(w.append_with(encode));
        }
        if feed {
            self.feed.append_with(encode);
        }
    }

    fn record(&self, record: &Record, aof_seq: &mut Option<Seq>) {
        if let Some(w) = self.writer {
            *aof_seq = Some(w.append(record));
        }
        self.feed.append_with(|out| record::encode(record, out));
    }
}
