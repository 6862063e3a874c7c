//! Feeding the usage history ([`crate::usage`]) from the decision paths, and saving it next
//! to the append-only file.
//!
//! The hot path takes no shared lock: each worker thread appends its decisions to its own
//! stripe (a small buffer behind an uncontended mutex, picked once per thread), and a stripe
//! is folded into the [`History`] — the one shared lock — once it holds [`FLUSH_AT`] samples,
//! and by every reader and every background tick before they read. A sample costs a push and
//! two reference-count increments (the policy and the identity); the buffer keeps its
//! capacity, so nothing is allocated once it has grown (tests/allocations.rs holds
//! LIMIT.CHECK to its budget with the history on).
//!
//! With `appendonly yes` the history is saved to `dir/usage-history.bin`
//! ([`crate::usage::snapshot`]) whenever a minute ends (by the background tick) and at
//! shutdown, and loaded at start: a `kill -9` loses at most the minute in progress.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::clock::Nanos;
use crate::policy::model::Policy;
use crate::usage::{minute_of, snapshot, Counts, History};

use super::Engine;

/// The history file's name, in `dir` beside `appendonly.aof`.
pub const USAGE_FILE: &str = "usage-history.bin";

/// Samples a stripe buffers before folding them into the history.
pub const FLUSH_AT: usize = 256;

const STRIPES: usize = 16;

/// A policy's name as a sample carries it: the policy itself when the check resolved one (no
/// allocation), else its name.
#[derive(Debug, Clone)]
pub enum PolicyName {
    /// The resolved policy.
    Policy(Arc<Policy>),
    /// A name (deny-listed requests and settles resolve no policy).
    Name(Arc<str>),
}

impl PolicyName {
    fn as_str(&self) -> &str {
        match self {
            PolicyName::Policy(p) => &p.name,
            PolicyName::Name(n) => n,
        }
    }
}

#[derive(Debug)]
struct Sample {
    minute: u32,
    policy: PolicyName,
    identity: Bytes,
    counts: Counts,
}

/// The engine's usage history and its per-worker stripes.
#[derive(Debug)]
pub struct Usage {
    enabled: AtomicBool,
    stripes: Box<[Mutex<Vec<Sample>>]>,
    history: Mutex<History>,
    saved_minute: AtomicU32,
    saving: Arc<AtomicBool>,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

impl Usage {
    /// A history tracking `identities` identities per ranking; `enabled` false records nothing.
    pub fn new(enabled: bool, identities: usize) -> Usage {
        Usage {
            enabled: AtomicBool::new(enabled),
            stripes: (0..STRIPES).map(|_| Mutex::new(Vec::new())).collect(),
            history: Mutex::new(History::new(identities)),
            saved_minute: AtomicU32::new(0),
            saving: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether decisions are recorded (`usage-history`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns recording on or off (`CONFIG SET usage-history`); the history is kept.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Records `counts` for `identity` under `policy` at `now`.
    pub fn record(&self, policy: PolicyName, identity: &Bytes, now: Nanos, counts: Counts) {
        if !self.is_enabled() || counts.is_empty() {
            return;
        }
        let sample = Sample {
            minute: minute_of(now.0),
            policy,
            identity: identity.clone(),
            counts,
        };
        let i = STRIPE.with(|s| *s);
        let mut stripe = self.stripes[i].lock();
        if stripe.capacity() == 0 {
            stripe.reserve_exact(FLUSH_AT);
        }
        stripe.push(sample);
        if stripe.len() >= FLUSH_AT {
            // Folded in place (the stripe's lock, then the history's, the order readers take
            // them in too), so the buffer keeps its capacity: no allocation per batch.
            self.fold(stripe.drain(..), minute_of(now.0));
        }
    }

    fn fold(&self, batch: impl Iterator<Item = Sample>, now_minute: u32) {
        let mut h = self.history.lock();
        for s in batch {
            h.record(
                s.policy.as_str(),
                &s.identity,
                s.minute,
                &s.counts,
                now_minute.max(s.minute),
            );
        }
    }

    /// Folds every stripe into the history, then runs `f` on it.
    pub fn read<R>(&self, now: Nanos, f: impl FnOnce(&History) -> R) -> R {
        let now_minute = minute_of(now.0);
        for stripe in self.stripes.iter() {
            let mut stripe = stripe.lock();
            if !stripe.is_empty() {
                self.fold(stripe.drain(..), now_minute);
            }
        }
        let mut h = self.history.lock();
        h.prune(now_minute);
        f(&h)
    }

    /// Replaces the history (loading a snapshot).
    fn replace(&self, h: History) {
        *self.history.lock() = h;
    }
}

impl Engine {
    /// Records one decision, or a settle's correction, in the usage history.
    pub fn record_usage(&self, policy: PolicyName, identity: &Bytes, now: Nanos, counts: Counts) {
        self.usage.record(policy, identity, now, counts);
    }

    /// The history file's path when the append-only file is on.
    fn usage_path(&self) -> Option<PathBuf> {
        let c = self.config.read();
        c.appendonly.then(|| c.dir.join(USAGE_FILE))
    }

    /// Loads `dir/usage-history.bin` if there is one (called when the AOF is opened). A file
    /// that cannot be read is logged and set aside as `usage-history.bin.bad`: the history is
    /// an aid, not state a limit depends on, so it never stops a start.
    pub(super) fn load_usage(&self) {
        let Some(path) = self.usage_path() else {
            return;
        };
        let capacity = self.config.read().usage_history_identities;
        let now_minute = minute_of(self.clock.now().0);
        match std::fs::read(&path) {
            Ok(bytes) => match snapshot::decode(&bytes, capacity, now_minute) {
                Ok(h) => {
                    tracing::info!(
                        identities = h.tracked(),
                        minutes = h.stored_minutes(),
                        "usage history loaded"
                    );
                    self.usage.replace(h);
                    self.usage.saved_minute.store(now_minute, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "usage history not loaded; starting empty");
                    let _ = std::fs::rename(&path, path.with_extension("bin.bad"));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "usage history not readable")
            }
        }
    }

    /// Background tick: once a minute has ended since the last save, writes the history on a
    /// thread of its own (the encoding is done here, under the history's lock).
    pub(super) fn tick_usage(&self, now: Nanos) {
        let Some(path) = self.usage_path() else {
            return;
        };
        let minute = minute_of(now.0);
        if self.usage.saved_minute.load(Ordering::Relaxed) >= minute
            || self.usage.saving.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.usage.saved_minute.store(minute, Ordering::Relaxed);
        let bytes = self.usage.read(now, snapshot::encode);
        let saving = self.usage.saving.clone();
        std::thread::spawn(move || {
            if let Err(e) = write_atomically(&path, &bytes) {
                tracing::warn!(error = %e, path = %path.display(), "usage history not saved");
            }
            saving.store(false, Ordering::Release);
        });
    }

    /// Writes the usage history now (at shutdown). Does nothing without the append-only file.
    pub fn save_usage(&self) -> io::Result<()> {
        let Some(path) = self.usage_path() else {
            return Ok(());
        };
        let bytes = self.usage.read(self.clock.now(), snapshot::encode);
        write_atomically(&path, &bytes)
    }
}

/// Writes `bytes` to a temporary file, fsyncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("bin.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
