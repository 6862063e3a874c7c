//! The ACL permission check every command passes (`check`), authentication, and the catalog
//! of commands ACL rules are written against, built from the command table with each
//! command's categories ([`super::docs::acl_bits`]). The `ACL` commands are in [`super::acl`].
//!
//! The check costs one relaxed atomic load per command for a user with every permission (the
//! `default` user unless configured otherwise): `refresh` re-reads the user only when the
//! ACL registry changed, and an unrestricted user skips everything else.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{full_name, ClientInfo, CommandSpec, Ctx, Shared};
use crate::acl::{Acl, Catalog, CatalogEntry, Denial, LogContext, User};
use crate::error::CommandError;

/// What the check needs of one command or subcommand: its catalog id and its keys' access.
struct SpecAcl {
    id: usize,
    keys: super::docs::KeyAccess,
}

type ById = HashMap<usize, SpecAcl, foldhash::fast::RandomState>;

/// The catalog, and each spec's id and key access (by the spec's address: specs are statics).
static CATALOG: LazyLock<(Arc<Catalog>, ById)> = LazyLock::new(|| {
    let mut entries = Vec::new();
    let mut specs = ById::default();
    let mut add = |parent: Option<&'static CommandSpec>, spec: &'static CommandSpec, up| {
        let id = entries.len();
        specs.insert(
            spec as *const CommandSpec as usize,
            SpecAcl {
                id,
                keys: super::docs::key_access(parent, spec),
            },
        );
        entries.push(CatalogEntry::new(
            &full_name(parent, spec),
            super::docs::acl_bits(parent, spec),
            up,
        ));
        id
    };
    for spec in super::all_commands() {
        let parent = add(None, spec, None);
        for sub in spec.subcommands {
            add(Some(spec), sub, Some(parent));
        }
    }
    (Arc::new(Catalog::new(entries)), specs)
});

/// A registry with only the `default` user, over the command table's catalog (shared: one
/// catalog per process, however many servers or test harnesses).
pub fn new_acl() -> Acl {
    Acl::new(CATALOG.0.clone())
}

fn spec_acl(spec: &'static CommandSpec) -> Option<&'static SpecAcl> {
    CATALOG.1.get(&(spec as *const CommandSpec as usize))
}

/// Re-reads the session's user if any user changed since it was read. A deleted user (its
/// clients are being closed) keeps no permission at all.
pub(crate) fn refresh(ctx: &mut Ctx<'_>) {
    let acl = &ctx.shared.acl;
    let version = acl.version();
    if version == ctx.session.acl_version {
        return;
    }
    let name = ctx.session.user.name.clone();
    ctx.session.user = acl
        .user(&name)
        .unwrap_or_else(|| Arc::new(User::new(&name, acl.catalog())));
    ctx.session.acl_version = version;
}

/// Redis's `ACLCheckAllPerm`: may the session's user run `checked` (the subcommand of
/// `spec`, or `spec` itself) with these arguments? A denial is logged in the `ACL LOG` under
/// `context` and returned as the `NOPERM` error.
pub(crate) fn check(
    ctx: &mut Ctx<'_>,
    spec: &'static CommandSpec,
    checked: &'static CommandSpec,
    req: &[Bytes],
    context: LogContext,
) -> Result<(), CommandError> {
    if ctx.session.user.selector.is_unrestricted() {
        return Ok(());
    }
    // The user is borrowed, not cloned: every connection shares its Arc, and a reference
    // count changed per command would bounce one cache line between the cores.
    denial(&ctx.session.user, spec, checked, req).map_err(|(reason, object, error)| {
        log(ctx, reason, context, &object);
        error
    })
}

/// Why `user` may not run `checked` (of `spec`) with `req`, if it may not: what to log, the
/// object (command full name, key or channel) and the error to answer.
pub(crate) fn denial(
    user: &User,
    spec: &'static CommandSpec,
    checked: &'static CommandSpec,
    req: &[Bytes],
) -> Result<(), (Denial, String, CommandError)> {
    let sel = &user.selector;
    let acl = spec_acl(checked);
    let parent = (!std::ptr::eq(spec, checked)).then_some(spec);
    // The first argument, for `+select|0`-style rules (after the subcommand, for one).
    let first_arg = req
        .get(if parent.is_some() { 2 } else { 1 })
        .map(|a| &a[..]);
    if !checked.has(NO_AUTH) && !acl.is_some_and(|a| sel.allows_command(a.id, first_arg)) {
        let name = full_name(parent, checked);
        return Err((
            Denial::Command,
            name.clone(),
            CommandError::NoPermCommand(name),
        ));
    }
    if let (false, Some(acl)) = (sel.all_keys(), acl) {
        for (i, pos) in super::key_positions(checked, req).enumerate() {
            let Some(key) = req.get(pos) else { break };
            if !sel.allows_key(key, acl.keys.need(i, req)) {
                let key = args::text(key);
                return Err((Denial::Key, key, CommandError::NoPermKey));
            }
        }
    }
    if !sel.all_channels() && checked.has(CHANNELS) {
        let pattern = checked.has(CHANNEL_PATTERNS);
        // PUBLISH channel message: only the first argument; SUBSCRIBE ch...: all of them.
        let end = if checked.arity > 0 {
            usize::try_from(checked.arity - 1).unwrap_or(0)
        } else {
            req.len()
        };
        for channel in req.get(1..end.min(req.len())).unwrap_or(&[]) {
            if !sel.allows_channel(channel, pattern) {
                let channel = args::text(channel);
                return Err((Denial::Channel, channel, CommandError::NoPermChannel));
            }
        }
    }
    Ok(())
}

/// The first of `keys` that `user`'s key patterns do not allow with `need`
/// ([`crate::acl::user::KEY_READ`] / `KEY_WRITE`), if any: the one check of keys a command
/// derives server-side (a policy's rule keys from an identity), shared by the RESP commands
/// (`check_derived_keys`) and the HTTP check API (`check_derived_keys_as`), which log a
/// refusal in the `ACL LOG`.
pub fn refused_key<'k>(user: &User, keys: &'k [Bytes], need: u8) -> Option<&'k Bytes> {
    if user.selector.all_keys() {
        return None;
    }
    keys.iter().find(|key| !user.selector.allows_key(key, need))
}

/// Checks keys a command derives server-side (a policy's rule keys from an identity) against
/// the session's key patterns, needing `need` ([`crate::acl::user::KEY_READ`] / `KEY_WRITE`).
pub(crate) fn check_derived_keys(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    need: u8,
) -> Result<(), CommandError> {
    let Some(key) = refused_key(&ctx.session.user, keys, need) else {
        return Ok(());
    };
    let context = if ctx.locked.is_some() {
        LogContext::Multi
    } else {
        LogContext::Toplevel
    };
    log(ctx, Denial::Key, context, &args::text(key));
    Err(CommandError::NoPermKey)
}

/// [`check`] for a surface without a session (the HTTP check API): may `user` run `spec` with
/// `req`? A denial is logged in the `ACL LOG` with `client()` as the entry's client info.
pub(crate) fn check_command_as(
    shared: &Shared,
    user: &User,
    spec: &'static CommandSpec,
    req: &[Bytes],
    client: &dyn Fn() -> String,
) -> Result<(), CommandError> {
    if user.selector.is_unrestricted() {
        return Ok(());
    }
    denial(user, spec, spec, req).map_err(|(reason, object, error)| {
        log_as(shared, user, reason, &object, client);
        error
    })
}

/// [`check_derived_keys`] for a surface without a session (the HTTP check API), logging a
/// denial with `client()` as the entry's client info.
pub(crate) fn check_derived_keys_as(
    shared: &Shared,
    user: &User,
    keys: &[Bytes],
    need: u8,
    client: &dyn Fn() -> String,
) -> Result<(), CommandError> {
    match refused_key(user, keys, need) {
        None => Ok(()),
        Some(key) => {
            log_as(shared, user, Denial::Key, &args::text(key), client);
            Err(CommandError::NoPermKey)
        }
    }
}

fn log_as(shared: &Shared, user: &User, reason: Denial, object: &str, client: &dyn Fn() -> String) {
    shared.acl.log(
        reason,
        LogContext::Toplevel,
        object,
        &user.name,
        client(),
        shared.engine.clock.now().as_millis(),
    );
}

/// The error a queued command gets when `EXEC` finds it no longer allowed (Redis's text).
pub(crate) fn exec_denial(e: &CommandError) -> CommandError {
    let reason = match e {
        CommandError::NoPermKey => "no permission to touch the specified keys",
        CommandError::NoPermChannel => {
            "no permission to access one of the channels used as arguments"
        }
        _ => "no permission to execute the command or subcommand",
    };
    CommandError::Coded(format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and the \
         EXEC call. This command is no longer allowed for the following reason: {reason}"
    ))
}

/// The text a script's `redis.call` gets for a denial (Redis's `getAclErrorMessage`).
pub(crate) fn script_denial(e: &CommandError) -> String {
    let why = match e {
        CommandError::NoPermKey => {
            "can't access at least one of the keys mentioned in the command arguments"
        }
        CommandError::NoPermChannel => "can't publish to the channel mentioned in the command",
        _ => "can't run this command or subcommand",
    };
    format!("The user executing the script {why}")
}

fn log(ctx: &Ctx<'_>, reason: Denial, context: LogContext, object: &str) {
    let user = ctx.session.user.name.clone();
    ctx.shared.acl.log(
        reason,
        context,
        object,
        &user,
        ctx.session.info.describe(),
        ctx.now.as_millis(),
    );
}

/// Authenticates the session as `user` with `pass` (`AUTH`, `HELLO ... AUTH`); a failure is
/// logged with `object` (the command as sent) and answers `WRONGPASS`.
pub(crate) fn authenticate(
    ctx: &mut Ctx<'_>,
    user: &[u8],
    pass: &[u8],
    object: &[u8],
) -> Result<(), CommandError> {
    let acl = &ctx.shared.acl;
    let version = acl.version();
    let name = String::from_utf8_lossy(user);
    match acl.user(&name).filter(|u| u.accepts(pass)) {
        Some(u) => {
            *ctx.session.info.user.lock() = Arc::from(u.name.as_str());
            ctx.session.user = u;
            ctx.session.acl_version = version;
            ctx.session.authenticated = true;
            Ok(())
        }
        None => {
            let context = if ctx.session.multi.is_some() {
                LogContext::Multi
            } else {
                LogContext::Toplevel
            };
            ctx.shared.acl.log(
                Denial::Auth,
                context,
                &args::text(object),
                &name,
                ctx.session.info.describe(),
                ctx.now.as_millis(),
            );
            Err(CommandError::WrongPass)
        }
    }
}

/// Back to the `default` user, authenticated only if it needs no password (`RESET`).
pub(crate) fn reset_user(ctx: &mut Ctx<'_>) {
    let acl = &ctx.shared.acl;
    ctx.session.acl_version = acl.version();
    ctx.session.user = acl.default_user();
    ctx.session.authenticated = ctx.session.user.enabled && ctx.session.user.nopass;
    *ctx.session.info.user.lock() = Arc::from("default");
}

/// Closes the connections authenticated as `name` for which `close` says so.
pub(crate) fn kill_clients(ctx: &Ctx<'_>, name: &str, close: impl Fn(&ClientInfo) -> bool) {
    for c in ctx.shared.clients.snapshot() {
        if &**c.user.lock() == name && close(&c) {
            c.kill();
        }
    }
}

/// After a user changed: its connections close if it was disabled, and its subscribers close
/// if they hold a subscription the new rules no longer allow (Redis's
/// `ACLKillPubsubClientsIfNeeded`).
pub(crate) fn enforce_change(ctx: &Ctx<'_>, before: Option<&User>, after: &User) {
    let Some(before) = before else { return };
    if before.enabled && !after.enabled {
        // The connection that disabled the user keeps going (it may be the administrator
        // disabling its own user, `default` say, as Redis's tests do), like CLIENT KILL's SKIPME.
        let me = ctx.session.info.id;
        kill_clients(ctx, &after.name, |c| c.id != me);
        return;
    }
    if after.selector.all_channels() {
        return;
    }
    use crate::pubsub::ChannelKind;
    kill_clients(ctx, &after.name, |c| {
        let sub = &c.pubsub;
        [ChannelKind::Global, ChannelKind::Shard]
            .into_iter()
            .flat_map(|k| sub.channels(k))
            .any(|ch| !after.selector.allows_channel(&ch, false))
            || sub
                .patterns()
                .iter()
                .any(|p| !after.selector.allows_channel(p, true))
    });
}

/// Applies the configured users at start: `requirepass`, then `user` lines of the config file
/// or the `aclfile` (not both, as in Redis).
pub fn load_at_start(shared: &super::Shared) -> Result<(), String> {
    let cfg = shared.engine.config.read().clone();
    if cfg.aclfile.is_some() && !cfg.users.is_empty() {
        return Err(
            "Configuring Redis with users defined in redis.conf and at the same setting \
                    an ACL file path is invalid. This setup is very likely to lead to \
                    configuration errors and security holes, please define either an ACL file \
                    or declare users directly in your redis.conf, but not both."
                .into(),
        );
    }
    shared.acl.set_log_max_len(cfg.acllog_max_len);
    if !cfg.users.is_empty() {
        let text: Vec<String> = cfg.users.iter().map(|u| format!("user {u}")).collect();
        let file = cfg
            .config_file
            .as_ref()
            .map_or("config".to_owned(), |p| p.display().to_string());
        let users = shared.acl.parse_users(&text.join("\n"), &file)?;
        shared.acl.replace_all(users, cfg.requirepass.as_deref());
    }
    if let Some(path) = &cfg.aclfile {
        shared
            .acl
            .load_file(path, cfg.requirepass.as_deref())
            .map_err(|e| format!("Aborting startup because of ACL errors: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::category;

    #[test]
    fn every_command_and_subcommand_is_in_the_catalog_with_categories() {
        let (catalog, ids) = &*CATALOG;
        assert_eq!(catalog.len(), ids.len());
        for id in 0..catalog.len() {
            let e = catalog.entry(id);
            assert_ne!(e.categories, 0, "{} has a category", e.full_name);
        }
        let cat = |name: &str| catalog.entry(catalog.lookup(name).unwrap()).categories;
        assert_ne!(cat("cl.throttle") & category::LIMITER, 0);
        assert_ne!(cat("limit.check") & category::LIMITER, 0);
        assert_ne!(cat("policy.set") & category::POLICY, 0);
        assert_eq!(cat("policy.set") & category::LIMITER, 0);
        assert_ne!(cat("flushall") & category::DANGEROUS, 0);
        assert_ne!(cat("keys") & category::DANGEROUS, 0);
        assert_ne!(cat("client|kill") & category::ADMIN, 0);
        assert_ne!(cat("get") & category::READ, 0);
    }
}
