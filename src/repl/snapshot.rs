//! The full-sync payload: limitkv's own snapshot, byte for byte an AOF rewrite's file (header,
//! scripts, policies, one `Put` per live key; docs/aof-format.md), sent where Redis sends an
//! RDB. [`build`] writes one from the engine; [`parse`] checks a received one completely
//! before anything is touched; [`load`] swaps it in under every shard lock at once, so no
//! client ever sees a half-loaded keyspace.

use std::io;

use crate::clock::Nanos;
use crate::engine::Engine;
use crate::persist::record::{self, CorruptReason, Record, HEADER_LEN};
use crate::persist::{rewrite, Catalog, Sink};
use crate::store::{Entry, MultiGuard};

/// A sink that keeps the bytes in memory.
struct VecSink(Vec<u8>);

impl Sink for VecSink {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A snapshot of `engine` at `now`, with `scripts` (the script cache and libraries) first.
/// Holds one shard lock at a time.
pub fn build(engine: &Engine, scripts: &[Record], now: Nanos) -> Vec<u8> {
    let mut sink = VecSink(Vec::new());
    // Writing to memory cannot fail.
    let _ = rewrite::write_snapshot_with(&engine.dbs, &engine.policies, scripts, now, &mut sink);
    sink.0
}

/// Why a received snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a limitkv snapshot (a Redis RDB starts with `REDIS`).
    NotLimitkv,
    /// A frame is damaged, or the payload ends inside one.
    Corrupt {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// A record names a database this server does not have.
    Database(u32),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::NotLimitkv => write!(
                f,
                "the master's snapshot is not limitkv's (is the master a Redis server? only a \
                 limitkv master can be replicated)"
            ),
            SnapshotError::Corrupt { offset, reason } => {
                write!(
                    f,
                    "the master's snapshot is damaged at byte {offset}: {reason}"
                )
            }
            SnapshotError::Database(db) => write!(
                f,
                "the master's snapshot uses database {db}, which this server does not have \
                 (raise `databases`)"
            ),
        }
    }
}

/// Checks and decodes a whole snapshot; nothing is applied.
pub fn parse(bytes: &[u8], databases: usize) -> Result<Vec<Record>, SnapshotError> {
    match record::check_header(bytes) {
        Ok(_) => {}
        Err(CorruptReason::Incomplete { .. }) if bytes.len() < HEADER_LEN => {
            return Err(SnapshotError::Corrupt {
                offset: 0,
                reason: CorruptReason::Incomplete {
                    needed: HEADER_LEN as u64,
                    available: bytes.len() as u64,
                },
            })
        }
        Err(_) => return Err(SnapshotError::NotLimitkv),
    }
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while at < bytes.len() {
        match record::decode_frame(&bytes[at..]) {
            Ok(Some((r, n))) => {
                if let Some(db) = record_db(&r).filter(|&db| db as usize >= databases) {
                    return Err(SnapshotError::Database(db));
                }
                out.push(r);
                at += n;
            }
            Ok(None) => break,
            Err(reason) => return Err(SnapshotError::Corrupt { offset: at, reason }),
        }
    }
    Ok(out)
}

fn record_db(r: &Record) -> Option<u32> {
    match r {
        Record::Put { db, .. } | Record::Del { db, .. } | Record::FlushDb { db } => Some(*db),
        _ => None,
    }
}

/// Replaces the whole keyspace (every database), the policies and, through `restore_script`,
/// the scripts with `records`. The keyspace changes under every shard lock of every database
/// at once: clients see the old data or the new, never a mix. Returns the keys loaded.
pub fn load(
    engine: &Engine,
    records: Vec<Record>,
    now: Nanos,
    restore_script: &mut dyn FnMut(Record),
) -> u64 {
    let mut catalog = Vec::new();
    let mut keys = Vec::new();
    for r in records {
        super::note_ids(engine, &r);
        if crate::persist::is_script_record(&r) {
            restore_script(r);
        } else if r.is_catalog() {
            catalog.push(r);
        } else {
            keys.push(r);
        }
    }
    *engine.policies.write() = Default::default();
    for r in catalog {
        if let Err(e) = engine.policies.apply(r, now) {
            tracing::warn!(error = %e, "replication: a policy record of the snapshot was skipped");
        }
    }
    let mut guards: Vec<MultiGuard<'_>> = engine.dbs.iter().map(|db| db.lock_all()).collect();
    // Watched keys that held a value before the swap (`WATCH` on a replica): a key that held
    // one before or holds one after is changed by the sync, as Redis's swap signals it.
    let watched: Vec<Vec<(crate::store::Key, bool)>> = engine
        .dbs
        .iter()
        .zip(guards.iter_mut())
        .map(|(db, g)| {
            if !db.watchers.active() {
                return Vec::new();
            }
            let keys = db.watchers.keys();
            keys.into_iter()
                .map(|k| {
                    let live = g.shard(&k).get(&k, now).is_some();
                    (k, live)
                })
                .collect()
        })
        .collect();
    for g in guards.iter_mut() {
        g.shards().for_each(|s| s.clear());
    }
    let mut loaded = 0;
    for r in keys {
        match r {
            Record::Put {
                db,
                key,
                value,
                expires_at,
            } => {
                let entry = Entry::with_expiry(value, expires_at);
                if !entry.is_expired(now) {
                    guards[db as usize].shard(&key).insert(&key, entry);
                    loaded += 1;
                }
            }
            Record::Del { db, key } => {
                guards[db as usize].shard(&key).remove(&key, now);
            }
            Record::FlushDb { db } => guards[db as usize].shards().for_each(|s| s.clear()),
            Record::FlushAll => {
                for g in guards.iter_mut() {
                    g.shards().for_each(|s| s.clear());
                }
            }
            _ => {}
        }
    }
    for ((db, g), keys) in engine.dbs.iter().zip(guards.iter_mut()).zip(&watched) {
        for (k, before) in keys {
            let after = g.shard(k).get(k, now).is_some();
            if *before || after {
                db.watchers.touch(k, after);
            }
        }
    }
    for g in guards.iter_mut() {
        // The load is not a client's change: no AOF record, no dirty count.
        g.shards().for_each(|s| {
            s.take_dirty();
        });
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::gcra::GcraParams;

    #[test]
    fn a_snapshot_round_trips_and_replaces_everything() {
        let src = Engine::in_memory();
        let params = GcraParams::from_cell(4, 1, 60).unwrap();
        for k in 0..50u32 {
            src.throttle(format!("k{k}").as_bytes(), &params, 1)
                .unwrap();
        }
        let now = src.clock.now();
        let bytes = build(&src, &[], now);
        let dst = Engine::in_memory();
        dst.throttle(b"stale", &params, 1).unwrap();
        let records = parse(&bytes, 16).expect("a whole snapshot parses");
        let n = load(&dst, records, now, &mut |_| {});
        assert_eq!(n, 50);
        assert_eq!(dst.dbs[0].len(), 50, "the stale key is gone");
        assert_eq!(
            dst.throttle(b"k7", &params, 1).unwrap().remaining,
            src.throttle(b"k7", &params, 1).unwrap().remaining,
            "the same state on both"
        );
    }

    #[test]
    fn truncated_or_foreign_snapshots_are_refused_before_anything_changes() {
        let src = Engine::in_memory();
        let params = GcraParams::from_cell(4, 1, 60).unwrap();
        src.throttle(b"a", &params, 1).unwrap();
        src.throttle(b"b", &params, 1).unwrap();
        let bytes = build(&src, &[], src.clock.now());
        for cut in [3, HEADER_LEN + 1, bytes.len() - 1] {
            assert!(
                matches!(parse(&bytes[..cut], 16), Err(SnapshotError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse(b"REDIS0010\xfa\x09redis-ver", 16),
            Err(SnapshotError::NotLimitkv)
        );
        assert!(matches!(parse(&bytes, 0), Err(SnapshotError::Database(0))));
    }
}
