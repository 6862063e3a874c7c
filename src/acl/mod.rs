//! Access control lists with Redis 7's semantics: users ([`user`]), the command catalog they
//! are written against ([`Catalog`], built by `cmd` from its command table), the registry of
//! users with its change counter ([`Acl`]), the ACL file, and the `ACL LOG`.
//!
//! Depends on nothing above it: `cmd` builds the catalog and asks [`Acl`] questions; this
//! module knows command names and categories only as data. No sockets; the only I/O is the
//! ACL file (`aclfile`), read and written whole.

pub mod user;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use user::{RuleError, User};

/// ACL categories: Redis's, in Redis's order, then limitkv's own.
pub mod category {
    /// Keyspace commands regardless of type.
    pub const KEYSPACE: u64 = 1;
    /// Reads values.
    pub const READ: u64 = 1 << 1;
    /// Writes values.
    pub const WRITE: u64 = 1 << 2;
    /// Sets.
    pub const SET: u64 = 1 << 3;
    /// Sorted sets.
    pub const SORTEDSET: u64 = 1 << 4;
    /// Lists.
    pub const LIST: u64 = 1 << 5;
    /// Hashes.
    pub const HASH: u64 = 1 << 6;
    /// Strings.
    pub const STRING: u64 = 1 << 7;
    /// Bitmaps.
    pub const BITMAP: u64 = 1 << 8;
    /// HyperLogLog.
    pub const HYPERLOGLOG: u64 = 1 << 9;
    /// Geospatial.
    pub const GEO: u64 = 1 << 10;
    /// Streams.
    pub const STREAM: u64 = 1 << 11;
    /// Pub/Sub.
    pub const PUBSUB: u64 = 1 << 12;
    /// Administration.
    pub const ADMIN: u64 = 1 << 13;
    /// O(1) or O(log N).
    pub const FAST: u64 = 1 << 14;
    /// Not fast.
    pub const SLOW: u64 = 1 << 15;
    /// May block the connection.
    pub const BLOCKING: u64 = 1 << 16;
    /// Potentially dangerous.
    pub const DANGEROUS: u64 = 1 << 17;
    /// Connection and session.
    pub const CONNECTION: u64 = 1 << 18;
    /// Transactions.
    pub const TRANSACTION: u64 = 1 << 19;
    /// Scripting.
    pub const SCRIPTING: u64 = 1 << 20;
    /// limitkv: every limiter decision and peek (`CL.THROTTLE`, `RATE.TAKE`, `LIMIT.CHECK`...).
    pub const LIMITER: u64 = 1 << 21;
    /// limitkv: policy administration (`POLICY.*`, `OVERRIDE.*`, allow and deny lists).
    pub const POLICY: u64 = 1 << 22;

    /// Names, in the order `ACL CAT` lists them.
    pub const NAMES: &[(u64, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (BITMAP, "bitmap"),
        (HYPERLOGLOG, "hyperloglog"),
        (GEO, "geo"),
        (STREAM, "stream"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (BLOCKING, "blocking"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (SCRIPTING, "scripting"),
        (LIMITER, "limiter"),
        (POLICY, "policy"),
    ];

    /// The category named `name` (case-insensitive, without `@`).
    pub fn by_name(name: &str) -> Option<u64> {
        NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(c, _)| *c)
    }
}

/// One command or subcommand as ACL rules see it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// Lowercase full name: `get`, `client|list`.
    pub full_name: String,
    /// Bit set of [`category`] constants.
    pub categories: u64,
    /// The container's id, for a subcommand.
    pub parent: Option<usize>,
    /// Subcommand ids, for a container.
    pub children: Vec<usize>,
}

impl CatalogEntry {
    /// An entry without children (filled in by [`Catalog::new`]).
    pub fn new(full_name: &str, categories: u64, parent: Option<usize>) -> CatalogEntry {
        CatalogEntry {
            full_name: full_name.to_owned(),
            categories,
            parent,
            children: Vec::new(),
        }
    }
}

/// Every command and subcommand, numbered: a user's allowed commands are a bit per entry.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// A catalog of `entries` (ids are positions; `parent` refers to earlier positions).
    pub fn new(mut entries: Vec<CatalogEntry>) -> Catalog {
        for id in 0..entries.len() {
            if let Some(p) = entries[id].parent {
                entries[p].children.push(id);
            }
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(id, e)| (e.full_name.clone(), id))
            .collect();
        Catalog { entries, by_name }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `id`.
    pub fn entry(&self, id: usize) -> &CatalogEntry {
        &self.entries[id]
    }

    /// The id of `full_name` (lowercase, `parent|sub` for subcommands).
    pub fn lookup(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(full_name).copied()
    }

    /// The full names in `cat`, in catalog order (`ACL CAT category`).
    pub fn in_category(&self, cat: u64) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.categories & cat != 0)
            .map(|e| e.full_name.as_str())
            .collect()
    }
}

/// What an `ACL LOG` entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The command is not allowed.
    Command,
    /// A key is not allowed.
    Key,
    /// A channel is not allowed.
    Channel,
    /// Authentication failed.
    Auth,
}

impl Denial {
    /// The `reason` field.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Command => "command",
            Denial::Key => "key",
            Denial::Channel => "channel",
            Denial::Auth => "auth",
        }
    }
}

/// Where a denied command was: the `context` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogContext {
    /// Sent by the client.
    Toplevel,
    /// Queued in or run by `MULTI`/`EXEC`.
    Multi,
    /// Called by a script.
    Lua,
}

impl LogContext {
    /// The `context` field.
    pub fn name(self) -> &'static str {
        match self {
            LogContext::Toplevel => "toplevel",
            LogContext::Multi => "multi",
            LogContext::Lua => "lua",
        }
    }
}

/// One `ACL LOG` entry; repeats of the same denial within a minute bump `count`.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Times seen.
    pub count: u64,
    /// What was denied.
    pub reason: Denial,
    /// Where.
    pub context: LogContext,
    /// The command's full name, the key, the channel, or `AUTH`.
    pub object: String,
    /// The user (for auth failures, the name tried).
    pub username: String,
    /// Milliseconds since the epoch of the first occurrence.
    pub created_ms: u64,
    /// ... and of the latest.
    pub updated_ms: u64,
    /// The client's `CLIENT LIST` line at the latest occurrence.
    pub client_info: String,
    /// Increasing id.
    pub entry_id: u64,
}

/// Entries within this many milliseconds of each other are grouped (Redis: 60 s).
const LOG_GROUPING_MS: u64 = 60_000;

#[derive(Debug, Default)]
struct AclLog {
    entries: VecDeque<LogEntry>,
    next_id: u64,
}

/// The users, and a counter that changes with every change to them.
///
/// Connections cache their user's permissions with the counter's value and re-read them when
/// it has moved: one relaxed atomic load per command, on a cache line only written by
/// `ACL SETUSER`/`DELUSER`/`LOAD` and `CONFIG SET requirepass`.
#[derive(Debug)]
pub struct Acl {
    catalog: Arc<Catalog>,
    users: RwLock<BTreeMap<String, Arc<User>>>,
    version: AtomicU64,
    log: Mutex<AclLog>,
    /// Most entries kept in the log (`acllog-max-len`).
    log_max_len: AtomicU64,
}

impl Acl {
    /// Only the `default` user (`on nopass ~* &* +@all`).
    pub fn new(catalog: impl Into<Arc<Catalog>>) -> Acl {
        let catalog = catalog.into();
        let default = User::default_user(&catalog);
        let mut users = BTreeMap::new();
        users.insert(default.name.clone(), Arc::new(default));
        Acl {
            catalog,
            users: RwLock::new(users),
            version: AtomicU64::new(1),
            log: Mutex::default(),
            log_max_len: AtomicU64::new(128),
        }
    }

    /// The command catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Changes with every change to any user.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// The `default` user (it always exists).
    pub fn default_user(&self) -> Arc<User> {
        self.user("default")
            .expect("invariant: the default user cannot be removed")
    }

    /// True while the default user authenticates every connection (enabled and `nopass`), as
    /// new connections do then. (Protected mode looks at `nopass` alone, as Redis does.)
    pub fn default_is_open(&self) -> bool {
        let d = self.default_user();
        d.enabled && d.nopass
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// `requirepass`: the default user's passwords become exactly `password`, or `nopass`.
    pub fn set_default_password(&self, password: Option<&str>) {
        let mut users = self.users.write();
        let mut d = (**users
            .get("default")
            .expect("invariant: the default user cannot be removed"))
        .clone();
        d.passwords.clear();
        d.nopass = false;
        match password {
            Some(p) => d.passwords.push(user::hash_password(p.as_bytes())),
            None => d.nopass = true,
        }
        users.insert(d.name.clone(), Arc::new(d));
        drop(users);
        self.bump();
    }

    /// `ACL SETUSER name rules...`: all rules or none; creates the user if needed. Returns the
    /// user before and after.
    pub fn set_user(
        &self,
        name: &str,
        rules: &[&[u8]],
    ) -> Result<(Option<Arc<User>>, Arc<User>), String> {
        if user::has_spaces(name.as_bytes()) {
            return Err("Usernames can't contain spaces or null characters".into());
        }
        let mut users = self.users.write();
        let before = users.get(name).cloned();
        let mut u = match &before {
            Some(u) => (**u).clone(),
            None => User::new(name, &self.catalog),
        };
        for rule in rules {
            u.apply(&self.catalog, rule).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(rule),
                    e.message()
                )
            })?;
        }
        let after = Arc::new(u);
        users.insert(name.to_owned(), after.clone());
        drop(users);
        self.bump();
        Ok((before, after))
    }

    /// `ACL DELUSER`: removes the named users; the count removed. `default` cannot be removed.
    pub fn delete_users(&self, names: &[String]) -> Result<Vec<String>, String> {
        if names.iter().any(|n| n == "default") {
            return Err("The 'default' user cannot be removed".into());
        }
        let mut users = self.users.write();
        let removed: Vec<String> = names
            .iter()
            .filter(|n| users.remove(n.as_str()).is_some())
            .cloned()
            .collect();
        drop(users);
        if !removed.is_empty() {
            self.bump();
        }
        Ok(removed)
    }

    /// Replaces every user with `users` (the ACL file or `user` config lines), keeping a
    /// default user (added as created, or as configured with `requirepass`, when absent).
    pub fn replace_all(&self, mut users: BTreeMap<String, Arc<User>>, requirepass: Option<&str>) {
        if !users.contains_key("default") {
            let mut d = User::default_user(&self.catalog);
            if let Some(p) = requirepass {
                d.nopass = false;
                d.passwords = vec![user::hash_password(p.as_bytes())];
            }
            users.insert(d.name.clone(), Arc::new(d));
        }
        *self.users.write() = users;
        self.bump();
    }

    /// Parses `user NAME rules...` lines (the ACL file's format; `file` names it in errors)
    /// into a set of users, all or nothing, with Redis's `ACL LOAD` error texts.
    pub fn parse_users(
        &self,
        text: &str,
        file: &str,
    ) -> Result<BTreeMap<String, Arc<User>>, String> {
        let mut errors = String::new();
        let mut users: BTreeMap<String, Arc<User>> = BTreeMap::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            let linenum = i + 1;
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
            if words.first() != Some(&"user") || words.len() < 2 {
                errors.push_str(&format!(
                    "{file}:{linenum} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = words[1];
            if user::has_spaces(name.as_bytes()) {
                errors.push_str(&format!(
                    "'{file}:{linenum}: username '{name}' contains invalid characters. "
                ));
                continue;
            }
            if users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{name}' found on line {linenum}. "
                ));
                continue;
            }
            let mut u = User::new(name, &self.catalog);
            let mut syntax_error = false;
            for rule in &words[2..] {
                let rule = rule.trim_matches(['\t', '\r', '\n']);
                if let Err(e) = u.apply(&self.catalog, rule.as_bytes()) {
                    if e == RuleError::UnknownName {
                        errors.push_str(&format!(
                            "{file}:{linenum}: Error in applying operation '{rule}': {}. ",
                            e.message()
                        ));
                    } else if !syntax_error {
                        errors.push_str(&format!("{file}:{linenum}: {}. ", e.message()));
                        syntax_error = true;
                    }
                }
            }
            users.insert(name.to_owned(), Arc::new(u));
        }
        if errors.is_empty() {
            Ok(users)
        } else {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was \
                 performed",
            );
            Err(errors)
        }
    }

    /// `ACL LOAD` / start-up: reads `path` and replaces every user, or changes nothing.
    pub fn load_file(&self, path: &Path, requirepass: Option<&str>) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("Error loading ACLs, opening file '{}': {e}", path.display()))?;
        let users = self.parse_users(&text, &path.display().to_string())?;
        self.replace_all(users, requirepass);
        Ok(())
    }

    /// Every user as a `user NAME rules` line, by name (`ACL LIST`, `ACL SAVE`).
    pub fn list(&self) -> Vec<String> {
        self.users()
            .iter()
            .map(|u| format!("user {} {}", u.name, u.describe(&self.catalog)))
            .collect()
    }

    /// `ACL SAVE`: writes the users to a temporary file beside `path`, syncs it and renames it
    /// over `path`, so a crash leaves the old file or the new one, never a mix.
    pub fn save_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut text = String::new();
        for line in self.list() {
            text.push_str(&line);
            text.push('\n');
        }
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}-{millis}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Records a denial in the `ACL LOG` (grouping a repeat of a recent one).
    pub fn log(
        &self,
        reason: Denial,
        context: LogContext,
        object: &str,
        username: &str,
        client_info: String,
        now_ms: u64,
    ) {
        let max = usize::try_from(self.log_max_len.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let mut log = self.log.lock();
        let same = log.entries.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && e.updated_ms.abs_diff(now_ms) <= LOG_GROUPING_MS
                && e.object == object
                && e.username == username
        });
        if let Some(at) = same {
            let mut e = log.entries.remove(at).expect("invariant: found above");
            e.count += 1;
            e.updated_ms = now_ms;
            e.client_info = client_info;
            log.entries.push_front(e);
            return;
        }
        let entry_id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object: object.to_owned(),
            username: username.to_owned(),
            created_ms: now_ms,
            updated_ms: now_ms,
            client_info,
            entry_id,
        });
        log.entries.truncate(max);
    }

    /// The newest `count` log entries, newest first.
    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log
            .lock()
            .entries
            .iter()
            .take(count)
            .cloned()
            .collect()
    }

    /// `ACL LOG RESET`.
    pub fn reset_log(&self) {
        self.log.lock().entries.clear();
    }

    /// `acllog-max-len`.
    pub fn set_log_max_len(&self, n: u64) {
        self.log_max_len.store(n, Ordering::Relaxed);
        let mut log = self.log.lock();
        let max = usize::try_from(n).unwrap_or(usize::MAX);
        log.entries.truncate(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Acl {
        Acl::new(Catalog::new(vec![
            CatalogEntry::new("get", category::READ | category::STRING, None),
            CatalogEntry::new("set", category::WRITE | category::STRING, None),
        ]))
    }

    #[test]
    fn set_user_is_all_or_nothing_and_bumps_the_version() {
        let acl = acl();
        let v = acl.version();
        let err = acl
            .set_user("app", &[b"on", b">pw", b"+nosuch"])
            .unwrap_err();
        assert_eq!(
            err,
            "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        assert!(acl.user("app").is_none());
        assert_eq!(acl.version(), v);
        acl.set_user("app", &[b"on", b">pw", b"+get", b"~app:*"])
            .unwrap();
        assert!(acl.version() > v);
        assert_eq!(
            acl.list(),
            [
                format!(
                    "user app on #{} ~app:* resetchannels -@all +@read",
                    user::hash_password(b"pw")
                ),
                "user default on nopass ~* &* +@all".to_owned(),
            ]
        );
        assert_eq!(
            acl.set_user("a b", &[]).unwrap_err(),
            "Usernames can't contain spaces or null characters"
        );
    }

    #[test]
    fn the_file_round_trips_and_bad_files_change_nothing() {
        let acl = acl();
        acl.set_user("app", &[b"on", b">pw", b"+get"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.acl");
        acl.save_file(&path).unwrap();
        let other = self::acl();
        other.load_file(&path, None).unwrap();
        assert_eq!(other.list(), acl.list());
        std::fs::write(&path, "user x on +nosuch\nfoo bar\n").unwrap();
        let err = other.load_file(&path, None).unwrap_err();
        let file = path.display();
        assert_eq!(
            err,
            format!(
                "{file}:1: Error in applying operation '+nosuch': Unknown command or category \
                 name in ACL. {file}:2 should start with user keyword followed by the username. \
                 WARNING: ACL errors detected, no change to the previously active ACL rules was \
                 performed"
            )
        );
        assert_eq!(other.list(), acl.list(), "nothing changed");
        // A file without a default user keeps an open default user, or requirepass's.
        std::fs::write(&path, "user app on nopass +@all ~*\n").unwrap();
        other.load_file(&path, Some("s3cret")).unwrap();
        assert!(other.default_user().accepts(b"s3cret"));
        assert!(!other.default_is_open());
    }

    #[test]
    fn log_groups_repeats_and_is_bounded() {
        let acl = acl();
        acl.set_log_max_len(2);
        acl.log(
            Denial::Key,
            LogContext::Toplevel,
            "k",
            "app",
            "c1".into(),
            1_000,
        );
        acl.log(
            Denial::Key,
            LogContext::Toplevel,
            "k",
            "app",
            "c2".into(),
            2_000,
        );
        let e = acl.log_entries(10);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].count, e[0].client_info.as_str()), (2, "c2"));
        acl.log(
            Denial::Key,
            LogContext::Toplevel,
            "k",
            "app",
            "c3".into(),
            70_000,
        );
        acl.log(
            Denial::Command,
            LogContext::Multi,
            "set",
            "app",
            "c".into(),
            70_000,
        );
        let e = acl.log_entries(10);
        assert_eq!(e.len(), 2, "bounded by acllog-max-len");
        assert_eq!(e[0].object, "set");
    }
}
