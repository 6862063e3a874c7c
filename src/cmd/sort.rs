//! SORT and SORT_RO, parsed and answered as Redis 7.0's `sortCommandGeneric`.
//!
//! The source is a list, a set or a sorted set (a missing key sorts as an empty list; another
//! kind is `WRONGTYPE`). Elements sort as numbers (`One or more scores can't be converted into
//! double` when one is not), ties broken by their bytes, or with `ALPHA` by their bytes.
//! `BY pattern` sorts by the values of other keys: the first `*` of the pattern is replaced by
//! the element, and `key->field` reads a hash field; a missing value sorts as 0 (numeric) or
//! first (`ALPHA`). A `BY` pattern without `*` skips sorting: lists and sorted sets keep their
//! order (reversed by `DESC`), sets theirs, except that a set stored with `STORE` or sorted
//! from a script is sorted by `ALPHA` so the result is deterministic. `GET pattern` (repeatable; `#` is the element
//! itself) replaces each element by the values looked up (nil for a missing one; an empty
//! string when stored). `LIMIT offset count` clamps as Redis does. `STORE destination` (SORT
//! only) replaces `destination` with a list of the output (and drops its TTL), or deletes it
//! when the output is empty, and answers the output's length.
//!
//! `BY`/`GET` patterns read keys the command only learns while running: the handler locks the
//! source and destination, and if the patterns name keys of shards it does not hold, it retries
//! with those keys added (each retry holds more shards, so this ends). Inside `EXEC` every shard
//! is already held (the command is `movablekeys`). In cluster mode a `BY` pattern with `*` and
//! any `GET` are refused, as Redis does, and so are they for a user without access to every key.

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::args::{self, is};
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, MultiGuard, Value};

/// SORT and SORT_RO.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "SORT",
        arity: -2,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "generic",
        summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        since: "1.0.0",
        complexity: COMPLEXITY,
        args: "key:key [BY pattern:pattern] [LIMIT offset:integer count:integer] [GET pattern:pattern...] order=[ASC|DESC] [ALPHA] [STORE destination:key]",
        handler: |ctx, req| sort(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "SORT_RO",
        arity: -2,
        flags: READONLY | MOVABLEKEYS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "generic",
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        since: "7.0.0",
        complexity: COMPLEXITY,
        args: "key:key [BY pattern:pattern] [LIMIT offset:integer count:integer] [GET pattern:pattern...] order=[ASC|DESC] [ALPHA]",
        handler: |ctx, req| sort(ctx, req, true),
        ..BASE
    },
];

const COMPLEXITY: &str = "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).";

/// The position of SORT's `STORE` destination in `req`, found as Redis's `sortGetKeys` finds
/// it (skipping the arguments of `LIMIT`, `GET` and `BY`; the last `STORE` wins).
pub fn store_index(req: &[Bytes]) -> Option<usize> {
    let mut found = None;
    let mut j = 2;
    while j < req.len() {
        let a = &req[j];
        if is(a, "LIMIT") {
            j += 2;
        } else if is(a, "GET") || is(a, "BY") {
            j += 1;
        } else if is(a, "STORE") && j + 1 < req.len() {
            found = Some(j + 1);
            j += 1;
        }
        j += 1;
    }
    found
}

/// The parsed options.
struct Options {
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// `BY` without `*`: keep the source's order.
    dontsort: bool,
    gets: Vec<Bytes>,
    /// Called from a script.
    in_script: bool,
}

fn parse(ctx: &Ctx<'_>, req: &[Bytes], readonly: bool) -> Result<Options, CommandError> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit: (0, -1),
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
        in_script: ctx.session.in_script,
    };
    let cluster = ctx.shared.cluster.is_enabled();
    let all_keys = ctx.session.user.selector.all_keys();
    let mut j = 2;
    while j < req.len() {
        let left = req.len() - j - 1;
        let a = &req[j];
        if is(a, "ASC") {
            o.desc = false;
        } else if is(a, "DESC") {
            o.desc = true;
        } else if is(a, "ALPHA") {
            o.alpha = true;
        } else if is(a, "LIMIT") && left >= 2 {
            o.limit = (args::int(&req[j + 1])?, args::int(&req[j + 2])?);
            j += 2;
        } else if !readonly && is(a, "STORE") && left >= 1 {
            o.store = Some(req[j + 1].clone());
            j += 1;
        } else if is(a, "BY") && left >= 1 {
            let pattern = &req[j + 1];
            if pattern.contains(&b'*') {
                o.dontsort = false;
                if cluster {
                    return Err(CommandError::other(
                        "BY option of SORT denied in Cluster mode.",
                    ));
                }
                if !all_keys {
                    return Err(CommandError::other(
                        "BY option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
            } else {
                o.dontsort = true;
            }
            o.by = Some(pattern.clone());
            j += 1;
        } else if is(a, "GET") && left >= 1 {
            if cluster {
                return Err(CommandError::other(
                    "GET option of SORT denied in Cluster mode.",
                ));
            }
            if !all_keys {
                return Err(CommandError::other(
                    "GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            o.gets.push(req[j + 1].clone());
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE
/// destination]` (and SORT_RO, without `STORE`).
fn sort(ctx: &mut Ctx<'_>, req: &[Bytes], readonly: bool) -> Result<Frame, CommandError> {
    let o = parse(ctx, req, readonly)?;
    let now = ctx.now;
    let src = &req[1];
    let mut keys = vec![src.clone()];
    keys.extend(o.store.iter().cloned());
    let in_guard = ctx.locked.is_some();
    loop {
        let attempt = |g: &mut MultiGuard<'_>| run(g, src, &o, now);
        let outcome = match &o.store {
            Some(dst) => ctx.with_keys_writing(&keys, std::slice::from_ref(dst), attempt),
            None => ctx.with_keys(&keys, attempt),
        };
        match outcome {
            Attempt::Done(reply) => return reply,
            // A script holds only its declared keys' shards, and cannot take more.
            Attempt::Need(_) if in_guard => {
                return Err(CommandError::other(
                    "SORT BY/GET patterns name keys outside the keys this context holds",
                ))
            }
            Attempt::Need(more) => keys.extend(more),
        }
    }
}

enum Attempt {
    Done(Result<Frame, CommandError>),
    /// Keys the patterns read, in shards not held.
    Need(Vec<Bytes>),
}

/// One element and what it sorts by.
struct Item {
    element: Bytes,
    score: f64,
    by: Option<Bytes>,
}

fn run(g: &mut MultiGuard<'_>, src: &Bytes, o: &Options, now: Nanos) -> Attempt {
    let elements = match load(g, src, o, now) {
        Ok(v) => v,
        Err(e) => return Attempt::Done(Err(e)),
    };
    let (mut elements, start, end, dontsort, alpha, by) = elements;
    // Every key the patterns will read must be in a held shard.
    let mut patterns: Vec<&Bytes> = o.gets.iter().collect();
    if !dontsort {
        patterns.extend(by);
    }
    let store = g.store();
    // One key per shard not held is enough to lock that shard next time.
    let mut missing: Vec<(usize, Bytes)> = elements
        .iter()
        .flat_map(|e| patterns.iter().filter_map(move |p| pattern_key(p, e)))
        .map(|k| (store.shard_of(&k), k))
        .filter(|(shard, _)| !g.holds(*shard))
        .collect();
    missing.sort_by_key(|(shard, _)| *shard);
    missing.dedup_by_key(|(shard, _)| *shard);
    let missing: Vec<Bytes> = missing.into_iter().map(|(_, k)| k).collect();
    if !missing.is_empty() {
        return Attempt::Need(missing);
    }
    if !dontsort {
        let mut items = Vec::with_capacity(elements.len());
        let mut bad_score = false;
        for element in elements {
            let value = match by {
                Some(p) => lookup(g, p, &element, now),
                None => Some(element.clone()),
            };
            let mut item = Item {
                element,
                score: 0.0,
                by: None,
            };
            if let Some(v) = value {
                if alpha {
                    if by.is_some() {
                        item.by = Some(v);
                    }
                } else {
                    match strtod(&v) {
                        Some(s) => item.score = s,
                        None => bad_score = true,
                    }
                }
            }
            items.push(item);
        }
        let by_pattern = by.is_some();
        items.sort_by(|a, b| {
            let cmp = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.element.cmp(&b.element))
            } else if by_pattern {
                match (&a.by, &b.by) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.element.cmp(&b.element)
            };
            if o.desc {
                cmp.reverse()
            } else {
                cmp
            }
        });
        if bad_score {
            return Attempt::Done(Err(CommandError::other(
                "One or more scores can't be converted into double",
            )));
        }
        elements = items.into_iter().map(|i| i.element).collect();
    }
    let picked: &[Bytes] = if end < start || start < 0 {
        &[]
    } else {
        elements.get(start as usize..=end as usize).unwrap_or(&[])
    };
    let mut out: Vec<Option<Bytes>> = Vec::new();
    for e in picked {
        if o.gets.is_empty() {
            out.push(Some(e.clone()));
        }
        for p in &o.gets {
            out.push(lookup(g, p, e, now));
        }
    }
    let Some(dst) = &o.store else {
        return Attempt::Done(Ok(Frame::Array(
            out.into_iter()
                .map(|v| v.map_or(Frame::Null, Frame::Bulk))
                .collect(),
        )));
    };
    let n = out.len();
    let shard = g.shard(dst);
    if n == 0 {
        shard.remove(dst, now);
    } else {
        let list: VecDeque<Bytes> = out.into_iter().map(Option::unwrap_or_default).collect();
        shard.insert(dst, Entry::new(Value::List(Box::new(list))));
    }
    Attempt::Done(Ok(Frame::Integer(n as i64)))
}

/// The elements to sort (or, when not sorting, already in output order) with the output range
/// `start..=end` into them, and the effective `dontsort`, `alpha` and `BY` pattern.
type Loaded<'o> = (Vec<Bytes>, i64, i64, bool, bool, Option<&'o Bytes>);

fn load<'o>(
    g: &MultiGuard<'_>,
    src: &Bytes,
    o: &'o Options,
    now: Nanos,
) -> Result<Loaded<'o>, CommandError> {
    let value = g.shard_ref(src).get(src, now).map(|e| &e.value);
    let (mut dontsort, mut alpha, mut by) = (o.dontsort, o.alpha, o.by.as_ref());
    let len = match value {
        None => 0,
        Some(Value::List(l)) => l.len(),
        Some(Value::Set(s)) => {
            // A set has no order of its own: stored or returned to a script, it is sorted so
            // the result is the same on every replica.
            if dontsort && (o.store.is_some() || o.in_script) {
                dontsort = false;
                alpha = true;
                by = None;
            }
            s.len()
        }
        Some(Value::ZSet(z)) => z.len(),
        Some(_) => return Err(CommandError::WrongType),
    } as i64;
    // Redis's clamping of LIMIT.
    let mut start = o.limit.0.clamp(0, len);
    let count = o.limit.1.clamp(-1, len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let elements: Vec<Bytes> = match value {
        Some(Value::List(l)) if dontsort => {
            let n = if end >= start {
                (end - start + 1) as usize
            } else {
                0
            };
            let picked: Vec<Bytes> = if o.desc {
                l.iter()
                    .rev()
                    .skip(start.max(0) as usize)
                    .take(n)
                    .cloned()
                    .collect()
            } else {
                l.iter()
                    .skip(start.max(0) as usize)
                    .take(n)
                    .cloned()
                    .collect()
            };
            (start, end) = (0, end - start);
            picked
        }
        Some(Value::ZSet(z)) if dontsort => {
            let n = if end >= start {
                (end - start + 1) as usize
            } else {
                0
            };
            let picked: Vec<Bytes> = if o.desc {
                z.iter()
                    .rev()
                    .skip(start.max(0) as usize)
                    .take(n)
                    .map(|(m, _)| m.clone())
                    .collect()
            } else {
                z.iter()
                    .skip(start.max(0) as usize)
                    .take(n)
                    .map(|(m, _)| m.clone())
                    .collect()
            };
            (start, end) = (0, end - start);
            picked
        }
        Some(Value::List(l)) => l.iter().cloned().collect(),
        Some(Value::Set(s)) => s.iter().cloned().collect(),
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| m.clone()).collect(),
        _ => Vec::new(),
    };
    Ok((elements, start, end, dontsort, alpha, by))
}

/// The key a pattern names for `element` (`None` for `#` and for a pattern without `*`), and
/// the hash field after `->`, if any.
fn split_pattern<'p>(pattern: &'p [u8], element: &[u8]) -> Option<(Bytes, Option<&'p [u8]>)> {
    if pattern == b"#" {
        return None;
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let mut key = BytesMut::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    Some((key.freeze(), field))
}

fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<Bytes> {
    split_pattern(pattern, element).map(|(k, _)| k)
}

/// Redis's `lookupKeyByPattern`: the element itself for `#`; a string key's value; a hash
/// field's value for `key->field`; `None` otherwise.
fn lookup(g: &MultiGuard<'_>, pattern: &[u8], element: &Bytes, now: Nanos) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let (key, field) = split_pattern(pattern, element)?;
    let value = &g.shard_ref(&key).get(&key, now)?.value;
    match (value, field) {
        (Value::Hash(h), Some(f)) => h.get(f).cloned(),
        (Value::Str(s), None) => Some((**s).clone()),
        (Value::Int(i), None) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

/// A sort weight as Redis's `strtod` check reads it: the whole text a number (an empty text is
/// 0), not NaN, not out of range.
fn strtod(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    super::zsets::parse_score(&text[start..]).ok()
}

#[cfg(test)]
#[path = "sort_tests.rs"]
mod tests;
