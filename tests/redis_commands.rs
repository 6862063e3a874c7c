//! Redis 7.0 data commands added for fidelity (strings, keys, sets, sorted sets, lists,
//! OBJECT) through the `redis` crate in RESP3, and their effects surviving a restart with the
//! append-only file on.

mod common;

use common::{query, query_err, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;
use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[tokio::test]
async fn string_commands_over_resp3() {
    let server = TestServer::start().await;
    let mut c = server.redis(true).await;
    assert_eq!(
        query(&mut c, &["APPEND", "k", "Hello "]).await,
        Value::Int(6)
    );
    assert_eq!(
        query(&mut c, &["APPEND", "k", "World"]).await,
        Value::Int(11)
    );
    assert_eq!(
        query(&mut c, &["SETRANGE", "k", "6", "Redis"]).await,
        Value::Int(11)
    );
    assert_eq!(
        query(&mut c, &["GETRANGE", "k", "0", "4"]).await,
        bulk("Hello")
    );
    assert_eq!(query(&mut c, &["STRLEN", "k"]).await, Value::Int(11));
    assert_eq!(
        query(&mut c, &["GETEX", "k", "EX", "100"]).await,
        bulk("Hello Redis")
    );
    assert_eq!(query(&mut c, &["TTL", "k"]).await, Value::Int(100));
    assert_eq!(query(&mut c, &["GETEX", "missing"]).await, Value::Nil);
    let e = query_err(&mut c, &["GETEX", "k", "EX", "1", "PERSIST"]).await;
    assert!(e.to_string().contains("syntax error"), "{e}");
    assert_eq!(
        query(&mut c, &["SETBIT", "b", "7", "1"]).await,
        Value::Int(0)
    );
    assert_eq!(
        query(&mut c, &["BITCOUNT", "b", "0", "7", "BIT"]).await,
        Value::Int(1)
    );
    query(&mut c, &["MSET", "a", "ohmytext", "b2", "mynewtext"]).await;
    let idx = query(&mut c, &["LCS", "a", "b2", "IDX", "MINMATCHLEN", "4"]).await;
    let Value::Map(pairs) = idx else {
        panic!("LCS IDX is a RESP3 map: {idx:?}")
    };
    assert_eq!(pairs[0].0, bulk("matches"));
    assert_eq!(pairs[1], (bulk("len"), Value::Int(6)));
    assert_eq!(
        query(&mut c, &["MSETNX", "a", "x", "new", "y"]).await,
        Value::Int(0)
    );
}

#[tokio::test]
async fn collection_and_key_commands_over_resp3() {
    let server = TestServer::start().await;
    let mut c = server.redis(true).await;
    query(&mut c, &["SADD", "s", "a", "b", "c"]).await;
    let Value::Set(popped) = query(&mut c, &["SPOP", "s", "2"]).await else {
        panic!("SPOP with a count is a RESP3 set")
    };
    assert_eq!(popped.len(), 2);
    assert_eq!(query(&mut c, &["SCARD", "s"]).await, Value::Int(1));
    let Value::Array(drawn) = query(&mut c, &["SRANDMEMBER", "s", "-5"]).await else {
        panic!("SRANDMEMBER with a count is an array")
    };
    assert_eq!(drawn.len(), 5);
    query(&mut c, &["SADD", "t", "x"]).await;
    assert_eq!(
        query(&mut c, &["SINTERCARD", "2", "s", "t"]).await,
        Value::Int(0)
    );
    query(&mut c, &["ZADD", "z", "1.5", "m"]).await;
    assert_eq!(
        query(&mut c, &["ZRANDMEMBER", "z", "1", "WITHSCORES"]).await,
        Value::Array(vec![Value::Array(vec![bulk("m"), Value::Double(1.5)])])
    );
    assert_eq!(
        query(&mut c, &["ZSCAN", "z", "0"]).await,
        Value::Array(vec![bulk("0"), Value::Array(vec![bulk("m"), bulk("1.5")])])
    );
    query(&mut c, &["RPUSH", "l", "a", "b", "a"]).await;
    assert_eq!(
        query(&mut c, &["LPOS", "l", "a", "COUNT", "0"]).await,
        Value::Array(vec![Value::Int(0), Value::Int(2)])
    );
    assert_eq!(
        query(&mut c, &["COPY", "l", "l2", "DB", "3"]).await,
        Value::Int(1)
    );
    assert_eq!(query(&mut c, &["RENAMENX", "l", "s"]).await, Value::Int(0));
    assert_eq!(
        query(&mut c, &["OBJECT", "ENCODING", "s"]).await,
        bulk("hashtable")
    );
    assert_eq!(
        query(&mut c, &["OBJECT", "ENCODING", "nope"]).await,
        Value::Nil
    );
    assert!(matches!(
        query(&mut c, &["RANDOMKEY"]).await,
        Value::BulkString(_)
    ));
    // COMMAND INFO carries Redis's key specs for the new writes.
    let info = format!(
        "{:?}",
        query(&mut c, &["COMMAND", "INFO", "APPEND", "COPY"]).await
    );
    assert!(info.contains("insert"), "{info}");
    assert!(info.contains("OW"), "{info}");
}

#[tokio::test]
async fn new_writes_survive_a_restart_with_the_aof() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["APPEND", "str", "abc"]).await;
    c.cmd(&["APPEND", "str", "def"]).await;
    c.cmd(&["SETRANGE", "str", "1", "XY"]).await;
    c.cmd(&["SADD", "src", "a", "b", "c"]).await;
    let Reply::Bulk(popped) = c.cmd(&["SPOP", "src"]).await else {
        panic!("SPOP answers a member")
    };
    let kept: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|m| m.as_bytes() != &popped[..])
        .collect();
    assert_eq!(
        c.cmd(&["SMOVE", "src", "dst", kept[0]]).await,
        Reply::Int(1)
    );
    assert_eq!(c.cmd(&["COPY", "dst", "dst2"]).await, Reply::Int(1));
    assert_eq!(
        c.cmd(&["COPY", "str", "str", "DB", "2"]).await,
        Reply::Int(1)
    );
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["GET", "str"]).await, Reply::bulk("aXYdef"));
    assert_eq!(
        c.cmd(&["SMEMBERS", "src"]).await,
        Reply::Array(vec![Reply::bulk(kept[1])])
    );
    assert_eq!(
        c.cmd(&["SMEMBERS", "dst"]).await,
        Reply::Array(vec![Reply::bulk(kept[0])])
    );
    assert_eq!(
        c.cmd(&["SMEMBERS", "dst2"]).await,
        Reply::Array(vec![Reply::bulk(kept[0])])
    );
    c.cmd(&["SELECT", "2"]).await;
    assert_eq!(c.cmd(&["GET", "str"]).await, Reply::bulk("aXYdef"));
    server.stop().await.unwrap();
}
