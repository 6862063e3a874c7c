//! Sets over TCP: exact wire bytes in RESP2 and RESP3 (SMEMBERS, SINTER, SUNION, SDIFF are RESP3
//! sets `~`, arrays in RESP2; SISMEMBER and SMISMEMBER stay integers), and sets, including the
//! destinations of SINTERSTORE / SUNIONSTORE / SDIFFSTORE, surviving a restart through the AOF.

mod common;

use common::{Reply, TestServer};
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
    let got = c.replies_in_both_protocols(&script).await;
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

#[tokio::test]
async fn set_algebra_is_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["SADD", "a", "x", "y"]).await;
    c.cmd(&["SADD", "b", "y", "z"]).await;
    c.cmd(&["SET", "str", "v"]).await;
    let script: [&[&str]; 8] = [
        &["SINTER", "a", "b"],
        &["SDIFF", "a", "b"],
        &["SUNION", "none"],
        &["SINTER", "a", "none"],
        &["SINTERSTORE", "d", "a", "b"],
        &["SUNIONSTORE", "d", "none", "d"],
        &["SDIFFSTORE", "d", "none", "a"],
        &["SUNION", "none", "str"],
    ];
    let got = c.replies_in_both_protocols(&script).await;
    let wrong = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let mut expect: Vec<&str> = Vec::new();
    for (agg, empty) in [("*", "*0\r\n"), ("~", "~0\r\n")] {
        expect.push(if agg == "*" {
            "*1\r\n$1\r\ny\r\n"
        } else {
            "~1\r\n$1\r\ny\r\n"
        });
        expect.push(if agg == "*" {
            "*1\r\n$1\r\nx\r\n"
        } else {
            "~1\r\n$1\r\nx\r\n"
        });
        expect.extend([empty, empty, ":1\r\n", ":1\r\n", ":0\r\n", wrong]);
    }
    assert_eq!(got, expect);
    assert_eq!(c.cmd(&["EXISTS", "d"]).await, Reply::Int(0));
}

#[tokio::test]
async fn stored_set_algebra_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["SADD", "a", "1", "2", "3"]).await;
    c.cmd(&["SADD", "b", "2", "3", "4"]).await;
    c.cmd(&["SET", "str", "v"]).await;
    c.cmd(&["EXPIRE", "str", "1000"]).await;
    c.cmd(&["SADD", "gone", "x"]).await;
    assert_eq!(c.cmd(&["SINTERSTORE", "i", "a", "b"]).await, Reply::Int(2));
    assert_eq!(
        c.cmd(&["SDIFFSTORE", "str", "a", "b"]).await,
        Reply::Int(1),
        "a string destination is replaced"
    );
    assert_eq!(c.cmd(&["SUNIONSTORE", "gone", "none"]).await, Reply::Int(0));
    assert_eq!(
        c.cmd(&["SUNIONSTORE", "a", "a", "b"]).await,
        Reply::Int(4),
        "the destination among the sources"
    );
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["SMISMEMBER", "i", "1", "2", "3"]).await,
        Reply::Array(vec![Reply::Int(0), Reply::Int(1), Reply::Int(1)])
    );
    assert_eq!(c.cmd(&["SCARD", "i"]).await, Reply::Int(2));
    assert_eq!(c.cmd(&["TYPE", "str"]).await, Reply::Simple("set".into()));
    assert_eq!(c.cmd(&["SISMEMBER", "str", "1"]).await, Reply::Int(1));
    assert_eq!(c.cmd(&["TTL", "str"]).await, Reply::Int(-1));
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
    assert_eq!(c.cmd(&["SCARD", "a"]).await, Reply::Int(4));
    assert_eq!(c.cmd(&["SCARD", "b"]).await, Reply::Int(3));
}
