//! Tests of [`super`]: SORT and SORT_RO, in-process.

use crate::cmd::testing::*;
use crate::protocol::Frame;

fn arr(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

fn setup() -> Harness {
    let mut h = Harness::new();
    h.run(&["RPUSH", "l", "3", "1", "10", "2"]);
    h.run(&["SADD", "s", "c", "a", "b"]);
    h.run(&["ZADD", "z", "1", "x", "2", "y", "3", "w"]);
    for (k, v) in [("w_1", "30"), ("w_2", "10"), ("w_3", "20"), ("w_10", "5")] {
        h.run(&["SET", k, v]);
    }
    for (id, name) in [("1", "one"), ("2", "two"), ("3", "three")] {
        h.run(&["HSET", &format!("h_{id}"), "name", name, "n", id]);
    }
    h
}

#[test]
fn sorts_numbers_strings_and_directions() {
    let mut h = setup();
    assert_eq!(h.run(&["SORT", "l"]), arr(&["1", "2", "3", "10"]));
    assert_eq!(h.run(&["SORT", "l", "DESC"]), arr(&["10", "3", "2", "1"]));
    assert_eq!(h.run(&["SORT", "l", "ALPHA"]), arr(&["1", "10", "2", "3"]));
    assert_eq!(h.run(&["SORT", "s", "ALPHA"]), arr(&["a", "b", "c"]));
    assert_eq!(
        h.run(&["SORT", "s"]),
        err("ERR One or more scores can't be converted into double")
    );
    assert_eq!(
        h.run(&["SORT", "z", "ALPHA", "DESC"]),
        arr(&["y", "x", "w"])
    );
    assert_eq!(h.run(&["SORT", "none"]), arr(&[]));
    assert_eq!(
        h.run(&["SORT_RO", "l", "LIMIT", "1", "2"]),
        arr(&["2", "3"])
    );
    assert_eq!(h.run(&["SORT", "l", "LIMIT", "-5", "1"]), arr(&["1"]));
    assert_eq!(h.run(&["SORT", "l", "LIMIT", "10", "1"]), arr(&[]));
    assert_eq!(h.run(&["SORT", "l", "LIMIT", "2", "-1"]), arr(&["3", "10"]));
}

#[test]
fn by_and_get_read_other_keys_and_hash_fields() {
    let mut h = setup();
    assert_eq!(
        h.run(&["SORT", "l", "BY", "w_*"]),
        arr(&["10", "2", "3", "1"])
    );
    assert_eq!(
        h.run(&["SORT", "l", "BY", "w_*", "GET", "#", "GET", "w_*"]),
        arr(&["10", "5", "2", "10", "3", "20", "1", "30"])
    );
    assert_eq!(
        h.run(&["SORT", "l", "BY", "h_*->n", "GET", "h_*->name"])
            .to_owned(),
        Frame::Array(vec![Frame::Null, bulk("one"), bulk("two"), bulk("three")]),
        "10 has no hash: weight 0, GET nil"
    );
    assert_eq!(
        h.run(&["SORT", "l", "BY", "nosort", "DESC"]),
        arr(&["2", "10", "1", "3"]),
        "a constant BY keeps the list's order"
    );
    assert_eq!(
        h.run(&["SORT", "z", "BY", "nosort", "LIMIT", "1", "5"]),
        arr(&["y", "w"])
    );
    assert_eq!(
        h.run(&["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "0", "2"]),
        arr(&["w", "y"])
    );
    h.run(&["SET", "w_1", "x"]);
    assert_eq!(
        h.run(&["SORT", "l", "BY", "w_*"]),
        err("ERR One or more scores can't be converted into double")
    );
    assert_eq!(
        h.run(&["SORT", "l", "BY", "w_*", "ALPHA"]),
        arr(&["2", "3", "10", "1"]),
        "weights compared as bytes: 10 < 20 < 5 < x"
    );
}

#[test]
fn store_writes_a_list_and_deletes_on_empty() {
    let mut h = setup();
    h.run(&["SET", "dst", "x"]);
    h.run(&["EXPIRE", "dst", "100"]);
    assert_eq!(h.run(&["SORT", "l", "STORE", "dst"]), int(4));
    assert_eq!(h.run(&["TYPE", "dst"]), simple("list"));
    assert_eq!(h.run(&["TTL", "dst"]), int(-1));
    assert_eq!(
        h.run(&["LRANGE", "dst", "0", "-1"]),
        arr(&["1", "2", "3", "10"])
    );
    assert_eq!(
        h.run(&["SORT", "l", "GET", "h_*->name", "STORE", "dst"]),
        int(4)
    );
    assert_eq!(
        h.run(&["LRANGE", "dst", "0", "-1"]),
        arr(&["one", "two", "three", ""])
    );
    assert_eq!(
        h.run(&["SORT", "s", "BY", "nosort", "STORE", "dst"]),
        int(3)
    );
    assert_eq!(
        h.run(&["LRANGE", "dst", "0", "-1"]),
        arr(&["a", "b", "c"]),
        "a stored set is sorted"
    );
    assert_eq!(h.run(&["SORT", "none", "STORE", "dst"]), int(0));
    assert_eq!(h.run(&["EXISTS", "dst"]), int(0));
    assert_eq!(h.run(&["SORT", "l", "STORE", "l"]), int(4));
    assert_eq!(
        h.run(&["LRANGE", "l", "0", "-1"]),
        arr(&["1", "2", "3", "10"])
    );
}

#[test]
fn errors_follow_redis() {
    let mut h = setup();
    h.run(&["SET", "str", "x"]);
    assert_eq!(h.run(&["SORT", "str"]), err(WRONGTYPE));
    assert_eq!(h.run(&["SORT", "l", "BOGUS"]), err("ERR syntax error"));
    assert_eq!(h.run(&["SORT", "l", "LIMIT", "1"]), err("ERR syntax error"));
    assert_eq!(
        h.run(&["SORT", "l", "LIMIT", "a", "1"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["SORT_RO", "l", "STORE", "d"]),
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["SORT", "l", "GET"]), err("ERR syntax error"));
}

#[test]
fn store_keys_are_found_and_watch_sees_the_destination() {
    let mut h = setup();
    assert_eq!(
        h.run(&[
            "COMMAND", "GETKEYS", "SORT", "l", "LIMIT", "0", "1", "GET", "store", "STORE", "d"
        ]),
        arr(&["l", "d"])
    );
    assert_eq!(
        h.run(&["COMMAND", "GETKEYS", "SORT", "l", "BY", "x"]),
        arr(&["l"])
    );
    let mut other = h.peer();
    h.run(&["WATCH", "d"]);
    other.run(&["SORT", "l", "BY", "w_*", "STORE", "d"]);
    h.run(&["MULTI"]);
    h.run(&["PING"]);
    assert_eq!(h.run(&["EXEC"]), Frame::NullArray);
    // Inside EXEC every shard is held, so patterns work there too.
    h.run(&["MULTI"]);
    h.run(&["SORT", "l", "BY", "w_*", "GET", "w_*"]);
    assert_eq!(
        h.run(&["EXEC"]),
        Frame::Array(vec![arr(&["5", "10", "20", "30"])])
    );
}

#[test]
fn a_script_gets_an_unsortable_set_sorted() {
    let mut h = setup();
    assert_eq!(
        h.run(&[
            "EVAL",
            "return redis.call('sort', KEYS[1], 'by', '_')",
            "1",
            "s"
        ]),
        arr(&["a", "b", "c"])
    );
    assert_eq!(
        h.run(&[
            "EVAL",
            "return redis.call('sort', KEYS[1], 'by', 'w_*')",
            "1",
            "l"
        ]),
        arr(&["10", "2", "3", "1"]),
        "patterns reach undeclared keys from a script"
    );
}

#[test]
fn cluster_mode_refuses_patterns_as_redis() {
    let mut h = Harness::with_config(crate::config::Config {
        cluster_enabled: true,
        ..crate::config::Config::default()
    });
    h.run(&["RPUSH", "{t}l", "2", "1"]);
    assert_eq!(
        h.run(&["SORT", "{t}l", "BY", "w_*"]),
        err("ERR BY option of SORT denied in Cluster mode.")
    );
    assert_eq!(
        h.run(&["SORT", "{t}l", "GET", "#"]),
        err("ERR GET option of SORT denied in Cluster mode.")
    );
    assert_eq!(h.run(&["SORT", "{t}l", "BY", "nosort"]), arr(&["2", "1"]));
    assert_eq!(h.run(&["SORT", "{t}l", "STORE", "{t}d"]), int(2));
    assert_eq!(
        h.run(&["SORT", "{t}l", "STORE", "other"]),
        err("CROSSSLOT Keys in request don't hash to the same slot"),
        "the STORE key is routed too"
    );
}
