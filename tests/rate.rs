//! RATE over TCP: `RATE.TAKE` and `RATE.PEEK` with the `redis` crate in RESP2 (flat
//! field/value array) and RESP3 (map), denial and recovery on the manual clock, a bucket shared
//! with `CL.THROTTLE`, errors, and one exact wire check of both encodings.

mod common;

use std::time::Duration;

use common::{query as run, query_err as run_err, resp, TestServer};
use redis::Value;

/// The uniform reply as the `redis` crate decodes it: a map in RESP3 (allowed a boolean), a
/// flat array in RESP2 (allowed 1/0).
fn decision(resp3: bool, allowed: bool, fields: [i64; 4]) -> Value {
    let names = ["limit", "remaining", "retry_after_ms", "reset_after_ms"];
    let mut pairs = vec![(
        Value::BulkString(b"allowed".to_vec()),
        if resp3 {
            Value::Boolean(allowed)
        } else {
            Value::Int(i64::from(allowed))
        },
    )];
    for (name, v) in names.into_iter().zip(fields) {
        pairs.push((Value::BulkString(name.as_bytes().to_vec()), Value::Int(v)));
    }
    if resp3 {
        Value::Map(pairs)
    } else {
        Value::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
    }
}

async fn take_and_peek(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let d = |allowed, fields| decision(resp3, allowed, fields);
    assert_eq!(
        run(&mut con, &["RATE.PEEK", "k", "5/1s"]).await,
        d(true, [5, 4, -1, 200]),
        "peek on a fresh key (resp3: {resp3})"
    );
    assert_eq!(run(&mut con, &["EXISTS", "k"]).await, Value::Int(0));
    assert_eq!(
        run(&mut con, &["RATE.TAKE", "k", "5/1s", "COST", "5"]).await,
        d(true, [5, 0, -1, 1000]),
        "the whole burst at once"
    );
    assert_eq!(
        run(&mut con, &["RATE.TAKE", "k", "5/1s"]).await,
        d(false, [5, 0, 200, 1000]),
        "spent: one emission to wait"
    );
    server.clock.advance(Duration::from_millis(199));
    assert_eq!(
        run(&mut con, &["RATE.PEEK", "k", "5/1s"]).await,
        d(false, [5, 0, 1, 801]),
        "1 ms before retry_after"
    );
    assert_eq!(run(&mut con, &["PTTL", "k"]).await, Value::Int(801));
    server.clock.advance(Duration::from_millis(1));
    assert_eq!(
        run(&mut con, &["RATE.TAKE", "k", "5/1s"]).await,
        d(true, [5, 0, -1, 1000]),
        "at retry_after"
    );
    assert_eq!(
        run(&mut con, &["PTTL", "k"]).await,
        Value::Int(1000),
        "TTL is reset_after_ms"
    );
    assert_eq!(
        run(&mut con, &["rate.take", "b", "1/1m", "burst", "3"]).await,
        d(true, [3, 2, -1, 60_000]),
        "BURST sets the limit"
    );
    assert_eq!(
        run(
            &mut con,
            &["RATE.TAKE", "b", "1/1m", "BURST", "3", "COST", "4"]
        )
        .await,
        d(false, [3, 2, -1, 60_000]),
        "a cost over the burst never fits"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rate_take_and_peek_reply_with_a_flat_array_in_resp2() {
    take_and_peek(false).await;
}

#[tokio::test]
async fn rate_take_and_peek_reply_with_a_map_in_resp3() {
    take_and_peek(true).await;
}

async fn shares_buckets_and_reports_errors(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let cell: Vec<i64> = redis::cmd("CL.THROTTLE")
        .arg(&["k", "4", "1", "1", "3"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(cell, [0, 5, 2, -1, 3]);
    assert_eq!(
        run(&mut con, &["RATE.TAKE", "k", "1/1s", "BURST", "5"]).await,
        decision(resp3, true, [5, 1, -1, 4000]),
        "RATE.TAKE continues CL.THROTTLE's bucket (resp3: {resp3})"
    );
    let e = run_err(&mut con, &["RATE.TAKE", "k", "5/1x"]).await;
    assert_eq!(
        e.detail(),
        Some("invalid rate '5/1x': unknown duration unit 'x' (use ms, s, m, h or d)"),
        "{e}"
    );
    let e = run_err(&mut con, &["RATE.PEEK", "k", "5/s", "COST"]).await;
    assert_eq!(e.detail(), Some("syntax error"), "{e}");
    let () = redis::cmd("SET")
        .arg("s")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let e = run_err(&mut con, &["RATE.TAKE", "s", "5/s"]).await;
    assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    let e = run_err(&mut con, &["GET", "k"]).await;
    assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rate_shares_buckets_with_cl_throttle_and_reports_errors_in_resp2() {
    shares_buckets_and_reports_errors(false).await;
}

#[tokio::test]
async fn rate_shares_buckets_with_cl_throttle_and_reports_errors_in_resp3() {
    shares_buckets_and_reports_errors(true).await;
}

#[tokio::test]
async fn rate_replies_have_the_exact_wire_bytes_in_both_protocols() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.exchange_text(&resp(&["RATE.TAKE", "k", "10/1s"])).await,
        "*10\r\n$7\r\nallowed\r\n:1\r\n$5\r\nlimit\r\n:10\r\n$9\r\nremaining\r\n:9\r\n\
$14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:100\r\n"
    );
    c.exchange(&resp(&["HELLO", "3"]), 1).await;
    assert_eq!(
        c.exchange_text(&resp(&["RATE.PEEK", "k", "10/1s", "COST", "10"]))
            .await,
        "%5\r\n$7\r\nallowed\r\n#f\r\n$5\r\nlimit\r\n:10\r\n$9\r\nremaining\r\n:9\r\n\
$14\r\nretry_after_ms\r\n:100\r\n$14\r\nreset_after_ms\r\n:100\r\n"
    );
    server.stop().await.unwrap();
}
