//! Set algebra: SINTER, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE, with Redis 7.0's
//! replies and error texts (the single-set commands and SINTERCARD are in [`super::sets`]).
//!
//! A missing key is an empty set. Every source key is type-checked, in order, before anything
//! is computed, so a key of another kind anywhere among the sources is `WRONGTYPE` even when an
//! earlier key is missing (Redis's `lookupKeyRead` + `checkType` loop). The read forms answer a
//! RESP3 set (an array in RESP2). The `STORE` forms run under one [`Ctx::with_keys_writing`]
//! over the destination and the sources, so they are atomic; they replace the destination
//! whatever it held (its TTL goes with it, as Redis's `setKey`), delete it when the result is
//! empty, and answer the result's size. The destination may be one of the sources: the result is computed
//! from the sources' old contents before it is stored. A changed destination is journaled as
//! its whole new state (or its deletion), and only it is signalled to `WATCH`: the sources are
//! neither journaled nor signalled, as Redis signals only the destination.
//!
//! Sources are only read (through [`MultiGuard::shard_ref`], so several can be borrowed at
//! once); nothing here calls [`crate::store::Shard::get_mut`] on them.

use bytes::Bytes;

use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::entry::SetValue;
use crate::store::{Entry, MultiGuard, Value};

/// Set algebra commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "SINTER",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Intersect multiple sets",
        complexity: INTER_COMPLEXITY,
        args: "key:key...",
        handler: sinter,
        ..BASE
    },
    CommandSpec {
        name: "SINTERSTORE",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Intersect multiple sets and store the resulting set in a key",
        complexity: INTER_COMPLEXITY,
        args: "destination:key key:key...",
        handler: sinterstore,
        ..BASE
    },
    CommandSpec {
        name: "SUNION",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Add multiple sets",
        complexity: TOTAL_COMPLEXITY,
        args: "key:key...",
        handler: sunion,
        ..BASE
    },
    CommandSpec {
        name: "SUNIONSTORE",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Add multiple sets and store the resulting set in a key",
        complexity: TOTAL_COMPLEXITY,
        args: "destination:key key:key...",
        handler: sunionstore,
        ..BASE
    },
    CommandSpec {
        name: "SDIFF",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Subtract multiple sets",
        complexity: TOTAL_COMPLEXITY,
        args: "key:key...",
        handler: sdiff,
        ..BASE
    },
    CommandSpec {
        name: "SDIFFSTORE",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "set",
        summary: "Subtract multiple sets and store the resulting set in a key",
        complexity: TOTAL_COMPLEXITY,
        args: "destination:key key:key...",
        handler: sdiffstore,
        ..BASE
    },
];

const INTER_COMPLEXITY: &str =
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.";
const TOTAL_COMPLEXITY: &str = "O(N) where N is the total number of elements in all given sets.";

/// Which combination of the sources a command computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// `SINTER key [key ...]`: the members in every set (a RESP3 set).
fn sinter(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    read_op(ctx, &req[1..], Op::Inter)
}

/// `SINTERSTORE destination key [key ...]`: stores the intersection; its size.
fn sinterstore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    store_op(ctx, req, Op::Inter)
}

/// `SUNION key [key ...]`: the members in any set (a RESP3 set).
fn sunion(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    read_op(ctx, &req[1..], Op::Union)
}

/// `SUNIONSTORE destination key [key ...]`: stores the union; its size.
fn sunionstore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    store_op(ctx, req, Op::Union)
}

/// `SDIFF key [key ...]`: the members of the first set in none of the others (a RESP3 set).
fn sdiff(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    read_op(ctx, &req[1..], Op::Diff)
}

/// `SDIFFSTORE destination key [key ...]`: stores the difference; its size.
fn sdiffstore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    store_op(ctx, req, Op::Diff)
}

fn read_op(ctx: &mut Ctx<'_>, keys: &[Bytes], op: Op) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_keys(keys, |g| {
        let sets = sources(g, keys, now)?;
        let members = combine(op, &sets);
        Ok(Frame::Set(members.into_iter().map(Frame::Bulk).collect()))
    })
}

fn store_op(ctx: &mut Ctx<'_>, req: &[Bytes], op: Op) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (dst, srcs) = (&req[1], &req[2..]);
    // Only the destination changes: it alone is journaled and signalled to WATCH.
    ctx.with_keys_writing(&req[1..], std::slice::from_ref(dst), |g| {
        let result = combine(op, &sources(g, srcs, now)?);
        let shard = g.shard(dst);
        if result.is_empty() {
            // Whatever the destination held (another kind too) is deleted, as in Redis.
            shard.remove(dst, now);
            return Ok(Frame::Integer(0));
        }
        let n = result.len();
        shard.insert(dst, Entry::new(Value::Set(Box::new(result))));
        Ok(Frame::Integer(n as i64))
    })
}

/// Each key's set (`None` for a missing key), every key type-checked in order.
fn sources<'g>(
    g: &'g MultiGuard<'_>,
    keys: &[Bytes],
    now: Nanos,
) -> Result<Vec<Option<&'g SetValue>>, CommandError> {
    keys.iter()
        .map(|k| match g.shard_ref(k).get(k, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(&**s)),
            Some(_) => Err(CommandError::WrongType),
        })
        .collect()
}

/// The members `op` selects from `sets` (the same key given twice is the same set, which
/// [`std::ptr::eq`] recognises as Redis compares object pointers). Members are shared
/// handles to the stored bytes, not copies.
fn combine(op: Op, sets: &[Option<&SetValue>]) -> SetValue {
    match op {
        Op::Inter => inter(sets),
        Op::Union => {
            let mut out = SetValue::default();
            for s in sets.iter().flatten() {
                out.extend(s.iter().cloned());
            }
            out
        }
        Op::Diff => diff(sets),
    }
}

fn inter(sets: &[Option<&SetValue>]) -> SetValue {
    // Any missing key makes the intersection empty.
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
        return SetValue::default();
    };
    // Probing from the smallest set bounds the work by its size.
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return SetValue::default();
    };
    first
        .iter()
        .filter(|m| {
            rest.iter()
                .all(|s| std::ptr::eq(*s, *first) || s.contains(*m))
        })
        .cloned()
        .collect()
}

fn diff(sets: &[Option<&SetValue>]) -> SetValue {
    let Some((Some(first), rest)) = sets.split_first() else {
        return SetValue::default();
    };
    let others: Vec<&SetValue> = rest.iter().flatten().copied().collect();
    if others.iter().any(|s| std::ptr::eq(*s, *first)) {
        return SetValue::default();
    }
    // Redis's choice of algorithm: probe each member of the first set in every other set, or
    // copy the first set and remove every other set's members, whichever touches fewer
    // members (the probe is favoured: it is cheaper per step).
    let probe_work = first.len().saturating_mul(others.len() + 1) / 2;
    let remove_work = others
        .iter()
        .fold(first.len(), |n, s| n.saturating_add(s.len()));
    if probe_work <= remove_work {
        return first
            .iter()
            .filter(|m| !others.iter().any(|s| s.contains(*m)))
            .cloned()
            .collect();
    }
    let mut out = (*first).clone();
    for s in others {
        for m in s {
            out.swap_remove(m);
        }
        if out.is_empty() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    /// A set reply's members, sorted (member order is unspecified, as in Redis).
    fn sorted(f: Frame) -> Vec<String> {
        let Frame::Set(items) = f else {
            panic!("not a set: {f:?}")
        };
        let mut v: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf-8 in the test"),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    fn members(h: &mut Harness, key: &str) -> Vec<String> {
        sorted(h.run(&["SMEMBERS", key]))
    }

    fn setup() -> Harness {
        let mut h = Harness::new();
        h.run(&["SADD", "a", "1", "2", "3", "4"]);
        h.run(&["SADD", "b", "2", "3", "4", "5"]);
        h.run(&["SADD", "c", "3", "4", "9"]);
        h.run(&["SET", "str", "v"]);
        h
    }

    #[test]
    fn sinter_keeps_members_in_every_set() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["SINTER", "a", "b"])), ["2", "3", "4"]);
        assert_eq!(sorted(h.run(&["SINTER", "a", "b", "c"])), ["3", "4"]);
        assert_eq!(sorted(h.run(&["SINTER", "a"])), ["1", "2", "3", "4"]);
        assert_eq!(
            sorted(h.run(&["SINTER", "a", "a", "a"])),
            ["1", "2", "3", "4"]
        );
        assert_eq!(h.run(&["SINTER", "a", "none"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SINTER", "none"]), Frame::Set(vec![]));
        h.run(&["SADD", "d", "100"]);
        assert_eq!(h.run(&["SINTER", "a", "d"]), Frame::Set(vec![]));
    }

    #[test]
    fn sunion_keeps_members_in_any_set() {
        let mut h = setup();
        assert_eq!(
            sorted(h.run(&["SUNION", "a", "b", "c"])),
            ["1", "2", "3", "4", "5", "9"]
        );
        assert_eq!(
            sorted(h.run(&["SUNION", "none", "a", "none2"])),
            ["1", "2", "3", "4"]
        );
        assert_eq!(sorted(h.run(&["SUNION", "a", "a"])), ["1", "2", "3", "4"]);
        assert_eq!(h.run(&["SUNION", "none", "none2"]), Frame::Set(vec![]));
    }

    #[test]
    fn sdiff_subtracts_the_other_sets_from_the_first() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["SDIFF", "a", "b"])), ["1"]);
        assert_eq!(sorted(h.run(&["SDIFF", "b", "a", "c"])), ["5"]);
        assert_eq!(sorted(h.run(&["SDIFF", "a", "none"])), ["1", "2", "3", "4"]);
        assert_eq!(sorted(h.run(&["SDIFF", "a"])), ["1", "2", "3", "4"]);
        assert_eq!(h.run(&["SDIFF", "none", "a"]), Frame::Set(vec![]));
        assert_eq!(
            h.run(&["SDIFF", "a", "b", "a"]),
            Frame::Set(vec![]),
            "the first set again"
        );
        // Many small sets after a large one: the copy-and-remove algorithm.
        let big: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let mut cmd = vec!["SADD", "big"];
        cmd.extend(big.iter().map(String::as_str));
        h.run(&cmd);
        for i in 0..199 {
            h.run(&["SADD", &format!("one{i}"), &i.to_string()]);
        }
        let names: Vec<String> = (0..199).map(|i| format!("one{i}")).collect();
        let mut cmd = vec!["SDIFF", "big"];
        cmd.extend(names.iter().map(String::as_str));
        assert_eq!(sorted(h.run(&cmd)), ["199"]);
        let mut cmd = vec!["SDIFFSTORE", "out", "big"];
        cmd.extend(names.iter().map(String::as_str));
        assert_eq!(h.run(&cmd), int(1));
    }

    #[test]
    fn reads_type_check_every_key_in_order() {
        let mut h = setup();
        for cmd in ["SINTER", "SUNION", "SDIFF"] {
            for keys in [
                &["str"][..],
                &["str", "a"],
                &["a", "str"],
                &["none", "str"],
                &["str", "none"],
                &["a", "none", "str"],
            ] {
                let mut req = vec![cmd];
                req.extend(keys);
                assert_eq!(h.run(&req), err(WRONGTYPE), "{req:?}");
            }
        }
        let before = h.session.stats.dirty;
        for req in [
            &["SINTER", "a", "b"][..],
            &["SUNION", "a", "b"],
            &["SDIFF", "a", "b"],
        ] {
            h.run(req);
        }
        assert_eq!(h.session.stats.dirty, before, "reads change nothing");
    }

    #[test]
    fn stores_write_the_result_and_answer_its_size() {
        let mut h = setup();
        assert_eq!(h.run(&["SINTERSTORE", "out", "a", "b"]), int(3));
        assert_eq!(members(&mut h, "out"), ["2", "3", "4"]);
        assert_eq!(h.run(&["SUNIONSTORE", "out", "a", "c"]), int(5));
        assert_eq!(members(&mut h, "out"), ["1", "2", "3", "4", "9"]);
        assert_eq!(h.run(&["SDIFFSTORE", "out", "a", "b"]), int(1));
        assert_eq!(members(&mut h, "out"), ["1"]);
        assert_eq!(h.run(&["TYPE", "out"]), simple("set"));
        assert_eq!(h.run(&["SUNIONSTORE", "one", "a"]), int(4));
        assert_eq!(members(&mut h, "one"), ["1", "2", "3", "4"]);
        assert_eq!(
            h.run(&["SINTERSTORE", "copy", "a", "a"]),
            int(4),
            "the same source twice"
        );
        assert_eq!(h.run(&["SUNIONSTORE", "u", "none", "b", "none2"]), int(4));
    }

    #[test]
    fn stores_overwrite_any_destination_and_drop_its_ttl() {
        let mut h = setup();
        h.run(&["SET", "dst", "x"]);
        h.run(&["EXPIRE", "dst", "100"]);
        assert_eq!(h.run(&["SUNIONSTORE", "dst", "a"]), int(4));
        assert_eq!(h.run(&["TYPE", "dst"]), simple("set"));
        assert_eq!(h.run(&["TTL", "dst"]), int(-1), "setKey drops the TTL");
        h.run(&["EXPIRE", "dst", "100"]);
        assert_eq!(h.run(&["SINTERSTORE", "dst", "a", "b"]), int(3));
        assert_eq!(members(&mut h, "dst"), ["2", "3", "4"]);
        assert_eq!(h.run(&["TTL", "dst"]), int(-1));
    }

    #[test]
    fn empty_results_delete_the_destination() {
        for (req, what) in [
            (&["SINTERSTORE", "dst", "a", "none"][..], "a missing source"),
            (&["SINTERSTORE", "dst", "a", "d"], "disjoint sets"),
            (
                &["SUNIONSTORE", "dst", "none", "none2"],
                "only missing sources",
            ),
            (&["SDIFFSTORE", "dst", "none", "a"], "a missing first set"),
            (
                &["SDIFFSTORE", "dst", "b", "a", "c", "d"],
                "everything subtracted",
            ),
            (&["SDIFFSTORE", "dst", "a", "a"], "the first set again"),
        ] {
            for old in [&["SADD", "dst", "old"][..], &["SET", "dst", "v"], &[]] {
                let mut h = setup();
                h.run(&["SADD", "d", "5", "100"]);
                if !old.is_empty() {
                    h.run(old);
                }
                let before = h.session.stats.dirty;
                assert_eq!(h.run(req), int(0), "{what}, dst {old:?}");
                assert_eq!(h.run(&["EXISTS", "dst"]), int(0), "{what}, dst {old:?}");
                let changed = u64::from(!old.is_empty());
                assert_eq!(
                    h.session.stats.dirty - before,
                    changed,
                    "{what}: a change only when something was deleted"
                );
            }
        }
    }

    #[test]
    fn the_destination_may_be_a_source() {
        let mut h = setup();
        assert_eq!(h.run(&["SINTERSTORE", "a", "a", "b"]), int(3));
        assert_eq!(members(&mut h, "a"), ["2", "3", "4"]);
        assert_eq!(h.run(&["SUNIONSTORE", "a", "a", "c"]), int(4));
        assert_eq!(members(&mut h, "a"), ["2", "3", "4", "9"]);
        assert_eq!(h.run(&["SDIFFSTORE", "a", "a", "c"]), int(1));
        assert_eq!(members(&mut h, "a"), ["2"]);
        assert_eq!(h.run(&["SDIFFSTORE", "b", "c", "b"]), int(1));
        assert_eq!(members(&mut h, "b"), ["9"]);
        assert_eq!(h.run(&["SINTERSTORE", "c", "c", "none"]), int(0));
        assert_eq!(h.run(&["EXISTS", "c"]), int(0), "emptied in place");
    }

    #[test]
    fn stores_type_check_sources_but_not_the_destination() {
        let mut h = setup();
        h.run(&["SADD", "dst", "keep"]);
        for cmd in ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"] {
            for keys in [
                &["str"][..],
                &["str", "none"],
                &["none", "str"],
                &["a", "str", "b"],
                &["none", "str", "b"],
            ] {
                let mut req = vec![cmd, "dst"];
                req.extend(keys);
                assert_eq!(h.run(&req), err(WRONGTYPE), "{req:?}");
            }
            assert_eq!(
                members(&mut h, "dst"),
                ["keep"],
                "{cmd}: an error stores nothing"
            );
            assert_eq!(
                h.run(&[cmd, "str", "a", "a"]),
                int(if cmd == "SDIFFSTORE" { 0 } else { 4 })
            );
            h.run(&["SET", "str", "v"]);
        }
    }

    #[test]
    fn watch_sees_the_destination_change_but_not_the_sources() {
        let mut h = setup();
        let mut other = h.peer();
        let exec = |h: &mut Harness| {
            h.run(&["MULTI"]);
            h.run(&["PING"]);
            h.run(&["EXEC"])
        };
        h.run(&["WATCH", "a", "b"]);
        other.run(&["SINTERSTORE", "dst", "a", "b"]);
        other.run(&["SUNIONSTORE", "dst", "a", "b"]);
        other.run(&["SDIFFSTORE", "dst", "a", "b"]);
        assert_eq!(
            exec(&mut h),
            Frame::Array(vec![simple("PONG")]),
            "sources are read, not changed"
        );
        for req in [
            &["SINTERSTORE", "dst", "a", "b"][..],
            &["SUNIONSTORE", "dst", "a", "b"],
            &["SDIFFSTORE", "dst", "a", "b"],
            &["SDIFFSTORE", "dst", "a", "a"],
        ] {
            h.run(&["WATCH", "dst"]);
            other.run(req);
            assert_eq!(exec(&mut h), Frame::NullArray, "{req:?}");
        }
        h.run(&["WATCH", "dst"]);
        other.run(&["SDIFFSTORE", "dst", "a", "a"]);
        assert_eq!(
            exec(&mut h),
            Frame::Array(vec![simple("PONG")]),
            "deleting a missing destination is no change"
        );
    }

    #[test]
    fn keys_and_docs_follow_redis() {
        let mut h = setup();
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "SINTERSTORE", "d", "a", "b"]),
            Frame::Array(vec![bulk("d"), bulk("a"), bulk("b")])
        );
        let spec = crate::cmd::lookup(b"SUNIONSTORE").expect("registered");
        let access = crate::cmd::docs::key_access(None, spec);
        let req: Vec<bytes::Bytes> = ["SUNIONSTORE", "d", "a", "b", "c"]
            .iter()
            .map(|w| bytes::Bytes::from_static(w.as_bytes()))
            .collect();
        use crate::acl::user::{KEY_READ, KEY_WRITE};
        let needs: Vec<u8> = (0..4).map(|i| access.need(i, &req)).collect();
        assert_eq!(needs, [KEY_WRITE, KEY_READ, KEY_READ, KEY_READ]);
        // Redis's key specs: the destination alone, then every source to the end.
        let Frame::Array(info) = h.run(&["COMMAND", "INFO", "SINTERSTORE"]) else {
            panic!("COMMAND INFO answers an array")
        };
        let text = format!("{info:?}");
        for want in ["RW", "update", "RO", "access", "lastkey"] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let Frame::Array(entry) = &info[0] else {
            panic!("one entry per command")
        };
        let Frame::Set(specs) = &entry[8] else {
            panic!("key specs are a set")
        };
        assert_eq!(specs.len(), 2);
        let lastkeys: Vec<Frame> = specs
            .iter()
            .map(|s| get(&get(&get(s, "find_keys"), "spec"), "lastkey"))
            .collect();
        assert_eq!(lastkeys, [int(0), int(-1)]);
        assert_eq!(
            h.run(&["SINTER"]),
            err("ERR wrong number of arguments for 'sinter' command")
        );
        assert_eq!(
            h.run(&["SDIFFSTORE", "d"]),
            err("ERR wrong number of arguments for 'sdiffstore' command")
        );
    }
}
