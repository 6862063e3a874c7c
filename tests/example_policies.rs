//! The policy files of examples/policies/, one per kind of user (issue 17), loaded the way an
//! operator loads them (`policy-file`), and each user's scenario driven over TCP with the
//! `redis` crate against a ManualClock server, asserting exact outcomes: tiers with a warning
//! once per period and an upgrade mid-window, an AI proxy streaming a 20-chunk response behind
//! a breaker, a shared quota with grace and suspension, a resource pool with priorities under
//! 32 concurrent clients, and an API PRD's scopes, slowdown, log-only trial and headers.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::replies::{check, count_events, flag, int, rule, text};
use common::{fields, query, race, TestServer};
use limitkv::config::Config;
use redis::Value as V;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policies")
}

async fn server() -> TestServer {
    let mut cfg = Config::default();
    for f in [
        "plan-aware-api.conf",
        "ai-proxy.conf",
        "shared-quota.conf",
        "resource-manager.conf",
        "api-prd.conf",
    ] {
        cfg.policy_files.push(examples().join(f));
    }
    TestServer::with_config(cfg).await
}

#[tokio::test]
async fn every_example_file_loads() {
    let server = server().await;
    let mut con = server.redis(true).await;
    let V::Array(names) = query(&mut con, &["POLICY.LIST"]).await else {
        panic!("an array")
    };
    assert_eq!(
        names.len(),
        7,
        "free, pro, enterprise, ai, tenant, gpu, public"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn plan_aware_api_tiers_warn_once_a_day_and_upgrades_keep_the_count() {
    let server = server().await;
    let mut con = server.redis(true).await;
    let mut warned = Vec::new();
    for i in 1..=10 {
        let r = check(&mut con, &["LIMIT.CHECK", "free", "cust-1"]).await;
        assert!(flag(&r, "allowed"), "request {i}");
        warned.push(flag(&r, "warning"));
    }
    assert_eq!(
        int(
            &check(&mut con, &["LIMIT.CHECK", "free", "cust-1"]).await,
            "retry_after_ms"
        ),
        6_000
    );
    assert_eq!(
        warned.iter().filter(|w| **w).count(),
        0,
        "10 of 100 a day is no warning"
    );
    // 80 requests over the day: the 80th warns, with the plan's words, and one event fires.
    for i in 11..=85 {
        server.clock.advance(Duration::from_secs(6));
        let r = check(&mut con, &["LIMIT.CHECK", "free", "cust-1"]).await;
        assert!(flag(&r, "allowed"), "request {i}");
        assert_eq!(flag(&r, "warning"), i >= 80, "request {i}");
        if i == 80 {
            assert_eq!(
                text(&r, "link").as_deref(),
                Some("https://example.com/pricing")
            );
        }
    }
    assert_eq!(count_events(&mut con, "limitkv:events:warning").await, 1);
    // The customer upgrades mid-day: 85 used stay used, under the pro quota.
    query(
        &mut con,
        &["OVERRIDE.SET", "cust-1", "FOR", "free", "POLICY", "pro"],
    )
    .await;
    let r = check(&mut con, &["LIMIT.CHECK", "free", "cust-1"]).await;
    assert!(flag(&r, "allowed"));
    assert_eq!(
        int(&rule(&r, 1), "remaining"),
        10_000 - 1,
        "pro's own usage starts at 0"
    );
    // Keys are per policy: the override that raises the free plan's rules keeps the count.
    query(
        &mut con,
        &[
            "OVERRIDE.SET",
            "cust-2",
            "FOR",
            "free",
            "QUOTA",
            "10000/day",
        ],
    )
    .await;
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(6));
        check(&mut con, &["LIMIT.CHECK", "free", "cust-2"]).await;
    }
    let r = check(&mut con, &["LIMIT.STATUS", "free", "cust-2"]).await;
    assert_eq!(int(&rule(&r, 1), "remaining"), 9_997);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ai_proxy_streams_a_20_chunk_response_behind_a_breaker() {
    let server = server().await;
    let mut con = server.redis(true).await;
    let r = check(
        &mut con,
        &[
            "LIMIT.RESERVE",
            "ai",
            "team-7",
            "TOKENS",
            "500",
            "COST",
            "0.02",
        ],
    )
    .await;
    assert!(flag(&r, "allowed"));
    let id = int(&r, "reservation").to_string();
    let mut exhausted_at = None;
    for chunk in 1..=20 {
        let total = (chunk * 100).to_string();
        let p = check(
            &mut con,
            &["LIMIT.SETTLE", &id, "PARTIAL", "TOKENS", &total],
        )
        .await;
        if flag(&p, "exhausted") && exhausted_at.is_none() {
            exhausted_at = Some(chunk);
        }
    }
    assert_eq!(
        exhausted_at,
        Some(20),
        "2000 tokens a minute: the 20th chunk uses the last"
    );
    let s = check(
        &mut con,
        &["LIMIT.SETTLE", &id, "TOKENS", "2000", "COST", "0.03"],
    )
    .await;
    assert_eq!(text(&s, "action").as_deref(), Some("settle"));
    let r = check(&mut con, &["LIMIT.CHECK", "ai", "team-7", "TOKENS", "1"]).await;
    assert_eq!(text(&r, "denied_by").as_deref(), Some("tokens-1m"));
    // The upstream fails three times: its breaker opens and every team is refused at once.
    let report = [
        "BREAKER.REPORT",
        "llm-upstream",
        "FAILURE",
        "THRESHOLD",
        "3",
        "COOLDOWN",
        "30s",
    ];
    for _ in 0..3 {
        query(&mut con, &report).await;
    }
    let r = check(&mut con, &["LIMIT.CHECK", "ai", "team-8", "TOKENS", "10"]).await;
    assert_eq!(
        text(&r, "denied_by").as_deref(),
        Some("breaker:llm-upstream")
    );
    assert_eq!(int(&r, "retry_after_ms"), 30_000);
    server.clock.advance(Duration::from_secs(30));
    assert!(
        flag(
            &check(&mut con, &["LIMIT.CHECK", "ai", "team-8", "TOKENS", "10"]).await,
            "allowed"
        ),
        "the probe"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shared_quota_bills_a_10_percent_overage_then_refuses_and_suspends() {
    let server = server().await;
    let mut con = server.redis(true).await;
    let mut overage = 0;
    for _ in 0..1100 {
        let r = check(&mut con, &["LIMIT.CHECK", "tenant", "acme"]).await;
        assert!(flag(&r, "allowed"));
        overage += i64::from(flag(&r, "overage"));
    }
    assert_eq!(overage, 100);
    let r = check(&mut con, &["LIMIT.CHECK", "tenant", "acme"]).await;
    assert!(!flag(&r, "allowed"));
    assert_eq!(
        text(&r, "link").as_deref(),
        Some("https://example.com/billing")
    );
    assert_eq!(count_events(&mut con, "limitkv:events:overage").await, 100);
    query(
        &mut con,
        &[
            "LIMIT.SUSPEND",
            "*",
            "mallory",
            "REASON",
            "terms violation",
            "EXPIRE",
            "7d",
        ],
    )
    .await;
    let r = check(&mut con, &["LIMIT.CHECK", "tenant", "mallory"]).await;
    assert_eq!(text(&r, "reason").as_deref(), Some("terms violation"));
    assert_eq!(
        query(&mut con, &["LIMIT.UNSUSPEND", "*", "mallory"]).await,
        V::Int(1)
    );
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "tenant", "mallory"]).await,
        "allowed"
    ));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn resource_manager_pool_keeps_its_reserve_under_32_concurrent_clients() {
    let server = server().await;
    let low = ["LIMIT.CHECK", "gpu", "org", "PRIORITY", "low"];
    let high = ["LIMIT.CHECK", "gpu", "org", "PRIORITY", "high"];
    let admitted = |v: Vec<V>| {
        v.into_iter()
            .filter(|x| flag(&fields(x.clone(), true), "allowed"))
            .count()
    };
    assert_eq!(admitted(race(&server, true, 32, &low).await), 7);
    assert_eq!(admitted(race(&server, true, 32, &high).await), 3);
    assert_eq!(admitted(race(&server, true, 32, &high).await), 0);
    // Five minutes later the leases have lapsed.
    server.clock.advance(Duration::from_secs(300));
    assert_eq!(admitted(race(&server, true, 32, &high).await), 10);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn api_prd_scopes_slow_down_search_and_trial_a_log_only_limit() {
    let server = server().await;
    let mut con = server.redis(true).await;
    let search = ["LIMIT.CHECK", "public", "k1", "SCOPE", "GET /search"];
    let mut delays = Vec::new();
    for _ in 0..7 {
        let r = check(&mut con, &search).await;
        assert!(flag(&r, "allowed"));
        delays.push(int(&r, "delay_ms"));
    }
    assert_eq!(
        delays,
        [0, 0, 0, 0, 0, 200, 400],
        "5/1s, then spaced 200 ms apart"
    );
    let orders = ["LIMIT.CHECK", "public", "k2", "SCOPE", "POST /orders"];
    let actions: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(text(&check(&mut con, &orders).await, "action").unwrap());
        }
        v
    };
    assert_eq!(
        actions,
        ["allow", "allow", "allow", "log"],
        "the 3/1s trial only logs"
    );
    let r = check(&mut con, &["LIMIT.CHECK", "public", "k3"]).await;
    assert_eq!(
        (
            int(&r, "x-ratelimit-limit"),
            int(&r, "x-ratelimit-remaining")
        ),
        (120, 119)
    );
    assert_eq!(
        text(&r, "ratelimit").as_deref(),
        Some("\"rate-1m\";r=119;t=1")
    );
    server.stop().await.unwrap();
}
