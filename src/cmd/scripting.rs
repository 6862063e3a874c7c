//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT, with Redis 7.0's
//! replies and errors, and the AOF restore and snapshot of the script cache and function
//! libraries. `EVALSHA` of a recognised library script is answered natively
//! ([`super::fastpath`]); every other script runs in Lua under the shard locks
//! ([`super::script_run`], which also holds the busy gate and the script token). FUNCTION and
//! FCALL are [`super::functions`].

use bytes::Bytes;

use super::flags::*;
use super::script_run::{run_script, script_token};
use super::{help_lines, CommandSpec, Ctx, Shared, BASE};
use crate::error::CommandError;
use crate::persist::{Record, ScriptsFlushTarget};
use crate::protocol::Frame;
use crate::script::engine::{parse_sha, Target};
use crate::script::known;
use crate::script::Sha;

// The connection loop's entry points, where it has always found them.
pub use super::script_run::{batch_token, busy_gate, runs_lua, takes_token, BusyGate};
use super::script_run::{err, NOSCRIPT_ERR};

const EVAL_ARGS: &str = "script:string numkeys:integer [key:key...] [arg:string...]";
const EVALSHA_ARGS: &str = "sha1:string numkeys:integer [key:key...] [arg:string...]";

/// The flags every script-running command has (FCALL's too).
pub(super) const SCRIPT_FLAGS: u32 =
    NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS;

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

/// Scripting commands: EVAL and its forms, and SCRIPT.
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

/// Appends `record` to the AOF, if it is on; the reply then waits for it like a write's.
pub(super) fn journal(ctx: &mut Ctx<'_>, record: Record) {
    let engine = &ctx.shared.engine;
    if engine.aof.get().is_some() || engine.feed.is_active() {
        engine.journal_record(&record, &mut ctx.session.aof_seq);
        ctx.session.stats.dirty += 1;
    }
}

/// The `numkeys` argument: keys and arguments, with Redis's errors.
pub(super) fn split_keys(
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
                if !ctx.session.lua_inline {
                    // On a runtime worker: the Lua body runs where scripts run (the
                    // connection dispatches the request again there; nothing changed yet).
                    ctx.session.lua_bounce = true;
                    return Ok(Frame::Null);
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

pub(super) fn flush_mode_ok(req: &[Bytes]) -> bool {
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

pub(super) fn kill(ctx: &mut Ctx<'_>, function: bool) -> Result<Frame, CommandError> {
    ctx.shared
        .scripts
        .run_state()
        .request_kill(function)
        .map(|()| Frame::OK)
        .map_err(|e| err(e.into()))
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
#[path = "scripting_tests.rs"]
mod tests;
