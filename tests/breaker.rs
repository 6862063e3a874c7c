//! BREAKER over TCP with the `redis` crate, in RESP2 (flat field/value arrays) and RESP3
//! (maps): every command through a full closed → open → half-open → closed cycle on the manual
//! clock, one raw-bytes wire check, and fifty connections racing for the half-open probes.

mod common;

use std::time::Duration;

use common::{query, race, TestServer};
use redis::Value;

/// One expected field value.
#[derive(Clone, Copy)]
enum F {
    Int(i64),
    Bool(bool),
    Str(&'static str),
}

/// The reply a map of `fields` is in RESP3, or the flat array it is in RESP2.
fn expect(resp3: bool, fields: &[(&str, F)]) -> Value {
    let value = |f: F| match (f, resp3) {
        (F::Int(n), _) => Value::Int(n),
        (F::Str(s), _) => Value::BulkString(s.as_bytes().to_vec()),
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

/// An ALLOW / PEEK reply: the uniform decision, then state, failures, next_transition_ms.
fn allow_reply(
    resp3: bool,
    d: (bool, i64, i64, i64, i64),
    state: &'static str,
    failures: i64,
    next: i64,
) -> Value {
    expect(
        resp3,
        &[
            ("allowed", F::Bool(d.0)),
            ("limit", F::Int(d.1)),
            ("remaining", F::Int(d.2)),
            ("retry_after_ms", F::Int(d.3)),
            ("reset_after_ms", F::Int(d.4)),
            ("state", F::Str(state)),
            ("failures", F::Int(failures)),
            ("next_transition_ms", F::Int(next)),
        ],
    )
}

/// A REPORT / STATE / TRIP reply: state, [failures, calls, probes_issued, probe_successes],
/// next_transition_ms.
fn status(resp3: bool, state: &'static str, counts: [i64; 4], next: i64) -> Value {
    expect(
        resp3,
        &[
            ("state", F::Str(state)),
            ("failures", F::Int(counts[0])),
            ("calls", F::Int(counts[1])),
            ("probes_issued", F::Int(counts[2])),
            ("probe_successes", F::Int(counts[3])),
            ("next_transition_ms", F::Int(next)),
        ],
    )
}

fn allowed(reply: &Value) -> bool {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items.chunks(2).map(|kv| (&kv[0], &kv[1])).collect(),
        other => panic!("not a decision: {other:?}"),
    };
    match pairs
        .iter()
        .find(|(k, _)| matches!(k, Value::BulkString(b) if b == b"allowed"))
    {
        Some((_, Value::Boolean(b))) => *b,
        Some((_, Value::Int(n))) => *n == 1,
        other => panic!("allowed is {other:?}"),
    }
}

fn with<'a>(words: &[&'a str], params: &[&'a str]) -> Vec<&'a str> {
    words.iter().chain(params).copied().collect()
}

async fn every_breaker_command_over_tcp(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let p = ["THRESHOLD", "2", "COOLDOWN", "10s", "PROBES", "2"];
    let allow = with(&["BREAKER.ALLOW", "svc"], &p);
    let failure = with(&["BREAKER.REPORT", "svc", "FAILURE"], &p);
    let success = with(&["BREAKER.REPORT", "svc", "SUCCESS"], &p);

    assert_eq!(
        query(&mut con, &allow).await,
        allow_reply(resp3, (true, 2, 2, -1, 0), "closed", 0, -1),
        "closed (resp3: {resp3})"
    );
    assert_eq!(
        query(&mut con, &failure).await,
        status(resp3, "closed", [1, 0, 0, 0], -1)
    );
    assert_eq!(
        query(&mut con, &failure).await,
        status(resp3, "open", [0; 4], 10_000),
        "second failure opens"
    );
    assert_eq!(
        query(&mut con, &allow).await,
        allow_reply(resp3, (false, 2, 0, 10_000, 10_000), "open", 0, 10_000),
        "open refuses"
    );
    server.clock.advance(Duration::from_millis(9_999));
    assert_eq!(
        query(&mut con, &with(&["BREAKER.PEEK", "svc"], &p)).await,
        allow_reply(resp3, (false, 2, 0, 1, 1), "open", 0, 1),
        "peek 1 ms before the cooldown ends"
    );
    server.clock.advance(Duration::from_millis(1));
    assert_eq!(
        query(&mut con, &with(&["BREAKER.PEEK", "svc"], &p)).await,
        allow_reply(resp3, (true, 2, 1, -1, 10_000), "half_open", 0, 10_000),
        "peek at the cooldown's end"
    );
    for left in [1, 0] {
        assert_eq!(
            query(&mut con, &allow).await,
            allow_reply(resp3, (true, 2, left, -1, 10_000), "half_open", 0, 10_000),
            "probe, {left} left"
        );
    }
    assert_eq!(
        query(&mut con, &with(&["BREAKER.STATE", "svc"], &p)).await,
        status(resp3, "half_open", [0, 0, 2, 0], 10_000)
    );
    assert_eq!(
        query(&mut con, &success).await,
        status(resp3, "half_open", [0, 0, 2, 1], 10_000)
    );
    assert_eq!(
        query(&mut con, &success).await,
        status(resp3, "closed", [0; 4], -1),
        "two successful probes close it"
    );
    assert_eq!(
        query(&mut con, &with(&["BREAKER.TRIP", "svc"], &p)).await,
        status(resp3, "open", [0; 4], 10_000)
    );
    let reset: i64 = redis::cmd("BREAKER.RESET")
        .arg("svc")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(reset, 1, "reset");
    assert_eq!(
        query(&mut con, &allow).await,
        allow_reply(resp3, (true, 2, 2, -1, 0), "closed", 0, -1),
        "closed after reset"
    );

    let () = redis::cmd("SET")
        .arg(&["s", "v"])
        .query_async(&mut con)
        .await
        .unwrap();
    let err = redis::cmd("BREAKER.ALLOW")
        .arg("s")
        .query_async::<Value>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
    let err = redis::cmd("BREAKER.REPORT")
        .arg(&["svc", "FAILURE", "WINDOW", "1y"])
        .query_async::<Value>(&mut con)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid WINDOW '1y'"),
        "argument errors name the argument: {err}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_breaker_command_works_over_tcp_in_resp2() {
    every_breaker_command_over_tcp(false).await;
}

#[tokio::test]
async fn every_breaker_command_works_over_tcp_in_resp3() {
    every_breaker_command_over_tcp(true).await;
}

#[tokio::test]
async fn allow_reply_is_exact_on_the_wire() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let cmd = common::resp(&["BREAKER.ALLOW", "svc"]);
    assert_eq!(
        raw.exchange_text(&cmd).await,
        "*16\r\n$7\r\nallowed\r\n:1\r\n$5\r\nlimit\r\n:1\r\n$9\r\nremaining\r\n:1\r\n\
$14\r\nretry_after_ms\r\n:-1\r\n$14\r\nreset_after_ms\r\n:0\r\n$5\r\nstate\r\n$6\r\nclosed\r\n\
$8\r\nfailures\r\n:0\r\n$18\r\nnext_transition_ms\r\n:-1\r\n",
        "RESP2 flat array"
    );
    raw.send(&common::resp(&["HELLO", "3"])).await;
    raw.read_reply().await;
    let trip = common::resp(&["BREAKER.TRIP", "svc", "COOLDOWN", "5s"]);
    assert_eq!(
        raw.exchange_text(&trip).await,
        "%6\r\n$5\r\nstate\r\n$4\r\nopen\r\n$8\r\nfailures\r\n:0\r\n$5\r\ncalls\r\n:0\r\n\
$13\r\nprobes_issued\r\n:0\r\n$15\r\nprobe_successes\r\n:0\r\n$18\r\nnext_transition_ms\r\n:5000\r\n",
        "RESP3 status map"
    );
    assert_eq!(
        raw.exchange_text(&cmd).await,
        "%8\r\n$7\r\nallowed\r\n#f\r\n$5\r\nlimit\r\n:1\r\n$9\r\nremaining\r\n:0\r\n\
$14\r\nretry_after_ms\r\n:5000\r\n$14\r\nreset_after_ms\r\n:5000\r\n$5\r\nstate\r\n$4\r\nopen\r\n\
$8\r\nfailures\r\n:0\r\n$18\r\nnext_transition_ms\r\n:5000\r\n",
        "RESP3 map, refused"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_allows_after_the_cooldown_get_exactly_the_probes() {
    let server = TestServer::start().await;
    for (probes, resp3) in [("1", false), ("3", true)] {
        let key = format!("svc{probes}");
        let p = ["COOLDOWN", "30s", "PROBES", probes];
        let mut con = server.redis(resp3).await;
        query(&mut con, &with(&["BREAKER.TRIP", &key], &p)).await;
        drop(con);
        let allow = with(&["BREAKER.ALLOW", &key], &p);
        let refused = race(&server, resp3, 50, &allow).await;
        assert_eq!(
            refused.iter().filter(|r| allowed(r)).count(),
            0,
            "PROBES {probes}: open refuses everyone"
        );

        server.clock.advance(Duration::from_secs(30));
        let replies = race(&server, resp3, 50, &allow).await;
        let want: usize = probes.parse().unwrap();
        assert_eq!(
            replies.iter().filter(|r| allowed(r)).count(),
            want,
            "PROBES {probes}: exactly that many callers get a probe"
        );
        let mut con = server.redis(resp3).await;
        assert_eq!(
            query(&mut con, &with(&["BREAKER.STATE", &key], &p)).await,
            status(resp3, "half_open", [0, 0, want as i64, 0], 30_000),
            "PROBES {probes}: state after the race"
        );
    }
    server.stop().await.unwrap();
}
