//! Server-wide counters, all atomics. Connections count locally and add their batch totals
//! here once per read batch, so the hot path never contends on a shared cache line per command.
//! The pure limiter never counts anything itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

/// Counters reported by `INFO stats`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted since start.
    pub total_connections_received: AtomicU64,
    /// Connections refused because of `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands executed since start.
    pub total_commands_processed: AtomicU64,
    /// Bytes read from clients.
    pub total_net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub total_net_output_bytes: AtomicU64,
    /// Lookups that found a key.
    pub keyspace_hits: AtomicU64,
    /// Lookups that found nothing.
    pub keyspace_misses: AtomicU64,
    /// Error replies sent.
    pub total_error_replies: AtomicU64,
    /// Limiter decisions that admitted the request.
    pub limiter_allowed: AtomicU64,
    /// Limiter decisions that denied the request.
    pub limiter_denied: AtomicU64,
    /// Keyspace changes (Redis's `dirty` counter).
    pub dirty: AtomicU64,
    /// Clients closed for going over the `normal` class's output buffer limit (the `pubsub`
    /// class counts its own; INFO reports the sum).
    pub output_limit_disconnections: AtomicU64,
    /// Recent (time, commands) samples for `instantaneous_ops_per_sec`.
    samples: Mutex<OpsSamples>,
    /// `maxmemory` in bytes (0 = no limit), mirrored here so the command path reads an atomic
    /// rather than the configuration's lock.
    pub maxmemory: AtomicU64,
    /// The last [`memory`] reading's `used` and when it was taken (µs since [`base`]).
    used_memory: AtomicU64,
    used_memory_at_us: AtomicU64,
    /// Bytes eviction freed (estimated) that the allocator's reading may not show yet (see
    /// [`Metrics::memory_over_max`]); mirrors `eviction_credit.pending` for a lock-free read.
    evicted_bytes_pending: AtomicU64,
    eviction_credit: Mutex<EvictionCredit>,
    /// Keys removed by eviction (`evicted_keys`).
    pub evicted_keys: AtomicU64,
    /// Per command (`INFO commandstats`), summed from the connections' tallies once per batch.
    commands: Mutex<BTreeMap<CommandName, CommandStat>>,
    /// Error replies per error code (`INFO errorstats`), disabled once more than
    /// [`ERROR_CODES_MAX`] codes were seen, until `CONFIG RESETSTAT`, as Redis does.
    errors: Mutex<ErrorStats>,
}

/// What eviction freed that the allocator's reading may not show yet, and the range the
/// reading moved in since: growth past the highest reading means the freed space was reused,
/// a drop below the lowest that the allocator gave it back; either uses the credit up.
#[derive(Debug, Default)]
struct EvictionCredit {
    pending: u64,
    high: u64,
    low: u64,
}

#[derive(Debug, Default)]
struct ErrorStats {
    /// Set once too many distinct codes were seen, until `CONFIG RESETSTAT`.
    disabled: bool,
    codes: BTreeMap<String, u64>,
}

/// What the allocator and the OS say about the process's memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Held by the allocator for the program (`used_memory`): mimalloc's committed bytes in
    /// the `limitkv` binary; the resident set size where no allocator probe is installed.
    pub used: u64,
    /// The most `used` has been.
    pub peak: u64,
    /// Resident set size (`used_memory_rss`), from /proc.
    pub rss: u64,
}

/// Reads the allocator's statistics; installed by the binary, which owns the global allocator.
pub type MemoryProbe = fn() -> MemoryStats;

static MEMORY_PROBE: OnceLock<(MemoryProbe, &'static str)> = OnceLock::new();

/// Installs the allocator's statistics reader and the allocator's name (`mem_allocator`).
/// Only the first call counts.
pub fn install_memory_probe(probe: MemoryProbe, allocator: &'static str) {
    let _ = MEMORY_PROBE.set((probe, allocator));
}

/// The allocator's report for `MEMORY MALLOC-STATS` and its purge for `MEMORY PURGE`.
#[derive(Debug, Clone, Copy)]
pub struct AllocatorTools {
    /// A human-readable statistics report.
    pub report: fn() -> String,
    /// Returns unused memory to the system.
    pub purge: fn(),
}

static ALLOCATOR_TOOLS: OnceLock<AllocatorTools> = OnceLock::new();

/// Installs the allocator's report and purge (by the binary, which owns the allocator). Only
/// the first call counts.
pub fn install_allocator_tools(tools: AllocatorTools) {
    let _ = ALLOCATOR_TOOLS.set(tools);
}

/// The allocator's statistics report, if the binary installed one.
pub fn allocator_report() -> Option<String> {
    ALLOCATOR_TOOLS.get().map(|t| (t.report)())
}

/// Asks the allocator to return unused memory to the system (nothing without installed tools).
pub fn purge_memory() {
    if let Some(t) = ALLOCATOR_TOOLS.get() {
        (t.purge)();
    }
}

/// The allocator `INFO memory` names.
pub fn allocator_name() -> &'static str {
    MEMORY_PROBE.get().map_or("libc", |(_, name)| name)
}

/// The process's memory now: the installed probe's `used` and `peak`, or the resident set size
/// from /proc (zeros where unavailable); `rss` from /proc.
pub fn memory() -> MemoryStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    // The OS's resident set size always (mimalloc's own "rss" on Linux is its committed
    // bytes again).
    let rss = kb("VmRSS:");
    match MEMORY_PROBE.get() {
        Some((probe, _)) => MemoryStats { rss, ..probe() },
        None => MemoryStats {
            used: rss,
            peak: kb("VmHWM:"),
            rss,
        },
    }
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// How old a cached `used_memory` may be when a command is checked against `maxmemory`.
const USED_MEMORY_MAX_AGE_US: u64 = 1000;

/// The distinct error codes `INFO errorstats` tracks before it stops (Redis's 128).
pub const ERROR_CODES_MAX: usize = 128;

/// A command's name for statistics: the command's table name and, for a container command's
/// subcommand, the subcommand's (`("CONFIG", Some("GET"))` reports as `config|get`).
pub type CommandName = (&'static str, Option<&'static str>);

/// Upper bounds, in seconds, of the decision latency histogram's buckets (a last, unbounded
/// bucket follows). From 5 µs, where a pipelined decision lies, to 100 ms, where an fsync wait
/// under `appendfsync always` may reach.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];

/// [`LATENCY_BUCKETS`] in nanoseconds, for the hot path's integer compares.
const LATENCY_BUCKETS_NS: [u64; LATENCY_BUCKETS.len()] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// The latency bucket of a duration of `nanos`: the first whose bound it does not exceed, or
/// the last, unbounded one.
pub fn bucket(nanos: u64) -> usize {
    LATENCY_BUCKETS_NS
        .iter()
        .position(|&le| nanos <= le)
        .unwrap_or(LATENCY_BUCKETS_NS.len())
}

/// One command's statistics: Redis's `cmdstat_*` fields, the limiter outcomes it produced and
/// its latency histogram.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CommandStat {
    /// Times the command ran (Redis's `calls`).
    pub calls: u64,
    /// Time spent running it, in nanoseconds (reported as Redis's `usec`).
    pub nanos: u64,
    /// Refused before running: arity, authentication, ACL, OOM, MISCONF (`rejected_calls`).
    pub rejected: u64,
    /// Ran and answered an error (`failed_calls`).
    pub failed: u64,
    /// Limiter admissions it produced.
    pub allowed: u64,
    /// Limiter denials it produced.
    pub denied: u64,
    /// Calls per latency bucket ([`LATENCY_BUCKETS`], then the overflow bucket).
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
}

impl CommandStat {
    fn add(&mut self, o: &CommandStat) {
        self.calls += o.calls;
        self.nanos += o.nanos;
        self.rejected += o.rejected;
        self.failed += o.failed;
        self.allowed += o.allowed;
        self.denied += o.denied;
        for (b, x) in self.buckets.iter_mut().zip(o.buckets) {
            *b += x;
        }
    }

    /// Records one call that ran for `nanos`.
    pub fn record(&mut self, nanos: u64) {
        self.calls += 1;
        self.nanos += nanos;
        self.buckets[bucket(nanos)] += 1;
    }
}

/// A connection's per-command and per-error tallies between two flushes. A connection runs
/// few distinct commands, so a short list searched by pointer beats a map.
#[derive(Debug, Default, Clone)]
pub struct CommandTally {
    commands: Vec<(CommandName, CommandStat)>,
    errors: Vec<(String, u64)>,
}

impl CommandTally {
    /// The statistics of `name`, added if new.
    pub fn entry(&mut self, name: CommandName) -> &mut CommandStat {
        let same = |(a, b): &CommandName| {
            std::ptr::eq(*a, name.0)
                && match (b, name.1) {
                    (None, None) => true,
                    (Some(x), Some(y)) => std::ptr::eq(*x, y),
                    _ => false,
                }
        };
        let i = match self.commands.iter().position(|(n, _)| same(n)) {
            Some(i) => i,
            None => {
                self.commands.push((name, CommandStat::default()));
                self.commands.len() - 1
            }
        };
        &mut self.commands[i].1
    }

    /// Counts one error reply whose text is `message` (its first word is the code, as Redis
    /// counts it).
    pub fn error(&mut self, message: &[u8]) {
        let code = message.split(|&b| b == b' ').next().unwrap_or_default();
        match self.errors.iter_mut().find(|(c, _)| c.as_bytes() == code) {
            Some((_, n)) => *n += 1,
            None => self
                .errors
                .push((String::from_utf8_lossy(code).into_owned(), 1)),
        }
    }

    fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.errors.is_empty()
    }
}

const SAMPLES: usize = 16;

#[derive(Debug, Default)]
struct OpsSamples {
    last: Option<(u64, u64)>,
    rates: [u64; SAMPLES],
    next: usize,
}

/// Per-connection tallies, flushed into [`Metrics`] after each batch.
#[derive(Debug, Default, Clone)]
pub struct LocalStats {
    /// Commands executed.
    pub commands: u64,
    /// Key lookups that hit.
    pub hits: u64,
    /// Key lookups that missed.
    pub misses: u64,
    /// Error replies.
    pub errors: u64,
    /// Limiter admissions.
    pub allowed: u64,
    /// Limiter denials.
    pub denied: u64,
    /// Keyspace changes (per key and command).
    pub dirty: u64,
    /// Per command and per error code.
    pub tally: CommandTally,
}

impl Metrics {
    /// Adds a connection's tallies and resets them.
    pub fn flush(&self, local: &mut LocalStats) {
        // The tally's vectors stay with the connection (zeroed), so counting allocates only
        // the first time a connection runs a command.
        let mut tally = std::mem::take(&mut local.tally);
        let l = std::mem::take(local);
        add(&self.total_commands_processed, l.commands);
        add(&self.keyspace_hits, l.hits);
        add(&self.keyspace_misses, l.misses);
        add(&self.total_error_replies, l.errors);
        add(&self.limiter_allowed, l.allowed);
        add(&self.limiter_denied, l.denied);
        add(&self.dirty, l.dirty);
        if !tally.is_empty() {
            self.flush_tally(&mut tally);
        }
        local.tally = tally;
    }

    fn flush_tally(&self, tally: &mut CommandTally) {
        if tally.commands.iter().any(|(_, s)| s.calls + s.rejected > 0) {
            let mut all = self.commands.lock();
            for (name, stat) in &mut tally.commands {
                if stat.calls + stat.rejected > 0 {
                    all.entry(*name).or_default().add(stat);
                    *stat = CommandStat::default();
                }
            }
        }
        if !tally.errors.is_empty() {
            let mut errors = self.errors.lock();
            for (code, n) in tally.errors.drain(..) {
                if errors.disabled {
                    break;
                }
                if let Some(c) = errors.codes.get_mut(&code) {
                    *c += n;
                } else if errors.codes.len() >= ERROR_CODES_MAX {
                    // As Redis: too many distinct codes (error texts without a code, say)
                    // disable the statistics rather than let them grow without bound.
                    tracing::warn!(
                        "errorstats disabled: more than {ERROR_CODES_MAX} distinct error codes; \
                         CONFIG RESETSTAT enables them again"
                    );
                    errors.disabled = true;
                    errors.codes.clear();
                } else {
                    errors.codes.insert(code, n);
                }
            }
        }
    }

    /// Whether `maxmemory` is set and the memory in use is over it. The allocator is read at
    /// most once a millisecond (a reading costs a system call); in between, the last reading
    /// stands, so a burst may overshoot the limit by what it allocates in that time.
    pub fn over_maxmemory(&self) -> bool {
        self.memory_over_max() > 0
    }

    /// How far the memory in use is over `maxmemory`, in bytes (0 when under it or unset).
    ///
    /// The memory in use is the allocator's reading less what eviction freed that the reading
    /// may not show yet: mimalloc keeps freed blocks committed for reuse, a shard's table keeps
    /// its slot and index capacity, so right after an eviction the reading barely moves, and
    /// the next writes reuse the freed space without moving it either. Growth of the reading
    /// past its highest value since the eviction is taken to use that credit up (the freed
    /// space was reused), and so is a drop below its lowest (the allocator gave it back); the
    /// reading's noise in between does not. So the estimate undercounts the memory in use by
    /// at most one eviction's worth, until the space is reused.
    pub fn memory_over_max(&self) -> u64 {
        let max = get(&self.maxmemory);
        if max == 0 {
            return 0;
        }
        let now = u64::try_from(base().elapsed().as_micros()).unwrap_or(u64::MAX);
        let at = get(&self.used_memory_at_us);
        let used = if at == 0 || now.saturating_sub(at) > USED_MEMORY_MAX_AGE_US {
            let used = memory().used;
            self.used_memory.store(used, Ordering::Relaxed);
            self.used_memory_at_us.store(now.max(1), Ordering::Relaxed);
            if get(&self.evicted_bytes_pending) > 0 {
                let mut c = self.eviction_credit.lock();
                let moved = used.saturating_sub(c.high) + c.low.saturating_sub(used);
                c.high = c.high.max(used);
                c.low = c.low.min(used);
                c.pending = c.pending.saturating_sub(moved);
                self.evicted_bytes_pending
                    .store(c.pending, Ordering::Relaxed);
            }
            used
        } else {
            get(&self.used_memory)
        };
        used.saturating_sub(get(&self.evicted_bytes_pending))
            .saturating_sub(max)
    }

    /// Records an eviction of `keys` keys estimated to free `bytes`.
    pub fn count_eviction(&self, keys: u64, bytes: u64) {
        if keys == 0 {
            return;
        }
        self.evicted_keys.fetch_add(keys, Ordering::Relaxed);
        let mut c = self.eviction_credit.lock();
        let reading = get(&self.used_memory);
        c.pending = c.pending.saturating_add(bytes);
        c.high = reading;
        c.low = reading;
        self.evicted_bytes_pending
            .store(c.pending, Ordering::Relaxed);
    }

    /// Every command's statistics, sorted by name.
    pub fn command_stats(&self) -> Vec<(CommandName, CommandStat)> {
        self.commands
            .lock()
            .iter()
            .map(|(n, s)| (*n, s.clone()))
            .collect()
    }

    /// Error replies per error code, sorted by code (empty while disabled).
    pub fn error_stats(&self) -> Vec<(String, u64)> {
        let errors = self.errors.lock();
        errors.codes.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }

    /// Records a sample of the command counter at monotonic time `now_ms`; the server's
    /// background tick calls this, as Redis's `serverCron` does.
    pub fn sample(&self, now_ms: u64) {
        let ops = get(&self.total_commands_processed);
        let mut s = self.samples.lock();
        if let Some((t, n)) = s.last {
            if let Some(rate) = (ops.saturating_sub(n) * 1000).checked_div(now_ms.saturating_sub(t))
            {
                let idx = s.next;
                s.rates[idx] = rate;
                s.next = (idx + 1) % SAMPLES;
            }
        }
        s.last = Some((now_ms, ops));
    }

    /// Mean of the recent per-second command rates.
    pub fn ops_per_sec(&self) -> u64 {
        let s = self.samples.lock();
        s.rates.iter().sum::<u64>() / SAMPLES as u64
    }

    /// Zeroes the counters `CONFIG RESETSTAT` resets.
    pub fn reset(&self) {
        for c in [
            &self.total_connections_received,
            &self.rejected_connections,
            &self.total_commands_processed,
            &self.total_net_input_bytes,
            &self.total_net_output_bytes,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.total_error_replies,
            &self.limiter_allowed,
            &self.limiter_denied,
            &self.output_limit_disconnections,
            &self.evicted_keys,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.commands.lock().clear();
        *self.errors.lock() = ErrorStats::default();
    }
}

/// Relaxed add that skips the atomic when there is nothing to add.
pub fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Relaxed read.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_in_nanoseconds_match_the_exported_bounds() {
        for (i, (&ns, &secs)) in LATENCY_BUCKETS_NS.iter().zip(&LATENCY_BUCKETS).enumerate() {
            assert_eq!(ns, (secs * 1e9).round() as u64, "bucket {i}");
            assert_eq!(bucket(ns), i, "a duration on a bound falls in that bucket");
            assert_eq!(bucket(ns + 1), i + 1, "just past it, in the next");
        }
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(u64::MAX), LATENCY_BUCKETS.len());
    }
}
