//! Helpers shared by the socket tests: an in-process server on a manual clock, a raw TCP client
//! with a small RESP reply reader, the `redis` crate client, and temporary directories.
//!
//! Every wait here is bounded: a test that would hang fails with a message instead.

#![allow(dead_code)]

pub mod pki;
pub mod replies;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use limitkv::clock::{Clock, ManualClock, Nanos};
use limitkv::cmd::Shared;
use limitkv::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// 2026-01-01T00:00:00Z, the start of every manual clock.
pub const EPOCH_SECS: u64 = 1_767_225_600;

/// Longest a test waits for a reply, a close or a server task before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running in-process server. Dropping it asks the server to stop; `stop().await` also waits
/// for the server to finish.
///
/// The server runs on its own two-worker runtime in a dedicated thread, which keeps test-side
/// blocking away from the server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its HTTP listener listens, with `http-port` set.
    pub http: Option<SocketAddr>,
    /// The clock driving it.
    pub clock: Arc<ManualClock>,
    /// Its shared state (metrics, registry, store).
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<io::Result<()>>>,
}

impl TestServer {
    /// A server with the default configuration on a free port.
    pub async fn start() -> TestServer {
        TestServer::with_config(Config::default()).await
    }

    /// A server with `config` (its port is replaced by 0) on a free port of 127.0.0.1.
    pub async fn with_config(config: Config) -> TestServer {
        TestServer::with_config_bound(config, &["127.0.0.1"]).await
    }

    /// A server with `config` on one free port of every address of `bind` (the first is
    /// [`TestServer::addr`]).
    pub async fn with_config_bound(mut config: Config, bind: &[&str]) -> TestServer {
        config.port = 0;
        config.bind = bind.iter().map(|a| (*a).to_owned()).collect();
        let clock = Arc::new(ManualClock::new(Nanos::from_secs(EPOCH_SECS)));
        let server_clock = clock.clone() as Arc<dyn Clock>;
        let (ready_tx, ready_rx) =
            oneshot::channel::<(SocketAddr, Arc<Shared>, Option<SocketAddr>)>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, mut done_rx) = oneshot::channel::<io::Result<()>>();
        std::thread::Builder::new()
            .name("limitkv-test-server".into())
            .spawn(move || {
                // The server's own runtime, as main.rs builds it: under `appendfsync
                // always` its workers commit the AOF batches.
                let (rt, idle_commit) =
                    limitkv::server::runtime(2).expect("build the server runtime");
                let result = rt.block_on(async move {
                    let server = limitkv::server::bind(config, server_clock).await?;
                    server.attach_idle_commit(&idle_commit);
                    let _ =
                        ready_tx.send((server.local_addr(), server.shared(), server.http_addr()));
                    server
                        .run(async {
                            let _ = stop_rx.await;
                        })
                        .await
                });
                let _ = done_tx.send(result);
            })
            .expect("spawn the server thread");
        let (addr, shared, http) = match tokio::time::timeout(WAIT, ready_rx).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(_)) => panic!("server failed to start: {:?}", done_rx.try_recv()),
            Err(_) => panic!("server not ready within {WAIT:?}"),
        };
        TestServer {
            addr,
            http,
            clock,
            shared,
            stop: Some(stop_tx),
            done: Some(done_rx),
        }
    }

    /// Fires the shutdown future without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Fires the shutdown future and waits (bounded) for the server to return.
    pub async fn stop(mut self) -> io::Result<()> {
        self.signal_stop();
        self.join().await
    }

    /// Waits (bounded) for the server to return, without asking it to stop.
    pub async fn join(&mut self) -> io::Result<()> {
        let done = self.done.take().expect("server joined once");
        tokio::time::timeout(WAIT, done)
            .await
            .expect("server finishes within the bound")
            .expect("server thread does not panic")
    }

    /// True once the server has returned.
    pub fn is_finished(&mut self) -> bool {
        match &mut self.done {
            None => true,
            Some(rx) => !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        }
    }

    /// A raw TCP client.
    pub async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    /// A `redis://` URL for this server; `resp3` adds `?protocol=resp3`.
    pub fn url(&self, resp3: bool) -> String {
        let base = format!("redis://{}/", self.addr);
        if resp3 {
            format!("{base}?protocol=resp3")
        } else {
            base
        }
    }

    /// A new multiplexed connection from the `redis` crate (its own TCP connection).
    pub async fn redis(&self, resp3: bool) -> redis::aio::MultiplexedConnection {
        redis_connect(&self.url(resp3)).await
    }

    /// The manual clock's reading.
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// A free loopback port for settings where 0 does not mean "pick one" (`http-port`, a child
/// process's `--port`).
///
/// Ports are taken from below the kernel's ephemeral range (`ip_local_port_range`), which
/// `bind(0)` and outgoing connections never pick: a port found free here cannot be taken by
/// another test's server on port 0 or by a client's local port before the caller binds it (the
/// race a port freed straight back into the ephemeral range had). Successive calls in one
/// process walk a shared cursor, so two tests never get the same port; the cursor starts at an
/// offset drawn from the process id, so test binaries run side by side start apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let high = ephemeral_low().max(LOW + 1_000);
    let span = high - LOW;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let step = CURSOR.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + step) % span;
        let port = u16::try_from(port).expect("ports below the ephemeral range fit in u16");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in [{LOW}, {high})");
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Opens a multiplexed `redis` crate connection to `url`.
pub async fn redis_connect(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid redis URL");
    tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
        .await
        .expect("redis connection within the bound")
        .expect("redis connection succeeds")
}

/// `curl` against `url` with `args`: (HTTP status, body, response headers as sent). `None`
/// (with a printed reason) when curl is missing, so HTTP tests skip instead of failing.
pub fn curl(url: &str, args: &[&str]) -> Option<(u16, String, String)> {
    let dir = temp_dir();
    let headers = dir.path().join("headers");
    let out = match std::process::Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "10",
            "--write-out",
            "%{http_code}",
        ])
        .arg("--dump-header")
        .arg(&headers)
        .args(args)
        .arg(url)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: curl is not installed ({e})");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.split_at(text.len().saturating_sub(3));
    let headers = std::fs::read_to_string(headers).unwrap_or_default();
    Some((code.parse().unwrap_or(0), body.to_owned(), headers))
}

/// A temporary directory removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("limitkv-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Encodes a request as a RESP multibulk.
pub fn resp_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// [`resp_cmd`] for text arguments.
pub fn resp(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp_cmd(&args)
}

/// A reply as the test side reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` (also `!len` blob errors)
    Error(String),
    /// `:n`
    Int(i64),
    /// `$len`
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`
    Null,
    /// `*len`
    Array(Vec<Reply>),
    /// `%len`
    Map(Vec<(Reply, Reply)>),
    /// `~len`
    Set(Vec<Reply>),
    /// `>len`
    Push(Vec<Reply>),
    /// `,x` kept as text
    Double(String),
    /// `#t` / `#f`
    Bool(bool),
    /// `=len` with its three-letter format
    Verbatim(String, Vec<u8>),
    /// `(n` kept as text
    BigNumber(String),
    /// `|len` attributes followed by the reply they annotate
    Attribute(Vec<(Reply, Reply)>, Box<Reply>),
}

impl Reply {
    /// A bulk string from text.
    pub fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    /// The text of a bulk, simple or verbatim string.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Bulk(b) | Reply::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// The value for `key` in a map reply (or in a flat RESP2 key/value array).
    pub fn get(&self, key: &str) -> Option<&Reply> {
        match self {
            Reply::Map(pairs) => pairs.iter().find(|(k, _)| k.text() == key).map(|(_, v)| v),
            Reply::Array(items) => items
                .chunks(2)
                .find(|kv| kv.len() == 2 && kv[0].text() == key)
                .map(|kv| &kv[1]),
            _ => None,
        }
    }
}

/// Why a buffer cannot be read as replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub String);

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn parse_int(line: &[u8]) -> Result<i64, BadReply> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BadReply(format!("bad number {:?}", String::from_utf8_lossy(line))))
}

/// Reads one reply starting at `pos`. `Ok(None)` means more bytes are needed; otherwise returns
/// the reply and the position just after it.
pub fn parse_reply(buf: &[u8], pos: usize) -> Result<Option<(Reply, usize)>, BadReply> {
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..cr];
    let text = || String::from_utf8_lossy(line).into_owned();
    let next = cr + 2;
    let simple = |r: Reply| Ok(Some((r, next)));
    match tag {
        b'+' => simple(Reply::Simple(text())),
        b'-' => simple(Reply::Error(text())),
        b':' => simple(Reply::Int(parse_int(line)?)),
        b',' => simple(Reply::Double(text())),
        b'(' => simple(Reply::BigNumber(text())),
        b'_' if line.is_empty() => simple(Reply::Null),
        b'#' => match line {
            b"t" => simple(Reply::Bool(true)),
            b"f" => simple(Reply::Bool(false)),
            _ => Err(BadReply(format!("bad boolean {:?}", text()))),
        },
        b'$' | b'=' | b'!' => {
            let len = parse_int(line)?;
            if len == -1 && tag == b'$' {
                return simple(Reply::Null);
            }
            let len = usize::try_from(len).map_err(|_| BadReply(format!("bad length {len}")))?;
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(BadReply("blob not followed by CRLF".into()));
            }
            let body = buf[next..end].to_vec();
            let r = match tag {
                b'$' => Reply::Bulk(body),
                b'!' => Reply::Error(String::from_utf8_lossy(&body).into_owned()),
                _ => {
                    if body.len() < 4 || body[3] != b':' {
                        return Err(BadReply("verbatim without format".into()));
                    }
                    Reply::Verbatim(
                        String::from_utf8_lossy(&body[..3]).into_owned(),
                        body[4..].to_vec(),
                    )
                }
            };
            Ok(Some((r, end + 2)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(line)?;
            if n == -1 && tag == b'*' {
                return simple(Reply::Null);
            }
            let n = usize::try_from(n).map_err(|_| BadReply(format!("bad count {n}")))?;
            let items = if tag == b'%' || tag == b'|' { n * 2 } else { n };
            let mut out = Vec::new();
            let mut at = next;
            for _ in 0..items {
                match parse_reply(buf, at)? {
                    None => return Ok(None),
                    Some((r, after)) => {
                        out.push(r);
                        at = after;
                    }
                }
            }
            let pairs = |v: Vec<Reply>| {
                let mut it = v.into_iter();
                let mut p = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    p.push((k, v));
                }
                p
            };
            let r = match tag {
                b'*' => Reply::Array(out),
                b'~' => Reply::Set(out),
                b'>' => Reply::Push(out),
                b'%' => Reply::Map(pairs(out)),
                _ => match parse_reply(buf, at)? {
                    None => return Ok(None),
                    Some((inner, after)) => {
                        at = after;
                        Reply::Attribute(pairs(out), Box::new(inner))
                    }
                },
            };
            Ok(Some((r, at)))
        }
        other => Err(BadReply(format!(
            "unknown reply type byte {:?}",
            other as char
        ))),
    }
}

/// A raw TCP client that writes bytes and reads whole RESP replies.
pub struct Raw {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet returned as replies.
    pub buf: Vec<u8>,
}

impl Raw {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect within the bound")
            .expect("connect succeeds");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` in one call.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to server");
        self.stream.flush().await.expect("flush");
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no reply within {WAIT:?}; unread: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .expect("read from server");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads exactly `n` complete replies; returns them and their wire bytes.
    pub async fn read_replies_raw(&mut self, n: usize) -> (Vec<Reply>, Vec<u8>) {
        let mut replies = Vec::with_capacity(n);
        let mut pos = 0;
        while replies.len() < n {
            match parse_reply(&self.buf, pos).expect("server sends valid RESP") {
                Some((r, after)) => {
                    replies.push(r);
                    pos = after;
                }
                None => {
                    if self.fill().await == 0 {
                        panic!(
                            "connection closed after {} of {n} replies; unread: {:?}",
                            replies.len(),
                            String::from_utf8_lossy(&self.buf[pos..])
                        );
                    }
                }
            }
        }
        let bytes: Vec<u8> = self.buf.drain(..pos).collect();
        (replies, bytes)
    }

    /// Reads exactly `n` complete replies.
    pub async fn read_replies(&mut self, n: usize) -> Vec<Reply> {
        self.read_replies_raw(n).await.0
    }

    /// Reads one reply.
    pub async fn read_reply(&mut self) -> Reply {
        self.read_replies(1).await.remove(0)
    }

    /// Sends `bytes` and returns the wire bytes of the next `n` replies.
    pub async fn exchange(&mut self, bytes: &[u8], n: usize) -> Vec<u8> {
        self.send(bytes).await;
        self.read_replies_raw(n).await.1
    }

    /// Sends `bytes` and returns the wire bytes of the next reply as text.
    pub async fn exchange_text(&mut self, bytes: &[u8]) -> String {
        String::from_utf8_lossy(&self.exchange(bytes, 1).await).into_owned()
    }

    /// Runs `script` (one command per entry) in RESP2, then again after `HELLO 3`, and returns
    /// every reply's wire bytes as text: RESP2's first, then RESP3's.
    pub async fn replies_in_both_protocols(&mut self, script: &[&[&str]]) -> Vec<String> {
        let mut got = Vec::new();
        for resp3 in [false, true] {
            if resp3 {
                self.exchange(&resp(&["HELLO", "3"]), 1).await;
            }
            for args in script {
                got.push(self.exchange_text(&resp(args)).await);
            }
        }
        got
    }

    /// Sends one command and reads its reply.
    pub async fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(&resp(args)).await;
        self.read_reply().await
    }

    /// Sends `bytes` and returns the next reply, or `None` if the connection is closed or reset
    /// before a whole reply arrives (for probing a server that may turn the connection away).
    pub async fn try_exchange(&mut self, bytes: &[u8]) -> Option<Reply> {
        if self.stream.write_all(bytes).await.is_err() {
            return None;
        }
        loop {
            if let Ok(Some((r, after))) = parse_reply(&self.buf, 0) {
                self.buf.drain(..after);
                return Some(r);
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads until the server closes the connection; returns everything unread up to then.
    /// Panics if the connection stays open beyond the bound.
    pub async fn read_until_closed(&mut self) -> Vec<u8> {
        loop {
            let mut chunk = [0u8; 16 * 1024];
            let r = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "connection still open after {WAIT:?}; unread: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                });
            match r {
                Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// True if nothing arrives (and the connection stays open) for `quiet`. Only used to show
    /// that the server is still waiting for more of a request; a short bound suffices.
    pub async fn stays_silent(&mut self, quiet: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(quiet, self.stream.read(&mut chunk)).await {
            Err(_) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Ok(Err(_)) => false,
        }
    }
}

/// Runs `f` until it returns `Some`, retrying every few milliseconds for at most `bound`.
pub async fn eventually<T, F, Fut>(bound: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// --- the redis crate: commands, uniform limiter replies, concurrent races ---------------

/// Runs `args` on `con`; panics naming the command when it answers an error.
pub async fn query(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs `args` on `con`, expecting an error reply.
pub async fn query_err(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisError {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async::<redis::Value>(con)
        .await
        .expect_err("an error reply")
}

/// The field/value pairs of a uniform reply, checking its shape: a map in RESP3, a flat array
/// in RESP2, field names as bulk strings.
pub fn fields(v: redis::Value, resp3: bool) -> Vec<(String, redis::Value)> {
    let name = |k: redis::Value| match k {
        redis::Value::BulkString(b) => String::from_utf8(b).expect("UTF-8 field name"),
        other => panic!("field name is not a bulk string: {other:?}"),
    };
    match (v, resp3) {
        (redis::Value::Map(pairs), true) => pairs.into_iter().map(|(k, v)| (name(k), v)).collect(),
        (redis::Value::Array(items), false) => {
            assert_eq!(items.len() % 2, 0, "flat array of pairs");
            let mut it = items.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((name(k), v));
            }
            out
        }
        (other, _) => panic!("unexpected reply shape (resp3: {resp3}): {other:?}"),
    }
}

/// Opens `conns` connections, waits until all are registered, then has each send `args` once
/// at the same moment. Returns every reply.
pub async fn race(
    server: &TestServer,
    resp3: bool,
    conns: usize,
    args: &[&str],
) -> Vec<redis::Value> {
    // Connections of an earlier race may still be closing on the server side.
    eventually(WAIT, "earlier connections to close", || async {
        server.shared.clients.is_empty().then_some(())
    })
    .await;
    let start = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let args: Arc<Vec<String>> = Arc::new(args.iter().map(|a| a.to_string()).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let url = server.url(resp3);
        let (start, args) = (start.clone(), args.clone());
        tasks.spawn(async move {
            let mut con = redis_connect(&url).await;
            start.wait().await;
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            query(&mut con, &words).await
        });
    }
    eventually(WAIT, "every racing connection", || async {
        (server.shared.clients.len() == conns).then_some(())
    })
    .await;
    start.wait().await;
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.push(r.expect("racing task does not panic"));
    }
    all
}

/// A client in MONITOR mode.
pub async fn monitor(server: &TestServer) -> Raw {
    let mut m = server.raw().await;
    assert_eq!(m.cmd(&["MONITOR"]).await, Reply::Simple("OK".into()));
    m
}

/// The next `n` monitor lines (status replies), without the leading `+`.
pub async fn lines(m: &mut Raw, n: usize) -> Vec<String> {
    m.read_replies(n)
        .await
        .into_iter()
        .map(|r| match r {
            Reply::Simple(s) => s,
            other => panic!("a monitor line is a status reply: {other:?}"),
        })
        .collect()
}
