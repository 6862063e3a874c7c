//! `cjson.encode` / `cjson.decode` with lua-cjson 2.1's behaviour as Redis bundles it (default
//! configuration): numbers printed with `%.14g`, NaN and infinities refused, `/` escaped as
//! `\/`, an empty table encodes as `{}`, tables whose keys are all positive integers are
//! arrays (holes become `null`, excessively sparse ones are refused), nesting is capped at
//! 1000 levels both ways, `null` decodes to `cjson.null` (a NULL light userdata), and every
//! error message and its "at character N" position match lua-cjson's.
//!
//! Errors are returned as text; the prelude raises them at the caller's line.

use mlua::{LightUserData, Lua, Table, Value};

use super::convert::format_g;

/// Deepest nesting either direction accepts (lua-cjson's `encode_max_depth` and
/// `decode_max_depth` defaults).
const MAX_DEPTH: usize = 1000;
/// lua-cjson's `encode_sparse_ratio` and `encode_sparse_safe` defaults.
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

/// `cjson.null`.
pub fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Lua's name for a value's type.
fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Number(_) | Value::Integer(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// Encodes `v` as JSON.
pub fn encode(v: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode_value(v, 0, &mut out)?;
    Ok(out)
}

fn exception(v: &Value, reason: &str) -> String {
    format!("Cannot serialise {}: {reason}", lua_type(v))
}

fn encode_number(v: &Value, n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        return Err(exception(v, "must not be NaN or Inf"));
    }
    out.extend_from_slice(format_g(n, 14).as_bytes());
    Ok(())
}

fn encode_value(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => encode_number(v, *n, out)?,
        Value::Integer(n) => encode_number(v, *n as f64, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(v, t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode_value(&item, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, item) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::Number(n) => {
                                out.push(b'"');
                                encode_number(&k, *n, out)?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::Integer(n) => {
                                out.push(b'"');
                                encode_number(&k, *n as f64, out)?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::String(s) => {
                                encode_string(&s.as_bytes(), out);
                                out.push(b':');
                            }
                            _ => return Err(exception(&k, "table key must be a number or string")),
                        }
                        encode_value(&item, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(exception(other, "type not supported")),
    }
    Ok(())
}

/// lua-cjson's `lua_array_length`: `Some(max index)` when every key is a positive integer,
/// `None` for an object; an error for an excessively sparse array.
fn array_length(v: &Value, t: &Table) -> Result<Option<usize>, String> {
    let mut max = 0usize;
    let mut items = 0usize;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let k = match k {
            Value::Number(n) => n,
            Value::Integer(n) => n as f64,
            _ => return Ok(None),
        };
        if k.floor() != k || k < 1.0 {
            return Ok(None);
        }
        max = max.max(k as usize);
        items += 1;
    }
    if max > items * SPARSE_RATIO && max > SPARSE_SAFE {
        return Err(exception(v, "excessively sparse array"));
    }
    Ok(Some(max))
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// A token of lua-cjson's scanner.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    /// How lua-cjson names the token in "found ..." (an error token by its message).
    fn found(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(msg) => msg,
        }
    }
}

struct Parser<'a, 'l> {
    lua: &'l Lua,
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

/// Decodes JSON text into Lua values.
pub fn decode(lua: &Lua, s: &[u8]) -> Result<Value, String> {
    if s.len() >= 2 && (s[0] == 0 || s[1] == 0) {
        return Err("JSON parser does not support UTF-16 or UTF-32".into());
    }
    let mut p = Parser {
        lua,
        s,
        pos: 0,
        depth: 0,
    };
    let (tok, at) = p.next();
    let v = p.value(tok, at)?;
    let (tok, at) = p.next();
    if tok != Tok::End {
        return Err(expected("the end", &tok, at));
    }
    Ok(v)
}

fn expected(what: &str, tok: &Tok, at: usize) -> String {
    format!(
        "Expected {what} but found {} at character {}",
        tok.found(),
        at + 1
    )
}

impl Parser<'_, '_> {
    /// The byte at `i`; NUL and the end of input both read as 0 (lua-cjson scans a C string).
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// The next token and the position it is reported at.
    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let c = self.at(start);
        let single = match c {
            0 => Some(Tok::End),
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            if c != 0 {
                self.pos += 1;
            }
            return (t, start);
        }
        if c == b'"' {
            return self.string();
        }
        if c == b'-' || c.is_ascii_digit() {
            return self.number();
        }
        let rest = &self.s[start..];
        for (word, tok) in [
            (&b"true"[..], Tok::Bool(true)),
            (b"false", Tok::Bool(false)),
            (b"null", Tok::Null),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return (tok, start);
            }
        }
        if self.is_invalid_number() {
            return self.number();
        }
        (Tok::Error("invalid token"), start)
    }

    /// lua-cjson's `json_is_invalid_number` for a token not starting with `-` or a digit: the
    /// strtod-only forms (`+1`, `inf`, `nan`) that `decode_invalid_numbers` lets through.
    fn is_invalid_number(&self) -> bool {
        let rest = &self.s[self.pos..];
        if rest.first() == Some(&b'+') {
            return true;
        }
        let lower: Vec<u8> = rest.iter().take(3).map(u8::to_ascii_lowercase).collect();
        lower == b"inf" || lower == b"nan"
    }

    fn number(&mut self) -> (Tok, usize) {
        let start = self.pos;
        match strtod(&self.s[start..]) {
            Some((n, len)) => {
                self.pos += len;
                (Tok::Num(n), start)
            }
            None => (Tok::Error("invalid number"), start),
        }
    }

    fn string(&mut self) -> (Tok, usize) {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.at(self.pos);
            match c {
                0 => return (Tok::Error("unexpected end of string"), self.pos),
                b'"' => {
                    self.pos += 1;
                    return (Tok::Str(out), start);
                }
                b'\\' => {
                    let esc = self.at(self.pos + 1);
                    let simple = match esc {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        self.pos += 2;
                    } else if esc == b'u' {
                        match self.unicode_escape() {
                            Some((cp, len)) => {
                                let mut buf = [0u8; 4];
                                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                                self.pos += len;
                            }
                            None => return (Tok::Error("invalid unicode escape code"), self.pos),
                        }
                    } else {
                        return (Tok::Error("invalid escape code"), self.pos);
                    }
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.s.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok()
    }

    /// A `\uXXXX` escape (or a surrogate pair) at `pos`: the code point and escape length.
    fn unicode_escape(&self) -> Option<(u32, usize)> {
        let hi = self.hex4(self.pos + 2)?;
        if (0xDC00..=0xDFFF).contains(&hi) {
            return None;
        }
        if (0xD800..=0xDBFF).contains(&hi) {
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let lo = self.hex4(self.pos + 8)?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return None;
            }
            return Some((0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12));
        }
        Some((hi, 6))
    }

    fn descend(&mut self, at: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                at + 1
            ));
        }
        Ok(())
    }

    fn value(&mut self, tok: Tok, at: usize) -> Result<Value, String> {
        let lua_err = |e: mlua::Error| e.to_string();
        Ok(match tok {
            Tok::Str(s) => Value::String(self.lua.create_string(&s).map_err(lua_err)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => null(),
            Tok::ObjBegin => {
                self.descend(at)?;
                let t = self.lua.create_table().map_err(lua_err)?;
                let (mut tok, mut at) = self.next();
                if tok != Tok::ObjEnd {
                    loop {
                        let Tok::Str(key) = tok else {
                            return Err(expected("object key string", &tok, at));
                        };
                        let (colon, cat) = self.next();
                        if colon != Tok::Colon {
                            return Err(expected("colon", &colon, cat));
                        }
                        let (vt, vat) = self.next();
                        let v = self.value(vt, vat)?;
                        let key = self.lua.create_string(&key).map_err(lua_err)?;
                        t.raw_set(key, v).map_err(lua_err)?;
                        let (sep, sat) = self.next();
                        match sep {
                            Tok::ObjEnd => break,
                            Tok::Comma => (tok, at) = self.next(),
                            other => return Err(expected("comma or object end", &other, sat)),
                        }
                    }
                }
                self.depth -= 1;
                Value::Table(t)
            }
            Tok::ArrBegin => {
                self.descend(at)?;
                let t = self.lua.create_table().map_err(lua_err)?;
                let (mut tok, mut at) = self.next();
                if tok != Tok::ArrEnd {
                    let mut i = 1;
                    loop {
                        let v = self.value(tok, at)?;
                        t.raw_set(i, v).map_err(lua_err)?;
                        i += 1;
                        let (sep, sat) = self.next();
                        match sep {
                            Tok::ArrEnd => break,
                            Tok::Comma => (tok, at) = self.next(),
                            other => return Err(expected("comma or array end", &other, sat)),
                        }
                    }
                }
                self.depth -= 1;
                Value::Table(t)
            }
            other => return Err(expected("value", &other, at)),
        })
    }
}

/// C's `strtod` on a prefix of `s`: the number and how many bytes it used, or `None` when no
/// number starts there. Accepts what glibc accepts: decimal with exponent, hexadecimal
/// integers and fractions, `inf`/`infinity`/`nan`, with an optional sign.
pub fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower: Vec<u8> = rest.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"infinity") {
        return Some((sign * f64::INFINITY, i + 8));
    }
    if lower.starts_with(b"inf") {
        return Some((sign * f64::INFINITY, i + 3));
    }
    if lower.starts_with(b"nan") {
        return Some((f64::NAN, i + 3));
    }
    if lower.starts_with(b"0x") {
        let mut j = i + 2;
        let mut v = 0f64;
        let mut any = false;
        while let Some(d) = s.get(j).and_then(|c| (*c as char).to_digit(16)) {
            v = v * 16.0 + f64::from(d);
            any = true;
            j += 1;
        }
        if s.get(j) == Some(&b'.') {
            let mut scale = 1.0 / 16.0;
            let mut k = j + 1;
            while let Some(d) = s.get(k).and_then(|c| (*c as char).to_digit(16)) {
                v += f64::from(d) * scale;
                scale /= 16.0;
                any = true;
                k += 1;
            }
            if any {
                j = k;
            }
        }
        if !any {
            // "0x" alone: strtod reads the "0".
            return Some((sign * 0.0, i + 1));
        }
        return Some((sign * v, j));
    }
    let mut j = i;
    let digits = |j: &mut usize| {
        let from = *j;
        while s.get(*j).is_some_and(u8::is_ascii_digit) {
            *j += 1;
        }
        *j > from
    };
    let int = digits(&mut j);
    let mut frac = false;
    if s.get(j) == Some(&b'.') {
        let mut k = j + 1;
        frac = digits(&mut k);
        if int || frac {
            j = k;
        }
    }
    if !int && !frac {
        return None;
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if digits(&mut k) {
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[i..j]).ok()?;
    let text = text.strip_suffix('.').unwrap_or(text);
    let text = if text.starts_with('.') {
        format!("0{text}")
    } else {
        text.to_owned()
    };
    text.parse::<f64>().ok().map(|v| (sign * v, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_reads_the_longest_number() {
        assert_eq!(strtod(b"1.5e3x"), Some((1500.0, 5)));
        assert_eq!(strtod(b"0x10"), Some((16.0, 4)));
        assert_eq!(strtod(b"-0"), Some((-0.0, 2)));
        assert_eq!(strtod(b"1e"), Some((1.0, 1)));
        assert_eq!(strtod(b"2."), Some((2.0, 2)));
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"x"), None);
        assert_eq!(
            strtod(b"+inf").map(|(v, n)| (v.is_infinite(), n)),
            Some((true, 4))
        );
    }

    #[test]
    fn strings_escape_like_lua_cjson() {
        let mut out = Vec::new();
        encode_string(b"\x01\x7f\x80\t\n\"\\/", &mut out);
        assert_eq!(out, b"\"\\u0001\\u007f\x80\\t\\n\\\"\\\\\\/\"".to_vec());
    }
}
