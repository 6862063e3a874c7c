//! Ending things: `SHUTDOWN`, the shutdown future, `CLIENT KILL`, `maxclients` and `QUIT`.

mod common;

use std::time::Duration;

use common::{resp, TestServer};
use limitkv::config::Config;

/// Waits (bounded) until new connections to `server` are refused or closed at once.
async fn assert_no_longer_accepting(server: &TestServer) {
    let addr = server.addr;
    common::eventually(common::WAIT, "the listener to close", || async move {
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => Some(()),
            Ok(_) => None,
        }
    })
    .await;
}

/// Waits (bounded) until the server has dropped client `id` from its registry; the socket
/// closes first and the registry entry goes when the connection task ends.
async fn wait_unregistered(server: &TestServer, id: u64) {
    let shared = &server.shared;
    common::eventually(
        common::WAIT,
        "the killed client to be unregistered",
        || async move {
            shared
                .clients
                .snapshot()
                .iter()
                .all(|c| c.id != id)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn shutdown_command_closes_the_connection_without_a_reply_and_stops_the_server() {
    let mut server = TestServer::start().await;
    let mut idle = server.raw().await;
    assert_eq!(idle.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    let mut c = server.raw().await;
    c.send(&resp(&["SHUTDOWN"])).await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "",
        "SHUTDOWN answers nothing"
    );
    server.join().await.expect("the server returns Ok");
    assert!(
        idle.read_until_closed().await.is_empty(),
        "idle clients are closed too"
    );
    assert_no_longer_accepting(&server).await;
}

#[tokio::test]
async fn replies_before_shutdown_in_the_same_batch_are_still_sent() {
    let mut server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut batch = resp(&["SET", "k", "v"]);
    batch.extend(resp(&["GET", "k"]));
    batch.extend(resp(&["SHUTDOWN", "NOSAVE"]));
    batch.extend(resp(&["PING"]));
    c.send(&batch).await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "+OK\r\n$1\r\nv\r\n",
        "nothing for SHUTDOWN or after it"
    );
    server.join().await.unwrap();
}

#[tokio::test]
async fn shutdown_with_bad_arguments_is_refused_and_the_server_keeps_running() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.exchange_text(&resp(&["SHUTDOWN", "BOGUS"])).await,
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.exchange_text(&resp(&["SHUTDOWN", "ABORT"])).await,
        "-ERR No shutdown in progress.\r\n"
    );
    assert_eq!(c.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    let mut other = server.raw().await;
    assert_eq!(other.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_shutdown_future_stops_the_server_and_closes_its_clients() {
    let mut server = TestServer::start().await;
    let mut a = server.raw().await;
    let mut b = server.raw().await;
    assert_eq!(a.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    assert_eq!(b.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    // b is half-way through a request: it is closed anyway, not waited for.
    b.send(b"*2\r\n$4\r\nECHO\r\n").await;
    server.signal_stop();
    server.join().await.expect("the server returns Ok");
    assert!(server.is_finished());
    assert!(a.read_until_closed().await.is_empty());
    assert!(b.read_until_closed().await.is_empty());
    assert_no_longer_accepting(&server).await;
}

#[tokio::test]
async fn client_kill_id_closes_the_other_connection() {
    let server = TestServer::start().await;
    let mut victim = server.raw().await;
    let mut killer = server.raw().await;
    let common::Reply::Int(id) = victim.cmd(&["CLIENT", "ID"]).await else {
        panic!("CLIENT ID is an integer")
    };
    assert_eq!(
        killer
            .exchange_text(&resp(&["CLIENT", "KILL", "ID", &id.to_string()]))
            .await,
        ":1\r\n"
    );
    assert!(victim.read_until_closed().await.is_empty());
    wait_unregistered(&server, id as u64).await;
    assert_eq!(
        killer
            .exchange_text(&resp(&["CLIENT", "KILL", "ID", &id.to_string()]))
            .await,
        ":0\r\n",
        "already gone"
    );
    assert_eq!(killer.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_kill_by_address_closes_that_connection() {
    let server = TestServer::start().await;
    let mut victim = server.raw().await;
    assert_eq!(victim.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    let common::Reply::Int(id) = victim.cmd(&["CLIENT", "ID"]).await else {
        panic!("CLIENT ID is an integer")
    };
    let addr = victim.stream.local_addr().unwrap().to_string();
    let mut killer = server.raw().await;
    assert_eq!(
        killer
            .exchange_text(&resp(&["CLIENT", "KILL", &addr]))
            .await,
        "+OK\r\n"
    );
    assert!(victim.read_until_closed().await.is_empty());
    wait_unregistered(&server, id as u64).await;
    assert_eq!(
        killer
            .exchange_text(&resp(&["CLIENT", "KILL", &addr]))
            .await,
        "-ERR No such client\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_kill_skipme_no_closes_the_caller_after_its_reply() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let common::Reply::Int(id) = c.cmd(&["CLIENT", "ID"]).await else {
        panic!("CLIENT ID is an integer")
    };
    c.send(&resp(&[
        "CLIENT",
        "KILL",
        "ID",
        &id.to_string(),
        "SKIPME",
        "no",
    ]))
    .await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        ":1\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn maxclients_2_turns_a_third_connection_away() {
    let server = TestServer::with_config(Config {
        maxclients: 2,
        ..Config::default()
    })
    .await;
    let mut a = server.raw().await;
    let mut b = server.raw().await;
    assert_eq!(a.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    assert_eq!(b.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    let mut third = server.raw().await;
    assert_eq!(
        String::from_utf8_lossy(&third.read_until_closed().await),
        "-ERR max number of clients reached\r\n"
    );
    assert_eq!(a.exchange_text(b"PING\r\n").await, "+PONG\r\n");

    // A slot frees once a client leaves (the server notices the close asynchronously).
    drop(b);
    let addr = server.addr;
    common::eventually(common::WAIT, "a freed client slot", || async move {
        let mut c = common::Raw::connect(addr).await;
        let got = c.try_exchange(b"PING\r\n").await;
        (got == Some(common::Reply::Simple("PONG".into()))).then_some(())
    })
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quit_replies_ok_then_closes() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(b"QUIT\r\nPING\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "+OK\r\n",
        "nothing after QUIT runs"
    );
    let mut c = server.raw().await;
    c.send(&resp(&["QUIT"])).await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "+OK\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stopping_an_idle_server_is_prompt() {
    let server = TestServer::start().await;
    let start = std::time::Instant::now();
    server.stop().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
