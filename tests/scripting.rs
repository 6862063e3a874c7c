//! Scripting over TCP: exact RESP2 and RESP3 replies of scripts and errors, scripts and
//! libraries surviving a restart (and an AOF rewrite), atomicity under concurrent clients,
//! and busy scripts: other clients wait, then get BUSY, SCRIPT KILL stops a script that has
//! not written, UNKILLABLE otherwise.

mod common;

use std::time::Duration;

use common::{eventually, Reply, TestServer, WAIT};
use limitkv::config::Config;
use limitkv::persist::{FsyncPolicy, AOF_FILE};

fn sha1(body: &str) -> String {
    let digest = sha1_smol::Sha1::from(body.as_bytes()).digest().bytes();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn script_replies_are_byte_exact_in_resp2_and_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["EVAL", "return {1, 'a', {2}, nil, 3}", "0"],
            "*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n",
        ),
        (&["EVAL", "return false", "0"], "$-1\r\n"),
        (&["EVAL", "return true", "0"], ":1\r\n"),
        (&["EVAL", "return {ok='OK'}", "0"], "+OK\r\n"),
        (
            &["EVAL", "return {map={a=1}}", "0"],
            "*2\r\n$1\r\na\r\n:1\r\n",
        ),
        (&["EVAL", "return {double=1.5}", "0"], "$3\r\n1.5\r\n"),
        // A shape field wins over the array part; other fields and holes end the array.
        (&["EVAL", "return {1, 2, err='x'}", "0"], "-x\r\n"),
        (&["EVAL", "return {1, ok='fine'}", "0"], "+fine\r\n"),
        (
            &["EVAL", "return {1, 2, other='x'}", "0"],
            "*2\r\n:1\r\n:2\r\n",
        ),
        (
            &["EVAL", "local t = {1, 2, 3} t[2] = nil return t", "0"],
            "*1\r\n:1\r\n",
        ),
        (
            &["EVAL", "return {{ok='a'}, {err='b'}, {}}", "0"],
            "*3\r\n+a\r\n-b\r\n*0\r\n",
        ),
        (&["EVAL", "return {}", "0"], "*0\r\n"),
        (
            &[
                "EVAL",
                "return redis.call('incrby', KEYS[1], 2^53 - 1)",
                "1",
                "n",
            ],
            ":9007199254740991\r\n",
        ),
        (
            &["EVAL", "return redis.call('set', KEYS[1], -0.0)", "1", "z"],
            "+OK\r\n",
        ),
        (&["GET", "z"], "$2\r\n-0\r\n"),
        (&["EVAL", "redis.setresp(3) return false", "0"], ":0\r\n"),
        (
            &["EVAL", "return 1", "2", "a"],
            "-ERR Number of keys can't be greater than number of args\r\n",
        ),
        (
            &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
            "-NOSCRIPT No matching script. Please use EVAL.\r\n",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(
            c.exchange_text(&common::resp(args)).await,
            *want,
            "RESP2 {args:?}"
        );
    }
    let body = "error('boom')";
    assert_eq!(
        c.exchange_text(&common::resp(&["EVAL", body, "0"])).await,
        format!(
            "-ERR user_script:1: boom script: {}, on @user_script:1.\r\n",
            sha1(body)
        )
    );
    c.cmd(&["HELLO", "3"]).await;
    let resp3: &[(&[&str], &str)] = &[
        (&["EVAL", "return false", "0"], "_\r\n"),
        (&["EVAL", "redis.setresp(3) return false", "0"], "#f\r\n"),
        (
            &["EVAL", "return {map={a=1}}", "0"],
            "%1\r\n$1\r\na\r\n:1\r\n",
        ),
        (&["EVAL", "return {set={x=true}}", "0"], "~1\r\n$1\r\nx\r\n"),
        (&["EVAL", "return {double=1.5}", "0"], ",1.5\r\n"),
        (&["EVAL", "return {big_number='123'}", "0"], "(123\r\n"),
        (
            &[
                "EVAL",
                "return {verbatim_string={format='txt', string='abc'}}",
                "0",
            ],
            "=7\r\ntxt:abc\r\n",
        ),
        (
            &[
                "EVAL",
                "redis.setresp(3) return redis.call('hgetall', 'nokey')",
                "0",
            ],
            "%0\r\n",
        ),
    ];
    for (args, want) in resp3 {
        assert_eq!(
            c.exchange_text(&common::resp(args)).await,
            *want,
            "RESP3 {args:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn scripts_and_functions_survive_restarts_and_rewrites() {
    let dir = common::temp_dir();
    let config = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let loaded = "return 'loaded'";
    let evaled = "return redis.call('incr', KEYS[1])";
    let flushed = "return 'flushed'";
    let lib = "#!lua name=lib\nredis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)";
    let server = TestServer::with_config(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["SCRIPT", "LOAD", flushed]).await;
    c.cmd(&["SCRIPT", "FLUSH"]).await;
    assert_eq!(
        c.cmd(&["SCRIPT", "LOAD", loaded]).await,
        Reply::bulk(&sha1(loaded))
    );
    assert_eq!(c.cmd(&["EVAL", evaled, "1", "n"]).await, Reply::Int(1));
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]).await, Reply::bulk("lib"));
    c.cmd(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=gone\nredis.register_function('bye', function() return 1 end)",
    ])
    .await;
    c.cmd(&["FUNCTION", "DELETE", "gone"]).await;
    server.stop().await.unwrap();

    for round in ["restart", "rewrite"] {
        let server = TestServer::with_config(config()).await;
        let mut c = server.raw().await;
        assert_eq!(
            c.cmd(&["EVALSHA", &sha1(loaded), "0"]).await,
            Reply::bulk("loaded"),
            "{round}"
        );
        assert_eq!(
            c.cmd(&["EVALSHA", &sha1(evaled), "1", "n"]).await,
            Reply::Int(2),
            "{round}: the script's effect and the script"
        );
        c.cmd(&["INCRBY", "n", "-1"]).await;
        assert_eq!(
            c.cmd(&["EVALSHA", &sha1(flushed), "0"]).await,
            Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into()),
            "{round}"
        );
        assert_eq!(
            c.cmd(&["FCALL", "hello", "0", "you"]).await,
            Reply::bulk("hi you")
        );
        assert_eq!(
            c.cmd(&["FCALL", "bye", "0"]).await,
            Reply::Error("ERR Function not found".into())
        );
        if round == "restart" {
            c.cmd(&["BGREWRITEAOF"]).await;
            eventually(WAIT, "the rewrite", || async {
                let info = server
                    .raw()
                    .await
                    .cmd(&["INFO", "persistence"])
                    .await
                    .text();
                info.contains("aof_rewrites:1").then_some(())
            })
            .await;
            // The compacted file holds the scripts and the library.
            let file = std::fs::read(dir.path().join(AOF_FILE)).unwrap();
            let contains = |s: &str| file.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(contains(loaded) && contains(evaled) && contains(lib));
            assert!(!contains(flushed) && !contains("gone"));
        }
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_scripts_never_lose_an_update() {
    let server = TestServer::start().await;
    // A read-modify-write that would lose updates if two runs interleaved.
    let script = "local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], v + 1) return v + 1";
    let mut total = 0;
    for _ in 0..5 {
        let replies = common::race(&server, false, 8, &["EVAL", script, "1", "counter"]).await;
        total += replies.len();
    }
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["GET", "counter"]).await,
        Reply::bulk(&total.to_string())
    );
    server.stop().await.unwrap();
}

/// KEYS and ARGV reach the script as call arguments up to 256 items and as tables beyond:
/// both ways give the same tables, non-UTF-8 bytes included.
#[tokio::test]
async fn keys_and_argv_are_exact_below_and_above_the_vararg_limit() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let script = "return {#KEYS, #ARGV, KEYS[1], KEYS[#KEYS], ARGV[1], ARGV[#ARGV], KEYS[#KEYS + 1], ARGV[#ARGV + 1]}";
    for (nkeys, nargs) in [
        (0, 0),
        (1, 0),
        (0, 1),
        (3, 5),
        (100, 156),
        (100, 157),
        (300, 1000),
    ] {
        let keys: Vec<String> = (1..=nkeys).map(|i| format!("k{i}")).collect();
        let args: Vec<String> = (1..=nargs).map(|i| format!("a{i}")).collect();
        let mut words: Vec<&[u8]> = vec![b"EVAL", script.as_bytes()];
        let n = nkeys.to_string();
        words.push(n.as_bytes());
        words.extend(keys.iter().map(|k| k.as_bytes()));
        words.extend(args.iter().map(|a| a.as_bytes()));
        c.send(&common::resp_cmd(&words)).await;
        let mut want = vec![Reply::Int(nkeys as i64), Reply::Int(nargs as i64)];
        if nkeys > 0 {
            want.push(Reply::bulk("k1"));
            want.push(Reply::bulk(&format!("k{nkeys}")));
        }
        if nargs > 0 {
            want.push(Reply::bulk("a1"));
            want.push(Reply::bulk(&format!("a{nargs}")));
        }
        // The reply array stops at the first nil: with no keys, KEYS[1] ends it.
        if nkeys == 0 {
            want.truncate(2);
        }
        assert_eq!(
            c.read_reply().await,
            Reply::Array(want),
            "{nkeys} keys, {nargs} args"
        );
    }
    let raw: &[&[u8]] = &[
        b"EVAL",
        b"return {KEYS[1], ARGV[1]}",
        b"1",
        b"\xff\x00k",
        b"\xfe",
    ];
    c.send(&common::resp_cmd(raw)).await;
    assert_eq!(
        c.read_reply().await,
        Reply::Array(vec![
            Reply::Bulk(b"\xff\x00k".to_vec()),
            Reply::Bulk(b"\xfe".to_vec())
        ])
    );
    server.stop().await.unwrap();
}

/// Each connection holds the script token for the rest of a pipelined batch once a script
/// needs it: batches from many connections, scripts mixed with plain commands, must still
/// answer every request in order and lose no update.
#[tokio::test]
async fn pipelined_scripts_from_many_connections_answer_in_order() {
    let server = TestServer::start().await;
    let script = "local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], v + 1) return v + 1";
    let mut setup = server.raw().await;
    let sha = match setup.cmd(&["SCRIPT", "LOAD", script]).await {
        Reply::Bulk(sha) => String::from_utf8(sha).unwrap(),
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    const CONNS: usize = 8;
    const ROUNDS: usize = 20;
    let mut tasks = Vec::new();
    for n in 0..CONNS {
        let mut c = server.raw().await;
        let sha = sha.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("own:{n}");
            for round in 1..=ROUNDS {
                let mut batch = Vec::new();
                batch.extend(common::resp(&["EVALSHA", &sha, "1", "shared"]));
                batch.extend(common::resp(&["INCR", &own]));
                batch.extend(common::resp(&["EVAL", "return ARGV[1]", "0", &own]));
                batch.extend(common::resp(&["EVALSHA", &sha, "1", "shared"]));
                batch.extend(common::resp(&["GET", &own]));
                c.send(&batch).await;
                let replies = c.read_replies(5).await;
                assert!(matches!(replies[0], Reply::Int(_)), "{replies:?}");
                assert_eq!(replies[1], Reply::Int(round as i64));
                assert_eq!(replies[2], Reply::bulk(&own));
                assert!(matches!(replies[3], Reply::Int(_)), "{replies:?}");
                assert_eq!(replies[4], Reply::bulk(&round.to_string()));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        setup.cmd(&["GET", "shared"]).await,
        Reply::bulk(&(CONNS * ROUNDS * 2).to_string())
    );
    server.stop().await.unwrap();
}

async fn busy_server() -> TestServer {
    TestServer::with_config(Config {
        busy_reply_threshold: 50,
        ..Config::default()
    })
    .await
}

/// Sends `args` until the reply is BUSY (the script passed the threshold); returns it.
async fn until_busy(c: &mut common::Raw, args: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Reply::Error(e) = c.cmd(args).await {
            if e.starts_with("BUSY") {
                return e;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no BUSY reply");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

#[tokio::test]
async fn a_busy_script_answers_busy_to_others_and_script_kill_stops_it() {
    let server = busy_server().await;
    let mut runner = server.raw().await;
    let body = "local i = 0 while true do i = i + 1 end";
    runner.send(&common::resp(&["EVAL", body, "0"])).await;
    let mut other = server.raw().await;
    let busy = until_busy(&mut other, &["GET", "k"]).await;
    assert_eq!(busy, BUSY_EVAL);
    assert_eq!(
        other.cmd(&["FUNCTION", "KILL"]).await,
        Reply::Error(BUSY_EVAL.into()),
        "FUNCTION KILL does not stop an EVAL script"
    );
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        runner.read_reply().await,
        Reply::Error(format!(
            "ERR Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.",
            sha1(body)
        ))
    );
    assert_eq!(other.cmd(&["GET", "k"]).await, Reply::Null);
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        Reply::Error("NOTBUSY No scripts in execution right now.".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_script_that_wrote_is_unkillable_and_shutdown_still_stops_it() {
    let server = busy_server().await;
    let mut runner = server.raw().await;
    runner
        .send(&common::resp(&[
            "EVAL",
            "redis.call('set', KEYS[1], 'x') while true do end",
            "1",
            "k",
        ]))
        .await;
    let mut other = server.raw().await;
    until_busy(&mut other, &["PING"]).await;
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        Reply::Error("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into())
    );
    other.send(&common::resp(&["SHUTDOWN", "NOSAVE"])).await;
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("the server stops despite the running script")
        .unwrap();
}

#[tokio::test]
async fn a_script_shorter_than_the_threshold_makes_others_wait_not_fail() {
    let server = TestServer::start().await;
    let mut runner = server.raw().await;
    // Long enough to be running when the other request arrives, far below 5 s.
    runner
        .send(&common::resp(&[
            "EVAL",
            "for i = 1, 3000000 do end return redis.call('set', KEYS[1], 'done')",
            "1",
            "k",
        ]))
        .await;
    let mut other = server.raw().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let got = other.cmd(&["GET", "k"]).await;
    assert!(
        got == Reply::Null || got == Reply::bulk("done"),
        "waits or runs first, never BUSY: {got:?}"
    );
    assert_eq!(runner.read_reply().await, Reply::Simple("OK".into()));
    assert_eq!(other.cmd(&["GET", "k"]).await, Reply::bulk("done"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_busy_function_shows_in_function_stats_and_function_kill_stops_it() {
    let server = busy_server().await;
    let mut runner = server.raw().await;
    runner
        .cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=spin\nredis.register_function('spin', function(keys, args)\n  while true do end\nend)",
        ])
        .await;
    runner
        .send(&common::resp(&["FCALL", "spin", "0", "x"]))
        .await;
    let mut other = server.raw().await;
    let busy = until_busy(&mut other, &["GET", "k"]).await;
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    );
    let stats = other.cmd(&["FUNCTION", "STATS"]).await;
    let running = stats.get("running_script").expect("running_script");
    assert_eq!(running.get("name"), Some(&Reply::bulk("spin")));
    assert_eq!(
        running.get("command"),
        Some(&Reply::Array(vec![
            Reply::bulk("FCALL"),
            Reply::bulk("spin"),
            Reply::bulk("0"),
            Reply::bulk("x")
        ]))
    );
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        Reply::Error(
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
                .into()
        )
    );
    assert_eq!(
        other.cmd(&["FUNCTION", "KILL"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        runner.read_reply().await,
        Reply::Error(
            "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:3."
                .into()
        )
    );
    let stats = other.cmd(&["FUNCTION", "STATS"]).await;
    assert_eq!(stats.get("running_script"), Some(&Reply::Null));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn loops_in_coroutines_or_under_pcall_are_still_busy_and_killable() {
    let server = busy_server().await;
    for body in [
        "local co = coroutine.wrap(function() while true do end end) co()",
        "while true do pcall(function() while true do end end) end",
    ] {
        let mut runner = server.raw().await;
        runner.send(&common::resp(&["EVAL", body, "0"])).await;
        let mut other = server.raw().await;
        assert_eq!(
            until_busy(&mut other, &["GET", "k"]).await,
            BUSY_EVAL,
            "{body}"
        );
        assert_eq!(
            other.cmd(&["SCRIPT", "KILL"]).await,
            Reply::Simple("OK".into())
        );
        assert_eq!(
            runner.read_reply().await,
            Reply::Error(format!(
                "ERR Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.",
                sha1(body)
            )),
            "{body}"
        );
        assert_eq!(other.cmd(&["EVAL", "return 1", "0"]).await, Reply::Int(1));
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_recognised_script_that_falls_back_to_lua_answers_instead_of_hanging() {
    // On a key of another kind the native fast path leaves the decision to the Lua body,
    // which must run off the worker thread (it once deadlocked on the command gate there).
    let server = TestServer::start().await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/scripts/rate-limiter-flexible-incr-ttl.lua"
    ))
    .unwrap();
    let mut c = server.raw().await;
    let sha = c.cmd(&["SCRIPT", "LOAD", &body]).await.text();
    c.cmd(&["HSET", "h", "f", "v"]).await;
    for _ in 0..3 {
        let got = c
            .cmd(&["EVALSHA", &sha, "1", "h", "1", "60", "10", "60"])
            .await;
        assert!(
            matches!(&got, Reply::Error(e) if e.starts_with("WRONGTYPE")),
            "{got:?}"
        );
        // The native path still answers on a key it handles.
        assert_eq!(
            c.cmd(&["EVALSHA", &sha, "1", "n", "1", "60", "10", "60"])
                .await,
            c.cmd(&["EVALSHA", &sha, "1", "n", "0", "60", "10", "60"])
                .await
        );
    }
    server.stop().await.unwrap();
}
