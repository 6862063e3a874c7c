//! What every native limiter family (RATE, WINDOW, QUOTA, COST, LEASE, BREAKER) shares in the
//! command layer: the uniform admission reply and the argument grammar (durations with units,
//! rates `N/duration`, `COST n`). The transitions themselves run in the engine
//! ([`crate::engine::families`]).
//!
//! # The uniform reply
//! Every TAKE / PEEK / ACQUIRE-style command answers a map (RESP3) or a flat field/value array
//! (RESP2) that starts with the same five fields, in this order, followed by family extras:
//!
//! | field | RESP3 | RESP2 | meaning |
//! |---|---|---|---|
//! | `allowed` | boolean | integer 1/0 | admitted (and, for a take, charged) |
//! | `limit` | integer | integer | the key's limit |
//! | `remaining` | integer | integer | the largest cost a take right now would admit |
//! | `retry_after_ms` | integer | integer | -1 when allowed or when the cost can never fit; else ms to wait, rounded up |
//! | `reset_after_ms` | integer | integer | ms until the key is fresh again, rounded up |

use bytes::Bytes;

use super::args;
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::limiter::decision::Decision;
use crate::limiter::units::{self, Rate};
use crate::protocol::{Frame, Scalar};

/// A count as an integer reply value (saturating at `i64::MAX`).
pub fn uint(n: u64) -> Scalar {
    Scalar::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The uniform admission reply: the five shared fields, then `extras` in order.
pub fn decision_reply<I>(d: &Decision, extras: I) -> Frame
where
    I: IntoIterator<Item = (&'static str, Scalar)>,
    I::IntoIter: ExactSizeIterator,
{
    decision_reply_with(d, uint(d.limit), uint(d.remaining), extras)
}

/// [`decision_reply`] with `limit` and `remaining` given as values (COST answers decimals).
/// A [`Frame::Fields`]: one allocation, nothing to drop per field.
pub fn decision_reply_with<I>(d: &Decision, limit: Scalar, remaining: Scalar, extras: I) -> Frame
where
    I: IntoIterator<Item = (&'static str, Scalar)>,
    I::IntoIter: ExactSizeIterator,
{
    let extras = extras.into_iter();
    let mut m = Vec::with_capacity(5 + extras.len());
    m.extend([
        ("allowed", Scalar::Bool(d.allowed)),
        ("limit", limit),
        ("remaining", remaining),
        ("retry_after_ms", Scalar::Int(d.retry_after_ms())),
        ("reset_after_ms", Scalar::Int(d.reset_after_ms())),
    ]);
    m.extend(extras);
    Frame::Fields(m)
}

/// A map key.
pub fn field(name: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(name.as_bytes()))
}

/// Milliseconds (rounded up) as an integer reply value.
pub fn ms(n: Nanos) -> Scalar {
    uint(n.as_millis_ceil())
}

fn unit_error(what: &str, arg: &[u8], e: units::UnitError) -> CommandError {
    CommandError::other(format!("invalid {what} '{}': {e}", args::text(arg)))
}

/// A duration argument with a unit (`250ms`, `30s`, `1m`, `1h`, `1d`).
pub fn duration(what: &str, arg: &[u8]) -> Result<Nanos, CommandError> {
    let s = std::str::from_utf8(arg)
        .map_err(|_| unit_error(what, arg, units::UnitError::NotANumber))?;
    units::parse_duration(s).map_err(|e| unit_error(what, arg, e))
}

/// A rate argument `N/duration` (`100/1m`, `5/s`).
pub fn rate(arg: &[u8]) -> Result<Rate, CommandError> {
    let s = std::str::from_utf8(arg)
        .map_err(|_| unit_error("rate", arg, units::UnitError::NotARate))?;
    units::parse_rate(s).map_err(|e| unit_error("rate", arg, e))
}

/// A count argument (a whole number > 0), e.g. the value of `COST` or `BURST`.
pub fn count(what: &str, arg: &[u8]) -> Result<u64, CommandError> {
    match args::parse_i64(arg) {
        Some(n) if n > 0 => Ok(n as u64),
        Some(_) => Err(CommandError::other(format!(
            "invalid {what} '{}': value must be greater than zero",
            args::text(arg)
        ))),
        None => Err(CommandError::other(format!(
            "invalid {what} '{}': must be a whole number greater than zero",
            args::text(arg)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, RespVersion};
    use bytes::BytesMut;

    #[test]
    fn uniform_reply_is_a_map_in_resp3_and_flat_in_resp2() {
        let d = Decision::deny(10, 0, Some(Nanos(1_500_001)), Nanos(2_000_000));
        let f = decision_reply(&d, [("used", Scalar::Int(10))]);
        let mut out = BytesMut::new();
        encode(&f, RespVersion::Resp3, &mut out);
        assert_eq!(
            &out[..],
            &b"%6\r\n$7\r\nallowed\r\n#f\r\n$5\r\nlimit\r\n:10\r\n$9\r\nremaining\r\n:0\r\n\
$14\r\nretry_after_ms\r\n:2\r\n$14\r\nreset_after_ms\r\n:2\r\n$4\r\nused\r\n:10\r\n"[..]
        );
        let mut out = BytesMut::new();
        encode(&f, RespVersion::Resp2, &mut out);
        assert!(out.starts_with(b"*12\r\n$7\r\nallowed\r\n:0\r\n"));
    }

    #[test]
    fn argument_errors_name_the_argument() {
        assert_eq!(
            rate(b"100/1x").unwrap_err().to_string(),
            "ERR invalid rate '100/1x': unknown duration unit 'x' (use ms, s, m, h or d)"
        );
        assert!(duration("TTL", b"0s").is_err());
        assert_eq!(count("COST", b"3").unwrap(), 3);
        assert_eq!(
            count("COST", b"1.5").unwrap_err().to_string(),
            "ERR invalid COST '1.5': must be a whole number greater than zero"
        );
        assert_eq!(
            count("COST", b"0").unwrap_err().to_string(),
            "ERR invalid COST '0': value must be greater than zero"
        );
    }
}
