//! Keyspace notifications (`notify-keyspace-events`) over TCP: Redis 7.0's channels, event
//! names and classes for the write commands, `expired` from lazy and active expiry, `new`,
//! limiter commands in class `d`, transactions and scripts, `SELECT`ed databases, the config
//! parameter, and RESP3 pushes through the `redis` crate.

mod common;

use std::time::Duration;

use common::{Raw, Reply, TestServer, WAIT};
use limitkv::config::{Config, NotifyFlags};

fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

/// A RESP2 connection subscribed to every channel (`PSUBSCRIBE *`).
async fn subscriber(server: &TestServer) -> Raw {
    let mut sub = server.raw().await;
    let r = sub.cmd(&["PSUBSCRIBE", "*"]).await;
    assert_eq!(
        r,
        Reply::Array(vec![b("psubscribe"), b("*"), Reply::Int(1)])
    );
    sub
}

/// Reads the next messages and checks them against `(channel, payload)` pairs, then publishes
/// a marker from `c` and checks it comes next: nothing else was published in between.
async fn expect(sub: &mut Raw, c: &mut Raw, events: &[(&str, &str)]) {
    for (channel, payload) in events {
        let got = sub.read_reply().await;
        assert_eq!(
            got,
            Reply::Array(vec![b("pmessage"), b("*"), b(channel), b(payload)]),
            "expected {channel} {payload}"
        );
    }
    assert_eq!(c.cmd(&["PUBLISH", "marker", "end"]).await, Reply::Int(1));
    let got = sub.read_reply().await;
    assert_eq!(
        got,
        Reply::Array(vec![b("pmessage"), b("*"), b("marker"), b("end")]),
        "no other event was expected"
    );
}

async fn config_set(c: &mut Raw, flags: &str) {
    let r = c
        .cmd(&["CONFIG", "SET", "notify-keyspace-events", flags])
        .await;
    assert_eq!(r, Reply::Simple("OK".into()));
}

#[tokio::test]
async fn keyspace_and_keyevent_channels_carry_the_event_and_the_key() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "KEA").await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["SET", "foo", "bar"]).await;
    c.cmd(&["SET", "foo", "baz", "EX", "100"]).await;
    c.cmd(&["INCRBY", "n", "5"]).await;
    c.cmd(&["APPEND", "foo", "x"]).await;
    c.cmd(&["DEL", "foo", "nothing"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyspace@0__:foo", "set"),
            ("__keyevent@0__:set", "foo"),
            ("__keyspace@0__:foo", "set"),
            ("__keyevent@0__:set", "foo"),
            ("__keyspace@0__:foo", "expire"),
            ("__keyevent@0__:expire", "foo"),
            ("__keyspace@0__:n", "incrby"),
            ("__keyevent@0__:incrby", "n"),
            ("__keyspace@0__:foo", "append"),
            ("__keyevent@0__:append", "foo"),
            ("__keyspace@0__:foo", "del"),
            ("__keyevent@0__:del", "foo"),
        ],
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn classes_mask_events_and_no_channel_letter_publishes_nothing() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut sub = subscriber(&server).await;
    // Off by default.
    c.cmd(&["SET", "foo", "bar"]).await;
    // A class without K or E publishes nothing, as in Redis.
    config_set(&mut c, "A").await;
    c.cmd(&["SET", "foo", "bar"]).await;
    config_set(&mut c, "Kl").await;
    c.cmd(&["SET", "foo", "bar"]).await;
    c.cmd(&["LPUSH", "mylist", "a"]).await;
    c.cmd(&["EXPIRE", "mylist", "100"]).await;
    expect(&mut sub, &mut c, &[("__keyspace@0__:mylist", "lpush")]).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn containers_publish_their_events_and_del_when_emptied() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "KA").await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["RPUSH", "l", "a", "b"]).await;
    c.cmd(&["LMOVE", "l", "l2", "LEFT", "RIGHT"]).await;
    c.cmd(&["RPOP", "l"]).await;
    c.cmd(&["SADD", "s", "a", "b"]).await;
    c.cmd(&["SREM", "s", "x"]).await; // no change, no event
    c.cmd(&["SMOVE", "s", "s2", "a"]).await;
    c.cmd(&["HSET", "h", "f", "1"]).await;
    c.cmd(&["HINCRBY", "h", "f", "2"]).await;
    c.cmd(&["HDEL", "h", "f"]).await;
    c.cmd(&["ZADD", "z", "1", "a"]).await;
    c.cmd(&["ZADD", "z", "INCR", "1", "a"]).await;
    c.cmd(&["ZPOPMIN", "z"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyspace@0__:l", "rpush"),
            ("__keyspace@0__:l", "lpop"),
            ("__keyspace@0__:l2", "rpush"),
            ("__keyspace@0__:l", "rpop"),
            ("__keyspace@0__:l", "del"),
            ("__keyspace@0__:s", "sadd"),
            ("__keyspace@0__:s", "srem"),
            ("__keyspace@0__:s2", "sadd"),
            ("__keyspace@0__:h", "hset"),
            ("__keyspace@0__:h", "hincrby"),
            ("__keyspace@0__:h", "hdel"),
            ("__keyspace@0__:h", "del"),
            ("__keyspace@0__:z", "zadd"),
            ("__keyspace@0__:z", "zincr"),
            ("__keyspace@0__:z", "zpopmin"),
            ("__keyspace@0__:z", "del"),
        ],
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn generic_commands_rename_expire_and_store_as_redis_names_them() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "Eg").await;
    c.cmd(&["SADD", "a", "1", "2"]).await;
    c.cmd(&["SADD", "b", "3"]).await;
    c.cmd(&["SET", "k", "v"]).await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["RENAME", "k", "k2"]).await;
    c.cmd(&["COPY", "k2", "k3"]).await;
    c.cmd(&["PERSIST", "k2"]).await; // no expiry: no change
    c.cmd(&["PEXPIRE", "k2", "100000"]).await;
    c.cmd(&["PERSIST", "k2"]).await;
    // An expiry in the past deletes: only `del`.
    c.cmd(&["EXPIRE", "k3", "-1"]).await;
    c.cmd(&["GETDEL", "k2"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyevent@0__:rename_from", "k"),
            ("__keyevent@0__:rename_to", "k2"),
            ("__keyevent@0__:copy_to", "k3"),
            ("__keyevent@0__:expire", "k2"),
            ("__keyevent@0__:persist", "k2"),
            ("__keyevent@0__:del", "k3"),
            ("__keyevent@0__:del", "k2"),
        ],
    )
    .await;
    // A *STORE publishes in its type's class, and `del` for an empty result over a key.
    config_set(&mut c, "Egs").await;
    c.cmd(&["SINTERSTORE", "dst", "a", "b"]).await; // empty, dst absent: nothing
    c.cmd(&["SUNIONSTORE", "dst", "a", "b"]).await;
    c.cmd(&["SINTERSTORE", "dst", "a", "b"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyevent@0__:sunionstore", "dst"),
            ("__keyevent@0__:del", "dst"),
        ],
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn expired_is_published_for_lazy_and_active_expiry() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "Ex").await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["PSETEX", "lazy", "100", "1"]).await;
    server.clock.advance(Duration::from_millis(200));
    // Lazy: found expired on access.
    assert_eq!(c.cmd(&["GET", "lazy"]).await, Reply::Null);
    expect(&mut sub, &mut c, &[("__keyevent@0__:expired", "lazy")]).await;
    // Active: nobody touches the key; the sweep finds it.
    c.cmd(&["PSETEX", "idle", "100", "1"]).await;
    server.clock.advance(Duration::from_millis(200));
    let got = sub.read_reply().await;
    assert_eq!(
        got,
        Reply::Array(vec![
            b("pmessage"),
            b("*"),
            b("__keyevent@0__:expired"),
            b("idle")
        ])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn new_keys_limiters_transactions_scripts_and_databases() {
    let config = Config {
        notify_keyspace_events: NotifyFlags::parse("KEnd$").unwrap(),
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut c = server.raw().await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["SET", "foo", "bar"]).await;
    c.cmd(&["SET", "foo", "baz"]).await; // not new
    c.cmd(&["CL.THROTTLE", "t", "1", "1", "60"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyspace@0__:foo", "new"),
            ("__keyevent@0__:new", "foo"),
            ("__keyspace@0__:foo", "set"),
            ("__keyevent@0__:set", "foo"),
            ("__keyspace@0__:foo", "set"),
            ("__keyevent@0__:set", "foo"),
            ("__keyspace@0__:t", "new"),
            ("__keyevent@0__:new", "t"),
            ("__keyspace@0__:t", "cl.throttle"),
            ("__keyevent@0__:cl.throttle", "t"),
        ],
    )
    .await;
    config_set(&mut c, "E$").await;
    c.cmd(&["SELECT", "3"]).await;
    c.cmd(&["MULTI"]).await;
    c.cmd(&["SET", "a", "1"]).await;
    c.cmd(&["INCR", "a"]).await;
    c.cmd(&["EXEC"]).await;
    c.cmd(&["EVAL", "redis.call('SET', KEYS[1], 'x')", "1", "b"])
        .await;
    c.cmd(&["SELECT", "0"]).await;
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyevent@3__:set", "a"),
            ("__keyevent@3__:incrby", "a"),
            ("__keyevent@3__:set", "b"),
        ],
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_get_and_set_of_the_flags_follow_redis() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let get = |r: Reply| match r {
        Reply::Array(v) => v[1].text(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        get(c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]).await),
        ""
    );
    for (set, read) in [
        ("gKE", "gKE"),
        ("$lshzxeKE", "$lshzxeKE"),
        ("KA", "AK"),
        ("EA", "AE"),
        ("dnmK", "dnKm"),
    ] {
        config_set(&mut c, set).await;
        assert_eq!(
            get(c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]).await),
            read
        );
    }
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEw"])
            .await,
        Reply::Error(
            "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - \
             Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
                .into()
        )
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_redis_crate_receives_keyspace_events_as_resp3_pushes() {
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    config_set(&mut admin, "E$").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let client = redis::Client::open(server.url(true)).expect("valid URL");
    let mut con = tokio::time::timeout(
        WAIT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    con.subscribe("__keyevent@0__:set")
        .await
        .expect("subscribe");
    // The subscribed RESP3 connection runs the write itself.
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .expect("SET");
    use redis::{PushKind, Value};
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let mut pushes = Vec::new();
    while pushes.len() < 2 {
        let push = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("push in time")
            .expect("push channel open");
        pushes.push((push.kind, push.data));
    }
    assert_eq!(
        pushes,
        vec![
            (
                PushKind::Subscribe,
                vec![bulk("__keyevent@0__:set"), Value::Int(1)]
            ),
            (
                PushKind::Message,
                vec![bulk("__keyevent@0__:set"), bulk("k")]
            ),
        ]
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn move_publishes_in_both_databases() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "Eg").await;
    c.cmd(&["SET", "k", "v"]).await;
    let mut sub = subscriber(&server).await;
    assert_eq!(c.cmd(&["MOVE", "k", "1"]).await, Reply::Int(1));
    c.cmd(&["COPY", "k", "k", "DB", "0"]).await; // nothing in db 0 to copy: no event
    c.cmd(&["SELECT", "1"]).await;
    assert_eq!(c.cmd(&["COPY", "k", "k2", "DB", "0"]).await, Reply::Int(1));
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyevent@0__:move_from", "k"),
            ("__keyevent@1__:move_to", "k"),
            ("__keyevent@0__:copy_to", "k2"),
        ],
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_evicting_policy_publishes_evicted_for_each_key_it_removes() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    for k in ["e1", "e2", "e3"] {
        c.cmd(&["SET", k, "v"]).await;
    }
    config_set(&mut c, "Ee").await;
    let mut sub = subscriber(&server).await;
    let r = c
        .cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"])
        .await;
    assert_eq!(r, Reply::Simple("OK".into()));
    // No process fits in one byte: every key is evicted, then the write is refused.
    let r = c.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await;
    assert_eq!(r, Reply::Simple("OK".into()));
    let r = c.cmd(&["SET", "new", "v"]).await;
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("OOM")),
        "{r:?}"
    );
    let mut evicted = Vec::new();
    for _ in 0..3 {
        match sub.read_reply().await {
            Reply::Array(m) if m.len() == 4 && m[2] == b("__keyevent@0__:evicted") => {
                evicted.push(m[3].clone())
            }
            other => panic!("expected an evicted event, got {other:?}"),
        }
    }
    evicted.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(evicted, vec![b("e1"), b("e2"), b("e3")]);
    c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    expect(&mut sub, &mut c, &[]).await;
}

#[tokio::test]
async fn stream_commands_publish_what_they_did_in_class_t() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    config_set(&mut c, "Kt").await;
    let mut sub = subscriber(&server).await;
    c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await;
    c.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "Bob"]).await;
    let id = c.cmd(&["XADD", "s", "1", "f", "A"]).await;
    let Reply::Bulk(id) = id else {
        panic!("XADD id: {id:?}")
    };
    let id = String::from_utf8(id.to_vec()).unwrap();
    c.cmd(&["XREADGROUP", "GROUP", "g", "Alice", "STREAMS", "s", ">"])
        .await;
    c.cmd(&["XCLAIM", "s", "g", "Mike", "0", &id, "FORCE"])
        .await;
    // No event: Lee does not exist, Bob does.
    c.cmd(&["XGROUP", "DELCONSUMER", "s", "g", "Lee"]).await;
    c.cmd(&["XAUTOCLAIM", "s", "g", "Bob", "0", &id]).await;
    c.cmd(&["XGROUP", "DELCONSUMER", "s", "g", "Bob"]).await;
    c.cmd(&["XADD", "s", "MAXLEN", "1", "*", "f", "B"]).await;
    c.cmd(&["XDEL", "s", "0-1"]).await; // nothing deleted: no event
    expect(
        &mut sub,
        &mut c,
        &[
            ("__keyspace@0__:s", "xgroup-create"),
            ("__keyspace@0__:s", "xgroup-createconsumer"),
            ("__keyspace@0__:s", "xadd"),
            ("__keyspace@0__:s", "xgroup-createconsumer"),
            ("__keyspace@0__:s", "xgroup-createconsumer"),
            ("__keyspace@0__:s", "xgroup-delconsumer"),
            ("__keyspace@0__:s", "xadd"),
            ("__keyspace@0__:s", "xtrim"),
        ],
    )
    .await;
}
