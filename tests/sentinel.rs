//! The failover check of issue 20 with real components: one limitkv master and two limitkv
//! replicas (the binary, on loopback ports), three `redis-sentinel` processes (Debian's
//! package), and a writer using redis-py's `Sentinel` client (tests/compat/sentinel_writer.py)
//! that runs CL.THROTTLE and LIMIT.CHECK, each followed by `WAIT 1 1000`. The master is killed
//! with SIGKILL; Sentinel must promote a replica within 30 s; the writer continues on it; every
//! decision acknowledged by a replica before the kill is on the new master (its remaining
//! counts continue below the last acknowledged ones); the old master, restarted, rejoins as a
//! replica of the new one.
//!
//! Skipped (with a message) when `redis-sentinel` or a Python with the `redis` package is
//! missing; `.ci/run` installs both. Python: `$LIMITKV_PYTHON`, else the compatibility suite's
//! venv (`~/.cache/limitkv-compat/py-*/bin/python`), else `python3`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_limitkv");

/// Kills every process it holds when dropped (a failing test leaves nothing running).
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn python() -> Option<PathBuf> {
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", "import redis.sentinel"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(p) = std::env::var_os("LIMITKV_PYTHON").map(PathBuf::from) {
        return works(&p).then_some(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let cache = std::env::var_os("COMPAT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/limitkv-compat"));
    if let Ok(entries) = std::fs::read_dir(&cache) {
        for e in entries.flatten() {
            let p = e.path().join("bin/python");
            if e.file_name().to_string_lossy().starts_with("py-") && works(&p) {
                return Some(p);
            }
        }
    }
    let p = PathBuf::from("python3");
    works(&p).then_some(p)
}

fn spawn(procs: &mut Procs, name: &str, dir: &Path, prog: &str, args: &[&str]) {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(prog)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {prog}: {e}"));
    procs.0.push((name.to_owned(), child));
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn wait_until(bound: Duration, what: &str, dir: &Path, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > bound {
            dump_logs(dir);
            panic!("gave up after {bound:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dump_logs(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("==== {} (last lines)", e.path().display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn info_field(port: u16, name: &str) -> Option<String> {
    redis_cli(port, &["INFO", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_owned())
}

fn node_conf(dir: &Path, name: &str, port: u16, master: Option<u16>) -> PathBuf {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let mut text = format!(
        "# node {name} of the failover test\nport {port}\nbind 127.0.0.1\ndir {}\n\
         repl-timeout 5\nrepl-ping-replica-period 1\n",
        data.display()
    );
    if let Some(m) = master {
        text.push_str(&format!("replicaof 127.0.0.1 {m}\n"));
    }
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, text).unwrap();
    path
}

#[derive(Debug, Clone)]
struct Op {
    master: String,
    moved: bool,
    kind: String,
    remaining: i64,
    acked: i64,
}

#[test]
fn sentinel_promotes_a_replica_and_no_acknowledged_decision_is_lost() {
    if Command::new("redis-sentinel")
        .arg("--version")
        .output()
        .is_err()
        || Command::new("redis-cli").arg("--version").output().is_err()
    {
        eprintln!("SKIPPED: redis-sentinel or redis-cli is not installed (apt install redis-sentinel redis-tools)");
        return;
    }
    let Some(py) = python() else {
        eprintln!("SKIPPED: no Python with the redis package (set LIMITKV_PYTHON)");
        return;
    };
    let tmp = common::temp_dir();
    let dir = tmp.path();
    let mut procs = Procs(Vec::new());
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let (m, r1, r2) = (ports[0], ports[1], ports[2]);
    let confs = [
        node_conf(dir, "node0", m, None),
        node_conf(dir, "node1", r1, Some(m)),
        node_conf(dir, "node2", r2, Some(m)),
    ];
    for (i, c) in confs.iter().enumerate() {
        spawn(
            &mut procs,
            &format!("node{i}"),
            dir,
            BIN,
            &[c.to_str().unwrap()],
        );
    }
    for p in [r1, r2] {
        wait_until(Duration::from_secs(20), "replicas in sync", dir, || {
            info_field(p, "master_link_status").as_deref() == Some("up")
        });
    }
    let sentinel_ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    // down-after-milliseconds must be well above Sentinel's 1 s reconnect period: after a
    // `+switch-master`, a Sentinel reconnects to the new master only 1 s after its last attempt
    // to reach the dead one, yet counts the new master's silence from the switch. With 1000 ms
    // the freshly promoted master can be marked down before its first PING is even sent, and a
    // second failover follows (seen in CI: `+sdown` of the new master 1.002 s after
    // `+switch-master`, `-sdown` 60 ms later). Redis's own Sentinel tests use 2000 ms.
    for (i, sp) in sentinel_ports.iter().enumerate() {
        let conf = dir.join(format!("sentinel{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {sp}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {m} 2\n\
                 sentinel down-after-milliseconds mymaster 3000\n\
                 sentinel failover-timeout mymaster 6000\n\
                 sentinel parallel-syncs mymaster 2\n",
                dir.display()
            ),
        )
        .unwrap();
        spawn(
            &mut procs,
            &format!("sentinel{i}"),
            dir,
            "redis-sentinel",
            &[conf.to_str().unwrap()],
        );
    }
    // Each Sentinel found both replicas (INFO) and the other Sentinels (hello messages
    // published through limitkv's Pub/Sub).
    for sp in &sentinel_ports {
        wait_until(
            Duration::from_secs(30),
            "sentinels to discover everything",
            dir,
            || {
                let replicas = redis_cli(*sp, &["SENTINEL", "REPLICAS", "mymaster"]);
                let sentinels = redis_cli(*sp, &["SENTINEL", "SENTINELS", "mymaster"]);
                replicas.matches("slave").count() >= 2 && sentinels.matches("sentinel").count() >= 2
            },
        );
    }
    let list: Vec<String> = sentinel_ports.iter().map(u16::to_string).collect();
    let writer = Command::new(&py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/compat/sentinel_writer.py"
        ))
        .args([list.join(","), "40".into(), "90".into()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("writer.log")).unwrap())
        .spawn()
        .expect("start the writer");
    let mut writer = Procs(vec![("writer".into(), writer)]);
    let stdout = writer.0[0].1.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut ops: Vec<Op> = Vec::new();
    let mut killed_at = None;
    let mut promoted_in = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(line) = line {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v.get("done").is_some() {
                break;
            }
            if let Some(kind) = v.get("kind").and_then(|k| k.as_str()) {
                ops.push(Op {
                    master: v["master"].as_str().unwrap().to_owned(),
                    moved: v["moved"].as_bool().unwrap(),
                    kind: kind.to_owned(),
                    remaining: v["remaining"].as_i64().unwrap(),
                    acked: v["acked"].as_i64().unwrap(),
                });
            }
        }
        // Kill the master once a good number of decisions were acknowledged on it.
        if killed_at.is_none() && ops.iter().filter(|o| o.acked >= 1).count() >= 40 {
            let node0 = &mut procs.0[0].1;
            node0.kill().unwrap(); // SIGKILL
            node0.wait().unwrap();
            killed_at = Some(Instant::now());
        }
        if let (Some(at), None) = (killed_at, promoted_in) {
            let addr = redis_cli(
                sentinel_ports[0],
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
            );
            if !addr.contains(&m.to_string()) && !addr.is_empty() {
                promoted_in = Some(at.elapsed());
            }
        }
        if Instant::now() > deadline {
            dump_logs(dir);
            panic!("the writer did not finish in time; {} ops", ops.len());
        }
    }
    let Some(promoted_in) = promoted_in else {
        dump_logs(dir);
        panic!("no promotion seen; killed: {killed_at:?}; ops: {ops:?}");
    };
    assert!(
        promoted_in < Duration::from_secs(30),
        "promotion took {promoted_in:?}"
    );
    eprintln!("promotion after {promoted_in:?}; {} decisions", ops.len());
    for kind in ["throttle", "check"] {
        let before: Vec<&Op> = ops
            .iter()
            .filter(|o| o.kind == kind && !o.moved && o.acked >= 1)
            .collect();
        let after: Vec<&Op> = ops.iter().filter(|o| o.kind == kind && o.moved).collect();
        assert!(!before.is_empty() && !after.is_empty(), "{kind}: {ops:?}");
        let last_acked = before.iter().map(|o| o.remaining).min().unwrap();
        let first_after = after[0].remaining;
        assert!(
            first_after < last_acked,
            "{kind}: the new master ({}) answered remaining {first_after}, but a decision that \
             left {last_acked} had been acknowledged by a replica",
            after[0].master
        );
        // The writer's acknowledged decisions on the new master are acknowledged by the
        // other replica too, once the old master rejoins or the other replica follows.
        assert!(after.iter().all(|o| o.master == after[0].master));
    }
    // The old master comes back and is turned into a replica of the new one by Sentinel.
    let new_master: u16 = ops.iter().rev().find(|o| o.moved).unwrap().master[ops
        .iter()
        .rev()
        .find(|o| o.moved)
        .unwrap()
        .master
        .rfind(':')
        .unwrap()
        + 1..]
        .parse()
        .unwrap();
    spawn(
        &mut procs,
        "node0-restarted",
        dir,
        BIN,
        &[confs[0].to_str().unwrap()],
    );
    wait_until(
        Duration::from_secs(40),
        "the old master to rejoin as a replica",
        dir,
        || {
            info_field(m, "role").as_deref() == Some("slave")
                && info_field(m, "master_port").as_deref() == Some(&new_master.to_string())
                && info_field(m, "master_link_status").as_deref() == Some("up")
        },
    );
    // Sentinel's CONFIG REWRITE recorded the new role in the old master's file.
    let conf = std::fs::read_to_string(&confs[0]).unwrap();
    assert!(
        conf.contains(&format!("replicaof 127.0.0.1 {new_master}")),
        "{conf}"
    );
    drop(writer);
}
