//! Limiter semantics of issue 17 over TCP with the `redis` crate against a ManualClock server:
//! dry runs charge nothing, the X-RateLimit fields, an upgrade mid-window keeps the used
//! count (also across a restart), warnings fire once per period with the plan's message and
//! link, suspensions, and grace (with 32 concurrent clients: never past limit × (1 + grace)).
//!
//! Time passes only on the server's manual clock.

mod common;

use std::time::Duration;

use common::replies::{check, events, flag, get, int, rules, text};
use common::{fields, query, query_err, race, TestServer};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;
use redis::Value as V;

fn ok(v: V) {
    assert!(
        matches!(&v, V::Okay) || matches!(&v, V::SimpleString(s) if s == "OK"),
        "{v:?}"
    );
}

#[tokio::test]
async fn a_dry_run_charges_nothing_and_x_ratelimit_fields_describe_the_tightest_rule() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(&mut con, &["POLICY.SET", "dry", "DRYRUN", "RATE", "1/1m"]).await);
    for i in 0..2 {
        let r = check(&mut con, &["LIMIT.CHECK", "dry", "u2"]).await;
        assert!(flag(&r, "allowed"), "check {i}: nothing was stored");
        assert!(flag(&r, "dryrun"));
        for rule in rules(&r) {
            assert_eq!(
                int(&rule, "charged"),
                0,
                "check {i}: a dry run charges nothing"
            );
        }
    }
    ok(query(
        &mut con,
        &["POLICY.SET", "p", "RATE", "10/1m", "QUOTA", "4/day"],
    )
    .await);
    let r = check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    assert_eq!(
        rules(&r)
            .iter()
            .map(|x| int(x, "charged"))
            .collect::<Vec<_>>(),
        [1, 1]
    );
    // 9 of 10 left a minute, 3 of 4 a day: the quota is the tightest.
    assert_eq!(int(&r, "x-ratelimit-limit"), 4);
    assert_eq!(int(&r, "x-ratelimit-remaining"), 3);
    assert_eq!(
        int(&r, "x-ratelimit-reset"),
        86_400,
        "the clock starts at midnight UTC"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_check_api_sends_x_ratelimit_headers() {
    let server = TestServer::with_config(Config {
        http_port: common::free_port(),
        ..Config::default()
    })
    .await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    let mut con = server.redis(true).await;
    ok(query(&mut con, &["POLICY.SET", "p", "RATE", "2/1m"]).await);
    let Some((code, body, headers)) = common::curl(
        &format!("{base}/v1/check"),
        &["--data-binary", r#"{"policy":"p","identity":"u"}"#],
    ) else {
        return;
    };
    assert_eq!(code, 200, "{body}");
    let h = headers.to_ascii_lowercase();
    for want in [
        "x-ratelimit-limit: 2",
        "x-ratelimit-remaining: 1",
        "x-ratelimit-reset: 30",
    ] {
        assert!(h.contains(want), "{want} in {headers}");
    }
    assert!(body.contains("\"x-ratelimit-remaining\":1"), "{body}");
    // A streaming settle over HTTP.
    ok(query(&mut con, &["POLICY.SET", "ai", "TOKENS", "100/1m"]).await);
    let r = check(&mut con, &["LIMIT.RESERVE", "ai", "u", "TOKENS", "10"]).await;
    let id = int(&r, "reservation");
    let settle = |tokens: u64| {
        common::curl(
            &format!("{base}/v1/settle"),
            &[
                "--data-binary",
                &format!(r#"{{"reservation":{id},"tokens":{tokens},"partial":true}}"#),
            ],
        )
        .unwrap()
    };
    let (code, body, _) = settle(50);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""action":"partial","exhausted":false"#),
        "{body}"
    );
    let (_, body, _) = settle(100);
    assert!(body.contains(r#""exhausted":true"#), "{body}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_upgrade_mid_window_keeps_the_used_count_across_restarts() {
    let dir = common::temp_dir();
    let cfg = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(cfg()).await;
    let mut con = server.redis(true).await;
    ok(query(&mut con, &["POLICY.SET", "tiny", "RATE", "1/1m"]).await);
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "tiny", "acme"]).await,
        "allowed"
    ));
    assert!(!flag(
        &check(&mut con, &["LIMIT.CHECK", "tiny", "acme"]).await,
        "allowed"
    ));
    ok(query(
        &mut con,
        &["OVERRIDE.SET", "acme", "FOR", "tiny", "RATE", "10000/1m"],
    )
    .await);
    let r = check(&mut con, &["LIMIT.STATUS", "tiny", "acme"]).await;
    assert_eq!(int(&r, "remaining"), 9_999, "one request used of 10000");
    let r = check(&mut con, &["LIMIT.CHECK", "tiny", "acme"]).await;
    assert!(flag(&r, "allowed"));
    assert_eq!(int(&r, "remaining"), 9_998);
    // The same upgrade for the whole plan keeps everyone's count too.
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "tiny", "bob"]).await,
        "allowed"
    ));
    ok(query(&mut con, &["POLICY.SET", "tiny", "RATE", "100/1m"]).await);
    let r = check(&mut con, &["LIMIT.CHECK", "tiny", "bob"]).await;
    assert_eq!(int(&r, "remaining"), 98);
    drop(con);
    server.stop().await.unwrap();

    // The re-read state journaled its interval: replay gives the same counts.
    let server = TestServer::with_config(cfg()).await;
    let mut con = server.redis(true).await;
    let r = check(&mut con, &["LIMIT.STATUS", "tiny", "acme"]).await;
    assert_eq!(int(&r, "remaining"), 9_998);
    let r = check(&mut con, &["LIMIT.STATUS", "tiny", "bob"]).await;
    assert_eq!(int(&r, "remaining"), 98);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn warnings_fire_once_per_period_with_the_plans_message_and_link() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "free",
            "WARN",
            "80%",
            "MESSAGE",
            "You have used 80% of your plan",
            "LINK",
            "https://example.com/upgrade",
            "QUOTA",
            "10/day",
            "RATE",
            "100/1m",
            "LINK",
            "https://example.com/burst",
        ],
    )
    .await);
    for i in 1..=10 {
        let r = check(&mut con, &["LIMIT.CHECK", "free", "c1"]).await;
        assert!(flag(&r, "allowed"), "request {i}");
        let warned = i >= 8;
        assert_eq!(flag(&r, "warning"), warned, "request {i}");
        let (message, link) = (text(&r, "message"), text(&r, "link"));
        if warned {
            assert_eq!(message.as_deref(), Some("You have used 80% of your plan"));
            assert_eq!(link.as_deref(), Some("https://example.com/upgrade"));
        } else {
            assert_eq!((message, link), (None, None), "request {i}");
        }
    }
    let r = check(&mut con, &["LIMIT.CHECK", "free", "c1"]).await;
    assert!(!flag(&r, "allowed"));
    assert_eq!(
        text(&r, "link").as_deref(),
        Some("https://example.com/upgrade")
    );
    let w = events(&mut con, "limitkv:events:warning").await;
    assert_eq!(w.len(), 1, "one warning a day, not three: {w:?}");
    assert!(w[0].contains(r#""rules":["quota-day"]"#), "{}", w[0]);
    assert!(
        w[0].contains(
            r#""message":"You have used 80% of your plan","link":"https://example.com/upgrade""#
        ),
        "{}",
        w[0]
    );
    let d = events(&mut con, "limitkv:events:denied").await;
    assert!(
        d[0].contains(r#""link":"https://example.com/upgrade""#),
        "{}",
        d[0]
    );
    // Another identity has its own period; the next day warns again.
    for _ in 0..8 {
        check(&mut con, &["LIMIT.CHECK", "free", "c2"]).await;
    }
    assert_eq!(events(&mut con, "limitkv:events:warning").await.len(), 2);
    server.clock.advance(Duration::from_secs(86_400));
    for _ in 0..9 {
        check(&mut con, &["LIMIT.CHECK", "free", "c1"]).await;
    }
    assert_eq!(events(&mut con, "limitkv:events:warning").await.len(), 3);
    // A reset customer starts over: its next warning fires again (the marker goes too,
    // uncounted: 2 rule states deleted).
    assert_eq!(
        query(&mut con, &["LIMIT.RESET", "c1", "free"]).await,
        V::Int(2)
    );
    for _ in 0..8 {
        check(&mut con, &["LIMIT.CHECK", "free", "c1"]).await;
    }
    assert_eq!(events(&mut con, "limitkv:events:warning").await.len(), 4);
    // A rule's own LINK wins over the policy's.
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "r",
            "LINK",
            "https://example.com/p",
            "RATE",
            "2/1m",
            "WARN",
            "0.5",
            "LINK",
            "https://example.com/burst",
        ],
    )
    .await);
    let r = check(&mut con, &["LIMIT.CHECK", "r", "c1"]).await;
    assert_eq!(
        text(&r, "link").as_deref(),
        Some("https://example.com/burst")
    );
    assert_eq!(text(&r, "message"), None);
    let got = query_err(
        &mut con,
        &["POLICY.SET", "x", "LINK", "ftp://nope", "RATE", "1/1s"],
    )
    .await;
    assert!(got.to_string().contains("invalid LINK"), "{got}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_suspended_identity_is_refused_until_lifted_or_expired() {
    let dir = common::temp_dir();
    let cfg = || Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let server = TestServer::with_config(cfg()).await;
    let mut con = server.redis(true).await;
    ok(query(&mut con, &["POLICY.SET", "free", "RATE", "100/1m"]).await);
    ok(query(&mut con, &["POLICY.SET", "pro", "RATE", "100/1m"]).await);
    ok(query(
        &mut con,
        &[
            "LIMIT.SUSPEND",
            "*",
            "mallory",
            "REASON",
            "chargeback",
            "EXPIRE",
            "7d",
        ],
    )
    .await);
    ok(query(
        &mut con,
        &["LIMIT.SUSPEND", "pro", "bob", "REASON", "abuse"],
    )
    .await);
    assert_eq!(
        query(&mut con, &["ALLOWLIST.ADD", "mallory"]).await,
        V::Int(1)
    );
    let r = check(&mut con, &["LIMIT.CHECK", "free", "mallory"]).await;
    assert!(
        !flag(&r, "allowed"),
        "a suspension wins over the allow list"
    );
    assert_eq!(text(&r, "denied_by").as_deref(), Some("suspended"));
    assert_eq!(text(&r, "reason").as_deref(), Some("chargeback"));
    assert_eq!(int(&r, "retry_after_ms"), 7 * 86_400_000);
    let r = check(&mut con, &["LIMIT.CHECK", "pro", "bob"]).await;
    assert_eq!(
        (text(&r, "denied_by").as_deref(), int(&r, "retry_after_ms")),
        (Some("suspended"), -1)
    );
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "free", "bob"]).await,
        "allowed"
    ));
    let V::Array(list) = query(&mut con, &["LIMIT.SUSPENDED"]).await else {
        panic!("an array")
    };
    assert_eq!(list.len(), 2);
    let first = fields(list[0].clone(), true);
    assert_eq!(text(&first, "identity").as_deref(), Some("bob"));
    assert_eq!(int(&first, "expires_at_ms"), -1);
    let e = query_err(&mut con, &["LIMIT.SUSPEND", "nope", "x"]).await;
    assert!(e.to_string().contains("unknown policy 'nope'"), "{e}");
    let e = query_err(&mut con, &["LIMIT.SUSPEND", "free", "x", "EXPIRE", "soon"]).await;
    assert!(e.to_string().contains("invalid EXPIRE"), "{e}");
    let d = events(&mut con, "limitkv:events:denied").await;
    assert!(
        d[0].contains(r#""reason":"suspended","message":"chargeback""#),
        "{}",
        d[0]
    );
    drop(con);
    server.stop().await.unwrap();

    // Journaled: both survive a restart; then one is lifted and the other expires.
    let server = TestServer::with_config(cfg()).await;
    let mut con = server.redis(true).await;
    let r = check(&mut con, &["LIMIT.CHECK", "pro", "bob"]).await;
    assert_eq!(text(&r, "reason").as_deref(), Some("abuse"));
    assert_eq!(
        query(&mut con, &["LIMIT.UNSUSPEND", "pro", "bob"]).await,
        V::Int(1)
    );
    assert_eq!(
        query(&mut con, &["LIMIT.UNSUSPEND", "pro", "bob"]).await,
        V::Int(0)
    );
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "pro", "bob"]).await,
        "allowed"
    ));
    assert_eq!(
        query(&mut con, &["ALLOWLIST.DEL", "mallory"]).await,
        V::Int(1)
    );
    server.clock.advance(Duration::from_secs(7 * 86_400));
    let r = check(&mut con, &["LIMIT.CHECK", "free", "mallory"]).await;
    assert!(flag(&r, "allowed"), "the suspension expired");
    let s = events(&mut con, "limitkv:events:suspension").await;
    assert!(s.iter().any(|e| e.contains(r#""change":"del""#)), "{s:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn grace_admits_past_the_limit_as_overage_and_never_further() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "g",
            "GRACE",
            "10%",
            "QUOTA",
            "20/day",
            "RATE",
            "1000/1s",
        ],
    )
    .await);
    for i in 1..=22 {
        let r = check(&mut con, &["LIMIT.CHECK", "g", "a"]).await;
        assert!(flag(&r, "allowed"), "request {i}");
        assert_eq!(flag(&r, "overage"), i > 20, "request {i}");
        let quota = &rules(&r)[0];
        assert_eq!(int(quota, "overage"), (i - 20).max(0), "request {i}");
    }
    let r = check(&mut con, &["LIMIT.CHECK", "g", "a"]).await;
    assert!(!flag(&r, "allowed"), "20 + 10% = 22");
    assert_eq!(text(&r, "denied_by").as_deref(), Some("quota-day"));
    let o = events(&mut con, "limitkv:events:overage").await;
    assert_eq!(o.len(), 2, "{o:?}");
    assert!(
        o[1].contains(r#""rules":[{"rule":"quota-day","overage":2}]"#),
        "{}",
        o[1]
    );
    let e = query_err(
        &mut con,
        &["POLICY.SET", "x", "RATE", "1/1s", "GRACE", "10%"],
    )
    .await;
    assert!(
        e.to_string()
            .contains("GRACE applies to QUOTA, COST and TOKENS"),
        "{e}"
    );

    // 32 clients racing, four rounds: exactly 100 + 10% admitted, never more.
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "race",
            "QUOTA",
            "100/day",
            "GRACE",
            "10%",
            "COST",
            "1/day",
            "GRACE",
            "50%",
        ],
    )
    .await);
    drop(con);
    let mut admitted = 0;
    let mut overage = 0;
    for _ in 0..4 {
        for v in race(
            &server,
            true,
            32,
            &["LIMIT.CHECK", "race", "z", "COST", "0.01"],
        )
        .await
        {
            let f = fields(v, true);
            if flag(&f, "allowed") {
                admitted += 1;
                overage += i64::from(flag(&f, "overage"));
            }
        }
    }
    assert_eq!((admitted, overage), (110, 10));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_breaker_rule_refuses_while_its_breaker_is_open_and_admits_half_open_probes() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "up",
            "RATE",
            "100/1m",
            "BREAKER",
            "payments",
            "THRESHOLD",
            "2",
            "COOLDOWN",
            "30s",
        ],
    )
    .await);
    let V::Map(p) = query(&mut con, &["POLICY.GET", "up"]).await else {
        panic!("a map")
    };
    let def = p
        .iter()
        .find(|(k, _)| matches!(k, V::BulkString(b) if b == b"definition"))
        .map(|(_, v)| format!("{v:?}"))
        .unwrap();
    assert!(
        def.contains("BREAKER payments THRESHOLD 2 WINDOW 1m COOLDOWN 30s PROBES 1"),
        "{def}"
    );
    let r = check(&mut con, &["LIMIT.CHECK", "up", "u1"]).await;
    assert!(flag(&r, "allowed"));
    assert_eq!(
        int(&rules(&r)[1], "charged"),
        0,
        "a breaker charges nothing"
    );
    let report = [
        "BREAKER.REPORT",
        "payments",
        "FAILURE",
        "THRESHOLD",
        "2",
        "COOLDOWN",
        "30s",
    ];
    query(&mut con, &report).await;
    query(&mut con, &report).await;
    let r = check(&mut con, &["LIMIT.CHECK", "up", "u1"]).await;
    assert!(!flag(&r, "allowed"), "the breaker is open");
    assert_eq!(text(&r, "denied_by").as_deref(), Some("breaker:payments"));
    assert_eq!(int(&r, "retry_after_ms"), 30_000);
    assert_eq!(
        int(&rules(&r)[0], "remaining"),
        99,
        "the refused check charged no rule"
    );
    // Half-open after the cooldown: one probe is admitted, the next check is refused.
    server.clock.advance(Duration::from_secs(30));
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "up", "u2"]).await,
        "allowed"
    ));
    let r = check(&mut con, &["LIMIT.CHECK", "up", "u3"]).await;
    assert_eq!(text(&r, "denied_by").as_deref(), Some("breaker:payments"));
    let ok_report = [
        "BREAKER.REPORT",
        "payments",
        "SUCCESS",
        "THRESHOLD",
        "2",
        "COOLDOWN",
        "30s",
    ];
    query(&mut con, &ok_report).await;
    assert!(
        flag(
            &check(&mut con, &["LIMIT.CHECK", "up", "u3"]).await,
            "allowed"
        ),
        "closed again"
    );
    // LIMIT.RESET deletes the identity's usage, never the shared breaker.
    query(
        &mut con,
        &[
            "BREAKER.TRIP",
            "payments",
            "THRESHOLD",
            "2",
            "COOLDOWN",
            "30s",
        ],
    )
    .await;
    assert_eq!(
        query(&mut con, &["LIMIT.RESET", "u3"]).await,
        V::Int(1),
        "u3's rate only"
    );
    let r = check(&mut con, &["LIMIT.CHECK", "up", "u3"]).await;
    assert_eq!(text(&r, "denied_by").as_deref(), Some("breaker:payments"));
    let e = query_err(&mut con, &["POLICY.SET", "x", "BREAKER", "a:b"]).await;
    assert!(
        e.to_string().contains("give this BREAKER rule a NAME"),
        "{e}"
    );
    let e = query_err(
        &mut con,
        &[
            "POLICY.SET",
            "x",
            "BREAKER",
            "p",
            "THRESHOLD",
            "1",
            "RATIO",
            "50",
        ],
    )
    .await;
    assert!(
        e.to_string()
            .contains("THRESHOLD and RATIO exclude each other"),
        "{e}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pool_keeps_its_reserve_for_high_priority_under_32_concurrent_clients() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "pool",
            "LEASE",
            "10",
            "TTL",
            "1m",
            "RESERVE",
            "3",
            "FOR",
            "high",
        ],
    )
    .await);
    let V::Map(p) = query(&mut con, &["POLICY.GET", "pool"]).await else {
        panic!("a map")
    };
    assert!(format!("{p:?}").contains("LEASE 10 RESERVE 3"), "{p:?}");
    drop(con);
    let admitted = |replies: Vec<V>| {
        replies
            .into_iter()
            .filter(|v| flag(&fields(v.clone(), true), "allowed"))
            .count()
    };
    let low = ["LIMIT.CHECK", "pool", "team", "PRIORITY", "low"];
    let high = ["LIMIT.CHECK", "pool", "team", "PRIORITY", "high"];
    assert_eq!(
        admitted(race(&server, true, 32, &low).await),
        7,
        "low stops at the reserve"
    );
    assert_eq!(admitted(race(&server, true, 32, &low).await), 0);
    assert_eq!(
        admitted(race(&server, true, 32, &high).await),
        3,
        "high takes the reserve"
    );
    assert_eq!(
        admitted(race(&server, true, 32, &high).await),
        0,
        "never more than 10"
    );
    // After the leases lapse: everyone at once, still at most 10 held and 7 low.
    server.clock.advance(Duration::from_secs(60));
    let l = race_mixed(&server, &low, &high).await;
    assert!(l.0 <= 7 && l.0 + l.1 == 10, "low {} + high {}", l.0, l.1);

    // LEASE.ACQUIRE speaks the same priorities.
    let mut con = server.redis(true).await;
    let acq = |p: &'static str| {
        [
            "LEASE.ACQUIRE",
            "k",
            "LIMIT",
            "2",
            "TTL",
            "2s",
            "RESERVE",
            "1",
            "PRIORITY",
            p,
        ]
    };
    let f = fields(query(&mut con, &acq("low")).await, true);
    assert!(flag(&f, "allowed"));
    let f = fields(query(&mut con, &acq("low")).await, true);
    assert!(!flag(&f, "allowed"), "the last slot is kept for high");
    assert_eq!(int(&f, "retry_after_ms"), 2_000);
    let f = fields(query(&mut con, &acq("high")).await, true);
    assert!(flag(&f, "allowed"));
    let e = query_err(
        &mut con,
        &[
            "LEASE.ACQUIRE",
            "k",
            "LIMIT",
            "2",
            "TTL",
            "2s",
            "RESERVE",
            "2",
        ],
    )
    .await;
    assert!(
        e.to_string()
            .contains("reserve must be less than the limit"),
        "{e}"
    );
    let e = query_err(
        &mut con,
        &["LIMIT.CHECK", "pool", "t", "PRIORITY", "urgent"],
    )
    .await;
    assert!(e.to_string().contains("invalid PRIORITY 'urgent'"), "{e}");
    server.stop().await.unwrap();
}

/// 16 clients sending `low` and 16 sending `high`, all released at the same moment: the
/// number of each admitted.
async fn race_mixed(server: &TestServer, low: &[&str], high: &[&str]) -> (usize, usize) {
    use std::sync::Arc;
    let start = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let url = server.url(true);
        let start = start.clone();
        let args: Vec<String> = if i % 2 == 0 { low } else { high }
            .iter()
            .map(|s| s.to_string())
            .collect();
        tasks.spawn(async move {
            let mut con = common::redis_connect(&url).await;
            start.wait().await;
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let f = fields(query(&mut con, &words).await, true);
            (i % 2 == 0, flag(&f, "allowed"))
        });
    }
    let (mut l, mut h) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task does not panic") {
            (true, true) => l += 1,
            (false, true) => h += 1,
            _ => {}
        }
    }
    (l, h)
}

#[tokio::test]
async fn a_streamed_response_is_charged_as_it_goes_and_stopped_when_exhausted() {
    let server = TestServer::start().await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "ai",
            "TOKENS",
            "1000/1m",
            "COST",
            "1.00/day",
            "LEASE",
            "4",
        ],
    )
    .await);
    let r = check(
        &mut con,
        &[
            "LIMIT.RESERVE",
            "ai",
            "team",
            "TOKENS",
            "300",
            "COST",
            "0.05",
        ],
    )
    .await;
    let id = int(&r, "reservation").to_string();
    let mut stopped_at = None;
    for chunk in 1..=20u64 {
        let total = (chunk * 60).to_string();
        let p = check(
            &mut con,
            &["LIMIT.SETTLE", &id, "PARTIAL", "TOKENS", &total],
        )
        .await;
        assert_eq!(text(&p, "action").as_deref(), Some("partial"));
        let tokens = &rules(&p)[0];
        let charged_before = (chunk - 1) * 60;
        let want_adjusted = (chunk * 60).saturating_sub(charged_before.max(300)) as i64;
        assert_eq!(
            int(tokens, "adjusted"),
            want_adjusted.min(60),
            "chunk {chunk}"
        );
        if flag(&p, "exhausted") {
            assert_eq!(int(tokens, "remaining"), 0);
            stopped_at = Some(chunk);
            break;
        }
        assert_eq!(
            int(tokens, "remaining"),
            1000 - (chunk * 60) as i64,
            "chunk {chunk}"
        );
    }
    assert_eq!(stopped_at, Some(17), "1020 tokens passed the 1000 budget");
    // A retried partial charges nothing twice.
    let p = check(
        &mut con,
        &["LIMIT.SETTLE", &id, "PARTIAL", "TOKENS", "1020"],
    )
    .await;
    assert_eq!(int(&rules(&p)[0], "adjusted"), 0);
    // The final settle reconciles to the actual total: 1020 charged in all, lease freed.
    let s = check(
        &mut con,
        &["LIMIT.SETTLE", &id, "TOKENS", "1020", "COST", "0.04"],
    )
    .await;
    let adjusted: Vec<String> = rules(&s)
        .iter()
        .map(|x| match get(x, "adjusted") {
            V::Int(n) => n.to_string(),
            V::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        adjusted,
        ["0", "-0.01", "-1"],
        "tokens, cost, the lease released"
    );
    let st = check(&mut con, &["LIMIT.STATUS", "ai", "team"]).await;
    let left: Vec<i64> = rules(&st)
        .iter()
        .map(|x| match get(x, "remaining") {
            V::Int(n) => *n,
            _ => -1,
        })
        .collect();
    assert_eq!(
        (left[0], left[2]),
        (0, 4),
        "1020 of 1000 tokens used; the lease is back"
    );
    let e = query_err(&mut con, &["LIMIT.SETTLE", &id, "PARTIAL", "TOKENS", "5"]).await;
    assert!(e.to_string().contains("unknown reservation"), "{e}");
    let e = query_err(&mut con, &["LIMIT.SETTLE", "1", "PARTIAL"]).await;
    assert!(
        e.to_string().contains("PARTIAL needs TOKENS or COST"),
        "{e}"
    );
    server.stop().await.unwrap();
}
