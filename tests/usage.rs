//! The usage history end to end: `LIMIT.TOP`, `LIMIT.USAGE` and `LIMIT.HISTORY` over the wire
//! with the `redis` crate in both protocols, the history surviving a restart and a crash with
//! the append-only file on, and `limitkv top` run as an operator runs it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use limitkv::config::Config;
use redis::Value;

const BIN: &str = env!("CARGO_BIN_EXE_limitkv");

async fn traffic(con: &mut redis::aio::MultiplexedConnection, identity: &str, n: usize) {
    for _ in 0..n {
        query(con, &["LIMIT.CHECK", "free", identity]).await;
    }
}

fn identities(v: Value, resp3: bool) -> Vec<(String, i64)> {
    let Value::Array(items) = v else {
        panic!("LIMIT.TOP is an array: {v:?}")
    };
    items
        .into_iter()
        .map(|e| {
            let f = fields(e, resp3);
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let Some(Value::BulkString(id)) = get("identity") else {
                panic!("identity is a bulk string")
            };
            let Some(Value::Int(denied)) = get("denied") else {
                panic!("denied is an integer")
            };
            (String::from_utf8(id).unwrap(), denied)
        })
        .collect()
}

#[tokio::test]
async fn inspection_replies_are_maps_in_resp3_and_flat_arrays_in_resp2() {
    let server = TestServer::start().await;
    let mut con = server.redis(false).await;
    query(
        &mut con,
        &["POLICY.SET", "free", "RATE", "2/1m", "QUOTA", "100/day"],
    )
    .await;
    traffic(&mut con, "alice", 6).await;
    traffic(&mut con, "bob", 3).await;
    for resp3 in [false, true] {
        let mut con = server.redis(resp3).await;
        let top = query(&mut con, &["LIMIT.TOP", "DENIED", "WINDOW", "1h"]).await;
        assert_eq!(
            identities(top, resp3),
            [("alice".to_owned(), 4), ("bob".to_owned(), 1)],
            "resp3: {resp3}"
        );
        let usage = fields(
            query(&mut con, &["LIMIT.USAGE", "free", "alice"]).await,
            resp3,
        );
        let rules = &usage.iter().find(|(k, _)| k == "rules").unwrap().1;
        let Value::Array(rules) = rules else {
            panic!("rules is an array")
        };
        let quota = fields(rules[1].clone(), resp3);
        assert!(
            quota.contains(&("used".to_owned(), Value::Int(2))),
            "{quota:?}"
        );
        let Value::Array(series) =
            query(&mut con, &["LIMIT.HISTORY", "free", "WINDOW", "3m"]).await
        else {
            panic!("LIMIT.HISTORY is an array")
        };
        assert_eq!(series.len(), 3);
        let now = fields(series[2].clone(), resp3);
        assert!(
            now.contains(&("denied".to_owned(), Value::Int(5))),
            "{now:?}"
        );
    }
    let err = query_err(&mut con, &["LIMIT.TOP", "POLICY", "paid"]).await;
    assert!(err.to_string().contains("unknown policy 'paid'"), "{err}");
    assert_eq!(
        query(&mut con, &["LIMIT.HISTORY", "free", "nobody"]).await,
        Value::Array(vec![])
    );
    server.stop().await.unwrap();
}

fn aof_config(dir: &std::path::Path) -> Config {
    Config {
        appendonly: true,
        dir: dir.to_owned(),
        ..Config::default()
    }
}

#[tokio::test]
async fn the_history_survives_a_restart_with_the_aof_on() {
    let dir = temp_dir();
    let server = TestServer::with_config(aof_config(dir.path())).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "free", "RATE", "2/1m"]).await;
    traffic(&mut con, "alice", 5).await;
    server.stop().await.unwrap();
    let server = TestServer::with_config(aof_config(dir.path())).await;
    let mut con = server.redis(true).await;
    let top = query(&mut con, &["LIMIT.TOP"]).await;
    assert_eq!(identities(top, true), [("alice".to_owned(), 3)]);
    server.stop().await.unwrap();
}

/// A crash (kill -9) keeps what the background tick saved when the last minute ended: the
/// files as they are on disk while the server runs are what a restart after a crash finds.
#[tokio::test]
async fn a_crash_loses_at_most_the_minute_in_progress() {
    let dir = temp_dir();
    let server = TestServer::with_config(aof_config(dir.path())).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "free", "RATE", "2/1m"]).await;
    traffic(&mut con, "alice", 5).await;
    server.clock.advance(Duration::from_secs(61));
    traffic(&mut con, "late", 4).await;
    let file = dir.path().join("usage-history.bin");
    // The tick saves once the minute of alice's traffic has ended.
    let saved = eventually(WAIT, "the minute's history on disk", || {
        let file = file.clone();
        async move {
            let bytes = std::fs::read(&file).ok()?;
            let now = limitkv::usage::minute_of(server_now_ns());
            let h = limitkv::usage::snapshot::decode(&bytes, 100, now).ok()?;
            h.identity("free", b"alice").map(|_| bytes)
        }
    })
    .await;
    let crashed = temp_dir();
    std::fs::write(crashed.path().join("usage-history.bin"), &saved).unwrap();
    let aof = std::fs::read(dir.path().join(limitkv::persist::AOF_FILE)).unwrap();
    std::fs::write(crashed.path().join(limitkv::persist::AOF_FILE), aof).unwrap();
    drop(con);
    server.stop().await.unwrap();
    let server = TestServer::with_config(aof_config(crashed.path())).await;
    server.clock.advance(Duration::from_secs(61));
    let mut con = server.redis(true).await;
    let top = identities(query(&mut con, &["LIMIT.TOP"]).await, true);
    assert_eq!(top[0], ("alice".to_owned(), 3), "{top:?}");
    server.stop().await.unwrap();
}

fn server_now_ns() -> u64 {
    (EPOCH_SECS + 61) * 1_000_000_000
}

/// A `limitkv` process on a free port, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(port: u16, extra: &[&str]) -> (Proc, redis::Connection) {
    let port_s = port.to_string();
    let mut args = vec!["--port", &port_s];
    args.extend_from_slice(extra);
    let child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn limitkv");
    let p = Proc(child);
    let pass = extra
        .iter()
        .position(|a| *a == "--requirepass")
        .map(|i| extra[i + 1]);
    let url = match pass {
        Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(con) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
            return (p, con);
        }
        assert!(Instant::now() < deadline, "limitkv did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn top(port: u16, extra: &[&str]) -> std::process::Output {
    let port = port.to_string();
    let mut args = vec!["top", "--port", &port, "--once"];
    args.extend_from_slice(extra);
    Command::new(BIN)
        .args(&args)
        .output()
        .expect("run limitkv top")
}

#[test]
fn limitkv_top_once_json_names_the_identity_denied_most() {
    let port = free_port();
    let (_server, mut con) = spawn_server(port, &["--requirepass", "s3cret"]);
    let mut run = |args: &[&str]| {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query::<Value>(&mut con)
            .unwrap();
    };
    run(&["POLICY.SET", "free", "RATE", "5/1m"]);
    run(&["POLICY.SET", "pro", "RATE", "50/1m"]);
    for (who, policy, n) in [
        ("alice", "free", 8),
        ("mallory", "free", 40),
        ("bob", "pro", 60),
    ] {
        for _ in 0..n {
            run(&["LIMIT.CHECK", policy, who]);
        }
    }
    let out = top(port, &["--json", "--pass", "s3cret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let first = &v["top_denied"][0];
    assert_eq!(first["identity"], "mallory", "{v}");
    assert_eq!(first["denied"], 35);
    assert_eq!(v["top_denied"][1]["identity"], "bob");
    let free = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == "free")
        .expect("the free policy's line");
    assert_eq!(free["denied"], 38);
    assert_eq!(free["decisions"], 48);
    assert!(free["denials_per_s"].as_f64().unwrap() > 0.0, "{free}");

    let csv = top(port, &["--csv", "--pass", "s3cret", "--policy", "free"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "policy,identity,denied,allowed,decisions,tokens,cost"
    );
    assert_eq!(lines[1], "free,mallory,35,5,40,0,0");
    assert_eq!(lines.len(), 3, "{csv}");

    let table = top(port, &["--pass", "s3cret"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("mallory") && table.contains("DENIALS/S"),
        "{table}"
    );

    let refused = top(port, &["--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("NOAUTH") || err.contains("Authentication"),
        "{err}"
    );
}

#[test]
fn limitkv_top_reports_an_unreachable_server() {
    let port = free_port();
    let out = top(port, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Could not connect to limitkv at 127.0.0.1:{port}")),
        "{err}"
    );
}
