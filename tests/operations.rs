//! Operations over TCP. `MONITOR`: Redis's line format and quoting, what is shown and in which
//! order (an `EXEC`'s commands before the `EXEC`, a script's `redis.call`s after the script, as
//! `[0 lua]`), redacted credentials, the monitor's own restrictions, `RESET`. `CLIENT PAUSE` /
//! `UNPAUSE` (delayed, not refused; the end on the server clock), `CLIENT NO-EVICT`.

mod common;

use std::time::Duration;

use common::{lines, monitor, resp, resp_cmd, Raw, Reply, TestServer};
use limitkv::clock::Nanos;

/// The server clock's time as a monitor line prints it.
fn stamp(server: &TestServer) -> String {
    let ns = server.now().as_nanos();
    format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000)
}

fn peer(c: &Raw) -> String {
    c.stream.local_addr().expect("local addr").to_string()
}

#[tokio::test]
async fn commands_of_every_client_are_streamed_in_redis_format() {
    let server = TestServer::start().await;
    server.clock.set(Nanos::from_millis(1_339_518_083_107));
    let mut m = monitor(&server).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["SET", "keyname", "value"]).await,
        Reply::Simple("OK".into())
    );
    // Raw bytes, quotes and newlines are quoted as Redis's sdscatrepr does.
    c.send(&resp_cmd(&[b"SET", b"k\"\\", b"a b\r\n\x00\xff"]))
        .await;
    c.read_reply().await;
    let got = lines(&mut m, 2).await;
    let p = peer(&c);
    assert_eq!(
        got[0],
        format!(r#"1339518083.107000 [0 {p}] "SET" "keyname" "value""#)
    );
    assert_eq!(
        got[1],
        format!(r#"1339518083.107000 [0 {p}] "SET" "k\"\\" "a b\r\n\x00\xff""#)
    );
    // The database is the client's.
    c.cmd(&["SELECT", "3"]).await;
    c.cmd(&["GET", "x"]).await;
    let got = lines(&mut m, 2).await;
    // Redis prints the database after the command ran.
    assert_eq!(
        got[0],
        format!(r#"{} [3 {p}] "SELECT" "3""#, stamp(&server))
    );
    assert_eq!(got[1], format!(r#"{} [3 {p}] "GET" "x""#, stamp(&server)));
    // A limiter decision is shown like any command.
    let mut d = server.redis(false).await;
    let _: redis::Value = redis::cmd("CL.THROTTLE")
        .arg(&["user:1", "10", "5", "60"])
        .query_async(&mut d)
        .await
        .expect("decision");
    // The client library's own handshake (CLIENT SETINFO ...) comes first.
    let mut seen = Vec::new();
    loop {
        let line = lines(&mut m, 1).await.remove(0);
        if line.contains("CL.THROTTLE") {
            assert!(
                line.ends_with(r#"] "CL.THROTTLE" "user:1" "10" "5" "60""#),
                "{line}"
            );
            break;
        }
        seen.push(line);
        assert!(seen.len() < 5, "{seen:?}");
    }
}

#[tokio::test]
async fn admin_commands_and_refused_commands_are_not_shown_and_auth_is_redacted() {
    let config = limitkv::config::Config {
        requirepass: Some("secret".into()),
        ..Default::default()
    };
    let server = TestServer::with_config(config).await;
    let mut m = server.raw().await;
    m.cmd(&["AUTH", "secret"]).await;
    assert_eq!(m.cmd(&["MONITOR"]).await, Reply::Simple("OK".into()));
    let mut c = server.raw().await;
    // Refused before running (NOAUTH, arity, unknown): not shown.
    assert!(matches!(c.cmd(&["GET", "a"]).await, Reply::Error(_)));
    assert!(matches!(c.cmd(&["GET"]).await, Reply::Error(_)));
    assert!(matches!(c.cmd(&["NOPE"]).await, Reply::Error(_)));
    // AUTH is shown with its arguments redacted, failed or not.
    assert!(matches!(c.cmd(&["AUTH", "wrong"]).await, Reply::Error(_)));
    assert_eq!(
        c.cmd(&["AUTH", "default", "secret"]).await,
        Reply::Simple("OK".into())
    );
    c.send(&resp(&[
        "HELLO", "2", "AUTH", "default", "secret", "SETNAME", "app",
    ]))
    .await;
    c.read_reply().await;
    // Administrative commands (CONFIG, CLIENT LIST, SLOWLOG) are never shown.
    c.cmd(&["CONFIG", "GET", "maxmemory"]).await;
    c.cmd(&["CLIENT", "LIST"]).await;
    c.cmd(&["CLIENT", "ID"]).await;
    c.cmd(&["PING"]).await;
    let got = lines(&mut m, 5).await;
    let p = peer(&c);
    let s = stamp(&server);
    assert_eq!(
        got,
        vec![
            format!(r#"{s} [0 {p}] "AUTH" "(redacted)""#),
            format!(r#"{s} [0 {p}] "AUTH" "(redacted)" "(redacted)""#),
            format!(r#"{s} [0 {p}] "HELLO" "2" "AUTH" "(redacted)" "(redacted)" "SETNAME" "app""#),
            format!(r#"{s} [0 {p}] "CLIENT" "ID""#),
            format!(r#"{s} [0 {p}] "PING""#),
        ]
    );
}

#[tokio::test]
async fn a_transaction_shows_its_commands_then_exec() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    let mut c = server.raw().await;
    c.cmd(&["MULTI"]).await;
    assert_eq!(
        c.cmd(&["SET", "a", "1"]).await,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(c.cmd(&["INCR", "a"]).await, Reply::Simple("QUEUED".into()));
    c.cmd(&["EXEC"]).await;
    let got: Vec<String> = lines(&mut m, 4)
        .await
        .into_iter()
        .map(|l| l.split("] ").nth(1).expect("args").to_owned())
        .collect();
    assert_eq!(
        got,
        vec![
            r#""MULTI""#,
            r#""SET" "a" "1""#,
            r#""INCR" "a""#,
            r#""EXEC""#
        ]
    );
}

#[tokio::test]
async fn a_script_is_shown_before_its_calls_which_read_lua() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    let mut c = server.raw().await;
    let script = "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])";
    assert_eq!(
        c.cmd(&["EVAL", script, "1", "foo", "bar"]).await,
        Reply::bulk("bar")
    );
    let got = lines(&mut m, 3).await;
    let s = stamp(&server);
    let p = peer(&c);
    assert_eq!(
        got[0],
        format!(r#"{s} [0 {p}] "EVAL" "{script}" "1" "foo" "bar""#)
    );
    assert_eq!(got[1], format!(r#"{s} [0 lua] "set" "foo" "bar""#));
    assert_eq!(got[2], format!(r#"{s} [0 lua] "get" "foo""#));
}

#[tokio::test]
async fn the_monitor_cannot_touch_the_keyspace_and_reset_ends_monitoring() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    assert_eq!(
        m.cmd(&["GET", "a"]).await,
        Reply::Error("ERR Replica can't interact with the keyspace".into())
    );
    assert_eq!(
        m.cmd(&["CL.THROTTLE", "k", "1", "1", "1"]).await,
        Reply::Error("ERR Replica can't interact with the keyspace".into())
    );
    // A second MONITOR is ignored without a reply: the PING's reply and line come next (a
    // monitor's own command is fed after its reply, as in Redis).
    m.send(&resp(&["MONITOR"])).await;
    m.send(&resp(&["PING"])).await;
    let got = m.read_replies(2).await;
    assert_eq!(got[0], Reply::Simple("PONG".into()));
    assert!(
        matches!(&got[1], Reply::Simple(l) if l.ends_with(r#""PING""#)),
        "{got:?}"
    );
    // CLIENT LIST shows the monitor with flag O.
    let mut c = server.raw().await;
    let list = c.cmd(&["CLIENT", "LIST"]).await.text();
    assert!(list.lines().any(|l| l.contains(" flags=O ")), "{list}");
    assert_eq!(server.shared.monitors.len(), 1);
    assert_eq!(m.cmd(&["RESET"]).await, Reply::Simple("RESET".into()));
    assert_eq!(server.shared.monitors.len(), 0);
    c.cmd(&["SET", "after", "reset"]).await;
    assert_eq!(m.cmd(&["GET", "after"]).await, Reply::bulk("reset"));
    assert!(m.stays_silent(Duration::from_millis(50)).await);
}

#[tokio::test]
async fn a_closed_monitor_is_forgotten_and_monitor_is_refused_inside_exec() {
    let server = TestServer::start().await;
    {
        let _m = monitor(&server).await;
        assert_eq!(server.shared.monitors.len(), 1);
    }
    common::eventually(common::WAIT, "the monitor is forgotten", || async {
        (server.shared.monitors.is_empty()).then_some(())
    })
    .await;
    let mut c = server.raw().await;
    c.cmd(&["MULTI"]).await;
    assert_eq!(c.cmd(&["MONITOR"]).await, Reply::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Reply::Array(vec![Reply::Error(
            "ERR MONITOR isn't allowed for DENY BLOCKING client".into()
        )])
    );
    assert_eq!(server.shared.monitors.len(), 0);
}

#[tokio::test]
async fn a_blocked_command_is_shown_once() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    let mut b = server.raw().await;
    b.send(&resp(&["BLPOP", "q", "0"])).await;
    let got = lines(&mut m, 1).await;
    assert!(got[0].ends_with(r#""BLPOP" "q" "0""#), "{got:?}");
    let mut c = server.raw().await;
    c.cmd(&["RPUSH", "q", "x"]).await;
    b.read_reply().await;
    let got = lines(&mut m, 1).await;
    assert!(got[0].ends_with(r#""RPUSH" "q" "x""#), "{got:?}");
    c.cmd(&["PING"]).await;
    let got = lines(&mut m, 1).await;
    assert!(got[0].ends_with(r#""PING""#), "{got:?}");
}

#[tokio::test]
async fn client_no_evict_is_recorded_as_flag_e() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert!(c
        .cmd(&["CLIENT", "INFO"])
        .await
        .text()
        .contains(" flags=N "));
    assert_eq!(
        c.cmd(&["CLIENT", "NO-EVICT", "on"]).await,
        Reply::Simple("OK".into())
    );
    assert!(c
        .cmd(&["CLIENT", "INFO"])
        .await
        .text()
        .contains(" flags=e "));
    assert_eq!(
        c.cmd(&["CLIENT", "NO-EVICT", "off"]).await,
        Reply::Simple("OK".into())
    );
    assert!(c
        .cmd(&["CLIENT", "INFO"])
        .await
        .text()
        .contains(" flags=N "));
    assert_eq!(
        c.cmd(&["CLIENT", "NO-EVICT", "maybe"]).await,
        Reply::Error("ERR syntax error".into())
    );
}

/// Sends `args` on `c` and checks that no reply comes for a while: the request is delayed.
async fn delayed(c: &mut Raw, args: &[&str]) {
    c.send(&resp(args)).await;
    assert!(
        c.stays_silent(Duration::from_millis(150)).await,
        "{args:?} is delayed by the pause"
    );
}

#[tokio::test]
async fn a_write_pause_delays_decisions_and_writes_while_reads_answer() {
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "10000", "WRITE"]).await,
        Reply::Simple("OK".into())
    );
    // Reads, PING, INFO and a read-only transaction answer at once.
    assert_eq!(c.cmd(&["GET", "k"]).await, Reply::bulk("v"));
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple("PONG".into()));
    c.cmd(&["MULTI"]).await;
    c.cmd(&["GET", "k"]).await;
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::Array(vec![Reply::bulk("v")]));
    // A limiter decision (a write) waits; so does everything pipelined after it.
    delayed(&mut c, &["CL.THROTTLE", "user:1", "10", "5", "60"]).await;
    c.send(&resp(&["GET", "k"])).await;
    let mut w = server.raw().await;
    delayed(&mut w, &["SET", "k", "w"]).await;
    // Another reader is not delayed, and nothing was written.
    let mut r = server.raw().await;
    assert_eq!(r.cmd(&["GET", "k"]).await, Reply::bulk("v"));
    // The pause ends at its time on the server clock.
    server.clock.advance(Duration::from_millis(10_000));
    let got = c.read_replies(2).await;
    assert!(
        matches!(&got[0], Reply::Array(a) if a[0] == Reply::Int(0)),
        "{got:?}"
    );
    assert_eq!(w.read_reply().await, Reply::Simple("OK".into()));
    assert!(matches!(&got[1], Reply::Bulk(_)), "{got:?}");
    assert_eq!(r.cmd(&["GET", "k"]).await, Reply::bulk("w"));
}

#[tokio::test]
async fn unpause_releases_waiting_clients_and_all_delays_everything() {
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    let mut c = server.raw().await;
    c.cmd(&["MULTI"]).await;
    assert_eq!(c.cmd(&["INCR", "n"]).await, Reply::Simple("QUEUED".into()));
    admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    // An EXEC whose queue writes waits (as would queueing a write: Redis pauses it too).
    delayed(&mut c, &["EXEC"]).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "UNPAUSE"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(c.read_reply().await, Reply::Array(vec![Reply::Int(1)]));
    // ALL (the default mode) delays reads too, and a second pause keeps the later end.
    admin.cmd(&["CLIENT", "PAUSE", "5000"]).await;
    assert_eq!(
        server.shared.pause.end_at(server.now()),
        Some(server.now().saturating_add(Nanos::from_millis(5000)))
    );
    delayed(&mut c, &["GET", "n"]).await;
    delayed(&mut admin, &["CLIENT", "PAUSE", "1000", "WRITE"]).await;
    // Refused requests are answered at once.
    let mut e = server.raw().await;
    assert!(matches!(e.cmd(&["GET"]).await, Reply::Error(_)));
    assert!(matches!(e.cmd(&["NOPE"]).await, Reply::Error(_)));
    server.clock.advance(Duration::from_millis(5000));
    assert_eq!(c.read_reply().await, Reply::bulk("1"));
    assert_eq!(admin.read_reply().await, Reply::Simple("OK".into()));
    // The second (WRITE, 1 s) pause started after the first ended.
    delayed(&mut c, &["INCR", "n"]).await;
    server.clock.advance(Duration::from_millis(1000));
    assert_eq!(c.read_reply().await, Reply::Int(2));
}

#[tokio::test]
async fn a_monitor_is_never_paused() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    let mut admin = server.raw().await;
    admin.cmd(&["CLIENT", "PAUSE", "60000", "ALL"]).await;
    m.send(&resp(&["PING"])).await;
    // As in Redis, the monitor's own command is fed after its reply.
    let got = m.read_replies(2).await;
    assert_eq!(got[0], Reply::Simple("PONG".into()));
    assert!(
        matches!(&got[1], Reply::Simple(l) if l.ends_with(r#""PING""#)),
        "{got:?}"
    );
    server.shared.pause.unpause();
}

#[tokio::test]
async fn the_latency_monitor_samples_slow_commands_over_its_threshold() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "latency-monitor-threshold"]).await,
        Reply::Array(vec![
            Reply::bulk("latency-monitor-threshold"),
            Reply::bulk("0")
        ])
    );
    // Off by default: nothing is sampled, and DOCTOR says so.
    let spin = "local i = 0 while i < 3000000 do i = i + 1 end return i";
    c.cmd(&["EVAL", spin, "0"]).await;
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]).await, Reply::Array(vec![]));
    assert!(c
        .cmd(&["LATENCY", "DOCTOR"])
        .await
        .text()
        .contains("disabled"));
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "-1"]).await,
        Reply::Error(
            "ERR CONFIG SET failed (possibly related to argument 'latency-monitor-threshold') - argument must be between 0 and 9223372036854775807 inclusive".into()
        )
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "1"])
            .await,
        Reply::Simple("OK".into())
    );
    // The spinning script takes well over 1 ms. (Other events may be sampled too on a loaded
    // machine — a slow expiry sweep, a slow PING — so only `command` is checked; every sample
    // of this test falls in the same second of the manual clock, so it has one sample.)
    c.cmd(&["EVAL", spin, "0"]).await;
    let t = server.now().as_secs() as i64;
    let Reply::Array(latest) = c.cmd(&["LATENCY", "LATEST"]).await else {
        panic!("array")
    };
    let command = latest
        .iter()
        .find_map(|e| match e {
            Reply::Array(e) if e[0] == Reply::bulk("command") => Some(e.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no command event: {latest:?}"));
    assert_eq!(command[1], Reply::Int(t));
    let (Reply::Int(last), Reply::Int(max)) = (&command[2], &command[3]) else {
        panic!("{command:?}")
    };
    assert!(*last >= 1 && max >= last, "{command:?}");
    let Reply::Array(history) = c.cmd(&["LATENCY", "HISTORY", "command"]).await else {
        panic!("array")
    };
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(
        matches!(&history[0], Reply::Array(p) if p[0] == Reply::Int(t)),
        "{history:?}"
    );
    let graph = c.cmd(&["LATENCY", "GRAPH", "command"]).await.text();
    assert!(graph.starts_with("command - high "), "{graph}");
    let doctor = c.cmd(&["LATENCY", "DOCTOR"]).await.text();
    assert!(doctor.contains(". command: 1 latency spikes"), "{doctor}");
    assert_eq!(
        c.cmd(&["LATENCY", "GRAPH", "aof-write"]).await,
        Reply::Error("ERR No samples available for event 'aof-write'".into())
    );
    // Sampling off first, so that no slow command re-creates the event after the reset.
    c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "0"])
        .await;
    assert_eq!(c.cmd(&["LATENCY", "RESET", "command"]).await, Reply::Int(1));
    assert_eq!(
        c.cmd(&["LATENCY", "HISTORY", "command"]).await,
        Reply::Array(vec![])
    );
    c.cmd(&["LATENCY", "RESET"]).await;
}

#[tokio::test]
async fn memory_usage_estimates_a_key_in_the_store() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "missing"]).await, Reply::Null);
    c.cmd(&["CL.THROTTLE", "user:1", "10", "5", "60"]).await;
    c.cmd(&["SET", "big", &"x".repeat(4096)]).await;
    let Reply::Int(small) = c.cmd(&["MEMORY", "USAGE", "user:1"]).await else {
        panic!("integer")
    };
    let Reply::Int(big) = c.cmd(&["MEMORY", "USAGE", "big", "SAMPLES", "5"]).await else {
        panic!("integer")
    };
    // A GCRA bucket under a short key: its 48-byte slot and a few index bytes.
    assert!((48..100).contains(&small), "{small}");
    assert!((48 + 4096..48 + 4096 + 100).contains(&big), "{big}");
    assert_eq!(
        c.cmd(&["MEMORY", "USAGE", "big", "SAMPLES", "x"]).await,
        Reply::Error("ERR value is not an integer or out of range".into())
    );
    // MEMORY STATS is a map (RESP3; a flat array in RESP2).
    c.cmd(&["HELLO", "3"]).await;
    let stats = c.cmd(&["MEMORY", "STATS"]).await;
    assert_eq!(stats.get("keys.count"), Some(&Reply::Int(2)));
    assert!(
        matches!(stats.get("db.0"), Some(Reply::Map(_))),
        "{stats:?}"
    );
    assert_eq!(
        c.cmd(&["MEMORY", "PURGE"]).await,
        Reply::Simple("OK".into())
    );
}

/// `aof_fsyncs` and `aof_fsync_policy` from `INFO persistence`.
async fn fsync_state(c: &mut Raw) -> (u64, String) {
    let info = c.cmd(&["INFO", "persistence"]).await.text();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .trim()
            .to_owned()
    };
    (
        field("aof_fsyncs:").parse().expect("a count"),
        field("aof_fsync_policy:"),
    )
}

#[tokio::test]
async fn config_set_appendfsync_switches_the_writer_live() {
    let dir = common::temp_dir();
    let config = limitkv::config::Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: limitkv::persist::FsyncPolicy::No,
        ..Default::default()
    };
    let server = TestServer::with_config(config).await;
    // Connected under `no`: its replies must still wait for durability once `always` is on.
    let mut c = server.raw().await;
    for i in 0..3 {
        c.cmd(&["SET", "k", &i.to_string()]).await;
    }
    let (before, policy) = fsync_state(&mut c).await;
    assert_eq!(policy, "no");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "appendfsync", "always"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "appendfsync"]).await,
        Reply::Array(vec![Reply::bulk("appendfsync"), Reply::bulk("always")])
    );
    let mut last = before;
    for i in 0..5 {
        c.cmd(&["CL.THROTTLE", "user:1", "10", "5", "60"]).await;
        c.cmd(&["SET", "k", &i.to_string()]).await;
        // Each reply came after its record's fsync.
        let (now, policy) = fsync_state(&mut c).await;
        assert_eq!(policy, "always");
        assert!(now > last, "an fsync before reply {i}: {last} -> {now}");
        last = now;
    }
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "appendfsync", "no"]).await,
        Reply::Simple("OK".into())
    );
    let (at_switch, _) = fsync_state(&mut c).await;
    for i in 0..5 {
        c.cmd(&["SET", "k", &i.to_string()]).await;
    }
    let (after, policy) = fsync_state(&mut c).await;
    assert_eq!(policy, "no");
    assert_eq!(after, at_switch, "no fsyncs under `no`");
    assert!(matches!(
        c.cmd(&["CONFIG", "SET", "appendfsync", "sometimes"]).await,
        Reply::Error(e) if e.starts_with("ERR CONFIG SET failed (possibly related to argument 'appendfsync')")
    ));
    assert_eq!(c.cmd(&["GET", "k"]).await, Reply::bulk("4"));
}
