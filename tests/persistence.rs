//! The append-only file end to end, in process: every kind of change survives a restart, a
//! damaged tail is refused or truncated as configured, and BGREWRITEAOF compacts without losing
//! writes.

mod common;

use std::time::Duration;

use common::{Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::{FsyncPolicy, AOF_FILE};

fn aof_config(dir: &std::path::Path, policy: FsyncPolicy) -> Config {
    Config {
        appendonly: true,
        dir: dir.to_path_buf(),
        appendfsync: policy,
        ..Config::default()
    }
}

fn ints(r: &Reply) -> Vec<i64> {
    match r {
        Reply::Array(items) => items
            .iter()
            .map(|i| match i {
                Reply::Int(n) => *n,
                other => panic!("not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[tokio::test]
async fn every_kind_of_change_survives_a_restart() {
    let dir = common::temp_dir();
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let _ = std::fs::remove_file(dir.path().join(AOF_FILE));
        let server = TestServer::with_config(aof_config(dir.path(), policy)).await;
        let mut c = server.raw().await;
        assert_eq!(c.cmd(&["SET", "s", "v"]).await, Reply::Simple("OK".into()));
        c.cmd(&["SET", "ttl", "v", "EX", "100"]).await;
        c.cmd(&["INCRBY", "n", "41"]).await;
        c.cmd(&["INCR", "n"]).await;
        c.cmd(&["SET", "doomed", "x"]).await;
        c.cmd(&["DEL", "doomed"]).await;
        c.cmd(&["MSET", "m1", "a", "m2", "b"]).await;
        c.cmd(&["RENAME", "m2", "m3"]).await;
        for _ in 0..3 {
            c.cmd(&["CL.THROTTLE", "bucket", "4", "1", "60"]).await;
        }
        c.cmd(&["SELECT", "5"]).await;
        c.cmd(&["SET", "in5", "five"]).await;
        c.cmd(&["SELECT", "6"]).await;
        c.cmd(&["SET", "in6", "six"]).await;
        c.cmd(&["FLUSHDB"]).await;
        let clock = server.clock.clone();
        server.stop().await.unwrap();

        let server = TestServer::with_config(aof_config(dir.path(), policy)).await;
        // The restarted server has its own clock at the same instant.
        assert_eq!(server.now(), clock_now(&clock), "{policy:?}");
        let mut c = server.raw().await;
        assert_eq!(c.cmd(&["GET", "s"]).await, Reply::bulk("v"), "{policy:?}");
        assert_eq!(c.cmd(&["TTL", "ttl"]).await, Reply::Int(100), "{policy:?}");
        assert_eq!(c.cmd(&["GET", "n"]).await, Reply::bulk("42"), "{policy:?}");
        assert_eq!(
            c.cmd(&["EXISTS", "doomed", "m2"]).await,
            Reply::Int(0),
            "{policy:?}"
        );
        assert_eq!(c.cmd(&["GET", "m3"]).await, Reply::bulk("b"), "{policy:?}");
        // Half-spent bucket is still half-spent: 3 of 5 taken, the 4th leaves 1.
        assert_eq!(
            ints(&c.cmd(&["CL.THROTTLE", "bucket", "4", "1", "60"]).await),
            vec![0, 5, 1, -1, 240],
            "{policy:?}"
        );
        c.cmd(&["SELECT", "5"]).await;
        assert_eq!(
            c.cmd(&["GET", "in5"]).await,
            Reply::bulk("five"),
            "{policy:?}"
        );
        c.cmd(&["SELECT", "6"]).await;
        assert_eq!(c.cmd(&["DBSIZE"]).await, Reply::Int(0), "{policy:?}");
        server.stop().await.unwrap();
    }
}

fn clock_now(clock: &limitkv::clock::ManualClock) -> limitkv::clock::Nanos {
    use limitkv::clock::Clock;
    clock.now()
}

/// The AOF's logical size (`aof_current_size`): while the server runs, the file itself runs
/// on in preallocated zeros.
async fn aof_size(c: &mut common::Raw) -> u64 {
    let info = c.cmd(&["INFO", "persistence"]).await.text();
    info.lines()
        .find_map(|l| l.strip_prefix("aof_current_size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("aof_current_size")
}

#[tokio::test]
async fn keys_that_expired_while_down_are_gone_and_denials_write_nothing() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "short", "v", "PX", "500"]).await;
    c.cmd(&["CL.THROTTLE", "b", "0", "1", "10"]).await;
    let size = aof_size(&mut c).await;
    for _ in 0..5 {
        let r = ints(&c.cmd(&["CL.THROTTLE", "b", "0", "1", "10"]).await);
        assert_eq!(r[0], 1, "denied");
        c.cmd(&["CL.THROTTLE", "b", "0", "1", "10", "0"]).await;
        c.cmd(&["GET", "short"]).await;
    }
    assert_eq!(
        aof_size(&mut c).await,
        size,
        "denials, peeks and reads append nothing"
    );
    server.stop().await.unwrap();

    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    server.clock.advance(Duration::from_secs(1));
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["EXISTS", "short"]).await, Reply::Int(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_torn_tail_is_refused_with_its_offset_unless_truncation_is_allowed() {
    // A crash in the middle of a record: half a frame at the end.
    torn_tail_is_refused_unless_truncation_is_allowed(|bytes| {
        bytes.extend_from_slice(&[20, 0, 0, 0, 1, 2, 3]);
    })
    .await;
}

#[tokio::test]
async fn bytes_after_a_killed_servers_preallocated_zeros_are_a_torn_tail() {
    // A killed server leaves its zeros; anything after them never reached the log's end.
    torn_tail_is_refused_unless_truncation_is_allowed(|bytes| {
        bytes.resize(bytes.len() + 64 * 1024, 0);
        bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    })
    .await;
}

async fn torn_tail_is_refused_unless_truncation_is_allowed(damage: impl Fn(&mut Vec<u8>)) {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "a", "1"]).await;
    c.cmd(&["SET", "b", "2"]).await;
    server.stop().await.unwrap();
    let path = dir.path().join(AOF_FILE);
    let good = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let cfg = aof_config(dir.path(), FsyncPolicy::Always);
    let err = match limitkv::server::bind(
        cfg.clone(),
        std::sync::Arc::new(limitkv::clock::SystemClock),
    )
    .await
    {
        Ok(_) => panic!("a torn AOF must be refused by default"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("offset {good}")), "{err}");

    let server = TestServer::with_config(Config {
        aof_load_truncated: true,
        ..cfg
    })
    .await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["GET", "b"]).await, Reply::bulk("2"));
    c.cmd(&["SET", "c", "3"]).await;
    server.stop().await.unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > good);

    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["MGET", "a", "b", "c"]).await,
        Reply::Array(vec![Reply::bulk("1"), Reply::bulk("2"), Reply::bulk("3")])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bgrewriteaof_compacts_and_keeps_every_write() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::EverySec)).await;
    let mut c = server.raw().await;
    for i in 0..200 {
        c.cmd(&["INCR", &format!("k{}", i % 10)]).await;
    }
    let before = aof_size(&mut c).await;
    assert!(std::fs::metadata(dir.path().join(AOF_FILE)).unwrap().len() > before);
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]).await,
        Reply::Simple("Background append only file rewriting scheduled".into())
    );
    common::eventually(Duration::from_secs(10), "the rewrite to finish", || async {
        let info = server
            .raw()
            .await
            .cmd(&["INFO", "persistence"])
            .await
            .text();
        info.contains("aof_rewrites:1").then_some(())
    })
    .await;
    c.cmd(&["INCR", "k0"]).await;
    let after = aof_size(&mut c).await;
    assert!(after < before / 5, "rewrite compacts: {before} -> {after}");
    server.stop().await.unwrap();

    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::EverySec)).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["GET", "k0"]).await, Reply::bulk("21"));
    assert_eq!(c.cmd(&["GET", "k9"]).await, Reply::bulk("20"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bgrewriteaof_without_persistence_is_an_error() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]).await,
        Reply::Error("ERR Append only file is disabled (start with --appendonly yes)".into())
    );
    server.stop().await.unwrap();
}

/// Under `appendfsync always`, replies that wait for the AOF are written by whichever thread
/// commits it, and every later reply of the connection queues behind them: a pipeline of
/// writes, reads and a QUIT is answered in order, and the QUIT's reply still goes out.
#[tokio::test]
async fn always_answers_a_mixed_pipeline_in_order_then_quits() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    let mut pipeline = Vec::new();
    for args in [
        &["SET", "a", "1"][..],
        &["GET", "a"],
        &["INCR", "a"],
        &["PING"],
        &["GET", "a"],
        &["INCR", "a"],
        &["ECHO", "x"],
        &["INCR", "a"],
    ] {
        pipeline.extend(common::resp(args));
    }
    // Twice: once in one write, once a command per write without reading in between.
    c.send(&pipeline).await;
    for part in pipeline.split_inclusive(|&b| b == b'\n') {
        c.send(part).await;
    }
    let expected = [
        Reply::Simple("OK".into()),
        Reply::bulk("1"),
        Reply::Int(2),
        Reply::Simple("PONG".into()),
        Reply::bulk("2"),
        Reply::Int(3),
        Reply::bulk("x"),
        Reply::Int(4),
    ];
    assert_eq!(c.read_replies(8).await, expected);
    assert_eq!(c.read_replies(8).await, expected);
    c.send(&[common::resp(&["INCR", "a"]), common::resp(&["QUIT"])].concat())
        .await;
    let rest = c.read_until_closed().await;
    assert_eq!(rest, b":5\r\n+OK\r\n");
    server.stop().await.unwrap();

    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    assert_eq!(
        server.raw().await.cmd(&["GET", "a"]).await,
        Reply::bulk("5")
    );
    server.stop().await.unwrap();
}

/// Held replies larger than the socket takes at once: the committing thread writes what fits
/// and the connection finishes the rest, in order.
#[tokio::test]
async fn always_finishes_held_replies_the_socket_could_not_take() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    let big = "v".repeat(6 << 20);
    assert_eq!(
        c.cmd(&["SET", "big", &big]).await,
        Reply::Simple("OK".into())
    );
    let mut pipeline = Vec::new();
    for _ in 0..3 {
        pipeline.extend(common::resp(&["INCR", "n"]));
        pipeline.extend(common::resp(&["GET", "big"]));
    }
    pipeline.extend(common::resp(&["INCR", "n"]));
    c.send(&pipeline).await;
    let replies = c.read_replies(7).await;
    for (i, r) in replies.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(*r, Reply::Int(i as i64 / 2 + 1), "reply {i}");
        } else {
            assert!(*r == Reply::bulk(&big), "reply {i}: the big value");
        }
    }
    assert_eq!(c.cmd(&["GET", "n"]).await, Reply::bulk("4"));
    server.stop().await.unwrap();
}

/// A client that sends its commands and then closes its side (`nc` after a pipeline) still
/// gets every reply held for the AOF before the connection closes.
#[tokio::test]
async fn always_answers_a_client_that_closed_its_side_after_sending() {
    use tokio::io::AsyncWriteExt;
    let dir = common::temp_dir();
    let server = TestServer::with_config(aof_config(dir.path(), FsyncPolicy::Always)).await;
    let mut c = server.raw().await;
    let mut pipeline = Vec::new();
    for _ in 0..20 {
        pipeline.extend(common::resp(&["INCR", "n"]));
    }
    c.send(&pipeline).await;
    c.stream.shutdown().await.unwrap();
    let replies = c.read_until_closed().await;
    let expected: String = (1..=20).map(|i| format!(":{i}\r\n")).collect();
    assert_eq!(String::from_utf8_lossy(&replies), expected);
    server.stop().await.unwrap();
}

/// `aof-preallocate 0`: the file is exactly its records while the server runs (for
/// copy-on-write filesystems, where preallocating saves nothing), and CONFIG GET shows it.
#[tokio::test]
async fn aof_preallocate_0_keeps_the_file_to_its_records() {
    let dir = common::temp_dir();
    let server = TestServer::with_config(Config {
        aof_preallocate: 0,
        ..aof_config(dir.path(), FsyncPolicy::Always)
    })
    .await;
    let mut c = server.raw().await;
    for _ in 0..10 {
        c.cmd(&["INCR", "n"]).await;
    }
    assert_eq!(
        std::fs::metadata(dir.path().join(AOF_FILE)).unwrap().len(),
        aof_size(&mut c).await
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "aof-preallocate"]).await,
        Reply::Array(vec![Reply::bulk("aof-preallocate"), Reply::bulk("0")])
    );
    server.stop().await.unwrap();
}
