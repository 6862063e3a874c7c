//! The AOF encoding of [`Value::Stream`] (tag 20, see `docs/aof-format.md`): the stream's
//! counters, its entries with their insertion positions, and its consumer groups with their
//! consumers and pending entries. A consumer's own PEL is rebuilt from the group's.

use std::collections::BTreeSet;

use super::{put_bytes, put_u64, put_u64s, tag, CorruptReason, Cursor};
use crate::store::stream::{Consumer, Group, Pending, Stream, StreamEntry, StreamId};
use crate::store::Value;

/// Layout version of [`Value::Stream`].
pub(super) const STREAM_VERSION: u8 = 1;

/// Encoded size of one entry at least: id, position and field count.
const MIN_ENTRY: usize = 28;
/// Encoded size of one group at least: name length, last id, read flag, two counts.
const MIN_GROUP: usize = 29;
/// Encoded size of one consumer at least: name length and seen time.
const MIN_CONSUMER: usize = 12;
/// Encoded size of one pending entry at least: id, owner length, time and count.
const MIN_PENDING: usize = 36;

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("invariant: a stream part fits in a 512 MiB payload");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_u64s(out, &[id.ms, id.seq]);
}

/// Appends the encoded stream (tag included).
pub(super) fn encode(s: &Stream, out: &mut Vec<u8>) {
    out.extend_from_slice(&[tag::STREAM, STREAM_VERSION]);
    put_id(out, s.last_id);
    put_id(out, s.max_deleted_id);
    put_u64s(out, &[s.entries_added, s.tail.0, s.tail.1]);
    put_u32(out, s.entries.len());
    for (id, e) in &s.entries {
        put_id(out, *id);
        put_u64(out, e.node);
        put_u32(out, e.fields.len());
        for f in e.fields.iter() {
            put_bytes(out, f);
        }
    }
    put_u32(out, s.groups.len());
    for (name, g) in &s.groups {
        put_bytes(out, name);
        put_id(out, g.last_id);
        match g.entries_read {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_u64(out, r);
            }
        }
        put_u32(out, g.consumers.len());
        for (name, c) in &g.consumers {
            put_bytes(out, name);
            put_u64(out, c.seen_time);
        }
        put_u32(out, g.pel.len());
        for (id, p) in &g.pel {
            put_id(out, *id);
            put_bytes(out, &p.consumer);
            put_u64s(out, &[p.delivery_time, p.delivery_count]);
        }
    }
}

/// A count that may be zero, bounded by the bytes left.
fn count(c: &mut Cursor<'_>, min_len: usize, what: &'static str) -> Result<usize, CorruptReason> {
    let n = c.u32(what)? as usize;
    if n > c.buf.len() / min_len {
        return Err(CorruptReason::Malformed(what));
    }
    Ok(n)
}

fn id(c: &mut Cursor<'_>, what: &'static str) -> Result<StreamId, CorruptReason> {
    Ok(StreamId::new(c.u64(what)?, c.u64(what)?))
}

/// Decodes a stream after its tag.
pub(super) fn decode(c: &mut Cursor<'_>) -> Result<Value, CorruptReason> {
    c.state_version(tag::STREAM, STREAM_VERSION, "stream version")?;
    let mut s = Stream {
        last_id: id(c, "stream last id")?,
        max_deleted_id: id(c, "stream max deleted id")?,
        entries_added: c.u64("stream entries added")?,
        tail: (c.u64("stream tail node")?, c.u64("stream tail fill")?),
        ..Stream::default()
    };
    for _ in 0..count(c, MIN_ENTRY, "stream length")? {
        let eid = id(c, "stream entry id")?;
        let node = c.u64("stream entry node")?;
        let n = count(c, 4, "stream entry fields")?;
        if n == 0 || n % 2 != 0 {
            return Err(CorruptReason::Malformed("stream entry fields"));
        }
        let fields = (0..n)
            .map(|_| c.bytes("stream entry field"))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = fields.into_boxed_slice();
        if eid > s.last_id
            || s.entries
                .insert(eid, StreamEntry { fields, node })
                .is_some()
        {
            return Err(CorruptReason::Malformed("stream entry id"));
        }
    }
    for _ in 0..count(c, MIN_GROUP, "stream groups")? {
        let name = c.bytes("stream group name")?;
        let mut g = Group::new(id(c, "stream group last id")?, None);
        g.entries_read = match c.u8("stream group read flag")? {
            0 => None,
            1 => Some(c.u64("stream group entries read")?),
            _ => return Err(CorruptReason::Malformed("stream group read flag")),
        };
        for _ in 0..count(c, MIN_CONSUMER, "stream consumers")? {
            let name = c.bytes("stream consumer name")?;
            let seen_time = c.u64("stream consumer seen time")?;
            let pel = BTreeSet::new();
            g.consumers.insert(name, Consumer { seen_time, pel });
        }
        for _ in 0..count(c, MIN_PENDING, "stream pending entries")? {
            let pid = id(c, "stream pending id")?;
            let consumer = c.bytes("stream pending consumer")?;
            let delivery_time = c.u64("stream pending time")?;
            let delivery_count = c.u64("stream pending count")?;
            let Some(owner) = g.consumers.get_mut(&consumer) else {
                return Err(CorruptReason::Malformed("stream pending consumer"));
            };
            owner.pel.insert(pid);
            let p = Pending {
                consumer,
                delivery_time,
                delivery_count,
            };
            if g.pel.insert(pid, p).is_some() {
                return Err(CorruptReason::Malformed("stream pending id"));
            }
        }
        if s.groups.insert(name, g).is_some() {
            return Err(CorruptReason::Malformed("stream group name"));
        }
    }
    Ok(Value::Stream(Box::new(s)))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{decode_value, encode_value, Cursor};
    use crate::store::stream::{Group, Stream, StreamId};
    use crate::store::Value;

    fn sample() -> Stream {
        let mut s = Stream::default();
        for i in 1..=3 {
            let fields = vec![Bytes::from_static(b"f"), Bytes::from(i.to_string())];
            s.append(StreamId::new(i, 0), fields.into_boxed_slice(), 2);
        }
        s.delete(StreamId::new(2, 0));
        let mut g = Group::new(StreamId::new(1, 0), Some(1));
        g.assign(
            StreamId::new(1, 0),
            &Bytes::from_static(b"alice"),
            77,
            Some(3),
        );
        g.touch_consumer(b"bob", 80, false);
        s.groups.insert(Bytes::from_static(b"g"), g);
        s.groups.insert(
            Bytes::from_static(b"empty"),
            Group::new(StreamId::MIN, None),
        );
        s
    }

    #[test]
    fn streams_round_trip_with_their_groups() {
        for s in [Stream::default(), sample()] {
            let v = Value::Stream(Box::new(s));
            let mut out = Vec::new();
            encode_value(&v, &mut out);
            let mut c = Cursor { buf: &out };
            assert_eq!(decode_value(&mut c).unwrap(), v);
            assert!(c.buf.is_empty());
        }
    }

    #[test]
    fn truncated_or_inconsistent_streams_are_refused() {
        let v = Value::Stream(Box::new(sample()));
        let mut out = Vec::new();
        encode_value(&v, &mut out);
        for cut in [3, 20, out.len() / 2, out.len() - 1] {
            assert!(
                decode_value(&mut Cursor { buf: &out[..cut] }).is_err(),
                "cut {cut}"
            );
        }
        // An entry above the stream's last id.
        let mut s = sample();
        s.last_id = StreamId::new(1, 0);
        let mut out = Vec::new();
        encode_value(&Value::Stream(Box::new(s)), &mut out);
        assert!(decode_value(&mut Cursor { buf: &out }).is_err());
    }
}
