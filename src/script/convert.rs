//! Lua <-> RESP conversion with Redis 7.0's rules (`script_lua.c`), both ways.
//!
//! Command reply to Lua (what `redis.call` returns), under `redis.setresp(2)` (the default):
//! integer -> number; bulk -> string; null bulk or null array -> false; array -> table; status
//! -> `{ok=...}`; error -> `{err=...}`. RESP3-only shapes arrive as the RESP2 client would see
//! them (map -> flat array, set -> array, double -> string, boolean -> 1/0). Under
//! `redis.setresp(3)`: null -> nil, boolean -> boolean, map -> `{map={k=v}}`, set ->
//! `{set={member=true}}`, double -> `{double=n}`, big number -> `{big_number=s}`, verbatim ->
//! `{verbatim_string={format=..., string=...}}`.
//!
//! Lua to reply (what a script returns): string -> bulk; number -> integer (truncated towards
//! zero; NaN and out-of-range values give the integer Redis's C cast gives, i64::MIN);
//! true -> 1 (RESP3 scripts: boolean); false and nil -> null (RESP3 scripts: false is a
//! boolean); a table: `{err=s}` -> error, `{ok=s}` -> status, `{double=n}`, `{big_number=s}`,
//! `{verbatim_string=...}`, `{map=t}`, `{set=t}`, otherwise its array part up to the first nil.
//!
//! Depends on `mlua` and [`crate::protocol::Frame`] only.

use bytes::{Bytes, BytesMut};
use mlua::{Lua, Table, Value};

use crate::protocol::encode::format_double;
use crate::protocol::Frame;

/// Nesting beyond which a returned table becomes an error element (Redis runs out of Lua
/// stack at a similar depth and answers the same text there).
pub const MAX_DEPTH: usize = 1000;

/// The field names of Redis's reply tables as Lua strings made once per VM: a lookup with a
/// ready string skips hashing and interning the name, and a script's return value is probed
/// for seven of them before it counts as an array.
pub struct Fields {
    err: mlua::String,
    ok: mlua::String,
    double: mlua::String,
    big_number: mlua::String,
    verbatim_string: mlua::String,
    map: mlua::String,
    set: mlua::String,
    /// Lua's `next`: one call tells whether a table has anything past its array part.
    next: mlua::Function,
}

impl Fields {
    /// The names, created in `lua`.
    pub fn new(lua: &Lua) -> mlua::Result<Fields> {
        Ok(Fields {
            err: lua.create_string("err")?,
            ok: lua.create_string("ok")?,
            double: lua.create_string("double")?,
            big_number: lua.create_string("big_number")?,
            verbatim_string: lua.create_string("verbatim_string")?,
            map: lua.create_string("map")?,
            set: lua.create_string("set")?,
            next: lua.globals().raw_get("next")?,
        })
    }
}

/// Converts a command's reply for Lua.
pub fn frame_to_lua(lua: &Lua, fields: &Fields, frame: &Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Simple(s) => {
            let t = lua.create_table_with_capacity(0, 1)?;
            t.raw_set(&fields.ok, lua.create_string(s)?)?;
            Value::Table(t)
        }
        Frame::Error(s) => {
            let t = lua.create_table_with_capacity(0, 1)?;
            t.raw_set(&fields.err, lua.create_string(s)?)?;
            Value::Table(t)
        }
        Frame::Integer(n) => Value::Number(*n as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Null | Frame::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        // Seq only comes from (P|S)SUBSCRIBE-style commands, which scripts cannot call.
        Frame::Array(items) | Frame::Push(items) | Frame::Seq(items) => {
            array(lua, fields, items, resp3)?
        }
        Frame::Set(items) => {
            if resp3 {
                let set = lua.create_table_with_capacity(0, items.len())?;
                for item in items {
                    let k = frame_to_lua(lua, fields, item, resp3)?;
                    if !k.is_nil() {
                        set.raw_set(k, true)?;
                    }
                }
                wrap(lua, "set", Value::Table(set))?
            } else {
                array(lua, fields, items, resp3)?
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                let map = lua.create_table_with_capacity(0, pairs.len())?;
                for (k, v) in pairs {
                    let k = frame_to_lua(lua, fields, k, resp3)?;
                    if !k.is_nil() {
                        map.raw_set(k, frame_to_lua(lua, fields, v, resp3)?)?;
                    }
                }
                wrap(lua, "map", Value::Table(map))?
            } else {
                let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    t.raw_set(2 * i + 1, frame_to_lua(lua, fields, k, resp3)?)?;
                    t.raw_set(2 * i + 2, frame_to_lua(lua, fields, v, resp3)?)?;
                }
                Value::Table(t)
            }
        }
        Frame::Fields(f) => frame_to_lua(lua, fields, &Frame::fields_to_map(f), resp3)?,
        Frame::Double(d) => {
            if resp3 {
                wrap(lua, "double", Value::Number(*d))?
            } else {
                Value::String(lua.create_string(format_double(*d))?)
            }
        }
        Frame::Boolean(b) => {
            if resp3 {
                Value::Boolean(*b)
            } else {
                Value::Number(if *b { 1.0 } else { 0.0 })
            }
        }
        Frame::Verbatim(format, body) => {
            if resp3 {
                let v = lua.create_table_with_capacity(0, 2)?;
                v.raw_set("format", *format)?;
                v.raw_set("string", lua.create_string(body)?)?;
                wrap(lua, "verbatim_string", Value::Table(v))?
            } else {
                Value::String(lua.create_string(body)?)
            }
        }
        Frame::BigNumber(digits) => {
            if resp3 {
                wrap(lua, "big_number", Value::String(lua.create_string(digits)?))?
            } else {
                Value::String(lua.create_string(digits)?)
            }
        }
    })
}

fn array(lua: &Lua, fields: &Fields, items: &[Frame], resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        // A RESP3 null becomes nil, which leaves a hole in the table, as in Redis.
        t.raw_set(i + 1, frame_to_lua(lua, fields, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

fn wrap(lua: &Lua, field: &'static str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

/// Converts a script's return value to the reply; `resp3` is the script's protocol
/// (`redis.setresp`) when it returned.
pub fn lua_to_frame(fields: &Fields, value: &Value, resp3: bool) -> Frame {
    to_frame(fields, value, resp3, 0)
}

fn to_frame(fields: &Fields, value: &Value, resp3: bool, depth: usize) -> Frame {
    match value {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => match (resp3, b) {
            (true, b) => Frame::Boolean(*b),
            (false, true) => Frame::Integer(1),
            (false, false) => Frame::Null,
        },
        Value::Integer(n) => Frame::Integer(*n),
        Value::Number(n) => Frame::Integer(number_to_integer(*n)),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Frame::error("ERR reached lua stack limit");
            }
            table_to_frame(fields, t, resp3, depth)
        }
        _ => Frame::Null,
    }
}

/// `(long long)` of a Lua number as Redis's C cast computes it on x86-64: truncation towards
/// zero, and the "integer indefinite" value i64::MIN for NaN and out-of-range numbers.
pub fn number_to_integer(n: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if n.is_nan() || !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn string_field(t: &Table, field: impl mlua::IntoLua) -> Option<Bytes> {
    match t.raw_get::<Value>(field).ok()? {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        _ => None,
    }
}

fn table_to_frame(fields: &Fields, t: &Table, resp3: bool, depth: usize) -> Frame {
    // Most tables are plain arrays: read the array part, then ask `next` for a key after it.
    // Only a table with more than that can be one of the shapes below, which take precedence.
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    let last = if items.is_empty() {
        Value::Nil
    } else {
        Value::Integer(items.len() as i64)
    };
    let array = |items: &[Value]| {
        Frame::Array(
            items
                .iter()
                .map(|v| to_frame(fields, v, resp3, depth + 1))
                .collect(),
        )
    };
    if let Ok(Value::Nil) = fields.next.call::<Value>((t, last)) {
        return array(&items);
    }
    if let Some(err) = string_field(t, &fields.err) {
        return Frame::Error(sanitize_error(&err));
    }
    if let Some(ok) = string_field(t, &fields.ok) {
        return Frame::Simple(map_crlf(&ok));
    }
    match t.raw_get::<Value>(&fields.double) {
        Ok(Value::Number(d)) => return Frame::Double(d),
        Ok(Value::Integer(d)) => return Frame::Double(d as f64),
        _ => {}
    }
    if let Some(digits) = string_field(t, &fields.big_number) {
        return Frame::BigNumber(map_crlf(&digits));
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>(&fields.verbatim_string) {
        if let (Some(format), Some(body)) = (string_field(&v, "format"), string_field(&v, "string"))
        {
            return Frame::Verbatim(verbatim_format(&format), body);
        }
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>(&fields.map) {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    to_frame(fields, &k, resp3, depth + 1),
                    to_frame(fields, &v, resp3, depth + 1),
                )
            })
            .collect();
        return Frame::Map(pairs);
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>(&fields.set) {
        let members = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_frame(fields, &k, resp3, depth + 1))
            .collect();
        return Frame::Set(members);
    }
    array(&items)
}

/// The three-letter formats a verbatim reply can carry; any other is sent as `txt`.
fn verbatim_format(format: &[u8]) -> &'static str {
    match format {
        b"mkd" => "mkd",
        _ => "txt",
    }
}

/// An error text safe for the wire, as Redis's `addReplyErrorFormat` makes it: trailing CR/LF
/// trimmed, inner ones replaced by spaces.
pub fn sanitize_error(text: &[u8]) -> Bytes {
    let end = text
        .iter()
        .rposition(|&c| c != b'\r' && c != b'\n')
        .map_or(0, |i| i + 1);
    map_crlf(&text[..end])
}

fn map_crlf(text: &[u8]) -> Bytes {
    if !text.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Bytes::copy_from_slice(text);
    }
    text.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect::<Vec<u8>>()
        .into()
}

/// Appends a `redis.call` argument to `buf`: strings as they are, numbers formatted with
/// `%.17g` (Redis 7.0 does not use Lua's own `%.14g`, which loses precision); false for
/// anything else, which is refused. A call gathers all its arguments in one buffer (one
/// allocation per call).
pub fn push_arg(v: &Value, buf: &mut BytesMut) -> bool {
    let n = match v {
        Value::String(s) => {
            buf.extend_from_slice(&s.as_bytes());
            return true;
        }
        Value::Number(n) => *n,
        Value::Integer(n) => *n as f64,
        _ => return false,
    };
    buf.extend_from_slice(format_g(n, 17).as_bytes());
    true
}

/// C's `printf("%.{precision}g", x)` (glibc spelling of NaN and infinities).
pub fn format_g(x: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // A whole number with at most `precision` digits (and exact in a double) prints as its
    // integer digits; this skips the exact-decimal formatting below, the costly part.
    let digits_fit = 10f64.powi(precision.min(15) as i32);
    if x.fract() == 0.0 && x.abs() < digits_fit {
        return itoa::Buffer::new().format(x as i64).to_owned();
    }
    format_g_exact(x, precision)
}

/// [`format_g`] of a finite, non-zero `x` through Rust's exact decimal formatting.
fn format_g_exact(x: f64, precision: usize) -> String {
    let sci = format!("{:.*e}", precision - 1, x);
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("invariant: `{:e}` output has an exponent");
    let exp: i32 = exp
        .parse()
        .expect("invariant: `{:e}` output has an integer exponent");
    if exp < -4 || exp >= precision as i32 {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_owned()
    }
}

fn strip_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_arg_prints_numbers_as_percent_17g() {
        let lua = Lua::new();
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.0 / 3.0,
            1e15,
            1e16 + 2.0,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_993.0,
            1e17,
            1e20,
            f64::NAN,
            f64::INFINITY,
        ];
        let mut x = 1.0f64;
        while x < 1e19 {
            values.extend([x, -x, x + 1.0, x - 1.0]);
            x *= 7.0;
        }
        for n in values {
            let mut buf = BytesMut::new();
            assert!(push_arg(&Value::Number(n), &mut buf));
            assert_eq!(&buf[..], format_g(n, 17).as_bytes(), "{n}");
        }
        let mut buf = BytesMut::new();
        assert!(push_arg(&Value::Integer(-42), &mut buf));
        assert!(push_arg(
            &Value::String(lua.create_string("k").unwrap()),
            &mut buf
        ));
        assert!(!push_arg(&Value::Boolean(true), &mut buf));
        assert!(!push_arg(&Value::Nil, &mut buf));
        assert_eq!(&buf[..], b"-42k");
    }

    #[test]
    fn whole_numbers_skip_the_exact_formatting_with_the_same_text() {
        for precision in 1..=17 {
            let mut values = vec![1.0, 7.0, 9.0, 10.0, 99.0, 12345.0, 2f64.powi(53)];
            for e in 1..=17 {
                let p = 10f64.powi(e);
                values.extend([p - 1.0, p, p + 1.0]);
            }
            for x in values {
                for x in [x, -x] {
                    assert_eq!(
                        format_g(x, precision),
                        format_g_exact(x, precision),
                        "{x} with precision {precision}"
                    );
                }
            }
        }
    }

    #[test]
    fn format_g_matches_printf() {
        let cases: &[(f64, usize, &str)] = &[
            (0.1, 17, "0.10000000000000001"),
            (1e20, 17, "1e+20"),
            (-0.0, 17, "-0"),
            (123456789012345678.0, 17, "1.2345678901234568e+17"),
            (1.5e-7, 17, "1.4999999999999999e-07"),
            (1.0, 17, "1"),
            (100.0, 17, "100"),
            (0.0001, 17, "0.0001"),
            (f64::INFINITY, 17, "inf"),
            (f64::NEG_INFINITY, 17, "-inf"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (0.1, 14, "0.1"),
            (1.5, 14, "1.5"),
            (99999999999999.5, 14, "1e+14"),
            (-2.5, 14, "-2.5"),
        ];
        for &(x, p, want) in cases {
            assert_eq!(format_g(x, p), want, "{x} with precision {p}");
        }
    }

    #[test]
    fn numbers_truncate_like_the_c_cast() {
        assert_eq!(number_to_integer(3.99), 3);
        assert_eq!(number_to_integer(-3.99), -3);
        assert_eq!(number_to_integer(f64::NAN), i64::MIN);
        assert_eq!(number_to_integer(f64::INFINITY), i64::MIN);
        assert_eq!(number_to_integer(1e30), i64::MIN);
        assert_eq!(number_to_integer(-1e30), i64::MIN);
    }

    #[test]
    fn error_texts_are_made_wire_safe() {
        assert_eq!(
            sanitize_error(b"ERR a\r\nb\r\n"),
            Bytes::from_static(b"ERR a  b")
        );
        assert_eq!(sanitize_error(b""), Bytes::new());
    }
}
