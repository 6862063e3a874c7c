//! `LIMIT.*`, `POLICY.*`, `OVERRIDE.*` and access-list commands in process.

use std::time::Duration;

use crate::cmd::testing::*;
use crate::protocol::Frame;
use crate::store::Entry;
use bytes::Bytes;
use proptest::prelude::*;

pub(crate) fn run(h: &mut Harness, line: &str) -> Frame {
    let words = crate::policy::model::split_words(line).unwrap();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    h.run(&refs)
}

pub(crate) fn int_of(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

pub(crate) fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

pub(crate) fn allowed(f: &Frame) -> bool {
    get(f, "allowed") == Frame::Boolean(true)
}

/// `(rule, remaining)` of each rule in a check reply.
pub(crate) fn remaining(f: &Frame) -> Vec<(String, String)> {
    let Frame::Array(rules) = get(f, "rules") else {
        panic!("rules is not an array")
    };
    rules
        .iter()
        .map(|r| {
            let rem = match get(r, "remaining") {
                Frame::Integer(n) => n.to_string(),
                other => text(&other),
            };
            (text(&get(r, "rule")), rem)
        })
        .collect()
}

pub(crate) fn rem(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Every live key of database 0 with its entry, sorted.
pub(crate) fn snapshot(h: &Harness) -> Vec<(Vec<u8>, Entry)> {
    let now = h.clock_now();
    let db = &h.shared.engine.dbs[0];
    let mut v: Vec<(Vec<u8>, Entry)> = (0..db.shard_count())
        .flat_map(|i| {
            let s = db.lock_shard(i);
            s.iter_live(now)
                .map(|(k, e)| (k.to_vec(), e.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub(crate) fn events(h: &mut Harness) -> Vec<(String, String)> {
    let Frame::Array(items) = h.run(&["LIMIT.EVENTS", "1000"]) else {
        panic!("not an array")
    };
    items
        .iter()
        .map(|e| match e {
            Frame::Array(p) => (text(&p[0]), text(&p[1])),
            other => panic!("bad event {other:?}"),
        })
        .collect()
}

#[test]
fn a_check_charges_every_rule_or_none() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET free RATE 3/1s QUOTA 4/day");
    let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
    assert!(allowed(&r));
    assert_eq!(get(&r, "denied_by"), Frame::Null);
    assert_eq!(get(&r, "action"), bulk("allow"));
    assert_eq!(remaining(&r), rem(&[("rate-1s", "2"), ("quota-day", "3")]));
    h.run(&["LIMIT.CHECK", "free", "alice"]);
    h.run(&["LIMIT.CHECK", "free", "alice"]);
    let before = snapshot(&h);
    let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
    assert!(!allowed(&r));
    assert_eq!(get(&r, "denied_by"), bulk("rate-1s"));
    assert_eq!(get(&r, "action"), bulk("block"));
    assert_eq!(get(&r, "retry_after_ms"), int(334));
    assert_eq!(get(&r, "retry-after"), int(1));
    assert_eq!(remaining(&r), rem(&[("rate-1s", "0"), ("quota-day", "1")]));
    assert_eq!(snapshot(&h), before, "a denial changes no rule");
    // Another identity is independent.
    assert!(allowed(&h.run(&["LIMIT.CHECK", "free", "bob"])));
    h.clock.advance(Duration::from_millis(400));
    assert!(allowed(&h.run(&["LIMIT.CHECK", "free", "alice"])));
    h.clock.advance(Duration::from_secs(5));
    let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
    assert_eq!(get(&r, "denied_by"), bulk("quota-day"));
    assert_eq!(
        get(&r, "ratelimit").to_owned(),
        bulk("\"rate-1s\";r=3;t=0, \"quota-day\";r=0;t=86395")
    );
    assert_eq!(
        get(&r, "ratelimit-policy"),
        bulk("\"rate-1s\";q=3;w=1, \"quota-day\";q=4;w=86400")
    );
    assert_eq!(get(&r, "retry-after"), int(86_395));
    assert_eq!((h.session.stats.allowed, h.session.stats.denied), (5, 2));
    assert_eq!(
        h.run(&["TYPE", "limitkv:free::quota-day:alice"]),
        simple("quota")
    );
}

#[test]
fn editing_a_policy_keeps_counted_usage() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p QUOTA 10/day RATE 100/1m");
    for _ in 0..6 {
        h.run(&["LIMIT.CHECK", "p", "u"]);
    }
    run(
        &mut h,
        "POLICY.SET p QUOTA 8/day RATE 200/1m BURST 50 WINDOW 5/1s",
    );
    let r = h.run(&["LIMIT.CHECK", "p", "u"]);
    assert_eq!(
        remaining(&r),
        rem(&[("quota-day", "1"), ("rate-1m", "43"), ("window-1s", "4")]),
        "the quota and the rate kept their 6 used (the rate's schedule is re-read at 300 ms \
         a request: an upgrade never punishes)"
    );
    run(&mut h, "POLICY.SET p QUOTA 7/day");
    assert!(!allowed(&h.run(&["LIMIT.CHECK", "p", "u"])), "7 of 7 used");
}

#[test]
fn scope_rules_add_to_or_replace_the_defaults() {
    let mut h = Harness::new();
    run(
        &mut h,
        "POLICY.SET api RATE 100/1m SCOPE \"POST /chat\" RATE 1/1m SCOPE /health REPLACE WINDOW 1000/1s",
    );
    let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "POST /chat"]);
    assert_eq!(remaining(&r), rem(&[("rate-1m", "99"), ("rate-1m", "0")]));
    let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "POST /chat"]);
    assert_eq!(get(&r, "denied_by"), bulk("POST /chat/rate-1m"));
    let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "GET /x"]);
    assert_eq!(
        remaining(&r),
        rem(&[("rate-1m", "98")]),
        "unknown scope: defaults"
    );
    let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "/health"]);
    assert_eq!(remaining(&r), rem(&[("window-1s", "999")]));
    assert_eq!(
        h.run(&[
            "EXISTS",
            "limitkv:api:POST /chat:rate-1m:u",
            "limitkv:api::rate-1m:u"
        ]),
        int(2)
    );
}

#[test]
fn slowdown_log_and_dry_runs() {
    let mut h = Harness::new();
    run(
        &mut h,
        "POLICY.SET s RATE 1/1s ACTION slowdown MAXDELAY 2500ms QUOTA 2/day ACTION log",
    );
    h.run(&["LIMIT.CHECK", "s", "u"]);
    let r = h.run(&["LIMIT.CHECK", "s", "u"]);
    assert!(allowed(&r));
    assert_eq!(
        (get(&r, "action"), get(&r, "delay_ms")),
        (bulk("slowdown"), int(1000))
    );
    let r = h.run(&["LIMIT.CHECK", "s", "u"]);
    assert!(allowed(&r), "the quota only logs");
    assert_eq!(
        (get(&r, "action"), get(&r, "delay_ms")),
        (bulk("slowdown"), int(2000))
    );
    let Frame::Array(rules) = get(&r, "rules") else {
        panic!()
    };
    assert_eq!(get(&rules[1], "outcome"), bulk("log"));
    let r = h.run(&["LIMIT.CHECK", "s", "u"]);
    assert_eq!(
        (allowed(&r), get(&r, "denied_by")),
        (false, bulk("rate-1s")),
        "3 s > MAXDELAY"
    );
    // DRYRUN per call and per policy: decided, reported, never charged.
    run(&mut h, "POLICY.SET d QUOTA 1/day");
    let before = snapshot(&h);
    for _ in 0..3 {
        let r = h.run(&["LIMIT.CHECK", "d", "u", "DRYRUN"]);
        assert!(allowed(&r));
        assert_eq!(get(&r, "dryrun"), Frame::Boolean(true));
    }
    run(&mut h, "POLICY.SET dd DRYRUN QUOTA 1/day");
    h.run(&["LIMIT.CHECK", "dd", "u"]);
    assert!(allowed(&h.run(&["LIMIT.CHECK", "dd", "u"])));
    assert_eq!(snapshot(&h), before);
}

#[test]
fn warnings_are_replied_and_published() {
    let mut h = Harness::new();
    run(
        &mut h,
        "POLICY.SET w WARN 0.5 QUOTA 4/day RATE 100/1s WARN 90%",
    );
    let r = h.run(&["LIMIT.CHECK", "w", "u"]);
    assert_eq!(get(&r, "warnings"), Frame::Array(vec![]));
    let r = h.run(&["LIMIT.CHECK", "w", "u"]);
    assert_eq!(get(&r, "warnings"), Frame::Array(vec![bulk("quota-day")]));
    h.run(&["LIMIT.CHECK", "w", "u"]);
    h.run(&["LIMIT.CHECK", "w", "u"]);
    h.run(&["LIMIT.CHECK", "w", "u"]);
    let ev = events(&mut h);
    let warnings = ev
        .iter()
        .filter(|(c, _)| c == "limitkv:events:warning")
        .count();
    assert_eq!(
        warnings, 1,
        "once per rule per period (the reply still lists it), and a refusal publishes none: {ev:?}"
    );
    let (ch, msg) = ev.last().unwrap();
    assert_eq!(ch, "limitkv:events:denied");
    assert_eq!(
        msg,
        &format!(
            "{{\"event\":\"denied\",\"time_ms\":{},\"policy\":\"w\",\"identity\":\"u\",\"scope\":null,\"rule\":\"quota-day\",\"retry_after_ms\":86400000,\"reason\":\"limit\",\"message\":null,\"link\":null}}",
            h.clock_ms()
        )
    );
    let info = match h.run(&["INFO", "policies"]) {
        Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{other:?}"),
    };
    assert!(
        info.contains("policy_w:checks=5,allowed=4,denied=1,"),
        "{info}"
    );
    // Rules count charged requests, not votes: the refused fifth check warned no one (as it
    // published no warning), and rate-1s, which passed it, charged nothing for it.
    assert!(
        info.contains("rule_w_quota-day:allowed=4,denied=1,slowed=0,logged=0,warned=3"),
        "{info}"
    );
    assert!(
        info.contains("rule_w_rate-1s:allowed=4,denied=0,slowed=0,logged=0,warned=0"),
        "{info}"
    );
}

#[test]
fn dry_runs_count_would_be_denials_and_charge_nothing() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET d RATE 2/1m");
    for _ in 0..2 {
        h.run(&["LIMIT.CHECK", "d", "u"]);
    }
    h.run(&["LIMIT.CHECK", "d", "u", "DRYRUN"]);
    h.run(&["LIMIT.CHECK", "d", "u"]);
    let info = match h.run(&["INFO", "policies"]) {
        Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{other:?}"),
    };
    assert!(
        info.contains("rule_d_rate-1m:allowed=2,denied=1,slowed=0,logged=1,warned=0"),
        "{info}"
    );
}

#[test]
fn allowed_events_are_sampled_at_the_configured_rate() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["CONFIG", "SET", "policy-events-allowed-sample", "0.25"]),
        Frame::OK
    );
    run(&mut h, "POLICY.SET p RATE 1000/1s");
    for _ in 0..8 {
        h.run(&["LIMIT.CHECK", "p", "u"]);
    }
    let allowed = events(&mut h)
        .iter()
        .filter(|(c, _)| c == "limitkv:events:allowed")
        .count();
    assert_eq!(allowed, 2);
}

#[test]
fn status_reads_without_writing() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 2/1s TOKENS 100/1m");
    h.run(&["LIMIT.CHECK", "p", "u", "TOKENS", "60"]);
    let before = snapshot(&h);
    let r = h.run(&["LIMIT.STATUS", "p", "u", "TOKENS", "50"]);
    assert!(!allowed(&r), "50 tokens would not fit");
    assert_eq!(remaining(&r), rem(&[("rate-1s", "1"), ("tokens-1m", "40")]));
    let r = h.run(&["LIMIT.STATUS", "p", "u"]);
    assert!(allowed(&r));
    assert_eq!(snapshot(&h), before);
    assert_eq!(
        h.run(&["LIMIT.STATUS", "p", "u", "DRYRUN"]),
        err("ERR syntax error")
    );
}

#[test]
fn reserve_settle_cancel_and_expiry() {
    let mut h = Harness::new();
    run(
        &mut h,
        "POLICY.SET ai TOKENS 10000/1m COST 1.00/day LEASE 2 TTL 30s",
    );
    let r = h.run(&[
        "LIMIT.RESERVE",
        "ai",
        "u",
        "TOKENS",
        "4000",
        "COST",
        "0.2",
        "TTL",
        "1m",
    ]);
    assert!(allowed(&r));
    let id = int_of(&get(&r, "reservation"));
    assert_eq!(
        remaining(&r),
        rem(&[("tokens-1m", "6000"), ("cost-day", "0.8"), ("lease", "1")])
    );
    let key = format!("limitkv-reservation:{id}");
    assert_eq!(h.run(&["TYPE", &key]), simple("reservation"));
    assert_eq!(h.run(&["PTTL", &key]), int(60_000));
    let s = h.run(&[
        "LIMIT.SETTLE",
        &id.to_string(),
        "TOKENS",
        "1234",
        "COST",
        "0.05",
    ]);
    assert_eq!(get(&s, "action"), bulk("settle"));
    assert_eq!(
        remaining(&s),
        rem(&[("tokens-1m", "8766"), ("cost-day", "0.95"), ("lease", "2")])
    );
    assert_eq!(
        h.run(&["LIMIT.SETTLE", &id.to_string()]),
        err(&format!(
            "ERR unknown reservation '{id}' (settled, cancelled or expired)"
        ))
    );
    // Settling past the cap records reality.
    let r = h.run(&["LIMIT.RESERVE", "ai", "u", "TOKENS", "100", "COST", "0.5"]);
    let id2 = int_of(&get(&r, "reservation")).to_string();
    let s = h.run(&["LIMIT.SETTLE", &id2, "COST", "2"]);
    assert_eq!(remaining(&s)[1], ("cost-day".to_string(), "0".to_string()));
    let r = h.run(&["LIMIT.CHECK", "ai", "u", "COST", "0.01"]);
    assert_eq!(get(&r, "denied_by"), bulk("cost-day"));
    // Cancel refunds everything.
    let r = h.run(&["LIMIT.RESERVE", "ai", "v", "TOKENS", "500"]);
    let id3 = int_of(&get(&r, "reservation")).to_string();
    let c = h.run(&["LIMIT.CANCEL", &id3]);
    assert_eq!(
        remaining(&c),
        rem(&[("tokens-1m", "10000"), ("lease", "2")])
    );
    // An unsettled reservation expires keeping its estimate, and is reported.
    run(&mut h, "POLICY.SET daily TOKENS 5000/day");
    let r = h.run(&["LIMIT.RESERVE", "daily", "w", "TOKENS", "700", "TTL", "10s"]);
    let id4 = int_of(&get(&r, "reservation"));
    h.clock.advance(Duration::from_secs(11));
    let r = h.run(&["LIMIT.STATUS", "daily", "w"]);
    assert_eq!(remaining(&r), rem(&[("tokens-day", "4300")]));
    let ev = events(&mut h);
    let (ch, msg) = ev
        .iter()
        .find(|(c, _)| c == "limitkv:events:reservation")
        .unwrap();
    assert_eq!(ch, "limitkv:events:reservation");
    assert!(
        msg.contains(&format!("\"id\":{id4},\"change\":\"expired\"")),
        "{msg}"
    );
    assert_eq!(
        h.run(&["LIMIT.SETTLE", &id4.to_string()]),
        err(&format!(
            "ERR unknown reservation '{id4}' (settled, cancelled or expired)"
        ))
    );
    assert_eq!(
        h.run(&["LIMIT.SETTLE", "x"]),
        err("ERR invalid reservation id 'x'")
    );
}

#[test]
fn breaker_transitions_are_published() {
    let mut h = Harness::new();
    h.run(&["BREAKER.REPORT", "pay", "FAILURE", "THRESHOLD", "2"]);
    h.run(&["BREAKER.REPORT", "pay", "FAILURE", "THRESHOLD", "2"]);
    h.run(&["BREAKER.TRIP", "pay"]);
    h.run(&["BREAKER.RESET", "pay"]);
    let ev: Vec<String> = events(&mut h)
        .into_iter()
        .filter(|(c, _)| c == "limitkv:events:breaker")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        ev.len(),
        2,
        "a trip of an open breaker is no transition: {ev:?}"
    );
    assert!(
        ev[0].contains("\"key\":\"pay\",\"from\":\"closed\",\"to\":\"open\""),
        "{ev:?}"
    );
    assert!(
        ev[1].contains("\"from\":\"open\",\"to\":\"closed\""),
        "{ev:?}"
    );
}

#[test]
fn leases_from_checks_are_released() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET c LEASE 1 TTL 10s");
    let r = h.run(&["LIMIT.CHECK", "c", "u"]);
    let id = int_of(&get(&r, "lease_id"));
    assert!(id > 0);
    assert!(!allowed(&h.run(&["LIMIT.CHECK", "c", "u"])));
    assert_eq!(h.run(&["LIMIT.RELEASE", "c", "u", &id.to_string()]), int(1));
    assert_eq!(h.run(&["LIMIT.RELEASE", "c", "u", &id.to_string()]), int(0));
    assert!(allowed(&h.run(&["LIMIT.CHECK", "c", "u"])));
    h.clock.advance(Duration::from_secs(10));
    assert!(
        allowed(&h.run(&["LIMIT.CHECK", "c", "u"])),
        "the lease expired"
    );
}

#[test]
fn reset_deletes_an_identitys_states() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET a QUOTA 1/day SCOPE x RATE 1/1m");
    run(&mut h, "POLICY.SET b QUOTA 1/day");
    h.run(&["LIMIT.CHECK", "a", "u", "SCOPE", "x"]);
    h.run(&["LIMIT.CHECK", "b", "u"]);
    h.run(&["LIMIT.CHECK", "b", "v"]);
    assert_eq!(h.run(&["LIMIT.RESET", "u", "b"]), int(1));
    assert!(allowed(&h.run(&["LIMIT.CHECK", "b", "u"])));
    assert_eq!(h.run(&["LIMIT.RESET", "u"]), int(3));
    assert_eq!(h.run(&["DBSIZE"]), int(1), "v's state stays");
    assert_eq!(
        h.run(&["LIMIT.RESET", "u", "zz"]),
        err("ERR unknown policy 'zz'")
    );
}

#[test]
fn checks_run_inside_transactions_and_foreign_keys_read_as_fresh() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p QUOTA 2/day");
    h.run(&["SET", "limitkv:p::quota-day:u", "junk"]);
    h.run(&["MULTI"]);
    h.run(&["LIMIT.CHECK", "p", "u"]);
    h.run(&["LIMIT.CHECK", "p", "u"]);
    h.run(&["LIMIT.CHECK", "p", "u"]);
    let Frame::Array(replies) = h.run(&["EXEC"]) else {
        panic!()
    };
    let got: Vec<bool> = replies.iter().map(allowed).collect();
    assert_eq!(got, [true, true, false]);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 1/1s");
    // (label, command, error)
    let cases = [
        ("unknown option", "LIMIT.CHECK p u FOO", "ERR syntax error"),
        (
            "repeated option",
            "LIMIT.CHECK p u TOKENS 1 TOKENS 2",
            "ERR syntax error",
        ),
        (
            "negative tokens",
            "LIMIT.CHECK p u TOKENS -1",
            "ERR invalid TOKENS '-1': must be a whole number >= 0",
        ),
        (
            "negative cost",
            "LIMIT.CHECK p u COST -1",
            "ERR invalid COST '-1': value must not be negative",
        ),
        (
            "bad cost",
            "LIMIT.CHECK p u COST 1e3",
            "ERR invalid COST '1e3': amount must be a decimal number such as 1.25",
        ),
        ("ttl on check", "LIMIT.CHECK p u TTL 1s", "ERR syntax error"),
        (
            "bad ttl",
            "LIMIT.RESERVE p u TTL 0s",
            "ERR invalid TTL '0s': value must be greater than zero",
        ),
        ("missing value", "LIMIT.CHECK p u SCOPE", "ERR syntax error"),
        (
            "arity",
            "LIMIT.CHECK p",
            "ERR wrong number of arguments for 'limit.check' command",
        ),
        ("settle option", "LIMIT.SETTLE 1 FOO 2", "ERR syntax error"),
        (
            "events count",
            "LIMIT.EVENTS x",
            "ERR value is not an integer or out of range",
        ),
        (
            "release syntax",
            "LIMIT.RELEASE p u 1 SCOPE",
            "ERR syntax error",
        ),
        (
            "empty entry",
            "ALLOWLIST.ADD \"\"",
            "ERR an entry must not be empty",
        ),
    ];
    for (label, line, want) in cases {
        assert_eq!(run(&mut h, line), err(want), "{label}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the traffic, a refused LIMIT.CHECK leaves every key exactly as it was.
    #[test]
    fn a_denied_check_changes_no_rule_state(
        steps in proptest::collection::vec((0u64..1500, 0u64..60, 0u64..400_000, any::<bool>()), 1..40)
    ) {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p RATE 4/1s TOKENS 100/1m TOKENS WINDOW 150/10s \
                     QUOTA 30/hour COST 1/hour LEASE 3 TTL 2s SCOPE s WINDOW 2/1s");
        for (dt, tokens, micros, scoped) in steps {
            h.clock.advance(Duration::from_millis(dt));
            let before = snapshot(&h);
            let (t, c) = (tokens.to_string(), format!("0.{micros:06}"));
            let mut cmd = vec!["LIMIT.CHECK", "p", "id", "TOKENS", &t, "COST", &c];
            if scoped {
                cmd.extend(["SCOPE", "s"]);
            }
            let r = h.run(&cmd);
            if get(&r, "allowed") == Frame::Boolean(false) {
                prop_assert_eq!(snapshot(&h), before);
            }
        }
    }
}

#[test]
fn reservation_ids_outlive_the_counter() {
    // The start-up scan lifts the id counter above ids found in the keyspace.
    let h = Harness::new();
    let r = crate::policy::reserve::Reservation {
        id: u64::MAX / 2,
        policy: "p".into(),
        identity: Bytes::from_static(b"u"),
        scope: None,
        tokens: 1,
        cost: crate::limiter::cost::Amount(0),
        lease: None,
        expires_at: h
            .clock_now()
            .saturating_add(crate::clock::Nanos::from_secs(60)),
        charges: vec![],
    };
    let key = crate::policy::reserve::ReservationId::new(r.id, b"u", false).key();
    let at = Some(r.expires_at);
    h.shared.engine.dbs[0].with_shard(&key, |s| {
        s.insert(
            &key,
            Entry::with_expiry(crate::store::Value::Reservation(Box::new(r)), at),
        )
    });
    h.shared.engine.start().unwrap();
    assert!(
        h.shared
            .engine
            .next_lease_id
            .load(std::sync::atomic::Ordering::Relaxed)
            > u64::MAX / 2
    );
    assert_eq!(h.shared.engine.policies.pending_reservations(), 1);
}

/// The same traffic through `LIMIT.CHECK` and through [`crate::engine::Engine::check`] (two
/// engines on clocks at the same instants) gets the same decisions.
#[test]
fn the_typed_api_decides_as_the_command_does() {
    use crate::clock::ManualClock;
    use crate::engine::{CheckRequest, Engine};
    use std::sync::Arc;

    let mut h = Harness::new();
    let clock = Arc::new(ManualClock::new(h.clock_now()));
    let engine = Engine::new(crate::config::Config::default(), clock.clone());
    let def = "RATE 3/1s QUOTA 7/day SCOPE s WINDOW 2/1s";
    run(&mut h, &format!("POLICY.SET p {def}"));
    engine.policy_set("p", def).unwrap();
    for step in 0..14 {
        let scoped = step % 3 == 0;
        let mut cmd = vec!["LIMIT.CHECK", "p", "u"];
        let mut req = CheckRequest::new("p", "u");
        if scoped {
            cmd.extend(["SCOPE", "s"]);
            req = req.with_scope("s");
        }
        let r = h.run(&cmd);
        let o = engine.check(&req).unwrap();
        assert_eq!(allowed(&r), o.allowed, "step {step}: allowed");
        assert_eq!(
            get(&r, "denied_by"),
            o.denied_by.as_deref().map_or(Frame::Null, bulk),
            "step {step}: denied_by"
        );
        assert_eq!(
            int_of(&get(&r, "remaining")),
            o.decision().map_or(-1, |d| d.remaining as i64),
            "step {step}: remaining"
        );
        let rules: Vec<(String, String)> = o
            .rules
            .iter()
            .map(|x| (x.name.clone(), x.decision.remaining.to_string()))
            .collect();
        assert_eq!(remaining(&r), rules, "step {step}: rules");
        h.clock.advance(Duration::from_millis(150));
        clock.advance(Duration::from_millis(150));
    }
}

/// The derived rule keys are checked against the user's key patterns before anything is
/// charged: a refused check, reserve, settle or reset changes no key and counts nothing.
#[test]
fn a_check_refused_by_the_acl_charges_nothing() {
    let mut admin = Harness::new();
    run(&mut admin, "POLICY.SET paid RATE 2/1m LEASE 1 TTL 1m");
    admin.run(&[
        "ACL",
        "SETUSER",
        "gw",
        "on",
        ">pw",
        "+@all",
        "~limitkv:free:*",
    ]);
    let r = admin.run(&["LIMIT.RESERVE", "paid", "c"]);
    let id = int_of(&get(&r, "reservation")).to_string();
    let before = snapshot(&admin);
    let mut gw = admin.peer();
    assert_eq!(gw.run(&["AUTH", "gw", "pw"]), Frame::OK);
    for cmd in [
        vec!["LIMIT.CHECK", "paid", "c"],
        vec!["LIMIT.RESERVE", "paid", "c"],
        vec!["LIMIT.STATUS", "paid", "c"],
        vec!["LIMIT.SETTLE", &id],
        vec!["LIMIT.CANCEL", &id],
        vec!["LIMIT.RELEASE", "paid", "c", "1"],
        vec!["LIMIT.RESET", "c", "paid"],
    ] {
        let reply = gw.run(&cmd);
        assert!(
            matches!(&reply, Frame::Error(e) if e.starts_with(b"NOPERM")),
            "{cmd:?}: {reply:?}"
        );
        assert_eq!(snapshot(&admin), before, "{cmd:?} changed a key");
    }
    assert_eq!((gw.session.stats.allowed, gw.session.stats.denied), (0, 0));
    assert_eq!(admin.shared.engine.policies.pending_reservations(), 1);
}

#[test]
fn the_specs_the_http_check_api_runs_are_the_limit_commands() {
    use crate::engine::CheckKind;
    assert_eq!(super::check_spec(CheckKind::Check).name, "LIMIT.CHECK");
    assert_eq!(super::check_spec(CheckKind::Status).name, "LIMIT.STATUS");
    assert_eq!(super::check_spec(CheckKind::Reserve).name, "LIMIT.RESERVE");
    assert_eq!(super::settle_spec(true).name, "LIMIT.SETTLE");
    assert_eq!(super::settle_spec(false).name, "LIMIT.CANCEL");
    let table = crate::cmd::lookup(b"limit.check").unwrap();
    assert!(std::ptr::eq(super::check_spec(CheckKind::Check), table));
}
