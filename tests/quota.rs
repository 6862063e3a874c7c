//! QUOTA over TCP: `QUOTA.TAKE` and `QUOTA.PEEK` with the `redis` crate in RESP2 (a flat
//! field/value array) and RESP3 (a map), denial and reset at a calendar boundary on the manual
//! clock, and the exact wire bytes of a reply.

mod common;

use std::time::Duration;

use common::{fields, query, resp, TestServer};
use limitkv::clock::Nanos;
use redis::Value;

const HOUR_MS: i64 = 3_600_000;

/// Unix ms of an RFC 3339 instant.
fn ms(s: &str) -> i64 {
    let ts: jiff::Timestamp = s.parse().expect("valid RFC 3339 in the test");
    ts.as_millisecond()
}

/// The expected QUOTA reply: `allowed` is a boolean in RESP3 and 1/0 in RESP2.
#[allow(clippy::too_many_arguments)]
fn expected(
    resp3: bool,
    allowed: bool,
    limit: i64,
    remaining: i64,
    retry: i64,
    reset: i64,
    start: i64,
    end: i64,
    used: i64,
    carry: i64,
) -> Vec<(String, Value)> {
    [
        ("allowed", allowed_value(resp3, allowed)),
        ("limit", Value::Int(limit)),
        ("remaining", Value::Int(remaining)),
        ("retry_after_ms", Value::Int(retry)),
        ("reset_after_ms", Value::Int(reset)),
        ("period_start_ms", Value::Int(start)),
        ("period_end_ms", Value::Int(end)),
        ("used", Value::Int(used)),
        ("carry", Value::Int(carry)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn take_and_peek_reply_uniformly(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let start = ms("2026-01-01T00:00:00Z");
    let end = ms("2026-01-01T01:00:00Z");
    let take = ["QUOTA.TAKE", "api:k", "3/hour", "COST", "2"];
    let peek = ["QUOTA.PEEK", "api:k", "3/hour", "COST", "2"];
    assert_eq!(
        fields(query(&mut con, &peek).await, resp3),
        expected(resp3, true, 3, 1, -1, HOUR_MS, start, end, 2, 0),
        "peek on a fresh key (resp3: {resp3})"
    );
    assert_eq!(
        query(&mut con, &["EXISTS", "api:k"]).await,
        Value::Int(0),
        "the peek created nothing"
    );
    assert_eq!(
        fields(query(&mut con, &take).await, resp3),
        expected(resp3, true, 3, 1, -1, HOUR_MS, start, end, 2, 0),
        "take"
    );
    server.clock.advance(Duration::from_secs(600));
    let denied = expected(
        resp3,
        false,
        3,
        1,
        50 * 60_000,
        50 * 60_000,
        start,
        end,
        2,
        0,
    );
    assert_eq!(
        fields(query(&mut con, &peek).await, resp3),
        denied,
        "peek predicts the denial"
    );
    assert_eq!(
        fields(query(&mut con, &take).await, resp3),
        denied,
        "take is denied"
    );
    assert_eq!(
        query(&mut con, &["PTTL", "api:k"]).await,
        Value::Int(50 * 60_000),
        "the key expires at the period end"
    );
    server.clock.advance(Duration::from_millis(50 * 60_000 - 1));
    let before = fields(query(&mut con, &take).await, resp3);
    assert_eq!(
        (&before[0].1, &before[3].1),
        (&allowed_value(resp3, false), &Value::Int(1)),
        "1 ms before retry_after"
    );
    server.clock.advance(Duration::from_millis(1));
    assert_eq!(
        fields(query(&mut con, &take).await, resp3),
        expected(resp3, true, 3, 1, -1, HOUR_MS, end, end + HOUR_MS, 2, 0),
        "at retry_after: the next hour"
    );
    server.stop().await.unwrap();
}

fn allowed_value(resp3: bool, allowed: bool) -> Value {
    if resp3 {
        Value::Boolean(allowed)
    } else {
        Value::Int(i64::from(allowed))
    }
}

#[tokio::test]
async fn take_and_peek_reply_with_a_flat_array_in_resp2() {
    take_and_peek_reply_uniformly(false).await;
}

#[tokio::test]
async fn take_and_peek_reply_with_a_map_in_resp3() {
    take_and_peek_reply_uniformly(true).await;
}

async fn zone_anchor_and_carry_over_the_wire(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    // A Berlin day containing the spring change lasts 23 hours.
    let start = ms("2026-03-29T00:00:00+01:00");
    let end = ms("2026-03-30T00:00:00+02:00");
    server.clock.set(Nanos::from_millis(start as u64));
    let take = [
        "QUOTA.TAKE",
        "k",
        "10/day",
        "TZ",
        "Europe/Berlin",
        "ANCHOR",
        "00:00",
        "CARRY",
        "4",
    ];
    assert_eq!(
        fields(query(&mut con, &take).await, resp3),
        expected(resp3, true, 14, 13, -1, 23 * HOUR_MS, start, end, 1, 4),
        "23-hour day, fresh key carries the cap (resp3: {resp3})"
    );
    server.clock.set(Nanos::from_millis(end as u64));
    let next = fields(query(&mut con, &take).await, resp3);
    assert_eq!(
        next,
        expected(
            resp3,
            true,
            14,
            13,
            -1,
            24 * HOUR_MS,
            end,
            end + 24 * HOUR_MS,
            1,
            4
        ),
        "next day carries min(4, 9 unused)"
    );
    let err = redis::cmd("QUOTA.TAKE")
        .arg(&["k", "10/day", "TZ", "Mars/Olympus"])
        .query_async::<Value>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.detail()),
        (Some("ERR"), Some("unknown time zone 'Mars/Olympus'")),
        "unknown zone"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn zone_anchor_and_carry_work_over_resp2() {
    zone_anchor_and_carry_over_the_wire(false).await;
}

#[tokio::test]
async fn zone_anchor_and_carry_work_over_resp3() {
    zone_anchor_and_carry_over_the_wire(true).await;
}

#[tokio::test]
async fn take_reply_bytes_are_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    // The nine fields after the header; the peek of one more unit sees 3 remaining, 2 used.
    let body = |allowed: &str, remaining: u8, used: u8| {
        format!(
            "$7\r\nallowed\r\n{allowed}\r\n$5\r\nlimit\r\n:5\r\n$9\r\nremaining\r\n:{remaining}\r\n\
             $14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:60000\r\n\
             $15\r\nperiod_start_ms\r\n:1767225600000\r\n$13\r\nperiod_end_ms\r\n:1767225660000\r\n\
             $4\r\nused\r\n:{used}\r\n$5\r\ncarry\r\n:0\r\n"
        )
    };
    let take = resp(&["QUOTA.TAKE", "w", "5/minute"]);
    let peek = resp(&["QUOTA.PEEK", "w", "5/minute", "COST", "1"]);
    assert_eq!(
        c.exchange_text(&take).await,
        format!("*18\r\n{}", body(":1", 4, 1)),
        "RESP2: flat array, allowed as 1"
    );
    c.exchange(&resp(&["HELLO", "3"]), 1).await;
    let peeked = c.exchange_text(&peek).await;
    assert_eq!(
        peeked,
        format!("%9\r\n{}", body("#t", 3, 2)),
        "RESP3: a map, allowed as a boolean"
    );
    assert_eq!(
        c.exchange_text(&resp(&["QUOTA.TAKE", "w", "5/fortnight"]))
            .await,
        "-ERR invalid quota '5/fortnight': unknown period 'fortnight' (use minute, hour, day, week or month)\r\n",
        "error line"
    );
    server.stop().await.unwrap();
}
