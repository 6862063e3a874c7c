//! Tests of [`super`]: the sorted set algebra commands, in-process.

use crate::cmd::testing::*;
use crate::protocol::Frame;

fn arr(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

/// A flat RESP2-shaped `member score ...` reply.
fn scored(items: &[(&str, f64)]) -> Frame {
    Frame::Array(
        items
            .iter()
            .flat_map(|(m, s)| [bulk(m), Frame::Double(*s)])
            .collect(),
    )
}

fn setup() -> Harness {
    let mut h = Harness::new();
    h.run(&["ZADD", "za", "1", "a", "2", "b", "3", "c"]);
    h.run(&["ZADD", "zb", "1", "b", "2", "c", "3", "d"]);
    h.run(&["SADD", "s", "a", "d", "x"]);
    h.run(&["SET", "str", "v"]);
    h
}

#[test]
fn union_sums_by_default_and_honours_weights_and_aggregate() {
    let mut h = setup();
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb", "WITHSCORES"]),
        scored(&[("a", 1.0), ("b", 3.0), ("d", 3.0), ("c", 5.0)])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb"]),
        arr(&["a", "b", "d", "c"])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb", "WEIGHTS", "2", "3", "WITHSCORES"]),
        scored(&[("a", 2.0), ("b", 7.0), ("d", 9.0), ("c", 12.0)])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb", "AGGREGATE", "min", "WITHSCORES"]),
        scored(&[("a", 1.0), ("b", 1.0), ("c", 2.0), ("d", 3.0)])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb", "aggregate", "MAX", "withscores"]),
        scored(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 3.0)])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "none", "WITHSCORES"]),
        scored(&[("a", 1.0), ("b", 2.0), ("c", 3.0)])
    );
    assert_eq!(h.run(&["ZUNION", "1", "none"]), arr(&[]));
}

#[test]
fn plain_sets_count_as_members_scoring_one() {
    let mut h = setup();
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "s", "WEIGHTS", "1", "10", "WITHSCORES"]),
        scored(&[
            ("b", 2.0),
            ("c", 3.0),
            ("x", 10.0),
            ("a", 11.0),
            ("d", 10.0)
        ])
        .sorted_by_score()
    );
    assert_eq!(
        h.run(&["ZINTER", "2", "za", "s", "WITHSCORES"]),
        scored(&[("a", 2.0)])
    );
    assert_eq!(
        h.run(&["ZDIFF", "2", "s", "za", "WITHSCORES"]),
        scored(&[("d", 1.0), ("x", 1.0)])
    );
    assert_eq!(h.run(&["ZINTERCARD", "2", "s", "zb"]), int(1));
}

/// Sorts a flat `member score` array by (score, member), as a sorted set orders it.
trait SortedByScore {
    fn sorted_by_score(self) -> Frame;
}

impl SortedByScore for Frame {
    fn sorted_by_score(self) -> Frame {
        let Frame::Array(items) = self else {
            panic!("an array")
        };
        let mut pairs: Vec<(Frame, f64)> = items
            .chunks(2)
            .map(|p| match &p[1] {
                Frame::Double(d) => (p[0].clone(), *d),
                other => panic!("a score: {other:?}"),
            })
            .collect();
        pairs.sort_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then_with(|| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
        });
        Frame::Array(
            pairs
                .into_iter()
                .flat_map(|(m, s)| [m, Frame::Double(s)])
                .collect(),
        )
    }
}

#[test]
fn inter_keeps_members_in_every_source() {
    let mut h = setup();
    assert_eq!(
        h.run(&["ZINTER", "2", "za", "zb", "WITHSCORES"]),
        scored(&[("b", 3.0), ("c", 5.0)])
    );
    assert_eq!(
        h.run(&[
            "ZINTER",
            "2",
            "za",
            "zb",
            "WEIGHTS",
            "2",
            "3",
            "AGGREGATE",
            "MAX",
            "WITHSCORES"
        ]),
        scored(&[("b", 4.0), ("c", 6.0)])
    );
    assert_eq!(
        h.run(&["ZINTER", "2", "za", "za", "WITHSCORES"]),
        scored(&[("a", 2.0), ("b", 4.0), ("c", 6.0)]),
        "the same key twice"
    );
    assert_eq!(h.run(&["ZINTER", "2", "za", "none"]), arr(&[]));
    assert_eq!(h.run(&["ZINTERCARD", "2", "za", "zb"]), int(2));
    assert_eq!(
        h.run(&["ZINTERCARD", "2", "za", "zb", "LIMIT", "0"]),
        int(2)
    );
    assert_eq!(
        h.run(&["ZINTERCARD", "2", "za", "zb", "LIMIT", "1"]),
        int(1)
    );
    assert_eq!(
        h.run(&["ZINTERCARD", "2", "za", "zb", "limit", "10"]),
        int(2)
    );
    assert_eq!(h.run(&["ZINTERCARD", "1", "none"]), int(0));
}

#[test]
fn diff_keeps_the_first_sources_members_and_scores() {
    let mut h = setup();
    assert_eq!(
        h.run(&["ZDIFF", "2", "za", "zb", "WITHSCORES"]),
        scored(&[("a", 1.0)])
    );
    assert_eq!(h.run(&["ZDIFF", "1", "za"]), arr(&["a", "b", "c"]));
    assert_eq!(h.run(&["ZDIFF", "2", "za", "za"]), arr(&[]));
    assert_eq!(h.run(&["ZDIFF", "2", "none", "za"]), arr(&[]));
    assert_eq!(h.run(&["ZDIFF", "3", "zb", "none", "s"]), arr(&["b", "c"]));
}

#[test]
fn infinities_and_nan_follow_redis() {
    let mut h = Harness::new();
    h.run(&["ZADD", "p", "+inf", "m"]);
    h.run(&["ZADD", "n", "-inf", "m"]);
    assert_eq!(
        h.run(&["ZUNION", "2", "p", "n", "WITHSCORES"]),
        scored(&[("m", 0.0)]),
        "inf + -inf is 0"
    );
    assert_eq!(
        h.run(&["ZINTER", "2", "p", "n", "WITHSCORES"]),
        scored(&[("m", 0.0)])
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "p", "p", "WITHSCORES"]),
        scored(&[("m", f64::INFINITY)])
    );
    assert_eq!(
        h.run(&["ZUNION", "1", "p", "WEIGHTS", "0", "WITHSCORES"]),
        scored(&[("m", 0.0)]),
        "0 * inf is 0"
    );
    assert_eq!(
        h.run(&["ZUNION", "1", "p", "WEIGHTS", "-1", "WITHSCORES"]),
        scored(&[("m", f64::NEG_INFINITY)])
    );
    h.run(&["ZADD", "one", "5", "m"]);
    assert_eq!(
        h.run(&["ZINTER", "2", "one", "p", "WEIGHTS", "1", "0", "WITHSCORES"]),
        scored(&[("m", 0.0)]),
        "5 + (0 * inf) is NaN, which the sum turns into 0"
    );
    assert_eq!(
        h.run(&[
            "ZINTER",
            "2",
            "one",
            "p",
            "WEIGHTS",
            "1",
            "0",
            "AGGREGATE",
            "MIN",
            "WITHSCORES"
        ]),
        scored(&[("m", 5.0)]),
        "a NaN product is ignored by MIN"
    );
    for bad in ["nan", "x", "1e400", ""] {
        assert_eq!(
            h.run(&["ZUNIONSTORE", "d", "1", "p", "WEIGHTS", bad]),
            err("ERR weight value is not a float"),
            "{bad:?}"
        );
    }
}

#[test]
fn resp3_pairs_members_with_scores() {
    let mut h = setup();
    h.run(&["HELLO", "3"]);
    let pair = |m: &str, s: f64| Frame::Array(vec![bulk(m), Frame::Double(s)]);
    assert_eq!(
        h.run(&["ZINTER", "2", "za", "zb", "WITHSCORES"]),
        Frame::Array(vec![pair("b", 3.0), pair("c", 5.0)])
    );
    assert_eq!(h.run(&["ZDIFF", "2", "za", "zb"]), arr(&["a"]));
}

#[test]
fn errors_follow_redis_in_order() {
    let mut h = setup();
    for (cmd, at) in [
        ("ZUNION", 1),
        ("ZINTER", 1),
        ("ZDIFF", 1),
        ("ZINTERCARD", 1),
        ("ZUNIONSTORE", 2),
        ("ZINTERSTORE", 2),
        ("ZDIFFSTORE", 2),
    ] {
        let mut req = vec![cmd];
        if at == 2 {
            req.push("dst");
        }
        let with = |rest: &[&'static str]| {
            let mut r = req.clone();
            r.extend(rest);
            r
        };
        let lower = cmd.to_ascii_lowercase();
        assert_eq!(
            h.run(&with(&["0", "za"])),
            err(&format!(
                "ERR at least 1 input key is needed for '{lower}' command"
            ))
        );
        assert_eq!(
            h.run(&with(&["-1", "za"])),
            err(&format!(
                "ERR at least 1 input key is needed for '{lower}' command"
            ))
        );
        assert_eq!(
            h.run(&with(&["x", "za"])),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&with(&["3", "za", "zb"])), err("ERR syntax error"));
        assert_eq!(h.run(&with(&["2", "za", "str"])), err(WRONGTYPE), "{cmd}");
        assert_eq!(
            h.run(&with(&["2", "str", "za", "BOGUS"])),
            err(WRONGTYPE),
            "{cmd}: types are checked before options"
        );
        assert_eq!(h.run(&with(&["1", "za", "BOGUS"])), err("ERR syntax error"));
        assert_eq!(h.run(&with(&["1", "za", "za"])), err("ERR syntax error"));
    }
    for cmd in ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"] {
        assert_eq!(
            h.run(&[cmd, "d", "2", "za", "zb", "WITHSCORES"]),
            err("ERR syntax error")
        );
    }
    assert_eq!(
        h.run(&["ZDIFF", "2", "za", "zb", "WEIGHTS", "1", "2"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["ZUNION", "2", "za", "zb", "WEIGHTS", "1"]),
        err("ERR syntax error"),
        "too few weights"
    );
    assert_eq!(
        h.run(&["ZUNION", "1", "za", "AGGREGATE", "AVG"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["ZUNION", "1", "za", "AGGREGATE"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["ZINTERCARD", "1", "za", "LIMIT"]),
        err("ERR syntax error")
    );
    for bad in ["-1", "a"] {
        assert_eq!(
            h.run(&["ZINTERCARD", "1", "za", "LIMIT", bad]),
            err("ERR LIMIT can't be negative")
        );
    }
    assert_eq!(
        h.run(&["ZINTERCARD", "1", "za", "WITHSCORES"]),
        err("ERR syntax error")
    );
}

#[test]
fn stores_replace_the_destination_and_delete_it_when_empty() {
    let mut h = setup();
    h.run(&["SET", "dst", "x"]);
    h.run(&["EXPIRE", "dst", "100"]);
    assert_eq!(h.run(&["ZUNIONSTORE", "dst", "2", "za", "zb"]), int(4));
    assert_eq!(h.run(&["TYPE", "dst"]), simple("zset"));
    assert_eq!(h.run(&["TTL", "dst"]), int(-1), "setKey drops the TTL");
    assert_eq!(
        h.run(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        scored(&[("a", 1.0), ("b", 3.0), ("d", 3.0), ("c", 5.0)])
    );
    assert_eq!(
        h.run(&["ZINTERSTORE", "dst", "2", "za", "zb", "WEIGHTS", "2", "3"]),
        int(2)
    );
    assert_eq!(
        h.run(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        scored(&[("b", 7.0), ("c", 12.0)])
    );
    assert_eq!(h.run(&["ZDIFFSTORE", "dst", "2", "za", "zb"]), int(1));
    assert_eq!(h.run(&["ZRANGE", "dst", "0", "-1"]), arr(&["a"]));
    // The destination may be a source.
    assert_eq!(h.run(&["ZUNIONSTORE", "za", "2", "za", "za"]), int(3));
    assert_eq!(h.run(&["ZSCORE", "za", "c"]), Frame::Double(6.0));
    let before = h.session.stats.dirty;
    assert_eq!(h.run(&["ZINTERSTORE", "dst", "2", "za", "none"]), int(0));
    assert_eq!(h.run(&["EXISTS", "dst"]), int(0));
    assert_eq!(
        h.session.stats.dirty - before,
        1,
        "the deletion is a change"
    );
    let before = h.session.stats.dirty;
    assert_eq!(h.run(&["ZUNIONSTORE", "dst", "1", "none"]), int(0));
    assert_eq!(
        h.session.stats.dirty, before,
        "nothing to delete: no change"
    );
    assert_eq!(
        h.run(&["ZUNIONSTORE", "dst", "2", "za", "str"]),
        err(WRONGTYPE)
    );
    assert_eq!(h.run(&["EXISTS", "dst"]), int(0), "an error stores nothing");
}

#[test]
fn watch_sees_the_destination_but_not_the_sources() {
    let mut h = setup();
    let mut other = h.peer();
    let exec = |h: &mut Harness| {
        h.run(&["MULTI"]);
        h.run(&["PING"]);
        h.run(&["EXEC"])
    };
    h.run(&["WATCH", "za", "zb"]);
    other.run(&["ZUNIONSTORE", "dst", "2", "za", "zb"]);
    other.run(&["ZINTER", "2", "za", "zb"]);
    assert_eq!(exec(&mut h), Frame::Array(vec![simple("PONG")]));
    h.run(&["WATCH", "dst"]);
    other.run(&["ZINTERSTORE", "dst", "2", "za", "zb"]);
    assert_eq!(exec(&mut h), Frame::NullArray);
}

#[test]
fn keys_are_found_for_acl_cluster_and_getkeys() {
    let mut h = setup();
    assert_eq!(
        h.run(&[
            "COMMAND",
            "GETKEYS",
            "ZUNIONSTORE",
            "d",
            "2",
            "a",
            "b",
            "WEIGHTS",
            "1",
            "2"
        ]),
        arr(&["d", "a", "b"])
    );
    assert_eq!(
        h.run(&[
            "COMMAND",
            "GETKEYS",
            "ZINTERCARD",
            "2",
            "a",
            "b",
            "LIMIT",
            "1"
        ]),
        arr(&["a", "b"])
    );
    let spec = crate::cmd::lookup(b"ZINTERSTORE").expect("registered");
    let req: Vec<bytes::Bytes> = ["ZINTERSTORE", "d", "2", "a", "b"]
        .iter()
        .map(|w| bytes::Bytes::from_static(w.as_bytes()))
        .collect();
    let positions: Vec<usize> = crate::cmd::key_positions(spec, &req).collect();
    assert_eq!(positions, [1, 3, 4]);
    let access = crate::cmd::docs::key_access(None, spec);
    use crate::acl::user::{KEY_READ, KEY_WRITE};
    let needs: Vec<u8> = (0..3).map(|i| access.need(i, &req)).collect();
    assert_eq!(needs, [KEY_WRITE, KEY_READ, KEY_READ]);
    let Frame::Array(info) = h.run(&["COMMAND", "INFO", "ZUNIONSTORE"]) else {
        panic!("COMMAND INFO answers an array")
    };
    let text = format!("{info:?}");
    for want in ["OW", "update", "RO", "access", "keynum", "movablekeys"] {
        assert!(text.contains(want), "{want} in {text}");
    }
}
