//! HTTP/1.1 pipelining and write coalescing on the HTTP listener (`src/http/coalesce.rs`),
//! over a raw TCP socket: pipelined checks are answered in order, each answer exactly the one
//! a lone request gets; a stray CRLF or half a request after a request never holds its answer
//! back.

mod common;

use std::time::Duration;

use common::{free_port, query, TestServer};
use limitkv::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for an answer that must come at once.
const PROMPT: Duration = Duration::from_secs(3);

async fn server() -> TestServer {
    let server = TestServer::with_config(Config {
        http_port: free_port(),
        ..Config::default()
    })
    .await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "api", "RATE", "5/1m"]).await;
    server
}

/// Reads whole responses until `n` have arrived; returns (status, body) of each.
async fn responses(sock: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Some((status, body, used)) = parse_one(buf) {
            buf.drain(..used);
            out.push((status, body));
            continue;
        }
        let mut chunk = [0u8; 16384];
        let read = tokio::time::timeout(PROMPT, sock.read(&mut chunk))
            .await
            .expect("an answer within 3 s")
            .unwrap();
        assert!(read > 0, "connection closed after {} answers", out.len());
        buf.extend_from_slice(&chunk[..read]);
    }
    out
}

/// One complete response at the front of `buf` (with a Content-Length body).
fn parse_one(buf: &[u8]) -> Option<(u16, String, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let body = String::from_utf8(buf[end..end + len].to_vec()).unwrap();
    Some((status, body, end + len))
}

fn get(id: &str) -> String {
    format!("GET /v1/check?policy=api&id={id} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[tokio::test]
async fn pipelined_checks_are_answered_in_order_as_lone_ones_are() {
    let server = server().await;
    let mut sock = TcpStream::connect(server.http.unwrap()).await.unwrap();
    // Eight checks of one identity in one write: five admitted, then refusals, in order.
    let batch: String = (0..8).map(|_| get("p")).collect();
    sock.write_all(batch.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let got = responses(&mut sock, &mut buf, 8).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    for (i, (_, body)) in got.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["remaining"], 4u64.saturating_sub(i as u64), "{body}");
    }
    // The same connection serves a lone request afterwards.
    sock.write_all(get("q").as_bytes()).await.unwrap();
    let got = responses(&mut sock, &mut buf, 1).await;
    assert_eq!(got[0].0, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stray_crlf_or_half_a_request_never_holds_an_answer_back() {
    let server = server().await;
    let mut sock = TcpStream::connect(server.http.unwrap()).await.unwrap();
    let mut buf = Vec::new();
    // A POST body followed by an extra CRLF (which some clients send): answered at once.
    let body = r#"{"policy":"api","identity":"c"}"#;
    let post = format!(
        "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}\r\n",
        body.len()
    );
    sock.write_all(post.as_bytes()).await.unwrap();
    let got = responses(&mut sock, &mut buf, 1).await;
    assert_eq!(got[0].0, 200, "{}", got[0].1);
    // A request and the first half of the next: the first is answered before the rest comes.
    let next = get("h");
    let (first_half, second_half) = next.split_at(20);
    sock.write_all(format!("{}{first_half}", get("h")).as_bytes())
        .await
        .unwrap();
    let got = responses(&mut sock, &mut buf, 1).await;
    assert_eq!(got[0].0, 200);
    sock.write_all(second_half.as_bytes()).await.unwrap();
    let got = responses(&mut sock, &mut buf, 1).await;
    assert_eq!(got[0].0, 200);
    let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["remaining"], 3);
    server.stop().await.unwrap();
}
