//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and
//! FUNCTION, with Redis 7.0's replies and errors; plus what runs a script under the shard
//! locks, the front that checks each `redis.call` the way Redis's `scriptCall` does before it
//! goes to the ordinary handler, the busy gate connections consult while a script runs, and
//! the AOF restore and snapshot of the script cache and libraries.
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
use super::{help_lines, lookup, lookup_sub, CommandSpec, Ctx, Session, Shared, BASE};
use crate::error::CommandError;
use crate::persist::{Record, ScriptsFlushTarget};
use crate::protocol::{Frame, RespVersion};
use crate::script::engine::{parse_sha, Target};
use crate::script::known;
use crate::script::{CallOutcome, RunOutcome, Running, ScriptFlags, ScriptsGuard, Sha};
use crate::store::MultiGuard;

/// How long a script that already wrote waits for an undeclared key's shard held out of
/// order before the call fails (see the module docs).
const ESCALATION_WAIT: Duration = Duration::from_millis(200);

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

const EVAL_ARGS: &str = "script:string numkeys:integer [key:key...] [arg:string...]";
const EVALSHA_ARGS: &str = "sha1:string numkeys:integer [key:key...] [arg:string...]";
const FCALL_ARGS: &str = "function:string numkeys:integer [key:key...] [arg:string...]";

const SCRIPT_FLAGS: u32 = NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS;

/// The keys of a script-running command (`EVAL`, `FCALL`, ...): `numkeys` at index 2, the keys
/// after it (none when the count is not a valid number of arguments), for `COMMAND GETKEYS`
/// and key specs.
pub fn script_keys(req: &[Bytes]) -> &[Bytes] {
    let Some(n) = req.get(2).and_then(|n| super::args::parse_i64(n)) else {
        return &[];
    };
    match usize::try_from(n) {
        Ok(n) if n <= req.len() - 3 => &req[3..3 + n],
        _ => &[],
    }
}

/// Scripting commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "EVAL",
        arity: -3,
        flags: SCRIPT_FLAGS,
        group: "scripting",
        summary: "Executes a server-side Lua script.",
        since: "2.6.0",
        complexity: "Depends on the script that is executed.",
        args: EVAL_ARGS,
        handler: |ctx, req| eval(ctx, req, false, false),
        ..BASE
    },
    CommandSpec {
        name: "EVALSHA",
        arity: -3,
        flags: SCRIPT_FLAGS,
        group: "scripting",
        summary: "Executes a server-side Lua script by SHA1 digest.",
        since: "2.6.0",
        complexity: "Depends on the script that is executed.",
        args: EVALSHA_ARGS,
        handler: |ctx, req| eval(ctx, req, true, false),
        ..BASE
    },
    CommandSpec {
        name: "EVAL_RO",
        arity: -3,
        flags: READONLY | SCRIPT_FLAGS,
        group: "scripting",
        summary: "Executes a read-only server-side Lua script.",
        since: "7.0.0",
        complexity: "Depends on the script that is executed.",
        args: EVAL_ARGS,
        handler: |ctx, req| eval(ctx, req, false, true),
        ..BASE
    },
    CommandSpec {
        name: "EVALSHA_RO",
        arity: -3,
        flags: READONLY | SCRIPT_FLAGS,
        group: "scripting",
        summary: "Executes a read-only server-side Lua script by SHA1 digest.",
        since: "7.0.0",
        complexity: "Depends on the script that is executed.",
        args: EVALSHA_ARGS,
        handler: |ctx, req| eval(ctx, req, true, true),
        ..BASE
    },
    CommandSpec {
        name: "FCALL",
        arity: -3,
        flags: SCRIPT_FLAGS,
        group: "scripting",
        summary: "Invokes a function.",
        since: "7.0.0",
        complexity: "Depends on the function that is executed.",
        args: FCALL_ARGS,
        handler: |ctx, req| fcall(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "FCALL_RO",
        arity: -3,
        flags: READONLY | SCRIPT_FLAGS,
        group: "scripting",
        summary: "Invokes a read-only function.",
        since: "7.0.0",
        complexity: "Depends on the function that is executed.",
        args: FCALL_ARGS,
        handler: |ctx, req| fcall(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "SCRIPT",
        arity: -2,
        group: "scripting",
        summary: "A container for Lua scripts management commands.",
        since: "2.6.0",
        complexity: "Depends on subcommand.",
        subcommands: SCRIPT_SUBCOMMANDS,
        handler: super::dispatch_sub,
        ..BASE
    },
    CommandSpec {
        name: "FUNCTION",
        arity: -2,
        group: "scripting",
        summary: "A container for function commands.",
        since: "7.0.0",
        complexity: "Depends on subcommand.",
        subcommands: FUNCTION_SUBCOMMANDS,
        handler: super::dispatch_sub,
        ..BASE
    },
];

const SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "HELP",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns helpful text about the different subcommands.",
        since: "5.0.0",
        handler: |_, _| Ok(help_lines(SCRIPT_HELP)),
        ..BASE
    },
    CommandSpec {
        name: "LOAD",
        arity: 3,
        flags: NOSCRIPT | STALE,
        summary: "Loads a server-side Lua script to the script cache.",
        since: "2.6.0",
        complexity: "O(N) with N being the length in bytes of the script body.",
        args: "script:string",
        handler: script_load,
        ..BASE
    },
    CommandSpec {
        name: "EXISTS",
        arity: -3,
        flags: NOSCRIPT,
        summary: "Determines whether server-side Lua scripts exist in the script cache.",
        since: "2.6.0",
        complexity: "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
        args: "sha1:string...",
        handler: script_exists,
        ..BASE
    },
    CommandSpec {
        name: "FLUSH",
        arity: -2,
        flags: NOSCRIPT,
        summary: "Removes all server-side Lua scripts from the script cache.",
        since: "2.6.0",
        complexity: "O(N) with N being the number of scripts in cache",
        args: "[ASYNC|SYNC]",
        handler: script_flush,
        ..BASE
    },
    CommandSpec {
        name: "KILL",
        arity: 2,
        flags: NOSCRIPT | ALLOW_BUSY,
        summary: "Terminates a server-side Lua script during execution.",
        since: "2.6.0",
        handler: |ctx, _| kill(ctx, false),
        ..BASE
    },
    CommandSpec {
        name: "DEBUG",
        arity: 3,
        flags: NOSCRIPT,
        summary: "Sets the debug mode of server-side Lua scripts (only NO is supported).",
        since: "3.2.0",
        args: "(YES|SYNC|NO)",
        handler: script_debug,
        ..BASE
    },
];

const FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "HELP",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns helpful text about the different subcommands.",
        since: "7.0.0",
        handler: |_, _| Ok(help_lines(FUNCTION_HELP)),
        ..BASE
    },
    CommandSpec {
        name: "LOAD",
        arity: -3,
        flags: WRITE | DENYOOM | NOSCRIPT,
        summary: "Creates a library.",
        since: "7.0.0",
        complexity: "O(1) (considering compilation time is redundant)",
        args: "[REPLACE] function-code:string",
        handler: function_load,
        ..BASE
    },
    CommandSpec {
        name: "LIST",
        arity: -2,
        flags: NOSCRIPT,
        summary: "Returns information about all libraries.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of functions",
        args: "[LIBRARYNAME library-name-pattern:string] [WITHCODE]",
        handler: function_list,
        ..BASE
    },
    CommandSpec {
        name: "DELETE",
        arity: 3,
        flags: WRITE | NOSCRIPT,
        summary: "Deletes a library and its functions.",
        since: "7.0.0",
        args: "library-name:string",
        handler: function_delete,
        ..BASE
    },
    CommandSpec {
        name: "FLUSH",
        arity: -2,
        flags: WRITE | NOSCRIPT,
        summary: "Deletes all libraries and functions.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of functions deleted",
        args: "[ASYNC|SYNC]",
        handler: function_flush,
        ..BASE
    },
    CommandSpec {
        name: "KILL",
        arity: 2,
        flags: NOSCRIPT | ALLOW_BUSY,
        summary: "Terminates a function during execution.",
        since: "7.0.0",
        handler: |ctx, _| kill(ctx, true),
        ..BASE
    },
    CommandSpec {
        name: "STATS",
        arity: 2,
        flags: NOSCRIPT | ALLOW_BUSY,
        summary: "Returns information about a function during execution.",
        since: "7.0.0",
        handler: function_stats,
        ..BASE
    },
];

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "HELP",
    "    Prints this help.",
];

fn err(text: String) -> CommandError {
    CommandError::Coded(text)
}

/// Appends `record` to the AOF, if it is on; the reply then waits for it like a write's.
fn journal(ctx: &mut Ctx<'_>, record: Record) {
    if let Some(w) = ctx.shared.engine.aof.get() {
        ctx.session.aof_seq = Some(w.append(&record));
        ctx.session.stats.dirty += 1;
    }
}

/// The `numkeys` argument: keys and arguments, with Redis's errors.
fn split_keys(
    req: &[Bytes],
    bad_number: CommandError,
) -> Result<(&[Bytes], &[Bytes]), CommandError> {
    let numkeys = super::args::parse_i64(&req[2]).ok_or(bad_number)?;
    let available = (req.len() - 3) as i64;
    if numkeys > available {
        return Err(CommandError::other(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CommandError::other("Number of keys can't be negative"));
    }
    Ok(req[3..].split_at(numkeys as usize))
}

fn eval(ctx: &mut Ctx<'_>, req: &[Bytes], by_sha: bool, ro: bool) -> Result<Frame, CommandError> {
    if by_sha && req[1].len() != 40 {
        return Err(err(NOSCRIPT_ERR.into()));
    }
    let (keys, args) = split_keys(req, CommandError::NotAnInteger)?;
    let shared = ctx.shared;
    // EVALSHA of a recognised library script that is loaded runs natively without touching
    // the script token at all (see the fast path below).
    if by_sha {
        if let (Some(known), Some(sha)) = (known::find(&req[1]), parse_sha(&req[1])) {
            if seen_loaded(ctx, &sha) {
                if let Some(reply) = super::fastpath::run(ctx, known, keys, args, ro) {
                    return Ok(reply);
                }
            }
        }
    }
    let token = script_token(shared)?;
    let (sha, flags) = {
        let mut engine = token.engine();
        let sha = if by_sha {
            parse_sha(&req[1])
                .filter(|s| engine.script(s).is_some())
                .ok_or_else(|| err(NOSCRIPT_ERR.into()))?
        } else {
            let (sha, new) = engine.load_script(&req[1]).map_err(err)?;
            if new {
                journal(
                    ctx,
                    Record::Script {
                        body: req[1].clone(),
                    },
                );
            }
            sha
        };
        let flags = engine
            .script(&sha)
            .expect("invariant: the script was found or loaded just above")
            .flags;
        (sha, flags)
    };
    // The fast path (issue 6) for EVAL of a recognised body (EVALSHA tried it above, before
    // taking the token): the script runs as native code
    // under its keys' shard locks only. The script token is released first: the native code
    // needs no VM, and never waiting for the token while holding shards keeps the lock order
    // (token, then shards) intact. It answers `None` when the Lua body must decide (odd
    // arguments, wrong types): then the script runs in Lua, if it is still loaded (a
    // `SCRIPT FLUSH` in between makes this call come after it: `NOSCRIPT`).
    let native = if by_sha { None } else { known::find(&sha) };
    let token = match native {
        Some(known) => {
            drop(token);
            if let Some(reply) = super::fastpath::run(ctx, known, keys, args, ro) {
                return Ok(reply);
            }
            let token = script_token(shared)?;
            if token.engine().script(&sha).is_none() {
                return Err(err(NOSCRIPT_ERR.into()));
            }
            token
        }
        None => token,
    };
    let name = std::str::from_utf8(&sha).unwrap_or_default();
    run_script(
        ctx,
        &token,
        Target::Script(&sha),
        flags,
        ro,
        keys,
        args,
        name,
        req,
    )
}

/// Whether script `sha` is loaded, remembered per connection until the next flush of the
/// script cache: the shared set's read lock, taken by every call on two worker threads, kept
/// its cache line moving between the cores.
fn seen_loaded(ctx: &mut Ctx<'_>, sha: &Sha) -> bool {
    let run = ctx.shared.scripts.run_state();
    let flushes = run.flushes();
    let seen = &mut ctx.session.loaded_scripts;
    if seen.iter().any(|(s, f)| s == sha && *f == flushes) {
        return true;
    }
    if !run.is_loaded(sha) {
        return false;
    }
    seen.retain(|(_, f)| *f == flushes);
    if seen.len() >= SEEN_LOADED_MAX {
        seen.remove(0);
    }
    seen.push((*sha, flushes));
    true
}

/// How many loaded scripts a connection remembers (libraries send one to three).
const SEEN_LOADED_MAX: usize = 8;

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

/// Takes the script token for the rest of a batch (see [`takes_token`]), or `None` if a
/// busy script holds it (the request then gets its `BUSY` reply from its own handler).
/// Blocking here measured better than waiting asynchronously for a batch to let it go: the
/// wake-up of a waiting connection costs about what the wait saves.
pub fn batch_token(shared: &Shared) -> Option<ScriptsGuard<'_>> {
    shared.scripts.lock_unless_busy().ok()
}

/// Takes the script token to run a script, or the `BUSY` error if the running script passed
/// the busy threshold (see `Scripts::lock_unless_busy`).
fn script_token(shared: &Shared) -> Result<ScriptsGuard<'_>, CommandError> {
    shared
        .scripts
        .lock_unless_busy()
        .map_err(|busy| CommandError::Coded(busy.into()))
}

fn fcall(ctx: &mut Ctx<'_>, req: &[Bytes], ro: bool) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let token = script_token(shared)?;
    let name = String::from_utf8_lossy(&req[1]).into_owned();
    let (fname, flags) = match token.engine().function(&name) {
        Some(f) => (f.name.clone(), f.flags),
        None => return Err(CommandError::other("Function not found")),
    };
    let (keys, args) = split_keys(req, CommandError::other("Bad number of keys provided"))?;
    run_script(
        ctx,
        &token,
        Target::Function(&fname),
        flags,
        ro,
        keys,
        args,
        &fname,
        req,
    )
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
fn run_script(
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
        let running = is_function.then(|| Running {
            name: name.to_owned(),
            command: req.to_vec(),
            started: Instant::now(),
        });
        run.begin(running, threshold);
        let outcome = token.engine().run(target, keys, args, &mut |call, resp3| {
            call_from_script(ctx, &mut state, &run, call, resp3)
        });
        run.end();
        if owns_locks {
            ctx.locked = None;
        }
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
    let reply = match (spec.handler)(ctx, req) {
        Ok(frame) => frame,
        Err(e) => e.to_frame(),
    };
    ctx.session.resp = saved;
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

fn script_load(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let token = shared.scripts.lock();
    let (sha, new) = token.engine().load_script(&req[2]).map_err(err)?;
    if new {
        journal(
            ctx,
            Record::Script {
                body: req[2].clone(),
            },
        );
    }
    Ok(Frame::bulk(sha))
}

fn script_exists(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let token = ctx.shared.scripts.lock();
    let engine = token.existing();
    Ok(Frame::Array(
        req[2..]
            .iter()
            .map(|s| {
                let found = engine
                    .as_ref()
                    .zip(parse_sha(s))
                    .is_some_and(|(e, sha)| e.script(&sha).is_some());
                Frame::Integer(i64::from(found))
            })
            .collect(),
    ))
}

fn flush_mode_ok(req: &[Bytes]) -> bool {
    match req.len() {
        2 => true,
        3 => req[2].eq_ignore_ascii_case(b"ASYNC") || req[2].eq_ignore_ascii_case(b"SYNC"),
        _ => false,
    }
}

fn script_flush(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if !flush_mode_ok(req) {
        return Err(CommandError::other(
            "SCRIPT FLUSH only support SYNC|ASYNC option",
        ));
    }
    let shared = ctx.shared;
    let token = shared.scripts.lock();
    if let Some(mut engine) = token.existing() {
        engine.flush_scripts();
    }
    journal(
        ctx,
        Record::ScriptsFlush {
            target: ScriptsFlushTarget::Scripts,
        },
    );
    Ok(Frame::OK)
}

fn script_debug(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mode = &req[2];
    if mode.eq_ignore_ascii_case(b"NO") {
        Ok(Frame::OK)
    } else if mode.eq_ignore_ascii_case(b"YES") || mode.eq_ignore_ascii_case(b"SYNC") {
        Err(CommandError::other(
            "limitkv does not support the Lua debugger; SCRIPT DEBUG only accepts NO",
        ))
    } else {
        Err(CommandError::other("Use SCRIPT DEBUG YES/SYNC/NO"))
    }
}

fn kill(ctx: &mut Ctx<'_>, function: bool) -> Result<Frame, CommandError> {
    ctx.shared
        .scripts
        .run_state()
        .request_kill(function)
        .map(|()| Frame::OK)
        .map_err(|e| err(e.into()))
}

fn function_load(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut replace = false;
    let mut pos = 2;
    while pos < req.len() - 1 {
        let arg = &req[pos];
        pos += 1;
        if arg.eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
            continue;
        }
        return Err(CommandError::other(format!(
            "Unknown option given: {}",
            String::from_utf8_lossy(arg)
        )));
    }
    let code = &req[pos];
    let shared = ctx.shared;
    let token = shared.scripts.lock();
    let name = {
        let mut engine = token.engine();
        let name = engine.load_library(code, replace).map_err(err)?;
        shared
            .scripts
            .set_function_counts(engine.library_count(), engine.function_count());
        name
    };
    journal(ctx, Record::FunctionLibrary { code: code.clone() });
    Ok(Frame::bulk_string(name))
}

fn function_list(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 2;
    while i < req.len() {
        let arg = &req[i];
        if !with_code && arg.eq_ignore_ascii_case(b"WITHCODE") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"LIBRARYNAME") {
            if i >= req.len() - 1 {
                return Err(CommandError::other("library name argument was not given"));
            }
            i += 1;
            pattern = Some(&req[i]);
        } else {
            return Err(CommandError::other(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(arg)
            )));
        }
        i += 1;
    }
    let token = ctx.shared.scripts.lock();
    let Some(engine) = token.existing() else {
        return Ok(Frame::Array(Vec::new()));
    };
    let pattern = pattern.map(|p| p.to_ascii_lowercase());
    let libs = engine
        .libraries()
        .filter(|lib| {
            pattern.as_ref().is_none_or(|p| {
                super::keys::glob_match(p, lib.name.to_ascii_lowercase().as_bytes())
            })
        })
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::bulk(&f.name)),
                        (
                            Frame::bulk("description"),
                            f.description.as_ref().map_or(Frame::Null, Frame::bulk),
                        ),
                        (
                            Frame::bulk("flags"),
                            Frame::Set(
                                f.flags
                                    .names()
                                    .map(|n| Frame::Simple(Bytes::from_static(n.as_bytes())))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect();
            let mut m = vec![
                (Frame::bulk("library_name"), Frame::bulk(&lib.name)),
                (Frame::bulk("engine"), Frame::bulk("LUA")),
                (Frame::bulk("functions"), Frame::Array(functions)),
            ];
            if with_code {
                m.push((Frame::bulk("library_code"), Frame::Bulk(lib.code.clone())));
            }
            Frame::Map(m)
        })
        .collect();
    Ok(Frame::Array(libs))
}

fn function_delete(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let name = String::from_utf8_lossy(&req[2]).into_owned();
    let shared = ctx.shared;
    let token = shared.scripts.lock();
    {
        let Some(mut engine) = token.existing() else {
            return Err(CommandError::other("Library not found"));
        };
        if !engine.delete_library(&name) {
            return Err(CommandError::other("Library not found"));
        }
        shared
            .scripts
            .set_function_counts(engine.library_count(), engine.function_count());
    }
    journal(
        ctx,
        Record::FunctionDelete {
            name: req[2].clone(),
        },
    );
    Ok(Frame::OK)
}

fn function_flush(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::other(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(&req[1])
        )));
    }
    if !flush_mode_ok(req) {
        return Err(CommandError::other(
            "FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    let shared = ctx.shared;
    let token = shared.scripts.lock();
    if let Some(mut engine) = token.existing() {
        engine.flush_functions();
    }
    shared.scripts.set_function_counts(0, 0);
    journal(
        ctx,
        Record::ScriptsFlush {
            target: ScriptsFlushTarget::Functions,
        },
    );
    Ok(Frame::OK)
}

fn function_stats(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let run = ctx.shared.scripts.run_state();
    if run.is_running() && !run.is_function() {
        return Err(err(crate::script::BUSY_EVAL.into()));
    }
    let running = match run.current() {
        Some(r) => Frame::Map(vec![
            (Frame::bulk("name"), Frame::bulk(&r.name)),
            (
                Frame::bulk("command"),
                Frame::Array(r.command.iter().cloned().map(Frame::Bulk).collect()),
            ),
            (
                Frame::bulk("duration_ms"),
                Frame::Integer(i64::try_from(r.started.elapsed().as_millis()).unwrap_or(i64::MAX)),
            ),
        ]),
        None => Frame::Null,
    };
    let (libraries, functions) = ctx.shared.scripts.function_counts();
    Ok(Frame::Map(vec![
        (Frame::bulk("running_script"), running),
        (
            Frame::bulk("engines"),
            Frame::Map(vec![(
                Frame::bulk("LUA"),
                Frame::Map(vec![
                    (
                        Frame::bulk("libraries_count"),
                        Frame::Integer(libraries as i64),
                    ),
                    (
                        Frame::bulk("functions_count"),
                        Frame::Integer(functions as i64),
                    ),
                ]),
            )]),
        ),
    ]))
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

/// Redis's busy-script rule for one request of `session`, checked only while a script runs:
/// before the busy threshold every request waits; after it, commands flagged `allow_busy`
/// (`SCRIPT KILL`, `FUNCTION KILL`, `FUNCTION STATS`, `SHUTDOWN`, ...) run and the others get
/// `BUSY`. Unknown commands and wrong arities run (they touch no key and answer their usual
/// error).
pub fn busy_gate(shared: &Shared, session: &mut Session, req: &[Bytes]) -> BusyGate {
    let run = shared.scripts.run_state();
    if !run.is_running() {
        return BusyGate::Run;
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
        if SCRIPT_RUNNERS.contains(&spec.name) {
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

/// Restores one script or function record at startup (AOF replay). A record that no longer
/// loads (a script this build cannot compile) is logged and skipped.
pub fn restore(shared: &Shared, record: Record) {
    let token = shared.scripts.lock();
    let mut engine = token.engine();
    let result = match record {
        Record::Script { body } => engine.load_script(&body).map(|_| ()),
        Record::FunctionLibrary { code } => engine.load_library(&code, true).map(|_| ()),
        Record::FunctionDelete { name } => {
            engine.delete_library(&String::from_utf8_lossy(&name));
            Ok(())
        }
        Record::ScriptsFlush {
            target: ScriptsFlushTarget::Scripts,
        } => {
            engine.flush_scripts();
            Ok(())
        }
        Record::ScriptsFlush {
            target: ScriptsFlushTarget::Functions,
        } => {
            engine.flush_functions();
            Ok(())
        }
        _ => Ok(()),
    };
    shared
        .scripts
        .set_function_counts(engine.library_count(), engine.function_count());
    if let Err(e) = result {
        tracing::warn!(error = %e, "a script from the AOF does not load; skipped");
    }
}

/// The script cache and libraries as AOF records, for compaction.
pub fn snapshot(shared: &Shared) -> Vec<Record> {
    let token = shared.scripts.lock();
    let Some(engine) = token.existing() else {
        return Vec::new();
    };
    let mut out: Vec<Record> = engine
        .script_bodies()
        .into_iter()
        .map(|body| Record::Script { body })
        .collect();
    out.extend(engine.libraries().map(|lib| Record::FunctionLibrary {
        code: lib.code.clone(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::cmd::testing::*;
    use crate::persist::{record, FsyncPolicy, MemSink, Record, ScriptsFlushTarget, Writer};
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
    fn lua_values_convert_to_replies_like_redis() {
        let mut h = Harness::new();
        let cases: Vec<(&str, Frame)> = vec![
            ("return 1", int(1)),
            ("return 3.99", int(3)),
            ("return -3.99", int(-3)),
            ("return 1/0", int(i64::MIN)),
            ("return 0/0", int(i64::MIN)),
            ("return 'x'", bulk("x")),
            ("return true", int(1)),
            ("return false", Frame::Null),
            ("return nil", Frame::Null),
            (
                "return {1, 'a', {2}}",
                arr(vec![int(1), bulk("a"), arr(vec![int(2)])]),
            ),
            ("return {1, 2, nil, 4}", arr(vec![int(1), int(2)])),
            ("return {ok = 'fine'}", simple("fine")),
            ("return {ok = 'a\\r\\nb'}", simple("a  b")),
            ("return {err = 'My Error'}", err("My Error")),
            ("return {err = '-xx yy'}", err("-xx yy")),
            ("return {err = 1}", arr(vec![])),
            ("return {ok = 'a', 1}", simple("a")),
            ("return redis.error_reply('xx')", err("ERR xx")),
            ("return redis.error_reply('-CODE msg')", err("CODE msg")),
            ("return redis.status_reply('PONG')", simple("PONG")),
            ("return {double = 3.5}", Frame::Double(3.5)),
            (
                "return {big_number = '123'}",
                Frame::BigNumber(Bytes::from_static(b"123")),
            ),
            (
                "return {map = {a = 1}}",
                Frame::Map(vec![(bulk("a"), int(1))]),
            ),
            ("return {set = {a = true}}", Frame::Set(vec![bulk("a")])),
            ("redis.setresp(3) return true", Frame::Boolean(true)),
            ("redis.setresp(3) return false", Frame::Boolean(false)),
        ];
        for (script, want) in cases {
            assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
        }
    }

    #[test]
    fn replies_convert_to_lua_values_like_redis() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        h.run(&["HSET", "h", "a", "1"]);
        h.run(&["SADD", "set", "m"]);
        h.run(&["ZADD", "z", "1.5", "m"]);
        let cases: Vec<(&str, Frame)> = vec![
            // RESP2: integer -> number, bulk -> string, nil -> false, status -> {ok}, error -> {err}.
            ("return type(redis.call('incr', 'n'))", bulk("number")),
            ("return redis.call('get', 's')", bulk("v")),
            ("return tostring(redis.call('get', 'nokey'))", bulk("false")),
            ("return redis.call('set', 'x', 'y').ok", bulk("OK")),
            ("return redis.pcall('get', 'h').err", bulk(WRONGTYPE)),
            (
                "return redis.call('hgetall', 'h')",
                arr(vec![bulk("a"), bulk("1")]),
            ),
            ("return redis.call('zscore', 'z', 'm')", bulk("1.5")),
            // RESP3: map, set, double, null.
            (
                "redis.setresp(3) local r = redis.call('hgetall', 'h') return r.map.a",
                bulk("1"),
            ),
            (
                "redis.setresp(3) return tostring(redis.call('smembers', 'set').set.m)",
                bulk("true"),
            ),
            (
                "redis.setresp(3) return tostring(redis.call('zscore', 'z', 'm').double)",
                bulk("1.5"),
            ),
            (
                "redis.setresp(3) return type(redis.call('get', 'nokey'))",
                bulk("nil"),
            ),
            // A limiter reply (held without a frame per field) converts as the map it is: a
            // flat field/value array in RESP2, a {map=...} table in RESP3.
            (
                "return redis.call('cost.incrby', 'budget', '0.25', 'CAP', '1', 'WINDOW', '1m')",
                arr(vec![
                    bulk("allowed"),
                    Frame::Integer(1),
                    bulk("limit"),
                    bulk("1"),
                    bulk("remaining"),
                    bulk("0.75"),
                    bulk("retry_after_ms"),
                    Frame::Integer(-1),
                    bulk("reset_after_ms"),
                    Frame::Integer(120_000),
                    bulk("spent"),
                    bulk("0.25"),
                    bulk("recorded"),
                    bulk("0.25"),
                ]),
            ),
            (
                "redis.setresp(3) local r = redis.call('breaker.allow', 'b') \
                 return {tostring(r.map.allowed), r.map.state, r.map.failures}",
                arr(vec![bulk("true"), bulk("closed"), Frame::Integer(0)]),
            ),
            // Arguments: numbers are formatted with %.17g.
            (
                "redis.call('set', 'f', 0.1) return redis.call('get', 'f')",
                bulk("0.10000000000000001"),
            ),
            (
                "redis.call('set', 'f', 1e20) return redis.call('get', 'f')",
                bulk("1e+20"),
            ),
            (
                "redis.call('set', 'f', 42) return redis.call('get', 'f')",
                bulk("42"),
            ),
        ];
        for (script, want) in cases {
            assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
        }
    }

    #[test]
    fn keys_and_argv_are_split_by_numkeys() {
        let mut h = Harness::new();
        assert_eq!(
            eval(
                &mut h,
                "return {KEYS[1], KEYS[2], ARGV[1], #ARGV}",
                &["2", "a", "b", "c"]
            ),
            arr(vec![bulk("a"), bulk("b"), bulk("c"), int(1)])
        );
        assert_eq!(
            eval(&mut h, "return 1", &["2", "a"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            eval(&mut h, "return 1", &["-1"]),
            err("ERR Number of keys can't be negative")
        );
        assert_eq!(
            eval(&mut h, "return 1", &["x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn errors_carry_the_script_and_line_like_redis() {
        let mut h = Harness::new();
        let cases: Vec<(&str, &str, u32)> = vec![
            ("error('boom')", "ERR user_script:1: boom", 1),
            ("error({err='My Error'})", "My Error", 1),
            ("error()", "ERR nil", 1),
            ("\nerror(123)", "ERR user_script:2: 123", 2),
            (
                "return redis.call('nosuch')",
                "ERR Unknown Redis command called from script",
                1,
            ),
            (
                "return redis.call('get')",
                "ERR Wrong number of args calling Redis command from script",
                1,
            ),
            (
                "return redis.call('set', 'x', {})",
                "ERR Lua redis lib command arguments must be strings or integers",
                1,
            ),
            (
                "return redis.call()",
                "ERR Please specify at least one argument for this redis lib call",
                1,
            ),
            (
                "return redis.call('multi')",
                "ERR This Redis command is not allowed from script",
                1,
            ),
            (
                "return redis.call('eval', 'return 1', '0')",
                "ERR This Redis command is not allowed from script",
                1,
            ),
            (
                "return redis.setresp(4)",
                "ERR RESP version must be 2 or 3.",
                1,
            ),
            ("return redis.sha1hex()", "ERR wrong number of arguments", 1),
            (
                "return cjson.encode(0/0)",
                "ERR user_script:1: Cannot serialise number: must not be NaN or Inf",
                1,
            ),
            (
                "return bit.band()",
                "ERR user_script:1: bad argument #1 to 'band' (number expected, got no value)",
                1,
            ),
        ];
        for (script, msg, line) in cases {
            assert_eq!(
                eval(&mut h, script, &["0"]),
                script_err(msg, script, line),
                "{script}"
            );
        }
        h.run(&["HSET", "h", "a", "1"]);
        let script = "return redis.call('get', 'h')";
        assert_eq!(
            eval(&mut h, script, &["0"]),
            script_err(WRONGTYPE, script, 1)
        );
    }

    #[test]
    fn pcall_returns_errors_instead_of_raising() {
        let mut h = Harness::new();
        assert_eq!(
            eval(&mut h, "return redis.pcall('get')", &["0"]),
            err("ERR Wrong number of args calling Redis command from script")
        );
        assert_eq!(
            eval(
                &mut h,
                "local r = redis.pcall('nosuch') return {r.err, tostring(r.ignore_error_stats_update)}",
                &["0"]
            ),
            arr(vec![
                bulk("ERR Unknown Redis command called from script"),
                bulk("true")
            ])
        );
        // Lua's pcall unwraps error tables into their message (Redis 7).
        assert_eq!(
            eval(
                &mut h,
                "local ok, e = pcall(function() redis.call('nosuch') end) return {tostring(ok), e}",
                &["0"]
            ),
            arr(vec![
                bulk("false"),
                bulk("ERR Unknown Redis command called from script")
            ])
        );
        assert_eq!(
            eval(
                &mut h,
                "local ok, e = pcall(error, {err='X y'}) return e",
                &["0"]
            ),
            bulk("X y")
        );
        assert_eq!(
            eval(
                &mut h,
                "local ok, e = pcall(cjson.decode, '[1,') return e",
                &["0"]
            ),
            bulk("Expected value but found T_END at character 4")
        );
    }

    #[test]
    fn the_sandbox_has_no_os_io_or_writable_globals() {
        let mut h = Harness::new();
        for name in [
            "os", "io", "debug", "package", "require", "dofile", "loadfile", "print", "setfenv",
            "getfenv", "newproxy", "module",
        ] {
            let script = format!("return type({name})");
            assert_eq!(
                eval(&mut h, &script, &["0"]),
                script_err(
                    &format!("ERR user_script:1: Script attempted to access nonexistent global variable '{name}'"),
                    &script,
                    1
                ),
                "{name}"
            );
        }
        for (script, msg) in [
            (
                "a = 1",
                "ERR user_script:1: Attempt to modify a readonly table",
            ),
            (
                "redis.call = 1",
                "ERR user_script:1: Attempt to modify a readonly table",
            ),
            (
                "string.x = 1",
                "ERR user_script:1: Attempt to modify a readonly table",
            ),
            (
                "_G.x = 1",
                "ERR user_script:1: Attempt to modify a readonly table",
            ),
            (
                "rawset(_G, 'a', 1)",
                "ERR Attempt to modify a readonly table",
            ),
            (
                "setmetatable(_G, nil)",
                "ERR Attempt to modify a readonly table",
            ),
            (
                "getmetatable('').__index.upper = 1",
                "ERR user_script:1: Attempt to modify a readonly table",
            ),
        ] {
            assert_eq!(
                eval(&mut h, script, &["0"]),
                script_err(msg, script, 1),
                "{script}"
            );
        }
        // Chunks from loadstring run in the same read-only environment; bytecode is refused.
        let script = "local f = loadstring('x = 1') f()";
        assert_eq!(
            eval(&mut h, script, &["0"]),
            err(&format!(
                "ERR [string \"x = 1\"]:1: Attempt to modify a readonly table script: {}, on x = 1:1.",
                sha(script)
            ))
        );
        assert_eq!(
            eval(
                &mut h,
                "return loadstring(string.dump(function() return 1 end))",
                &["0"]
            ),
            Frame::Null
        );
        // Nothing a script does leaks into the next one.
        assert_eq!(
            eval(&mut h, "return type(rawget(_G, 'a'))", &["0"]),
            bulk("nil")
        );
        for (script, want) in [
            ("return type(string.rep)", bulk("function")),
            ("return ('ab'):upper()", bulk("AB")),
            ("return getmetatable('').__index == string", int(1)),
            ("return table.concat({1, 2}, ',')", bulk("1,2")),
            ("return math.floor(2.5)", int(2)),
            ("return _VERSION", bulk("Lua 5.1")),
            ("return type(coroutine.wrap)", bulk("function")),
        ] {
            assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
        }
    }

    #[test]
    fn a_script_cannot_exhaust_memory() {
        let mut h = Harness::new();
        let body = "return #string.rep('x', 1100000000)";
        let reply = eval(&mut h, body, &["0"]);
        assert_eq!(
            reply,
            err(&format!(
                "ERR Error running script {}, not enough memory",
                sha(body)
            ))
        );
        assert_eq!(
            eval(&mut h, "return #string.rep('x', 1000)", &["0"]),
            int(1000)
        );
    }

    #[test]
    fn redis_api_helpers_behave_like_redis() {
        let mut h = Harness::new();
        for (script, want) in [
            ("return server.call('ping')", simple("PONG")),
            (
                "return server.pcall('nosuch').err",
                bulk("ERR Unknown Redis command called from script"),
            ),
            (
                "return redis.sha1hex('')",
                bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ),
            ("return redis.replicate_commands()", int(1)),
            ("return redis.set_repl(redis.REPL_ALL)", Frame::Null),
            ("return redis.breakpoint()", Frame::Null),
            (
                "return redis.log(redis.LOG_WARNING, 'from', 'a script')",
                Frame::Null,
            ),
            (
                "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
                arr(vec![int(0), int(1), int(2), int(3)]),
            ),
            (
                "return redis.REDIS_VERSION",
                bulk(crate::version::REDIS_COMPAT_VERSION),
            ),
            (
                "return redis.error_reply(1)",
                err("ERR wrong number or type of arguments"),
            ),
            ("return type(redis.register_function)", bulk("nil")),
        ] {
            assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
        }
    }

    #[test]
    fn cjson_round_trips_and_reports_like_lua_cjson() {
        let mut h = Harness::new();
        for (script, want) in [
            (
                "return cjson.encode({1, 2, 'a/b', true, false, cjson.null, 1.5, {}, {a = 1}})",
                bulk(r#"[1,2,"a\/b",true,false,null,1.5,{},{"a":1}]"#),
            ),
            (
                "return cjson.encode({[1] = 1, [3] = 3})",
                bulk("[1,null,3]"),
            ),
            ("return cjson.encode({1, x = 2})", bulk(r#"{"1":1,"x":2}"#)),
            (
                "return cjson.encode(123456789012345)",
                bulk("1.2345678901234e+14"),
            ),
            (
                "return cjson.encode(cjson.decode('{\"a\":[1,{}],\"b\":\"\\\\u00e9\"}'))",
                bulk("{\"a\":[1,{}],\"b\":\"\u{e9}\"}"),
            ),
            ("return cjson.decode('0x10')", int(16)),
            (
                "return tostring(cjson.decode('null') == cjson.null)",
                bulk("true"),
            ),
            (
                "local ok, e = pcall(cjson.decode, '{bad') return e",
                bulk("Expected object key string but found invalid token at character 2"),
            ),
            (
                "local ok, e = pcall(cjson.encode, {[1] = 1, [30] = 3}) return e",
                bulk("Cannot serialise table: excessively sparse array"),
            ),
        ] {
            assert_eq!(eval(&mut h, script, &["0"]), want, "{script}");
        }
    }

    #[test]
    fn bit_operations_are_32_bit() {
        let mut h = Harness::new();
        assert_eq!(
            eval(
                &mut h,
                "return {bit.band(0xff, 0x0f), bit.lshift(1, 31), bit.tobit(2^32 + 5), bit.tohex(255, -4), bit.rshift(-1, 28), bit.bnot(0), bit.arshift(-256, 4), bit.rol(1, 33), bit.bswap(0x12345678), bit.bor(1, 2, 4), bit.bxor(3, 1)}",
                &["0"]
            ),
            arr(vec![
                int(15),
                int(-2147483648),
                int(5),
                bulk("00FF"),
                int(15),
                int(-1),
                int(-16),
                int(2),
                int(2018915346),
                int(7),
                int(2)
            ])
        );
        assert_eq!(
            eval(&mut h, "return bit.tohex(-1)", &["0"]),
            bulk("ffffffff")
        );
    }

    #[test]
    fn shebang_flags_and_read_only_commands() {
        let mut h = Harness::new();
        let ro_write = "return redis.call('set', 'a', '1')";
        assert_eq!(
            h.run(&["EVAL_RO", ro_write, "0"]),
            script_err(
                "ERR Write commands are not allowed from read-only scripts.",
                ro_write,
                1
            )
        );
        assert_eq!(
            h.run(&["EVAL_RO", "return redis.call('get', 'a')", "0"]),
            Frame::Null
        );
        let no_writes = "#!lua flags=no-writes\nreturn redis.call('set', 'a', '1')";
        assert_eq!(
            eval(&mut h, no_writes, &["0"]),
            script_err(
                "ERR Write commands are not allowed from read-only scripts.",
                no_writes,
                2
            )
        );
        assert_eq!(
            h.run(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
            err("ERR Can not execute a script with write flag using *_ro command.")
        );
        assert_eq!(
            h.run(&["EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0"]),
            int(1)
        );
        for (body, want) in [
            (
                "#!lua flags=bad\nreturn 1",
                "ERR Unexpected flag in script shebang: bad",
            ),
            (
                "#!lua name=x\nreturn 1",
                "ERR Unknown lua shebang option: name=x",
            ),
            (
                "#!foo\nreturn 1",
                "ERR Unexpected engine in script shebang: #!foo",
            ),
            ("#!lua", "ERR Invalid script shebang"),
        ] {
            assert_eq!(eval(&mut h, body, &["0"]), err(want), "{body}");
        }
        assert_eq!(
            eval(&mut h, "#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1", &["0"]),
            int(1)
        );
    }

    #[test]
    fn script_cache_commands() {
        let mut h = Harness::new();
        let body = "return 1";
        let sha1 = sha(body);
        assert_eq!(
            h.run(&["SCRIPT", "EXISTS", &sha1, "nope"]),
            arr(vec![int(0), int(0)])
        );
        assert_eq!(
            h.run(&["EVALSHA", &sha1, "0"]),
            err("NOSCRIPT No matching script. Please use EVAL.")
        );
        assert_eq!(
            h.run(&["EVALSHA", "abc", "0"]),
            err("NOSCRIPT No matching script. Please use EVAL.")
        );
        assert_eq!(h.run(&["SCRIPT", "LOAD", body]), bulk(&sha1));
        assert_eq!(
            h.run(&["SCRIPT", "EXISTS", &sha1, &sha1.to_uppercase()]),
            arr(vec![int(1), int(1)])
        );
        assert_eq!(h.run(&["EVALSHA", &sha1.to_uppercase(), "0"]), int(1));
        assert_eq!(h.run(&["EVALSHA_RO", &sha1, "0"]), int(1));
        // EVAL caches what it runs.
        h.run(&["EVAL", "return 2", "0"]);
        assert_eq!(h.run(&["EVALSHA", &sha("return 2"), "0"]), int(2));
        assert_eq!(
            h.run(&["SCRIPT", "LOAD", "return +"]),
            err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'")
        );
        assert_eq!(h.run(&["SCRIPT", "FLUSH", "ASYNC"]), Frame::OK);
        assert_eq!(h.run(&["SCRIPT", "EXISTS", &sha1]), arr(vec![int(0)]));
        assert_eq!(
            h.run(&["SCRIPT", "FLUSH", "x"]),
            err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        );
        assert_eq!(
            h.run(&["SCRIPT", "KILL"]),
            err("NOTBUSY No scripts in execution right now.")
        );
        assert_eq!(h.run(&["SCRIPT", "DEBUG", "NO"]), Frame::OK);
        let Frame::Array(help) = h.run(&["SCRIPT", "HELP"]) else {
            panic!("SCRIPT HELP answers an array")
        };
        assert_eq!(help.len(), 17);
        assert_eq!(
            h.run(&["SCRIPT", "nope"]),
            err("ERR unknown subcommand 'nope'. Try SCRIPT HELP.")
        );
    }

    const LIB: &str = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)\nredis.register_function{function_name='ro', callback=function(keys, args) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}, description='d'}";

    #[test]
    fn function_libraries_load_list_call_and_delete() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["FUNCTION", "LOAD", LIB]), bulk("mylib"));
        assert_eq!(
            h.run(&["FUNCTION", "LOAD", LIB]),
            err("ERR Library 'mylib' already exists")
        );
        assert_eq!(h.run(&["FCALL", "myfunc", "0", "hello"]), bulk("hello"));
        assert_eq!(h.run(&["FCALL", "MYFUNC", "0", "case"]), bulk("case"));
        assert_eq!(
            h.run(&["FCALL_RO", "myfunc", "0", "hi"]),
            err("ERR Can not execute a script with write flag using *_ro command.")
        );
        assert_eq!(
            h.run(&["FCALL", "ro", "1", "k"]),
            err("ERR Write commands are not allowed from read-only scripts. script: ro, on @user_function:3.")
        );
        assert_eq!(
            h.run(&["FCALL", "nosuch", "0"]),
            err("ERR Function not found")
        );
        assert_eq!(
            h.run(&["FCALL", "myfunc", "x"]),
            err("ERR Bad number of keys provided")
        );
        let list = h.run(&["FUNCTION", "LIST", "LIBRARYNAME", "MY*", "WITHCODE"]);
        let Frame::Array(libs) = &list else {
            panic!("{list:?}")
        };
        assert_eq!(libs.len(), 1);
        assert_eq!(get(&libs[0], "library_name"), bulk("mylib"));
        assert_eq!(get(&libs[0], "library_code"), bulk(LIB));
        let Frame::Array(functions) = get(&libs[0], "functions") else {
            panic!()
        };
        assert_eq!(
            functions[1],
            Frame::Map(vec![
                (bulk("name"), bulk("ro")),
                (bulk("description"), bulk("d")),
                (bulk("flags"), Frame::Set(vec![simple("no-writes")])),
            ])
        );
        assert_eq!(
            h.run(&["FUNCTION", "LIST", "LIBRARYNAME", "other*"]),
            arr(vec![])
        );
        let stats = h.run(&["FUNCTION", "STATS"]);
        assert_eq!(get(&stats, "running_script"), Frame::Null);
        assert_eq!(
            get(&stats, "engines"),
            Frame::Map(vec![(
                bulk("LUA"),
                Frame::Map(vec![
                    (bulk("libraries_count"), int(1)),
                    (bulk("functions_count"), int(2))
                ])
            )])
        );
        // Library state persists between calls; REPLACE swaps the functions.
        h.run(&["FUNCTION", "LOAD", "#!lua name=counter\nlocal n = 0\nredis.register_function('incr_local', function() n = n + 1 return n end)"]);
        assert_eq!(h.run(&["FCALL", "incr_local", "0"]), int(1));
        assert_eq!(h.run(&["FCALL", "incr_local", "0"]), int(2));
        assert_eq!(
            h.run(&[
                "FUNCTION",
                "LOAD",
                "REPLACE",
                "#!lua name=counter\nredis.register_function('other', function() return 'new' end)"
            ]),
            bulk("counter")
        );
        assert_eq!(
            h.run(&["FCALL", "incr_local", "0"]),
            err("ERR Function not found")
        );
        assert_eq!(h.run(&["FCALL", "other", "0"]), bulk("new"));
        assert_eq!(h.run(&["FUNCTION", "DELETE", "counter"]), Frame::OK);
        assert_eq!(
            h.run(&["FUNCTION", "DELETE", "counter"]),
            err("ERR Library not found")
        );
        assert_eq!(h.run(&["FUNCTION", "FLUSH"]), Frame::OK);
        assert_eq!(h.run(&["FUNCTION", "LIST"]), arr(vec![]));
    }

    #[test]
    fn function_load_errors_match_redis() {
        let mut h = Harness::new();
        h.run(&["FUNCTION", "LOAD", LIB]);
        for (code, want) in [
            ("return 1", "ERR Missing library metadata"),
            ("#!lua\nreturn 1", "ERR Library name was not given"),
            ("#!lua name=x foo=bar\nreturn 1", "ERR Invalid metadata value given: foo=bar"),
            ("#!js name=x\nreturn 1", "ERR Engine 'js' not found"),
            ("#!lua name=bad-name\nreturn 1", "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
            ("#!lua name=x\nreturn 1", "ERR No functions registered"),
            ("#!lua name=x\nreturn 1 +", "ERR Error compiling function: user_function:2: unexpected symbol near '<eof>'"),
            ("#!lua name=x\nerror('oops')", "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'error'"),
            ("#!lua name=x\nredis.call('ping')", "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"),
            ("#!lua name=x\nredis.register_function('myfunc', function() end)", "ERR Function myfunc already exists"),
            ("#!lua name=x\nredis.register_function('a', function() end)\nredis.register_function('a', function() end)", "ERR Error registering functions: ERR Function already exists in the library"),
            ("#!lua name=x\nredis.register_function{function_name='a', callback=function() end, flags={'bad'}}", "ERR Error registering functions: ERR unknown flag given"),
            ("#!lua name=x\nredis.register_function(1, 2)", "ERR Error registering functions: ERR second argument to redis.register_function must be a function"),
        ] {
            assert_eq!(h.run(&["FUNCTION", "LOAD", code]), err(want), "{code}");
        }
        // A main chunk that runs too long is stopped.
        assert_eq!(
            h.run(&[
                "FUNCTION",
                "LOAD",
                "#!lua name=spin\nlocal i = 0 while true do i = i + 1 end"
            ]),
            err("ERR Error registering functions: ERR FUNCTION LOAD timeout")
        );
        // Functions do not see EVAL's KEYS/ARGV; errors name the function.
        h.run(&["FUNCTION", "LOAD", "#!lua name=rt\nredis.register_function('k', function(keys, args) return type(KEYS) end)\nredis.register_function('kk', function(keys, args) return {keys[1], args[1]} end)"]);
        assert_eq!(
            h.run(&["FCALL", "k", "0"]),
            err("ERR user_function:2: Script attempted to access nonexistent global variable 'KEYS' script: k, on @user_function:2.")
        );
        assert_eq!(
            h.run(&["FCALL", "kk", "1", "a", "b"]),
            arr(vec![bulk("a"), bulk("b")])
        );
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

    fn with_aof() -> (Harness, MemSink) {
        let h = Harness::new();
        let sink = MemSink::new();
        let writer = Writer::start(Box::new(sink.clone()), FsyncPolicy::No, h.clock.clone())
            .expect("start the writer");
        assert!(h.shared.engine.aof.set(Arc::new(writer)).is_ok());
        (h, sink)
    }

    fn journaled(h: &Harness, sink: &MemSink) -> Vec<Record> {
        let w = h.shared.engine.aof.get().expect("AOF on");
        w.wait_blocking(w.stats().appended, Duration::from_secs(10))
            .expect("records written");
        let data = sink.data();
        let mut rest = &data[record::HEADER_LEN..];
        let mut out = Vec::new();
        while let Some((r, n)) = record::decode_frame(rest).expect("valid frames") {
            out.push(r);
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn scripts_and_libraries_are_journaled_and_their_effects_too() {
        let (mut h, sink) = with_aof();
        h.run(&["SCRIPT", "LOAD", "return 1"]);
        h.run(&["SCRIPT", "LOAD", "return 1"]);
        eval(
            &mut h,
            "return redis.call('set', KEYS[1], 'v')",
            &["1", "k"],
        );
        h.run(&["FUNCTION", "LOAD", LIB]);
        h.run(&["FUNCTION", "DELETE", "mylib"]);
        h.run(&["SCRIPT", "FLUSH"]);
        h.run(&["FUNCTION", "FLUSH"]);
        let body = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let records = journaled(&h, &sink);
        assert_eq!(
            records,
            vec![
                Record::Script {
                    body: body("return 1")
                },
                Record::Script {
                    body: body("return redis.call('set', KEYS[1], 'v')")
                },
                Record::Put {
                    db: 0,
                    key: body("k"),
                    value: crate::store::Value::Str(body("v")),
                    expires_at: None,
                },
                Record::FunctionLibrary { code: body(LIB) },
                Record::FunctionDelete {
                    name: body("mylib")
                },
                Record::ScriptsFlush {
                    target: ScriptsFlushTarget::Scripts
                },
                Record::ScriptsFlush {
                    target: ScriptsFlushTarget::Functions
                },
            ]
        );
    }

    #[test]
    fn restore_and_snapshot_rebuild_the_cache() {
        let mut h = Harness::new();
        let body = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        for r in [
            Record::Script {
                body: body("return 'a'"),
            },
            Record::Script {
                body: body("return 'b'"),
            },
            Record::ScriptsFlush {
                target: ScriptsFlushTarget::Scripts,
            },
            Record::Script {
                body: body("return 'c'"),
            },
            Record::FunctionLibrary { code: body(LIB) },
            Record::FunctionLibrary {
                code: body(
                    "#!lua name=gone\nredis.register_function('g', function() return 1 end)",
                ),
            },
            Record::FunctionDelete { name: body("gone") },
        ] {
            super::restore(&h.shared, r);
        }
        assert_eq!(
            h.run(&["EVALSHA", &sha("return 'a'"), "0"]),
            err("NOSCRIPT No matching script. Please use EVAL.")
        );
        assert_eq!(h.run(&["EVALSHA", &sha("return 'c'"), "0"]), bulk("c"));
        assert_eq!(h.run(&["FCALL", "myfunc", "0", "x"]), bulk("x"));
        assert_eq!(h.run(&["FCALL", "g", "0"]), err("ERR Function not found"));
        assert_eq!(
            super::snapshot(&h.shared),
            vec![
                Record::Script {
                    body: body("return 'c'")
                },
                Record::FunctionLibrary { code: body(LIB) },
            ]
        );
    }
}
