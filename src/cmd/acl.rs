//! The `ACL` command family (Redis 7): users, rules, the log, the ACL file. The check every
//! command passes, authentication and the command catalog are in [`super::permissions`].

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::permissions::{denial, enforce_change, kill_clients};
use super::{
    dispatch_sub, full_name, help_lines, lookup, lookup_sub, CommandSpec, Ctx, BASE,
    HELP_SUBCOMMAND,
};
use crate::acl::{category, Denial};
use crate::error::CommandError;
use crate::protocol::Frame;

const ADMIN_SUB: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const PLAIN_SUB: u32 = NOSCRIPT | LOADING | STALE;

/// The ACL command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "ACL",
    arity: -2,
    group: "server",
    summary: "A container for Access List Control commands.",
    since: "6.0.0",
    complexity: "Depends on subcommand.",
    subcommands: ACL_SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const ACL_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CAT",
        arity: -2,
        flags: PLAIN_SUB,
        summary: "Lists the ACL categories, or the commands inside a category.",
        since: "6.0.0",
        args: "[category:string]",
        handler: acl_cat,
        ..BASE
    },
    CommandSpec {
        name: "DELUSER",
        arity: -3,
        flags: ADMIN_SUB,
        summary: "Deletes ACL users, and terminates their connections.",
        since: "6.0.0",
        args: "username:string...",
        handler: acl_deluser,
        ..BASE
    },
    CommandSpec {
        name: "DRYRUN",
        arity: -4,
        flags: ADMIN_SUB,
        summary: "Simulates the execution of a command by a user, without executing the command.",
        since: "7.0.0",
        args: "username:string command:string [arg:string...]",
        handler: acl_dryrun,
        ..BASE
    },
    CommandSpec {
        name: "GENPASS",
        arity: -2,
        flags: PLAIN_SUB,
        summary:
            "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        since: "6.0.0",
        args: "[bits:integer]",
        handler: acl_genpass,
        ..BASE
    },
    CommandSpec {
        name: "GETUSER",
        arity: 3,
        flags: ADMIN_SUB,
        summary: "Lists the ACL rules of a user.",
        since: "6.0.0",
        args: "username:string",
        handler: acl_getuser,
        ..BASE
    },
    CommandSpec {
        name: "LIST",
        arity: 2,
        flags: ADMIN_SUB,
        summary: "Dumps the effective rules in ACL file format.",
        since: "6.0.0",
        handler: |ctx, _| {
            Ok(Frame::Array(
                ctx.shared.acl.list().into_iter().map(Frame::bulk).collect(),
            ))
        },
        ..BASE
    },
    CommandSpec {
        name: "LOAD",
        arity: 2,
        flags: ADMIN_SUB,
        summary: "Reloads the rules from the configured ACL file.",
        since: "6.0.0",
        handler: acl_load,
        ..BASE
    },
    CommandSpec {
        name: "LOG",
        arity: -2,
        flags: ADMIN_SUB,
        summary: "Lists recent security events generated due to commands rejected by ACL rules.",
        since: "6.0.0",
        args: "[count:integer|RESET]",
        handler: acl_log,
        ..BASE
    },
    CommandSpec {
        name: "SAVE",
        arity: 2,
        flags: ADMIN_SUB,
        summary: "Saves the effective ACL rules in the configured ACL file.",
        since: "6.0.0",
        handler: acl_save,
        ..BASE
    },
    CommandSpec {
        name: "SETUSER",
        arity: -3,
        flags: ADMIN_SUB,
        summary: "Creates and modifies an ACL user and its rules.",
        since: "6.0.0",
        args: "username:string [rule:string...]",
        handler: acl_setuser,
        ..BASE
    },
    CommandSpec {
        name: "USERS",
        arity: 2,
        flags: ADMIN_SUB,
        summary: "Lists all ACL users.",
        since: "6.0.0",
        handler: |ctx, _| {
            Ok(Frame::Array(
                ctx.shared
                    .acl
                    .users()
                    .iter()
                    .map(|u| Frame::bulk(&u.name))
                    .collect(),
            ))
        },
        ..BASE
    },
    CommandSpec {
        name: "WHOAMI",
        arity: 2,
        flags: PLAIN_SUB,
        summary: "Returns the authenticated username of the current connection.",
        since: "6.0.0",
        handler: |ctx, _| Ok(Frame::bulk(&ctx.session.user.name)),
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_lines(&[
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]))
        },
        ..HELP_SUBCOMMAND
    },
];

/// Redis's answer to extra arguments of an `ACL` subcommand.
fn syntax(req: &[Bytes]) -> CommandError {
    CommandError::SubcommandSyntax(args::text(&req[1]), "ACL".into())
}

fn acl_setuser(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let name = args::text(&req[2]);
    let rules: Vec<&[u8]> = req[3..].iter().map(|r| &r[..]).collect();
    let (before, after) = ctx
        .shared
        .acl
        .set_user(&name, &rules)
        .map_err(CommandError::Other)?;
    enforce_change(ctx, before.as_deref(), &after);
    Ok(Frame::OK)
}

fn acl_deluser(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let names: Vec<String> = req[2..].iter().map(|n| args::text(n)).collect();
    let removed = ctx
        .shared
        .acl
        .delete_users(&names)
        .map_err(CommandError::Other)?;
    for name in &removed {
        kill_clients(ctx, name, |_| true);
    }
    Ok(Frame::Integer(removed.len() as i64))
}

fn acl_getuser(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let Some(u) = ctx.shared.acl.user(&args::text(&req[2])) else {
        return Ok(Frame::Null);
    };
    let catalog = ctx.shared.acl.catalog();
    let b = Frame::bulk;
    Ok(Frame::Map(vec![
        (
            b("flags"),
            Frame::Set(u.flags().into_iter().map(b).collect()),
        ),
        (
            b("passwords"),
            Frame::Array(u.passwords.iter().map(|p| b(p)).collect()),
        ),
        (b("commands"), b(&u.selector.describe_commands(catalog))),
        (b("keys"), b(&u.selector.keys_text())),
        (b("channels"), b(&u.selector.channels_text())),
        (b("selectors"), Frame::Array(vec![])),
    ]))
}

fn acl_cat(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    match req.get(2) {
        None => Ok(Frame::Array(
            category::NAMES
                .iter()
                .map(|(_, n)| Frame::bulk(n))
                .collect(),
        )),
        Some(name) if req.len() == 3 => {
            let text = args::text(name);
            let cat = category::by_name(&text).ok_or_else(|| {
                let shown: String = text.chars().take(128).collect();
                CommandError::other(format!("Unknown category '{shown}'"))
            })?;
            Ok(Frame::Array(
                ctx.shared
                    .acl
                    .catalog()
                    .in_category(cat)
                    .into_iter()
                    .map(Frame::bulk)
                    .collect(),
            ))
        }
        Some(_) => Err(syntax(req)),
    }
}

fn acl_genpass(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    const MAX_BITS: i64 = 4096;
    let bits = match req.get(2) {
        None => 256,
        Some(b) if req.len() == 3 => args::parse_i64(b).ok_or(CommandError::NotAnInteger)?,
        Some(_) => return Err(syntax(req)),
    };
    if bits <= 0 || bits > MAX_BITS {
        return Err(CommandError::other(format!(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to {MAX_BITS}"
        )));
    }
    let chars = usize::try_from((bits + 3) / 4).expect("invariant: 1..=1024");
    let mut raw = vec![0u8; chars.div_ceil(2)];
    getrandom::fill(&mut raw)
        .map_err(|e| CommandError::other(format!("cannot read random bytes: {e}")))?;
    let mut hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(Frame::bulk(&hex))
}

fn acl_log(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let count = match req.get(2) {
        None => 10,
        Some(a) if req.len() == 3 && is(a, "RESET") => {
            ctx.shared.acl.reset_log();
            return Ok(Frame::OK);
        }
        Some(a) if req.len() == 3 => {
            let n = args::parse_i64(a).ok_or(CommandError::NotAnInteger)?;
            usize::try_from(n.max(0)).unwrap_or(usize::MAX)
        }
        Some(_) => return Err(syntax(req)),
    };
    let now_ms = ctx.now.as_millis();
    let b = |s: &str| Frame::bulk(s);
    let entries = ctx.shared.acl.log_entries(count);
    Ok(Frame::Array(
        entries
            .into_iter()
            .map(|e| {
                let age = now_ms.saturating_sub(e.updated_ms) as f64 / 1000.0;
                Frame::Map(vec![
                    (b("count"), Frame::Integer(e.count as i64)),
                    (b("reason"), b(e.reason.reason())),
                    (b("context"), b(e.context.name())),
                    (b("object"), b(&e.object)),
                    (b("username"), b(&e.username)),
                    (b("age-seconds"), Frame::Double(age)),
                    (b("client-info"), b(&e.client_info)),
                    (b("entry-id"), Frame::Integer(e.entry_id as i64)),
                    (b("timestamp-created"), Frame::Integer(e.created_ms as i64)),
                    (
                        b("timestamp-last-updated"),
                        Frame::Integer(e.updated_ms as i64),
                    ),
                ])
            })
            .collect(),
    ))
}

fn acl_file(ctx: &Ctx<'_>) -> Result<std::path::PathBuf, CommandError> {
    ctx.shared
        .engine
        .config
        .read()
        .aclfile
        .clone()
        .ok_or_else(|| {
            CommandError::other(
            "This Redis instance is not configured to use an ACL file. You may want to specify \
             users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you \
             have a Redis configuration file set) in order to store users in the Redis \
             configuration.",
        )
        })
}

fn acl_save(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let path = acl_file(ctx)?;
    ctx.shared.acl.save_file(&path).map_err(|e| {
        tracing::warn!(error = %e, path = %path.display(), "ACL SAVE failed");
        CommandError::other(
            "There was an error trying to save the ACLs. Please check the server logs for more \
             information",
        )
    })?;
    Ok(Frame::OK)
}

fn acl_load(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let path = acl_file(ctx)?;
    let requirepass = ctx.shared.engine.config.read().requirepass.clone();
    ctx.shared
        .acl
        .load_file(&path, requirepass.as_deref())
        .map_err(CommandError::Other)?;
    // As in Redis, every connection authenticated as a user other than `default` is closed:
    // the users it authenticated against were replaced.
    for c in ctx.shared.clients.snapshot() {
        if &**c.user.lock() != "default" {
            c.kill();
        }
    }
    Ok(Frame::OK)
}

fn acl_dryrun(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let name = args::text(&req[2]);
    let user = ctx
        .shared
        .acl
        .user(&name)
        .ok_or_else(|| CommandError::other(format!("User '{name}' not found")))?;
    let cmd = &req[3..];
    let not_found = || CommandError::other(format!("Command '{}' not found", args::text(&cmd[0])));
    let spec = lookup(&cmd[0]).ok_or_else(not_found)?;
    let checked = if !spec.subcommands.is_empty() && cmd.len() >= 2 {
        lookup_sub(spec, &cmd[1]).ok_or_else(not_found)?
    } else {
        spec
    };
    let parent = (!std::ptr::eq(spec, checked)).then_some(spec);
    if !checked.arity_ok(cmd.len()) {
        return Err(CommandError::WrongArity(full_name(parent, checked)));
    }
    // Redis's DRYRUN texts name the key or channel itself.
    Ok(match denial(&user, spec, checked, cmd) {
        Ok(()) => Frame::OK,
        Err((Denial::Key, key, _)) => Frame::bulk_string(format!(
            "This user has no permissions to access the '{key}' key"
        )),
        Err((Denial::Channel, channel, _)) => Frame::bulk_string(format!(
            "This user has no permissions to access the '{channel}' channel"
        )),
        Err((_, name, _)) => Frame::bulk_string(format!(
            "This user has no permissions to run the '{name}' command"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, Harness};
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::bulk(s)
    }

    #[test]
    fn an_app_user_throttles_its_keys_and_nothing_else() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["ACL", "SETUSER", "app", "on", ">pw", "+@limiter", "~app:*"]),
            Frame::OK
        );
        assert_eq!(h.run(&["AUTH", "app", "pw"]), Frame::OK);
        assert_eq!(
            h.run(&["ACL", "WHOAMI"]),
            err("NOPERM this user has no permissions to run the 'acl|whoami' command")
        );
        assert!(matches!(
            h.run(&["CL.THROTTLE", "app:1", "1", "1", "1"]),
            Frame::Array(_)
        ));
        assert_eq!(
            h.run(&["CL.THROTTLE", "other:1", "1", "1", "1"]),
            err("NOPERM this user has no permissions to access one of the keys used as arguments")
        );
        assert_eq!(
            h.run(&["FLUSHALL"]),
            err("NOPERM this user has no permissions to run the 'flushall' command")
        );
        assert_eq!(
            h.run(&["POLICY.SET", "p", "RATE", "1/1m"]),
            err("NOPERM this user has no permissions to run the 'policy.set' command")
        );
        let mut admin = h.peer();
        let log = admin.run(&["ACL", "LOG"]);
        let Frame::Array(entries) = log else {
            panic!("ACL LOG: {log:?}")
        };
        assert_eq!(entries.len(), 4);
        let Frame::Map(newest) = &entries[0] else {
            panic!()
        };
        assert_eq!(newest[1], (bulk("reason"), bulk("command")));
        assert_eq!(newest[3], (bulk("object"), bulk("policy.set")));
        assert_eq!(newest[4], (bulk("username"), bulk("app")));
        let Frame::Map(key) = &entries[2] else {
            panic!()
        };
        assert_eq!(key[1], (bulk("reason"), bulk("key")));
        assert_eq!(key[3], (bulk("object"), bulk("other:1")));
    }

    #[test]
    fn exec_checks_again_when_the_rules_changed_after_queuing() {
        let mut admin = Harness::new();
        admin.run(&["ACL", "SETUSER", "app", "on", "nopass", "+@all", "~*"]);
        let mut app = admin.peer();
        app.run(&["AUTH", "app", "x"]);
        app.run(&["MULTI"]);
        app.run(&["SET", "a", "1"]);
        app.run(&["INCR", "b"]);
        admin.run(&["ACL", "SETUSER", "app", "-set"]);
        assert_eq!(
            app.run(&["EXEC"]),
            Frame::Array(vec![
                err(
                    "NOPERM ACLs rules changed between the moment the transaction was \
                     accumulated and the EXEC call. This command is no longer allowed for the \
                     following reason: no permission to execute the command or subcommand"
                ),
                Frame::Integer(1),
            ])
        );
        let Frame::Array(log) = admin.run(&["ACL", "LOG", "1"]) else {
            panic!()
        };
        let Frame::Map(e) = &log[0] else { panic!() };
        assert_eq!(e[2], (bulk("context"), bulk("multi")));
    }

    #[test]
    fn dryrun_getuser_and_cat_answer_like_redis() {
        let mut h = Harness::new();
        h.run(&["ACL", "SETUSER", "ro", "on", "nopass", "+get", "%R~r:*"]);
        assert_eq!(h.run(&["ACL", "DRYRUN", "ro", "GET", "r:1"]), Frame::OK);
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "ro", "SET", "r:1", "x"]),
            bulk("This user has no permissions to run the 'set' command")
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "ro", "GET", "x"]),
            bulk("This user has no permissions to access the 'x' key")
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "nobody", "GET", "x"]),
            err("ERR User 'nobody' not found")
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "ro", "NOSUCH"]),
            err("ERR Command 'NOSUCH' not found")
        );
        let Frame::Map(u) = h.run(&["ACL", "GETUSER", "ro"]) else {
            panic!()
        };
        assert_eq!(u[2], (bulk("commands"), bulk("-@all +get")));
        assert_eq!(u[3], (bulk("keys"), bulk("%R~r:*")));
        assert_eq!(u[4], (bulk("channels"), bulk("")));
        assert_eq!(h.run(&["ACL", "GETUSER", "nobody"]), Frame::Null);
        assert_eq!(
            h.run(&["ACL", "CAT", "nosuch"]),
            err("ERR Unknown category 'nosuch'")
        );
        let Frame::Array(cats) = h.run(&["ACL", "CAT"]) else {
            panic!()
        };
        assert!(cats.contains(&bulk("limiter")) && cats.contains(&bulk("policy")));
        let Frame::Bulk(p) = h.run(&["ACL", "GENPASS"]) else {
            panic!()
        };
        assert_eq!(p.len(), 64);
        let Frame::Bulk(p) = h.run(&["ACL", "GENPASS", "5"]) else {
            panic!()
        };
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn deleting_or_disabling_a_user_closes_its_connections() {
        let mut admin = Harness::new();
        admin.run(&["ACL", "SETUSER", "app", "on", ">pw", "+@all", "~*"]);
        let mut app = admin.peer();
        assert_eq!(app.run(&["AUTH", "app", "pw"]), Frame::OK);
        admin.run(&["ACL", "SETUSER", "app", "off"]);
        assert!(app
            .session
            .info
            .killed
            .load(std::sync::atomic::Ordering::SeqCst));
        let mut app2 = admin.peer();
        assert_eq!(
            app2.run(&["AUTH", "app", "pw"]),
            err("WRONGPASS invalid username-password pair or user is disabled.")
        );
        admin.run(&["ACL", "SETUSER", "app", "on"]);
        assert_eq!(app2.run(&["AUTH", "app", "pw"]), Frame::OK);
        assert_eq!(
            admin.run(&["ACL", "DELUSER", "app", "ghost"]),
            Frame::Integer(1)
        );
        assert!(app2
            .session
            .info
            .killed
            .load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            app2.run(&["PING"]),
            err("NOPERM this user has no permissions to run the 'ping' command")
        );
        assert_eq!(
            admin.run(&["ACL", "DELUSER", "default"]),
            err("ERR The 'default' user cannot be removed")
        );
    }
}
