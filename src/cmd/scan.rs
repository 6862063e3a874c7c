//! Cursor iteration over one collection: HSCAN, SSCAN, ZSCAN.
//!
//! A collection no larger than Redis's small encodings (128 elements) is returned whole with
//! cursor 0, as Redis does for listpacks and intsets. A larger one is walked in the order of
//! a fixed hash of each element: the cursor is the hash to resume from, so an element present
//! for the whole iteration is returned exactly once, whatever is added or removed meanwhile
//! (Redis guarantees at least once). Each call costs O(N) to select its slice.

use std::hash::BuildHasher;

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::keys::glob_match;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::Value;

const SCAN_ARGS: &str = "key:key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]";
const SCAN_COMPLEXITY: &str = "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..";

/// Collection scans.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "HSCAN",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary: "Incrementally iterate hash fields and associated values",
        since: "2.8.0",
        complexity: SCAN_COMPLEXITY,
        args: SCAN_ARGS,
        handler: |ctx, req| scan(ctx, req, Kind::Hash),
        ..BASE
    },
    CommandSpec {
        name: "SSCAN",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Incrementally iterate Set elements",
        since: "2.8.0",
        complexity: SCAN_COMPLEXITY,
        args: SCAN_ARGS,
        handler: |ctx, req| scan(ctx, req, Kind::Set),
        ..BASE
    },
    CommandSpec {
        name: "ZSCAN",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Incrementally iterate sorted sets elements and associated scores",
        since: "2.8.0",
        complexity: SCAN_COMPLEXITY,
        args: SCAN_ARGS,
        handler: |ctx, req| scan(ctx, req, Kind::ZSet),
        ..BASE
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hash,
    Set,
    ZSet,
}

/// Up to this many elements a collection is returned in one call (Redis's listpack sizes).
const WHOLE: usize = 128;

/// The element's place in the iteration order: never 0, so cursor 0 means "from the start".
fn position(element: &[u8]) -> u64 {
    // Fixed seed: cursors stay valid for as long as the process runs.
    foldhash::fast::FixedState::with_seed(0x6c69_6d69_746b_7673).hash_one(element) | 1
}

fn scan(ctx: &mut Ctx<'_>, req: &[Bytes], kind: Kind) -> Result<Frame, CommandError> {
    let cursor: u64 = std::str::from_utf8(&req[2])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::other("invalid cursor"))?;
    // As in Redis, the options are checked only once the key is found to be of the right
    // kind (a missing key answers an empty scan whatever follows).
    let options = (|| {
        let mut pattern = None;
        let mut count = 10usize;
        let mut a = args::Args::new(req, 3);
        while let Some(opt) = a.next() {
            if is(opt, "MATCH") && a.remaining() > 0 {
                let p = a.value()?;
                pattern = (&p[..] != b"*").then(|| p.clone());
            } else if is(opt, "COUNT") && a.remaining() > 0 {
                let n = a.int()?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok((pattern, count))
    })();
    let now = ctx.now;
    let key = &req[1];
    let (next, pattern, items) = ctx.with_shard(key, |s| {
        // Each element with what follows it in the reply (a value, a score).
        let all: Vec<(Bytes, Option<Bytes>)> = match s.get_live(key, now).map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::Hash(h)) if kind == Kind::Hash => h
                .iter()
                .map(|(f, v)| (f.clone(), Some(v.clone())))
                .collect(),
            Some(Value::Set(m)) if kind == Kind::Set => {
                m.iter().map(|x| (x.clone(), None)).collect()
            }
            Some(Value::ZSet(z)) if kind == Kind::ZSet => z
                .iter()
                .map(|(m, score)| {
                    let text = crate::script::known::fmt_g(score, 17);
                    (m.clone(), Some(Bytes::from(text)))
                })
                .collect(),
            Some(_) => return Err(CommandError::WrongType),
        };
        if all.is_empty() {
            return Ok((0, None, all));
        }
        let (pattern, count) = options?;
        if all.len() <= WHOLE {
            return Ok((0, pattern, all));
        }
        let mut ahead: Vec<(u64, (Bytes, Option<Bytes>))> = all
            .into_iter()
            .map(|e| (position(&e.0), e))
            .filter(|(p, _)| *p >= cursor)
            .collect();
        let next = if ahead.len() > count {
            ahead.select_nth_unstable_by_key(count, |(p, _)| *p);
            let next = ahead[count].0;
            ahead.retain(|(p, _)| *p < next);
            next
        } else {
            0
        };
        Ok((next, pattern, ahead.into_iter().map(|(_, e)| e).collect()))
    })?;
    let mut out = Vec::with_capacity(items.len() * 2);
    for (element, extra) in items {
        if pattern.as_ref().is_some_and(|p| !glob_match(p, &element)) {
            continue;
        }
        out.push(Frame::Bulk(element));
        if let Some(x) = extra {
            out.push(Frame::Bulk(x));
        }
    }
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(out),
    ]))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    /// Runs a whole iteration; returns every element (and value) in reply order.
    fn iterate(h: &mut Harness, cmd: &str, key: &str, extra: &[&str]) -> Vec<Vec<u8>> {
        let mut cursor = "0".to_owned();
        let mut out = Vec::new();
        for _ in 0..1000 {
            let mut req = vec![cmd, key, &cursor];
            req.extend_from_slice(extra);
            let Frame::Array(reply) = h.run(&req) else {
                panic!("an array")
            };
            let (Frame::Bulk(next), Frame::Array(items)) = (&reply[0], &reply[1]) else {
                panic!("cursor and items: {reply:?}")
            };
            out.extend(items.iter().map(|i| match i {
                Frame::Bulk(b) => b.to_vec(),
                other => panic!("bulk items: {other:?}"),
            }));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                return out;
            }
        }
        panic!("the iteration never ended")
    }

    #[test]
    fn small_collections_come_whole() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "a", "1", "b", "2"]);
        assert_eq!(
            h.run(&["HSCAN", "h", "0"]),
            Frame::Array(vec![
                bulk("0"),
                Frame::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")])
            ])
        );
        h.run(&["ZADD", "z", "1.5", "a", "0.1", "b"]);
        assert_eq!(
            h.run(&["ZSCAN", "z", "0", "MATCH", "a*"]),
            Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("a"), bulk("1.5")])])
        );
        assert_eq!(
            iterate(&mut h, "ZSCAN", "z", &[]),
            [&b"b"[..], b"0.10000000000000001", b"a", b"1.5"]
        );
        assert_eq!(
            h.run(&["SSCAN", "none", "0"]),
            Frame::Array(vec![bulk("0"), Frame::Array(vec![])])
        );
        assert_eq!(h.run(&["SSCAN", "h", "0"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SSCAN", "s", "x"]), err("ERR invalid cursor"));
        assert_eq!(
            h.run(&["SSCAN", "none", "0", "COUNT", "0"]),
            Frame::Array(vec![bulk("0"), Frame::Array(vec![])]),
            "a missing key before the options"
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "NOVALUES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn large_collections_iterate_each_element_once_despite_removals() {
        let mut h = Harness::new();
        let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let mut req = vec!["SADD", "s"];
        req.extend(members.iter().map(String::as_str));
        h.run(&req);
        let all = iterate(&mut h, "SSCAN", "s", &["COUNT", "7"]);
        assert_eq!(all.len(), 1000);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1000);
        // Remove members half-way through: the ones that stay are still all returned.
        let mut cursor = "0".to_owned();
        let mut seen = HashSet::new();
        let mut step = 0;
        loop {
            let Frame::Array(reply) = h.run(&["SSCAN", "s", &cursor, "COUNT", "50"]) else {
                panic!("an array")
            };
            let (Frame::Bulk(next), Frame::Array(items)) = (&reply[0], &reply[1]) else {
                panic!("cursor and items")
            };
            for i in items {
                let Frame::Bulk(b) = i else { panic!("bulk") };
                assert!(seen.insert(b.clone()), "{b:?} returned twice");
            }
            step += 1;
            if step == 5 {
                for i in (0..1000).step_by(3) {
                    h.run(&["SREM", "s", &format!("m{i}")]);
                }
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        for i in (0..1000).filter(|i| i % 3 != 0) {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
        let fields = iterate(&mut h, "SSCAN", "s", &["MATCH", "m1*"]);
        assert!(fields.iter().all(|f| f.starts_with(b"m1")));
    }
}
