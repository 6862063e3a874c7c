//! WINDOW over TCP: `WINDOW.TAKE` and `WINDOW.PEEK` with the `redis` crate in RESP2 (flat
//! field/value array) and RESP3 (map), the documented worst case of a burst straddling a window
//! boundary, errors, and one exact wire check of both encodings.

mod common;

use std::time::Duration;

use common::{query as run, query_err as run_err, resp, TestServer};
use redis::Value;

/// The WINDOW reply as the `redis` crate decodes it: a map in RESP3 (allowed a boolean), a flat
/// array in RESP2 (allowed 1/0). `fields` are limit, remaining, retry_after_ms,
/// reset_after_ms, window_ms, estimate.
fn decision(resp3: bool, allowed: bool, fields: [i64; 6]) -> Value {
    let names = [
        "limit",
        "remaining",
        "retry_after_ms",
        "reset_after_ms",
        "window_ms",
        "estimate",
    ];
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

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn take_and_peek(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let d = |allowed, fields| decision(resp3, allowed, fields);
    // The manual clock starts at a whole minute, so fixed windows start at t = 0.
    assert_eq!(
        run(&mut con, &["WINDOW.PEEK", "k", "10/1s", "COST", "3"]).await,
        d(true, [10, 7, -1, 2000, 1000, 3]),
        "peek on a fresh key (resp3: {resp3})"
    );
    assert_eq!(run(&mut con, &["EXISTS", "k"]).await, Value::Int(0));
    server.clock.advance(ms(500));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s", "COST", "10"]).await,
        d(true, [10, 0, -1, 1500, 1000, 10]),
        "the whole limit"
    );
    assert_eq!(run(&mut con, &["PTTL", "k"]).await, Value::Int(1500));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s"]).await,
        d(false, [10, 0, 600, 1500, 1000, 10]),
        "full: at 1.1 s the previous window weighs 9"
    );
    server.clock.advance(ms(599));
    assert_eq!(
        run(&mut con, &["WINDOW.PEEK", "k", "10/1s"]).await,
        d(false, [10, 0, 1, 901, 1000, 10]),
        "1 ms before retry_after"
    );
    server.clock.advance(ms(1));
    assert_eq!(
        run(&mut con, &["window.take", "k", "10/1s", "cost", "1"]).await,
        d(true, [10, 0, -1, 1900, 1000, 10]),
        "at retry_after"
    );
    assert_eq!(run(&mut con, &["PTTL", "k"]).await, Value::Int(1900));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s", "COST", "11"]).await,
        d(false, [10, 0, -1, 1900, 1000, 10]),
        "a cost over the limit never fits"
    );
    server.clock.advance(ms(1900));
    assert_eq!(
        run(&mut con, &["EXISTS", "k"]).await,
        Value::Int(0),
        "gone once both windows are empty"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn window_take_and_peek_reply_with_a_flat_array_in_resp2() {
    take_and_peek(false).await;
}

#[tokio::test]
async fn window_take_and_peek_reply_with_a_map_in_resp3() {
    take_and_peek(true).await;
}

/// The documented worst case: a limit's worth packed at the end of one fixed window, then the
/// next window admits `limit - 1` more within the same sliding window, `2·limit - 1` in all.
/// An exact sliding log would have admitted none of the second burst.
async fn burst_at_a_window_boundary(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let d = |allowed, fields| decision(resp3, allowed, fields);
    server.clock.advance(ms(999));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s", "COST", "10"]).await,
        d(true, [10, 0, -1, 1001, 1000, 10]),
        "10 in the last millisecond of window 0 (resp3: {resp3})"
    );
    server.clock.advance(ms(1));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s"]).await,
        d(false, [10, 0, 100, 1000, 1000, 10]),
        "at the boundary the previous window weighs fully: no second burst yet"
    );
    server.clock.advance(ms(998));
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s", "COST", "10"]).await,
        d(false, [10, 9, 2, 2, 1000, 1]),
        "at 1.998 s the 10 weigh 0.02, rounded up to 1"
    );
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s", "COST", "9"]).await,
        d(true, [10, 0, -1, 1002, 1000, 10]),
        "9 more: 19 = 2·10 - 1 within 999 ms"
    );
    assert_eq!(
        run(&mut con, &["WINDOW.TAKE", "k", "10/1s"]).await,
        d(false, [10, 0, 2, 1002, 1000, 10]),
        "never 2·10"
    );
    server.clock.advance(ms(2));
    assert_eq!(
        run(&mut con, &["WINDOW.PEEK", "k", "10/1s"]).await,
        d(true, [10, 0, -1, 2000, 1000, 10]),
        "at 2.0 s the 9 weigh fully and one more fits"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_burst_at_a_window_boundary_admits_at_most_two_limits_minus_one_in_resp2() {
    burst_at_a_window_boundary(false).await;
}

#[tokio::test]
async fn a_burst_at_a_window_boundary_admits_at_most_two_limits_minus_one_in_resp3() {
    burst_at_a_window_boundary(true).await;
}

#[tokio::test]
async fn window_reports_errors_and_wrongtype() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = server.redis(resp3).await;
        let e = run_err(&mut con, &["WINDOW.TAKE", "k", "0/1s"]).await;
        assert_eq!(
            e.detail(),
            Some("invalid rate '0/1s': value must be greater than zero"),
            "{e} (resp3: {resp3})"
        );
        let e = run_err(&mut con, &["WINDOW.PEEK", "k", "5/s", "BURST", "2"]).await;
        assert_eq!(e.detail(), Some("syntax error"), "{e}");
        let () = redis::cmd("SET")
            .arg("s")
            .arg("v")
            .query_async(&mut con)
            .await
            .unwrap();
        let e = run_err(&mut con, &["WINDOW.TAKE", "s", "5/s"]).await;
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
        run(&mut con, &["WINDOW.TAKE", "w", "5/s"]).await;
        let e = run_err(&mut con, &["GET", "w"]).await;
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn window_replies_have_the_exact_wire_bytes_in_both_protocols() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.exchange_text(&resp(&["WINDOW.TAKE", "k", "10/1s", "COST", "4"]))
            .await,
        "*14\r\n$7\r\nallowed\r\n:1\r\n$5\r\nlimit\r\n:10\r\n$9\r\nremaining\r\n:6\r\n\
$14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:2000\r\n\
$9\r\nwindow_ms\r\n:1000\r\n$8\r\nestimate\r\n:4\r\n"
    );
    c.exchange(&resp(&["HELLO", "3"]), 1).await;
    assert_eq!(
        c.exchange_text(&resp(&["WINDOW.PEEK", "k", "10/1s", "COST", "7"]))
            .await,
        "%7\r\n$7\r\nallowed\r\n#f\r\n$5\r\nlimit\r\n:10\r\n$9\r\nremaining\r\n:6\r\n\
$14\r\nretry_after_ms\r\n:1250\r\n$14\r\nreset_after_ms\r\n:2000\r\n\
$9\r\nwindow_ms\r\n:1000\r\n$8\r\nestimate\r\n:4\r\n"
    );
    server.stop().await.unwrap();
}
