//! Per-client resource limits against hostile clients: `client-query-buffer-limit` (a huge
//! bulk header followed by a slow trickle of bytes), `client-output-buffer-limit normal` (a
//! pipeline of big replies that is never read), `maxclients` (a flood of connections) and the
//! idle `timeout` (a client that connects and says nothing). In each case the hostile client is
//! closed, the server's memory stays bounded, and other clients are served throughout.
//!
//! Memory is the test process's peak RSS (`VmHWM`), which includes the in-process server; the
//! tests that measure it take a lock so that they do not run at the same time.

mod common;

use std::time::{Duration, Instant};

use common::{Reply, TestServer, WAIT};
use limitkv::config::{Config, OutputBufferLimit};
use tokio::io::AsyncWriteExt;

const MB: u64 = 1024 * 1024;

/// Serialises the tests that measure peak memory.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's peak resident set size in bytes (Linux), or `None` elsewhere.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Asserts the peak RSS grew by less than `bound` since `before`.
fn assert_peak_grew_less_than(before: Option<u64>, bound: u64, what: &str) {
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        assert!(
            grew < bound,
            "{what}: peak RSS grew by {} MiB (bound {} MiB)",
            grew / MB,
            bound / MB
        );
    }
}

/// INFO stats' `client_output_buffer_limit_disconnections`.
async fn limit_disconnections(c: &mut common::Raw) -> u64 {
    let Reply::Bulk(info) = c.cmd(&["INFO", "stats"]).await else {
        panic!("INFO answers a bulk string")
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("client_output_buffer_limit_disconnections:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("the field is reported")
}

#[tokio::test]
async fn a_huge_bulk_header_then_a_trickle_is_cut_at_the_query_buffer_limit() {
    let _serial = MEMORY.lock().await;
    let server = TestServer::with_config(Config {
        client_query_buffer_limit: MB,
        // Far above the query buffer limit, so that only the latter stops this client.
        proto_max_bulk_len: 2 * 1024 * MB as usize,
        ..Config::default()
    })
    .await;
    let mut other = server.raw().await;
    assert_eq!(
        other
            .cmd(&["CONFIG", "GET", "client-query-buffer-limit"])
            .await,
        Reply::Array(vec![
            Reply::bulk("client-query-buffer-limit"),
            Reply::bulk("1048576")
        ])
    );
    let before = peak_rss();
    let mut hostile = server.raw().await;
    hostile
        .send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000000\r\n")
        .await;
    // 32 KiB every millisecond: slowly, by a server's standards, and never finishing.
    let chunk = vec![b'x'; 32 * 1024];
    let mut sent = 0u64;
    let started = Instant::now();
    while sent < 64 * MB {
        if hostile.stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len() as u64;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(started.elapsed() < WAIT, "the server never cut the client");
    }
    assert!(
        sent < 64 * MB,
        "the server took {sent} bytes of an unfinished request without closing"
    );
    hostile.read_until_closed().await;
    assert_eq!(other.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    assert_eq!(other.cmd(&["EXISTS", "k"]).await, Reply::Int(0));
    assert_peak_grew_less_than(before, 32 * MB, "query buffer limit 1 MiB");
    // Redis's bounds for CONFIG SET.
    assert_eq!(
        other
            .cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1000kb"])
            .await,
        Reply::Error(
            "ERR CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') - argument must be between 1048576 and 9223372036854775807 inclusive".into()
        )
    );
    assert_eq!(
        other
            .cmd(&["CONFIG", "SET", "client-query-buffer-limit", "2mb"])
            .await,
        Reply::Simple("OK".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pipeline_of_big_replies_never_read_is_closed_at_the_hard_output_limit() {
    let _serial = MEMORY.lock().await;
    let mut config = Config::default();
    config.client_output_buffer_limit.normal = OutputBufferLimit {
        hard: 4 * MB,
        soft: 0,
        soft_seconds: 0,
    };
    let server = TestServer::with_config(config).await;
    let mut other = server.raw().await;
    let big = "v".repeat(MB as usize);
    assert_eq!(
        other.cmd(&["SET", "big", &big]).await,
        Reply::Simple("OK".into())
    );
    let before = peak_rss();
    // 500 GETs of a 1 MiB value in one write (12 KiB, one read on the server): 500 MiB of
    // replies if nothing stopped them.
    let mut hostile = server.raw().await;
    let pipeline: Vec<u8> = (0..500)
        .flat_map(|_| common::resp(&["GET", "big"]))
        .collect();
    hostile.send(&pipeline).await;
    common::eventually(WAIT, "the hostile client is closed", || {
        let addr = server.addr;
        async move {
            let mut c = common::Raw::connect(addr).await;
            (limit_disconnections(&mut c).await == 1).then_some(())
        }
    })
    .await;
    let got = hostile.read_until_closed().await;
    assert!(
        (got.len() as u64) < 4 * MB,
        "nothing of the over-limit batch is written ({} bytes read)",
        got.len()
    );
    assert_peak_grew_less_than(before, 64 * MB, "hard limit 4 MiB");
    // Everyone else is served, including big replies that are read.
    let mut reader = server.raw().await;
    reader.send(&common::resp(&["GET", "big"])).await;
    assert_eq!(reader.read_reply().await, Reply::bulk(&big));
    assert_eq!(other.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    // The default for the normal class stays Redis's: no limit.
    assert_eq!(
        Config::default().client_output_buffer_limit.normal,
        OutputBufferLimit::default()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_soft_limit_seconds() {
    let mut config = Config::default();
    config.client_output_buffer_limit.normal = OutputBufferLimit {
        hard: 0,
        soft: MB,
        soft_seconds: 1,
    };
    let server = TestServer::with_config(config).await;
    let mut other = server.raw().await;
    let value = "w".repeat(64 * 1024);
    assert_eq!(
        other.cmd(&["SET", "mid", &value]).await,
        Reply::Simple("OK".into())
    );
    // 400 GETs of 64 KiB: 25 MiB of replies, far more than the socket buffers take.
    let mut hostile = server.raw().await;
    let pipeline: Vec<u8> = (0..400)
        .flat_map(|_| common::resp(&["GET", "mid"]))
        .collect();
    let started = Instant::now();
    hostile.send(&pipeline).await;
    common::eventually(WAIT, "the hostile client is closed", || {
        let addr = server.addr;
        async move {
            let mut c = common::Raw::connect(addr).await;
            (limit_disconnections(&mut c).await == 1).then_some(())
        }
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the soft limit's seconds ({:?})",
        started.elapsed()
    );
    assert_eq!(other.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    // A client that reads its replies is not cut, however many there are.
    let mut reader = server.raw().await;
    let pipeline: Vec<u8> = (0..40)
        .flat_map(|_| common::resp(&["GET", "mid"]))
        .collect();
    reader.send(&pipeline).await;
    assert_eq!(reader.read_replies(40).await.len(), 40);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_connections_beyond_maxclients_is_refused_and_the_others_are_served() {
    let server = TestServer::with_config(Config {
        maxclients: 5,
        ..Config::default()
    })
    .await;
    let mut kept = Vec::new();
    for _ in 0..5 {
        let mut c = server.raw().await;
        assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
        kept.push(c);
    }
    // 100 more connections at once, none of which gets a slot.
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(server.raw().await);
    }
    for c in &mut flood {
        assert_eq!(
            String::from_utf8_lossy(&c.read_until_closed().await),
            "-ERR max number of clients reached\r\n"
        );
    }
    for (i, c) in kept.iter_mut().enumerate() {
        assert_eq!(c.cmd(&["INCR", "n"]).await, Reply::Int(i as i64 + 1));
    }
    let Reply::Bulk(info) = kept[0].cmd(&["INFO", "stats"]).await else {
        panic!("INFO answers a bulk string")
    };
    assert!(
        String::from_utf8_lossy(&info).contains("rejected_connections:100\r\n"),
        "every refused connection is counted"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_client_is_closed_by_the_idle_timeout_and_an_active_one_is_not() {
    let server = TestServer::with_config(Config {
        timeout: 1,
        ..Config::default()
    })
    .await;
    let mut silent = server.raw().await;
    let mut active = server.raw().await;
    // Half a request does not count as activity either.
    let mut half = server.raw().await;
    half.send(b"*2\r\n$3\r\nGET\r\n").await;
    let started = Instant::now();
    let ping = async {
        while started.elapsed() < Duration::from_millis(2500) {
            assert_eq!(active.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (closed, closed_half, ()) =
        tokio::join!(silent.read_until_closed(), half.read_until_closed(), ping);
    assert!(
        closed.is_empty() && closed_half.is_empty(),
        "closed without a reply"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the timeout"
    );
    assert_eq!(active.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    server.stop().await.unwrap();
}
