//! `requirepass`: NOAUTH until AUTH, WRONGPASS, HELLO ... AUTH, and the small request caps Redis
//! applies before a client has authenticated.

mod common;

use common::{resp, Reply, TestServer};
use limitkv::config::Config;

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

async fn guarded() -> TestServer {
    TestServer::with_config(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn commands_before_auth_get_noauth_and_the_connection_stays_open() {
    let server = guarded().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(&resp(&["GET", "k"])).await, NOAUTH);
    assert_eq!(c.exchange_text(b"PING\r\n").await, NOAUTH);
    assert_eq!(
        c.exchange_text(&resp(&["CL.THROTTLE", "k", "1", "1", "1"]))
            .await,
        NOAUTH
    );
    assert_eq!(
        c.exchange_text(&resp(&["NOSUCH"])).await,
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    );
    assert_eq!(c.exchange_text(&resp(&["AUTH", "s3cret"])).await, "+OK\r\n");
    assert_eq!(c.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_wrongpass_and_leaves_the_client_unauthenticated() {
    let server = guarded().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(&resp(&["AUTH", "nope"])).await, WRONGPASS);
    assert_eq!(
        c.exchange_text(&resp(&["AUTH", "default", "nope"])).await,
        WRONGPASS
    );
    assert_eq!(
        c.exchange_text(&resp(&["AUTH", "alice", "s3cret"])).await,
        WRONGPASS,
        "only the default user exists"
    );
    assert_eq!(c.exchange_text(&resp(&["GET", "k"])).await, NOAUTH);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn auth_with_the_password_unlocks_every_command() {
    let server = guarded().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.exchange_text(&resp(&["AUTH", "default", "s3cret"])).await,
        "+OK\r\n"
    );
    assert_eq!(c.exchange_text(&resp(&["SET", "k", "v"])).await, "+OK\r\n");
    assert_eq!(c.exchange_text(&resp(&["GET", "k"])).await, "$1\r\nv\r\n");
    // Authentication is per connection.
    let mut other = server.raw().await;
    assert_eq!(other.exchange_text(&resp(&["GET", "k"])).await, NOAUTH);
    // RESET forgets it.
    assert_eq!(c.exchange_text(&resp(&["RESET"])).await, "+RESET\r\n");
    assert_eq!(c.exchange_text(&resp(&["GET", "k"])).await, NOAUTH);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hello_3_with_auth_default_password_authenticates_and_switches_protocol() {
    let server = guarded().await;
    let mut c = server.raw().await;
    let refused = c.exchange_text(&resp(&["HELLO", "3"])).await;
    assert!(
        refused.starts_with("-NOAUTH HELLO must be called"),
        "{refused}"
    );
    assert_eq!(
        c.exchange_text(&resp(&["HELLO", "3", "AUTH", "default", "bad"]))
            .await,
        WRONGPASS
    );
    c.send(&resp(&["HELLO", "3", "AUTH", "default", "s3cret"]))
        .await;
    let hello = c.read_reply().await;
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(hello.get("proto"), Some(&Reply::Int(3)));
    assert_eq!(c.exchange_text(&resp(&["GET", "missing"])).await, "_\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unauthenticated_clients_are_limited_to_small_multibulks() {
    let server = guarded().await;
    let mut c = server.raw().await;
    c.send(b"*11\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut c = server.raw().await;
    c.send(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // Ten arguments are still fine before AUTH (the command itself is refused).
    let mut c = server.raw().await;
    let ten: Vec<&str> = std::iter::once("MGET")
        .chain(std::iter::repeat_n("k", 9))
        .collect();
    assert_eq!(c.exchange_text(&resp(&ten)).await, NOAUTH);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_small_caps_lift_once_authenticated_even_within_one_batch() {
    let server = guarded().await;
    let mut c = server.raw().await;
    let mut batch = resp(&["AUTH", "s3cret"]);
    let mut mset = vec!["MSET"];
    for _ in 0..5 {
        mset.extend(["k", "v"]);
    }
    assert_eq!(mset.len(), 11);
    batch.extend(resp(&mset));
    let big = "b".repeat(20_000);
    batch.extend(resp(&["SET", "big", &big]));
    batch.extend(resp(&["GET", "k"]));
    assert_eq!(
        String::from_utf8_lossy(&c.exchange(&batch, 4).await),
        "+OK\r\n+OK\r\n+OK\r\n$1\r\nv\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quit_needs_no_authentication() {
    let server = guarded().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(&resp(&["QUIT"])).await, "+OK\r\n");
    assert!(c.read_until_closed().await.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_redis_crate_authenticates_from_its_url() {
    let server = guarded().await;
    let url = format!("redis://:s3cret@{}/?protocol=resp3", server.addr);
    let mut con = common::redis_connect(&url).await;
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "v");

    let client = redis::Client::open(server.url(false)).unwrap();
    let mut anon = client.get_multiplexed_async_connection().await.unwrap();
    let err = redis::cmd("GET")
        .arg("k")
        .query_async::<Option<String>>(&mut anon)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
    server.stop().await.unwrap();
}
