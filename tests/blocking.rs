//! Blocking list commands over TCP (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP): served in the
//! order clients blocked, by pushes, LMOVE, EXEC and script writes, before the writer's next
//! command; timeouts as doubles with Redis's errors; no blocking inside MULTI; CLIENT UNBLOCK;
//! disconnects; keys of another type; and the served effects surviving a restart. A client is
//! known to be blocked from `INFO clients` (`blocked_clients`), never from a sleep.

mod common;

use common::{eventually, query, Raw, Reply, TestServer, WAIT};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

/// Waits until `INFO clients` reports `n` blocked clients.
async fn blocked(server: &TestServer, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    eventually(WAIT, &want, || {
        let want = want.clone();
        async move {
            let info = server.raw().await.cmd(&["INFO", "clients"]).await.text();
            info.contains(&want).then_some(())
        }
    })
    .await;
}

/// Sends `args` from a new connection that then blocks; waits until `n` clients are blocked.
async fn block(server: &TestServer, args: &[&str], n: usize) -> Raw {
    let mut c = server.raw().await;
    c.send(&common::resp(args)).await;
    blocked(server, n).await;
    c
}

fn pair(k: &str, v: &str) -> Reply {
    Reply::Array(vec![Reply::bulk(k), Reply::bulk(v)])
}

#[tokio::test]
async fn blocked_clients_are_served_in_fifo_order_before_the_pushers_next_command() {
    let server = TestServer::start().await;
    let mut first = block(&server, &["BLPOP", "q", "0"], 1).await;
    let mut second = block(&server, &["BRPOP", "other", "q", "0"], 2).await;
    let mut third = block(&server, &["BLPOP", "q", "0"], 3).await;
    let mut con = server.redis(false).await;
    // One push of three elements serves all three, in the order they blocked, before LLEN.
    let (pushed, len): (i64, i64) = redis::pipe()
        .cmd("RPUSH")
        .arg(&["q", "a", "b", "c"])
        .cmd("LLEN")
        .arg("q")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((pushed, len), (3, 0));
    assert_eq!(first.read_reply().await, pair("q", "a"));
    // BRPOP pops from the right of what the first client left.
    assert_eq!(second.read_reply().await, pair("q", "c"));
    assert_eq!(third.read_reply().await, pair("q", "b"));
    blocked(&server, 0).await;
    // Not blocking: the first non-empty key in argument order answers at once.
    query(&mut con, &["RPUSH", "k2", "x", "y"]).await;
    assert_eq!(
        first.cmd(&["BLPOP", "k1", "k2", "0"]).await,
        pair("k2", "x")
    );
    assert_eq!(
        first
            .cmd(&["BLMPOP", "0", "2", "k1", "k2", "RIGHT", "COUNT", "5"])
            .await,
        Reply::Array(vec![
            Reply::bulk("k2"),
            Reply::Array(vec![Reply::bulk("y")])
        ])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn blmpop_and_blmove_are_served_and_a_move_serves_the_destinations_clients() {
    let server = TestServer::start().await;
    let mut multi = block(
        &server,
        &["BLMPOP", "0", "2", "m1", "m2", "LEFT", "COUNT", "2"],
        1,
    )
    .await;
    let mut mover = block(&server, &["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"], 2).await;
    let mut on_dst = block(&server, &["BLPOP", "dst", "0"], 3).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "m2", "a", "b", "c"]).await, Reply::Int(3));
    assert_eq!(
        multi.read_reply().await,
        Reply::Array(vec![
            Reply::bulk("m2"),
            Reply::Array(vec![Reply::bulk("a"), Reply::bulk("b")])
        ])
    );
    // The pushed element moves to dst, which serves the client blocked there.
    assert_eq!(c.cmd(&["LPUSH", "src", "x"]).await, Reply::Int(1));
    assert_eq!(c.cmd(&["EXISTS", "src", "dst"]).await, Reply::Int(0));
    assert_eq!(mover.read_reply().await, Reply::bulk("x"));
    assert_eq!(on_dst.read_reply().await, pair("dst", "x"));
    // BRPOPLPUSH is BLMOVE RIGHT LEFT; an LMOVE into a waited-on key serves it too.
    let mut rpl = block(&server, &["BRPOPLPUSH", "s2", "d2", "0"], 1).await;
    c.cmd(&["RPUSH", "tmp", "y"]).await;
    assert_eq!(
        c.cmd(&["LMOVE", "tmp", "s2", "LEFT", "LEFT"]).await,
        Reply::bulk("y")
    );
    assert_eq!(rpl.read_reply().await, Reply::bulk("y"));
    assert_eq!(
        c.cmd(&["LRANGE", "d2", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("y")])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn timeouts_are_doubles_with_redis_errors_and_null_replies() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    for (args, err) in [
        (vec!["BLPOP", "q", "-1"], "ERR timeout is negative"),
        (
            vec!["BRPOP", "q", "abc"],
            "ERR timeout is not a float or out of range",
        ),
        (
            vec!["BLMOVE", "a", "b", "LEFT", "LEFT", "inf"],
            "ERR timeout is out of range",
        ),
        (
            vec!["BLMOVE", "a", "b", "UP", "LEFT", "0"],
            "ERR syntax error",
        ),
        (
            vec!["BLMPOP", "0", "0", "q", "LEFT"],
            "ERR numkeys should be greater than 0",
        ),
        (
            vec!["BLMPOP", "0", "1", "q", "LEFT", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        (vec!["BLMPOP", "0", "1", "q", "UP"], "ERR syntax error"),
    ] {
        assert_eq!(c.cmd(&args).await, Reply::Error(err.into()), "{args:?}");
    }
    assert_eq!(
        c.exchange(&common::resp(&["BLPOP", "q", "0.01"]), 1).await,
        b"*-1\r\n"
    );
    assert_eq!(
        c.exchange(&common::resp(&["BRPOPLPUSH", "q", "d", "0.01"]), 1)
            .await,
        b"$-1\r\n"
    );
    assert_eq!(
        c.cmd(&["HELLO", "3"]).await.get("proto"),
        Some(&Reply::Int(3))
    );
    assert_eq!(
        c.exchange(&common::resp(&["BLMPOP", "0.01", "1", "q", "LEFT"]), 1)
            .await,
        b"_\r\n"
    );
    blocked(&server, 0).await;
    // The connection keeps serving after a timeout.
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn multi_does_not_block_and_exec_and_scripts_serve_after_they_finish() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["MULTI"]).await;
    c.cmd(&["BLPOP", "q", "0"]).await;
    c.cmd(&["BLMOVE", "q", "d", "LEFT", "LEFT", "0"]).await;
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Reply::Array(vec![Reply::Null, Reply::Null])
    );
    // A transaction is served as a whole: the client gets the head after the last push.
    let mut waiter = block(&server, &["BLPOP", "q", "0"], 1).await;
    c.cmd(&["MULTI"]).await;
    for v in ["a", "b", "c"] {
        c.cmd(&["LPUSH", "q", v]).await;
    }
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Reply::Array(vec![Reply::Int(1), Reply::Int(2), Reply::Int(3)])
    );
    assert_eq!(waiter.read_reply().await, pair("q", "c"));
    // As in Redis 7.0, scripts may not call BLPOP (noscript); BLMPOP does not block in them.
    let pcall_blpop = "return redis.pcall('blpop', KEYS[1], 0)";
    assert_eq!(
        c.cmd(&["EVAL", pcall_blpop, "1", "none"]).await,
        Reply::Error("ERR This Redis command is not allowed from script".into())
    );
    let blmpop = "return redis.call('blmpop', 0, 1, KEYS[1], 'LEFT')";
    assert_eq!(c.cmd(&["EVAL", blmpop, "1", "none"]).await, Reply::Null);
    // A script's push serves clients.
    let mut waiter = block(&server, &["BRPOP", "s", "0"], 1).await;
    assert_eq!(
        c.cmd(&["EVAL", "return redis.call('rpush', KEYS[1], 'v')", "1", "s"])
            .await,
        Reply::Int(1)
    );
    assert_eq!(waiter.read_reply().await, pair("s", "v"));
    assert_eq!(c.cmd(&["EXISTS", "s"]).await, Reply::Int(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_unblock_disconnects_and_other_types_leave_the_queue_consistent() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut waiter = block(&server, &["BLPOP", "q", "0"], 1).await;
    let id = waiter_id(&mut c).await;
    assert_eq!(
        c.cmd(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]).await,
        Reply::Int(1)
    );
    assert_eq!(waiter.read_reply().await, Reply::Null);
    assert_eq!(
        c.cmd(&["CLIENT", "UNBLOCK", &id]).await,
        Reply::Int(0),
        "no longer blocked"
    );
    waiter
        .send(&common::resp(&["BLMOVE", "q", "d", "LEFT", "LEFT", "0"]))
        .await;
    blocked(&server, 1).await;
    assert_eq!(
        c.cmd(&["CLIENT", "UNBLOCK", &id, "NOW"]).await,
        Reply::Error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "UNBLOCK", &id, "error"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        waiter.read_reply().await,
        Reply::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    // Wrong type: at once when not blocking; a key turned into a string serves nobody.
    c.cmd(&["SET", "str", "x"]).await;
    assert_eq!(
        waiter.cmd(&["BLPOP", "str", "0"]).await,
        Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    );
    waiter.send(&common::resp(&["BLPOP", "later", "0"])).await;
    blocked(&server, 1).await;
    c.cmd(&["SET", "later", "x"]).await;
    assert_eq!(c.cmd(&["DEL", "later"]).await, Reply::Int(1));
    c.cmd(&["RPUSH", "later", "v"]).await;
    assert_eq!(waiter.read_reply().await, pair("later", "v"));
    // A blocked client that disconnects leaves the queue; the next push stays in the list.
    let gone = block(&server, &["BLPOP", "dc", "0"], 1).await;
    drop(gone);
    blocked(&server, 0).await;
    c.cmd(&["RPUSH", "dc", "kept"]).await;
    assert_eq!(c.cmd(&["LLEN", "dc"]).await, Reply::Int(1));
    server.stop().await.unwrap();
}

/// The id of the other connection (the blocked one) from `CLIENT LIST`: the line with
/// `cmd=blpop` or `cmd=blmove`.
async fn waiter_id(c: &mut Raw) -> String {
    let list = c.cmd(&["CLIENT", "LIST"]).await.text();
    let line = list
        .lines()
        .find(|l| l.contains("cmd=blpop") || l.contains("cmd=blmove"))
        .unwrap_or_else(|| panic!("no blocked client in {list}"));
    line.split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .expect("id field")
        .to_owned()
}

#[tokio::test]
async fn what_serving_a_client_changed_survives_a_restart() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut mover = block(&server, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"], 1).await;
    let mut c = server.raw().await;
    c.cmd(&["RPUSH", "src", "a", "b"]).await;
    assert_eq!(mover.read_reply().await, Reply::bulk("a"));
    server.stop().await.unwrap();
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["LRANGE", "src", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("b")])
    );
    assert_eq!(
        c.cmd(&["LRANGE", "dst", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("a")])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sorted_set_pops_block_and_are_served_like_lists() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["ZADD", "z", "1", "a", "2", "b"]).await;
    // Not blocking: RESP2 scores are bulk strings.
    assert_eq!(
        c.cmd(&["BZPOPMAX", "none", "z", "0"]).await,
        Reply::Array(vec![Reply::bulk("z"), Reply::bulk("b"), Reply::bulk("2")])
    );
    let mut min = block(&server, &["BZPOPMIN", "w", "0"], 1).await;
    let mut multi = block(&server, &["BZMPOP", "0", "1", "w", "MAX", "COUNT", "5"], 2).await;
    // A list on the key serves neither; a sorted set serves both, in order.
    c.cmd(&["RPUSH", "w", "x"]).await;
    c.cmd(&["DEL", "w"]).await;
    assert_eq!(
        c.cmd(&["ZADD", "w", "1", "p", "2", "q", "3", "r"]).await,
        Reply::Int(3)
    );
    assert_eq!(
        min.read_reply().await,
        Reply::Array(vec![Reply::bulk("w"), Reply::bulk("p"), Reply::bulk("1")])
    );
    let pair = |m: &str, s: &str| Reply::Array(vec![Reply::bulk(m), Reply::bulk(s)]);
    assert_eq!(
        multi.read_reply().await,
        Reply::Array(vec![
            Reply::bulk("w"),
            Reply::Array(vec![pair("r", "3"), pair("q", "2")])
        ])
    );
    assert_eq!(c.cmd(&["EXISTS", "w"]).await, Reply::Int(0));
    assert_eq!(
        c.exchange(&common::resp(&["BZPOPMIN", "w", "0.01"]), 1)
            .await,
        b"*-1\r\n"
    );
    assert_eq!(
        c.cmd(&["BZMPOP", "0", "1", "w", "LEFT"]).await,
        Reply::Error("ERR syntax error".into())
    );
    assert_eq!(
        c.cmd(&["BZPOPMIN", "w", "-1"]).await,
        Reply::Error("ERR timeout is negative".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_blmove_whose_destination_has_another_type_gets_wrongtype_and_the_element_stays() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "target", "nolist"]).await;
    let mut mover = block(&server, &["BRPOPLPUSH", "blist", "target", "0"], 1).await;
    assert_eq!(
        c.cmd(&["RPUSH", "blist", "a", "b", "c"]).await,
        Reply::Int(3)
    );
    assert_eq!(
        mover.read_reply().await,
        Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    );
    blocked(&server, 0).await;
    assert_eq!(
        c.cmd(&["LRANGE", "blist", "0", "-1"]).await,
        Reply::Array(vec![Reply::bulk("a"), Reply::bulk("b"), Reply::bulk("c")])
    );
    server.stop().await.unwrap();
}
