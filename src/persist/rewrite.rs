//! AOF rewrite (compaction): a snapshot of the store plus the records appended meanwhile,
//! written to `appendonly.aof.tmp` and renamed over `appendonly.aof`, while clients go on
//! writing.
//!
//! Protocol (run [`rewrite`] on a blocking thread, never on the async runtime):
//! 1. [`Writer::start_rewrite`]: from now on the writer thread copies every batch it takes
//!    into a rewrite buffer, and still appends it to the old file as usual.
//! 2. [`write_snapshot`]: header plus one `Put` per live key, one shard lock at a time (a
//!    shard's records are encoded under its lock; the lock is dropped before any I/O). Then
//!    fsync the temporary file.
//! 3. [`Writer::finish_rewrite`]: the writer thread appends the rewrite buffer to the
//!    temporary file, fsyncs it, renames it over the AOF, fsyncs the directory, and appends
//!    to the new file from then on.
//!
//! Why no write is lost or reordered: every write is applied to a shard and queued before the
//! shard lock drops. A write the snapshot did not see happened after its shard was visited,
//! so after step 1, so its record is in the buffer. A write in both the snapshot and the
//! buffer is harmless: records are full states, so for each key the last record in the new
//! file is the key's newest state either way (the buffer holds every later record of that key,
//! in order). A crash before the rename leaves the old, complete file (the temporary file is
//! ignored and overwritten by the next rewrite); after it, the new complete file.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::clock::Nanos;
use crate::persist::record::{self, Record};
use crate::persist::writer::{FileSink, Install, Sink, Writer, PREALLOCATE};
use crate::persist::{Catalog, PersistError, AOF_FILE, AOF_TMP_FILE};
use crate::store::Store;

/// Redis's `auto-aof-rewrite-percentage` / `auto-aof-rewrite-min-size` rule: rewrite when the
/// file is at least `min_size` bytes and has grown by at least `percentage` percent over
/// `base` (its size after the last rewrite or at startup). `percentage == 0` disables it.
pub fn should_rewrite(current: u64, base: u64, percentage: u64, min_size: u64) -> bool {
    if percentage == 0 || current < min_size {
        return false;
    }
    let base = base.max(1);
    let growth = current.saturating_sub(base).saturating_mul(100) / base;
    current > base && growth >= percentage
}

/// What a rewrite produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteReport {
    /// Keys in the snapshot.
    pub snapshot_records: u64,
    /// Size of the new file when it was installed (snapshot plus buffered records).
    pub size: u64,
}

/// Writes the header, the catalog's records, and one `Put` per key live at `now` in every
/// database of `dbs` to `sink`; returns the record count. Holds one shard lock at a time, and
/// never across I/O.
///
/// The catalog is read after the rewrite started, like the keys: a catalog change the
/// snapshot missed is in the rewrite buffer, and catalog records are full states too.
pub fn write_snapshot(
    dbs: &[Store],
    catalog: &dyn Catalog,
    now: Nanos,
    sink: &mut dyn Sink,
) -> io::Result<u64> {
    write_snapshot_with(dbs, catalog, &[], now, sink)
}

/// [`write_snapshot`] with `scripts` (the script cache and function libraries as
/// [`Record::Script`] / [`Record::FunctionLibrary`] records) written right after the header,
/// before the catalog and the keys. They are not counted in the returned count.
pub fn write_snapshot_with(
    dbs: &[Store],
    catalog: &dyn Catalog,
    scripts: &[Record],
    now: Nanos,
    sink: &mut dyn Sink,
) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(64 * 1024);
    record::encode_header(&mut buf);
    for r in scripts {
        record::encode(r, &mut buf);
    }
    let mut n = 0;
    for r in catalog.snapshot(now) {
        record::encode(&r, &mut buf);
        n += 1;
    }
    for (db, store) in dbs.iter().enumerate() {
        let db = u32::try_from(db).expect("invariant: databases are capped at 1024");
        for i in 0..store.shard_count() {
            {
                let shard = store.lock_shard(i);
                for (key, entry) in shard.iter_live(now) {
                    record::encode(
                        &Record::Put {
                            db,
                            key: bytes::Bytes::copy_from_slice(key),
                            value: entry.value.clone(),
                            expires_at: entry.expires_at(),
                        },
                        &mut buf,
                    );
                    n += 1;
                }
            }
            sink.write_all(&buf)?;
            buf.clear();
        }
    }
    Ok(n)
}

/// Runs a whole rewrite into `tmp` and hands it to the writer with `install`. On any error
/// the rewrite is abandoned and the writer keeps the old file. Generic over the sink so tests
/// can use memory.
pub fn rewrite_into(
    writer: &Writer,
    dbs: &[Store],
    catalog: &dyn Catalog,
    now: Nanos,
    tmp: Box<dyn Sink>,
    install: Install,
) -> Result<RewriteReport, PersistError> {
    rewrite_into_with(writer, dbs, catalog, &Vec::new, now, tmp, install)
}

/// [`rewrite_into`] that also writes the records `scripts` returns (the script cache and
/// function libraries). It is called after the writer starts buffering, under the same rule
/// as the keys: a script change made after the call is in the buffer, one made before it is
/// in what it returns, and one made in between is in both, which replay tolerates (loading
/// a script twice, or deleting then reloading in log order, ends in the same state).
pub fn rewrite_into_with(
    writer: &Writer,
    dbs: &[Store],
    catalog: &dyn Catalog,
    scripts: &dyn Fn() -> Vec<Record>,
    now: Nanos,
    mut tmp: Box<dyn Sink>,
    install: Install,
) -> Result<RewriteReport, PersistError> {
    writer.start_rewrite()?;
    let scripts = scripts();
    let snap = write_snapshot_with(dbs, catalog, &scripts, now, tmp.as_mut())
        .and_then(|n| tmp.sync().map(|()| n));
    let snapshot_records = match snap {
        Ok(n) => n,
        Err(e) => {
            writer.abort_rewrite();
            return Err(PersistError::io("writing the AOF rewrite snapshot", e));
        }
    };
    let size = writer.finish_rewrite(tmp, install)?;
    Ok(RewriteReport {
        snapshot_records,
        size,
    })
}

/// Rewrites `dir/appendonly.aof` (see the module docs). Blocking: run it on its own thread
/// (`BGREWRITEAOF`, or when [`should_rewrite`] says so). `now` filters keys already expired.
pub fn rewrite(
    dir: &Path,
    dbs: &[Store],
    catalog: &dyn Catalog,
    now: Nanos,
    writer: &Writer,
) -> Result<RewriteReport, PersistError> {
    rewrite_with(dir, dbs, catalog, &Vec::new, now, writer, PREALLOCATE)
}

/// [`rewrite`] that also keeps the script cache and function libraries (see
/// [`rewrite_into_with`]).
pub fn rewrite_with(
    dir: &Path,
    dbs: &[Store],
    catalog: &dyn Catalog,
    scripts: &dyn Fn() -> Vec<Record>,
    now: Nanos,
    writer: &Writer,
    preallocate: u64,
) -> Result<RewriteReport, PersistError> {
    let tmp_path = dir.join(AOF_TMP_FILE);
    let aof_path = dir.join(AOF_FILE);
    let tmp = FileSink::create(&tmp_path)
        .map_err(|e| PersistError::io(format!("creating {}", tmp_path.display()), e))?
        .with_preallocation(preallocate);
    let dir_owned = dir.to_owned();
    let tmp_for_install = tmp_path.clone();
    let install: Install = Box::new(move || {
        fs::rename(&tmp_for_install, &aof_path)?;
        // The rename is durable only once the directory entry is.
        File::open(&dir_owned)?.sync_all()
    });
    let res = rewrite_into_with(writer, dbs, catalog, scripts, now, Box::new(tmp), install);
    if res.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    res
}

/// Removes a temporary file left by a rewrite that crashed before its rename. Call at startup;
/// the AOF itself is never touched. A missing file is fine.
pub fn remove_stale_tmp(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(AOF_TMP_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::persist::replay::{apply, load_file, replay, OnCorruptTail};
    use crate::persist::writer::{FsyncPolicy, MemSink};
    use crate::store::{Entry, Value};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    const LONG: Duration = Duration::from_secs(10);
    const NOW: Nanos = Nanos(1_000_000);

    /// Applies a write to the live store and logs it, as the dispatcher will.
    fn set(store: &Store, w: &Writer, k: &str, v: i64, exp: Option<Nanos>) {
        store.with_shard(k.as_bytes(), |sh| {
            sh.insert(k.as_bytes(), Entry::with_expiry(Value::Int(v), exp));
            w.append(&Record::Put {
                db: 0,
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: Value::Int(v),
                expires_at: exp,
            })
        });
    }

    fn del(store: &Store, w: &Writer, k: &str) {
        store.with_shard(k.as_bytes(), |sh| {
            sh.remove(k.as_bytes(), NOW);
            w.append(&Record::Del {
                db: 0,
                key: Bytes::copy_from_slice(k.as_bytes()),
            })
        });
    }

    fn sorted(store: &Store) -> Vec<(Bytes, Entry)> {
        let mut v: Vec<_> = (0..store.shard_count())
            .flat_map(|i| {
                let sh = store.lock_shard(i);
                sh.iter_live(NOW)
                    .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn restore(bytes: &[u8]) -> Store {
        let s = Store::new(4);
        replay(bytes, OnCorruptTail::Refuse, |r| {
            apply(std::slice::from_ref(&s), r, NOW).unwrap()
        })
        .unwrap();
        s
    }

    fn writer_on(sink: Box<dyn Sink>) -> Writer {
        Writer::start(sink, FsyncPolicy::Always, Arc::new(ManualClock::new(NOW))).unwrap()
    }

    #[test]
    fn auto_rewrite_rule_matches_redis() {
        let mb = 1024 * 1024;
        let cases = [
            // (current, base, percentage, min_size, expected, label)
            (63 * mb, 1, 100, 64 * mb, false, "under min size"),
            (128 * mb, 64 * mb, 100, 64 * mb, true, "doubled"),
            (127 * mb, 64 * mb, 100, 64 * mb, false, "not yet doubled"),
            (96 * mb, 64 * mb, 50, 64 * mb, true, "grew 50%"),
            (500 * mb, 1, 0, 64 * mb, false, "disabled"),
            (64 * mb, 0, 100, 64 * mb, true, "no base yet"),
            (64 * mb, 200 * mb, 100, 64 * mb, false, "shrank"),
        ];
        for (cur, base, pct, min, want, label) in cases {
            assert_eq!(should_rewrite(cur, base, pct, min), want, "{label}");
        }
    }

    #[test]
    fn rewrite_compacts_and_keeps_writes_made_during_it() {
        let old = MemSink::new();
        let w = writer_on(Box::new(old.clone()));
        let store = Store::new(4);
        for round in 0..20 {
            for k in 0..10 {
                set(&store, &w, &format!("k{k}"), round, None);
            }
        }
        set(&store, &w, "doomed", 1, None);
        set(&store, &w, "expired", 1, Some(NOW));
        // Records still pending at the start would be buffered too (harmless, not compact).
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        w.start_rewrite().unwrap();
        // Between start and snapshot: in both the snapshot and the buffer.
        set(&store, &w, "k0", 100, None);
        del(&store, &w, "doomed");
        let tmp = MemSink::new();
        let mut tmp_w: Box<dyn Sink> = Box::new(tmp.clone());
        write_snapshot(std::slice::from_ref(&store), &(), NOW, tmp_w.as_mut()).unwrap();
        // After the snapshot: only in the buffer.
        set(&store, &w, "k1", 101, Some(Nanos(u64::MAX)));
        del(&store, &w, "k2");
        set(&store, &w, "late", 7, None);
        let installed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&installed);
        let size = w
            .finish_rewrite(
                tmp_w,
                Box::new(move || {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }),
            )
            .unwrap();
        assert!(installed.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(size, tmp.data().len() as u64);
        // From now on appends go to the new file only.
        let old_len = old.data().len();
        set(&store, &w, "after", 9, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        assert_eq!(
            old.data().len(),
            old_len,
            "old file untouched after the switch"
        );
        assert!(tmp.data().len() < old_len / 3, "compacted");
        assert_eq!(sorted(&restore(&tmp.data())), sorted(&store));
        assert_eq!(
            sorted(&restore(&old.data())).len() + 1,
            sorted(&store).len()
        );
        let st = w.stats();
        assert_eq!(
            (st.rewrites, st.rewrite_in_progress, st.base_size),
            (1, false, size)
        );
    }

    #[test]
    fn failed_rewrite_keeps_the_old_file_and_a_second_start_is_refused() {
        let old = MemSink::new();
        let w = writer_on(Box::new(old.clone()));
        let store = Store::new(2);
        set(&store, &w, "a", 1, None);
        let bad = MemSink::new();
        bad.state.lock().fail_writes = u32::MAX;
        let err = rewrite_into(
            &w,
            std::slice::from_ref(&store),
            &(),
            NOW,
            Box::new(bad),
            Box::new(|| Ok(())),
        );
        assert!(err.is_err());
        let st = w.stats();
        assert_eq!((st.last_rewrite_ok, st.rewrite_in_progress), (false, false));
        set(&store, &w, "b", 2, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        assert_eq!(sorted(&restore(&old.data())), sorted(&store));
        // Install failing (e.g. rename refused): old file stays, rewrite over.
        let err = rewrite_into(
            &w,
            std::slice::from_ref(&store),
            &(),
            NOW,
            Box::new(MemSink::new()),
            Box::new(|| Err(io::Error::other("rename failed"))),
        )
        .unwrap_err();
        assert!(err.to_string().contains("rename failed"), "{err}");
        set(&store, &w, "c", 3, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        assert_eq!(sorted(&restore(&old.data())), sorted(&store));
        w.start_rewrite().unwrap();
        assert!(w.start_rewrite().is_err());
        w.abort_rewrite();
    }

    #[test]
    fn an_aborted_rewrite_buffer_never_reaches_the_next_rewrite() {
        let w = writer_on(Box::new(MemSink::new()));
        let store = Store::new(2);
        w.start_rewrite().unwrap();
        set(&store, &w, "x", 1, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        w.abort_rewrite();
        w.start_rewrite().unwrap();
        set(&store, &w, "x", 2, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        w.abort_rewrite();
        set(&store, &w, "x", 3, None);
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        let tmp = MemSink::new();
        rewrite_into(
            &w,
            std::slice::from_ref(&store),
            &(),
            NOW,
            Box::new(tmp.clone()),
            Box::new(|| Ok(())),
        )
        .unwrap();
        assert_eq!(sorted(&restore(&tmp.data())), sorted(&store));
    }

    #[test]
    fn crash_at_any_rewrite_step_leaves_a_complete_aof() {
        let dir = tempfile::tempdir().unwrap();
        let aof = dir.path().join(AOF_FILE);
        let store = Store::new(4);
        let w = writer_on(Box::new(FileSink::open(&aof).unwrap()));
        for round in 0..5 {
            for k in 0..4 {
                set(&store, &w, &format!("k{k}"), round, None);
            }
        }
        del(&store, &w, "k3");
        w.wait_blocking(w.stats().appended, LONG).unwrap();
        let old_bytes = fs::read(&aof).unwrap();
        let report = rewrite(dir.path(), std::slice::from_ref(&store), &(), NOW, &w).unwrap();
        assert_eq!(report.snapshot_records, 3);
        assert!(!dir.path().join(AOF_TMP_FILE).exists());
        set(&store, &w, "after", 1, None);
        w.shutdown().unwrap();
        let new_bytes = fs::read(&aof).unwrap();
        let expected = sorted(&store);
        assert_eq!(sorted(&restore(&new_bytes)), expected, "after the switch");
        let before = {
            let mut e = expected.clone();
            e.retain(|(k, _)| &k[..] != b"after");
            e
        };
        // Before the rename: the old file plus a temporary file cut at any byte (a crash
        // while the snapshot or the buffer was being written, or before its fsync).
        let crash = tempfile::tempdir().unwrap();
        for cut in 0..=new_bytes.len() {
            fs::write(crash.path().join(AOF_FILE), &old_bytes).unwrap();
            fs::write(crash.path().join(AOF_TMP_FILE), &new_bytes[..cut]).unwrap();
            let s = Store::new(4);
            load_file(
                &crash.path().join(AOF_FILE),
                OnCorruptTail::Refuse,
                std::slice::from_ref(&s),
                &(),
                NOW,
            )
            .unwrap();
            assert_eq!(sorted(&s), before, "crash with tmp cut at {cut}");
            remove_stale_tmp(crash.path()).unwrap();
            assert!(!crash.path().join(AOF_TMP_FILE).exists());
        }
        // After the rename, before or after the directory fsync: the new complete file.
        fs::write(crash.path().join(AOF_FILE), &new_bytes).unwrap();
        let s = Store::new(4);
        load_file(
            &crash.path().join(AOF_FILE),
            OnCorruptTail::Refuse,
            std::slice::from_ref(&s),
            &(),
            NOW,
        )
        .unwrap();
        assert_eq!(sorted(&s), expected);
        remove_stale_tmp(crash.path()).unwrap();
    }
}
