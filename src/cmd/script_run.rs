//! Running a script or function: under the script token and the shard locks, with each
//! `redis.call` checked the way Redis's `scriptCall` does before it goes to the command's
//! ordinary handler; the busy gate connections consult while a script runs; and the script
//! token a connection keeps across a pipelined batch.
//!
//! Atomicity. A script holds the script token (see [`crate::script`]) and, outside EXEC, the
//! shards of its declared keys, taken together in shard order; every `redis.call` runs under
//! them with the script's one `now`. A call that reaches a key whose shard is not held:
//! - before the script wrote anything: the run is abandoned (nothing it did is visible) and
//!   the script runs again holding every shard of the database; the script is remembered as
//!   one that needs the whole database;
//! - after a write: the missing shard is locked on the spot, blocking when its index is above
//!   every shard held (ordered acquisition cannot deadlock), otherwise with a bounded wait,
//!   failing the call with an error if it expires (only possible when another client holds
//!   that shard while waiting for one of ours).
//!
//! A script's first run after it is loaded holds the whole database; later runs hold only the
//! declared keys once a run showed that the script keeps to them. Inside EXEC, scripts use the
//! locks the transaction holds (all shards: these commands have movable keys), and EXEC takes
//! the script token before its shard locks. Nothing ever waits for the token while holding a
//! shard, so the lock order (token, then shards in index order) is total.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::flags::*;
use super::multi::keys_of;
use super::{lookup, lookup_sub, CommandSpec, Ctx, Session, Shared};
use crate::error::CommandError;
use crate::protocol::{Frame, RespVersion};
use crate::script::engine::Target;
use crate::script::known;
use crate::script::{CallOutcome, RunOutcome, Running, ScriptFlags, ScriptsGuard};
use crate::store::MultiGuard;

/// The reply to a script that is not in the cache.
pub(super) const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// An error line with its own code (`NOSCRIPT`, `BUSY`, a script's error).
pub(super) fn err(text: String) -> CommandError {
    CommandError::Coded(text)
}

/// How long a script that already wrote waits for an undeclared key's shard held out of
/// order before the call fails (see the module docs).
const ESCALATION_WAIT: Duration = Duration::from_millis(200);

/// True if `req` will take the script token to run Lua: `EVAL`, `FCALL` and their `_RO`
/// forms, and `EVALSHA` of anything but a recognised library script (which runs natively
/// without the token). A connection keeps the token across the rest of its pipelined batch
/// once such a request comes (see `server::connection::run_batch`), so a pipeline of scripts
/// takes it once instead of once per script.
pub fn takes_token(req: &[Bytes]) -> bool {
    let name = &req[0];
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("evalsha") || is("evalsha_ro") {
        return req.len() < 2 || known::find(&req[1]).is_none();
    }
    is("eval") || is("eval_ro") || is("fcall") || is("fcall_ro")
}

/// True if `req` runs Lua or takes the script token, so that a connection must run it off
/// the runtime's worker threads (see `server::connection`): every scripting command except
/// the `allow_busy` ones (`SCRIPT KILL`, `FUNCTION KILL`, `FUNCTION STATS`) and `EVALSHA` of a
/// recognised library script (answered natively without the token), and an `EXEC` whose queue
/// holds scripting commands. A worker thread therefore never waits for the token nor runs a
/// script, and is always free to answer `BUSY` and serve `SCRIPT KILL`, whatever the number
/// of workers.
pub fn runs_lua(session: &mut Session, req: &[Bytes]) -> bool {
    let Some(spec) = super::lookup_for(session, &req[0]) else {
        return false;
    };
    if let Some(queue) = &session.multi {
        return spec.name == "EXEC" && queue_runs_lua(queue);
    }
    if spec.group != "scripting" {
        return false;
    }
    if SCRIPT_RUNNERS.contains(&spec.name) {
        return takes_token(req);
    }
    let sub = (!spec.subcommands.is_empty() && req.len() >= 2)
        .then(|| lookup_sub(spec, &req[1]))
        .flatten();
    !sub.is_some_and(|s| s.has(ALLOW_BUSY))
}

/// True if a transaction's queue holds a scripting command (its `EXEC` takes the script
/// token, and holds the server in the running state, before its shard locks).
pub(super) fn queue_runs_lua(queue: &[Vec<Bytes>]) -> bool {
    queue
        .iter()
        .filter_map(|req| lookup(&req[0]))
        .any(|spec| spec.group == "scripting")
}

/// Takes the script token for the rest of a batch (see [`takes_token`]), or `None` if a
/// busy script holds it (the request then gets its `BUSY` reply from its own handler).
/// Blocking here measured better than waiting asynchronously for a batch to let it go: the
/// wake-up of a waiting connection costs about what the wait saves.
pub fn batch_token(shared: &Shared) -> Option<ScriptsGuard<'_>> {
    shared.scripts.lock_unless_busy().ok()
}

/// Takes the script token to run a script, or the `BUSY` error if the running script passed
/// the busy threshold (see `Scripts::lock_unless_busy`).
pub(super) fn script_token(shared: &Shared) -> Result<ScriptsGuard<'_>, CommandError> {
    shared
        .scripts
        .lock_unless_busy()
        .map_err(|busy| CommandError::Coded(busy.into()))
}

/// Per-run state of the `redis.call` front.
struct CallState<'k> {
    read_only: bool,
    wrote: bool,
    declared: &'k [Bytes],
    /// A call named a key outside KEYS (or worked on the whole keyspace).
    undeclared: bool,
}

/// Redis's `scriptPrepareForRun` checks, then runs the script under the locks (see the
/// module docs), restarting it with the whole database locked when it asks to.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_script(
    ctx: &mut Ctx<'_>,
    token: &ScriptsGuard<'_>,
    target: Target<'_>,
    flags: ScriptFlags,
    ro: bool,
    keys: &[Bytes],
    args: &[Bytes],
    name: &str,
    req: &[Bytes],
) -> Result<Frame, CommandError> {
    let compat = flags.has(ScriptFlags::EVAL_COMPAT);
    if !compat && !flags.has(ScriptFlags::NO_WRITES) {
        if let Some(w) = ctx.shared.engine.aof.get() {
            w.check_writable()
                .map_err(|e| CommandError::Coded(e.to_string()))?;
        }
        ctx.shared.repl.check_write()?;
        if ro {
            return Err(CommandError::other(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
    }
    let read_only = ro || (!compat && flags.has(ScriptFlags::NO_WRITES));
    let is_function = matches!(target, Target::Function(_));
    let threshold = ctx.shared.engine.config.read().busy_reply_threshold;
    let run = ctx.shared.scripts.run_state().clone();
    let owns_locks = ctx.locked.is_none();
    let mut whole_db = match target {
        Target::Script(sha) => token.engine().script(sha).is_none_or(|s| s.whole_db),
        Target::Function(f) => token.engine().function(f).is_none_or(|f| f.whole_db),
    };
    loop {
        let running = is_function.then(|| Running {
            name: name.to_owned(),
            command: req.to_vec(),
            started: Instant::now(),
        });
        // Running before any shard is taken: a command that passed the command gate has
        // finished, and later ones wait instead of blocking on these shards.
        run.begin(running, threshold);
        if owns_locks {
            let db = ctx.db();
            ctx.locked = Some(if whole_db {
                db.lock_all()
            } else {
                db.lock_keys(keys)
            });
        }
        let mut state = CallState {
            read_only,
            wrote: false,
            declared: keys,
            undeclared: false,
        };
        let outcome = token.engine().run(target, keys, args, &mut |call, resp3| {
            call_from_script(ctx, &mut state, &run, call, resp3)
        });
        if owns_locks {
            ctx.locked = None;
        }
        run.end();
        match outcome {
            None => return Err(err(NOSCRIPT_ERR.into())),
            Some(RunOutcome::Restart) => {
                whole_db = true;
                token.engine().set_whole_db(target, true);
            }
            Some(RunOutcome::Reply(frame)) => {
                if owns_locks && whole_db != state.undeclared {
                    token.engine().set_whole_db(target, state.undeclared);
                }
                return Ok(frame);
            }
        }
    }
}

/// One `redis.call` / `redis.pcall`: Redis's `scriptCall` checks, the lock check, then the
/// command's own handler.
fn call_from_script(
    ctx: &mut Ctx<'_>,
    state: &mut CallState<'_>,
    run: &crate::script::RunState,
    req: &[Bytes],
    resp3: bool,
) -> CallOutcome {
    let rejected = |text: &str| CallOutcome::Rejected(text.to_owned());
    let Some(spec) = lookup(&req[0]) else {
        return rejected("Unknown Redis command called from script");
    };
    let mut checked = spec;
    if !spec.subcommands.is_empty() && req.len() >= 2 {
        match lookup_sub(spec, &req[1]) {
            Some(sub) => checked = sub,
            None => return rejected("Unknown Redis command called from script"),
        }
    }
    if !spec.arity_ok(req.len()) || !checked.arity_ok(req.len()) {
        return rejected("Wrong number of args calling Redis command from script");
    }
    if !ctx.session.user.selector.is_unrestricted() {
        if let Err(e) =
            super::permissions::check(ctx, spec, checked, req, crate::acl::LogContext::Lua)
        {
            return CallOutcome::Rejected(super::permissions::script_denial(&e));
        }
    }
    let has = |flag| spec.has(flag) || checked.has(flag);
    // SELECT and FLUSHALL change or clear databases whose shards a script does not hold
    // (both are also refused inside MULTI).
    if has(NOSCRIPT) || has(NO_MULTI) || has(SELECTS_DB) {
        return rejected("This Redis command is not allowed from script");
    }
    let write = has(WRITE);
    if write && state.read_only {
        return rejected("Write commands are not allowed from read-only scripts.");
    }
    if write && !state.wrote {
        if let Some(w) = ctx.shared.engine.aof.get() {
            if let Err(e) = w.check_writable() {
                return CallOutcome::Rejected(format!("-{e}"));
            }
        }
        // A read-only replica, or too few replicas (min-replicas-to-write).
        if let Err(e) = ctx.shared.repl.check_write() {
            return CallOutcome::Rejected(format!("-{e}"));
        }
    }
    if let Some(outcome) = ensure_locked(ctx, state, spec, req) {
        return outcome;
    }
    if write {
        state.wrote = true;
        run.note_write();
    }
    let saved = ctx.session.resp;
    ctx.session.resp = if resp3 {
        RespVersion::Resp3
    } else {
        RespVersion::Resp2
    };
    ctx.session.stats.commands += 1;
    ctx.session.in_script = true;
    let reply = match super::keyspace_events::run_handler(ctx, spec, req) {
        Ok(frame) => frame,
        Err(e) => e.to_frame(),
    };
    ctx.session.in_script = false;
    ctx.session.resp = saved;
    if ctx.shared.monitors.is_active() && super::monitor::shown(checked) {
        super::monitor::feed(ctx, req, super::monitor::Origin::Lua);
    }
    CallOutcome::Reply(reply)
}

/// Makes sure the shards `req` touches are held (see the module docs); `Some` stops the call.
fn ensure_locked(
    ctx: &mut Ctx<'_>,
    state: &mut CallState<'_>,
    spec: &CommandSpec,
    req: &[Bytes],
) -> Option<CallOutcome> {
    let guard = ctx
        .locked
        .as_mut()
        .expect("invariant: a running script holds a MultiGuard");
    let store = guard.store();
    if spec.has(KEYSPACE) || spec.has(MOVABLEKEYS) {
        state.undeclared = true;
        if guard.holds_all() {
            return None;
        }
        if !state.wrote {
            return Some(CallOutcome::Abort);
        }
        for idx in 0..store.shard_count() {
            if let Some(refused) = escalate(guard, idx) {
                return Some(refused);
            }
        }
        return None;
    }
    for key in keys_of(spec, req) {
        if !state.declared.contains(key) {
            state.undeclared = true;
        }
        let idx = store.shard_of(key);
        if guard.holds(idx) {
            continue;
        }
        if !state.wrote {
            return Some(CallOutcome::Abort);
        }
        if let Some(refused) = escalate(guard, idx) {
            return Some(refused);
        }
    }
    None
}

/// Adds shard `idx` to a running script's locks after it wrote.
fn escalate(guard: &mut MultiGuard<'_>, idx: usize) -> Option<CallOutcome> {
    if guard.holds(idx) {
        return None;
    }
    let store = guard.store();
    if guard.max_held().is_none_or(|max| idx > max) {
        // In shard order after everything held: the same order every locker uses.
        guard.add(idx, store.lock_shard(idx));
        return None;
    }
    match store.try_lock_shard_for(idx, ESCALATION_WAIT) {
        Some(g) => {
            guard.add(idx, g);
            None
        }
        None => Some(CallOutcome::Rejected(
            "the script used a key it did not declare in KEYS after writing, and another client holds that key's shard; declare every key in KEYS".into(),
        )),
    }
}

/// What a connection does with a request while another connection's script runs.
#[derive(Debug)]
pub enum BusyGate {
    /// Dispatch it now.
    Run,
    /// Keep it and wait for the script to end or turn busy (it would block on the script's
    /// locks otherwise).
    Wait,
    /// Answer this without running it (`BUSY`).
    Reply(Frame),
}

/// The commands that run a script, and take the script token.
const SCRIPT_RUNNERS: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
];

/// Redis's busy-script rule for one request of `session`, checked only while a script runs
/// (or, for a command that does not run Lua, while the command gate is closed; see
/// `RunState::command_gate`; `Wait` if no script runs by now):
/// before the busy threshold every request waits; after it, commands flagged `allow_busy`
/// (`SCRIPT KILL`, `FUNCTION KILL`, `FUNCTION STATS`, `SHUTDOWN`, ...) run and the others get
/// `BUSY`. Unknown commands and wrong arities run (they touch no key and answer their usual
/// error).
pub fn busy_gate(shared: &Shared, session: &mut Session, req: &[Bytes]) -> BusyGate {
    let run = shared.scripts.run_state();
    if !run.is_running() {
        // The caller found the command gate closed: a script is starting (or just ended).
        return BusyGate::Wait;
    }
    let Some(spec) = lookup(&req[0]) else {
        return BusyGate::Run;
    };
    let mut checked = spec;
    if !spec.subcommands.is_empty() && req.len() >= 2 {
        match lookup_sub(spec, &req[1]) {
            Some(sub) => checked = sub,
            None => return BusyGate::Run,
        }
    }
    if !spec.arity_ok(req.len()) || !checked.arity_ok(req.len()) {
        return BusyGate::Run;
    }
    if !run.is_timed_out() {
        // A script command simply queues for the script token (most scripts take
        // microseconds; waiting asynchronously for each would cost far more), and gives up
        // with BUSY if the running script passes the threshold. Others wait without holding
        // the worker.
        if SCRIPT_RUNNERS.contains(&spec.name) && takes_token(req) {
            return BusyGate::Run;
        }
        return BusyGate::Wait;
    }
    if checked.has(ALLOW_BUSY) {
        if spec.name == "SHUTDOWN" {
            run.force_kill();
        }
        return BusyGate::Run;
    }
    session.stats.commands += 1;
    session.stats.errors += 1;
    let busy = CommandError::Coded(run.busy_reply().into());
    let now = shared.engine.clock.now();
    let e = super::reject(&mut Ctx::new(shared, session, now), spec, busy);
    BusyGate::Reply(e.to_frame())
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;
    use crate::script::engine::{parse_sha, sha1_hex};

    fn eval(h: &mut Harness, script: &str, args: &[&str]) -> Frame {
        let mut words = vec!["EVAL", script];
        words.extend_from_slice(args);
        h.run(&words)
    }

    fn arr(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
    }

    fn sha(body: &str) -> String {
        String::from_utf8(sha1_hex(body.as_bytes()).to_vec()).expect("hex is ASCII")
    }

    /// "-<msg> script: <sha>, on @user_script:<line>."
    fn script_err(msg: &str, body: &str, line: u32) -> Frame {
        err(&format!(
            "{msg} script: {}, on @user_script:{line}.",
            sha(body)
        ))
    }

    #[test]
    fn scripts_run_through_the_command_table_and_keep_expiry() {
        let mut h = Harness::new();
        assert_eq!(
            eval(
                &mut h,
                "return redis.call('set', KEYS[1], ARGV[1], 'EX', 100)",
                &["1", "k", "v"]
            ),
            simple("OK")
        );
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        assert_eq!(
            eval(
                &mut h,
                "return redis.call('CL.THROTTLE', KEYS[1], 1, 1, 1)",
                &["1", "t"]
            ),
            arr(vec![int(0), int(2), int(1), int(-1), int(1)])
        );
        assert_eq!(
            eval(&mut h, "return redis.call('select', 1)", &["0"]),
            script_err(
                "ERR This Redis command is not allowed from script",
                "return redis.call('select', 1)",
                1
            )
        );
    }

    #[test]
    fn undeclared_keys_are_reached_safely() {
        let mut h = Harness::new();
        h.run(&["SET", "other", "1"]);
        // A script that keeps to its keys learns to lock only them...
        let keyed = "return redis.call('incr', KEYS[1])";
        assert_eq!(eval(&mut h, keyed, &["1", "a"]), int(1));
        let whole_db = |h: &Harness, body: &str| {
            let sha = parse_sha(sha(body).as_bytes()).expect("40 hex digits");
            h.shared
                .scripts
                .lock()
                .engine()
                .script(&sha)
                .expect("cached")
                .whole_db
        };
        assert!(!whole_db(&h, keyed));
        // ...one that reads an undeclared key is rerun with the database locked, invisibly.
        let sneaky = "local v = redis.call('get', ARGV[1]) redis.call('incr', KEYS[1]) return v";
        assert_eq!(eval(&mut h, sneaky, &["1", "a", "other"]), bulk("1"));
        assert!(whole_db(&h, sneaky));
        assert_eq!(eval(&mut h, sneaky, &["1", "a", "other"]), bulk("1"));
        assert_eq!(h.run(&["GET", "a"]), bulk("3"));
        // Whole-keyspace commands work inside scripts.
        assert_eq!(
            eval(&mut h, "return #redis.call('keys', '*')", &["0"]),
            int(2)
        );
        assert_eq!(eval(&mut h, "return redis.call('dbsize')", &["0"]), int(2));
    }

    #[test]
    fn a_script_learned_to_keep_to_its_keys_restarts_before_its_first_write() {
        let mut h = Harness::with_config(crate::config::Config {
            shards: 64,
            ..Default::default()
        });
        let body = "if ARGV[1] then redis.call('set', ARGV[1], 'x') end return redis.call('incr', KEYS[1])";
        assert_eq!(eval(&mut h, body, &["1", "n"]), int(1));
        assert_eq!(eval(&mut h, body, &["1", "n"]), int(2));
        // Now the script reaches an undeclared key before writing: it restarts holding the
        // whole database and the client sees one clean run.
        for i in 0..20 {
            let key = format!("undeclared{i}");
            assert_eq!(eval(&mut h, body, &["1", "n", &key]), int(3 + i), "{key}");
            assert_eq!(h.run(&["GET", &key]), bulk("x"));
        }
        // After a write, an undeclared key's shard is added to the locks on the spot.
        let late = "redis.call('incr', KEYS[1]) if ARGV[1] then redis.call('set', ARGV[1], 'y') end return 1";
        let learned = |h: &Harness| {
            let sha = parse_sha(sha(late).as_bytes()).expect("40 hex digits");
            h.shared
                .scripts
                .lock()
                .engine()
                .script(&sha)
                .expect("cached")
                .whole_db
        };
        h.run(&["SET", "m", "0"]);
        for i in 0..20 {
            // Learn that the script keeps to its keys, then make it leave them after a write.
            assert_eq!(eval(&mut h, late, &["1", "m"]), int(1));
            assert!(!learned(&h), "run {i}");
            let key = format!("w{i}");
            assert_eq!(eval(&mut h, late, &["1", "m", &key]), int(1), "{key}");
            assert!(learned(&h), "run {i}");
            assert_eq!(h.run(&["GET", &key]), bulk("y"));
        }
        assert_eq!(h.run(&["GET", "m"]), bulk("40"));
        // A run abandoned for a restart stops even if the script keeps retrying the call.
        let stubborn = "if ARGV[1] then while type(redis.pcall('get', ARGV[1])) == 'table' do end end return redis.call('incr', KEYS[1])";
        assert_eq!(eval(&mut h, stubborn, &["1", "s"]), int(1));
        assert_eq!(eval(&mut h, stubborn, &["1", "s"]), int(2));
        assert_eq!(eval(&mut h, stubborn, &["1", "s", "elsewhere"]), int(3));
        assert_eq!(
            eval(&mut h, "return 1", &["0"]),
            int(1),
            "the hook is back to normal"
        );
    }

    #[test]
    fn scripts_inside_multi_use_the_transaction_locks() {
        let mut h = Harness::new();
        h.run(&["MULTI"]);
        assert_eq!(
            eval(&mut h, "return redis.call('incr', KEYS[1])", &["1", "c"]),
            simple("QUEUED")
        );
        assert_eq!(h.run(&["INCR", "c"]), simple("QUEUED"));
        assert_eq!(
            eval(&mut h, "return redis.call('get', 'c')", &["0"]),
            simple("QUEUED")
        );
        assert_eq!(h.run(&["SCRIPT", "LOAD", "return 1"]), simple("QUEUED"));
        assert_eq!(
            h.run(&["EXEC"]),
            arr(vec![int(1), int(2), bulk("2"), bulk(&sha("return 1"))])
        );
    }

    #[test]
    fn busy_threshold_is_a_config_parameter_with_its_alias() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "GET", "lua-time-limit"]),
            Frame::Map(vec![(bulk("lua-time-limit"), bulk("5000"))])
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "busy-reply-threshold", "250"]),
            Frame::OK
        );
        assert_eq!(h.shared.engine.config.read().busy_reply_threshold, 250);
        assert_eq!(
            h.run(&["CONFIG", "SET", "lua-time-limit", "100"]),
            Frame::OK
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "busy-reply-threshold"]),
            Frame::Map(vec![(bulk("busy-reply-threshold"), bulk("100"))])
        );
    }
}
