//! Argument parsing with Redis's rules: integers as `string2ll` reads them (no `+`, no leading
//! zeros, no blanks), floats as `strtod` with the whole string consumed, case-insensitive
//! keywords, and millisecond expiry arithmetic that reports overflow instead of wrapping.

use bytes::Bytes;

use crate::error::CommandError;

/// Parses a signed 64-bit integer exactly as Redis's `string2ll`.
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    match arg {
        [] => None,
        [b'0'] => Some(0),
        [b'-', rest @ ..] => {
            let (first, _) = rest.split_first()?;
            if !(b'1'..=b'9').contains(first) || rest.len() > 19 {
                return None;
            }
            let mut n: i64 = 0;
            for &d in rest {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
            }
            Some(n)
        }
        [first, ..] => {
            if !(b'1'..=b'9').contains(first) || arg.len() > 19 {
                return None;
            }
            let mut n: i64 = 0;
            for &d in arg {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            }
            Some(n)
        }
    }
}

/// An integer argument, or `ERR value is not an integer or out of range`.
pub fn int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotAnInteger)
}

/// A non-negative integer argument.
pub fn uint(arg: &[u8]) -> Result<u64, CommandError> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(CommandError::out_of_range(
            "value is out of range, must be positive",
        )),
        None => Err(CommandError::NotAnInteger),
    }
}

/// A pop count (`LPOP key count`, `SPOP key count`): a non-negative integer; Redis answers one
/// text, `value is out of range, must be positive`, for a negative count and a non-number alike.
pub fn pop_count(arg: &[u8]) -> Result<usize, CommandError> {
    parse_i64(arg)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| CommandError::out_of_range("value is out of range, must be positive"))
}

/// Parses a float the way Redis's `getDoubleFromObject` accepts it: the whole argument, no
/// leading blank, `inf`/`-inf` allowed, `nan` refused.
pub fn parse_f64(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let named = |names: &[&str]| names.iter().any(|n| s.eq_ignore_ascii_case(n));
    let v: f64 = match () {
        _ if named(&["inf", "+inf", "infinity", "+infinity"]) => f64::INFINITY,
        _ if named(&["-inf", "-infinity"]) => f64::NEG_INFINITY,
        _ => {
            if !s
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return None;
            }
            s.parse().ok()?
        }
    };
    (!v.is_nan()).then_some(v)
}

/// A float argument, or `ERR value is not a valid float`.
pub fn float(arg: &[u8]) -> Result<f64, CommandError> {
    parse_f64(arg).ok_or(CommandError::NotAFloat)
}

/// True if `arg` equals `keyword`, ignoring ASCII case.
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// The argument as text for error messages (lossy).
pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// A cursor over the optional arguments of a command.
#[derive(Debug)]
pub struct Args<'a> {
    args: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// A cursor over `args`, starting at index `start`.
    pub fn new(args: &'a [Bytes], start: usize) -> Args<'a> {
        Args { args, pos: start }
    }

    /// The next argument, if any.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&'a Bytes> {
        let a = self.args.get(self.pos)?;
        self.pos += 1;
        Some(a)
    }

    /// The next argument, or a syntax error if there is none.
    pub fn value(&mut self) -> Result<&'a Bytes, CommandError> {
        self.next().ok_or(CommandError::Syntax)
    }

    /// The next argument as an integer (syntax error if missing).
    pub fn int(&mut self) -> Result<i64, CommandError> {
        int(self.value()?)
    }

    /// True when all arguments are consumed.
    pub fn is_done(&self) -> bool {
        self.pos >= self.args.len()
    }

    /// Arguments not yet consumed.
    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1.0",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_follow_strtod_without_nan() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1x"), None);
    }
}
