//! Transactions: MULTI, EXEC, DISCARD.
//!
//! Between `MULTI` and `EXEC` commands are checked (name, arity, allowed in a transaction) and
//! queued; a refused command makes `EXEC` answer `EXECABORT`, as in Redis. `EXEC` locks every
//! shard the queued commands name (all shards if one of them works on the whole keyspace or has
//! movable keys), runs them in order under those locks and with one `now`, and answers all their
//! replies in one array: no other client can observe or interleave with a transaction.

use bytes::Bytes;

use super::flags::*;
use super::{dispatch, full_name, CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{MultiGuard, Store};

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
            Ok(Frame::OK)
        },
        ..BASE
    },
];

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
        keys.extend(keys_of(spec, req));
    }
    if keys.is_empty() {
        MultiGuard::none(store)
    } else {
        store.lock_keys(&keys)
    }
}

fn exec(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let Some(queue) = ctx.session.multi.take() else {
        return Err(CommandError::other("EXEC without MULTI"));
    };
    if std::mem::take(&mut ctx.session.multi_error) {
        return Err(CommandError::Coded(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    let shared = ctx.shared;
    // Scripting commands take the script token; it comes before shard locks in the lock
    // order, so a transaction that holds any takes it first (see cmd::scripting).
    let _token = queue
        .iter()
        .filter_map(|req| super::lookup(&req[0]))
        .any(|spec| spec.group == "scripting")
        .then(|| shared.scripts.lock());
    // SELECT is refused while queuing, so the whole transaction runs in this database.
    let guard = lock_for(ctx.db(), &queue);
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
}
