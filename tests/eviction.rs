//! Eviction over TCP (`maxmemory-policy` other than `noeviction`; docs/operations.md, "Memory").
//!
//! `used_memory` here is exact: this test binary installs a counting global allocator and
//! reports its live bytes as the memory probe, so eviction frees what it says it frees. The
//! tests share that figure and so run one at a time ([`SERIAL`]). Policies that must evict
//! everything they may evict use `maxmemory 1` (no process fits), which needs no measuring.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{eventually, query, Raw, Reply, TestServer, WAIT};
use limitkv::config::Config;
use limitkv::metrics::MemoryStats;

struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);

// Forwards to `System` and counts live bytes; the crate's own code keeps
// `forbid(unsafe_code)`, tests may implement the allocator trait (an unsafe trait).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> MemoryStats {
    let used = LIVE.load(Ordering::Relaxed);
    MemoryStats {
        used,
        peak: used,
        rss: used,
    }
}

/// One test at a time: they share the allocator's count.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(config: Config) -> TestServer {
    limitkv::metrics::install_memory_probe(live_bytes, "counting");
    TestServer::with_config(config).await
}

/// Sends `cmds` as one pipeline and returns the replies.
async fn pipeline(c: &mut Raw, cmds: &[Vec<String>]) -> Vec<Reply> {
    let mut out = Vec::new();
    for cmd in cmds {
        let words: Vec<&str> = cmd.iter().map(String::as_str).collect();
        out.extend(common::resp(&words));
    }
    c.send(&out).await;
    c.read_replies(cmds.len()).await
}

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

async fn info_field(c: &mut Raw, section: &str, name: &str) -> String {
    let text = c.cmd(&["INFO", section]).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .trim()
        .to_owned()
}

async fn count_existing(c: &mut Raw, keys: &[String]) -> usize {
    let cmds: Vec<Vec<String>> = keys
        .iter()
        .map(|k| vec!["EXISTS".to_owned(), k.clone()])
        .collect();
    pipeline(c, &cmds)
        .await
        .into_iter()
        .filter(|r| *r == Reply::Int(1))
        .count()
}

fn is_oom(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("OOM "))
}

#[tokio::test]
async fn allkeys_lru_keeps_recently_charged_buckets_and_evicts_the_untouched_ones() {
    let _serial = SERIAL.lock().await;
    let server = start(Config::default()).await;
    let mut c = server.raw().await;
    const N: usize = 2_000;
    const OLD: usize = 2 * N;
    let throttle = |k: String| words(&["CL.THROTTLE", &k, "100", "1", "3600"]);
    // Old buckets charged at t0, recent ones ten minutes later: both still recovering (their
    // TAT, and expiry, lie an hour after their charge).
    let old: Vec<String> = (0..OLD).map(|i| format!("old:{i}")).collect();
    let recent: Vec<String> = (0..N).map(|i| format!("recent:{i}")).collect();
    pipeline(
        &mut c,
        &old.iter().cloned().map(throttle).collect::<Vec<_>>(),
    )
    .await;
    server.clock.advance(std::time::Duration::from_secs(600));
    pipeline(
        &mut c,
        &recent.iter().cloned().map(throttle).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
            .await,
        Reply::Simple("OK".into())
    );
    // Room for a little more than what is stored; new identities then need evictions.
    let used: u64 = info_field(&mut c, "memory", "used_memory")
        .await
        .parse()
        .unwrap();
    let limit = (used + 16 * 1024).to_string();
    c.cmd(&["CONFIG", "SET", "maxmemory", &limit]).await;
    let fresh: Vec<String> = (0..N / 2).map(|i| format!("fresh:{i}")).collect();
    for batch in fresh.chunks(100) {
        let replies = pipeline(
            &mut c,
            &batch.iter().cloned().map(throttle).collect::<Vec<_>>(),
        )
        .await;
        for r in &replies {
            assert!(matches!(r, Reply::Array(_)), "every write succeeds: {r:?}");
        }
    }
    let evicted: usize = info_field(&mut c, "stats", "evicted_keys")
        .await
        .parse()
        .unwrap();
    let old_left = count_existing(&mut c, &old).await;
    let recent_left = count_existing(&mut c, &recent).await;
    let fresh_left = count_existing(&mut c, &fresh).await;
    eprintln!("evicted {evicted}: old {old_left}, recent {recent_left}, fresh {fresh_left} left");
    assert!(evicted > N / 10, "evicted only {evicted}");
    assert!(
        evicted < OLD,
        "evicted {evicted}: more than the old buckets, nothing to compare"
    );
    assert_eq!(
        evicted,
        OLD + N + N / 2 - old_left - recent_left - fresh_left
    );
    // Sampling is approximate; the margin is wide: the older buckets go first.
    let (old_gone, recent_gone) = (OLD - old_left, N - recent_left);
    assert!(
        old_gone > 10 * recent_gone,
        "old evicted {old_gone}, recent evicted {recent_gone} (of {evicted})"
    );
    c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn volatile_ttl_evicts_the_nearest_expiry_first_then_answers_oom() {
    let _serial = SERIAL.lock().await;
    let server = start(Config::default()).await;
    let mut c = server.raw().await;
    // Persistent keys, and 200 keys with distinct TTLs.
    let persistent: Vec<Vec<String>> = (0..500)
        .map(|i| words(&["SET", &format!("p:{i}"), &"x".repeat(100)]))
        .collect();
    pipeline(&mut c, &persistent).await;
    let volatile: Vec<String> = (0..200).map(|i| format!("v:{i:03}")).collect();
    let cmds: Vec<Vec<String>> = volatile
        .iter()
        .enumerate()
        .map(|(i, k)| words(&["SET", k, &"x".repeat(100), "EX", &(1_000 + i).to_string()]))
        .collect();
    pipeline(&mut c, &cmds).await;
    c.cmd(&["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"])
        .await;
    let used: u64 = info_field(&mut c, "memory", "used_memory")
        .await
        .parse()
        .unwrap();
    c.cmd(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 16 * 1024).to_string(),
    ])
    .await;
    // Persistent writes until refused: each needs room, which only volatile keys can give.
    let mut written = Vec::new();
    let mut halfway = None;
    for i in 0.. {
        let k = format!("q:{i}");
        let r = c.cmd(&["SET", &k, &"y".repeat(200)]).await;
        if is_oom(&r) {
            break;
        }
        assert_eq!(r, Reply::Simple("OK".into()), "{k}");
        written.push(k);
        let left = count_existing(&mut c, &volatile).await;
        if halfway.is_none() && left <= 100 {
            // Which volatile keys are left once half are gone: mostly the longest TTLs.
            let mut alive = Vec::new();
            for (n, k) in volatile.iter().enumerate() {
                if c.cmd(&["EXISTS", k]).await == Reply::Int(1) {
                    alive.push(n);
                }
            }
            halfway = Some(alive);
        }
        assert!(i < 10_000, "never refused");
    }
    let alive = halfway.expect("half the volatile keys were evicted before the refusal");
    eprintln!("volatile keys left at halfway: {alive:?}");
    // A short-TTL key survives only if no round sampled it: about (1 - 1/200)^500, 8%, so
    // about 90% of the survivors are expected among the longer half; 75% is a wide margin.
    let among_longest = alive.iter().filter(|&&n| n >= 100).count();
    assert!(
        among_longest * 4 >= alive.len() * 3,
        "survivors at halfway should be the longest TTLs: {alive:?}"
    );
    // Refused only once every volatile key was gone; nothing persistent was lost.
    assert_eq!(count_existing(&mut c, &volatile).await, 0);
    let keys: Vec<String> = (0..500).map(|i| format!("p:{i}")).collect();
    assert_eq!(count_existing(&mut c, &keys).await, 500);
    assert_eq!(count_existing(&mut c, &written).await, written.len());
    assert_eq!(info_field(&mut c, "stats", "evicted_keys").await, "200");
    c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn evictions_reach_replicas_and_break_watches() {
    let _serial = SERIAL.lock().await;
    let master = start(Config::default()).await;
    let mut m = master.raw().await;
    let cmds: Vec<Vec<String>> = (0..300)
        .map(|i| words(&["CL.THROTTLE", &format!("user:{i}"), "9", "1", "60"]))
        .collect();
    pipeline(&mut m, &cmds).await;
    m.cmd(&["SET", "config", "kept"]).await;
    let mut replica_cfg = Config::default();
    replica_cfg.repl.replicaof = Some((master.addr.ip().to_string(), master.addr.port()));
    let replica = start(replica_cfg).await;
    let mut r = replica.redis(false).await;
    eventually(WAIT, "the replica in sync", || {
        let mut r = r.clone();
        async move { (query(&mut r, &["DBSIZE"]).await == redis::Value::Int(301)).then_some(()) }
    })
    .await;
    // A client watching a bucket that eviction will remove.
    let mut w = master.raw().await;
    w.cmd(&["WATCH", "user:7"]).await;
    m.cmd(&["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"])
        .await;
    m.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await;
    // Every bucket has an expiry and goes; the persistent key stays; the write is refused.
    assert!(is_oom(&m.cmd(&["SET", "new", "v"]).await));
    assert_eq!(m.cmd(&["DBSIZE"]).await, Reply::Int(1));
    w.cmd(&["MULTI"]).await;
    w.cmd(&["GET", "config"]).await;
    assert_eq!(
        w.cmd(&["EXEC"]).await,
        Reply::Null,
        "the watch saw the eviction"
    );
    eventually(WAIT, "the evictions on the replica", || {
        let mut r = r.clone();
        async move { (query(&mut r, &["DBSIZE"]).await == redis::Value::Int(1)).then_some(()) }
    })
    .await;
    assert_eq!(
        query(&mut r, &["GET", "config"]).await,
        redis::Value::BulkString(b"kept".to_vec())
    );
    m.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    replica.stop().await.unwrap();
    master.stop().await.unwrap();
}

#[tokio::test]
async fn evictions_are_in_the_append_only_file() {
    let _serial = SERIAL.lock().await;
    let dir = common::temp_dir();
    let config = || Config {
        dir: dir.path().to_path_buf(),
        appendonly: true,
        ..Config::default()
    };
    let server = start(config()).await;
    let mut c = server.raw().await;
    c.cmd(&["SET", "persistent", "v"]).await;
    c.cmd(&["SET", "volatile", "v", "EX", "1000"]).await;
    c.cmd(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"])
        .await;
    c.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await;
    assert!(is_oom(&c.cmd(&["SET", "new", "v"]).await));
    c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await;
    server.stop().await.unwrap();
    let server = start(config()).await;
    let mut c = server.raw().await;
    assert_eq!(
        c.cmd(&["EXISTS", "persistent", "volatile"]).await,
        Reply::Int(1)
    );
    assert_eq!(c.cmd(&["EXISTS", "persistent"]).await, Reply::Int(1));
    server.stop().await.unwrap();
}
