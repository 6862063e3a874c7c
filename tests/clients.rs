//! What a real client library sees: the `redis` crate connected with RESP3 (it sends `HELLO 3`
//! on connect) running everyday commands and the introspection commands libraries and tools
//! call (INFO, CONFIG GET, COMMAND, SCAN).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::TestServer;
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};

async fn q<T: FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn map_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| text(k) == key).map(|(_, v)| v),
        _ => panic!("not a map: {v:?}"),
    }
}

#[tokio::test]
async fn the_connection_negotiates_resp3() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let missing: Value = q(&mut con, &["GET", "missing"]).await;
    assert_eq!(missing, Value::Nil);
    let list: String = q(&mut con, &["CLIENT", "INFO"]).await;
    assert!(list.contains(" resp=3 "), "{list}");
    // The socket's own descriptor, as Redis shows it, and the connection's user.
    let fd: i64 = list
        .split(' ')
        .find_map(|f| f.strip_prefix("fd="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("fd= in {list}"));
    assert!(fd > 2, "a real descriptor: {list}");
    assert!(list.contains(" user=default "), "{list}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn strings_counters_and_expiry_work_through_the_client() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let () = q(&mut con, &["SET", "a", "1"]).await;
    assert_eq!(q::<String>(&mut con, &["GET", "a"]).await, "1");
    assert_eq!(q::<i64>(&mut con, &["INCR", "a"]).await, 2);
    assert_eq!(q::<i64>(&mut con, &["INCRBY", "a", "40"]).await, 42);
    assert_eq!(q::<i64>(&mut con, &["TTL", "a"]).await, -1, "no expiry yet");
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "a", "100"]).await, 1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "a"]).await, 100);
    assert_eq!(q::<i64>(&mut con, &["PTTL", "a"]).await, 100_000);
    server.clock.advance(Duration::from_millis(30_400));
    assert_eq!(q::<i64>(&mut con, &["TTL", "a"]).await, 70, "69.6 s rounds");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut con, &["MGET", "a", "nope", "a"]).await,
        [Some("42".to_owned()), None, Some("42".to_owned())]
    );
    server.clock.advance(Duration::from_millis(69_600));
    assert_eq!(
        q::<Option<String>>(&mut con, &["GET", "a"]).await,
        None,
        "expired exactly at its deadline"
    );
    assert_eq!(q::<i64>(&mut con, &["TTL", "a"]).await, -2);

    let () = q(&mut con, &["MSET", "x", "1", "y", "2", "z", "3"]).await;
    assert_eq!(q::<i64>(&mut con, &["DEL", "x", "y", "nope"]).await, 2);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut con, &["MGET", "x", "y", "z"]).await,
        [None, None, Some("3".to_owned())]
    );
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).await, 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_setname_and_getname_round_trip() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    assert_eq!(
        q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]).await,
        None
    );
    let () = q(&mut con, &["CLIENT", "SETNAME", "worker-7"]).await;
    assert_eq!(
        q::<String>(&mut con, &["CLIENT", "GETNAME"]).await,
        "worker-7"
    );
    let list: String = q(&mut con, &["CLIENT", "LIST"]).await;
    assert!(list.contains("name=worker-7"), "{list}");
    let id: i64 = q(&mut con, &["CLIENT", "ID"]).await;
    assert!(list.contains(&format!("id={id} ")), "{list}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn info_reports_the_redis_version_and_not_loading() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let info: String = q(&mut con, &["INFO"]).await;
    let fields: HashMap<&str, &str> = info
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .collect();
    let version = fields.get("redis_version").expect("redis_version");
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().expect("numeric version part"))
        .collect();
    assert_eq!(parts.len(), 3, "{version}");
    assert!(
        parts[0] >= 6,
        "clients gate RESP3 features on >= 6: {version}"
    );
    assert_eq!(fields.get("loading"), Some(&"0"));
    assert_eq!(
        fields.get("tcp_port"),
        Some(&server.addr.port().to_string().as_str())
    );

    let only_server: String = q(&mut con, &["INFO", "server"]).await;
    assert!(only_server.contains("redis_version:"));
    assert!(!only_server.contains("loading:"), "only the server section");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_get_maxmemory_returns_a_map() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let v: Value = q(&mut con, &["CONFIG", "GET", "maxmemory"]).await;
    assert_eq!(
        v,
        Value::Map(vec![(
            Value::BulkString(b"maxmemory".to_vec()),
            Value::BulkString(b"0".to_vec())
        )])
    );
    let many: HashMap<String, String> = q(&mut con, &["CONFIG", "GET", "max*"]).await;
    assert_eq!(many.get("maxclients").map(String::as_str), Some("10000"));
    assert!(many.contains_key("maxmemory-policy"), "{many:?}");

    let mut resp2 = server.redis(false).await;
    let flat: Value = q(&mut resp2, &["CONFIG", "GET", "maxmemory"]).await;
    assert!(
        matches!(&flat, Value::Array(items) if items.len() == 2),
        "RESP2 flattens the map: {flat:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn command_count_and_docs_describe_the_table() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let count: i64 = q(&mut con, &["COMMAND", "COUNT"]).await;
    assert!(count > 40, "COMMAND COUNT = {count}");
    let all: Vec<Value> = q(&mut con, &["COMMAND"]).await;
    assert_eq!(
        all.len() as i64,
        count,
        "COMMAND lists COMMAND COUNT entries"
    );

    let docs: Value = q(&mut con, &["COMMAND", "DOCS", "get"]).await;
    let get = map_get(&docs, "get").expect("docs for get");
    assert!(!text(map_get(get, "summary").expect("summary")).is_empty());
    assert_eq!(text(map_get(get, "group").expect("group")), "string");
    assert!(map_get(get, "arguments").is_some(), "{get:?}");

    let throttle: Value = q(&mut con, &["COMMAND", "DOCS", "cl.throttle"]).await;
    assert!(map_get(&throttle, "cl.throttle").is_some(), "{throttle:?}");
    let none: Value = q(&mut con, &["COMMAND", "DOCS", "no-such-command"]).await;
    assert_eq!(none, Value::Map(vec![]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn scan_returns_each_of_500_keys_exactly_once() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let mut mset = redis::cmd("MSET");
    for i in 0..500 {
        mset.arg(format!("key:{i}")).arg(i);
    }
    let () = mset.query_async(&mut con).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) =
            q(&mut con, &["SCAN", &cursor, "COUNT", "25"]).await;
        seen.extend(batch);
        calls += 1;
        assert!(calls < 10_000, "SCAN never returned cursor 0");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert!(calls > 1, "COUNT 25 over 500 keys takes several calls");
    assert_eq!(seen.len(), 500, "no key twice");
    let unique: HashSet<String> = seen.into_iter().collect();
    let want: HashSet<String> = (0..500).map(|i| format!("key:{i}")).collect();
    assert_eq!(unique, want);

    // The crate's own SCAN iterator agrees, with MATCH.
    let mut iter = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg("key:4??")
        .clone()
        .iter_async::<String>(&mut con)
        .await
        .unwrap();
    let mut matched = HashSet::new();
    while let Some(k) = iter.next_item().await {
        assert!(matched.insert(k.unwrap()), "duplicate from SCAN MATCH");
    }
    drop(iter);
    let want: HashSet<String> = (400..500).map(|i| format!("key:{i}")).collect();
    assert_eq!(matched, want);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keys_filters_by_glob_pattern() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    let () = q(
        &mut con,
        &[
            "MSET", "user:1", "a", "user:2", "b", "user:10", "c", "order:1", "d", "user", "e",
        ],
    )
    .await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(q(&mut con, &["KEYS", "user:?"]).await),
        ["user:1", "user:2"]
    );
    assert_eq!(
        sorted(q(&mut con, &["KEYS", "user:*"]).await),
        ["user:1", "user:10", "user:2"]
    );
    assert_eq!(
        sorted(q(&mut con, &["KEYS", "*:1"]).await),
        ["order:1", "user:1"]
    );
    assert_eq!(
        sorted(q(&mut con, &["KEYS", "user:[12]"]).await),
        ["user:1", "user:2"]
    );
    assert_eq!(q::<Vec<String>>(&mut con, &["KEYS", "*"]).await.len(), 5);
    assert!(q::<Vec<String>>(&mut con, &["KEYS", "nothing*"])
        .await
        .is_empty());
    server.stop().await.unwrap();
}
