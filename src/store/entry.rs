//! What the keyspace holds: an [`Entry`] is a [`Value`] plus an optional absolute expiry.
//! Limiter states live here as their own value kinds, so a key created by one family cannot be
//! misread by another (that is a `WRONGTYPE` error).
//!
//! Size matters here: every key of the keyspace holds one `Entry` (24 bytes). A [`Value`] is 16
//! bytes: the 8-byte states (an integer, a GCRA TAT) are stored inline, every larger value is
//! boxed so it does not widen the entries of the millions of limiter keys beside it. The
//! expiry is one `u64` with a sentinel for "never" instead of an `Option<Nanos>` (16 bytes).

use std::collections::VecDeque;

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

use crate::clock::Nanos;
use crate::limiter::breaker::BreakerState;
use crate::limiter::cost::CostState;
use crate::limiter::gcra::GcraState;
use crate::limiter::lease::LeaseState;
use crate::limiter::quota::QuotaState;
use crate::limiter::window::WindowState;
use crate::policy::reserve::Reservation;
use crate::store::stream::Stream;
use crate::store::zset::ZSet;

type Hasher = foldhash::fast::RandomState;

/// A hash's fields. Field order is unspecified on the wire (as in Redis); a removal swaps the
/// last field into the hole, so every operation stays O(1).
pub type HashValue = IndexMap<Bytes, Bytes, Hasher>;

/// A set's members (order unspecified on the wire, as in Redis).
pub type SetValue = IndexSet<Bytes, Hasher>;

/// One stored value. Values larger than 8 bytes are boxed (see the module docs); build them
/// with [`Value::str`] and the families' `StateKind::into_value`, or `Box::new`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A Redis string.
    Str(Box<Bytes>),
    /// A Redis string known to hold a canonical integer (the result of INCR and friends).
    Int(i64),
    /// A GCRA bucket (`CL.THROTTLE`, `GCRA`, `RATE.*`): its TAT, inline. A GCRA state that
    /// records its emission interval (a policy rule's, see [`GcraState::emission`]) is a
    /// [`Value::GcraRule`] instead, so that the common state keeps the value at 16 bytes.
    /// Build either with [`Value::gcra`], read either with [`Value::as_gcra`].
    Gcra(Nanos),
    /// A GCRA state with its emission interval recorded (policy rules), boxed.
    GcraRule(Box<GcraState>),
    /// A sliding window counter (`WINDOW.*`).
    Window(Box<WindowState>),
    /// A calendar quota (`QUOTA.*`).
    Quota(Box<QuotaState>),
    /// A decimal budget (`COST.*`).
    Cost(Box<CostState>),
    /// Concurrency leases (`LEASE.*`).
    Lease(Box<LeaseState>),
    /// A circuit breaker (`BREAKER.*`).
    Breaker(Box<BreakerState>),
    /// A Redis list. Invariant (all collections): never empty in the keyspace; a command that
    /// removes the last element deletes the key.
    List(Box<VecDeque<Bytes>>),
    /// A Redis hash.
    Hash(Box<HashValue>),
    /// A Redis set.
    Set(Box<SetValue>),
    /// A Redis sorted set.
    ZSet(Box<ZSet>),
    /// A policy reservation awaiting `LIMIT.SETTLE` (boxed: it is large and rare).
    Reservation(Box<Reservation>),
    /// A Redis stream. Unlike the other collections it may be empty (`XDEL` of every entry,
    /// `XGROUP CREATE ... MKSTREAM`), as in Redis.
    Stream(Box<Stream>),
}

impl Value {
    /// The value holding a GCRA `state`: inline when no emission interval is recorded.
    pub fn gcra(state: GcraState) -> Value {
        if state.emission == Nanos::ZERO {
            Value::Gcra(state.tat)
        } else {
            Value::GcraRule(Box::new(state))
        }
    }

    /// The GCRA state this value holds, if it is one.
    pub fn as_gcra(&self) -> Option<GcraState> {
        match self {
            Value::Gcra(tat) => Some(GcraState::at(*tat)),
            Value::GcraRule(s) => Some(**s),
            _ => None,
        }
    }

    /// A Redis string value.
    pub fn str(bytes: Bytes) -> Value {
        Value::Str(Box::new(bytes))
    }

    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
            Value::Gcra(_) | Value::GcraRule(_) => "gcra",
            Value::Window(_) => "window",
            Value::Quota(_) => "quota",
            Value::Cost(_) => "cost",
            Value::Lease(_) => "lease",
            Value::Breaker(_) => "breaker",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Reservation(_) => "reservation",
            Value::Stream(_) => "stream",
        }
    }

    /// Every name [`Value::type_name`] reports, indexed by [`Value::kind_index`].
    pub const TYPE_NAMES: [&'static str; 13] = [
        "string",
        "gcra",
        "window",
        "quota",
        "cost",
        "lease",
        "breaker",
        "list",
        "hash",
        "set",
        "zset",
        "reservation",
        "stream",
    ];

    /// The position of this value's type name in [`Value::TYPE_NAMES`].
    pub fn kind_index(&self) -> usize {
        match self {
            Value::Str(_) | Value::Int(_) => 0,
            Value::Gcra(_) | Value::GcraRule(_) => 1,
            Value::Window(_) => 2,
            Value::Quota(_) => 3,
            Value::Cost(_) => 4,
            Value::Lease(_) => 5,
            Value::Breaker(_) => 6,
            Value::List(_) => 7,
            Value::Hash(_) => 8,
            Value::Set(_) => 9,
            Value::ZSet(_) => 10,
            Value::Reservation(_) => 11,
            Value::Stream(_) => 12,
        }
    }

    /// True for the kinds Redis calls "string".
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Int(_))
    }

    /// The string bytes, if this is a string (integers are formatted).
    pub fn string_bytes(&self) -> Option<Bytes> {
        match self {
            Value::Str(b) => Some(Bytes::clone(b)),
            Value::Int(n) => Some(Bytes::from(itoa::Buffer::new().format(*n).to_owned())),
            _ => None,
        }
    }

    /// A rough count of heap bytes owned by the value, for memory reporting.
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of_val;
        match self {
            Value::Str(b) => BYTES_OVERHEAD + b.len(),
            Value::Int(_) | Value::Gcra(_) => 0,
            Value::GcraRule(s) => size_of_val(&**s),
            Value::Window(s) => size_of_val(&**s),
            Value::Quota(s) => size_of_val(&**s),
            Value::Cost(s) => size_of_val(&**s),
            Value::Breaker(s) => size_of_val(&**s),
            Value::Lease(l) => {
                size_of_val(&**l)
                    + l.leases.len() * std::mem::size_of::<crate::limiter::lease::Lease>()
            }
            Value::List(l) => {
                size_of_val(&**l) + l.iter().map(|e| e.len() + BYTES_OVERHEAD).sum::<usize>()
            }
            Value::Hash(h) => {
                size_of_val(&**h)
                    + h.iter()
                        .map(|(f, v)| f.len() + v.len() + 2 * BYTES_OVERHEAD + 8)
                        .sum::<usize>()
            }
            Value::Set(s) => {
                size_of_val(&**s)
                    + s.iter()
                        .map(|m| m.len() + BYTES_OVERHEAD + 8)
                        .sum::<usize>()
            }
            Value::ZSet(z) => size_of_val(&**z) + z.heap_size(),
            Value::Stream(s) => s.heap_size(),
            Value::Reservation(r) => {
                std::mem::size_of::<Reservation>()
                    + r.policy.len()
                    + r.identity.len()
                    + r.scope.as_ref().map_or(0, String::len)
                    + r.charges.iter().map(|c| c.key.len() + 16).sum::<usize>()
            }
        }
    }
}

/// The size of a `Bytes` handle, counted per collection element by [`Value::heap_size`].
const BYTES_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// The stored form of "never expires": 2^63, the one instant no expiry uses. Expiries given in
/// milliseconds from 2^63 ns on (year 2262) are kept as `2^63 + ms` with `ms` at least
/// 2^63 / 10^6 ([`Nanos::expiry_from_millis`]), so they never equal 2^63; nanosecond sums
/// that land on exactly 2^63 are stored one nanosecond earlier, which no reply can tell apart
/// (2^63 itself already reads back ambiguously through [`Nanos::expiry_millis`]).
const NEVER: u64 = 1 << 63;

/// A value and when it expires.
#[derive(Clone, PartialEq)]
pub struct Entry {
    /// The stored value.
    pub value: Value,
    /// Absolute expiry instant as [`Nanos`] stores it; [`NEVER`] means the key never expires.
    expiry: u64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

impl Entry {
    /// An entry without expiry.
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            expiry: NEVER,
        }
    }

    /// An entry that expires at `at` (or never for `None`).
    pub fn with_expiry(value: Value, at: Option<Nanos>) -> Entry {
        Entry {
            value,
            expiry: encode_expiry(at),
        }
    }

    /// The absolute expiry instant; `None` means the key never expires.
    #[inline]
    pub fn expires_at(&self) -> Option<Nanos> {
        (self.expiry != NEVER).then_some(Nanos(self.expiry))
    }

    /// Sets (or, with `None`, removes) the expiry.
    #[inline]
    pub fn set_expires_at(&mut self, at: Option<Nanos>) {
        self.expiry = encode_expiry(at);
    }

    /// True when the entry is logically gone at `now`.
    #[inline]
    pub fn is_expired(&self, now: Nanos) -> bool {
        self.expiry <= now.0 && self.expiry != NEVER
    }
}

#[inline]
fn encode_expiry(at: Option<Nanos>) -> u64 {
    match at {
        None => NEVER,
        Some(t) if t.0 == NEVER => NEVER - 1,
        Some(t) => t.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_index_names_the_type() {
        let values = [
            Value::Int(1),
            Value::Gcra(Nanos(1)),
            Value::gcra(GcraState {
                tat: Nanos(1),
                emission: Nanos(7),
            }),
            Value::List(Box::default()),
            Value::ZSet(Box::default()),
            Value::Stream(Box::default()),
        ];
        for v in values {
            assert_eq!(Value::TYPE_NAMES[v.kind_index()], v.type_name());
        }
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn expiry_round_trips_and_never_is_not_an_instant() {
        let mut e = Entry::new(Value::Int(1));
        assert_eq!(e.expires_at(), None);
        assert!(!e.is_expired(Nanos::MAX));
        assert!(!e.is_expired(Nanos(NEVER)));
        e.set_expires_at(Some(Nanos(10)));
        assert_eq!(e.expires_at(), Some(Nanos(10)));
        assert!(!e.is_expired(Nanos(9)));
        assert!(e.is_expired(Nanos(10)));
        // The farthest expiry Redis accepts (i64::MAX ms) is kept exactly.
        let far = Nanos::expiry_from_millis(i64::MAX as u64);
        e.set_expires_at(Some(far));
        assert_eq!(e.expires_at(), Some(far));
        assert_eq!(far.expiry_millis(), i64::MAX as u64);
        assert!(!e.is_expired(Nanos(1 << 62)));
        e.set_expires_at(Some(Nanos::MAX));
        assert_eq!(e.expires_at(), Some(Nanos::MAX));
        assert!(e.is_expired(Nanos::MAX));
        e.set_expires_at(Some(Nanos(NEVER)));
        assert_eq!(e.expires_at(), Some(Nanos(NEVER - 1)));
        e.set_expires_at(None);
        assert_eq!(e.expires_at(), None);
        assert_eq!(
            Entry::with_expiry(Value::Int(1), Some(Nanos(0))).expires_at(),
            Some(Nanos(0))
        );
    }
}
