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
use crate::script::{CallOutcome, RunOutcome, Running, ScriptFlags, ScriptsGuard};
use crate::store::MultiGuard;

/// How long a script that already wrote waits for an undeclared key's shard held out of
/// order before the call fails (see the module docs).
const ESCALATION_WAIT: Duration = Duration::from_millis(200);

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

const EVAL_ARGS: &str = "script:string numkeys:integer [key:key...] [arg:string...]";
const EVALSHA_ARGS: &str = "sha1:string numkeys:integer [key:key...] [arg:string...]";
const FCALL_ARGS: &str = "function:string numkeys:integer [key:key...] [arg:string...]";

const SCRIPT_FLAGS: u32 = NOSCRIPT | STALE | SKIP_MONITOR | MOVABLEKEYS;

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
        args: "YES|SYNC|NO",
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
    if let Some(w) = ctx.shared.aof.get() {
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
    let token = shared.scripts.lock();
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
    let name = String::from_utf8_lossy(&sha).into_owned();
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

fn fcall(ctx: &mut Ctx<'_>, req: &[Bytes], ro: bool) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let token = shared.scripts.lock();
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
        fname.clone(),
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
    name: String,
    req: &[Bytes],
) -> Result<Frame, CommandError> {
    let compat = flags.has(ScriptFlags::EVAL_COMPAT);
    if !compat && !flags.has(ScriptFlags::NO_WRITES) {
        if let Some(w) = ctx.shared.aof.get() {
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
    let threshold = ctx.shared.config.read().busy_reply_threshold;
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
        run.begin(
            Running {
                name: name.clone(),
                command: req.to_vec(),
                started: Instant::now(),
            },
            is_function,
            threshold,
        );
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
        if let Some(w) = ctx.shared.aof.get() {
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
    let running = match run.current() {
        Some(_) if !run.is_function() => return Err(err(crate::script::BUSY_EVAL.into())),
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
    let now = shared.clock.now();
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
    use crate::cmd::testing::*;

    #[test]
    fn smoke() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["EVAL", "return 1", "0"]), int(1));
        eprintln!("{:?}", h.run(&["EVAL", "error('boom')", "0"]));
        eprintln!("{:?}", h.run(&["EVAL", "local ok, e = xpcall(function() error('boom') end, function(e) return e end) return e", "0"]));
    }
}
