//! Set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SMEMBERS, with Redis's replies and
//! error texts. SMEMBERS is a RESP3 set (an array in RESP2); SISMEMBER and SMISMEMBER answer
//! integers in both protocols, as Redis 7 does. Removing the last member deletes the key;
//! writes keep the key's TTL.
//!
//! Reads use [`Shard::get_live`]; a command touches [`Shard::get_mut`] only once it knows it
//! will change the set, because a mutable access is what journals the key.

use bytes::Bytes;

use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::entry::SetValue;
use crate::store::{Entry, Shard, Value};

/// Set commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "SADD",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Adds one or more members to a set. Creates the key if it doesn't exist.",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        args: "key:key member:string...",
        handler: sadd,
        ..BASE
    },
    CommandSpec {
        name: "SREM",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Removes one or more members from a set. Deletes the set if the last member was removed.",
        complexity: "O(N) where N is the number of members to be removed.",
        args: "key:key member:string...",
        handler: srem,
        ..BASE
    },
    CommandSpec {
        name: "SISMEMBER",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Determines whether a member belongs to a set.",
        args: "key:key member:string",
        handler: sismember,
        ..BASE
    },
    CommandSpec {
        name: "SMISMEMBER",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Determines whether multiple members belong to a set.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of elements being checked for membership",
        args: "key:key member:string...",
        handler: smismember,
        ..BASE
    },
    CommandSpec {
        name: "SCARD",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Returns the number of members in a set.",
        args: "key:key",
        handler: scard,
        ..BASE
    },
    CommandSpec {
        name: "SMEMBERS",
        arity: 2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Returns all members of a set.",
        complexity: "O(N) where N is the set cardinality.",
        args: "key:key",
        handler: smembers,
        ..BASE
    },
];

/// The set at `key` for reading: `Ok(None)` if absent, `WrongType` for other kinds.
fn read<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s SetValue>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Set(m)) => Ok(Some(m)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The set at `key` for writing, created empty if absent. Call only after [`read`] succeeded:
/// a mutable access marks the key changed, and the caller must leave the set non-empty.
fn write<'s>(s: &'s mut Shard, key: &[u8], now: Nanos, exists: bool) -> &'s mut SetValue {
    if !exists {
        s.insert(key, Entry::new(Value::Set(SetValue::default())));
    }
    match s.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::Set(m)) => m,
        _ => unreachable!("invariant: read() found a set (or none) under the same lock"),
    }
}

fn sadd(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let members = &req[2..];
    ctx.with_shard(key, |s| {
        let existing = read(s, key, now)?;
        if existing.is_some_and(|set| members.iter().all(|m| set.contains(m))) {
            return Ok(Frame::Integer(0));
        }
        let exists = existing.is_some();
        let set = write(s, key, now, exists);
        // Copied so the keyspace never pins a connection's read buffer.
        let added = members
            .iter()
            .filter(|m| !set.contains(m.as_ref()) && set.insert(Bytes::copy_from_slice(m)))
            .count();
        Ok(Frame::Integer(added as i64))
    })
}

fn srem(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let members = &req[2..];
    ctx.with_shard(key, |s| {
        let Some(set) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        if !members.iter().any(|m| set.contains(m)) {
            return Ok(Frame::Integer(0));
        }
        let set = write(s, key, now, true);
        let removed = members
            .iter()
            .filter(|m| set.swap_remove(m.as_ref()))
            .count();
        if set.is_empty() {
            s.remove(key, now);
        }
        Ok(Frame::Integer(removed as i64))
    })
}

fn sismember(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let found = read(s, key, now)?.is_some_and(|set| set.contains(&req[2]));
        Ok(Frame::Integer(i64::from(found)))
    })
}

fn smismember(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let set = read(s, key, now)?;
        let flags = req[2..]
            .iter()
            .map(|m| Frame::Integer(i64::from(set.is_some_and(|set| set.contains(m)))))
            .collect();
        Ok(Frame::Array(flags))
    })
}

fn scard(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        Ok(Frame::Integer(
            read(s, key, now)?.map_or(0, |set| set.len() as i64),
        ))
    })
}

fn smembers(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let members = read(s, key, now)?.map_or_else(Vec::new, |set| {
            set.iter().map(|m| Frame::Bulk(m.clone())).collect()
        });
        Ok(Frame::Set(members))
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn add_remove_and_membership() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "a"]), int(2));
        assert_eq!(h.run(&["SADD", "s", "b", "c"]), int(1));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SCARD", "none"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(h.run(&["SISMEMBER", "s", "x"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "none", "x"]), int(0));
        assert_eq!(
            h.run(&["SMISMEMBER", "s", "a", "x", "c"]),
            Frame::Array(vec![int(1), int(0), int(1)])
        );
        assert_eq!(
            h.run(&["SMISMEMBER", "none", "a"]),
            Frame::Array(vec![int(0)])
        );
        assert_eq!(
            h.run(&["SMEMBERS", "s"]),
            Frame::Set(vec![bulk("a"), bulk("b"), bulk("c")])
        );
        assert_eq!(h.run(&["SMEMBERS", "none"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["TYPE", "s"]), simple("set"));
        assert_eq!(h.run(&["SREM", "s", "a", "a", "x"]), int(1));
        assert_eq!(h.run(&["SREM", "none", "a"]), int(0));
        assert_eq!(h.run(&["SREM", "s", "b", "c"]), int(2));
        assert_eq!(
            h.run(&["EXISTS", "s"]),
            int(0),
            "the emptied set is deleted"
        );
    }

    #[test]
    fn writes_keep_the_ttl() {
        let mut h = Harness::new();
        h.run(&["SADD", "s", "a"]);
        h.run(&["EXPIRE", "s", "10"]);
        h.run(&["SADD", "s", "b"]);
        h.run(&["SREM", "s", "a"]);
        assert_eq!(h.run(&["TTL", "s"]), int(10));
    }

    #[test]
    fn wrong_type_everywhere_and_reads_change_nothing() {
        let mut h = Harness::new();
        h.run(&["SET", "str", "v"]);
        let wrong = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for req in [
            &["SADD", "str", "a"][..],
            &["SREM", "str", "a"],
            &["SISMEMBER", "str", "a"],
            &["SMISMEMBER", "str", "a"],
            &["SCARD", "str"],
            &["SMEMBERS", "str"],
        ] {
            assert_eq!(h.run(req), wrong, "{req:?}");
        }
        h.run(&["SADD", "s", "a"]);
        let before = h.session.stats.dirty;
        for req in [
            &["SADD", "s", "a"][..],
            &["SREM", "s", "x"],
            &["SISMEMBER", "s", "a"],
            &["SMISMEMBER", "s", "a"],
            &["SCARD", "s"],
            &["SMEMBERS", "s"],
        ] {
            h.run(req);
        }
        assert_eq!(h.session.stats.dirty, before);
    }
}
