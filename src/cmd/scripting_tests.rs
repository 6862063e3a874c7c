//! Tests of the scripting commands: Lua <-> reply conversion, errors, the sandbox, the
//! `redis` API, `cjson` and `bit`, shebang flags, the script cache, and the AOF journal, restore
//! and snapshot of scripts and libraries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cmd::testing::*;
use crate::persist::{record, FsyncPolicy, MemSink, Record, ScriptsFlushTarget, Writer};
use crate::protocol::Frame;
use crate::script::engine::sha1_hex;

fn eval(h: &mut Harness, script: &str, args: &[&str]) -> Frame {
    let mut words = vec!["EVAL", script];
    words.extend_from_slice(args);
    h.run(&words)
}

fn arr(items: Vec<Frame>) -> Frame {
    Frame::Array(items)
}

fn sha(body: &str) -> String {
    String::from_utf8(sha1_hex(body.as_bytes()).to_vec()).expect("hex is ASCII")
}

/// "-<msg> script: <sha>, on @user_script:<line>."
fn script_err(msg: &str, body: &str, line: u32) -> Frame {
    err(&format!(
        "{msg} script: {}, on @user_script:{line}.",
        sha(body)
    ))
}

#[test]
fn lua_values_convert_to_replies_like_redis() {
    let mut h = Harness::new();
    let cases: Vec<(&str, Frame)> = vec![
        ("return 1", int(1)),
        ("return 3.99", int(3)),
        ("return -3.99", int(-3)),
        ("return 1/0", int(i64::MIN)),
        ("return 0/0", int(i64::MIN)),
        ("return 'x'", bulk("x")),
        ("return true", int(1)),
        ("return false", Frame::Null),
        ("return nil", Frame::Null),
        (
            "return {1, 'a', {2}}",
            arr(vec![int(1), bulk("a"), arr(vec![int(2)])]),
        ),
        ("return {1, 2, nil, 4}", arr(vec![int(1), int(2)])),
        ("return {ok = 'fine'}", simple("fine")),
        ("return {ok = 'a\\r\\nb'}", simple("a  b")),
        ("return {err = 'My Error'}", err("My Error")),
        ("return {err = '-xx yy'}", err("-xx yy")),
        ("return {err = 1}", arr(vec![])),
        ("return {ok = 'a', 1}", simple("a")),
        ("return redis.error_reply('xx')", err("ERR xx")),
        ("return redis.error_reply('-CODE msg')", err("CODE msg")),
        ("return redis.status_reply('PONG')", simple("PONG")),
        ("return {double = 3.5}", Frame::Double(3.5)),
        (
            "return {big_number = '123'}",
            Frame::BigNumber(Bytes::from_static(b"123")),
        ),
        (
            "return {map = {a = 1}}",
            Frame::Map(vec![(bulk("a"), int(1))]),
        ),
        ("return {set = {a = true}}", Frame::Set(vec![bulk("a")])),
        ("redis.setresp(3) return true", Frame::Boolean(true)),
        ("redis.setresp(3) return false", Frame::Boolean(false)),
    ];
    for (script, want) in cases {
        assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
    }
}

#[test]
fn replies_convert_to_lua_values_like_redis() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "v"]);
    h.run(&["HSET", "h", "a", "1"]);
    h.run(&["SADD", "set", "m"]);
    h.run(&["ZADD", "z", "1.5", "m"]);
    let cases: Vec<(&str, Frame)> = vec![
        // RESP2: integer -> number, bulk -> string, nil -> false, status -> {ok}, error -> {err}.
        ("return type(redis.call('incr', 'n'))", bulk("number")),
        ("return redis.call('get', 's')", bulk("v")),
        ("return tostring(redis.call('get', 'nokey'))", bulk("false")),
        ("return redis.call('set', 'x', 'y').ok", bulk("OK")),
        ("return redis.pcall('get', 'h').err", bulk(WRONGTYPE)),
        (
            "return redis.call('hgetall', 'h')",
            arr(vec![bulk("a"), bulk("1")]),
        ),
        ("return redis.call('zscore', 'z', 'm')", bulk("1.5")),
        // RESP3: map, set, double, null.
        (
            "redis.setresp(3) local r = redis.call('hgetall', 'h') return r.map.a",
            bulk("1"),
        ),
        (
            "redis.setresp(3) return tostring(redis.call('smembers', 'set').set.m)",
            bulk("true"),
        ),
        (
            "redis.setresp(3) return tostring(redis.call('zscore', 'z', 'm').double)",
            bulk("1.5"),
        ),
        (
            "redis.setresp(3) return type(redis.call('get', 'nokey'))",
            bulk("nil"),
        ),
        // A limiter reply (held without a frame per field) converts as the map it is: a
        // flat field/value array in RESP2, a {map=...} table in RESP3.
        (
            "return redis.call('cost.incrby', 'budget', '0.25', 'CAP', '1', 'WINDOW', '1m')",
            arr(vec![
                bulk("allowed"),
                Frame::Integer(1),
                bulk("limit"),
                bulk("1"),
                bulk("remaining"),
                bulk("0.75"),
                bulk("retry_after_ms"),
                Frame::Integer(-1),
                bulk("reset_after_ms"),
                Frame::Integer(120_000),
                bulk("spent"),
                bulk("0.25"),
                bulk("recorded"),
                bulk("0.25"),
            ]),
        ),
        (
            "redis.setresp(3) local r = redis.call('breaker.allow', 'b') \
             return {tostring(r.map.allowed), r.map.state, r.map.failures}",
            arr(vec![bulk("true"), bulk("closed"), Frame::Integer(0)]),
        ),
        // Arguments: numbers are formatted with %.17g.
        (
            "redis.call('set', 'f', 0.1) return redis.call('get', 'f')",
            bulk("0.10000000000000001"),
        ),
        (
            "redis.call('set', 'f', 1e20) return redis.call('get', 'f')",
            bulk("1e+20"),
        ),
        (
            "redis.call('set', 'f', 42) return redis.call('get', 'f')",
            bulk("42"),
        ),
    ];
    for (script, want) in cases {
        assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
    }
}

#[test]
fn keys_and_argv_are_split_by_numkeys() {
    let mut h = Harness::new();
    assert_eq!(
        eval(
            &mut h,
            "return {KEYS[1], KEYS[2], ARGV[1], #ARGV}",
            &["2", "a", "b", "c"]
        ),
        arr(vec![bulk("a"), bulk("b"), bulk("c"), int(1)])
    );
    assert_eq!(
        eval(&mut h, "return 1", &["2", "a"]),
        err("ERR Number of keys can't be greater than number of args")
    );
    assert_eq!(
        eval(&mut h, "return 1", &["-1"]),
        err("ERR Number of keys can't be negative")
    );
    assert_eq!(
        eval(&mut h, "return 1", &["x"]),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn errors_carry_the_script_and_line_like_redis() {
    let mut h = Harness::new();
    let cases: Vec<(&str, &str, u32)> = vec![
        ("error('boom')", "ERR user_script:1: boom", 1),
        ("error({err='My Error'})", "My Error", 1),
        ("error()", "ERR nil", 1),
        ("\nerror(123)", "ERR user_script:2: 123", 2),
        (
            "return redis.call('nosuch')",
            "ERR Unknown Redis command called from script",
            1,
        ),
        (
            "return redis.call('get')",
            "ERR Wrong number of args calling Redis command from script",
            1,
        ),
        (
            "return redis.call('set', 'x', {})",
            "ERR Lua redis lib command arguments must be strings or integers",
            1,
        ),
        (
            "return redis.call()",
            "ERR Please specify at least one argument for this redis lib call",
            1,
        ),
        (
            "return redis.call('multi')",
            "ERR This Redis command is not allowed from script",
            1,
        ),
        (
            "return redis.call('eval', 'return 1', '0')",
            "ERR This Redis command is not allowed from script",
            1,
        ),
        (
            "return redis.setresp(4)",
            "ERR RESP version must be 2 or 3.",
            1,
        ),
        ("return redis.sha1hex()", "ERR wrong number of arguments", 1),
        (
            "return cjson.encode(0/0)",
            "ERR user_script:1: Cannot serialise number: must not be NaN or Inf",
            1,
        ),
        (
            "return bit.band()",
            "ERR user_script:1: bad argument #1 to 'band' (number expected, got no value)",
            1,
        ),
    ];
    for (script, msg, line) in cases {
        assert_eq!(
            eval(&mut h, script, &["0"]),
            script_err(msg, script, line),
            "{script}"
        );
    }
    h.run(&["HSET", "h", "a", "1"]);
    let script = "return redis.call('get', 'h')";
    assert_eq!(
        eval(&mut h, script, &["0"]),
        script_err(WRONGTYPE, script, 1)
    );
}

#[test]
fn pcall_returns_errors_instead_of_raising() {
    let mut h = Harness::new();
    assert_eq!(
        eval(&mut h, "return redis.pcall('get')", &["0"]),
        err("ERR Wrong number of args calling Redis command from script")
    );
    assert_eq!(
        eval(
            &mut h,
            "local r = redis.pcall('nosuch') return {r.err, tostring(r.ignore_error_stats_update)}",
            &["0"]
        ),
        arr(vec![
            bulk("ERR Unknown Redis command called from script"),
            bulk("true")
        ])
    );
    // Lua's pcall unwraps error tables into their message (Redis 7).
    assert_eq!(
        eval(
            &mut h,
            "local ok, e = pcall(function() redis.call('nosuch') end) return {tostring(ok), e}",
            &["0"]
        ),
        arr(vec![
            bulk("false"),
            bulk("ERR Unknown Redis command called from script")
        ])
    );
    assert_eq!(
        eval(
            &mut h,
            "local ok, e = pcall(error, {err='X y'}) return e",
            &["0"]
        ),
        bulk("X y")
    );
    assert_eq!(
        eval(
            &mut h,
            "local ok, e = pcall(cjson.decode, '[1,') return e",
            &["0"]
        ),
        bulk("Expected value but found T_END at character 4")
    );
}

#[test]
fn the_sandbox_has_no_os_io_or_writable_globals() {
    let mut h = Harness::new();
    for name in [
        "os", "io", "debug", "package", "require", "dofile", "loadfile", "print", "setfenv",
        "getfenv", "newproxy", "module",
    ] {
        let script = format!("return type({name})");
        assert_eq!(
            eval(&mut h, &script, &["0"]),
            script_err(
                &format!("ERR user_script:1: Script attempted to access nonexistent global variable '{name}'"),
                &script,
                1
            ),
            "{name}"
        );
    }
    for (script, msg) in [
        (
            "a = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "redis.call = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "string.x = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "_G.x = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "rawset(_G, 'a', 1)",
            "ERR Attempt to modify a readonly table",
        ),
        (
            "setmetatable(_G, nil)",
            "ERR Attempt to modify a readonly table",
        ),
        (
            "getmetatable('').__index.upper = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
    ] {
        assert_eq!(
            eval(&mut h, script, &["0"]),
            script_err(msg, script, 1),
            "{script}"
        );
    }
    // Chunks from loadstring run in the same read-only environment; bytecode is refused.
    let script = "local f = loadstring('x = 1') f()";
    assert_eq!(
        eval(&mut h, script, &["0"]),
        err(&format!(
            "ERR [string \"x = 1\"]:1: Attempt to modify a readonly table script: {}, on x = 1:1.",
            sha(script)
        ))
    );
    assert_eq!(
        eval(
            &mut h,
            "return loadstring(string.dump(function() return 1 end))",
            &["0"]
        ),
        Frame::Null
    );
    // Nothing a script does leaks into the next one.
    assert_eq!(
        eval(&mut h, "return type(rawget(_G, 'a'))", &["0"]),
        bulk("nil")
    );
    for (script, want) in [
        ("return type(string.rep)", bulk("function")),
        ("return ('ab'):upper()", bulk("AB")),
        ("return getmetatable('').__index == string", int(1)),
        ("return table.concat({1, 2}, ',')", bulk("1,2")),
        ("return math.floor(2.5)", int(2)),
        ("return _VERSION", bulk("Lua 5.1")),
        ("return type(coroutine.wrap)", bulk("function")),
    ] {
        assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
    }
}

#[test]
fn a_script_cannot_exhaust_memory() {
    let mut h = Harness::new();
    let body = "return #string.rep('x', 1100000000)";
    let reply = eval(&mut h, body, &["0"]);
    assert_eq!(
        reply,
        err(&format!(
            "ERR Error running script {}, not enough memory",
            sha(body)
        ))
    );
    assert_eq!(
        eval(&mut h, "return #string.rep('x', 1000)", &["0"]),
        int(1000)
    );
}

#[test]
fn redis_api_helpers_behave_like_redis() {
    let mut h = Harness::new();
    for (script, want) in [
        ("return server.call('ping')", simple("PONG")),
        (
            "return server.pcall('nosuch').err",
            bulk("ERR Unknown Redis command called from script"),
        ),
        (
            "return redis.sha1hex('')",
            bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ),
        ("return redis.replicate_commands()", int(1)),
        ("return redis.set_repl(redis.REPL_ALL)", Frame::Null),
        ("return redis.breakpoint()", Frame::Null),
        (
            "return redis.log(redis.LOG_WARNING, 'from', 'a script')",
            Frame::Null,
        ),
        (
            "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
            arr(vec![int(0), int(1), int(2), int(3)]),
        ),
        (
            "return redis.REDIS_VERSION",
            bulk(crate::version::REDIS_COMPAT_VERSION),
        ),
        (
            "return redis.error_reply(1)",
            err("ERR wrong number or type of arguments"),
        ),
        ("return type(redis.register_function)", bulk("nil")),
    ] {
        assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
    }
}

#[test]
fn cjson_round_trips_and_reports_like_lua_cjson() {
    let mut h = Harness::new();
    for (script, want) in [
        (
            "return cjson.encode({1, 2, 'a/b', true, false, cjson.null, 1.5, {}, {a = 1}})",
            bulk(r#"[1,2,"a\/b",true,false,null,1.5,{},{"a":1}]"#),
        ),
        (
            "return cjson.encode({[1] = 1, [3] = 3})",
            bulk("[1,null,3]"),
        ),
        ("return cjson.encode({1, x = 2})", bulk(r#"{"1":1,"x":2}"#)),
        (
            "return cjson.encode(123456789012345)",
            bulk("1.2345678901234e+14"),
        ),
        (
            "return cjson.encode(cjson.decode('{\"a\":[1,{}],\"b\":\"\\\\u00e9\"}'))",
            bulk("{\"a\":[1,{}],\"b\":\"\u{e9}\"}"),
        ),
        ("return cjson.decode('0x10')", int(16)),
        (
            "return tostring(cjson.decode('null') == cjson.null)",
            bulk("true"),
        ),
        (
            "local ok, e = pcall(cjson.decode, '{bad') return e",
            bulk("Expected object key string but found invalid token at character 2"),
        ),
        (
            "local ok, e = pcall(cjson.encode, {[1] = 1, [30] = 3}) return e",
            bulk("Cannot serialise table: excessively sparse array"),
        ),
    ] {
        assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
    }
}

#[test]
fn bit_operations_are_32_bit() {
    let mut h = Harness::new();
    assert_eq!(
        eval(
            &mut h,
            "return {bit.band(0xff, 0x0f), bit.lshift(1, 31), bit.tobit(2^32 + 5), bit.tohex(255, -4), bit.rshift(-1, 28), bit.bnot(0), bit.arshift(-256, 4), bit.rol(1, 33), bit.bswap(0x12345678), bit.bor(1, 2, 4), bit.bxor(3, 1)}",
            &["0"]
        ),
        arr(vec![
            int(15),
            int(-2147483648),
            int(5),
            bulk("00FF"),
            int(15),
            int(-1),
            int(-16),
            int(2),
            int(2018915346),
            int(7),
            int(2)
        ])
    );
    assert_eq!(
        eval(&mut h, "return bit.tohex(-1)", &["0"]),
        bulk("ffffffff")
    );
}

#[test]
fn shebang_flags_and_read_only_commands() {
    let mut h = Harness::new();
    let ro_write = "return redis.call('set', 'a', '1')";
    assert_eq!(
        h.run(&["EVAL_RO", ro_write, "0"]),
        script_err(
            "ERR Write commands are not allowed from read-only scripts.",
            ro_write,
            1
        )
    );
    assert_eq!(
        h.run(&["EVAL_RO", "return redis.call('get', 'a')", "0"]),
        Frame::Null
    );
    let no_writes = "#!lua flags=no-writes\nreturn redis.call('set', 'a', '1')";
    assert_eq!(
        eval(&mut h, no_writes, &["0"]),
        script_err(
            "ERR Write commands are not allowed from read-only scripts.",
            no_writes,
            2
        )
    );
    assert_eq!(
        h.run(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
        err("ERR Can not execute a script with write flag using *_ro command.")
    );
    assert_eq!(
        h.run(&["EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0"]),
        int(1)
    );
    for (body, want) in [
        (
            "#!lua flags=bad\nreturn 1",
            "ERR Unexpected flag in script shebang: bad",
        ),
        (
            "#!lua name=x\nreturn 1",
            "ERR Unknown lua shebang option: name=x",
        ),
        (
            "#!foo\nreturn 1",
            "ERR Unexpected engine in script shebang: #!foo",
        ),
        ("#!lua", "ERR Invalid script shebang"),
    ] {
        assert_eq!(eval(&mut h, body, &["0"]), err(want), "{body}");
    }
    assert_eq!(
        eval(&mut h, "#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1", &["0"]),
        int(1)
    );
    // Upstash's flag, on every @upstash/ratelimit script: accepted, and the script may
    // still write (it is not no-writes).
    assert_eq!(
        eval(
            &mut h,
            "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])",
            &["1", "upstash-flag"]
        ),
        int(1)
    );
}

#[test]
fn script_cache_commands() {
    let mut h = Harness::new();
    let body = "return 1";
    let sha1 = sha(body);
    assert_eq!(
        h.run(&["SCRIPT", "EXISTS", &sha1, "nope"]),
        arr(vec![int(0), int(0)])
    );
    assert_eq!(
        h.run(&["EVALSHA", &sha1, "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(
        h.run(&["EVALSHA", "abc", "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(h.run(&["SCRIPT", "LOAD", body]), bulk(&sha1));
    assert_eq!(
        h.run(&["SCRIPT", "EXISTS", &sha1, &sha1.to_uppercase()]),
        arr(vec![int(1), int(1)])
    );
    assert_eq!(h.run(&["EVALSHA", &sha1.to_uppercase(), "0"]), int(1));
    assert_eq!(h.run(&["EVALSHA_RO", &sha1, "0"]), int(1));
    // EVAL caches what it runs.
    h.run(&["EVAL", "return 2", "0"]);
    assert_eq!(h.run(&["EVALSHA", &sha("return 2"), "0"]), int(2));
    assert_eq!(
        h.run(&["SCRIPT", "LOAD", "return +"]),
        err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'")
    );
    assert_eq!(h.run(&["SCRIPT", "FLUSH", "ASYNC"]), Frame::OK);
    assert_eq!(h.run(&["SCRIPT", "EXISTS", &sha1]), arr(vec![int(0)]));
    assert_eq!(
        h.run(&["SCRIPT", "FLUSH", "x"]),
        err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    );
    assert_eq!(
        h.run(&["SCRIPT", "KILL"]),
        err("NOTBUSY No scripts in execution right now.")
    );
    assert_eq!(h.run(&["SCRIPT", "DEBUG", "NO"]), Frame::OK);
    let Frame::Array(help) = h.run(&["SCRIPT", "HELP"]) else {
        panic!("SCRIPT HELP answers an array")
    };
    assert_eq!(help.len(), 17);
    assert_eq!(
        h.run(&["SCRIPT", "nope"]),
        err("ERR unknown subcommand 'nope'. Try SCRIPT HELP.")
    );
}

const LIB: &str = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)\nredis.register_function{function_name='ro', callback=function(keys, args) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}, description='d'}";

fn with_aof() -> (Harness, MemSink) {
    let h = Harness::new();
    let sink = MemSink::new();
    let writer = Writer::start(Box::new(sink.clone()), FsyncPolicy::No, h.clock.clone())
        .expect("start the writer");
    assert!(h.shared.engine.aof.set(Arc::new(writer)).is_ok());
    (h, sink)
}

fn journaled(h: &Harness, sink: &MemSink) -> Vec<Record> {
    let w = h.shared.engine.aof.get().expect("AOF on");
    w.wait_blocking(w.stats().appended, Duration::from_secs(10))
        .expect("records written");
    let data = sink.data();
    let mut rest = &data[record::HEADER_LEN..];
    let mut out = Vec::new();
    while let Some((r, n)) = record::decode_frame(rest).expect("valid frames") {
        out.push(r);
        rest = &rest[n..];
    }
    out
}

#[test]
fn scripts_and_libraries_are_journaled_and_their_effects_too() {
    let (mut h, sink) = with_aof();
    h.run(&["SCRIPT", "LOAD", "return 1"]);
    h.run(&["SCRIPT", "LOAD", "return 1"]);
    eval(
        &mut h,
        "return redis.call('set', KEYS[1], 'v')",
        &["1", "k"],
    );
    h.run(&["FUNCTION", "LOAD", LIB]);
    h.run(&["FUNCTION", "DELETE", "mylib"]);
    h.run(&["SCRIPT", "FLUSH"]);
    h.run(&["FUNCTION", "FLUSH"]);
    let body = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let records = journaled(&h, &sink);
    assert_eq!(
        records,
        vec![
            Record::Script {
                body: body("return 1")
            },
            Record::Script {
                body: body("return redis.call('set', KEYS[1], 'v')")
            },
            Record::Put {
                db: 0,
                key: body("k"),
                value: crate::store::Value::str(body("v")),
                expires_at: None,
            },
            Record::FunctionLibrary { code: body(LIB) },
            Record::FunctionDelete {
                name: body("mylib")
            },
            Record::ScriptsFlush {
                target: ScriptsFlushTarget::Scripts
            },
            Record::ScriptsFlush {
                target: ScriptsFlushTarget::Functions
            },
        ]
    );
}

#[test]
fn restore_and_snapshot_rebuild_the_cache() {
    let mut h = Harness::new();
    let body = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    for r in [
        Record::Script {
            body: body("return 'a'"),
        },
        Record::Script {
            body: body("return 'b'"),
        },
        Record::ScriptsFlush {
            target: ScriptsFlushTarget::Scripts,
        },
        Record::Script {
            body: body("return 'c'"),
        },
        Record::FunctionLibrary { code: body(LIB) },
        Record::FunctionLibrary {
            code: body("#!lua name=gone\nredis.register_function('g', function() return 1 end)"),
        },
        Record::FunctionDelete { name: body("gone") },
    ] {
        super::restore(&h.shared, r);
    }
    assert_eq!(
        h.run(&["EVALSHA", &sha("return 'a'"), "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(h.run(&["EVALSHA", &sha("return 'c'"), "0"]), bulk("c"));
    assert_eq!(h.run(&["FCALL", "myfunc", "0", "x"]), bulk("x"));
    assert_eq!(h.run(&["FCALL", "g", "0"]), err("ERR Function not found"));
    assert_eq!(
        super::snapshot(&h.shared),
        vec![
            Record::Script {
                body: body("return 'c'")
            },
            Record::FunctionLibrary { code: body(LIB) },
        ]
    );
}
