//! `MEMORY USAGE | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP`.
//!
//! `MEMORY USAGE` estimates what one key costs in limitkv's store (see `store::table`): its
//! slot (key + entry, 48 bytes), its share of the shard's hash index (4 bytes plus one
//! control byte per bucket, spread over the shard's keys), the key's heap block when it is
//! longer than the 22 bytes kept inline, and the heap the value owns (a boxed limiter state,
//! a string's bytes, a collection's elements; nothing for an inline GCRA TAT or integer).
//! The estimate is computed over every element, so `SAMPLES` is accepted and does not change
//! the result.

use bytes::Bytes;

use super::args::{is, parse_i64};
use super::flags::*;
use super::memory::human_bytes;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::metrics::{get, memory};
use crate::protocol::Frame;
use crate::store::table::INLINE;

/// Bytes of one slot: the key (24) and its entry (24).
const SLOT: usize = 48;
/// Bytes of one index bucket: a `u32` slot number and a control byte.
const BUCKET: usize = 5;

/// The `MEMORY` container command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "MEMORY",
    arity: -2,
    flags: 0,
    group: "server",
    summary: "A container for memory diagnostics commands.",
    since: "4.0.0",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "USAGE",
        arity: -3,
        flags: READONLY,
        first_key: 2,
        last_key: 2,
        key_step: 1,
        summary: "Estimates the memory usage of a key.",
        since: "4.0.0",
        complexity: "O(N) where N is the number of elements of the value",
        args: "key:key [SAMPLES count:integer]",
        handler: usage,
        ..BASE
    },
    CommandSpec {
        name: "STATS",
        arity: 2,
        flags: 0,
        summary: "Returns details about memory usage.",
        since: "4.0.0",
        handler: stats,
        ..BASE
    },
    CommandSpec {
        name: "DOCTOR",
        arity: 2,
        flags: 0,
        summary: "Outputs a memory problems report.",
        since: "4.0.0",
        handler: doctor,
        ..BASE
    },
    CommandSpec {
        name: "MALLOC-STATS",
        arity: 2,
        flags: 0,
        summary: "Returns the allocator statistics.",
        since: "4.0.0",
        handler: malloc_stats,
        ..BASE
    },
    CommandSpec {
        name: "PURGE",
        arity: 2,
        flags: 0,
        summary: "Asks the allocator to release memory.",
        since: "4.0.0",
        handler: |_, _| {
            crate::metrics::purge_memory();
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "MEMORY",
                &[
                    "DOCTOR",
                    "    Return memory problems reports.",
                    "MALLOC-STATS",
                    "    Return internal statistics report from the memory allocator.",
                    "PURGE",
                    "    Attempt to purge dirty pages for reclamation by the allocator.",
                    "STATS",
                    "    Return information about the memory usage of the server.",
                    "USAGE <key> [SAMPLES <count>]",
                    "    Return memory in bytes used by <key> and its value. Nested values are",
                    "    sampled up to <count> times (default: 5, 0 means sample all).",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

/// ```text
/// MEMORY USAGE key [SAMPLES count]
/// ```
/// Integer bytes, or nil for a missing key. Errors: `ERR syntax error`, `ERR value is not an
/// integer or out of range` (a negative count too).
fn usage(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut i = 3;
    while i < req.len() {
        if is(&req[i], "SAMPLES") && i + 1 < req.len() {
            parse_i64(&req[i + 1])
                .filter(|n| *n >= 0)
                .ok_or(CommandError::NotAnInteger)?;
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let key = &req[2];
    let now = ctx.now;
    let size = ctx.with_shard(key, |s| {
        let value = s.get_live(key, now)?.value.heap_size();
        let index = (s.index_buckets() * BUCKET).div_ceil(s.len().max(1));
        Some(key_usage(key.len(), value, index))
    });
    Ok(size.map_or(Frame::Null, |n| Frame::Integer(n as i64)))
}

/// A key's footprint: its slot, its index share, its key bytes beyond the inline ones, and
/// the value's heap.
pub fn key_usage(key_len: usize, value_heap: usize, index_share: usize) -> usize {
    let key_heap = if key_len > INLINE { key_len } else { 0 };
    SLOT + index_share + key_heap + value_heap
}

/// Per database: (keys, slot bytes, index bytes).
fn table_overhead(ctx: &Ctx<'_>) -> Vec<(usize, usize, usize, usize)> {
    ctx.shared
        .engine
        .dbs
        .iter()
        .enumerate()
        .filter_map(|(n, db)| {
            let (mut keys, mut buckets) = (0, 0);
            for idx in 0..db.shard_count() {
                let s = db.lock_shard(idx);
                keys += s.len();
                buckets += s.index_buckets();
            }
            (keys > 0).then_some((n, keys, keys * SLOT, buckets * BUCKET))
        })
        .collect()
}

/// ```text
/// MEMORY STATS
/// ```
/// A map in Redis's field names: `peak.allocated`, `total.allocated`, `overhead.total` (the
/// tables' slots and indexes), `keys.count`, `keys.bytes-per-key`, `dataset.bytes`,
/// `dataset.percentage`, `peak.percentage`, `allocator.resident`, `fragmentation`,
/// `fragmentation.bytes`, and per non-empty database `db.N` (`overhead.hashtable.main`,
/// `overhead.hashtable.expires` 0: expiries live in the entries).
fn stats(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let m = memory();
    let peak = m.peak.max(m.used);
    let dbs = table_overhead(ctx);
    let keys: usize = dbs.iter().map(|d| d.1).sum();
    let overhead: usize = dbs.iter().map(|d| d.2 + d.3).sum();
    let dataset = m.used.saturating_sub(overhead as u64);
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let int = |n: u64| Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let mut out = vec![
        (Frame::bulk("peak.allocated"), int(peak)),
        (Frame::bulk("total.allocated"), int(m.used)),
        (Frame::bulk("overhead.total"), int(overhead as u64)),
        (Frame::bulk("keys.count"), int(keys as u64)),
        (
            Frame::bulk("keys.bytes-per-key"),
            int(if keys == 0 { 0 } else { m.used / keys as u64 }),
        ),
        (Frame::bulk("dataset.bytes"), int(dataset)),
        (
            Frame::bulk("dataset.percentage"),
            Frame::Double(pct(dataset, m.used)),
        ),
        (
            Frame::bulk("peak.percentage"),
            Frame::Double(pct(m.used, peak)),
        ),
        (Frame::bulk("allocator.resident"), int(m.rss)),
        (
            Frame::bulk("fragmentation"),
            Frame::Double(if m.used == 0 {
                0.0
            } else {
                m.rss as f64 / m.used as f64
            }),
        ),
        (
            Frame::bulk("fragmentation.bytes"),
            Frame::Integer(
                i64::try_from(i128::from(m.rss) - i128::from(m.used)).unwrap_or(i64::MAX),
            ),
        ),
    ];
    for (n, _, slots, index) in dbs {
        out.push((
            Frame::bulk_string(format!("db.{n}")),
            Frame::Map(vec![
                (
                    Frame::bulk("overhead.hashtable.main"),
                    int((slots + index) as u64),
                ),
                (Frame::bulk("overhead.hashtable.expires"), Frame::Integer(0)),
            ]),
        ));
    }
    Ok(Frame::Map(out))
}

/// ```text
/// MEMORY DOCTOR
/// ```
/// Verbatim text: what looks wrong (memory near `maxmemory`, high fragmentation, a peak far
/// above the current use), or that nothing does.
fn doctor(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let m = memory();
    let maxmemory = get(&ctx.shared.metrics.maxmemory);
    let peak = m.peak.max(m.used);
    let mut issues = Vec::new();
    if m.used < 5 * 1024 * 1024 {
        let text = "Hi Sam, this instance is empty or is using very little memory, my issues \
                    detector can't be used in these conditions. Please, leave for your mission \
                    on Earth and fill it with some data. The new Sam and I will be back to our \
                    programming as soon as I finished rebooting.\n";
        return Ok(Frame::Verbatim("txt", Bytes::from_static(text.as_bytes())));
    }
    if maxmemory > 0 && m.used * 10 > maxmemory * 9 {
        let policy = ctx.shared.engine.config.read().maxmemory_policy;
        let then = if policy == crate::config::MaxmemoryPolicy::NoEviction {
            "commands that create keys will soon get -OOM".to_owned()
        } else {
            format!(
                "keys will soon be evicted ({}), resetting their limits",
                policy.name()
            )
        };
        issues.push(format!(
            " * Memory use ({}) is over 90% of maxmemory ({}): {then}. Raise maxmemory or \
             shorten the limiter windows.",
            human_bytes(m.used),
            human_bytes(maxmemory)
        ));
    }
    if peak > m.used.saturating_mul(3) / 2 {
        issues.push(format!(
            " * Peak memory: in the past the memory use reached {} while it is {} now. Freed \
             memory goes back to the system as the allocator purges it (MEMORY PURGE asks it \
             now).",
            human_bytes(peak),
            human_bytes(m.used)
        ));
    }
    if m.used > 0 && m.rss * 10 > m.used * 14 {
        issues.push(format!(
            " * High fragmentation: the resident set ({}) is {:.2} times the allocated memory \
             ({}). MEMORY PURGE may return unused pages.",
            human_bytes(m.rss),
            m.rss as f64 / m.used as f64,
            human_bytes(m.used)
        ));
    }
    let text = if issues.is_empty() {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what \
         occurs on this base.\n"
            .to_owned()
    } else {
        format!(
            "Sam, I detected a few issues in this limitkv instance memory implants:\n\n{}\n",
            issues.join("\n\n")
        )
    };
    Ok(Frame::Verbatim("txt", Bytes::from(text)))
}

/// ```text
/// MEMORY MALLOC-STATS
/// ```
/// Verbatim text from the allocator (mimalloc's statistics in the `limitkv` binary), or the
/// allocator's name and the figures limitkv reads when it offers no report.
fn malloc_stats(_ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let m = memory();
    let report = crate::metrics::allocator_report().unwrap_or_else(|| {
        format!(
            "Stats not supported for the current allocator ({}).\nallocated: {}\nresident: {}\n",
            crate::metrics::allocator_name(),
            m.used,
            m.rss
        )
    });
    Ok(Frame::Verbatim("txt", Bytes::from(report)))
}

#[cfg(test)]
mod tests {
    use super::{key_usage, SLOT};
    use crate::cmd::testing::get as field;
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn usage_of(h: &mut Harness, key: &str) -> i64 {
        match h.run(&["MEMORY", "USAGE", key]) {
            Frame::Integer(n) => n,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn usage_counts_slot_index_key_and_value() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MEMORY", "USAGE", "nope"]), Frame::Null);
        h.run(&["CL.THROTTLE", "user:1", "10", "5", "60"]);
        let gcra = usage_of(&mut h, "user:1");
        // An inline TAT under a short key: the slot and the index share only.
        assert!((SLOT as i64..SLOT as i64 + 64).contains(&gcra), "{gcra}");
        let long = "k".repeat(40);
        h.run(&["CL.THROTTLE", &long, "10", "5", "60"]);
        assert!(
            usage_of(&mut h, &long) >= gcra + 40 - 8,
            "the long key's bytes count"
        );
        h.run(&["SET", "s", &"x".repeat(1000)]);
        assert!(usage_of(&mut h, "s") >= SLOT as i64 + 1000);
        h.run(&["HSET", "w", "field", "value"]);
        let w = usage_of(&mut h, "w");
        assert!(
            w > SLOT as i64 + 10,
            "a boxed value counts its box and elements: {w}"
        );
        assert_eq!(key_usage(5, 0, 6), SLOT + 6);
        assert_eq!(key_usage(23, 0, 6), SLOT + 6 + 23);
    }

    #[test]
    fn usage_options_follow_redis() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        assert!(matches!(
            h.run(&["MEMORY", "USAGE", "s", "SAMPLES", "0"]),
            Frame::Integer(_)
        ));
        assert_eq!(
            h.run(&["MEMORY", "USAGE", "s", "SAMPLES", "-1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["MEMORY", "USAGE", "s", "SAMPLES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["MEMORY", "USAGE", "s", "FOO", "1"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn stats_doctor_purge_and_malloc_stats_answer() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        let stats = h.run(&["MEMORY", "STATS"]);
        assert_eq!(field(&stats, "keys.count"), int(1));
        let Frame::Integer(over) = field(&stats, "overhead.total") else {
            panic!("{stats:?}")
        };
        assert!(over >= SLOT as i64, "{over}");
        let db0 = field(&stats, "db.0");
        assert_eq!(field(&db0, "overhead.hashtable.expires"), int(0));
        assert!(matches!(h.run(&["MEMORY", "DOCTOR"]), Frame::Verbatim(..)));
        assert!(matches!(
            h.run(&["MEMORY", "MALLOC-STATS"]),
            Frame::Verbatim(..)
        ));
        assert_eq!(h.run(&["MEMORY", "PURGE"]), Frame::OK);
        assert_eq!(
            h.run(&["MEMORY", "NOPE"]),
            err("ERR unknown subcommand 'NOPE'. Try MEMORY HELP.")
        );
    }
}
