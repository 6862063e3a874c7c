//! `LIMIT.TOP`, `LIMIT.USAGE` and `LIMIT.HISTORY` in process, on a manual clock.

use std::time::Duration;

use crate::cmd::policy::tests::{int_of, run, text};
use crate::cmd::testing::*;
use crate::protocol::Frame;

fn items(f: Frame) -> Vec<Frame> {
    match f {
        Frame::Array(v) => v,
        other => panic!("not an array: {other:?}"),
    }
}

fn checks(h: &mut Harness, identity: &str, n: usize, extra: &str) {
    for _ in 0..n {
        run(h, &format!("LIMIT.CHECK p {identity} {extra}"));
    }
}

#[test]
fn top_names_the_most_denied_identity_first() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 2/1m");
    checks(&mut h, "u1", 5, "");
    checks(&mut h, "u2", 10, "");
    checks(&mut h, "u3", 1, "");
    let top = items(h.run(&["LIMIT.TOP"]));
    let who: Vec<_> = top.iter().map(|e| text(&get(e, "identity"))).collect();
    assert_eq!(who, ["u2", "u1"], "u3 was never denied");
    assert_eq!(int_of(&get(&top[0], "denied")), 8);
    assert_eq!(int_of(&get(&top[0], "allowed")), 2);
    assert_eq!(int_of(&get(&top[0], "decisions")), 10);
    assert_eq!(text(&get(&top[0], "policy")), "p");
    assert_eq!(int_of(&get(&top[0], "estimate")), 8);
    assert_eq!(int_of(&get(&top[0], "estimate_error")), 0);
    let one = items(h.run(&["LIMIT.TOP", "DENIED", "COUNT", "1", "POLICY", "p"]));
    assert_eq!(one.len(), 1);
    let usage = items(h.run(&["LIMIT.TOP", "USAGE"]));
    let who: Vec<_> = usage.iter().map(|e| text(&get(e, "identity"))).collect();
    assert_eq!(who, ["u1", "u2", "u3"], "2, 2, 1 admitted; ties by name");
}

#[test]
fn top_looks_only_at_its_window() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 1/1h");
    checks(&mut h, "old", 3, "");
    h.clock.advance(Duration::from_secs(2 * 3600));
    checks(&mut h, "new", 2, "");
    let who =
        |f: Frame| -> Vec<String> { items(f).iter().map(|e| text(&get(e, "identity"))).collect() };
    assert_eq!(who(h.run(&["LIMIT.TOP"])), ["new"]);
    assert_eq!(who(h.run(&["LIMIT.TOP", "WINDOW", "3h"])), ["old", "new"]);
    h.clock.advance(Duration::from_secs(47 * 3600));
    assert!(
        items(h.run(&["LIMIT.TOP", "WINDOW", "48h"])).len() == 1,
        "minutes older than 48 h are gone"
    );
}

#[test]
fn usage_reads_every_rule_of_the_plan() {
    let mut h = Harness::new();
    run(
        &mut h,
        "POLICY.SET p RATE 3/1m QUOTA 1000/day SCOPE chat TOKENS 5000/1m COST 1.00/day",
    );
    checks(&mut h, "c42", 2, "");
    checks(&mut h, "c42", 1, "SCOPE chat TOKENS 1200 COST 0.25");
    let u = h.run(&["LIMIT.USAGE", "p", "c42"]);
    let rules = items(get(&u, "rules"));
    let names: Vec<_> = rules.iter().map(|r| text(&get(r, "rule"))).collect();
    assert_eq!(names, ["rate-1m", "quota-day", "tokens-1m", "cost-day"]);
    assert_eq!(int_of(&get(&rules[1], "used")), 3);
    assert_eq!(int_of(&get(&rules[1], "limit")), 1000);
    assert_eq!(int_of(&get(&rules[2], "used")), 1200);
    assert_eq!(text(&get(&rules[3], "used")), "0.25");
    assert_eq!(text(&get(&rules[3], "scope")), "chat");
    let reset = int_of(&get(&rules[0], "reset_after_ms"));
    assert!(reset > 0);
    assert_eq!(
        int_of(&get(&rules[0], "resets_at_ms")),
        h.clock_ms() as i64 + reset
    );
    assert_eq!(get(&u, "tracked"), Frame::Boolean(true));
    let hour = get(&u, "last_hour");
    assert_eq!(int_of(&get(&hour, "decisions")), 3);
    assert_eq!(int_of(&get(&hour, "tokens")), 1200);
    assert_eq!(text(&get(&hour, "cost")), "0.25");
    assert_eq!(h.run(&["LIMIT.USAGE", "p", "nobody"]), Frame::Map(vec![]));
}

#[test]
fn history_is_one_entry_per_minute() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 2/1h");
    checks(&mut h, "u", 3, "");
    h.clock.advance(Duration::from_secs(120));
    checks(&mut h, "u", 1, "");
    let series = items(h.run(&["LIMIT.HISTORY", "p", "WINDOW", "5m"]));
    assert_eq!(series.len(), 5);
    let per_minute: Vec<_> = series
        .iter()
        .map(|m| int_of(&get(m, "decisions")))
        .collect();
    assert_eq!(per_minute, [0, 0, 3, 0, 1]);
    let denied: Vec<_> = series.iter().map(|m| int_of(&get(m, "denied"))).collect();
    assert_eq!(denied, [0, 0, 1, 0, 1]);
    let starts: Vec<_> = series
        .iter()
        .map(|m| int_of(&get(m, "minute_ms")))
        .collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 60_000));
    let mine = items(h.run(&["LIMIT.HISTORY", "p", "u", "WINDOW", "5m"]));
    assert_eq!(mine, series, "one identity: the same series");
    assert!(items(h.run(&["LIMIT.HISTORY", "p", "stranger"])).is_empty());
    assert_eq!(items(h.run(&["LIMIT.HISTORY", "p"])).len(), 60);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p RATE 2/1h");
    for (cmd, want) in [
        (
            &["LIMIT.TOP", "POLICY", "nope"][..],
            "ERR unknown policy 'nope'",
        ),
        (&["LIMIT.HISTORY", "nope"][..], "ERR unknown policy 'nope'"),
        (
            &["LIMIT.USAGE", "nope", "u"][..],
            "ERR unknown policy 'nope'",
        ),
        (
            &["LIMIT.TOP", "WINDOW", "49h"][..],
            "ERR invalid WINDOW '49h': must be between 1m and 48h",
        ),
        (
            &["LIMIT.TOP", "COUNT", "0"][..],
            "ERR COUNT must be between 1 and 10000",
        ),
        (&["LIMIT.TOP", "DENIED", "USAGE"][..], "ERR syntax error"),
        (
            &["LIMIT.HISTORY", "p", "u", "SINCE", "1h"][..],
            "ERR syntax error",
        ),
        (
            &["LIMIT.USAGE", "p"][..],
            "ERR wrong number of arguments for 'limit.usage' command",
        ),
    ] {
        assert_eq!(h.run(cmd), err(want), "{cmd:?}");
    }
}

#[test]
fn settles_correct_the_recorded_tokens() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p TOKENS 10000/1m");
    let r = run(&mut h, "LIMIT.RESERVE p u TOKENS 500");
    let id = int_of(&get(&r, "reservation")).to_string();
    h.run(&["LIMIT.SETTLE", &id, "TOKENS", "320"]);
    let top = items(h.run(&["LIMIT.TOP", "TOKENS"]));
    assert_eq!(int_of(&get(&top[0], "tokens")), 320);
}
