//! The fast path's tests: each recognised script answered natively, and (in `equivalence`)
//! native and Lua runs compared call for call on one clock.

use super::*;
use crate::cmd::testing::*;
use crate::script::known::find;

fn fast(h: &mut Harness, sha: &str, keys: &[&str], args: &[&str]) -> Option<Frame> {
    let known = find(sha.as_bytes()).expect("known script");
    let b = |v: &[&str]| -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    };
    let now = h.clock_now();
    let mut ctx = Ctx::new(&h.shared, &mut h.session, now);
    run(&mut ctx, known, &b(keys), &b(args), false)
}

fn ints(v: &[i64]) -> Frame {
    Frame::Array(v.iter().map(|&n| int(n)).collect())
}

/// A connection remembers that a recognised script is loaded only until the cache is
/// flushed: after `SCRIPT FLUSH` the same connection gets NOSCRIPT, and after the library
/// loads it again the fast path answers again.
#[test]
fn a_flush_forgets_what_connections_saw_loaded() {
    let mut h = Harness::new();
    let body = include_str!("../../tests/compat/scripts/rate-limit-redis-get.lua");
    let sha = "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a";
    assert_eq!(h.run(&["SCRIPT", "LOAD", body]), Frame::bulk(sha));
    h.run(&["SET", "k", "5"]);
    let get = ["EVALSHA", sha, "1", "k"];
    let hit = Frame::Array(vec![Frame::bulk("5"), Frame::Integer(-1)]);
    assert_eq!(h.run(&get), hit);
    assert_eq!(h.run(&get), hit, "remembered as loaded");
    assert_eq!(h.run(&["SCRIPT", "FLUSH"]), Frame::OK);
    assert!(
        matches!(h.run(&get), Frame::Error(e) if e.starts_with(b"NOSCRIPT")),
        "the flush is seen"
    );
    h.run(&["SCRIPT", "LOAD", body]);
    assert_eq!(h.run(&get), hit);
}

#[test]
fn rate_limiter_flexible_counts_and_sets_the_ttl_once() {
    let mut h = Harness::new();
    let sha = "a1de965f42e177aa339706bd580f049065eca79a";
    assert_eq!(
        fast(&mut h, sha, &["rlf:k"], &["1", "60", "5", "60"]),
        Some(ints(&[1, 60000]))
    );
    h.clock.advance(std::time::Duration::from_millis(1500));
    assert_eq!(
        fast(&mut h, sha, &["rlf:k"], &["2", "60"]),
        Some(ints(&[3, 58500]))
    );
    assert_eq!(
        fast(&mut h, sha, &["rlf:k"], &["-1", "60"]),
        Some(ints(&[2, 58500]))
    );
    // A key without expiry gets one.
    h.run(&["SET", "rlf:p", "7"]);
    assert_eq!(
        fast(&mut h, sha, &["rlf:p"], &["1", "10"]),
        Some(ints(&[8, 10000]))
    );
    assert_eq!(h.run(&["PTTL", "rlf:p"]), int(10000));
    // What Lua must decide: bad numbers, wrong types, overflow.
    h.run(&["SET", "rlf:s", "abc"]);
    h.run(&["LPUSH", "rlf:l", "x"]);
    h.run(&["SET", "rlf:max", &i64::MAX.to_string()]);
    assert_eq!(fast(&mut h, sha, &["rlf:s"], &["1", "60"]), None);
    assert_eq!(fast(&mut h, sha, &["rlf:l"], &["1", "60"]), None);
    assert_eq!(fast(&mut h, sha, &["rlf:max"], &["1", "60"]), None);
    assert_eq!(fast(&mut h, sha, &["rlf:n"], &["1.5", "60"]), None);
    assert_eq!(fast(&mut h, sha, &["rlf:n"], &["1", "0"]), None);
    assert_eq!(
        h.run(&["EXISTS", "rlf:n"]),
        int(0),
        "a fallback wrote nothing"
    );
}

#[test]
fn rate_limit_redis_increments_within_the_window() {
    let mut h = Harness::new();
    let inc = "895b92e1712734e1b464999be23953485475357b";
    let get = "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a";
    assert_eq!(
        fast(&mut h, get, &["rl:k"], &[]),
        Some(Frame::Array(vec![Frame::Null, int(-2)]))
    );
    assert_eq!(
        fast(&mut h, inc, &["rl:k"], &["60000"]),
        Some(ints(&[1, 60000]))
    );
    h.clock.advance(std::time::Duration::from_millis(250));
    assert_eq!(
        fast(&mut h, inc, &["rl:k"], &["60000"]),
        Some(ints(&[2, 59750]))
    );
    assert_eq!(
        fast(&mut h, get, &["rl:k"], &[]),
        Some(Frame::Array(vec![bulk("2"), int(59750)]))
    );
    // A key without TTL restarts the window (SET), as in the script.
    h.run(&["SET", "rl:p", "5"]);
    assert_eq!(
        fast(&mut h, inc, &["rl:p"], &["1000"]),
        Some(ints(&[1, 1000]))
    );
    h.run(&["SET", "rl:bad", "x", "PX", "5000"]);
    assert_eq!(fast(&mut h, inc, &["rl:bad"], &["1000"]), None);
    // tonumber("1e3") is 1000 in Lua too; hex is left to Lua.
    assert_eq!(
        fast(&mut h, inc, &["rl:e"], &["1e3"]),
        Some(ints(&[1, 1000]))
    );
    assert_eq!(fast(&mut h, inc, &["rl:k"], &["0x10"]), None);
    h.run(&["HSET", "rl:h", "f", "v"]);
    assert_eq!(fast(&mut h, get, &["rl:h"], &[]), None);
}

#[test]
fn limits_fixed_window_sets_the_expiry_on_the_first_hit() {
    let mut h = Harness::new();
    let sha = "628bd136a573a06b346879695681af12ccef300f";
    assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "1"]), Some(int(1)));
    assert_eq!(h.run(&["TTL", "lim:f"]), int(60));
    h.clock.advance(std::time::Duration::from_secs(10));
    assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "2"]), Some(int(3)));
    assert_eq!(h.run(&["TTL", "lim:f"]), int(50));
    assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "0.5"]), None);
}

#[test]
fn limits_moving_window_admits_up_to_the_limit() {
    let mut h = Harness::new();
    let acquire = "741eab638ba93ed71020bb821c45c022d0fa02c4";
    let window = "ad795214f59fe26d6fdec07973836dd16586f5ec";
    let t = |s: f64| format!("{s}");
    for i in 0..3 {
        let now = 1000.25 + f64::from(i);
        assert_eq!(
            fast(&mut h, acquire, &["lim:m"], &[&t(now), "3", "10", "1"]),
            Some(int(1)),
            "hit {i}"
        );
    }
    assert_eq!(
        fast(&mut h, acquire, &["lim:m"], &["1003.5", "3", "10", "1"]),
        Some(Frame::Null)
    );
    assert_eq!(h.run(&["LLEN", "lim:m"]), int(3));
    assert_eq!(h.run(&["LINDEX", "lim:m", "0"]), bulk("1002.25"));
    assert_eq!(h.run(&["TTL", "lim:m"]), int(10));
    // Stats: entries at or after 1001.0 (the window start): two, oldest 1001.25.
    assert_eq!(
        fast(&mut h, window, &["lim:m"], &["1001", "3"]),
        Some(Frame::Array(vec![bulk("1001.25"), int(2)]))
    );
    assert_eq!(
        fast(&mut h, window, &["lim:m"], &["2000", "3"]),
        Some(Frame::Null)
    );
    assert_eq!(
        fast(&mut h, window, &["lim:none"], &["0", "3"]),
        Some(Frame::Null)
    );
    // After the window passes, hits are admitted again; amount > limit is refused at once.
    assert_eq!(
        fast(&mut h, acquire, &["lim:m"], &["1011.5", "3", "10", "2"]),
        Some(int(1))
    );
    assert_eq!(h.run(&["LLEN", "lim:m"]), int(3));
    assert_eq!(
        fast(&mut h, acquire, &["lim:m"], &["1011.5", "3", "10", "4"]),
        Some(Frame::Null)
    );
}

#[test]
fn limits_sliding_window_weights_the_previous_window() {
    let mut h = Harness::new();
    let acquire = "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7";
    let stats = "e7a0a27d4101baabb124af209bb0245197a359a1";
    let keys = ["lim:{s}/-1", "lim:{s}"];
    for _ in 0..4 {
        assert_eq!(
            fast(&mut h, acquire, &keys, &["4", "10", "1"]),
            Some(int(1))
        );
    }
    assert_eq!(
        fast(&mut h, acquire, &keys, &["4", "10", "1"]),
        Some(Frame::Null)
    );
    assert_eq!(h.run(&["PTTL", "lim:{s}"]), int(20000));
    // 12 s later the current window has 8 s left (< 10 s): it rolls over on the next call.
    h.clock.advance(std::time::Duration::from_secs(12));
    assert_eq!(
        fast(&mut h, stats, &keys, &["10"]),
        Some(Frame::Array(vec![
            bulk("4"),
            int(8000),
            bulk("0"),
            int(18000)
        ]))
    );
    // weighted = floor(4 * 8000 / 10000) + 0 = 3: one more fits, then none.
    assert_eq!(
        fast(&mut h, acquire, &keys, &["4", "10", "1"]),
        Some(int(1))
    );
    assert_eq!(
        fast(&mut h, acquire, &keys, &["4", "10", "1"]),
        Some(Frame::Null)
    );
    assert_eq!(h.run(&["GET", "lim:{s}"]), bulk("1"));
    h.run(&["SET", "lim:{x}", "notanumber"]);
    assert_eq!(
        fast(
            &mut h,
            acquire,
            &["lim:{x}/-1", "lim:{x}"],
            &["4", "10", "1"]
        ),
        None
    );
}

mod equivalence {
    //! The fast path against Lua on one clock: every recognised script, run natively on one
    //! server and as Lua (the same text with a comment added, so it is not recognised) on
    //! another, with the same calls at the same manual-clock instants, must give the same
    //! replies and leave the same keys. The comparison with redis-server in
    //! tests/differential.rs runs on two real clocks, where a sliding window read at a
    //! window's edge may fall either way; here the instants are identical.
    use super::super::*;
    use super::fast;
    use crate::cmd::testing::*;
    use crate::script::known::find;

    struct Script {
        name: &'static str,
        body: &'static str,
        keys: usize,
    }

    /// A recorded script of tests/compat/scripts and its number of keys.
    macro_rules! script {
        ($name:literal, $keys:literal) => {
            Script {
                name: $name,
                body: include_str!(concat!("../../tests/compat/scripts/", $name, ".lua")),
                keys: $keys,
            }
        };
    }

    const SCRIPTS: &[Script] = &[
        script!("rate-limiter-flexible-incr-ttl", 1),
        script!("rate-limit-redis-increment", 1),
        script!("rate-limit-redis-get", 1),
        script!("limits-incr-expire", 1),
        script!("limits-acquire-moving-window", 1),
        script!("limits-moving-window", 1),
        script!("limits-acquire-sliding-window", 2),
        script!("limits-sliding-window", 2),
    ];

    /// Arguments each script is called with: the libraries' usual values, edge values and
    /// garbage (which the fast path must leave to Lua).
    fn args_for(name: &str, rng: &mut u64) -> Vec<&'static str> {
        let mut pick = |v: &[&'static str]| v[next(rng) as usize % v.len()];
        match name {
            "rate-limiter-flexible-incr-ttl" => vec![
                pick(&["1", "2", "-1", "5", "1.5", "x", "9223372036854775807"]),
                pick(&["60", "1", "0", "-5", "abc"]),
                "10",
                "60",
            ],
            "rate-limit-redis-increment" => {
                vec![pick(&["1000", "60000", "1e3", "0x10", "-5", "abc", "1.5"])]
            }
            "rate-limit-redis-get" => vec![],
            "limits-incr-expire" => vec![
                pick(&["1", "60", "-1", "abc"]),
                pick(&["1", "2", "0", "1.5", "-1", "-0", "007"]),
            ],
            "limits-acquire-moving-window" => vec![
                pick(&["1767225600.5", "1767225601.25", "1767225605", "abc"]),
                pick(&["3", "5", "1"]),
                pick(&["1", "10"]),
                pick(&["1", "2", "6"]),
            ],
            "limits-moving-window" => vec![
                pick(&["1767225590", "1767225600.5", "1767225604", "0"]),
                pick(&["3", "5", "0"]),
            ],
            "limits-acquire-sliding-window" => vec![
                pick(&["4", "10", "2.5"]),
                pick(&["1", "0.5", "3", "abc"]),
                pick(&["1", "2", "20"]),
            ],
            "limits-sliding-window" => vec![pick(&["1", "0.5", "3"])],
            other => unreachable!("{other}"),
        }
    }

    fn next(state: &mut u64) -> u64 {
        // xorshift64
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Everything a key holds, as replies: its type, value and remaining time.
    fn state_of(h: &mut Harness, key: &str) -> Vec<Frame> {
        let ty = h.run(&["TYPE", key]);
        let value = match &ty {
            Frame::Simple(t) if &t[..] == b"string" => h.run(&["GET", key]),
            Frame::Simple(t) if &t[..] == b"list" => h.run(&["LRANGE", key, "0", "-1"]),
            Frame::Simple(t) if &t[..] == b"hash" => h.run(&["HGETALL", key]),
            _ => Frame::Null,
        };
        vec![ty, value, h.run(&["PTTL", key])]
    }

    #[test]
    fn native_and_lua_agree_call_for_call_on_one_clock() {
        let (mut native, mut lua) = (Harness::new(), Harness::new());
        let mut shas = Vec::new();
        for s in SCRIPTS {
            let Frame::Bulk(sha) = native.run(&["SCRIPT", "LOAD", s.body]) else {
                panic!("{}: SCRIPT LOAD", s.name);
            };
            assert!(find(&sha).is_some(), "{} is recognised", s.name);
            let plain = format!("{}\n-- run in Lua\n", s.body);
            let Frame::Bulk(lua_sha) = lua.run(&["SCRIPT", "LOAD", &plain]) else {
                panic!("{}: SCRIPT LOAD", s.name);
            };
            assert!(find(&lua_sha).is_none(), "{}: the variant is not", s.name);
            shas.push((
                String::from_utf8(sha.to_vec()).unwrap(),
                String::from_utf8(lua_sha.to_vec()).unwrap(),
            ));
        }
        const KEYS: &[&str] = &["e:a", "e:b", "e:c"];
        let (mut calls, mut natively) = (0, [0usize; 8]);
        for seed in [
            0x2545_F491_4F6C_DD1Du64,
            0x9E37_79B9_7F4A_7C15,
            0xD1B5_4A32_D192_ED03,
        ] {
            let mut rng = seed;
            for step in 0..3000 {
                let k = KEYS[next(&mut rng) as usize % KEYS.len()];
                let k2 = KEYS[next(&mut rng) as usize % KEYS.len()];
                match next(&mut rng) % 10 {
                    0 => {
                        // Time passes on both servers alike: within, across and past windows.
                        let ms = [1, 120, 499, 500, 501, 999, 1000, 1500, 3001]
                            [next(&mut rng) as usize % 9];
                        for h in [&mut native, &mut lua] {
                            h.clock.advance(std::time::Duration::from_millis(ms));
                        }
                    }
                    1 => {
                        // A starting state the scripts must cope with (or leave to Lua).
                        let cmd: &[&str] = match next(&mut rng) % 6 {
                            0 => &["SET", k, "abc"],
                            1 => &["SET", k, "2", "PX", "1500"],
                            2 => &["LPUSH", k, "1767225600.5"],
                            3 => &["HSET", k, "f", "v"],
                            4 => &["SET", k, "9223372036854775807"],
                            _ => &["DEL", k],
                        };
                        assert_eq!(native.run(cmd), lua.run(cmd), "{cmd:?}");
                    }
                    _ => {
                        let i = next(&mut rng) as usize % SCRIPTS.len();
                        let s = &SCRIPTS[i];
                        let (sha, lua_sha) = &shas[i];
                        let keys: Vec<&str> = [k, k2][..s.keys].to_vec();
                        let args = args_for(s.name, &mut rng);
                        calls += 1;
                        let got = match fast(&mut native, sha, &keys, &args) {
                            Some(reply) => {
                                natively[i] += 1;
                                reply.into_maps()
                            }
                            None => {
                                let n = s.keys.to_string();
                                let mut words = vec!["EVALSHA", sha, &n];
                                words.extend(&keys);
                                words.extend(&args);
                                native.run(&words)
                            }
                        };
                        let n = s.keys.to_string();
                        let mut words = vec!["EVALSHA", lua_sha.as_str(), &n];
                        words.extend(&keys);
                        words.extend(&args);
                        let want = match lua.run(&words) {
                            // Lua's errors name the script: the variant's digest.
                            Frame::Error(e) => Frame::Error(
                                String::from_utf8_lossy(&e).replace(lua_sha, sha).into(),
                            ),
                            other => other,
                        };
                        assert_eq!(
                            got, want,
                            "seed {seed:x} step {step}: {} {keys:?} {args:?}",
                            s.name
                        );
                    }
                }
                for key in KEYS {
                    assert_eq!(
                        state_of(&mut native, key),
                        state_of(&mut lua, key),
                        "seed {seed:x} step {step}: key {key}"
                    );
                }
            }
        }
        // Garbage arguments and wrong-type keys go to Lua on both sides; the rest must have
        // been answered natively, by every script.
        let total: usize = natively.iter().sum();
        assert!(
            total * 3 > calls,
            "the fast path answered only {total} of {calls} calls"
        );
        for (s, n) in SCRIPTS.iter().zip(natively) {
            assert!(n > 100, "{}: only {n} calls answered natively", s.name);
        }
    }
}
