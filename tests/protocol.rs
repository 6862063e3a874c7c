//! Exact wire bytes over a raw socket: replies in RESP2 and RESP3, inline requests, malformed
//! and oversized input, and isolation between clients.

mod common;

use std::time::Duration;

use common::{parse_reply, resp, resp_cmd, Reply, TestServer};
use limitkv::config::Config;

const PROTO_CLOSE: &str = "then the connection is closed";

async fn exchange(server: &TestServer, bytes: &[u8], replies: usize) -> String {
    let mut c = server.raw().await;
    String::from_utf8_lossy(&c.exchange(bytes, replies).await).into_owned()
}

/// Sends `bytes` on a fresh connection and expects exactly `error` and then a close.
async fn expect_protocol_error(server: &TestServer, bytes: &[u8], error: &str) {
    let mut c = server.raw().await;
    c.send(bytes).await;
    let got = c.read_until_closed().await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("-{error}\r\n"),
        "input {:?}: one error line, {PROTO_CLOSE}",
        String::from_utf8_lossy(bytes)
    );
}

fn vm_size_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn reply_reader_understands_every_resp3_type() {
    let wire = b"+OK\r\n-ERR x\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n_\r\n,1.5\r\n#t\r\n(12\r\n\
=8\r\ntxt:abcd\r\n!3\r\nbad\r\n*2\r\n:1\r\n$0\r\n\r\n%1\r\n+k\r\n:2\r\n~1\r\n:3\r\n>1\r\n+p\r\n\
|1\r\n+a\r\n:1\r\n:9\r\n";
    let mut pos = 0;
    let mut got = Vec::new();
    while pos < wire.len() {
        let (r, next) = parse_reply(wire, pos).unwrap().expect("complete reply");
        got.push(r);
        pos = next;
    }
    assert_eq!(
        got,
        vec![
            Reply::Simple("OK".into()),
            Reply::Error("ERR x".into()),
            Reply::Int(-3),
            Reply::bulk("hi"),
            Reply::Null,
            Reply::Null,
            Reply::Null,
            Reply::Double("1.5".into()),
            Reply::Bool(true),
            Reply::BigNumber("12".into()),
            Reply::Verbatim("txt".into(), b"abcd".to_vec()),
            Reply::Error("bad".into()),
            Reply::Array(vec![Reply::Int(1), Reply::bulk("")]),
            Reply::Map(vec![(Reply::Simple("k".into()), Reply::Int(2))]),
            Reply::Set(vec![Reply::Int(3)]),
            Reply::Push(vec![Reply::Simple("p".into())]),
            Reply::Attribute(
                vec![(Reply::Simple("a".into()), Reply::Int(1))],
                Box::new(Reply::Int(9))
            ),
        ]
    );
    assert_eq!(parse_reply(b"*2\r\n:1\r\n", 0).unwrap(), None, "incomplete");
    assert_eq!(
        parse_reply(b"$3\r\nab", 0).unwrap(),
        None,
        "incomplete bulk"
    );
}

#[tokio::test]
async fn ping_echo_set_get_have_exact_wire_bytes() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(&resp(&["PING"])).await, "+PONG\r\n");
    assert_eq!(
        c.exchange_text(&resp(&["PING", "hi"])).await,
        "$2\r\nhi\r\n"
    );
    assert_eq!(
        c.exchange_text(&resp(&["ECHO", "hello"])).await,
        "$5\r\nhello\r\n"
    );
    assert_eq!(c.exchange_text(&resp(&["ECHO", ""])).await, "$0\r\n\r\n");
    assert_eq!(c.exchange_text(&resp(&["SET", "k", "v"])).await, "+OK\r\n");
    assert_eq!(c.exchange_text(&resp(&["GET", "k"])).await, "$1\r\nv\r\n");
    assert_eq!(c.exchange_text(&resp(&["INCR", "n"])).await, ":1\r\n");
    assert_eq!(
        c.exchange_text(&resp(&["CL.THROTTLE", "user123", "15", "30", "60"]))
            .await,
        "*5\r\n:0\r\n:16\r\n:15\r\n:-1\r\n:2\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn values_are_binary_safe() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let value: &[u8] = b"a\r\nb\0\xff\r\n";
    c.send(&resp_cmd(&[b"SET", b"bin\0key", value])).await;
    assert_eq!(c.read_reply().await, Reply::Simple("OK".into()));
    c.send(&resp_cmd(&[b"GET", b"bin\0key"])).await;
    assert_eq!(c.read_reply().await, Reply::Bulk(value.to_vec()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn missing_key_is_dollar_minus_one_in_resp2_and_underscore_in_resp3() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(&resp(&["GET", "nope"])).await, "$-1\r\n");
    let hello = c.exchange(&resp(&["HELLO", "3"]), 1).await;
    assert_eq!(hello[0], b'%', "HELLO 3 answers a map");
    assert_eq!(c.exchange_text(&resp(&["GET", "nope"])).await, "_\r\n");
    c.send(&resp(&["HELLO", "2"])).await;
    c.read_reply().await;
    assert_eq!(c.exchange_text(&resp(&["GET", "nope"])).await, "$-1\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hello_3_replies_with_a_map_and_hello_2_switches_back() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(&resp(&["HELLO", "3"])).await;
    let (replies, wire) = c.read_replies_raw(1).await;
    assert!(
        wire.starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
    let map = &replies[0];
    assert!(matches!(map, Reply::Map(_)), "{map:?}");
    assert_eq!(map.get("proto"), Some(&Reply::Int(3)));
    assert_eq!(map.get("server"), Some(&Reply::bulk("redis")));
    assert_eq!(map.get("mode"), Some(&Reply::bulk("standalone")));
    assert!(matches!(map.get("id"), Some(Reply::Int(id)) if *id > 0));

    c.send(&resp(&["HELLO", "2"])).await;
    let (replies, wire) = c.read_replies_raw(1).await;
    assert!(wire.starts_with(b"*14\r\n"), "RESP2 flattens the map");
    assert_eq!(replies[0].get("proto"), Some(&Reply::Int(2)));

    assert_eq!(
        c.exchange_text(&resp(&["HELLO", "4"])).await,
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(c.exchange_text(&resp(&["PING"])).await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_nul_byte_in_an_inline_request_ends_it_and_the_server_keeps_serving() {
    // Regression: the inline splitter once looped forever on a NUL byte.
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(b"PING\0junk\r\n").await, "+PONG\r\n");
    assert_eq!(
        c.exchange(b"\0\r\nECHO a\0b\r\nPING\r\n", 2).await,
        b"$1\r\na\r\n+PONG\r\n"
    );
    let mut other = server.raw().await;
    assert_eq!(other.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn inline_commands_work_as_redis_cli_and_telnet_send_them() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(c.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    assert_eq!(c.exchange_text(b"ping\n").await, "+PONG\r\n", "bare LF");
    assert_eq!(c.exchange_text(b"SET k \"a b\"\r\n").await, "+OK\r\n");
    assert_eq!(c.exchange_text(b"GET k\n").await, "$3\r\na b\r\n");
    assert_eq!(
        c.exchange_text(b"SET q 'it\\'s'\r\n").await,
        "+OK\r\n",
        "single quotes with an escaped quote"
    );
    assert_eq!(c.exchange_text(b"GET q\r\n").await, "$4\r\nit's\r\n");
    assert_eq!(
        c.exchange_text(b"ECHO \"tab\\there\\x41\"\r\n").await,
        "$9\r\ntab\there\x41\r\n",
        "escapes inside double quotes"
    );
    assert_eq!(
        c.exchange_text(b"  \r\n\n\r\nPING   extra\r\n").await,
        "$5\r\nextra\r\n",
        "blank lines are skipped and runs of blanks separate"
    );
    assert_eq!(
        c.exchange(b"INCR n\r\nINCR n\nGET n\r\n", 3).await,
        b":1\r\n:2\r\n$1\r\n2\r\n",
        "pipelined inline requests"
    );
    assert_eq!(
        c.exchange(b"*0\r\n*-1\r\nPING\r\n", 1).await,
        b"+PONG\r\n",
        "empty multibulks are skipped"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_frames_get_one_protocol_error_then_close() {
    let server = TestServer::start().await;
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1x\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*1\r\n+PING\r\n",
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n:1\r\n",
            "ERR Protocol error: expected '$', got ':'",
        ),
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*2\r\n$3\r\nGET\r\n$99999999999999999999\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"SET k \"abc\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET k 'abc\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET k \"a\"b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ];
    for (input, error) in cases {
        expect_protocol_error(&server, input, error).await;
    }
    // Replies to requests before the bad frame are still delivered, in order.
    let mut c = server.raw().await;
    c.send(b"PING\r\n*1\r\n$4\r\nPING\r\n*z\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&c.read_until_closed().await),
        "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn multibulk_count_over_the_cap_is_refused_before_the_payload() {
    let server = TestServer::start().await;
    expect_protocol_error(
        &server,
        b"*1048577\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    let small = TestServer::with_config(Config {
        max_multibulk_len: 100,
        ..Config::default()
    })
    .await;
    expect_protocol_error(
        &small,
        b"*101\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    let mut c = small.raw().await;
    let mut req = vec!["MSET"];
    req.extend(std::iter::repeat_n("x", 99));
    assert_eq!(
        c.exchange_text(&resp(&req)).await,
        "-ERR wrong number of arguments for 'mset' command\r\n",
        "100 arguments are within the cap"
    );
    server.stop().await.unwrap();
    small.stop().await.unwrap();
}

/// `max-multibulk-len 10` is an ordinary setting: an authenticated client over it must get the
/// ordinary message, not the one meant for clients that have not authenticated.
#[tokio::test]

async fn a_cap_equal_to_the_unauthenticated_cap_gives_the_ordinary_message() {
    let server = TestServer::with_config(Config {
        max_multibulk_len: 10,
        proto_max_bulk_len: 16 * 1024,
        ..Config::default()
    })
    .await;
    expect_protocol_error(
        &server,
        b"*11\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    expect_protocol_error(
        &server,
        b"*1\r\n$16385\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bulk_length_over_proto_max_bulk_len_is_refused_before_the_payload() {
    let server = TestServer::with_config(Config {
        proto_max_bulk_len: 1024,
        ..Config::default()
    })
    .await;
    // Only the header is sent: the error must come without the server waiting for 1025 bytes.
    expect_protocol_error(
        &server,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    expect_protocol_error(
        &server,
        b"*1\r\n$1073741824\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    let mut c = server.raw().await;
    let at_cap = "v".repeat(1024);
    assert_eq!(
        c.exchange_text(&resp(&["SET", "k", &at_cap])).await,
        "+OK\r\n"
    );
    c.send(&resp(&["GET", "k"])).await;
    assert_eq!(c.read_reply().await, Reply::bulk(&at_cap));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn inline_request_over_64kb_without_newline_is_refused() {
    let server = TestServer::start().await;
    expect_protocol_error(
        &server,
        &vec![b'a'; 64 * 1024 + 1],
        "ERR Protocol error: too big inline request",
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn header_lines_over_64kb_are_refused_before_their_end() {
    let server = TestServer::start().await;
    let mut count = b"*".to_vec();
    // Exactly one byte over the cap, so the server has read everything when it closes.
    count.extend(vec![b'1'; 64 * 1024]);
    expect_protocol_error(
        &server,
        &count,
        "ERR Protocol error: too big mbulk count string",
    )
    .await;
    let mut len = b"*1\r\n$".to_vec();
    len.extend(vec![b'1'; 64 * 1024]);
    expect_protocol_error(
        &server,
        &len,
        "ERR Protocol error: too big bulk count string",
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_headers_do_not_allocate_and_do_not_block_others() {
    use std::sync::atomic::Ordering;
    let server = TestServer::start().await;
    let mut probe = server.raw().await;
    assert_eq!(probe.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    let before_kb = vm_size_kb();
    let input_before = server
        .shared
        .metrics
        .total_net_input_bytes
        .load(Ordering::SeqCst);

    // Headers at exactly the default caps are legal, so the server must wait for payloads that
    // never come, without reserving what they claim (8 x 512 MiB would be 4 GiB).
    let headers: [&[u8]; 2] = [b"*2\r\n$3\r\nGET\r\n$536870912\r\n", b"*1048576\r\n"];
    let mut hostile = Vec::new();
    let mut sent = 0u64;
    for i in 0..12 {
        let h = if i < 8 { headers[0] } else { headers[1] };
        let mut c = server.raw().await;
        c.send(h).await;
        sent += h.len() as u64;
        hostile.push(c);
    }
    let metrics = &server.shared.metrics;
    common::eventually(common::WAIT, "the server to read every header", || async {
        (metrics.total_net_input_bytes.load(Ordering::SeqCst) - input_before >= sent).then_some(())
    })
    .await;

    // Another client is served at once.
    let start = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(probe.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    }
    let mut fresh = server.raw().await;
    assert_eq!(
        fresh.exchange_text(&resp(&["SET", "k", "v"])).await,
        "+OK\r\n"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "other clients were slowed down: {:?}",
        start.elapsed()
    );

    if let (Some(before), Some(after)) = (before_kb, vm_size_kb()) {
        let grown_mb = after.saturating_sub(before) / 1024;
        assert!(
            grown_mb < 1536,
            "virtual memory grew by {grown_mb} MiB after 8 headers declaring 512 MiB each"
        );
    }
    // The hostile connections are still waiting for their payloads, harmlessly.
    for c in &mut hostile[..2] {
        assert!(c.stays_silent(Duration::from_millis(50)).await);
    }
    drop(hostile);
    assert_eq!(
        probe.exchange_text(&resp(&["GET", "k"])).await,
        "$1\r\nv\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_does_not_disturb_another_clients_pipeline() {
    let server = TestServer::start().await;
    let mut good = server.raw().await;
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(resp(&["SET", &format!("k{i}"), &i.to_string()]));
        pipeline.extend(resp(&["GET", &format!("k{i}")]));
    }
    let (first, second) = pipeline.split_at(pipeline.len() / 2 + 3);
    good.send(first).await;

    let mut bad = server.raw().await;
    bad.send(b"*1\r\n+garbage\r\n\x00\xff\xfe").await;
    let got = bad.read_until_closed().await;
    assert!(
        got.starts_with(b"-ERR Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    good.send(second).await;
    let replies = good.read_replies(100).await;
    for i in 0..50 {
        assert_eq!(replies[2 * i], Reply::Simple("OK".into()), "SET k{i}");
        assert_eq!(replies[2 * i + 1], Reply::bulk(&i.to_string()), "GET k{i}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_command_error_names_the_command_and_its_args() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    assert_eq!(
        c.exchange_text(&resp(&["FOO", "a", "b"])).await,
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        c.exchange_text(b"nope\r\n").await,
        "-ERR unknown command 'nope', with args beginning with: \r\n"
    );
    assert_eq!(
        c.exchange_text(b"PING\r\n").await,
        "+PONG\r\n",
        "the connection stays open"
    );
    drop(c);
    assert!(!exchange(&server, b"PING\r\n", 1).await.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_arity_error_names_the_command() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    for (req, name) in [
        (resp(&["GET"]), "get"),
        (resp(&["get", "a", "b"]), "get"),
        (resp(&["CL.THROTTLE", "k", "1", "2"]), "cl.throttle"),
        (resp(&["CLIENT", "SETNAME"]), "client|setname"),
    ] {
        assert_eq!(
            c.exchange_text(&req).await,
            format!("-ERR wrong number of arguments for '{name}' command\r\n")
        );
    }
    assert_eq!(c.exchange_text(b"PING\r\n").await, "+PONG\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrongtype_when_a_key_holds_another_kind() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    const WRONGTYPE: &str =
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    c.exchange(&resp(&["SET", "s", "v"]), 1).await;
    assert_eq!(
        c.exchange_text(&resp(&["CL.THROTTLE", "s", "1", "1", "1"]))
            .await,
        WRONGTYPE
    );
    c.exchange(&resp(&["CL.THROTTLE", "g", "1", "1", "1"]), 1)
        .await;
    assert_eq!(c.exchange_text(&resp(&["GET", "g"])).await, WRONGTYPE);
    assert_eq!(c.exchange_text(&resp(&["INCR", "g"])).await, WRONGTYPE);
    assert_eq!(c.exchange_text(&resp(&["GET", "s"])).await, "$1\r\nv\r\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn requests_split_byte_by_byte_still_decode() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut wire = resp(&["SET", "k", "hello\r\nworld"]);
    wire.extend(resp(&["GET", "k"]));
    wire.extend(b"ECHO \"x y\"\r\n");
    wire.extend(resp(&["CL.THROTTLE", "t", "1", "1", "1"]));
    for b in &wire {
        c.send(std::slice::from_ref(b)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        String::from_utf8_lossy(&c.read_replies_raw(4).await.1),
        "+OK\r\n$12\r\nhello\r\nworld\r\n$3\r\nx y\r\n*5\r\n:0\r\n:2\r\n:1\r\n:-1\r\n:1\r\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_split_at_any_byte_decodes() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let wire = resp(&["ECHO", "split-me"]);
    for at in 1..wire.len() {
        // Any early reply to the partial request would show up as a mismatch below.
        c.send(&wire[..at]).await;
        tokio::task::yield_now().await;
        c.send(&wire[at..]).await;
        assert_eq!(
            c.read_reply().await,
            Reply::bulk("split-me"),
            "split at {at}"
        );
    }
    assert_eq!(
        c.exchange_text(b"PING\r\n").await,
        "+PONG\r\n",
        "nothing extra"
    );
    server.stop().await.unwrap();
}
