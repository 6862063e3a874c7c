//! Redis streams over TCP: XADD ids and trimming, ranges, XREAD (non-blocking and BLOCK),
//! consumer groups (XREADGROUP, XPENDING, XACK, XCLAIM, XAUTOCLAIM), XINFO in RESP2 and RESP3,
//! a stream surviving a restart through the AOF, and the limiter's own events appended to a
//! stream. Times come from the server's manual clock.

mod common;

use std::time::Duration;

use common::{Reply, TestServer};
use limitkv::clock::Nanos;
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

fn arr(items: Vec<Reply>) -> Reply {
    Reply::Array(items)
}

/// `[id, [field, value...]]`.
fn entry(id: &str, fields: &[&str]) -> Reply {
    arr(vec![b(id), arr(fields.iter().map(|f| b(f)).collect())])
}

async fn at_ms(server: &TestServer, ms: u64) {
    server.clock.set(Nanos::from_millis(ms));
}

#[tokio::test]
async fn xadd_picks_ids_from_the_clock_and_refuses_bad_ones() {
    let server = TestServer::start().await;
    at_ms(&server, 1_000).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["XADD", "s", "*", "a", "1"]).await, b("1000-0"));
    assert_eq!(c.cmd(&["XADD", "s", "*", "a", "2"]).await, b("1000-1"));
    assert_eq!(c.cmd(&["XADD", "s", "1000-*", "a", "3"]).await, b("1000-2"));
    assert_eq!(c.cmd(&["XADD", "s", "2000-*", "a", "4"]).await, b("2000-0"));
    assert_eq!(c.cmd(&["XADD", "s", "2000-5", "a", "5"]).await, b("2000-5"));
    // The clock behind the last id: `*` continues after it.
    assert_eq!(c.cmd(&["XADD", "s", "*", "a", "6"]).await, b("2000-6"));
    assert_eq!(c.cmd(&["TYPE", "s"]).await, Reply::Simple("stream".into()));
    assert_eq!(c.cmd(&["XLEN", "s"]).await, Reply::Int(6));
    assert_eq!(c.cmd(&["XLEN", "none"]).await, Reply::Int(0));
    assert_eq!(
        c.cmd(&["XADD", "s", "2000-6", "a", "x"]).await,
        err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    );
    assert_eq!(
        c.cmd(&["XADD", "s", "1999-*", "a", "x"]).await,
        err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "0-0", "a", "x"]).await,
        err("ERR The ID specified in XADD must be greater than 0-0")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "abc", "a", "x"]).await,
        err("ERR Invalid stream ID specified as stream command argument")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "*", "a"]).await,
        err("ERR wrong number of arguments for 'xadd' command")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "MAXLEN", "1", "MINID", "1", "*", "a", "1"])
            .await,
        err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "MAXLEN", "1", "LIMIT", "10", "*", "a", "1"])
            .await,
        err("ERR syntax error, LIMIT cannot be used without the special ~ option")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "MAXLEN", "-1", "*", "a", "1"]).await,
        err("ERR The MAXLEN argument must be >= 0.")
    );
    assert_eq!(
        c.cmd(&["XADD", "t", "NOMKSTREAM", "*", "a", "1"]).await,
        Reply::Null
    );
    assert_eq!(c.cmd(&["EXISTS", "t"]).await, Reply::Int(0));
    c.cmd(&["SET", "str", "x"]).await;
    assert_eq!(
        c.cmd(&["XADD", "str", "*", "a", "1"]).await,
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        c.cmd(&["XSETID", "s", "1-0"]).await,
        err("ERR The ID specified in XSETID is smaller than the target stream top item")
    );
    assert_eq!(
        c.cmd(&["XSETID", "s", "9000-0"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["XADD", "s", "*", "a", "7"]).await, b("9000-1"));
}

#[tokio::test]
async fn ranges_are_inclusive_exclusive_reversed_and_counted() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    for i in 1..=5 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "n", &i.to_string()])
            .await;
    }
    assert_eq!(
        c.cmd(&["XRANGE", "s", "-", "+", "COUNT", "2"]).await,
        arr(vec![entry("1-0", &["n", "1"]), entry("2-0", &["n", "2"])])
    );
    assert_eq!(
        c.cmd(&["XRANGE", "s", "(2-0", "4"]).await,
        arr(vec![entry("3-0", &["n", "3"]), entry("4-0", &["n", "4"])])
    );
    assert_eq!(
        c.cmd(&["XREVRANGE", "s", "+", "(4-0"]).await,
        arr(vec![entry("5-0", &["n", "5"])])
    );
    assert_eq!(c.cmd(&["XRANGE", "s", "5", "1"]).await, arr(vec![]));
    assert_eq!(
        c.cmd(&["XRANGE", "s", "-", "+", "COUNT", "0"]).await,
        Reply::Null
    );
    assert_eq!(c.cmd(&["XRANGE", "none", "-", "+"]).await, arr(vec![]));
    assert_eq!(
        c.cmd(&[
            "XRANGE",
            "s",
            "(18446744073709551615-18446744073709551615",
            "+"
        ])
        .await,
        err("ERR invalid start ID for the interval")
    );
    assert_eq!(
        c.cmd(&["XRANGE", "s", "-", "+", "LIMIT", "1"]).await,
        err("ERR syntax error")
    );
    assert_eq!(
        c.cmd(&["XDEL", "s", "2-0", "3-0", "9-0"]).await,
        Reply::Int(2)
    );
    assert_eq!(
        c.cmd(&["XDEL", "s", "bad"]).await,
        err("ERR Invalid stream ID specified as stream command argument")
    );
    assert_eq!(c.cmd(&["XLEN", "s"]).await, Reply::Int(3));
    assert_eq!(c.cmd(&["XTRIM", "s", "MINID", "5"]).await, Reply::Int(2));
    assert_eq!(c.cmd(&["XTRIM", "s", "MAXLEN", "0"]).await, Reply::Int(1));
    // An empty stream stays, as in Redis.
    assert_eq!(c.cmd(&["EXISTS", "s"]).await, Reply::Int(1));
    assert_eq!(
        c.cmd(&["XTRIM", "s", "LIMIT", "1"]).await,
        err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    );
}

#[tokio::test]
async fn approximate_maxlen_trims_whole_nodes_like_redis() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    for i in 0..1000 {
        c.cmd(&[
            "XADD",
            "s",
            "MAXLEN",
            "~",
            "555",
            "*",
            "xitem",
            &i.to_string(),
        ])
        .await;
    }
    assert_eq!(c.cmd(&["XLEN", "s"]).await, Reply::Int(600));
    assert_eq!(
        c.cmd(&["XTRIM", "s", "MAXLEN", "~", "590"]).await,
        Reply::Int(0)
    );
    assert_eq!(
        c.cmd(&["XTRIM", "s", "MAXLEN", "=", "590"]).await,
        Reply::Int(10)
    );
    assert_eq!(
        c.cmd(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "100"])
            .await,
        Reply::Int(90),
        "the first node holds the 90 entries left of it; the next would pass LIMIT"
    );
}

#[tokio::test]
async fn xread_answers_arrays_in_resp2_and_maps_in_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["XADD", "a", "1-0", "f", "v"]).await;
    c.cmd(&["XADD", "b", "2-0", "g", "w"]).await;
    let got = c
        .replies_in_both_protocols(&[
            &["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"],
            &["XREAD", "STREAMS", "a", "$"],
        ])
        .await;
    assert_eq!(
        got,
        [
            "*2\r\n*2\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\nb\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\ng\r\n$1\r\nw\r\n",
            "*-1\r\n",
            "%2\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nb\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\ng\r\n$1\r\nw\r\n",
            "_\r\n",
        ]
    );
    assert_eq!(
        c.cmd(&["XREAD", "STREAMS", "a", "b", "c"]).await,
        err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.")
    );
    assert_eq!(
        c.cmd(&["XREAD", "STREAMS", "a", ">"]).await,
        err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")
    );
    assert_eq!(
        c.cmd(&["XREAD", "NOACK", "STREAMS", "a", "0"]).await,
        err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
    );
    // The redis crate reads the same reply.
    let mut r = server.redis(false).await;
    let v = common::query(&mut r, &["XREAD", "STREAMS", "a", "0-0"]).await;
    let redis::Value::Array(streams) = v else {
        panic!("XREAD answers an array: {v:?}")
    };
    assert_eq!(streams.len(), 1);
}

#[tokio::test]
async fn a_blocked_xread_is_served_by_the_next_xadd() {
    let server = TestServer::start().await;
    let mut reader = server.raw().await;
    let mut writer = server.raw().await;
    writer.cmd(&["XADD", "s", "1-0", "old", "x"]).await;
    reader
        .send(&common::resp(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        .await;
    common::eventually(Duration::from_secs(5), "the reader to block", || async {
        (server.shared.blocked.len() == 1).then_some(())
    })
    .await;
    writer.cmd(&["XADD", "s", "2-0", "new", "y"]).await;
    assert_eq!(
        reader.read_reply().await,
        arr(vec![arr(vec![
            b("s"),
            arr(vec![entry("2-0", &["new", "y"])])
        ])])
    );
    // A short BLOCK with nothing new answers a null array.
    assert_eq!(
        reader
            .cmd(&["XREAD", "BLOCK", "20", "STREAMS", "s", "$"])
            .await,
        Reply::Null
    );
    // Inside MULTI the read does not block.
    reader.cmd(&["MULTI"]).await;
    reader
        .cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])
        .await;
    assert_eq!(reader.cmd(&["EXEC"]).await, arr(vec![Reply::Null]));
}

#[tokio::test]
async fn consumer_groups_deliver_track_and_claim() {
    let server = TestServer::start().await;
    at_ms(&server, 10_000).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "s", "g", "$"]).await,
        err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")
    );
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
            .await,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "s", "g", "$"]).await,
        err("BUSYGROUP Consumer Group name already exists")
    );
    for i in 1..=3 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "n", &i.to_string()])
            .await;
    }
    assert_eq!(
        c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">"
        ])
        .await,
        arr(vec![arr(vec![
            b("s"),
            arr(vec![entry("1-0", &["n", "1"]), entry("2-0", &["n", "2"])])
        ])])
    );
    assert_eq!(
        c.cmd(&["XREADGROUP", "GROUP", "nope", "alice", "STREAMS", "s", ">"])
            .await,
        err("NOGROUP No such key 's' or consumer group 'nope' in XREADGROUP with GROUP option")
    );
    // Alice's history.
    assert_eq!(
        c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"])
            .await,
        arr(vec![arr(vec![
            b("s"),
            arr(vec![entry("1-0", &["n", "1"]), entry("2-0", &["n", "2"])])
        ])])
    );
    server.clock.advance(Duration::from_millis(500));
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g"]).await,
        arr(vec![
            Reply::Int(2),
            b("1-0"),
            b("2-0"),
            arr(vec![arr(vec![b("alice"), b("2")])])
        ])
    );
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "IDLE", "100", "-", "+", "10"])
            .await,
        arr(vec![
            arr(vec![b("1-0"), b("alice"), Reply::Int(500), Reply::Int(2)]),
            arr(vec![b("2-0"), b("alice"), Reply::Int(500), Reply::Int(2)]),
        ])
    );
    assert_eq!(
        c.cmd(&["XACK", "s", "g", "1-0", "9-0"]).await,
        Reply::Int(1)
    );
    // Bob claims what Alice held for at least 400 ms.
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "bob", "400", "2-0", "JUSTID"])
            .await,
        arr(vec![b("2-0")])
    );
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "bob", "400", "2-0"]).await,
        arr(vec![]),
        "just claimed: not idle long enough"
    );
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "bob", "0", "2-0", "BOGUS"])
            .await,
        err("ERR Unrecognized XCLAIM option 'BOGUS'")
    );
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"])
        .await;
    server.clock.advance(Duration::from_millis(1000));
    assert_eq!(
        c.cmd(&["XAUTOCLAIM", "s", "g", "carol", "900", "0", "COUNT", "1"])
            .await,
        arr(vec![
            b("3-0"),
            arr(vec![entry("2-0", &["n", "2"])]),
            arr(vec![])
        ])
    );
    let groups = c.cmd(&["XINFO", "GROUPS", "s"]).await;
    let Reply::Array(groups) = groups else {
        panic!("XINFO GROUPS answers an array")
    };
    assert_eq!(groups[0].get("consumers"), Some(&Reply::Int(3)));
    assert_eq!(groups[0].get("pending"), Some(&Reply::Int(2)));
    assert_eq!(groups[0].get("last-delivered-id"), Some(&b("3-0")));
    assert_eq!(groups[0].get("entries-read"), Some(&Reply::Int(3)));
    assert_eq!(groups[0].get("lag"), Some(&Reply::Int(0)));
    let consumers = c.cmd(&["XINFO", "CONSUMERS", "s", "g"]).await;
    let Reply::Array(consumers) = consumers else {
        panic!("XINFO CONSUMERS answers an array")
    };
    assert_eq!(consumers.len(), 3);
    assert_eq!(consumers[0].get("name"), Some(&b("alice")));
    assert_eq!(consumers[0].get("pending"), Some(&Reply::Int(1)));
    assert_eq!(consumers[0].get("idle"), Some(&Reply::Int(1000)));
    assert_eq!(
        c.cmd(&["XGROUP", "DELCONSUMER", "s", "g", "alice"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        c.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "dave"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        c.cmd(&["XGROUP", "SETID", "s", "nope", "0"]).await,
        err("NOGROUP No such consumer group 'nope' for key name 's'")
    );
    // Containers inside a transaction lock what their subcommands touch.
    c.cmd(&["MULTI"]).await;
    c.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "erin"]).await;
    c.cmd(&["XINFO", "GROUPS", "s"]).await;
    c.cmd(&["XREADGROUP", "GROUP", "g", "erin", "STREAMS", "s", "0"])
        .await;
    let Reply::Array(replies) = c.cmd(&["EXEC"]).await else {
        panic!("EXEC answers an array")
    };
    assert_eq!(replies[0], Reply::Int(1));
    assert_eq!(replies[2], arr(vec![arr(vec![b("s"), arr(vec![])])]));
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "s", "g"]).await, Reply::Int(1));
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "s", "g"]).await, Reply::Int(0));
}

#[tokio::test]
async fn a_blocked_xreadgroup_gets_the_new_entry_and_owns_it() {
    let server = TestServer::start().await;
    let mut reader = server.raw().await;
    let mut writer = server.raw().await;
    writer
        .cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await;
    reader
        .send(&common::resp(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]))
        .await;
    common::eventually(Duration::from_secs(5), "the reader to block", || async {
        (server.shared.blocked.len() == 1).then_some(())
    })
    .await;
    writer.cmd(&["XADD", "s", "5-0", "k", "v"]).await;
    assert_eq!(
        reader.read_reply().await,
        arr(vec![arr(vec![
            b("s"),
            arr(vec![entry("5-0", &["k", "v"])])
        ])])
    );
    assert_eq!(
        writer
            .cmd(&["XPENDING", "s", "g", "-", "+", "10", "c1"])
            .await,
        arr(vec![arr(vec![
            b("5-0"),
            b("c1"),
            Reply::Int(0),
            Reply::Int(1)
        ])])
    );
    // Blocked again, then the stream is deleted: Redis 7.0's error.
    reader
        .send(&common::resp(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]))
        .await;
    common::eventually(Duration::from_secs(5), "the reader to block", || async {
        (server.shared.blocked.len() == 1).then_some(())
    })
    .await;
    writer.cmd(&["DEL", "s"]).await;
    assert_eq!(
        reader.read_reply().await,
        err("UNBLOCKED the stream key no longer exists")
    );
}

#[tokio::test]
async fn xinfo_stream_is_a_map_in_resp3_and_full_lists_groups() {
    let server = TestServer::start().await;
    at_ms(&server, 7).await;
    let mut c = server.raw().await;
    c.cmd(&["XADD", "s", "1-0", "a", "1"]).await;
    c.cmd(&["XADD", "s", "2-0", "b", "2"]).await;
    c.cmd(&["XDEL", "s", "2-0"]).await;
    c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]).await;
    c.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"])
        .await;
    let info = c.cmd(&["XINFO", "STREAM", "s"]).await;
    assert!(matches!(info, Reply::Array(ref items) if items.len() == 20));
    assert_eq!(info.get("length"), Some(&Reply::Int(1)));
    assert_eq!(info.get("last-generated-id"), Some(&b("2-0")));
    assert_eq!(info.get("max-deleted-entry-id"), Some(&b("2-0")));
    assert_eq!(info.get("entries-added"), Some(&Reply::Int(2)));
    assert_eq!(info.get("recorded-first-entry-id"), Some(&b("1-0")));
    assert_eq!(info.get("groups"), Some(&Reply::Int(1)));
    assert_eq!(info.get("first-entry"), Some(&entry("1-0", &["a", "1"])));
    assert_eq!(info.get("last-entry"), Some(&entry("1-0", &["a", "1"])));
    c.cmd(&["HELLO", "3"]).await;
    let full = c.cmd(&["XINFO", "STREAM", "s", "FULL"]).await;
    assert!(matches!(full, Reply::Map(ref m) if m.len() == 9));
    assert_eq!(
        full.get("entries"),
        Some(&arr(vec![entry("1-0", &["a", "1"])]))
    );
    let Some(Reply::Array(groups)) = full.get("groups") else {
        panic!("FULL lists the groups")
    };
    assert!(matches!(groups[0], Reply::Map(_)));
    assert_eq!(groups[0].get("pel-count"), Some(&Reply::Int(1)));
    assert_eq!(
        groups[0].get("pending"),
        Some(&arr(vec![arr(vec![
            b("1-0"),
            b("c"),
            Reply::Int(7),
            Reply::Int(1)
        ])]))
    );
    // Created at an id without ENTRIESREAD, with a deletion ahead: the lag cannot be known.
    assert_eq!(groups[0].get("lag"), Some(&Reply::Null));
    assert_eq!(
        c.cmd(&["XINFO", "STREAM", "none"]).await,
        err("ERR no such key")
    );
    assert_eq!(
        c.cmd(&["XINFO", "STREAM", "s", "FULL", "BAD", "1"]).await,
        err("ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.")
    );
}

fn aof_config(dir: &std::path::Path) -> Config {
    Config {
        appendonly: true,
        dir: dir.to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    }
}

#[tokio::test]
async fn streams_and_their_groups_survive_a_restart_and_a_rewrite() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path())).await;
    at_ms(&server, 5_000).await;
    let mut c = server.raw().await;
    for i in 0..5 {
        c.cmd(&["XADD", "s", "MAXLEN", "3", "*", "i", &i.to_string()])
            .await;
    }
    c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]).await;
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ])
    .await;
    c.cmd(&["XDEL", "s", "5000-3"]).await;
    let before = c.cmd(&["XINFO", "STREAM", "s", "FULL"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(aof_config(dir.path())).await;
    at_ms(&server, 5_000).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["XINFO", "STREAM", "s", "FULL"]).await, before);
    // The id counter survived: a new entry goes after the last one.
    assert_eq!(c.cmd(&["XADD", "s", "*", "i", "5"]).await, b("5000-5"));
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]).await,
        Reply::Simple("Background append only file rewriting scheduled".into())
    );
    common::eventually(Duration::from_secs(10), "the rewrite to finish", || async {
        let info = server
            .raw()
            .await
            .cmd(&["INFO", "persistence"])
            .await
            .text();
        info.contains("aof_rewrites:1").then_some(())
    })
    .await;
    let after = c.cmd(&["XINFO", "STREAM", "s", "FULL"]).await;
    server.stop().await.unwrap();
    let server = TestServer::with_config(aof_config(dir.path())).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["XINFO", "STREAM", "s", "FULL"]).await, after);
    server.stop().await.unwrap();
}

/// Flattens a stream entry's fields into (name, value) text pairs.
fn entry_fields(e: &Reply) -> Vec<(String, String)> {
    let Reply::Array(parts) = e else {
        panic!("an entry is an array: {e:?}")
    };
    let Reply::Array(fields) = &parts[1] else {
        panic!("an entry's fields are an array")
    };
    fields
        .chunks(2)
        .map(|kv| (kv[0].text(), kv[1].text()))
        .collect()
}

#[tokio::test]
async fn limiter_events_are_appended_to_the_events_stream_for_late_readers() {
    let server = TestServer::with_config(Config {
        events_stream: "limitkv:events".into(),
        ..Config::default()
    })
    .await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "events-stream*"]).await,
        arr(vec![
            b("events-stream"),
            b("limitkv:events"),
            b("events-stream-maxlen"),
            b("10000"),
        ])
    );
    assert_eq!(
        c.cmd(&["POLICY.SET", "tiny", "WARN", "50%", "RATE", "2/1m"])
            .await,
        Reply::Simple("OK".into())
    );
    // Nobody subscribed or read: the first check warns, the third is denied.
    for _ in 0..3 {
        c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await;
    }
    // A consumer that was down reads everything from the start.
    let mut late = server.redis(false).await;
    let v = common::query(&mut late, &["XREAD", "STREAMS", "limitkv:events", "0"]).await;
    assert!(matches!(v, redis::Value::Array(_)), "{v:?}");
    let Reply::Array(streams) = c.cmd(&["XREAD", "STREAMS", "limitkv:events", "0"]).await else {
        panic!("the events stream has entries")
    };
    let Reply::Array(kv) = &streams[0] else {
        panic!("[key, entries]")
    };
    let Reply::Array(entries) = &kv[1] else {
        panic!("entries")
    };
    let channels: Vec<String> = entries
        .iter()
        .map(|e| entry_fields(e)[0].1.clone())
        .collect();
    assert!(
        channels.contains(&"limitkv:events:warning".to_string()),
        "{channels:?}"
    );
    assert!(
        channels.contains(&"limitkv:events:denied".to_string()),
        "{channels:?}"
    );
    let denied = entries
        .iter()
        .map(entry_fields)
        .find(|f| f[0].1 == "limitkv:events:denied")
        .unwrap();
    assert_eq!(denied[1].0, "event");
    assert!(denied[1].1.contains("\"identity\":\"bob\""), "{denied:?}");
    // Turned off live: later events stay on Pub/Sub only.
    let before = c.cmd(&["XLEN", "limitkv:events"]).await;
    c.cmd(&["CONFIG", "SET", "events-stream", ""]).await;
    c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await;
    assert_eq!(c.cmd(&["XLEN", "limitkv:events"]).await, before);
    // And on again with a bound: MAXLEN ~ trims whole nodes only, so 1 keeps them all here.
    c.cmd(&[
        "CONFIG",
        "SET",
        "events-stream",
        "ev2",
        "events-stream-maxlen",
        "1",
    ])
    .await;
    c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await;
    assert_eq!(c.cmd(&["XLEN", "ev2"]).await, Reply::Int(1));
}

#[tokio::test]
async fn events_stream_entries_survive_a_restart() {
    let dir = common::temp_dir();
    let cfg = || Config {
        events_stream: "ev".into(),
        ..aof_config(dir.path())
    };
    let server = TestServer::with_config(cfg()).await;
    let mut c = server.raw().await;
    c.cmd(&["POLICY.SET", "tiny", "RATE", "1/1m"]).await;
    c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await;
    c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await;
    let before = c.cmd(&["XRANGE", "ev", "-", "+"]).await;
    assert!(
        matches!(&before, Reply::Array(e) if e.len() == 1),
        "{before:?}"
    );
    server.stop().await.unwrap();
    let server = TestServer::with_config(cfg()).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["XRANGE", "ev", "-", "+"]).await, before);
    server.stop().await.unwrap();
}
