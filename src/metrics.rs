//! Server-wide counters, all atomics. Connections count locally and add their batch totals
//! here once per read batch, so the hot path never contends on a shared cache line per command.
//! The pure limiter never counts anything itself.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

const SAMPLES: usize = 16;

#[derive(Debug, Default)]
struct OpsSamples {
    last: Option<(u64, u64)>,
    rates: [u64; SAMPLES],
    next: usize,
}

/// Per-connection tallies, flushed into [`Metrics`] after each batch.
#[derive(Debug, Default, Clone, Copy)]
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
}

impl Metrics {
    /// Adds a connection's tallies and resets them.
    pub fn flush(&self, local: &mut LocalStats) {
        let l = std::mem::take(local);
        add(&self.total_commands_processed, l.commands);
        add(&self.keyspace_hits, l.hits);
        add(&self.keyspace_misses, l.misses);
        add(&self.total_error_replies, l.errors);
        add(&self.limiter_allowed, l.allowed);
        add(&self.limiter_denied, l.denied);
        add(&self.dirty, l.dirty);
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
        ] {
            c.store(0, Ordering::Relaxed);
        }
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
