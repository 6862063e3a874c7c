//! Redis streams as a value: entries keyed by [`StreamId`] in a `BTreeMap`, the stream's
//! counters (`last_id`, `entries_added`, `max_deleted_id`) and its consumer groups with their
//! pending entries lists. Everything here is pure: times are milliseconds passed in by the
//! caller, and the command layer (`cmd::streams`, `cmd::stream_groups`, `cmd::stream_info`)
//! turns results into replies.
//!
//! Redis keeps entries in listpack nodes of up to `stream-node-max-entries` (100) entries and
//! its approximate trimming (`MAXLEN ~`, `MINID ~`) only removes whole nodes. An entry here
//! remembers the virtual node it was appended to (`node`): a new node starts when the tail
//! node has had `stream-node-max-entries` entries appended (deleted ones still count, as in a
//! listpack), so `~` trims exactly as much as Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

/// Entries per (virtual) node by default: Redis's default `stream-node-max-entries`.
pub const NODE_MAX_ENTRIES: u64 = 100;

/// A stream entry id: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The id `ms-seq`.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// True for `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next id, `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The previous id, `None` before `0-0`.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    /// Parses `ms-seq`, `ms` (the sequence is `missing_seq`), and unless `strict` the
    /// specials `-` and `+`. With `allow_auto_seq`, `ms-*` parses with `seq_given` false.
    /// `None` is Redis's "Invalid stream ID specified as stream command argument".
    pub fn parse(
        arg: &[u8],
        missing_seq: u64,
        strict: bool,
        allow_auto_seq: bool,
    ) -> Option<ParsedId> {
        if arg.len() > 127 {
            return None;
        }
        let given = |id| {
            Some(ParsedId {
                id,
                seq_given: true,
            })
        };
        match arg {
            b"-" | b"+" if strict => return None,
            b"-" => return given(StreamId::MIN),
            b"+" => return given(StreamId::MAX),
            _ => {}
        }
        let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
            Some(at) => (&arg[..at], Some(&arg[at + 1..])),
            None => (arg, None),
        };
        let ms = parse_u64(ms)?;
        match seq {
            Some(b"*") if allow_auto_seq => Some(ParsedId {
                id: StreamId::new(ms, 0),
                seq_given: false,
            }),
            Some(seq) => given(StreamId::new(ms, parse_u64(seq)?)),
            None => given(StreamId::new(ms, missing_seq)),
        }
    }

    /// The id as Redis prints it.
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Redis's `string2ull`: decimal digits only, fitting 64 bits.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A parsed id argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedId {
    /// The id (with sequence 0 for `ms-*`).
    pub id: StreamId,
    /// False for `ms-*`, whose sequence XADD picks.
    pub seq_given: bool,
}

/// One entry: its field/value pairs (flat) and its virtual node.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    /// Field, value, field, value...
    pub fields: Box<[Bytes]>,
    /// The virtual node it was appended to (see the module docs).
    pub node: u64,
}

/// A pending (delivered, not acknowledged) entry of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The consumer that owns it.
    pub consumer: Bytes,
    /// Last delivery, Unix milliseconds.
    pub delivery_time: u64,
    /// Number of deliveries.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// When it was last seen (Unix milliseconds).
    pub seen_time: u64,
    /// The ids it owns in the group's PEL.
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// The last id delivered to the group.
    pub last_id: StreamId,
    /// The group's logical read counter; `None` when it cannot be known (Redis's
    /// `SCG_INVALID_ENTRIES_READ`).
    pub entries_read: Option<u64>,
    /// The pending entries list.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers by name.
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    /// A group whose last delivered id is `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Group {
        Group {
            last_id,
            entries_read,
            ..Group::default()
        }
    }

    /// The consumer `name`, created if absent; its seen-time becomes `now_ms` unless
    /// `refresh` is false. Returns whether it was created.
    pub fn touch_consumer(&mut self, name: &[u8], now_ms: u64, refresh: bool) -> bool {
        if let Some(c) = self.consumers.get_mut(name) {
            if refresh {
                c.seen_time = now_ms;
            }
            return false;
        }
        self.consumers.insert(
            Bytes::copy_from_slice(name),
            Consumer {
                seen_time: now_ms,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// Removes `id` from the PEL (and its owner's); true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Makes `consumer` own pending `id` (creating the PEL entry if needed), delivered at
    /// `now_ms`, with the delivery count set to `count` (or incremented if `None`).
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, time_ms: u64, count: Option<u64>) {
        if let Some(old) = self.pel.get(&id).map(|p| p.consumer.clone()) {
            if old != *consumer {
                if let Some(c) = self.consumers.get_mut(&old) {
                    c.pel.remove(&id);
                }
            }
        }
        let p = self.pel.entry(id).or_insert_with(|| Pending {
            consumer: consumer.clone(),
            delivery_time: time_ms,
            delivery_count: 0,
        });
        p.consumer = consumer.clone();
        p.delivery_time = time_ms;
        p.delivery_count = count.unwrap_or(p.delivery_count + 1);
        self.consumers
            .entry(consumer.clone())
            .or_insert_with(|| Consumer {
                seen_time: time_ms,
                pel: BTreeSet::new(),
            })
            .pel
            .insert(id);
    }

    /// Deletes consumer `name`; its pending entries leave the group's PEL. Returns how many it
    /// had, `None` if there was no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

/// How to pick a new entry's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewId {
    /// `*`: from the time (or after the last id).
    Auto,
    /// `ms-*`: this millisecond, the next free sequence.
    AutoSeq(u64),
    /// An explicit id.
    Exact(StreamId),
}

/// Why an entry could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The id is not above the last id (Redis's `EDOM`).
    NotAboveTop,
    /// The last id is [`StreamId::MAX`].
    Exhausted,
}

/// A trimming strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries below this id.
    MinId(StreamId),
}

/// A stream value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Entries in id order.
    pub entries: BTreeMap<StreamId, StreamEntry>,
    /// The last id ever added (or set by `XSETID`).
    pub last_id: StreamId,
    /// The largest id ever deleted by `XDEL`.
    pub max_deleted_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, Group>,
    /// The tail virtual node's number and how many entries were appended to it.
    pub tail: (u64, u64),
}

impl Stream {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry's id, `0-0` when empty.
    pub fn first_id(&self) -> StreamId {
        self.entries.keys().next().copied().unwrap_or_default()
    }

    /// The id the next entry gets (Redis's `streamAppendItem` rules), or why none can be.
    pub fn next_id(&self, want: NewId, now_ms: u64) -> Result<StreamId, AddError> {
        if self.last_id == StreamId::MAX {
            return Err(AddError::Exhausted);
        }
        let id = match want {
            NewId::Exact(id) => id,
            NewId::AutoSeq(ms) if ms == self.last_id.ms => {
                if self.last_id.seq == u64::MAX {
                    return Err(AddError::NotAboveTop);
                }
                StreamId::new(ms, self.last_id.seq + 1)
            }
            NewId::AutoSeq(ms) => StreamId::new(ms, 0),
            NewId::Auto if now_ms > self.last_id.ms => StreamId::new(now_ms, 0),
            NewId::Auto => self.last_id.next().ok_or(AddError::Exhausted)?,
        };
        if id <= self.last_id {
            return Err(AddError::NotAboveTop);
        }
        Ok(id)
    }

    /// Appends an entry with id `id` (from [`Stream::next_id`]) to the tail node, or to a new
    /// one when the tail has had `node_max` entries (0 = no limit) or the stream is empty.
    pub fn append(&mut self, id: StreamId, fields: Box<[Bytes]>, node_max: u64) {
        if self.entries.is_empty() || (node_max != 0 && self.tail.1 >= node_max) {
            self.tail = (self.tail.0 + 1, 0);
        }
        self.tail.1 += 1;
        let node = self.tail.0;
        self.entries.insert(id, StreamEntry { fields, node });
        self.entries_added += 1;
        self.last_id = id;
    }

    /// How many entries (always a prefix, in id order) trimming by `trim` removes; with
    /// `approx` only whole virtual nodes go, and at most `limit` entries (0 = no limit).
    pub fn trim_count(&self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let len = self.entries.len() as u64;
        let mut deleted = 0u64;
        if !approx {
            for id in self.entries.keys() {
                let go = match trim {
                    Trim::MaxLen(n) => len - deleted > n,
                    Trim::MinId(min) => *id < min,
                };
                if !go || (limit != 0 && deleted >= limit) {
                    break;
                }
                deleted += 1;
            }
            return deleted;
        }
        let mut it = self.entries.iter().peekable();
        while let Some((_, first)) = it.peek() {
            let node = first.node;
            let (mut count, mut last) = (0u64, StreamId::MIN);
            while let Some((id, e)) = it.peek() {
                if e.node != node {
                    break;
                }
                last = **id;
                count += 1;
                it.next();
            }
            if limit != 0 && deleted + count > limit {
                break;
            }
            let whole = match trim {
                Trim::MaxLen(n) => len - deleted - count >= n,
                Trim::MinId(min) => last < min,
            };
            if !whole {
                break;
            }
            deleted += count;
        }
        deleted
    }

    /// Trims as [`Stream::trim_count`] plans; returns the number of entries removed.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let n = self.trim_count(trim, approx, limit);
        for _ in 0..n {
            self.entries.pop_first();
        }
        n
    }

    /// Deletes entry `id`; true if it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        true
    }

    /// Entries from `start` to `end` inclusive, in id order or reversed.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&StreamId, &StreamEntry)> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let r = self.entries.range(start..=end);
        if rev {
            Box::new(r.rev())
        } else {
            Box::new(r)
        }
    }

    /// Redis's `streamRangeHasTombstones` from `start` on.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.entries.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id() > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`: `id`'s logical read counter, if
    /// it can be known.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.entries.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_id();
        if self.max_deleted_id.is_zero() || self.max_deleted_id < first {
            let base = self.entries_added - self.entries.len() as u64;
            match id.cmp(&first) {
                std::cmp::Ordering::Less => return Some(base),
                std::cmp::Ordering::Equal => return Some(base + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// A group's lag (entries not yet delivered to it), if it can be known.
    pub fn lag(&self, g: &Group) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match g.entries_read {
            Some(r) if !self.has_tombstones_from(g.last_id) => Some(r),
            _ => self.estimate_distance(g.last_id),
        };
        read.map(|r| self.entries_added.saturating_sub(r))
    }

    /// Advances `group`'s last delivered id to `id` (an entry being delivered), keeping its
    /// read counter as Redis does.
    pub fn advance_group(&self, group: &mut Group, id: StreamId) {
        if id <= group.last_id {
            return;
        }
        match group.entries_read {
            Some(r) if !self.has_tombstones_from(id) => group.entries_read = Some(r + 1),
            _ if self.entries_added != 0 => group.entries_read = self.estimate_distance(id),
            _ => {}
        }
        group.last_id = id;
    }

    /// A rough count of heap bytes, for memory reporting.
    pub fn heap_size(&self) -> usize {
        let b = std::mem::size_of::<Bytes>();
        let entries: usize = self
            .entries
            .values()
            .map(|e| 48 + e.fields.iter().map(|f| f.len() + b).sum::<usize>())
            .sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| {
                n.len()
                    + 96
                    + g.pel.len() * 80
                    + g.consumers.keys().map(|c| c.len() + 64).sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Stream>() + entries + groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Box<[Bytes]> {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")].into_boxed_slice()
    }

    fn add(s: &mut Stream, want: NewId, now: u64) -> Result<StreamId, AddError> {
        let id = s.next_id(want, now)?;
        s.append(id, fields(), NODE_MAX_ENTRIES);
        Ok(id)
    }

    #[test]
    fn ids_parse_as_redis_does() {
        let p = |a: &[u8]| StreamId::parse(a, 0, false, false).map(|p| p.id);
        assert_eq!(p(b"1-2"), Some(StreamId::new(1, 2)));
        assert_eq!(p(b"5"), Some(StreamId::new(5, 0)));
        assert_eq!(p(b"-"), Some(StreamId::MIN));
        assert_eq!(p(b"+"), Some(StreamId::MAX));
        assert_eq!(p(b"1-x"), None);
        assert_eq!(p(b""), None);
        assert_eq!(p(b"-1"), None);
        assert_eq!(p(b"1-2-3"), None);
        assert_eq!(p(b"18446744073709551616"), None);
        assert_eq!(StreamId::parse(b"+", 0, true, false), None);
        assert_eq!(
            StreamId::parse(b"7", u64::MAX, false, false)
                .unwrap()
                .id
                .seq,
            u64::MAX
        );
        let auto = StreamId::parse(b"7-*", 0, true, true).unwrap();
        assert!(!auto.seq_given);
        assert_eq!(StreamId::parse(b"7-*", 0, true, false), None);
        assert_eq!(StreamId::new(3, 4).to_string(), "3-4");
        assert_eq!(StreamId::new(3, u64::MAX).next(), Some(StreamId::new(4, 0)));
        assert_eq!(StreamId::new(3, 0).prev(), Some(StreamId::new(2, u64::MAX)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::MIN.prev(), None);
    }

    #[test]
    fn new_ids_follow_the_last_one() {
        let mut s = Stream::default();
        assert_eq!(add(&mut s, NewId::Auto, 10), Ok(StreamId::new(10, 0)));
        assert_eq!(add(&mut s, NewId::Auto, 10), Ok(StreamId::new(10, 1)));
        // A clock behind the last id continues after it.
        assert_eq!(add(&mut s, NewId::Auto, 5), Ok(StreamId::new(10, 2)));
        assert_eq!(add(&mut s, NewId::AutoSeq(10), 0), Ok(StreamId::new(10, 3)));
        assert_eq!(add(&mut s, NewId::AutoSeq(12), 0), Ok(StreamId::new(12, 0)));
        assert_eq!(
            add(&mut s, NewId::AutoSeq(11), 0),
            Err(AddError::NotAboveTop)
        );
        assert_eq!(
            add(&mut s, NewId::Exact(StreamId::new(12, 0)), 0),
            Err(AddError::NotAboveTop)
        );
        s.last_id = StreamId::MAX;
        assert_eq!(add(&mut s, NewId::Auto, 0), Err(AddError::Exhausted));
        assert_eq!(s.entries_added, 5);
    }

    #[test]
    fn approximate_trimming_removes_whole_nodes_only() {
        let mut s = Stream::default();
        for i in 0..1000 {
            add(&mut s, NewId::Auto, i + 1).unwrap();
            s.trim(Trim::MaxLen(555), true, 10_000);
        }
        assert_eq!(
            s.len(),
            600,
            "as Redis's test 'XADD with MAXLEN option and the ~ argument'"
        );
        assert_eq!(
            s.trim(Trim::MaxLen(10), true, 100),
            100,
            "LIMIT bounds the work"
        );
        assert_eq!(s.trim(Trim::MaxLen(10), false, 0), 490);
        assert_eq!(s.len(), 10);
        let first = s.first_id();
        assert_eq!(s.trim(Trim::MinId(first.next().unwrap()), false, 0), 1);
    }

    #[test]
    fn deletions_leave_tombstones_that_hide_the_read_counter() {
        let mut s = Stream::default();
        for i in 1..=5 {
            add(&mut s, NewId::Exact(StreamId::new(i, 0)), 0).unwrap();
        }
        let mut g = Group::new(StreamId::MIN, Some(0));
        assert_eq!(s.lag(&g), Some(5));
        s.advance_group(&mut g, StreamId::new(1, 0));
        assert_eq!(g.entries_read, Some(1));
        assert!(s.delete(StreamId::new(3, 0)));
        assert!(!s.delete(StreamId::new(3, 0)));
        assert_eq!(s.max_deleted_id, StreamId::new(3, 0));
        assert_eq!(s.lag(&g), None);
        s.advance_group(&mut g, StreamId::new(2, 0));
        assert_eq!(
            g.entries_read, None,
            "a tombstone ahead: the counter is lost"
        );
        s.advance_group(&mut g, StreamId::new(4, 0));
        s.advance_group(&mut g, StreamId::new(5, 0));
        assert_eq!(g.entries_read, Some(5));
        assert_eq!(s.lag(&g), Some(0));
    }

    #[test]
    fn pending_entries_move_between_consumers() {
        let mut g = Group::default();
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        let id = StreamId::new(1, 0);
        g.assign(id, &a, 10, None);
        g.assign(id, &b, 20, None);
        assert_eq!(g.pel[&id].delivery_count, 2);
        assert!(g.consumers[&a].pel.is_empty());
        assert!(g.consumers[&b].pel.contains(&id));
        assert_eq!(g.delete_consumer(b"b"), Some(1));
        assert!(g.pel.is_empty());
        assert!(!g.ack(id));
    }
}
