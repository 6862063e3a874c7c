//! COST over TCP: `COST.INCRBY` and `COST.PEEK` with the `redis` crate in RESP2 (a flat
//! field/value array) and RESP3 (a map), with `limit`/`remaining`/`spent`/`recorded` as exact
//! decimal bulk strings; calendar and rolling caps, FORCE and refunds on the manual clock; and
//! the exact wire bytes of a reply.

mod common;

use std::time::Duration;

use common::{fields, query, resp, TestServer};
use redis::Value;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// 2026-01-01T00:00:00Z in Unix ms, where every test server's clock starts.
const START_MS: i64 = 1_767_225_600_000;

fn dec(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn allowed_value(resp3: bool, allowed: bool) -> Value {
    if resp3 {
        Value::Boolean(allowed)
    } else {
        Value::Int(i64::from(allowed))
    }
}

/// An expected COST reply. `money` is (limit, remaining, spent, recorded) as decimal text;
/// `period` the calendar bounds in Unix ms, if any.
fn expected(
    resp3: bool,
    allowed: bool,
    money: [&str; 4],
    retry: i64,
    reset: i64,
    period: Option<(i64, i64)>,
) -> Vec<(String, Value)> {
    let [limit, remaining, spent, recorded] = money;
    let mut v = vec![
        ("allowed", allowed_value(resp3, allowed)),
        ("limit", dec(limit)),
        ("remaining", dec(remaining)),
        ("retry_after_ms", Value::Int(retry)),
        ("reset_after_ms", Value::Int(reset)),
        ("spent", dec(spent)),
        ("recorded", dec(recorded)),
    ];
    if let Some((start, end)) = period {
        v.push(("period_start_ms", Value::Int(start)));
        v.push(("period_end_ms", Value::Int(end)));
    }
    v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn calendar_cap_charges_refunds_and_forces(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let day = Some((START_MS, START_MS + DAY_MS));
    let cap = ["CAP", "5", "PER", "day"];
    let run = |cmd: &'static str, amount: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![cmd, "team:1", amount];
        args.extend_from_slice(&cap);
        args.extend_from_slice(extra);
        args
    };
    // (label, request, allowed, [limit, remaining, spent, recorded], retry_after_ms)
    type Step = (
        &'static str,
        Vec<&'static str>,
        bool,
        [&'static str; 4],
        i64,
    );
    let steps: &[Step] = &[
        (
            "peek on a fresh key",
            run("COST.PEEK", "1.25", &[]),
            true,
            ["5", "3.75", "1.25", "1.25"],
            -1,
        ),
        (
            "charge",
            run("COST.INCRBY", "1.25", &[]),
            true,
            ["5", "3.75", "1.25", "1.25"],
            -1,
        ),
        (
            "charge 3.75 to the cap",
            run("COST.INCRBY", "3.75", &[]),
            true,
            ["5", "0", "5", "3.75"],
            -1,
        ),
        (
            "over the cap: nothing recorded",
            run("COST.INCRBY", "0.000001", &[]),
            false,
            ["5", "0", "5", "0"],
            DAY_MS,
        ),
        (
            "FORCE records past the cap",
            run("COST.INCRBY", "0.5", &["FORCE"]),
            false,
            ["5", "0", "5.5", "0.5"],
            DAY_MS,
        ),
        (
            "refund",
            run("COST.INCRBY", "-2.5", &[]),
            true,
            ["5", "2", "3", "-2.5"],
            -1,
        ),
        (
            "peeked refund below zero",
            run("COST.PEEK", "-9", &[]),
            true,
            ["5", "5", "0", "-3"],
            -1,
        ),
    ];
    for (label, args, allowed, money, retry) in steps {
        assert_eq!(
            fields(query(&mut con, args).await, resp3),
            expected(resp3, *allowed, *money, *retry, DAY_MS, day),
            "{label} (resp3: {resp3})"
        );
    }
    assert_eq!(
        query(&mut con, &["PTTL", "team:1"]).await,
        Value::Int(DAY_MS),
        "the key expires at the day's end"
    );
    let refund = fields(query(&mut con, &run("COST.INCRBY", "-9", &[])).await, resp3);
    assert_eq!(refund[6], ("recorded".into(), dec("-3")), "clipped refund");
    assert_eq!(
        query(&mut con, &["EXISTS", "team:1"]).await,
        Value::Int(0),
        "nothing spent: the key is gone"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn calendar_cap_charges_refunds_and_forces_in_resp2() {
    calendar_cap_charges_refunds_and_forces(false).await;
}

#[tokio::test]
async fn calendar_cap_charges_refunds_and_forces_in_resp3() {
    calendar_cap_charges_refunds_and_forces(true).await;
}

async fn rolling_cap_retries_exactly(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let incr = ["COST.INCRBY", "k", "5", "CAP", "10", "WINDOW", "1h"];
    let peek = ["COST.PEEK", "k", "5", "CAP", "10", "WINDOW", "1h"];
    assert_eq!(
        fields(
            query(
                &mut con,
                &["COST.INCRBY", "k", "6", "CAP", "10", "WINDOW", "1h"]
            )
            .await,
            resp3
        ),
        expected(resp3, true, ["10", "4", "6", "6"], -1, 2 * HOUR_MS, None),
        "charge (resp3: {resp3})"
    );
    // 6·(W-e)/W + 5 <= 10 from e = W/6 into the next window: 70 minutes.
    let denied = expected(
        resp3,
        false,
        ["10", "4", "6", "0"],
        70 * 60_000,
        2 * HOUR_MS,
        None,
    );
    assert_eq!(fields(query(&mut con, &peek).await, resp3), denied, "peek");
    assert_eq!(
        fields(query(&mut con, &incr).await, resp3),
        denied,
        "denied"
    );
    server.clock.advance(Duration::from_millis(70 * 60_000 - 1));
    let before = fields(query(&mut con, &incr).await, resp3);
    assert_eq!(
        (&before[0].1, &before[3].1),
        (&allowed_value(resp3, false), &Value::Int(1)),
        "1 ms before retry_after"
    );
    server.clock.advance(Duration::from_millis(1));
    let at = fields(query(&mut con, &incr).await, resp3);
    assert_eq!(
        (&at[0].1, &at[5].1),
        (&allowed_value(resp3, true), &dec("10")),
        "at retry_after"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rolling_cap_retries_exactly_in_resp2() {
    rolling_cap_retries_exactly(false).await;
}

#[tokio::test]
async fn rolling_cap_retries_exactly_in_resp3() {
    rolling_cap_retries_exactly(true).await;
}

#[tokio::test]
async fn incrby_reply_bytes_are_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    // The nine fields after the header; `recorded` is a bulk string already framed.
    let body = |allowed: &str, recorded: &str| {
        format!(
            "$7\r\nallowed\r\n{allowed}\r\n$5\r\nlimit\r\n$3\r\n2.5\r\n\
             $9\r\nremaining\r\n$8\r\n1.250001\r\n\
             $14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:3600000\r\n\
             $5\r\nspent\r\n$8\r\n1.249999\r\n$8\r\nrecorded\r\n{recorded}\r\n\
             $15\r\nperiod_start_ms\r\n:1767225600000\r\n$13\r\nperiod_end_ms\r\n:1767229200000\r\n"
        )
    };
    let incr = resp(&["COST.INCRBY", "w", "1.249999", "CAP", "2.50", "PER", "hour"]);
    assert_eq!(
        c.exchange_text(&incr).await,
        format!("*18\r\n{}", body(":1", "$8\r\n1.249999")),
        "RESP2: flat array, decimals as bulk strings"
    );
    c.exchange(&resp(&["HELLO", "3"]), 1).await;
    let peek = resp(&["COST.PEEK", "w", "0", "CAP", "2.50", "PER", "hour"]);
    assert_eq!(
        c.exchange_text(&peek).await,
        format!("%9\r\n{}", body("#t", "$1\r\n0")),
        "RESP3: a map, allowed as a boolean"
    );
    assert_eq!(
        c.exchange_text(&resp(&[
            "COST.INCRBY",
            "w",
            "1e3",
            "CAP",
            "5",
            "PER",
            "hour"
        ]))
        .await,
        "-ERR invalid amount '1e3': amount must be a decimal number such as 1.25\r\n",
        "error line"
    );
    server.stop().await.unwrap();
}
