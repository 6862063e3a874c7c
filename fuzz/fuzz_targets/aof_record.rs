//! The append-only file's record decoder and its readers, in memory: `decode_payload`,
//! `decode_frame`, the streaming `scan` behind replay and `aof check`, `replay` under both
//! tail policies, and `apply_with` into a store and the policy catalog.
//!
//! Arbitrary bytes rarely pass a CRC-32C, so besides reading the raw input as a file, the
//! input also describes one: a header (good, raw or missing), then pieces that are payloads
//! framed with a correct checksum, raw bytes, zeros (preallocated space), cut at an optional
//! length. Script records are decoded but not restored (that runs their Lua).
//!
//! Invariants: no panic; a decoded payload re-encodes to bytes that decode to the same record,
//! framed or not; the scan accounts for every byte (good prefix, padding, problem at the end
//! of the good prefix), and the good prefix scans again cleanly to the same records; replay's
//! verdicts agree with the scan; applying the records twice leaves the keyspace as applying
//! them once; no single allocation is larger than the input justifies.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use limitkv::clock::Nanos;
use limitkv::persist::check::Report;
use limitkv::persist::record::{self, decode_frame, decode_payload, encode_payload};
use limitkv::persist::replay::scan;
use limitkv::persist::{apply_with, is_script_record, replay, OnCorruptTail, Record};
use limitkv::policy::Registry;
use limitkv::store::{Entry, Store};

#[derive(Debug, Arbitrary)]
enum Header {
    Good,
    Raw([u8; 8]),
    Missing,
}

#[derive(Debug, Arbitrary)]
enum Piece {
    /// A frame around these payload bytes, with a correct checksum.
    Framed(Vec<u8>),
    /// Bytes as they are (a damaged or torn frame).
    Raw(Vec<u8>),
    /// Zeros, as a preallocating writer leaves them.
    Zeros(u16),
}

#[derive(Debug, Arbitrary)]
struct File {
    header: Header,
    pieces: Vec<Piece>,
    cut: Option<u16>,
    now: u64,
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("fuzz inputs are small");
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A decoded record re-encodes to bytes that decode to it again, as a payload and as a frame.
fn round_trip(payload: &[u8]) {
    let Ok(rec) = decode_payload(payload) else {
        return;
    };
    let mut again = Vec::new();
    encode_payload(&rec, &mut again);
    assert_eq!(
        decode_payload(&again).as_ref(),
        Ok(&rec),
        "re-encoded payload decodes differently"
    );
    let framed = record::encode_to_vec(&rec);
    match decode_frame(&framed) {
        Ok(Some((back, len))) => {
            assert_eq!(back, rec, "framed record decodes differently");
            assert_eq!(len, framed.len(), "frame length");
        }
        other => panic!("an encoded frame does not decode: {other:?}"),
    }
}

/// Every live key of every database, sorted.
fn contents(dbs: &[Store], now: Nanos) -> Vec<(usize, Vec<u8>, Entry)> {
    let mut out = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        for s in 0..db.shard_count() {
            let shard = db.lock_shard(s);
            out.extend(
                shard
                    .iter_live(now)
                    .map(|(k, e)| (i, k.to_vec(), e.clone())),
            );
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

fn check_file(bytes: &[u8], now: Nanos) {
    let mut records = Vec::new();
    let s = scan(bytes, |r| records.push(r)).expect("reading a slice cannot fail");
    assert_eq!(
        s.total_bytes,
        bytes.len() as u64,
        "scan must account for every byte"
    );
    assert_eq!(s.records, records.len() as u64);
    assert!(s.good_bytes <= s.total_bytes);
    match &s.problem {
        None => assert_eq!(
            s.good_bytes + s.padding,
            s.total_bytes,
            "a clean file is its good prefix plus padding"
        ),
        Some(p) => {
            assert_eq!(
                p.offset, s.good_bytes,
                "the problem starts where the good prefix ends"
            );
            let _ = p.reason.to_string();
        }
    }
    // The good prefix is a clean file with the same records.
    let mut again = Vec::new();
    let prefix = usize::try_from(s.good_bytes).expect("within the slice");
    let s2 = scan(&bytes[..prefix], |r| again.push(r)).expect("slice");
    assert_eq!(s2.problem, None, "the good prefix has a problem");
    assert_eq!(again, records, "the good prefix holds other records");

    // What `aof check` prints.
    let report = Report {
        records: s.records,
        good_bytes: s.good_bytes,
        file_bytes: s.total_bytes,
        padding: s.padding,
        problem: s.problem.clone(),
        backup: None,
    };
    let _ = report.to_string();

    // Replay's verdicts follow the scan.
    let refuse = replay(bytes, OnCorruptTail::Refuse, |_| {});
    assert_eq!(
        refuse.is_ok(),
        s.problem.is_none(),
        "Refuse accepts a damaged file"
    );
    let truncate = replay(bytes, OnCorruptTail::Truncate, |_| {});
    match (&truncate, &s.problem) {
        (Ok(r), Some(p)) => {
            assert!(p.tail, "Truncate accepted damage that is not a tail");
            assert_eq!(r.truncated_at, Some(p.offset));
        }
        (Ok(r), None) => assert_eq!(r.truncated_at, None),
        (Err(e), Some(_)) => {
            let _ = e.to_string();
        }
        (Err(e), None) => panic!("Truncate refused a clean file: {e}"),
    }

    // Applying is idempotent.
    let dbs = [Store::new(2), Store::new(2)];
    let catalog = Registry::default();
    let apply_all = |recs: &[Record]| {
        for r in recs {
            if !is_script_record(r) {
                if let Err(e) = apply_with(&dbs, &catalog, r.clone(), now) {
                    let _ = e.to_string();
                }
            }
        }
    };
    apply_all(&records);
    let once = contents(&dbs, now);
    apply_all(&records);
    assert_eq!(
        contents(&dbs, now),
        once,
        "applying twice differs from once"
    );
}

fuzz_target!(|data: &[u8]| {
    let cap = 64 * data.len() + (1 << 20);
    limitkv_fuzz::reset_peak();

    // The raw input as a payload, a frame and a file.
    round_trip(data);
    let _ = decode_frame(data);
    check_file(data, Nanos(1_767_225_600_000_000_000));
    limitkv_fuzz::assert_peak_at_most(cap, "raw input");

    // The input as a description of a file with valid checksums.
    let Ok(file) = File::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut bytes = Vec::new();
    match file.header {
        Header::Good => record::encode_header(&mut bytes),
        Header::Raw(h) => bytes.extend_from_slice(&h),
        Header::Missing => {}
    }
    for piece in &file.pieces {
        match piece {
            Piece::Framed(p) => {
                round_trip(p);
                frame(p, &mut bytes);
            }
            Piece::Raw(b) => bytes.extend_from_slice(b),
            Piece::Zeros(n) => bytes.resize(bytes.len() + usize::from(*n % 4096), 0),
        }
    }
    if let Some(cut) = file.cut {
        bytes.truncate(usize::from(cut));
    }
    limitkv_fuzz::reset_peak();
    check_file(&bytes, Nanos(file.now));
    limitkv_fuzz::assert_peak_at_most(64 * bytes.len() + (1 << 20), "framed input");
});
