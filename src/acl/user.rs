//! One ACL user as Redis 7 defines it: flags (`on`/`off`, `nopass`), SHA-256 password hashes,
//! and one selector of permissions: the commands it may run (a bit per entry of the
//! [`Catalog`], plus the "all commands" and "future commands" marks `+@all` sets), the key
//! patterns (`~`, `%R~`, `%W~`, `allkeys`) and the Pub/Sub channel patterns (`&`,
//! `allchannels`).
//!
//! [`User::apply`] applies one rule with Redis's errors; [`User::describe`] renders the user
//! back as the rules `ACL LIST` and the ACL file show (commands as the best-fitting categories
//! plus single commands, the way Redis's `ACLDescribeSelectorCommandRules` does).
//! Pure: no I/O, no clock.

use sha2::{Digest, Sha256};

use super::{category, Catalog};
use crate::glob::glob_match;

/// Read access to matching keys (`%R~`).
pub const KEY_READ: u8 = 1;
/// Write access to matching keys (`%W~`).
pub const KEY_WRITE: u8 = 2;
/// Both (`~`).
pub const KEY_ALL: u8 = KEY_READ | KEY_WRITE;

/// Why a rule was refused: Redis's `ACLSetUserStringError` texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    /// `+cmd` / `+@cat` naming nothing known.
    UnknownName,
    /// Anything else malformed.
    Syntax,
    /// A key pattern after `allkeys`.
    KeyAfterAll,
    /// A channel pattern after `allchannels`.
    ChannelAfterAll,
    /// `<pass` / `!hash` for a password the user does not have.
    NoSuchPassword,
    /// `#hash` that is not 64 lowercase hex digits.
    BadHash,
    /// `+cmd|sub` where `cmd|sub` is itself a subcommand.
    SubcommandFirstArg,
    /// Selectors, `(...)`, which limitkv does not support.
    Selectors,
}

impl RuleError {
    /// Redis's explanation.
    pub fn message(self) -> &'static str {
        match self {
            RuleError::UnknownName => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeyAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and \
                 does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::ChannelAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid \
                 and does not have any effect. Try 'resetchannels' to start with an empty list of \
                 channels"
            }
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase \
                 hexadecimal characters"
            }
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
            RuleError::Selectors => "Selectors are not supported by limitkv",
        }
    }
}

/// A key pattern with the access it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// [`KEY_READ`], [`KEY_WRITE`] or both.
    pub flags: u8,
    /// Glob pattern.
    pub pattern: Vec<u8>,
}

/// What a user may run and touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// One bit per catalog entry.
    allowed: Vec<u64>,
    /// Every command, without looking at bits (`+@all`; cleared when any command is removed).
    all_commands: bool,
    /// Set by `+@all`/`allcommands`, cleared only by `-@all`/`nocommands`: the user would also
    /// get commands added later, so its rules are described starting from `+@all`.
    future: bool,
    /// Every key (`allkeys`, `~*`).
    all_keys: bool,
    /// Key patterns, in the order given.
    keys: Vec<KeyPattern>,
    /// Every channel (`allchannels`, `&*`).
    all_channels: bool,
    /// Channel patterns, in the order given.
    channels: Vec<Vec<u8>>,
    /// First arguments allowed for commands whose bit is not set (`+select|0`, Redis's
    /// deprecated first-arg rules for commands without subcommands), by catalog id.
    first_args: std::collections::BTreeMap<usize, Vec<String>>,
}

impl Selector {
    fn empty(catalog: &Catalog) -> Selector {
        Selector {
            allowed: vec![0; catalog.len().div_ceil(64)],
            all_commands: false,
            future: false,
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            first_args: std::collections::BTreeMap::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
                self.all_commands = false;
            }
        }
    }

    /// Allows or denies catalog entry `id` and, for a container, all its subcommands; its
    /// first-arg rules go (Redis's `ACLChangeSelectorPerm`).
    fn change(&mut self, catalog: &Catalog, id: usize, on: bool) {
        self.set_bit(id, on);
        self.first_args.remove(&id);
        for &child in &catalog.entry(id).children {
            self.set_bit(child, on);
        }
    }

    fn change_category(&mut self, catalog: &Catalog, cat: u64, on: bool) {
        for id in 0..catalog.len() {
            if catalog.entry(id).categories & cat != 0 {
                // A matching container also switches its subcommands, as in Redis; each
                // subcommand that matches on its own is switched again below.
                self.change(catalog, id, on);
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        for w in &mut self.allowed {
            *w = if on { u64::MAX } else { 0 };
        }
        self.all_commands = on;
        self.future = on;
        self.first_args.clear();
    }

    /// May entry `id` run with `first_arg` (its first argument, if any)?
    pub fn allows_command(&self, id: usize, first_arg: Option<&[u8]>) -> bool {
        self.all_commands
            || self.bit(id)
            || first_arg.is_some_and(|a| {
                self.first_args.get(&id).is_some_and(|allowed| {
                    allowed.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(a))
                })
            })
    }

    /// May a key needing `need` ([`KEY_READ`] / [`KEY_WRITE`]) be touched?
    pub fn allows_key(&self, key: &[u8], need: u8) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|p| p.flags & need == need && glob_match(&p.pattern, key))
    }

    /// May `channel` be published to or subscribed to (`pattern`: a `PSUBSCRIBE` pattern,
    /// which must equal an ACL pattern literally, as in Redis)?
    pub fn allows_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if pattern {
                    p.as_slice() == channel
                } else {
                    glob_match(p, channel)
                }
            })
    }

    /// Every key, every channel and every command: nothing to check.
    pub fn is_unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Every key allowed (no key checks needed).
    pub fn all_keys(&self) -> bool {
        self.all_keys
    }

    /// Every channel allowed.
    pub fn all_channels(&self) -> bool {
        self.all_channels
    }

    fn apply(&mut self, catalog: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match lower.as_slice() {
            b"allkeys" | b"~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            b"allchannels" | b"&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => self.set_all(true),
            b"nocommands" | b"-@all" => self.set_all(false),
            _ => return self.apply_pattern_or_command(catalog, op),
        }
        Ok(())
    }

    fn apply_pattern_or_command(&mut self, catalog: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        match op.first() {
            Some(b'~' | b'%') => {
                if self.all_keys {
                    return Err(RuleError::KeyAfterAll);
                }
                let (flags, pattern) = key_pattern(op)?;
                match self.keys.iter_mut().find(|p| p.pattern == pattern) {
                    Some(existing) => existing.flags |= flags,
                    None => self.keys.push(KeyPattern {
                        flags,
                        pattern: pattern.to_vec(),
                    }),
                }
            }
            Some(b'&') => {
                if self.all_channels {
                    return Err(RuleError::ChannelAfterAll);
                }
                let pattern = &op[1..];
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|p| p == pattern) {
                    self.channels.push(pattern.to_vec());
                }
            }
            Some(sign @ (b'+' | b'-')) => {
                let on = *sign == b'+';
                let name = std::str::from_utf8(&op[1..]).map_err(|_| RuleError::UnknownName)?;
                if let Some(cat) = name.strip_prefix('@') {
                    let cat = category::by_name(cat).ok_or(RuleError::UnknownName)?;
                    self.change_category(catalog, cat, on);
                } else {
                    match command_rule(catalog, name, on)? {
                        CommandRule::Whole(id) => self.change(catalog, id, on),
                        CommandRule::FirstArg(id, arg) => {
                            let args = self.first_args.entry(id).or_default();
                            if !args.iter().any(|a| a.eq_ignore_ascii_case(&arg)) {
                                args.push(arg);
                            }
                        }
                    }
                }
            }
            _ => return Err(RuleError::Syntax),
        }
        Ok(())
    }

    /// The selector as rules: keys, channels, then commands (Redis's `ACLDescribeSelector`).
    fn describe(&self, catalog: &Catalog) -> String {
        let mut out = String::new();
        if self.all_keys {
            out.push_str("~* ");
        } else {
            for p in &self.keys {
                out.push_str(&pattern_text(p));
                out.push(' ');
            }
        }
        if self.all_channels {
            out.push_str("&* ");
        } else {
            out.push_str("resetchannels ");
            for c in &self.channels {
                out.push('&');
                out.push_str(&String::from_utf8_lossy(c));
                out.push(' ');
            }
        }
        out.push_str(&self.describe_commands(catalog));
        out
    }

    /// The command rules alone: `+@all` or `-@all`, then the categories that fit best, then
    /// single commands until the bits match exactly (Redis's `ACLDescribeSelectorCommandRules`).
    pub fn describe_commands(&self, catalog: &Catalog) -> String {
        let additive = !self.future;
        let mut rules = vec![if additive { "-@all" } else { "+@all" }.to_owned()];
        let mut fake = Selector::empty(catalog);
        fake.set_all(!additive);
        // `temp` holds the bits still to explain: each applied category is removed from it
        // (additive) or added back (subtractive), so it is not counted again.
        let mut temp = self.clone();
        let mut applied = vec![false; category::NAMES.len()];
        loop {
            let mut best: Option<usize> = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, &(cat, _)) in category::NAMES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(catalog, cat);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(j);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(j) = best else { break };
            let (cat, name) = category::NAMES[j];
            fake.change_category(catalog, cat, additive);
            temp.change_category(catalog, cat, !additive);
            rules.push(format!("{}@{name}", if additive { '+' } else { '-' }));
            applied[j] = true;
        }
        for id in 0..catalog.len() {
            let want = self.bit(id);
            if want != fake.bit(id) {
                rules.push(format!(
                    "{}{}",
                    if want { '+' } else { '-' },
                    catalog.entry(id).full_name
                ));
                fake.change(catalog, id, want);
            }
            if !want {
                for arg in self.first_args.get(&id).into_iter().flatten() {
                    rules.push(format!("+{}|{arg}", catalog.entry(id).full_name));
                }
            }
        }
        debug_assert_eq!(
            fake.allowed, self.allowed,
            "described rules rebuild the bits"
        );
        rules.join(" ")
    }

    fn count_category(&self, catalog: &Catalog, cat: u64) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for id in 0..catalog.len() {
            if catalog.entry(id).categories & cat != 0 {
                if self.bit(id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// The key patterns as `ACL GETUSER` shows them.
    pub fn keys_text(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(pattern_text)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as `ACL GETUSER` shows them.
    pub fn channels_text(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a `+cmd`, `-cmd` or `+cmd|sub` rule names.
enum CommandRule {
    /// A command or subcommand (a container with all its subcommands).
    Whole(usize),
    /// One first argument of a command without subcommands (`+select|0`), as given.
    FirstArg(usize, String),
}

fn command_rule(catalog: &Catalog, name: &str, on: bool) -> Result<CommandRule, RuleError> {
    let lower = name.to_ascii_lowercase();
    if let Some((parent, sub)) = lower.rsplit_once('|') {
        let parent_id = catalog.lookup(parent).ok_or(RuleError::UnknownName)?;
        if catalog.entry(parent_id).parent.is_some() {
            return Err(RuleError::SubcommandFirstArg);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if catalog.entry(parent_id).children.is_empty() {
            // `-select|0` names no command, as in Redis; `+select|0` allows a first argument.
            if !on {
                return Err(RuleError::UnknownName);
            }
            let arg = &name[name.len() - sub.len()..];
            return Ok(CommandRule::FirstArg(parent_id, arg.to_owned()));
        }
    }
    catalog
        .lookup(&lower)
        .map(CommandRule::Whole)
        .ok_or(RuleError::UnknownName)
}

/// Parses `~pattern`, `%R~pattern`, `%W~pattern`, `%RW~pattern`.
fn key_pattern(op: &[u8]) -> Result<(u8, &[u8]), RuleError> {
    let (flags, rest) = if op[0] == b'%' {
        let mut flags = 0;
        let mut i = 1;
        loop {
            match op.get(i).map(u8::to_ascii_uppercase) {
                Some(b'R') if flags & KEY_READ == 0 => flags |= KEY_READ,
                Some(b'W') if flags & KEY_WRITE == 0 => flags |= KEY_WRITE,
                Some(b'~') => break,
                _ => return Err(RuleError::Syntax),
            }
            i += 1;
        }
        if flags == 0 {
            return Err(RuleError::Syntax);
        }
        (flags, &op[i + 1..])
    } else {
        (KEY_ALL, &op[1..])
    };
    if has_spaces(rest) {
        return Err(RuleError::Syntax);
    }
    Ok((flags, rest))
}

fn pattern_text(p: &KeyPattern) -> String {
    let prefix = match p.flags {
        KEY_READ => "%R~",
        KEY_WRITE => "%W~",
        _ => "~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
}

/// Spaces and NUL bytes are refused in names and patterns (Redis's `ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c.is_ascii_whitespace() || c == 0 || c == 0x0b)
}

/// The SHA-256 of `password`, as 64 lowercase hex digits (how Redis stores passwords).
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares two equal-length hashes in time independent of where they differ.
fn hash_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An ACL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: String,
    /// `on`: it may authenticate.
    pub enabled: bool,
    /// `nopass`: any password authenticates it.
    pub nopass: bool,
    /// SHA-256 hex digests of its passwords, in the order added.
    pub passwords: Vec<String>,
    /// `sanitize-payload` (`Some(true)`) or `skip-sanitize-payload` (`Some(false)`), shown only
    /// once set, as Redis 7.0 shows it (`reset` sets it). limitkv has no `RESTORE`, so it only
    /// round-trips.
    pub sanitize_payload: Option<bool>,
    /// What it may do.
    pub selector: Selector,
}

impl User {
    /// A new user as Redis creates one: `off`, no passwords, no commands, no keys, no channels
    /// (Redis 7's default `acl-pubsub-default resetchannels`).
    pub fn new(name: &str, catalog: &Catalog) -> User {
        User {
            name: name.to_owned(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            sanitize_payload: None,
            selector: Selector::empty(catalog),
        }
    }

    /// The `default` user: `on nopass ~* &* +@all`.
    pub fn default_user(catalog: &Catalog) -> User {
        let mut u = User::new("default", catalog);
        for rule in ["on", "nopass", "~*", "&*", "+@all"] {
            u.apply(catalog, rule.as_bytes())
                .expect("invariant: the default user's rules are valid");
        }
        u
    }

    /// Applies one rule (`ACL SETUSER` argument or ACL file word).
    pub fn apply(&mut self, catalog: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        match op.to_ascii_lowercase().as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"sanitize-payload" => self.sanitize_payload = Some(true),
            b"skip-sanitize-payload" => self.sanitize_payload = Some(false),
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"reset" => {
                self.nopass = false;
                self.passwords.clear();
                self.enabled = false;
                self.sanitize_payload = Some(true);
                self.selector = Selector::empty(catalog);
            }
            b"clearselectors" => {}
            _ => match op[0] {
                b'>' | b'#' => {
                    let hash = if op[0] == b'>' {
                        hash_password(&op[1..])
                    } else if valid_hash(&op[1..]) {
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    } else {
                        return Err(RuleError::BadHash);
                    };
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let hash = if op[0] == b'<' {
                        hash_password(&op[1..])
                    } else if valid_hash(&op[1..]) {
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    } else {
                        return Err(RuleError::BadHash);
                    };
                    let at = self
                        .passwords
                        .iter()
                        .position(|p| *p == hash)
                        .ok_or(RuleError::NoSuchPassword)?;
                    self.passwords.remove(at);
                }
                b'(' => return Err(RuleError::Selectors),
                _ => self.selector.apply(catalog, op)?,
            },
        }
        Ok(())
    }

    /// Would `password` authenticate this user (enabled, and `nopass` or a matching hash)?
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        // Every stored hash is compared, so the time does not tell which one matched.
        self.passwords
            .iter()
            .fold(false, |found, p| hash_eq(p, &hash) | found)
    }

    /// The user's flags in Redis's order (`on`/`off`, `nopass`, `(skip-)sanitize-payload`).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut v = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            v.push("nopass");
        }
        match self.sanitize_payload {
            Some(false) => v.push("skip-sanitize-payload"),
            Some(true) => v.push("sanitize-payload"),
            None => {}
        }
        v
    }

    /// The user as `ACL LIST` and the ACL file write it, after `user NAME `.
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut out = String::new();
        for f in self.flags() {
            out.push_str(f);
            out.push(' ');
        }
        for p in &self.passwords {
            out.push('#');
            out.push_str(p);
            out.push(' ');
        }
        out.push_str(&self.selector.describe(catalog));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::CatalogEntry;

    /// get (@read @string @fast), set (@write @string @slow), client (@admin) with
    /// client|list (@admin @dangerous @slow) and client|id (@connection @fast).
    fn catalog() -> Catalog {
        use category::*;
        Catalog::new(vec![
            CatalogEntry::new("client", ADMIN | SLOW, None),
            CatalogEntry::new("client|id", CONNECTION | FAST, Some(0)),
            CatalogEntry::new("client|list", ADMIN | DANGEROUS | SLOW, Some(0)),
            CatalogEntry::new("get", READ | STRING | FAST, None),
            CatalogEntry::new("set", WRITE | STRING | SLOW, None),
        ])
    }

    fn user(rules: &str) -> Result<User, (String, RuleError)> {
        let c = catalog();
        let mut u = User::new("u", &c);
        for r in rules.split_whitespace() {
            u.apply(&c, r.as_bytes()).map_err(|e| (r.to_owned(), e))?;
        }
        Ok(u)
    }

    #[test]
    fn commands_categories_and_subcommands_follow_redis() {
        let c = catalog();
        let u = user("+@read -get +client|id").unwrap();
        assert!(!u.selector.allows_command(c.lookup("get").unwrap(), None));
        assert!(u
            .selector
            .allows_command(c.lookup("client|id").unwrap(), None));
        assert!(!u
            .selector
            .allows_command(c.lookup("client|list").unwrap(), None));
        let u = user("+@all -client").unwrap();
        assert!(u.selector.allows_command(c.lookup("set").unwrap(), None));
        assert!(!u
            .selector
            .allows_command(c.lookup("client|id").unwrap(), None));
        assert_eq!(u.selector.describe_commands(&c), "+@all -@admin");
        let u = user("+get +set").unwrap();
        assert_eq!(u.selector.describe_commands(&c), "-@all +@string");
        let u = user("+get").unwrap();
        assert_eq!(u.selector.describe_commands(&c), "-@all +@read");
        let u = user("+@all -get").unwrap();
        assert_eq!(u.selector.describe_commands(&c), "+@all -@read");
    }

    #[test]
    fn bad_rules_get_redis_errors() {
        let err = |r: &str| user(r).unwrap_err().1;
        assert_eq!(err("+nosuch"), RuleError::UnknownName);
        assert_eq!(err("+@nosuch"), RuleError::UnknownName);
        assert_eq!(err("bogus"), RuleError::Syntax);
        assert_eq!(err("allkeys ~foo"), RuleError::KeyAfterAll);
        assert_eq!(err("allchannels &foo"), RuleError::ChannelAfterAll);
        assert_eq!(err("<nope"), RuleError::NoSuchPassword);
        assert_eq!(err("#abc"), RuleError::BadHash);
        assert_eq!(err("%X~foo"), RuleError::Syntax);
        assert_eq!(err("%RR~foo"), RuleError::Syntax);
        assert_eq!(err("+client|id|x"), RuleError::SubcommandFirstArg);
        assert_eq!(err("-get|x"), RuleError::UnknownName);
        assert_eq!(err("+client|"), RuleError::Syntax);
        assert_eq!(err("(+get)"), RuleError::Selectors);
    }

    #[test]
    fn first_arg_rules_allow_one_argument_of_a_command_until_it_changes() {
        let c = catalog();
        let get = c.lookup("get").unwrap();
        let mut u = user("-@all +get|Main").unwrap();
        assert!(u.selector.allows_command(get, Some(b"main")));
        assert!(!u.selector.allows_command(get, Some(b"other")));
        assert!(!u.selector.allows_command(get, None));
        assert_eq!(u.selector.describe_commands(&c), "-@all +get|Main");
        u.apply(&c, b"-get").unwrap();
        assert!(!u.selector.allows_command(get, Some(b"main")));
    }

    #[test]
    fn key_patterns_grant_read_write_or_both() {
        let u = user("%R~r:* %W~w:* ~rw:* %R~w:*").unwrap();
        let s = &u.selector;
        assert!(s.allows_key(b"r:1", KEY_READ) && !s.allows_key(b"r:1", KEY_WRITE));
        assert!(s.allows_key(b"w:1", KEY_ALL));
        assert!(s.allows_key(b"rw:1", KEY_ALL));
        assert!(!s.allows_key(b"other", KEY_READ));
        assert_eq!(s.keys_text(), "%R~r:* ~w:* ~rw:*");
    }

    #[test]
    fn passwords_are_hashed_and_checked() {
        let mut u = user("on >s3cret").unwrap();
        assert!(u.accepts(b"s3cret") && !u.accepts(b"other"));
        assert_eq!(u.passwords, [hash_password(b"s3cret")]);
        u.apply(&catalog(), b"off").unwrap();
        assert!(!u.accepts(b"s3cret"), "a disabled user never authenticates");
        let u = user(&format!("on #{}", hash_password(b"pw"))).unwrap();
        assert!(u.accepts(b"pw"));
        assert_eq!(
            hash_password(b"foobar"),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
        );
    }

    #[test]
    fn describe_round_trips() {
        let c = catalog();
        let u = user("on >pw ~app:* %R~ro:* &events +@all -@admin").unwrap();
        let text = u.describe(&c);
        assert_eq!(
            text,
            format!(
                "on #{} ~app:* %R~ro:* resetchannels &events +@all -@admin",
                hash_password(b"pw")
            )
        );
        let mut again = User::new("u", &c);
        for r in text.split_whitespace() {
            again.apply(&c, r.as_bytes()).unwrap();
        }
        assert_eq!(again.describe(&c), text);
        assert_eq!(User::default_user(&c).describe(&c), "on nopass ~* &* +@all");
    }
}
