//! The engine as a library (issue 16): the typed methods an embedding Rust program calls, on a
//! manual clock, compared with the RESP commands that call the same engine code, plus the
//! append-only file across a reopen and many threads on one key.

use std::sync::Arc;
use std::time::Duration;

use limitkv::clock::{Clock, ManualClock, Nanos};
use limitkv::cmd::testing::Harness;
use limitkv::config::Config;
use limitkv::engine::{Engine, Error, Take};
use limitkv::limiter::breaker::{BreakerParams, Phase, TripRule};
use limitkv::limiter::cost::{Amount, CostParams, CostPeriod};
use limitkv::limiter::gcra::GcraParams;
use limitkv::limiter::lease::LeaseParams;
use limitkv::limiter::quota::{Calendar, PeriodUnit, QuotaParams};
use limitkv::limiter::rate::RateParams;
use limitkv::limiter::units::{parse_rate, Rate};
use limitkv::limiter::window::WindowParams;
use limitkv::protocol::Frame;

/// 2026-01-01T00:00:00Z, the harness's start.
const START: Nanos = Nanos::from_secs(1_767_225_600);

fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    let engine = Engine::new(Config::default(), clock.clone() as Arc<dyn Clock>);
    (engine, clock)
}

fn ints(f: &Frame) -> Vec<i64> {
    match f {
        Frame::Array(v) => v
            .iter()
            .map(|x| match x {
                Frame::Integer(n) => *n,
                other => panic!("not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn throttle_answers_what_cl_throttle_answers() {
    let (engine, clock) = engine();
    let mut h = Harness::new();
    let params = GcraParams::from_cell(4, 1, 10).unwrap();
    for step in 0..12 {
        let d = engine.throttle(b"user:1", &params, 1).unwrap();
        let reply = h.run(&["CL.THROTTLE", "user:1", "4", "1", "10"]);
        let want = limitkv::limiter::gcra::cell_reply(&d, &params);
        assert_eq!(ints(&reply), want, "step {step}");
        clock.advance(Duration::from_secs(3));
        h.clock.advance(Duration::from_secs(3));
    }
}

#[test]
fn a_key_of_another_kind_is_wrong_type_and_unchanged() {
    let (engine, _) = engine();
    let rate = RateParams::new(parse_rate("10/1s").unwrap(), None).unwrap();
    assert!(engine.rate(b"k", &rate, 1, Take::Charge).unwrap().allowed);
    let gcra = GcraParams::from_cell(1, 1, 1).unwrap();
    // RATE and GCRA share the bucket kind; a window counter is another kind.
    assert!(engine.throttle(b"k", &gcra, 0).is_ok());
    let window = WindowParams::new(5, Nanos::from_secs(60)).unwrap();
    assert_eq!(
        engine.window(b"k", &window, 1, Take::Charge),
        Err(Error::WrongType)
    );
    assert_eq!(
        Error::WrongType.to_string(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let d = engine.rate(b"k", &rate, 0, Take::Peek).unwrap();
    assert_eq!(d.remaining, 9, "the failed call changed nothing");
}

#[test]
fn every_family_takes_and_peeks() {
    let (engine, clock) = engine();
    let rate = RateParams::new(Rate::new(2, Nanos::from_secs(1)).unwrap(), None).unwrap();
    assert!(engine.rate(b"r", &rate, 2, Take::Charge).unwrap().allowed);
    let peek = engine.rate(b"r", &rate, 1, Take::Peek).unwrap();
    assert!(!peek.allowed);
    assert_eq!(peek.retry_after, Some(Nanos::from_millis(500)));

    let window = WindowParams::new(3, Nanos::from_secs(60)).unwrap();
    for _ in 0..3 {
        assert!(
            engine
                .window(b"w", &window, 1, Take::Charge)
                .unwrap()
                .decision
                .allowed
        );
    }
    let w = engine.window(b"w", &window, 1, Take::Charge).unwrap();
    assert!(!w.decision.allowed);
    assert_eq!(w.estimate, 3);

    let quota = QuotaParams::new(2, Calendar::utc(PeriodUnit::Day), 0).unwrap();
    assert!(
        engine
            .quota(b"q", &quota, 2, Take::Charge)
            .unwrap()
            .decision
            .allowed
    );
    let q = engine.quota(b"q", &quota, 1, Take::Charge).unwrap();
    assert!(!q.decision.allowed);
    assert_eq!(q.used, 2);
    clock.advance(Duration::from_secs(86_400));
    assert!(
        engine
            .quota(b"q", &quota, 1, Take::Charge)
            .unwrap()
            .decision
            .allowed
    );

    let cap = CostParams::new(
        Amount::parse("1.50").unwrap(),
        CostPeriod::Rolling(Nanos::from_secs(3600)),
    )
    .unwrap();
    let c = engine
        .cost(
            b"c",
            &cap,
            Amount::parse("1.25").unwrap(),
            false,
            Take::Charge,
        )
        .unwrap();
    assert!(c.decision.allowed);
    let c = engine
        .cost(
            b"c",
            &cap,
            Amount::parse("0.30").unwrap(),
            false,
            Take::Charge,
        )
        .unwrap();
    assert!(!c.decision.allowed, "1.25 + 0.30 is over 1.50");
    assert_eq!(c.spent, Amount::parse("1.25").unwrap());

    let lease = LeaseParams::new(1, Nanos::from_secs(30)).unwrap();
    let first = engine.lease_acquire(b"l", &lease).unwrap();
    assert!(first.outcome.decision.allowed);
    assert_eq!(first.holders, 1);
    assert!(
        !engine
            .lease_acquire(b"l", &lease)
            .unwrap()
            .outcome
            .decision
            .allowed
    );
    assert_eq!(engine.lease_count(b"l").unwrap(), 1);
    let id = first.outcome.lease.unwrap().id;
    assert!(engine.lease_release(b"l", id).unwrap());
    assert!(
        !engine.lease_release(b"l", id).unwrap(),
        "releasing twice is harmless"
    );
    assert_eq!(engine.lease_count(b"l").unwrap(), 0);

    let breaker = BreakerParams::new(
        TripRule::Failures(2),
        Nanos::from_secs(60),
        Nanos::from_secs(30),
        1,
    )
    .unwrap();
    engine.breaker_report(b"b", &breaker, false).unwrap();
    let st = engine.breaker_report(b"b", &breaker, false).unwrap();
    assert_eq!(st.phase, Phase::Open);
    assert!(
        !engine
            .breaker_allow(b"b", &breaker, Take::Charge)
            .unwrap()
            .decision
            .allowed
    );
    clock.advance(Duration::from_secs(30));
    assert!(
        engine
            .breaker_allow(b"b", &breaker, Take::Charge)
            .unwrap()
            .decision
            .allowed
    );
    assert_eq!(
        engine.breaker_state(b"b", &breaker).unwrap().phase,
        Phase::HalfOpen
    );
    assert!(engine.breaker_reset(b"b").unwrap());
}

#[test]
fn the_append_only_file_keeps_state_across_a_reopen() {
    let dir = std::env::temp_dir().join(format!(
        "limitkv-engine-test-{}-{}",
        std::process::id(),
        START.as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || Config {
        appendonly: true,
        dir: dir.clone(),
        ..Config::default()
    };
    // A day-long quota, so the state outlives the test whatever the wall clock says.
    let quota = QuotaParams::new(3, Calendar::utc(PeriodUnit::Day), 0).unwrap();
    {
        let engine = Engine::open(config()).unwrap();
        for _ in 0..2 {
            assert!(
                engine
                    .quota(b"q", &quota, 1, Take::Charge)
                    .unwrap()
                    .decision
                    .allowed
            );
        }
        engine.shutdown().unwrap();
    }
    let engine = Engine::open(config()).unwrap();
    let q = engine.quota(b"q", &quota, 1, Take::Peek).unwrap();
    // `used` counts the peeked unit too: 2 replayed takes + 1.
    assert_eq!(q.used, 3, "the reopened engine replayed both takes");
    assert_eq!(q.decision.remaining, 0);
    engine.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn threads_on_one_key_never_admit_more_than_the_limit() {
    let (engine, _) = engine();
    let engine = Arc::new(engine);
    // A manual clock that never moves: exactly max_burst + 1 admissions.
    let params = GcraParams::from_cell(99, 1, 3600).unwrap();
    let admitted: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let engine = engine.clone();
                s.spawn(move || {
                    (0..100)
                        .filter(|_| engine.throttle(b"hot", &params, 1).unwrap().allowed)
                        .count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 100);
}
