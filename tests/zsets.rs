//! Sorted sets over TCP: exact wire bytes in RESP2 and RESP3 (ZSCORE and ZADD INCR are doubles,
//! ZRANGE WITHSCORES pairs become `[member, double]` arrays in RESP3), pipelined sliding-log
//! batches, a sorted set surviving a restart through the AOF, and the algebra (ZUNION & co.)
//! through the `redis` crate and across a restart.

mod common;

use common::{resp, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

#[tokio::test]
async fn replies_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut both = Vec::new();
    for resp3 in [false, true] {
        if resp3 {
            c.exchange(&resp(&["HELLO", "3"]), 1).await;
        }
        let key = if resp3 { "z3" } else { "z2" };
        let wire = |args: &[&str]| {
            let mut v = vec![args[0]];
            v.push(key);
            v.extend_from_slice(&args[1..]);
            resp(&v)
        };
        let mut out = Vec::new();
        for args in [
            &["ZADD", "1.5", "a", "2", "b", "inf", "c"][..],
            &["ZSCORE", "a"],
            &["ZSCORE", "nope"],
            &["ZADD", "INCR", "0.25", "a"],
            &["ZADD", "NX", "INCR", "1", "a"],
            &["ZRANGE", "0", "-1", "WITHSCORES"],
            &[
                "ZRANGEBYSCORE",
                "(1.75",
                "+inf",
                "WITHSCORES",
                "LIMIT",
                "0",
                "1",
            ],
            &["ZRANGE", "0", "0"],
            &[
                "ZRANGE", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "0", "2",
            ],
            &["ZCOUNT", "-inf", "(2"],
            &["ZREM", "a", "b", "c"],
            &["ZRANGE", "0", "-1"],
        ] {
            out.push(c.exchange_text(&wire(args)).await);
        }
        both.push(out);
    }
    let expect2 = [
        ":3\r\n",
        "$3\r\n1.5\r\n",
        "$-1\r\n",
        "$4\r\n1.75\r\n",
        "$-1\r\n",
        "*6\r\n$1\r\na\r\n$4\r\n1.75\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$3\r\ninf\r\n",
        "*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
        "*1\r\n$1\r\na\r\n",
        "*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        ":1\r\n",
        ":3\r\n",
        "*0\r\n",
    ];
    let expect3 = [
        ":3\r\n",
        ",1.5\r\n",
        "_\r\n",
        ",1.75\r\n",
        "_\r\n",
        "*3\r\n*2\r\n$1\r\na\r\n,1.75\r\n*2\r\n$1\r\nb\r\n,2\r\n*2\r\n$1\r\nc\r\n,inf\r\n",
        "*1\r\n*2\r\n$1\r\nb\r\n,2\r\n",
        "*1\r\n$1\r\na\r\n",
        "*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        ":1\r\n",
        ":3\r\n",
        "*0\r\n",
    ];
    assert_eq!(both[0], expect2, "RESP2");
    assert_eq!(both[1], expect3, "RESP3");
    assert_eq!(c.cmd(&["EXISTS", "z2", "z3"]).await, Reply::Int(0));
}

#[tokio::test]
async fn errors_are_redis_texts_and_keep_the_connection() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "s", "v"]).await;
    assert_eq!(
        c.cmd(&["ZADD", "s", "1", "a"]).await,
        Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    );
    assert_eq!(
        c.cmd(&["ZADD", "z", "XX", "NX", "1", "a"]).await,
        Reply::Error("ERR XX and NX options at the same time are not compatible".into())
    );
    assert_eq!(
        c.cmd(&["ZCOUNT", "z", "(x", "1"]).await,
        Reply::Error("ERR min or max is not a float".into())
    );
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn a_pipelined_sliding_log_counts_exactly() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    // The sliding-log script's steps, ten times in one write: trim, add, count, expire.
    let mut batch = Vec::new();
    for t in 0..10 {
        let ts = (1000 + t * 100).to_string();
        let cutoff = (t * 100 + 500).to_string();
        batch.extend(resp(&["ZREMRANGEBYSCORE", "log", "-inf", &cutoff]));
        batch.extend(resp(&["ZADD", "log", &ts, &ts]));
        batch.extend(resp(&["ZCARD", "log"]));
        batch.extend(resp(&["PEXPIRE", "log", "1000"]));
    }
    c.send(&batch).await;
    let replies = c.read_replies(40).await;
    let cards: Vec<_> = replies.chunks(4).map(|r| r[2].clone()).collect();
    // Entries at 1000 + 100 t; the trim drops those at or below 500 + 100 t, keeping 5.
    let want: Vec<_> = (1..=10).map(|n| Reply::Int(n.min(5))).collect();
    assert_eq!(cards, want);
}

#[tokio::test]
async fn a_sorted_set_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["ZADD", "z", "1", "a", "2.5", "b", "-inf", "c"])
        .await;
    c.cmd(&["ZREM", "z", "c"]).await;
    c.cmd(&["ZADD", "gone", "1", "x"]).await;
    c.cmd(&["ZREMRANGEBYSCORE", "gone", "-inf", "+inf"]).await;
    c.cmd(&["EXPIRE", "z", "100"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
        Reply::Array(vec![
            Reply::bulk("a"),
            Reply::bulk("1"),
            Reply::bulk("b"),
            Reply::bulk("2.5")
        ])
    );
    assert_eq!(c.cmd(&["TTL", "z"]).await, Reply::Int(100));
    assert_eq!(c.cmd(&["TYPE", "z"]).await, Reply::Simple("zset".into()));
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
}

#[tokio::test]
async fn the_redis_crate_reads_the_algebra_in_both_protocols() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = common::redis_connect(&server.url(resp3)).await;
        let _: i64 = redis::cmd("DEL")
            .arg(&["a", "b", "s"])
            .query_async(&mut con)
            .await
            .unwrap();
        let _: i64 = redis::cmd("ZADD")
            .arg(&["a", "1", "x", "2", "y"])
            .query_async(&mut con)
            .await
            .unwrap();
        let _: i64 = redis::cmd("ZADD")
            .arg(&["b", "10", "y", "20", "z"])
            .query_async(&mut con)
            .await
            .unwrap();
        let _: i64 = redis::cmd("SADD")
            .arg(&["s", "x", "z"])
            .query_async(&mut con)
            .await
            .unwrap();
        let union: Vec<(String, f64)> = redis::cmd("ZUNION")
            .arg(&["3", "a", "b", "s", "WEIGHTS", "1", "0.5", "2", "WITHSCORES"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(
            union,
            [("x".into(), 3.0), ("y".into(), 7.0), ("z".into(), 12.0)],
            "resp3 {resp3}"
        );
        let inter: Vec<String> = redis::cmd("ZINTER")
            .arg(&["2", "a", "b", "AGGREGATE", "MAX"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(inter, ["y"]);
        let card: i64 = redis::cmd("ZINTERCARD")
            .arg(&["2", "a", "s"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(card, 1);
        let err = redis::cmd("ZUNIONSTORE")
            .arg(&["d", "0", "a"])
            .query_async::<i64>(&mut con)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 1 input key is needed for 'zunionstore' command"),
            "{err}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stored_algebra_results_survive_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["ZADD", "a", "1", "x", "2", "y"]).await;
    c.cmd(&["ZADD", "b", "3", "y", "4", "z"]).await;
    c.cmd(&["SET", "u", "old"]).await;
    c.cmd(&["EXPIRE", "u", "100"]).await;
    assert_eq!(
        c.cmd(&["ZUNIONSTORE", "u", "2", "a", "b", "WEIGHTS", "2", "1"])
            .await,
        Reply::Int(3)
    );
    assert_eq!(
        c.cmd(&["ZINTERSTORE", "i", "2", "a", "b"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        c.cmd(&["ZRANGESTORE", "r", "b", "0", "0"]).await,
        Reply::Int(1)
    );
    c.cmd(&["ZADD", "gone", "1", "m"]).await;
    assert_eq!(
        c.cmd(&["ZDIFFSTORE", "gone", "2", "a", "a"]).await,
        Reply::Int(0)
    );
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    let scored = |items: &[&str]| Reply::Array(items.iter().map(|s| Reply::bulk(s)).collect());
    assert_eq!(
        c.cmd(&["ZRANGE", "u", "0", "-1", "WITHSCORES"]).await,
        scored(&["x", "2", "z", "4", "y", "7"])
    );
    assert_eq!(c.cmd(&["TTL", "u"]).await, Reply::Int(-1));
    assert_eq!(
        c.cmd(&["ZRANGE", "i", "0", "-1", "WITHSCORES"]).await,
        scored(&["y", "5"])
    );
    assert_eq!(
        c.cmd(&["ZRANGE", "r", "0", "-1", "WITHSCORES"]).await,
        scored(&["y", "3"])
    );
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
    server.stop().await.unwrap();
}
