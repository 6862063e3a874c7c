//! ACL users over real connections: redis-rs authenticating as a user (RESP3 `HELLO 3 AUTH`),
//! NOPERM on commands, keys, derived policy keys, script calls and channels, the ACL LOG, the
//! ACL file across a restart, and redis-cli `--user/--pass` against the binary.

mod common;

use std::process::Command;

use common::{query, resp, Reply, TestServer};
use limitkv::config::Config;

const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// The error reply to `args`, as its wire text (`CODE detail`).
async fn query_err(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    let e = common::query_err(con, args).await;
    format!(
        "{} {}",
        e.code().unwrap_or("?"),
        e.detail().unwrap_or_default()
    )
}

async fn admin(server: &TestServer) -> redis::aio::MultiplexedConnection {
    server.redis(true).await
}

fn url_as(server: &TestServer, user: &str, pass: &str) -> String {
    format!("redis://{user}:{pass}@{}/?protocol=resp3", server.addr)
}

#[tokio::test]
async fn an_app_user_may_only_throttle_its_own_keys() {
    let server = TestServer::start().await;
    let mut root = admin(&server).await;
    query(
        &mut root,
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">s3cret",
            "+@limiter",
            "~app:*",
        ],
    )
    .await;
    let mut app = common::redis_connect(&url_as(&server, "app", "s3cret")).await;
    let allowed = query(&mut app, &["CL.THROTTLE", "app:user1", "15", "30", "60"]).await;
    assert!(
        matches!(allowed, redis::Value::Array(ref v) if v.len() == 5),
        "{allowed:?}"
    );
    for (cmd, expected) in [
        (
            vec!["CL.THROTTLE", "other:user1", "15", "30", "60"],
            NOPERM_KEY.to_owned(),
        ),
        (
            vec!["FLUSHALL"],
            "NOPERM this user has no permissions to run the 'flushall' command".to_owned(),
        ),
        (
            vec!["POLICY.SET", "free", "RATE", "10/1m"],
            "NOPERM this user has no permissions to run the 'policy.set' command".to_owned(),
        ),
        (
            vec!["GET", "app:user1"],
            "NOPERM this user has no permissions to run the 'get' command".to_owned(),
        ),
    ] {
        let err = query_err(&mut app, &cmd).await;
        assert_eq!(err, expected, "{cmd:?}");
    }
    // The denials are in the ACL LOG, newest first, with the object and the user.
    let log = query(&mut root, &["ACL", "LOG"]).await;
    let redis::Value::Array(entries) = log else {
        panic!("{log:?}")
    };
    // redis-rs also sends CLIENT SETINFO on connect, which this user may not run either.
    let entries: Vec<Vec<(String, redis::Value)>> = entries
        .into_iter()
        .map(|e| common::fields(e, true))
        .collect();
    let field = |e: &[(String, redis::Value)], name: &str| {
        e.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} in {e:?}"))
    };
    let objects: Vec<redis::Value> = entries.iter().map(|e| field(e, "object")).collect();
    let bulk = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
    for denied in ["get", "policy.set", "flushall", "other:user1"] {
        assert!(objects.contains(&bulk(denied)), "{denied} in {objects:?}");
    }
    let at = objects
        .iter()
        .position(|o| *o == bulk("other:user1"))
        .unwrap();
    let get = |name: &str| field(&entries[at], name);
    assert_eq!(get("reason"), redis::Value::BulkString(b"key".to_vec()));
    assert_eq!(
        get("object"),
        redis::Value::BulkString(b"other:user1".to_vec())
    );
    assert_eq!(get("username"), redis::Value::BulkString(b"app".to_vec()));
    assert_eq!(
        get("context"),
        redis::Value::BulkString(b"toplevel".to_vec())
    );
    // A wrong password is refused and logged as an auth failure.
    let client = redis::Client::open(url_as(&server, "app", "wrong")).unwrap();
    assert!(client.get_multiplexed_async_connection().await.is_err());
    let log = query(&mut root, &["ACL", "LOG", "1"]).await;
    assert!(format!("{log:?}").contains("auth"), "{log:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn policy_checks_are_held_to_the_keys_they_derive() {
    let server = TestServer::start().await;
    let mut root = admin(&server).await;
    query(&mut root, &["POLICY.SET", "free", "RATE", "2/1m"]).await;
    query(&mut root, &["POLICY.SET", "paid", "RATE", "100/1m"]).await;
    query(
        &mut root,
        &[
            "ACL",
            "SETUSER",
            "gw",
            "on",
            "nopass",
            "+@limiter",
            "~limitkv:free:*",
        ],
    )
    .await;
    let mut gw = common::redis_connect(&url_as(&server, "gw", "any")).await;
    let ok = query(&mut gw, &["LIMIT.CHECK", "free", "customer-42"]).await;
    assert!(!matches!(ok, redis::Value::ServerError(_)), "{ok:?}");
    assert_eq!(
        query_err(&mut gw, &["LIMIT.CHECK", "paid", "customer-42"]).await,
        NOPERM_KEY
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn scripts_multi_and_channels_are_checked_too() {
    let server = TestServer::start().await;
    let mut root = admin(&server).await;
    query(
        &mut root,
        &[
            "ACL",
            "SETUSER",
            "lua",
            "on",
            "nopass",
            "+eval",
            "+incr",
            "+multi",
            "+exec",
            "+subscribe",
            "~app:*",
            "&news",
        ],
    )
    .await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["AUTH", "lua", "x"]).await,
        Reply::Simple("OK".into())
    );
    // The script's declared keys, then each redis.call.
    let script = "return redis.call('INCR', KEYS[1])";
    assert_eq!(
        c.cmd(&["EVAL", script, "1", "other:1"]).await,
        Reply::Error(NOPERM_KEY.into())
    );
    assert_eq!(c.cmd(&["EVAL", script, "1", "app:1"]).await, Reply::Int(1));
    let Reply::Error(e) = c
        .cmd(&[
            "EVAL",
            "return redis.call('SET', KEYS[1], 'x')",
            "1",
            "app:1",
        ])
        .await
    else {
        panic!("SET from a script is denied")
    };
    assert!(
        e.contains("The user executing the script can't run this command or subcommand"),
        "{e}"
    );
    // A denied command inside MULTI fails the transaction.
    assert_eq!(c.cmd(&["MULTI"]).await, Reply::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["GET", "app:1"]).await,
        Reply::Error("NOPERM this user has no permissions to run the 'get' command".into())
    );
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Reply::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    // Channels.
    assert_eq!(
        c.cmd(&["SUBSCRIBE", "secret"]).await,
        Reply::Error(
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        )
    );
    c.send(&resp(&["SUBSCRIBE", "news"])).await;
    let _confirm = c.read_reply().await;
    // Revoking the channel closes the subscriber, as Redis does.
    query(&mut root, &["ACL", "SETUSER", "lua", "resetchannels"]).await;
    assert_eq!(c.read_until_closed().await, b"");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_rules_are_clear_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let mut root = admin(&server).await;
    for (rules, why) in [
        (
            vec!["+nosuch"],
            "'+nosuch': Unknown command or category name in ACL",
        ),
        (
            vec!["+@nosuch"],
            "'+@nosuch': Unknown command or category name in ACL",
        ),
        (vec!["on", "bogus"], "'bogus': Syntax error"),
        (
            vec!["#abc"],
            "'#abc': The password hash must be exactly 64 characters and contain only \
             lowercase hexadecimal characters",
        ),
    ] {
        let mut cmd = vec!["ACL", "SETUSER", "u"];
        cmd.extend(rules);
        assert_eq!(
            query_err(&mut root, &cmd).await,
            format!("ERR Error in ACL SETUSER modifier {why}")
        );
    }
    assert_eq!(
        query(&mut root, &["ACL", "GETUSER", "u"]).await,
        redis::Value::Nil
    );
    assert_eq!(
        query_err(&mut root, &["ACL", "SAVE"]).await,
        "ERR This Redis instance is not configured to use an ACL file. You may want to specify \
         users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a \
         Redis configuration file set) in order to store users in the Redis configuration."
    );
    assert_eq!(
        query(&mut root, &["PING"]).await,
        redis::Value::SimpleString("PONG".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_acl_file_survives_a_restart() {
    let dir = common::temp_dir();
    let aclfile = dir.path().join("users.acl");
    std::fs::write(&aclfile, "user default on nopass ~* &* +@all\n").unwrap();
    let config = Config {
        aclfile: Some(aclfile.clone()),
        ..Config::default()
    };
    let server = TestServer::with_config(config.clone()).await;
    let mut root = admin(&server).await;
    query(
        &mut root,
        &["ACL", "SETUSER", "app", "on", ">pw", "+@limiter", "~app:*"],
    )
    .await;
    assert_eq!(query(&mut root, &["ACL", "SAVE"]).await, redis::Value::Okay);
    server.stop().await.unwrap();
    let text = std::fs::read_to_string(&aclfile).unwrap();
    assert!(text.starts_with("user app on #"), "{text}");
    let server = TestServer::with_config(config).await;
    let mut app = common::redis_connect(&url_as(&server, "app", "pw")).await;
    let r = query(&mut app, &["CL.THROTTLE", "app:1", "1", "1", "1"]).await;
    assert!(matches!(r, redis::Value::Array(_)), "{r:?}");
    // A broken file is refused by ACL LOAD, and the users in force stay.
    std::fs::write(&aclfile, "user app on +nosuch\n").unwrap();
    let mut root = admin(&server).await;
    let err = query_err(&mut root, &["ACL", "LOAD"]).await;
    assert!(
        err.contains("no change to the previously active ACL rules"),
        "{err}"
    );
    assert_eq!(
        query(&mut root, &["ACL", "USERS"]).await,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"app".to_vec()),
            redis::Value::BulkString(b"default".to_vec())
        ])
    );
    server.stop().await.unwrap();
}

/// The binary with an ACL file, driven by redis-cli `--user/--pass` as an operator would.
#[test]
fn redis_cli_authenticates_as_a_user_of_the_binary() {
    let Ok(out) = Command::new("redis-cli").arg("--version").output() else {
        eprintln!("SKIPPED: redis-cli is not installed");
        return;
    };
    assert!(out.status.success());
    let dir = common::temp_dir();
    let aclfile = dir.path().join("users.acl");
    std::fs::write(
        &aclfile,
        "user default on nopass ~* &* +@all\nuser app on >pw +@limiter ~app:*\n",
    )
    .unwrap();
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_limitkv"))
        .args(["--port", &port.to_string(), "--aclfile"])
        .arg(&aclfile)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start limitkv");
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("run redis-cli");
        // redis-cli reports a failed AUTH on stderr and goes on as the default user.
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cli(&["PING"]).trim() != "PONG" {
        assert!(
            std::time::Instant::now() < deadline,
            "limitkv did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ok = cli(&[
        "--user",
        "app",
        "--pass",
        "pw",
        "CL.THROTTLE",
        "app:1",
        "1",
        "1",
        "1",
    ]);
    assert_eq!(ok.lines().count(), 5, "{ok}");
    let denied = cli(&[
        "--user",
        "app",
        "--pass",
        "pw",
        "CL.THROTTLE",
        "x:1",
        "1",
        "1",
        "1",
    ]);
    assert!(denied.contains(NOPERM_KEY), "{denied}");
    let whoami = cli(&["--user", "app", "--pass", "pw", "ACL", "WHOAMI"]);
    assert!(whoami.contains("NOPERM"), "{whoami}");
    let wrong = cli(&["--user", "app", "--pass", "nope", "ACL", "WHOAMI"]);
    assert!(wrong.contains("WRONGPASS"), "{wrong}");
    assert!(wrong.contains("default"), "still the default user: {wrong}");
    let _ = child.kill();
    let _ = child.wait();
}
