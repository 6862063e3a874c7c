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

/// A test host: a network namespace joined to this machine by a veth pair, so a client inside
/// it connects from a non-loopback address (`ns_ip`) to the server on `host_ip`. Removed on
/// drop. Needs root and iproute2 (CI runs as root); `None` (with a printed reason) otherwise.
struct TestHost {
    ns: String,
    host_ip: String,
}

impl TestHost {
    fn create() -> Option<TestHost> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Names are at most 15 bytes; the subnet is this test host's own /30.
        let id = (std::process::id() % 10_000) * 10 + n;
        let ns = format!("lkvns{id}");
        let (host_if, ns_if) = (format!("lkvh{id}"), format!("lkvn{id}"));
        let octet = 1 + (id % 250);
        let (host_ip, ns_ip) = (format!("10.213.{octet}.1"), format!("10.213.{octet}.2"));
        let host = TestHost {
            ns: ns.clone(),
            host_ip: host_ip.clone(),
        };
        let steps: [&[&str]; 8] = [
            &["netns", "add", &ns],
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            &["link", "set", &ns_if, "netns", &ns],
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
            &["link", "set", &host_if, "up"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_if,
            ],
            &["-n", &ns, "link", "set", &ns_if, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            match Command::new("ip").args(step).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    eprintln!(
                        "SKIPPED: cannot create a test host (ip {step:?}: {}); needs root",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    return None;
                }
                Err(e) => {
                    eprintln!("SKIPPED: iproute2's ip is not installed ({e})");
                    return None;
                }
            }
        }
        Some(host)
    }

    /// Opens a TCP connection from inside the namespace to `host_ip:port`, writes `request`
    /// and returns every byte the server sends until it closes (or 5 s pass).
    fn exchange(&self, port: u16, request: &str) -> String {
        let script = format!(
            "exec 3<>/dev/tcp/{}/{port} || exit 9; printf '{request}' >&3; timeout 5 cat <&3",
            self.host_ip
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "bash", "-c", &script])
            .output()
            .expect("run bash in the test host");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs redis-cli inside the namespace against `host_ip:port`; its stdout.
    fn redis_cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "redis-cli", "-h", &self.host_ip])
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it the host's.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[tokio::test]
async fn protected_mode_turns_away_remote_clients_until_a_password_or_config_set() {
    let Some(host) = TestHost::create() else {
        return;
    };
    let server =
        TestServer::with_config_bound(Config::default(), &["127.0.0.1", &host.host_ip]).await;
    let port = server.addr.port();
    let denied = limitkv::error::RefusedConnection::ProtectedMode.wire();
    let denied = String::from_utf8(denied).unwrap();
    // A remote client gets Redis's DENIED text and is closed before any command runs.
    let got = host.exchange(port, "SET remote 1\r\nPING\r\n");
    assert_eq!(got, denied);
    if let Some(out) = host.redis_cli(port, &["PING"]) {
        assert!(
            out.contains("DENIED Redis is running in protected mode"),
            "{out}"
        );
    }
    // Loopback clients are served, nothing the remote client sent ran, and the refusals were
    // counted.
    let mut c = server.raw().await;
    assert_eq!(c.cmd(&["EXISTS", "remote"]).await, Reply::Int(0));
    let info = c.cmd(&["INFO", "stats"]).await.text();
    assert!(info.contains("rejected_connections:2"), "{info}");
    // With a password the remote client reaches the server (and must authenticate).
    c.cmd(&["CONFIG", "SET", "requirepass", "s3cret"]).await;
    assert_eq!(
        host.exchange(port, "PING\r\nQUIT\r\n"),
        "-NOAUTH Authentication required.\r\n+OK\r\n"
    );
    assert_eq!(
        host.exchange(port, "AUTH s3cret\r\nPING\r\nQUIT\r\n"),
        "+OK\r\n+PONG\r\n+OK\r\n"
    );
    // Without a password again, `CONFIG SET protected-mode no` (from loopback) lets it in.
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, Reply::Simple("OK".into()));
    c.cmd(&["CONFIG", "SET", "requirepass", ""]).await;
    assert_eq!(host.exchange(port, "PING\r\n"), denied);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "protected-mode"]).await,
        Reply::Array(vec![Reply::bulk("protected-mode"), Reply::bulk("yes")])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "protected-mode", "no"]).await,
        Reply::Simple("OK".into())
    );
    assert_eq!(host.exchange(port, "PING\r\nQUIT\r\n"), "+PONG\r\n+OK\r\n");
    server.stop().await.unwrap();
}
