//! `MONITOR` and `CLIENT PAUSE` cover every way a command runs, not only RESP connections:
//! the HTTP check API (`/v1/check` and friends, shown with the HTTP request's peer address),
//! the Upstash REST routes, and the recognised-script fast path (shown as `[0 lua]`, as the
//! Lua version's `redis.call`s are).

mod common;

use std::time::Duration;

use common::{curl, free_port, lines, monitor, Reply, TestServer};
use limitkv::config::Config;

async fn with_http() -> (TestServer, String) {
    let server = TestServer::with_config(Config {
        http_port: free_port(),
        ..Config::default()
    })
    .await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    (server, base)
}

/// `POST base+path` with `body` on a blocking thread: (status, body).
fn post(base: &str, path: &str, body: &str) -> tokio::task::JoinHandle<(u16, String)> {
    let (url, body) = (format!("{base}{path}"), body.to_owned());
    tokio::task::spawn_blocking(move || {
        let (code, text, _) = curl(
            &url,
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ],
        )
        .expect("curl runs");
        (code, text)
    })
}

/// Lets `h` run for a while and checks it has not finished (it is held by the pause).
async fn held<T>(h: &tokio::task::JoinHandle<T>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.is_finished(), "the request is held by the pause");
}

#[tokio::test]
async fn http_decisions_are_shown_to_monitors_with_the_request_peer() {
    let (server, base) = with_http().await;
    let mut c = server.raw().await;
    c.cmd(&["POLICY.SET", "api", "RATE", "5/1m"]).await;
    let mut m = monitor(&server).await;
    let (code, _) = post(
        &base,
        "/v1/check",
        r#"{"policy":"api","identity":"user:1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    let (code, _) = post(&base, "/", r#"["SET","k","v"]"#).await.unwrap();
    assert_eq!(code, 200);
    let got = lines(&mut m, 2).await;
    assert!(
        got[0].contains(" [0 127.0.0.1:") && got[0].ends_with(r#"] "LIMIT.CHECK" "api" "user:1""#),
        "{}",
        got[0]
    );
    assert!(
        got[1].contains(" [0 127.0.0.1:") && got[1].ends_with(r#"] "SET" "k" "v""#),
        "{}",
        got[1]
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn fast_path_scripts_show_their_calls_as_lua() {
    let server = TestServer::start().await;
    let mut m = monitor(&server).await;
    let mut c = server.raw().await;
    let script = include_str!("compat/scripts/limits-incr-expire.lua");
    assert_eq!(
        c.cmd(&["EVAL", script, "1", "hits", "60", "1"]).await,
        Reply::Int(1)
    );
    let got = lines(&mut m, 3).await;
    assert!(
        got[0].contains(r#"[0 127.0.0.1:"#) && got[0].contains(r#""EVAL""#),
        "{}",
        got[0]
    );
    assert!(
        got[1].ends_with(r#"[0 lua] "INCRBY" "hits" "1""#),
        "{}",
        got[1]
    );
    assert!(
        got[2].ends_with(r#"[0 lua] "EXPIRE" "hits" "60""#),
        "{}",
        got[2]
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_write_pause_holds_http_decisions_and_writes_until_unpaused() {
    let (server, base) = with_http().await;
    let mut admin = server.raw().await;
    admin.cmd(&["POLICY.SET", "api", "RATE", "5/1m"]).await;
    admin.cmd(&["SET", "k", "v"]).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await,
        Reply::Simple("OK".into())
    );
    // Reads answer at once: the status route and an Upstash GET.
    let (code, _) = post(
        &base,
        "/v1/status",
        r#"{"policy":"api","identity":"user:1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    let (code, text) = post(&base, "/", r#"["GET","k"]"#).await.unwrap();
    assert_eq!((code, text.as_str()), (200, r#"{"result":"v"}"#));
    // A decision and a write wait.
    let check = post(
        &base,
        "/v1/check",
        r#"{"policy":"api","identity":"user:1"}"#,
    );
    let write = post(&base, "/", r#"["SET","k","w"]"#);
    held(&check).await;
    held(&write).await;
    assert_eq!(admin.cmd(&["GET", "k"]).await, Reply::bulk("v"));
    assert_eq!(
        admin.cmd(&["CLIENT", "UNPAUSE"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(check.await.unwrap().0, 200);
    assert_eq!(write.await.unwrap().0, 200);
    assert_eq!(admin.cmd(&["GET", "k"]).await, Reply::bulk("w"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pause_all_holds_http_reads_until_its_end_on_the_server_clock() {
    let (server, base) = with_http().await;
    let mut admin = server.raw().await;
    admin.cmd(&["POLICY.SET", "api", "RATE", "5/1m"]).await;
    admin.cmd(&["CLIENT", "PAUSE", "5000", "ALL"]).await;
    let status = post(
        &base,
        "/v1/status",
        r#"{"policy":"api","identity":"user:1"}"#,
    );
    held(&status).await;
    server.clock.advance(Duration::from_millis(5_000));
    assert_eq!(status.await.unwrap().0, 200);
    server.stop().await.unwrap();
}
