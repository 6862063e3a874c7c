//! The dashboard on the HTTP listener: its JSON routes with curl (credentials, bad input), and
//! the page itself in headless Chromium (Debian's `chromium`): after generated traffic the DOM
//! shows the policies and their denials, and screenshots (laptop and phone widths) are saved
//! under `target/dashboard/` as CI artifacts. Skipped with a message when curl or Chromium is
//! missing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use limitkv::config::Config;

async fn with_http(requirepass: Option<&str>) -> TestServer {
    let config = Config {
        http_port: free_port(),
        requirepass: requirepass.map(str::to_owned),
        ..Config::default()
    };
    TestServer::with_config(config).await
}

async fn traffic(server: &TestServer, pass: Option<&str>) {
    let url = match pass {
        Some(p) => format!("redis://:{p}@{}/", server.addr),
        None => server.url(false),
    };
    let mut con = redis_connect(&url).await;
    query(
        &mut con,
        &["POLICY.SET", "free", "RATE", "5/1m", "QUOTA", "1000/day"],
    )
    .await;
    query(&mut con, &["POLICY.SET", "pro", "RATE", "100/1m"]).await;
    for (who, policy, n) in [
        ("mallory", "free", 30),
        ("alice", "free", 4),
        ("bob", "pro", 20),
    ] {
        for _ in 0..n {
            query(&mut con, &["LIMIT.CHECK", policy, who]).await;
        }
    }
    query(&mut con, &["BREAKER.TRIP", "payments", "COOLDOWN", "30s"]).await;
}

#[tokio::test]
async fn the_dashboard_and_its_routes_need_credentials_once_a_password_is_set() {
    let server = with_http(Some("s3cret")).await;
    traffic(&server, Some("s3cret")).await;
    let base = format!("http://{}", server.http.unwrap());
    let Some((status, _, headers)) = curl(&format!("{base}/dashboard"), &[]) else {
        return;
    };
    assert_eq!(status, 401);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{headers}"
    );
    let (status, _, _) = curl(&format!("{base}/v1/usage/overview"), &[]).unwrap();
    assert_eq!(status, 401);
    let basic = ["-u", "default:s3cret"];
    let (status, html, headers) = curl(&format!("{base}/dashboard"), &basic).unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("<title>limitkv dashboard</title>"));
    assert!(headers.contains("content-security-policy"), "{headers}");
    let (status, js, _) = curl(&format!("{base}/dashboard/app.js"), &basic).unwrap();
    assert_eq!(status, 200);
    assert!(js.contains("/v1/usage/overview"));
    let (status, body, _) = curl(
        &format!("{base}/v1/usage/overview?window=24h"),
        &["-H", "Authorization: Bearer s3cret"],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["policies"][0]["policy"], "free");
    assert_eq!(v["policies"][0]["denied"], 25);
    assert_eq!(v["policies"][0]["series"].as_array().unwrap().len(), 1440);
    assert_eq!(v["top_denied"][0]["identity"], "mallory");
    assert_eq!(v["top_usage"][0]["identity"], "bob");
    assert_eq!(v["breakers"][0]["key"], "payments");
    assert_eq!(v["breakers"][0]["state"], "open");
    assert!(v["clients"]["connected_clients"].as_u64().unwrap() >= 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_usage_routes_answer_bad_input_with_a_json_4xx() {
    let server = with_http(None).await;
    traffic(&server, None).await;
    let base = format!("http://{}", server.http.unwrap());
    let Some((status, body, _)) = curl(&format!("{base}/v1/usage/identity?policy=free"), &[])
    else {
        return;
    };
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"error":"missing 'identity'"}"#)
    );
    for (path, want) in [
        ("/v1/usage/history?policy=nope", "ERR unknown policy 'nope'"),
        (
            "/v1/usage/top?window=3d",
            "ERR invalid WINDOW '3d': must be between 1m and 48h",
        ),
        ("/v1/usage/overview?window=7d", "window must be 1h or 24h"),
    ] {
        let (status, body, _) = curl(&format!("{base}{path}"), &[]).unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], want, "{path}");
    }
    let (status, body, _) = curl(
        &format!("{base}/v1/usage/identity?policy=free&identity=mallory"),
        &[],
    )
    .unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rules"][0]["used"], 5);
    assert_eq!(v["last_hour"]["denied"], 25);
    let (_, body, _) = curl(
        &format!("{base}/v1/usage/history?policy=free&identity=mallory&window=2m"),
        &[],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[1]["denied"], 25, "{v}");
    server.stop().await.unwrap();
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run_chromium(bin: &str, args: &[&str]) -> std::process::Output {
    let profile = temp_dir();
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("run chromium")
}

/// The text of the element with `id` in a DOM dump.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].to_owned()
}

#[tokio::test]
async fn headless_chromium_shows_the_policies_and_their_denials() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let server = with_http(None).await;
    traffic(&server, None).await;
    let url = format!("http://{}/dashboard", server.http.unwrap());
    let dump = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run_chromium(bin, &["--dump-dom", &url]))
            .await
            .unwrap()
    };
    let dom = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page loaded its data: {}\n{dom}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        dom.contains(r#"<span class="policy-name">free</span>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<span class="policy-name">pro</span>"#),
        "{dom}"
    );
    assert_eq!(text_of(&dom, "total-denied"), "25");
    assert!(dom.contains("<td>mallory</td>"), "{dom}");
    assert!(dom.contains(r#"class="state-open">open<"#), "{dom}");

    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
    std::fs::create_dir_all(&out_dir).unwrap();
    for (name, size) in [
        ("dashboard.png", "1280,1100"),
        ("dashboard-phone.png", "390,1600"),
    ] {
        let path = out_dir.join(name);
        let _ = std::fs::remove_file(&path);
        let shot = format!("--screenshot={}", path.display());
        let size = format!("--window-size={size}");
        let url = url.clone();
        let out = tokio::task::spawn_blocking(move || run_chromium(bin, &[&shot, &size, &url]))
            .await
            .unwrap();
        let png = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "no screenshot at {} ({e}): {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
    server.stop().await.unwrap();
}
