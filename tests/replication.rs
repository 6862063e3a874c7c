//! Replication over real sockets: in-process masters and replicas on manual clocks (both start
//! at the same instant and are never advanced, so a limiter state means the same on both).
//! Full sync, streaming, WAIT, partial resync after a disconnect, promotion with the same
//! limits, and the bad inputs: a replica pointed at itself, at a Redis server, with a wrong
//! password, at a master that disappears mid-transfer or sends a truncated snapshot.
//! The Sentinel failover with real redis-sentinel processes is tests/sentinel.rs.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, query, query_err, TestServer, WAIT};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;
use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn replica_of(master: SocketAddr) -> Config {
    let mut c = Config::default();
    c.repl.replicaof = Some((master.ip().to_string(), master.port()));
    c
}

async fn info(con: &mut MultiplexedConnection, section: &str) -> String {
    match query(con, &["INFO", section]).await {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("INFO: {other:?}"),
    }
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::to_owned)
}

async fn until_field(con: &mut MultiplexedConnection, section: &str, name: &str, want: &str) {
    let what = format!("{name}:{want}");
    eventually(WAIT, &what, || {
        let mut con = con.clone();
        async move {
            let i = info(&mut con, section).await;
            (field(&i, name).as_deref() == Some(want)).then_some(())
        }
    })
    .await;
}

async fn throttle_remaining(con: &mut MultiplexedConnection, key: &str) -> i64 {
    match query(con, &["CL.THROTTLE", key, "9", "1", "3600"]).await {
        redis::Value::Array(v) => match v[2] {
            redis::Value::Int(n) => n,
            ref other => panic!("remaining: {other:?}"),
        },
        other => panic!("CL.THROTTLE: {other:?}"),
    }
}

async fn int(con: &mut MultiplexedConnection, args: &[&str]) -> i64 {
    match query(con, args).await {
        redis::Value::Int(n) => n,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[tokio::test]
async fn a_replica_syncs_streams_refuses_writes_and_takes_over_with_the_same_limits() {
    let master = TestServer::start().await;
    let mut m = master.redis(false).await;
    for _ in 0..3 {
        throttle_remaining(&mut m, "user:1").await;
    }
    query(&mut m, &["POLICY.SET", "api", "rate", "5/m"]).await;
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    let mut r = replica.redis(false).await;
    until_field(&mut r, "replication", "master_link_status", "up").await;
    // After the full sync, the stream: two more decisions, acknowledged by WAIT.
    assert_eq!(throttle_remaining(&mut m, "user:1").await, 6);
    assert_eq!(throttle_remaining(&mut m, "user:2").await, 9);
    assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
    let mi = info(&mut m, "replication").await;
    assert_eq!(field(&mi, "connected_slaves").as_deref(), Some("1"));
    let slave0 = field(&mi, "slave0").expect("slave0 line");
    assert!(
        slave0.starts_with("ip=127.0.0.1,port=") && slave0.contains(",state=online,offset="),
        "{slave0}"
    );
    let ri = info(&mut r, "replication").await;
    assert_eq!(field(&ri, "role").as_deref(), Some("slave"));
    assert_eq!(field(&ri, "master_replid"), field(&mi, "master_replid"));
    // Reads and peeks are served; decisions are writes.
    assert_eq!(int(&mut r, &["EXISTS", "user:1", "user:2"]).await, 2);
    let err = query_err(&mut r, &["CL.THROTTLE", "user:1", "9", "1", "3600"]).await;
    assert_eq!(err.code(), Some("READONLY"), "{err}");
    assert!(matches!(
        query(&mut r, &["LIMIT.STATUS", "api", "someone"]).await,
        redis::Value::Array(_) | redis::Value::Map(_)
    ));
    // Promoted, it decides exactly as the master would have: the acknowledged decisions
    // are all there.
    query(&mut r, &["REPLICAOF", "NO", "ONE"]).await;
    assert_eq!(throttle_remaining(&mut r, "user:1").await, 5);
    assert_eq!(throttle_remaining(&mut m, "user:1").await, 5);
    let ri = info(&mut r, "replication").await;
    assert_eq!(field(&ri, "role").as_deref(), Some("master"));
    assert_eq!(
        field(&ri, "master_replid2"),
        field(&mi, "master_replid"),
        "the old history is kept as replid2"
    );
    master.stop().await.unwrap();
    replica.stop().await.unwrap();
}

#[tokio::test]
async fn a_short_disconnect_resumes_with_continue_not_a_full_sync() {
    let master = TestServer::start().await;
    let mut m = master.redis(false).await;
    throttle_remaining(&mut m, "k").await;
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    let mut r = replica.redis(false).await;
    until_field(&mut r, "replication", "master_link_status", "up").await;
    assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
    until_field(&mut m, "stats", "sync_full", "1").await;
    // Cut the link from the master's side; write while the replica is away.
    assert_eq!(int(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]).await, 1);
    for _ in 0..4 {
        throttle_remaining(&mut m, "k").await;
    }
    until_field(&mut m, "stats", "sync_partial_ok", "1").await;
    assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
    let mi = info(&mut m, "stats").await;
    assert_eq!(field(&mi, "sync_full").as_deref(), Some("1"), "{mi}");
    let (mo, ro) = (
        field(&info(&mut m, "replication").await, "master_repl_offset"),
        field(&info(&mut r, "replication").await, "slave_repl_offset"),
    );
    assert_eq!(mo, ro, "same offset on both after the resync");
    // A second away from its master (pointed at a closed port meanwhile), while the master
    // takes four more decisions: back, it continues as well.
    let closed = common::free_port().to_string();
    query(&mut r, &["REPLICAOF", "127.0.0.1", &closed]).await;
    until_field(&mut m, "replication", "connected_slaves", "0").await;
    for _ in 0..4 {
        throttle_remaining(&mut m, "k").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let port = master.addr.port().to_string();
    query(&mut r, &["REPLICAOF", "127.0.0.1", &port]).await;
    until_field(&mut m, "stats", "sync_partial_ok", "2").await;
    assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
    let mi = info(&mut m, "stats").await;
    assert_eq!(field(&mi, "sync_full").as_deref(), Some("1"), "{mi}");
    query(&mut r, &["REPLICAOF", "NO", "ONE"]).await;
    assert_eq!(throttle_remaining(&mut r, "k").await, 0);
    master.stop().await.unwrap();
    replica.stop().await.unwrap();
}

#[tokio::test]
async fn wait_counts_acknowledging_replicas_and_times_out() {
    let master = TestServer::start().await;
    let mut m = master.redis(false).await;
    throttle_remaining(&mut m, "k").await;
    let started = std::time::Instant::now();
    assert_eq!(int(&mut m, &["WAIT", "1", "150"]).await, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "waited its timeout"
    );
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    let mut r = replica.redis(false).await;
    until_field(&mut r, "replication", "master_link_status", "up").await;
    throttle_remaining(&mut m, "k").await;
    assert_eq!(int(&mut m, &["WAIT", "1", "0"]).await, 1);
    assert_eq!(
        int(&mut m, &["WAIT", "2", "100"]).await,
        1,
        "only one exists"
    );
    // ROLE lists it with its acknowledged offset.
    match query(&mut m, &["ROLE"]).await {
        redis::Value::Array(v) => {
            assert_eq!(v[0], redis::Value::BulkString(b"master".to_vec()));
            match &v[2] {
                redis::Value::Array(rs) => assert_eq!(rs.len(), 1),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    match query(&mut r, &["ROLE"]).await {
        redis::Value::Array(v) => {
            assert_eq!(v[0], redis::Value::BulkString(b"slave".to_vec()));
            assert_eq!(v[3], redis::Value::BulkString(b"connected".to_vec()));
        }
        other => panic!("{other:?}"),
    }
    // min-replicas-to-write: one good replica is enough, two are not.
    query(&mut m, &["CONFIG", "SET", "min-replicas-to-write", "1"]).await;
    throttle_remaining(&mut m, "k").await;
    query(&mut m, &["CONFIG", "SET", "min-replicas-to-write", "2"]).await;
    let err = query_err(&mut m, &["CL.THROTTLE", "k", "9", "1", "3600"]).await;
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    master.stop().await.unwrap();
    replica.stop().await.unwrap();
}

async fn link_error(con: &mut MultiplexedConnection, contains: &str) -> String {
    eventually(WAIT, contains, || {
        let mut con = con.clone();
        let contains = contains.to_owned();
        async move {
            let i = info(&mut con, "replication").await;
            field(&i, "master_link_last_error").filter(|e| e.contains(&contains))
        }
    })
    .await
}

#[tokio::test]
async fn pointed_at_itself_or_with_a_wrong_password_it_says_why_and_retries() {
    let server = TestServer::start().await;
    let mut s = server.redis(false).await;
    let port = server.addr.port().to_string();
    query(&mut s, &["REPLICAOF", "127.0.0.1", &port]).await;
    let e = link_error(&mut s, "is this server itself").await;
    assert!(e.contains("cannot replicate itself"), "{e}");
    query(&mut s, &["REPLICAOF", "NO", "ONE"]).await;

    let cfg = Config {
        requirepass: Some("secret".into()),
        ..Config::default()
    };
    let master = TestServer::with_config(cfg).await;
    let mut rc = replica_of(master.addr);
    rc.repl.masterauth = Some("wrong".into());
    let replica = TestServer::with_config(rc).await;
    let mut r = replica.redis(false).await;
    let e = link_error(&mut r, "unable to AUTH to MASTER").await;
    assert!(e.contains("WRONGPASS"), "{e}");
    // The right password is used at the next retry.
    query(&mut r, &["CONFIG", "SET", "masterauth", "secret"]).await;
    until_field(&mut r, "replication", "master_link_status", "up").await;
    replica.stop().await.unwrap();
    master.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_redis_server_master_is_refused_with_a_clear_error() {
    let port = common::free_port().to_string();
    // Its full sync writes an RDB file: into a directory of the test's own.
    let dir = common::temp_dir();
    let Ok(mut redis) = std::process::Command::new("redis-server")
        .args(["--port", &port, "--save", "", "--bind", "127.0.0.1"])
        .args(["--dir", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    eventually(WAIT, "redis-server to listen", || {
        let port = port.clone();
        async move {
            tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
                .await
                .ok()
        }
    })
    .await;
    let server = TestServer::start().await;
    let mut s = server.redis(false).await;
    query(&mut s, &["SET", "mine", "1"]).await;
    query(&mut s, &["REPLICAOF", "127.0.0.1", &port]).await;
    let e = link_error(&mut s, "not limitkv's").await;
    assert!(e.contains("nothing was loaded"), "{e}");
    assert_eq!(int(&mut s, &["EXISTS", "mine"]).await, 1, "no state lost");
    // It tries again: Redis served it more than one full sync.
    let rs = common::redis_connect(&format!("redis://127.0.0.1:{port}")).await;
    eventually(WAIT, "a second attempt", || {
        let mut rs = rs.clone();
        async move {
            let i = info(&mut rs, "stats").await;
            let n: u64 = field(&i, "sync_full")?.parse().ok()?;
            (n >= 2).then_some(())
        }
    })
    .await;
    assert_eq!(
        int(&mut s, &["EXISTS", "mine"]).await,
        1,
        "still no state lost"
    );
    let _ = redis.kill();
    let _ = redis.wait();
    server.stop().await.unwrap();
}

/// A fake master: answers the handshake, then `+FULLRESYNC` and `body` (a bulk header and
/// some bytes), then closes. Counts the connections it accepted.
async fn fake_master(body: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                let mut answered = 0;
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if text.contains("PSYNC") {
                        let mut out = Vec::new();
                        out.extend_from_slice(
                            b"+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n",
                        );
                        out.extend_from_slice(&body);
                        let _ = s.write_all(&out).await;
                        return;
                    }
                    // The replica sends one command and waits: answer each as it comes.
                    let requests = text.matches('*').count();
                    while answered < requests {
                        let _ = s.write_all(b"+OK\r\n").await;
                        answered += 1;
                    }
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn a_master_gone_mid_transfer_or_a_truncated_snapshot_loads_nothing() {
    // A real snapshot to cut: the master's state with two keys.
    let donor = TestServer::start().await;
    let mut d = donor.redis(false).await;
    throttle_remaining(&mut d, "a").await;
    throttle_remaining(&mut d, "b").await;
    let snap = limitkv::repl::snapshot::build(&donor.shared.engine, &[], donor.now());
    let half = snap.len() / 2;
    for (body, expect) in [
        // Declares the whole length, sends half, closes.
        (
            [
                format!("${}\r\n", snap.len()).into_bytes(),
                snap[..half].to_vec(),
            ]
            .concat(),
            "went away during the snapshot transfer",
        ),
        // Declares and sends a cut snapshot.
        (
            [format!("${}\r\n", half).into_bytes(), snap[..half].to_vec()].concat(),
            "snapshot is damaged",
        ),
    ] {
        let (addr, accepted) = fake_master(body).await;
        let server = TestServer::start().await;
        let mut s = server.redis(false).await;
        query(&mut s, &["SET", "mine", "1"]).await;
        let port = addr.port().to_string();
        let asked = std::time::Instant::now();
        query(&mut s, &["REPLICAOF", "127.0.0.1", &port]).await;
        let e = link_error(&mut s, expect).await;
        assert!(e.contains("nothing was loaded"), "{e}");
        assert_eq!(
            int(&mut s, &["EXISTS", "mine"]).await,
            1,
            "{expect}: state kept"
        );
        assert_eq!(
            int(&mut s, &["EXISTS", "a"]).await,
            0,
            "{expect}: nothing loaded"
        );
        // It retries, with backoff: three attempts take at least the first two waits
        // (100 ms, then 200 ms); a fixed 100 ms would take 200 ms.
        eventually(WAIT, "a retry", || async {
            (accepted.load(Ordering::SeqCst) >= 3).then_some(())
        })
        .await;
        assert!(
            asked.elapsed() >= Duration::from_millis(300),
            "{:?} for three attempts",
            asked.elapsed()
        );
        server.stop().await.unwrap();
    }
    donor.stop().await.unwrap();
}

#[tokio::test]
async fn sentinels_failover_transaction_runs_and_config_rewrite_keeps_the_file() {
    let dir = common::temp_dir();
    let path = dir.path().join("limitkv.conf");
    std::fs::write(&path, "# written by hand\nhz 10\npolicy api rate 5/m\n").unwrap();
    let master = TestServer::start().await;
    let mut cfg = Config::default();
    cfg.load_file(&path).unwrap();
    cfg.config_file = Some(path.clone());
    let server = TestServer::with_config(cfg).await;
    let mut s = server.redis(false).await;
    let mut other = server.redis(false).await;
    query(&mut other, &["PING"]).await;
    // What Sentinel sends to reconfigure an instance (sentinelSendSlaveOf in Redis 7.0).
    let port = master.addr.port().to_string();
    let mut pipe = redis::pipe();
    pipe.cmd("CLIENT")
        .arg(&["SETNAME", "sentinel-abcd1234-cmd"]);
    pipe.cmd("MULTI");
    pipe.cmd("SLAVEOF").arg(&["127.0.0.1", port.as_str()]);
    pipe.cmd("CONFIG").arg("REWRITE");
    pipe.cmd("CLIENT").arg(&["KILL", "TYPE", "normal"]);
    pipe.cmd("CLIENT").arg(&["KILL", "TYPE", "pubsub"]);
    pipe.cmd("EXEC");
    let replies: Vec<redis::Value> = pipe.query_async(&mut s).await.unwrap();
    match &replies[6] {
        redis::Value::Array(v) => {
            assert_eq!(v.len(), 4, "{v:?}");
            assert_eq!(v[0], redis::Value::Okay);
            assert_eq!(v[1], redis::Value::Okay, "CONFIG REWRITE");
        }
        other => panic!("EXEC: {other:?}"),
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# written by hand\nhz 10\npolicy api rate 5/m\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("replicaof 127.0.0.1 {port}\n")),
        "{text}"
    );
    let mut s = server.redis(false).await;
    until_field(&mut s, "replication", "master_link_status", "up").await;
    query(&mut s, &["REPLICAOF", "NO", "ONE"]).await;
    query(&mut s, &["CONFIG", "REWRITE"]).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("replicaof"), "{text}");
    // And a reload of the rewritten file gives the same settings.
    let mut again = Config::default();
    again.load_file(&path).unwrap();
    assert_eq!(again.repl.replicaof, None);
    // Without a file, Redis's error.
    let mut m = master.redis(false).await;
    let err = query_err(&mut m, &["CONFIG", "REWRITE"]).await;
    assert!(
        err.to_string()
            .contains("The server is running without a config file"),
        "{err}"
    );
    server.stop().await.unwrap();
    master.stop().await.unwrap();
}

#[tokio::test]
async fn leases_carry_over_a_promotion_with_their_absolute_expiry() {
    let master = TestServer::start().await;
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    let (mut m, mut r) = (master.redis(false).await, replica.redis(false).await);
    until_field(&mut r, "replication", "master_link_status", "up").await;
    let v = query(
        &mut m,
        &["LEASE.ACQUIRE", "jobs", "LIMIT", "2", "TTL", "30s"],
    )
    .await;
    let f = common::fields(v, false);
    let id = match f.iter().find(|(k, _)| k == "lease_id").unwrap().1 {
        redis::Value::Int(n) => n,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
    // Ten seconds pass on both nodes' clocks.
    for s in [&master, &replica] {
        s.clock.advance(Duration::from_secs(10));
    }
    query(&mut r, &["REPLICAOF", "NO", "ONE"]).await;
    assert_eq!(int(&mut r, &["LEASE.COUNT", "jobs"]).await, 1);
    assert_eq!(
        int(&mut r, &["PTTL", "jobs"]).await,
        20_000,
        "the same absolute expiry"
    );
    // New ids continue above the old master's; the old lease can be released here.
    let v = query(
        &mut r,
        &["LEASE.ACQUIRE", "jobs", "LIMIT", "2", "TTL", "30s"],
    )
    .await;
    let f = common::fields(v, false);
    match f.iter().find(|(k, _)| k == "lease_id").unwrap().1 {
        redis::Value::Int(n) => assert!(n > id, "{n} > {id}"),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(
        int(&mut r, &["LEASE.RELEASE", "jobs", &id.to_string()]).await,
        1
    );
    assert_eq!(int(&mut r, &["LEASE.COUNT", "jobs"]).await, 1);
    master.stop().await.unwrap();
    replica.stop().await.unwrap();
}

fn aof_config(dir: &tempfile::TempDir, fsync: FsyncPolicy) -> Config {
    Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: fsync,
        ..Config::default()
    }
}

async fn waitaof(con: &mut MultiplexedConnection, args: &[&str]) -> (i64, i64) {
    let mut cmd = vec!["WAITAOF"];
    cmd.extend_from_slice(args);
    match query(con, &cmd).await {
        redis::Value::Array(v) => match v[..] {
            [redis::Value::Int(l), redis::Value::Int(r)] => (l, r),
            ref other => panic!("WAITAOF: {other:?}"),
        },
        other => panic!("WAITAOF: {other:?}"),
    }
}

/// `WAITAOF` on real sockets, with the fsync policies of the master and the replica crossed:
/// an `everysec` AOF on a manual clock fsyncs only once that clock has moved a second, so
/// which side is still missing is known exactly.
#[tokio::test]
async fn waitaof_counts_the_local_fsync_and_the_replicas_fsyncs() {
    for (master_fsync, replica_fsync) in [
        (FsyncPolicy::Always, FsyncPolicy::EverySec),
        (FsyncPolicy::EverySec, FsyncPolicy::Always),
    ] {
        let (mdir, rdir) = (common::temp_dir(), common::temp_dir());
        let master = TestServer::with_config(aof_config(&mdir, master_fsync)).await;
        let mut m = master.redis(false).await;
        throttle_remaining(&mut m, "k").await;
        // No replica: the replica count times out at 0.
        let started = std::time::Instant::now();
        let local = i64::from(master_fsync == FsyncPolicy::Always);
        assert_eq!(waitaof(&mut m, &["0", "1", "100"]).await, (local, 0));
        assert!(started.elapsed() >= Duration::from_millis(90), "waited");

        let mut rc = aof_config(&rdir, replica_fsync);
        rc.repl.replicaof = Some((master.addr.ip().to_string(), master.addr.port()));
        let replica = TestServer::with_config(rc).await;
        let mut r = replica.redis(false).await;
        until_field(&mut r, "replication", "master_link_status", "up").await;
        throttle_remaining(&mut m, "k").await;
        assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1, "applied");
        // The `always` side has fsynced (waited for without a timeout); the everysec side
        // has not, and its count stays 0 until the timeout.
        let missing = if master_fsync == FsyncPolicy::EverySec {
            assert_eq!(waitaof(&mut m, &["0", "1", "0"]).await, (0, 1));
            (0, 1)
        } else {
            assert_eq!(waitaof(&mut m, &["1", "0", "0"]).await, (1, 0));
            (1, 0)
        };
        assert_eq!(waitaof(&mut m, &["1", "1", "200"]).await, missing);
        // A second passes on its clock: its writer fsyncs, and WAITAOF (no timeout) returns.
        let late = if master_fsync == FsyncPolicy::EverySec {
            &master
        } else {
            &replica
        };
        late.clock.advance(Duration::from_secs(2));
        let got = tokio::time::timeout(WAIT, waitaof(&mut m, &["1", "1", "0"]))
            .await
            .expect("WAITAOF 1 1 0 returned");
        assert_eq!(
            got,
            (1, 1),
            "master {master_fsync:?}, replica {replica_fsync:?}"
        );
        let mi = info(&mut m, "replication").await;
        assert!(field(&mi, "slave0").is_some(), "{mi}");
        // A replica refuses it; inside MULTI it answers at once.
        let err = query_err(&mut r, &["WAITAOF", "0", "0", "0"]).await;
        assert!(
            err.to_string()
                .contains("WAITAOF cannot be used with replica instances"),
            "{err}"
        );
        replica.stop().await.unwrap();
        master.stop().await.unwrap();
    }
    // Without an AOF the local count cannot be asked for.
    let plain = TestServer::start().await;
    let mut p = plain.redis(false).await;
    let err = query_err(&mut p, &["WAITAOF", "1", "0", "0"]).await;
    assert!(
        err.to_string()
            .contains("WAITAOF cannot be used when numlocal is set but appendonly is disabled."),
        "{err}"
    );
    assert_eq!(waitaof(&mut p, &["0", "1", "50"]).await, (0, 0));
    plain.stop().await.unwrap();
}

/// A client on the replica that WATCHes a key sees its EXEC abort when the master changes
/// that key (applied through the stream), as in Redis; an unrelated change does not abort it,
/// and neither does a full resync that leaves a watched key absent.
#[tokio::test]
async fn a_change_from_the_master_aborts_a_watching_transaction_on_the_replica() {
    let master = TestServer::start().await;
    let mut m = master.redis(false).await;
    throttle_remaining(&mut m, "w").await;
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    let mut r = replica.redis(false).await;
    until_field(&mut r, "replication", "master_link_status", "up").await;
    let mut raw = replica.raw().await;
    let run_watched = |keys: &'static [&'static str]| keys;
    for (watched, changed, aborts) in [
        (run_watched(&["w"]), "w", true),
        (run_watched(&["w"]), "other", false),
        (run_watched(&["gone"]), "w", false),
    ] {
        let mut watch = vec!["WATCH"];
        watch.extend_from_slice(watched);
        assert_eq!(raw.cmd(&watch).await, common::Reply::Simple("OK".into()));
        throttle_remaining(&mut m, changed).await;
        assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1, "applied");
        assert_eq!(
            raw.cmd(&["MULTI"]).await,
            common::Reply::Simple("OK".into())
        );
        raw.cmd(&["EXISTS", "w"]).await;
        let exec = raw.cmd(&["EXEC"]).await;
        if aborts {
            assert_eq!(
                exec,
                common::Reply::Null,
                "{watched:?} changed by {changed}"
            );
        } else {
            assert_eq!(
                exec,
                common::Reply::Array(vec![common::Reply::Int(1)]),
                "{watched:?} untouched by {changed}"
            );
        }
    }
    // A deletion and a FLUSHALL on the master abort too.
    for change in [&["DEL", "w"][..], &["FLUSHALL"][..]] {
        throttle_remaining(&mut m, "w").await;
        assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
        assert_eq!(
            raw.cmd(&["WATCH", "w"]).await,
            common::Reply::Simple("OK".into())
        );
        query(&mut m, change).await;
        assert_eq!(int(&mut m, &["WAIT", "1", "5000"]).await, 1);
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["EXISTS", "w"]).await;
        assert_eq!(raw.cmd(&["EXEC"]).await, common::Reply::Null, "{change:?}");
    }
    replica.stop().await.unwrap();
    master.stop().await.unwrap();
}

/// A replica of a master holding many limiter keys completes a full sync and serves peeks
/// of them (50,000 keys here; the 1M-key run is scripts/bench-repl.sh, part 3).
#[tokio::test]
async fn a_replica_of_a_large_keyspace_syncs_and_serves_peeks() {
    const KEYS: usize = 50_000;
    let master = TestServer::start().await;
    let mut m = master.redis(false).await;
    // Loaded through a raw pipeline: no client-side response timeout on a loaded machine.
    let mut loader = master.raw().await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(5_000) {
        let mut bytes = Vec::new();
        for i in chunk {
            bytes.extend(common::resp(&["RATE.TAKE", &format!("key:{i}"), "10/1h"]));
        }
        loader.send(&bytes).await;
        let replies = loader.read_replies(chunk.len()).await;
        assert!(replies.iter().all(|r| matches!(r, common::Reply::Array(_))));
    }
    assert_eq!(int(&mut m, &["DBSIZE"]).await, KEYS as i64);
    let replica = TestServer::with_config(replica_of(master.addr)).await;
    // The raw client waits for replies without the redis crate's response timeout: while
    // the replica swaps the snapshot in, every shard is locked (a debug build takes a while).
    let mut raw = replica.raw().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !raw
        .cmd(&["INFO", "replication"])
        .await
        .text()
        .contains("master_link_status:up")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no full sync in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut r = replica.redis(false).await;
    assert_eq!(int(&mut r, &["DBSIZE"]).await, KEYS as i64);
    // Peeks answer from the master's states (one of 10 taken: a take would leave 8), the
    // same as on the master (both clocks stand still).
    for i in [0, 12_345, KEYS - 1] {
        let k = format!("key:{i}");
        let on_replica = query(&mut r, &["RATE.PEEK", &k, "10/1h"]).await;
        assert_eq!(on_replica, query(&mut m, &["RATE.PEEK", &k, "10/1h"]).await);
        let f = common::fields(on_replica, false);
        let remaining = &f
            .iter()
            .find(|(n, _)| n == "remaining")
            .expect("remaining")
            .1;
        assert_eq!(*remaining, redis::Value::Int(8), "{k}");
    }
    master.stop().await.unwrap();
    replica.stop().await.unwrap();
}
