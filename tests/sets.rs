//! Sets over TCP: exact wire bytes in RESP2 and RESP3 (SMEMBERS is a RESP3 set `~`, an array in
//! RESP2; SISMEMBER and SMISMEMBER stay integers), and a set surviving a restart through the
//! AOF.

mod common;

use common::{resp, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

#[tokio::test]
async fn replies_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let script: [&[&str]; 7] = [
        &["SADD", "s", "a", "b", "a"],
        &["SISMEMBER", "s", "a"],
        &["SMISMEMBER", "s", "b", "x"],
        &["SCARD", "s"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "none"],
        &["SREM", "s", "a", "b"],
    ];
    let mut got = Vec::new();
    for resp3 in [false, true] {
        if resp3 {
            c.exchange(&resp(&["HELLO", "3"]), 1).await;
        }
        for args in script {
            got.push(c.exchange_text(&resp(args)).await);
        }
    }
    let mut expect: Vec<&str> = Vec::new();
    for (set, empty) in [("*2", "*0\r\n"), ("~2", "~0\r\n")] {
        expect.extend([":2\r\n", ":1\r\n", "*2\r\n:1\r\n:0\r\n", ":2\r\n"]);
        expect.push(if set == "*2" {
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        } else {
            "~2\r\n$1\r\na\r\n$1\r\nb\r\n"
        });
        expect.extend([empty, ":2\r\n"]);
    }
    assert_eq!(got, expect);
    assert_eq!(c.cmd(&["EXISTS", "s"]).await, Reply::Int(0));
}

#[tokio::test]
async fn a_set_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["SADD", "s", "a", "b", "c"]).await;
    c.cmd(&["SREM", "s", "b"]).await;
    c.cmd(&["SADD", "gone", "x"]).await;
    c.cmd(&["SREM", "gone", "x"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["SCARD", "s"]).await, Reply::Int(2));
    assert_eq!(
        c.cmd(&["SMISMEMBER", "s", "a", "b", "c"]).await,
        Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)])
    );
    assert_eq!(c.cmd(&["TYPE", "s"]).await, Reply::Simple("set".into()));
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
}
