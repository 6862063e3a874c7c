//! GCRA over TCP with the `redis` crate, in RESP2 and RESP3: redis-cell's `CL.THROTTLE`
//! contract, denial and recovery on the manual clock, the `GCRA` command, and exactness when
//! many connections race on the same keys.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use redis::aio::MultiplexedConnection;

async fn throttle(con: &mut MultiplexedConnection, args: &[&str]) -> Vec<i64> {
    redis::cmd("CL.THROTTLE")
        .arg(args)
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("CL.THROTTLE {args:?}: {e}"))
}

async fn gcra(con: &mut MultiplexedConnection, args: &[&str]) -> Vec<i64> {
    redis::cmd("GCRA")
        .arg(args)
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("GCRA {args:?}: {e}"))
}

async fn fresh_key_replies_like_redis_cell(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let raw: redis::Value = redis::cmd("CL.THROTTLE")
        .arg(&["user123", "15", "30", "60"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        raw,
        redis::Value::Array(
            [0, 16, 15, -1, 2]
                .into_iter()
                .map(redis::Value::Int)
                .collect()
        ),
        "an array of five integers (resp3: {resp3})"
    );
    assert_eq!(
        throttle(&mut con, &["user123", "15", "30", "60"]).await,
        [0, 16, 14, -1, 4]
    );
    assert_eq!(
        throttle(&mut con, &["user123", "15", "30", "60", "3"]).await,
        [0, 16, 11, -1, 10],
        "quantity 3"
    );
    assert_eq!(
        throttle(&mut con, &["user123", "15", "30", "60", "0"]).await,
        [0, 16, 11, -1, 10],
        "quantity 0 peeks"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cl_throttle_on_a_fresh_key_replies_like_redis_cell_in_resp2() {
    fresh_key_replies_like_redis_cell(false).await;
}

#[tokio::test]
async fn cl_throttle_on_a_fresh_key_replies_like_redis_cell_in_resp3() {
    fresh_key_replies_like_redis_cell(true).await;
}

async fn denies_when_burst_is_spent_and_recovers(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    let args = ["k", "4", "1", "1"];
    for i in 0..5 {
        assert_eq!(
            throttle(&mut con, &args).await,
            [0, 5, 4 - i, -1, i + 1],
            "take {i}"
        );
    }
    assert_eq!(throttle(&mut con, &args).await, [1, 5, 0, 1, 5], "spent");
    server.clock.advance(Duration::from_millis(999));
    assert_eq!(
        throttle(&mut con, &args).await,
        [1, 5, 0, 1, 5],
        "1 ms before the retry time is still denied"
    );
    server.clock.advance(Duration::from_millis(1));
    assert_eq!(
        throttle(&mut con, &args).await,
        [0, 5, 0, -1, 5],
        "allowed exactly at the retry time"
    );
    server.clock.advance(Duration::from_secs(2));
    assert_eq!(throttle(&mut con, &args).await, [0, 5, 1, -1, 4]);
    server.clock.advance(Duration::from_secs(4));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "a full bucket expires");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn denies_when_burst_is_spent_and_recovers_as_the_clock_advances_in_resp2() {
    denies_when_burst_is_spent_and_recovers(false).await;
}

#[tokio::test]
async fn denies_when_burst_is_spent_and_recovers_as_the_clock_advances_in_resp3() {
    denies_when_burst_is_spent_and_recovers(true).await;
}

async fn gcra_command_follows_redis_syntax(resp3: bool) {
    let server = TestServer::start().await;
    let mut con = server.redis(resp3).await;
    assert_eq!(
        gcra(&mut con, &["k", "15", "30", "60"]).await,
        [0, 16, 15, -1, 2]
    );
    assert_eq!(
        gcra(&mut con, &["k", "15", "30", "60", "TOKENS", "3"]).await,
        [0, 16, 12, -1, 8]
    );
    assert_eq!(
        gcra(&mut con, &["f", "0", "2", "0.5"]).await,
        [0, 1, 0, -1, 1]
    );
    assert_eq!(
        gcra(&mut con, &["f", "0", "2", "0.5"]).await,
        [1, 1, 0, 1, 1]
    );
    server.clock.advance(Duration::from_millis(250));
    assert_eq!(
        gcra(&mut con, &["f", "0", "2", "0.5"]).await,
        [0, 1, 0, -1, 1],
        "one token per 250 ms"
    );
    let err = redis::cmd("GCRA")
        .arg(&["k", "1", "1", "1", "TOKENS"])
        .query_async::<Vec<i64>>(&mut con)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Missing TOKENS value"), "{err}");
    let () = redis::cmd("SET")
        .arg("s")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let err = redis::cmd("GCRA")
        .arg(&["s", "1", "1", "1"])
        .query_async::<Vec<i64>>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn gcra_command_follows_redis_syntax_in_resp2() {
    gcra_command_follows_redis_syntax(false).await;
}

#[tokio::test]
async fn gcra_command_follows_redis_syntax_in_resp3() {
    gcra_command_follows_redis_syntax(true).await;
}

/// How one racing connection sends its requests.
#[derive(Clone, Copy)]
enum Mode {
    /// One request, wait for its reply, the next.
    OneByOne,
    /// All requests of the connection in one pipeline.
    Pipelined,
}

/// Opens `conns` connections (all connected before any request is sent), then has connection
/// `c` send `CL.THROTTLE key_of(c, r) <params>` for r in 0..per_conn. Returns every (key, reply).
async fn race(
    server: &TestServer,
    resp3: bool,
    conns: usize,
    per_conn: usize,
    mode: Mode,
    params: [&'static str; 3],
    key_of: fn(usize, usize) -> String,
) -> Vec<(String, Vec<i64>)> {
    // Connections of an earlier race may still be closing on the server side.
    common::eventually(common::WAIT, "earlier connections to close", || async {
        server.shared.clients.is_empty().then_some(())
    })
    .await;
    let start = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let url = server.url(resp3);
        let start = start.clone();
        tasks.spawn(async move {
            let mut con = common::redis_connect(&url).await;
            start.wait().await;
            let keys: Vec<String> = (0..per_conn).map(|r| key_of(c, r)).collect();
            let replies: Vec<Vec<i64>> = match mode {
                Mode::OneByOne => {
                    let mut out = Vec::new();
                    for k in &keys {
                        let mut args = vec![k.as_str()];
                        args.extend(params);
                        out.push(throttle(&mut con, &args).await);
                    }
                    out
                }
                Mode::Pipelined => {
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.cmd("CL.THROTTLE").arg(k).arg(&params[..]);
                    }
                    pipe.query_async(&mut con)
                        .await
                        .expect("pipelined CL.THROTTLE")
                }
            };
            assert_eq!(replies.len(), per_conn);
            keys.into_iter().zip(replies).collect::<Vec<_>>()
        });
    }
    // Every connection is its own TCP connection and is registered before the race starts.
    common::eventually(common::WAIT, "every racing connection", || async {
        (server.shared.clients.len() == conns).then_some(())
    })
    .await;
    start.wait().await;
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("racing task does not panic"));
    }
    assert_eq!(all.len(), conns * per_conn);
    all
}

fn one_key(_: usize, _: usize) -> String {
    "shared-key".to_owned()
}

/// Checks that exactly `limit` of the replies on one frozen-clock key were allowed, that the
/// allowed ones saw each remaining count from limit-1 down to 0 exactly once (no two requests
/// observed the same state), and that every denial is well-formed.
fn assert_exactly_limit_allowed(replies: &[Vec<i64>], limit: i64, retry_s: i64) {
    let allowed: Vec<&Vec<i64>> = replies.iter().filter(|r| r[0] == 0).collect();
    assert_eq!(allowed.len() as i64, limit, "allowed replies");
    let mut remaining: Vec<i64> = allowed.iter().map(|r| r[2]).collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..limit).collect::<Vec<_>>(),
        "remaining counts"
    );
    for r in replies.iter().filter(|r| r[0] == 1) {
        assert_eq!(&r[..4], &[1, limit, 0, retry_s], "denial {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_on_one_key_get_exactly_the_limit() {
    let server = TestServer::start().await;
    let params = ["99", "1", "3600"];
    let replies = race(&server, false, 50, 10, Mode::OneByOne, params, one_key).await;
    let replies: Vec<Vec<i64>> = replies.into_iter().map(|(_, r)| r).collect();
    assert_exactly_limit_allowed(&replies, 100, 3600);

    // Ten emission intervals later, exactly ten more are admitted among fifty racers.
    server.clock.advance(Duration::from_secs(10 * 3600));
    let replies = race(&server, true, 50, 1, Mode::OneByOne, params, one_key).await;
    let allowed = replies.iter().filter(|(_, r)| r[0] == 0).count();
    assert_eq!(allowed, 10, "after ten intervals");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pipelining_connections_on_one_key_get_exactly_the_limit() {
    let server = TestServer::start().await;
    let replies = race(
        &server,
        true,
        50,
        10,
        Mode::Pipelined,
        ["99", "1", "3600"],
        one_key,
    )
    .await;
    let replies: Vec<Vec<i64>> = replies.into_iter().map(|(_, r)| r).collect();
    assert_exactly_limit_allowed(&replies, 100, 3600);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_over_two_hundred_keys_never_exceed_any_keys_limit() {
    let server = TestServer::start().await;
    // Limit 5 per key; about 10 requests land on each key, from many connections.
    let spread = |c: usize, r: usize| format!("key:{}", (c * 37 + r * 11) % 200);
    for (mode, resp3) in [(Mode::OneByOne, false), (Mode::Pipelined, true)] {
        let replies = race(&server, resp3, 50, 40, mode, ["4", "1", "3600"], spread).await;
        let mut per_key: HashMap<String, (usize, usize)> = HashMap::new();
        for (k, r) in &replies {
            let e = per_key.entry(k.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(r[0] == 0);
        }
        assert_eq!(per_key.len(), 200);
        for (k, (sent, allowed)) in &per_key {
            assert!(*allowed <= 5, "{k}: {allowed} allowed, limit 5");
            assert_eq!(*allowed, (*sent).min(5), "{k}: {sent} sent");
        }
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut server.redis(false).await)
            .await
            .unwrap();
    }
    server.stop().await.unwrap();
}
