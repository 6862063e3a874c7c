//! One shard's table: keys and entries in dense slots, found through a small hash index.
//!
//! Layout, chosen for bytes per key (a limiter keyspace holds tens of millions of small keys):
//!
//! - **Slots** (`Key` + `Entry`, 48 bytes) are stored densely, numbered `0..len`, in chunks of
//!   [`CHUNK`] slots. Only the first chunk grows by doubling (so a shard with a handful of keys
//!   stays small); every later chunk is allocated at its full size once and never moved, so
//!   growing never copies the table or leaves half of it empty. Removal swaps the last slot
//!   into the hole (as `IndexMap::swap_remove` does), which keeps slot numbers dense: the
//!   active-expiry cursor and random sampling address slots by number.
//! - **The index** is a hashbrown [`HashTable<u32>`] of slot numbers: 4 bytes plus one control
//!   byte per bucket. Hashes are not stored; they are recomputed from the slot's key when the
//!   index grows (rare) and when a swap moves a slot (one hash of a short key).
//!
//! Keys of up to [`INLINE`] bytes are stored inside the slot ([`Key`]); longer ones in one heap
//! block. Everything here is safe Rust.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::Entry;

type Hasher = foldhash::fast::RandomState;

/// Slots per chunk (a power of two): 512 × 48 bytes = 24 KiB, one mimalloc size class, so a
/// shard wastes at most one partly filled chunk.
pub const CHUNK: usize = 512;
const CHUNK_BITS: u32 = CHUNK.trailing_zeros();

/// The longest key stored inline.
pub const INLINE: usize = 22;

/// A stored key: up to [`INLINE`] bytes inside the 24-byte value itself, longer keys in one
/// boxed slice. (The small-string crates do not fit: `compact_str` and `smol_str` hold UTF-8
/// only, while Redis keys are binary; `smallvec` needs 32 bytes for a 24-byte inline buffer.)
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    /// Copies `key`.
    pub fn from_slice(key: &[u8]) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key(Repr::Inline {
                len: key.len() as u8,
                bytes,
            })
        } else {
            Key(Repr::Heap(key.into()))
        }
    }

    /// The key's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// True when the key needed no heap block.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", bytes::Bytes::copy_from_slice(self.as_slice()))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

// Hashes as the bytes do, so maps keyed by `Key` can be queried with `&[u8]` (`Borrow`).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

#[derive(Debug)]
struct Slot {
    key: Key,
    entry: Entry,
}

/// A shard's map of key → [`Entry`] (see the module docs for the layout).
#[derive(Debug)]
pub struct Table {
    index: HashTable<u32>,
    /// Every chunk but the last holds exactly [`CHUNK`] slots; the last holds 1..=CHUNK.
    chunks: Vec<Vec<Slot>>,
    len: usize,
    hasher: Hasher,
}

/// What the index bookkeeping needs of the slots, borrowed apart from the index itself.
fn slot_of(chunks: &[Vec<Slot>], idx: usize) -> &Slot {
    &chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)]
}

impl Table {
    /// An empty table hashing keys with `hasher`.
    pub fn new(hasher: Hasher) -> Table {
        Table {
            index: HashTable::new(),
            chunks: Vec::new(),
            len: 0,
            hasher,
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buckets of the hash index (its capacity before growing is 7/8 of that).
    pub fn buckets(&self) -> usize {
        // hashbrown sizes its buckets as the next power of two above capacity·8/7.
        match self.index.capacity() {
            0 => 0,
            c if c < 8 => (c + 1).next_power_of_two(),
            c => (c * 8 / 7).next_power_of_two(),
        }
    }

    /// The slot number holding `key`.
    #[inline]
    pub fn index_of(&self, key: &[u8]) -> Option<usize> {
        self.find(key).ok()
    }

    /// The slot number holding `key`, or the key's hash for [`Table::push_new`] (one hash and
    /// one probe for a read followed by an insert).
    #[inline]
    pub fn find(&self, key: &[u8]) -> Result<usize, u64> {
        let h = self.hash(key);
        let chunks = &self.chunks;
        self.index
            .find(h, |&i| slot_of(chunks, i as usize).key.as_slice() == key)
            .map(|&i| i as usize)
            .ok_or(h)
    }

    /// Inserts `key`, which [`Table::find`] just reported absent with hash `h`; returns its
    /// slot number.
    pub fn push_new(&mut self, h: u64, key: &[u8], entry: Entry) -> usize {
        debug_assert_eq!(h, self.hash(key));
        self.push(h, Key::from_slice(key), entry);
        self.len - 1
    }

    /// The entry for `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.index_of(key).map(|i| self.entry(i))
    }

    /// The key and entry in slot `idx`.
    pub fn slot(&self, idx: usize) -> Option<(&[u8], &Entry)> {
        (idx < self.len).then(|| {
            let s = slot_of(&self.chunks, idx);
            (s.key.as_slice(), &s.entry)
        })
    }

    /// The entry in slot `idx` (`idx < len`).
    #[inline]
    pub fn entry(&self, idx: usize) -> &Entry {
        &slot_of(&self.chunks, idx).entry
    }

    /// The entry in slot `idx` (`idx < len`), for modification.
    #[inline]
    pub fn entry_mut(&mut self, idx: usize) -> &mut Entry {
        &mut self.chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)].entry
    }

    /// Inserts `key` or replaces its entry; returns the entry it held.
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        let h = self.hash(key);
        let chunks = &self.chunks;
        if let Some(&i) = self
            .index
            .find(h, |&i| slot_of(chunks, i as usize).key.as_slice() == key)
        {
            return Some(std::mem::replace(self.entry_mut(i as usize), entry));
        }
        self.push(h, Key::from_slice(key), entry);
        None
    }

    /// Appends a key known to be absent, with its hash.
    fn push(&mut self, h: u64, key: Key, entry: Entry) {
        let idx = u32::try_from(self.len)
            .expect("invariant: a shard holds fewer than 2^32 keys (that would be 200 GB)");
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(h, idx, |&i| {
            hasher.hash_one(slot_of(chunks, i as usize).key.as_slice())
        });
        let slot = Slot { key, entry };
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(slot),
            _ => {
                // The first chunk grows by doubling up to CHUNK; later ones start full-sized.
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(slot);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let idx = self.index_of(key)?;
        Some(self.swap_remove_index(idx).1)
    }

    /// Removes slot `idx` (`idx < len`), moving the last slot into it.
    pub fn swap_remove_index(&mut self, idx: usize) -> (Key, Entry) {
        assert!(idx < self.len, "slot {idx} out of {}", self.len);
        let last = self.len - 1;
        let h = self.hash(slot_of(&self.chunks, idx).key.as_slice());
        match self.index.find_entry(h, |&i| i as usize == idx) {
            Ok(e) => {
                e.remove();
            }
            Err(_) => unreachable!("invariant: every slot is in the index"),
        }
        let tail = self.chunks.last_mut().expect("invariant: len > 0");
        let moved = tail
            .pop()
            .expect("invariant: the last chunk is never empty");
        if tail.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        if idx == last {
            return (moved.key, moved.entry);
        }
        let h = self.hash(moved.key.as_slice());
        *self
            .index
            .find_mut(h, |&i| i as usize == last)
            .expect("invariant: every slot is in the index") = idx as u32;
        let hole = &mut self.chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)];
        let removed = std::mem::replace(hole, moved);
        (removed.key, removed.entry)
    }

    /// Keys and entries in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.chunks
            .iter()
            .flatten()
            .map(|s| (s.key.as_slice(), &s.entry))
    }

    /// Drops every entry and frees the memory.
    pub fn clear(&mut self) {
        self.index = HashTable::new();
        self.chunks = Vec::new();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Nanos;
    use crate::store::Value;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn slots_are_48_bytes_and_short_keys_inline() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Slot>(), 48);
        assert!(Key::from_slice(b"user:000000000001").is_inline());
        assert!(Key::from_slice(&[7; INLINE]).is_inline());
        assert!(!Key::from_slice(&[7; INLINE + 1]).is_inline());
        assert_eq!(Key::from_slice(&[7; 40]).as_slice(), &[7; 40][..]);
        assert_eq!(Key::from_slice(b"").as_slice(), b"");
    }

    #[test]
    fn chunks_after_the_first_are_allocated_once_at_full_size() {
        let mut t = Table::new(Hasher::default());
        for i in 0..(3 * CHUNK + 7) {
            t.insert(format!("k{i}").as_bytes(), Entry::new(Value::Int(i as i64)));
        }
        assert_eq!(t.chunks.len(), 4);
        assert!(t.chunks.iter().all(|c| c.capacity() == CHUNK));
        for i in 0..(CHUNK + 7) {
            t.remove(format!("k{i}").as_bytes());
        }
        assert_eq!(t.len(), 2 * CHUNK);
        assert_eq!(t.chunks.len(), 2, "emptied chunks are freed");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, i64),
        InsertExpiring(u16, u64),
        Remove(u16),
        RemoveAt(u16),
        Sweep(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u16..600, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0u16..600, 0u64..100).prop_map(|(k, t)| Op::InsertExpiring(k, t)),
            2 => (0u16..600).prop_map(Op::Remove),
            1 => any::<u16>().prop_map(Op::RemoveAt),
            1 => (0u64..100).prop_map(Op::Sweep),
        ]
    }

    /// Keys of every length class: short (inline) and long (heap).
    fn key(k: u16) -> Vec<u8> {
        if k % 3 == 0 {
            format!("a-long-key-that-does-not-fit-inline:{k}").into_bytes()
        } else {
            format!("user:{k:012}").into_bytes()
        }
    }

    fn check(t: &Table, model: &HashMap<Vec<u8>, Entry>) {
        assert_eq!(t.len(), model.len());
        let mut seen = 0;
        for (i, (k, e)) in t.iter().enumerate() {
            assert_eq!(model.get(k), Some(e), "slot {i}");
            assert_eq!(t.index_of(k), Some(i), "index of slot {i}");
            assert_eq!(t.slot(i).map(|(k2, _)| k2), Some(k));
            seen += 1;
        }
        assert_eq!(seen, model.len());
        for (k, e) in model {
            assert_eq!(t.get(k), Some(e));
        }
        assert!(t.slot(t.len()).is_none());
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..1500)) {
            let mut t = Table::new(Hasher::default());
            let mut model: HashMap<Vec<u8>, Entry> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let e = Entry::new(Value::Int(v));
                        prop_assert_eq!(t.insert(&key(k), e.clone()), model.insert(key(k), e));
                    }
                    Op::InsertExpiring(k, at) => {
                        let e = Entry::with_expiry(Value::Int(1), Some(Nanos(at)));
                        prop_assert_eq!(t.insert(&key(k), e.clone()), model.insert(key(k), e));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(t.remove(&key(k)), model.remove(&key(k)));
                    }
                    Op::RemoveAt(i) => {
                        if !t.is_empty() {
                            let i = usize::from(i) % t.len();
                            let (k, e) = t.swap_remove_index(i);
                            prop_assert_eq!(model.remove(k.as_slice()), Some(e));
                        }
                    }
                    Op::Sweep(now) => {
                        // The active expiry's walk: remove in place, re-examine the slot.
                        let mut i = 0;
                        while i < t.len() {
                            if t.entry(i).is_expired(Nanos(now)) {
                                t.swap_remove_index(i);
                            } else {
                                i += 1;
                            }
                        }
                        model.retain(|_, e| !e.is_expired(Nanos(now)));
                    }
                }
            }
            check(&t, &model);
            let buckets = t.buckets();
            prop_assert!(buckets == 0 || t.len() <= buckets * 7 / 8 + 1, "{} in {}", t.len(), buckets);
            t.clear();
            check(&t, &HashMap::new());
        }
    }
}
