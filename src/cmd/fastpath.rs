//! Running the recognised library scripts natively (the fast path; the recognition, Lua's
//! number rules and the scripts' own decisions are [`crate::script::known`]).
//!
//! `EVAL` and `EVALSHA` look the script's SHA1 up first ([`find`](crate::script::known::find)). A recognised script runs
//! as Rust under the locks of its declared keys only (a Lua script locks the whole database),
//! issuing the same commands in the same order through the same handlers as the Lua text, so its
//! reply, its keyspace effects and their journal records are the ones Lua would produce.
//! Everything that could make the Lua version raise an error or depend on Lua's number parsing
//! in ways this code does not reproduce (a key of another type, a counter that is not an
//! integer, an argument like `0x10` or `1e3`) is checked before the first write; in any such
//! case [`run`] answers `None` and the caller runs the script in Lua. The scripts, their
//! origin and their semantics are recorded in `tests/compat/scripts/`.

use bytes::Bytes;

use super::args::parse_i64;
use super::counters::current_int;
use super::keys::pttl_of_live;
use super::{lookup, CommandSpec, Ctx};
use crate::protocol::Frame;
use crate::script::known::{
    fmt_g, int_arg, lua_arg as arg, lua_int, lua_number, moving_window_oldest,
    moving_window_refuses, rate_limit_redis_window, sliding_window_expiry, sliding_window_refuses,
    sliding_window_rolls, whole, Known, MovingWindowAcquire, MovingWindowStats, Routine,
    SlidingWindowAcquire,
};
use crate::store::Value;

/// Runs `known` natively, or answers `None` when the Lua version must run instead (see the
/// module docs). `read_only_call` is true for `EVALSHA_RO` / `EVAL_RO`.
pub fn run(
    ctx: &mut Ctx<'_>,
    known: &Known,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only_call: bool,
) -> Option<Frame> {
    // A user with ACL restrictions runs the Lua version, whose every `redis.call` is checked
    // against its rules as Redis checks it.
    if !ctx.session.user.selector.is_unrestricted() {
        return None;
    }
    if keys.len() != known.keys || argv.len() < known.args {
        return None;
    }
    if !known.read_only {
        // Under MISCONF, on a read-only replica or without enough replicas, the Lua version
        // gives the exact per-command error.
        if read_only_call
            || ctx.shared.engine.aof.get().is_some_and(|w| !w.healthy())
            || ctx.shared.repl.check_write().is_err()
        {
            return None;
        }
    }
    if ctx.locked.is_some() {
        // Inside EXEC: the transaction already holds every shard.
        return answer(ctx, known, keys, argv);
    }
    let guard = ctx.db().lock_keys(keys);
    let mut inner = Ctx {
        shared: ctx.shared,
        session: &mut *ctx.session,
        now: ctx.now,
        locked: Some(guard),
    };
    answer(&mut inner, known, keys, argv)
}

/// The routine of `known`, under the locks [`run`] took.
fn answer(ctx: &mut Ctx<'_>, known: &Known, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let sha = known.sha;
    match known.routine {
        Routine::RlfIncrTtl => rlf_incr_ttl(ctx, sha, keys, argv),
        Routine::RlrIncrement => rlr_increment(ctx, sha, keys, argv),
        Routine::RlrGet => rlr_get(ctx, keys),
        Routine::LimitsIncrExpire => limits_incr_expire(ctx, keys, argv),
        Routine::LimitsAcquireMovingWindow => limits_acquire_moving_window(ctx, keys, argv),
        Routine::LimitsMovingWindow => limits_moving_window(ctx, keys, argv),
        Routine::LimitsAcquireSlidingWindow => limits_acquire_sliding_window(ctx, sha, keys, argv),
        Routine::LimitsSlidingWindow => limits_sliding_window(ctx, keys, argv),
    }
}

// --- helpers ---------------------------------------------------------------------------------

/// What a key holds, as the scripts' preconditions need it.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Absent,
    /// A string; `int` is its value when Redis would read it as an integer.
    Str {
        bytes: Bytes,
        int: Option<i64>,
    },
    /// A string stored as an integer (its digits are made only if a script returns them).
    Int(i64),
    List,
    Other,
}

fn held(ctx: &mut Ctx<'_>, key: &[u8]) -> Held {
    let now = ctx.now;
    ctx.with_shard(key, |s| {
        let e = s.get_live(key, now);
        match e.map(|e| &e.value) {
            None => Held::Absent,
            Some(Value::Int(n)) => Held::Int(*n),
            Some(Value::Str(b)) => Held::Str {
                bytes: Bytes::clone(b),
                // INCR's reading of the string, from INCR's own code.
                int: current_int(e).ok(),
            },
            Some(Value::List(_)) => Held::List,
            Some(_) => Held::Other,
        }
    })
}

/// What `GET key` and `PTTL key` answer, read under one lock; `None` when the key holds
/// another type than a string (GET's WRONGTYPE: the script then runs in Lua). Counts nothing:
/// see [`count_get_and_pttl`].
fn get_and_pttl(ctx: &mut Ctx<'_>, key: &[u8]) -> Option<(Frame, i64)> {
    let now = ctx.now;
    ctx.with_shard(key, |s| match s.get_live(key, now) {
        None => Some((Frame::Null, -2)),
        Some(e) => Some((
            Frame::Bulk(e.value.string_bytes()?),
            pttl_of_live(e.expires_at(), now),
        )),
    })
}

/// Counts the GET (a hit or a miss) and the PTTL that [`get_and_pttl`] stands for.
fn count_get_and_pttl(ctx: &mut Ctx<'_>, value: &Frame) {
    let stats = &mut ctx.session.stats;
    stats.commands += 2;
    if matches!(value, Frame::Null) {
        stats.misses += 1;
    } else {
        stats.hits += 1;
    }
}

/// One argument of a command a script issues: static words and the script's own keys and
/// arguments are shared, not copied.
trait IntoArg {
    fn into_arg(self) -> Bytes;
}

impl<const N: usize> IntoArg for &'static [u8; N] {
    fn into_arg(self) -> Bytes {
        Bytes::from_static(self)
    }
}

impl IntoArg for &Bytes {
    fn into_arg(self) -> Bytes {
        self.clone()
    }
}

impl IntoArg for Bytes {
    fn into_arg(self) -> Bytes {
        self
    }
}

impl IntoArg for String {
    fn into_arg(self) -> Bytes {
        Bytes::from(self)
    }
}

/// `call!(ctx, b"SET", key, ...)`: runs one command the way `redis.call` does inside the
/// script (see [`call_args`]).
macro_rules! call {
    ($ctx:expr, $name:expr $(, $a:expr)* $(,)?) => {
        call_args($ctx, spec!($name), &[IntoArg::into_arg($name) $(, IntoArg::into_arg($a))*])
    };
}

/// `spec!(b"LPUSH")`: the command's table entry, looked up once per use site.
macro_rules! spec {
    ($name:expr) => {{
        static SPEC: std::sync::OnceLock<&'static CommandSpec> = std::sync::OnceLock::new();
        *SPEC.get_or_init(|| lookup($name).expect("invariant: fast paths call existing commands"))
    }};
}

/// Runs one command the way `redis.call` does inside the script: same handlers, same locks.
fn call_args(ctx: &mut Ctx<'_>, spec: &CommandSpec, req: &[Bytes]) -> Frame {
    debug_assert!(spec.arity_ok(req.len()));
    ctx.session.stats.commands += 1;
    let reply = match super::keyspace_events::run_handler(ctx, spec, req) {
        Ok(f) => f,
        Err(e) => e.to_frame(),
    };
    // Shown as the Lua version's `redis.call`s are: after the script's line, as `[0 lua]`.
    if ctx.shared.monitors.is_active() && super::monitor::shown(spec) {
        super::monitor::feed(ctx, req, super::monitor::Origin::Lua);
    }
    reply
}

/// The integer of an integer reply. Every call whose reply is read this way was checked to
/// succeed beforehand; a surprise becomes the script error Lua would raise.
fn int_reply(f: Frame, known: &str, line: u32) -> Result<i64, Frame> {
    match f {
        Frame::Integer(n) => Ok(n),
        Frame::Error(e) => Err(script_error(&e, known, line)),
        other => Err(script_error(
            format!("ERR unexpected reply {other:?}").as_bytes(),
            known,
            line,
        )),
    }
}

/// A failed `redis.call` as Redis 7.0 reports it: the error, then the script and line.
fn script_error(err: &[u8], sha: &str, line: u32) -> Frame {
    let text = String::from_utf8_lossy(err);
    Frame::Error(Bytes::from(format!(
        "{text} script: {sha}, on @user_script:{line}."
    )))
}

/// An integer reply element as the script returns it.
fn lua_int_frame(n: i64) -> Frame {
    Frame::Integer(lua_int(n))
}

fn array(items: Vec<Frame>) -> Frame {
    Frame::Array(items)
}

// --- rate-limiter-flexible -------------------------------------------------------------------

/// ```lua
/// redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX') local consumed = redis.call('incrby',
/// KEYS[1], ARGV[1]) local ttl = redis.call('pttl', KEYS[1]) if ttl == -1 then
/// redis.call('expire', KEYS[1], ARGV[2]) ttl = 1000 * ARGV[2] end return {consumed, ttl}
/// ```
fn rlf_incr_ttl(ctx: &mut Ctx<'_>, sha: &str, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let key = &keys[0];
    let points = parse_i64(&argv[0])?;
    let secs = parse_i64(&argv[1]).filter(|s| (1..=1_000_000_000_000).contains(s))?;
    let start = match held(ctx, key) {
        Held::Absent => 0,
        Held::Str { int: Some(n), .. } | Held::Int(n) => n,
        _ => return None,
    };
    start.checked_add(points)?;
    call!(ctx, b"SET", key, b"0", b"EX", &argv[1], b"NX");
    let consumed = match int_reply(call!(ctx, b"INCRBY", key, &argv[0]), sha, 1) {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    let mut ttl = match int_reply(call!(ctx, b"PTTL", key), sha, 1) {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    if ttl == -1 {
        call!(ctx, b"EXPIRE", key, &argv[1]);
        ttl = 1000 * secs;
    }
    Some(array(vec![lua_int_frame(consumed), lua_int_frame(ttl)]))
}

// --- rate-limit-redis (express-rate-limit) ---------------------------------------------------

/// ```lua
/// local windowMs = tonumber(ARGV[1])
/// local timeToExpire = redis.call("PTTL", KEYS[1])
/// if timeToExpire <= 0 then
/// redis.call("SET", KEYS[1], 1, "PX", windowMs)
/// return { 1, windowMs }
/// end
/// local totalHits = redis.call("INCR", KEYS[1])
/// return { totalHits, timeToExpire }
/// ```
fn rlr_increment(ctx: &mut Ctx<'_>, sha: &str, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let key = &keys[0];
    let window = rate_limit_redis_window(argv)?;
    let now = ctx.now;
    // The PTTL and, for the INCR branch, the integer held: one lookup.
    let (ttl, int) = ctx.with_shard(key, |s| match s.get_live(key, now) {
        None => (-2, None),
        Some(e) => (pttl_of_live(e.expires_at(), now), current_int(Some(e)).ok()),
    });
    if ttl > 0 && int.is_none_or(|n| n == i64::MAX) {
        // INCR would fail: let Lua raise its error (nothing is counted or written yet).
        return None;
    }
    // The script's PTTL call.
    ctx.session.stats.commands += 1;
    if ttl <= 0 {
        call!(ctx, b"SET", key, b"1", b"PX", arg(window as f64));
        return Some(array(vec![Frame::Integer(1), Frame::Integer(window)]));
    }
    let hits = match int_reply(call!(ctx, b"INCR", key), sha, 7) {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    Some(array(vec![lua_int_frame(hits), lua_int_frame(ttl)]))
}

/// ```lua
/// local totalHits = redis.call("GET", KEYS[1])
/// local timeToExpire = redis.call("PTTL", KEYS[1])
/// return { totalHits, timeToExpire }
/// ```
fn rlr_get(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> Option<Frame> {
    let (hits, ttl) = get_and_pttl(ctx, &keys[0])?;
    count_get_and_pttl(ctx, &hits);
    Some(array(vec![hits, lua_int_frame(ttl)]))
}

// --- limits (Python) -------------------------------------------------------------------------

/// ```lua
/// local current
/// local amount = tonumber(ARGV[2])
/// current = redis.call("incrby", KEYS[1], amount)
/// if tonumber(current) == amount then
///     redis.call("expire", KEYS[1], ARGV[1])
/// end
/// return current
/// ```
fn limits_incr_expire(ctx: &mut Ctx<'_>, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let key = &keys[0];
    let amount = whole(lua_number(&argv[1])?)?;
    parse_i64(&argv[0]).filter(|s| s.abs() <= 1_000_000_000_000)?;
    // `amount` is whole and below 2^53: `%.17g` prints its digits. A failing INCRBY (wrong
    // type, not an integer, overflow) writes nothing: the script then runs in Lua, which
    // reports the error with its line; the failed call is not counted twice.
    let current = match call!(ctx, b"INCRBY", key, int_arg(amount, &argv[1])) {
        Frame::Integer(n) => n,
        _ => {
            ctx.session.stats.commands -= 1;
            return None;
        }
    };
    // `tonumber(current) == amount` compares two doubles.
    if current as f64 == amount as f64 {
        call!(ctx, b"EXPIRE", key, &argv[0]);
    }
    Some(lua_int_frame(current))
}

/// ```lua
/// local timestamp = tonumber(ARGV[1]); local limit = tonumber(ARGV[2])
/// local expiry = tonumber(ARGV[3]); local amount = tonumber(ARGV[4])
/// if amount > limit then return false end
/// local entry = redis.call('lindex', KEYS[1], limit - amount)
/// if entry and tonumber(entry) >= timestamp - expiry then return false end
/// (LPUSH timestamp `amount` times, 5000 per call)
/// redis.call('ltrim', KEYS[1], 0, limit - 1)
/// redis.call('expire', KEYS[1], expiry)
/// return true
/// ```
fn limits_acquire_moving_window(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
) -> Option<Frame> {
    let key = &keys[0];
    let a = MovingWindowAcquire::parse(argv)?;
    let MovingWindowAcquire {
        timestamp,
        limit,
        expiry,
        amount,
    } = a;
    if a.exceeds_limit() {
        return Some(Frame::Null);
    }
    match held(ctx, key) {
        Held::Absent | Held::List => {}
        _ => return None,
    }
    let entry = match call!(ctx, b"LINDEX", key, arg(a.probe_index() as f64)) {
        Frame::Null => None,
        Frame::Bulk(b) => Some(lua_number(&b)?),
        _ => return None,
    };
    if moving_window_refuses(entry, timestamp, expiry) {
        return Some(Frame::Null);
    }
    let stamp = Bytes::from(arg(timestamp));
    let mut push: Vec<Bytes> = Vec::with_capacity(2 + amount as usize);
    push.push(Bytes::from_static(b"LPUSH"));
    push.push(key.clone());
    push.extend(std::iter::repeat_n(stamp, amount as usize));
    call_args(ctx, spec!(b"LPUSH"), &push);
    call!(ctx, b"LTRIM", key, b"0", arg((limit - 1) as f64));
    call!(ctx, b"EXPIRE", key, arg(expiry as f64));
    Some(Frame::Integer(1))
}

/// ```lua
/// local len = tonumber(ARGV[2]); local expiry = tonumber(ARGV[1])
/// (binary search over LINDEX 0 .. len-1 for the last entry >= expiry)
/// if index then return {tostring(oldest), index + 1} end
/// ```
fn limits_moving_window(ctx: &mut Ctx<'_>, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let key = &keys[0];
    let MovingWindowStats { target, len } = MovingWindowStats::parse(argv)?;
    match held(ctx, key) {
        Held::Absent | Held::List => {}
        _ => return None,
    }
    let probe = |ctx: &mut Ctx<'_>, i: i64| -> Option<Option<f64>> {
        match call!(ctx, b"LINDEX", key, arg(i as f64)) {
            Frame::Null => Some(None),
            Frame::Bulk(b) => lua_number(&b).map(Some),
            _ => None,
        }
    };
    let found = moving_window_oldest(len, target, |i| probe(ctx, i))?;
    let Some((index, _)) = found else {
        // The script returns nothing: a nil reply.
        return Some(Frame::Null);
    };
    // The script reads the entry again; nothing can change it under the lock.
    let oldest = probe(ctx, index)??;
    Some(array(vec![
        Frame::Bulk(Bytes::from(fmt_g(oldest, 14))),
        Frame::Integer(index + 1),
    ]))
}

/// The state of one sliding-window counter key: absent, or a string Lua reads as a number.
fn counter(ctx: &mut Ctx<'_>, key: &[u8]) -> Option<Held> {
    match held(ctx, key) {
        // Integer digits always read as a Lua number.
        h @ (Held::Absent | Held::Int(_)) => Some(h),
        Held::Str { bytes, int } => {
            lua_number(&bytes)?;
            Some(Held::Str { bytes, int })
        }
        _ => None,
    }
}

fn get_number(f: &Frame) -> Option<f64> {
    match f {
        Frame::Null => Some(0.0),
        Frame::Bulk(b) => lua_number(b),
        _ => None,
    }
}

/// ```lua
/// local limit = tonumber(ARGV[1]); local expiry = tonumber(ARGV[2]) * 1000
/// local amount = tonumber(ARGV[3])
/// if amount > limit then return false end
/// local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
/// if current_ttl > 0 and current_ttl < expiry then
///     redis.call('rename', KEYS[2], KEYS[1])
///     redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
/// end
/// (previous/current counts and TTLs; weighted = floor(pc * pt / expiry) + cc)
/// if (weighted_count + amount) > limit then return false end
/// EXISTS KEYS[2] ? INCRBY KEYS[2] amount : SET KEYS[2] amount PX expiry * 2
/// return true
/// ```
fn limits_acquire_sliding_window(
    ctx: &mut Ctx<'_>,
    sha: &str,
    keys: &[Bytes],
    argv: &[Bytes],
) -> Option<Frame> {
    let (prev, curr) = (&keys[0], &keys[1]);
    let a = SlidingWindowAcquire::parse(argv)?;
    let SlidingWindowAcquire {
        limit,
        expiry,
        amount,
    } = a;
    if a.exceeds_limit() {
        return Some(Frame::Null);
    }
    // Everything that could fail is checked before the first write.
    let prev_held = counter(ctx, prev)?;
    let curr_held = counter(ctx, curr)?;
    let current_ttl = int_reply(call!(ctx, b"PTTL", curr), sha, 11).ok()?;
    let rolls = sliding_window_rolls(current_ttl, expiry);
    let incr_base = if rolls {
        Some(0)
    } else {
        match &curr_held {
            Held::Absent => None,
            Held::Str { int: Some(n), .. } | Held::Int(n) => Some(*n),
            _ => return None,
        }
    };
    if let Some(n) = incr_base {
        n.checked_add(amount)?;
    }
    if rolls && prev != curr {
        call!(ctx, b"RENAME", curr, prev);
        call!(
            ctx,
            b"SET",
            curr,
            b"0",
            b"PX",
            arg((current_ttl + expiry) as f64),
        );
    } else if rolls {
        return None;
    }
    let _ = prev_held;
    let previous_count = get_number(&call!(ctx, b"GET", prev))?;
    let previous_ttl = int_reply(call!(ctx, b"PTTL", prev), sha, 19).ok()?.max(0);
    let current_count = get_number(&call!(ctx, b"GET", curr))?;
    let _current_ttl = int_reply(call!(ctx, b"PTTL", curr), sha, 21).ok()?;
    if sliding_window_refuses(
        previous_count,
        previous_ttl,
        current_count,
        expiry,
        amount,
        limit,
    ) {
        return Some(Frame::Null);
    }
    let exists = int_reply(call!(ctx, b"EXISTS", curr), sha, 38).ok()?;
    if exists == 1 {
        let r = call!(ctx, b"INCRBY", curr, arg(amount as f64));
        if let Frame::Error(e) = r {
            return Some(script_error(&e, sha, 39));
        }
    } else {
        call!(
            ctx,
            b"SET",
            curr,
            arg(amount as f64),
            b"PX",
            arg((expiry * 2) as f64),
        );
    }
    Some(Frame::Integer(1))
}

/// ```lua
/// local expiry = tonumber(ARGV[1]) * 1000
/// (GET and PTTL of both keys; the same roll-over as the acquire script, then read again)
/// return {previous_count, previous_ttl, current_count, current_ttl}
/// ```
fn limits_sliding_window(ctx: &mut Ctx<'_>, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    let (prev, curr) = (&keys[0], &keys[1]);
    let expiry = sliding_window_expiry(argv)?;
    // GET and PTTL of both keys, as the script's four calls answer them (PTTL through a Lua
    // number); `None` (a key of another type) before anything is counted.
    let read = |ctx: &mut Ctx<'_>| {
        let (p, c) = (get_and_pttl(ctx, prev)?, get_and_pttl(ctx, curr)?);
        for (value, _) in [&p, &c] {
            count_get_and_pttl(ctx, value);
        }
        Some([p, c])
    };
    let [(pv, pt), (cv, ct)] = read(ctx)?;
    let reply = |[(pv, pt), (cv, ct)]: [(Frame, i64); 2]| {
        array(vec![pv, lua_int_frame(pt), cv, lua_int_frame(ct)])
    };
    if sliding_window_rolls(ct, expiry) {
        if prev == curr {
            return None;
        }
        call!(ctx, b"RENAME", curr, prev);
        call!(ctx, b"SET", curr, b"0", b"PX", arg((ct + expiry) as f64));
        // Both keys hold strings now (the renamed counter and the new "0"), so this read
        // cannot fall back to Lua after the writes.
        return Some(reply(read(ctx)?));
    }
    Some(reply([(pv, pt), (cv, ct)]))
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
