//! Hostile input at the RESP port: HTTP requests (cross-protocol scripting) close the
//! connection before their body can run, as Redis does.

mod common;

use std::process::Command;

use common::{query, resp, Reply, TestServer};
use limitkv::config::Config;

/// Runs `curl` with `args` against `url` and returns its exit status and stdout. curl is the
/// real HTTP client a browser-less attacker or a test would use.
fn curl(url: &str, args: &[&str]) -> Option<(i32, String)> {
    let out = Command::new("curl")
        .args(["--silent", "--max-time", "10", "--http0.9"])
        .args(args)
        .arg(url)
        .output();
    match out {
        Ok(out) => Some((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )),
        Err(e) => {
            eprintln!("SKIPPED: curl is not installed ({e}); .ci/run installs it");
            None
        }
    }
}

/// curl's exit code for a connection closed without a single byte of reply.
const CURL_EMPTY_REPLY: i32 = 52;

#[tokio::test]
async fn an_http_post_is_closed_before_its_body_runs() {
    let server = TestServer::start().await;
    let url = format!("http://{}/", server.addr);
    let body = "\r\nSET pwned-by-http 1\r\nCL.THROTTLE pwned-throttle 1 1 1\r\n";
    let Some((code, stdout)) = curl(&url, &["-X", "POST", "--data-binary", body]) else {
        return;
    };
    assert_eq!(code, CURL_EMPTY_REPLY, "curl got: {stdout:?}");
    assert_eq!(stdout, "", "not one reply is written to an HTTP client");
    // The body never ran, and the server goes on serving everyone else.
    let mut con = server.redis(true).await;
    assert_eq!(
        query(&mut con, &["EXISTS", "pwned-by-http", "pwned-throttle"]).await,
        redis::Value::Int(0)
    );
    assert_eq!(
        query(&mut con, &["PING"]).await,
        redis::Value::SimpleString("PONG".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_http_get_is_closed_at_its_host_header() {
    let server = TestServer::start().await;
    let url = format!("http://{}/?SET", server.addr);
    let Some((code, stdout)) = curl(&url, &[]) else {
        return;
    };
    // "GET / HTTP/1.1" has the wrong arity for GET, but the Host: line that follows closes the
    // connection before that error is written.
    assert_eq!(code, CURL_EMPTY_REPLY, "curl got: {stdout:?}");
    assert_eq!(stdout, "");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn post_and_host_close_the_connection_in_any_state_and_any_case() {
    let server = TestServer::with_config(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    // Before authentication, as an inline line, with the replies of the batch so far dropped.
    let mut c = server.raw().await;
    c.send(b"PING\r\npOsT / HTTP/1.1\r\nAUTH s3cret\r\nSET a 1\r\n")
        .await;
    assert_eq!(c.read_until_closed().await, b"");
    // After authentication, as a multibulk request, inside MULTI: the queued transaction is
    // never executed.
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, Reply::Simple("OK".into()));
    assert_eq!(c.cmd(&["MULTI"]).await, Reply::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["SET", "b", "1"]).await,
        Reply::Simple("QUEUED".into())
    );
    let mut batch = resp(&["host:", "evil.example"]);
    batch.extend_from_slice(&resp(&["EXEC"]));
    c.send(&batch).await;
    assert_eq!(c.read_until_closed().await, b"");
    // Other connections are served, and nothing of the attack was stored.
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, Reply::Simple("OK".into()));
    assert_eq!(c.cmd(&["EXISTS", "a", "b"]).await, Reply::Int(0));
    // A key or an argument named POST is an ordinary value.
    assert_eq!(
        c.cmd(&["SET", "POST", "Host:"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["GET", "POST"]).await, Reply::bulk("Host:"));
    server.stop().await.unwrap();
}
