//! List commands: LPUSH, RPUSH, LPOP, RPOP (with COUNT), LINDEX, LRANGE, LTRIM, LLEN, LPOS, with
//! Redis's replies and error texts. A list is a `VecDeque`, so pushes and pops at both ends are
//! O(1) and an index is O(1). Removing the last element deletes the key; writes keep the TTL.
//!
//! Reads use [`Shard::get_live`]; a command touches [`Shard::get_mut`] only once it knows it
//! will change the list, because a mutable access is what journals the key. The commands that
//! edit a list in place or move elements between lists (LPUSHX, LSET, LINSERT, LREM, LMOVE,
//! LMPOP, ...) are in [`super::list_edits`], on the helpers shared from here.

use std::collections::VecDeque;

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, Shard, Value};

/// List commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LPUSH",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        args: "key:key element:string...",
        handler: |ctx, req| push(ctx, req, End::Left, true),
        ..BASE
    },
    CommandSpec {
        name: "RPUSH",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Appends one or more elements to a list. Creates the key if it doesn't exist.",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        args: "key:key element:string...",
        handler: |ctx, req| push(ctx, req, End::Right, true),
        ..BASE
    },
    CommandSpec {
        name: "LPOP",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
        complexity: "O(N) where N is the number of elements returned",
        args: "key:key [count:integer]",
        handler: |ctx, req| pop(ctx, req, End::Left),
        ..BASE
    },
    CommandSpec {
        name: "RPOP",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Returns and removes the last elements of a list. Deletes the list if the last element was popped.",
        complexity: "O(N) where N is the number of elements returned",
        args: "key:key [count:integer]",
        handler: |ctx, req| pop(ctx, req, End::Right),
        ..BASE
    },
    CommandSpec {
        name: "LINDEX",
        arity: 3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Returns an element from a list by its index.",
        args: "key:key index:integer",
        handler: lindex,
        ..BASE
    },
    CommandSpec {
        name: "LRANGE",
        arity: 4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Returns a range of elements from a list.",
        complexity: "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        args: "key:key start:integer stop:integer",
        handler: lrange,
        ..BASE
    },
    CommandSpec {
        name: "LTRIM",
        arity: 4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
        complexity: "O(N) where N is the number of elements to be removed by the operation.",
        args: "key:key start:integer stop:integer",
        handler: ltrim,
        ..BASE
    },
    CommandSpec {
        name: "LLEN",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Returns the length of a list.",
        args: "key:key",
        handler: llen,
        ..BASE
    },
    CommandSpec {
        name: "LPOS",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "list",
        summary: "Return the index of matching elements on a list",
        since: "6.0.6",
        complexity: "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        args: "key:key element:string [RANK rank:integer] [COUNT num-matches:integer] [MAXLEN len:integer]",
        handler: lpos,
        ..BASE
    },
];

/// Which end of a list a command works on.
#[derive(Clone, Copy)]
pub(super) enum End {
    Left,
    Right,
}

pub(super) type List = VecDeque<Bytes>;

/// The list at `key` for reading: `Ok(None)` if absent, `WrongType` for other kinds.
pub(super) fn read<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s List>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The list at `key` for writing. Call only after [`read`] found one: a mutable access marks
/// the key changed.
pub(super) fn write<'s>(s: &'s mut Shard, key: &[u8], now: Nanos) -> &'s mut List {
    match s.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::List(l)) => l,
        _ => unreachable!("invariant: read() found a list under the same lock"),
    }
}

/// Deletes `key` if its list became empty (Redis never keeps an empty collection).
pub(super) fn drop_if_empty(s: &mut Shard, key: &[u8], now: Nanos) {
    if s.get_live(key, now)
        .is_some_and(|e| matches!(&e.value, Value::List(l) if l.is_empty()))
    {
        s.remove(key, now);
    }
}

/// Redis's index range: negative counts from the end, then clamped; `None` when empty.
fn clamp(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// `[LR]PUSH key element...`, and with `create` false `[LR]PUSHX` (0, nothing created, when the
/// key is missing).
pub(super) fn push(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    end: End,
    create: bool,
) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        if read(s, key, now)?.is_none() {
            if !create {
                return Ok(Frame::Integer(0));
            }
            s.insert(key, Entry::new(Value::List(Box::default())));
        }
        let l = write(s, key, now);
        for e in &req[2..] {
            // Copied so the keyspace never pins a connection's read buffer.
            let e = Bytes::copy_from_slice(e);
            match end {
                End::Left => l.push_front(e),
                End::Right => l.push_back(e),
            }
        }
        Ok(Frame::Integer(l.len() as i64))
    })
}

fn pop(ctx: &mut Ctx<'_>, req: &[Bytes], end: End) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::WrongArity(args::text(&req[0]).to_lowercase()));
    }
    let count = req.get(2).map(|a| args::pop_count(a)).transpose()?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Ok(if count.is_some() {
                Frame::NullArray
            } else {
                Frame::Null
            });
        };
        if count == Some(0) {
            return Ok(Frame::Array(Vec::new()));
        }
        let n = count.unwrap_or(1).min(l.len());
        let l = write(s, key, now);
        let popped: Vec<Frame> = (0..n)
            .filter_map(|_| match end {
                End::Left => l.pop_front(),
                End::Right => l.pop_back(),
            })
            .map(Frame::Bulk)
            .collect();
        drop_if_empty(s, key, now);
        Ok(match count {
            Some(_) => Frame::Array(popped),
            None => popped.into_iter().next().unwrap_or(Frame::Null),
        })
    })
}

fn lindex(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let index = args::int(&req[2])?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let v = read(s, key, now)?.and_then(|l| {
            let i = if index < 0 {
                (l.len() as i64).checked_add(index)?
            } else {
                index
            };
            l.get(usize::try_from(i).ok()?).cloned()
        });
        Ok(v.map_or(Frame::Null, Frame::Bulk))
    })
}

fn lrange(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (start, stop) = (args::int(&req[2])?, args::int(&req[3])?);
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let items = match read(s, key, now)? {
            Some(l) => match clamp(start, stop, l.len()) {
                Some((a, b)) => l.range(a..=b).cloned().map(Frame::Bulk).collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Frame::Array(items))
    })
}

fn ltrim(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (start, stop) = (args::int(&req[2])?, args::int(&req[3])?);
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Ok(Frame::OK);
        };
        let len = l.len();
        let keep = clamp(start, stop, len);
        if keep == Some((0, len - 1)) {
            return Ok(Frame::OK);
        }
        match keep {
            None => {
                s.remove(key, now);
            }
            Some((a, b)) => {
                let l = write(s, key, now);
                l.truncate(b + 1);
                l.drain(..a);
            }
        }
        Ok(Frame::OK)
    })
}

fn llen(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        Ok(Frame::Integer(
            read(s, key, now)?.map_or(0, |l| l.len() as i64),
        ))
    })
}

fn lpos(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<u64>, 0u64);
    let positive = |arg: &[u8], what: &str| {
        super::args::parse_i64(arg)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| CommandError::other(format!("{what} can't be negative")))
    };
    let mut a = super::args::Args::new(req, 3);
    while let Some(opt) = a.next() {
        let is = |k: &str| super::args::is(opt, k) && a.remaining() > 0;
        if is("RANK") {
            rank = super::args::int(a.value()?)?;
            if rank == i64::MIN {
                return Err(CommandError::other(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if rank == 0 {
                return Err(CommandError::other(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is("COUNT") {
            count = Some(positive(a.value()?, "COUNT")?);
        } else if is("MAXLEN") {
            maxlen = positive(a.value()?, "MAXLEN")?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let key = &req[1];
    let element = &req[2];
    ctx.with_shard(key, |s| {
        let Some(l) = read(s, key, now)? else {
            return Ok(count.map_or(Frame::Null, |_| Frame::Array(vec![])));
        };
        let len = l.len();
        let skip = rank.unsigned_abs() - 1;
        let scanned = if maxlen == 0 {
            len
        } else {
            len.min(maxlen as usize)
        };
        let index = |i: usize| if rank > 0 { i } else { len - 1 - i };
        let mut found = Vec::new();
        let mut matches = 0u64;
        for i in 0..scanned {
            if l[index(i)] != element {
                continue;
            }
            matches += 1;
            if matches > skip {
                found.push(Frame::Integer(index(i) as i64));
                // COUNT 0 means every match; no COUNT means the first.
                if count.unwrap_or(1) != 0 && found.len() as u64 >= count.unwrap_or(1) {
                    break;
                }
            }
        }
        Ok(match count {
            Some(_) => Frame::Array(found),
            None => found.pop().unwrap_or(Frame::Null),
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn push_order_and_lengths() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["LPUSH", "l", "a", "b", "c"]), int(3));
        assert_eq!(h.run(&["RPUSH", "l", "d", "e"]), int(5));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&["c", "b", "a", "d", "e"])
        );
        assert_eq!(h.run(&["LLEN", "l"]), int(5));
        assert_eq!(h.run(&["LLEN", "none"]), int(0));
        assert_eq!(h.run(&["TYPE", "l"]), simple("list"));
    }

    #[test]
    fn lindex_and_lrange_clamp_like_redis() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "c"]);
        assert_eq!(h.run(&["LINDEX", "l", "0"]), bulk("a"));
        assert_eq!(h.run(&["LINDEX", "l", "-1"]), bulk("c"));
        assert_eq!(h.run(&["LINDEX", "l", "3"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "-4"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "-9223372036854775808"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "none", "0"]), Frame::Null);
        assert_eq!(
            h.run(&["LINDEX", "l", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["LRANGE", "l", "-2", "99"]), arr(&["b", "c"]));
        assert_eq!(h.run(&["LRANGE", "l", "-99", "0"]), arr(&["a"]));
        assert_eq!(h.run(&["LRANGE", "l", "2", "1"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "l", "3", "5"]), arr(&[]));
        assert_eq!(h.run(&["LRANGE", "none", "0", "-1"]), arr(&[]));
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "y"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn pops_with_and_without_count() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "c", "d"]);
        assert_eq!(h.run(&["LPOP", "l"]), bulk("a"));
        assert_eq!(h.run(&["RPOP", "l"]), bulk("d"));
        assert_eq!(h.run(&["LPOP", "l", "0"]), arr(&[]));
        assert_eq!(h.run(&["RPOP", "l", "5"]), arr(&["c", "b"]));
        assert_eq!(
            h.run(&["EXISTS", "l"]),
            int(0),
            "the emptied list is deleted"
        );
        assert_eq!(h.run(&["LPOP", "l"]), Frame::Null);
        assert_eq!(h.run(&["LPOP", "l", "2"]), Frame::NullArray);
        for bad in ["-1", "x"] {
            assert_eq!(
                h.run(&["LPOP", "l", bad]),
                err("ERR value is out of range, must be positive"),
                "{bad}"
            );
        }
        assert_eq!(
            h.run(&["RPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'rpop' command")
        );
    }

    #[test]
    fn ltrim_keeps_a_range_and_deletes_an_emptied_list() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "c", "d", "e"]);
        assert_eq!(h.run(&["LTRIM", "l", "1", "-2"]), Frame::OK);
        assert_eq!(h.run(&["LRANGE", "l", "0", "-1"]), arr(&["b", "c", "d"]));
        let before = h.session.stats.dirty;
        assert_eq!(h.run(&["LTRIM", "l", "0", "99"]), Frame::OK);
        assert_eq!(
            h.session.stats.dirty, before,
            "a no-op trim changes nothing"
        );
        assert_eq!(h.run(&["LTRIM", "l", "5", "9"]), Frame::OK);
        assert_eq!(h.run(&["EXISTS", "l"]), int(0));
        assert_eq!(h.run(&["LTRIM", "none", "0", "1"]), Frame::OK);
    }

    #[test]
    fn wrong_type_everywhere_and_reads_change_nothing() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        let wrong = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for req in [
            &["LPUSH", "s", "a"][..],
            &["RPUSH", "s", "a"],
            &["LPOP", "s"],
            &["RPOP", "s", "2"],
            &["LINDEX", "s", "0"],
            &["LRANGE", "s", "0", "1"],
            &["LTRIM", "s", "0", "1"],
            &["LLEN", "s"],
        ] {
            assert_eq!(h.run(req), wrong, "{req:?}");
        }
        h.run(&["RPUSH", "l", "a"]);
        let before = h.session.stats.dirty;
        for req in [
            &["LINDEX", "l", "0"][..],
            &["LRANGE", "l", "0", "-1"],
            &["LLEN", "l"],
            &["LPOP", "l", "0"],
            &["LPOP", "none"],
        ] {
            h.run(req);
        }
        assert_eq!(h.session.stats.dirty, before);
    }

    #[test]
    fn lpos_ranks_counts_and_maxlen() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["LPOS", "l", "a"]), Frame::Null);
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "0"]),
            Frame::Array(vec![])
        );
        h.run(&["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"]);
        let ints = |v: &[i64]| Frame::Array(v.iter().map(|&n| int(n)).collect());
        assert_eq!(h.run(&["LPOS", "l", "c"]), int(2));
        assert_eq!(h.run(&["LPOS", "l", "x"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "c", "RANK", "2"]), int(6));
        assert_eq!(h.run(&["LPOS", "l", "c", "RANK", "-1"]), int(7));
        assert_eq!(h.run(&["LPOS", "l", "c", "RANK", "4"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "c", "COUNT", "2"]), ints(&[2, 6]));
        assert_eq!(h.run(&["LPOS", "l", "c", "COUNT", "0"]), ints(&[2, 6, 7]));
        assert_eq!(
            h.run(&["LPOS", "l", "c", "RANK", "-1", "COUNT", "2"]),
            ints(&[7, 6])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "c", "COUNT", "0", "MAXLEN", "7"]),
            ints(&[2, 6])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "c", "RANK", "-1", "MAXLEN", "1"]),
            int(7)
        );
        assert_eq!(h.run(&["LPOS", "l", "x", "COUNT", "5"]), ints(&[]));
        assert_eq!(
            h.run(&["LPOS", "l", "c", "RANK", "0"]),
            err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "c", "COUNT", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "c", "MAXLEN", "-1"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(h.run(&["LPOS", "l", "c", "RANK"]), err("ERR syntax error"));
        h.run(&["SET", "s", "v"]);
        assert_eq!(h.run(&["LPOS", "s", "c"]), err(WRONGTYPE));
    }
}
