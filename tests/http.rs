//! The HTTP listener (`http-port`) through curl, a real HTTP client: health routes, JSON
//! errors, authentication with the ACL users (Bearer and Basic), failures in the ACL LOG, and
//! HTTPS with the `tls-*` certificates.

mod common;

use common::pki::Pki;
use common::{curl, free_port, query, TestServer};
use limitkv::config::Config;

async fn with_http(config: Config) -> TestServer {
    TestServer::with_config(Config {
        http_port: free_port(),
        ..config
    })
    .await
}

#[tokio::test]
async fn health_routes_answer_json_and_unknown_routes_a_json_404() {
    let server = with_http(Config::default()).await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    let Some((code, body, _)) = curl(&format!("{base}/healthz"), &[]) else {
        return;
    };
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (code, body, _) = curl(&format!("{base}/readyz"), &[]).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains(r#""ready":true"#), "{body}");
    let (code, body, _) = curl(&format!("{base}/nope"), &[]).unwrap();
    assert_eq!((code, body.as_str()), (404, r#"{"error":"not found"}"#));
    // The RESP port keeps serving.
    let mut con = server.redis(true).await;
    assert_eq!(
        query(&mut con, &["PING"]).await,
        redis::Value::SimpleString("PONG".into())
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn routes_need_the_acl_users_credentials_once_default_has_a_password() {
    let server = with_http(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let base = format!("http://{}", server.http.unwrap());
    let ready = format!("{base}/readyz");
    // Liveness stays open; everything else asks for credentials.
    let Some((code, _, _)) = curl(&format!("{base}/healthz"), &[]) else {
        return;
    };
    assert_eq!(code, 200);
    let (code, body, headers) = curl(&ready, &[]).unwrap();
    assert_eq!(code, 401);
    assert_eq!(body, r#"{"error":"NOAUTH Authentication required."}"#);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"limitkv\""),
        "{headers}"
    );
    let (code, _, _) = curl(&format!("{base}/nope"), &[]).unwrap();
    assert_eq!(code, 401, "routes are not revealed before authentication");
    // The default user's password as a Bearer token, or Basic.
    let bearer = |token: &str| format!("Authorization: Bearer {token}");
    assert_eq!(curl(&ready, &["-H", &bearer("s3cret")]).unwrap().0, 200);
    assert_eq!(curl(&ready, &["-u", "default:s3cret"]).unwrap().0, 200);
    // An ACL user, by Basic or by `user:password` as the token.
    let mut admin = common::redis_connect(&format!(
        "redis://default:s3cret@{}/?protocol=resp3",
        server.addr
    ))
    .await;
    query(
        &mut admin,
        &["ACL", "SETUSER", "gw", "on", ">gw-pw", "+@limiter", "~*"],
    )
    .await;
    assert_eq!(curl(&ready, &["-u", "gw:gw-pw"]).unwrap().0, 200);
    assert_eq!(curl(&ready, &["-H", &bearer("gw:gw-pw")]).unwrap().0, 200);
    // Wrong credentials: 401 with WRONGPASS, recorded in the ACL LOG.
    let (code, body, _) = curl(&ready, &["-u", "gw:nope"]).unwrap();
    assert_eq!(
        (code, body.as_str()),
        (
            401,
            r#"{"error":"WRONGPASS invalid username-password pair or user is disabled."}"#
        )
    );
    let log = query(&mut admin, &["ACL", "LOG", "1"]).await;
    let text = format!("{log:?}");
    assert!(
        text.contains("auth") && text.contains("gw") && text.contains("HTTP"),
        "{text}"
    );
    // A disabled user is refused.
    query(&mut admin, &["ACL", "SETUSER", "gw", "off"]).await;
    assert_eq!(curl(&ready, &["-u", "gw:gw-pw"]).unwrap().0, 401);
    assert_eq!(
        curl(&ready, &["-H", "Authorization: Digest x"]).unwrap().0,
        401
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn https_serves_with_the_tls_certificates() {
    let Some(pki) = Pki::new() else { return };
    let server = with_http(Config {
        http_tls: true,
        tls_cert_file: Some(pki.path("server.crt")),
        tls_key_file: Some(pki.path("server.key")),
        tls_ca_cert_file: Some(pki.path("ca.crt")),
        tls_auth_clients: limitkv::config::TlsAuthClients::No,
        ..Config::default()
    })
    .await;
    let port = server.http.unwrap().port();
    let Some((code, body, _)) = curl(
        &format!("https://localhost:{port}/healthz"),
        &["--cacert", &pki.p("ca.crt")],
    ) else {
        return;
    };
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    // Plain HTTP to the HTTPS listener fails (no HTTP status), and the listener goes on.
    let (code, _, _) = curl(&format!("http://localhost:{port}/healthz"), &[]).unwrap();
    assert_eq!(code, 0);
    let (code, _, _) = curl(
        &format!("https://localhost:{port}/readyz"),
        &["--cacert", &pki.p("ca.crt")],
    )
    .unwrap();
    assert_eq!(code, 200);
    server.stop().await.unwrap();
}
