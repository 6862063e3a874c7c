//! `COMMAND INFO` / `COMMAND DOCS` replies, generated from the spec table.
//!
//! Argument documentation is written in each spec as a compact grammar, parsed here into the
//! nested argument maps Redis returns (redis-cli builds its argument hints from them):
//!
//! ```text
//! key:key value:string [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|KEEPTTL]
//! ```
//! - `name:type` is an argument (`key`, `string`, `integer`, `double`, `pattern`, `unix-time`);
//! - an uppercase word is a pure token, or a token introducing the `name:type` right after it;
//! - `[...]` is optional, `(...)` a group, `a|b` alternatives, a trailing `...` repetition;
//! - `label=[...]` names a group.

use bytes::Bytes;

use super::{flags, full_name, CommandSpec};
use crate::protocol::Frame;

/// One documented argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDoc {
    /// Argument name.
    pub name: String,
    /// Redis argument type (`key`, `string`, `pure-token`, `oneof`, `block`, ...).
    pub kind: String,
    /// The literal token that introduces it, if any.
    pub token: Option<String>,
    /// May be omitted.
    pub optional: bool,
    /// May repeat.
    pub multiple: bool,
    /// Members of a `oneof` or `block`.
    pub children: Vec<ArgDoc>,
}

const TYPES: &[&str] = &["key", "string", "integer", "double", "pattern", "unix-time"];

fn tokenize(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '.' && chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push("...".into());
            i += 3;
            continue;
        }
        match c {
            ' ' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' | ']' | '(' | ')' | '|' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

fn is_token_word(w: &str) -> bool {
    // The streams' symbolic tokens (`XADD key * ...`, `MAXLEN ~ n`, `XGROUP CREATE k g $`).
    if matches!(w, "*" | "~" | "$") {
        return true;
    }
    !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn items(&mut self) -> Result<Vec<ArgDoc>, String> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            if t == "]" || t == ")" || t == "|" {
                break;
            }
            items.push(self.item()?);
        }
        Ok(items)
    }

    fn item(&mut self) -> Result<ArgDoc, String> {
        let mut label = None;
        if let Some(t) = self.peek() {
            if let Some(l) = t.strip_suffix('=') {
                label = Some(l.to_owned());
                self.pos += 1;
            }
        }
        let tok = self.peek().ok_or("unexpected end")?.to_owned();
        self.pos += 1;
        let mut arg = match tok.as_str() {
            "[" | "(" => {
                let close = if tok == "[" { "]" } else { ")" };
                let mut alts = vec![self.items()?];
                while self.peek() == Some("|") {
                    self.pos += 1;
                    alts.push(self.items()?);
                }
                if self.peek() != Some(close) {
                    return Err(format!("expected {close}"));
                }
                self.pos += 1;
                let mut arg = group(alts)?;
                arg.optional |= tok == "[";
                arg
            }
            w if w.contains(':') => plain(w)?,
            w if is_token_word(w) => {
                let next_is_arg = self.peek().is_some_and(|n| n.contains(':'));
                if next_is_arg {
                    let w2 = self.peek().unwrap_or_default().to_owned();
                    self.pos += 1;
                    let mut arg = plain(&w2)?;
                    arg.token = Some(w.to_owned());
                    arg
                } else {
                    ArgDoc {
                        name: w.to_ascii_lowercase(),
                        kind: "pure-token".into(),
                        token: Some(w.to_owned()),
                        optional: false,
                        multiple: false,
                        children: vec![],
                    }
                }
            }
            other => return Err(format!("unexpected {other:?}")),
        };
        if let Some(l) = label {
            arg.name = l;
        }
        if self.peek() == Some("...") {
            self.pos += 1;
            arg.multiple = true;
        }
        Ok(arg)
    }
}

fn plain(w: &str) -> Result<ArgDoc, String> {
    let (name, kind) = w.split_once(':').ok_or("missing type")?;
    if !TYPES.contains(&kind) {
        return Err(format!("unknown type {kind}"));
    }
    Ok(ArgDoc {
        name: name.to_owned(),
        kind: kind.to_owned(),
        token: None,
        optional: false,
        multiple: false,
        children: vec![],
    })
}

fn block(mut items: Vec<ArgDoc>) -> Result<ArgDoc, String> {
    match items.len() {
        0 => Err("empty group".into()),
        1 => Ok(items.remove(0)),
        _ => Ok(ArgDoc {
            name: items[0].name.clone(),
            kind: "block".into(),
            token: None,
            optional: false,
            multiple: false,
            children: items,
        }),
    }
}

fn group(alts: Vec<Vec<ArgDoc>>) -> Result<ArgDoc, String> {
    if alts.len() == 1 {
        return block(alts.into_iter().next().unwrap_or_default());
    }
    let children = alts.into_iter().map(block).collect::<Result<Vec<_>, _>>()?;
    Ok(ArgDoc {
        name: children
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("-"),
        kind: "oneof".into(),
        token: None,
        optional: false,
        multiple: false,
        children,
    })
}

/// Parses an argument grammar.
pub fn parse_args(src: &str) -> Result<Vec<ArgDoc>, String> {
    let mut p = Parser {
        toks: tokenize(src),
        pos: 0,
    };
    let items = p.items()?;
    if p.pos != p.toks.len() {
        return Err(format!("trailing {:?}", p.peek()));
    }
    Ok(items)
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn status(s: &str) -> Frame {
    Frame::Simple(Bytes::copy_from_slice(s.as_bytes()))
}

fn arg_frame(a: &ArgDoc) -> Frame {
    let mut m = vec![(bulk("name"), bulk(&a.name)), (bulk("type"), bulk(&a.kind))];
    if let Some(t) = &a.token {
        m.push((bulk("token"), bulk(t)));
    }
    let mut fl = Vec::new();
    if a.optional {
        fl.push(status("optional"));
    }
    if a.multiple {
        fl.push(status("multiple"));
    }
    if !fl.is_empty() {
        m.push((bulk("flags"), Frame::Set(fl)));
    }
    if !a.children.is_empty() {
        m.push((
            bulk("arguments"),
            Frame::Array(a.children.iter().map(arg_frame).collect()),
        ));
    }
    Frame::Map(m)
}

/// The ACL categories of `spec` (of `parent`'s group for a subcommand) as
/// [`crate::acl::category`] bits: implied by its flags and group, as Redis files them, plus
/// the extras Redis names per command (`@dangerous` for `KEYS`, ...). limitkv's rate-limit
/// commands are `@limiter`, their policy administration `@policy`.
pub fn acl_bits(parent: Option<&CommandSpec>, spec: &CommandSpec) -> u64 {
    use crate::acl::category as c;
    let name = super::full_name(parent, spec);
    if matches!(name.as_str(), "client" | "script" | "function") {
        // Redis gives these containers only @slow; their subcommands carry the rest.
        return c::SLOW;
    }
    let group = parent.map_or(spec.group, |p| p.group);
    let mut cats = meta(&name)
        .acl_extra
        .iter()
        .filter_map(|e| c::by_name(e.trim_start_matches('@')))
        .fold(0, |acc, bit| acc | bit);
    if spec.has(flags::WRITE) {
        cats |= c::WRITE;
    }
    // Redis files the read-only script commands under @scripting only.
    if spec.has(flags::READONLY) && group != "scripting" {
        cats |= c::READ;
    }
    // As in Redis, the category follows the flag (the PUBSUB container and PUBSUB HELP are
    // in the pubsub group but only @slow).
    if spec.has(flags::PUBSUB) {
        cats |= c::PUBSUB;
    }
    cats |= match group {
        "string" => c::STRING,
        "generic" => c::KEYSPACE,
        "connection" => c::CONNECTION,
        "transactions" => c::TRANSACTION,
        "scripting" => c::SCRIPTING,
        "hash" => c::HASH,
        "list" => c::LIST,
        "set" => c::SET,
        "sorted_set" => c::SORTEDSET,
        "bitmap" => c::BITMAP,
        "hyperloglog" => c::HYPERLOGLOG,
        "geo" => c::GEO,
        "stream" => c::STREAM,
        "rate_limit" if is_policy_admin(&name) => c::POLICY,
        "rate_limit" => c::LIMITER,
        _ => 0,
    };
    if spec.has(flags::ADMIN) {
        cats |= c::ADMIN | c::DANGEROUS;
    }
    cats | if spec.has(flags::FAST) {
        c::FAST
    } else {
        c::SLOW
    }
}

/// Policy administration (`@policy`) as opposed to decisions (`@limiter`): the commands that
/// define policies, overrides and access lists.
fn is_policy_admin(full_name: &str) -> bool {
    ["policy.", "override.", "allowlist.", "denylist."]
        .iter()
        .any(|p| full_name.starts_with(p))
}

fn acl_categories(parent: Option<&CommandSpec>, spec: &CommandSpec) -> Vec<Frame> {
    let bits = acl_bits(parent, spec);
    crate::acl::category::NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| status(&format!("@{name}")))
        .collect()
}

/// The ACL access a command's key arguments need, from its key specs (Redis's rule: `access`
/// needs read, `insert`/`update`/`delete` need write). Computed once per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAccess {
    /// Per key spec, in order (empty: every key needs `default`).
    per_spec: Vec<u8>,
    /// For commands without listed key specs: read for read-only commands, else both.
    default: u8,
    /// The last key spec covers every key after it (`SUNIONSTORE destination key...`).
    last_repeats: bool,
    /// `SET`: write only, unless a `GET` argument also reads the old value (Redis's variable
    /// flags).
    reads_with_get: bool,
}

impl KeyAccess {
    /// [`crate::acl::user::KEY_READ`] / `KEY_WRITE` bits the `i`-th key of `req` needs.
    pub fn need(&self, i: usize, req: &[Bytes]) -> u8 {
        use crate::acl::user::KEY_WRITE;
        if self.reads_with_get
            && !req
                .get(3..)
                .unwrap_or(&[])
                .iter()
                .any(|a| a.eq_ignore_ascii_case(b"GET"))
        {
            return KEY_WRITE;
        }
        match self.per_spec.as_slice() {
            [] => self.default,
            [one] => *one,
            many => match many.get(i) {
                Some(need) => *need,
                None if self.last_repeats => many.last().copied().unwrap_or(self.default),
                None => self.default,
            },
        }
    }
}

/// The [`KeyAccess`] of `spec` (a subcommand of `parent`, if given).
pub fn key_access(parent: Option<&CommandSpec>, spec: &CommandSpec) -> KeyAccess {
    use crate::acl::user::{KEY_ALL, KEY_READ, KEY_WRITE};
    let name = super::full_name(parent, spec);
    let need_of = |flags: &[&str]| {
        flags.iter().fold(0, |need, f| match *f {
            "access" => need | KEY_READ,
            "insert" | "update" | "delete" => need | KEY_WRITE,
            _ => need,
        })
    };
    KeyAccess {
        per_spec: meta(&name).key_flags.iter().map(|f| need_of(f)).collect(),
        default: if spec.has(flags::READONLY) {
            KEY_READ
        } else {
            KEY_ALL
        },
        last_repeats: spec.last_key < 0 || super::numkeys_index(spec).is_some(),
        reads_with_get: name == "set",
    }
}

/// What Redis reports for a command beyond what its flags imply: command tips, the flags (and
/// note) of each key spec, and extra ACL categories.
struct Meta {
    tips: &'static [&'static str],
    key_flags: &'static [&'static [&'static str]],
    notes: Option<&'static str>,
    acl_extra: &'static [&'static str],
}

const NO_META: Meta = Meta {
    tips: &[],
    key_flags: &[],
    notes: None,
    acl_extra: &[],
};

fn meta(name: &str) -> Meta {
    const MULTI_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
    const ALL_OK: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];
    const NONDET: &[&str] = &["nondeterministic_output"];
    const OW_UPDATE: &[&[&str]] = &[&["OW", "update"]];
    const RW_UPDATE: &[&[&str]] = &[&["RW", "update"]];
    const RM_DELETE: &[&[&str]] = &[&["RM", "delete"]];
    const RO: &[&[&str]] = &[&["RO"]];
    const RW_ACCESS_DELETE: &[&[&str]] = &[&["RW", "access", "delete"]];
    let (tips, key_flags, acl_extra): (&[&str], &[&[&str]], &[&str]) = match name {
        "set" => (&[], &[&["RW", "access", "update", "variable_flags"]], &[]),
        "setex" | "psetex" => (&[], OW_UPDATE, &[]),
        "setnx" => (&[], &[&["OW", "insert"]], &[]),
        "mset" => (
            &[
                "request_policy:multi_shard",
                "response_policy:all_succeeded",
            ],
            OW_UPDATE,
            &[],
        ),
        "mget" => (&["request_policy:multi_shard"], &[], &[]),
        "getdel" => (&[], &[&["RW", "access", "delete"]], &[]),
        "getex" => (&[], &[&["RW", "access", "update"]], &[]),
        "setrange" | "hmset" => (&[], &[&["RW", "update"]], &[]),
        "append" => (&[], &[&["RW", "insert"]], &[]),
        "strlen" => (&[], RO, &[]),
        "msetnx" => (
            &["request_policy:multi_shard", "response_policy:agg_min"],
            &[&["OW", "insert"]],
            &[],
        ),
        "copy" => (&[], &[&["RO", "access"], &["OW", "update"]], &[]),
        "renamenx" => (&[], &[&["RW", "access", "delete"], &["OW", "insert"]], &[]),
        "randomkey" => (
            &["request_policy:all_shards", "nondeterministic_output"],
            &[],
            &[],
        ),
        "object|encoding" | "object|refcount" | "object|idletime" | "object|freq" => {
            (NONDET, RO, &[])
        }
        "spop" => (NONDET, RW_ACCESS_DELETE, &[]),
        "smove" | "lmove" | "rpoplpush" => {
            (&[], &[&["RW", "access", "delete"], &["RW", "insert"]], &[])
        }
        "sinter" | "sunion" | "sdiff" => (&["nondeterministic_output_order"], &[], &[]),
        "sinterstore" => (&[], &[&["RW", "update"], &["RO", "access"]], &[]),
        "sunionstore" | "sdiffstore" => (&[], &[&["OW", "update"], &["RO", "access"]], &[]),
        "sort" => (&[], &[&["RO", "access"], &["OW", "update"]], &[]),
        "zunionstore" | "zinterstore" | "zdiffstore" | "zrangestore" => {
            (&[], &[&["OW", "update"], &["RO", "access"]], &[])
        }
        "lpushx" | "rpushx" | "linsert" => (&[], &[&["RW", "insert"]], &[]),
        "lset" => (&[], &[&["RW", "overwrite"]], &[]),
        "lrem" => (&[], &[&["RW", "delete"]], &[]),
        "srandmember" | "zrandmember" | "hscan" | "sscan" | "zscan" => (NONDET, &[], &[]),
        "del" | "unlink" => (MULTI_SUM, RM_DELETE, &[]),
        "exists" => (MULTI_SUM, RO, &[]),
        "type" | "watch" => (&[], RO, &[]),
        "rename" => (&[], &[&["RW", "access", "delete"], &["OW", "update"]], &[]),
        "expire" | "pexpire" | "expireat" | "pexpireat" | "persist" => (&[], RW_UPDATE, &[]),
        "ttl" | "pttl" | "time" => (NONDET, &[], &[]),
        "keys" => (
            &["request_policy:all_shards", "nondeterministic_output_order"],
            &[],
            &["@dangerous"],
        ),
        "scan" => (
            &["nondeterministic_output", "request_policy:special"],
            &[],
            &[],
        ),
        "ping" => (ALL_OK, &[], &[]),
        "dbsize" => (
            &["request_policy:all_shards", "response_policy:agg_sum"],
            &[],
            &["@keyspace"],
        ),
        "flushdb" | "flushall" => (ALL_OK, &[], &["@keyspace", "@dangerous"]),
        "info" => (
            &[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ],
            &[],
            &["@dangerous"],
        ),
        "command" => (&["nondeterministic_output_order"], &[], &["@connection"]),
        _ => return NO_META,
    };
    Meta {
        tips,
        key_flags,
        notes: match name {
            "set" => Some("RW and ACCESS due to the optional `GET` argument"),
            "getex" => Some("RW and UPDATE because it changes the TTL"),
            _ => None,
        },
        acl_extra,
    }
}

fn key_specs(spec: &CommandSpec, meta: &Meta) -> Vec<Frame> {
    if let Some(at) = super::numkeys_index(spec) {
        if spec.first_key > 0 {
            // ZUNIONSTORE: the destination's range spec, then the sources read by count.
            let dst: &[&str] = meta.key_flags.first().copied().unwrap_or(&["OW", "update"]);
            let mut specs = range_key_specs(spec, meta, &[dst], 0, 1, |_| false);
            specs.push(keynum_key_spec(spec, at, Some(&["RO", "access"])));
            return specs;
        }
        return vec![keynum_key_spec(spec, at, None)];
    }
    if spec.first_key <= 0 {
        return vec![];
    }
    // Shard channels sit in key positions for cluster routing, but are not keys.
    let default: &[&str] = if spec.has(flags::NOT_KEY) {
        &["not_key"]
    } else if spec.has(flags::WRITE) {
        &["RW", "access", "update"]
    } else {
        &["RO", "access"]
    };
    let per_key: Vec<&[&str]> = if meta.key_flags.is_empty() {
        vec![default]
    } else {
        meta.key_flags.to_vec()
    };
    // Several specs (RENAME's source and destination) each cover one key, except that the
    // last one of an open-ended command (SUNIONSTORE's sources) covers every key left.
    let single = per_key.len() == 1;
    let lastkey = if !single {
        0
    } else if spec.last_key < 0 {
        spec.last_key
    } else {
        spec.last_key - spec.first_key
    };
    let keystep = if single { spec.key_step } else { 1 };
    let open_end = |i: usize| !single && i + 1 == per_key.len() && spec.last_key < 0;
    range_key_specs(spec, meta, &per_key, lastkey, keystep, open_end)
}

/// Range key specs, one per entry of `per_key` (its flags), the `i`th starting at
/// `first_key + i`.
fn range_key_specs(
    spec: &CommandSpec,
    meta: &Meta,
    per_key: &[&[&str]],
    lastkey: i32,
    keystep: i32,
    open_end: impl Fn(usize) -> bool,
) -> Vec<Frame> {
    per_key
        .iter()
        .enumerate()
        .map(|(i, fl)| {
            let mut m = Vec::new();
            if let Some(n) = meta.notes {
                m.push((bulk("notes"), bulk(n)));
            }
            m.push((
                bulk("flags"),
                Frame::Set(fl.iter().map(|f| status(f)).collect()),
            ));
            m.push((
                bulk("begin_search"),
                Frame::Map(vec![
                    (bulk("type"), bulk("index")),
                    (
                        bulk("spec"),
                        Frame::Map(vec![(
                            bulk("index"),
                            Frame::Integer(i64::from(spec.first_key) + i as i64),
                        )]),
                    ),
                ]),
            ));
            m.push((
                bulk("find_keys"),
                Frame::Map(vec![
                    (bulk("type"), bulk("range")),
                    (
                        bulk("spec"),
                        Frame::Map(vec![
                            (
                                bulk("lastkey"),
                                Frame::Integer(i64::from(if open_end(i) {
                                    spec.last_key
                                } else {
                                    lastkey
                                })),
                            ),
                            (bulk("keystep"), Frame::Integer(i64::from(keystep))),
                            (bulk("limit"), Frame::Integer(0)),
                        ]),
                    ),
                ]),
            ));
            Frame::Map(m)
        })
        .collect()
}

/// The key spec of commands whose keys follow a count at argument `at` (`EVAL`, `SINTERCARD`,
/// `LMPOP`).
fn keynum_key_spec(spec: &CommandSpec, at: usize, flags_of: Option<&[&str]>) -> Frame {
    let read_only = spec.has(flags::READONLY);
    let mut m = Vec::new();
    if spec.group == "scripting" && !spec.name.starts_with("EVALSHA") {
        let note = if read_only {
            "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"
        } else {
            "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"
        };
        m.push((bulk("notes"), bulk(note)));
    }
    let fl: &[&str] = if let Some(fl) = flags_of {
        fl
    } else if read_only {
        &["RO", "access"]
    } else if spec.name == "LMPOP" {
        &["RW", "access", "delete"]
    } else {
        &["RW", "access", "update"]
    };
    m.push((
        bulk("flags"),
        Frame::Set(fl.iter().map(|f| status(f)).collect()),
    ));
    m.push((
        bulk("begin_search"),
        Frame::Map(vec![
            (bulk("type"), bulk("index")),
            (
                bulk("spec"),
                Frame::Map(vec![(bulk("index"), Frame::Integer(at as i64))]),
            ),
        ]),
    ));
    m.push((
        bulk("find_keys"),
        Frame::Map(vec![
            (bulk("type"), bulk("keynum")),
            (
                bulk("spec"),
                Frame::Map(vec![
                    (bulk("keynumidx"), Frame::Integer(0)),
                    (bulk("firstkey"), Frame::Integer(1)),
                    (bulk("keystep"), Frame::Integer(1)),
                ]),
            ),
        ]),
    ));
    Frame::Map(m)
}

/// The `COMMAND INFO` entry for `spec` (a subcommand when `parent` is given).
pub fn info_frame(parent: Option<&CommandSpec>, spec: &'static CommandSpec) -> Frame {
    let fl = flags::NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, n)| status(n))
        .collect();
    let name = full_name(parent, spec);
    let meta = meta(&name);
    let acl = acl_categories(parent, spec);
    Frame::Array(vec![
        bulk(&name),
        Frame::Integer(i64::from(spec.arity)),
        Frame::Set(fl),
        Frame::Integer(i64::from(spec.first_key)),
        Frame::Integer(i64::from(spec.last_key)),
        Frame::Integer(i64::from(spec.key_step)),
        Frame::Set(acl),
        // In RESP3 Redis sends tips and key specs as sets, and subcommands as an array unless
        // there are none (an empty set).
        Frame::Set(meta.tips.iter().map(|t| bulk(t)).collect()),
        Frame::Set(key_specs(spec, &meta)),
        or_empty_set(
            spec.subcommands
                .iter()
                .map(|s| info_frame(Some(spec), s))
                .collect(),
        ),
    ])
}

/// An empty set for no items, else an array.
fn or_empty_set(items: Vec<Frame>) -> Frame {
    if items.is_empty() {
        Frame::Set(items)
    } else {
        Frame::Array(items)
    }
}

/// The `COMMAND DOCS` body for `spec` (a map of summary, since, group, complexity, arguments,
/// subcommands).
pub fn docs_frame(parent: Option<&CommandSpec>, spec: &'static CommandSpec) -> Frame {
    let group = parent.map_or(spec.group, |p| p.group);
    let mut m = vec![
        (bulk("summary"), bulk(spec.summary)),
        (bulk("since"), bulk(spec.since)),
        (bulk("group"), bulk(group)),
        (bulk("complexity"), bulk(spec.complexity)),
    ];
    // The grammar is checked by a unit test over the whole table; a malformed one documents
    // no arguments rather than failing the command.
    let args = parse_args(spec.args).unwrap_or_default();
    if !args.is_empty() {
        m.push((
            bulk("arguments"),
            Frame::Array(args.iter().map(arg_frame).collect()),
        ));
    }
    if !spec.subcommands.is_empty() {
        m.push((
            bulk("subcommands"),
            Frame::Map(
                spec.subcommands
                    .iter()
                    .map(|s| (bulk(&full_name(Some(spec), s)), docs_frame(Some(spec), s)))
                    .collect(),
            ),
        ));
    }
    Frame::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_grammar() {
        let args = parse_args(
            "key:key value:string [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|KEEPTTL]",
        )
        .unwrap();
        assert_eq!(args.len(), 5);
        assert_eq!(args[0].kind, "key");
        assert_eq!(args[2].kind, "oneof");
        assert!(args[2].optional);
        assert_eq!(args[2].children[1].token.as_deref(), Some("XX"));
        assert_eq!(args[3].kind, "pure-token");
        assert_eq!(args[4].children[0].token.as_deref(), Some("EX"));
        assert_eq!(args[4].children[0].kind, "integer");
    }

    #[test]
    fn repetition_and_labels() {
        let args = parse_args("key:key... condition=[NX|XX]").unwrap();
        assert!(args[0].multiple);
        assert_eq!(args[1].name, "condition");
    }

    #[test]
    fn rejects_unknown_types_and_unbalanced_groups() {
        assert!(parse_args("x:blob").is_err());
        assert!(parse_args("[NX").is_err());
    }
}
