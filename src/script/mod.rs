//! Embedded Lua 5.1 scripting with Redis 7.0's semantics: the VM and its sandbox
//! ([`engine`]), the script cache and function libraries, Lua <-> RESP conversion
//! ([`convert`]), the `cjson` and `bit` libraries, the recognition of the library scripts the
//! fast path answers natively ([`known`]), and the state of the running script that
//! other connections consult (busy replies, `SCRIPT KILL`).
//!
//! Knows no command and no keyspace: `redis.call` is answered by a callback the caller passes
//! to [`Engine::run`] (the command layer dispatches it through the command table, under the
//! shard locks it holds). Depends on `mlua` and [`crate::protocol::Frame`] only.
//!
//! One VM serves the whole server, behind a reentrant mutex that doubles as the script token:
//! whoever holds it may run Lua. It is taken before any shard lock (EXEC takes it first when
//! its queue holds a script), which keeps the lock order total. Callers run scripts off the
//! async runtime's worker threads (see `server::connection`); [`RunState`] holds the command
//! gate that keeps ordinary commands from blocking on a running script's shards.

pub mod bit;
pub mod cjson;
pub mod convert;
pub mod engine;
pub mod known;

use std::cell::{RefCell, RefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard};
use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};
use tokio::sync::Notify;

pub use engine::{
    CallOutcome, Engine, FunctionInfo, Library, RunOutcome, Script, ScriptFlags, Sha,
};

/// Redis's default `busy-reply-threshold` (alias `lua-time-limit`), in milliseconds.
pub const DEFAULT_BUSY_REPLY_THRESHOLD_MS: u64 = 5000;
/// How long `FUNCTION LOAD` may run a library's main chunk (Redis's `LOAD_TIMEOUT_MS`).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// The count hook fires every this many VM instructions (as in Redis).
pub const HOOK_INSTRUCTIONS: u32 = 100_000;

/// The reply other clients get while a busy `EVAL` script runs.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The reply other clients get while a busy function runs.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// The scripting subsystem of one server: the VM (created on first use) and the run state.
pub struct Scripts {
    engine: ReentrantMutex<RefCell<Option<Engine>>>,
    run: Arc<RunState>,
    libraries: AtomicUsize,
    functions: AtomicUsize,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

impl Scripts {
    /// No VM yet; it is built by the first [`ScriptsGuard::engine`].
    pub fn new() -> Scripts {
        Scripts {
            engine: ReentrantMutex::new(RefCell::new(None)),
            run: Arc::new(RunState::new()),
            libraries: AtomicUsize::new(0),
            functions: AtomicUsize::new(0),
        }
    }

    /// Takes the script token if nobody holds it.
    pub fn try_lock(&self) -> Option<ScriptsGuard<'_>> {
        Some(ScriptsGuard {
            guard: self.engine.try_lock()?,
            run: &self.run,
        })
    }

    /// Library and function counts as of the last change (readable while a script runs,
    /// for `FUNCTION STATS`).
    pub fn function_counts(&self) -> (usize, usize) {
        (
            self.libraries.load(Ordering::Acquire),
            self.functions.load(Ordering::Acquire),
        )
    }

    /// Records the counts after a library change (call with the token held).
    pub fn set_function_counts(&self, libraries: usize, functions: usize) {
        self.libraries.store(libraries, Ordering::Release);
        self.functions.store(functions, Ordering::Release);
    }

    /// Takes the script token (blocking). The same thread may take it again (EXEC holds it
    /// while its queued scripts run).
    pub fn lock(&self) -> ScriptsGuard<'_> {
        ScriptsGuard {
            guard: self.engine.lock(),
            run: &self.run,
        }
    }

    /// Takes the script token, waiting while another connection's script runs, unless that
    /// script passes the busy threshold: then `Err` with the `BUSY` reply, so that a worker
    /// blocked here is freed for `SCRIPT KILL` (a script that loops must not hold every
    /// worker). Used by `EVAL`/`FCALL`, which run at once instead of waiting asynchronously
    /// behind a short script (see `cmd::script_run::busy_gate`).
    pub fn lock_unless_busy(&self) -> Result<ScriptsGuard<'_>, &'static str> {
        loop {
            if let Some(guard) = self
                .engine
                .try_lock_for(std::time::Duration::from_millis(5))
            {
                return Ok(ScriptsGuard {
                    guard,
                    run: &self.run,
                });
            }
            if self.run.is_timed_out() {
                return Err(self.run.busy_reply());
            }
        }
    }

    /// The state of the running script, readable without the token.
    pub fn run_state(&self) -> &Arc<RunState> {
        &self.run
    }
}

/// The script token; gives access to the VM.
pub struct ScriptsGuard<'a> {
    guard: ReentrantMutexGuard<'a, RefCell<Option<Engine>>>,
    run: &'a Arc<RunState>,
}

impl ScriptsGuard<'_> {
    /// The VM, built on first use.
    ///
    /// Panics if it is already borrowed on this thread: scripts cannot call scripting
    /// commands (they are `noscript`), so that is a bug.
    pub fn engine(&self) -> RefMut<'_, Engine> {
        let mut slot = self.guard.try_borrow_mut().expect(
            "invariant: the script engine is not re-entered (scripting commands are noscript)",
        );
        if slot.is_none() {
            *slot = Some(Engine::new(self.run.clone()));
        }
        RefMut::map(slot, |e| {
            e.as_mut()
                .expect("invariant: the engine was created just above")
        })
    }

    /// The state of the running script.
    pub fn run_state(&self) -> &RunState {
        self.run
    }

    /// The engine if it was ever built (without building it).
    pub fn existing(&self) -> Option<RefMut<'_, Engine>> {
        let slot = self.guard.try_borrow_mut().ok()?;
        RefMut::filter_map(slot, Option::as_mut).ok()
    }
}

/// What the running script is, for `FUNCTION STATS`.
#[derive(Debug, Clone)]
pub struct Running {
    /// The script's SHA1 or the function's name.
    pub name: String,
    /// The command that started it.
    pub command: Vec<Bytes>,
    /// When it started.
    pub started: Instant,
}

/// The state of the running script, shared with the VM's count hook and read by other
/// connections without taking the script token.
#[derive(Debug)]
pub struct RunState {
    /// The SHA1s in the script cache, readable without the script token: `EVALSHA` of a
    /// recognised library script checks it and runs natively without taking the token.
    loaded: parking_lot::RwLock<std::collections::HashSet<Sha, foldhash::fast::RandomState>>,
    /// Bumped each time `loaded` is emptied (see [`RunState::flushes`]).
    flushes: AtomicU64,
    base: Instant,
    running: AtomicBool,
    timed_out: AtomicBool,
    kill: AtomicBool,
    force_kill: AtomicBool,
    wrote: AtomicBool,
    function: AtomicBool,
    loading: AtomicBool,
    aborted: AtomicBool,
    hook_escalated: AtomicBool,
    /// An `EXEC` whose queue holds scripts keeps the server in the running state for the
    /// whole transaction (see [`RunState::hold`]).
    held: AtomicBool,
    /// The command gate (see [`RunState::command_gate`]): ordinary commands hold it shared
    /// while they run; a script takes it exclusively for the instant it marks itself running,
    /// so no command that passed the gate is still running when the script takes its locks.
    gate: ShardedLock<()>,
    started_us: AtomicU64,
    threshold_ms: AtomicU64,
    current: Mutex<Option<Running>>,
    /// Woken when a script ends (other connections wait on it, with a short timeout that
    /// also catches the busy threshold).
    pub notify: Notify,
}

/// Why the count hook stops a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// `SCRIPT KILL` / `FUNCTION KILL` (or a shutdown).
    Killed,
    /// A library's main chunk ran past [`LOAD_TIMEOUT`].
    LoadTimeout,
    /// The run was abandoned to be restarted with more locks; its result is discarded.
    Aborted,
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupt::Killed => "Script killed by user with SCRIPT KILL...",
            Interrupt::LoadTimeout => "FUNCTION LOAD timeout",
            Interrupt::Aborted => "Script aborted to be run again",
        })
    }
}

impl std::error::Error for Interrupt {}

impl RunState {
    fn new() -> RunState {
        RunState {
            loaded: parking_lot::RwLock::default(),
            flushes: AtomicU64::new(0),
            base: Instant::now(),
            running: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            force_kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            function: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            hook_escalated: AtomicBool::new(false),
            held: AtomicBool::new(false),
            gate: ShardedLock::new(()),
            started_us: AtomicU64::new(0),
            threshold_ms: AtomicU64::new(DEFAULT_BUSY_REPLY_THRESHOLD_MS),
            current: Mutex::new(None),
            notify: Notify::new(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether script `sha` is in the script cache.
    pub fn is_loaded(&self, sha: &Sha) -> bool {
        self.loaded.read().contains(sha)
    }

    /// How many times the cache was emptied. A script seen loaded under the current count is
    /// still loaded (scripts leave the cache only all at once), so a connection may remember
    /// that instead of taking the shared lock of [`RunState::is_loaded`] for every call.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Acquire)
    }

    /// Keeps [`RunState::is_loaded`] in step with the cache (called by the engine).
    pub(crate) fn set_loaded(&self, sha: Sha) {
        self.loaded.write().insert(sha);
    }

    /// Forgets every cached script (the engine's cache was emptied or replaced).
    pub(crate) fn clear_loaded(&self) {
        let mut loaded = self.loaded.write();
        loaded.clear();
        self.flushes.fetch_add(1, Ordering::AcqRel);
    }

    /// True while a script runs (one cheap load; checked before every request).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// True once the running script passed the busy threshold.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// True if the running script is a function (FCALL).
    pub fn is_function(&self) -> bool {
        self.function.load(Ordering::Acquire)
    }

    /// The busy reply for the running script's kind.
    pub fn busy_reply(&self) -> &'static str {
        if self.is_function() {
            BUSY_FUNCTION
        } else {
            BUSY_EVAL
        }
    }

    /// Lets an ordinary command (one that does not run Lua) run, or `None` while a script
    /// runs or is starting: the caller then consults `cmd::script_run::busy_gate` and, if it
    /// must wait, waits without blocking its thread. The guard is held while the command runs
    /// and dropped before anything that takes the script token.
    ///
    /// Why a gate and not only the running flag: a command that read the flag just before a
    /// script began could otherwise go on to wait for a shard the script holds, blocking its
    /// worker thread for as long as the script runs (forever, for a loop nobody can then
    /// kill on a single worker). A script marks itself running under the exclusive side of
    /// the gate, before it takes any shard, so every command either finished before or sees
    /// the flag. The lock is sharded per thread, so the shared side costs a command one
    /// uncontended lock.
    pub fn command_gate(&self) -> Option<ShardedLockReadGuard<'_, ()>> {
        let guard = self.gate.try_read().ok()?;
        (!self.is_running()).then_some(guard)
    }

    /// Marks the server as running a script before an `EXEC` whose queue holds scripting
    /// commands takes its shard locks, until [`RunState::release`]: the transaction's scripts
    /// run inside it, and between them other connections still wait (they would block on the
    /// transaction's shards).
    pub fn hold(&self, threshold_ms: u64) {
        let _gate = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.held.store(true, Ordering::Release);
        self.mark_running(None, threshold_ms);
    }

    /// Ends [`RunState::hold`].
    pub fn release(&self) {
        self.held.store(false, Ordering::Release);
        self.end();
    }

    /// Marks a script as running; `function` describes a running function for `FUNCTION
    /// STATS` (EVAL scripts are never described there: it answers BUSY for them), `None` for
    /// an EVAL script. Call it before taking the script's shard locks (see
    /// [`RunState::command_gate`]); it waits for the ordinary commands still running.
    pub fn begin(&self, function: Option<Running>, threshold_ms: u64) {
        if self.held.load(Ordering::Acquire) {
            // Inside a held EXEC: the gate was closed by `hold`, and the transaction's shard
            // locks may block commands that hold the gate's shared side.
            self.mark_running(function, threshold_ms);
            return;
        }
        let _gate = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.mark_running(function, threshold_ms);
    }

    fn mark_running(&self, function: Option<Running>, threshold_ms: u64) {
        self.kill.store(false, Ordering::Release);
        self.aborted.store(false, Ordering::Release);
        self.wrote.store(false, Ordering::Release);
        self.timed_out.store(false, Ordering::Release);
        self.function.store(function.is_some(), Ordering::Release);
        self.threshold_ms.store(threshold_ms, Ordering::Release);
        self.started_us.store(self.now_us(), Ordering::Release);
        if function.is_some() {
            *self.current.lock() = function;
        }
        self.running.store(true, Ordering::Release);
    }

    /// Marks the script as ended and wakes the connections waiting for it (inside a held
    /// `EXEC`, the server stays in the running state until [`RunState::release`]).
    pub fn end(&self) {
        self.running
            .store(self.held.load(Ordering::Acquire), Ordering::Release);
        self.timed_out.store(false, Ordering::Release);
        self.kill.store(false, Ordering::Release);
        self.force_kill.store(false, Ordering::Release);
        if self.is_function() {
            *self.current.lock() = None;
            self.function.store(false, Ordering::Release);
        }
        self.notify.notify_waiters();
    }

    /// Stops the running script at the next hook: its run is being abandoned (see
    /// [`CallOutcome::Abort`]).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    /// Records that the hook was switched to firing on every instruction (to stop a script
    /// that catches the interruption with `pcall`); true if it had been.
    pub fn take_hook_escalated(&self) -> bool {
        self.hook_escalated.swap(false, Ordering::AcqRel)
    }

    /// See [`RunState::take_hook_escalated`].
    pub fn note_hook_escalated(&self) {
        self.hook_escalated.store(true, Ordering::Release);
    }

    /// Records that the running script called a write command (it can no longer be killed).
    pub fn note_write(&self) {
        self.wrote.store(true, Ordering::Release);
    }

    /// True if the running script was killed.
    pub fn was_killed(&self) -> bool {
        self.kill.load(Ordering::Acquire) || self.force_kill.load(Ordering::Acquire)
    }

    /// `SCRIPT KILL` (`function == false`) or `FUNCTION KILL`: Redis's checks and texts.
    pub fn request_kill(&self, function: bool) -> Result<(), &'static str> {
        if !self.is_running() {
            return Err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Acquire) {
            return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
        }
        if function != self.is_function() {
            return Err(if function { BUSY_EVAL } else { BUSY_FUNCTION });
        }
        self.kill.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the running script whatever it did (the server is shutting down).
    pub fn force_kill(&self) {
        if self.is_running() {
            self.force_kill.store(true, Ordering::Release);
        }
    }

    /// The running function, for `FUNCTION STATS` (`None` for an EVAL script).
    pub fn current(&self) -> Option<Running> {
        self.current.lock().clone()
    }

    /// Marks a library's main chunk as loading (the count hook then enforces
    /// [`LOAD_TIMEOUT`]).
    pub fn begin_load(&self) {
        self.started_us.store(self.now_us(), Ordering::Release);
        self.loading.store(true, Ordering::Release);
    }

    /// Ends [`RunState::begin_load`].
    pub fn end_load(&self) {
        self.loading.store(false, Ordering::Release);
    }

    /// The count hook's check: stops a killed script or a library load past its time, and
    /// flags a script past the busy threshold (waiting connections then answer BUSY).
    pub fn check(&self) -> Result<(), Interrupt> {
        let now_us = self.now_us();
        let elapsed_us = now_us.saturating_sub(self.started_us.load(Ordering::Acquire));
        let elapsed_ms = elapsed_us / 1000;
        if self.loading.load(Ordering::Acquire) {
            if elapsed_ms > LOAD_TIMEOUT.as_millis() as u64 {
                return Err(Interrupt::LoadTimeout);
            }
            return Ok(());
        }
        if self.was_killed() {
            return Err(Interrupt::Killed);
        }
        if self.aborted.load(Ordering::Acquire) {
            return Err(Interrupt::Aborted);
        }
        if self.is_running()
            && !self.is_timed_out()
            && elapsed_ms >= self.threshold_ms.load(Ordering::Acquire)
        {
            self.timed_out.store(true, Ordering::Release);
            // Scripts run off the runtime's workers (see `server::connection`), so the
            // waiting connections can be woken from here to answer BUSY at once.
            self.notify.notify_waiters();
            tracing::warn!(
                ms = elapsed_ms,
                "slow script detected: still in execution after the busy threshold"
            );
        }
        Ok(())
    }
}
