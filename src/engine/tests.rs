//! The typed policy API on a manual clock: decisions, reservations and the catalog.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::{ManualClock, Nanos};
use crate::config::Config;
use crate::limiter::cost::Amount;
use crate::policy::decide::Outcome;

use super::{Actual, CheckRequest, Engine, Error};

const T0: Nanos = Nanos(1_767_225_600 * Nanos::PER_SEC);

fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (Engine::new(Config::default(), clock.clone()), clock)
}

fn remaining(o: &super::CheckOutcome) -> Vec<(String, u64)> {
    o.rules
        .iter()
        .map(|r| (r.name.clone(), r.decision.remaining))
        .collect()
}

fn rem(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(a, b)| (a.to_string(), *b)).collect()
}

#[test]
fn a_check_charges_every_rule_or_none() {
    let (e, clock) = engine();
    e.policy_set("free", "RATE 3/1s QUOTA 4/day").unwrap();
    let req = CheckRequest::new("free", "alice");
    let o = e.check(&req).unwrap();
    assert!(o.allowed, "first");
    assert_eq!(o.action, "allow");
    assert_eq!(remaining(&o), rem(&[("rate-1s", 2), ("quota-day", 3)]));
    e.check(&req).unwrap();
    e.check(&req).unwrap();
    let o = e.check(&req).unwrap();
    assert!(!o.allowed, "fourth within the second");
    assert_eq!(o.denied_by.as_deref(), Some("rate-1s"));
    assert_eq!(o.action, "block");
    assert_eq!(o.decision().unwrap().retry_after_ms(), 334);
    assert_eq!(o.headers.retry_after, Some(1));
    assert_eq!(o.rules[0].outcome, Outcome::Block);
    assert_eq!(
        remaining(&o),
        rem(&[("rate-1s", 0), ("quota-day", 1)]),
        "the denial charged nothing"
    );
    assert!(e.check(&CheckRequest::new("free", "bob")).unwrap().allowed);
    clock.advance(Duration::from_millis(400));
    assert!(e.check(&req).unwrap().allowed, "after the rate refills");
    clock.advance(Duration::from_secs(5));
    let o = e.check(&req).unwrap();
    assert_eq!(o.denied_by.as_deref(), Some("quota-day"));
    assert_eq!(o.tightest_rule().unwrap().name, "quota-day");
}

#[test]
fn status_changes_nothing() {
    let (e, _clock) = engine();
    e.policy_set("p", "QUOTA 2/day").unwrap();
    let req = CheckRequest::new("p", "u");
    for _ in 0..3 {
        let s = e.status(&req).unwrap();
        assert!(s.allowed);
        assert_eq!(remaining(&s), rem(&[("quota-day", 2)]));
    }
    e.check(&req).unwrap();
    assert_eq!(
        remaining(&e.status(&req).unwrap()),
        rem(&[("quota-day", 1)])
    );
}

#[test]
fn dry_runs_and_scopes() {
    let (e, _clock) = engine();
    e.policy_set("api", "RATE 1/1m SCOPE search RATE 5/1m")
        .unwrap();
    let dry = CheckRequest {
        dryrun: true,
        ..CheckRequest::new("api", "u")
    };
    for _ in 0..3 {
        let o = e.check(&dry).unwrap();
        assert!(o.allowed && o.dryrun, "a dry run charges nothing");
    }
    let o = e
        .check(&CheckRequest::new("api", "u").with_scope("search"))
        .unwrap();
    assert!(o.allowed);
    assert_eq!(o.rules.len(), 2, "defaults plus the scope's rule");
    assert_eq!(o.rules[1].scope.as_deref(), Some("search"));
    let o = e
        .check(&CheckRequest::new("api", "u").with_scope("search"))
        .unwrap();
    assert_eq!(
        o.denied_by.as_deref(),
        Some("rate-1m"),
        "the default rule is spent"
    );
}

#[test]
fn reserve_then_settle_or_cancel() {
    let (e, _clock) = engine();
    e.policy_set("ai", "TOKENS 10000/1m COST 1.00/day").unwrap();
    let req = CheckRequest::new("ai", "u")
        .with_tokens(4000)
        .with_cost(Amount::parse("0.2").unwrap());
    let r = e.reserve(&req).unwrap();
    assert!(r.allowed);
    let (id, _) = r
        .reservation
        .expect("an admitted reserve stores a reservation");
    assert_eq!(r.rules[0].decision.remaining, 6000);
    let s = e
        .settle(
            &id,
            Actual {
                tokens: Some(1234),
                cost: None,
            },
        )
        .unwrap();
    assert!(s.settled);
    assert_eq!(s.tokens, 1234);
    assert_eq!(
        s.cost,
        Amount::parse("0.2").unwrap(),
        "cost taken as estimated"
    );
    assert_eq!(s.rules[0].adjusted, 1234 - 4000);
    assert_eq!(s.rules[0].decision.remaining, 8766);
    assert_eq!(
        e.cancel(&id),
        Err(Error::Policy(format!(
            "unknown reservation '{id}' (settled, cancelled or expired)"
        )))
    );
    let r = e
        .reserve(&CheckRequest::new("ai", "v").with_tokens(500))
        .unwrap();
    let c = e.cancel(&r.reservation.unwrap().0).unwrap();
    assert!(!c.settled);
    assert_eq!(
        c.rules[0].decision.remaining, 10000,
        "a cancel refunds everything"
    );
}

#[test]
fn the_catalog_is_set_read_and_deleted() {
    let (e, _clock) = engine();
    assert_eq!(
        e.check(&CheckRequest::new("nope", "u")),
        Err(Error::Policy("unknown policy 'nope'".into()))
    );
    assert!(e.policy_set("p", "RATE").is_err(), "a bad rule is refused");
    assert!(e.policy_get("p").is_none(), "and nothing is set");
    e.policy_set("p", "RATE 10/1m").unwrap();
    assert_eq!(
        e.policy_get("p").unwrap().body.words().join(" "),
        "RATE 10/1m"
    );
    assert_eq!(e.policy_names(), vec!["p".to_owned()]);
    assert!(e.policy_del("p").unwrap());
    assert!(!e.policy_del("p").unwrap());
    assert!(e.policy_get("p").is_none());
}

#[test]
fn listed_identities_and_overrides_skip_or_change_the_rules() {
    let (e, clock) = engine();
    e.policy_set("p", "RATE 1/1m").unwrap();
    e.policy_set("big", "RATE 100/1m").unwrap();
    e.call(0, |c| {
        c.access_change(false, true, &[Bytes::from_static(b"vip")])?;
        c.access_change(true, true, &[Bytes::from_static(b"10.0.0.0/8")])
    })
    .unwrap();
    let vip = CheckRequest::new("p", "vip");
    for _ in 0..3 {
        let o = e.check(&vip).unwrap();
        assert!(
            o.allowed && o.rules.is_empty(),
            "allow-listed: no rule runs"
        );
        assert_eq!(o.reason.as_deref(), Some("allowlist:vip"));
    }
    let o = e
        .check(&CheckRequest {
            ip: Some("10.1.2.3".parse().unwrap()),
            ..CheckRequest::new("p", "u")
        })
        .unwrap();
    assert!(!o.allowed);
    assert_eq!(o.denied_by.as_deref(), Some("denylist"));
    let words: Vec<Bytes> = ["POLICY", "big", "REASON", "trial", "EXPIRE", "1m"]
        .iter()
        .map(|w| Bytes::from_static(w.as_bytes()))
        .collect();
    e.call(0, |c| {
        let o = crate::policy::model::Override::parse(&words, c.now)?;
        c.override_set(Bytes::from_static(b"u"), o)
    })
    .unwrap();
    let req = CheckRequest::new("p", "u");
    for _ in 0..2 {
        let o = e.check(&req).unwrap();
        assert!(o.allowed, "the override's policy allows 100 a minute");
        assert_eq!(o.overridden.as_deref(), Some("trial"));
    }
    clock.advance(Duration::from_secs(61));
    e.check(&req).unwrap();
    assert!(
        !e.check(&req).unwrap().allowed,
        "the override lapsed: 1 a minute"
    );
}

#[test]
fn events_are_queued_for_the_webhooks_that_want_them() {
    use crate::limiter::breaker::Phase;
    use crate::policy::events::Event;

    let (e, _) = engine();
    e.policy_set("a", "WEBHOOK http://h/a EVENTS denied,suspension RATE 1/1s")
        .unwrap();
    // The same webhook on a second plan: one delivery per event.
    e.policy_set("b", "WEBHOOK http://h/a EVENTS denied,suspension RATE 2/1s")
        .unwrap();
    e.policy_set(
        "c",
        "WEBHOOK http://h/c EVENTS breaker RATE 1/1s BREAKER pay",
    )
    .unwrap();
    e.policy_set("d", "RATE 1/1s BREAKER pay").unwrap();
    let drain = || {
        std::iter::from_fn(|| e.webhooks.pop())
            .map(|j| (j.hook.path.clone(), j.event))
            .collect::<Vec<_>>()
    };
    let denied = |policy| Event::Denied {
        at: T0,
        policy,
        identity: b"u",
        scope: None,
        rule: Some("rate-1s"),
        retry_after_ms: 1000,
        reason: "limit",
        message: None,
        link: None,
    };
    e.emit(&denied("a"));
    e.emit(&denied("d"));
    assert_eq!(
        drain(),
        [("/a".to_owned(), "denied")],
        "a's own denial only"
    );
    e.emit(&Event::Warning {
        at: T0,
        policy: "a",
        identity: b"u",
        scope: None,
        rules: vec!["rate-1s"],
        message: None,
        link: None,
    });
    assert_eq!(drain(), [], "a does not want warnings");
    e.emit(&Event::Suspension {
        at: T0,
        identity: b"u",
        policy: None,
        change: "set",
        reason: None,
    });
    assert_eq!(
        drain(),
        [("/a".to_owned(), "suspension")],
        "every policy's suspension reaches a and b's shared webhook once"
    );
    let breaker = |key| Event::Breaker {
        at: T0,
        key,
        from: Phase::Closed,
        to: Phase::Open,
    };
    e.emit(&breaker(b"pay"));
    e.emit(&breaker(b"other"));
    assert_eq!(
        drain(),
        [("/c".to_owned(), "breaker")],
        "a breaker reaches the policies with a rule on it"
    );
    assert_eq!(e.webhooks.info()[0], ("webhook_queued", 3));
}
