//! `MONITOR`: streams every command the server runs to the connections that asked for it.
//!
//! A monitored command becomes one status line, Redis's format:
//! `+1339518083.107412 [0 127.0.0.1:60866] "keyname" "value"` (the server clock's time in
//! seconds and microseconds, the database, the client's address or `lua` for a script's
//! `redis.call`, and the arguments quoted as Redis's `sdscatrepr` quotes them). Lines are
//! queued on each monitor's Pub/Sub queue (`ClientInfo::pubsub`, charged against the `normal`
//! output buffer limit) and written by its connection task.
//!
//! As in Redis 7.0, a command is fed after it ran (so the commands of an `EXEC` come before
//! the `EXEC`), except the script runners (`EVAL`, `FCALL`, ... flagged `skip_monitor`), which
//! are fed before they run so their `redis.call`s follow them. Administrative commands are
//! never shown, commands refused before running (unknown, arity, `NOAUTH`) and commands
//! queued by `MULTI` neither, and `AUTH` / `HELLO ... AUTH` arguments read `(redacted)`.
//!
//! Cost when nobody monitors: one relaxed atomic load per command ([`Monitors::is_active`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use super::context::ReplyMode;
use super::flags::*;
use super::{ClientInfo, CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;

/// The `MONITOR` command.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "MONITOR",
    arity: 1,
    flags: ADMIN | NOSCRIPT | LOADING | STALE,
    group: "server",
    summary: "Listens for all requests received by the server in real-time.",
    handler: monitor,
    ..BASE
}];

/// The connections in `MONITOR` mode.
#[derive(Debug, Default)]
pub struct Monitors {
    /// `list.len()`, readable without the lock: the hot path's only cost.
    count: AtomicUsize,
    list: RwLock<Vec<Arc<ClientInfo>>>,
}

impl Monitors {
    /// True while at least one connection monitors.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Adds a monitor (once).
    pub fn add(&self, info: Arc<ClientInfo>) {
        let mut list = self.list.write();
        if list.iter().all(|m| m.id != info.id) {
            list.push(info);
        }
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Removes client `id` if it monitors (`RESET`, or its connection closed).
    pub fn remove(&self, id: u64) {
        if !self.is_active() {
            return;
        }
        let mut list = self.list.write();
        list.retain(|m| m.id != id);
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Number of monitors.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nobody monitors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// ```text
/// MONITOR
/// ```
/// `+OK`, then one status line per command run by any client. Inside `EXEC`:
/// `ERR MONITOR isn't allowed for DENY BLOCKING client`. A second `MONITOR` on the same
/// connection is ignored (no reply), as in Redis.
fn monitor(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    if ctx.locked.is_some() {
        return Err(CommandError::other(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    let info = &ctx.session.info;
    if info.is_monitor() || info.is_replica.load(Ordering::Relaxed) {
        // Redis ignores it without a reply: the connection drops exactly this reply.
        if ctx.session.reply_mode == ReplyMode::On {
            ctx.session.reply_mode = ReplyMode::SkipNext;
        }
        return Ok(Frame::OK);
    }
    info.monitor.store(true, Ordering::Relaxed);
    // Lines are queued on the Pub/Sub queue, which the connection drains only once used.
    ctx.session.pubsub_used = true;
    ctx.shared.monitors.add(info.clone());
    Ok(Frame::OK)
}

/// Leaves `MONITOR` mode (`RESET`).
pub fn leave(ctx: &mut Ctx<'_>) {
    if ctx.session.info.monitor.swap(false, Ordering::Relaxed) {
        ctx.shared.monitors.remove(ctx.session.info.id);
    }
}

/// Where a fed command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's request.
    Client,
    /// A script's `redis.call` / `redis.pcall`.
    Lua,
}

/// Whether `checked` (the command, or its subcommand) is shown to monitors at all.
pub(crate) fn shown(checked: &CommandSpec) -> bool {
    !checked.has(ADMIN)
}

/// Sends `req`, run by `ctx`'s client, to every monitor. Callers check
/// [`Monitors::is_active`] first.
pub(crate) fn feed(ctx: &Ctx<'_>, req: &[Bytes], origin: Origin) {
    if ctx.session.unmonitored {
        return;
    }
    let peer = match origin {
        Origin::Client => &ctx.session.info.addr,
        Origin::Lua => "lua",
    };
    feed_line(ctx.shared, ctx.now.as_nanos(), ctx.session.db, peer, req);
}

/// Sends `req`, run at `now_ns` in database `db` by the client at `peer` (an address, or
/// `lua`), to every monitor. The HTTP check API feeds its decisions through this with the
/// request's peer address, as the command the route runs (`LIMIT.CHECK ...`).
pub fn feed_line(shared: &super::Shared, now_ns: u64, db: usize, peer: &str, req: &[Bytes]) {
    if !shared.monitors.is_active() {
        return;
    }
    let line = Bytes::from(format_line(now_ns, db, peer, req));
    let limit = shared
        .engine
        .config
        .read()
        .client_output_buffer_limit
        .normal;
    let clock = &*shared.engine.clock;
    for m in shared.monitors.list.read().iter() {
        if m.pubsub.push_line(line.clone(), &limit, clock) {
            m.output_limited.store(true, Ordering::Relaxed);
        }
    }
}

/// One monitor line without the leading `+` and the trailing CRLF.
pub fn format_line(now_ns: u64, db: usize, peer: &str, req: &[Bytes]) -> Vec<u8> {
    let secs = now_ns / 1_000_000_000;
    let micros = now_ns % 1_000_000_000 / 1_000;
    let mut out = format!("{secs}.{micros:06} [{db} {peer}] ").into_bytes();
    let redacted = redacted_args(req);
    for (i, arg) in req.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if redacted.contains(&i) {
            repr(&mut out, b"(redacted)");
        } else {
            repr(&mut out, arg);
        }
    }
    out
}

/// The argument positions Redis redacts: every argument of `AUTH`, and the user name and
/// password after `HELLO`'s `AUTH`.
fn redacted_args(req: &[Bytes]) -> Vec<usize> {
    let name = &req[0];
    if name.eq_ignore_ascii_case(b"AUTH") {
        return (1..req.len()).collect();
    }
    if !name.eq_ignore_ascii_case(b"HELLO") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut i = 2;
    while i < req.len() {
        if req[i].eq_ignore_ascii_case(b"AUTH") && i + 2 < req.len() {
            out.extend([i + 1, i + 2]);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Appends `s` quoted as Redis's `sdscatrepr`: `"` and `\` escaped, `\n \r \t \a \b` as
/// such, other bytes outside printable ASCII as `\xhh`.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => out.extend([b'\\', c]),
            b'\n' => out.extend(b"\\n"),
            b'\r' => out.extend(b"\\r"),
            b'\t' => out.extend(b"\\t"),
            0x07 => out.extend(b"\\a"),
            0x08 => out.extend(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[&[u8]]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w)).collect()
    }

    fn line(words: &[&[u8]]) -> String {
        String::from_utf8(format_line(
            1_339_518_083_107_412_345,
            0,
            "127.0.0.1:60866",
            &req(words),
        ))
        .expect("ASCII")
    }

    #[test]
    fn line_has_redis_layout() {
        assert_eq!(
            line(&[b"set", b"keyname", b"value"]),
            r#"1339518083.107412 [0 127.0.0.1:60866] "set" "keyname" "value""#
        );
        let l = format_line(5_000_123_000, 3, "lua", &req(&[b"GET", b"k"]));
        assert_eq!(l, br#"5.000123 [3 lua] "GET" "k""#);
    }

    #[test]
    fn arguments_are_quoted_like_sdscatrepr() {
        let mut out = Vec::new();
        repr(&mut out, b"a\"b\\c\n\r\t\x07\x08\x00\xff~ ");
        assert_eq!(out, br#""a\"b\\c\n\r\t\a\b\x00\xff~ ""#);
        let mut empty = Vec::new();
        repr(&mut empty, b"");
        assert_eq!(empty, b"\"\"");
    }

    #[test]
    fn auth_and_hello_credentials_are_redacted() {
        assert_eq!(
            line(&[b"auth", b"secret"]),
            r#"1339518083.107412 [0 127.0.0.1:60866] "auth" "(redacted)""#
        );
        assert_eq!(
            line(&[b"AUTH", b"alice", b"secret"]),
            r#"1339518083.107412 [0 127.0.0.1:60866] "AUTH" "(redacted)" "(redacted)""#
        );
        assert_eq!(
            line(&[b"HELLO", b"3", b"AUTH", b"alice", b"pw", b"SETNAME", b"n"]),
            r#"1339518083.107412 [0 127.0.0.1:60866] "HELLO" "3" "AUTH" "(redacted)" "(redacted)" "SETNAME" "n""#
        );
        assert_eq!(
            line(&[b"HELLO", b"3", b"SETNAME", b"AUTH"]),
            r#"1339518083.107412 [0 127.0.0.1:60866] "HELLO" "3" "SETNAME" "AUTH""#
        );
    }
}
