//! The TLS port as operators and clients use it: the `limitkv` binary started with `tls-*`
//! flags, certificates made by the test with the openssl CLI, and real clients — redis-cli
//! `--tls`, redis-rs over `rediss://`, and a bare rustls client for the failure cases (no
//! client certificate, wrong protocol version, reloaded certificates).
//!
//! Tests that need a missing tool (openssl, redis-cli) print why and pass.

mod common;

use common::free_port;
use common::pki::{Pki, CLIENT_EXT, SERVER_EXT};

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_limitkv");

/// Longest a test waits for one reply or handshake.
const WAIT: Duration = Duration::from_secs(10);

/// A started server process; killed on drop if a test failed before stopping it.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    /// Sends SIGTERM and waits (at most 10 s) for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for limitkv") {
                assert!(status.success(), "exit after SIGTERM: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "limitkv still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
/// `N` distinct free ports (see [`common::free_port`]: successive calls never repeat one).
fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

/// Starts the binary with `args` and waits (at most 10 s) until `port` accepts connections.
fn start(args: &[&str], port: u16) -> Proc {
    let child = Command::new(BIN)
        .args(["--bind", "127.0.0.1"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn limitkv");
    let mut p = Proc { child };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = p.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("limitkv exited early ({status}): {err}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return p;
        }
        assert!(Instant::now() < deadline, "limitkv not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary with `args` until it exits (it is expected to fail at start).
fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn limitkv");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("limitkv {args:?} kept running instead of failing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A rustls client configuration trusting `ca`, presenting `client` (cert, key) if given,
/// limited to `versions`.
fn client_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    #[allow(deprecated)] // the server's provider too (see src/tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("valid versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("read the client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("a client certificate");
            let key = PrivateKeyDer::from_pem_file(key).expect("read the client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a usable client certificate")
        }
        None => builder.with_no_client_auth(),
    })
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects and handshakes (bounded).
async fn tls_connect(port: u16, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").expect("a valid server name");
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("the handshake ends within the bound")
}

/// Sends `request` and reads until `want` bytes came (or the stream ended or failed): the
/// bytes read, or the error.
async fn exchange<S>(s: &mut S, request: &[u8], want: usize) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(request).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        let text = || String::from_utf8_lossy(&out).into_owned();
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => return Err(format!("no reply within {WAIT:?}: {:?}", text())),
            Ok(Ok(0)) => return Err(format!("connection closed after {:?}", text())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

/// The length of the complete RESP reply at the start of `buf`, if it is all there.
fn complete(buf: &[u8]) -> Option<usize> {
    let nl = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = nl + 2;
    let n = || -> i64 { String::from_utf8_lossy(&buf[1..nl]).parse().unwrap_or(-1) };
    match buf.first()? {
        b'$' if n() >= 0 => {
            let end = head + n() as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'%' => {
            let items = if buf[0] == b'%' { 2 * n() } else { n() };
            let mut pos = head;
            for _ in 0..items.max(0) {
                pos += complete(&buf[pos..])?;
            }
            Some(pos)
        }
        _ => Some(head),
    }
}

/// Sends a command and reads its one reply, as text.
async fn call<S>(s: &mut S, args: &[&str]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(&common::resp(args)).await.expect("send");
    s.flush().await.expect("flush");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while complete(&out).is_none() {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!("{args:?}: no complete reply ({other:?}): {out:?}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects, handshakes and PINGs: `Ok` with the reply, or what failed.
async fn tls_ping(port: u16, config: Arc<rustls::ClientConfig>) -> Result<String, String> {
    let mut s = tls_connect(port, config).await.map_err(|e| e.to_string())?;
    let reply = exchange(&mut s, b"PING\r\n", 7).await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

fn both() -> Vec<&'static rustls::SupportedProtocolVersion> {
    vec![&rustls::version::TLS12, &rustls::version::TLS13]
}

fn redis_cli_tls() -> bool {
    let help = Command::new("redis-cli").arg("--help").output();
    let ok = help.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--tls"));
    if !ok {
        eprintln!("note: redis-cli with TLS support is not on PATH; skipping the redis-cli checks");
    }
    ok
}

fn redis_cli(args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(args)
        .output()
        .expect("run redis-cli")
}

#[test]
fn redis_cli_needs_a_client_certificate_when_tls_auth_clients_is_yes() {
    let Some(pki) = Pki::new() else { return };
    if !redis_cli_tls() {
        return;
    }
    let [port, tls_port] = free_ports();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(pki.server_args(tls_port, "yes"));
    let p = start(&strs(&args), tls_port);
    let (tp, ca, cert, key) = (
        tls_port.to_string(),
        pki.p("ca.crt"),
        pki.p("client.crt"),
        pki.p("client.key"),
    );
    let with_cert = |cmd: &[&str]| {
        let mut a = vec![
            "-p", &tp, "--tls", "--cacert", &ca, "--cert", &cert, "--key", &key,
        ];
        a.extend_from_slice(cmd);
        redis_cli(&a)
    };
    let out = with_cert(&["PING"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PONG\n", "{out:?}");
    let out = with_cert(&["CL.THROTTLE", "user123", "15", "30", "60"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0\n16\n15\n-1\n2\n",
        "{out:?}"
    );
    // Without a certificate the server ends the handshake: no PONG.
    let out = redis_cli(&["-p", &tp, "--tls", "--cacert", &ca, "PING"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("PONG"),
        "refused without a certificate: {text}"
    );
    // The plain port serves as before.
    let out = redis_cli(&["-p", &port.to_string(), "PING"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PONG\n");
    p.stop();
}

#[test]
fn redis_cli_over_tls_only_with_port_0() {
    let Some(pki) = Pki::new() else { return };
    if !redis_cli_tls() {
        return;
    }
    let tls_port = free_port();
    let mut args = vec!["--port".to_string(), "0".to_string()];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let (tp, ca) = (tls_port.to_string(), pki.p("ca.crt"));
    let cli = |cmd: &[&str]| {
        let mut a = vec!["-p", &tp, "--tls", "--cacert", &ca];
        a.extend_from_slice(cmd);
        let out = redis_cli(&a);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    // INFO's tcp_port is the TLS port when there is no plain one, as in Redis.
    assert!(
        cli(&["INFO", "server"]).contains(&format!("tcp_port:{tls_port}\r\n")),
        "INFO server names the TLS port"
    );
    assert_eq!(cli(&["CONFIG", "GET", "port"]), "port\n0\n");
    assert_eq!(
        cli(&["CONFIG", "GET", "tls-port"]),
        format!("tls-port\n{tls_port}\n")
    );
    assert_eq!(
        cli(&["CONFIG", "GET", "tls-auth-clients"]),
        "tls-auth-clients\nno\n"
    );
    p.stop();
}

#[tokio::test]
async fn redis_rs_runs_cl_throttle_and_a_pipeline_over_rediss() {
    let Some(pki) = Pki::new() else { return };
    let [port, tls_port] = free_ports();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(pki.server_args(tls_port, "yes"));
    let p = start(&strs(&args), tls_port);
    let certs = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: std::fs::read(pki.path("client.crt")).unwrap(),
            client_key: std::fs::read(pki.path("client.key")).unwrap(),
        }),
        root_cert: Some(std::fs::read(pki.path("ca.crt")).unwrap()),
    };
    let client = redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{tls_port}/?protocol=resp3"),
        certs,
    )
    .expect("a rediss client");
    let mut con = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
        .await
        .expect("connects within the bound")
        .expect("connects over TLS");
    let decision: Vec<i64> = redis::cmd("CL.THROTTLE")
        .arg("user123")
        .arg(15)
        .arg(30)
        .arg(60)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(decision, vec![0, 16, 15, -1, 2]);
    let mut pipe = redis::pipe();
    for _ in 0..100 {
        pipe.cmd("INCR").arg("hits");
    }
    pipe.cmd("CL.THROTTLE")
        .arg("user123")
        .arg(15)
        .arg(30)
        .arg(60);
    let (counts, last): (Vec<i64>, Vec<i64>) = {
        let all: Vec<redis::Value> = pipe.query_async(&mut con).await.unwrap();
        let counts = all[..100]
            .iter()
            .map(|v| redis::from_redis_value_ref(v).unwrap())
            .collect();
        (counts, redis::from_redis_value_ref(&all[100]).unwrap())
    };
    assert_eq!(counts, (1..=100).collect::<Vec<i64>>());
    assert_eq!(last[..3], [0, 16, 14]);
    let mut plain = common::redis_connect(&format!("redis://127.0.0.1:{port}/")).await;
    let hits: i64 = redis::cmd("GET")
        .arg("hits")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(hits, 100, "the plain port sees what the TLS client wrote");
    p.stop();
}

#[tokio::test]
async fn client_certificates_are_required_optional_or_ignored_as_configured() {
    let Some(pki) = Pki::new() else { return };
    // A certificate from a CA the server does not trust.
    pki.ca("other-ca");
    pki.cert("stranger", "other-ca", CLIENT_EXT);
    let ca = pki.path("ca.crt");
    let (cert, key) = (pki.path("client.crt"), pki.path("client.key"));
    let (s_cert, s_key) = (pki.path("stranger.crt"), pki.path("stranger.key"));
    let anonymous = client_config(&ca, None, &both());
    let signed = client_config(&ca, Some((&cert, &key)), &both());
    let stranger = client_config(&ca, Some((&s_cert, &s_key)), &both());
    let anonymous12 = client_config(&ca, None, &[&rustls::version::TLS12]);
    for (auth, anonymous_ok) in [("yes", false), ("optional", true), ("no", true)] {
        let tls_port = free_port();
        let mut args = vec!["--port".to_string(), "0".to_string()];
        args.extend(pki.server_args(tls_port, auth));
        let p = start(&strs(&args), tls_port);
        assert_eq!(
            tls_ping(tls_port, signed.clone()).await.as_deref(),
            Ok("+PONG\r\n"),
            "tls-auth-clients {auth}: a certificate signed by the CA is accepted"
        );
        let anon = tls_ping(tls_port, anonymous.clone()).await;
        assert_eq!(
            anon.is_ok(),
            anonymous_ok,
            "tls-auth-clients {auth}, no certificate (TLS 1.3): {anon:?}"
        );
        let anon12 = tls_ping(tls_port, anonymous12.clone()).await;
        assert_eq!(
            anon12.is_ok(),
            anonymous_ok,
            "tls-auth-clients {auth}, no certificate (TLS 1.2): {anon12:?}"
        );
        if !anonymous_ok {
            let e = anon.unwrap_err();
            assert!(
                e.contains("CertificateRequired") || e.contains("closed"),
                "{e}"
            );
        }
        // A certificate the CA did not sign is refused unless certificates are ignored.
        let s = tls_ping(tls_port, stranger.clone()).await;
        assert_eq!(
            s.is_ok(),
            auth == "no",
            "tls-auth-clients {auth}, stranger: {s:?}"
        );
        p.stop();
    }
}

#[tokio::test]
async fn plain_text_on_the_tls_port_and_tls_on_the_plain_port_fail_clearly() {
    let Some(pki) = Pki::new() else { return };
    let [port, tls_port] = free_ports();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let config = client_config(&pki.path("ca.crt"), None, &both());
    // A silent client and a half-finished handshake hold no one up: the handshake happens
    // off the accept loop.
    let _silent = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x50])
        .await
        .unwrap();
    // Plain text on the TLS port: the server answers with a TLS alert (never a RESP reply)
    // and closes.
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let got = exchange(&mut plain, b"PING\r\n", usize::MAX)
        .await
        .unwrap_err();
    assert!(got.contains("closed") || got.contains("reset"), "{got}");
    assert!(!got.contains("PONG"), "{got}");
    // TLS on the plain port: a protocol error in plain text, which the TLS client reports
    // as a failed handshake at once (not a hang until its timeout).
    let started = Instant::now();
    let e = tls_connect(port, config.clone()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed at once: {e}"
    );
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
    let reply = exchange(&mut raw, &hello, usize::MAX).await.unwrap_err();
    assert!(
        reply.contains("TLS handshake on a plain-text port"),
        "{reply}"
    );
    // Everyone else is served, on both ports.
    assert_eq!(
        tls_ping(tls_port, config.clone()).await.as_deref(),
        Ok("+PONG\r\n")
    );
    let mut ok = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(
        exchange(&mut ok, b"PING\r\n", 7).await.unwrap(),
        b"+PONG\r\n"
    );
    p.stop();
}

#[tokio::test]
async fn config_set_reloads_certificates_for_new_connections_and_keeps_them_on_failure() {
    let Some(pki) = Pki::new() else { return };
    pki.ca("ca2");
    pki.cert("server2", "ca2", SERVER_EXT);
    let [port, tls_port] = free_ports();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let trusts_ca = client_config(&pki.path("ca.crt"), None, &both());
    let trusts_ca2 = client_config(&pki.path("ca2.crt"), None, &both());
    let mut admin = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut old = tls_connect(tls_port, trusts_ca.clone()).await.unwrap();
    assert!(tls_connect(tls_port, trusts_ca2.clone()).await.is_err());

    let set = [
        "CONFIG",
        "SET",
        "tls-cert-file",
        &pki.p("server2.crt"),
        "tls-key-file",
        &pki.p("server2.key"),
    ];
    assert_eq!(call(&mut admin, &set).await, "+OK\r\n");
    assert_eq!(
        tls_ping(tls_port, trusts_ca2.clone()).await.as_deref(),
        Ok("+PONG\r\n")
    );
    let e = tls_ping(tls_port, trusts_ca.clone()).await.unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    // An established connection keeps its session.
    assert_eq!(
        exchange(&mut old, b"PING\r\n", 7).await.unwrap(),
        b"+PONG\r\n"
    );

    // A missing file, a key that does not match, and a file that is no certificate: each is
    // an error, and the certificate in force stays.
    let bogus = pki.path("bogus.crt");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    for (name, value) in [
        ("tls-cert-file", pki.p("missing.crt")),
        ("tls-key-file", pki.p("server.key")),
        ("tls-cert-file", bogus.display().to_string()),
    ] {
        let line = call(&mut admin, &["CONFIG", "SET", name, &value]).await;
        assert!(
            line.starts_with(&format!(
                "-ERR CONFIG SET failed (possibly related to argument '{name}') - Unable to update TLS configuration"
            )),
            "CONFIG SET {name} {value}: {line}"
        );
        assert_eq!(
            tls_ping(tls_port, trusts_ca2.clone()).await.as_deref(),
            Ok("+PONG\r\n"),
            "after a failed CONFIG SET {name} the reloaded certificate stays in force"
        );
    }
    let want = format!(
        "*2\r\n$13\r\ntls-cert-file\r\n${}\r\n{}\r\n",
        pki.p("server2.crt").len(),
        pki.p("server2.crt")
    );
    assert_eq!(
        call(&mut admin, &["CONFIG", "GET", "tls-cert-file"]).await,
        want,
        "a failed CONFIG SET leaves the setting as it was"
    );
    p.stop();
}

#[test]
fn a_missing_or_bad_certificate_fails_the_start_naming_the_file() {
    let Some(pki) = Pki::new() else { return };
    let port = free_port().to_string();
    let missing = pki.p("missing.crt");
    let out = run_to_exit(&[
        "--port",
        &port,
        "--tls-port",
        &free_port().to_string(),
        "--tls-cert-file",
        &missing,
        "--tls-key-file",
        &pki.p("server.key"),
        "--tls-auth-clients",
        "no",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Failed to load certificate: {missing}")),
        "{err}"
    );
    // The client's key does not match the server's certificate.
    let out = run_to_exit(&[
        "--port",
        &port,
        "--tls-port",
        &free_port().to_string(),
        "--tls-cert-file",
        &pki.p("server.crt"),
        "--tls-key-file",
        &pki.p("client.key"),
        "--tls-auth-clients",
        "no",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Failed to load private key: {}",
            pki.p("client.key")
        )),
        "{err}"
    );
    // Verifying clients needs a CA.
    let out = run_to_exit(&[
        "--port",
        &port,
        "--tls-port",
        &free_port().to_string(),
        "--tls-cert-file",
        &pki.p("server.crt"),
        "--tls-key-file",
        &pki.p("server.key"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls-ca-cert-file or tls-ca-cert-dir"), "{err}");
}

#[tokio::test]
async fn tls_protocols_limits_the_versions_offered() {
    let Some(pki) = Pki::new() else { return };
    let tls_port = free_port();
    let mut args = vec![
        "--port".to_string(),
        "0".to_string(),
        "--tls-protocols".to_string(),
        "TLSv1.3".to_string(),
    ];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let ca = pki.path("ca.crt");
    let v13 = client_config(&ca, None, &[&rustls::version::TLS13]);
    let v12 = client_config(&ca, None, &[&rustls::version::TLS12]);
    assert_eq!(tls_ping(tls_port, v13).await.as_deref(), Ok("+PONG\r\n"));
    let e = tls_ping(tls_port, v12).await.unwrap_err();
    assert!(
        e.contains("ProtocolVersion") || e.contains("version"),
        "{e}"
    );
    p.stop();
}

#[tokio::test]
async fn tls_clients_get_pubsub_transactions_aof_always_client_kill_and_maxclients() {
    let Some(pki) = Pki::new() else { return };
    let dir = common::temp_dir();
    let [port, tls_port] = free_ports();
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "--appendonly".into(),
        "yes".into(),
        "--appendfsync".into(),
        "always".into(),
        "--dir".into(),
        dir.path().display().to_string(),
        "--maxclients".into(),
        "4".into(),
    ];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let config = client_config(&pki.path("ca.crt"), None, &both());
    let mut sub = tls_connect(tls_port, config.clone()).await.unwrap();
    let mut pubr = tls_connect(tls_port, config.clone()).await.unwrap();
    let want = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    assert_eq!(
        exchange(&mut sub, &common::resp(&["SUBSCRIBE", "ch"]), want.len())
            .await
            .unwrap(),
        want
    );
    // A pipeline of writes under appendfsync always, then a transaction, then a publish.
    let mut batch = Vec::new();
    for _ in 0..50 {
        batch.extend(common::resp(&["INCR", "n"]));
    }
    batch.extend(common::resp(&["MULTI"]));
    batch.extend(common::resp(&["INCR", "n"]));
    batch.extend(common::resp(&["GET", "n"]));
    batch.extend(common::resp(&["EXEC"]));
    batch.extend(common::resp(&["PUBLISH", "ch", "hello"]));
    let mut want = String::new();
    for i in 1..=50 {
        want.push_str(&format!(":{i}\r\n"));
    }
    want.push_str("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:51\r\n$2\r\n51\r\n:1\r\n");
    let got = exchange(&mut pubr, &batch, want.len()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
    let msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
    assert_eq!(exchange(&mut sub, b"", msg.len()).await.unwrap(), msg);
    // CLIENT LIST shows TLS clients; CLIENT KILL closes one.
    let mut admin = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let list = call(&mut admin, &["CLIENT", "LIST"]).await;
    let sub_id = list
        .lines()
        .find(|l| l.contains("cmd=subscribe"))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("the subscriber is listed: {list}"))
        .to_owned();
    assert_eq!(
        call(&mut admin, &["CLIENT", "KILL", "ID", &sub_id]).await,
        ":1\r\n"
    );
    let e = exchange(&mut sub, b"", 1).await.unwrap_err();
    assert!(
        e.contains("closed") || e.contains("reset") || e.contains("eof"),
        "{e}"
    );
    let deadline = Instant::now() + WAIT;
    while !call(&mut admin, &["INFO", "clients"])
        .await
        .contains("connected_clients:2\r\n")
    {
        assert!(
            Instant::now() < deadline,
            "the killed client is unregistered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // maxclients 4: admin, pubr, and two more; the fifth gets the refusal through TLS.
    let _third = tls_connect(tls_port, config.clone()).await.unwrap();
    let mut fourth = tls_connect(tls_port, config.clone()).await.unwrap();
    assert_eq!(
        exchange(&mut fourth, b"PING\r\n", 7).await.unwrap(),
        b"+PONG\r\n"
    );
    let mut fifth = tls_connect(tls_port, config.clone()).await.unwrap();
    let refusal = b"-ERR max number of clients reached\r\n";
    assert_eq!(
        exchange(&mut fifth, b"", refusal.len()).await.unwrap(),
        refusal
    );
    drop((pubr, fourth, fifth, admin));
    // Graceful shutdown with a TLS client connected, then the AOF replays the writes.
    p.stop();
    let mut args2 = args.clone();
    args2[9] = "10".into();
    let p = start(&strs(&args2), tls_port);
    let mut check = tls_connect(tls_port, config).await.unwrap();
    assert_eq!(
        exchange(&mut check, &common::resp(&["GET", "n"]), 8)
            .await
            .unwrap(),
        b"$2\r\n51\r\n"
    );
    p.stop();
}

#[tokio::test]
async fn auth_scripts_and_the_idle_timeout_work_over_tls() {
    let Some(pki) = Pki::new() else { return };
    let tls_port = free_port();
    let mut args = vec![
        "--port".to_string(),
        "0".to_string(),
        "--requirepass".into(),
        "s3cret".into(),
        "--timeout".into(),
        "1".into(),
    ];
    args.extend(pki.server_args(tls_port, "no"));
    let p = start(&strs(&args), tls_port);
    let config = client_config(&pki.path("ca.crt"), None, &both());
    let mut c = tls_connect(tls_port, config.clone()).await.unwrap();
    assert!(call(&mut c, &["PING"]).await.starts_with("-NOAUTH"));
    assert_eq!(call(&mut c, &["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(
        call(
            &mut c,
            &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "k"]
        )
        .await,
        ":1\r\n"
    );
    // A client that says nothing is closed after `timeout` seconds, as on the plain port.
    let mut idle = tls_connect(tls_port, config).await.unwrap();
    let started = Instant::now();
    let e = exchange(&mut idle, b"", 1).await.unwrap_err();
    assert!(e.contains("closed"), "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    p.stop();
}
