//! Starting an engine: replaying the append-only file, starting its writer, applying the
//! configured policies, and stopping it cleanly.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::persist::{self, PersistError, Record};
use crate::policy::model::{split_words, Policy};
use crate::policy::registry::PendingReservation;
use crate::store::Value;

use super::Engine;

/// What replay does with the records that are not keyspace or policy effects (scripts and
/// function libraries): the server restores them into its Lua VM; an embedder may ignore them.
pub type RestoreHook<'a> = &'a mut dyn FnMut(Record) -> Result<(), PersistError>;

impl Engine {
    /// An engine for `config`, on the system clock, started: with `appendonly yes` the file
    /// `dir/appendonly.aof` is replayed (records other than keyspace and policy effects, such
    /// as scripts, are skipped) and its writer started; the configured policies are applied.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = std::env::temp_dir().join(format!("limitkv-doc-{}", std::process::id()));
    /// let mut config = limitkv::config::Config::default();
    /// config.appendonly = true;
    /// config.dir = dir.clone();
    /// let engine = limitkv::engine::Engine::open(config)?;
    /// engine.shutdown()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(config: Config) -> io::Result<Engine> {
        let engine = Engine::new(config, Arc::new(crate::clock::SystemClock));
        engine.open_aof(&mut |_| Ok(()))?;
        engine
            .start()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(engine)
    }

    /// With `appendonly yes`: replays `dir/appendonly.aof` into the databases (refusing a
    /// corrupt file, or cutting a torn tail with `aof-load-truncated yes`), handing script
    /// records to `restore`, then starts the writer that appends to it. Does nothing without
    /// `appendonly`.
    pub fn open_aof(&self, restore: RestoreHook<'_>) -> io::Result<()> {
        let cfg = self.config.read().clone();
        if !cfg.appendonly {
            return Ok(());
        }
        let fail = |e: PersistError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        std::fs::create_dir_all(&cfg.dir)?;
        persist::remove_stale_tmp(&cfg.dir)?;
        let path = cfg.dir.join(persist::AOF_FILE);
        let mode = if cfg.aof_load_truncated {
            persist::OnCorruptTail::Truncate
        } else {
            persist::OnCorruptTail::Refuse
        };
        let started = std::time::Instant::now();
        let report = persist::load_file_with(
            &path,
            mode,
            &self.dbs,
            &self.policies,
            self.clock.now(),
            restore,
        )
        .map_err(fail)?;
        if let Some(at) = report.truncated_at {
            tracing::warn!(offset = at, path = %path.display(), "AOF had a damaged tail: truncated");
        }
        tracing::info!(
            records = report.records,
            bytes = report.good_bytes,
            preallocated = report.padding,
            ms = started.elapsed().as_millis() as u64,
            path = %path.display(),
            "AOF loaded"
        );
        self.load_usage();
        let sink = persist::FileSink::open_at(&path, report.good_bytes)?
            .with_preallocation(cfg.aof_preallocate);
        let writer = persist::Writer::start(Box::new(sink), cfg.appendfsync, self.clock.clone())?;
        writer.set_latency_monitor(self.latency.clone());
        let _ = self.aof.set(Arc::new(writer));
        Ok(())
    }

    /// At start, after the AOF is loaded: applies the configuration's policies (`policy`
    /// lines, then `policy-file` files), and scans the keyspace for reservations, so that
    /// their expiry is reported and new lease and reservation ids stay above every id in use.
    pub fn start(&self) -> Result<(), String> {
        let cfg = self.config.read().clone();
        let mut lines: Vec<(String, String)> = cfg
            .policies
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("policy line {}", i + 1), l.clone()))
            .collect();
        for path in &cfg.policy_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
            for (i, l) in text.lines().enumerate() {
                let l = l.trim();
                if !l.is_empty() && !l.starts_with('#') {
                    lines.push((format!("{}:{}", path.display(), i + 1), l.to_owned()));
                }
            }
        }
        {
            let mut t = self.policies.write();
            for (at, line) in lines {
                let words = split_words(&line).map_err(|e| format!("{at}: {e}"))?;
                let (name, rest) = words
                    .split_first()
                    .ok_or_else(|| format!("{at}: a policy needs a name"))?;
                let rest: Vec<Bytes> = rest.iter().cloned().map(Bytes::from).collect();
                let p = Policy::parse(name.as_bytes(), &rest).map_err(|e| format!("{at}: {e}"))?;
                t.set_policy(p);
            }
        }
        self.track_keyspace_ids();
        let moved = self.retag_rule_keys();
        if moved > 0 {
            tracing::info!(
                keys = moved,
                cluster = self.cluster_keys,
                "rule keys carried over to this cluster mode's key format"
            );
        }
        Ok(())
    }

    /// Scans the keyspace for reservations (so that their expiry is reported) and raises the
    /// lease and reservation id source above every id in use. Run at start, and when a
    /// replica is promoted (its keyspace came from its master).
    pub fn track_keyspace_ids(&self) {
        let now = self.clock.now();
        let mut max_id = 0u64;
        for db in self.dbs.iter() {
            for i in 0..db.shard_count() {
                let shard = db.lock_shard(i);
                for (_, e) in shard.iter_live(now) {
                    match &e.value {
                        Value::Reservation(r) => {
                            max_id = max_id.max(r.id).max(r.lease.map_or(0, |l| l.0));
                            self.policies.track_reservation(
                                r.expires_at,
                                r.id,
                                PendingReservation {
                                    policy: r.policy.clone(),
                                    identity: r.identity.clone(),
                                    tokens: r.tokens,
                                    cost: r.cost,
                                },
                            );
                        }
                        Value::Lease(s) => {
                            let top = s.leases.iter().map(|l| l.id.0).max().unwrap_or(0);
                            max_id = max_id.max(top);
                        }
                        _ => {}
                    }
                }
            }
        }
        self.next_lease_id
            .fetch_max(max_id.saturating_add(1), Ordering::Relaxed);
    }

    /// Saves the usage history, then flushes and closes the append-only file (if any): every
    /// record appended so far is on disk when this returns. Further changes are no longer journaled durably.
    pub fn shutdown(&self) -> io::Result<()> {
        self.save_usage()?;
        match self.aof.get() {
            Some(w) => w.shutdown().map_err(|e| io::Error::other(e.to_string())),
            None => Ok(()),
        }
    }
}
