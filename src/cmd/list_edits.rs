//! List commands that edit a list in place or move elements between lists: LPUSHX, RPUSHX,
//! LSET, LINSERT, LREM, RPOPLPUSH, LMOVE and LMPOP, with Redis 7.0's replies, error texts and
//! argument checks in Redis's order. They share [`super::lists`]'s helpers: read under the lock
//! first, take a mutable access (which journals the key) only once the list will change, and
//! delete a list that became empty. Commands on two or more keys lock every shard involved with
//! one [`Ctx::with_keys`], so they are atomic and type-check every key before changing any.
//! The blocking variants (BLPOP, BLMOVE, BLMPOP, ...) are not implemented.

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::lists::{drop_if_empty, push, read, write, End, List};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, Value};

/// List commands that edit or move elements.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LPUSHX",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Prepends one or more elements to a list only when the list exists.",
        since: "2.2.0",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        args: "key:key element:string...",
        handler: |ctx, req| push(ctx, req, End::Left, false),
        ..BASE
    },
    CommandSpec {
        name: "RPUSHX",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Appends an element to a list only when the list exists.",
        since: "2.2.0",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        args: "key:key element:string...",
        handler: |ctx, req| push(ctx, req, End::Right, false),
        ..BASE
    },
    CommandSpec {
        name: "LSET",
        arity: 4,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Sets the value of an element in a list by its index.",
        complexity: "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        args: "key:key index:integer element:string",
        handler: lset,
        ..BASE
    },
    CommandSpec {
        name: "LINSERT",
        arity: 5,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Inserts an element before or after another element in a list.",
        since: "2.2.0",
        complexity: "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        args: "key:key where=(BEFORE|AFTER) pivot:string element:string",
        handler: linsert,
        ..BASE
    },
    CommandSpec {
        name: "LREM",
        arity: 4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Removes elements from a list. Deletes the list if the last element was removed.",
        complexity: "O(N+M) where N is the length of the list and M is the number of elements removed.",
        args: "key:key count:integer element:string",
        handler: lrem,
        ..BASE
    },
    CommandSpec {
        name: "RPOPLPUSH",
        arity: 3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "list",
        summary: "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
        since: "1.2.0",
        args: "source:key destination:key",
        handler: |ctx, req| lmove_between(ctx, req, End::Right, End::Left),
        ..BASE
    },
    CommandSpec {
        name: "LMOVE",
        arity: 5,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "list",
        summary: "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
        since: "6.2.0",
        args: "source:key destination:key wherefrom=(LEFT|RIGHT) whereto=(LEFT|RIGHT)",
        handler: lmove,
        ..BASE
    },
    CommandSpec {
        name: "LMPOP",
        arity: -4,
        flags: WRITE | MOVABLEKEYS,
        group: "list",
        summary: "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        since: "7.0.0",
        complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        args: "numkeys:integer key:key... where=(LEFT|RIGHT) [COUNT count:integer]",
        handler: lmpop,
        ..BASE
    },
];

/// `LEFT` or `RIGHT` (any case), else a syntax error.
fn end_of(arg: &[u8]) -> Result<End, CommandError> {
    if args::is(arg, "LEFT") {
        Ok(End::Left)
    } else if args::is(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(CommandError::Syntax)
    }
}

fn take(l: &mut List, end: End) -> Option<Bytes> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

fn put(l: &mut List, end: End, v: Bytes) {
    match end {
        End::Left => l.push_front(v),
        End::Right => l.push_back(v),
    }
}

/// Redis's order: a missing key, then the type, then the index.
fn lset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Err(CommandError::other("no such key"));
        };
        let index = args::int(&req[2])?;
        let len = l.len() as i64;
        let i = if index < 0 { len + index } else { index };
        if !(0..len).contains(&i) {
            return Err(CommandError::other("index out of range"));
        }
        // Copied so the keyspace never pins a connection's read buffer.
        write(s, key, now)[i as usize] = Bytes::copy_from_slice(&req[3]);
        Ok(Frame::OK)
    })
}

/// The length after inserting; -1 when the pivot is missing, 0 when the key is.
fn linsert(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let after = if args::is(&req[2], "AFTER") {
        true
    } else if args::is(&req[2], "BEFORE") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        let Some(at) = l.iter().position(|e| e == &req[3]) else {
            return Ok(Frame::Integer(-1));
        };
        let l = write(s, key, now);
        l.insert(at + usize::from(after), Bytes::copy_from_slice(&req[4]));
        Ok(Frame::Integer(l.len() as i64))
    })
}

/// Removes `count` matches from the head (count > 0), from the tail (count < 0) or all of them
/// (0); the number removed.
fn lrem(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let count = args::int(&req[2])?;
    let now = ctx.now;
    let key = &req[1];
    let element = &req[3];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        let limit = match count.unsigned_abs() {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let matches = l.iter().enumerate().filter(|(_, e)| *e == element);
        let mut doomed: Vec<usize> = if count < 0 {
            matches.rev().take(limit).map(|(i, _)| i).collect()
        } else {
            matches.take(limit).map(|(i, _)| i).collect()
        };
        if doomed.is_empty() {
            return Ok(Frame::Integer(0));
        }
        doomed.sort_unstable();
        let l = write(s, key, now);
        let (mut i, mut next) = (0, doomed.iter().peekable());
        l.retain(|_| {
            let gone = next.peek() == Some(&&i);
            if gone {
                next.next();
            }
            i += 1;
            !gone
        });
        drop_if_empty(s, key, now);
        Ok(Frame::Integer(doomed.len() as i64))
    })
}

fn lmove(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let from = end_of(&req[3])?;
    let to = end_of(&req[4])?;
    lmove_between(ctx, req, from, to)
}

/// Pops from `source`'s `from` end and pushes on `destination`'s `to` end, under one lock of
/// both shards. As in Redis, a missing source is a null reply whatever the destination holds;
/// otherwise the destination's type is checked before anything changes. The same key rotates.
fn lmove_between(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    from: End,
    to: End,
) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (src, dst) = (&req[1], &req[2]);
    ctx.with_keys(&[src, dst], |g| {
        if read(g.shard(src), src, now)?.is_none() {
            return Ok(Frame::Null);
        }
        if read(g.shard(dst), dst, now)?.is_none() {
            g.shard(dst)
                .insert(dst, Entry::new(Value::List(Box::default())));
        }
        let Some(v) = take(write(g.shard(src), src, now), from) else {
            unreachable!("invariant: a stored list is never empty");
        };
        put(write(g.shard(dst), dst, now), to, v.clone());
        drop_if_empty(g.shard(src), src, now);
        Ok(Frame::Bulk(v))
    })
}

/// `LMPOP numkeys key... LEFT|RIGHT [COUNT count]`: pops up to `count` elements from the first
/// non-empty list among the keys; `[key, [element...]]`, or a null array when all are empty.
fn lmpop(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let numkeys = match args::parse_i64(&req[1]) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err(CommandError::other("numkeys should be greater than 0")),
    };
    let where_at = match numkeys.checked_add(2) {
        Some(at) if at < req.len() => at,
        _ => return Err(CommandError::Syntax),
    };
    let end = end_of(&req[where_at])?;
    let mut count = None;
    let mut a = args::Args::new(req, where_at + 1);
    while let Some(opt) = a.next() {
        if count.is_none() && args::is(opt, "COUNT") && a.remaining() > 0 {
            count = Some(
                args::parse_i64(a.value()?)
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| CommandError::other("count should be greater than 0"))?,
            );
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    let keys = &req[2..where_at];
    let now = ctx.now;
    ctx.with_keys(keys, |g| {
        for k in keys {
            // Keys before the first non-empty list are type-checked, later ones are not.
            let Some(l) = read(g.shard(k), k, now)? else {
                continue;
            };
            let n = count.min(l.len());
            let l = write(g.shard(k), k, now);
            let popped: Vec<Frame> = (0..n)
                .filter_map(|_| take(l, end))
                .map(Frame::Bulk)
                .collect();
            drop_if_empty(g.shard(k), k, now);
            return Ok(Frame::Array(vec![
                Frame::Bulk(k.clone()),
                Frame::Array(popped),
            ]));
        }
        Ok(Frame::NullArray)
    })
}

#[cfg(test)]
#[path = "list_edits_tests.rs"]
mod tests;
