//! The append-only file: effect records, the writer thread, replay, rewrite and check/repair.
//!
//! Owns every byte of AOF I/O and nothing else: it knows the [`crate::store::Store`] (to apply
//! records and to snapshot it) but no command, connection or socket. The dispatcher builds a
//! [`Record`] for each successful write and calls [`Writer::append`] before the key's shard
//! guard drops; the connection awaits [`DurableWaiter::wait`] before replying under
//! `appendfsync always`. The format contract is `docs/aof-format.md`.
//!
//! - [`record`]: records and framing, pure functions.
//! - [`writer`]: the [`Sink`] trait (file and in-memory) and the group-commit writer thread.
//! - [`replay`](mod@replay): reading a file back, applying records to a store, torn-tail policy.
//! - [`rewrite`](mod@rewrite): compaction from a store snapshot while appends continue.
//! - [`check`]: `limitkv aof check|repair FILE`.
//! - [`feed`]: the replication stream of the same records, and its backlog.

pub mod catalog;
pub mod check;
pub mod feed;
pub mod record;
pub mod replay;
pub mod rewrite;
pub mod writer;

use std::io;

use thiserror::Error;

pub use feed::Feed;
pub use record::{CorruptReason, Record, ScriptsFlushTarget};
pub use replay::{
    apply, apply_with, is_script_record, load_file, load_file_with, replay, OnCorruptTail,
    ReplayReport,
};
pub use rewrite::{remove_stale_tmp, rewrite, rewrite_with, should_rewrite, RewriteReport};
pub use writer::{
    Deferred, DurableWaiter, FileSink, FsyncPolicy, IdleCommit, MemSink, Seq, Sink, Writer,
    WriterStats,
};

/// Server-wide state that catalog records ([`Record::is_catalog`]: policies, overrides,
/// access lists) describe: replay applies those records to it, and a rewrite writes its
/// current contents as records before the keys.
pub trait Catalog: Sync {
    /// Applies one catalog record as of `now` (an override already expired is dropped).
    fn apply(&self, record: Record, now: crate::clock::Nanos) -> Result<(), PersistError>;
    /// Records that recreate the current contents.
    fn snapshot(&self, now: crate::clock::Nanos) -> Vec<Record>;
}

/// No catalog: nothing to snapshot, and a catalog record is refused.
impl Catalog for () {
    fn apply(&self, _: Record, _: crate::clock::Nanos) -> Result<(), PersistError> {
        Err(PersistError::Config(
            "the AOF holds policy records but nothing can load them here".into(),
        ))
    }

    fn snapshot(&self, _: crate::clock::Nanos) -> Vec<Record> {
        Vec::new()
    }
}

/// File name of the AOF inside the data directory.
pub const AOF_FILE: &str = "appendonly.aof";
/// File name a rewrite writes before renaming it over [`AOF_FILE`].
pub const AOF_TMP_FILE: &str = "appendonly.aof.tmp";

/// A persistence failure. Startup treats every variant as fatal; at runtime the writer counts
/// and logs them and [`Writer::healthy`] turns false.
#[derive(Debug, Error)]
pub enum PersistError {
    /// The file is damaged at `offset` (the first byte of the header or frame that failed).
    #[error("AOF is corrupt at offset {offset}: {reason} ({})", corrupt_hint(*.tail))]
    Corrupt {
        /// Byte offset of the bad header or frame.
        offset: u64,
        /// What is wrong there.
        reason: CorruptReason,
        /// True when the damage looks like a torn tail (nothing valid after it), which
        /// `--aof-load-truncated yes` may cut off.
        tail: bool,
    },
    /// An I/O call failed; `context` says which and on what path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file and the configuration disagree (e.g. fewer databases than the file uses).
    #[error("{0}")]
    Config(String),
    /// The writer cannot currently persist writes; the reply is this text (Redis's wording).
    #[error("MISCONF Errors writing to the AOF file: {0}")]
    Unhealthy(String),
    /// The writer thread has shut down.
    #[error("the AOF writer has stopped")]
    WriterStopped,
}

fn corrupt_hint(tail: bool) -> &'static str {
    if tail {
        "use --aof-load-truncated yes or `limitkv aof repair FILE`"
    } else {
        "valid data follows the damage; inspect with `limitkv aof check FILE`, \
         `limitkv aof repair FILE` drops everything from this offset"
    }
}

impl PersistError {
    /// An [`PersistError::Io`] with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> PersistError {
        PersistError::Io {
            context: context.into(),
            source,
        }
    }
}
