//! Lists over TCP: exact wire bytes in RESP2 and RESP3 (LPOP with a count on a missing key is
//! the null array `*-1` in RESP2 and `_` in RESP3), a pipelined capped log, and a list surviving
//! a restart through the AOF; the edits and moves (LSET, LINSERT, LREM, LMOVE, LMPOP, ...) in
//! both protocols and across a restart.

mod common;

use common::{resp, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

#[tokio::test]
async fn replies_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let script: [&[&str]; 9] = [
        &["RPUSH", "l", "a", "b"],
        &["LPUSH", "l", "z"],
        &["LINDEX", "l", "-1"],
        &["LINDEX", "l", "7"],
        &["LRANGE", "l", "0", "-1"],
        &["LPOP", "l", "2"],
        &["RPOP", "l"],
        &["LPOP", "l"],
        &["LPOP", "l", "1"],
    ];
    let got = c.replies_in_both_protocols(&script).await;
    let common = [":2\r\n", ":3\r\n", "$1\r\nb\r\n"];
    let mut expect: Vec<&str> = Vec::new();
    for (null, null_array) in [("$-1\r\n", "*-1\r\n"), ("_\r\n", "_\r\n")] {
        expect.extend(common);
        expect.extend([
            null,
            "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n",
            "*2\r\n$1\r\nz\r\n$1\r\na\r\n",
            "$1\r\nb\r\n",
            null,
            null_array,
        ]);
    }
    assert_eq!(got, expect);
}

#[tokio::test]
async fn a_pipelined_capped_log_keeps_the_newest() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend(resp(&["LPUSH", "recent", &i.to_string()]));
        batch.extend(resp(&["LTRIM", "recent", "0", "4"]));
    }
    batch.extend(resp(&["LRANGE", "recent", "0", "-1"]));
    c.send(&batch).await;
    let replies = c.read_replies(41).await;
    let want: Vec<_> = ["19", "18", "17", "16", "15"].map(Reply::bulk).to_vec();
    assert_eq!(replies[40], Reply::Array(want));
}

#[tokio::test]
async fn a_list_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["RPUSH", "l", "a", "b", "c"]).await;
    c.cmd(&["LPOP", "l"]).await;
    c.cmd(&["RPUSH", "gone", "x"]).await;
    c.cmd(&["RPOP", "gone"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["LRANGE", "l", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("b"), Reply::bulk("c")])
    );
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
}

#[tokio::test]
async fn edits_and_moves_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let script: [&[&str]; 11] = [
        &["RPUSH", "l", "a", "b", "c"],
        &["LPUSHX", "none", "x"],
        &["LSET", "none", "0", "x"],
        &["LSET", "l", "9", "x"],
        &["LINSERT", "l", "BEFORE", "zz", "x"],
        &["LMOVE", "l", "m", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "none", "m"],
        &["LMPOP", "2", "none", "l", "RIGHT", "COUNT", "5"],
        &["LMPOP", "1", "none", "LEFT"],
        &["LREM", "m", "0", "a"],
        &["DEL", "m"],
    ];
    let got = c.replies_in_both_protocols(&script).await;
    let mut expect: Vec<&str> = Vec::new();
    for (null, null_array) in [("$-1\r\n", "*-1\r\n"), ("_\r\n", "_\r\n")] {
        expect.extend([
            ":3\r\n",
            ":0\r\n",
            "-ERR no such key\r\n",
            "-ERR index out of range\r\n",
            ":-1\r\n",
            "$1\r\na\r\n",
            null,
            "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
            null_array,
            ":1\r\n",
            ":0\r\n",
        ]);
    }
    assert_eq!(got, expect);
}

#[tokio::test]
async fn edits_and_moves_survive_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["RPUSH", "l", "a", "b", "c", "d", "b"]).await;
    c.cmd(&["LSET", "l", "0", "A"]).await;
    c.cmd(&["LINSERT", "l", "AFTER", "A", "x"]).await;
    c.cmd(&["LREM", "l", "-1", "b"]).await;
    c.cmd(&["LMOVE", "l", "moved", "RIGHT", "LEFT"]).await;
    c.cmd(&["RPUSHX", "moved", "y"]).await;
    c.cmd(&["RPUSH", "gone", "z"]).await;
    c.cmd(&["LMPOP", "1", "gone", "LEFT"]).await;
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    let bulks = |v: &[&str]| Reply::Array(v.iter().map(|s| Reply::bulk(s)).collect());
    assert_eq!(
        c.cmd(&["LRANGE", "l", "0", "-1"]).await,
        bulks(&["A", "x", "b", "c"])
    );
    assert_eq!(
        c.cmd(&["LRANGE", "moved", "0", "-1"]).await,
        bulks(&["d", "y"])
    );
    assert_eq!(c.cmd(&["EXISTS", "gone"]).await, Reply::Int(0));
}

#[tokio::test]
async fn sort_reads_other_keys_and_its_stored_list_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut con = common::redis_connect(&server.url(true)).await;
    let _: i64 = redis::cmd("RPUSH")
        .arg(&["ids", "3", "1", "2"])
        .query_async(&mut con)
        .await
        .unwrap();
    for (id, name, rank) in [("1", "ann", "20"), ("2", "bob", "10"), ("3", "cy", "30")] {
        let _: i64 = redis::cmd("HSET")
            .arg(format!("user:{id}"))
            .arg(&["name", name, "rank", rank])
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let names: Vec<Option<String>> = redis::cmd("SORT")
        .arg(&[
            "ids",
            "BY",
            "user:*->rank",
            "GET",
            "user:*->name",
            "GET",
            "nope:*",
        ])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        names,
        [
            Some("bob".into()),
            None,
            Some("ann".into()),
            None,
            Some("cy".into()),
            None
        ]
    );
    let stored: i64 = redis::cmd("SORT")
        .arg(&["ids", "DESC", "LIMIT", "0", "2", "STORE", "top"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    let err = redis::cmd("SORT_RO")
        .arg(&["ids", "STORE", "top"])
        .query_async::<i64>(&mut con)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    server.stop().await.unwrap();

    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["LRANGE", "top", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("3"), Reply::bulk("2")])
    );
    server.stop().await.unwrap();
}
