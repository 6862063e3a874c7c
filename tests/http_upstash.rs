//! The Upstash-compatible REST API on the HTTP listener, through curl: `POST /`, `/pipeline`,
//! `/multi-exec` and the path form; the JSON mapping of replies and `Upstash-Encoding: base64`;
//! errors and their status codes; commands refused over HTTP; ACL users by Bearer token; the
//! request's client in `CLIENT LIST`; AOF durability under `appendfsync always`.

mod common;

use common::{free_port, query, TestServer};
use limitkv::config::Config;
use serde_json::{json, Value};

/// [`common::curl`] without the headers: (HTTP status, body).
fn curl(url: &str, args: &[&str]) -> Option<(u16, String)> {
    common::curl(url, args).map(|(code, body, _)| (code, body))
}

/// A server with an HTTP listener, and its base URL.
async fn server(config: Config) -> (TestServer, String) {
    let server = TestServer::with_config(Config {
        http_port: free_port(),
        ..config
    })
    .await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    (server, base)
}

/// POSTs `body` to `base` + `path` with extra curl `args`: (status, JSON body).
fn post(base: &str, path: &str, body: &str, args: &[&str]) -> Option<(u16, Value)> {
    let mut all = vec!["--data-binary", body];
    all.extend_from_slice(args);
    let (code, text) = curl(&format!("{base}{path}"), &all)?;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    Some((code, value))
}

const BASE64: &[&str] = &["-H", "Upstash-Encoding: base64"];

#[tokio::test]
async fn one_command_answers_its_result_or_a_400_error() {
    let (server, base) = server(Config::default()).await;
    let Some(r) = post(&base, "/", r#"["SET","k","v"]"#, &[]) else {
        return;
    };
    assert_eq!(r, (200, json!({"result": "OK"})));
    assert_eq!(
        post(&base, "/", r#"["GET","k"]"#, &[]).unwrap(),
        (200, json!({"result": "v"}))
    );
    assert_eq!(
        post(&base, "/", r#"["GET","missing"]"#, &[]).unwrap(),
        (200, json!({"result": null}))
    );
    // Numbers and booleans are arguments as their JSON text.
    assert_eq!(
        post(&base, "/", r#"["SET","n",41]"#, &[]).unwrap(),
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        post(&base, "/", r#"["INCRBY","n",1]"#, &[]).unwrap(),
        (200, json!({"result": 42}))
    );
    assert_eq!(post(&base, "/", r#"["SET","b",true]"#, &[]).unwrap().0, 200);
    assert_eq!(
        post(&base, "/", r#"["GET","b"]"#, &[]).unwrap().1,
        json!({"result": "true"})
    );
    assert_eq!(
        post(&base, "/", r#"["INCR","k"]"#, &[]).unwrap(),
        (
            400,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (code, body) = post(&base, "/", r#"["NOPE","a"]"#, &[]).unwrap();
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR unknown command 'NOPE'"),
        "{body}"
    );
    // Arrays, maps (flattened), as the RESP2 view.
    post(&base, "/", r#"["HSET","h","f","1","g","2"]"#, &[]).unwrap();
    assert_eq!(
        post(&base, "/", r#"["HGETALL","h"]"#, &[]).unwrap().1,
        json!({"result": ["f", "1", "g", "2"]})
    );
    // The RESP port sees the same keyspace.
    let mut con = server.redis(false).await;
    assert_eq!(
        query(&mut con, &["GET", "n"]).await,
        redis::Value::BulkString(b"42".to_vec())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn base64_encoding_encodes_every_string_but_the_ok_status() {
    let (server, base) = server(Config::default()).await;
    let Some(r) = post(&base, "/", r#"["SET","k","héllo"]"#, BASE64) else {
        return;
    };
    assert_eq!(r, (200, json!({"result": "OK"})));
    // "héllo" in UTF-8, base64.
    assert_eq!(
        post(&base, "/", r#"["GET","k"]"#, BASE64).unwrap().1,
        json!({"result": "aMOpbGxv"})
    );
    assert_eq!(
        post(&base, "/", r#"["PING"]"#, BASE64).unwrap().1,
        json!({"result": "UE9ORw=="})
    );
    post(&base, "/", r#"["RPUSH","l","a","bc"]"#, &[]).unwrap();
    assert_eq!(
        post(&base, "/", r#"["LRANGE","l",0,-1]"#, BASE64)
            .unwrap()
            .1,
        json!({"result": ["YQ==", "YmM="]})
    );
    // Numbers and nil stay as they are; errors are not encoded.
    assert_eq!(
        post(&base, "/", r#"["LLEN","l"]"#, BASE64).unwrap().1,
        json!({"result": 2})
    );
    assert_eq!(
        post(&base, "/", r#"["GET","nope"]"#, BASE64).unwrap().1,
        json!({"result": null})
    );
    assert_eq!(
        post(&base, "/", r#"["INCR","k"]"#, BASE64).unwrap(),
        (
            400,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (code, body) = post(
        &base,
        "/pipeline",
        r#"[["GET","k"],["SET","x","y"]]"#,
        BASE64,
    )
    .unwrap();
    assert_eq!(
        (code, body),
        (200, json!([{"result": "aMOpbGxv"}, {"result": "OK"}]))
    );
    // Another response format is refused rather than ignored.
    let (code, body) = post(
        &base,
        "/",
        r#"["PING"]"#,
        &["-H", "Upstash-Response-Format: resp2"],
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pipeline_runs_in_order_with_an_entry_per_command() {
    let (server, base) = server(Config::default()).await;
    let Some(r) = post(
        &base,
        "/pipeline",
        r#"[["SET","a",1],["INCR","a"],["SET","s","x"],["INCR","s"],["GET","a"],["SUBSCRIBE","c"]]"#,
        &[],
    ) else {
        return;
    };
    assert_eq!(r.0, 200);
    let entries = r.1.as_array().unwrap().clone();
    assert_eq!(entries.len(), 6);
    assert_eq!(
        entries[..5],
        [
            json!({"result": "OK"}),
            json!({"result": 2}),
            json!({"result": "OK"}),
            json!({"error": "ERR value is not an integer or out of range"}),
            json!({"result": "2"}),
        ]
    );
    let refused = entries[5]["error"].as_str().unwrap();
    assert!(
        refused.starts_with("ERR SUBSCRIBE is not supported over HTTP"),
        "{refused}"
    );
    // SELECT holds for the rest of its request only: each request is a fresh client on db 0.
    let (_, body) = post(
        &base,
        "/pipeline",
        r#"[["SELECT",1],["SET","a","db1"],["GET","a"]]"#,
        &[],
    )
    .unwrap();
    assert_eq!(body[2], json!({"result": "db1"}));
    assert_eq!(
        post(&base, "/", r#"["GET","a"]"#, &[]).unwrap().1,
        json!({"result": "2"})
    );
    assert_eq!(
        post(&base, "/pipeline", "[]", &[]).unwrap(),
        (200, json!([]))
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn multi_exec_runs_a_transaction_and_a_queuing_error_aborts_it() {
    let (server, base) = server(Config::default()).await;
    let Some(r) = post(
        &base,
        "/multi-exec",
        r#"[["SET","k","v"],["INCR","c"],["INCR","k"],["GET","k"]]"#,
        &[],
    ) else {
        return;
    };
    // A command failing when it runs is that command's entry; the others run.
    assert_eq!(
        r,
        (
            200,
            json!([
                {"result": "OK"},
                {"result": 1},
                {"error": "ERR value is not an integer or out of range"},
                {"result": "v"}
            ])
        )
    );
    // A command refused while queuing (unknown, wrong arity, refused over HTTP) aborts the
    // whole transaction: nothing runs.
    for bad in [r#"["NOPE"]"#, r#"["GET"]"#, r#"["WATCH","k"]"#] {
        let body = format!(r#"[["INCR","c"],{bad},["INCR","c"]]"#);
        let (code, reply) = post(&base, "/multi-exec", &body, &[]).unwrap();
        assert_eq!(
            (code, reply),
            (
                400,
                json!({"error": "EXECABORT Transaction discarded because of previous errors."})
            ),
            "{bad}"
        );
    }
    assert_eq!(
        post(&base, "/", r#"["GET","c"]"#, &[]).unwrap().1,
        json!({"result": "1"})
    );
    // MULTI and EXEC themselves belong to /multi-exec.
    let (code, body) = post(&base, "/", r#"["MULTI"]"#, &[]).unwrap();
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("/multi-exec"),
        "{body}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_path_form_takes_segments_then_the_body_then_the_query() {
    let (server, base) = server(Config::default()).await;
    let Some((code, body)) = curl(&format!("{base}/set/foo/bar"), &[]) else {
        return;
    };
    assert_eq!((code, body.as_str()), (200, r#"{"result":"OK"}"#));
    assert_eq!(
        curl(&format!("{base}/GET/foo"), &[]).unwrap(),
        (200, r#"{"result":"bar"}"#.into())
    );
    // Percent-escapes are decoded per segment: %2F is a slash inside an argument.
    curl(&format!("{base}/set/a%2Fb/x%20y"), &[]).unwrap();
    assert_eq!(
        curl(&format!("{base}/get/a%2Fb"), &[]).unwrap(),
        (200, r#"{"result":"x y"}"#.into())
    );
    // A POST body is one more argument (any bytes, JSON or not), then the query's pairs.
    let (code, _) = curl(
        &format!("{base}/set/doc?EX=100"),
        &["--data-binary", r#"{"a": [1, 2]}"#],
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        curl(&format!("{base}/get/doc"), &[]).unwrap(),
        (200, r#"{"result":"{\"a\": [1, 2]}"}"#.into())
    );
    assert_eq!(
        curl(&format!("{base}/ttl/doc"), &[]).unwrap(),
        (200, r#"{"result":100}"#.into())
    );
    assert_eq!(
        curl(&format!("{base}/incr/foo"), &[]).unwrap(),
        (
            400,
            r#"{"error":"ERR value is not an integer or out of range"}"#.into()
        )
    );
    assert_eq!(
        curl(&format!("{base}/get/foo"), BASE64).unwrap(),
        (200, r#"{"result":"YmFy"}"#.into())
    );
    // A path that names no command is not found; other methods are not allowed.
    assert_eq!(
        curl(&format!("{base}/nope/x"), &[]).unwrap(),
        (404, r#"{"error":"not found"}"#.into())
    );
    assert_eq!(
        curl(&format!("{base}/get/foo"), &["-X", "DELETE"]).unwrap(),
        (405, r#"{"error":"method not allowed"}"#.into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_json_errors_and_the_resp_port_keeps_serving() {
    let (server, base) = server(Config::default()).await;
    let Some((code, body)) = post(&base, "/", "{not json", &[]) else {
        return;
    };
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR failed to parse the JSON body"),
        "{body}"
    );
    for bad in [
        r#"{"cmd":"GET"}"#,
        "[]",
        r#"["SET","k",["v"]]"#,
        r#"["SET","k",null]"#,
    ] {
        let (code, body) = post(&base, "/", bad, &[]).unwrap();
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("ERR "),
            "{body}"
        );
    }
    for bad in [r#"["GET","k"]"#, r#"[["GET","k"],"GET"]"#] {
        let (code, _) = post(&base, "/pipeline", bad, &[]).unwrap();
        assert_eq!(code, 400, "{bad}");
        let (code, _) = post(&base, "/multi-exec", bad, &[]).unwrap();
        assert_eq!(code, 400, "{bad}");
    }
    // Over the listener's body limit: 413 with a JSON error.
    let dir = common::temp_dir();
    let big = dir.path().join("big.json");
    let value = "a".repeat(limitkv::http::MAX_BODY);
    std::fs::write(&big, format!(r#"["SET","big","{value}"]"#)).unwrap();
    let file = format!("@{}", big.display());
    let (code, text) = curl(&format!("{base}/"), &["--data-binary", &file]).unwrap();
    assert_eq!(code, 413);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["error"].is_string(), "{body}");
    let mut con = server.redis(true).await;
    assert_eq!(
        query(&mut con, &["PING"]).await,
        redis::Value::SimpleString("PONG".into())
    );
    assert_eq!(
        query(&mut con, &["EXISTS", "big"]).await,
        redis::Value::Int(0)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn connection_bound_commands_are_refused_with_the_reason() {
    let (server, base) = server(Config::default()).await;
    for (cmd, why) in [
        (r#"["SUBSCRIBE","c"]"#, "stays open"),
        (r#"["PSUBSCRIBE","c*"]"#, "stays open"),
        (r#"["MONITOR"]"#, "stays open"),
        (r#"["BLPOP","l",0]"#, "blocking"),
        (r#"["EXEC"]"#, "/multi-exec"),
        (r#"["HELLO","3"]"#, "Authorization"),
        (r#"["AUTH","x"]"#, "Authorization"),
        (r#"["QUIT"]"#, "Authorization"),
        (r#"["RESET"]"#, "Authorization"),
    ] {
        let Some((code, body)) = post(&base, "/", cmd, &[]) else {
            return;
        };
        let text = body["error"].as_str().unwrap_or_default();
        assert_eq!(code, 400, "{cmd}: {body}");
        assert!(
            text.starts_with("ERR ")
                && text.contains("not supported over HTTP")
                && text.contains(why),
            "{cmd}: {text}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn commands_run_as_the_tokens_acl_user() {
    let (server, base) = server(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let admin = ["-H", "Authorization: Bearer s3cret"];
    let Some(r) = post(
        &base,
        "/",
        r#"["ACL","SETUSER","ro","on",">ro-pw","+@read","+client","~app:*"]"#,
        &admin,
    ) else {
        return;
    };
    assert_eq!(r, (200, json!({"result": "OK"})));
    post(&base, "/", r#"["SET","app:k","v"]"#, &admin).unwrap();
    post(&base, "/", r#"["SET","other","v"]"#, &admin).unwrap();
    let ro = ["-H", "Authorization: Bearer ro:ro-pw"];
    assert_eq!(
        post(&base, "/", r#"["GET","app:k"]"#, &ro).unwrap(),
        (200, json!({"result": "v"}))
    );
    assert_eq!(
        post(&base, "/", r#"["SET","app:k","w"]"#, &ro).unwrap(),
        (
            400,
            json!({"error": "NOPERM this user has no permissions to run the 'set' command"})
        )
    );
    assert_eq!(
        post(&base, "/", r#"["GET","other"]"#, &ro).unwrap(),
        (
            400,
            json!({"error": "NOPERM this user has no permissions to access one of the keys used as arguments"})
        )
    );
    // In a pipeline and a transaction, as on the RESP port.
    let (_, body) = post(
        &base,
        "/pipeline",
        r#"[["GET","app:k"],["DEL","app:k"]]"#,
        &ro,
    )
    .unwrap();
    assert_eq!(body[0], json!({"result": "v"}));
    assert!(body[1]["error"].as_str().unwrap().starts_with("NOPERM"));
    let (code, _) = post(
        &base,
        "/multi-exec",
        r#"[["GET","app:k"],["DEL","app:k"]]"#,
        &ro,
    )
    .unwrap();
    assert_eq!(code, 400);
    // The request's client is listed with its user and the name `http`.
    let (_, body) = post(&base, "/", r#"["CLIENT","INFO"]"#, &ro).unwrap();
    let info = body["result"].as_str().unwrap();
    assert!(
        info.contains("name=http") && info.contains("user=ro") && info.contains("fd=-1"),
        "{info}"
    );
    // Denials are in the ACL LOG; credentials are checked as before.
    let (_, log) = post(&base, "/", r#"["ACL","LOG"]"#, &admin).unwrap();
    assert!(log.to_string().contains("\"ro\""), "{log}");
    assert_eq!(post(&base, "/", r#"["PING"]"#, &[]).unwrap().0, 401);
    let wrong = ["-H", "Authorization: Bearer ro:nope"];
    assert_eq!(post(&base, "/", r#"["PING"]"#, &wrong).unwrap().0, 401);
    // HTTP clients are gone once their request is answered.
    let mut con = common::redis_connect(&format!(
        "redis://default:s3cret@{}/?protocol=resp3",
        server.addr
    ))
    .await;
    let list = format!("{:?}", query(&mut con, &["CLIENT", "LIST"]).await);
    assert!(!list.contains("name=http"), "{list}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_for_a_named_user_is_refused_while_default_needs_none() {
    let (server, base) = server(Config::default()).await;
    let Some(r) = post(
        &base,
        "/",
        r#"["ACL","SETUSER","app","on",">app-pw","+@all","~*"]"#,
        &[],
    ) else {
        return;
    };
    assert_eq!(r.0, 200);
    // Any token passes as `default` while it needs no password (Upstash clients always send
    // one), but `app:<wrong>` names `app`.
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let whoami = r#"["ACL","WHOAMI"]"#;
    assert_eq!(
        post(&base, "/", whoami, &["-H", &bearer("anything")]).unwrap(),
        (200, json!({"result": "default"}))
    );
    assert_eq!(
        post(&base, "/", whoami, &["-H", &bearer("app:app-pw")]).unwrap(),
        (200, json!({"result": "app"}))
    );
    let (code, body) = post(&base, "/", whoami, &["-H", &bearer("app:wrong")]).unwrap();
    assert_eq!(
        (code, body),
        (
            401,
            json!({"error": "WRONGPASS invalid username-password pair or user is disabled."})
        )
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn under_appendfsync_always_the_reply_follows_the_durable_record() {
    let dir = common::temp_dir();
    let (server, base) = server(Config {
        appendonly: true,
        dir: dir.path().to_path_buf(),
        appendfsync: limitkv::persist::FsyncPolicy::Always,
        ..Config::default()
    })
    .await;
    let Some(r) = post(
        &base,
        "/pipeline",
        r#"[["SET","durable-key-1","v"],["INCR","durable-key-2"]]"#,
        &[],
    ) else {
        return;
    };
    assert_eq!(r.0, 200);
    // The records were written and fsynced before the reply was sent.
    let aof = std::fs::read(dir.path().join(limitkv::persist::AOF_FILE)).unwrap();
    for key in ["durable-key-1", "durable-key-2"] {
        assert!(
            aof.windows(key.len()).any(|w| w == key.as_bytes()),
            "{key} not in the AOF"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_waits_for_a_running_script_then_gets_busy_and_may_kill_it() {
    let (server, base) = server(Config {
        busy_reply_threshold: 50,
        ..Config::default()
    })
    .await;
    let mut runner = server.raw().await;
    runner
        .send(&common::resp(&[
            "EVAL",
            "local i = 0 while true do i = i + 1 end",
            "0",
        ]))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.shared.scripts.run_state().is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the script did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // The request waits while the script runs (without holding a worker the script needs),
    // then answers BUSY once the script passes the threshold, as a RESP client is answered.
    let Some((code, body)) = post(&base, "/", r#"["GET","k"]"#, &[]) else {
        return;
    };
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("BUSY "),
        "{body}"
    );
    assert_eq!(
        post(&base, "/", r#"["SCRIPT","KILL"]"#, &[]).unwrap(),
        (200, json!({"result": "OK"}))
    );
    let killed = runner.read_reply().await;
    assert!(
        format!("{killed:?}").contains("Script killed"),
        "{killed:?}"
    );
    assert_eq!(
        post(&base, "/", r#"["GET","k"]"#, &[]).unwrap(),
        (200, json!({"result": null}))
    );
    server.stop().await.unwrap();
}
