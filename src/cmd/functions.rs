//! Function commands: FCALL, FCALL_RO and FUNCTION (LOAD, LIST, DELETE, FLUSH, KILL, STATS,
//! HELP), with Redis 7.0's replies and errors. A function runs like a script
//! ([`super::script_run`]); library changes are journaled like script loads.

use bytes::Bytes;

use super::flags::*;
use super::script_run::err;
use super::script_run::{run_script, script_token};
use super::scripting::{flush_mode_ok, journal, kill, split_keys, SCRIPT_FLAGS};
use super::{help_lines, CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::persist::{Record, ScriptsFlushTarget};
use crate::protocol::Frame;
use crate::script::engine::Target;

const FCALL_ARGS: &str = "function:string numkeys:integer [key:key...] [arg:string...]";

/// Function commands.
pub const COMMANDS: &[CommandSpec] = &[
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

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn arr(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
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
}
