//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET and CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::{dispatch_sub, help_reply, ClientInfo, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::protocol::{Frame, RespVersion};
use crate::version::REDIS_COMPAT_VERSION;

/// Connection commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "PING",
        arity: -1,
        flags: FAST | PUBSUB_CONTEXT,
        group: "connection",
        summary: "Returns the server's liveliness response.",
        args: "[message:string]",
        handler: ping,
        ..BASE
    },
    CommandSpec {
        name: "ECHO",
        arity: 2,
        flags: FAST | STALE | LOADING,
        group: "connection",
        summary: "Returns the given string.",
        args: "message:string",
        handler: |_, req| Ok(Frame::Bulk(req[1].clone())),
        ..BASE
    },
    CommandSpec {
        name: "HELLO",
        arity: -1,
        flags: FAST | NOSCRIPT | LOADING | STALE | NO_AUTH | ALLOW_BUSY,
        group: "connection",
        summary:
            "Handshakes with the server, optionally authenticating and choosing RESP2 or RESP3.",
        since: "6.0.0",
        args:
            "[protover:integer [AUTH username:string password:string] [SETNAME clientname:string]]",
        handler: hello,
        ..BASE
    },
    CommandSpec {
        name: "AUTH",
        arity: -2,
        flags: FAST | NOSCRIPT | LOADING | STALE | NO_AUTH | ALLOW_BUSY,
        group: "connection",
        summary: "Authenticates the connection.",
        args: "[username:string] password:string",
        handler: auth,
        ..BASE
    },
    CommandSpec {
        name: "SELECT",
        arity: 2,
        flags: FAST | LOADING | STALE | SELECTS_DB,
        group: "connection",
        summary: "Changes the selected database.",
        args: "index:integer",
        handler: select,
        ..BASE
    },
    CommandSpec {
        name: "QUIT",
        arity: -1,
        flags: FAST
            | NOSCRIPT
            | LOADING
            | STALE
            | NO_AUTH
            | ALLOW_BUSY
            | TX_CONTROL
            | PUBSUB_CONTEXT,
        group: "connection",
        summary: "Closes the connection.",
        handler: |ctx, _| {
            ctx.session.close_after_reply = true;
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        name: "RESET",
        arity: 1,
        flags: FAST
            | NOSCRIPT
            | LOADING
            | STALE
            | NO_AUTH
            | ALLOW_BUSY
            | TX_CONTROL
            | PUBSUB_CONTEXT,
        group: "connection",
        summary: "Resets the connection: RESP2, no name, and unauthenticated if a password is set.",
        since: "6.2.0",
        handler: reset,
        ..BASE
    },
    CommandSpec {
        name: "CLIENT",
        arity: -2,
        flags: 0,
        group: "connection",
        summary: "A container for client connection commands.",
        since: "2.4.0",
        complexity: "Depends on subcommand.",
        subcommands: CLIENT_SUBCOMMANDS,
        handler: dispatch_sub,
        ..BASE
    },
];

const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ID",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns the unique client ID of the connection.",
        since: "5.0.0",
        handler: |ctx, _| Ok(Frame::Integer(ctx.session.info.id as i64)),
        ..BASE
    },
    CommandSpec {
        name: "SETNAME",
        arity: 3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Sets the connection name.",
        since: "2.6.9",
        args: "connection-name:string",
        handler: client_setname,
        ..BASE
    },
    CommandSpec {
        name: "GETNAME",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns the name of the connection.",
        since: "2.6.9",
        handler: |ctx, _| Ok(ctx.session.info.name.lock().clone().map_or(Frame::Null, Frame::Bulk)),
        ..BASE
    },
    CommandSpec {
        name: "SETINFO",
        arity: 4,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Sets information specific to the client library.",
        since: "7.2.0",
        args: "attr=(LIB-NAME libname:string|LIB-VER libver:string)",
        handler: client_setinfo,
        ..BASE
    },
    CommandSpec {
        name: "LIST",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Lists open connections.",
        since: "2.4.0",
        complexity: "O(N) where N is the number of client connections",
        args: "[TYPE client-type:string] [ID client-id:integer...]",
        handler: client_list,
        ..BASE
    },
    CommandSpec {
        name: "INFO",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns information about the connection.",
        since: "6.2.0",
        handler: |ctx, _| {
            let line = format!("{}\n", ctx.session.info.describe());
            Ok(Frame::Verbatim("txt", Bytes::from(line)))
        },
        ..BASE
    },
    CommandSpec {
        name: "KILL",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Terminates open connections.",
        since: "2.4.0",
        complexity: "O(N) where N is the number of client connections",
        args: "filter=(old-format:string|([ID client-id:integer] [TYPE client-type:string] [USER username:string] [ADDR ip-port:string] [LADDR ip-port:string] [SKIPME yes-no:string] [MAXAGE maxage:integer])...)",
        handler: client_kill,
        ..BASE
    },
    CommandSpec {
        name: "REPLY",
        arity: 3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Instructs the server whether to reply to commands.",
        since: "3.2.0",
        args: "action=(ON|OFF|SKIP)",
        handler: client_reply,
        ..BASE
    },
    CommandSpec {
        name: "UNBLOCK",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Unblocks a client blocked by a blocking command from a different connection.",
        since: "5.0.0",
        complexity: "O(log N) where N is the number of client connections",
        args: "client-id:integer [unblock-type=(TIMEOUT|ERROR)]",
        handler: client_unblock,
        ..BASE
    },
    CommandSpec {
        name: "NO-EVICT",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Sets the client eviction mode of the connection (recorded as flag e; limitkv never evicts clients).",
        since: "7.0.0",
        args: "enabled=(ON|OFF)",
        handler: super::client_pause::client_no_evict,
        ..BASE
    },
    CommandSpec {
        name: "PAUSE",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Suspends commands processing.",
        since: "3.0.0",
        args: "timeout:integer [mode=(WRITE|ALL)]",
        handler: super::client_pause::client_pause,
        ..BASE
    },
    CommandSpec {
        name: "UNPAUSE",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Resumes processing commands from paused clients.",
        since: "6.2.0",
        handler: super::client_pause::client_unpause,
        ..BASE
    },
    CommandSpec {
        name: "NO-TOUCH",
        arity: 3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Controls whether commands sent by the client affect key access times (accepted; limitkv keeps no access times).",
        since: "7.2.0",
        args: "enabled=(ON|OFF)",
        handler: on_off,
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "CLIENT",
                &[
                    "GETNAME", "    Return the name of the current connection.",
                    "ID", "    Return the ID of the current connection.",
                    "INFO", "    Return information about the current client connection.",
                    "KILL <ip:port>", "    Kill connection made from <ip:port>.",
                    "KILL <option> <value> [<option> <value> [...]]",
                    "    Kill connections. Options are: ID, TYPE, USER, ADDR, LADDR, SKIPME, MAXAGE.",
                    "LIST [TYPE <type>] [ID <id> [<id> ...]]", "    Return information about client connections.",
                    "SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                    "SETNAME <name>", "    Assign the name <name> to the current connection.",
                    "NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
                    "PAUSE <timeout> [WRITE|ALL]", "    Suspend all, or just write, clients for <timeout> milliseconds.",
                    "UNPAUSE", "    Stop the current client pause, resuming traffic.",
                    "NO-TOUCH (ON|OFF)", "    Accepted for compatibility.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

fn ping(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 2 {
        return Err(CommandError::WrongArity("ping".into()));
    }
    // A subscribed RESP2 connection can only read arrays, so Redis answers `[pong, message]`.
    if ctx.session.pubsub_mode && ctx.session.resp == RespVersion::Resp2 {
        let message = req.get(1).cloned().unwrap_or_default();
        return Ok(Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"pong")),
            Frame::Bulk(message),
        ]));
    }
    match req.len() {
        1 => Ok(Frame::simple("PONG")),
        _ => Ok(Frame::Bulk(req[1].clone())),
    }
}

/// Redis refuses names with spaces, newlines or other characters outside `!`..`~`.
fn valid_name(b: &[u8]) -> bool {
    b.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn auth(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let (user, pass) = if req.len() == 3 {
        (&req[1][..], &req[2][..])
    } else {
        // The one-argument form authenticates the default user, and is an error while that
        // user needs no password (Redis's wording).
        if ctx.shared.acl.default_user().nopass {
            return Err(CommandError::other(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ));
        }
        (&b"default"[..], &req[1][..])
    };
    super::permissions::authenticate(ctx, user, pass, &req[0])?;
    Ok(Frame::OK)
}

fn hello(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut version = ctx.session.resp;
    let mut setname = None;
    let mut i = 1;
    if req.len() > 1 {
        let v = args::parse_i64(&req[1]).ok_or_else(|| {
            CommandError::other("Protocol version is not an integer or out of range")
        })?;
        version = match v {
            2 => RespVersion::Resp2,
            3 => RespVersion::Resp3,
            _ => {
                return Err(CommandError::Coded(
                    "NOPROTO unsupported protocol version".into(),
                ))
            }
        };
        i = 2;
    }
    let mut credentials = None;
    while i < req.len() {
        let more = req.len() - i - 1;
        if is(&req[i], "AUTH") && more >= 2 {
            credentials = Some((&req[i + 1][..], &req[i + 2][..]));
            i += 3;
        } else if is(&req[i], "SETNAME") && more >= 1 {
            setname = Some(req[i + 1].clone());
            i += 2;
        } else {
            return Err(CommandError::other(format!(
                "Syntax error in HELLO option '{}'",
                args::text(&req[i])
            )));
        }
    }
    if let Some((user, pass)) = credentials {
        super::permissions::authenticate(ctx, user, pass, &req[0])?;
    }
    if !ctx.session.authenticated {
        return Err(CommandError::Coded(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        ));
    }
    if let Some(name) = setname {
        if !valid_name(&name) {
            return Err(CommandError::other(
                "Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        *ctx.session.info.name.lock() = (!name.is_empty()).then_some(name);
    }
    ctx.session.resp = version;
    let proto = if version == RespVersion::Resp3 { 3 } else { 2 };
    ctx.session.info.resp.store(proto, Ordering::Relaxed);
    let b = |s: &str| Frame::bulk(s);
    Ok(Frame::Map(vec![
        (b("server"), b("redis")),
        (b("version"), b(REDIS_COMPAT_VERSION)),
        (b("proto"), Frame::Integer(i64::from(proto))),
        (b("id"), Frame::Integer(ctx.session.info.id as i64)),
        (b("mode"), b("standalone")),
        (
            b("role"),
            b(if ctx.shared.repl.is_replica() {
                "replica"
            } else {
                "master"
            }),
        ),
        (b("modules"), Frame::Array(vec![])),
    ]))
}

fn select(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let n = args::parse_i64(&req[1]).ok_or(CommandError::NotAnInteger)?;
    if n != 0 && ctx.shared.cluster.is_enabled() {
        return Err(CommandError::other("SELECT is not allowed in cluster mode"));
    }
    match usize::try_from(n) {
        Ok(db) if db < ctx.shared.engine.dbs.len() => {
            ctx.session.db = db;
            ctx.session.info.db.store(db as u32, Ordering::Relaxed);
            Ok(Frame::OK)
        }
        _ => Err(CommandError::other("DB index is out of range")),
    }
}

fn reset(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    super::monitor::leave(ctx);
    super::pubsub::leave(ctx);
    ctx.session.db = 0;
    ctx.session.info.db.store(0, Ordering::Relaxed);
    ctx.session.multi = None;
    ctx.session.multi_error = false;
    super::multi::unwatch_all(ctx.shared, ctx.session);
    ctx.session.cluster_readonly = false;
    ctx.session.cluster_asking = false;
    ctx.session.resp = RespVersion::Resp2;
    ctx.session.info.resp.store(2, Ordering::Relaxed);
    *ctx.session.info.name.lock() = None;
    super::permissions::reset_user(ctx);
    Ok(Frame::simple("RESET"))
}

fn client_setname(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let name = &req[2];
    if !valid_name(name) {
        return Err(CommandError::other(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    *ctx.session.info.name.lock() = (!name.is_empty()).then(|| name.clone());
    Ok(Frame::OK)
}

fn client_setinfo(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (attr, slot) = if is(&req[2], "LIB-NAME") {
        ("lib-name", &ctx.session.info.lib_name)
    } else if is(&req[2], "LIB-VER") {
        ("lib-ver", &ctx.session.info.lib_ver)
    } else {
        return Err(CommandError::other(format!(
            "Unrecognized option '{}'",
            args::text(&req[2])
        )));
    };
    if !valid_name(&req[3]) {
        return Err(CommandError::other(format!(
            "{attr} cannot contain spaces, newlines or special characters."
        )));
    }
    *slot.lock() = (!req[3].is_empty()).then(|| req[3].clone());
    Ok(Frame::OK)
}

/// A client's type for `CLIENT LIST TYPE` / `CLIENT KILL TYPE`: `pubsub` while subscribed to
/// anything, `slave` (`replica`) for a replica's link, else `normal`. The link to this
/// server's own master is not a client here, so no client has type `master`.
fn client_type_is(c: &ClientInfo, wanted: &[u8]) -> bool {
    if c.is_replica.load(Ordering::Relaxed) {
        return is(wanted, "slave") || is(wanted, "replica");
    }
    let pubsub = c.pubsub.total() > 0;
    (is(wanted, "pubsub") && pubsub) || (is(wanted, "normal") && !pubsub)
}

fn client_list(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut ids: Option<Vec<u64>> = None;
    let mut client_type: Option<&Bytes> = None;
    let mut a = args::Args::new(req, 2);
    while let Some(opt) = a.next() {
        if is(opt, "TYPE") {
            let t = a.value()?;
            if !(is(t, "normal")
                || is(t, "master")
                || is(t, "replica")
                || is(t, "slave")
                || is(t, "pubsub"))
            {
                return Err(CommandError::other(format!(
                    "Unknown client type '{}'",
                    args::text(t)
                )));
            }
            client_type = Some(t);
        } else if is(opt, "ID") {
            let mut v = Vec::new();
            while let Some(id) = a.next() {
                match args::parse_i64(id) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Err(CommandError::other("Invalid client ID")),
                }
            }
            if v.is_empty() {
                return Err(CommandError::Syntax);
            }
            ids = Some(v);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut out = String::new();
    for c in ctx.shared.clients.snapshot() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id))
            || client_type.is_some_and(|t| !client_type_is(&c, t))
        {
            continue;
        }
        out.push_str(&c.describe());
        out.push('\n');
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

/// `CLIENT REPLY ON|OFF|SKIP`: `OK` for `ON`; `OFF` and `SKIP` are not answered (the
/// connection applies the mode, see `ReplyMode`).
fn client_reply(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    use super::context::ReplyMode;
    let mode = &req[2];
    ctx.session.reply_mode = if super::args::is(mode, "ON") {
        ReplyMode::On
    } else if super::args::is(mode, "OFF") {
        ReplyMode::Off
    } else if super::args::is(mode, "SKIP") {
        ReplyMode::SkipThisAndNext
    } else {
        return Err(CommandError::Syntax);
    };
    Ok(Frame::OK)
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: 1 if the client was blocked (it then gets its timeout
/// reply, or the `UNBLOCKED` error), else 0.
fn client_unblock(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = super::args::int(&req[2])?;
    let error = match req.get(3) {
        None => false,
        Some(w) if req.len() == 4 && super::args::is(w, "TIMEOUT") => false,
        Some(w) if req.len() == 4 && super::args::is(w, "ERROR") => true,
        Some(_) => {
            return Err(CommandError::other(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let Ok(id) = u64::try_from(id) else {
        return Ok(Frame::Integer(0));
    };
    let done = ctx.shared.blocked.unblock(id, |block| {
        if error {
            Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            block.timeout_reply()
        }
    });
    Ok(Frame::Integer(i64::from(done)))
}

fn client_kill(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let me = ctx.session.info.id;
    if req.len() == 3 {
        // Old form: CLIENT KILL ip:port.
        let addr = &req[2];
        let victim = ctx
            .shared
            .clients
            .snapshot()
            .into_iter()
            .find(|c| c.addr.as_bytes() == &addr[..]);
        return match victim {
            Some(c) => {
                c.kill();
                if c.id == me {
                    ctx.session.close_after_reply = true;
                }
                Ok(Frame::OK)
            }
            None => Err(CommandError::other("No such client")),
        };
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut maxage = None;
    let mut client_type: Option<&Bytes> = None;
    let mut user: Option<String> = None;
    let mut a = args::Args::new(req, 2);
    while let Some(opt) = a.next() {
        let v = a.value()?;
        if is(opt, "ID") {
            match args::parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(CommandError::other("client-id should be greater than 0")),
            }
        } else if is(opt, "ADDR") {
            addr = Some(v.clone());
        } else if is(opt, "LADDR") {
            laddr = Some(v.clone());
        } else if is(opt, "SKIPME") {
            skipme = if is(v, "yes") {
                true
            } else if is(v, "no") {
                false
            } else {
                return Err(CommandError::Syntax);
            };
        } else if is(opt, "TYPE") {
            if !["normal", "master", "slave", "replica", "pubsub"]
                .into_iter()
                .any(|t| is(v, t))
            {
                return Err(CommandError::other(format!(
                    "Unknown client type '{}'",
                    args::text(v)
                )));
            }
            client_type = Some(v);
        } else if is(opt, "USER") {
            let name = args::text(v);
            if ctx.shared.acl.user(&name).is_none() {
                return Err(CommandError::other(format!("No such user '{name}'")));
            }
            user = Some(name);
        } else if is(opt, "MAXAGE") {
            maxage = Some(args::int(v)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut killed = 0;
    for c in ctx.shared.clients.snapshot() {
        let matches = id.is_none_or(|i| i == c.id)
            && client_type.is_none_or(|t| client_type_is(&c, t))
            && addr.as_ref().is_none_or(|a| c.addr.as_bytes() == &a[..])
            && laddr.as_ref().is_none_or(|a| c.laddr.as_bytes() == &a[..])
            && maxage.is_none_or(|m| c.age_secs() as i64 >= m)
            && user.as_deref().is_none_or(|u| &**c.user.lock() == u)
            && !(skipme && c.id == me);
        if matches {
            c.kill();
            if c.id == me {
                ctx.session.close_after_reply = true;
            }
            killed += 1;
        }
    }
    Ok(Frame::Integer(killed))
}

fn on_off(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if is(&req[2], "ON") || is(&req[2], "OFF") {
        Ok(Frame::OK)
    } else {
        Err(CommandError::Syntax)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::config::Config;
    use crate::protocol::Frame;

    #[test]
    fn ping_and_echo() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["PING"]), simple("PONG"));
        assert_eq!(h.run(&["ping", "hi"]), bulk("hi"));
        assert_eq!(
            h.run(&["PING", "a", "b"]),
            err("ERR wrong number of arguments for 'ping' command")
        );
        assert_eq!(h.run(&["ECHO", "x"]), bulk("x"));
    }

    #[test]
    fn hello_switches_protocol_and_reports_the_server() {
        let mut h = Harness::new();
        let Frame::Map(m) = h.run(&["HELLO", "3"]) else {
            panic!("HELLO must answer a map")
        };
        assert_eq!(m[2], (bulk("proto"), int(3)));
        assert_eq!(h.session.resp, crate::protocol::RespVersion::Resp3);
        assert_eq!(
            h.run(&["HELLO", "4"]),
            err("NOPROTO unsupported protocol version")
        );
        assert_eq!(
            h.run(&["HELLO", "x"]),
            err("ERR Protocol version is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["HELLO", "3", "BOGUS"]),
            err("ERR Syntax error in HELLO option 'BOGUS'")
        );
    }

    #[test]
    fn password_gates_commands_until_auth() {
        let mut h = Harness::with_config(Config {
            requirepass: Some("pw".into()),
            ..Config::default()
        });
        assert_eq!(h.run(&["GET", "k"]), err("NOAUTH Authentication required."));
        assert!(
            matches!(h.run(&["HELLO", "3"]), Frame::Error(e) if e.starts_with(b"NOAUTH HELLO"))
        );
        assert_eq!(
            h.run(&["AUTH", "nope"]),
            err("WRONGPASS invalid username-password pair or user is disabled.")
        );
        assert_eq!(h.run(&["AUTH", "default", "pw"]), Frame::OK);
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["RESET"]), simple("RESET"));
        assert_eq!(h.run(&["GET", "k"]), err("NOAUTH Authentication required."));
        assert!(matches!(
            h.run(&["HELLO", "3", "AUTH", "default", "pw"]),
            Frame::Map(_)
        ));
    }

    #[test]
    fn auth_without_password_configured_is_an_error() {
        let mut h = Harness::new();
        assert!(
            matches!(h.run(&["AUTH", "x"]), Frame::Error(e) if e.starts_with(b"ERR AUTH <password> called without"))
        );
        assert_eq!(h.run(&["AUTH", "default", "anything"]), Frame::OK);
    }

    #[test]
    fn client_names_and_info() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CLIENT", "GETNAME"]), Frame::Null);
        assert_eq!(h.run(&["CLIENT", "SETNAME", "worker-1"]), Frame::OK);
        assert_eq!(h.run(&["client", "getname"]), bulk("worker-1"));
        assert_eq!(
            h.run(&["CLIENT", "SETNAME", "a b"]),
            err("ERR Client names cannot contain spaces, newlines or special characters.")
        );
        assert_eq!(
            h.run(&["CLIENT", "SETINFO", "lib-name", "redis-py"]),
            Frame::OK
        );
        assert_eq!(
            h.run(&["CLIENT", "SETINFO", "bogus", "x"]),
            err("ERR Unrecognized option 'bogus'")
        );
        let Frame::Verbatim(_, list) = h.run(&["CLIENT", "LIST"]) else {
            panic!("CLIENT LIST is verbatim text")
        };
        let list = String::from_utf8_lossy(&list).into_owned();
        assert!(list.contains("name=worker-1"), "{list}");
        assert!(list.contains("lib-name=redis-py"), "{list}");
        assert!(list.ends_with('\n'));
        assert_eq!(
            h.run(&["CLIENT", "NOPE"]),
            err("ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
        );
    }

    #[test]
    fn databases_are_separate_keyspaces() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "zero"]);
        assert_eq!(h.run(&["SELECT", "9"]), Frame::OK);
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        h.run(&["SET", "k", "nine"]);
        assert_eq!(h.run(&["DBSIZE"]), int(1));
        assert_eq!(h.run(&["SELECT", "0"]), Frame::OK);
        assert_eq!(h.run(&["GET", "k"]), bulk("zero"));
        assert_eq!(
            h.run(&["SELECT", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            h.run(&["SELECT", "-1"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(h.run(&["FLUSHALL"]), Frame::OK);
        h.run(&["SELECT", "9"]);
        assert_eq!(h.run(&["DBSIZE"]), int(0));
        assert_eq!(
            h.run(&["SELECT", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }
}
