//! Native code for the exact Lua scripts that popular rate-limit libraries send.
//!
//! `EVAL` and `EVALSHA` look the script's SHA1 up here first ([`find`]). A recognised script runs
//! as Rust under the locks of its declared keys only (a Lua script locks the whole database),
//! issuing the same commands in the same order through the same handlers as the Lua text, so its
//! reply, its keyspace effects and their journal records are the ones Lua would produce.
//! Everything that could make the Lua version raise an error or depend on Lua's number parsing
//! in ways this code does not reproduce (a key of another type, a counter that is not an
//! integer, an argument like `0x10` or `1e3`) is checked before the first write; in any such
//! case [`run`] answers `None` and the caller runs the script in Lua. The scripts, their
//! origin and their semantics are recorded in `tests/compat/scripts/`.
//!
//! Lua numbers are doubles: an argument that went through `tonumber` reaches `redis.call` as
//! C's `%.17g` of the double ([`fmt_g`]), Lua's `tostring` prints `%.14g`, and a number in a
//! reply becomes an integer by truncation. The code below applies those rules where the scripts
//! depend on them.

use bytes::Bytes;

use super::args::parse_i64;
use super::keys::pttl_of_live;
use super::strings::current_int;
use super::{lookup, CommandSpec, Ctx};
use crate::protocol::Frame;
use crate::store::Value;

/// A recognised script.
pub struct Known {
    /// Lowercase hex SHA1 of the script text.
    pub sha: &'static str,
    /// Library and purpose, for INFO and docs.
    pub name: &'static str,
    /// How many keys it declares.
    pub keys: usize,
    /// How many arguments it reads at least.
    pub args: usize,
    /// Never writes (allowed from `EVALSHA_RO` / `EVAL_RO`).
    pub read_only: bool,
    run: fn(&mut Ctx<'_>, &[Bytes], &[Bytes]) -> Option<Frame>,
}

/// Every recognised script.
pub static KNOWN: &[Known] = &[
    Known {
        sha: "a1de965f42e177aa339706bd580f049065eca79a",
        name: "rate-limiter-flexible incr-ttl",
        keys: 1,
        args: 2,
        read_only: false,
        run: rlf_incr_ttl,
    },
    Known {
        sha: "895b92e1712734e1b464999be23953485475357b",
        name: "rate-limit-redis increment",
        keys: 1,
        args: 1,
        read_only: false,
        run: rlr_increment,
    },
    Known {
        sha: "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a",
        name: "rate-limit-redis get",
        keys: 1,
        args: 0,
        read_only: true,
        run: rlr_get,
    },
    Known {
        sha: "628bd136a573a06b346879695681af12ccef300f",
        name: "limits incr-expire",
        keys: 1,
        args: 2,
        read_only: false,
        run: limits_incr_expire,
    },
    Known {
        sha: "741eab638ba93ed71020bb821c45c022d0fa02c4",
        name: "limits acquire-moving-window",
        keys: 1,
        args: 4,
        read_only: false,
        run: limits_acquire_moving_window,
    },
    Known {
        sha: "ad795214f59fe26d6fdec07973836dd16586f5ec",
        name: "limits moving-window",
        keys: 1,
        args: 2,
        read_only: true,
        run: limits_moving_window,
    },
    Known {
        sha: "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7",
        name: "limits acquire-sliding-window",
        keys: 2,
        args: 3,
        read_only: false,
        run: limits_acquire_sliding_window,
    },
    Known {
        sha: "e7a0a27d4101baabb124af209bb0245197a359a1",
        name: "limits sliding-window",
        keys: 2,
        args: 1,
        read_only: false,
        run: limits_sliding_window,
    },
];

/// The recognised script with this SHA1 (hex, either case).
pub fn find(sha: &[u8]) -> Option<&'static Known> {
    if sha.len() != 40 {
        return None;
    }
    // Clients send the lowercase digest SCRIPT LOAD returned: one memcmp per candidate.
    KNOWN.iter().find(|k| k.sha.as_bytes() == sha).or_else(|| {
        KNOWN
            .iter()
            .find(|k| k.sha.as_bytes().eq_ignore_ascii_case(sha))
    })
}

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
        // Under MISCONF the Lua version gives the exact per-command error.
        if read_only_call || ctx.shared.engine.aof.get().is_some_and(|w| !w.healthy()) {
            return None;
        }
    }
    if ctx.locked.is_some() {
        // Inside EXEC: the transaction already holds every shard.
        return (known.run)(ctx, keys, argv);
    }
    let guard = ctx.db().lock_keys(keys);
    let mut inner = Ctx {
        shared: ctx.shared,
        session: &mut *ctx.session,
        now: ctx.now,
        locked: Some(guard),
    };
    (known.run)(&mut inner, keys, argv)
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
    ctx.with_shard(key, |s| match s.get_live(key, now).map(|e| &e.value) {
        None => Held::Absent,
        Some(Value::Int(n)) => Held::Int(*n),
        Some(Value::Str(b)) => Held::Str {
            bytes: b.clone(),
            int: parse_i64(b),
        },
        Some(Value::List(_)) => Held::List,
        Some(_) => Held::Other,
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
            pttl_of_live(e.expires_at, now),
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
    match (spec.handler)(ctx, req) {
        Ok(f) => f,
        Err(e) => e.to_frame(),
    }
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

/// Lua's `tonumber` on a string, for the strings this module accepts: optional `-`, digits,
/// optional fraction and exponent. Anything else (blanks, hex, `inf`, a lone `.`) is `None`,
/// and the caller falls back to Lua, which knows the rest of `strtod`'s grammar.
fn lua_number(s: &[u8]) -> Option<f64> {
    // The common case, a plain integer of up to 15 digits, is exact as a double: no float
    // parsing. "-0" is left to the general path (it is the double -0.0).
    if let Some(n) = parse_i64(s).filter(|n| *n != 0 || s[0] != b'-') {
        if n.unsigned_abs() < 1_000_000_000_000_000 {
            // Below 10^15 < 2^53: exact.
            return Some(n as f64);
        }
    }
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    let body = s.strip_prefix(b"-").unwrap_or(s);
    let (mantissa, exp) = match body.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let ok_mantissa = match mantissa.iter().position(|&c| c == b'.') {
        Some(i) => {
            let (int, frac) = (&mantissa[..i], &mantissa[i + 1..]);
            (digits(int) || int.is_empty())
                && (digits(frac) || frac.is_empty())
                && !(int.is_empty() && frac.is_empty())
        }
        None => digits(mantissa),
    };
    let ok_exp =
        exp.is_none_or(|e| digits(e.strip_prefix(b"+").or(e.strip_prefix(b"-")).unwrap_or(e)));
    if !ok_mantissa || !ok_exp {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A Lua number that is a whole number small enough to be exact (|n| < 2^53), and not -0.0:
/// Lua passes that to a command as `-0` (an error for INCRBY and the like) where the integer 0
/// would be `0`, so such scripts run in Lua.
fn whole(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 && !(x == 0.0 && x.is_sign_negative()))
        .then_some(x as i64)
}

/// C's `%.{precision}g` of a finite double: what Redis 7.0 sends to a command for a Lua number
/// argument (precision 17) and what Lua's `tostring` prints (precision 14).
pub fn fmt_g(x: f64, precision: usize) -> String {
    debug_assert!(x.is_finite() && precision > 0);
    crate::script::convert::format_g(x, precision)
}

/// An integer reply after its trip through a Lua number: `redis.call` hands the script a
/// double, and the script's reply converts it back with C's `(long long)` cast. Above 2^53
/// precision is lost; at 2^63 and beyond x86 gives `i64::MIN`, which is what Redis answers.
fn lua_int(n: i64) -> i64 {
    let d = n as f64;
    if d >= 9_223_372_036_854_775_808.0 {
        i64::MIN
    } else {
        d as i64
    }
}

/// An integer reply element as the script returns it.
fn lua_int_frame(n: i64) -> Frame {
    Frame::Integer(lua_int(n))
}

/// A Lua number as `redis.call` passes it to a command.
fn arg(x: f64) -> String {
    fmt_g(x, 17)
}

/// The argument Lua passes for the number `n` read from the script argument `given`: `given`
/// itself (shared, not formatted) when it is already what `%.17g` prints for `n`.
fn int_arg(n: i64, given: &Bytes) -> Bytes {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes();
    if text == &given[..] {
        given.clone()
    } else {
        Bytes::copy_from_slice(text)
    }
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
fn rlf_incr_ttl(ctx: &mut Ctx<'_>, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    const SHA: &str = "a1de965f42e177aa339706bd580f049065eca79a";
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
    let consumed = match int_reply(call!(ctx, b"INCRBY", key, &argv[0]), SHA, 1) {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    let mut ttl = match int_reply(call!(ctx, b"PTTL", key), SHA, 1) {
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
fn rlr_increment(ctx: &mut Ctx<'_>, keys: &[Bytes], argv: &[Bytes]) -> Option<Frame> {
    const SHA: &str = "895b92e1712734e1b464999be23953485475357b";
    let key = &keys[0];
    let window = whole(lua_number(&argv[0])?).filter(|&w| w > 0)?;
    let now = ctx.now;
    // The PTTL and, for the INCR branch, the integer held: one lookup.
    let (ttl, int) = ctx.with_shard(key, |s| match s.get_live(key, now) {
        None => (-2, None),
        Some(e) => (pttl_of_live(e.expires_at, now), current_int(Some(e)).ok()),
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
    let hits = match int_reply(call!(ctx, b"INCR", key), SHA, 7) {
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
fn rlr_get(ctx: &mut Ctx<'_>, keys: &[Bytes], _argv: &[Bytes]) -> Option<Frame> {
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
    let timestamp = lua_number(&argv[0]).filter(|t| t.is_finite())?;
    let limit = whole(lua_number(&argv[1])?)?;
    let expiry = whole(lua_number(&argv[2])?).filter(|e| e.abs() <= 1_000_000_000_000)?;
    let amount = whole(lua_number(&argv[3])?).filter(|a| (1..=5000).contains(a))?;
    if amount > limit {
        return Some(Frame::Null);
    }
    match held(ctx, key) {
        Held::Absent | Held::List => {}
        _ => return None,
    }
    let entry = call!(ctx, b"LINDEX", key, arg((limit - amount) as f64));
    match entry {
        Frame::Null => {}
        Frame::Bulk(b) => {
            let e = lua_number(&b)?;
            if e >= timestamp - expiry as f64 {
                return Some(Frame::Null);
            }
        }
        _ => return None,
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
    let target = lua_number(&argv[0]).filter(|t| t.is_finite())?;
    let len = whole(lua_number(&argv[1])?)?;
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
    let (mut low, mut high) = (0i64, len - 1);
    let mut result = None;
    while low <= high {
        // math.floor((low + high) / 2) on doubles: floor division, also for negatives.
        let mid = (low + high).div_euclid(2);
        match probe(ctx, mid)? {
            Some(v) if v >= target => {
                result = Some((mid, v));
                low = mid + 1;
            }
            _ => high = mid - 1,
        }
    }
    let Some((index, _)) = result else {
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
    keys: &[Bytes],
    argv: &[Bytes],
) -> Option<Frame> {
    const SHA: &str = "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7";
    let (prev, curr) = (&keys[0], &keys[1]);
    let limit = lua_number(&argv[0]).filter(|l| l.is_finite())?;
    let expiry = whole(lua_number(&argv[1])? * 1000.0).filter(|&e| e > 0)?;
    let amount = whole(lua_number(&argv[2])?)?;
    if amount as f64 > limit {
        return Some(Frame::Null);
    }
    // Everything that could fail is checked before the first write.
    let prev_held = counter(ctx, prev)?;
    let curr_held = counter(ctx, curr)?;
    let current_ttl = int_reply(call!(ctx, b"PTTL", curr), SHA, 11).ok()?;
    let rolls = current_ttl > 0 && current_ttl < expiry;
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
    let previous_ttl = int_reply(call!(ctx, b"PTTL", prev), SHA, 19).ok()?.max(0);
    let current_count = get_number(&call!(ctx, b"GET", curr))?;
    let _current_ttl = int_reply(call!(ctx, b"PTTL", curr), SHA, 21).ok()?;
    let weighted = (previous_count * previous_ttl as f64 / expiry as f64).floor() + current_count;
    if weighted + amount as f64 > limit {
        return Some(Frame::Null);
    }
    let exists = int_reply(call!(ctx, b"EXISTS", curr), SHA, 38).ok()?;
    if exists == 1 {
        let r = call!(ctx, b"INCRBY", curr, arg(amount as f64));
        if let Frame::Error(e) = r {
            return Some(script_error(&e, SHA, 39));
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
    let expiry = whole(lua_number(&argv[0])? * 1000.0)?;
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
    if ct > 0 && (ct as f64) < expiry as f64 {
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
mod tests {
    use super::*;
    use crate::cmd::testing::*;

    fn fast(h: &mut Harness, sha: &str, keys: &[&str], args: &[&str]) -> Option<Frame> {
        let known = find(sha.as_bytes()).expect("known script");
        let b = |v: &[&str]| -> Vec<Bytes> {
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        let now = h.clock_now();
        let mut ctx = Ctx::new(&h.shared, &mut h.session, now);
        run(&mut ctx, known, &b(keys), &b(args), false)
    }

    fn ints(v: &[i64]) -> Frame {
        Frame::Array(v.iter().map(|&n| int(n)).collect())
    }

    /// A connection remembers that a recognised script is loaded only until the cache is
    /// flushed: after `SCRIPT FLUSH` the same connection gets NOSCRIPT, and after the library
    /// loads it again the fast path answers again.
    #[test]
    fn a_flush_forgets_what_connections_saw_loaded() {
        let mut h = Harness::new();
        let body = include_str!("../../tests/compat/scripts/rate-limit-redis-get.lua");
        let sha = "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a";
        assert_eq!(h.run(&["SCRIPT", "LOAD", body]), Frame::bulk(sha));
        h.run(&["SET", "k", "5"]);
        let get = ["EVALSHA", sha, "1", "k"];
        let hit = Frame::Array(vec![Frame::bulk("5"), Frame::Integer(-1)]);
        assert_eq!(h.run(&get), hit);
        assert_eq!(h.run(&get), hit, "remembered as loaded");
        assert_eq!(h.run(&["SCRIPT", "FLUSH"]), Frame::OK);
        assert!(
            matches!(h.run(&get), Frame::Error(e) if e.starts_with(b"NOSCRIPT")),
            "the flush is seen"
        );
        h.run(&["SCRIPT", "LOAD", body]);
        assert_eq!(h.run(&get), hit);
    }

    #[test]
    fn shas_are_the_digests_of_the_recorded_scripts() {
        for k in KNOWN {
            assert_eq!(k.sha.len(), 40, "{}", k.name);
            assert!(k
                .sha
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(std::ptr::eq(
                find(k.sha.to_uppercase().as_bytes()).unwrap(),
                k
            ));
        }
        assert!(find(b"0000000000000000000000000000000000000000").is_none());
    }

    #[test]
    fn format_g_matches_c() {
        // Values printed by redis-server 7.0's Lua (tostring: %.14g; redis.call args: %.17g).
        assert_eq!(fmt_g(1.0 / 3.0, 17), "0.33333333333333331");
        assert_eq!(fmt_g(0.1, 17), "0.10000000000000001");
        assert_eq!(fmt_g(0.1, 14), "0.1");
        assert_eq!(fmt_g(1_795_385_460.096_031_7, 14), "1795385460.096");
        assert_eq!(fmt_g(1_795_385_460.096_031_7, 17), "1795385460.0960317");
        assert_eq!(fmt_g(1e15, 14), "1e+15");
        assert_eq!(fmt_g(1e15, 17), "1000000000000000");
        assert_eq!(fmt_g(1e17, 17), "1e+17");
        assert_eq!(fmt_g(1e300, 17), "1.0000000000000001e+300");
        assert_eq!(fmt_g(-0.0, 17), "-0");
        assert_eq!(fmt_g(0.000_012_34, 14), "1.234e-05");
        assert_eq!(fmt_g(0.000_012_34, 17), "1.234e-05");
        assert_eq!(fmt_g(123_456_789_012_345_678.0, 14), "1.2345678901235e+17");
        assert_eq!(fmt_g(5e-324, 17), "4.9406564584124654e-324");
        assert_eq!(fmt_g(60000.0, 17), "60000");
        assert_eq!(fmt_g(-2.5, 17), "-2.5");
        assert_eq!(fmt_g(99_999_999_999_999.9, 14), "1e+14");
        assert_eq!(fmt_g(0.0001, 17), "0.0001");
    }

    #[test]
    fn integers_through_lua_numbers_round_like_redis() {
        assert_eq!(lua_int(42), 42);
        assert_eq!(lua_int(-(1 << 53)), -(1 << 53));
        assert_eq!(lua_int((1 << 53) + 1), 1 << 53);
        assert_eq!(lua_int(i64::MAX), i64::MIN);
        assert_eq!(lua_int(i64::MIN), i64::MIN);
    }

    #[test]
    fn lua_numbers_accept_only_the_plain_grammar() {
        assert_eq!(lua_number(b"42"), Some(42.0));
        assert_eq!(lua_number(b"-1.5e3"), Some(-1500.0));
        assert_eq!(lua_number(b".5"), Some(0.5));
        assert_eq!(lua_number(b"5."), Some(5.0));
        for bad in [
            &b""[..],
            b"-",
            b".",
            b" 5",
            b"5 ",
            b"0x10",
            b"inf",
            b"nan",
            b"1e",
            b"+5",
            b"1.2.3",
        ] {
            assert_eq!(lua_number(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rate_limiter_flexible_counts_and_sets_the_ttl_once() {
        let mut h = Harness::new();
        let sha = "a1de965f42e177aa339706bd580f049065eca79a";
        assert_eq!(
            fast(&mut h, sha, &["rlf:k"], &["1", "60", "5", "60"]),
            Some(ints(&[1, 60000]))
        );
        h.clock.advance(std::time::Duration::from_millis(1500));
        assert_eq!(
            fast(&mut h, sha, &["rlf:k"], &["2", "60"]),
            Some(ints(&[3, 58500]))
        );
        assert_eq!(
            fast(&mut h, sha, &["rlf:k"], &["-1", "60"]),
            Some(ints(&[2, 58500]))
        );
        // A key without expiry gets one.
        h.run(&["SET", "rlf:p", "7"]);
        assert_eq!(
            fast(&mut h, sha, &["rlf:p"], &["1", "10"]),
            Some(ints(&[8, 10000]))
        );
        assert_eq!(h.run(&["PTTL", "rlf:p"]), int(10000));
        // What Lua must decide: bad numbers, wrong types, overflow.
        h.run(&["SET", "rlf:s", "abc"]);
        h.run(&["LPUSH", "rlf:l", "x"]);
        h.run(&["SET", "rlf:max", &i64::MAX.to_string()]);
        assert_eq!(fast(&mut h, sha, &["rlf:s"], &["1", "60"]), None);
        assert_eq!(fast(&mut h, sha, &["rlf:l"], &["1", "60"]), None);
        assert_eq!(fast(&mut h, sha, &["rlf:max"], &["1", "60"]), None);
        assert_eq!(fast(&mut h, sha, &["rlf:n"], &["1.5", "60"]), None);
        assert_eq!(fast(&mut h, sha, &["rlf:n"], &["1", "0"]), None);
        assert_eq!(
            h.run(&["EXISTS", "rlf:n"]),
            int(0),
            "a fallback wrote nothing"
        );
    }

    #[test]
    fn rate_limit_redis_increments_within_the_window() {
        let mut h = Harness::new();
        let inc = "895b92e1712734e1b464999be23953485475357b";
        let get = "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a";
        assert_eq!(
            fast(&mut h, get, &["rl:k"], &[]),
            Some(Frame::Array(vec![Frame::Null, int(-2)]))
        );
        assert_eq!(
            fast(&mut h, inc, &["rl:k"], &["60000"]),
            Some(ints(&[1, 60000]))
        );
        h.clock.advance(std::time::Duration::from_millis(250));
        assert_eq!(
            fast(&mut h, inc, &["rl:k"], &["60000"]),
            Some(ints(&[2, 59750]))
        );
        assert_eq!(
            fast(&mut h, get, &["rl:k"], &[]),
            Some(Frame::Array(vec![bulk("2"), int(59750)]))
        );
        // A key without TTL restarts the window (SET), as in the script.
        h.run(&["SET", "rl:p", "5"]);
        assert_eq!(
            fast(&mut h, inc, &["rl:p"], &["1000"]),
            Some(ints(&[1, 1000]))
        );
        h.run(&["SET", "rl:bad", "x", "PX", "5000"]);
        assert_eq!(fast(&mut h, inc, &["rl:bad"], &["1000"]), None);
        // tonumber("1e3") is 1000 in Lua too; hex is left to Lua.
        assert_eq!(
            fast(&mut h, inc, &["rl:e"], &["1e3"]),
            Some(ints(&[1, 1000]))
        );
        assert_eq!(fast(&mut h, inc, &["rl:k"], &["0x10"]), None);
        h.run(&["HSET", "rl:h", "f", "v"]);
        assert_eq!(fast(&mut h, get, &["rl:h"], &[]), None);
    }

    #[test]
    fn limits_fixed_window_sets_the_expiry_on_the_first_hit() {
        let mut h = Harness::new();
        let sha = "628bd136a573a06b346879695681af12ccef300f";
        assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "1"]), Some(int(1)));
        assert_eq!(h.run(&["TTL", "lim:f"]), int(60));
        h.clock.advance(std::time::Duration::from_secs(10));
        assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "2"]), Some(int(3)));
        assert_eq!(h.run(&["TTL", "lim:f"]), int(50));
        assert_eq!(fast(&mut h, sha, &["lim:f"], &["60", "0.5"]), None);
    }

    #[test]
    fn limits_moving_window_admits_up_to_the_limit() {
        let mut h = Harness::new();
        let acquire = "741eab638ba93ed71020bb821c45c022d0fa02c4";
        let window = "ad795214f59fe26d6fdec07973836dd16586f5ec";
        let t = |s: f64| format!("{s}");
        for i in 0..3 {
            let now = 1000.25 + f64::from(i);
            assert_eq!(
                fast(&mut h, acquire, &["lim:m"], &[&t(now), "3", "10", "1"]),
                Some(int(1)),
                "hit {i}"
            );
        }
        assert_eq!(
            fast(&mut h, acquire, &["lim:m"], &["1003.5", "3", "10", "1"]),
            Some(Frame::Null)
        );
        assert_eq!(h.run(&["LLEN", "lim:m"]), int(3));
        assert_eq!(h.run(&["LINDEX", "lim:m", "0"]), bulk("1002.25"));
        assert_eq!(h.run(&["TTL", "lim:m"]), int(10));
        // Stats: entries at or after 1001.0 (the window start): two, oldest 1001.25.
        assert_eq!(
            fast(&mut h, window, &["lim:m"], &["1001", "3"]),
            Some(Frame::Array(vec![bulk("1001.25"), int(2)]))
        );
        assert_eq!(
            fast(&mut h, window, &["lim:m"], &["2000", "3"]),
            Some(Frame::Null)
        );
        assert_eq!(
            fast(&mut h, window, &["lim:none"], &["0", "3"]),
            Some(Frame::Null)
        );
        // After the window passes, hits are admitted again; amount > limit is refused at once.
        assert_eq!(
            fast(&mut h, acquire, &["lim:m"], &["1011.5", "3", "10", "2"]),
            Some(int(1))
        );
        assert_eq!(h.run(&["LLEN", "lim:m"]), int(3));
        assert_eq!(
            fast(&mut h, acquire, &["lim:m"], &["1011.5", "3", "10", "4"]),
            Some(Frame::Null)
        );
    }

    #[test]
    fn limits_sliding_window_weights_the_previous_window() {
        let mut h = Harness::new();
        let acquire = "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7";
        let stats = "e7a0a27d4101baabb124af209bb0245197a359a1";
        let keys = ["lim:{s}/-1", "lim:{s}"];
        for _ in 0..4 {
            assert_eq!(
                fast(&mut h, acquire, &keys, &["4", "10", "1"]),
                Some(int(1))
            );
        }
        assert_eq!(
            fast(&mut h, acquire, &keys, &["4", "10", "1"]),
            Some(Frame::Null)
        );
        assert_eq!(h.run(&["PTTL", "lim:{s}"]), int(20000));
        // 12 s later the current window has 8 s left (< 10 s): it rolls over on the next call.
        h.clock.advance(std::time::Duration::from_secs(12));
        assert_eq!(
            fast(&mut h, stats, &keys, &["10"]),
            Some(Frame::Array(vec![
                bulk("4"),
                int(8000),
                bulk("0"),
                int(18000)
            ]))
        );
        // weighted = floor(4 * 8000 / 10000) + 0 = 3: one more fits, then none.
        assert_eq!(
            fast(&mut h, acquire, &keys, &["4", "10", "1"]),
            Some(int(1))
        );
        assert_eq!(
            fast(&mut h, acquire, &keys, &["4", "10", "1"]),
            Some(Frame::Null)
        );
        assert_eq!(h.run(&["GET", "lim:{s}"]), bulk("1"));
        h.run(&["SET", "lim:{x}", "notanumber"]);
        assert_eq!(
            fast(
                &mut h,
                acquire,
                &["lim:{x}/-1", "lim:{x}"],
                &["4", "10", "1"]
            ),
            None
        );
    }

    mod equivalence {
        //! The fast path against Lua on one clock: every recognised script, run natively on one
        //! server and as Lua (the same text with a comment added, so it is not recognised) on
        //! another, with the same calls at the same manual-clock instants, must give the same
        //! replies and leave the same keys. The comparison with redis-server in
        //! tests/differential.rs runs on two real clocks, where a sliding window read at a
        //! window's edge may fall either way; here the instants are identical.
        use super::super::*;
        use super::fast;
        use crate::cmd::testing::*;

        struct Script {
            name: &'static str,
            body: &'static str,
            keys: usize,
        }

        /// A recorded script of tests/compat/scripts and its number of keys.
        macro_rules! script {
            ($name:literal, $keys:literal) => {
                Script {
                    name: $name,
                    body: include_str!(concat!("../../tests/compat/scripts/", $name, ".lua")),
                    keys: $keys,
                }
            };
        }

        const SCRIPTS: &[Script] = &[
            script!("rate-limiter-flexible-incr-ttl", 1),
            script!("rate-limit-redis-increment", 1),
            script!("rate-limit-redis-get", 1),
            script!("limits-incr-expire", 1),
            script!("limits-acquire-moving-window", 1),
            script!("limits-moving-window", 1),
            script!("limits-acquire-sliding-window", 2),
            script!("limits-sliding-window", 2),
        ];

        /// Arguments each script is called with: the libraries' usual values, edge values and
        /// garbage (which the fast path must leave to Lua).
        fn args_for(name: &str, rng: &mut u64) -> Vec<&'static str> {
            let mut pick = |v: &[&'static str]| v[next(rng) as usize % v.len()];
            match name {
                "rate-limiter-flexible-incr-ttl" => vec![
                    pick(&["1", "2", "-1", "5", "1.5", "x", "9223372036854775807"]),
                    pick(&["60", "1", "0", "-5", "abc"]),
                    "10",
                    "60",
                ],
                "rate-limit-redis-increment" => {
                    vec![pick(&["1000", "60000", "1e3", "0x10", "-5", "abc", "1.5"])]
                }
                "rate-limit-redis-get" => vec![],
                "limits-incr-expire" => vec![
                    pick(&["1", "60", "-1", "abc"]),
                    pick(&["1", "2", "0", "1.5", "-1", "-0", "007"]),
                ],
                "limits-acquire-moving-window" => vec![
                    pick(&["1767225600.5", "1767225601.25", "1767225605", "abc"]),
                    pick(&["3", "5", "1"]),
                    pick(&["1", "10"]),
                    pick(&["1", "2", "6"]),
                ],
                "limits-moving-window" => vec![
                    pick(&["1767225590", "1767225600.5", "1767225604", "0"]),
                    pick(&["3", "5", "0"]),
                ],
                "limits-acquire-sliding-window" => vec![
                    pick(&["4", "10", "2.5"]),
                    pick(&["1", "0.5", "3", "abc"]),
                    pick(&["1", "2", "20"]),
                ],
                "limits-sliding-window" => vec![pick(&["1", "0.5", "3"])],
                other => unreachable!("{other}"),
            }
        }

        fn next(state: &mut u64) -> u64 {
            // xorshift64
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        }

        /// Everything a key holds, as replies: its type, value and remaining time.
        fn state_of(h: &mut Harness, key: &str) -> Vec<Frame> {
            let ty = h.run(&["TYPE", key]);
            let value = match &ty {
                Frame::Simple(t) if &t[..] == b"string" => h.run(&["GET", key]),
                Frame::Simple(t) if &t[..] == b"list" => h.run(&["LRANGE", key, "0", "-1"]),
                Frame::Simple(t) if &t[..] == b"hash" => h.run(&["HGETALL", key]),
                _ => Frame::Null,
            };
            vec![ty, value, h.run(&["PTTL", key])]
        }

        #[test]
        fn native_and_lua_agree_call_for_call_on_one_clock() {
            let (mut native, mut lua) = (Harness::new(), Harness::new());
            let mut shas = Vec::new();
            for s in SCRIPTS {
                let Frame::Bulk(sha) = native.run(&["SCRIPT", "LOAD", s.body]) else {
                    panic!("{}: SCRIPT LOAD", s.name);
                };
                assert!(find(&sha).is_some(), "{} is recognised", s.name);
                let plain = format!("{}\n-- run in Lua\n", s.body);
                let Frame::Bulk(lua_sha) = lua.run(&["SCRIPT", "LOAD", &plain]) else {
                    panic!("{}: SCRIPT LOAD", s.name);
                };
                assert!(find(&lua_sha).is_none(), "{}: the variant is not", s.name);
                shas.push((
                    String::from_utf8(sha.to_vec()).unwrap(),
                    String::from_utf8(lua_sha.to_vec()).unwrap(),
                ));
            }
            const KEYS: &[&str] = &["e:a", "e:b", "e:c"];
            let (mut calls, mut natively) = (0, [0usize; 8]);
            for seed in [
                0x2545_F491_4F6C_DD1Du64,
                0x9E37_79B9_7F4A_7C15,
                0xD1B5_4A32_D192_ED03,
            ] {
                let mut rng = seed;
                for step in 0..3000 {
                    let k = KEYS[next(&mut rng) as usize % KEYS.len()];
                    let k2 = KEYS[next(&mut rng) as usize % KEYS.len()];
                    match next(&mut rng) % 10 {
                        0 => {
                            // Time passes on both servers alike: within, across and past windows.
                            let ms = [1, 120, 499, 500, 501, 999, 1000, 1500, 3001]
                                [next(&mut rng) as usize % 9];
                            for h in [&mut native, &mut lua] {
                                h.clock.advance(std::time::Duration::from_millis(ms));
                            }
                        }
                        1 => {
                            // A starting state the scripts must cope with (or leave to Lua).
                            let cmd: &[&str] = match next(&mut rng) % 6 {
                                0 => &["SET", k, "abc"],
                                1 => &["SET", k, "2", "PX", "1500"],
                                2 => &["LPUSH", k, "1767225600.5"],
                                3 => &["HSET", k, "f", "v"],
                                4 => &["SET", k, "9223372036854775807"],
                                _ => &["DEL", k],
                            };
                            assert_eq!(native.run(cmd), lua.run(cmd), "{cmd:?}");
                        }
                        _ => {
                            let i = next(&mut rng) as usize % SCRIPTS.len();
                            let s = &SCRIPTS[i];
                            let (sha, lua_sha) = &shas[i];
                            let keys: Vec<&str> = [k, k2][..s.keys].to_vec();
                            let args = args_for(s.name, &mut rng);
                            calls += 1;
                            let got = match fast(&mut native, sha, &keys, &args) {
                                Some(reply) => {
                                    natively[i] += 1;
                                    reply.into_maps()
                                }
                                None => {
                                    let n = s.keys.to_string();
                                    let mut words = vec!["EVALSHA", sha, &n];
                                    words.extend(&keys);
                                    words.extend(&args);
                                    native.run(&words)
                                }
                            };
                            let n = s.keys.to_string();
                            let mut words = vec!["EVALSHA", lua_sha.as_str(), &n];
                            words.extend(&keys);
                            words.extend(&args);
                            let want = match lua.run(&words) {
                                // Lua's errors name the script: the variant's digest.
                                Frame::Error(e) => Frame::Error(
                                    String::from_utf8_lossy(&e).replace(lua_sha, sha).into(),
                                ),
                                other => other,
                            };
                            assert_eq!(
                                got, want,
                                "seed {seed:x} step {step}: {} {keys:?} {args:?}",
                                s.name
                            );
                        }
                    }
                    for key in KEYS {
                        assert_eq!(
                            state_of(&mut native, key),
                            state_of(&mut lua, key),
                            "seed {seed:x} step {step}: key {key}"
                        );
                    }
                }
            }
            // Garbage arguments and wrong-type keys go to Lua on both sides; the rest must have
            // been answered natively, by every script.
            let total: usize = natively.iter().sum();
            assert!(
                total * 3 > calls,
                "the fast path answered only {total} of {calls} calls"
            );
            for (s, n) in SCRIPTS.iter().zip(natively) {
                assert!(n > 100, "{}: only {n} calls answered natively", s.name);
            }
        }
    }
}
