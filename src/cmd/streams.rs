//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, with Redis 7.0's
//! replies and error texts (`t_stream.c`). Reading (XREAD, XREADGROUP) lives in
//! `stream_read`, groups in `stream_groups`, XINFO in `stream_info`; the value is
//! [`crate::store::stream::Stream`].
//!
//! Ids are decided here, on the master: the journaled effect is the stream after the write,
//! so a replica or a replay never picks an id (or trims) again. Keyspace events (class `t`) are
//! published by the handlers themselves (`notify`), where Redis's `t_stream.c` publishes them
//! (an `XADD` that trims also publishes `xtrim`; a consumer created by `XREADGROUP`, `XCLAIM`
//! or `XAUTOCLAIM` publishes `xgroup-createconsumer`); the dispatcher's per-command events
//! are off for these commands (`keyspace_events`).

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{CommandSpec, Ctx, Shared, BASE};
use crate::clock::Nanos;
use crate::config::NotifyFlags;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::stream::{
    AddError, NewId, Stream, StreamEntry, StreamId, Trim, NODE_MAX_ENTRIES,
};
use crate::store::{Entry, Shard, Value};

/// Stream commands (reads, groups and XINFO are in their own files).
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "XADD",
        arity: -5,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Appends a new message to a stream. Creates the key if it doesn't exist.",
        since: "5.0.0",
        complexity: "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
        args: "key:key [NOMKSTREAM] [trim=(strategy=(MAXLEN|MINID) [~] threshold:string [LIMIT count:integer])] id-selector=(*|id:string) data=(field:string value:string)...",
        handler: xadd,
        ..BASE
    },
    CommandSpec {
        name: "XLEN",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Return the number of messages in a stream.",
        since: "5.0.0",
        args: "key:key",
        handler: xlen,
        ..BASE
    },
    CommandSpec {
        name: "XRANGE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Returns the messages from a stream within a range of IDs.",
        since: "5.0.0",
        complexity: "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        args: "key:key start:string end:string [COUNT count:integer]",
        handler: |ctx, req| xrange(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "XREVRANGE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Returns the messages from a stream within a range of IDs in reverse order.",
        since: "5.0.0",
        complexity: "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        args: "key:key end:string start:string [COUNT count:integer]",
        handler: |ctx, req| xrange(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "XDEL",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Returns the number of messages after removing them from a stream.",
        since: "5.0.0",
        complexity: "O(1) for each single item to delete in the stream, regardless of the stream size.",
        args: "key:key id:string...",
        handler: xdel,
        ..BASE
    },
    CommandSpec {
        name: "XTRIM",
        arity: -4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Deletes messages from the beginning of a stream.",
        since: "5.0.0",
        complexity: "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
        args: "key:key trim=(strategy=(MAXLEN|MINID) [~] threshold:string [LIMIT count:integer])",
        handler: xtrim,
        ..BASE
    },
    CommandSpec {
        name: "XSETID",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "An internal command for replicating stream values.",
        since: "5.0.0",
        args: "key:key last-id:string [ENTRIESADDED entries-added:integer] [MAXDELETEDID max-deleted-id:string]",
        handler: xsetid,
        ..BASE
    },
];

/// Redis's text for an id argument that does not parse.
pub(super) fn invalid_id() -> CommandError {
    CommandError::other("Invalid stream ID specified as stream command argument")
}

/// A strict id argument (`-` and `+` refused), missing sequence `missing_seq`.
pub(super) fn strict_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, CommandError> {
    StreamId::parse(arg, missing_seq, true, false)
        .map(|p| p.id)
        .ok_or_else(invalid_id)
}

/// An id argument where `-` and `+` are allowed.
pub(super) fn any_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, CommandError> {
    StreamId::parse(arg, missing_seq, false, false)
        .map(|p| p.id)
        .ok_or_else(invalid_id)
}

/// The stream at `key` for reading: `Ok(None)` if absent, `WrongType` for other kinds.
pub(super) fn read<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s Stream>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Stream(st)) => Ok(Some(st)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The stream at `key` for writing (marks the key changed). Call only after [`read`] found
/// one under the same lock.
pub(super) fn write<'s>(s: &'s mut Shard, key: &[u8], now: Nanos) -> &'s mut Stream {
    match s.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::Stream(st)) => st,
        _ => unreachable!("invariant: read() found a stream under the same lock"),
    }
}

/// Stores a new empty stream at `key` and returns it.
pub(super) fn create<'s>(s: &'s mut Shard, key: &[u8], now: Nanos) -> &'s mut Stream {
    s.insert(key, Entry::new(Value::Stream(Box::default())));
    write(s, key, now)
}

/// `[id, [field, value, ...]]`, one entry as Redis replies it.
pub(super) fn entry_frame(id: StreamId, e: &StreamEntry) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(id.to_bytes()),
        Frame::Array(e.fields.iter().map(|f| Frame::Bulk(f.clone())).collect()),
    ])
}

/// Trimming options of XADD and XTRIM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrimArgs {
    /// The strategy, if any.
    pub trim: Option<Trim>,
    /// `~` was given.
    pub approx: bool,
    /// Entries trimmed at most (0 = no limit).
    pub limit: u64,
}

impl TrimArgs {
    /// Trims `s` as asked; returns the number of entries removed.
    pub fn apply(&self, s: &mut Stream) -> u64 {
        match self.trim {
            Some(t) => s.trim(t, self.approx, self.limit),
            None => 0,
        }
    }
}

/// XADD's other options.
struct AddArgs {
    trim: TrimArgs,
    no_mkstream: bool,
    /// The id argument, `None` for `*`.
    id: Option<NewId>,
    /// Position of the id argument.
    id_pos: usize,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`.
fn parse_add_or_trim(req: &[Bytes], xadd: bool, node_max: u64) -> Result<AddArgs, CommandError> {
    let mut out = AddArgs {
        trim: TrimArgs {
            trim: None,
            approx: false,
            limit: 0,
        },
        no_mkstream: false,
        id: None,
        id_pos: req.len(),
    };
    let mut limit_given = false;
    let mut i = 2;
    let incompatible = || {
        CommandError::other(
            "syntax error, MAXLEN and MINID options at the same time are not compatible",
        )
    };
    while i < req.len() {
        let more = req.len() - 1 - i;
        let opt = &req[i];
        if xadd && &opt[..] == b"*" {
            out.id_pos = i;
            break;
        } else if (args::is(opt, "MAXLEN") || args::is(opt, "MINID")) && more > 0 {
            if out.trim.trim.is_some() {
                return Err(incompatible());
            }
            out.trim.approx = false;
            if more >= 2 && &req[i + 1][..] == b"~" {
                out.trim.approx = true;
                i += 1;
            } else if more >= 2 && &req[i + 1][..] == b"=" {
                i += 1;
            }
            let arg = &req[i + 1];
            out.trim.trim = Some(if args::is(opt, "MAXLEN") {
                let n = args::int(arg)?;
                if n < 0 {
                    return Err(CommandError::other("The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(strict_id(arg, 0)?)
            });
            i += 2;
        } else if args::is(opt, "LIMIT") && more > 0 {
            let n = args::int(&req[i + 1])?;
            if n < 0 {
                return Err(CommandError::other("The LIMIT argument must be >= 0."));
            }
            out.trim.limit = n as u64;
            limit_given = true;
            i += 2;
        } else if xadd && args::is(opt, "NOMKSTREAM") {
            out.no_mkstream = true;
            i += 1;
        } else if xadd {
            let p = StreamId::parse(opt, 0, true, true).ok_or_else(invalid_id)?;
            out.id = Some(if p.seq_given {
                NewId::Exact(p.id)
            } else {
                NewId::AutoSeq(p.id.ms)
            });
            out.id_pos = i;
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if out.trim.limit != 0 && out.trim.trim.is_none() {
        return Err(CommandError::other(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && out.trim.trim.is_none() {
        return Err(CommandError::other(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !out.trim.approx {
            return Err(CommandError::other(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if out.trim.approx {
        // As Redis: 100 nodes' worth, capped on both sides.
        let limit = 100i64.saturating_mul(node_max as i64);
        out.trim.limit = if limit <= 0 {
            10_000
        } else {
            limit.min(1_000_000) as u64
        };
    }
    Ok(out)
}

fn xadd(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let node_max = node_max(ctx);
    let parsed = parse_add_or_trim(req, true, node_max)?;
    let field_pos = parsed.id_pos + 1;
    if req.len() < field_pos + 2 || (req.len() - field_pos) % 2 == 1 {
        return Err(CommandError::WrongArity("xadd".into()));
    }
    if parsed.id == Some(NewId::Exact(StreamId::MIN)) {
        return Err(CommandError::other(
            "The ID specified in XADD must be greater than 0-0",
        ));
    }
    let want = parsed.id.unwrap_or(NewId::Auto);
    let (now, now_ms) = (ctx.now, ctx.now.as_millis());
    let key = &req[1];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let existing = read(s, key, now)?;
        if existing.is_none() && parsed.no_mkstream {
            return Ok(Frame::Null);
        }
        let id = match existing {
            Some(st) => st.next_id(want, now_ms),
            None => Stream::default().next_id(want, now_ms),
        };
        let id = id.map_err(|e| match e {
            AddError::Exhausted => CommandError::other(
                "The stream has exhausted the last possible ID, unable to add more items",
            ),
            AddError::NotAboveTop => CommandError::other(
                "The ID specified in XADD is equal or smaller than the target stream top item",
            ),
        })?;
        let st = match existing {
            Some(_) => write(s, key, now),
            None => create(s, key, now),
        };
        let fields: Box<[Bytes]> = req[field_pos..].iter().map(|f| owned(f)).collect();
        st.append(id, fields, node_max);
        notify(shared, db, "xadd", key);
        if parsed.trim.apply(st) > 0 {
            notify(shared, db, "xtrim", key);
        }
        Ok(Frame::Bulk(id.to_bytes()))
    })
}

/// `stream-node-max-entries`: entries per virtual node (0 = no limit).
fn node_max(ctx: &Ctx<'_>) -> u64 {
    let cfg = ctx.shared.engine.config.read();
    cfg.encoding
        .get("stream-node-max-entries")
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(NODE_MAX_ENTRIES)
}

/// Copied so the keyspace never pins a connection's read buffer.
/// Publishes a stream keyspace event (class `t`), where Redis's `t_stream.c` does.
pub(super) fn notify(shared: &Shared, db: usize, event: &str, key: &[u8]) {
    shared
        .engine
        .notify_key(db, NotifyFlags::STREAM, event, key);
}

pub(super) fn owned(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

fn xlen(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        Ok(Frame::Integer(
            read(s, &req[1], now)?.map_or(0, |st| st.len() as i64),
        ))
    })
}

/// An interval bound of XRANGE, XPENDING and XAUTOCLAIM (`(` makes it exclusive); `start`
/// bounds take missing sequence 0, end bounds the largest.
pub(super) fn interval_id(arg: &[u8], start: bool) -> Result<StreamId, CommandError> {
    let missing = if start { 0 } else { u64::MAX };
    if arg.len() > 1 && arg[0] == b'(' {
        let id = strict_id(&arg[1..], missing)?;
        let moved = if start { id.next() } else { id.prev() };
        return moved.ok_or_else(|| {
            CommandError::other(if start {
                "invalid start ID for the interval"
            } else {
                "invalid end ID for the interval"
            })
        });
    }
    any_id(arg, missing)
}

fn xrange(ctx: &mut Ctx<'_>, req: &[Bytes], rev: bool) -> Result<Frame, CommandError> {
    let (start_arg, end_arg) = if rev {
        (&req[3], &req[2])
    } else {
        (&req[2], &req[3])
    };
    let start = interval_id(start_arg, true)?;
    let end = interval_id(end_arg, false)?;
    let mut count: Option<usize> = None;
    let mut j = 4;
    while j < req.len() {
        if args::is(&req[j], "COUNT") && j + 1 < req.len() {
            count = Some(args::int(&req[j + 1])?.max(0) as usize);
            j += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        let Some(st) = read(s, &req[1], now)? else {
            return Ok(Frame::Array(Vec::new()));
        };
        if count == Some(0) {
            return Ok(Frame::NullArray);
        }
        let items = st
            .range(start, end, rev)
            .take(count.unwrap_or(usize::MAX))
            .map(|(id, e)| entry_frame(*id, e))
            .collect();
        Ok(Frame::Array(items))
    })
}

fn xdel(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let Some(st) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        let ids = req[2..]
            .iter()
            .map(|a| strict_id(a, 0))
            .collect::<Result<Vec<_>, _>>()?;
        if !ids.iter().any(|id| st.entries.contains_key(id)) {
            return Ok(Frame::Integer(0));
        }
        let st = write(s, key, now);
        let deleted = ids.into_iter().filter(|&id| st.delete(id)).count();
        notify(shared, db, "xdel", key);
        Ok(Frame::Integer(deleted as i64))
    })
}

fn xtrim(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let parsed = parse_add_or_trim(req, false, node_max(ctx))?;
    let now = ctx.now;
    let key = &req[1];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let Some(st) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        // Plan first, so a trim that removes nothing does not journal the key.
        let would = parsed.trim.trim.map_or(0, |t| {
            st.trim_count(t, parsed.trim.approx, parsed.trim.limit)
        });
        if would == 0 {
            return Ok(Frame::Integer(0));
        }
        let deleted = parsed.trim.apply(write(s, key, now));
        notify(shared, db, "xtrim", key);
        Ok(Frame::Integer(deleted as i64))
    })
}

fn xsetid(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = strict_id(&req[2], 0)?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < req.len() {
        let more = req.len() - 1 - i;
        if args::is(&req[i], "ENTRIESADDED") && more > 0 {
            let n = args::int(&req[i + 1])?;
            if n < 0 {
                return Err(CommandError::other("entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if args::is(&req[i], "MAXDELETEDID") && more > 0 {
            max_deleted = strict_id(&req[i + 1], 0)?;
            if id < max_deleted {
                return Err(CommandError::other(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let now = ctx.now;
    let key = &req[1];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let Some(st) = read(s, key, now)? else {
            return Err(CommandError::other("no such key"));
        };
        if let Some((&top, _)) = st.entries.last_key_value() {
            if id < top {
                return Err(CommandError::other(
                    "The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
            if entries_added.is_some_and(|n| (st.len() as u64) > n) {
                return Err(CommandError::other(
                    "The entries_added specified in XSETID is smaller than the target stream length",
                ));
            }
        }
        let st = write(s, key, now);
        st.last_id = id;
        if let Some(n) = entries_added {
            st.entries_added = n;
        }
        if !max_deleted.is_zero() {
            st.max_deleted_id = max_deleted;
        }
        notify(shared, db, "xsetid", key);
        Ok(Frame::OK)
    })
}
