//! Policies over TCP: the plans of a real API end to end (free, pro, enterprise override, an AI
//! endpoint with reserve then settle), concurrency (many clients on one identity never exceed
//! any rule; reserves and settles never overspend), the reply shapes in RESP2 and RESP3,
//! config-file policies, and persistence across restarts and rewrites.
//!
//! Time passes only on the server's manual clock.

mod common;

use std::time::Duration;

use common::{Raw, Reply, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;

fn allowed(r: &Reply) -> bool {
    match r.get("allowed") {
        Some(Reply::Bool(b)) => *b,
        Some(Reply::Int(n)) => *n == 1,
        other => panic!("no allowed field: {other:?} in {r:?}"),
    }
}

fn int(r: &Reply, field: &str) -> i64 {
    match r.get(field) {
        Some(Reply::Int(n)) => *n,
        other => panic!("{field} is not an integer: {other:?} in {r:?}"),
    }
}

fn text(r: &Reply, field: &str) -> String {
    match r.get(field) {
        Some(v @ (Reply::Bulk(_) | Reply::Simple(_))) => v.text(),
        other => panic!("{field} is not a string: {other:?} in {r:?}"),
    }
}

/// `rule -> remaining` of a check reply, as text.
fn remaining(r: &Reply) -> Vec<(String, String)> {
    let Some(Reply::Array(rules)) = r.get("rules") else {
        panic!("no rules in {r:?}")
    };
    rules
        .iter()
        .map(|x| {
            let rem = match x.get("remaining") {
                Some(Reply::Int(n)) => n.to_string(),
                Some(other) => other.text(),
                None => panic!("no remaining"),
            };
            (x.get("rule").unwrap().text(), rem)
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Sends `args` `n` times in one write and reads the `n` replies.
async fn pipeline(c: &mut Raw, args: &[&str], n: usize) -> Vec<Reply> {
    let one = common::resp(args);
    let mut bytes = Vec::with_capacity(one.len() * n);
    for _ in 0..n {
        bytes.extend_from_slice(&one);
    }
    c.send(&bytes).await;
    c.read_replies(n).await
}

async fn resp3(server: &TestServer) -> Raw {
    let mut c = server.raw().await;
    c.cmd(&["HELLO", "3"]).await;
    c
}

/// Micro-units as the server writes decimals: `0.82`, `3`, `0.000001`.
fn decimal(micros: u64) -> String {
    let frac = format!("{:06}", micros % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        (micros / 1_000_000).to_string()
    } else {
        format!("{}.{frac}", micros / 1_000_000)
    }
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

#[tokio::test]
async fn the_plans_of_a_real_api_end_to_end() {
    let server = TestServer::start().await;
    let mut c = resp3(&server).await;
    let chat = "POST /v1/chat";
    for def in [
        vec![
            "POLICY.SET",
            "free",
            "RATE",
            "100/1m",
            "QUOTA",
            "1000/day",
            "SCOPE",
            chat,
            "TOKENS",
            "50000/1m",
            "COST",
            "1.00/day",
        ],
        vec![
            "POLICY.SET",
            "pro",
            "RATE",
            "1000/1m",
            "SCOPE",
            chat,
            "TOKENS",
            "50000/1m",
            "COST",
            "1.00/day",
        ],
        vec![
            "POLICY.SET",
            "enterprise",
            "RATE",
            "1000/1m",
            "QUOTA",
            "100000/day",
        ],
    ] {
        assert_eq!(c.cmd(&def).await, ok(), "{def:?}");
    }

    // free: 100 requests a minute...
    let replies = pipeline(&mut c, &["LIMIT.CHECK", "free", "alice"], 101).await;
    assert!(replies[..100].iter().all(allowed));
    let denied = &replies[100];
    assert!(!allowed(denied));
    assert_eq!(text(denied, "denied_by"), "rate-1m");
    assert_eq!(int(denied, "retry_after_ms"), 600);
    assert_eq!(int(denied, "retry-after"), 1);
    assert_eq!(
        text(denied, "ratelimit-policy"),
        "\"rate-1m\";q=100;w=60, \"quota-day\";q=1000;w=86400"
    );
    assert_eq!(
        text(denied, "ratelimit"),
        "\"rate-1m\";r=0;t=60, \"quota-day\";r=900;t=86400"
    );
    // ... and 1000 a day: nine more minutes of full use spend the day.
    for minute in 1..10 {
        server.clock.advance(Duration::from_secs(60));
        let replies = pipeline(&mut c, &["LIMIT.CHECK", "free", "alice"], 100).await;
        assert!(replies.iter().all(allowed), "minute {minute}");
    }
    server.clock.advance(Duration::from_secs(60));
    let r = c.cmd(&["LIMIT.CHECK", "free", "alice"]).await;
    assert_eq!(text(&r, "denied_by"), "quota-day");
    let to_midnight = 86_400_000 - 10 * 60_000;
    assert_eq!(int(&r, "retry_after_ms"), to_midnight);
    let status = c.cmd(&["LIMIT.STATUS", "free", "alice"]).await;
    assert_eq!(
        remaining(&status),
        pairs(&[("rate-1m", "100"), ("quota-day", "0")])
    );

    // pro: 1000 a minute, no daily cap.
    for minute in 0..3 {
        let replies = pipeline(&mut c, &["LIMIT.CHECK", "pro", "bob"], 1001).await;
        assert!(replies[..1000].iter().all(allowed), "minute {minute}");
        assert_eq!(text(&replies[1000], "denied_by"), "rate-1m");
        server.clock.advance(Duration::from_secs(60));
    }

    // enterprise: a per-customer override on top of the plan.
    assert_eq!(
        c.cmd(&[
            "OVERRIDE.SET",
            "acme",
            "FOR",
            "enterprise",
            "REASON",
            "contract 2026-17",
            "RATE",
            "2000/1m"
        ])
        .await,
        ok()
    );
    let replies = pipeline(&mut c, &["LIMIT.CHECK", "enterprise", "acme"], 2001).await;
    assert!(replies[..2000].iter().all(allowed));
    assert_eq!(text(&replies[0], "override"), "contract 2026-17");
    assert_eq!(text(&replies[2000], "denied_by"), "rate-1m");
    let other = c.cmd(&["LIMIT.CHECK", "enterprise", "initech"]).await;
    assert_eq!(
        remaining(&other),
        pairs(&[("rate-1m", "999"), ("quota-day", "99999")])
    );
    // The override is only FOR enterprise: acme on the free plan gets the free plan.
    let r = c.cmd(&["LIMIT.CHECK", "free", "acme"]).await;
    assert_eq!(
        remaining(&r),
        pairs(&[("rate-1m", "99"), ("quota-day", "999")])
    );

    // The AI endpoint: reserve 4000 tokens per call, settle the actual usage.
    server.clock.advance(Duration::from_secs(3600));
    let mut open = Vec::new();
    for i in 0..12 {
        let r = c
            .cmd(&[
                "LIMIT.RESERVE",
                "pro",
                "carol",
                "SCOPE",
                chat,
                "TOKENS",
                "4000",
                "COST",
                "0.02",
            ])
            .await;
        assert!(allowed(&r), "reserve {i}: {r:?}");
        open.push(int(&r, "reservation").to_string());
    }
    // 48,000 of 50,000 tokens are reserved: a 13th estimate does not fit.
    let r = c
        .cmd(&[
            "LIMIT.RESERVE",
            "pro",
            "carol",
            "SCOPE",
            chat,
            "TOKENS",
            "4000",
        ])
        .await;
    assert_eq!(text(&r, "denied_by"), "POST /v1/chat/tokens-1m");
    assert!(r.get("reservation").is_none(), "no reservation when denied");
    // Settling the actual usage refunds the difference at once.
    for id in &open {
        let s = c
            .cmd(&["LIMIT.SETTLE", id, "TOKENS", "1000", "COST", "0.015"])
            .await;
        assert_eq!(text(&s, "action"), "settle");
    }
    let r = c
        .cmd(&["LIMIT.STATUS", "pro", "carol", "SCOPE", chat])
        .await;
    let tokens_left: i64 = remaining(&r)[1].1.parse().unwrap();
    assert!(
        (38_000..=38_100).contains(&tokens_left),
        "12 x 1000 used: {tokens_left}"
    );
    assert_eq!(remaining(&r)[2], ("cost-day".into(), "0.82".into()));
    // The dollar budget: settling reality may pass the cap; then nothing more is admitted.
    let r = c
        .cmd(&[
            "LIMIT.RESERVE",
            "pro",
            "carol",
            "SCOPE",
            chat,
            "TOKENS",
            "4000",
            "COST",
            "0.5",
        ])
        .await;
    let id = int(&r, "reservation").to_string();
    let s = c.cmd(&["LIMIT.SETTLE", &id, "COST", "0.9"]).await;
    let Some(Reply::Array(rules)) = s.get("rules") else {
        panic!("{s:?}")
    };
    assert_eq!(rules[2].get("remaining").unwrap().text(), "0");
    let r = c
        .cmd(&[
            "LIMIT.CHECK",
            "pro",
            "carol",
            "SCOPE",
            chat,
            "COST",
            "0.000001",
        ])
        .await;
    assert_eq!(text(&r, "denied_by"), "POST /v1/chat/cost-day");
    // Other endpoints of the pro plan are unaffected by the AI budget.
    assert!(allowed(&c.cmd(&["LIMIT.CHECK", "pro", "carol"]).await));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn replies_are_maps_in_resp3_and_flat_arrays_in_resp2() {
    let server = TestServer::start().await;
    let mut c2 = server.raw().await;
    c2.cmd(&["POLICY.SET", "p", "RATE", "5/1s"]).await;
    let r2 = c2.cmd(&["LIMIT.CHECK", "p", "u"]).await;
    let Reply::Array(flat) = &r2 else {
        panic!("{r2:?}")
    };
    let names: Vec<String> = flat.iter().step_by(2).map(Reply::text).collect();
    assert_eq!(
        names,
        [
            "allowed",
            "limit",
            "remaining",
            "retry_after_ms",
            "reset_after_ms",
            "denied_by",
            "action",
            "delay_ms",
            "reason",
            "override",
            "dryrun",
            "warnings",
            "warning",
            "overage",
            "message",
            "link",
            "lease_id",
            "rules",
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset"
        ]
    );
    assert_eq!(r2.get("allowed"), Some(&Reply::Int(1)));
    assert_eq!(r2.get("denied_by"), Some(&Reply::Null));
    let mut c3 = resp3(&server).await;
    let r3 = c3.cmd(&["LIMIT.CHECK", "p", "u"]).await;
    assert!(matches!(r3, Reply::Map(_)));
    assert_eq!(r3.get("allowed"), Some(&Reply::Bool(true)));
    assert_eq!(int(&r3, "remaining"), 3);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn fifty_concurrent_clients_on_one_identity_never_exceed_any_rule() {
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    admin
        .cmd(&[
            "POLICY.SET",
            "race",
            "RATE",
            "100/1m",
            "WINDOW",
            "1000/1m",
            "QUOTA",
            "250/day",
            "LEASE",
            "1000",
        ])
        .await;
    let mut total = 0;
    for (round, want) in [(0, 100), (1, 100), (2, 50), (3, 0)] {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let addr = server.addr;
            tasks.spawn(async move {
                let mut c = Raw::connect(addr).await;
                let replies = pipeline(&mut c, &["LIMIT.CHECK", "race", "shared"], 6).await;
                replies.iter().filter(|r| allowed(r)).count()
            });
        }
        let mut admitted = 0;
        while let Some(n) = tasks.join_next().await {
            admitted += n.unwrap();
        }
        // 300 racing checks a round: the rate admits its burst of 100 a minute until the
        // quota's 250 a day are spent; never one more.
        assert_eq!(admitted, want, "round {round}");
        total += admitted;
        server.clock.advance(Duration::from_secs(60));
    }
    assert_eq!(total, 250);
    let status = admin.cmd(&["LIMIT.STATUS", "race", "shared"]).await;
    assert_eq!(remaining(&status)[2], ("quota-day".into(), "0".into()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_reserves_and_settles_never_overspend() {
    let server = TestServer::start().await;
    let mut admin = server.raw().await;
    admin
        .cmd(&[
            "POLICY.SET",
            "llm",
            "TOKENS",
            "100000/day",
            "COST",
            "5/day",
            "LEASE",
            "8",
            "TTL",
            "1m",
        ])
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..20u64 {
        let addr = server.addr;
        tasks.spawn(async move {
            let mut c = Raw::connect(addr).await;
            let mut used = (0u64, 0u64);
            for call in 0..15u64 {
                let r = c
                    .cmd(&[
                        "LIMIT.RESERVE",
                        "llm",
                        "team",
                        "TOKENS",
                        "3000",
                        "COST",
                        "0.1",
                    ])
                    .await;
                if !allowed(&r) {
                    continue;
                }
                let id = int(&r, "reservation").to_string();
                // Actual usage varies and sometimes exceeds the estimate.
                let tokens = (client * 997 + call * 131) % 3500;
                let micros = (client * 7919 + call * 104_729) % 120_000;
                let cost = format!("0.{micros:06}");
                let s = c
                    .cmd(&[
                        "LIMIT.SETTLE",
                        &id,
                        "TOKENS",
                        &tokens.to_string(),
                        "COST",
                        &cost,
                    ])
                    .await;
                assert_eq!(text(&s, "action"), "settle");
                used.0 += tokens;
                used.1 += micros;
            }
            used
        });
    }
    let (mut tokens, mut micros) = (0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        let (t, m) = r.unwrap();
        tokens += t;
        micros += m;
    }
    let status = admin.cmd(&["LIMIT.STATUS", "llm", "team"]).await;
    let rem = remaining(&status);
    // Everything settled: the counters hold exactly the actual usage...
    assert_eq!(rem[0].1, 100_000u64.saturating_sub(tokens).to_string());
    let left = 5_000_000u64.saturating_sub(micros);
    assert_eq!(rem[1].1, decimal(left));
    // ... which never went past what reserves could admit: a reserve is admitted only while
    // its estimate fits, and an overrun settle can pass the cap by at most one call's excess
    // per concurrent reservation (8 leases, 500 tokens over each).
    assert!(tokens <= 100_000 + 8 * 500, "tokens {tokens}");
    assert_eq!(rem[2], ("lease".into(), "8".into()), "every lease released");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_file_policies_load_at_start() {
    let dir = common::temp_dir();
    let file = dir.path().join("policies.conf");
    std::fs::write(
        &file,
        "# plans\npro RATE 1000/1m\n\nai TOKENS 50000/1m COST 1/day\n",
    )
    .unwrap();
    let mut cfg = Config::default();
    cfg.load_str(
        &format!(
            "policy free RATE 100/1m SCOPE \"POST /chat\" RATE 10/1m\npolicy-file {}\n",
            file.display()
        ),
        "limitkv.conf",
    )
    .unwrap();
    let server = TestServer::with_config(cfg).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["POLICY.LIST"]).await,
        Reply::Array(vec![
            Reply::bulk("ai"),
            Reply::bulk("free"),
            Reply::bulk("pro")
        ])
    );
    let p = c.cmd(&["POLICY.GET", "free"]).await;
    assert_eq!(
        text(&p, "definition"),
        "RATE 100/1m SCOPE \"POST /chat\" RATE 10/1m"
    );
    server.stop().await.unwrap();
    // A bad policy line refuses to start.
    let cfg = Config {
        policies: vec!["bad RATE 1/1x".into()],
        port: 0,
        ..Config::default()
    };
    let err = limitkv::server::bind(cfg, std::sync::Arc::new(limitkv::clock::SystemClock))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("policy line 1: rule 1 (RATE): invalid rate '1/1x'"),
        "{err}"
    );
}

#[tokio::test]
async fn policies_overrides_lists_and_usage_survive_restarts_and_rewrites() {
    let dir = common::temp_dir();
    let cfg = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(cfg()).await;
    let mut c = server.raw().await;
    c.cmd(&[
        "POLICY.SET",
        "free",
        "QUOTA",
        "10/day",
        "SCOPE",
        "POST /x",
        "TOKENS",
        "5000/day",
    ])
    .await;
    c.cmd(&["POLICY.SET", "gone", "RATE", "1/1s"]).await;
    c.cmd(&["POLICY.DEL", "gone"]).await;
    c.cmd(&[
        "OVERRIDE.SET",
        "acme",
        "REASON",
        "vip",
        "EXPIRE",
        "1d",
        "QUOTA",
        "20/day",
    ])
    .await;
    c.cmd(&["OVERRIDE.SET", "brief", "EXPIRE", "1m", "QUOTA", "1/day"])
        .await;
    c.cmd(&["ALLOWLIST.ADD", "svc", "10.0.0.0/8"]).await;
    c.cmd(&["DENYLIST.ADD", "2001:db8::/32", "mallory"]).await;
    c.cmd(&["DENYLIST.DEL", "mallory"]).await;
    for _ in 0..3 {
        c.cmd(&["LIMIT.CHECK", "free", "alice"]).await;
    }
    let r = c
        .cmd(&[
            "LIMIT.RESERVE",
            "free",
            "alice",
            "SCOPE",
            "POST /x",
            "TOKENS",
            "4000",
        ])
        .await;
    let pending = int(&r, "reservation").to_string();
    server.stop().await.unwrap();

    for round in 0..2 {
        let server = TestServer::with_config(cfg()).await;
        // 2 minutes later: the short override has lapsed.
        server.clock.advance(Duration::from_secs(120));
        let mut c = server.raw().await;
        assert_eq!(
            c.cmd(&["POLICY.LIST"]).await,
            Reply::Array(vec![Reply::bulk("free")]),
            "round {round}"
        );
        assert_eq!(
            text(&c.cmd(&["POLICY.GET", "free"]).await, "definition"),
            "QUOTA 10/day SCOPE \"POST /x\" TOKENS 5000/day"
        );
        assert_eq!(
            text(&c.cmd(&["OVERRIDE.GET", "acme"]).await, "reason"),
            "vip"
        );
        assert_eq!(
            c.cmd(&["OVERRIDE.GET", "brief"]).await,
            Reply::Null,
            "round {round}"
        );
        assert_eq!(
            c.cmd(&["ALLOWLIST.LIST"]).await,
            Reply::Array(vec![Reply::bulk("10.0.0.0/8"), Reply::bulk("svc")])
        );
        assert_eq!(
            c.cmd(&["DENYLIST.LIST"]).await,
            Reply::Array(vec![Reply::bulk("2001:db8::/32")])
        );
        let r = c
            .cmd(&["LIMIT.STATUS", "free", "alice", "SCOPE", "POST /x"])
            .await;
        assert_eq!(
            remaining(&r),
            pairs(&[("quota-day", "6"), ("tokens-day", "1000")]),
            "round {round}: usage and the pending reservation survived"
        );
        if round == 0 {
            assert_eq!(
                c.cmd(&["BGREWRITEAOF"]).await,
                Reply::Simple("Background append only file rewriting scheduled".into())
            );
            common::eventually(Duration::from_secs(10), "the rewrite to finish", || async {
                let info = server
                    .raw()
                    .await
                    .cmd(&["INFO", "persistence"])
                    .await
                    .text();
                info.contains("aof_rewrites:1").then_some(())
            })
            .await;
        } else {
            // The reservation made before two restarts still settles.
            let s = c.cmd(&["LIMIT.SETTLE", &pending, "TOKENS", "500"]).await;
            assert_eq!(text(&s, "action"), "settle");
            let r = c
                .cmd(&["LIMIT.STATUS", "free", "alice", "SCOPE", "POST /x"])
                .await;
            assert_eq!(remaining(&r)[1], ("tokens-day".into(), "4500".into()));
            // New ids stay above the ones in the keyspace.
            let r = c
                .cmd(&[
                    "LIMIT.RESERVE",
                    "free",
                    "alice",
                    "SCOPE",
                    "POST /x",
                    "TOKENS",
                    "1",
                ])
                .await;
            assert!(int(&r, "reservation") > pending.parse::<i64>().unwrap());
        }
        server.stop().await.unwrap();
    }
}

/// Denials and overrides reach Pub/Sub subscribers as the documented JSON, in RESP2 (message
/// arrays) and RESP3 (push frames), and `PSUBSCRIBE limitkv:events:*` sees every kind.
#[tokio::test]
async fn events_are_published_on_pubsub_channels() {
    let server = TestServer::start().await;
    let mut sub = server.raw().await;
    let r = sub.cmd(&["SUBSCRIBE", "limitkv:events:denied"]).await;
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::bulk("subscribe"),
            Reply::bulk("limitkv:events:denied"),
            Reply::Int(1)
        ])
    );
    let mut psub = resp3(&server).await;
    psub.cmd(&["PSUBSCRIBE", "limitkv:events:*"]).await;
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["POLICY.SET", "tiny", "RATE", "1/1m"]).await, ok());
    assert!(allowed(&c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await));
    assert!(!allowed(&c.cmd(&["LIMIT.CHECK", "tiny", "bob"]).await));
    let Reply::Array(msg) = sub.read_reply().await else {
        panic!("a message array")
    };
    assert_eq!(msg[0], Reply::bulk("message"));
    assert_eq!(msg[1], Reply::bulk("limitkv:events:denied"));
    let json = msg[2].text();
    assert!(json.starts_with("{\"event\":\"denied\""), "{json}");
    assert!(
        json.contains("\"policy\":\"tiny\"") && json.contains("\"identity\":\"bob\""),
        "{json}"
    );
    let Reply::Push(p) = psub.read_reply().await else {
        panic!("a push frame in RESP3")
    };
    assert_eq!(p[0], Reply::bulk("pmessage"));
    assert_eq!(p[2], Reply::bulk("limitkv:events:denied"));
    assert_eq!(
        c.cmd(&["OVERRIDE.SET", "bob", "POLICY", "tiny", "REASON", "test"])
            .await,
        ok()
    );
    let Reply::Push(p) = psub.read_reply().await else {
        panic!("a push frame in RESP3")
    };
    assert_eq!(p[2], Reply::bulk("limitkv:events:override"));
    assert!(p[3].text().contains("\"change\":\"set\""), "{:?}", p[3]);
    server.stop().await.unwrap();
}
