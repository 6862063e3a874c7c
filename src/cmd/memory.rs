//! `maxmemory` on the command path, and the `INFO memory` section.
//!
//! With `maxmemory` set and the memory in use over it, commands flagged `denyoom` are refused
//! with `-OOM`, as Redis refuses them under `noeviction`, with one refinement for a rate
//! limiter: a limiter decision on keys that all exist already (a `CL.THROTTLE` of a known
//! bucket, a `LIMIT.CHECK` whose rule keys all exist) rewrites states in place and grows
//! nothing, so it still answers. Decisions that would create a key (a new identity, a new
//! bucket) and `LIMIT.RESERVE` (which stores a reservation) are refused. See
//! docs/operations.md ("Memory").

use bytes::Bytes;

use super::{CommandSpec, Ctx};
use crate::clock::Nanos;
use crate::engine::Call;
use crate::metrics::{get, memory};

/// Whether a `denyoom` command may run although memory is over `maxmemory`: only a limiter
/// decision (group `rate_limit`) whose keys all exist. Policy checks (`LIMIT.CHECK`), whose
/// keys are derived from the identity, are let through here and checked once their keys are
/// known ([`derived_keys_exist`]).
pub(crate) fn may_run_over_maxmemory(ctx: &mut Ctx<'_>, spec: &CommandSpec, req: &[Bytes]) -> bool {
    if spec.group != "rate_limit" {
        return false;
    }
    if spec.name == "LIMIT.CHECK" {
        return true;
    }
    if spec.first_key <= 0 {
        return false;
    }
    let keys: Vec<&Bytes> = super::multi::keys_of(spec, req).collect();
    let now = ctx.now;
    !keys.is_empty() && all_exist(&mut ctx.call(), now, &keys)
}

/// For a policy check admitted over `maxmemory` by [`may_run_over_maxmemory`]: an error unless
/// every rule key it would charge exists already.
pub(crate) fn derived_keys_exist(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
) -> Result<(), crate::error::CommandError> {
    let now = ctx.now;
    if !ctx.session.over_maxmemory || all_exist(&mut ctx.call(), now, keys) {
        return Ok(());
    }
    Err(crate::error::CommandError::OutOfMemory)
}

/// Whether every one of `keys` holds a live value: a decision on them grows nothing. Also
/// the HTTP check API's test over `maxmemory`, which has a [`Call`] but no connection.
pub(crate) fn all_exist<K: AsRef<[u8]>>(call: &mut Call<'_, '_>, now: Nanos, keys: &[K]) -> bool {
    keys.iter().all(|k| {
        let k = k.as_ref();
        call.with_shard(k, |s| s.get_live(k, now).is_some())
    })
}

/// Redis's `used_memory_human` style: `0B`, `1023B`, `1.00K`, `12.50M`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

/// The `INFO memory` fields, in Redis's order and spelling.
pub fn info_fields(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    let m = memory();
    let cfg = ctx.shared.engine.config.read();
    let maxmemory = get(&ctx.shared.metrics.maxmemory);
    let peak = m.peak.max(m.used);
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            "0.00".to_owned()
        } else {
            format!("{:.2}", a as f64 / b as f64)
        }
    };
    let total = total_system_memory();
    vec![
        ("used_memory", m.used.to_string()),
        ("used_memory_human", human_bytes(m.used)),
        ("used_memory_rss", m.rss.to_string()),
        ("used_memory_rss_human", human_bytes(m.rss)),
        ("used_memory_peak", peak.to_string()),
        ("used_memory_peak_human", human_bytes(peak)),
        (
            "used_memory_peak_perc",
            format!("{}%", ratio(m.used * 100, peak)),
        ),
        ("total_system_memory", total.to_string()),
        ("total_system_memory_human", human_bytes(total)),
        ("maxmemory", maxmemory.to_string()),
        ("maxmemory_human", human_bytes(maxmemory)),
        ("maxmemory_policy", cfg.maxmemory_policy.name().to_owned()),
        ("mem_fragmentation_ratio", ratio(m.rss, m.used)),
        (
            "mem_fragmentation_bytes",
            (i128::from(m.rss) - i128::from(m.used)).to_string(),
        ),
        ("mem_allocator", crate::metrics::allocator_name().to_owned()),
        (
            "oom_refusing_writes",
            u8::from(maxmemory > 0 && m.used > maxmemory).to_string(),
        ),
    ]
}

/// `MemTotal` from /proc/meminfo, in bytes (0 where unavailable).
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

    fn is_oom(f: &Frame) -> bool {
        matches!(f, Frame::Error(e) if e.as_ref() == OOM.as_bytes())
    }

    #[test]
    fn over_maxmemory_writes_that_grow_are_refused_and_decisions_on_existing_keys_answer() {
        let mut h = Harness::new();
        h.run(&["SET", "kept", "v"]);
        h.run(&["CL.THROTTLE", "bucket", "1", "1", "60"]);
        h.run(&["POLICY.SET", "api", "RATE", "2/1m"]);
        h.run(&["LIMIT.CHECK", "api", "known"]);
        // Any process uses more than a byte: from here on memory is over the limit.
        assert_eq!(h.run(&["CONFIG", "SET", "maxmemory", "1"]), Frame::OK);
        assert!(is_oom(&h.run(&["SET", "new", "v"])));
        assert!(
            is_oom(&h.run(&["SET", "kept", "w"])),
            "SET is denyoom, as in Redis"
        );
        assert!(is_oom(&h.run(&["CL.THROTTLE", "fresh", "1", "1", "60"])));
        assert!(is_oom(&h.run(&["LIMIT.CHECK", "api", "stranger"])));
        assert!(is_oom(&h.run(&["LIMIT.RESERVE", "api", "known"])));
        // Reads, deletes and decisions on existing keys keep working.
        assert_eq!(h.run(&["GET", "kept"]), bulk("v"));
        let r = h.run(&["CL.THROTTLE", "bucket", "1", "1", "60"]);
        assert!(matches!(r, Frame::Array(_)), "{r:?}");
        let r = h.run(&["LIMIT.CHECK", "api", "known"]);
        assert!(matches!(r, Frame::Map(_)), "{r:?}");
        let r = h.run(&["LIMIT.CHECK", "api", "known"]);
        assert!(matches!(r, Frame::Map(_)), "a denial still answers: {r:?}");
        assert_eq!(h.run(&["DEL", "kept"]), Frame::Integer(1));
        // Inside MULTI the refusal aborts the transaction, as Redis does.
        h.run(&["MULTI"]);
        assert!(is_oom(&h.run(&["SET", "x", "y"])));
        let r = h.run(&["EXEC"]);
        assert!(
            matches!(&r, Frame::Error(e) if e.starts_with(b"EXECABORT")),
            "{r:?}"
        );
        // Lifting the limit lets writes through again.
        assert_eq!(h.run(&["CONFIG", "SET", "maxmemory", "0"]), Frame::OK);
        assert_eq!(h.run(&["SET", "new", "v"]), Frame::OK);
    }

    #[test]
    fn maxmemory_settings_are_reported_and_checked() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CONFIG", "SET", "maxmemory", "100mb"]), Frame::OK);
        assert_eq!(
            h.run(&["CONFIG", "GET", "maxmemory"]),
            Frame::Map(vec![(bulk("maxmemory"), bulk("104857600"))])
        );
        let r = h.run(&["CONFIG", "SET", "maxmemory", "lots"]);
        assert_eq!(
            r,
            Frame::Error(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
                    .into()
            )
        );
        let r = h.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
        assert!(
            matches!(&r, Frame::Error(e) if e.starts_with(b"ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - maxmemory-policy 'allkeys-lfu' is not supported")),
            "{r:?}"
        );
        for policy in [
            "allkeys-lru",
            "allkeys-random",
            "volatile-lru",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(
                h.run(&["CONFIG", "SET", "maxmemory-policy", policy]),
                Frame::OK
            );
            assert_eq!(
                h.run(&["CONFIG", "GET", "maxmemory-policy"]),
                Frame::Map(vec![(bulk("maxmemory-policy"), bulk(policy))])
            );
        }
        let r = h.run(&["CONFIG", "SET", "maxmemory-policy", "sometimes"]);
        assert!(matches!(r, Frame::Error(_)), "{r:?}");
        assert_eq!(
            h.run(&["CONFIG", "SET", "maxmemory-policy", "NOEVICTION"]),
            Frame::OK
        );
        let info = match h.run(&["INFO", "memory"]) {
            Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        };
        for field in [
            "used_memory:",
            "used_memory_human:",
            "used_memory_rss:",
            "used_memory_peak:",
            "mem_fragmentation_ratio:",
            "maxmemory:104857600\r\n",
            "maxmemory_human:100.00M\r\n",
            "maxmemory_policy:noeviction\r\n",
            "mem_allocator:",
        ] {
            assert!(info.contains(field), "{field} in {info}");
        }
    }

    fn evicted_keys(h: &mut Harness) -> u64 {
        let info = match h.run(&["INFO", "stats"]) {
            Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        };
        info.lines()
            .find_map(|l| l.strip_prefix("evicted_keys:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("evicted_keys in INFO stats")
    }

    #[test]
    fn allkeys_lru_evicts_what_it_must_and_answers_oom_when_nothing_is_left() {
        let mut h = Harness::new();
        for i in 0..50 {
            h.run(&["SET", &format!("k{i}"), "v"]);
        }
        h.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
        // No process fits in one byte: every key is evicted, then the write is refused.
        assert_eq!(h.run(&["CONFIG", "SET", "maxmemory", "1"]), Frame::OK);
        assert!(is_oom(&h.run(&["SET", "new", "v"])));
        assert_eq!(h.run(&["DBSIZE"]), Frame::Integer(0));
        assert_eq!(evicted_keys(&mut h), 50);
        // Non-growing commands were never affected.
        assert_eq!(h.run(&["GET", "k1"]), Frame::Null);
        h.run(&["CONFIG", "SET", "maxmemory", "0"]);
        h.run(&["CONFIG", "RESETSTAT"]);
        assert_eq!(evicted_keys(&mut h), 0);
    }

    #[test]
    fn volatile_policies_evict_only_keys_with_an_expiry() {
        for policy in ["volatile-ttl", "volatile-lru", "volatile-random"] {
            let mut h = Harness::new();
            for i in 0..20 {
                h.run(&["SET", &format!("p{i}"), "v"]);
                h.run(&["SET", &format!("t{i}"), "v", "EX", "100"]);
            }
            h.run(&["CL.THROTTLE", "bucket", "5", "1", "60"]);
            h.run(&["CONFIG", "SET", "maxmemory-policy", policy]);
            h.run(&["CONFIG", "SET", "maxmemory", "1"]);
            assert!(is_oom(&h.run(&["SET", "new", "v"])), "{policy}");
            assert_eq!(h.run(&["DBSIZE"]), Frame::Integer(20), "{policy}");
            assert_eq!(evicted_keys(&mut h), 21, "{policy}");
            assert_eq!(
                h.run(&["EXISTS", "p0", "p19"]),
                Frame::Integer(2),
                "{policy}"
            );
        }
    }

    #[test]
    fn human_bytes_reads_as_redis_writes_it() {
        assert_eq!(super::human_bytes(0), "0B");
        assert_eq!(super::human_bytes(1023), "1023B");
        assert_eq!(super::human_bytes(1024), "1.00K");
        assert_eq!(super::human_bytes(3 << 20), "3.00M");
    }
}
