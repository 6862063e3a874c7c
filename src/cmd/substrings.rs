//! Commands on parts of a string: APPEND, STRLEN, SETRANGE, GETRANGE, SUBSTR, SETBIT, GETBIT,
//! BITCOUNT and LCS, with Redis 7.0's replies and error texts.
//!
//! A string never grows past `proto-max-bulk-len` (Redis's `string exceeds maximum allowed size
//! (proto-max-bulk-len)`, and its bit-offset limit); offsets and lengths use checked
//! arithmetic. Writes keep the key's TTL, and a write that changes nothing (an empty SETRANGE,
//! a SETBIT to the bit's current value) does not touch the key, so it is neither journaled nor
//! seen by WATCH.

use bytes::{Bytes, BytesMut};

use super::args::{self, is};
use super::flags::*;
use super::strings::{copy_value, read_string};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, Shard, Value};

/// Commands on parts of a string.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "APPEND",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Append a value to a key",
        since: "2.0.0",
        complexity: "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
        args: "key:key value:string",
        handler: append,
        ..BASE
    },
    CommandSpec {
        name: "STRLEN",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Get the length of the value stored in a key",
        since: "2.2.0",
        args: "key:key",
        handler: strlen,
        ..BASE
    },
    CommandSpec {
        name: "SETRANGE",
        arity: 4,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Overwrite part of a string at key starting at the specified offset",
        since: "2.2.0",
        complexity: "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        args: "key:key offset:integer value:string",
        handler: setrange,
        ..BASE
    },
    CommandSpec {
        name: "GETRANGE",
        arity: 4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Get a substring of the string stored at a key",
        since: "2.4.0",
        complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
        args: "key:key start:integer end:integer",
        handler: getrange,
        ..BASE
    },
    CommandSpec {
        name: "SUBSTR",
        arity: 4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Get a substring of the string stored at a key",
        complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
        args: "key:key start:integer end:integer",
        handler: getrange,
        ..BASE
    },
    CommandSpec {
        name: "SETBIT",
        arity: 4,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "bitmap",
        summary: "Sets or clears the bit at offset in the string value stored at key",
        since: "2.2.0",
        args: "key:key offset:integer value:integer",
        handler: setbit,
        ..BASE
    },
    CommandSpec {
        name: "GETBIT",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "bitmap",
        summary: "Returns the bit value at offset in the string value stored at key",
        since: "2.2.0",
        args: "key:key offset:integer",
        handler: getbit,
        ..BASE
    },
    CommandSpec {
        name: "BITCOUNT",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "bitmap",
        summary: "Count set bits in a string",
        since: "2.6.0",
        complexity: "O(N)",
        args: "key:key [range=(start:integer end:integer [unit=[BYTE|BIT]])]",
        handler: bitcount,
        ..BASE
    },
    CommandSpec {
        name: "LCS",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "string",
        summary: "Find longest common substring",
        since: "7.0.0",
        complexity: "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        args: "key1:key key2:key [LEN] [IDX] [MINMATCHLEN min-match-len:integer] [WITHMATCHLEN]",
        handler: lcs,
        ..BASE
    },
];

fn too_long() -> CommandError {
    CommandError::other("string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Redis's `checkStringLength`: `len + extra` must not overflow nor pass the limit.
fn check_length(ctx: &Ctx<'_>, len: u64, extra: u64) -> Result<(), CommandError> {
    let max = ctx.shared.engine.config.read().proto_max_bulk_len as u64;
    match len.checked_add(extra) {
        Some(total) if total <= max => Ok(()),
        _ => Err(too_long()),
    }
}

/// Replaces the live string at `key` by `f` applied to a writable copy of its bytes, keeping
/// the TTL. The copy is free when nothing else holds the bytes (the common case), so repeated
/// appends stay amortized O(1). Call only after [`read_string`] found a string.
fn edit_string(s: &mut Shard, key: &[u8], now: Nanos, f: impl FnOnce(&mut BytesMut)) -> usize {
    let Some(e) = s.get_mut(key, now) else {
        unreachable!("invariant: read_string() found the key under the same lock")
    };
    let mut buf = match std::mem::replace(&mut e.value, Value::Int(0)) {
        Value::Str(b) => b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..])),
        other => BytesMut::from(&other.string_bytes().unwrap_or_default()[..]),
    };
    f(&mut buf);
    let len = buf.len();
    e.value = Value::str(buf.freeze());
    len
}

fn append(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (key, value) = (&req[1], &req[2]);
    let max = ctx.shared.engine.config.read().proto_max_bulk_len as u64;
    ctx.with_shard(key, |s| {
        let Some(old) = read_string(s, key, now)? else {
            s.insert(key, Entry::new(copy_value(value)));
            return Ok(Frame::Integer(value.len() as i64));
        };
        if (old.len() as u64)
            .checked_add(value.len() as u64)
            .is_none_or(|total| total > max)
        {
            return Err(too_long());
        }
        drop(old);
        let len = edit_string(s, key, now, |b| b.extend_from_slice(value));
        Ok(Frame::Integer(len as i64))
    })
}

fn strlen(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let len = ctx.with_shard(key, |s| read_string(s, key, now))?;
    Ok(Frame::Integer(len.map_or(0, |b| b.len() as i64)))
}

fn setrange(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let offset = args::int(&req[2])?;
    let offset =
        u64::try_from(offset).map_err(|_| CommandError::other("offset is out of range"))?;
    let now = ctx.now;
    let (key, value) = (&req[1], &req[3]);
    // The limit depends only on the arguments; Redis reports it after the type check.
    let fits = check_length(ctx, offset, value.len() as u64);
    ctx.with_shard(key, |s| {
        let old = read_string(s, key, now)?;
        // Setting nothing answers the current length (0 for a missing key) and writes nothing.
        if value.is_empty() {
            return Ok(Frame::Integer(old.map_or(0, |b| b.len() as i64)));
        }
        fits?;
        let start = offset as usize; // fits: checked against proto-max-bulk-len
        let end = start + value.len();
        if old.is_none() {
            let mut buf = vec![0u8; end];
            buf[start..].copy_from_slice(value);
            s.insert(key, Entry::new(Value::str(Bytes::from(buf))));
            return Ok(Frame::Integer(end as i64));
        }
        drop(old);
        let len = edit_string(s, key, now, |b| {
            if b.len() < end {
                b.resize(end, 0);
            }
            b[start..end].copy_from_slice(value);
        });
        Ok(Frame::Integer(len as i64))
    })
}

/// Redis's GETRANGE arithmetic: negative indexes count from the end, then both are clamped;
/// `None` for an empty range.
fn byte_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    }
    .max(0);
    let end = if end < 0 {
        len.saturating_add(end)
    } else {
        end
    }
    .max(0);
    let end = end.min(len - 1);
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

fn getrange(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let start = args::int(&req[2])?;
    let end = args::int(&req[3])?;
    let now = ctx.now;
    let key = &req[1];
    let Some(v) = ctx.with_shard(key, |s| read_string(s, key, now))? else {
        return Ok(Frame::Bulk(Bytes::new()));
    };
    Ok(Frame::Bulk(match byte_range(start, end, v.len() as i64) {
        Some((a, b)) => v.slice(a..=b),
        None => Bytes::new(),
    }))
}

/// A bit offset as Redis's `getBitOffsetFromArgument` reads it: a non-negative integer whose
/// byte lies within `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8]) -> Result<u64, CommandError> {
    let max = ctx.shared.engine.config.read().proto_max_bulk_len as u64;
    args::parse_i64(arg)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (n >> 3) < max)
        .ok_or_else(|| CommandError::other("bit offset is not an integer or out of range"))
}

fn setbit(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let offset = bit_offset(ctx, &req[2])?;
    let on = match args::parse_i64(&req[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CommandError::other("bit is not an integer or out of range")),
    };
    let byte = (offset >> 3) as usize; // below proto-max-bulk-len, checked above
    let mask = 1u8 << (7 - (offset & 7));
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(old) = read_string(s, key, now)? else {
            let mut buf = vec![0u8; byte + 1];
            if on {
                buf[byte] = mask;
            }
            s.insert(key, Entry::new(Value::str(Bytes::from(buf))));
            return Ok(Frame::Integer(0));
        };
        let was = old.get(byte).is_some_and(|b| b & mask != 0);
        if was != on || old.len() <= byte {
            drop(old);
            edit_string(s, key, now, |b| {
                if b.len() <= byte {
                    b.resize(byte + 1, 0);
                }
                if on {
                    b[byte] |= mask;
                } else {
                    b[byte] &= !mask;
                }
            });
        }
        Ok(Frame::Integer(i64::from(was)))
    })
}

fn getbit(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let offset = bit_offset(ctx, &req[2])?;
    let now = ctx.now;
    let key = &req[1];
    let v = ctx.with_shard(key, |s| read_string(s, key, now))?;
    let set = v.is_some_and(|v| {
        usize::try_from(offset >> 3)
            .ok()
            .and_then(|i| v.get(i))
            .is_some_and(|b| b & (1 << (7 - (offset & 7))) != 0)
    });
    Ok(Frame::Integer(i64::from(set)))
}

fn bitcount(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    // Redis 7.0 looks the key up first: a missing key counts 0 whatever the arguments.
    let now = ctx.now;
    let key = &req[1];
    let Some(v) = ctx.with_shard(key, |s| read_string(s, key, now))? else {
        return Ok(Frame::Integer(0));
    };
    let ones = |b: &[u8]| b.iter().map(|x| i64::from(x.count_ones())).sum::<i64>();
    if req.len() == 2 {
        return Ok(Frame::Integer(ones(&v)));
    }
    if req.len() > 5 || req.len() == 3 {
        return Err(CommandError::Syntax);
    }
    let start = args::int(&req[2])?;
    let end = args::int(&req[3])?;
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::Integer(0));
    }
    let bits = match req.get(4) {
        None => false,
        Some(u) if is(u, "BIT") => true,
        Some(u) if is(u, "BYTE") => false,
        Some(_) => return Err(CommandError::Syntax),
    };
    let total = v.len() as i64 * if bits { 8 } else { 1 };
    let start = if start < 0 {
        total.saturating_add(start)
    } else {
        start
    }
    .max(0);
    let end = if end < 0 {
        total.saturating_add(end)
    } else {
        end
    }
    .max(0)
    .min(total - 1);
    if start > end {
        return Ok(Frame::Integer(0));
    }
    let (start, end) = (start as usize, end as usize);
    if !bits {
        return Ok(Frame::Integer(ones(&v[start..=end])));
    }
    // Whole bytes, then take off the bits before `start` and after `end` in the edge bytes.
    let (first, last) = (start >> 3, end >> 3);
    let mut n = ones(&v[first..=last]);
    let before = !(0xFFu8 >> (start & 7));
    let after = 0xFFu8.checked_shr((end & 7) as u32 + 1).unwrap_or(0);
    n -= i64::from((v[first] & before).count_ones());
    n -= i64::from((v[last] & after).count_ones());
    Ok(Frame::Integer(n))
}

fn lcs(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let keys = [&req[1], &req[2]];
    let (a, b) = ctx.with_keys(&keys, |g| {
        let mut read = |k: &Bytes| match g.shard(k).get(k, now).map(|e| &e.value) {
            None => Ok(Bytes::new()),
            Some(v) => v.string_bytes().ok_or(CommandError::other(
                "The specified keys must contain string values",
            )),
        };
        let a = read(keys[0]);
        let b = read(keys[1]);
        Ok::<_, CommandError>((a?, b?))
    })?;
    let (mut want_len, mut want_idx, mut with_len) = (false, false, false);
    let mut min_len: u64 = 0;
    let mut opts = args::Args::new(req, 3);
    while let Some(opt) = opts.next() {
        if is(opt, "IDX") {
            want_idx = true;
        } else if is(opt, "LEN") {
            want_len = true;
        } else if is(opt, "WITHMATCHLEN") {
            with_len = true;
        } else if is(opt, "MINMATCHLEN") && opts.remaining() > 0 {
            min_len = u64::try_from(opts.int()?).unwrap_or(0);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if want_len && want_idx {
        return Err(CommandError::other(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CommandError::other("String too long for LCS"));
    }
    // Redis's table of u32 lengths, and its cap on that transient memory.
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    let max = ctx.shared.engine.config.read().proto_max_bulk_len as u64;
    if cells.saturating_mul(4) > max {
        return Err(CommandError::other(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    Ok(lcs_reply(&a, &b, want_len, want_idx, with_len, min_len))
}

/// The LCS reply: the common subsequence, its length (`LEN`), or the matching ranges walked
/// from the ends of the strings backwards (`IDX`), as Redis reports them.
fn lcs_reply(
    a: &[u8],
    b: &[u8],
    want_len: bool,
    want_idx: bool,
    with_len: bool,
    min_len: u64,
) -> Frame {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[a.len() * width + b.len()];
    if want_len {
        return Frame::Integer(i64::from(total));
    }
    let mut common = vec![0u8; total as usize];
    let mut matches = Vec::new();
    // The current range as (a_start, a_end, b_start, b_end); None between ranges.
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j, mut left) = (a.len(), b.len(), total as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[left - 1] = a[i - 1];
            range = match range {
                None => Some((i - 1, i - 1, j - 1, j - 1)),
                Some((sa, ea, sb, eb)) if sa == i && sb == j => Some((sa - 1, ea, sb - 1, eb)),
                Some(r) => {
                    emit = true;
                    Some(r)
                }
            };
            if range.is_some_and(|(sa, _, sb, _)| sa == 0 || sb == 0) {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if range.is_some() {
                emit = true;
            }
        }
        if emit {
            if let Some((sa, ea, sb, eb)) = range.take() {
                let len = (ea - sa + 1) as u64;
                if want_idx && (min_len == 0 || len >= min_len) {
                    let pair = |x: usize, y: usize| {
                        Frame::Array(vec![Frame::Integer(x as i64), Frame::Integer(y as i64)])
                    };
                    let mut m = vec![pair(sa, ea), pair(sb, eb)];
                    if with_len {
                        m.push(Frame::Integer(len as i64));
                    }
                    matches.push(Frame::Array(m));
                }
            }
        }
    }
    if want_idx {
        return Frame::Map(vec![
            (Frame::bulk("matches"), Frame::Array(matches)),
            (Frame::bulk("len"), Frame::Integer(i64::from(total))),
        ]);
    }
    Frame::Bulk(Bytes::from(common))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn append_and_strlen() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["STRLEN", "k"]), int(0));
        assert_eq!(h.run(&["APPEND", "k", "foo"]), int(3));
        assert_eq!(h.run(&["APPEND", "k", "bar"]), int(6));
        assert_eq!(h.run(&["GET", "k"]), bulk("foobar"));
        assert_eq!(h.run(&["STRLEN", "k"]), int(6));
        h.run(&["EXPIRE", "k", "10"]);
        h.run(&["APPEND", "k", "!"]);
        assert_eq!(h.run(&["TTL", "k"]), int(10), "APPEND keeps the TTL");
        h.run(&["INCRBY", "n", "12"]);
        assert_eq!(h.run(&["STRLEN", "n"]), int(2));
        assert_eq!(h.run(&["APPEND", "n", "3"]), int(3));
        assert_eq!(h.run(&["INCR", "n"]), int(124));
        h.run(&["SADD", "s", "a"]);
        assert_eq!(h.run(&["APPEND", "s", "x"]), err(WRONGTYPE));
        assert_eq!(h.run(&["STRLEN", "s"]), err(WRONGTYPE));
    }

    #[test]
    fn strings_stop_at_proto_max_bulk_len() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]);
        let big = "x".repeat(1024 * 1024);
        assert_eq!(h.run(&["APPEND", "k", &big]), int(1024 * 1024));
        let too_long = err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        assert_eq!(h.run(&["APPEND", "k", "y"]), too_long);
        assert_eq!(h.run(&["SETRANGE", "k", "1048576", "y"]), too_long);
        assert_eq!(h.run(&["SETRANGE", "n", "1048576", "y"]), too_long);
        assert_eq!(
            h.run(&["SETRANGE", "n", "9223372036854775807", "y"]),
            too_long
        );
        assert_eq!(h.run(&["SETRANGE", "n", "9223372036854775807", ""]), int(0));
        let bad_offset = err("ERR bit offset is not an integer or out of range");
        assert_eq!(h.run(&["SETBIT", "b", "8388608", "1"]), bad_offset);
        assert_eq!(h.run(&["SETBIT", "b", "8388607", "1"]), int(0));
        assert_eq!(h.run(&["STRLEN", "b"]), int(1024 * 1024));
        assert_eq!(
            h.run(&["LCS", "k", "b"]),
            err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        );
    }

    #[test]
    fn setrange_and_getrange_follow_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SETRANGE", "k", "0", ""]), int(0));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "nothing is created");
        assert_eq!(h.run(&["SETRANGE", "k", "1", "b"]), int(2));
        assert_eq!(h.run(&["GET", "k"]), Frame::Bulk("\0b".into()));
        h.run(&["SET", "k", "Hello World"]);
        h.run(&["EXPIRE", "k", "10"]);
        assert_eq!(h.run(&["SETRANGE", "k", "6", "Redis"]), int(11));
        assert_eq!(h.run(&["GET", "k"]), bulk("Hello Redis"));
        assert_eq!(h.run(&["SETRANGE", "k", "0", ""]), int(11));
        assert_eq!(h.run(&["SETRANGE", "k", "12", "!"]), int(13));
        assert_eq!(h.run(&["GET", "k"]), Frame::Bulk("Hello Redis\0!".into()));
        assert_eq!(h.run(&["TTL", "k"]), int(10), "SETRANGE keeps the TTL");
        assert_eq!(
            h.run(&["SETRANGE", "k", "-1", "x"]),
            err("ERR offset is out of range")
        );
        assert_eq!(
            h.run(&["SETRANGE", "k", "x", "x"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SET", "s", "This is a string"]);
        for (start, end, want) in [
            ("0", "3", "This"),
            ("-3", "-1", "ing"),
            ("0", "-1", "This is a string"),
            ("10", "100", "string"),
            ("-1", "-5", ""),
            ("5", "3", ""),
            ("-100", "3", "This"),
            ("100", "200", ""),
            ("0", "-100", "T"),
        ] {
            assert_eq!(
                h.run(&["GETRANGE", "s", start, end]),
                bulk(want),
                "GETRANGE {start} {end}"
            );
        }
        assert_eq!(h.run(&["SUBSTR", "s", "0", "3"]), bulk("This"));
        assert_eq!(h.run(&["GETRANGE", "none", "0", "3"]), bulk(""));
        h.run(&["INCRBY", "n", "1234"]);
        assert_eq!(h.run(&["GETRANGE", "n", "1", "2"]), bulk("23"));
        assert_eq!(h.run(&["SETRANGE", "n", "0", "9"]), int(4));
        assert_eq!(h.run(&["INCR", "n"]), int(9235));
        h.run(&["SADD", "set", "a"]);
        assert_eq!(h.run(&["SETRANGE", "set", "0", "x"]), err(WRONGTYPE));
        assert_eq!(h.run(&["GETRANGE", "set", "0", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn bits() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GETBIT", "b", "100"]), int(0));
        assert_eq!(h.run(&["SETBIT", "b", "7", "1"]), int(0));
        assert_eq!(h.run(&["GET", "b"]), Frame::Bulk("\x01".into()));
        assert_eq!(h.run(&["SETBIT", "b", "7", "1"]), int(1));
        assert_eq!(h.run(&["SETBIT", "b", "1", "1"]), int(0));
        assert_eq!(h.run(&["GET", "b"]), bulk("A"));
        assert_eq!(h.run(&["GETBIT", "b", "1"]), int(1));
        assert_eq!(h.run(&["GETBIT", "b", "2"]), int(0));
        assert_eq!(h.run(&["SETBIT", "b", "23", "0"]), int(0));
        assert_eq!(
            h.run(&["STRLEN", "b"]),
            int(3),
            "a cleared bit still grows the string"
        );
        let before = h.session.stats.dirty;
        h.run(&["SETBIT", "b", "1", "1"]);
        assert_eq!(
            h.session.stats.dirty, before,
            "an unchanged bit is no write"
        );
        let bad_bit = err("ERR bit is not an integer or out of range");
        assert_eq!(h.run(&["SETBIT", "b", "0", "2"]), bad_bit);
        assert_eq!(h.run(&["SETBIT", "b", "0", "x"]), bad_bit);
        let bad_offset = err("ERR bit offset is not an integer or out of range");
        assert_eq!(h.run(&["SETBIT", "b", "-1", "1"]), bad_offset);
        assert_eq!(h.run(&["GETBIT", "b", "x"]), bad_offset);
        assert_eq!(h.run(&["SETBIT", "b", "4294967296", "1"]), bad_offset);
        h.run(&["SADD", "s", "a"]);
        assert_eq!(h.run(&["SETBIT", "s", "0", "1"]), err(WRONGTYPE));
        assert_eq!(h.run(&["GETBIT", "s", "0"]), err(WRONGTYPE));
    }

    #[test]
    fn bitcount_ranges_in_bytes_and_bits() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["BITCOUNT", "none", "x", "y"]), int(0), "key first");
        h.run(&["SET", "k", "foobar"]);
        for (args, want) in [
            (&[][..], 26),
            (&["0", "0"], 4),
            (&["1", "1"], 6),
            (&["1", "1", "BYTE"], 6),
            (&["5", "30", "BIT"], 17),
            (&["0", "-1"], 26),
            (&["-2", "-1"], 7),
            (&["-1", "-2"], 0),
            (&["2", "1"], 0),
            (&["0", "100"], 26),
            (&["0", "0", "bit"], 0),
            (&["1", "1", "BIT"], 1),
            (&["-3", "-1", "BIT"], 1),
            (&["-100", "-1", "BIT"], 26),
        ] {
            let mut req = vec!["BITCOUNT", "k"];
            req.extend_from_slice(args);
            assert_eq!(h.run(&req), int(want), "{req:?}");
        }
        assert_eq!(h.run(&["BITCOUNT", "k", "0"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["BITCOUNT", "k", "0", "1", "WORD"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["BITCOUNT", "k", "0", "1", "BIT", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["BITCOUNT", "k", "a", "1"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SET", "e", ""]);
        assert_eq!(h.run(&["BITCOUNT", "e", "0", "-1"]), int(0));
    }

    #[test]
    fn lcs_matches_redis() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "ohmytext"]);
        h.run(&["SET", "b", "mynewtext"]);
        assert_eq!(h.run(&["LCS", "a", "b"]), bulk("mytext"));
        assert_eq!(h.run(&["LCS", "a", "b", "LEN"]), int(6));
        let pair = |x: i64, y: i64| Frame::Array(vec![int(x), int(y)]);
        let idx = |matches: Vec<Frame>| {
            Frame::Map(vec![
                (bulk("matches"), Frame::Array(matches)),
                (bulk("len"), int(6)),
            ])
        };
        assert_eq!(
            h.run(&["LCS", "a", "b", "IDX"]),
            idx(vec![
                Frame::Array(vec![pair(4, 7), pair(5, 8)]),
                Frame::Array(vec![pair(2, 3), pair(0, 1)]),
            ])
        );
        assert_eq!(
            h.run(&["LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]),
            idx(vec![Frame::Array(vec![pair(4, 7), pair(5, 8), int(4)])])
        );
        assert_eq!(h.run(&["LCS", "a", "none"]), bulk(""));
        assert_eq!(
            h.run(&["LCS", "a", "b", "LEN", "IDX"]),
            err("ERR If you want both the length and indexes, please just use IDX.")
        );
        assert_eq!(
            h.run(&["LCS", "a", "b", "MINMATCHLEN"]),
            err("ERR syntax error")
        );
        h.run(&["SADD", "s", "x"]);
        assert_eq!(
            h.run(&["LCS", "a", "s"]),
            err("ERR The specified keys must contain string values")
        );
    }
}
