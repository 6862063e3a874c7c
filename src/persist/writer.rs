//! The AOF writer: a [`Sink`] seam (file or in-memory) and one std thread that drives it.
//!
//! Producers call [`Writer::append`] under the key's shard guard: it encodes the record into
//! a shared pending buffer and returns its [`Seq`] without blocking on I/O. A commit takes
//! everything pending, writes it with one `write_all`, then applies the fsync policy and
//! publishes the highest *acknowledged* sequence number:
//!
//! - `always`: acknowledged = written and fsynced. Every record in a batch shares one fsync
//!   (group commit), and records queued during an fsync form the next batch. A connection
//!   holds its replies until then ([`Writer::defer`]; the thread that publishes the commit
//!   writes them), or awaits [`DurableWaiter::wait`]. In the server, a runtime worker that
//!   runs out of work commits the batch itself ([`IdleCommit`]); the thread commits only
//!   what no worker does in time.
//! - `everysec`: acknowledged = written (in the kernel); fsync at most once per second.
//! - `no`: acknowledged = written; never fsync (shutdown still does).
//!
//! Errors never lose a byte that was taken: the thread keeps every byte written since the
//! last successful fsync, and after a failed write or fsync it truncates the sink back to the
//! last good length and writes them again on the next batch (or within a second without
//! traffic). While that fails, [`Writer::healthy`] is false and the dispatcher refuses writes
//! with [`Writer::check_writable`]'s `-MISCONF` error, like Redis.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::clock::{Clock, Nanos};
use crate::persist::record::{self, Record};
use crate::persist::PersistError;

/// Where AOF bytes go. Implementations: [`FileSink`], [`MemSink`].
pub trait Sink: Send {
    /// Appends `buf`. On error, [`Sink::len`] must still count the bytes that did land, so
    /// the writer can cut them off.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes every byte appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the sink back to `len` bytes (used to remove a partial write before retrying).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Gives back space reserved past the last record ([`FileSink`]'s preallocated zeros);
    /// called at shutdown, after the final sync.
    fn trim(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Current length in bytes.
    fn len(&self) -> u64;
    /// True when nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How far past the last record an append-only file is extended with zeros ahead of time.
///
/// Appends then overwrite blocks the file already has, within its current size, so the
/// fsync after each `always` batch flushes data only: an fsync after a write that grows the
/// file must also commit the new size and extents to the filesystem journal. On the test
/// machine (ext4) that took an fdatasync from 165-173 µs to 100-115 µs. Loading reads zeros
/// from a record boundary to the end of the file as this space, not as damage; a clean
/// shutdown trims it. Extending costs one write of this many zeros per this many bytes of
/// log (about 4.5 ms on the test machine, once every 100,000 INCR records or so).
pub const PREALLOCATE: u64 = 4 << 20;

/// An append-only file, extended [`PREALLOCATE`] bytes ahead with zeros.
#[derive(Debug)]
pub struct FileSink {
    file: File,
    /// Where the next record goes: the end of the last one.
    len: u64,
    /// The file's size: `len` plus preallocated zeros.
    allocated: u64,
    /// How far ahead of `len` the file is extended ([`PREALLOCATE`] unless set; 0: never).
    preallocate: u64,
    path: PathBuf,
}

impl FileSink {
    /// Opens (creating if missing) `path` for appending after its valid prefix, found by
    /// scanning it. The writer adds the header to an empty file. The server uses
    /// [`FileSink::open_at`] with what loading found instead of scanning twice.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let len = match File::open(path) {
            Ok(f) => crate::persist::replay::scan(io::BufReader::new(f), |_| {})?.good_bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        FileSink::open_at(path, len)
    }

    /// Opens (creating if missing) `path` for appending after its first `len` bytes, the
    /// valid prefix that loading found ([`crate::persist::ReplayReport::good_bytes`]); what
    /// follows must be zeros (preallocated space) or nothing. Call
    /// [`crate::persist::load_file`] first: appends must follow a valid prefix.
    pub fn open_at(path: &Path, len: u64) -> io::Result<FileSink> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let allocated = file.metadata()?.len();
        if allocated < len {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("{} is shorter than its valid prefix", path.display()),
            ));
        }
        Ok(FileSink {
            file,
            len,
            allocated,
            preallocate: PREALLOCATE,
            path: path.to_owned(),
        })
    }

    /// Creates `path` empty, replacing any previous file (a rewrite's temporary file).
    pub fn create(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FileSink {
            file,
            len: 0,
            allocated: 0,
            preallocate: PREALLOCATE,
            path: path.to_owned(),
        })
    }

    /// The path this sink was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size, preallocated zeros included.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Keeps `bytes` of zeros ahead of the last record instead of [`PREALLOCATE`]; 0 turns
    /// preallocation off (for copy-on-write filesystems, where it saves nothing).
    pub fn with_preallocation(mut self, bytes: u64) -> FileSink {
        self.preallocate = bytes;
        self
    }

    /// Extends the file with zeros to `preallocate` bytes past `end` (the end of the write
    /// about to happen, which covers the part before it). Best effort: if the disk cannot take the
    /// zeros, the write itself may still fit, and grows the file as an append would.
    fn extend(&mut self, end: u64) {
        let target = end + self.preallocate;
        let zeros = vec![0u8; (1 << 20).min(self.preallocate as usize)];
        let mut at = self.allocated.max(end);
        while at < target {
            let n = zeros.len().min((target - at) as usize);
            match self.file.write_at(&zeros[..n], at) {
                Ok(0) => break,
                Ok(w) => {
                    at += w as u64;
                    self.allocated = at;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "AOF preallocation failed; appending instead");
                    break;
                }
            }
        }
    }
}

impl Sink for FileSink {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let end = self.len + buf.len() as u64;
        if end > self.allocated && self.preallocate > 0 {
            self.extend(end);
        }
        // A loop of `write_at` rather than `write_all_at`, so a short write followed by an
        // error (disk full) still counts the bytes that landed.
        while !buf.is_empty() {
            match self.file.write_at(buf, self.len) {
                Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "wrote 0 bytes")),
                Ok(n) => {
                    self.len += n as u64;
                    self.allocated = self.allocated.max(self.len);
                    buf = &buf[n..];
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        self.allocated = len;
        Ok(())
    }

    fn trim(&mut self) -> io::Result<()> {
        if self.allocated > self.len {
            self.file.set_len(self.len)?;
            self.allocated = self.len;
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// What an in-memory sink holds and how it is told to fail.
#[derive(Debug, Default)]
pub struct MemState {
    /// Every byte written (the page cache).
    pub data: Vec<u8>,
    /// The bytes as of the last successful sync (what survives a power cut).
    pub synced: Vec<u8>,
    /// Successful syncs.
    pub syncs: u64,
    /// Successful writes.
    pub writes: u64,
    /// If set, the next write lands this many bytes, then fails with "no space left"
    /// (checked before `fail_writes`).
    pub tear_next_write_at: Option<usize>,
    /// The next this-many writes fail without writing anything.
    pub fail_writes: u32,
    /// The next this-many syncs fail.
    pub fail_syncs: u32,
    /// How long each sync takes (to model fsync latency in group-commit tests).
    pub sync_delay: Duration,
}

/// An in-memory sink for tests; clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct MemSink {
    /// The shared state; lock it to inspect bytes or arm failures.
    pub state: Arc<Mutex<MemState>>,
}

impl MemSink {
    /// An empty sink.
    pub fn new() -> MemSink {
        MemSink::default()
    }

    /// A copy of every byte written.
    pub fn data(&self) -> Vec<u8> {
        self.state.lock().data.clone()
    }
}

impl Sink for MemSink {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(at) = s.tear_next_write_at.take() {
            let n = at.min(buf.len());
            s.data.extend_from_slice(&buf[..n]);
            return Err(io::Error::other("No space left on device (simulated)"));
        }
        if s.fail_writes > 0 {
            s.fail_writes -= 1;
            return Err(io::Error::other("No space left on device (simulated)"));
        }
        s.data.extend_from_slice(buf);
        s.writes += 1;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let delay = self.state.lock().sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut s = self.state.lock();
        if s.fail_syncs > 0 {
            s.fail_syncs -= 1;
            return Err(io::Error::other("Input/output error (simulated fsync)"));
        }
        s.synced = s.data.clone();
        s.syncs += 1;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        s.data.truncate(len);
        s.synced.truncate(len);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.state.lock().data.len() as u64
    }
}

/// Under `always` with idle commit (see [`IdleCommit`]), how long a record may wait for a
/// worker to run out of work and commit it before the writer thread commits it instead
/// (every worker busy, e.g. running a long script or saturated). While traffic flows, the
/// thread also looks this often (see [`Thread::wait_for_work`]): at 1 ms that woke it about
/// 2,000 times per 100,000 `always` INCRs on the test machine, 5 ms about 300 times.
const IDLE_COMMIT_FALLBACK: Duration = Duration::from_millis(5);

/// Under `always` with idle commit, how long a parking worker waits for another worker's
/// commit to finish before it parks without committing (see [`Writer::commit_idle`]). An
/// fsync takes 0.1-0.35 ms on the test machine, so this only runs out on a stalled disk,
/// where it bounds how long the other workers stop serving (reads, `PING`, `INFO`). With 1 ms
/// it ran out on ordinary fsync latency spikes too, and throughput suffered.
const IDLE_COMMIT_WAIT: Duration = Duration::from_millis(5);

/// Under `everysec` and `no`, how long the writer gathers appends before one write. This is
/// most of what a process crash can lose under those policies.
const WRITE_GATHER: Duration = Duration::from_millis(2);

/// The largest queue buffer the writer hands back to producers for reuse.
const SPARE_MAX: usize = 8 << 20;

/// When the writer fsyncs (`--appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// After every batch, before acknowledging it.
    Always,
    /// At most once per second.
    #[default]
    EverySec,
    /// Never (the OS decides).
    No,
}

impl FsyncPolicy {
    /// The policy as a small code, for the writer's atomic.
    fn code(self) -> u8 {
        match self {
            FsyncPolicy::Always => 0,
            FsyncPolicy::EverySec => 1,
            FsyncPolicy::No => 2,
        }
    }

    fn from_code(code: u8) -> FsyncPolicy {
        match code {
            0 => FsyncPolicy::Always,
            1 => FsyncPolicy::EverySec,
            _ => FsyncPolicy::No,
        }
    }

    /// The configuration name (`always`, `everysec`, `no`).
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// A record's position in the log: 1 for the first append, increasing by one per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

/// What the writer publishes after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Every record up to here is acknowledged under the policy.
    pub acked: Seq,
    /// Every record up to here is fsynced, whatever the policy (`WAITAOF`): equal to
    /// `acked` under `always`, up to a second behind under `everysec`, advanced only by
    /// rewrites and the final flush under `no`.
    pub synced: Seq,
    /// False while writes or fsyncs are failing.
    pub healthy: bool,
    /// False once the writer thread has exited.
    pub running: bool,
}

/// Counters for `INFO persistence`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// The policy in force.
    pub policy: FsyncPolicy,
    /// Current file length (`aof_current_size`).
    pub current_size: u64,
    /// Length after the last rewrite, or at startup (`aof_base_size`).
    pub base_size: u64,
    /// Whether the last write (and fsync) succeeded (`aof_last_write_status`).
    pub last_write_ok: bool,
    /// The last error text, if any.
    pub last_error: Option<String>,
    /// Failed writes since start.
    pub write_errors: u64,
    /// Failed fsyncs since start.
    pub fsync_errors: u64,
    /// Successful batch writes since start.
    pub writes: u64,
    /// Successful fsyncs since start.
    pub fsyncs: u64,
    /// Time spent in successful fsyncs, in nanoseconds (wall time, not the injected clock:
    /// this measures the disk).
    pub fsync_nanos: u64,
    /// The longest fsync so far, in nanoseconds.
    pub fsync_max_nanos: u64,
    /// Successful fsyncs per duration bucket ([`crate::metrics::LATENCY_BUCKETS`], then the
    /// overflow bucket).
    pub fsync_buckets: [u64; crate::metrics::LATENCY_BUCKETS.len() + 1],
    /// Bytes appended but not yet taken by the thread (`aof_buffer_length`).
    pub pending_bytes: u64,
    /// Bytes written but not yet fsynced.
    pub unsynced_bytes: u64,
    /// When the last successful fsync finished.
    pub last_fsync_at: Option<Nanos>,
    /// How long the oldest unsynced byte has waited (zero when all is synced).
    pub fsync_lag: Nanos,
    /// The last sequence number handed out.
    pub appended: Seq,
    /// The last acknowledged sequence number.
    pub acked: Seq,
    /// A rewrite is buffering appends.
    pub rewrite_in_progress: bool,
    /// Completed rewrites since start.
    pub rewrites: u64,
    /// Whether the last rewrite succeeded (`aof_last_bgrewrite_status`); true before any.
    pub last_rewrite_ok: bool,
}

/// Tells a blocked `finish_rewrite` caller how it went.
type Reply = mpsc::Sender<Result<u64, PersistError>>;

/// Renames the rewritten file into place and fsyncs the directory.
pub type Install = Box<dyn FnOnce() -> io::Result<()> + Send>;

struct FinishRewrite {
    sink: Box<dyn Sink>,
    install: Install,
    reply: Reply,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    last_seq: u64,
    rewriting: bool,
    /// Bumped by each `start_rewrite`, so a buffer left by an aborted rewrite is never
    /// carried into the next one.
    rewrite_epoch: u64,
    finish: Option<FinishRewrite>,
    shutdown: bool,
    kick: bool,
    /// With idle commit: when `buf` last went from empty to non-empty.
    pending_since: Option<std::time::Instant>,
    /// With idle commit: a worker is committing, and takes every batch queued until it
    /// finds the queue empty; others wait on `Shared::committed`.
    committing: bool,
    /// With idle commit: the writer thread sleeps until woken, so an append that starts a
    /// batch must wake it (see [`Thread::wait_for_work`]).
    writer_asleep: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Signalled (with `pending`'s lock) when a worker's idle commit ends.
    committed: Condvar,
    progress: Mutex<Progress>,
    progress_cv: Condvar,
    progress_tx: watch::Sender<Progress>,
    /// Set once a relay task runs inside the runtime (see [`Writer::waiter`]): the writer
    /// thread then wakes that one task instead of every waiting connection.
    relay: std::sync::OnceLock<()>,
    relay_wake: tokio::sync::Notify,
    /// Connections inside [`DurableWaiter::wait`]: without any, progress is sent at once
    /// (nobody to wake) instead of through the relay.
    watching: std::sync::atomic::AtomicUsize,
    /// Replies held until their records are acknowledged (see [`Writer::defer`]).
    deferred: Mutex<DeferredList>,
    healthy: AtomicBool,
    stats: Mutex<WriterStats>,
    /// The `FsyncPolicy` code: changed at run time by `CONFIG SET appendfsync`.
    policy: std::sync::atomic::AtomicU8,
    clock: Arc<dyn Clock>,
    /// Set by [`IdleCommit::attach`]: under `always`, the runtime's workers commit batches
    /// when they run out of work, and the thread only commits what they leave behind.
    idle_commit: AtomicBool,
    /// Cleared when the pending buffer is taken, set when it stops being empty: lets a
    /// parking worker skip the queue's lock when there is nothing to commit.
    has_pending: AtomicBool,
    /// `IDLE_COMMIT_FALLBACK`, in microseconds (tests lengthen it).
    idle_fallback_us: std::sync::atomic::AtomicU64,
    /// Where slow writes (`aof-write`) and `always` fsyncs (`aof-fsync-always`) are sampled.
    latency: std::sync::OnceLock<Arc<crate::latency::LatencyMonitor>>,
}

impl Shared {
    /// Whether workers commit `always` batches (see [`IdleCommit`]).
    fn idle_mode(&self) -> bool {
        self.policy() == FsyncPolicy::Always && self.idle_commit.load(Ordering::Relaxed)
    }

    /// The policy in force.
    fn policy(&self) -> FsyncPolicy {
        FsyncPolicy::from_code(self.policy.load(Ordering::Relaxed))
    }

    /// Samples `event` lasting `nanos` in the latency monitor, if one is attached.
    fn sample_latency(&self, event: &'static str, nanos: u64) {
        if let Some(m) = self.latency.get() {
            m.sample(event, nanos, self.clock.now().as_secs());
        }
    }

    fn idle_fallback(&self) -> Duration {
        Duration::from_micros(self.idle_fallback_us.load(Ordering::Relaxed))
    }

    fn publish(&self, p: Progress) {
        self.healthy.store(p.healthy, Ordering::Release);
        *self.progress.lock() = p;
        self.progress_cv.notify_all();
        self.resolve_deferred(p);
        if self.relay.get().is_some() && self.watching.load(Ordering::SeqCst) > 0 {
            // One cross-thread wake-up; the relay wakes the waiting connections from inside
            // the runtime, where waking a task is a queue push, not a syscall each.
            self.relay_wake.notify_one();
        } else {
            self.progress_tx.send_replace(p);
        }
    }
}

impl Shared {
    /// Hands every held reply whose records `p` acknowledges (all of them, if the writer
    /// failed or stopped) to its owner, on the publishing thread. An owner that has queued
    /// replies for later records meanwhile is held again for those.
    fn resolve_deferred(&self, p: Progress) {
        let ok = p.healthy && p.running;
        let ready = {
            let mut d = self.deferred.lock();
            d.acked = p.acked;
            d.ok = ok;
            if d.list.is_empty() {
                return;
            }
            if !ok || d.list.iter().all(|(seq, _)| *seq <= p.acked) {
                std::mem::take(&mut d.list)
            } else {
                let mut ready = Vec::new();
                let mut i = 0;
                while i < d.list.len() {
                    if d.list[i].0 <= p.acked {
                        ready.push(d.list.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                ready
            }
        };
        for (_, held) in ready {
            if let Some(next) = held.resolve(p.acked, ok) {
                self.hold(next, held);
            }
        }
    }

    /// Holds `held` until `seq` is acknowledged; resolves it at once if it already is (or
    /// the writer has failed).
    fn hold(&self, mut seq: Seq, held: Arc<dyn Deferred>) {
        loop {
            let (acked, ok) = {
                let mut d = self.deferred.lock();
                if seq > d.acked && d.ok {
                    d.list.push((seq, held));
                    return;
                }
                (d.acked, d.ok)
            };
            match held.resolve(acked, ok) {
                Some(next) => seq = next,
                None => return,
            }
        }
    }
}

/// Replies held until the records they depend on are acknowledged: a connection under
/// `always` hands them over with [`Writer::defer`] and goes back to reading, and the thread
/// that publishes the commit writes them (like Redis, which writes every reply of an event
/// loop turn after its fsync), instead of waking every connection to write its own.
pub trait Deferred: Send + Sync {
    /// Called on the publishing thread once records up to `acked` are acknowledged, or
    /// with `ok` false once the writer has failed or stopped (records past `acked` may then
    /// never be). Returns a later sequence number to be held for, if the owner queued replies
    /// that depend on one meanwhile.
    fn resolve(&self, acked: Seq, ok: bool) -> Option<Seq>;
}

/// See [`Writer::defer`].
struct DeferredList {
    /// The last published progress.
    acked: Seq,
    ok: bool,
    list: Vec<(Seq, Arc<dyn Deferred>)>,
}

/// The handle producers, connections and INFO use; share it in an `Arc`.
pub struct Writer {
    shared: Arc<Shared>,
    /// The file and its bookkeeping: locked by the writer thread for each batch, and under
    /// idle commit by the worker that commits one.
    state: Arc<Mutex<Thread>>,
    thread: Mutex<Option<JoinHandle<Result<(), String>>>>,
}

impl Writer {
    /// Starts the writer thread on `sink`, which must hold a valid prefix (possibly empty: the
    /// header is then written first). `clock` times `everysec` and the fsync lag.
    pub fn start(
        mut sink: Box<dyn Sink>,
        policy: FsyncPolicy,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Writer> {
        let initial = Progress {
            acked: Seq(0),
            synced: Seq(0),
            healthy: true,
            running: true,
        };
        let pending = Pending::default();
        if sink.is_empty() {
            // Written before any record can be queued: a rewrite started at once must not
            // find the header among the records it carries over. The first fsync of a
            // record covers it.
            let mut header = Vec::new();
            record::encode_header(&mut header);
            sink.write_all(&header)?;
        }
        let stats = WriterStats {
            policy,
            current_size: sink.len(),
            base_size: sink.len(),
            last_write_ok: true,
            last_rewrite_ok: true,
            ..WriterStats::default()
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(pending),
            wake: Condvar::new(),
            committed: Condvar::new(),
            progress: Mutex::new(initial),
            progress_cv: Condvar::new(),
            progress_tx: watch::Sender::new(initial),
            relay: std::sync::OnceLock::new(),
            relay_wake: tokio::sync::Notify::new(),
            watching: 0.into(),
            deferred: Mutex::new(DeferredList {
                acked: Seq(0),
                ok: true,
                list: Vec::new(),
            }),
            healthy: AtomicBool::new(true),
            stats: Mutex::new(stats),
            policy: policy.code().into(),
            clock,
            idle_commit: AtomicBool::new(false),
            has_pending: AtomicBool::new(false),
            idle_fallback_us: (IDLE_COMMIT_FALLBACK.as_micros() as u64).into(),
            latency: std::sync::OnceLock::new(),
        });
        let state = Arc::new(Mutex::new(Thread::new(Arc::clone(&shared), sink)));
        let (thread_shared, thread_state) = (Arc::clone(&shared), Arc::clone(&state));
        let thread = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || Thread::run(&thread_shared, &thread_state))?;
        Ok(Writer {
            shared,
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Under `always` with idle commit attached: writes and fsyncs everything pending on
    /// the calling thread, and publishes it. Called by a runtime worker that has run out of
    /// work, like one turn of Redis's event loop (`beforeSleep`): every command it ran since
    /// its last commit shares this fsync, and requests that arrive meanwhile wait in their
    /// sockets to form the next batch. Returns at once when there is nothing to do.
    ///
    /// While another worker commits, this one waits for it (the requests that arrive then
    /// wait in their sockets too, as in Redis, instead of waking this worker one by one),
    /// then commits what is left. It waits at most `IDLE_COMMIT_WAIT`: on a stalled disk it
    /// parks and goes on serving, and the committing worker, which takes batches until it
    /// finds the queue empty, or else the writer thread, commits its records.
    pub fn commit_idle(&self) {
        let sh = &self.shared;
        if !sh.idle_mode() || !sh.has_pending.load(Ordering::Acquire) {
            return;
        }
        let nothing_to_do = |p: &Pending| p.shutdown || (p.buf.is_empty() && p.finish.is_none());
        {
            let mut p = sh.pending.lock();
            if p.committing {
                // Sleep on a condition variable rather than spin on the state lock: a
                // spinning lock yields the CPU again and again (tens of thousands of
                // `sched_yield`s per 100,000 requests), on cores the clients need.
                let deadline = std::time::Instant::now() + IDLE_COMMIT_WAIT;
                while p.committing {
                    if sh.committed.wait_until(&mut p, deadline).timed_out() && p.committing {
                        return;
                    }
                }
            }
            if nothing_to_do(&p) {
                return;
            }
            p.committing = true;
        }
        let mut t = self.state.lock();
        loop {
            let taken = {
                let mut p = sh.pending.lock();
                if nothing_to_do(&p) {
                    // Cleared in the same look that found the queue empty: a worker that
                    // queued a record and then saw `committing` set has it taken by this loop
                    // (or commits it itself once woken).
                    p.committing = false;
                    sh.committed.notify_all();
                    None
                } else {
                    Some(t.take_now(&mut p))
                }
            };
            let Some((batch, finish)) = taken else { break };
            t.commit(batch, finish);
        }
    }

    /// Sets how long the writer thread leaves an `always` batch to the workers before it
    /// commits it itself (`IDLE_COMMIT_FALLBACK`); tests lengthen it so that only the
    /// commits they make happen.
    pub fn set_idle_fallback(&self, fallback: Duration) {
        self.shared
            .idle_fallback_us
            .store(fallback.as_micros() as u64, Ordering::Relaxed);
    }

    /// Queues `record` and returns its sequence number. Never blocks on I/O. Call it before
    /// the key's shard guard drops, so per-key log order equals apply order.
    pub fn append(&self, record: &Record) -> Seq {
        self.append_with(|out| record::encode(record, out))
    }

    /// Queues the framed record `encode` appends to the queue (e.g. [`record::encode_put`]),
    /// encoding it in place under the queue's lock; returns its sequence number. Every append
    /// comes through here.
    pub fn append_with(&self, encode: impl FnOnce(&mut Vec<u8>)) -> Seq {
        let sh = &self.shared;
        let mut p = sh.pending.lock();
        let was_empty = p.buf.is_empty();
        encode(&mut p.buf);
        p.last_seq += 1;
        let seq = Seq(p.last_seq);
        let mut wake = was_empty;
        if was_empty && sh.idle_mode() {
            // Idle commit: a worker commits this batch when it runs out of work; the thread
            // is woken only to watch for a batch no worker commits in time.
            sh.has_pending.store(true, Ordering::Release);
            p.pending_since = Some(std::time::Instant::now());
            wake = p.writer_asleep;
        }
        drop(p);
        // The writer is woken only when its queue stops being empty: it then takes everything
        // queued by then (after a short pause under `everysec` and `no`), so a busy server
        // costs one wake-up per batch, not one per append.
        if wake {
            sh.wake.notify_one();
        }
        seq
    }

    /// The last sequence number handed out (0 before any append).
    pub fn last_seq(&self) -> Seq {
        Seq(self.shared.pending.lock().last_seq)
    }

    /// Every record up to this sequence number is fsynced (see [`Progress::synced`]).
    pub fn synced(&self) -> Seq {
        self.shared.progress.lock().synced
    }

    /// Queues one already framed record (from [`record::encode`]).
    pub fn append_encoded(&self, framed: &[u8]) -> Seq {
        self.append_with(|out| out.extend_from_slice(framed))
    }

    /// Holds `held` until `seq` is acknowledged, then calls its [`Deferred::resolve`] on the
    /// thread that publishes that (with `ok` false if the writer fails or stops first). If
    /// `seq` already is acknowledged, or the writer has failed, `resolve` runs at once, on
    /// the calling thread: call this without holding a lock that `resolve` takes.
    pub fn defer(&self, seq: Seq, held: Arc<dyn Deferred>) {
        self.shared.hold(seq, held);
    }

    /// The fsync policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy()
    }

    /// Switches the fsync policy (`CONFIG SET appendfsync`). The next batch is written under
    /// the new policy: switching to `always` fsyncs what is written but not yet durable with
    /// that batch, and from then on every batch before it is acknowledged; switching away
    /// from `always` acknowledges batches once written. (The workers' idle commit of `always`
    /// batches, `IdleCommit`, is attached only to a writer started under `always`; a writer
    /// switched to `always` commits on its own thread.)
    pub fn set_policy(&self, policy: FsyncPolicy) {
        let sh = &self.shared;
        {
            // Under the queue's lock, so an append sees either policy with its queue state.
            let mut p = sh.pending.lock();
            sh.policy.store(policy.code(), Ordering::Relaxed);
            if sh.idle_mode() && !p.buf.is_empty() {
                // Queued under the old policy: the workers' to commit from now on (as when
                // `IdleCommit::attach` finds a queue).
                p.pending_since = Some(std::time::Instant::now());
                sh.has_pending.store(true, Ordering::Release);
            }
        }
        sh.stats.lock().policy = policy;
        // The thread may be gathering or asleep in its old mode: make it look again.
        sh.wake.notify_one();
    }

    /// Attaches the latency monitor that slow writes (`aof-write`) and, under `always`,
    /// fsyncs (`aof-fsync-always`) are sampled in (once; later calls are ignored).
    pub fn set_latency_monitor(&self, monitor: Arc<crate::latency::LatencyMonitor>) {
        let _ = self.shared.latency.set(monitor);
    }

    /// A handle for async callers to await acknowledgement.
    ///
    /// Inside a tokio runtime, the first call starts the relay task that forwards the writer
    /// thread's progress to the waiters.
    pub fn waiter(&self) -> DurableWaiter {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.shared.relay.get_or_init(|| {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    loop {
                        shared.relay_wake.notified().await;
                        let progress = *shared.progress.lock();
                        shared.progress_tx.send_replace(progress);
                        if !progress.running {
                            break;
                        }
                    }
                });
                // Whatever was published before the relay existed is forwarded once.
                self.shared.relay_wake.notify_one();
            });
        }
        DurableWaiter {
            rx: self.shared.progress_tx.subscribe(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Blocks until `seq` is acknowledged, the writer turns unhealthy, or `timeout` passes
    /// (then `Unhealthy("timed out ...")`). For shutdown paths and tests.
    pub fn wait_blocking(&self, seq: Seq, timeout: Duration) -> Result<(), PersistError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut p = self.shared.progress.lock();
        loop {
            if let Some(r) = outcome(&p, seq, || self.last_error()) {
                return r;
            }
            if self
                .shared
                .progress_cv
                .wait_until(&mut p, deadline)
                .timed_out()
            {
                return outcome(&p, seq, || self.last_error()).unwrap_or_else(|| {
                    Err(PersistError::Unhealthy(format!(
                        "timed out waiting for {seq:?}"
                    )))
                });
            }
        }
    }

    /// False while writes or fsyncs are failing. Cheap: one atomic load.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// `Ok` when writes may proceed; otherwise the `-MISCONF` error to reply with.
    pub fn check_writable(&self) -> Result<(), PersistError> {
        if self.healthy() {
            Ok(())
        } else {
            Err(PersistError::Unhealthy(self.last_error()))
        }
    }

    fn last_error(&self) -> String {
        self.shared
            .stats
            .lock()
            .last_error
            .clone()
            .unwrap_or_else(|| "unknown error".into())
    }

    /// A snapshot of the counters for `INFO persistence`.
    pub fn stats(&self) -> WriterStats {
        let (pending_bytes, appended, rewriting) = {
            let p = self.shared.pending.lock();
            (p.buf.len() as u64, Seq(p.last_seq), p.rewriting)
        };
        let mut s = self.shared.stats.lock().clone();
        s.pending_bytes = pending_bytes;
        s.appended = appended;
        s.rewrite_in_progress = rewriting;
        s.acked = self.shared.progress.lock().acked;
        if s.unsynced_bytes > 0 {
            let since = s.last_fsync_at.unwrap_or(Nanos::ZERO);
            s.fsync_lag = self.shared.clock.now().saturating_sub(since);
        }
        s
    }

    /// Wakes the thread so it re-checks the `everysec` deadline and retries after errors now
    /// (a test driving a manual clock calls this after `advance`).
    pub fn kick(&self) {
        self.shared.pending.lock().kick = true;
        self.shared.wake.notify_one();
    }

    /// Starts buffering every record appended from now on for a rewrite. Call it *before*
    /// taking the snapshot. Fails if a rewrite is already running.
    pub fn start_rewrite(&self) -> Result<(), PersistError> {
        let mut p = self.shared.pending.lock();
        if p.rewriting {
            return Err(PersistError::Unhealthy(
                "Background append only file rewriting already in progress".into(),
            ));
        }
        p.rewriting = true;
        p.rewrite_epoch += 1;
        Ok(())
    }

    /// Hands the snapshot (`sink`, already written and fsynced) to the thread, which appends
    /// the buffered records, fsyncs, calls `install` (rename + directory fsync) and from then
    /// on appends to `sink`. Blocks until done; returns the new file length. On error the old
    /// file stays in use and the rewrite is over.
    pub fn finish_rewrite(
        &self,
        sink: Box<dyn Sink>,
        install: Install,
    ) -> Result<u64, PersistError> {
        let (reply, rx) = mpsc::channel();
        {
            let mut p = self.shared.pending.lock();
            if !p.rewriting {
                return Err(PersistError::Unhealthy("no rewrite in progress".into()));
            }
            p.finish = Some(FinishRewrite {
                sink,
                install,
                reply,
            });
        }
        self.shared.wake.notify_one();
        rx.recv().map_err(|_| PersistError::WriterStopped)?
    }

    /// Stops buffering for a rewrite that failed before [`Writer::finish_rewrite`].
    pub fn abort_rewrite(&self) {
        let mut p = self.shared.pending.lock();
        p.rewriting = false;
        drop(p);
        let mut s = self.shared.stats.lock();
        s.last_rewrite_ok = false;
    }

    /// Writes and fsyncs everything pending (whatever the policy), then stops the thread.
    /// Idempotent. Returns the error that made the final flush fail, if any.
    pub fn shutdown(&self) -> Result<(), PersistError> {
        let Some(handle) = self.thread.lock().take() else {
            return Ok(());
        };
        self.shared.pending.lock().shutdown = true;
        self.shared.wake.notify_one();
        match handle.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PersistError::Unhealthy(e)),
            Err(_) => Err(PersistError::WriterStopped),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn outcome(
    p: &Progress,
    seq: Seq,
    last_error: impl FnOnce() -> String,
) -> Option<Result<(), PersistError>> {
    if p.acked >= seq {
        Some(Ok(()))
    } else if !p.healthy {
        Some(Err(PersistError::Unhealthy(last_error())))
    } else if !p.running {
        Some(Err(PersistError::WriterStopped))
    } else {
        None
    }
}

/// Commits `always` batches on the async runtime's worker threads when they run out of work,
/// instead of on the writer thread (Redis's `beforeSleep`, per worker).
///
/// With the writer thread committing, every batch cost two thread hand-offs (the last client
/// of a batch waking the thread, the thread waking the runtime), and every request that
/// arrived while the thread fsynced woke a worker on its own. Committed by a worker that has
/// nothing else to run, a batch holds every command that worker ran since its last commit,
/// and requests arriving during the fsync wait in their sockets to form the next one. The
/// thread stays for `everysec` and `no`, rewrites and shutdown, and commits any batch that no
/// worker has committed within `IDLE_COMMIT_FALLBACK` (every worker busy).
///
/// Install [`IdleCommit::on_park`] as the runtime's `on_thread_park` callback, and
/// [`IdleCommit::attach`] the writer once it exists. Cheap to clone.
#[derive(Clone, Default)]
pub struct IdleCommit(Arc<std::sync::OnceLock<Arc<Writer>>>);

impl IdleCommit {
    /// Hands `always` commits to the workers that call [`IdleCommit::on_park`]. A writer
    /// with another policy is left alone. At most one writer is attached; later ones are
    /// ignored.
    pub fn attach(&self, writer: &Arc<Writer>) {
        if writer.shared.policy() == FsyncPolicy::Always && self.0.set(Arc::clone(writer)).is_ok() {
            let sh = &writer.shared;
            let mut p = sh.pending.lock();
            sh.idle_commit.store(true, Ordering::Relaxed);
            if !p.buf.is_empty() {
                // Queued before: the workers' to commit from now on.
                p.pending_since = Some(std::time::Instant::now());
                sh.has_pending.store(true, Ordering::Release);
            }
            drop(p);
            // The thread may be gathering or asleep in its old mode: make it look again.
            sh.wake.notify_one();
        }
    }

    /// Call when a worker thread is about to park: commits what is pending, if anything.
    pub fn on_park(&self) {
        if let Some(w) = self.0.get() {
            w.commit_idle();
        }
    }
}

/// Awaits acknowledgement from async code (one per connection; cheap to clone).
#[derive(Clone)]
pub struct DurableWaiter {
    rx: watch::Receiver<Progress>,
    shared: Arc<Shared>,
}

impl DurableWaiter {
    /// True while the writer's policy is `always` (replies then wait for their records).
    pub fn is_always(&self) -> bool {
        self.shared.policy() == FsyncPolicy::Always
    }

    /// Resolves when `seq` is acknowledged under the policy. Errors with `Unhealthy` if the
    /// writer is failing first: the effect is applied in memory and may still reach the file
    /// when the writer recovers, so the client sees an error for a write that may persist
    /// (the same ambiguity as a timeout).
    pub async fn wait(&mut self, seq: Seq) -> Result<(), PersistError> {
        // Counted, so the writer sends progress through the relay only while somebody waits.
        struct Watching<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Watching<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.watching.fetch_add(1, Ordering::SeqCst);
        let _watching = Watching(&self.shared.watching);
        let res = self
            .rx
            .wait_for(|p| p.acked >= seq || !p.healthy || !p.running)
            .await
            .map(|p| *p);
        match res {
            Ok(p) => outcome(&p, seq, || "write error".into()).unwrap_or(Ok(())),
            Err(_) => Err(PersistError::WriterStopped),
        }
    }

    /// Resolves when `seq` is fsynced ([`Progress::synced`]), or the writer stops (then
    /// `WriterStopped`). A failing writer is waited out: `WAITAOF` keeps waiting, as Redis
    /// does, until a retry succeeds or its timeout passes.
    pub async fn wait_synced(&mut self, seq: Seq) -> Result<(), PersistError> {
        struct Watching<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Watching<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.watching.fetch_add(1, Ordering::SeqCst);
        let _watching = Watching(&self.shared.watching);
        match self
            .rx
            .wait_for(|p| p.synced >= seq || !p.running)
            .await
            .map(|p| *p)
        {
            Ok(p) if p.synced >= seq => Ok(()),
            _ => Err(PersistError::WriterStopped),
        }
    }

    /// The latest published progress.
    pub fn progress(&self) -> Progress {
        *self.rx.borrow()
    }
}

/// State owned by the writer thread.
struct Thread {
    shared: Arc<Shared>,
    sink: Box<dyn Sink>,
    /// The sink prefix known good: fsynced under `always`/`everysec`, written under `no`.
    committed_len: u64,
    /// Bytes after `committed_len` taken from producers, kept until fsynced so a failed
    /// write or fsync can be redone.
    unsynced: Vec<u8>,
    /// The sink past `committed_len` cannot be trusted: truncate and rewrite `unsynced`.
    dirty: bool,
    /// Highest sequence taken from the pending buffer.
    taken: u64,
    /// Highest sequence acknowledged.
    acked: u64,
    /// Highest sequence fsynced.
    synced: u64,
    healthy: bool,
    last_sync_at: Nanos,
    rewrite_buf: Vec<u8>,
    /// The `rewrite_epoch` that `rewrite_buf` belongs to.
    rewrite_buf_epoch: u64,
    /// The previous batch's buffer, emptied, swapped in as the producers' next queue so
    /// that it keeps its capacity: a fresh buffer per batch grew by reallocation, and large
    /// ones came back from the OS as new pages to zero (a few percent of a busy server).
    spare: Vec<u8>,
}

impl Thread {
    fn new(shared: Arc<Shared>, sink: Box<dyn Sink>) -> Thread {
        let now = shared.clock.now();
        Thread {
            committed_len: sink.len(),
            shared,
            sink,
            unsynced: Vec::new(),
            dirty: false,
            taken: 0,
            acked: 0,
            synced: 0,
            healthy: true,
            last_sync_at: now,
            rewrite_buf: Vec::new(),
            rewrite_buf_epoch: 0,
            spare: Vec::new(),
        }
    }

    /// The writer thread: waits for work, then commits it under the state lock, until
    /// shutdown.
    fn run(shared: &Shared, state: &Mutex<Thread>) -> Result<(), String> {
        loop {
            let idle = state.lock().idle_wait();
            let stranded = Thread::wait_for_work(shared, idle);
            let mut t = state.lock();
            let mut p = shared.pending.lock();
            if p.shutdown {
                let (batch, finish) = t.take_now(&mut p);
                drop(p);
                t.commit(batch, finish);
                return t.stop();
            }
            if shared.idle_mode()
                && p.finish.is_none()
                && !p.kick
                && (!stranded || p.buf.is_empty())
            {
                // Idle commit, and no batch left behind: whatever is pending is the
                // workers' to commit.
                drop(p);
                if t.dirty || !t.unsynced.is_empty() {
                    // Retry a failed write or fsync.
                    t.commit(Vec::new(), None);
                }
                continue;
            }
            let (batch, finish) = t.take_now(&mut p);
            drop(p);
            t.commit(batch, finish);
        }
    }

    /// How long the thread sleeps without traffic: wake up to honour `everysec` and to
    /// retry after errors.
    fn idle_wait(&self) -> Duration {
        if self.dirty || !self.unsynced.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Writes `batch` (just taken), applies the policy, completes a rewrite hand-over and
    /// publishes the new progress.
    fn commit(&mut self, mut batch: Vec<u8>, finish: Option<FinishRewrite>) {
        self.unsynced.extend_from_slice(&batch);
        self.flush(batch.len());
        batch.clear();
        // A burst's buffer is not kept forever.
        if batch.capacity() <= SPARE_MAX && batch.capacity() > self.spare.capacity() {
            self.spare = batch;
        }
        if let Some(f) = finish {
            self.finish_rewrite(f);
        }
        self.publish(true);
    }

    /// Waits until there is work for the thread: pending bytes (gathered for a moment under
    /// `everysec` and `no`), a rewrite hand-over, shutdown, a kick, or the idle timeout. With idle commit,
    /// pending bytes are the workers' to commit: the thread waits until they have been
    /// pending for `IDLE_COMMIT_FALLBACK` and then returns true (stranded) if they still are.
    fn wait_for_work(sh: &Shared, idle: Duration) -> bool {
        let mut p = sh.pending.lock();
        if sh.idle_mode() {
            let mut seen = p.last_seq;
            loop {
                if p.finish.is_some() || p.shutdown || p.kick {
                    return false;
                }
                match p.pending_since.filter(|_| !p.buf.is_empty()) {
                    Some(since) => {
                        let (waited, fallback) = (since.elapsed(), sh.idle_fallback());
                        if waited >= fallback {
                            return true;
                        }
                        let _ = sh.wake.wait_for(&mut p, fallback - waited);
                    }
                    None if p.last_seq != seen => {
                        // Traffic since the last look: look again soon, unasked, rather
                        // than have an append wake the thread for every batch.
                        seen = p.last_seq;
                        let _ = sh.wake.wait_for(&mut p, sh.idle_fallback());
                    }
                    None => {
                        // Quiet: asleep until an append starts a batch (or the idle timeout).
                        p.writer_asleep = true;
                        let timed_out = sh.wake.wait_for(&mut p, idle).timed_out();
                        p.writer_asleep = false;
                        if timed_out {
                            return false;
                        }
                    }
                }
            }
        }
        while p.buf.is_empty() && p.finish.is_none() && !p.shutdown && !p.kick {
            if sh.wake.wait_for(&mut p, idle).timed_out() {
                break;
            }
        }
        // Under `everysec` and `no` nobody waits for the write: gather appends for a moment.
        // Under `always` the batch goes at once; what is queued during its fsync is the next.
        if sh.policy() != FsyncPolicy::Always
            && !p.buf.is_empty()
            && !p.shutdown
            && p.finish.is_none()
            && !p.kick
        {
            let _ = sh.wake.wait_for(&mut p, WRITE_GATHER);
        }
        false
    }

    /// Takes the pending bytes and a rewrite hand-over (if any) for a commit.
    fn take_now(&mut self, p: &mut Pending) -> (Vec<u8>, Option<FinishRewrite>) {
        p.kick = false;
        let batch = std::mem::replace(&mut p.buf, std::mem::take(&mut self.spare));
        self.shared.has_pending.store(false, Ordering::Release);
        p.pending_since = None;
        if p.rewriting {
            if self.rewrite_buf_epoch != p.rewrite_epoch {
                self.rewrite_buf = Vec::new();
                self.rewrite_buf_epoch = p.rewrite_epoch;
            }
            self.rewrite_buf.extend_from_slice(&batch);
        } else if !self.rewrite_buf.is_empty() {
            // An aborted rewrite: free its buffer.
            self.rewrite_buf = Vec::new();
        }
        self.taken = p.last_seq;
        let finish = p.finish.take();
        if finish.is_some() {
            // Batches taken from here on go to whichever file wins; none is buffered.
            p.rewriting = false;
        }
        (batch, finish)
    }

    /// Writes the `new` bytes just added to `unsynced` (all of `unsynced` after an error) and
    /// applies the policy.
    fn flush(&mut self, new: usize) {
        let written_through = self.taken;
        let started = std::time::Instant::now();
        let res = if self.dirty {
            let len = self.committed_len;
            self.sink
                .truncate(len)
                .and_then(|()| self.sink.write_all(&self.unsynced))
        } else if new > 0 {
            let start = self.unsynced.len() - new;
            self.sink.write_all(&self.unsynced[start..])
        } else {
            Ok(())
        };
        if let Err(e) = res {
            self.dirty = true;
            self.failed(false, &e);
            return;
        }
        if self.dirty || new > 0 {
            self.dirty = false;
            self.shared.stats.lock().writes += 1;
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.shared.sample_latency("aof-write", took);
        }
        match self.shared.policy() {
            FsyncPolicy::Always => {
                if !self.unsynced.is_empty() && !self.sync() {
                    return;
                }
            }
            FsyncPolicy::EverySec => {
                let now = self.shared.clock.now();
                let due = now.saturating_sub(self.last_sync_at) >= Nanos::from_secs(1);
                if !self.unsynced.is_empty() && due && !self.sync() {
                    // Written but not durable: still acknowledged under everysec, but the
                    // writer is unhealthy, so new writes are refused until a sync succeeds.
                    self.acked = written_through;
                    return;
                }
            }
            FsyncPolicy::No => {
                self.committed_len = self.sink.len();
                self.unsynced.clear();
            }
        }
        self.acked = written_through;
        self.healthy = true;
        self.shared.stats.lock().last_write_ok = true;
    }

    /// Fsyncs; on success everything written is committed. False on failure.
    fn sync(&mut self) -> bool {
        let started = std::time::Instant::now();
        match self.sink.sync() {
            Ok(()) => {
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if self.shared.policy() == FsyncPolicy::Always {
                    self.shared.sample_latency("aof-fsync-always", took);
                }
                self.committed_len = self.sink.len();
                self.unsynced.clear();
                // Everything taken so far was written before this fsync.
                self.synced = self.taken;
                self.last_sync_at = self.shared.clock.now();
                let mut s = self.shared.stats.lock();
                s.fsyncs += 1;
                s.fsync_nanos = s.fsync_nanos.saturating_add(took);
                s.fsync_max_nanos = s.fsync_max_nanos.max(took);
                s.fsync_buckets[crate::metrics::bucket(took)] += 1;
                s.last_fsync_at = Some(self.last_sync_at);
                true
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages while
                // marking them clean; only rewriting them and fsyncing again is safe.
                self.dirty = true;
                self.failed(true, &e);
                false
            }
        }
    }

    fn failed(&mut self, fsync: bool, e: &io::Error) {
        self.healthy = false;
        let what = if fsync { "fsync" } else { "write" };
        tracing::warn!(error = %e, "AOF {what} failed; refusing writes until it succeeds");
        let mut s = self.shared.stats.lock();
        if fsync {
            s.fsync_errors += 1;
        } else {
            s.write_errors += 1;
        }
        s.last_write_ok = false;
        s.last_error = Some(e.to_string());
    }

    /// Completes a rewrite: buffered records into the new file, fsync, install, switch.
    fn finish_rewrite(&mut self, f: FinishRewrite) {
        let FinishRewrite {
            mut sink,
            install,
            reply,
        } = f;
        let buf = std::mem::take(&mut self.rewrite_buf);
        let res = sink
            .write_all(&buf)
            .and_then(|()| sink.sync())
            .and_then(|()| install());
        let res = match res {
            Ok(()) => {
                // The new file holds the snapshot plus every record taken so far, fsynced:
                // whatever the old file's state, everything taken is now durable.
                self.sink = sink;
                self.committed_len = self.sink.len();
                self.unsynced.clear();
                self.dirty = false;
                self.acked = self.taken;
                self.synced = self.taken;
                self.healthy = true;
                self.last_sync_at = self.shared.clock.now();
                let mut s = self.shared.stats.lock();
                s.base_size = self.committed_len;
                s.rewrites += 1;
                s.last_rewrite_ok = true;
                s.last_write_ok = true;
                Ok(self.committed_len)
            }
            Err(e) => {
                tracing::warn!(error = %e, "AOF rewrite failed; keeping the old file");
                self.shared.stats.lock().last_rewrite_ok = false;
                Err(PersistError::io("finishing the AOF rewrite", e))
            }
        };
        let _ = reply.send(res);
    }

    /// Final flush: write anything left and fsync whatever the policy.
    fn stop(&mut self) -> Result<(), String> {
        if self.dirty {
            self.flush(0);
        }
        let res = if self.dirty {
            Err(self
                .shared
                .stats
                .lock()
                .last_error
                .clone()
                .unwrap_or_default())
        } else if self.sync() {
            self.acked = self.taken;
            // Everything is durable: the preallocated zeros go, so a stopped server leaves
            // a file that ends with its last record.
            if let Err(e) = self.sink.trim() {
                tracing::warn!(error = %e, "could not trim the AOF's preallocated space");
            }
            Ok(())
        } else {
            Err(self
                .shared
                .stats
                .lock()
                .last_error
                .clone()
                .unwrap_or_default())
        };
        self.publish(false);
        res
    }

    fn publish(&mut self, running: bool) {
        {
            let mut s = self.shared.stats.lock();
            s.current_size = self.sink.len();
            s.unsynced_bytes = self.unsynced.len() as u64;
        }
        self.shared.publish(Progress {
            acked: Seq(self.acked),
            synced: Seq(self.synced),
            healthy: self.healthy,
            running,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::persist::replay::scan;
    use crate::store::Value;
    use bytes::Bytes;

    const LONG: Duration = Duration::from_secs(10);

    fn put(k: &str, v: i64) -> Record {
        Record::Put {
            db: 0,
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Value::Int(v),
            expires_at: None,
        }
    }

    fn start(sink: &MemSink, policy: FsyncPolicy) -> (Writer, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Nanos::from_secs(1_000)));
        let w = Writer::start(Box::new(sink.clone()), policy, clock.clone()).unwrap();
        (w, clock)
    }

    #[test]
    fn the_policy_switches_at_run_time() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::No);
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG)
            .expect("acknowledged once written");
        assert_eq!(sink.state.lock().syncs, 0, "no fsync under `no`");
        w.set_policy(FsyncPolicy::Always);
        assert_eq!(w.policy(), FsyncPolicy::Always);
        assert_eq!(w.stats().policy, FsyncPolicy::Always);
        let seq = w.append(&put("b", 2));
        w.wait_blocking(seq, LONG)
            .expect("acknowledged once durable");
        let s = sink.state.lock();
        assert!(s.syncs >= 1, "an fsync under `always`");
        // Durable: both records, the one written under `no` too, are in the synced bytes.
        assert_eq!(records(&s.synced), vec![put("a", 1), put("b", 2)]);
        let syncs = s.syncs;
        drop(s);
        w.set_policy(FsyncPolicy::No);
        let seq = w.append(&put("c", 3));
        w.wait_blocking(seq, LONG).expect("acknowledged");
        assert_eq!(sink.state.lock().syncs, syncs, "none after switching back");
    }

    #[test]
    fn slow_always_fsyncs_are_sampled_by_the_latency_monitor() {
        let sink = MemSink::new();
        sink.state.lock().sync_delay = Duration::from_millis(3);
        let (w, clock) = start(&sink, FsyncPolicy::Always);
        let monitor = Arc::new(crate::latency::LatencyMonitor::new(2));
        w.set_latency_monitor(monitor.clone());
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG).expect("acknowledged");
        let (_, s) = monitor
            .series(b"aof-fsync-always")
            .expect("a 3 ms fsync is over a 2 ms threshold");
        assert_eq!(s.latest().time, clock.now().as_secs());
        assert!(s.max_ms >= 3, "{s:?}");
        // Under everysec the fsync event is not `aof-fsync-always`.
        let sink = MemSink::new();
        sink.state.lock().sync_delay = Duration::from_millis(3);
        let (w, _) = start(&sink, FsyncPolicy::EverySec);
        let quiet = Arc::new(crate::latency::LatencyMonitor::new(2));
        w.set_latency_monitor(quiet.clone());
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG).expect("acknowledged");
        assert!(quiet.series(b"aof-fsync-always").is_none());
    }

    fn records(bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        let s = scan(bytes, |r| out.push(r)).unwrap();
        assert_eq!(s.problem, None, "the sink holds a clean AOF");
        out
    }

    /// Waits for the writer thread to reach a state; bounded, never a timing assumption.
    fn eventually(w: &Writer, what: &str, pred: impl Fn(&WriterStats) -> bool) {
        let deadline = std::time::Instant::now() + LONG;
        while !pred(&w.stats()) {
            assert!(std::time::Instant::now() < deadline, "never saw: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn group_commit_fsyncs_once_per_batch_not_per_append() {
        let sink = MemSink::new();
        sink.state.lock().sync_delay = Duration::from_micros(300);
        let (w, _) = start(&sink, FsyncPolicy::Always);
        let w = Arc::new(w);
        let (threads, per_thread) = (50, 40);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let seq = w.append(&put(&format!("t{t}:{i}"), i));
                        w.wait_blocking(seq, LONG).expect("acknowledged");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let appends = threads * per_thread;
        let syncs = sink.state.lock().syncs;
        assert!(
            syncs * 4 < appends as u64,
            "{syncs} fsyncs for {appends} appends"
        );
        assert_eq!(w.stats().acked, Seq(appends as u64));
        // Acknowledged under `always` means in the synced bytes, not just written.
        let synced = sink.state.lock().synced.clone();
        assert_eq!(records(&synced).len(), appends as usize);
    }

    #[test]
    fn an_empty_sink_gets_the_header_first() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::Always);
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG).unwrap();
        assert_eq!(&sink.data()[..8], &record::header());
        assert_eq!(records(&sink.data()), vec![put("a", 1)]);
    }

    #[test]
    fn everysec_acknowledges_on_write_and_fsyncs_once_a_second() {
        let sink = MemSink::new();
        let (w, clock) = start(&sink, FsyncPolicy::EverySec);
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG).unwrap();
        w.append(&put("b", 2));
        w.kick();
        eventually(&w, "b written", |s| s.acked == Seq(2));
        assert_eq!(
            sink.state.lock().syncs,
            0,
            "no fsync before a second passes"
        );
        assert_eq!(w.synced(), Seq(0), "acknowledged is not fsynced (WAITAOF)");
        assert_eq!(w.last_seq(), Seq(2));
        clock.advance(Duration::from_millis(999));
        w.kick();
        eventually(&w, "kick handled", |s| s.pending_bytes == 0);
        assert_eq!(sink.state.lock().syncs, 0, "still inside the second");
        clock.advance(Duration::from_millis(1));
        w.kick();
        eventually(&w, "one fsync", |s| s.fsyncs == 1);
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("a", 1), put("b", 2)]
        );
        // Published with the batch that fsynced.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut waiter = w.waiter();
        rt.block_on(waiter.wait_synced(Seq(2))).unwrap();
        assert_eq!(w.synced(), Seq(2));
        let st = w.stats();
        assert_eq!((st.unsynced_bytes, st.fsync_lag), (0, Nanos::ZERO));
    }

    #[test]
    fn policy_no_never_fsyncs_but_shutdown_does() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::No);
        let seq = w.append(&put("a", 1));
        w.wait_blocking(seq, LONG).unwrap();
        assert_eq!(sink.state.lock().syncs, 0);
        w.append(&put("b", 2));
        w.shutdown().unwrap();
        assert_eq!(sink.state.lock().syncs, 1);
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("a", 1), put("b", 2)]
        );
        assert_eq!(
            w.wait_blocking(Seq(3), LONG).unwrap_err().to_string(),
            "the AOF writer has stopped"
        );
    }

    #[test]
    fn torn_write_turns_unhealthy_then_retry_leaves_no_partial_bytes() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::Always);
        w.wait_blocking(w.append(&put("a", 1)), LONG).unwrap();
        {
            // Tear the next write, then keep failing so the idle retry cannot heal it early.
            let mut st = sink.state.lock();
            st.tear_next_write_at = Some(5);
            st.fail_writes = u32::MAX;
        }
        let seq = w.append(&put("b", 2));
        let err = w.wait_blocking(seq, LONG).unwrap_err().to_string();
        assert_eq!(
            err,
            "MISCONF Errors writing to the AOF file: No space left on device (simulated)"
        );
        assert!(!w.healthy());
        assert!(w.check_writable().is_err());
        let st = w.stats();
        assert!(st.write_errors >= 1 && !st.last_write_ok, "{st:?}");
        sink.state.lock().fail_writes = 0;
        // The next batch retries: the torn bytes are cut, b and c written once each.
        // (A wait right now would fail fast: the writer is unhealthy until it retries.)
        w.append(&put("c", 3));
        eventually(&w, "recovered", |s| s.acked == Seq(3));
        assert!(w.healthy());
        assert_eq!(
            records(&sink.data()),
            vec![put("a", 1), put("b", 2), put("c", 3)]
        );
    }

    #[test]
    fn failing_fsync_under_always_withholds_the_ack_until_a_retry_succeeds() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::Always);
        w.wait_blocking(w.append(&put("a", 1)), LONG).unwrap();
        sink.state.lock().fail_syncs = u32::MAX;
        let seq = w.append(&put("b", 2));
        assert!(w.wait_blocking(seq, LONG).is_err());
        assert_eq!(w.stats().acked, Seq(1));
        assert!(w.stats().fsync_errors >= 1);
        sink.state.lock().fail_syncs = 0;
        w.kick();
        eventually(&w, "recovered", |s| s.acked == Seq(2));
        assert!(w.healthy());
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("a", 1), put("b", 2)]
        );
    }

    #[test]
    fn failing_write_without_traffic_is_retried_by_the_idle_tick() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::Always);
        sink.state.lock().fail_writes = 1;
        let seq = w.append(&put("a", 1));
        assert!(w.wait_blocking(seq, LONG).is_err());
        // No new appends and no kick: the thread's bounded idle wait retries on its own.
        eventually(&w, "recovered", |s| s.acked == Seq(1));
        assert_eq!(records(&sink.data()), vec![put("a", 1)]);
    }

    #[test]
    fn async_waiter_resolves_once_acknowledged() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::Always);
        let mut waiter = w.waiter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seq = w.append(&put("a", 1));
        rt.block_on(waiter.wait(seq)).unwrap();
        assert!(waiter.progress().acked >= seq);
        w.shutdown().unwrap();
        let err = rt.block_on(waiter.wait(Seq(99))).unwrap_err();
        assert!(matches!(err, PersistError::WriterStopped), "{err}");
    }

    /// A writer under `always` whose batches the test commits by calling `on_park`, as a
    /// parking runtime worker would. With `fallback` the writer thread commits a batch left
    /// pending that long; the tests that must see `on_park` do the work pass a long one.
    fn start_idle(sink: &MemSink, fallback: Duration) -> (Arc<Writer>, IdleCommit) {
        let (w, _) = start(sink, FsyncPolicy::Always);
        w.set_idle_fallback(fallback);
        let w = Arc::new(w);
        let idle = IdleCommit::default();
        idle.attach(&w);
        (w, idle)
    }

    #[test]
    fn idle_commit_writes_and_fsyncs_on_the_parking_thread() {
        let sink = MemSink::new();
        let (w, idle) = start_idle(&sink, LONG);
        let seqs: Vec<Seq> = (0..3).map(|i| w.append(&put("k", i))).collect();
        let syncs = sink.state.lock().syncs;
        assert!(
            w.stats().acked < seqs[0],
            "nothing commits before a worker parks"
        );
        idle.on_park();
        // Done on this thread before on_park returned: one write and one fsync for all.
        assert_eq!(w.stats().acked, seqs[2]);
        assert_eq!(sink.state.lock().syncs, syncs + 1);
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("k", 0), put("k", 1), put("k", 2)]
        );
        // Nothing pending: parking costs no I/O.
        idle.on_park();
        assert_eq!(sink.state.lock().syncs, syncs + 1);
        w.shutdown().unwrap();
        idle.on_park();
        assert_eq!(records(&sink.data()).len(), 3);
    }

    #[test]
    fn idle_commit_leaves_a_batch_no_worker_commits_to_the_thread() {
        let sink = MemSink::new();
        let (w, _idle) = start_idle(&sink, IDLE_COMMIT_FALLBACK);
        // No worker parks: the thread commits within the fallback time.
        for i in 0..3 {
            let seq = w.append(&put("k", i));
            w.wait_blocking(seq, LONG)
                .expect("committed by the writer thread");
        }
        assert_eq!(records(&sink.state.lock().synced).len(), 3);
    }

    #[test]
    fn idle_commit_is_for_always_only() {
        let sink = MemSink::new();
        let (w, _) = start(&sink, FsyncPolicy::EverySec);
        let w = Arc::new(w);
        let idle = IdleCommit::default();
        idle.attach(&w);
        assert!(!w.shared.idle_mode());
        let seq = w.append(&put("a", 1));
        idle.on_park();
        w.wait_blocking(seq, LONG).expect("written by the thread");
        assert_eq!(sink.state.lock().syncs, 0, "everysec: no fsync yet");
    }

    #[test]
    fn idle_commit_by_many_workers_loses_nothing_and_shares_fsyncs() {
        let sink = MemSink::new();
        sink.state.lock().sync_delay = Duration::from_micros(300);
        let (w, idle) = start_idle(&sink, LONG);
        let (threads, per_thread) = (8, 50);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (w, idle) = (Arc::clone(&w), idle.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let seq = w.append(&put(&format!("t{t}:{i}"), i));
                        // This "worker" has nothing else to do: it parks, which commits
                        // its record (or another worker's commit already has).
                        idle.on_park();
                        w.wait_blocking(seq, LONG).expect("acknowledged");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let appends = threads * per_thread;
        assert_eq!(w.stats().acked, Seq(appends as u64));
        let synced = sink.state.lock().synced.clone();
        assert_eq!(records(&synced).len(), appends as usize);
        let syncs = sink.state.lock().syncs;
        assert!(
            syncs < appends as u64,
            "{syncs} fsyncs for {appends} appends"
        );
    }

    #[test]
    fn idle_commit_a_second_worker_does_not_wait_out_a_stalled_disk() {
        let sink = MemSink::new();
        sink.state.lock().sync_delay = Duration::from_millis(300);
        let (w, idle) = start_idle(&sink, LONG);
        let a = w.append(&put("a", 1));
        let first = {
            let idle = idle.clone();
            std::thread::spawn(move || idle.on_park())
        };
        eventually(&w, "the first worker took its batch", |s| {
            s.pending_bytes == 0
        });
        let b = w.append(&put("b", 2));
        // The second worker waits IDLE_COMMIT_WAIT for the first one's fsync, then parks.
        idle.on_park();
        assert_eq!(
            sink.state.lock().syncs,
            0,
            "returned while the fsync still ran"
        );
        first.join().unwrap();
        // The first worker took the second one's record after its own batch.
        w.wait_blocking(a, LONG).unwrap();
        w.wait_blocking(b, LONG).unwrap();
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("a", 1), put("b", 2)]
        );
    }

    #[test]
    fn idle_commit_failing_fsync_withholds_the_ack_until_a_retry() {
        let sink = MemSink::new();
        let (w, idle) = start_idle(&sink, LONG);
        let a = w.append(&put("a", 1));
        idle.on_park();
        w.wait_blocking(a, LONG).unwrap();
        sink.state.lock().fail_syncs = u32::MAX;
        let b = w.append(&put("b", 2));
        idle.on_park();
        assert!(!w.healthy());
        assert!(w.wait_blocking(b, LONG).is_err());
        assert_eq!(w.stats().acked, a);
        sink.state.lock().fail_syncs = 0;
        w.kick();
        eventually(&w, "recovered", |s| s.acked == b);
        assert!(w.healthy());
        assert_eq!(
            records(&sink.state.lock().synced),
            vec![put("a", 1), put("b", 2)]
        );
    }

    /// A held reply for the `defer` tests: records every call, and asks to be held again
    /// for `then` the first time it is resolved.
    struct Held {
        calls: Mutex<Vec<(Seq, bool, std::thread::ThreadId)>>,
        then: Mutex<Option<Seq>>,
    }

    impl Held {
        fn new(then: Option<Seq>) -> Arc<Held> {
            Arc::new(Held {
                calls: Mutex::new(Vec::new()),
                then: Mutex::new(then),
            })
        }

        fn calls(&self) -> Vec<(Seq, bool)> {
            self.calls.lock().iter().map(|c| (c.0, c.1)).collect()
        }
    }

    impl Deferred for Held {
        fn resolve(&self, acked: Seq, ok: bool) -> Option<Seq> {
            self.calls
                .lock()
                .push((acked, ok, std::thread::current().id()));
            self.then.lock().take().filter(|_| ok)
        }
    }

    #[test]
    fn defer_resolves_on_the_committing_thread_once_acknowledged_and_again_if_asked() {
        let sink = MemSink::new();
        let (w, idle) = start_idle(&sink, LONG);
        let a = w.append(&put("a", 1));
        let held = Held::new(None);
        w.defer(a, held.clone());
        assert!(held.calls().is_empty(), "not before its commit");
        idle.on_park();
        assert_eq!(held.calls(), vec![(a, true)]);
        assert_eq!(held.calls.lock()[0].2, std::thread::current().id());
        assert_eq!(sink.state.lock().syncs, 1);
        // Already acknowledged: resolved at once, by the caller.
        let again = Held::new(None);
        w.defer(a, again.clone());
        assert_eq!(again.calls(), vec![(a, true)]);
        // Asks to be held again for a later record, queued meanwhile.
        let b = w.append(&put("b", 2));
        let c = w.append(&put("c", 3));
        let twice = Held::new(Some(c));
        w.defer(b, twice.clone());
        idle.on_park();
        // c was committed with b: resolved again at once.
        assert_eq!(twice.calls(), vec![(c, true), (c, true)]);
        // Held again for a record not committed yet: resolved by the next commit.
        let d = w.append(&put("d", 4));
        let later = Held::new(Some(Seq(d.0 + 1)));
        w.defer(d, later.clone());
        idle.on_park();
        assert_eq!(later.calls(), vec![(d, true)]);
        let e = w.append(&put("e", 5));
        idle.on_park();
        assert_eq!(later.calls(), vec![(d, true), (e, true)]);
    }

    #[test]
    fn defer_reports_a_failed_fsync_and_a_stopped_writer() {
        let sink = MemSink::new();
        let (w, idle) = start_idle(&sink, LONG);
        sink.state.lock().fail_syncs = u32::MAX;
        let a = w.append(&put("a", 1));
        let held = Held::new(None);
        w.defer(a, held.clone());
        idle.on_park();
        assert_eq!(held.calls(), vec![(Seq(0), false)]);
        // While unhealthy, a new hold is turned down at once.
        let b = w.append(&put("b", 2));
        let refused = Held::new(None);
        w.defer(b, refused.clone());
        assert_eq!(refused.calls(), vec![(Seq(0), false)]);
        // Recovered: holds work again, and shutdown commits what is left first.
        sink.state.lock().fail_syncs = 0;
        w.kick();
        eventually(&w, "recovered", |s| s.acked == b);
        let c = w.append(&put("c", 3));
        let left = Held::new(None);
        w.defer(c, left.clone());
        w.shutdown().unwrap();
        assert_eq!(left.calls(), vec![(c, true)]);
        // Stopped: a hold for a record that can no longer be committed is turned down.
        let d = w.append(&put("d", 4));
        let late = Held::new(None);
        w.defer(d, late.clone());
        assert_eq!(late.calls(), vec![(c, false)]);
    }

    #[test]
    fn idle_commit_keeps_records_committed_during_a_rewrite() {
        let sink = MemSink::new();
        let (w, idle) = start_idle(&sink, LONG);
        w.start_rewrite().unwrap();
        let a = w.append(&put("a", 1));
        idle.on_park();
        w.wait_blocking(a, LONG).unwrap();
        let b = w.append(&put("b", 2));
        let new = MemSink::new();
        let mut snapshot = Vec::new();
        record::encode_header(&mut snapshot);
        new.clone().write_all(&snapshot).unwrap();
        let len = w
            .finish_rewrite(Box::new(new.clone()), Box::new(|| Ok(())))
            .unwrap();
        w.wait_blocking(b, LONG).unwrap();
        assert_eq!(len, new.data().len() as u64);
        assert_eq!(records(&new.data()), vec![put("a", 1), put("b", 2)]);
        let c = w.append(&put("c", 3));
        idle.on_park();
        w.wait_blocking(c, LONG).unwrap();
        assert_eq!(
            records(&new.state.lock().synced),
            vec![put("a", 1), put("b", 2), put("c", 3)]
        );
    }

    #[test]
    fn file_sink_appends_and_counts_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let clock = Arc::new(ManualClock::new(Nanos(1)));
        let w = Writer::start(
            Box::new(FileSink::open(&path).unwrap()),
            FsyncPolicy::Always,
            clock.clone(),
        )
        .unwrap();
        w.wait_blocking(w.append(&put("a", 1)), LONG).unwrap();
        w.shutdown().unwrap();
        let w = Writer::start(
            Box::new(FileSink::open(&path).unwrap()),
            FsyncPolicy::Always,
            clock,
        )
        .unwrap();
        w.wait_blocking(w.append(&put("b", 2)), LONG).unwrap();
        // Running, the file runs on in preallocated zeros, which a scan skips.
        let size = w.stats().current_size;
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size + PREALLOCATE);
        assert!(bytes[size as usize..].iter().all(|&b| b == 0));
        assert_eq!(records(&bytes), vec![put("a", 1), put("b", 2)]);
        // A clean shutdown trims them.
        w.shutdown().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(records(&bytes), vec![put("a", 1), put("b", 2)]);
    }

    #[test]
    fn file_sink_reuses_preallocated_space_after_a_crash_and_extends_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let mut sink = FileSink::open(&path).unwrap();
        let mut header = Vec::new();
        record::encode_header(&mut header);
        sink.write_all(&header).unwrap();
        let mut rec = Vec::new();
        record::encode(&put("a", 1), &mut rec);
        sink.write_all(&rec).unwrap();
        sink.sync().unwrap();
        let first = sink.len();
        assert_eq!(sink.allocated(), header.len() as u64 + PREALLOCATE);
        // A crash: no trim. Reopening finds the records and appends after them, inside
        // the space already there.
        drop(sink);
        let mut sink = FileSink::open(&path).unwrap();
        assert_eq!(sink.len(), first);
        let allocated = sink.allocated();
        sink.write_all(&rec).unwrap();
        assert_eq!(sink.allocated(), allocated);
        // A write past the end extends the file again, zeros after it.
        let big = vec![7u8; (allocated - sink.len()) as usize + 10];
        let before = sink.len();
        sink.write_all(&big).unwrap();
        assert_eq!(sink.len(), before + big.len() as u64);
        assert_eq!(sink.allocated(), sink.len() + PREALLOCATE);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, sink.allocated());
        assert_eq!(&bytes[before as usize..sink.len() as usize], &big[..]);
        assert!(bytes[sink.len() as usize..].iter().all(|&b| b == 0));
        sink.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), sink.len());
    }

    #[test]
    fn file_sink_without_preallocation_is_exactly_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let mut sink = FileSink::open(&path).unwrap().with_preallocation(0);
        let mut rec = Vec::new();
        record::encode_header(&mut rec);
        record::encode(&put("a", 1), &mut rec);
        sink.write_all(&rec).unwrap();
        sink.write_all(&rec[8..]).unwrap();
        assert_eq!(sink.allocated(), sink.len());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), sink.len());
        // Zeros an earlier run left are reused, and trimmed at the end.
        drop(sink);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len + 100)
            .unwrap();
        let mut sink = FileSink::open(&path).unwrap().with_preallocation(0);
        assert_eq!((sink.len(), sink.allocated()), (len, len + 100));
        sink.write_all(&rec[8..]).unwrap();
        assert_eq!(sink.allocated(), len + 100);
        sink.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), sink.len());
        assert_eq!(records(&std::fs::read(&path).unwrap()).len(), 3);
    }
}
