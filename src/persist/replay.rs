//! Reading an AOF back: a streaming scan that stops at the first problem, the torn-tail policy,
//! and applying records to a [`Store`].
//!
//! Replay never reads a clock: the caller passes `now` once, and a `Put` whose absolute expiry
//! is at or before it is treated as a delete (the key expired while the server was down).
//! Memory stays bounded by one record; a declared length is never allocated up front.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::path::Path;

use crate::clock::Nanos;
use crate::persist::record::{self, CorruptReason, Record, FRAME_OVERHEAD, HEADER_LEN};
use crate::persist::Catalog;
use crate::persist::PersistError;
use crate::store::{Entry, Store};

/// What to do when the file ends in a torn or damaged tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCorruptTail {
    /// Refuse to load (the default, like Redis's `aof-load-truncated no`).
    #[default]
    Refuse,
    /// Drop the damaged tail and load everything before it. Damage followed by valid-looking
    /// data is still refused.
    Truncate,
}

/// The first problem a scan met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Offset of the header or frame that failed.
    pub offset: u64,
    /// What is wrong.
    pub reason: CorruptReason,
    /// True when it looks like a torn tail: the file ends inside the bad frame, or only zero
    /// bytes follow it.
    pub tail: bool,
}

/// The result of scanning a file (or stream) from the start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Good records read.
    pub records: u64,
    /// Length of the valid prefix (header plus good frames).
    pub good_bytes: u64,
    /// Every byte read, including any damaged tail.
    pub total_bytes: u64,
    /// Zero bytes from the end of the valid prefix to the end of the file: space the writer
    /// preallocated ([`crate::persist::writer::PREALLOCATE`]), not damage.
    pub padding: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Scans `reader` from its first byte, calling `f` on each good record in order, and stops at
/// the first problem. Only read errors are `Err`; damage is reported in [`Scan::problem`].
/// An empty stream is a valid empty file.
pub fn scan<R: Read>(mut reader: R, mut f: impl FnMut(Record)) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let mut head = Vec::with_capacity(HEADER_LEN);
    read_up_to(&mut reader, &mut head, HEADER_LEN as u64)?;
    scan.total_bytes = head.len() as u64;
    if head.is_empty() {
        return Ok(scan);
    }
    if let Err(reason) = record::check_header(&head) {
        let rest = drain(&mut reader)?;
        scan.total_bytes += rest.len;
        if rest.all_zero && head.iter().all(|&b| b == 0) {
            // Preallocated before the header reached the disk: an empty file.
            scan.padding = scan.total_bytes;
            return Ok(scan);
        }
        let tail = matches!(reason, CorruptReason::Incomplete { .. });
        scan.problem = Some(Problem {
            offset: 0,
            reason,
            tail,
        });
        return Ok(scan);
    }
    scan.good_bytes = HEADER_LEN as u64;
    let mut frame = Vec::new();
    loop {
        frame.clear();
        let offset = scan.good_bytes;
        read_up_to(&mut reader, &mut frame, FRAME_OVERHEAD as u64)?;
        if frame.is_empty() {
            return Ok(scan);
        }
        let outcome = match record::frame_header(&frame) {
            None => Err((
                CorruptReason::Incomplete {
                    needed: FRAME_OVERHEAD as u64,
                    available: frame.len() as u64,
                },
                FRAME_OVERHEAD as u64,
            )),
            Some((len, stored)) => {
                let total = FRAME_OVERHEAD as u64 + u64::from(len);
                match record::check_len(len) {
                    Err(reason) => Err((reason, total)),
                    Ok(()) => {
                        read_up_to(&mut reader, &mut frame, u64::from(len))?;
                        if (frame.len() as u64) < total {
                            Err((
                                CorruptReason::Incomplete {
                                    needed: total,
                                    available: frame.len() as u64,
                                },
                                total,
                            ))
                        } else {
                            let payload = &frame[FRAME_OVERHEAD..];
                            record::verify(len, stored, payload)
                                .and_then(|()| record::decode_payload(payload))
                                .map_err(|r| (r, total))
                        }
                    }
                }
            }
        };
        match outcome {
            Ok(rec) => {
                scan.records += 1;
                scan.good_bytes += frame.len() as u64;
                scan.total_bytes = scan.good_bytes;
                f(rec);
            }
            Err((reason, frame_total)) => {
                let rest = drain(&mut reader)?;
                let remaining = frame.len() as u64 + rest.len;
                scan.total_bytes = offset + remaining;
                if rest.all_zero && frame.iter().all(|&b| b == 0) {
                    // Zeros from a record boundary to the end: preallocated space. No record
                    // starts with zeros (the checksum covers the length).
                    scan.padding = remaining;
                    return Ok(scan);
                }
                // A damaged frame followed by nothing but zeros is a torn write into
                // preallocated space. Zeros at a frame boundary followed by data are one too:
                // the writer only ever leaves zeros after its last frame, and writes nothing
                // past an unsynced batch, so whatever follows them was never made durable
                // (part of a batch whose start did not reach the disk, or bytes added later).
                let tail = matches!(reason, CorruptReason::Incomplete { .. })
                    || remaining <= frame_total
                    || rest.all_zero
                    || frame.iter().all(|&b| b == 0);
                scan.problem = Some(Problem {
                    offset,
                    reason,
                    tail,
                });
                return Ok(scan);
            }
        }
    }
}

/// Appends up to `n` more bytes from `r` to `buf`, stopping early only at end of stream.
fn read_up_to<R: Read>(r: &mut R, buf: &mut Vec<u8>, n: u64) -> io::Result<()> {
    // `take` + `read_to_end` grows the buffer as bytes arrive, so a huge declared length on
    // a short file never allocates the declared size.
    r.by_ref().take(n).read_to_end(buf).map(|_| ())
}

struct Rest {
    len: u64,
    all_zero: bool,
}

fn drain<R: Read>(r: &mut R) -> io::Result<Rest> {
    let mut rest = Rest {
        len: 0,
        all_zero: true,
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(rest),
            Ok(n) => {
                rest.len += n as u64;
                rest.all_zero &= chunk[..n].iter().all(|&b| b == 0);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Records applied.
    pub records: u64,
    /// Length of the valid prefix; the writer appends from here.
    pub good_bytes: u64,
    /// Preallocated zeros after it (see [`Scan::padding`]).
    pub padding: u64,
    /// Set when a torn tail was dropped: the offset it started at (equals `good_bytes`).
    pub truncated_at: Option<u64>,
    /// The problem that was tolerated, for the startup log.
    pub problem: Option<Problem>,
}

/// Replays `reader`, calling `f` on each record, under the tail policy `mode`.
///
/// Any problem is `Err(PersistError::Corrupt)` under [`OnCorruptTail::Refuse`]; under
/// [`OnCorruptTail::Truncate`] a tail problem is reported in `truncated_at` (the caller must
/// cut the file there before appending; [`load_file`] does) and damage with data after it is
/// still an error. Records before the problem have already been passed to `f` either way.
pub fn replay<R: Read>(
    reader: R,
    mode: OnCorruptTail,
    f: impl FnMut(Record),
) -> Result<ReplayReport, PersistError> {
    let scan = scan(reader, f).map_err(|e| PersistError::io("reading the AOF", e))?;
    let mut report = ReplayReport {
        records: scan.records,
        good_bytes: scan.good_bytes,
        padding: scan.padding,
        truncated_at: None,
        problem: None,
    };
    if let Some(p) = scan.problem {
        let fatal_anyway = matches!(
            p.reason,
            CorruptReason::BadMagic | CorruptReason::UnsupportedVersion(_)
        );
        if mode == OnCorruptTail::Refuse || !p.tail || fatal_anyway {
            return Err(PersistError::Corrupt {
                offset: p.offset,
                reason: p.reason,
                tail: p.tail && !fatal_anyway,
            });
        }
        report.truncated_at = Some(p.offset);
        report.problem = Some(p);
    }
    Ok(report)
}

/// The database `db` of `dbs`, or an error naming it when the configuration has fewer.
fn db_of(dbs: &[Store], db: u32) -> Result<&Store, PersistError> {
    dbs.get(db as usize).ok_or_else(|| {
        PersistError::Config(format!(
            "the AOF uses database {db} but only {} are configured (raise `databases`)",
            dbs.len()
        ))
    })
}

/// Applies one record: catalog records to `catalog`, the others to `dbs` (see [`apply`]).
pub fn apply_with(
    dbs: &[Store],
    catalog: &dyn Catalog,
    record: Record,
    now: Nanos,
) -> Result<(), PersistError> {
    if record.is_catalog() {
        catalog.apply(record, now)
    } else {
        apply(dbs, record, now)
    }
}

/// Applies one record to the databases `dbs` as of `now`. Idempotent: applying a record twice
/// leaves them as applying it once. A `Put` already expired at `now` removes the key instead.
/// A catalog record is refused (use [`apply_with`]). Script and function records are not
/// keyspace effects: they are ignored here (see [`is_script_record`] and [`load_file_with`]).
pub fn apply(dbs: &[Store], record: Record, now: Nanos) -> Result<(), PersistError> {
    match record {
        Record::Put {
            db,
            key,
            value,
            expires_at,
        } => {
            let entry = Entry::with_expiry(value, expires_at);
            let store = db_of(dbs, db)?;
            store.with_shard(&key, |sh| {
                let live = !entry.is_expired(now);
                let changed = if live {
                    sh.insert(&key, entry);
                    true
                } else {
                    sh.remove(&key, now).is_some()
                };
                // A replica applying its master's stream signals WATCH as a local write does,
                // under the same lock, so an EXEC either sees the change and aborts, or runs
                // before it.
                if changed && store.watchers.active() {
                    store.watchers.touch(&key, live);
                }
            });
        }
        Record::Del { db, key } => {
            let store = db_of(dbs, db)?;
            store.with_shard(&key, |sh| {
                if sh.remove(&key, now).is_some() && store.watchers.active() {
                    store.watchers.touch(&key, false);
                }
            });
        }
        Record::FlushDb { db } => clear_touching(db_of(dbs, db)?, now),
        Record::FlushAll => dbs.iter().for_each(|s| clear_touching(s, now)),
        Record::Script { .. }
        | Record::FunctionLibrary { .. }
        | Record::FunctionDelete { .. }
        | Record::ScriptsFlush { .. } => {}
        catalog => return ().apply(catalog, now),
    }
    Ok(())
}

/// Empties `store`; a watched key that held a value is signalled (as `FLUSHDB` does).
fn clear_touching(store: &Store, now: Nanos) {
    if !store.watchers.active() {
        store.clear();
        return;
    }
    let mut g = store.lock_all();
    let live: Vec<_> = store
        .watchers
        .keys()
        .into_iter()
        .filter(|k| g.shard(k).get(k, now).is_some())
        .collect();
    g.shards().for_each(|s| s.clear());
    for k in &live {
        store.watchers.touch(k, false);
    }
}

/// True for the records that restore the script cache and function libraries rather than
/// keys.
pub fn is_script_record(record: &Record) -> bool {
    matches!(
        record,
        Record::Script { .. }
            | Record::FunctionLibrary { .. }
            | Record::FunctionDelete { .. }
            | Record::ScriptsFlush { .. }
    )
}

/// Loads `path` into `dbs` and `catalog` as of `now`. A missing file is an empty AOF. Under
/// [`OnCorruptTail::Truncate`] a torn tail is cut off on disk (and the file fsynced) so
/// that appends continue after the last good record.
pub fn load_file(
    path: &Path,
    mode: OnCorruptTail,
    dbs: &[Store],
    catalog: &dyn Catalog,
    now: Nanos,
) -> Result<ReplayReport, PersistError> {
    load_file_with(path, mode, dbs, catalog, now, &mut |_| Ok(()))
}

/// [`load_file`], passing every script and function record (in file order) to `scripts`, which
/// restores them; an error it returns stops the load.
pub fn load_file_with(
    path: &Path,
    mode: OnCorruptTail,
    dbs: &[Store],
    catalog: &dyn Catalog,
    now: Nanos,
    scripts: &mut dyn FnMut(Record) -> Result<(), PersistError>,
) -> Result<ReplayReport, PersistError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(ReplayReport::default()),
        Err(e) => return Err(PersistError::io(format!("opening {}", path.display()), e)),
    };
    let mut applied = Ok(());
    let report = replay(io::BufReader::new(file), mode, |r| {
        if applied.is_ok() {
            applied = if is_script_record(&r) {
                scripts(r)
            } else {
                apply_with(dbs, catalog, r, now)
            };
        }
    })?;
    applied?;
    if let Some(at) = report.truncated_at {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(at).and_then(|()| f.sync_all()))
            .map_err(|e| PersistError::io(format!("truncating {}", path.display()), e));
        f?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::{encode, header, MAX_PAYLOAD};
    use crate::store::Value;
    use bytes::Bytes;

    fn put(k: &str, v: i64, exp: Option<u64>) -> Record {
        Record::Put {
            db: 0,
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Value::Int(v),
            expires_at: exp.map(Nanos),
        }
    }

    fn file_of(records: &[Record]) -> Vec<u8> {
        let mut v = header().to_vec();
        for r in records {
            encode(r, &mut v);
        }
        v
    }

    const PREALLOCATE_FOR_TEST: usize = crate::persist::writer::PREALLOCATE as usize;

    fn collect(bytes: &[u8]) -> (Vec<Record>, Scan) {
        let mut out = Vec::new();
        let s = scan(bytes, |r| out.push(r)).unwrap();
        (out, s)
    }

    #[test]
    fn empty_stream_is_an_empty_aof() {
        let (recs, s) = collect(&[]);
        assert!(recs.is_empty());
        assert_eq!(s, Scan::default());
    }

    #[test]
    fn scan_reads_every_record_in_order() {
        let recs = vec![
            put("a", 1, None),
            Record::Del {
                db: 0,
                key: "a".into(),
            },
            Record::FlushAll,
        ];
        let bytes = file_of(&recs);
        let (got, s) = collect(&bytes);
        assert_eq!(got, recs);
        assert_eq!(s.good_bytes, bytes.len() as u64);
        assert_eq!(s.problem, None);
    }

    #[test]
    fn torn_tail_at_every_offset_is_incomplete_at_the_frame_start() {
        let recs = vec![put("first", 1, Some(9)), put("second", 2, None)];
        let bytes = file_of(&recs);
        let second_at = file_of(&recs[..1]).len();
        for cut in second_at + 1..bytes.len() {
            let (got, s) = collect(&bytes[..cut]);
            assert_eq!(got, recs[..1], "cut {cut}");
            let p = s.problem.expect("problem");
            assert_eq!(p.offset, second_at as u64, "cut {cut}");
            assert!(
                matches!(p.reason, CorruptReason::Incomplete { .. }),
                "cut {cut}: {:?}",
                p.reason
            );
            assert!(p.tail, "cut {cut}");
            assert_eq!(s.good_bytes, second_at as u64, "cut {cut}");
        }
        for cut in 1..HEADER_LEN {
            let p = collect(&bytes[..cut]).1.problem.expect("torn header");
            assert_eq!((p.offset, p.tail), (0, true), "header cut {cut}");
        }
    }

    #[test]
    fn flipped_bit_anywhere_in_a_frame_is_detected_at_its_offset() {
        let recs = vec![put("a", 1, None), put("bb", 2, Some(77)), put("c", 3, None)];
        let bytes = file_of(&recs);
        let start = file_of(&recs[..1]).len();
        let end = file_of(&recs[..2]).len();
        for i in start..end {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let (got, s) = collect(&b);
                assert_eq!(got, recs[..1], "byte {i} bit {bit}");
                let p = s.problem.expect("problem");
                assert_eq!(p.offset, start as u64, "byte {i} bit {bit}");
                // A flip in the length may make the frame run past the end (incomplete or
                // too large); anywhere else it is a checksum mismatch.
                if i >= start + 4 {
                    assert!(
                        matches!(p.reason, CorruptReason::ChecksumMismatch { .. }),
                        "byte {i} bit {bit}: {:?}",
                        p.reason
                    );
                }
            }
        }
    }

    #[test]
    fn absurd_length_is_corruption_not_an_allocation() {
        let mut b = header().to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        let p = collect(&b).1.problem.unwrap();
        assert_eq!(p.reason, CorruptReason::LengthTooLarge(u32::MAX));
        // Under the cap but far past the end: incomplete, read without allocating it.
        let mut b = header().to_vec();
        b.extend_from_slice(&MAX_PAYLOAD.to_le_bytes());
        b.extend_from_slice(&[0; 20]);
        let p = collect(&b).1.problem.unwrap();
        assert!(matches!(p.reason, CorruptReason::Incomplete { .. }));
    }

    #[test]
    fn zeros_after_a_record_are_preallocated_space_not_a_record_or_damage() {
        let mut b = file_of(&[put("a", 1, None)]);
        let good = b.len() as u64;
        for zeros in [1, 7, 8, 9, 4096, 200_000] {
            let mut f = b.clone();
            f.resize(b.len() + zeros, 0);
            let (recs, s) = collect(&f);
            assert_eq!(recs, vec![put("a", 1, None)], "{zeros}");
            assert_eq!(s.problem, None, "{zeros}");
            assert_eq!((s.good_bytes, s.padding), (good, zeros as u64), "{zeros}");
            assert_eq!(s.total_bytes, f.len() as u64);
            let rep = replay(&f[..], OnCorruptTail::Refuse, |_| {}).unwrap();
            assert_eq!(
                (rep.good_bytes, rep.padding, rep.truncated_at),
                (good, zeros as u64, None)
            );
        }
        b.clear();
        b.resize(PREALLOCATE_FOR_TEST, 0);
        let s = collect(&b).1;
        assert_eq!(
            (s.good_bytes, s.padding, s.problem),
            (0, b.len() as u64, None)
        );
    }

    #[test]
    fn a_torn_record_in_preallocated_space_is_a_tail() {
        let recs = vec![put("a", 1, None), put("b", 2, None)];
        let full = file_of(&recs);
        let at = file_of(&recs[..1]).len();
        // The second record's write reached the disk in part: its first bytes only.
        let mut f = file_of(&recs[..1]);
        f.resize(full.len() + 4096, 0);
        f[at..at + 10].copy_from_slice(&full[at..at + 10]);
        let p = collect(&f).1.problem.expect("damage");
        assert!(matches!(p.reason, CorruptReason::ChecksumMismatch { .. }));
        assert_eq!((p.offset, p.tail), (at as u64, true));
        let rep = replay(&f[..], OnCorruptTail::Truncate, |_| {}).unwrap();
        assert_eq!(rep.truncated_at, Some(at as u64));
        assert!(replay(&f[..], OnCorruptTail::Refuse, |_| {}).is_err());
        // Zeros and then data at a record boundary (the write's first sector lost, its
        // payload there; or bytes appended to a killed server's file) are not space but a
        // torn tail: refused by default, cut at the zeros with truncation.
        let mut f = full.clone();
        f[at..at + FRAME_OVERHEAD].fill(0);
        f.resize(f.len() + 4096, 0);
        let p = collect(&f).1.problem.expect("damage");
        assert_eq!((p.offset, p.tail), (at as u64, true));
        assert!(replay(&f[..], OnCorruptTail::Refuse, |_| {}).is_err());
        let rep = replay(&f[..], OnCorruptTail::Truncate, |_| {}).unwrap();
        assert_eq!((rep.records, rep.truncated_at), (1, Some(at as u64)));
        let mut f = file_of(&recs);
        f.resize(f.len() + 4096, 0);
        f.extend_from_slice(b"garbage");
        let p = collect(&f).1.problem.expect("damage");
        assert_eq!((p.offset, p.tail), (full.len() as u64, true));
        // Damage that does not start with zeros, followed by data, is still not a tail.
        let mut f = full.clone();
        f[at + FRAME_OVERHEAD] ^= 0xff;
        f.extend_from_slice(&full[at..]);
        let p = collect(&f).1.problem.expect("damage");
        assert_eq!((p.offset, p.tail), (at as u64, false));
    }

    #[test]
    fn damage_followed_by_records_is_not_a_tail_and_truncate_still_refuses() {
        let recs = vec![put("a", 1, None), put("b", 2, None), put("c", 3, None)];
        let mut b = file_of(&recs);
        let at = file_of(&recs[..1]).len();
        b[at + 9] ^= 0xff;
        let err = replay(&b[..], OnCorruptTail::Truncate, |_| {}).unwrap_err();
        match err {
            PersistError::Corrupt { offset, tail, .. } => {
                assert_eq!((offset, tail), (at as u64, false))
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn refuse_names_the_offset_and_truncate_reports_it() {
        let recs = vec![put("a", 1, None), put("b", 2, None)];
        let b = file_of(&recs);
        let torn = &b[..b.len() - 3];
        let at = file_of(&recs[..1]).len() as u64;
        let err = replay(torn, OnCorruptTail::Refuse, |_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("AOF is corrupt at offset {at}: incomplete record")),
            "{msg}"
        );
        assert!(msg.contains("--aof-load-truncated yes"), "{msg}");
        let mut n = 0;
        let rep = replay(torn, OnCorruptTail::Truncate, |_| n += 1).unwrap();
        assert_eq!((n, rep.records, rep.truncated_at), (1, 1, Some(at)));
        assert_eq!(rep.good_bytes, at);
    }

    #[test]
    fn bad_magic_and_newer_version_are_refused_even_when_truncating() {
        let err = replay(&b"REDIS0011xxxxxx"[..], OnCorruptTail::Truncate, |_| {}).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let mut b = header().to_vec();
        b[6] = 9;
        let err = replay(&b[..], OnCorruptTail::Truncate, |_| {}).unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");
    }

    #[test]
    fn apply_is_idempotent_and_drops_keys_that_expired_while_down() {
        let store = Store::new(4);
        let now = Nanos(100);
        let recs = [
            put("live", 5, Some(200)),
            put("gone", 1, None),
            put("gone", 2, Some(100)),
            put("x", 1, None),
            Record::Del {
                db: 0,
                key: "x".into(),
            },
        ];
        for _ in 0..2 {
            for r in recs.iter().cloned() {
                apply(std::slice::from_ref(&store), r, now).unwrap();
            }
        }
        assert_eq!(store.len(), 1);
        store.with_shard(b"live", |sh| {
            let e = sh.get(b"live", now).expect("live key");
            assert_eq!(e.value, Value::Int(5));
            assert_eq!(e.expires_at(), Some(Nanos(200)));
        });
        apply(std::slice::from_ref(&store), Record::FlushAll, now).unwrap();
        assert!(store.is_empty());
    }

    #[test]
    fn load_file_truncates_a_torn_tail_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let recs = vec![put("a", 1, None), put("b", 2, None)];
        let b = file_of(&recs);
        std::fs::write(&path, &b[..b.len() - 1]).unwrap();
        let store = Store::new(2);
        assert!(load_file(
            &path,
            OnCorruptTail::Refuse,
            std::slice::from_ref(&store),
            &(),
            Nanos(0)
        )
        .is_err());
        let store = Store::new(2);
        let rep = load_file(
            &path,
            OnCorruptTail::Truncate,
            std::slice::from_ref(&store),
            &(),
            Nanos(0),
        )
        .unwrap();
        let at = file_of(&recs[..1]).len() as u64;
        assert_eq!(rep.truncated_at, Some(at));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), at);
        let store = Store::new(2);
        let rep = load_file(
            &path,
            OnCorruptTail::Refuse,
            std::slice::from_ref(&store),
            &(),
            Nanos(0),
        )
        .unwrap();
        assert_eq!((rep.records, store.len()), (1, 1));
        let missing = dir.path().join("nope.aof");
        let rep = load_file(
            &missing,
            OnCorruptTail::Refuse,
            std::slice::from_ref(&store),
            &(),
            Nanos(0),
        )
        .unwrap();
        assert_eq!(rep, ReplayReport::default());
    }

    /// One step of a simulated live run.
    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, i64, Option<u64>),
        Incr(u8),
        Take(u8, u64),
        Del(u8),
        FlushAll,
        Advance(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6, any::<i64>(), proptest::option::of(1u64..50))
                .prop_map(|(k, v, t)| Op::Set(k, v, t)),
            (0u8..6).prop_map(Op::Incr),
            (0u8..6, 1u64..30).prop_map(|(k, p)| Op::Take(k, p)),
            (0u8..6).prop_map(Op::Del),
            Just(Op::FlushAll),
            (0u64..20).prop_map(Op::Advance),
        ]
    }

    fn live(store: &Store, now: Nanos) -> Vec<(Bytes, Entry)> {
        let mut v: Vec<_> = (0..store.shard_count())
            .flat_map(|i| {
                let sh = store.lock_shard(i);
                sh.iter_live(now)
                    .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    proptest::proptest! {
        /// A stand-in dispatcher logs the effect of each write; replaying the log later gives
        /// the store the live run ended with.
        #[test]
        fn replay_of_a_recorded_run_equals_the_live_store(ops in proptest::collection::vec(op(), 0..60)) {
            let store = Store::new(4);
            let mut log = header().to_vec();
            let mut now = Nanos(1_000);
            for op in ops {
                let rec = match op {
                    Op::Advance(n) => { now = now.saturating_add(Nanos(n)); None }
                    Op::FlushAll => { store.clear(); Some(Record::FlushAll) }
                    Op::Del(k) => store.with_shard(&[k], |sh| {
                        sh.remove(&[k], now).map(|_| Record::Del { db: 0, key: Bytes::copy_from_slice(&[k]) })
                    }),
                    Op::Set(k, v, ttl) => store.with_shard(&[k], |sh| {
                        let e = Entry::with_expiry(Value::Int(v), ttl.map(|t| now.saturating_add(Nanos(t))));
                        sh.insert(&[k], e.clone());
                        Some(Record::Put { db: 0, key: Bytes::copy_from_slice(&[k]), expires_at: e.expires_at(), value: e.value })
                    }),
                    Op::Incr(k) => store.with_shard(&[k], |sh| {
                        let (n, exp) = match sh.get_mut(&[k], now) {
                            Some(e) => match e.value {
                                Value::Int(n) => (n.checked_add(1)?, e.expires_at()),
                                _ => return None,
                            },
                            None => (1, None),
                        };
                        sh.insert(&[k], Entry::with_expiry(Value::Int(n), exp));
                        Some(Record::Put { db: 0, key: Bytes::copy_from_slice(&[k]), value: Value::Int(n), expires_at: exp })
                    }),
                    Op::Take(k, period) => store.with_shard(&[k], |sh| {
                        let tat = match sh.get_mut(&[k], now) {
                            Some(Entry { value: Value::Gcra(tat), .. }) => (*tat).max(now),
                            Some(_) => return None,
                            None => now,
                        };
                        let tat = tat.saturating_add(Nanos(period));
                        let value = Value::Gcra(tat);
                        sh.insert(&[k], Entry::with_expiry(value.clone(), Some(tat)));
                        Some(Record::Put { db: 0, key: Bytes::copy_from_slice(&[k]), value, expires_at: Some(tat) })
                    }),
                };
                if let Some(r) = rec {
                    encode(&r, &mut log);
                }
            }
            let restored = Store::new(8);
            let rep = replay(&log[..], OnCorruptTail::Refuse, |r| {
                apply(std::slice::from_ref(&restored), r, now).unwrap()
            })
            .unwrap();
            proptest::prop_assert_eq!(rep.good_bytes, log.len() as u64);
            proptest::prop_assert_eq!(live(&restored, now), live(&store, now));
        }
    }
}
