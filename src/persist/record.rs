//! AOF records and their byte encoding (the contract is `docs/aof-format.md`).
//!
//! A record is an *effect*: the full state of a key after a write, with absolute times, so
//! replaying it never depends on when replay runs and applying it twice equals applying it
//! once. Everything here is pure (no I/O, no clock): `encode` appends bytes to a `Vec`, and
//! [`decode_frame`] / [`decode_payload`] turn bytes back into records or name the exact
//! problem. Depends only on [`crate::store::Value`] and [`crate::clock::Nanos`].

use std::fmt;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::breaker::BreakerState;
use crate::limiter::cost::{Amount, CostState};
use crate::limiter::gcra::GcraState;
use crate::limiter::lease::{Lease, LeaseId, LeaseState};
use crate::limiter::quota::{Period, QuotaState};
use crate::limiter::window::WindowState;
use crate::policy::reserve::{Charge, Reservation};
use crate::store::entry::{HashValue, SetValue};
use crate::store::zset::ZSet;
use crate::store::Value;

/// The first six bytes of every AOF file.
pub const MAGIC: [u8; 6] = *b"LKVAOF";
/// The format version this build writes and the highest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header length: magic plus a little-endian `u16` version.
pub const HEADER_LEN: usize = 8;
/// Frame overhead: `len u32 LE` plus `crc32c u32 LE`.
pub const FRAME_OVERHEAD: usize = 8;
/// The largest payload a frame may declare: a 512 MiB key or value plus room for the rest.
/// A larger length is corruption, never an allocation of that size.
pub const MAX_PAYLOAD: u32 = 512 * 1024 * 1024 + 64 * 1024;

/// Operation bytes (the first payload byte). Unknown values are rejected; new kinds
/// (policies, scripts) take fresh numbers and bump nothing else.
mod op {
    pub const PUT: u8 = 1;
    pub const DEL: u8 = 2;
    pub const FLUSH_ALL: u8 = 3;
    pub const FLUSH_DB: u8 = 4;
    pub const SCRIPT: u8 = 5;
    pub const FUNCTION_LIBRARY: u8 = 6;
    pub const FUNCTION_DELETE: u8 = 7;
    pub const SCRIPTS_FLUSH: u8 = 8;
    // 5..=8 belong to scripts; 10..=19 to policies.
    pub const POLICY_SET: u8 = 10;
    pub const POLICY_DEL: u8 = 11;
    pub const OVERRIDE_SET: u8 = 12;
    pub const OVERRIDE_DEL: u8 = 13;
    pub const ACCESS: u8 = 14;
    pub const SUSPEND: u8 = 15;
    pub const UNSUSPEND: u8 = 16;
}

/// Selector bytes of [`Record::ScriptsFlush`].
mod flush_target {
    pub const SCRIPTS: u8 = 0;
    pub const FUNCTIONS: u8 = 1;
}

/// What a [`Record::ScriptsFlush`] empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptsFlushTarget {
    /// The `EVAL` script cache (`SCRIPT FLUSH`).
    Scripts,
    /// Every function library (`FUNCTION FLUSH`).
    Functions,
}

/// The most words a policy or override record may declare (a definition is a command's
/// arguments, bounded by `max-multibulk-len`); a larger count is corruption.
const MAX_DECODED_WORDS: u32 = 1 << 20;

/// Value tag bytes (the first byte of an encoded [`Value`]).
mod tag {
    pub const STR: u8 = 1;
    pub const INT: u8 = 2;
    pub const GCRA: u8 = 3;
    pub const WINDOW: u8 = 4;
    pub const QUOTA: u8 = 5;
    pub const COST: u8 = 6;
    pub const LEASE: u8 = 7;
    pub const BREAKER: u8 = 8;
    pub const LIST: u8 = 9;
    pub const HASH: u8 = 10;
    pub const SET: u8 = 11;
    pub const ZSET: u8 = 12;
    pub const RESERVATION: u8 = 13;
    pub const STREAM: u8 = 20;
}

/// Version byte that follows a limiter-state tag, so one family's state layout can change
/// without a new file format version.
const GCRA_STATE_VERSION: u8 = 1;
/// State version of a [`Value::Gcra`] that records its emission interval (a policy rule's).
const GCRA_STATE_VERSION_EMISSION: u8 = 2;
/// State version of [`Value::Window`].
const WINDOW_STATE_VERSION: u8 = 1;
/// State version of [`Value::Quota`].
const QUOTA_STATE_VERSION: u8 = 1;
/// State version of [`Value::Cost`].
const COST_STATE_VERSION: u8 = 1;
/// State version of [`Value::Lease`].
const LEASE_STATE_VERSION: u8 = 1;
/// State version of [`Value::Breaker`].
const BREAKER_STATE_VERSION: u8 = 1;

/// Layout version of [`Value::List`] (after its tag, like a limiter state version).
const LIST_VERSION: u8 = 1;
/// Layout version of [`Value::Hash`].
const HASH_VERSION: u8 = 1;
/// Layout version of [`Value::Set`].
const SET_VERSION: u8 = 1;
/// Layout version of [`Value::ZSet`].
const ZSET_VERSION: u8 = 1;
/// Layout version of [`Value::Reservation`].
const RESERVATION_VERSION: u8 = 1;
/// Encoded size of one reservation charge at least: key length `u32` and units `i64`.
const MIN_CHARGE: usize = 12;

/// The fewest bytes one encoded element takes: a list or set element is at least its `u32`
/// length, a hash field/value pair two lengths, a sorted set entry a score and a length. A
/// declared count is checked against the bytes left before anything is reserved, so a corrupt
/// count never allocates more than the payload could fill.
const MIN_LIST_ELEMENT: usize = 4;
const MIN_HASH_PAIR: usize = 8;
const MIN_SET_MEMBER: usize = 4;
const MIN_ZSET_ENTRY: usize = 12;
/// Capacity reserved up front for a decoded collection; it grows past this as elements are
/// actually read.
const MAX_RESERVE: usize = 1024;

/// Sub-variant bytes of [`crate::limiter::cost::CostState`].
mod cost_kind {
    pub const CALENDAR: u8 = 0;
    pub const ROLLING: u8 = 1;
}

/// Sub-variant bytes of [`crate::limiter::breaker::BreakerState`].
mod breaker_kind {
    pub const CLOSED: u8 = 0;
    pub const OPEN: u8 = 1;
    pub const HALF_OPEN: u8 = 2;
}

/// The most leases a decoded LEASE state may declare. The limiter never holds more than
/// [`crate::limiter::lease::MAX_LIMIT`] live leases per key (and writes only live ones), so a
/// larger count is corruption, never an allocation of that size.
const MAX_DECODED_LEASES: u32 = 100_000;
const _: () = assert!(crate::limiter::lease::MAX_LIMIT < MAX_DECODED_LEASES as u64);
/// Encoded size of one lease: `id u64` and `expires_at u64`.
const LEASE_LEN: usize = 16;

/// One logged effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `key` now holds `value`, expiring at `expires_at` (absolute; `None` = never).
    Put {
        /// The database (`SELECT` index).
        db: u32,
        /// The key.
        key: Bytes,
        /// Its complete new value (an INCR logs the resulting integer; a GCRA take its TAT).
        value: Value,
        /// Absolute expiry instant.
        expires_at: Option<Nanos>,
    },
    /// `key` no longer exists.
    Del {
        /// The database.
        db: u32,
        /// The key.
        key: Bytes,
    },
    /// Every key of one database was removed.
    FlushDb {
        /// The database.
        db: u32,
    },
    /// Every key of every database was removed.
    FlushAll,
    /// A Lua script entered the script cache (`SCRIPT LOAD`, or `EVAL` of a new body); replay
    /// loads it again so `EVALSHA` keeps working after a restart. Scripts are never re-run.
    Script {
        /// The script body as the client sent it (shebang line included).
        body: Bytes,
    },
    /// A function library was loaded or replaced (`FUNCTION LOAD [REPLACE]`).
    FunctionLibrary {
        /// The library code, `#!lua name=...` line included.
        code: Bytes,
    },
    /// A function library was deleted (`FUNCTION DELETE`).
    FunctionDelete {
        /// The library name.
        name: Bytes,
    },
    /// The script cache or every function library was emptied.
    ScriptsFlush {
        /// Which of the two.
        target: ScriptsFlushTarget,
    },
    /// Policy `name` now has this definition (its canonical `POLICY.SET` words).
    PolicySet {
        /// The policy's name.
        name: Bytes,
        /// The words after the name.
        words: Vec<Bytes>,
    },
    /// Policy `name` was deleted.
    PolicyDel {
        /// The policy's name.
        name: Bytes,
    },
    /// `identity` now has this override (its canonical `OVERRIDE.SET` words, with an absolute
    /// `EXPIREAT`).
    OverrideSet {
        /// The identity.
        identity: Bytes,
        /// The words after the identity.
        words: Vec<Bytes>,
    },
    /// `identity`'s override was deleted.
    OverrideDel {
        /// The identity.
        identity: Bytes,
    },
    /// An allow- or deny-list entry was added or removed.
    Access {
        /// The deny list (else the allow list).
        deny: bool,
        /// Added (else removed).
        add: bool,
        /// The entry as given.
        entry: Bytes,
    },
    /// `identity` is now suspended (the canonical words of the suspension: policy or `*`,
    /// `REASON`, `SINCE`, absolute `EXPIREAT`).
    Suspend {
        /// The identity.
        identity: Bytes,
        /// The words after the identity.
        words: Vec<Bytes>,
    },
    /// `identity`'s suspension of `policy` (or `*`) was lifted.
    Unsuspend {
        /// The identity.
        identity: Bytes,
        /// The policy, or `*`.
        policy: Bytes,
    },
}

impl Record {
    /// True for records that change the policy catalog rather than a database.
    pub fn is_catalog(&self) -> bool {
        matches!(
            self,
            Record::PolicySet { .. }
                | Record::PolicyDel { .. }
                | Record::OverrideSet { .. }
                | Record::OverrideDel { .. }
                | Record::Access { .. }
                | Record::Suspend { .. }
                | Record::Unsuspend { .. }
        )
    }
}

/// Why a frame or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptReason {
    /// The bytes end inside a header or frame (a torn write).
    Incomplete {
        /// Bytes the frame (or header) needs.
        needed: u64,
        /// Bytes that were there.
        available: u64,
    },
    /// The stored checksum does not match the frame.
    ChecksumMismatch {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A frame declares a payload longer than [`MAX_PAYLOAD`].
    LengthTooLarge(u32),
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// The header names a format version newer than this build reads.
    UnsupportedVersion(u16),
    /// An operation byte this build does not know.
    UnknownOp(u8),
    /// A value tag this build does not know.
    UnknownValueTag(u8),
    /// A limiter state version this build does not know.
    UnknownStateVersion {
        /// The value tag.
        tag: u8,
        /// The version byte found.
        version: u8,
    },
    /// A field inside a checksummed payload is inconsistent (a bug in the writer, or a
    /// collision); names the field.
    Malformed(&'static str),
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptReason::Incomplete { needed, available } => write!(
                f,
                "incomplete record ({available} of {needed} bytes present; torn write)"
            ),
            CorruptReason::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            CorruptReason::LengthTooLarge(n) => {
                write!(f, "record length {n} exceeds the cap of {MAX_PAYLOAD}")
            }
            CorruptReason::BadMagic => write!(f, "not a limitkv AOF (bad magic)"),
            CorruptReason::UnsupportedVersion(v) => write!(
                f,
                "format version {v} is newer than this build reads ({FORMAT_VERSION})"
            ),
            CorruptReason::UnknownOp(b) => write!(f, "unknown record op {b:#04x}"),
            CorruptReason::UnknownValueTag(b) => write!(f, "unknown value tag {b:#04x}"),
            CorruptReason::UnknownStateVersion { tag, version } => write!(
                f,
                "unknown state version {version} for value tag {tag:#04x}"
            ),
            CorruptReason::Malformed(what) => write!(f, "malformed record: {what}"),
        }
    }
}

/// Appends the file header.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
}

/// The encoded header.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..6].copy_from_slice(&MAGIC);
    h[6..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a header; `Incomplete` if `buf` is shorter than [`HEADER_LEN`].
pub fn check_header(buf: &[u8]) -> Result<u16, CorruptReason> {
    // A prefix of the magic is a torn header; anything else is not our file.
    let m = buf.len().min(MAGIC.len());
    if buf[..m] != MAGIC[..m] {
        return Err(CorruptReason::BadMagic);
    }
    if buf.len() < HEADER_LEN {
        return Err(CorruptReason::Incomplete {
            needed: HEADER_LEN as u64,
            available: buf.len() as u64,
        });
    }
    let version = u16::from_le_bytes([buf[6], buf[7]]);
    if version == 0 || version > FORMAT_VERSION {
        return Err(CorruptReason::UnsupportedVersion(version));
    }
    Ok(version)
}

/// Appends one framed record: `[len u32 LE][crc32c u32 LE][payload]`.
///
/// The checksum covers the four length bytes and the payload, so a zero-filled tail (a common
/// crash artifact: the file grew but its blocks were never written) fails the check instead of
/// reading as an empty record.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    framed(out, |out| encode_payload(record, out));
}

/// Appends the framed `Put` of a key's state from borrowed parts: the same bytes as
/// [`encode`] of a `Record::Put`, without copying the key and cloning the value first (the
/// journal encodes every write this way).
pub fn encode_put(
    db: u32,
    key: &[u8],
    value: &Value,
    expires_at: Option<Nanos>,
    out: &mut Vec<u8>,
) {
    framed(out, |out| put_payload(db, key, value, expires_at, out));
}

/// Appends the framed `Del` of a key: the same bytes as [`encode`] of a `Record::Del`.
pub fn encode_del(db: u32, key: &[u8], out: &mut Vec<u8>) {
    framed(out, |out| del_payload(db, key, out));
}

fn put_payload(db: u32, key: &[u8], value: &Value, expires_at: Option<Nanos>, out: &mut Vec<u8>) {
    out.push(op::PUT);
    out.extend_from_slice(&db.to_le_bytes());
    put_bytes(out, key);
    encode_value(value, out);
    match expires_at {
        None => out.push(0),
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.0.to_le_bytes());
        }
    }
}

fn del_payload(db: u32, key: &[u8], out: &mut Vec<u8>) {
    out.push(op::DEL);
    out.extend_from_slice(&db.to_le_bytes());
    put_bytes(out, key);
}

/// Appends a frame around the payload `payload` writes: length, CRC, payload.
fn framed(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_OVERHEAD]);
    payload(out);
    let len = u32::try_from(out.len() - start - FRAME_OVERHEAD)
        .expect("invariant: keys and values are capped at 512 MiB by the protocol layer");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = frame_crc(&len.to_le_bytes(), &out[start + FRAME_OVERHEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One framed record as a fresh buffer.
pub fn encode_to_vec(record: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    encode(record, &mut v);
    v
}

fn frame_crc(len: &[u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// Appends a record's payload (no frame).
pub fn encode_payload(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Put {
            db,
            key,
            value,
            expires_at,
        } => put_payload(*db, key, value, *expires_at, out),
        Record::Del { db, key } => del_payload(*db, key, out),
        Record::FlushDb { db } => {
            out.push(op::FLUSH_DB);
            out.extend_from_slice(&db.to_le_bytes());
        }
        Record::FlushAll => out.push(op::FLUSH_ALL),
        Record::Script { body } => {
            out.push(op::SCRIPT);
            put_bytes(out, body);
        }
        Record::FunctionLibrary { code } => {
            out.push(op::FUNCTION_LIBRARY);
            put_bytes(out, code);
        }
        Record::FunctionDelete { name } => {
            out.push(op::FUNCTION_DELETE);
            put_bytes(out, name);
        }
        Record::ScriptsFlush { target } => {
            out.push(op::SCRIPTS_FLUSH);
            out.push(match target {
                ScriptsFlushTarget::Scripts => flush_target::SCRIPTS,
                ScriptsFlushTarget::Functions => flush_target::FUNCTIONS,
            });
        }
        Record::PolicySet { name, words } => {
            out.push(op::POLICY_SET);
            put_bytes(out, name);
            put_words(out, words);
        }
        Record::PolicyDel { name } => {
            out.push(op::POLICY_DEL);
            put_bytes(out, name);
        }
        Record::OverrideSet { identity, words } => {
            out.push(op::OVERRIDE_SET);
            put_bytes(out, identity);
            put_words(out, words);
        }
        Record::OverrideDel { identity } => {
            out.push(op::OVERRIDE_DEL);
            put_bytes(out, identity);
        }
        Record::Access { deny, add, entry } => {
            out.push(op::ACCESS);
            out.push(u8::from(*deny));
            out.push(u8::from(*add));
            put_bytes(out, entry);
        }
        Record::Suspend { identity, words } => {
            out.push(op::SUSPEND);
            put_bytes(out, identity);
            put_words(out, words);
        }
        Record::Unsuspend { identity, policy } => {
            out.push(op::UNSUSPEND);
            put_bytes(out, identity);
            put_bytes(out, policy);
        }
    }
}

fn put_words(out: &mut Vec<u8>, words: &[Bytes]) {
    let n = u32::try_from(words.len())
        .ok()
        .filter(|&n| n <= MAX_DECODED_WORDS)
        .expect("invariant: a definition is one command's arguments");
    out.extend_from_slice(&n.to_le_bytes());
    for w in words {
        put_bytes(out, w);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len())
        .expect("invariant: keys and values are capped at 512 MiB by the protocol layer");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(b) => {
            out.push(tag::STR);
            put_bytes(out, b);
        }
        Value::Int(n) => {
            out.push(tag::INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Gcra(tat) => {
            out.push(tag::GCRA);
            out.push(GCRA_STATE_VERSION);
            put_u64(out, tat.0);
        }
        Value::GcraRule(s) => {
            out.push(tag::GCRA);
            if s.emission == Nanos::ZERO {
                out.push(GCRA_STATE_VERSION);
                put_u64(out, s.tat.0);
            } else {
                out.push(GCRA_STATE_VERSION_EMISSION);
                put_u64(out, s.tat.0);
                put_u64(out, s.emission.0);
            }
        }
        Value::Window(s) => {
            out.push(tag::WINDOW);
            out.push(WINDOW_STATE_VERSION);
            put_u64s(out, &[s.start.0, s.prev, s.curr]);
        }
        Value::Quota(s) => {
            out.push(tag::QUOTA);
            out.push(QUOTA_STATE_VERSION);
            put_u64s(out, &[s.period.start.0, s.period.end.0, s.used, s.carry]);
        }
        Value::Cost(s) => {
            out.push(tag::COST);
            out.push(COST_STATE_VERSION);
            match **s {
                CostState::Calendar { period, spent } => {
                    out.push(cost_kind::CALENDAR);
                    put_u64s(out, &[period.start.0, period.end.0, spent]);
                }
                CostState::Rolling { start, prev, curr } => {
                    out.push(cost_kind::ROLLING);
                    put_u64s(out, &[start.0, prev, curr]);
                }
            }
        }
        Value::Lease(s) => {
            out.push(tag::LEASE);
            out.push(LEASE_STATE_VERSION);
            let count = u32::try_from(s.leases.len())
                .ok()
                .filter(|&n| n <= MAX_DECODED_LEASES)
                .expect("invariant: a LEASE key holds at most lease::MAX_LIMIT leases");
            out.extend_from_slice(&count.to_le_bytes());
            for l in &s.leases {
                put_u64s(out, &[l.id.0, l.expires_at.0]);
            }
        }
        Value::Breaker(s) => {
            out.push(tag::BREAKER);
            out.push(BREAKER_STATE_VERSION);
            match **s {
                BreakerState::Closed {
                    start,
                    failures,
                    calls,
                } => {
                    out.push(breaker_kind::CLOSED);
                    put_u64s(out, &[start.0, failures.0, failures.1, calls.0, calls.1]);
                }
                BreakerState::Open { until } => {
                    out.push(breaker_kind::OPEN);
                    put_u64(out, until.0);
                }
                BreakerState::HalfOpen {
                    since,
                    issued,
                    successes,
                } => {
                    out.push(breaker_kind::HALF_OPEN);
                    put_u64s(out, &[since.0, issued, successes]);
                }
            }
        }
        Value::List(l) => {
            out.extend_from_slice(&[tag::LIST, LIST_VERSION]);
            put_count(out, l.len());
            for e in l.iter() {
                put_bytes(out, e);
            }
        }
        Value::Hash(h) => {
            out.extend_from_slice(&[tag::HASH, HASH_VERSION]);
            put_count(out, h.len());
            for (f, v) in h.iter() {
                put_bytes(out, f);
                put_bytes(out, v);
            }
        }
        Value::Set(s) => {
            out.extend_from_slice(&[tag::SET, SET_VERSION]);
            put_count(out, s.len());
            for m in s.iter() {
                put_bytes(out, m);
            }
        }
        Value::ZSet(z) => {
            out.extend_from_slice(&[tag::ZSET, ZSET_VERSION]);
            put_count(out, z.len());
            for (m, score) in z.iter() {
                put_u64(out, score.to_bits());
                put_bytes(out, m);
            }
        }
        Value::Reservation(r) => {
            out.extend_from_slice(&[tag::RESERVATION, RESERVATION_VERSION]);
            put_u64(out, r.id);
            put_bytes(out, r.policy.as_bytes());
            put_bytes(out, &r.identity);
            put_opt_bytes(out, r.scope.as_ref().map(String::as_bytes));
            put_u64s(out, &[r.tokens, r.cost.0 as u64]);
            match r.lease {
                None => out.push(0),
                Some(l) => {
                    out.push(1);
                    put_u64(out, l.0);
                }
            }
            put_u64(out, r.expires_at.0);
            out.extend_from_slice(
                &u32::try_from(r.charges.len())
                    .expect("invariant: a policy has at most 64 rules")
                    .to_le_bytes(),
            );
            for c in &r.charges {
                put_bytes(out, &c.key);
                put_u64(out, c.units as u64);
            }
        }
        Value::Stream(s) => record_stream::encode(s, out),
    }
}

/// Appends a flag byte and, when present, the bytes.
fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

/// Appends a collection's element count.
fn put_count(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n)
        .expect("invariant: a collection fits in a 512 MiB payload, so fewer than 2^32 elements");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_u64s(out: &mut Vec<u8>, ns: &[u64]) {
    for &n in ns {
        put_u64(out, n);
    }
}

/// Decodes the frame at the start of `buf`.
///
/// `Ok(Some((record, frame_len)))` for a good frame, `Ok(None)` for an empty `buf`, and
/// `Err` naming the problem otherwise (`Incomplete` when `buf` ends inside the frame).
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Record, usize)>, CorruptReason> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (len, stored) = match frame_header(buf) {
        Some(h) => h,
        None => {
            return Err(CorruptReason::Incomplete {
                needed: FRAME_OVERHEAD as u64,
                available: buf.len() as u64,
            })
        }
    };
    check_len(len)?;
    let total = FRAME_OVERHEAD + len as usize;
    if buf.len() < total {
        return Err(CorruptReason::Incomplete {
            needed: total as u64,
            available: buf.len() as u64,
        });
    }
    let payload = &buf[FRAME_OVERHEAD..total];
    verify(len, stored, payload)?;
    Ok(Some((decode_payload(payload)?, total)))
}

/// Splits a frame header into `(len, stored crc)`; `None` if fewer than 8 bytes.
pub(crate) fn frame_header(buf: &[u8]) -> Option<(u32, u32)> {
    let h: [u8; FRAME_OVERHEAD] = buf.get(..FRAME_OVERHEAD)?.try_into().ok()?;
    Some((
        u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
    ))
}

/// Rejects a declared payload length over the cap.
pub(crate) fn check_len(len: u32) -> Result<(), CorruptReason> {
    if len > MAX_PAYLOAD {
        return Err(CorruptReason::LengthTooLarge(len));
    }
    Ok(())
}

/// Checks a frame's checksum.
pub(crate) fn verify(len: u32, stored: u32, payload: &[u8]) -> Result<(), CorruptReason> {
    let computed = frame_crc(&len.to_le_bytes(), payload);
    if computed != stored {
        return Err(CorruptReason::ChecksumMismatch { stored, computed });
    }
    Ok(())
}

/// Decodes a payload whose checksum already matched. Every byte must be consumed.
pub fn decode_payload(payload: &[u8]) -> Result<Record, CorruptReason> {
    let mut c = Cursor { buf: payload };
    let record = match c.u8("op")? {
        op::PUT => {
            let db = c.u32("database")?;
            let key = c.bytes("key")?;
            let value = decode_value(&mut c)?;
            let expires_at = match c.u8("expiry flag")? {
                0 => None,
                1 => Some(Nanos(c.u64("expiry")?)),
                _ => return Err(CorruptReason::Malformed("expiry flag")),
            };
            Record::Put {
                db,
                key,
                value,
                expires_at,
            }
        }
        op::DEL => Record::Del {
            db: c.u32("database")?,
            key: c.bytes("key")?,
        },
        op::FLUSH_DB => Record::FlushDb {
            db: c.u32("database")?,
        },
        op::FLUSH_ALL => Record::FlushAll,
        op::SCRIPT => Record::Script {
            body: c.bytes("script body")?,
        },
        op::FUNCTION_LIBRARY => Record::FunctionLibrary {
            code: c.bytes("function library code")?,
        },
        op::FUNCTION_DELETE => Record::FunctionDelete {
            name: c.bytes("function library name")?,
        },
        op::SCRIPTS_FLUSH => Record::ScriptsFlush {
            target: match c.u8("scripts flush target")? {
                flush_target::SCRIPTS => ScriptsFlushTarget::Scripts,
                flush_target::FUNCTIONS => ScriptsFlushTarget::Functions,
                _ => return Err(CorruptReason::Malformed("scripts flush target")),
            },
        },
        op::POLICY_SET => Record::PolicySet {
            name: c.bytes("policy name")?,
            words: c.words("policy words")?,
        },
        op::POLICY_DEL => Record::PolicyDel {
            name: c.bytes("policy name")?,
        },
        op::OVERRIDE_SET => Record::OverrideSet {
            identity: c.bytes("override identity")?,
            words: c.words("override words")?,
        },
        op::OVERRIDE_DEL => Record::OverrideDel {
            identity: c.bytes("override identity")?,
        },
        op::ACCESS => Record::Access {
            deny: c.flag("access list")?,
            add: c.flag("access change")?,
            entry: c.bytes("access entry")?,
        },
        op::SUSPEND => Record::Suspend {
            identity: c.bytes("suspended identity")?,
            words: c.words("suspension words")?,
        },
        op::UNSUSPEND => Record::Unsuspend {
            identity: c.bytes("suspended identity")?,
            policy: c.bytes("suspension policy")?,
        },
        other => return Err(CorruptReason::UnknownOp(other)),
    };
    if !c.buf.is_empty() {
        return Err(CorruptReason::Malformed("trailing bytes"));
    }
    Ok(record)
}

fn decode_value(c: &mut Cursor<'_>) -> Result<Value, CorruptReason> {
    Ok(match c.u8("value tag")? {
        tag::STR => Value::str(c.bytes("string value")?),
        tag::INT => Value::Int(c.u64("integer value")? as i64),
        tag::GCRA => match c.u8("gcra state version")? {
            GCRA_STATE_VERSION => Value::Gcra(c.nanos("gcra tat")?),
            GCRA_STATE_VERSION_EMISSION => Value::gcra(GcraState {
                tat: c.nanos("gcra tat")?,
                emission: c.nanos("gcra emission")?,
            }),
            version => {
                return Err(CorruptReason::UnknownStateVersion {
                    tag: tag::GCRA,
                    version,
                })
            }
        },
        tag::WINDOW => {
            c.state_version(tag::WINDOW, WINDOW_STATE_VERSION, "window state version")?;
            Value::Window(Box::new(WindowState {
                start: c.nanos("window start")?,
                prev: c.u64("window prev")?,
                curr: c.u64("window curr")?,
            }))
        }
        tag::QUOTA => {
            c.state_version(tag::QUOTA, QUOTA_STATE_VERSION, "quota state version")?;
            Value::Quota(Box::new(QuotaState {
                period: c.period("quota period")?,
                used: c.u64("quota used")?,
                carry: c.u64("quota carry")?,
            }))
        }
        tag::COST => {
            c.state_version(tag::COST, COST_STATE_VERSION, "cost state version")?;
            Value::Cost(Box::new(match c.u8("cost state kind")? {
                cost_kind::CALENDAR => CostState::Calendar {
                    period: c.period("cost period")?,
                    spent: c.u64("cost spent")?,
                },
                cost_kind::ROLLING => CostState::Rolling {
                    start: c.nanos("cost window start")?,
                    prev: c.u64("cost window prev")?,
                    curr: c.u64("cost window curr")?,
                },
                _ => return Err(CorruptReason::Malformed("cost state kind")),
            }))
        }
        tag::LEASE => {
            c.state_version(tag::LEASE, LEASE_STATE_VERSION, "lease state version")?;
            let count = c.u32("lease count")?;
            // Checked before allocating: the cap bounds a declared count, and the remaining
            // bytes bound it further, so a corrupt count never reserves more than it can fill.
            if count > MAX_DECODED_LEASES || count as usize > c.buf.len() / LEASE_LEN {
                return Err(CorruptReason::Malformed("lease count"));
            }
            let mut leases = Vec::with_capacity(count as usize);
            for _ in 0..count {
                leases.push(Lease {
                    id: LeaseId(c.u64("lease id")?),
                    expires_at: c.nanos("lease expiry")?,
                });
            }
            Value::Lease(Box::new(LeaseState { leases }))
        }
        tag::BREAKER => {
            c.state_version(tag::BREAKER, BREAKER_STATE_VERSION, "breaker state version")?;
            Value::Breaker(Box::new(match c.u8("breaker state kind")? {
                breaker_kind::CLOSED => BreakerState::Closed {
                    start: c.nanos("breaker window start")?,
                    failures: (c.u64("breaker failures")?, c.u64("breaker failures")?),
                    calls: (c.u64("breaker calls")?, c.u64("breaker calls")?),
                },
                breaker_kind::OPEN => BreakerState::Open {
                    until: c.nanos("breaker open until")?,
                },
                breaker_kind::HALF_OPEN => BreakerState::HalfOpen {
                    since: c.nanos("breaker half-open since")?,
                    issued: c.u64("breaker probes issued")?,
                    successes: c.u64("breaker probe successes")?,
                },
                _ => return Err(CorruptReason::Malformed("breaker state kind")),
            }))
        }
        tag::LIST => {
            c.state_version(tag::LIST, LIST_VERSION, "list version")?;
            let n = c.count(MIN_LIST_ELEMENT, "list length")?;
            let mut l = std::collections::VecDeque::with_capacity(n.min(MAX_RESERVE));
            for _ in 0..n {
                l.push_back(c.bytes("list element")?);
            }
            Value::List(Box::new(l))
        }
        tag::HASH => {
            c.state_version(tag::HASH, HASH_VERSION, "hash version")?;
            let n = c.count(MIN_HASH_PAIR, "hash length")?;
            let mut h = HashValue::with_capacity_and_hasher(n.min(MAX_RESERVE), Default::default());
            for _ in 0..n {
                let field = c.bytes("hash field")?;
                let value = c.bytes("hash value")?;
                if h.insert(field, value).is_some() {
                    return Err(CorruptReason::Malformed("duplicate hash field"));
                }
            }
            Value::Hash(Box::new(h))
        }
        tag::SET => {
            c.state_version(tag::SET, SET_VERSION, "set version")?;
            let n = c.count(MIN_SET_MEMBER, "set size")?;
            let mut s = SetValue::with_capacity_and_hasher(n.min(MAX_RESERVE), Default::default());
            for _ in 0..n {
                if !s.insert(c.bytes("set member")?) {
                    return Err(CorruptReason::Malformed("duplicate set member"));
                }
            }
            Value::Set(Box::new(s))
        }
        tag::ZSET => {
            c.state_version(tag::ZSET, ZSET_VERSION, "zset version")?;
            let n = c.count(MIN_ZSET_ENTRY, "zset size")?;
            let mut z = ZSet::new();
            for _ in 0..n {
                let score = f64::from_bits(c.u64("zset score")?);
                if score.is_nan() {
                    return Err(CorruptReason::Malformed("zset score"));
                }
                if z.insert(c.bytes("zset member")?, score).is_some() {
                    return Err(CorruptReason::Malformed("duplicate zset member"));
                }
            }
            Value::ZSet(Box::new(z))
        }
        tag::RESERVATION => {
            c.state_version(tag::RESERVATION, RESERVATION_VERSION, "reservation version")?;
            let id = c.u64("reservation id")?;
            let policy = c.text("reservation policy")?;
            let identity = c.bytes("reservation identity")?;
            let scope = match c.u8("reservation scope flag")? {
                0 => None,
                1 => Some(c.text("reservation scope")?),
                _ => return Err(CorruptReason::Malformed("reservation scope flag")),
            };
            let tokens = c.u64("reservation tokens")?;
            let cost = Amount(c.u64("reservation cost")? as i64);
            let lease = match c.u8("reservation lease flag")? {
                0 => None,
                1 => Some(LeaseId(c.u64("reservation lease")?)),
                _ => return Err(CorruptReason::Malformed("reservation lease flag")),
            };
            let expires_at = c.nanos("reservation expiry")?;
            let n = c.u32("reservation charges")? as usize;
            if n > c.buf.len() / MIN_CHARGE {
                return Err(CorruptReason::Malformed("reservation charges"));
            }
            let mut charges = Vec::with_capacity(n);
            for _ in 0..n {
                charges.push(Charge {
                    key: c.bytes("reservation charge key")?,
                    units: c.u64("reservation charge units")? as i64,
                });
            }
            Value::Reservation(Box::new(Reservation {
                id,
                policy,
                identity,
                scope,
                tokens,
                cost,
                lease,
                expires_at,
                charges,
            }))
        }
        tag::STREAM => record_stream::decode(c)?,
        other => return Err(CorruptReason::UnknownValueTag(other)),
    })
}

/// A bounds-checked reader over a payload; every short read is `Malformed(field)`.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CorruptReason> {
        if self.buf.len() < n {
            return Err(CorruptReason::Malformed(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CorruptReason> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CorruptReason> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CorruptReason> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, CorruptReason> {
        let n = self.u32(what)? as usize;
        Ok(Bytes::copy_from_slice(self.take(n, what)?))
    }

    /// A word count (checked against the bytes left) and that many byte strings.
    fn words(&mut self, what: &'static str) -> Result<Vec<Bytes>, CorruptReason> {
        let n = self.u32(what)?;
        if n > MAX_DECODED_WORDS || n as usize > self.buf.len() / 4 {
            return Err(CorruptReason::Malformed(what));
        }
        (0..n).map(|_| self.bytes(what)).collect()
    }

    /// A 0/1 byte.
    fn flag(&mut self, what: &'static str) -> Result<bool, CorruptReason> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CorruptReason::Malformed(what)),
        }
    }

    fn text(&mut self, what: &'static str) -> Result<String, CorruptReason> {
        String::from_utf8(self.bytes(what)?.to_vec()).map_err(|_| CorruptReason::Malformed(what))
    }

    fn nanos(&mut self, what: &'static str) -> Result<Nanos, CorruptReason> {
        Ok(Nanos(self.u64(what)?))
    }

    /// A quota period: `start u64`, `end u64`.
    fn period(&mut self, what: &'static str) -> Result<Period, CorruptReason> {
        Ok(Period {
            start: self.nanos(what)?,
            end: self.nanos(what)?,
        })
    }

    /// A collection's element count: at least 1 (an empty collection is never stored) and no
    /// more than the remaining bytes can hold at `min_len` bytes per element.
    fn count(&mut self, min_len: usize, what: &'static str) -> Result<usize, CorruptReason> {
        let n = self.u32(what)? as usize;
        if n == 0 || n > self.buf.len() / min_len {
            return Err(CorruptReason::Malformed(what));
        }
        Ok(n)
    }

    /// Reads the state version byte after `tag`; anything but `known` is refused.
    fn state_version(
        &mut self,
        tag: u8,
        known: u8,
        what: &'static str,
    ) -> Result<(), CorruptReason> {
        match self.u8(what)? {
            v if v == known => Ok(()),
            version => Err(CorruptReason::UnknownStateVersion { tag, version }),
        }
    }
}

#[path = "record_stream.rs"]
mod record_stream;

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
