//! What the keyspace holds: an [`Entry`] is a [`Value`] plus an optional absolute expiry.
//! Limiter states live here as their own value kinds, so a key created by one family cannot be
//! misread by another (that is a `WRONGTYPE` error).

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
use crate::store::zset::ZSet;

type Hasher = foldhash::fast::RandomState;

/// A hash's fields. Field order is unspecified on the wire (as in Redis); a removal swaps the
/// last field into the hole, so every operation stays O(1).
pub type HashValue = IndexMap<Bytes, Bytes, Hasher>;

/// A set's members (order unspecified on the wire, as in Redis).
pub type SetValue = IndexSet<Bytes, Hasher>;

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A Redis string.
    Str(Bytes),
    /// A Redis string known to hold a canonical integer (the result of INCR and friends).
    Int(i64),
    /// A GCRA bucket (`CL.THROTTLE`, `GCRA`, `RATE.*`).
    Gcra(GcraState),
    /// A sliding window counter (`WINDOW.*`).
    Window(WindowState),
    /// A calendar quota (`QUOTA.*`).
    Quota(QuotaState),
    /// A decimal budget (`COST.*`).
    Cost(CostState),
    /// Concurrency leases (`LEASE.*`).
    Lease(LeaseState),
    /// A circuit breaker (`BREAKER.*`).
    Breaker(BreakerState),
    /// A Redis list. Invariant (all collections): never empty in the keyspace; a command that
    /// removes the last element deletes the key.
    List(VecDeque<Bytes>),
    /// A Redis hash.
    Hash(HashValue),
    /// A Redis set.
    Set(SetValue),
    /// A Redis sorted set.
    ZSet(ZSet),
    /// A policy reservation awaiting `LIMIT.SETTLE` (boxed: it is large and rare).
    Reservation(Box<Reservation>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
            Value::Gcra(_) => "gcra",
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
        }
    }

    /// True for the kinds Redis calls "string".
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Int(_))
    }

    /// The string bytes, if this is a string (integers are formatted).
    pub fn string_bytes(&self) -> Option<Bytes> {
        match self {
            Value::Str(b) => Some(b.clone()),
            Value::Int(n) => Some(Bytes::from(itoa::Buffer::new().format(*n).to_owned())),
            _ => None,
        }
    }

    /// A rough count of heap bytes owned by the value, for memory reporting.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Lease(l) => l.leases.len() * std::mem::size_of::<crate::limiter::lease::Lease>(),
            Value::List(l) => l.iter().map(|e| e.len() + BYTES_OVERHEAD).sum(),
            Value::Hash(h) => h
                .iter()
                .map(|(f, v)| f.len() + v.len() + 2 * BYTES_OVERHEAD + 8)
                .sum(),
            Value::Set(s) => s.iter().map(|m| m.len() + BYTES_OVERHEAD + 8).sum(),
            Value::ZSet(z) => z.heap_size(),
            Value::Reservation(r) => {
                std::mem::size_of::<Reservation>()
                    + r.policy.len()
                    + r.identity.len()
                    + r.scope.as_ref().map_or(0, String::len)
                    + r.charges.iter().map(|c| c.key.len() + 16).sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// The size of a `Bytes` handle, counted per collection element by [`Value::heap_size`].
const BYTES_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// A value and when it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stored value.
    pub value: Value,
    /// Absolute expiry instant; `None` means the key never expires.
    pub expires_at: Option<Nanos>,
}

impl Entry {
    /// An entry without expiry.
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            expires_at: None,
        }
    }

    /// An entry that expires at `at` (or never for `None`).
    pub fn with_expiry(value: Value, at: Option<Nanos>) -> Entry {
        Entry {
            value,
            expires_at: at,
        }
    }

    /// True when the entry is logically gone at `now`.
    pub fn is_expired(&self, now: Nanos) -> bool {
        matches!(self.expires_at, Some(at) if at <= now)
    }
}
