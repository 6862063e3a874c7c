//! Authentication of HTTP requests against the ACL users, for every route but `/healthz`.
//!
//! While the `default` user authenticates every connection (enabled, `nopass`), requests need
//! no credentials and run as `default`, as RESP connections do. Otherwise:
//! - `Authorization: Bearer <password>` authenticates `default` (what Upstash-style clients
//!   send as their token); `Bearer <user>:<password>` authenticates `user` when such a user
//!   exists (a wrong password is refused even while `default` needs none);
//! - `Authorization: Basic base64(<user>:<password>)` authenticates `user` (browsers, the
//!   dashboard, `curl -u`).
//!
//! A missing header answers 401 with `NOAUTH Authentication required.` and a
//! `WWW-Authenticate: Basic realm="limitkv"` challenge; wrong credentials answer 401 with
//! `WRONGPASS ...` and are recorded in the `ACL LOG` like a failed `AUTH`. The authenticated
//! user travels with the request (an [`HttpUser`] extension) for routes to check commands and
//! keys against.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

use crate::acl::{Denial, LogContext, User};
use crate::cmd::Shared;
use crate::error::CommandError;

/// The ACL user a request authenticated as.
#[derive(Debug, Clone)]
pub struct HttpUser(pub Arc<User>);

impl HttpUser {
    /// The user [`require`] attached to a request of an authenticated route; a 500 if it is
    /// missing (a route mounted outside the middleware).
    pub fn of(ext: &axum::http::Extensions) -> Result<Arc<User>, Response> {
        match ext.get::<HttpUser>() {
            Some(HttpUser(user)) => Ok(user.clone()),
            None => Err(super::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "request without an authenticated user",
            )),
        }
    }
}

/// Credentials a request carried.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    /// `Bearer <password>` for `default`, or `Bearer <user>:<password>`.
    Bearer(String),
    /// `Basic` user and password.
    Basic(String, String),
    /// A header that is neither (or not decodable).
    Malformed,
}

/// Reads the `Authorization` header.
pub fn credentials(value: Option<&HeaderValue>) -> Credentials {
    let Some(value) = value else {
        return Credentials::None;
    };
    let Ok(text) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Credentials::Bearer(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            return Credentials::Basic(user.to_owned(), pass.to_owned());
        }
    }
    Credentials::Malformed
}

/// The user `credentials` authenticate, if any.
pub fn authenticate(shared: &Shared, credentials: &Credentials) -> Result<Arc<User>, String> {
    let acl = &shared.acl;
    let check = |name: &str, pass: &str| {
        acl.user(name)
            .filter(|u| u.accepts(pass.as_bytes()))
            .ok_or_else(|| name.to_owned())
    };
    match credentials {
        // `user:password` naming an existing user is that user's credentials, even while
        // `default` is `nopass` (which accepts any password): a wrong password for `user` must
        // not run as `default` instead. A `default` password that looks like `user:password`
        // still authenticates `default`.
        Credentials::Bearer(token) => match token.split_once(':') {
            Some((user, pass)) if acl.user(user).is_some() => check(user, pass).or_else(|e| {
                if acl.default_user().nopass {
                    Err(e)
                } else {
                    check("default", token).map_err(|_| e)
                }
            }),
            _ => check("default", token),
        },
        Credentials::Basic(user, pass) => check(user, pass),
        Credentials::None | Credentials::Malformed => Err("default".to_owned()),
    }
}

/// The middleware: lets the request through with its [`HttpUser`], or answers 401.
pub async fn require(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let given = credentials(req.headers().get(header::AUTHORIZATION));
    let outcome = if given == Credentials::None && shared.acl.default_is_open() {
        Ok(shared.acl.default_user())
    } else {
        authenticate(&shared, &given)
    };
    match outcome {
        Ok(user) => {
            req.extensions_mut().insert(HttpUser(user));
            next.run(req).await
        }
        Err(tried) => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            let message = if given == Credentials::None {
                CommandError::NoAuth.to_string()
            } else {
                shared.acl.log(
                    Denial::Auth,
                    LogContext::Toplevel,
                    "HTTP",
                    &tried,
                    format!("addr={peer} http {} {}", req.method(), req.uri().path()),
                    shared.engine.clock.now().as_millis(),
                );
                CommandError::WrongPass.to_string()
            };
            let mut response = super::error(StatusCode::UNAUTHORIZED, message);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"limitkv\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_are_read_like_their_schemes_say() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(credentials(None), Credentials::None);
        assert_eq!(
            credentials(Some(&h("Bearer s3cret"))),
            Credentials::Bearer("s3cret".into())
        );
        // "app:pw"
        assert_eq!(
            credentials(Some(&h("Basic YXBwOnB3"))),
            Credentials::Basic("app".into(), "pw".into())
        );
        for bad in ["Basic !!!", "Basic YXBw", "Digest x", "Bearer"] {
            assert_eq!(credentials(Some(&h(bad))), Credentials::Malformed, "{bad}");
        }
    }
}
