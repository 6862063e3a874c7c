//! Webhooks (issue 17) end to end: a policy's `WEBHOOK` clause POSTs its events to a real
//! HTTP server the test starts on 127.0.0.1:0 (axum), signed with HMAC-SHA256; retries with
//! backoff, timeouts, the bounded queue and its counters in `INFO webhooks`; decisions never
//! wait for a receiver; the clause survives an AOF rewrite and a restart; bad input is refused.
//!
//! Policy time passes only on the server's manual clock. Delivery (retry backoff, timeouts)
//! runs on real timers, set to a few milliseconds; every wait is a bounded poll of INFO.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use common::replies::{check, events, flag, text};
use common::{eventually, query, query_err, TestServer, WAIT};
use hmac::{Hmac, Mac};
use limitkv::config::Config;
use limitkv::persist::FsyncPolicy;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection as Con;
use redis::Value as V;
use sha2::Sha256;

/// What the receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    /// 200 at once.
    Ok,
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
            .to_owned()
    }
}

struct Receiver {
    mode: Mode,
    seen: AtomicUsize,
    got: Mutex<Vec<Got>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.seen.fetch_add(1, Ordering::SeqCst);
    r.got.lock().push(Got {
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    match r.mode {
        Mode::Ok => StatusCode::OK,
        Mode::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::FailFirst(_) => StatusCode::NO_CONTENT,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            StatusCode::OK
        }
    }
}

/// A local HTTP server receiving `POST /hook`; its URL.
async fn receiver(mode: Mode) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver {
        mode,
        seen: AtomicUsize::new(0),
        got: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, url)
}

/// A server whose retries wait `base_ms`, then twice that, ...
async fn server_with(f: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = Config::default();
    cfg.webhook.retry_base_ms = 5;
    f(&mut cfg);
    TestServer::with_config(cfg).await
}

/// `INFO webhooks` field `name`.
async fn counter(con: &mut Con, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("webhooks")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until INFO field `name` is `want`.
async fn until(con: &mut Con, name: &str, want: u64) {
    let con = con.clone();
    eventually(WAIT, &format!("{name} to reach {want}"), || {
        let mut c = con.clone();
        async move { (counter(&mut c, name).await == want).then_some(()) }
    })
    .await;
}

fn ok(v: V) {
    assert!(
        matches!(&v, V::Okay) || matches!(&v, V::SimpleString(s) if s == "OK"),
        "{v:?}"
    );
}

fn hmac_hex(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn definition(v: V) -> String {
    let V::Map(p) = v else { panic!("a map: {v:?}") };
    p.into_iter()
        .find(|(k, _)| matches!(k, V::BulkString(b) if b == b"definition"))
        .map(|(_, v)| match v {
            V::BulkString(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        })
        .expect("a definition")
}

#[tokio::test]
async fn warning_denial_and_breaker_events_are_posted_signed() {
    let (rx, url) = receiver(Mode::Ok).await;
    let server = server_with(|_| {}).await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "plan",
            "WEBHOOK",
            &url,
            "EVENTS",
            "warning,denied,breaker",
            "SECRET",
            "s3cret",
            "WARN",
            "80%",
            "QUOTA",
            "5/day",
            "BREAKER",
            "payments",
            "THRESHOLD",
            "1",
            "COOLDOWN",
            "30s",
        ],
    )
    .await);
    let def = definition(query(&mut con, &["POLICY.GET", "plan"]).await);
    assert!(
        def.starts_with(&format!(
            "WARN 0.8 WEBHOOK {url} EVENTS denied,warning,breaker SECRET s3cret QUOTA 5/day"
        )),
        "{def}"
    );
    // 4 of 5 passes 80%: one warning; the 5th warns no more (once per period); the 6th is
    // refused.
    for i in 1..=5 {
        assert!(
            flag(
                &check(&mut con, &["LIMIT.CHECK", "plan", "acme"]).await,
                "allowed"
            ),
            "{i}"
        );
    }
    assert!(!flag(
        &check(&mut con, &["LIMIT.CHECK", "plan", "acme"]).await,
        "allowed"
    ));
    // The application reports a failure: the breaker opens (BREAKER.REPORT's event reaches
    // the policy whose BREAKER rule watches the key).
    let report = [
        "BREAKER.REPORT",
        "payments",
        "FAILURE",
        "THRESHOLD",
        "1",
        "COOLDOWN",
        "30s",
    ];
    query(&mut con, &report).await;
    let r = check(&mut con, &["LIMIT.CHECK", "plan", "bob"]).await;
    assert_eq!(text(&r, "denied_by").as_deref(), Some("breaker:payments"));
    // After the cooldown the policy check itself takes the half-open probe: the breaker
    // moves, and the check publishes it as BREAKER.ALLOW would.
    server.clock.advance(Duration::from_secs(30));
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "plan", "bob"]).await,
        "allowed"
    ));
    let published = events(&mut con, "limitkv:events:breaker").await;
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(
        published
            .iter()
            .any(|e| e.contains(r#""key":"payments","from":"open","to":"half_open""#)),
        "{published:?}"
    );

    // warning, two denials (quota, breaker), breaker open, breaker half-open.
    until(&mut con, "webhook_delivered", 5).await;
    assert_eq!(counter(&mut con, "webhook_failed").await, 0);
    assert_eq!(counter(&mut con, "webhook_queue_length").await, 0);
    let got = rx.got.lock().clone();
    assert_eq!(got.len(), 5, "{got:?}");
    let mut ids = Vec::new();
    let mut kinds = Vec::new();
    for g in &got {
        assert_eq!(g.header("content-type"), "application/json");
        assert_eq!(
            g.header("x-limitkv-signature"),
            hmac_hex("s3cret", &g.body),
            "{g:?}"
        );
        let kind = g.header("x-limitkv-event");
        assert!(
            g.body.starts_with(&format!(r#"{{"event":"{kind}""#)),
            "{g:?}"
        );
        assert_eq!(g.header("x-limitkv-attempt"), "1");
        ids.push(g.header("x-limitkv-delivery"));
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(kinds, ["breaker", "breaker", "denied", "denied", "warning"]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "delivery ids are unique");
    let bodies: Vec<&str> = got.iter().map(|g| g.body.as_str()).collect();
    assert!(bodies
        .iter()
        .any(|b| b.contains(r#""event":"warning""#) && b.contains(r#""identity":"acme""#)));
    assert!(
        bodies
            .iter()
            .any(|b| b.contains(r#""event":"denied""#) && b.contains(r#""rule":"quota-day""#)),
        "{bodies:?}"
    );
    assert!(bodies
        .iter()
        .any(|b| b.contains(r#""from":"closed","to":"open""#)));
    assert!(bodies
        .iter()
        .any(|b| b.contains(r#""from":"open","to":"half_open""#)));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_the_third_try() {
    let (rx, url) = receiver(Mode::FailFirst(2)).await;
    let server = server_with(|_| {}).await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &["POLICY.SET", "p", "WEBHOOK", &url, "RATE", "1/1m"],
    )
    .await);
    check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    assert!(!flag(
        &check(&mut con, &["LIMIT.CHECK", "p", "u"]).await,
        "allowed"
    ));
    until(&mut con, "webhook_delivered", 1).await;
    assert_eq!(counter(&mut con, "webhook_retries").await, 2);
    assert_eq!(counter(&mut con, "webhook_failed").await, 0);
    let got = rx.got.lock().clone();
    assert_eq!(got.len(), 3);
    let attempts: Vec<String> = got.iter().map(|g| g.header("x-limitkv-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter().all(
            |g| g.header("x-limitkv-delivery") == got[0].header("x-limitkv-delivery")
                && g.body == got[0].body
        ),
        "every attempt is the same delivery"
    );
    // The same counters in the Prometheus exposition.
    let metrics = limitkv::http::metrics::render(&server.shared).unwrap();
    for line in [
        r#"limitkv_webhook_deliveries_total{outcome="delivered"} 1"#,
        r#"limitkv_webhook_deliveries_total{outcome="retried"} 2"#,
        r#"limitkv_webhook_deliveries_total{outcome="failed"} 0"#,
        "limitkv_webhook_queue_length 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(
        got[0].headers.get("x-limitkv-signature").is_none(),
        "no SECRET, no signature"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_hanging_receiver_is_timed_out_and_counted_failed() {
    let (rx, url) = receiver(Mode::Hang).await;
    let server = server_with(|c| {
        c.webhook.timeout_ms = 1_000;
        c.webhook.max_retries = 1;
    })
    .await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "p",
            "WEBHOOK",
            &url,
            "EVENTS",
            "denied",
            "RATE",
            "1/1m",
        ],
    )
    .await);
    check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    until(&mut con, "webhook_failed", 1).await;
    assert_eq!(counter(&mut con, "webhook_retries").await, 1);
    assert_eq!(counter(&mut con, "webhook_delivered").await, 0);
    assert_eq!(counter(&mut con, "webhook_in_flight").await, 0);
    assert_eq!(
        rx.seen.load(Ordering::SeqCst),
        2,
        "the first try and one retry"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_receiver_never_slows_decisions_and_the_full_queue_drops_and_counts() {
    let (_rx, url) = receiver(Mode::Hang).await;
    let server = server_with(|c| {
        c.webhook.timeout_ms = 600_000;
        c.webhook.queue_max = 4;
    })
    .await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &["POLICY.SET", "p", "WEBHOOK", &url, "RATE", "1/1h"],
    )
    .await);
    const N: u64 = 200;
    let started = std::time::Instant::now();
    for i in 0..=N {
        let allowed = flag(
            &check(&mut con, &["LIMIT.CHECK", "p", "u"]).await,
            "allowed",
        );
        assert_eq!(allowed, i == 0, "check {i}");
    }
    // Each denial queued a delivery that can never finish within the test: the receiver
    // hangs and the timeout is ten minutes. The checks answered regardless.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{N} denials took {:?}",
        started.elapsed()
    );
    until(&mut con, "webhook_queued", N).await;
    // The delivery task takes a waiting delivery whenever one of its 16 slots is free, so
    // once it has caught up either every slot is taken or nothing waits; however far behind it
    // was while the denials arrived, each delivery is in flight, waiting, or was dropped.
    let c = con.clone();
    let (in_flight, waiting, dropped) = eventually(WAIT, "the delivery task to catch up", || {
        let mut c = c.clone();
        async move {
            let f = counter(&mut c, "webhook_in_flight").await;
            let w = counter(&mut c, "webhook_queue_length").await;
            let d = counter(&mut c, "webhook_dropped").await;
            (f + w + d == N && (f == 16 || w == 0)).then_some((f, w, d))
        }
    })
    .await;
    assert!(in_flight <= 16 && waiting <= 4, "{in_flight} {waiting}");
    assert!(
        dropped >= N - 16 - 4,
        "a full queue dropped the rest: {dropped}"
    );
    assert_eq!(counter(&mut con, "webhook_delivered").await, 0);
    // A new policy check still answers at once.
    assert!(flag(
        &check(&mut con, &["LIMIT.CHECK", "p", "other"]).await,
        "allowed"
    ));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_webhook_clauses_are_refused_and_change_nothing() {
    let server = server_with(|_| {}).await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "p",
            "WEBHOOK",
            "http://127.0.0.1:9/a",
            "RATE",
            "1/1s",
        ],
    )
    .await);
    let before = definition(query(&mut con, &["POLICY.GET", "p"]).await);
    for (args, says) in [
        (
            vec!["WEBHOOK", "https://x.test/h", "RATE", "2/1s"],
            "https is not supported",
        ),
        (
            vec!["WEBHOOK", "ftp://x.test/h", "RATE", "2/1s"],
            "not an http:// URL",
        ),
        (
            vec![
                "WEBHOOK",
                "http://x.test/h",
                "EVENTS",
                "deny",
                "RATE",
                "2/1s",
            ],
            "unknown webhook event 'deny'",
        ),
        (
            vec!["WEBHOOK", "http://x.test/h", "SECRET", "", "RATE", "2/1s"],
            "invalid SECRET",
        ),
        (vec!["WEBHOOK"], "WEBHOOK"),
    ] {
        let mut words = vec!["POLICY.SET", "p"];
        words.extend(args);
        let e = query_err(&mut con, &words).await.to_string();
        assert!(e.contains(says), "{words:?}: {e}");
    }
    assert_eq!(
        definition(query(&mut con, &["POLICY.GET", "p"]).await),
        before
    );
    let e = query_err(
        &mut con,
        &[
            "OVERRIDE.SET",
            "acme",
            "WEBHOOK",
            "http://x.test/h",
            "RATE",
            "5/1s",
        ],
    )
    .await;
    assert!(e.to_string().contains("an override cannot set one"), "{e}");
    // The settings are CONFIG names with bounds.
    let e = query_err(&mut con, &["CONFIG", "SET", "webhook-timeout", "0"]).await;
    assert!(e.to_string().contains("webhook-timeout"), "{e}");
    ok(query(&mut con, &["CONFIG", "SET", "webhook-max-retries", "7"]).await);
    let V::Map(got) = query(&mut con, &["CONFIG", "GET", "webhook-*"]).await else {
        panic!()
    };
    assert_eq!(got.len(), 4);
    assert!(got.contains(&(
        V::BulkString(b"webhook-max-retries".to_vec()),
        V::BulkString(b"7".to_vec())
    )));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_webhook_survives_an_aof_rewrite_and_a_restart() {
    let (rx, url) = receiver(Mode::Ok).await;
    let dir = common::temp_dir();
    let cfg = |c: &mut Config| {
        c.appendonly = true;
        c.dir = dir.path().to_path_buf();
        c.appendfsync = FsyncPolicy::Always;
    };
    let server = server_with(cfg).await;
    let mut con = server.redis(true).await;
    ok(query(
        &mut con,
        &[
            "POLICY.SET",
            "p",
            "WEBHOOK",
            &url,
            "EVENTS",
            "denied",
            "SECRET",
            "k",
            "RATE",
            "1/1m",
        ],
    )
    .await);
    let defined = definition(query(&mut con, &["POLICY.GET", "p"]).await);
    query(&mut con, &["BGREWRITEAOF"]).await;
    let c2 = con.clone();
    eventually(WAIT, "the rewrite to finish", || {
        let mut c = c2.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(&mut c)
                .await
                .unwrap();
            info.contains("aof_rewrites:1").then_some(())
        }
    })
    .await;
    drop(con);
    server.stop().await.unwrap();

    let server = server_with(cfg).await;
    let mut con = server.redis(true).await;
    assert_eq!(
        definition(query(&mut con, &["POLICY.GET", "p"]).await),
        defined
    );
    check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    check(&mut con, &["LIMIT.CHECK", "p", "u"]).await;
    until(&mut con, "webhook_delivered", 1).await;
    let g = rx.got.lock()[0].clone();
    assert_eq!(g.header("x-limitkv-event"), "denied");
    assert_eq!(g.header("x-limitkv-signature"), hmac_hex("k", &g.body));
    server.stop().await.unwrap();
}
