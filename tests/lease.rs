//! LEASE over TCP with the `redis` crate, in RESP2 (flat field/value arrays) and RESP3 (maps):
//! every command, exact denials on the manual clock, one raw-bytes wire check, and fifty
//! connections racing for five slots.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{query, race, TestServer};
use redis::Value;

/// One expected field value.
#[derive(Clone, Copy)]
enum F {
    Int(i64),
    Bool(bool),
}

/// The reply a map of `fields` is in RESP3, or the flat array it is in RESP2.
fn expect(resp3: bool, fields: &[(&str, F)]) -> Value {
    let value = |f: F| match (f, resp3) {
        (F::Int(n), _) => Value::Int(n),
        (F::Bool(b), true) => Value::Boolean(b),
        (F::Bool(b), false) => Value::Int(i64::from(b)),
    };
    let key = |k: &str| Value::BulkString(k.as_bytes().to_vec());
    if resp3 {
        Value::Map(fields.iter().map(|&(k, f)| (key(k), value(f))).collect())
    } else {
        Value::Array(
            fields
                .iter()
                .flat_map(|&(k, f)| [key(k), value(f)])
                .collect(),
        )
    }
}

/// The uniform decision fields followed by `extras`.
fn decision<'a>(
    allowed: bool,
    limit: i64,
    remaining: i64,
    retry: i64,
    reset: i64,
    extras: &[(&'a str, i64)],
) -> Vec<(&'a str, F)> {
    let mut v = vec![
        ("allowed", F::Bool(allowed)),
        ("limit", F::Int(limit)),
        ("remaining", F::Int(remaining)),
        ("retry_after_ms", F::Int(retry)),
        ("reset_after_ms", F::Int(reset)),
    ];
    v.extend(extras.iter().map(|&(k, n)| (k, F::Int(n))));
    v
}

/// The value of `name` in a map or flat field/value array.
fn field<'v>(reply: &'v Value, name: &str) -> &'v Value {
    let is = |k: &Value| matches!(k, Value::BulkString(b) if b == name.as_bytes());
    match reply {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| is(k)).map(|(_, v)| v),
        Value::Array(items) => items.chunks(2).find(|kv| is(&kv[0])).map(|kv| &kv[1]),
        _ => None,
    }
    .unwrap_or_else(|| panic!("no {name} in {reply:?}"))
}

fn allowed(reply: &Value) -> bool {
    match field(reply, "allowed") {
        Value::Boolean(b) => *b,
        Value::Int(n) => *n == 1,
        other => panic!("allowed is {other:?}"),
    }
}

fn int_field(reply: &Value, name: &str) -> i64 {
    match field(reply, name) {
        Value::Int(n) => *n,
        other => panic!("{name} is {other:?}"),
    }
}

fn next_id(server: &TestServer) -> i64 {
    server.shared.engine.next_lease_id.load(Ordering::Relaxed) as i64
}

async fn every_lease_command_over_tcp(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let now_ms = (common::EPOCH_SECS * 1000) as i64;
    let acquire = ["LEASE.ACQUIRE", "jobs", "LIMIT", "2", "TTL", "30s"];

    let id = next_id(&server);
    assert_eq!(
        query(&mut con, &acquire).await,
        expect(
            resp3,
            &decision(
                true,
                2,
                1,
                -1,
                30_000,
                &[
                    ("lease_id", id),
                    ("expires_at_ms", now_ms + 30_000),
                    ("ttl_ms", 30_000),
                    ("holders", 1),
                ],
            )
        ),
        "first slot (resp3: {resp3})"
    );
    server.clock.advance(Duration::from_secs(10));
    let second = query(&mut con, &acquire).await;
    assert_eq!(int_field(&second, "remaining"), 0);
    let second_id = int_field(&second, "lease_id");
    assert_ne!(second_id, id, "ids are unique");

    let denied = decision(
        false,
        2,
        0,
        20_000,
        30_000,
        &[
            ("lease_id", -1),
            ("expires_at_ms", -1),
            ("ttl_ms", -1),
            ("holders", 2),
        ],
    );
    assert_eq!(
        query(&mut con, &acquire).await,
        expect(resp3, &denied),
        "full"
    );
    let peek = ["LEASE.PEEK", "jobs", "LIMIT", "2", "TTL", "30s"];
    let peeked = decision(false, 2, 0, 20_000, 30_000, &[("holders", 2)]);
    assert_eq!(query(&mut con, &peek).await, expect(resp3, &peeked), "peek");
    let count: i64 = redis::cmd("LEASE.COUNT")
        .arg("jobs")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(count, 2);

    let id_s = id.to_string();
    let renewed: i64 = redis::cmd("LEASE.RENEW")
        .arg(&["jobs", &id_s, "TTL", "1m"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(renewed, 1, "renew");
    let released: i64 = redis::cmd("LEASE.RELEASE")
        .arg(&["jobs", &second_id.to_string()])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(released, 1, "release");
    let again: i64 = redis::cmd("LEASE.RELEASE")
        .arg(&["jobs", &second_id.to_string()])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(again, 0, "release is idempotent");
    assert_eq!(
        query(&mut con, &["LEASE.PEEK", "jobs", "LIMIT", "2"]).await,
        expect(resp3, &decision(true, 2, 0, -1, 60_000, &[("holders", 1)])),
        "after renew and release"
    );

    // The renewed lease ends at 10 s + 1 m: then the key is gone by itself.
    server.clock.advance(Duration::from_secs(60));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("jobs")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the key expires with its last lease");

    let () = redis::cmd("SET")
        .arg(&["s", "v"])
        .query_async(&mut con)
        .await
        .unwrap();
    let err = redis::cmd("LEASE.ACQUIRE")
        .arg(&["s", "LIMIT", "1", "TTL", "1s"])
        .query_async::<Value>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
    let err = redis::cmd("LEASE.ACQUIRE")
        .arg(&["k", "LIMIT", "1", "TTL", "1x"])
        .query_async::<Value>(&mut con)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid TTL '1x'"),
        "argument errors name the argument: {err}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_lease_command_works_over_tcp_in_resp2() {
    every_lease_command_over_tcp(false).await;
}

#[tokio::test]
async fn every_lease_command_works_over_tcp_in_resp3() {
    every_lease_command_over_tcp(true).await;
}

#[tokio::test]
async fn acquire_reply_is_exact_on_the_wire() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let id = next_id(&server);
    let now_ms = common::EPOCH_SECS * 1000;
    let cmd = common::resp(&["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "1500ms"]);
    let id_s = id.to_string();
    let expires = (now_ms + 1500).to_string();
    let want2 = format!(
        "*18\r\n$7\r\nallowed\r\n:1\r\n$5\r\nlimit\r\n:1\r\n$9\r\nremaining\r\n:0\r\n\
$14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:1500\r\n$8\r\nlease_id\r\n:{id_s}\r\n\
$13\r\nexpires_at_ms\r\n:{expires}\r\n$6\r\nttl_ms\r\n:1500\r\n$7\r\nholders\r\n:1\r\n"
    );
    assert_eq!(raw.exchange_text(&cmd).await, want2, "RESP2 flat array");

    raw.send(&common::resp(&["HELLO", "3"])).await;
    raw.read_reply().await;
    server.clock.advance(Duration::from_millis(500));
    let want3 = "%9\r\n$7\r\nallowed\r\n#f\r\n$5\r\nlimit\r\n:1\r\n$9\r\nremaining\r\n:0\r\n\
$14\r\nretry_after_ms\r\n:1000\r\n$14\r\nreset_after_ms\r\n:1000\r\n$8\r\nlease_id\r\n:-1\r\n\
$13\r\nexpires_at_ms\r\n:-1\r\n$6\r\nttl_ms\r\n:-1\r\n$7\r\nholders\r\n:1\r\n";
    assert_eq!(raw.exchange_text(&cmd).await, want3, "RESP3 map, denied");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_acquires_get_exactly_the_limit_and_expiry_frees_the_slots() {
    let server = TestServer::start().await;
    let acquire = ["LEASE.ACQUIRE", "pool", "LIMIT", "5", "TTL", "10s"];
    for (round, resp3) in [(0, false), (1, true)] {
        let replies = race(&server, resp3, 50, &acquire).await;
        let granted: Vec<&Value> = replies.iter().filter(|r| allowed(r)).collect();
        assert_eq!(granted.len(), 5, "round {round}: granted");
        let mut ids: Vec<i64> = granted.iter().map(|r| int_field(r, "lease_id")).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 5, "round {round}: distinct lease ids");
        let mut remaining: Vec<i64> = granted.iter().map(|r| int_field(r, "remaining")).collect();
        remaining.sort_unstable();
        assert_eq!(
            remaining,
            [0, 1, 2, 3, 4],
            "round {round}: each state seen once"
        );
        for r in replies.iter().filter(|r| !allowed(r)) {
            assert_eq!(
                int_field(r, "retry_after_ms"),
                10_000,
                "round {round}: {r:?}"
            );
            assert_eq!(int_field(r, "holders"), 5, "round {round}: {r:?}");
        }
        // No RELEASE: the TTL alone frees every slot.
        server.clock.advance(Duration::from_secs(10));
        let mut con = server.redis(resp3).await;
        let count: i64 = redis::cmd("LEASE.COUNT")
            .arg("pool")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(count, 0, "round {round}: every lease expired");
    }
    server.stop().await.unwrap();
}
