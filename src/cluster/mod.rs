//! Redis Cluster's data model, without a cluster bus: the hash slot of a key, the topology an
//! operator pushes (nodes, slot ranges, replicas, a config epoch, the policy version), and the
//! live routing state a node consults before running a keyed command.
//!
//! Pure: no sockets, no files, no clock. `cmd::cluster` renders the `CLUSTER` replies and
//! checks requests against [`Cluster`]; `cli::cluster` reads the TOML an operator writes and
//! pushes the JSON [`Topology`] to every node. Nothing here knows commands or the keyspace.

mod state;
mod topology;

pub use state::{Cluster, Route, SlotState};
pub use topology::{Node, Replica, Topology, TopologyError};

/// Number of hash slots.
pub const SLOTS: usize = 16_384;

/// The part of `key` that is hashed: the text between the first `{` and the first `}` after
/// it when that is not empty (a hash tag), else the whole key, as Redis's `keyHashSlot`.
pub fn hash_part(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The hash slot of `key`: CRC16/XMODEM of its [`hash_part`] modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_part(key)) & (SLOTS as u16 - 1)
}

/// The hash tag to put in a key derived from `identity` so that the derived key lands in the
/// identity's own slot: `{tag}` with `tag` the identity's [`hash_part`]. `None` when no tag can
/// express it: the hashed part is empty or holds a `}` (an identity such as `a}b` or `{}x`,
/// whose slot is the CRC of text that a tag cannot contain).
pub fn identity_tag(identity: &[u8]) -> Option<&[u8]> {
    let part = hash_part(identity);
    (!part.is_empty() && memchr::memchr(b'}', part).is_none()).then_some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from Redis's own tests and CLUSTER KEYSLOT on redis-server 7.0.
        for (key, slot) in [
            (&b"foo"[..], 12182),
            (b"bar", 5061),
            (b"123456789", 12739),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"", 0),
        ] {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn identity_tags_reproduce_the_identity_slot() {
        for id in [&b"customer-42"[..], b"{u1}:x", b"a{b", b"x{y}z{w}"] {
            let tag = identity_tag(id).expect("expressible");
            let mut k = b"limitkv:{".to_vec();
            k.extend_from_slice(tag);
            k.extend_from_slice(b"}:p::r:");
            k.extend_from_slice(id);
            assert_eq!(
                key_slot(&k),
                key_slot(id),
                "{}",
                String::from_utf8_lossy(id)
            );
        }
        assert_eq!(identity_tag(b"a}b"), None);
        assert_eq!(identity_tag(b"{}x"), None);
        assert_eq!(identity_tag(b""), None);
    }
}
