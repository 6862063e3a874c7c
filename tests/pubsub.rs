//! Pub/Sub over TCP: exact wire bytes in RESP2 and RESP3, the subscribed context, ordering of
//! messages against replies, many subscribers, clean-up of departed subscribers, the output
//! buffer limit against a subscriber that never reads, `redis-cli` and the `redis` crate.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, resp, Raw, Reply, TestServer, WAIT};
use limitkv::config::Config;
use limitkv::pubsub::ChannelKind;

fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

/// `[kind, ...items]` as a RESP2 array or a RESP3 push.
fn msg(resp3: bool, items: &[&str]) -> Reply {
    let v = items.iter().map(|s| b(s)).collect();
    if resp3 {
        Reply::Push(v)
    } else {
        Reply::Array(v)
    }
}

fn confirm(resp3: bool, word: &str, name: Option<&str>, n: i64) -> Reply {
    let v = vec![b(word), name.map_or(Reply::Null, b), Reply::Int(n)];
    if resp3 {
        Reply::Push(v)
    } else {
        Reply::Array(v)
    }
}

async fn client(server: &TestServer, resp3: bool) -> Raw {
    let mut c = server.raw().await;
    if resp3 {
        let hello = c.cmd(&["HELLO", "3"]).await;
        assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    }
    c
}

/// Waits until `channel` has `n` subscribers (subscriptions register before their reply is
/// written, so this is only needed across connections that did not read their reply).
async fn await_numsub(server: &TestServer, channel: &str, n: usize) {
    eventually(WAIT, &format!("{n} subscribers on {channel}"), || async {
        (server
            .shared
            .engine
            .pubsub
            .numsub(ChannelKind::Global, channel.as_bytes())
            == n)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn subscribe_and_publish_are_exact_on_the_wire_in_resp2() {
    let server = TestServer::start().await;
    let mut sub = server.raw().await;
    let mut publisher = server.raw().await;
    assert_eq!(
        sub.exchange_text(&resp(&["SUBSCRIBE", "news"])).await,
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(
        publisher
            .exchange_text(&resp(&["PUBLISH", "news", "hello"]))
            .await,
        ":1\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&sub.read_replies_raw(1).await.1),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        sub.exchange_text(&resp(&["PSUBSCRIBE", "n*"])).await,
        "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n"
    );
    assert_eq!(
        publisher
            .exchange_text(&resp(&["PUBLISH", "news", "x"]))
            .await,
        ":2\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&sub.read_replies_raw(2).await.1),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\nx\r\n\
         *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$1\r\nx\r\n"
    );
    assert_eq!(
        sub.exchange(&resp(&["UNSUBSCRIBE"]), 1).await,
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(
        sub.exchange(&resp(&["PUNSUBSCRIBE"]), 1).await,
        b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n"
    );
    assert_eq!(
        sub.exchange(&resp(&["UNSUBSCRIBE"]), 1).await,
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    // Out of the subscribed context: ordinary replies again.
    assert_eq!(sub.exchange_text(&resp(&["PING"])).await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn resp3_uses_push_frames_and_allows_any_command_while_subscribed() {
    let server = TestServer::start().await;
    let mut sub = client(&server, true).await;
    let mut publisher = server.raw().await;
    assert_eq!(
        sub.exchange_text(&resp(&["SUBSCRIBE", "a", "b"])).await,
        ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(
        sub.read_reply().await,
        confirm(true, "subscribe", Some("b"), 2)
    );
    assert_eq!(
        sub.cmd(&["SET", "k", "v"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "b", "m"]).await, Reply::Int(1));
    assert_eq!(
        String::from_utf8_lossy(&sub.read_replies_raw(1).await.1),
        ">3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$1\r\nm\r\n"
    );
    assert_eq!(sub.cmd(&["GET", "k"]).await, b("v"));
    assert_eq!(sub.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    assert_eq!(
        sub.exchange_text(&resp(&["UNSUBSCRIBE", "a", "zz"])).await,
        ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(
        sub.read_reply().await,
        confirm(true, "unsubscribe", Some("zz"), 1)
    );
    assert_eq!(
        sub.exchange(&resp(&["UNSUBSCRIBE"]), 1).await,
        b">3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    );
    assert_eq!(
        sub.exchange(&resp(&["UNSUBSCRIBE"]), 1).await,
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn resp2_subscribed_context_refuses_other_commands() {
    let server = TestServer::start().await;
    let mut sub = server.raw().await;
    sub.cmd(&["SUBSCRIBE", "a"]).await;
    for (cmd, name) in [
        (&["GET", "k"][..], "get"),
        (&["CLIENT", "INFO"][..], "client|info"),
        (&["HELLO", "3"][..], "hello"),
        (&["MULTI"][..], "multi"),
    ] {
        assert_eq!(
            sub.cmd(cmd).await,
            Reply::Error(format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ))
        );
    }
    assert_eq!(
        sub.exchange_text(&resp(&["PING"])).await,
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    );
    assert_eq!(
        sub.exchange_text(&resp(&["PING", "hi"])).await,
        "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", "s"]).await,
        confirm(false, "ssubscribe", Some("s"), 1)
    );
    // Shard subscriptions alone keep the context.
    sub.cmd(&["UNSUBSCRIBE"]).await;
    assert!(matches!(sub.cmd(&["GET", "k"]).await, Reply::Error(_)));
    assert_eq!(
        sub.cmd(&["SUNSUBSCRIBE"]).await,
        confirm(false, "sunsubscribe", Some("s"), 0)
    );
    assert_eq!(sub.cmd(&["GET", "k"]).await, Reply::Null);
    // QUIT is allowed in the context.
    sub.cmd(&["SUBSCRIBE", "a"]).await;
    assert_eq!(sub.cmd(&["QUIT"]).await, Reply::Simple("OK".into()));
    sub.read_until_closed().await;
    await_numsub(&server, "a", 0).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reset_leaves_every_subscription() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut sub = client(&server, resp3).await;
        sub.cmd(&["SUBSCRIBE", "a"]).await;
        sub.cmd(&["PSUBSCRIBE", "a*"]).await;
        sub.cmd(&["SSUBSCRIBE", "s"]).await;
        assert_eq!(sub.cmd(&["RESET"]).await, Reply::Simple("RESET".into()));
        let mut publisher = server.raw().await;
        assert_eq!(publisher.cmd(&["PUBLISH", "a", "x"]).await, Reply::Int(0));
        assert_eq!(publisher.cmd(&["SPUBLISH", "s", "x"]).await, Reply::Int(0));
        assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]).await, Reply::Int(0));
        // RESET also went back to RESP2, outside the subscribed context.
        assert_eq!(sub.exchange_text(&resp(&["GET", "k"])).await, "$-1\r\n");
        assert_eq!(server.shared.engine.pubsub.num_clients(), 0);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn introspection_counts_channels_subscribers_and_patterns() {
    let server = TestServer::start().await;
    let mut a = server.raw().await;
    let mut c = server.raw().await;
    a.cmd(&["SUBSCRIBE", "news", "sport"]).await;
    a.read_reply().await;
    c.cmd(&["SUBSCRIBE", "news"]).await;
    c.cmd(&["PSUBSCRIBE", "n*", "x*"]).await;
    c.read_reply().await;
    let mut q = client(&server, true).await;
    let sorted = |r: Reply| match r {
        Reply::Array(mut v) => {
            v.sort_by_key(|x| format!("{x:?}"));
            v
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sorted(q.cmd(&["PUBSUB", "CHANNELS"]).await),
        vec![b("news"), b("sport")]
    );
    assert_eq!(
        sorted(q.cmd(&["PUBSUB", "CHANNELS", "s*"]).await),
        vec![b("sport")]
    );
    assert_eq!(
        q.cmd(&["PUBSUB", "NUMSUB", "news", "sport", "nope"]).await,
        Reply::Array(vec![
            b("news"),
            Reply::Int(2),
            b("sport"),
            Reply::Int(1),
            b("nope"),
            Reply::Int(0)
        ])
    );
    assert_eq!(q.cmd(&["PUBSUB", "NUMPAT"]).await, Reply::Int(2));
    let list = q.cmd(&["CLIENT", "LIST"]).await.text();
    assert!(list.contains("flags=P db=0 sub=2 psub=0 ssub=0"), "{list}");
    assert!(list.contains("flags=P db=0 sub=1 psub=2 ssub=0"), "{list}");
    let info = q.cmd(&["INFO", "stats"]).await.text();
    assert!(info.contains("pubsub_channels:2\r\n"), "{info}");
    assert!(info.contains("pubsub_patterns:2\r\n"), "{info}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_never_overtakes_the_subscribe_reply_nor_follows_the_unsubscribe_reply() {
    let server = TestServer::start().await;
    let mut publisher = server.raw().await;
    // A publisher floods the channel, pipelined, from before the subscription to after it.
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        let batch: Vec<u8> = (0..50)
            .flat_map(|i| resp(&["PUBLISH", "ch", &i.to_string()]))
            .collect();
        for _ in 0..200 {
            publisher.send(&batch).await;
            publisher.read_replies(50).await;
            sent += 50;
        }
        sent
    });
    for resp3 in [false, true] {
        let mut sub = client(&server, resp3).await;
        sub.send(&resp(&["SUBSCRIBE", "ch"])).await;
        assert_eq!(
            sub.read_reply().await,
            confirm(resp3, "subscribe", Some("ch"), 1),
            "the confirmation comes first"
        );
        // Messages arrive in publishing order.
        let mut last = None;
        for _ in 0..100 {
            let r = sub.read_reply().await;
            let (Reply::Array(v) | Reply::Push(v)) = &r else {
                panic!("{r:?}")
            };
            assert_eq!(v[0], b("message"));
            let i: u64 = v[2].text().parse().expect("number");
            if let Some(prev) = last {
                assert_eq!(i, (prev + 1) % 50, "in order");
            }
            last = Some(i);
        }
        // Unsubscribe mid-flood: after its confirmation, the very next frame is PING's reply.
        sub.send(&resp(&["UNSUBSCRIBE", "ch"])).await;
        loop {
            let r = sub.read_reply().await;
            if r == confirm(resp3, "unsubscribe", Some("ch"), 0) {
                break;
            }
            let (Reply::Array(v) | Reply::Push(v)) = &r else {
                panic!("{r:?}")
            };
            assert_eq!(v[0], b("message"), "{r:?}");
        }
        assert_eq!(sub.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    }
    assert_eq!(flood.await.expect("publisher task"), 10_000);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn many_subscribers_each_receive_every_message() {
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for i in 0..40 {
        let mut s = client(&server, i % 2 == 1).await;
        if i % 4 < 2 {
            s.cmd(&["SUBSCRIBE", "events"]).await;
        } else {
            s.cmd(&["PSUBSCRIBE", "ev*"]).await;
        }
        subs.push(s);
    }
    let mut publisher = server.raw().await;
    for i in 0..10 {
        assert_eq!(
            publisher
                .cmd(&["PUBLISH", "events", &format!("m{i}")])
                .await,
            Reply::Int(40)
        );
    }
    for (n, s) in subs.iter_mut().enumerate() {
        let resp3 = n % 2 == 1;
        for i in 0..10 {
            let m = format!("m{i}");
            let want = if n % 4 < 2 {
                msg(resp3, &["message", "events", &m])
            } else {
                msg(resp3, &["pmessage", "ev*", "events", &m])
            };
            assert_eq!(s.read_reply().await, want, "subscriber {n}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn departed_and_killed_subscribers_leave_the_registry() {
    let server = TestServer::start().await;
    let mut a = server.raw().await;
    let mut k = server.raw().await;
    a.cmd(&["SUBSCRIBE", "c"]).await;
    a.cmd(&["PSUBSCRIBE", "c*"]).await;
    k.cmd(&["SUBSCRIBE", "c"]).await;
    let mut q = server.raw().await;
    assert_eq!(q.cmd(&["PUBLISH", "c", "x"]).await, Reply::Int(3));
    drop(a);
    await_numsub(&server, "c", 1).await;
    assert_eq!(q.cmd(&["PUBSUB", "NUMPAT"]).await, Reply::Int(0));
    let list = q.cmd(&["CLIENT", "LIST"]).await.text();
    let id = list
        .lines()
        .find(|l| l.contains(" sub=1 "))
        .and_then(|l| l.strip_prefix("id="))
        .and_then(|l| l.split(' ').next())
        .expect("the remaining subscriber in CLIENT LIST")
        .to_owned();
    assert_eq!(q.cmd(&["CLIENT", "KILL", "ID", &id]).await, Reply::Int(1));
    k.read_until_closed().await;
    await_numsub(&server, "c", 0).await;
    assert_eq!(q.cmd(&["PUBLISH", "c", "x"]).await, Reply::Int(0));
    assert_eq!(server.shared.engine.pubsub.num_clients(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_disconnected_at_the_hard_limit() {
    const LIMIT: usize = 1024 * 1024;
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    assert_eq!(
        admin
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 0 0"
            ])
            .await,
        Reply::Simple("OK".into())
    );
    let mut slow = server.raw().await;
    slow.cmd(&["SUBSCRIBE", "firehose"]).await;
    let mut reader = server.raw().await;
    reader.cmd(&["SUBSCRIBE", "firehose"]).await;
    let payload = "x".repeat(64 * 1024);
    let mut publisher = server.raw().await;
    // Until the slow subscriber is gone: the limit plus whatever the socket buffers absorb.
    let mut published = 0usize;
    let mut largest_backlog = 0usize;
    for i in 0..400 {
        publisher
            .send(&resp(&["PUBLISH", "firehose", &payload]))
            .await;
        let Reply::Int(n) = publisher.read_reply().await else {
            panic!("PUBLISH answers an integer")
        };
        published += payload.len();
        // The reading subscriber keeps up and stays.
        let m = reader.read_reply().await;
        assert!(matches!(&m, Reply::Array(v) if v.len() == 3), "message {i}");
        for c in server.shared.clients.snapshot() {
            largest_backlog = largest_backlog.max(c.pubsub.backlog().1);
        }
        if n == 1 {
            break;
        }
    }
    assert!(published > LIMIT, "published {published} bytes");
    // The slow subscriber was dropped once its backlog reached the limit, never far above it.
    assert!(
        largest_backlog <= LIMIT + payload.len() + 1024,
        "backlog reached {largest_backlog} bytes"
    );
    eventually(WAIT, "the slow subscriber to be disconnected", || async {
        (server
            .shared
            .engine
            .pubsub
            .numsub(ChannelKind::Global, b"firehose")
            == 1)
            .then_some(())
    })
    .await;
    let info = admin.cmd(&["INFO", "stats"]).await.text();
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
    // Its socket is closed (after whatever the kernel had already buffered).
    slow.read_until_closed().await;
    // Everyone else goes on.
    assert_eq!(admin.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    assert_eq!(
        publisher.cmd(&["PUBLISH", "firehose", "small"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        reader.read_reply().await,
        msg(false, &["message", "firehose", "small"])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn limit_applies_from_the_config_at_start() {
    let mut config = Config::default();
    config
        .set("client-output-buffer-limit", "pubsub 100kb 0 0")
        .expect("valid limit");
    let server = TestServer::with_config(config).await;
    let mut q = server.raw().await;
    assert_eq!(
        q.cmd(&["CONFIG", "GET", "client-output-buffer-limit"])
            .await,
        Reply::Array(vec![
            b("client-output-buffer-limit"),
            b("normal 0 0 0 slave 268435456 67108864 60 pubsub 102400 0 0")
        ])
    );
    let mut slow = server.raw().await;
    slow.cmd(&["SUBSCRIBE", "c"]).await;
    let payload = "y".repeat(32 * 1024);
    for _ in 0..2000 {
        if q.cmd(&["PUBLISH", "c", &payload]).await == Reply::Int(0) {
            break;
        }
    }
    assert_eq!(server.shared.engine.pubsub.limit_disconnections(), 1);
    slow.read_until_closed().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_redis_crate_receives_resp3_pushes_while_running_commands() {
    let server = TestServer::start().await;
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
    con.subscribe("orders").await.expect("subscribe");
    con.psubscribe("ord*").await.expect("psubscribe");
    let mut publisher = server.redis(false).await;
    let n: i64 = redis::cmd("PUBLISH")
        .arg("orders")
        .arg("o1")
        .query_async(&mut publisher)
        .await
        .expect("publish");
    assert_eq!(n, 2);
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .expect("commands still work while subscribed");
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let push = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("push in time")
            .expect("push channel open");
        kinds.push((push.kind, push.data));
    }
    use redis::{PushKind, Value};
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(
        kinds,
        vec![
            (PushKind::Subscribe, vec![bulk("orders"), Value::Int(1)]),
            (PushKind::PSubscribe, vec![bulk("ord*"), Value::Int(2)]),
            (PushKind::Message, vec![bulk("orders"), bulk("o1")]),
            (
                PushKind::PMessage,
                vec![bulk("ord*"), bulk("orders"), bulk("o1")]
            ),
        ]
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn redis_cli_subscribe_prints_a_published_message() {
    let available = Command::new("redis-cli")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("note: redis-cli is not on PATH; skipping");
        return;
    }
    let server = TestServer::start().await;
    let mut child = Command::new("redis-cli")
        .args(["-p", &server.addr.port().to_string(), "subscribe", "cli"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-cli");
    let mut out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut chunk = [0u8; 1024];
        while let Ok(n) = out.read(&mut chunk) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&chunk[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    await_numsub(&server, "cli", 1).await;
    let mut publisher = server.raw().await;
    assert_eq!(
        publisher
            .cmd(&["PUBLISH", "cli", "hello from limitkv"])
            .await,
        Reply::Int(1)
    );
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !seen.contains("hello from limitkv") && std::time::Instant::now() < deadline {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&s);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("subscribe\ncli\n1\nmessage\ncli\nhello from limitkv"),
        "redis-cli printed: {seen:?}"
    );
    server.stop().await.unwrap();
}
