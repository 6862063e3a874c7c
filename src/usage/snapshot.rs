//! The usage history's file format (`usage-history.bin` next to the append-only file; see
//! docs/persistence.md). Little-endian throughout:
//!
//! ```text
//! "LKVUSAGE" version:u8(=1)
//! policies:u32    { name:str  series }
//! denied:u32      { policy:str identity:str count:u64 error:u64 }   largest count first
//! used:u32        { policy:str identity:str count:u64 error:u64 }   largest count first
//! identities:u32  { policy:str identity:str series }
//! crc32c:u32      of every byte before it
//! str    = len:u32 bytes
//! series = minutes:u32 { minute:u32 decisions:u64 denials:u64 warnings:u64 tokens:i64 cost:i64 }
//! ```
//! Loading under a smaller `usage-history-identities` keeps the largest counters.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Counts, Estimate, History, Id, Series};

const MAGIC: &[u8; 8] = b"LKVUSAGE";
const VERSION: u8 = 1;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a usage history file, or a version this build does not read.
    #[error("not a usage history file (bad magic or version)")]
    BadHeader,
    /// The file ends early or its checksum does not match.
    #[error("usage history file is truncated or corrupt")]
    Corrupt,
}

/// Encodes `h`.
pub fn encode(h: &History) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + h.stored_minutes() * 44);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let mut names: Vec<_> = h.policies.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    put_u32(&mut out, names.len());
    for (name, s) in names {
        put_str(&mut out, name.as_bytes());
        put_series(&mut out, s);
    }
    for sketch in [&h.denied, &h.used] {
        put_u32(&mut out, sketch.len());
        for (id, e) in sketch.top() {
            put_id(&mut out, id);
            out.extend_from_slice(&e.count.to_le_bytes());
            out.extend_from_slice(&e.error.to_le_bytes());
        }
    }
    put_u32(&mut out, h.identities.len());
    for (id, s) in &h.identities {
        put_id(&mut out, id);
        put_series(&mut out, s);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a snapshot into a history of `capacity` counters per ranking, with minutes past
/// the retention at `now_minute` dropped.
pub fn decode(bytes: &[u8], capacity: usize, now_minute: u32) -> Result<History, SnapshotError> {
    if bytes.len() < MAGIC.len() + 1 || &bytes[..8] != MAGIC || bytes[8] != VERSION {
        return Err(SnapshotError::BadHeader);
    }
    let (body, crc) = bytes.split_at(bytes.len().checked_sub(4).ok_or(SnapshotError::Corrupt)?);
    let want = u32::from_le_bytes(crc.try_into().map_err(|_| SnapshotError::Corrupt)?);
    if crc32c::crc32c(body) != want {
        return Err(SnapshotError::Corrupt);
    }
    let mut r = Reader { b: &body[9..] };
    let mut h = History::new(capacity);
    let mut names: HashMap<Vec<u8>, Arc<str>> = HashMap::new();
    let mut intern = |h: &mut History, raw: &[u8]| -> Result<Arc<str>, SnapshotError> {
        if let Some(a) = names.get(raw) {
            return Ok(a.clone());
        }
        let s = std::str::from_utf8(raw).map_err(|_| SnapshotError::Corrupt)?;
        let a = h.intern(s);
        names.insert(raw.to_vec(), a.clone());
        Ok(a)
    };
    for _ in 0..r.u32()? {
        let name = r.str()?;
        let name = intern(&mut h, name)?;
        let s = r.series(now_minute)?;
        h.policies.insert(name, s);
    }
    for which in 0..2 {
        for _ in 0..r.u32()? {
            let (p, i) = (r.str()?, r.str()?);
            let id = Id {
                policy: intern(&mut h, p)?,
                identity: Bytes::copy_from_slice(i),
            };
            let e = Estimate {
                count: r.u64()?,
                error: r.u64()?,
            };
            if e.error > e.count {
                return Err(SnapshotError::Corrupt);
            }
            if which == 0 {
                h.denied.restore(id, e);
            } else {
                h.used.restore(id, e);
            }
        }
    }
    for _ in 0..r.u32()? {
        let (p, i) = (r.str()?, r.str()?);
        let id = Id {
            policy: intern(&mut h, p)?,
            identity: Bytes::copy_from_slice(i),
        };
        let s = r.series(now_minute)?;
        if h.is_tracked(&id) {
            h.identities.insert(id, s);
        }
    }
    if !r.b.is_empty() {
        return Err(SnapshotError::Corrupt);
    }
    Ok(h)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

fn put_id(out: &mut Vec<u8>, id: &Id) {
    put_str(out, id.policy.as_bytes());
    put_str(out, &id.identity);
}

fn put_series(out: &mut Vec<u8>, s: &Series) {
    put_u32(out, s.len());
    for (m, c) in s.iter() {
        out.extend_from_slice(&m.to_le_bytes());
        out.extend_from_slice(&c.decisions.to_le_bytes());
        out.extend_from_slice(&c.denials.to_le_bytes());
        out.extend_from_slice(&c.warnings.to_le_bytes());
        out.extend_from_slice(&c.tokens.to_le_bytes());
        out.extend_from_slice(&c.cost.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.b.len() < n {
            return Err(SnapshotError::Corrupt);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn series(&mut self, now_minute: u32) -> Result<Series, SnapshotError> {
        let n = self.u32()?;
        let mut s = Series::new();
        for _ in 0..n {
            let minute = self.u32()?;
            let c = Counts {
                decisions: self.u64()?,
                denials: self.u64()?,
                warnings: self.u64()?,
                tokens: self.u64()? as i64,
                cost: self.u64()? as i64,
            };
            s.add(minute, &c, now_minute);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Rank;

    fn sample() -> History {
        let mut h = History::new(3);
        for (i, m) in (0..8).zip(100..) {
            let c = Counts {
                decisions: 3 + i,
                denials: i % 3,
                warnings: 1,
                tokens: 10 * i as i64,
                cost: -5,
            };
            h.record("free", &Bytes::from(format!("u{}", i % 5)), m, &c, m);
            h.record("pro", &Bytes::from_static(b"x"), m, &c, m);
        }
        h
    }

    #[test]
    fn a_snapshot_round_trips() {
        let h = sample();
        let back = decode(&encode(&h), 3, 110).unwrap();
        assert_eq!(back.policies, h.policies);
        assert_eq!(back.identities, h.identities);
        for rank in [Rank::Denied, Rank::Usage] {
            assert_eq!(
                back.top(rank, 0, 200, None, 9),
                h.top(rank, 0, 200, None, 9)
            );
        }
    }

    #[test]
    fn damage_is_detected() {
        let mut bytes = encode(&sample());
        let n = bytes.len();
        assert_eq!(
            decode(&bytes[..n - 1], 3, 110).unwrap_err(),
            SnapshotError::Corrupt
        );
        bytes[20] ^= 1;
        assert_eq!(decode(&bytes, 3, 110).unwrap_err(), SnapshotError::Corrupt);
        assert_eq!(
            decode(b"nope", 3, 110).unwrap_err(),
            SnapshotError::BadHeader
        );
    }

    #[test]
    fn a_smaller_budget_keeps_the_largest() {
        let h = sample();
        let back = decode(&encode(&h), 1, 110).unwrap();
        assert!(back.tracked() <= 2);
        assert_eq!(back.used.top().next(), h.used.top().next());
    }
}
