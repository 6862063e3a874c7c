//! The exact Lua scripts that popular rate-limit libraries send, recognised by their SHA1 so
//! that `EVAL` / `EVALSHA` can answer them natively (the fast path); this module is the
//! recognition and everything about those scripts that needs no keyspace: the table of known
//! scripts ([`KNOWN`], [`find`]), Lua's number rules as the scripts depend on them
//! ([`lua_number`], [`whole`], [`fmt_g`], [`lua_int`]), their arguments as they read them
//! ([`MovingWindowAcquire`], [`SlidingWindowAcquire`], ...) and the scripts' own admission
//! decisions ([`moving_window_refuses`], [`moving_window_oldest`], [`sliding_window_rolls`],
//! [`sliding_window_refuses`]). Running a recognised script against the keyspace (issuing its
//! `redis.call`s through the command handlers) is the command layer's part (`cmd::fastpath`).
//! The scripts, their origin and their semantics are recorded in `tests/compat/scripts/`.
//!
//! Lua numbers are doubles: an argument that went through `tonumber` reaches `redis.call` as
//! C's `%.17g` of the double ([`fmt_g`]), Lua's `tostring` prints `%.14g`, and a number in a
//! reply becomes an integer by truncation.
//!
//! The decisions here are the libraries' own, computed on Lua doubles (limits' sliding window
//! floors the previous window's weighted count, where [`crate::limiter::window`] rounds it up),
//! so they are not the limiter families' transitions: a native answer must be the one the
//! script would give.
//!
//! Depends on nothing but [`super::convert`]'s number formatting.

use bytes::Bytes;

/// Which native routine answers a recognised script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routine {
    /// rate-limiter-flexible's incr-ttl.
    RlfIncrTtl,
    /// rate-limit-redis's increment.
    RlrIncrement,
    /// rate-limit-redis's get.
    RlrGet,
    /// limits' fixed window (incr-expire).
    LimitsIncrExpire,
    /// limits' moving window, acquire.
    LimitsAcquireMovingWindow,
    /// limits' moving window, stats.
    LimitsMovingWindow,
    /// limits' sliding window, acquire.
    LimitsAcquireSlidingWindow,
    /// limits' sliding window, stats.
    LimitsSlidingWindow,
}

/// A recognised script.
#[derive(Debug)]
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
    /// The native routine that answers it.
    pub routine: Routine,
}

/// Every recognised script.
pub static KNOWN: &[Known] = &[
    Known {
        sha: "a1de965f42e177aa339706bd580f049065eca79a",
        name: "rate-limiter-flexible incr-ttl",
        keys: 1,
        args: 2,
        read_only: false,
        routine: Routine::RlfIncrTtl,
    },
    Known {
        sha: "895b92e1712734e1b464999be23953485475357b",
        name: "rate-limit-redis increment",
        keys: 1,
        args: 1,
        read_only: false,
        routine: Routine::RlrIncrement,
    },
    Known {
        sha: "6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a",
        name: "rate-limit-redis get",
        keys: 1,
        args: 0,
        read_only: true,
        routine: Routine::RlrGet,
    },
    Known {
        sha: "628bd136a573a06b346879695681af12ccef300f",
        name: "limits incr-expire",
        keys: 1,
        args: 2,
        read_only: false,
        routine: Routine::LimitsIncrExpire,
    },
    Known {
        sha: "741eab638ba93ed71020bb821c45c022d0fa02c4",
        name: "limits acquire-moving-window",
        keys: 1,
        args: 4,
        read_only: false,
        routine: Routine::LimitsAcquireMovingWindow,
    },
    Known {
        sha: "ad795214f59fe26d6fdec07973836dd16586f5ec",
        name: "limits moving-window",
        keys: 1,
        args: 2,
        read_only: true,
        routine: Routine::LimitsMovingWindow,
    },
    Known {
        sha: "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7",
        name: "limits acquire-sliding-window",
        keys: 2,
        args: 3,
        read_only: false,
        routine: Routine::LimitsAcquireSlidingWindow,
    },
    Known {
        sha: "e7a0a27d4101baabb124af209bb0245197a359a1",
        name: "limits sliding-window",
        keys: 2,
        args: 1,
        read_only: false,
        routine: Routine::LimitsSlidingWindow,
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

// --- Lua numbers -----------------------------------------------------------------------------

/// Lua's `tonumber` on a string, for the strings the fast path accepts: optional `-`, digits,
/// optional fraction and exponent. Anything else (blanks, hex, `inf`, a lone `.`) is `None`,
/// and the caller falls back to Lua, which knows the rest of `strtod`'s grammar.
pub fn lua_number(s: &[u8]) -> Option<f64> {
    let body = s.strip_prefix(b"-").unwrap_or(s);
    // The common case, a plain integer of up to 15 digits, is exact as a double (below
    // 10^15 < 2^53): no float parsing. Negating the double keeps "-0" the double -0.0.
    if (1..=15).contains(&body.len()) && body.iter().all(u8::is_ascii_digit) {
        let n = body.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let x = n as f64;
        return Some(if body.len() < s.len() { -x } else { x });
    }
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
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
pub fn whole(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 && !(x == 0.0 && x.is_sign_negative()))
        .then_some(x as i64)
}

/// C's `%.{precision}g` of a finite double: what Redis 7.0 sends to a command for a Lua number
/// argument (precision 17) and what Lua's `tostring` prints (precision 14).
pub fn fmt_g(x: f64, precision: usize) -> String {
    debug_assert!(x.is_finite() && precision > 0);
    super::convert::format_g(x, precision)
}

/// A Lua number as `redis.call` passes it to a command: `%.17g`.
pub fn lua_arg(x: f64) -> String {
    fmt_g(x, 17)
}

/// The argument Lua passes for the number `n` read from the script argument `given`: `given`
/// itself (shared, not formatted) when it is already what `%.17g` prints for `n`.
pub fn int_arg(n: i64, given: &Bytes) -> Bytes {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes();
    if text == &given[..] {
        given.clone()
    } else {
        Bytes::copy_from_slice(text)
    }
}

/// An integer reply after its trip through a Lua number: `redis.call` hands the script a
/// double, and the script's reply converts it back with C's `(long long)` cast. Above 2^53
/// precision is lost; at 2^63 and beyond x86 gives `i64::MIN`, which is what Redis answers.
pub fn lua_int(n: i64) -> i64 {
    let d = n as f64;
    if d >= 9_223_372_036_854_775_808.0 {
        i64::MIN
    } else {
        d as i64
    }
}

// --- the scripts' arguments ----------------------------------------------------------------
//
// Each parse answers `None` where the native routine would not give Lua's answer (the caller
// then runs the script in Lua): an argument `tonumber` reads otherwise than [`lua_number`], a
// number Lua would pass to a command as something other than its digits, or a size the
// routine does not handle.

/// rate-limit-redis's increment: `ARGV[1]`, the window in milliseconds (positive and whole).
pub fn rate_limit_redis_window(argv: &[Bytes]) -> Option<i64> {
    whole(lua_number(&argv[0])?).filter(|&w| w > 0)
}

/// limits' moving-window acquire: `ARGV = timestamp, limit, expiry (s), amount`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovingWindowAcquire {
    /// The hit's timestamp (seconds, fractional).
    pub timestamp: f64,
    /// Hits allowed per window.
    pub limit: i64,
    /// The window, in seconds (also the list's TTL).
    pub expiry: i64,
    /// Hits taken at once (1 to 5,000: the script pushes them with one LPUSH per 5,000).
    pub amount: i64,
}

impl MovingWindowAcquire {
    /// The arguments as the script reads them.
    pub fn parse(argv: &[Bytes]) -> Option<MovingWindowAcquire> {
        Some(MovingWindowAcquire {
            timestamp: lua_number(&argv[0]).filter(|t| t.is_finite())?,
            limit: whole(lua_number(&argv[1])?)?,
            expiry: whole(lua_number(&argv[2])?).filter(|e| e.abs() <= 1_000_000_000_000)?,
            amount: whole(lua_number(&argv[3])?).filter(|a| (1..=5000).contains(a))?,
        })
    }

    /// Refused before the list is read: more hits at once than the limit.
    pub fn exceeds_limit(&self) -> bool {
        self.amount > self.limit
    }

    /// The list index whose entry decides (see [`moving_window_refuses`]).
    pub fn probe_index(&self) -> i64 {
        self.limit - self.amount
    }
}

/// limits' moving-window stats: `ARGV = window start (s), limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovingWindowStats {
    /// Entries at or after this timestamp are in the window.
    pub target: f64,
    /// How many entries the search covers (the limit).
    pub len: i64,
}

impl MovingWindowStats {
    /// The arguments as the script reads them.
    pub fn parse(argv: &[Bytes]) -> Option<MovingWindowStats> {
        Some(MovingWindowStats {
            target: lua_number(&argv[0]).filter(|t| t.is_finite())?,
            len: whole(lua_number(&argv[1])?)?,
        })
    }
}

/// limits' sliding-window acquire: `ARGV = limit, expiry (s), amount`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindowAcquire {
    /// Hits allowed per window.
    pub limit: f64,
    /// The window in milliseconds (`tonumber(ARGV[2]) * 1000`, positive and whole).
    pub expiry: i64,
    /// Hits taken.
    pub amount: i64,
}

impl SlidingWindowAcquire {
    /// The arguments as the script reads them.
    pub fn parse(argv: &[Bytes]) -> Option<SlidingWindowAcquire> {
        Some(SlidingWindowAcquire {
            limit: lua_number(&argv[0]).filter(|l| l.is_finite())?,
            expiry: whole(lua_number(&argv[1])? * 1000.0).filter(|&e| e > 0)?,
            amount: whole(lua_number(&argv[2])?)?,
        })
    }

    /// Refused before anything is read: more hits at once than the limit.
    pub fn exceeds_limit(&self) -> bool {
        self.amount as f64 > self.limit
    }
}

/// limits' sliding-window stats: `ARGV[1] * 1000`, the window in milliseconds (whole).
pub fn sliding_window_expiry(argv: &[Bytes]) -> Option<i64> {
    whole(lua_number(&argv[0])? * 1000.0)
}

// --- the scripts' decisions ------------------------------------------------------------------

/// limits' moving-window acquire: refused when the entry at index `limit - amount` of the
/// timestamp list (`None`: the list is shorter) was pushed at or after `timestamp - expiry`,
/// i.e. `limit - amount + 1` hits already fall in the window. (An `amount` above `limit` is
/// refused before the list is read.)
pub fn moving_window_refuses(entry: Option<f64>, timestamp: f64, expiry: i64) -> bool {
    entry.is_some_and(|e| e >= timestamp - expiry as f64)
}

/// limits' moving-window stats: the script's binary search over list indexes `0 .. len - 1`
/// for the last entry at or after `target`, reading entry `i` with `probe` (`Some(None)`: no
/// entry there; `None`: an entry Lua would read differently, and the search gives up with
/// `None`). `Some(None)` when no entry qualifies; otherwise its index and value.
pub fn moving_window_oldest(
    len: i64,
    target: f64,
    mut probe: impl FnMut(i64) -> Option<Option<f64>>,
) -> Option<Option<(i64, f64)>> {
    let (mut low, mut high) = (0i64, len - 1);
    let mut result = None;
    while low <= high {
        // math.floor((low + high) / 2) on doubles: floor division, also for negatives.
        let mid = (low + high).div_euclid(2);
        match probe(mid)? {
            Some(v) if v >= target => {
                result = Some((mid, v));
                low = mid + 1;
            }
            _ => high = mid - 1,
        }
    }
    Some(result)
}

/// limits' sliding window: the current window's counter rolls over to the previous one when
/// its remaining time (ms) is positive and under one window (`expiry`, ms).
pub fn sliding_window_rolls(current_ttl: i64, expiry: i64) -> bool {
    current_ttl > 0 && (current_ttl as f64) < expiry as f64
}

/// limits' sliding-window acquire: refused when the weighted count
/// `floor(previous_count · previous_ttl / expiry) + current_count` plus `amount` exceeds
/// `limit`.
pub fn sliding_window_refuses(
    previous_count: f64,
    previous_ttl: i64,
    current_count: f64,
    expiry: i64,
    amount: i64,
    limit: f64,
) -> bool {
    let weighted = (previous_count * previous_ttl as f64 / expiry as f64).floor() + current_count;
    weighted + amount as f64 > limit
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_routine_answers_one_script() {
        for (i, a) in KNOWN.iter().enumerate() {
            for b in &KNOWN[i + 1..] {
                assert_ne!(a.routine, b.routine, "{} and {}", a.name, b.name);
                assert_ne!(a.sha, b.sha, "{} and {}", a.name, b.name);
            }
        }
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

    /// The integer shortcut gives what the float parser gives, sign of zero included.
    #[test]
    fn plain_integers_parse_as_the_float_parser_reads_them() {
        for s in [
            "0",
            "-0",
            "7",
            "007",
            "-42",
            "999999999999999",
            "-999999999999999",
            "1000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            let want: f64 = s.parse().unwrap();
            let got = lua_number(s.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
    }

    #[test]
    fn the_moving_window_search_finds_the_last_entry_in_the_window() {
        // Newest first, as LPUSH leaves them.
        let list = [1005.0, 1003.5, 1002.0, 1000.25];
        let probe = |i: i64| Some(usize::try_from(i).ok().and_then(|i| list.get(i)).copied());
        assert_eq!(
            moving_window_oldest(4, 1002.0, probe),
            Some(Some((2, 1002.0)))
        );
        assert_eq!(
            moving_window_oldest(4, 1000.0, probe),
            Some(Some((3, 1000.25)))
        );
        assert_eq!(moving_window_oldest(4, 2000.0, probe), Some(None));
        assert_eq!(moving_window_oldest(0, 0.0, probe), Some(None));
        assert_eq!(moving_window_oldest(4, 0.0, |_| None), None);
        assert!(moving_window_refuses(Some(1001.0), 1010.0, 10));
        assert!(!moving_window_refuses(Some(999.5), 1010.0, 10));
        assert!(!moving_window_refuses(None, 1010.0, 10));
    }

    #[test]
    fn arguments_lua_would_read_otherwise_are_left_to_lua() {
        let v = |a: &[&str]| -> Vec<Bytes> {
            a.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        assert_eq!(
            MovingWindowAcquire::parse(&v(&["1000.5", "3", "10", "1"])),
            Some(MovingWindowAcquire {
                timestamp: 1000.5,
                limit: 3,
                expiry: 10,
                amount: 1
            })
        );
        assert_eq!(
            MovingWindowAcquire::parse(&v(&["0x10", "3", "10", "1"])),
            None
        );
        assert_eq!(
            MovingWindowAcquire::parse(&v(&["1", "3", "10", "5001"])),
            None
        );
        assert_eq!(
            MovingWindowAcquire::parse(&v(&["1", "3.5", "10", "1"])),
            None
        );
        assert_eq!(
            SlidingWindowAcquire::parse(&v(&["4", "0.5", "1"])).map(|a| a.expiry),
            Some(500)
        );
        assert_eq!(SlidingWindowAcquire::parse(&v(&["4", "0", "1"])), None);
        assert!(SlidingWindowAcquire::parse(&v(&["2.5", "1", "3"]))
            .unwrap()
            .exceeds_limit());
        assert_eq!(rate_limit_redis_window(&v(&["1e3"])), Some(1000));
        assert_eq!(rate_limit_redis_window(&v(&["-5"])), None);
        assert_eq!(sliding_window_expiry(&v(&["-0.5"])), Some(-500));
        assert_eq!(
            MovingWindowStats::parse(&v(&["inf", "3"])),
            None,
            "not the plain grammar"
        );
    }

    #[test]
    fn the_sliding_window_floors_the_weighted_previous_count() {
        // floor(4 · 8000 / 10000) = 3, plus 0 current: one more of 4 fits, two do not.
        assert!(!sliding_window_refuses(4.0, 8000, 0.0, 10_000, 1, 4.0));
        assert!(sliding_window_refuses(4.0, 8000, 0.0, 10_000, 2, 4.0));
        assert!(sliding_window_rolls(8000, 10_000));
        assert!(!sliding_window_rolls(0, 10_000));
        assert!(!sliding_window_rolls(10_000, 10_000));
    }
}
