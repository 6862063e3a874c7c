//! Server commands: COMMAND (and its subcommands), DBSIZE, FLUSHDB, FLUSHALL, TIME,
//! BGREWRITEAOF, SHUTDOWN. `INFO` is in [`super::info`], `CONFIG` in [`super::config_cmd`].

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{self, is};
use super::docs::{docs_frame, info_frame};
use super::flags::*;
use super::keys::glob_match;
use super::{
    all_commands, dispatch_sub, help_reply, lookup, lookup_sub, CommandSpec, Ctx, BASE,
    HELP_SUBCOMMAND,
};
use crate::error::CommandError;
use crate::persist::Record;
use crate::protocol::Frame;

/// Server commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "COMMAND",
        arity: -1,
        flags: LOADING | STALE,
        group: "server",
        summary: "Returns detailed information about all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the total number of commands",
        subcommands: COMMAND_SUBCOMMANDS,
        handler: |ctx, req| {
            if req.len() == 1 {
                Ok(Frame::Array(
                    all_commands()
                        .into_iter()
                        .map(|s| info_frame(None, s))
                        .collect(),
                ))
            } else {
                dispatch_sub(ctx, req)
            }
        },
        ..BASE
    },
    CommandSpec {
        name: "DBSIZE",
        arity: 1,
        flags: READONLY | FAST | KEYSPACE,
        group: "server",
        summary: "Returns the number of keys in the database.",
        handler: |ctx, _| {
            let mut n = 0;
            for i in 0..ctx.shard_count() {
                n += ctx.with_shard_at(i, |s| s.len());
            }
            Ok(Frame::Integer(n as i64))
        },
        ..BASE
    },
    CommandSpec {
        name: "FLUSHDB",
        arity: -1,
        flags: WRITE | KEYSPACE,
        group: "server",
        summary: "Removes all keys from the current database.",
        complexity: "O(N) where N is the number of keys in the selected database",
        args: "[ASYNC|SYNC]",
        handler: |ctx, req| flush(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "FLUSHALL",
        arity: -1,
        flags: WRITE | KEYSPACE | NO_MULTI,
        group: "server",
        summary: "Removes all keys from all databases.",
        complexity: "O(N) where N is the total number of keys in all databases",
        args: "[ASYNC|SYNC]",
        handler: |ctx, req| flush(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "TIME",
        arity: 1,
        flags: LOADING | STALE | FAST,
        group: "server",
        summary: "Returns the server time.",
        since: "2.6.0",
        handler: |ctx, _| {
            let ns = ctx.now.as_nanos();
            Ok(Frame::Array(vec![
                Frame::Bulk(Bytes::from((ns / 1_000_000_000).to_string())),
                Frame::Bulk(Bytes::from((ns % 1_000_000_000 / 1000).to_string())),
            ]))
        },
        ..BASE
    },
    CommandSpec {
        name: "BGREWRITEAOF",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_MULTI,
        group: "server",
        summary: "Compacts the append-only file in the background, without blocking clients.",
        complexity: "O(N) where N is the number of keys",
        handler: |ctx, _| {
            let Some(aof) = ctx.shared.engine.aof.get() else {
                return Err(CommandError::other(
                    "Append only file is disabled (start with --appendonly yes)",
                ));
            };
            if aof.stats().rewrite_in_progress
                || ctx.shared.rewrite_requested.swap(true, Ordering::SeqCst)
            {
                return Err(CommandError::other(
                    "Background append only file rewriting already in progress",
                ));
            }
            Ok(Frame::simple(
                "Background append only file rewriting scheduled",
            ))
        },
        ..BASE
    },
    CommandSpec {
        name: "SHUTDOWN",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        group: "server",
        summary:
            "Stops the server gracefully: stops accepting, finishes replies in flight and exits.",
        complexity: "O(N) when saving, where N is the total number of keys in all databases",
        args: "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]",
        handler: shutdown,
        ..BASE
    },
];

const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "COUNT",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns a count of commands.",
        since: "2.8.13",
        handler: |_, _| Ok(Frame::Integer(all_commands().len() as i64)),
        ..BASE
    },
    CommandSpec {
        name: "LIST",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns a list of command names.",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of Redis commands",
        args:
            "[FILTERBY (MODULE module-name:string|ACLCAT category:string|PATTERN pattern:pattern)]",
        handler: command_list,
        ..BASE
    },
    CommandSpec {
        name: "INFO",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns information about one, multiple or all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of commands to look up",
        args: "[command-name:string...]",
        handler: command_info,
        ..BASE
    },
    CommandSpec {
        name: "DOCS",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns documentary information about one, multiple or all commands.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of commands to look up",
        args: "[command-name:string...]",
        handler: command_docs,
        ..BASE
    },
    CommandSpec {
        name: "GETKEYS",
        arity: -3,
        flags: LOADING | STALE,
        summary: "Extracts the key names from an arbitrary command.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of arguments to the command",
        args: "command:string arg:string...",
        handler: command_getkeys,
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "COMMAND",
                &[
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands.",
                    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                    "    Return a list of all commands, optionally filtered.",
                    "INFO [<command-name> ...]",
                    "    Return details about the named commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentation about the named commands.",
                    "GETKEYS <full-command>",
                    "    Return the keys from a full command.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];
fn command_list(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    enum Filter {
        None,
        Module,
        AclCat(String),
        Pattern(Bytes),
    }
    let filter = match req.len() {
        2 => Filter::None,
        5 if is(&req[2], "FILTERBY") => {
            if is(&req[3], "MODULE") {
                Filter::Module
            } else if is(&req[3], "ACLCAT") {
                Filter::AclCat(format!("@{}", args::text(&req[4]).to_ascii_lowercase()))
            } else if is(&req[3], "PATTERN") {
                Filter::Pattern(req[4].clone())
            } else {
                return Err(CommandError::Syntax);
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    let mut names = Vec::new();
    for spec in all_commands() {
        let info = info_frame(None, spec);
        let mut entries = vec![(spec.name.to_ascii_lowercase(), info)];
        for sub in spec.subcommands {
            entries.push((
                super::full_name(Some(spec), sub),
                info_frame(Some(spec), sub),
            ));
        }
        for (name, info) in entries {
            let keep = match &filter {
                Filter::None => true,
                Filter::Module => false,
                Filter::Pattern(p) => glob_match(p, name.as_bytes()),
                Filter::AclCat(cat) => match &info {
                    Frame::Array(fields) => matches!(&fields[6], Frame::Set(cats)
                        if cats.iter().any(|c| matches!(c, Frame::Simple(s) if s.as_ref() == cat.as_bytes()))),
                    _ => false,
                },
            };
            if keep {
                names.push(Frame::Bulk(Bytes::from(name)));
            }
        }
    }
    Ok(Frame::Array(names))
}

/// Finds `name` or `parent|sub`.
fn find(name: &[u8]) -> Option<(Option<&'static CommandSpec>, &'static CommandSpec)> {
    if let Some(pos) = name.iter().position(|&b| b == b'|') {
        let parent = lookup(&name[..pos])?;
        return Some((Some(parent), lookup_sub(parent, &name[pos + 1..])?));
    }
    Some((None, lookup(name)?))
}

fn command_info(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() == 2 {
        return Ok(Frame::Array(
            all_commands()
                .into_iter()
                .map(|s| info_frame(None, s))
                .collect(),
        ));
    }
    Ok(Frame::Array(
        req[2..]
            .iter()
            .map(|n| find(n).map_or(Frame::Null, |(p, s)| info_frame(p, s)))
            .collect(),
    ))
}

fn command_docs(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut out = Vec::new();
    if req.len() == 2 {
        for s in all_commands() {
            out.push((
                Frame::bulk(s.name.to_ascii_lowercase()),
                docs_frame(None, s),
            ));
        }
    } else {
        for n in &req[2..] {
            if let Some((p, s)) = find(n) {
                out.push((Frame::bulk(super::full_name(p, s)), docs_frame(p, s)));
            }
        }
    }
    Ok(Frame::Map(out))
}

fn command_getkeys(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let cmd = &req[2..];
    let Some(mut spec) = lookup(&cmd[0]) else {
        return Err(CommandError::other("Invalid command specified"));
    };
    if !spec.subcommands.is_empty() && cmd.len() > 1 {
        if let Some(sub) = lookup_sub(spec, &cmd[1]) {
            spec = sub;
        }
    }
    if !spec.arity_ok(cmd.len()) {
        return Err(CommandError::other(
            "Invalid number of arguments specified for command",
        ));
    }
    if let Some(at) = super::numkeys_index(spec) {
        let keys = super::leading_keys(spec, cmd)
            .iter()
            .chain(super::counted_keys(cmd, at));
        return Ok(Frame::Array(keys.cloned().map(Frame::Bulk).collect()));
    }
    if spec.first_key <= 0 || spec.has(NOT_KEY) {
        return Err(CommandError::other("The command has no key arguments"));
    }
    let last = if spec.last_key < 0 {
        cmd.len() as i64 + i64::from(spec.last_key)
    } else {
        i64::from(spec.last_key)
    };
    let mut keys = Vec::new();
    let mut i = i64::from(spec.first_key);
    while i <= last && (i as usize) < cmd.len() {
        keys.push(Frame::Bulk(cmd[i as usize].clone()));
        i += i64::from(spec.key_step);
    }
    keys.extend(
        super::extra_keys(spec, cmd)
            .iter()
            .cloned()
            .map(Frame::Bulk),
    );
    Ok(Frame::Array(keys))
}

fn flush(ctx: &mut Ctx<'_>, req: &[Bytes], all: bool) -> Result<Frame, CommandError> {
    match req.len() {
        1 => {}
        2 if is(&req[1], "ASYNC") || is(&req[1], "SYNC") => {}
        _ => return Err(CommandError::Syntax),
    }
    let selected = ctx.session.db;
    let flush_db = |db: usize| Record::FlushDb {
        db: u32::try_from(db).expect("invariant: databases are capped at 1024"),
    };
    ctx.with_all_shards(Some(flush_db(selected)), |g| {
        g.shards().for_each(|s| s.clear())
    });
    if all {
        // One database at a time, each wholly locked while it is cleared and journaled.
        // FLUSHALL is refused inside MULTI, so no other database's shards are held here.
        for db in (0..ctx.shared.engine.dbs.len()).filter(|&db| db != selected) {
            let saved = std::mem::replace(&mut ctx.session.db, db);
            ctx.with_all_shards(Some(flush_db(db)), |g| g.shards().for_each(|s| s.clear()));
            ctx.session.db = saved;
        }
    }
    Ok(Frame::OK)
}

fn shutdown(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut abort = false;
    for a in &req[1..] {
        if is(a, "ABORT") {
            abort = true;
        } else if !(is(a, "NOSAVE") || is(a, "SAVE") || is(a, "NOW") || is(a, "FORCE")) {
            return Err(CommandError::Syntax);
        }
    }
    if abort {
        return Err(CommandError::other("No shutdown in progress."));
    }
    tracing::warn!(client = ctx.session.info.id, "user requested shutdown");
    ctx.shared.request_shutdown();
    // Like Redis, a successful SHUTDOWN never answers: the connection just closes.
    ctx.session.close_without_reply = true;
    Ok(Frame::OK)
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn command_introspection() {
        let mut h = Harness::new();
        let Frame::Integer(n) = h.run(&["COMMAND", "COUNT"]) else {
            panic!("COUNT is an integer")
        };
        assert!(n > 40);
        let Frame::Array(info) = h.run(&["COMMAND", "INFO", "get", "nope", "client|list"]) else {
            panic!("INFO is an array")
        };
        assert_eq!(info[1], Frame::Null);
        let Frame::Array(get) = &info[0] else {
            panic!()
        };
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], int(2));
        assert_eq!(get[3], int(1));
        let Frame::Array(list) = &info[2] else {
            panic!()
        };
        assert_eq!(list[0], bulk("client|list"));
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
            Frame::Array(vec![bulk("a"), bulk("b")])
        );
        let Frame::Map(docs) = h.run(&["COMMAND", "DOCS", "set"]) else {
            panic!("DOCS is a map")
        };
        assert_eq!(docs[0].0, bulk("set"));
    }

    #[test]
    fn flush_dbsize_time() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        assert_eq!(h.run(&["DBSIZE"]), int(1));
        assert_eq!(h.run(&["FLUSHALL", "ASYNC"]), Frame::OK);
        assert_eq!(h.run(&["DBSIZE"]), int(0));
        assert_eq!(h.run(&["FLUSHDB", "NOPE"]), err("ERR syntax error"));
        let Frame::Array(t) = h.run(&["TIME"]) else {
            panic!()
        };
        assert_eq!(t[0], bulk("1767225600"));
    }
}
