//! Policy definitions (`POLICY.SET name rules...`, config-file `policy` lines) and override
//! definitions (`OVERRIDE.SET identity ...`) on arbitrary text.
//!
//! The line is split the way config-file policy lines are (`split_words`), then parsed
//! directly with `Policy::parse` and `Override::parse`. Invariants: no panic; `join_words`
//! output splits back to the same words; a parsed definition's canonical words (what the AOF
//! records and `POLICY.GET` shows) parse again to the same canonical words, and load through
//! the AOF catalog; and a valid policy then survives `LIMIT.*` checks on a manual clock the
//! input moves, each reply encoding as one well-formed RESP value.

#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use limitkv::clock::Nanos;
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};
use limitkv::config::Config;
use limitkv::persist::{Catalog, Record};
use limitkv::policy::model::{join_words, split_words, Override, Policy};
use limitkv::policy::Registry;
use limitkv::protocol::{encode, Frame, RespVersion};

fn words_of(w: &[String]) -> Vec<Bytes> {
    w.iter().map(|s| Bytes::from(s.clone())).collect()
}

fn run(h: &mut Harness, req: &[Bytes]) -> Frame {
    let now = h.clock_now();
    let reply = dispatch(&mut Ctx::new(&h.shared, &mut h.session, now), req);
    for v in [RespVersion::Resp2, RespVersion::Resp3] {
        let mut out = bytes::BytesMut::new();
        encode(&reply, v, &mut out);
        limitkv_fuzz::assert_replies(&out, limitkv_fuzz::wire_values(&reply), &(req, v));
    }
    reply
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs a few checks of `policy` (and of the override on `ident`), moving the clock by the
/// `steps` bytes.
fn exercise(name: &str, words: &[Bytes], override_words: Option<&[Bytes]>, steps: &[u8]) {
    let mut h = Harness::with_config(Config {
        databases: 1,
        shards: 2,
        ..Config::default()
    });
    let mut set = vec![b("POLICY.SET"), b(name)];
    set.extend_from_slice(words);
    let reply = run(&mut h, &set);
    assert_eq!(
        reply,
        Frame::OK,
        "a policy Policy::parse accepts is refused: {set:?}"
    );
    if let Some(ow) = override_words {
        let mut set = vec![b("OVERRIDE.SET"), b("vip")];
        set.extend_from_slice(ow);
        run(&mut h, &set);
    }
    for (i, &s) in steps.iter().take(24).enumerate() {
        match s % 4 {
            0 => h.clock.advance(Duration::from_millis(u64::from(s) * 37)),
            1 => h.clock.advance(Duration::from_secs(u64::from(s) * 3_600)),
            2 => h.clock.set(Nanos(
                h.clock_now().0.saturating_sub(u64::from(s) * 1_000_000),
            )),
            _ => {}
        }
        let ident = if i % 3 == 0 { "vip" } else { "user" };
        let tokens = (u64::from(s) * 1_000).to_string();
        let reqs: [&[&str]; 4] = [
            &[
                "LIMIT.CHECK",
                name,
                ident,
                "TOKENS",
                &tokens,
                "COST",
                "0.25",
            ],
            &["LIMIT.STATUS", name, ident],
            &["LIMIT.RESERVE", name, ident, "TOKENS", &tokens],
            &[
                "LIMIT.CHECK",
                name,
                ident,
                "SCOPE",
                "POST /v1/chat",
                "DRYRUN",
            ],
        ];
        let req: Vec<Bytes> = reqs[usize::from(s / 4) % 4].iter().map(|w| b(w)).collect();
        let reply = run(&mut h, &req).into_maps();
        // A reservation, when one was made, is settled right away.
        if let Frame::Map(m) = &reply {
            if let Some((_, Frame::Integer(id))) =
                m.iter().find(|(k, _)| *k == Frame::bulk("reservation"))
            {
                run(&mut h, &[b("LIMIT.SETTLE"), b(&id.to_string())]);
            }
        }
    }
    run(&mut h, &[b("POLICY.GET"), b(name)]);
}

fuzz_target!(|data: &[u8]| {
    // The tail after a NUL byte, if any, runs the policy in `exercise` and drives its clock.
    let (text, steps) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(line) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(words) = split_words(line) else {
        return;
    };
    let joined = join_words(&words);
    assert_eq!(
        split_words(&joined).as_ref().ok(),
        Some(&words),
        "join_words does not split back: {joined:?}"
    );
    let now = Nanos::from_secs(1_767_225_600);
    let registry = Registry::default();

    let mut policy_words = None;
    if let Some((name, rest)) = words.split_first() {
        let rest = words_of(rest);
        if let Ok(p) = Policy::parse(name.as_bytes(), &rest) {
            let canonical = p.body.words();
            let again = Policy::parse(name.as_bytes(), &words_of(&canonical))
                .unwrap_or_else(|e| panic!("canonical words {canonical:?} refused: {e:?}"));
            assert_eq!(
                again.body.words(),
                canonical,
                "canonical words are not a fixpoint"
            );
            registry
                .apply(
                    Record::PolicySet {
                        name: Bytes::from(name.clone()),
                        words: words_of(&canonical),
                    },
                    now,
                )
                .expect("the AOF catalog loads a canonical policy");
            policy_words = Some((name.clone(), rest));
        }
    }

    let all = words_of(&words);
    let mut override_words = None;
    if let Ok(o) = Override::parse(&all, now) {
        let canonical = o.words();
        let again = Override::parse(&words_of(&canonical), now)
            .unwrap_or_else(|e| panic!("canonical override {canonical:?} refused: {e:?}"));
        assert_eq!(
            again.words(),
            canonical,
            "override words are not a fixpoint"
        );
        registry
            .apply(
                Record::OverrideSet {
                    identity: Bytes::from_static(b"vip"),
                    words: words_of(&canonical),
                },
                now,
            )
            .expect("the AOF catalog loads a canonical override");
        override_words = Some(all);
    }

    // Only inputs with a clock tail run the policy, so that pure parsing stays fast.
    if let Some((name, rest)) = policy_words.filter(|_| !steps.is_empty()) {
        exercise(&name, &rest, override_words.as_deref(), steps);
    }
});
