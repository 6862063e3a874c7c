//! The `limitkv` binary as an operator runs it: flags, a config file, `redis-cli`, and a clean
//! exit on SIGTERM/SIGINT. Bad flags and bad config files fail fast with a message on stderr.

mod common;

use common::free_port;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_limitkv");

/// A started server process; killed on drop if a test failed before stopping it.
struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `request` and reads one reply line (enough for the simple replies used here).
fn raw_line(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(request)?;
    read_line(&mut s)
}

/// Reads one reply line, up to its CRLF (or what came before the connection closed).
fn read_line(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            break;
        }
        out.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Starts the binary with `args` and waits (at most 10 s) until it answers on `port`.
fn start(args: &[&str], port: u16) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn limitkv");
    let mut p = Proc { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = p.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("limitkv exited early ({status}): {err}");
        }
        if let Ok(line) = raw_line(port, b"PING\r\n") {
            if !line.is_empty() {
                return p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "limitkv did not answer on port {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to the process and waits (at most 5 s) for it to exit.
fn signal_and_wait(p: &mut Proc, signal: &str) -> ExitStatus {
    let pid = p.child.id().to_string();
    let sent = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} {pid}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = p.child.try_wait().expect("wait for limitkv") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "limitkv still running 5 s after {signal}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn redis_cli_available() -> bool {
    Command::new("redis-cli")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn limitkv");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("limitkv {args:?} kept running instead of failing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}

#[test]
fn serves_redis_cli_and_exits_cleanly_on_sigterm() {
    let port = free_port();
    let mut p = start(&["--port", &port.to_string(), "--bind", "127.0.0.1"], port);
    assert_eq!(raw_line(port, b"PING\r\n").unwrap(), "+PONG\r\n");
    if redis_cli_available() {
        assert_eq!(redis_cli(port, &["PING"]), "PONG\n");
        assert_eq!(
            redis_cli(port, &["CL.THROTTLE", "user123", "15", "30", "60"]),
            "0\n16\n15\n-1\n2\n"
        );
        assert_eq!(redis_cli(port, &["SET", "k", "v"]), "OK\n");
        assert_eq!(redis_cli(port, &["GET", "k"]), "v\n");
        assert_eq!(redis_cli(port, &["GET", "missing"]), "\n");
    } else {
        eprintln!("note: redis-cli is not on PATH; skipping the redis-cli checks");
    }
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert!(
        raw_line(p.port, b"PING\r\n").is_err(),
        "nothing listens after exit"
    );
}

#[test]
fn exits_cleanly_on_sigint() {
    let port = free_port();
    let mut p = start(&["--bind", "127.0.0.1", "--port", &port.to_string()], port);
    let status = signal_and_wait(&mut p, "-INT");
    assert!(status.success(), "exit after SIGINT: {status}");
}

#[test]
fn exits_cleanly_after_the_shutdown_command() {
    let port = free_port();
    let mut p = start(&["--port", &port.to_string(), "--bind", "127.0.0.1"], port);
    assert_eq!(raw_line(port, b"SHUTDOWN\r\n").unwrap(), "");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SHUTDOWN");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn reads_its_settings_from_a_config_file() {
    let dir = common::temp_dir();
    let port = free_port();
    let path = dir.path().join("limitkv.conf");
    std::fs::write(
        &path,
        format!(
            "# limitkv test config\nport {port}\nbind 127.0.0.1\nrequirepass \"s3cret\"\n\
             maxclients 7\nsave \"\"\n"
        ),
    )
    .unwrap();
    let mut p = start(&["--config", path.to_str().unwrap()], port);
    assert_eq!(
        raw_line(port, b"GET k\r\n").unwrap(),
        "-NOAUTH Authentication required.\r\n"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"AUTH s3cret\r\nCONFIG GET maxclients\r\n")
        .unwrap();
    let want = b"+OK\r\n*2\r\n$10\r\nmaxclients\r\n$1\r\n7\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    drop(s);
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "{status}");
}

#[test]
fn flags_override_the_config_file() {
    let dir = common::temp_dir();
    let file_port = free_port();
    let port = free_port();
    let path = dir.path().join("limitkv.conf");
    std::fs::write(&path, format!("port {file_port}\nbind 127.0.0.1\n")).unwrap();
    let mut p = start(&[path.to_str().unwrap(), "--port", &port.to_string()], port);
    assert_eq!(raw_line(port, b"PING\r\n").unwrap(), "+PONG\r\n");
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "{status}");
}

#[test]
fn an_unknown_flag_fails_with_a_message_on_stderr() {
    let out = run_to_exit(&["--no-such-flag"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn a_bad_flag_value_fails_with_a_message_on_stderr() {
    let out = run_to_exit(&["--port", "notaport"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("notaport"));

    let out = run_to_exit(&["--port", "0", "--hz", "0"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hz must be between 1 and 500"), "{err}");
}

#[test]
fn an_unknown_subcommand_fails_with_a_clear_error() {
    let out = run_to_exit(&["frobnicate"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
    // Not read as a config file path.
    assert!(!err.contains("cannot read config file"), "{err}");

    let out = run_to_exit(&["aof", "mend", "x"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognized subcommand 'mend'"), "{err}");
}

#[test]
fn a_config_file_path_without_the_conf_suffix_still_starts_the_server() {
    let dir = common::temp_dir();
    let port = free_port();
    let path = dir.path().join("settings");
    std::fs::write(&path, format!("port {port}\nbind 127.0.0.1\n")).unwrap();
    let mut p = start(&[path.to_str().unwrap()], port);
    assert_eq!(raw_line(port, b"PING\r\n").unwrap(), "+PONG\r\n");
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "{status}");

    // A missing file ending in .conf is still a config file, with the config file's error.
    let out = run_to_exit(&[dir.path().join("gone.conf").to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gone.conf"), "{err}");
}

#[test]
fn a_bad_config_file_fails_with_the_line_on_stderr() {
    let dir = common::temp_dir();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "port 0\nfrobnicate 3\n").unwrap();
    let out = run_to_exit(&["--config", path.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("frobnicate"),
        "{err}"
    );

    let missing = dir.path().join("missing.conf");
    let out = run_to_exit(&["--config", missing.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.conf"), "{err}");
}

#[test]
fn a_port_in_use_fails_with_a_message_on_stderr() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_to_exit(&["--port", &port, "--bind", "127.0.0.1"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port), "{err}");
    drop(taken);
}

#[test]
fn one_worker_still_answers_busy_and_script_kill_while_a_script_loops() {
    // With `--threads 1` the only worker runs the script; it hands its queue to a new thread
    // after a millisecond, so other clients are still read and answered.
    let port = free_port();
    let mut p = start(
        &[
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--threads",
            "1",
        ],
        port,
    );
    assert_eq!(
        raw_line(port, b"CONFIG SET busy-reply-threshold 100\r\n").unwrap(),
        "+OK\r\n"
    );
    let looping = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"EVAL \"while true do end\" 0\r\n").unwrap();
        read_line(&mut s).unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = raw_line(port, b"PING\r\n").unwrap();
        if line.starts_with("-BUSY") {
            break;
        }
        assert_eq!(line, "+PONG\r\n", "before the threshold, PING is answered");
        assert!(Instant::now() < deadline, "never saw -BUSY");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw_line(port, b"SCRIPT KILL\r\n").unwrap(), "+OK\r\n");
    let killed = looping.join().unwrap();
    assert!(
        killed.starts_with("-ERR Script killed by user with SCRIPT KILL"),
        "{killed}"
    );
    assert_eq!(raw_line(port, b"PING\r\n").unwrap(), "+PONG\r\n");
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn appendfsync_always_preallocates_while_running_and_trims_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let aof = dir.path().join("appendonly.aof");
    let dir_arg = dir.path().to_str().unwrap();
    let port = free_port();
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir_arg,
    ];
    let mut p = start(&args, port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 1..=20 {
        s.write_all(b"INCR n\r\n").unwrap();
        assert_eq!(read_line(&mut s).unwrap(), format!(":{i}\r\n"));
    }
    // Running: the file reaches well past its records, in zeros.
    let running = std::fs::read(&aof).unwrap();
    assert!(running.len() >= 4 << 20, "{} bytes", running.len());
    assert!(running[running.len() - 4096..].iter().all(|&b| b == 0));
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
    // Stopped cleanly: trimmed to its last record.
    let len = std::fs::metadata(&aof).unwrap().len();
    assert!(len < 4096, "{len} bytes after a clean stop");
    let check = Command::new(BIN)
        .args(["aof", "check"])
        .arg(&aof)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");
    assert!(report.ends_with("AOF is valid\n"), "{report}");
    let port = free_port();
    let mut args = args;
    let port_arg = port.to_string();
    args[1] = &port_arg;
    let mut p = start(&args, port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET n\r\n").unwrap();
    assert_eq!(read_line(&mut s).unwrap(), "$2\r\n");
    assert_eq!(read_line(&mut s).unwrap(), "20\r\n");
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// Sends `words` as one RESP request and reads one reply line.
fn command_line(s: &mut TcpStream, words: &[&str]) -> String {
    s.write_all(&common::resp(words)).unwrap();
    read_line(s).unwrap()
}

/// Sends `INFO section` and returns the value of `field`.
fn info_field(s: &mut TcpStream, section: &str, field: &str) -> String {
    s.write_all(&common::resp(&["INFO", section])).unwrap();
    let header = read_line(s).unwrap();
    let len: usize = header.trim()[1..].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    s.read_exact(&mut body).unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn maxmemory_refuses_growth_past_the_limit_and_keeps_what_is_stored() {
    let dir = common::temp_dir();
    let port = free_port();
    let path = dir.path().join("limitkv.conf");
    // A stock redis.conf's memory lines start the server.
    std::fs::write(
        &path,
        format!("port {port}\nbind 127.0.0.1\nmaxmemory 0\nmaxmemory-policy noeviction\n"),
    )
    .unwrap();
    let mut p = start(&[path.to_str().unwrap()], port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let throttle = |s: &mut TcpStream, key: &str| {
        let first = command_line(s, &["CL.THROTTLE", key, "10", "1", "60"]);
        if first == "*5\r\n" {
            for _ in 0..5 {
                read_line(s).unwrap();
            }
        }
        first
    };
    assert_eq!(throttle(&mut s, "bucket"), "*5\r\n");
    assert_eq!(info_field(&mut s, "memory", "mem_allocator"), "mimalloc");
    let used: u64 = info_field(&mut s, "memory", "used_memory").parse().unwrap();
    let limit = used + (8 << 20);
    assert_eq!(
        command_line(&mut s, &["CONFIG", "SET", "maxmemory", &limit.to_string()]),
        "+OK\r\n"
    );
    // Fill with 64 KiB values until the server refuses (bounded: 2,000 values are 125 MiB).
    let value = "x".repeat(64 * 1024);
    let mut stored = 0;
    let mut refused = None;
    for i in 0..2000 {
        let reply = command_line(&mut s, &["SET", &format!("key{i}"), &value]);
        match reply.as_str() {
            "+OK\r\n" => stored += 1,
            _ => {
                refused = Some(reply);
                break;
            }
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("-OOM command not allowed when used memory > 'maxmemory'.\r\n"),
        "after {stored} values"
    );
    assert!(stored >= 16, "only {stored} values fit in 8 MiB");
    // The limiter still decides for the keys it has; a new bucket would grow memory.
    assert_eq!(throttle(&mut s, "bucket"), "*5\r\n");
    assert!(throttle(&mut s, "new-bucket").starts_with("-OOM"));
    // Nothing stored was lost.
    assert_eq!(
        command_line(&mut s, &["DBSIZE"]),
        format!(":{}\r\n", stored + 1)
    );
    for i in [0, stored / 2, stored - 1] {
        assert_eq!(
            command_line(&mut s, &["STRLEN", &format!("key{i}")]),
            ":65536\r\n"
        );
    }
    assert_eq!(info_field(&mut s, "memory", "oom_refusing_writes"), "1");
    assert_eq!(info_field(&mut s, "errorstats", "errorstat_OOM"), "count=2");
    // Lifting the limit lets writes in again.
    assert_eq!(
        command_line(&mut s, &["CONFIG", "SET", "maxmemory", "0"]),
        "+OK\r\n"
    );
    assert_eq!(command_line(&mut s, &["SET", "after", "1"]), "+OK\r\n");
    drop(s);
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "{status}");
}
