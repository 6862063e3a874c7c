//! Hashes over TCP: exact wire bytes in RESP2 and RESP3 (HGETALL is a map in RESP3, a flat
//! array in RESP2), the fixed-window counter pattern pipelined, and a hash surviving a restart
//! through the AOF.

mod common;

use common::{resp, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

#[tokio::test]
async fn replies_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let script: [&[&str]; 8] = [
        &["HSET", "h", "f", "v", "n", "1"],
        &["HGET", "h", "f"],
        &["HGET", "h", "x"],
        &["HMGET", "h", "f", "x"],
        &["HINCRBY", "h", "n", "41"],
        &["HGETALL", "h"],
        &["HGETALL", "none"],
        &["HDEL", "h", "f", "n"],
    ];
    let got = c.replies_in_both_protocols(&script).await;
    let expect = [
        // RESP2
        ":2\r\n",
        "$1\r\nv\r\n",
        "$-1\r\n",
        "*2\r\n$1\r\nv\r\n$-1\r\n",
        ":42\r\n",
        "*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nn\r\n$2\r\n42\r\n",
        "*0\r\n",
        ":2\r\n",
        // RESP3
        ":2\r\n",
        "$1\r\nv\r\n",
        "_\r\n",
        "*2\r\n$1\r\nv\r\n_\r\n",
        ":42\r\n",
        "%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nn\r\n$2\r\n42\r\n",
        "%0\r\n",
        ":2\r\n",
    ];
    assert_eq!(got, expect);
    assert_eq!(c.cmd(&["EXISTS", "h"]).await, Reply::Int(0));
}

#[tokio::test]
async fn pipelined_counters_lose_no_update() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.raw().await);
    }
    let batch: Vec<u8> = (0..50)
        .flat_map(|_| resp(&["HINCRBY", "counters", "hits", "1"]))
        .collect();
    for c in &mut clients {
        c.send(&batch).await;
    }
    for c in &mut clients {
        c.read_replies(50).await;
    }
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["HGET", "counters", "hits"]).await,
        Reply::bulk("200")
    );
}

#[tokio::test]
async fn a_hash_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["HSET", "h", "a", "1", "b", "2"]).await;
    c.cmd(&["HINCRBY", "h", "a", "9"]).await;
    c.cmd(&["HDEL", "h", "b"]).await;
    c.cmd(&["HSET", "gone", "x", "1"]).await;
    c.cmd(&["HDEL", "gone", "x"]).await;
    c.cmd(&["PEXPIRE", "h", "60000"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["HGETALL", "h"]).await,
        Reply::Array(vec![Reply::bulk("a"), Reply::bulk("10")])
    );
    assert_eq!(c.cmd(&["PTTL", "h"]).await, Reply::Int(60000));
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
}
