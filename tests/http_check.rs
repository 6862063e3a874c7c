//! The check API on the HTTP listener (`/v1/check`, `/v1/status`, `/v1/reserve`,
//! `/v1/settle`, `/v1/cancel`, `/v1/auth`) through curl, side by side with the `LIMIT.*`
//! commands over RESP on the same server and manual clock; ACL refusals; the identity header;
//! input errors; and nginx's `auth_request` in front of a tiny upstream (the Debian package,
//! started by the test; skipped with a printed reason when nginx is not installed).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{curl, free_port, query, query_err, TestServer};
use limitkv::config::Config;
use serde_json::{json, Value};

/// A response header's value (`name` matched without regard to case, as HTTP does).
fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// `POST base+path` with a JSON body: (status, JSON body, headers).
fn post(base: &str, path: &str, body: &Value) -> Option<(u16, Value, String)> {
    let (code, text, headers) = curl(
        &format!("{base}{path}"),
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
        ],
    )?;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    Some((code, value, headers))
}

/// `GET base+path` (with extra curl `args`): (status, JSON body, headers).
fn get(base: &str, path: &str, args: &[&str]) -> Option<(u16, Value, String)> {
    let (code, text, headers) = curl(&format!("{base}{path}"), args)?;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    Some((code, value, headers))
}

/// A RESP3 reply as JSON, the way the check API renders the same reply.
fn resp_json(v: redis::Value) -> Value {
    use redis::Value as R;
    let text = |b: Vec<u8>| Value::String(String::from_utf8(b).expect("UTF-8"));
    match v {
        R::Nil => Value::Null,
        R::Int(n) => json!(n),
        R::BulkString(b) => text(b),
        R::SimpleString(s) => Value::String(s),
        R::Boolean(b) => json!(b),
        R::Double(d) => json!(d),
        R::Array(items) | R::Set(items) => Value::Array(items.into_iter().map(resp_json).collect()),
        R::Map(pairs) => Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| match resp_json(k) {
                    Value::String(k) => (k, resp_json(v)),
                    other => panic!("map key {other:?}"),
                })
                .collect(),
        ),
        other => panic!("unexpected RESP value {other:?}"),
    }
}

async fn with_http(config: Config) -> (TestServer, String) {
    let server = TestServer::with_config(Config {
        http_port: free_port(),
        ..config
    })
    .await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    (server, base)
}

#[tokio::test]
async fn http_and_resp_decide_alike_step_by_step() {
    let (server, base) = with_http(Config::default()).await;
    let mut con = server.redis(true).await;
    query(
        &mut con,
        &[
            "POLICY.SET",
            "plan",
            "WARN",
            "0.5",
            "RATE",
            "3/1m",
            "QUOTA",
            "10/day",
            "COST",
            "1.00/day",
            "SCOPE",
            "chat",
            "TOKENS",
            "100/1m",
        ],
    )
    .await;
    // (scope, tokens, cost, seconds to advance the clock before the step)
    type Step<'a> = (Option<&'a str>, Option<u64>, Option<&'a str>, u64);
    let steps: &[Step<'_>] = &[
        (None, None, None, 0),
        (None, None, Some("0.25"), 0),
        (Some("chat"), Some(60), Some("0.5"), 1),
        (None, None, None, 0),
        (None, None, None, 0),
        (Some("chat"), Some(60), None, 5),
        (None, None, Some("0.3"), 30),
        (None, None, None, 0),
        (Some("chat"), Some(30), Some("0.1"), 0),
    ];
    let (mut allowed, mut denied, mut warned) = (0, 0, 0);
    for (i, &(scope, tokens, cost, advance)) in steps.iter().enumerate() {
        server.clock.advance(Duration::from_secs(advance));
        let mut args = vec!["LIMIT.CHECK".to_owned(), "plan".into(), "over-resp".into()];
        let mut body = json!({"policy": "plan", "identity": "over-http"});
        if let Some(s) = scope {
            args.extend(["SCOPE".into(), s.into()]);
            body["scope"] = json!(s);
        }
        if let Some(t) = tokens {
            args.extend(["TOKENS".into(), t.to_string()]);
            body["tokens"] = json!(t);
        }
        if let Some(c) = cost {
            args.extend(["COST".into(), c.into()]);
            body["cost"] = json!(c);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let resp = resp_json(query(&mut con, &args).await);
        let Some((code, http, headers)) = post(&base, "/v1/check", &body) else {
            return;
        };
        // The warning flag is in both replies (the RESP reply has it since issue 17).
        let warning = http.get("warning").cloned().expect("a warning flag");
        assert_eq!(resp["warning"], warning, "step {i}");
        assert_eq!(
            warning,
            json!(!resp["warnings"].as_array().unwrap().is_empty()),
            "step {i}"
        );
        if warning == json!(true) {
            warned += 1;
        }
        // The whole reply is the same: allowed, remaining, retry/reset, denied_by, every
        // rule, and the header values.
        assert_eq!(http, resp, "step {i}: HTTP and RESP replies differ");
        let ok = resp["allowed"] == json!(true);
        if ok {
            allowed += 1;
        } else {
            denied += 1;
        }
        assert_eq!(code, if ok { 200 } else { 429 }, "step {i}");
        assert_eq!(
            header(&headers, "ratelimit").map(Value::String),
            Some(resp["ratelimit"].clone()).filter(|v| !v.is_null()),
            "step {i}"
        );
        assert_eq!(
            header(&headers, "ratelimit-policy").map(Value::String),
            Some(resp["ratelimit-policy"].clone()).filter(|v| !v.is_null()),
            "step {i}"
        );
        assert_eq!(
            header(&headers, "retry-after").map(|v| json!(v.parse::<u64>().unwrap())),
            Some(resp["retry-after"].clone()).filter(|v| !v.is_null()),
            "step {i}"
        );
    }
    assert!(
        allowed > 0 && denied > 0 && warned > 0,
        "{allowed} allowed, {denied} denied, {warned} warned"
    );
    // The GET form decides the same way (and a dry run charges nothing).
    let Some((code, before, _)) = get(&base, "/v1/status?policy=plan&id=over-http", &[]) else {
        return;
    };
    assert_eq!(code, 200);
    let (_, dry, _) = get(&base, "/v1/check?policy=plan&id=over-http&dry_run=1", &[]).unwrap();
    assert_eq!(dry["dryrun"], json!(true));
    let (_, after, _) = get(&base, "/v1/status?policy=plan&id=over-http", &[]).unwrap();
    assert_eq!(before["rules"], after["rules"], "a dry run charged");
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "plan", "over-http"]).await);
    assert_eq!(after, status, "GET /v1/status is LIMIT.STATUS");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reserve_and_settle_over_http_show_in_limit_status_over_resp() {
    let (server, base) = with_http(Config::default()).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "llm", "TOKENS", "1000/1m"]).await;
    let remaining = |v: &Value| v["rules"][0]["remaining"].as_i64().unwrap();
    let Some((code, r, _)) = post(
        &base,
        "/v1/reserve",
        &json!({"policy": "llm", "identity": "app", "tokens": 300, "ttl": "30s"}),
    ) else {
        return;
    };
    assert_eq!(code, 200, "{r}");
    assert_eq!(remaining(&r), 700);
    let id = r["reservation"].as_u64().expect("a reservation id");
    assert!(r["reservation_expires_at_ms"].as_u64().unwrap() > server.now().as_millis());
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "llm", "app"]).await);
    assert_eq!(remaining(&status), 700);
    // Settled at 100 tokens: 200 refunded.
    let (code, s, _) = post(
        &base,
        "/v1/settle",
        &json!({"reservation": id, "tokens": 100}),
    )
    .unwrap();
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["action"], json!("settle"));
    assert_eq!(s["estimated_tokens"], json!(300));
    assert_eq!(s["tokens"], json!(100));
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "llm", "app"]).await);
    assert_eq!(remaining(&status), 900);
    // Settled once: a second settle or a cancel is a 404 with the command's text.
    let (code, e, _) = post(&base, "/v1/cancel", &json!({"reservation": id})).unwrap();
    assert_eq!(code, 404);
    assert_eq!(
        e["error"],
        json!(format!(
            "ERR unknown reservation '{id}' (settled, cancelled or expired)"
        ))
    );
    // A cancel refunds everything.
    let (_, r, _) = post(
        &base,
        "/v1/reserve",
        &json!({"policy": "llm", "identity": "app", "tokens": 500}),
    )
    .unwrap();
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "llm", "app"]).await);
    assert_eq!(remaining(&status), 400);
    let (code, c, _) = post(
        &base,
        "/v1/cancel",
        &json!({"reservation": r["reservation"]}),
    )
    .unwrap();
    assert_eq!((code, &c["action"]), (200, &json!("cancel")));
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "llm", "app"]).await);
    assert_eq!(remaining(&status), 900);
    // A reserve over the budget is refused with 429 and no reservation.
    let (code, r, _) = post(
        &base,
        "/v1/reserve",
        &json!({"policy": "llm", "identity": "app", "tokens": 901}),
    )
    .unwrap();
    assert_eq!(code, 429);
    assert!(r.get("reservation").is_none(), "{r}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn acl_refusals_answer_403_log_and_charge_nothing() {
    let (server, base) = with_http(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let mut admin = common::redis_connect(&format!(
        "redis://default:s3cret@{}/?protocol=resp3",
        server.addr
    ))
    .await;
    query(&mut admin, &["POLICY.SET", "free", "RATE", "5/1m"]).await;
    query(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "nocheck",
            "on",
            ">pw",
            "+@all",
            "-limit.check",
            "~*",
        ],
    )
    .await;
    query(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "narrow",
            "on",
            ">pw",
            "+@all",
            "~unrelated:*",
        ],
    )
    .await;
    query(
        &mut admin,
        &["ACL", "SETUSER", "gw", "on", ">pw", "+limit.check", "~*"],
    )
    .await;
    query(&mut admin, &["ACL", "LOG", "RESET"]).await;
    let body = json!({"policy": "free", "identity": "u1"}).to_string();
    let check = |user: &str| {
        let (code, text, _) = curl(
            &format!("{base}/v1/check"),
            &["-u", &format!("{user}:pw"), "--data-binary", &body],
        )?;
        Some((code, serde_json::from_str::<Value>(&text).unwrap()))
    };
    let Some((code, e)) = check("nocheck") else {
        return;
    };
    assert_eq!(code, 403);
    assert_eq!(
        e["error"],
        json!("NOPERM this user has no permissions to run the 'limit.check' command")
    );
    let (code, e) = check("narrow").unwrap();
    assert_eq!(code, 403);
    assert_eq!(
        e["error"],
        json!("NOPERM this user has no permissions to access one of the keys used as arguments")
    );
    // Nothing was charged.
    let status = resp_json(query(&mut admin, &["LIMIT.STATUS", "free", "u1"]).await);
    assert_eq!(status["remaining"], json!(5));
    // Both refusals are in the ACL LOG, as over RESP.
    let log = resp_json(query(&mut admin, &["ACL", "LOG"]).await);
    let entries = log.as_array().unwrap();
    let reasons: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(reasons.contains(&("nocheck", "command")), "{log}");
    assert!(reasons.contains(&("narrow", "key")), "{log}");
    // A user with +limit.check and every key is served; without credentials, 401.
    let (code, ok) = check("gw").unwrap();
    assert_eq!((code, &ok["remaining"]), (200, &json!(4)));
    let (code, _, _) = curl(&format!("{base}/v1/check"), &["--data-binary", &body]).unwrap();
    assert_eq!(code, 401);
    // The same user over RESP is refused alike.
    let mut narrow = common::redis_connect(&format!(
        "redis://narrow:pw@{}/?protocol=resp3",
        server.addr
    ))
    .await;
    let e = query_err(&mut narrow, &["LIMIT.CHECK", "free", "u1"]).await;
    assert!(
        e.to_string()
            .contains("no permissions to access one of the keys"),
        "{e}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_identity_comes_from_the_configured_header() {
    let (server, base) = with_http(Config::default()).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "free", "RATE", "5/1m"]).await;
    let remaining = |v: Value| v["remaining"].as_i64().unwrap();
    // Not configured: an identity must be given.
    let Some((code, e, _)) = get(&base, "/v1/check?policy=free", &["-H", "X-Api-Key: k1"]) else {
        return;
    };
    assert_eq!(code, 400);
    assert_eq!(
        e["error"],
        json!("ERR missing identity: give 'identity' (or 'id'), or set http-identity-header")
    );
    query(
        &mut con,
        &["CONFIG", "SET", "http-identity-header", "X-Api-Key"],
    )
    .await;
    assert_eq!(
        resp_json(query(&mut con, &["CONFIG", "GET", "http-identity-header"]).await),
        json!({"http-identity-header": "x-api-key"})
    );
    let (code, _, _) = get(&base, "/v1/check?policy=free", &["-H", "X-Api-Key: k1"]).unwrap();
    assert_eq!(code, 200);
    let (code, body, _) = curl(
        &format!("{base}/v1/auth?policy=free"),
        &["-H", "x-api-key: k1"],
    )
    .unwrap();
    assert_eq!((code, body.as_str()), (200, ""));
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "free", "k1"]).await);
    assert_eq!(remaining(status), 3);
    // An identity in the request wins over the header.
    post(
        &base,
        "/v1/check",
        &json!({"policy": "free", "identity": "explicit"}),
    )
    .unwrap();
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "free", "k1"]).await);
    assert_eq!(remaining(status), 3);
    // The header missing: 400 naming it.
    let (code, e, _) = get(&base, "/v1/check?policy=free", &[]).unwrap();
    assert_eq!(code, 400);
    assert_eq!(
        e["error"],
        json!("ERR missing identity: no 'identity' (or 'id') and no x-api-key header")
    );
    // X-Forwarded-For: its first address.
    query(
        &mut con,
        &["CONFIG", "SET", "http-identity-header", "X-Forwarded-For"],
    )
    .await;
    let (code, _, _) = get(
        &base,
        "/v1/check?policy=free",
        &["-H", "X-Forwarded-For: 203.0.113.7, 10.0.0.1"],
    )
    .unwrap();
    assert_eq!(code, 200);
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "free", "203.0.113.7"]).await);
    assert_eq!(remaining(status), 4);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_answers_json_errors_with_the_commands_texts() {
    let (server, base) = with_http(Config::default()).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "free", "RATE", "5/1m"]).await;
    let raw = |path: &str, body: &str| {
        let (code, text, _) = curl(
            &format!("{base}{path}"),
            &["-X", "POST", "--data-binary", body],
        )?;
        Some((code, serde_json::from_str::<Value>(&text).unwrap()))
    };
    let Some((code, e)) = raw("/v1/check", "{\"policy\":") else {
        return;
    };
    assert_eq!(code, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR failed to parse the JSON body"),
        "{e}"
    );
    let cases: &[(&str, Value, u16, &str)] = &[
        (
            "/v1/check",
            json!([1]),
            400,
            "ERR the body is a JSON object",
        ),
        (
            "/v1/check",
            json!({"identity": "u"}),
            400,
            "ERR missing policy",
        ),
        (
            "/v1/check",
            json!({"policy": "free"}),
            400,
            "ERR missing identity: give 'identity' (or 'id'), or set http-identity-header",
        ),
        (
            "/v1/check",
            json!({"policy": "nope", "identity": "u"}),
            404,
            "ERR unknown policy 'nope'",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "tokens": -1}),
            400,
            "ERR invalid TOKENS '-1': must be a whole number >= 0",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "tokens": 1.5}),
            400,
            "ERR invalid TOKENS '1.5': must be a whole number >= 0",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "ip": "300.1.1.1"}),
            400,
            "ERR invalid IP '300.1.1.1'",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "colour": "red"}),
            400,
            "ERR unknown field 'colour'",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "dry_run": "yes"}),
            400,
            "ERR 'dry_run' must be true or false",
        ),
        (
            "/v1/check",
            json!({"policy": "free", "identity": "u", "ttl": "30s"}),
            400,
            "ERR /v1/check takes no 'ttl'",
        ),
        (
            "/v1/settle",
            json!({"tokens": 1}),
            400,
            "ERR missing reservation",
        ),
        (
            "/v1/settle",
            json!({"reservation": "x"}),
            400,
            "ERR invalid reservation id 'x'",
        ),
        (
            "/v1/settle",
            json!({"reservation": 42}),
            404,
            "ERR unknown reservation '42' (settled, cancelled or expired)",
        ),
    ];
    for (path, body, want_code, want) in cases {
        let (code, e) = raw(path, &body.to_string()).unwrap();
        assert_eq!(
            (code, e["error"].as_str().unwrap()),
            (*want_code, *want),
            "{path} {body}"
        );
    }
    // The COST and TTL texts are the commands' own.
    for (path, field, value, args) in [
        (
            "/v1/check",
            "cost",
            "1.0000001",
            &["LIMIT.CHECK", "free", "u", "COST", "1.0000001"][..],
        ),
        (
            "/v1/check",
            "cost",
            "-1",
            &["LIMIT.CHECK", "free", "u", "COST", "-1"][..],
        ),
        (
            "/v1/reserve",
            "ttl",
            "soon",
            &["LIMIT.RESERVE", "free", "u", "TTL", "soon"][..],
        ),
    ] {
        let mut body = json!({"policy": "free", "identity": "u"});
        body[field] = json!(value);
        let (code, e) = raw(path, &body.to_string()).unwrap();
        let resp = query_err(&mut con, args).await;
        assert_eq!(code, 400, "{field} {value}");
        let text = e["error"].as_str().unwrap();
        assert!(
            text.starts_with("ERR ") && resp.to_string().contains(&text[4..]),
            "{text} vs {resp}"
        );
    }
    // GET /v1/check without a policy; an unknown route under /v1.
    let (code, e, _) = get(&base, "/v1/check?id=u", &[]).unwrap();
    assert_eq!(
        (code, e["error"].as_str().unwrap()),
        (400, "ERR missing policy")
    );
    let (code, _, _) = get(&base, "/v1/nothing", &[]).unwrap();
    assert_eq!(code, 404);
    // Nothing was charged by the refused requests, and the RESP port keeps serving.
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "free", "u"]).await);
    assert_eq!(status["remaining"], json!(5));
    assert_eq!(
        query(&mut con, &["PING"]).await,
        redis::Value::SimpleString("PONG".into())
    );
    server.stop().await.unwrap();
}

/// A running nginx, stopped (by its process id) when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx configuration of docs/http.md's `auth_request` example, on `front` (the client's
/// side) and `upstream` (the application), asking limitkv at `limitkv`.
fn nginx_conf(dir: &std::path::Path, front: u16, upstream: u16, limitkv: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;

  upstream limitkv {{ server {limitkv}; keepalive 16; }}

  # The application: a tiny upstream.
  server {{
    listen 127.0.0.1:{upstream};
    location / {{ return 200 "upstream-ok"; }}
  }}

  server {{
    listen 127.0.0.1:{front};

    location / {{
      auth_request /_limitkv;
      # The subrequest's answer headers, for the client's response.
      auth_request_set $ratelimit $upstream_http_ratelimit;
      auth_request_set $ratelimit_policy $upstream_http_ratelimit_policy;
      auth_request_set $retry_after $upstream_http_retry_after;
      add_header RateLimit $ratelimit always;
      add_header RateLimit-Policy $ratelimit_policy always;
      # limitkv answers 403 when the request is refused: make it a 429.
      error_page 403 = @limited;
      proxy_pass http://127.0.0.1:{upstream};
    }}

    location = /_limitkv {{
      internal;
      # The identity: the client's X-Api-Key header (limitkv's http-identity-header).
      proxy_pass http://limitkv/v1/auth?policy=api;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}

    location @limited {{
      add_header Retry-After $retry_after always;
      add_header RateLimit $ratelimit always;
      add_header RateLimit-Policy $ratelimit_policy always;
      default_type application/json;
      return 429 '{{"error":"rate limited"}}';
    }}
  }}
}}
"#
    )
}

#[tokio::test]
async fn nginx_auth_request_turns_the_101st_request_into_a_429_with_the_headers() {
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let mut config = Config::default();
    config.set("http-identity-header", "X-Api-Key").unwrap();
    let (server, _) = with_http(config).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "api", "RATE", "100/1m"]).await;
    let dir = common::temp_dir();
    let (front, upstream) = (free_port(), free_port());
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(
            dir.path(),
            front,
            upstream,
            &server.http.unwrap().to_string(),
        ),
    )
    .unwrap();
    let _nginx = Nginx(
        Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx"),
    );
    let url = format!("http://127.0.0.1:{front}/hello");
    common::eventually(common::WAIT, "nginx to listen", || async {
        std::net::TcpStream::connect(("127.0.0.1", front)).ok()
    })
    .await;
    // 100 requests in one curl (one kept-alive connection): each reaches the upstream.
    let mut args = vec![
        "--silent".to_owned(),
        "--max-time".into(),
        "30".into(),
        "-H".into(),
        "X-Api-Key: customer-1".into(),
        "--write-out".into(),
        " %{http_code}\\n".into(),
    ];
    args.extend(std::iter::repeat_n(url.clone(), 100));
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, "upstream-ok 200", "request {}", i + 1);
    }
    // The 101st: 429 at the client, with Retry-After and the RateLimit fields.
    let (code, body, headers) = curl(&url, &["-H", "X-Api-Key: customer-1"]).unwrap();
    assert_eq!(code, 429, "{body} {headers}");
    assert_eq!(body, r#"{"error":"rate limited"}"#);
    let retry: u64 = header(&headers, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&headers, "ratelimit").as_deref(),
        Some(r#""rate-1m";r=0;t=60"#),
        "{headers}"
    );
    assert_eq!(
        header(&headers, "ratelimit-policy").as_deref(),
        Some(r#""rate-1m";q=100;w=60"#)
    );
    // Admitted responses carry RateLimit too; another identity is still served.
    let (code, body, headers) = curl(&url, &["-H", "X-Api-Key: customer-2"]).unwrap();
    assert_eq!((code, body.as_str()), (200, "upstream-ok"));
    assert_eq!(
        header(&headers, "ratelimit").as_deref(),
        Some(r#""rate-1m";r=99;t=1"#)
    );
    let status = resp_json(query(&mut con, &["LIMIT.STATUS", "api", "customer-1"]).await);
    assert_eq!(status["remaining"], json!(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn over_maxmemory_http_checks_answer_on_existing_keys_and_refuse_new_ones() {
    let (server, base) = with_http(Config::default()).await;
    let mut con = server.redis(true).await;
    query(&mut con, &["POLICY.SET", "p", "RATE", "100/1m"]).await;
    let check = |id: &str| post(&base, "/v1/check", &json!({"policy": "p", "identity": id}));
    let Some((code, _, _)) = check("old") else {
        return; // no curl: skipped with a printed reason
    };
    assert_eq!(code, 200);
    // No process fits in one byte: every write that would grow memory is over the limit.
    query(&mut con, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let (code, body, _) = check("old").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["allowed"], json!(true), "{body}");
    let (code, body, _) = check("new").unwrap();
    assert_eq!(code, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("OOM "), "{body}");
    // Nothing was created, and the RESP side serves on.
    assert_eq!(query(&mut con, &["DBSIZE"]).await, redis::Value::Int(1));
    // An evicting policy makes room over HTTP as on RESP (here everything goes, and one byte
    // is still too little, so the new identity is refused all the same).
    query(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    )
    .await;
    assert_eq!(check("new").unwrap().0, 503);
    assert_eq!(query(&mut con, &["DBSIZE"]).await, redis::Value::Int(0));
    query(&mut con, &["CONFIG", "SET", "maxmemory", "0"]).await;
    assert_eq!(check("new").unwrap().0, 200);
}
