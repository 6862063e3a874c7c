//! Blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, with
//! Redis 7.0's semantics, and the registry of blocked clients that serves them.
//!
//! A blocking command first runs as its non-blocking form (`LMPOP`, `LMOVE`, `ZMPOP`). If that finds
//! nothing and the command runs at the top level of a connection (not inside `EXEC` or a
//! script, where, as in Redis, it answers its timeout reply at once), the handler leaves a
//! [`Block`] in the session and the connection task (see `server::connection`) registers the
//! client here and waits, without a thread, for its reply, its timeout, `CLIENT UNBLOCK`, its
//! socket closing or the server stopping.
//!
//! Serving. After every command a connection runs while clients are blocked, it calls
//! [`serve`]: under the registry's lock, for each key with blocked clients that now holds a
//! list or a sorted set, the clients blocked on it are served in the order they blocked (FIFO): each one's
//! command runs on that key, as its non-blocking form, on the client's behalf (its database and
//! protocol), and the reply is handed to its connection. So, as in Redis, blocked clients are
//! served after the command (or the whole `EXEC`, or script) that made the key ready and before
//! the writing client's next command, and a push of N elements serves up to N clients. A served
//! `BLMOVE` pushes to its destination, which may serve further clients: serving repeats until
//! nothing changes. A key that holds another type leaves the client blocked; a `BLMOVE` whose
//! destination holds another type gets `WRONGTYPE` (the element stays in the source), as in
//! Redis 7.0. The effects are journaled as the non-blocking
//! commands' effects, so persistence and replay need nothing new.
//!
//! Lock order: the registry's lock, then shard locks. Nothing takes the registry's lock while
//! holding a shard.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::args;
use super::flags::*;
use super::{dispatch, ClientInfo, CommandSpec, Ctx, Session, Shared, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::persist::Seq;
use crate::protocol::{Frame, RespVersion};
use crate::store::Value;

/// Blocking list commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "BLPOP",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING,
        first_key: 1,
        last_key: -2,
        key_step: 1,
        group: "list",
        summary: "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of provided keys.",
        args: "key:key... timeout:double",
        handler: |ctx, req| bpop(ctx, req, "LEFT"),
        ..BASE
    },
    CommandSpec {
        name: "BRPOP",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING,
        first_key: 1,
        last_key: -2,
        key_step: 1,
        group: "list",
        summary: "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of provided keys.",
        args: "key:key... timeout:double",
        handler: |ctx, req| bpop(ctx, req, "RIGHT"),
        ..BASE
    },
    CommandSpec {
        name: "BLMOVE",
        arity: 6,
        flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "list",
        summary: "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
        since: "6.2.0",
        args: "source:key destination:key wherefrom=(LEFT|RIGHT) whereto=(LEFT|RIGHT) timeout:double",
        handler: |ctx, req| {
            for side in &req[3..5] {
                if !args::is(side, "LEFT") && !args::is(side, "RIGHT") {
                    return Err(CommandError::Syntax);
                }
            }
            bmove(ctx, req, &req[3], &req[4], &req[5])
        },
        ..BASE
    },
    CommandSpec {
        name: "BRPOPLPUSH",
        arity: 4,
        flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "list",
        summary: "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.2.0",
        args: "source:key destination:key timeout:double",
        handler: |ctx, req| bmove(ctx, req, b"RIGHT", b"LEFT", &req[3]),
        ..BASE
    },
    CommandSpec {
        name: "BLMPOP",
        arity: -5,
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        group: "list",
        summary: "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "7.0.0",
        complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        args: "timeout:double numkeys:integer key:key... where=(LEFT|RIGHT) [COUNT count:integer]",
        handler: blmpop,
        ..BASE
    },
    CommandSpec {
        name: "BZPOPMIN",
        arity: -3,
        flags: WRITE | NOSCRIPT | FAST | BLOCKING,
        first_key: 1,
        last_key: -2,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        since: "5.0.0",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        args: "key:key... timeout:double",
        handler: |ctx, req| bzpop(ctx, req, "MIN"),
        ..BASE
    },
    CommandSpec {
        name: "BZPOPMAX",
        arity: -3,
        flags: WRITE | NOSCRIPT | FAST | BLOCKING,
        first_key: 1,
        last_key: -2,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise. Deletes the sorted set if the last element was popped.",
        since: "5.0.0",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        args: "key:key... timeout:double",
        handler: |ctx, req| bzpop(ctx, req, "MAX"),
        ..BASE
    },
    CommandSpec {
        name: "BZMPOP",
        arity: -5,
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        since: "7.0.0",
        complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.",
        args: "timeout:double numkeys:integer key:key... where=(MIN|MAX) [COUNT count:integer]",
        handler: bzmpop,
        ..BASE
    },
];

/// What a blocked client waits for: the keys, and how its command runs on a key that became
/// ready.
#[derive(Debug, Clone)]
pub struct Block {
    keys: Vec<Bytes>,
    /// Milliseconds to wait; 0 = forever.
    pub timeout_ms: u64,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// BLPOP / BRPOP: `[key, element]`.
    Pop { side: &'static str },
    /// BLMPOP: `[key, [element...]]`.
    MPop { side: Bytes, count: Option<Bytes> },
    /// BLMOVE / BRPOPLPUSH: the element.
    Move { dst: Bytes, from: Bytes, to: Bytes },
    /// BZPOPMIN / BZPOPMAX: `[key, member, score]`.
    ZPop { side: &'static str },
    /// BZMPOP: `[key, [[member, score]...]]`.
    ZMPop { side: Bytes, count: Option<Bytes> },
    /// XREAD / XREADGROUP (see `cmd::stream_read`): `prefix STREAMS key id` per stream, with
    /// `$` resolved when the client blocked.
    XRead {
        prefix: Vec<Bytes>,
        ids: Vec<(Bytes, Bytes)>,
    },
}

impl Block {
    /// A blocked XREAD / XREADGROUP: served by `prefix STREAMS key id` for the stream that
    /// gets entries first.
    pub fn stream(timeout_ms: u64, prefix: Vec<Bytes>, ids: Vec<(Bytes, Bytes)>) -> Block {
        Block {
            keys: ids.iter().map(|(k, _)| k.clone()).collect(),
            timeout_ms,
            op: Op::XRead { prefix, ids },
        }
    }

    /// True for a blocked XREADGROUP.
    fn is_group_read(&self) -> bool {
        matches!(&self.op, Op::XRead { prefix, .. } if prefix.first().is_some_and(|w| &w[..] == b"XREADGROUP"))
    }

    /// The reply when the wait ends without an element (timeout, `CLIENT UNBLOCK ... TIMEOUT`).
    pub fn timeout_reply(&self) -> Frame {
        match self.op {
            Op::Move { .. } => Frame::Null,
            _ => Frame::NullArray,
        }
    }

    /// The non-blocking command that serves this client from `key`.
    fn request(&self, key: &Bytes) -> Vec<Bytes> {
        let word = Bytes::from_static;
        match &self.op {
            Op::Pop { side } => vec![
                word(b"LMPOP"),
                word(b"1"),
                key.clone(),
                Bytes::from_static(side.as_bytes()),
            ],
            Op::MPop { side, count } => {
                let mut r = vec![word(b"LMPOP"), word(b"1"), key.clone(), side.clone()];
                if let Some(c) = count {
                    r.extend([word(b"COUNT"), c.clone()]);
                }
                r
            }
            Op::ZPop { side } => vec![
                word(b"ZMPOP"),
                word(b"1"),
                key.clone(),
                Bytes::from_static(side.as_bytes()),
            ],
            Op::ZMPop { side, count } => {
                let mut r = vec![word(b"ZMPOP"), word(b"1"), key.clone(), side.clone()];
                if let Some(c) = count {
                    r.extend([word(b"COUNT"), c.clone()]);
                }
                r
            }
            Op::XRead { prefix, ids } => {
                let id = ids
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or_else(|| word(b"$"), |(_, id)| id.clone());
                let mut r = prefix.clone();
                r.extend([word(b"STREAMS"), key.clone(), id]);
                r
            }
            Op::Move { dst, from, to } => vec![
                word(b"LMOVE"),
                key.clone(),
                dst.clone(),
                from.clone(),
                to.clone(),
            ],
        }
    }

    /// The blocking command's reply from its non-blocking form's reply.
    fn shape(&self, reply: Frame) -> Frame {
        match (&self.op, reply) {
            (Op::Pop { .. }, Frame::Array(mut kv)) if kv.len() == 2 => {
                let popped = kv.pop();
                let key = kv.pop().unwrap_or(Frame::Null);
                match popped {
                    Some(Frame::Array(mut items)) if !items.is_empty() => {
                        Frame::Array(vec![key, items.swap_remove(0)])
                    }
                    _ => Frame::NullArray,
                }
            }
            (Op::ZPop { .. }, Frame::Array(mut kv)) if kv.len() == 2 => {
                let popped = kv.pop();
                let key = kv.pop().unwrap_or(Frame::Null);
                match popped {
                    Some(Frame::Array(mut pairs)) if !pairs.is_empty() => {
                        match pairs.swap_remove(0) {
                            Frame::Array(ms) => {
                                let mut out = vec![key];
                                out.extend(ms);
                                Frame::Array(out)
                            }
                            _ => Frame::NullArray,
                        }
                    }
                    _ => Frame::NullArray,
                }
            }
            (_, reply) => reply,
        }
    }
}

/// Redis's `getTimeoutFromObjectOrReply` for seconds given as a double: milliseconds (0 =
/// forever), or its errors.
fn timeout_ms(arg: &[u8]) -> Result<u64, CommandError> {
    let secs = args::parse_f64(arg)
        .ok_or_else(|| CommandError::other("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return Err(CommandError::other("timeout is out of range"));
    }
    if ms < 0.0 {
        return Err(CommandError::other("timeout is negative"));
    }
    // Redis adds the timeout to the current time in ms and refuses an overflow.
    let ms = ms as u64;
    if ms > (i64::MAX as u64) / 2 {
        return Err(CommandError::other("timeout is out of range"));
    }
    Ok(ms)
}

/// Runs `block`'s command on each key in order and returns the first reply that is not empty,
/// else blocks (at the top level) or answers the timeout reply (inside EXEC or a script).
fn attempt(ctx: &mut Ctx<'_>, block: Block, first: Vec<Bytes>) -> Result<Frame, CommandError> {
    let reply = run_on(ctx, &first);
    if let Frame::Error(_) = reply {
        return Ok(reply);
    }
    let shaped = block.shape(reply);
    if !matches!(shaped, Frame::Null | Frame::NullArray) {
        return Ok(shaped);
    }
    if ctx.locked.is_some() {
        // Inside EXEC or a script, a blocking command does not block.
        return Ok(block.timeout_reply());
    }
    ctx.session.block = Some(block);
    Ok(Frame::Null)
}

/// Runs a non-blocking list command through its handler, with the caller's context.
fn run_on(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Frame {
    let Some(spec) = super::lookup(&req[0]) else {
        unreachable!("invariant: LMPOP and LMOVE are in the command table");
    };
    match (spec.handler)(ctx, req) {
        Ok(f) => f,
        Err(e) => e.to_frame(),
    }
}

fn bpop(ctx: &mut Ctx<'_>, req: &[Bytes], side: &'static str) -> Result<Frame, CommandError> {
    let timeout_ms = timeout_ms(&req[req.len() - 1])?;
    let keys = req[1..req.len() - 1].to_vec();
    let mut first = vec![
        Bytes::from_static(b"LMPOP"),
        Bytes::from(keys.len().to_string()),
    ];
    first.extend(keys.iter().cloned());
    first.push(Bytes::from_static(side.as_bytes()));
    let block = Block {
        keys,
        timeout_ms,
        op: Op::Pop { side },
    };
    attempt(ctx, block, first)
}

fn bmove(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    from: &[u8],
    to: &[u8],
    timeout: &[u8],
) -> Result<Frame, CommandError> {
    let timeout_ms = timeout_ms(timeout)?;
    let (from, to) = (
        Bytes::copy_from_slice(&from.to_ascii_uppercase()),
        Bytes::copy_from_slice(&to.to_ascii_uppercase()),
    );
    let block = Block {
        keys: vec![req[1].clone()],
        timeout_ms,
        op: Op::Move {
            dst: req[2].clone(),
            from,
            to,
        },
    };
    let first = block.request(&req[1]);
    attempt(ctx, block, first)
}

fn blmpop(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let timeout_ms = timeout_ms(&req[1])?;
    // LMPOP checks the rest of the grammar (numkeys, LEFT|RIGHT, COUNT) with Redis's texts.
    let first: Vec<Bytes> = std::iter::once(Bytes::from_static(b"LMPOP"))
        .chain(req[2..].iter().cloned())
        .collect();
    let numkeys = args::parse_i64(&req[2]).filter(|&n| n >= 1);
    let Some(numkeys) = numkeys.and_then(|n| usize::try_from(n).ok()) else {
        return Err(CommandError::other("numkeys should be greater than 0"));
    };
    let where_at = match numkeys.checked_add(3) {
        Some(at) if at < req.len() => at,
        _ => return Err(CommandError::Syntax),
    };
    let count = (req.len() > where_at + 2).then(|| req[where_at + 2].clone());
    let block = Block {
        keys: req[3..where_at].to_vec(),
        timeout_ms,
        op: Op::MPop {
            side: req[where_at].clone(),
            count,
        },
    };
    attempt(ctx, block, first)
}

fn bzpop(ctx: &mut Ctx<'_>, req: &[Bytes], side: &'static str) -> Result<Frame, CommandError> {
    let timeout_ms = timeout_ms(&req[req.len() - 1])?;
    let keys = req[1..req.len() - 1].to_vec();
    let mut first = vec![
        Bytes::from_static(b"ZMPOP"),
        Bytes::from(keys.len().to_string()),
    ];
    first.extend(keys.iter().cloned());
    first.push(Bytes::from_static(side.as_bytes()));
    let block = Block {
        keys,
        timeout_ms,
        op: Op::ZPop { side },
    };
    attempt(ctx, block, first)
}

fn bzmpop(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let timeout_ms = timeout_ms(&req[1])?;
    let (keys, max, _) = super::zset_pops::parse_mpop(req, 2)?;
    let first: Vec<Bytes> = std::iter::once(Bytes::from_static(b"ZMPOP"))
        .chain(req[2..].iter().cloned())
        .collect();
    let where_at = 3 + keys.len();
    let count = (req.len() > where_at + 2).then(|| req[where_at + 2].clone());
    let block = Block {
        keys: keys.to_vec(),
        timeout_ms,
        op: Op::ZMPop {
            side: Bytes::from_static(if max { b"MAX" } else { b"MIN" }),
            count,
        },
    };
    attempt(ctx, block, first)
}

/// A blocked client's end of the registry: the reply, with the log position it depends on.
pub type Served = oneshot::Receiver<(Frame, Option<Seq>)>;

struct Waiter {
    info: Arc<ClientInfo>,
    db: usize,
    resp: RespVersion,
    block: Block,
    tx: oneshot::Sender<(Frame, Option<Seq>)>,
}

/// The clients blocked on keys, in the order they blocked, per (database, key).
#[derive(Default)]
pub struct Blocked {
    count: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per key: when a client first blocked on it (keys are served in that order), and the
    /// clients blocked on it in the order they blocked.
    keys: HashMap<(usize, Bytes), (u64, VecDeque<u64>)>,
    waiters: HashMap<u64, Waiter>,
    /// Numbers the keys as clients first block on them.
    next: u64,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for k in &w.block.keys {
            let slot = (w.db, k.clone());
            if let Some((_, q)) = self.keys.get_mut(&slot) {
                q.retain(|&c| c != id);
                if q.is_empty() {
                    self.keys.remove(&slot);
                }
            }
        }
        Some(w)
    }
}

impl Blocked {
    /// How many clients are blocked (`INFO`'s `blocked_clients`).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// True if no client is blocked (one atomic load: checked after every command).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if client `id` is blocked.
    pub fn is_blocked(&self, id: u64) -> bool {
        !self.is_empty() && self.inner.lock().waiters.contains_key(&id)
    }

    /// Blocks `session`'s client on `block`'s keys, after every client already blocked on
    /// them.
    pub fn register(&self, session: &Session, block: Block) -> Served {
        let (tx, rx) = oneshot::channel();
        let id = session.info.id;
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for k in &block.keys {
            let next = inner.next;
            let (first, q) = inner
                .keys
                .entry((session.db, k.clone()))
                .or_insert_with(|| (next, VecDeque::new()));
            if *first == next {
                inner.next += 1;
            }
            if !q.contains(&id) {
                q.push_back(id);
            }
        }
        inner.waiters.insert(
            id,
            Waiter {
                info: session.info.clone(),
                db: session.db,
                resp: session.resp,
                block,
                tx,
            },
        );
        self.count.store(inner.waiters.len(), Ordering::Release);
        rx
    }

    /// Stops client `id` waiting, as its timeout or `CLIENT UNBLOCK` does: `reply` builds its
    /// reply from its block. False if it was not blocked (or was just served).
    pub fn unblock(&self, id: u64, reply: impl FnOnce(&Block) -> Frame) -> bool {
        let mut inner = self.inner.lock();
        let Some(w) = inner.remove(id) else {
            return false;
        };
        self.count.store(inner.waiters.len(), Ordering::Release);
        let frame = reply(&w.block);
        let _ = w.tx.send((frame, None));
        true
    }

    /// Forgets client `id` (it disconnected, was killed, or the server stops).
    pub fn forget(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.remove(id);
        self.count.store(inner.waiters.len(), Ordering::Release);
    }
}

/// Serves the clients blocked on keys that now hold lists (see the module docs).
pub fn serve(shared: &Shared, now: Nanos) {
    if shared.blocked.is_empty() {
        return;
    }
    let blocked = &shared.blocked;
    let mut inner = blocked.inner.lock();
    loop {
        let mut progress = false;
        // Keys in the order clients first blocked on them: with several keys ready at once
        // (after an EXEC, say), a client blocked on all of them pops from the first it named.
        let mut slots: Vec<(u64, usize, Bytes)> = inner
            .keys
            .iter()
            .map(|((db, key), (first, _))| (*first, *db, key.clone()))
            .collect();
        slots.sort_unstable_by_key(|s| s.0);
        for (_, db, key) in slots {
            // XREADGROUP needs its stream: blocked on one that is gone (deleted, replaced by
            // another type, flushed), the client gets Redis 7.0's error.
            if !holds_stream(shared, db, &key, now) {
                let gone: Vec<u64> = inner
                    .keys
                    .get(&(db, key.clone()))
                    .map(|(_, q)| {
                        q.iter()
                            .copied()
                            .filter(|id| inner.waiters[id].block.is_group_read())
                            .collect()
                    })
                    .unwrap_or_default();
                for id in gone {
                    if let Some(w) = inner.remove(id) {
                        let e = Frame::error("UNBLOCKED the stream key no longer exists");
                        let _ = w.tx.send((e, None));
                        progress = true;
                    }
                }
            }
            while holds_collection(shared, db, &key, now) {
                let Some((_, queue)) = inner.keys.get(&(db, key.clone())) else {
                    break;
                };
                let mut served = None;
                for &id in queue {
                    let w = &inner.waiters[&id];
                    if let Some(reply) = serve_one(shared, w, &key, now) {
                        served = Some((id, reply));
                        break;
                    }
                }
                let Some((id, reply)) = served else {
                    break;
                };
                let w = inner
                    .remove(id)
                    .expect("invariant: a queued client is registered");
                let _ = w.tx.send(reply);
                progress = true;
            }
        }
        blocked.count.store(inner.waiters.len(), Ordering::Release);
        if !progress || inner.waiters.is_empty() {
            return;
        }
    }
}

/// True if `key` holds a stream.
fn holds_stream(shared: &Shared, db: usize, key: &[u8], now: Nanos) -> bool {
    let Some(store) = shared.engine.dbs.get(db) else {
        return false;
    };
    let shard = store.lock(key);
    matches!(
        shard.get(key, now).map(|e| &e.value),
        Some(Value::Stream(_))
    )
}

/// True if `key` holds a list or a sorted set (what some blocked client may pop).
fn holds_collection(shared: &Shared, db: usize, key: &[u8], now: Nanos) -> bool {
    let Some(store) = shared.engine.dbs.get(db) else {
        return false;
    };
    let shard = store.lock(key);
    matches!(
        shard.get(key, now).map(|e| &e.value),
        Some(Value::List(_) | Value::ZSet(_) | Value::Stream(_))
    )
}

/// True if `key` holds the kind `op` serves from: a list, a sorted set or a stream.
fn holds_kind(shared: &Shared, db: usize, key: &[u8], now: Nanos, op: &Op) -> bool {
    let Some(store) = shared.engine.dbs.get(db) else {
        return false;
    };
    let shard = store.lock(key);
    match shard.get(key, now).map(|e| &e.value) {
        Some(Value::ZSet(_)) => matches!(op, Op::ZPop { .. } | Op::ZMPop { .. }),
        Some(Value::Stream(_)) => matches!(op, Op::XRead { .. }),
        Some(Value::List(_)) => {
            !matches!(op, Op::ZPop { .. } | Op::ZMPop { .. } | Op::XRead { .. })
        }
        _ => false,
    }
}

/// Runs waiter `w`'s command on `key` on its behalf; `None` leaves it blocked (the key holds
/// another kind, or nothing to pop).
fn serve_one(shared: &Shared, w: &Waiter, key: &Bytes, now: Nanos) -> Option<(Frame, Option<Seq>)> {
    // Only a key of the kind the client pops serves it (Redis's per-type readiness).
    if !holds_kind(shared, w.db, key, now, &w.block.op) {
        return None;
    }
    let mut session = Session::new(w.info.clone(), &shared.acl);
    session.db = w.db;
    session.resp = w.resp;
    // Monitors saw the blocking command when it blocked.
    session.unmonitored = true;
    let req = w.block.request(key);
    let reply = dispatch(&mut Ctx::new(shared, &mut session, now), &req);
    if reply.is_error() {
        // As in Redis, an error (a BLMOVE destination of another kind) is the client's reply.
        return Some((reply, session.aof_seq));
    }
    let shaped = w.block.shape(reply);
    if matches!(shaped, Frame::Null | Frame::NullArray) {
        return None;
    }
    shared.metrics.flush(&mut session.stats);
    Some((shaped, session.aof_seq))
}

#[cfg(test)]
mod tests {
    use super::timeout_ms;
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn counted_keys_are_found_for_acl_cluster_and_transactions() {
        let mut h = Harness::new();
        let keys = |items: &[&str]| Frame::Array(items.iter().map(|k| bulk(k)).collect());
        for (words, want) in [
            (vec!["BLMPOP", "0", "2", "a", "b", "LEFT"], vec!["a", "b"]),
            (
                vec!["BZMPOP", "1.5", "1", "z", "MIN", "COUNT", "2"],
                vec!["z"],
            ),
            (vec!["ZMPOP", "2", "x", "y", "MAX"], vec!["x", "y"]),
            (vec!["BLPOP", "a", "b", "0"], vec!["a", "b"]),
            (
                vec!["BLMOVE", "s", "d", "LEFT", "RIGHT", "0"],
                vec!["s", "d"],
            ),
        ] {
            let mut req = vec!["COMMAND", "GETKEYS"];
            req.extend(&words);
            assert_eq!(h.run(&req), keys(&want), "{words:?}");
        }
    }

    #[test]
    fn timeouts_are_seconds_as_doubles_with_redis_errors() {
        assert_eq!(timeout_ms(b"0").unwrap(), 0);
        assert_eq!(timeout_ms(b"0.001").unwrap(), 1);
        assert_eq!(
            timeout_ms(b"0.0001").unwrap(),
            1,
            "rounded up as Redis does"
        );
        assert_eq!(timeout_ms(b"1.5").unwrap(), 1500);
        let err = |a: &[u8]| timeout_ms(a).unwrap_err().to_frame();
        let text = |t: &str| crate::protocol::Frame::error(format!("ERR {t}"));
        assert_eq!(err(b"-1"), text("timeout is negative"));
        assert_eq!(err(b"-0.1"), text("timeout is negative"));
        assert_eq!(err(b"abc"), text("timeout is not a float or out of range"));
        assert_eq!(err(b"inf"), text("timeout is out of range"));
        assert_eq!(err(b"1e30"), text("timeout is out of range"));
    }
}
