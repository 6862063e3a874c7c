//! `POLICY.*`, `OVERRIDE.*` and access-list commands in process (helpers shared with
//! `cmd::policy`'s tests).

use std::time::Duration;

use crate::cmd::policy::tests::{allowed, events, rem, remaining, run, snapshot, text};
use crate::cmd::testing::*;
use crate::protocol::Frame;

#[test]
fn policies_are_set_shown_listed_and_deleted() {
    let mut h = Harness::new();
    assert_eq!(
        run(
            &mut h,
            "POLICY.SET free RATE 100/60s QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
        ),
        Frame::OK
    );
    run(&mut h, "POLICY.SET pro RATE 1000/1m");
    assert_eq!(
        h.run(&["POLICY.LIST"]),
        Frame::Array(vec![bulk("free"), bulk("pro")])
    );
    let p = h.run(&["POLICY.GET", "free"]);
    assert_eq!(
        text(&get(&p, "definition")),
        "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
    );
    let Frame::Array(rules) = get(&p, "rules") else {
        panic!()
    };
    assert_eq!(rules.len(), 3);
    assert_eq!(get(&rules[2], "scope"), bulk("POST /chat"));
    assert_eq!(get(&rules[1], "window"), bulk("day"));
    // A bad rule refuses the whole definition; the old policy stays.
    assert_eq!(
        run(&mut h, "POLICY.SET free RATE 1/1s QUOTA 5/fortnight"),
        err("ERR rule 2 (QUOTA): invalid quota '5/fortnight': unknown period 'fortnight' (use minute, hour, day, week or month)")
    );
    assert_eq!(
        text(&get(&h.run(&["POLICY.GET", "free"]), "definition")),
        "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
    );
    assert_eq!(
        h.run(&["POLICY.SET", "no:colons", "RATE", "1/1s"]),
        err("ERR invalid policy name 'no:colons': use 1 to 64 letters, digits, '_', '.' or '-'")
    );
    assert_eq!(h.run(&["POLICY.DEL", "pro", "nope"]), int(1));
    assert_eq!(h.run(&["POLICY.GET", "pro"]), Frame::Null);
    assert_eq!(
        h.run(&["LIMIT.CHECK", "pro", "u"]),
        err("ERR unknown policy 'pro'")
    );
}

#[test]
fn overrides_redirect_or_merge_and_expire() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET free RATE 1000/1m QUOTA 3/day");
    run(&mut h, "POLICY.SET pro RATE 1000/1m");
    h.run(&["LIMIT.CHECK", "free", "acme"]);
    assert_eq!(
        run(
            &mut h,
            "OVERRIDE.SET acme REASON \"contract 42\" QUOTA 10/day EXPIRE 1h"
        ),
        Frame::OK
    );
    let r = h.run(&["LIMIT.CHECK", "free", "acme"]);
    assert_eq!(get(&r, "override"), bulk("contract 42"));
    assert_eq!(
        remaining(&r),
        rem(&[("rate-1m", "998"), ("quota-day", "8")]),
        "the merged rule kept the usage counted under its name"
    );
    let o = h.run(&["OVERRIDE.GET", "acme"]);
    assert_eq!(get(&o, "rules"), bulk("QUOTA 10/day"));
    assert_eq!(get(&o, "ttl_ms"), int(3_600_000));
    assert_eq!(h.run(&["OVERRIDE.LIST"]), Frame::Array(vec![bulk("acme")]));
    run(&mut h, "OVERRIDE.SET bigco POLICY pro");
    let r = h.run(&["LIMIT.CHECK", "free", "bigco"]);
    assert_eq!(remaining(&r), rem(&[("rate-1m", "999")]));
    assert_eq!(
        run(&mut h, "OVERRIDE.SET x POLICY nope"),
        err("ERR unknown policy 'nope'")
    );
    assert_eq!(
        run(&mut h, "OVERRIDE.SET x REASON why"),
        err("ERR an override needs POLICY name or at least one rule")
    );
    h.clock.advance(Duration::from_secs(3600));
    let r = h.run(&["LIMIT.CHECK", "free", "acme"]);
    assert_eq!(get(&r, "override"), Frame::Null);
    assert_eq!(h.run(&["OVERRIDE.GET", "acme"]), Frame::Null);
    assert_eq!(h.run(&["OVERRIDE.DEL", "bigco", "acme"]), int(1));
    let kinds: Vec<String> = events(&mut h)
        .into_iter()
        .filter(|(c, _)| c == "limitkv:events:override")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds[0].contains("\"change\":\"set\"") && kinds[0].contains("\"reason\":\"contract 42\"")
    );
    assert!(kinds[2].contains("\"change\":\"del\"") && kinds[2].contains("\"policy\":\"pro\""));
}

#[test]
fn allow_and_deny_lists_skip_or_refuse() {
    let mut h = Harness::new();
    run(&mut h, "POLICY.SET p QUOTA 1/day");
    assert_eq!(
        h.run(&["ALLOWLIST.ADD", "svc", "10.0.0.0/8", "svc"]),
        int(2)
    );
    assert_eq!(h.run(&["DENYLIST.ADD", "2001:db8::/32", "mallory"]), int(2));
    for _ in 0..3 {
        let r = h.run(&["LIMIT.CHECK", "p", "svc"]);
        assert!(allowed(&r));
        assert_eq!(get(&r, "reason"), bulk("allowlist:svc"));
    }
    let r = h.run(&["LIMIT.CHECK", "p", "anon", "IP", "10.1.2.3"]);
    assert_eq!(get(&r, "reason"), bulk("allowlist:10.0.0.0/8"));
    let r = h.run(&["LIMIT.CHECK", "p", "anon", "IP", "2001:db8::9"]);
    assert!(!allowed(&r));
    assert_eq!(get(&r, "denied_by"), bulk("denylist"));
    assert_eq!(get(&r, "retry_after_ms"), int(-1));
    assert!(!allowed(&h.run(&["LIMIT.CHECK", "p", "mallory"])));
    assert_eq!(
        h.run(&["LIMIT.CHECK", "p", "x", "IP", "999.1.1.1"]),
        err("ERR invalid IP '999.1.1.1'")
    );
    assert_eq!(
        h.run(&["ALLOWLIST.LIST"]),
        Frame::Array(vec![bulk("10.0.0.0/8"), bulk("svc")])
    );
    assert_eq!(h.run(&["DENYLIST.DEL", "mallory", "nobody"]), int(1));
    assert!(allowed(&h.run(&["LIMIT.CHECK", "p", "mallory"])));
    assert!(snapshot(&h).len() == 1, "only mallory's quota was charged");
}
