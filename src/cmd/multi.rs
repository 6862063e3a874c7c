//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between `MULTI` and `EXEC` commands are checked (name, arity, allowed in a transaction) and
//! queued; a refused command makes `EXEC` answer `EXECABORT`, as in Redis. `EXEC` locks every
//! shard the queued commands name (all shards if one of them works on the whole keyspace or has
//! movable keys), runs them in order under those locks and with one `now`, and answers all their
//! replies in one array: no other client can observe or interleave with a transaction.
//!
//! `WATCH` registers the connection's flag with the database's [`crate::store::Watchers`]; any
//! change to a watched key made through the command layer sets it (see `Ctx::with_shard`), and a
//! watched key that held a value and no longer does at `EXEC` (it expired) counts as a change.
//! `EXEC` then answers a null array and runs nothing. `EXEC`, `DISCARD`, `RESET` and closing the
//! connection unwatch everything.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::context::WatchedKey;
use super::flags::*;
use super::{dispatch, full_name, CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{MultiGuard, Store};

use super::{Session, Shared};

/// Transaction commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "MULTI",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | TX_CONTROL,
        group: "transactions",
        summary: "Starts a transaction.",
        since: "1.2.0",
        handler: |ctx, _| {
            if ctx.session.multi.is_some() {
                return Err(CommandError::other("MULTI calls can not be nested"));
            }
            ctx.session.multi = Some(Vec::new());
            ctx.session.multi_error = false;
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        name: "EXEC",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | TX_CONTROL,
        group: "transactions",
        summary: "Executes all commands in a transaction.",
        since: "1.2.0",
        complexity: "Depends on commands in the transaction",
        handler: exec,
        ..BASE
    },
    CommandSpec {
        name: "DISCARD",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | TX_CONTROL,
        group: "transactions",
        summary: "Discards a transaction.",
        since: "2.0.0",
        complexity: "O(N), when N is the number of queued commands",
        handler: |ctx, _| {
            if ctx.session.multi.take().is_none() {
                return Err(CommandError::other("DISCARD without MULTI"));
            }
            ctx.session.multi_error = false;
            unwatch_all(ctx.shared, ctx.session);
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        name: "WATCH",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | TX_CONTROL,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "transactions",
        summary: "Monitors changes to keys to determine the execution of a transaction.",
        since: "2.2.0",
        complexity: "O(1) for every key.",
        args: "key:key...",
        handler: watch,
        ..BASE
    },
    CommandSpec {
        name: "UNWATCH",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        group: "transactions",
        summary: "Forgets about watched keys of a transaction.",
        since: "2.2.0",
        handler: |ctx, _| {
            unwatch_all(ctx.shared, ctx.session);
            Ok(Frame::OK)
        },
        ..BASE
    },
];

fn watch(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if ctx.session.multi.is_some() {
        return Err(CommandError::other("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.session.db;
    let store = ctx.db();
    for key in &req[1..] {
        if ctx
            .session
            .watched
            .iter()
            .any(|w| w.db == db && w.key == key)
        {
            continue;
        }
        // Registered under the key's shard lock: a change cannot slip between reading the
        // key's state and the registration.
        let shard = store.lock(key);
        let live = shard.get(key, ctx.now).is_some();
        let stale = !live && shard.holds(key);
        store.watchers.watch(key, &ctx.session.watch_flag, stale);
        drop(shard);
        ctx.session.watched.push(WatchedKey {
            db,
            key: key.clone(),
            live,
        });
    }
    ctx.session
        .info
        .watching
        .store(ctx.session.watched.len() as u32, Ordering::Relaxed);
    Ok(Frame::OK)
}

/// Drops every watch of `session` (`UNWATCH`, `EXEC`, `DISCARD`, `RESET`, disconnect).
pub fn unwatch_all(shared: &Shared, session: &mut Session) {
    for w in session.watched.drain(..) {
        shared.engine.dbs[w.db]
            .watchers
            .unwatch(&w.key, &session.watch_flag);
    }
    session.watch_flag.store(false, Ordering::Release);
    session.info.watching.store(0, Ordering::Relaxed);
}

/// Whether a key watched while it held a value holds none now (it expired or was swept).
fn watched_key_expired(shared: &Shared, session: &Session, now: crate::clock::Nanos) -> bool {
    session.watched.iter().filter(|w| w.live).any(|w| {
        shared.engine.dbs[w.db]
            .lock(&w.key)
            .get(&w.key, now)
            .is_none()
    })
}

/// Checks and queues `req` inside `MULTI`.
pub fn queue(
    ctx: &mut Ctx<'_>,
    spec: &'static CommandSpec,
    req: &[Bytes],
) -> Result<Frame, CommandError> {
    let refuse = |ctx: &mut Ctx<'_>, e: CommandError| {
        ctx.session.multi_error = true;
        Err(e)
    };
    if !spec.arity_ok(req.len()) {
        return refuse(ctx, CommandError::WrongArity(full_name(None, spec)));
    }
    if spec.has(NO_MULTI) || spec.has(SELECTS_DB) {
        return refuse(
            ctx,
            CommandError::other("Command not allowed inside a transaction"),
        );
    }
    if let Some(q) = ctx.session.multi.as_mut() {
        q.push(req.to_vec());
    }
    Ok(Frame::simple("QUEUED"))
}

/// The keys of `req` by its spec's key positions.
pub(crate) fn keys_of<'r>(spec: &CommandSpec, req: &'r [Bytes]) -> impl Iterator<Item = &'r Bytes> {
    let len = req.len() as i64;
    let first = i64::from(spec.first_key);
    let last = if spec.last_key < 0 {
        len + i64::from(spec.last_key)
    } else {
        i64::from(spec.last_key).min(len - 1)
    };
    let step = i64::from(spec.key_step.max(1));
    (first..=last)
        .step_by(step as usize)
        .filter(move |_| first > 0)
        .filter_map(move |i| req.get(i as usize))
}

/// Locks what the queued commands need, in shard order.
fn lock_for<'s>(store: &'s Store, queue: &[Vec<Bytes>]) -> MultiGuard<'s> {
    let mut keys: Vec<&Bytes> = Vec::new();
    for req in queue {
        let Some(spec) = super::lookup(&req[0]) else {
            continue;
        };
        if spec.has(KEYSPACE) || spec.has(MOVABLEKEYS) {
            return store.lock_all();
        }
        if !spec.has(NOT_KEY) {
            keys.extend(keys_of(spec, req));
        }
    }
    if keys.is_empty() {
        MultiGuard::none(store)
    } else {
        store.lock_keys(&keys)
    }
}

/// The script token an `EXEC` with queued scripts holds, with the server held in the running
/// state (see `RunState::hold`) until it drops.
struct HeldRun<'a>(crate::script::ScriptsGuard<'a>);

impl Drop for HeldRun<'_> {
    fn drop(&mut self) {
        self.0.run_state().release();
    }
}

fn exec(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let Some(queue) = ctx.session.multi.take() else {
        return Err(CommandError::other("EXEC without MULTI"));
    };
    let shared = ctx.shared;
    if std::mem::take(&mut ctx.session.multi_error) {
        unwatch_all(shared, ctx.session);
        return Err(CommandError::Coded(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // Expiry checks lock the watched keys' shards one by one, so they run before the
    // transaction's own locks are taken (taking more shards later could deadlock).
    let expired = watched_key_expired(shared, ctx.session, ctx.now);
    // Scripting commands take the script token; it comes before shard locks in the lock
    // order, so a transaction that holds any takes it first (see cmd::scripting).
    // It also holds the server in the running state before taking its shards, so that no
    // other connection blocks its thread on them while a queued script runs.
    let _token = super::script_run::queue_runs_lua(&queue).then(|| {
        let token = shared.scripts.lock();
        let threshold = shared.engine.config.read().busy_reply_threshold;
        shared.scripts.run_state().hold(threshold);
        HeldRun(token)
    });
    // SELECT is refused while queuing, so the whole transaction runs in this database.
    let guard = lock_for(ctx.db(), &queue);
    // Read under the transaction's locks: a change to a watched key either happened before
    // (and set the flag) or happens after the whole transaction.
    let changed = expired || ctx.session.watch_flag.load(Ordering::Acquire);
    unwatch_all(shared, ctx.session);
    if changed {
        return Ok(Frame::NullArray);
    }
    let mut inner = Ctx {
        shared,
        session: &mut *ctx.session,
        now: ctx.now,
        locked: Some(guard),
    };
    let replies = queue.iter().map(|req| dispatch(&mut inner, req)).collect();
    Ok(Frame::Array(replies))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn exec_runs_queued_commands_in_order() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MULTI"]), Frame::OK);
        assert_eq!(h.run(&["INCR", "a"]), simple("QUEUED"));
        assert_eq!(h.run(&["MSET", "b", "1", "c", "2"]), simple("QUEUED"));
        assert_eq!(
            h.run(&["CL.THROTTLE", "t", "1", "1", "1"]),
            simple("QUEUED")
        );
        assert_eq!(h.run(&["DBSIZE"]), simple("QUEUED"));
        assert_eq!(h.run(&["GET", "b"]), simple("QUEUED"));
        assert_eq!(
            h.run(&["EXEC"]),
            Frame::Array(vec![
                int(1),
                Frame::OK,
                Frame::Array([0, 2, 1, -1, 1].iter().map(|&n| int(n)).collect()),
                int(4),
                bulk("1"),
            ])
        );
        assert_eq!(h.run(&["EXEC"]), err("ERR EXEC without MULTI"));
    }

    #[test]
    fn runtime_errors_stay_inside_the_reply() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "x"]);
        h.run(&["MULTI"]);
        h.run(&["INCR", "s"]);
        h.run(&["SET", "k", "v"]);
        assert_eq!(
            h.run(&["EXEC"]),
            Frame::Array(vec![
                err("ERR value is not an integer or out of range"),
                Frame::OK
            ])
        );
    }

    #[test]
    fn queuing_errors_abort_exec() {
        let mut h = Harness::new();
        h.run(&["MULTI"]);
        assert_eq!(
            h.run(&["GET"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert!(h.run(&["NOSUCH"]).is_error());
        h.run(&["SET", "k", "v"]);
        assert_eq!(
            h.run(&["EXEC"]),
            err("EXECABORT Transaction discarded because of previous errors.")
        );
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
    }

    #[test]
    fn discard_and_nesting() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["DISCARD"]), err("ERR DISCARD without MULTI"));
        h.run(&["MULTI"]);
        assert_eq!(h.run(&["MULTI"]), err("ERR MULTI calls can not be nested"));
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["DISCARD"]), Frame::OK);
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        h.run(&["MULTI"]);
        assert_eq!(
            h.run(&["SHUTDOWN"]),
            err("ERR Command not allowed inside a transaction")
        );
    }

    #[test]
    fn every_command_kind_runs_inside_exec_without_deadlock() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "EX", "100"]);
        h.run(&["MULTI"]);
        for words in [
            &["TTL", "k"][..],
            &["PERSIST", "k"],
            &["EXPIRE", "k", "50"],
            &["RENAME", "k", "k2"],
            &["KEYS", "*"],
            &["SCAN", "0"],
            &["INFO", "keyspace"],
            &["EXISTS", "k2"],
            &["MGET", "k2", "x"],
            &["DEL", "k2"],
            &["FLUSHDB"],
        ] {
            assert_eq!(h.run(words), simple("QUEUED"), "{words:?}");
        }
        let Frame::Array(replies) = h.run(&["EXEC"]) else {
            panic!("EXEC answers an array")
        };
        assert_eq!(replies.len(), 11);
        assert_eq!(replies[0], int(100));
        assert_eq!(replies[7], int(1));
    }

    #[test]
    fn select_and_flushall_are_refused_inside_a_transaction() {
        let mut h = Harness::new();
        h.run(&["MULTI"]);
        assert_eq!(
            h.run(&["SELECT", "1"]),
            err("ERR Command not allowed inside a transaction")
        );
        assert_eq!(
            h.run(&["FLUSHALL"]),
            err("ERR Command not allowed inside a transaction")
        );
        assert!(h.run(&["EXEC"]).is_error());
    }

    fn exec_ok(h: &mut Harness, cmd: &[&str]) -> Frame {
        h.run(&["MULTI"]);
        h.run(cmd);
        h.run(&["EXEC"])
    }

    #[test]
    fn watch_inside_multi_is_refused_without_failing_the_transaction() {
        let mut h = Harness::new();
        h.run(&["MULTI"]);
        assert_eq!(
            h.run(&["WATCH", "x"]),
            err("ERR WATCH inside MULTI is not allowed")
        );
        h.run(&["SET", "x", "1"]);
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![Frame::OK]));
    }

    #[test]
    fn exec_runs_when_watched_keys_are_untouched() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SET", "x", "30"]);
        assert_eq!(h.run(&["WATCH", "x", "y", "z"]), Frame::OK);
        other.run(&["SET", "unrelated", "1"]);
        other.run(&["GET", "x"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
    }

    #[test]
    fn a_change_by_anyone_aborts_exec_with_a_null_reply() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SET", "x", "30"]);
        h.run(&["WATCH", "a", "b", "x", "k", "z"]);
        other.run(&["SET", "x", "40"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
        // The transaction's own client counts too, and a rewrite to the same value as well.
        h.run(&["WATCH", "x"]);
        h.run(&["SET", "x", "40"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
        // A limiter decision that changes state is a change.
        h.run(&["WATCH", "t"]);
        other.run(&["CL.THROTTLE", "t", "5", "5", "60"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn creating_a_watched_missing_key_aborts() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["WATCH", "new"]);
        other.run(&["LPUSH", "new", "a"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn reads_and_failed_writes_are_no_change() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SET", "x", "v"]);
        h.run(&["WATCH", "x", "missing"]);
        other.run(&["GET", "x"]);
        other.run(&["INCR", "x"]); // error: not an integer, nothing changes
        other.run(&["DEL", "missing"]);
        other.run(&["SET", "x", "w", "NX"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
    }

    #[test]
    fn a_watched_key_that_expires_aborts_exec() {
        let mut h = Harness::new();
        h.run(&["SET", "x", "foo", "PX", "100"]);
        h.run(&["WATCH", "x"]);
        h.clock.advance(std::time::Duration::from_millis(200));
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn a_key_already_expired_when_watched_can_be_deleted_without_aborting() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SET", "x", "foo", "PX", "100"]);
        h.clock.advance(std::time::Duration::from_millis(200));
        h.run(&["WATCH", "x"]);
        other.run(&["DEL", "x"]);
        other.run(&["FLUSHDB"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
        // ...but giving it a value again is a change.
        h.run(&["SET", "y", "foo", "PX", "100"]);
        h.clock.advance(std::time::Duration::from_millis(200));
        h.run(&["WATCH", "y"]);
        other.run(&["SET", "y", "bar"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn exec_and_discard_unwatch_everything() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["WATCH", "x"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
        other.run(&["SET", "x", "1"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );

        h.run(&["WATCH", "x"]);
        other.run(&["SET", "x", "2"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
        other.run(&["SET", "x", "3"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );

        // DISCARD clears both the watches and a flag already set.
        h.run(&["WATCH", "x"]);
        other.run(&["SET", "x", "4"]);
        h.run(&["MULTI"]);
        assert_eq!(h.run(&["DISCARD"]), Frame::OK);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
        assert!(!h.shared.engine.dbs[0].watchers.active());
    }

    #[test]
    fn unwatch_forgets_the_keys() {
        let mut h = Harness::new();
        let mut other = h.peer();
        assert_eq!(h.run(&["UNWATCH"]), Frame::OK);
        h.run(&["WATCH", "x"]);
        assert_eq!(h.run(&["UNWATCH"]), Frame::OK);
        other.run(&["SET", "x", "1"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
        // UNWATCH inside MULTI is queued and answers OK in the EXEC reply.
        h.run(&["MULTI"]);
        assert_eq!(h.run(&["UNWATCH"]), simple("QUEUED"));
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![Frame::OK]));
    }

    #[test]
    fn flushes_touch_watched_keys_that_held_values_only() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SET", "x", "1"]);
        h.run(&["WATCH", "x"]);
        other.run(&["FLUSHALL"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);

        h.run(&["WATCH", "absent"]);
        other.run(&["SET", "x", "1"]);
        other.run(&["FLUSHDB"]);
        other.run(&["FLUSHALL"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );

        h.run(&["SET", "x", "1"]);
        h.run(&["WATCH", "x"]);
        other.run(&["FLUSHDB"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn watch_remembers_the_database_of_a_key() {
        let mut h = Harness::new();
        let mut other = h.peer();
        h.run(&["SELECT", "3"]);
        h.run(&["SET", "x", "30"]);
        h.run(&["WATCH", "x"]);
        h.run(&["SELECT", "1"]);
        h.run(&["SET", "x", "10"]); // same name, other database
        h.run(&["SELECT", "3"]);
        assert_eq!(
            exec_ok(&mut h, &["PING"]),
            Frame::Array(vec![simple("PONG")])
        );
        h.run(&["WATCH", "x"]);
        other.run(&["SELECT", "3"]);
        other.run(&["INCR", "x"]);
        assert_eq!(exec_ok(&mut h, &["PING"]), Frame::NullArray);
    }

    #[test]
    fn reset_unwatches_and_client_list_counts_watches() {
        let mut h = Harness::new();
        h.run(&["WATCH", "a", "b", "a"]);
        let Frame::Verbatim(_, line) = h.run(&["CLIENT", "INFO"]) else {
            panic!("CLIENT INFO answers a verbatim string")
        };
        assert!(String::from_utf8_lossy(&line).contains(" watch=2 "));
        h.run(&["RESET"]);
        assert!(!h.shared.engine.dbs[0].watchers.active());
    }
}
