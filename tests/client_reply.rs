//! `CLIENT REPLY ON|OFF|SKIP` over TCP: the exact bytes written (nothing for suppressed
//! replies), while the commands still run.

mod common;

use common::{Reply, TestServer};

#[tokio::test]
async fn client_reply_off_and_skip_suppress_replies_but_commands_run() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    // OFF is not answered, nor anything after it until ON, which answers OK.
    let mut batch = common::resp(&["CLIENT", "REPLY", "OFF"]);
    batch.extend(common::resp(&["SET", "k", "1"]));
    batch.extend(common::resp(&["INCR", "k"]));
    batch.extend(common::resp(&["CLIENT", "REPLY", "ON"]));
    batch.extend(common::resp(&["GET", "k"]));
    assert_eq!(c.exchange(&batch, 2).await, b"+OK\r\n$1\r\n2\r\n");
    // SKIP: neither SKIP nor the next command is answered; the one after is.
    let mut batch = common::resp(&["CLIENT", "REPLY", "SKIP"]);
    batch.extend(common::resp(&["INCR", "k"]));
    batch.extend(common::resp(&["GET", "k"]));
    assert_eq!(c.exchange(&batch, 1).await, b"$1\r\n3\r\n");
    assert_eq!(
        c.cmd(&["CLIENT", "REPLY", "MAYBE"]).await,
        Reply::Error("ERR syntax error".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "REPLY", "ON"]).await,
        Reply::Simple("OK".into())
    );
    assert!(c.stays_silent(std::time::Duration::from_millis(20)).await);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn pubsub_confirmations_and_messages_are_written_even_with_replies_off() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut c = server.raw().await;
        if resp3 {
            c.cmd(&["HELLO", "3"]).await;
        }
        let mut publisher = server.raw().await;
        // Redis 7.0 writes every Pub/Sub push whatever CLIENT REPLY says.
        let mut batch = common::resp(&["CLIENT", "REPLY", "OFF"]);
        batch.extend(common::resp(&["SUBSCRIBE", "ch"]));
        let kind = if resp3 { ">" } else { "*" };
        let confirm = format!("{kind}3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
        assert_eq!(c.exchange(&batch, 1).await, confirm.as_bytes());
        assert_eq!(publisher.cmd(&["PUBLISH", "ch", "hi"]).await, Reply::Int(1));
        let message = format!("{kind}3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        let got = c.read_replies_raw(1).await.1;
        assert_eq!(got, message.as_bytes());
    }
    server.stop().await.unwrap();
}
