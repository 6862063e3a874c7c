//! Pipelined batches: many requests in one write get all their replies, in order.

mod common;

use common::{resp, Reply, TestServer};

#[tokio::test]
async fn a_thousand_commands_in_one_write_get_a_thousand_replies_in_order() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(resp(&["ECHO", &format!("m{i}")]));
    }
    c.send(&batch).await;
    let replies = c.read_replies(1000).await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &Reply::bulk(&format!("m{i}")), "reply {i}");
    }
    assert_eq!(
        c.exchange_text(b"PING\r\n").await,
        "+PONG\r\n",
        "no reply beyond the thousandth"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_thousand_increments_in_one_write_count_up_exactly() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let batch = resp(&["INCR", "n"]).repeat(1000);
    c.send(&batch).await;
    let replies = c.read_replies(1000).await;
    let want: Vec<Reply> = (1..=1000).map(Reply::Int).collect();
    assert_eq!(replies, want);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mixed_set_incr_get_pipeline_results_are_exact() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut batch = Vec::new();
    batch.extend(resp(&["SET", "a", "10"]));
    batch.extend(resp(&["INCR", "a"]));
    batch.extend(resp(&["INCRBY", "a", "-4"]));
    batch.extend(resp(&["GET", "a"]));
    batch.extend(resp(&["GET", "missing"]));
    batch.extend(resp(&["SET", "s", "text"]));
    batch.extend(resp(&["INCR", "s"]));
    batch.extend(resp(&["DEL", "a", "s", "missing"]));
    batch.extend(resp(&["MGET", "a", "s"]));
    batch.extend(b"PING inline\r\n");
    batch.extend(resp(&["CL.THROTTLE", "t", "1", "1", "60"]));
    batch.extend(resp(&["CL.THROTTLE", "t", "1", "1", "60"]));
    batch.extend(resp(&["CL.THROTTLE", "t", "1", "1", "60"]));
    let wire = c.exchange(&batch, 13).await;
    assert_eq!(
        String::from_utf8_lossy(&wire),
        concat!(
            "+OK\r\n",
            ":11\r\n",
            ":7\r\n",
            "$1\r\n7\r\n",
            "$-1\r\n",
            "+OK\r\n",
            "-ERR value is not an integer or out of range\r\n",
            ":2\r\n",
            "*2\r\n$-1\r\n$-1\r\n",
            "$6\r\ninline\r\n",
            "*5\r\n:0\r\n:2\r\n:1\r\n:-1\r\n:60\r\n",
            "*5\r\n:0\r\n:2\r\n:0\r\n:-1\r\n:120\r\n",
            "*5\r\n:1\r\n:2\r\n:0\r\n:60\r\n:120\r\n",
        )
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pipeline_larger_than_the_read_buffer_is_answered_in_full() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    // Kept under the loopback socket buffers so writing all before reading cannot deadlock.
    let value = "x".repeat(300);
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend(resp(&["SET", &format!("k{i}"), &value]));
        batch.extend(resp(&["GET", &format!("k{i}")]));
    }
    assert!(batch.len() > 4 * 16 * 1024, "several server reads");
    c.send(&batch).await;
    let replies = c.read_replies(400).await;
    for i in 0..200 {
        assert_eq!(replies[2 * i], Reply::Simple("OK".into()), "SET k{i}");
        assert_eq!(replies[2 * i + 1], Reply::bulk(&value), "GET k{i}");
    }
    server.stop().await.unwrap();
}
