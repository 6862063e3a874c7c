//! Set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SMEMBERS, SMOVE, SINTERCARD, with
//! Redis's replies and error texts (SPOP and SRANDMEMBER are in [`super::sampling`], SSCAN in
//! [`super::scan`], SINTER/SUNION/SDIFF and their STORE forms in [`super::set_algebra`]).
//! SMEMBERS is a RESP3 set (an array in RESP2); SISMEMBER and SMISMEMBER answer integers in
//! both protocols, as Redis 7 does. Removing the last member deletes the key;
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
use crate::store::{Entry, MultiGuard, Shard, Value};

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
    CommandSpec {
        name: "SMOVE",
        arity: 4,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "set",
        summary: "Move a member from one set to another",
        args: "source:key destination:key member:string",
        handler: smove,
        ..BASE
    },
    CommandSpec {
        name: "SINTERCARD",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "set",
        summary: "Intersect multiple sets and return the cardinality of the result",
        since: "7.0.0",
        complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        args: "numkeys:integer key:key... [LIMIT limit:integer]",
        handler: sintercard,
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
        s.insert(key, Entry::new(Value::Set(Box::default())));
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

fn smove(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (src, dst, member) = (&req[1], &req[2], &req[3]);
    ctx.with_keys_reporting(&[src, dst], |g| {
        match smove_locked(g, src, dst, member, now) {
            Ok((moved, written)) => (Ok(Frame::Integer(moved)), written),
            Err(e) => (Err(e), Vec::new()),
        }
    })
}

/// SMOVE under the locks: the reply, and the indices (0 = source, 1 = destination) of the
/// keys it changed. As in Redis, a destination that already holds the member is not modified:
/// no WATCH is invalidated and nothing is journaled for it.
fn smove_locked(
    g: &mut MultiGuard<'_>,
    src: &Bytes,
    dst: &Bytes,
    member: &Bytes,
    now: Nanos,
) -> Result<(i64, Vec<usize>), CommandError> {
    let Some(from) = read(g.shard(src), src, now)? else {
        return Ok((0, Vec::new()));
    };
    let has = from.contains(member);
    let to = read(g.shard(dst), dst, now)?;
    let (dst_exists, dst_has) = (to.is_some(), to.is_some_and(|t| t.contains(member)));
    if src == dst || !has {
        return Ok((i64::from(has), Vec::new()));
    }
    let from = write(g.shard(src), src, now, true);
    from.swap_remove(member.as_ref());
    if from.is_empty() {
        g.shard(src).remove(src, now);
    }
    if dst_has {
        return Ok((1, vec![0]));
    }
    write(g.shard(dst), dst, now, dst_exists).insert(Bytes::copy_from_slice(member));
    Ok((1, vec![0, 1]))
}

fn sintercard(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let numkeys = match super::args::parse_i64(&req[1]) {
        Some(n) if n >= 1 => n,
        _ => return Err(CommandError::other("numkeys should be greater than 0")),
    };
    if numkeys > (req.len() - 2) as i64 {
        return Err(CommandError::other(
            "Number of keys can't be greater than number of args",
        ));
    }
    let keys = super::counted_keys(req, 1);
    let mut limit = 0usize;
    let mut a = super::args::Args::new(req, 2 + keys.len());
    while let Some(opt) = a.next() {
        if super::args::is(opt, "LIMIT") && a.remaining() > 0 {
            limit = super::args::parse_i64(a.value()?)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| CommandError::other("LIMIT can't be negative"))?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    ctx.with_keys(keys, |g| {
        let mut sizes = Vec::with_capacity(keys.len());
        // Every key is type-checked, as in Redis, before an empty one ends the count.
        for k in keys {
            match g.shard(k).get(k, now).map(|e| &e.value) {
                None => sizes.push(0),
                Some(Value::Set(m)) => sizes.push(m.len()),
                Some(_) => return Err(CommandError::WrongType),
            }
        }
        let Some((smallest, _)) = sizes.iter().enumerate().min_by_key(|(_, n)| **n) else {
            return Ok(Frame::Integer(0));
        };
        // Handles are cheap to clone; the other sets are probed in place.
        let members: Vec<Bytes> = match g
            .shard(&keys[smallest])
            .get(&keys[smallest], now)
            .map(|e| &e.value)
        {
            Some(Value::Set(m)) => m.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let mut n = 0usize;
        for m in &members {
            let everywhere = keys.iter().enumerate().all(|(i, k)| {
                i == smallest
                    || matches!(g.shard(k).get(k, now).map(|e| &e.value),
                        Some(Value::Set(s)) if s.contains(m))
            });
            if everywhere {
                n += 1;
                if n == limit {
                    break;
                }
            }
        }
        Ok(Frame::Integer(n as i64))
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

    #[test]
    fn smove_touches_a_destination_only_when_it_adds_the_member() {
        let mut h = Harness::new();
        h.run(&["SADD", "a", "x", "y", "z"]);
        h.run(&["SADD", "b", "x"]);
        // The member is already in the destination: Redis leaves it alone, WATCH holds.
        h.run(&["WATCH", "b"]);
        assert_eq!(h.run(&["SMOVE", "a", "b", "x"]), int(1));
        h.run(&["MULTI"]);
        h.run(&["PING"]);
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![simple("PONG")]));
        assert_eq!(h.run(&["SISMEMBER", "a", "x"]), int(0));
        // Added to the destination: a change, which aborts the transaction.
        h.run(&["WATCH", "b"]);
        assert_eq!(h.run(&["SMOVE", "a", "b", "y"]), int(1));
        h.run(&["MULTI"]);
        h.run(&["PING"]);
        assert_eq!(h.run(&["EXEC"]), Frame::NullArray);
        assert_eq!(h.run(&["SCARD", "b"]), int(2));
    }

    #[test]
    fn smove_moves_one_member() {
        let mut h = Harness::new();
        h.run(&["SADD", "a", "x", "y"]);
        h.run(&["EXPIRE", "a", "10"]);
        assert_eq!(h.run(&["SMOVE", "a", "b", "x"]), int(1));
        assert_eq!(h.run(&["SMEMBERS", "b"]), Frame::Set(vec![bulk("x")]));
        assert_eq!(h.run(&["TTL", "a"]), int(10));
        assert_eq!(h.run(&["SMOVE", "a", "b", "x"]), int(0), "no longer in a");
        assert_eq!(h.run(&["SMOVE", "none", "b", "x"]), int(0));
        assert_eq!(
            h.run(&["SMOVE", "a", "a", "y"]),
            int(1),
            "same set: membership"
        );
        assert_eq!(h.run(&["SMOVE", "a", "a", "q"]), int(0));
        assert_eq!(h.run(&["SMOVE", "a", "b", "y"]), int(1));
        assert_eq!(
            h.run(&["EXISTS", "a"]),
            int(0),
            "the emptied source is deleted"
        );
        assert_eq!(h.run(&["SCARD", "b"]), int(2));
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["SMOVE", "b", "str", "x"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SMOVE", "str", "b", "x"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SMOVE", "none", "str", "x"]),
            int(0),
            "a missing source first"
        );
        assert_eq!(h.run(&["SCARD", "b"]), int(2), "an error moves nothing");
    }

    #[test]
    fn sintercard_counts_with_a_limit() {
        let mut h = Harness::new();
        h.run(&["SADD", "a", "1", "2", "3", "4"]);
        h.run(&["SADD", "b", "2", "3", "4", "5"]);
        h.run(&["SADD", "c", "3", "4", "9"]);
        assert_eq!(h.run(&["SINTERCARD", "2", "a", "b"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "3", "a", "b", "c"]), int(2));
        assert_eq!(h.run(&["SINTERCARD", "2", "a", "b", "LIMIT", "2"]), int(2));
        assert_eq!(h.run(&["SINTERCARD", "2", "a", "b", "LIMIT", "0"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "1", "a"]), int(4));
        assert_eq!(h.run(&["SINTERCARD", "2", "a", "none"]), int(0));
        assert_eq!(
            h.run(&["SINTERCARD", "0", "a"]),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "x", "a"]),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "3", "a", "b"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "1", "a", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "1", "a", "LIMIT"]),
            err("ERR syntax error")
        );
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["SINTERCARD", "2", "none", "str"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&[
                "COMMAND",
                "GETKEYS",
                "SINTERCARD",
                "2",
                "a",
                "b",
                "LIMIT",
                "1"
            ]),
            Frame::Array(vec![bulk("a"), bulk("b")])
        );
    }
}
