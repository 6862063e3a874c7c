//! In-process tests of LPUSHX, RPUSHX, LSET, LINSERT, LREM, RPOPLPUSH, LMOVE and LMPOP: replies,
//! Redis's error texts and their order, WRONGTYPE, emptied lists deleted, and no-op calls
//! changing nothing.

use crate::cmd::testing::*;
use crate::protocol::Frame;

fn arr(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

fn all(h: &mut Harness, key: &str) -> Frame {
    h.run(&["LRANGE", key, "0", "-1"])
}

#[test]
fn pushx_only_pushes_onto_an_existing_list() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["LPUSHX", "l", "a"]), int(0));
    assert_eq!(h.run(&["RPUSHX", "l", "a", "b"]), int(0));
    assert_eq!(h.run(&["EXISTS", "l"]), int(0), "nothing is created");
    h.run(&["RPUSH", "l", "m"]);
    assert_eq!(h.run(&["LPUSHX", "l", "b", "a"]), int(3));
    assert_eq!(h.run(&["RPUSHX", "l", "y", "z"]), int(5));
    assert_eq!(all(&mut h, "l"), arr(&["a", "b", "m", "y", "z"]));
    assert_eq!(
        h.run(&["LPUSHX", "l"]),
        err("ERR wrong number of arguments for 'lpushx' command")
    );
}

#[test]
fn lset_replaces_by_index_with_redis_errors() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["LSET", "l", "0", "x"]), err("ERR no such key"));
    assert_eq!(
        h.run(&["LSET", "l", "nan", "x"]),
        err("ERR no such key"),
        "the key is checked before the index"
    );
    h.run(&["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(h.run(&["LSET", "l", "0", "A"]), Frame::OK);
    assert_eq!(h.run(&["LSET", "l", "-1", "C"]), Frame::OK);
    assert_eq!(h.run(&["LSET", "l", "1", "B"]), Frame::OK);
    assert_eq!(all(&mut h, "l"), arr(&["A", "B", "C"]));
    for i in ["3", "-4", "9223372036854775807", "-9223372036854775808"] {
        assert_eq!(
            h.run(&["LSET", "l", i, "x"]),
            err("ERR index out of range"),
            "{i}"
        );
    }
    assert_eq!(
        h.run(&["LSET", "l", "nan", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(all(&mut h, "l"), arr(&["A", "B", "C"]));
}

#[test]
fn linsert_before_and_after_the_first_pivot() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["LINSERT", "l", "BEFORE", "a", "x"]), int(0));
    assert_eq!(h.run(&["EXISTS", "l"]), int(0));
    h.run(&["RPUSH", "l", "a", "b", "a"]);
    assert_eq!(h.run(&["LINSERT", "l", "before", "a", "0"]), int(4));
    assert_eq!(h.run(&["LINSERT", "l", "AFTER", "a", "1"]), int(5));
    assert_eq!(h.run(&["LINSERT", "l", "after", "a", "1"]), int(6));
    assert_eq!(h.run(&["LINSERT", "l", "AFTER", "b", "2"]), int(7));
    assert_eq!(all(&mut h, "l"), arr(&["0", "a", "1", "1", "b", "2", "a"]));
    let before = h.session.stats.dirty;
    assert_eq!(h.run(&["LINSERT", "l", "AFTER", "zz", "x"]), int(-1));
    assert_eq!(
        h.session.stats.dirty, before,
        "a missing pivot changes nothing"
    );
    assert_eq!(
        h.run(&["LINSERT", "l", "AROUND", "a", "x"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["LINSERT", "none", "AROUND", "a", "x"]),
        err("ERR syntax error"),
        "the position is checked before the key"
    );
}

#[test]
fn lrem_from_the_head_the_tail_or_everywhere() {
    let mut h = Harness::new();
    let fresh = |h: &mut Harness| {
        h.run(&["DEL", "l"]);
        h.run(&["RPUSH", "l", "x", "a", "x", "b", "x", "c", "x"]);
    };
    fresh(&mut h);
    assert_eq!(h.run(&["LREM", "l", "2", "x"]), int(2));
    assert_eq!(all(&mut h, "l"), arr(&["a", "b", "x", "c", "x"]));
    fresh(&mut h);
    assert_eq!(h.run(&["LREM", "l", "-3", "x"]), int(3));
    assert_eq!(all(&mut h, "l"), arr(&["x", "a", "b", "c"]));
    fresh(&mut h);
    assert_eq!(h.run(&["LREM", "l", "0", "x"]), int(4));
    assert_eq!(all(&mut h, "l"), arr(&["a", "b", "c"]));
    fresh(&mut h);
    assert_eq!(h.run(&["LREM", "l", "-9223372036854775808", "x"]), int(4));
    let before = h.session.stats.dirty;
    assert_eq!(h.run(&["LREM", "l", "0", "zz"]), int(0));
    assert_eq!(h.session.stats.dirty, before, "no match changes nothing");
    h.run(&["RPUSH", "only", "x", "x"]);
    assert_eq!(h.run(&["LREM", "only", "0", "x"]), int(2));
    assert_eq!(
        h.run(&["EXISTS", "only"]),
        int(0),
        "the emptied list is deleted"
    );
    assert_eq!(h.run(&["LREM", "none", "1", "x"]), int(0));
    assert_eq!(
        h.run(&["LREM", "none", "x", "x"]),
        err("ERR value is not an integer or out of range"),
        "the count is checked before the key"
    );
}

#[test]
fn lmove_moves_between_any_ends_and_creates_the_destination() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "src", "a", "b", "c"]);
    assert_eq!(h.run(&["LMOVE", "src", "dst", "LEFT", "RIGHT"]), bulk("a"));
    assert_eq!(h.run(&["LMOVE", "src", "dst", "right", "left"]), bulk("c"));
    assert_eq!(all(&mut h, "dst"), arr(&["c", "a"]));
    assert_eq!(h.run(&["LMOVE", "src", "dst", "LEFT", "LEFT"]), bulk("b"));
    assert_eq!(
        h.run(&["EXISTS", "src"]),
        int(0),
        "the emptied source is deleted"
    );
    assert_eq!(all(&mut h, "dst"), arr(&["b", "c", "a"]));
    assert_eq!(h.run(&["LMOVE", "src", "dst", "LEFT", "LEFT"]), Frame::Null);
    assert_eq!(h.run(&["RPOPLPUSH", "dst", "other"]), bulk("a"));
    assert_eq!(all(&mut h, "other"), arr(&["a"]));
    assert_eq!(h.run(&["RPOPLPUSH", "none", "other"]), Frame::Null);
    assert_eq!(
        h.run(&["LMOVE", "src", "dst", "UP", "LEFT"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["LMOVE", "src", "dst", "LEFT", "DOWN"]),
        err("ERR syntax error")
    );
}

#[test]
fn lmove_on_one_key_rotates() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(h.run(&["RPOPLPUSH", "l", "l"]), bulk("c"));
    assert_eq!(all(&mut h, "l"), arr(&["c", "a", "b"]));
    assert_eq!(h.run(&["LMOVE", "l", "l", "LEFT", "RIGHT"]), bulk("c"));
    assert_eq!(all(&mut h, "l"), arr(&["a", "b", "c"]));
    assert_eq!(h.run(&["LMOVE", "l", "l", "LEFT", "LEFT"]), bulk("a"));
    assert_eq!(all(&mut h, "l"), arr(&["a", "b", "c"]));
    h.run(&["RPUSH", "one", "x"]);
    assert_eq!(h.run(&["LMOVE", "one", "one", "RIGHT", "LEFT"]), bulk("x"));
    assert_eq!(
        all(&mut h, "one"),
        arr(&["x"]),
        "a one-element list survives"
    );
}

#[test]
fn lmove_checks_both_types_before_changing_anything() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "v"]);
    h.run(&["RPUSH", "l", "a", "b"]);
    let before = h.session.stats.dirty;
    assert_eq!(h.run(&["LMOVE", "l", "s", "LEFT", "LEFT"]), err(WRONGTYPE));
    assert_eq!(h.run(&["RPOPLPUSH", "l", "s"]), err(WRONGTYPE));
    assert_eq!(h.run(&["LMOVE", "s", "l", "LEFT", "LEFT"]), err(WRONGTYPE));
    assert_eq!(h.run(&["RPOPLPUSH", "s", "new"]), err(WRONGTYPE));
    assert_eq!(h.session.stats.dirty, before);
    assert_eq!(all(&mut h, "l"), arr(&["a", "b"]));
    assert_eq!(h.run(&["EXISTS", "new"]), int(0));
    assert_eq!(
        h.run(&["RPOPLPUSH", "none", "s"]),
        Frame::Null,
        "as in Redis, a missing source answers before the destination is checked"
    );
}

#[test]
fn lmpop_pops_from_the_first_non_empty_list() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["LMPOP", "2", "a", "b", "LEFT"]), Frame::NullArray);
    h.run(&["RPUSH", "b", "1", "2", "3"]);
    h.run(&["RPUSH", "c", "x"]);
    let popped = |key: &str, items: &[&str]| Frame::Array(vec![bulk(key), arr(items)]);
    assert_eq!(
        h.run(&["LMPOP", "3", "a", "b", "c", "LEFT"]),
        popped("b", &["1"])
    );
    assert_eq!(
        h.run(&["LMPOP", "3", "a", "b", "c", "right", "COUNT", "10"]),
        popped("b", &["3", "2"])
    );
    assert_eq!(
        h.run(&["EXISTS", "b"]),
        int(0),
        "the emptied list is deleted"
    );
    assert_eq!(
        h.run(&["LMPOP", "3", "a", "b", "c", "RIGHT", "count", "1"]),
        popped("c", &["x"])
    );
    assert_eq!(h.run(&["LMPOP", "1", "c", "LEFT"]), Frame::NullArray);
}

#[test]
fn lmpop_argument_errors_match_redis() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "a", "1"]);
    let numkeys = err("ERR numkeys should be greater than 0");
    let count = err("ERR count should be greater than 0");
    let syntax = err("ERR syntax error");
    for (req, want) in [
        (&["LMPOP", "0", "a", "LEFT"][..], &numkeys),
        (&["LMPOP", "-1", "a", "LEFT"], &numkeys),
        (&["LMPOP", "x", "a", "LEFT"], &numkeys),
        (&["LMPOP", "2", "a", "LEFT"], &syntax),
        (&["LMPOP", "9223372036854775807", "a", "LEFT"], &syntax),
        (&["LMPOP", "1", "a", "MIDDLE"], &syntax),
        (&["LMPOP", "1", "a", "LEFT", "COUNT"], &syntax),
        (&["LMPOP", "1", "a", "LEFT", "COUNT", "0"], &count),
        (&["LMPOP", "1", "a", "LEFT", "COUNT", "-1"], &count),
        (&["LMPOP", "1", "a", "LEFT", "COUNT", "x"], &count),
        (
            &["LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1"],
            &syntax,
        ),
        (&["LMPOP", "1", "a", "LEFT", "EXTRA"], &syntax),
    ] {
        assert_eq!(&h.run(req), want, "{req:?}");
    }
    assert_eq!(
        h.run(&["LMPOP", "1", "a"]),
        err("ERR wrong number of arguments for 'lmpop' command")
    );
    assert_eq!(all(&mut h, "a"), arr(&["1"]), "no error popped anything");
}

#[test]
fn lmpop_type_checks_keys_up_to_the_first_list() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "v"]);
    h.run(&["RPUSH", "l", "a"]);
    assert_eq!(h.run(&["LMPOP", "2", "s", "l", "LEFT"]), err(WRONGTYPE));
    assert_eq!(all(&mut h, "l"), arr(&["a"]));
    assert_eq!(
        h.run(&["LMPOP", "2", "l", "s", "LEFT"]),
        Frame::Array(vec![bulk("l"), arr(&["a"])]),
        "as in Redis, keys after the first non-empty list are not looked at"
    );
}

#[test]
fn lmpop_keys_are_seen_by_command_getkeys_and_acl() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT", "COUNT", "3"]),
        arr(&["a", "b"])
    );
    assert_eq!(
        h.run(&["COMMAND", "GETKEYS", "LMOVE", "a", "b", "LEFT", "RIGHT"]),
        arr(&["a", "b"])
    );
    h.run(&["ACL", "SETUSER", "app", "on", "nopass", "+@all", "~app:*"]);
    h.run(&["AUTH", "app", "x"]);
    let denied =
        err("NOPERM this user has no permissions to access one of the keys used as arguments");
    assert_eq!(h.run(&["LMPOP", "2", "app:a", "other", "LEFT"]), denied);
    assert_eq!(h.run(&["LMOVE", "app:a", "other", "LEFT", "LEFT"]), denied);
    assert_eq!(
        h.run(&["LMPOP", "2", "app:a", "app:b", "LEFT"]),
        Frame::NullArray
    );
}

#[test]
fn wrong_type_everywhere_for_single_key_edits() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "v"]);
    for req in [
        &["LPUSHX", "s", "a"][..],
        &["RPUSHX", "s", "a"],
        &["LSET", "s", "0", "a"],
        &["LINSERT", "s", "BEFORE", "a", "b"],
        &["LREM", "s", "0", "a"],
        &["LMPOP", "1", "s", "RIGHT"],
    ] {
        assert_eq!(h.run(req), err(WRONGTYPE), "{req:?}");
    }
    assert_eq!(h.run(&["GET", "s"]), bulk("v"));
}

#[test]
fn writes_keep_the_ttl() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "l", "a", "b"]);
    h.run(&["EXPIRE", "l", "100"]);
    h.run(&["LSET", "l", "0", "x"]);
    h.run(&["LINSERT", "l", "AFTER", "x", "y"]);
    h.run(&["LREM", "l", "1", "b"]);
    h.run(&["LPUSHX", "l", "z"]);
    h.run(&["LMOVE", "l", "l", "LEFT", "RIGHT"]);
    assert_eq!(h.run(&["TTL", "l"]), int(100));
    assert_eq!(all(&mut h, "l"), arr(&["x", "y", "z"]));
}
