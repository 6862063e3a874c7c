//! Hash commands: HSET, HGET, HMGET, HGETALL, HINCRBY, HDEL, HLEN, with Redis's replies and
//! error texts. HGETALL is a RESP3 map (a flat field/value array in RESP2). Removing the last
//! field deletes the key; writes keep the key's TTL.
//!
//! Reads use [`Shard::get_live`]; a command touches [`Shard::get_mut`] only once it knows it
//! will change the hash, because a mutable access is what journals the key.

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::entry::HashValue;
use crate::store::{Entry, Shard, Value};

/// Hash commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "HSET",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Creates or modifies the value of a field in a hash.",
        since: "2.0.0",
        complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        args: "key:key data=(field:string value:string)...",
        handler: hset,
        ..BASE
    },
    CommandSpec {
        name: "HGET",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Returns the value of a field in a hash.",
        since: "2.0.0",
        args: "key:key field:string",
        handler: hget,
        ..BASE
    },
    CommandSpec {
        name: "HMGET",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Returns the values of all fields in a hash.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of fields being requested.",
        args: "key:key field:string...",
        handler: hmget,
        ..BASE
    },
    CommandSpec {
        name: "HGETALL",
        arity: 2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Returns all fields and values in a hash.",
        since: "2.0.0",
        complexity: "O(N) where N is the size of the hash.",
        args: "key:key",
        handler: hgetall,
        ..BASE
    },
    CommandSpec {
        name: "HINCRBY",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        since: "2.0.0",
        args: "key:key field:string increment:integer",
        handler: hincrby,
        ..BASE
    },
    CommandSpec {
        name: "HDEL",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of fields to be removed.",
        args: "key:key field:string...",
        handler: hdel,
        ..BASE
    },
    CommandSpec {
        name: "HLEN",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Returns the number of fields in a hash.",
        since: "2.0.0",
        args: "key:key",
        handler: hlen,
        ..BASE
    },
    CommandSpec {
        name: "HMSET",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Set multiple hash fields to multiple values",
        since: "2.0.0",
        complexity: "O(N) where N is the number of fields being set.",
        args: "key:key data=(field:string value:string)...",
        handler: |ctx, req| {
            if req.len() % 2 != 0 {
                return Err(CommandError::WrongArity("hmset".into()));
            }
            hset(ctx, req).map(|_| Frame::OK)
        },
        ..BASE
    },
];

/// The hash at `key` for reading: `Ok(None)` if absent, `WrongType` for other kinds.
pub(super) fn read<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s HashValue>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The hash at `key` for writing, created empty if absent. Call only after [`read`] succeeded:
/// a mutable access marks the key changed, and the caller must leave the hash non-empty.
pub(super) fn write<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
    exists: bool,
) -> &'s mut HashValue {
    if !exists {
        s.insert(key, Entry::new(Value::Hash(Box::default())));
    }
    match s.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::Hash(h)) => h,
        _ => unreachable!("invariant: read() found a hash (or none) under the same lock"),
    }
}

/// Copied so the keyspace never pins a connection's read buffer.
pub(super) fn owned(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// Up to this many fields Redis keeps a hash as a listpack, whose HGETALL order is insertion
/// order even after deletions; larger hashes have no defined order.
const ORDERED_FIELDS: usize = 128;

/// Removes `field`; keeps the insertion order of small hashes (O(n), as Redis's listpack) and
/// swaps in the last field for large ones (O(1)).
fn remove_field(h: &mut HashValue, field: &[u8]) -> bool {
    if h.len() <= ORDERED_FIELDS {
        h.shift_remove(field).is_some()
    } else {
        h.swap_remove(field).is_some()
    }
}

fn hset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() % 2 != 0 {
        return Err(CommandError::WrongArity("hset".into()));
    }
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let exists = read(s, key, now)?.is_some();
        let h = write(s, key, now, exists);
        let mut added = 0;
        for pair in req[2..].chunks_exact(2) {
            match h.get_mut(&pair[0]) {
                Some(v) => *v = owned(&pair[1]),
                None => {
                    h.insert(owned(&pair[0]), owned(&pair[1]));
                    added += 1;
                }
            }
        }
        Ok(Frame::Integer(added))
    })
}

fn hget(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let v = read(s, key, now)?.and_then(|h| h.get(&req[2]).cloned());
        Ok(v.map_or(Frame::Null, Frame::Bulk))
    })
}

fn hmget(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let h = read(s, key, now)?;
        let values = req[2..]
            .iter()
            .map(|f| {
                h.and_then(|h| h.get(f).cloned())
                    .map_or(Frame::Null, Frame::Bulk)
            })
            .collect();
        Ok(Frame::Array(values))
    })
}

fn hgetall(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let pairs = read(s, key, now)?.map_or_else(Vec::new, |h| {
            h.iter()
                .map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone())))
                .collect()
        });
        Ok(Frame::Map(pairs))
    })
}

fn hincrby(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let by = args::int(&req[3])?;
    let now = ctx.now;
    let (key, field) = (&req[1], &req[2]);
    ctx.with_shard(key, |s| {
        let h = read(s, key, now)?;
        let cur = match h.and_then(|h| h.get(field)) {
            None => 0,
            Some(v) => args::parse_i64(v)
                .ok_or_else(|| CommandError::other("hash value is not an integer"))?,
        };
        let next = cur.checked_add(by).ok_or(CommandError::Overflow)?;
        let text = Bytes::from(itoa::Buffer::new().format(next).to_owned());
        let exists = h.is_some();
        let h = write(s, key, now, exists);
        match h.get_mut(field) {
            Some(v) => *v = text,
            None => {
                h.insert(owned(field), text);
            }
        }
        Ok(Frame::Integer(next))
    })
}

fn hdel(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let fields = &req[2..];
    ctx.with_shard(key, |s| {
        let Some(h) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        if !fields.iter().any(|f| h.contains_key(f)) {
            return Ok(Frame::Integer(0));
        }
        let h = write(s, key, now, true);
        let removed = fields.iter().filter(|f| remove_field(h, f)).count();
        if h.is_empty() {
            s.remove(key, now);
        }
        Ok(Frame::Integer(removed as i64))
    })
}

fn hlen(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        Ok(Frame::Integer(
            read(s, key, now)?.map_or(0, |h| h.len() as i64),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn hset_hget_hmget_hlen() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSET", "h", "a", "1", "b", "2"]), int(2));
        assert_eq!(h.run(&["HSET", "h", "a", "10", "c", "3"]), int(1));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("10"));
        assert_eq!(h.run(&["HGET", "h", "x"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "none", "x"]), Frame::Null);
        assert_eq!(
            h.run(&["HMGET", "h", "a", "x", "c"]),
            Frame::Array(vec![bulk("10"), Frame::Null, bulk("3")])
        );
        assert_eq!(
            h.run(&["HMGET", "none", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        assert_eq!(h.run(&["HLEN", "h"]), int(3));
        assert_eq!(h.run(&["HLEN", "none"]), int(0));
        assert_eq!(h.run(&["TYPE", "h"]), simple("hash"));
        assert_eq!(
            h.run(&["HSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            h.run(&["HSET", "h", "a"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
    }

    #[test]
    fn hgetall_is_a_map_in_insertion_order() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "b", "2", "a", "1"]);
        assert_eq!(
            h.run(&["HGETALL", "h"]),
            Frame::Map(vec![(bulk("b"), bulk("2")), (bulk("a"), bulk("1"))])
        );
        assert_eq!(h.run(&["HGETALL", "none"]), Frame::Map(vec![]));
        h.run(&["HSET", "h", "c", "3"]);
        h.run(&["HDEL", "h", "b"]);
        assert_eq!(
            h.run(&["HGETALL", "h"]),
            Frame::Map(vec![(bulk("a"), bulk("1")), (bulk("c"), bulk("3"))]),
            "a small hash keeps its order across deletions, as a Redis listpack"
        );
    }

    #[test]
    fn hincrby_counts_and_refuses_non_integers() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HINCRBY", "h", "n", "5"]), int(5));
        assert_eq!(h.run(&["HINCRBY", "h", "n", "-7"]), int(-2));
        assert_eq!(h.run(&["HGET", "h", "n"]), bulk("-2"));
        h.run(&[
            "HSET",
            "h",
            "s",
            "abc",
            "big",
            "9223372036854775807",
            "sp",
            " 1",
        ]);
        assert_eq!(
            h.run(&["HINCRBY", "h", "s", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            h.run(&["HINCRBY", "h", "sp", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            h.run(&["HINCRBY", "h", "big", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            h.run(&["HINCRBY", "h", "n", "1.5"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["HINCRBY", "new", "n", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["EXISTS", "new"]), int(0));
    }

    #[test]
    fn hdel_deletes_the_emptied_key_and_writes_keep_the_ttl() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "a", "1", "b", "2"]);
        h.run(&["EXPIRE", "h", "10"]);
        assert_eq!(h.run(&["HINCRBY", "h", "c", "1"]), int(1));
        assert_eq!(h.run(&["TTL", "h"]), int(10));
        assert_eq!(h.run(&["HDEL", "h", "a", "a", "x"]), int(1));
        assert_eq!(h.run(&["HDEL", "none", "a"]), int(0));
        assert_eq!(h.run(&["HDEL", "h", "b", "c"]), int(2));
        assert_eq!(h.run(&["EXISTS", "h"]), int(0));
        h.run(&["HSET", "h", "a", "1"]);
        h.run(&["PEXPIRE", "h", "5"]);
        h.clock.advance(Duration::from_millis(5));
        assert_eq!(h.run(&["HGET", "h", "a"]), Frame::Null);
        assert_eq!(h.run(&["HLEN", "h"]), int(0));
    }

    #[test]
    fn wrong_type_everywhere_and_reads_change_nothing() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        let wrong = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for req in [
            &["HSET", "s", "a", "1"][..],
            &["HGET", "s", "a"],
            &["HMGET", "s", "a"],
            &["HGETALL", "s"],
            &["HINCRBY", "s", "a", "1"],
            &["HDEL", "s", "a"],
            &["HLEN", "s"],
        ] {
            assert_eq!(h.run(req), wrong, "{req:?}");
        }
        h.run(&["HSET", "h", "a", "1"]);
        let before = h.session.stats.dirty;
        for req in [
            &["HGET", "h", "a"][..],
            &["HMGET", "h", "a"],
            &["HGETALL", "h"],
            &["HLEN", "h"],
            &["HDEL", "h", "x"],
            &["HSET", "s", "a", "1"],
        ] {
            h.run(req);
        }
        assert_eq!(h.session.stats.dirty, before);
    }

    #[test]
    fn hmset_answers_ok() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HMSET", "h", "a", "1", "b", "2"]), Frame::OK);
        assert_eq!(h.run(&["HMSET", "h", "a", "3"]), Frame::OK);
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("3"));
        assert_eq!(h.run(&["HLEN", "h"]), int(2));
        assert_eq!(
            h.run(&["HMSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        h.run(&["SET", "s", "v"]);
        assert_eq!(
            h.run(&["HMSET", "s", "a", "1"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
    }
}
