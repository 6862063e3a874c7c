//! The Lua VM: sandbox setup, the script cache (compiled functions by SHA1), function
//! libraries, and running a script or function with a caller-supplied `redis.call`.
//!
//! The sandbox follows Redis 7.0: only `base` (minus `print`, `dofile`, `loadfile`,
//! `setfenv`, `getfenv`, `newproxy`, `module`, `require`), `string`, `table`, `math`,
//! `coroutine`, `cjson` and `bit` exist; there is no `os`, `io`, `debug` or `package`. Globals
//! and libraries are read-only (the prelude's proxies give Redis's exact errors), chunks are
//! text only, and `loadstring` chunks run in the script environment. The heavy lifting in Lua
//! lives in `prelude.lua`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use mlua::{
    ChunkMode, Either, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value,
    Variadic, VmState,
};

use super::convert::{frame_to_lua, lua_to_frame, push_arg, sanitize_error, Fields};
use super::{bit, cjson, Interrupt, RunState, HOOK_INSTRUCTIONS};
use crate::protocol::Frame;

const PRELUDE: &str = include_str!("prelude.lua");

/// The most memory the VM may use. Redis sets no limit (a script can grow the server until
/// the OS kills it); here a script that tries gets a Lua `not enough memory` error instead.
pub const MEMORY_LIMIT: usize = 1 << 30;

/// Lifts the VM's memory limit while Rust code builds or reads Lua values, and puts it back
/// on drop. With a limit in place mlua guards every API call (each string, table and field)
/// with a protected call that allocates a C closure; with none it calls Lua directly, which
/// is several times cheaper. Script code itself always runs under the limit (see
/// `Engine::run` and its `redis.call` callback): only the server's own bounded conversions
/// run without it.
struct Unlimited<'a>(&'a Lua);

impl<'a> Unlimited<'a> {
    fn new(lua: &'a Lua) -> Unlimited<'a> {
        lua.set_memory_limit(0).ok();
        Unlimited(lua)
    }
}

impl Drop for Unlimited<'_> {
    fn drop(&mut self) {
        self.0.set_memory_limit(MEMORY_LIMIT).ok();
    }
}

/// The reverse of [`Unlimited`] while script code runs: the prelude's runners switch the limit
/// on (`limit_memory`, after mlua pushed the arguments without it) and dropping this switches
/// it off again for the conversion of the result.
struct Limited<'a>(&'a Lua);

impl Drop for Limited<'_> {
    fn drop(&mut self) {
        self.0.set_memory_limit(0).ok();
    }
}

/// A script's SHA1 as 40 lowercase hex digits (how `EVALSHA` names it).
pub type Sha = [u8; 40];

/// The SHA1 of `body` in lowercase hex.
pub fn sha1_hex(body: &[u8]) -> Sha {
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut out = [0u8; 40];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// Reads a client-given SHA1 (any case) as a cache key; `None` if it is not 40 characters.
pub fn parse_sha(s: &[u8]) -> Option<Sha> {
    let mut out: Sha = s.try_into().ok()?;
    out.make_ascii_lowercase();
    Some(out)
}

/// Script flags (from an EVAL script's `#!lua flags=...` line or `register_function`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    /// An EVAL script without a shebang: Redis's backwards-compatible mode.
    pub const EVAL_COMPAT: u8 = 1;
    /// `no-writes`: the script may not call write commands.
    pub const NO_WRITES: u8 = 1 << 1;
    /// `allow-oom`.
    pub const ALLOW_OOM: u8 = 1 << 2;
    /// `allow-stale`.
    pub const ALLOW_STALE: u8 = 1 << 3;
    /// `no-cluster`.
    pub const NO_CLUSTER: u8 = 1 << 4;
    /// `allow-cross-slot-keys`.
    pub const ALLOW_CROSS_SLOT_KEYS: u8 = 1 << 5;

    /// Upstash's `allow-key-locking`, accepted in an `EVAL` shebang and ignored.
    pub const UPSTASH_KEY_LOCKING: &'static str = "allow-key-locking";

    /// The flag names in Redis's order, with their bits.
    pub const NAMES: &'static [(u8, &'static str)] = &[
        (Self::NO_WRITES, "no-writes"),
        (Self::ALLOW_OOM, "allow-oom"),
        (Self::ALLOW_STALE, "allow-stale"),
        (Self::NO_CLUSTER, "no-cluster"),
        (Self::ALLOW_CROSS_SLOT_KEYS, "allow-cross-slot-keys"),
    ];

    /// True if `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn from_name(name: &[u8]) -> Option<u8> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.as_bytes() == name)
            .map(|(bit, _)| *bit)
    }

    /// The names of the set flags, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(bit, _)| self.has(*bit))
            .map(|(_, n)| *n)
    }
}

/// A cached EVAL script.
pub struct Script {
    /// The body as sent (shebang included).
    pub body: Bytes,
    /// Its shebang flags.
    pub flags: ScriptFlags,
    /// Whether runs lock the whole database instead of the declared keys: true until a run
    /// showed the script keeps to its keys (the command layer learns it).
    pub whole_db: bool,
    func: Function,
}

/// A function as `FUNCTION LIST` shows it.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// Its name as registered.
    pub name: String,
    /// `description`, if given.
    pub description: Option<String>,
    /// Its flags.
    pub flags: ScriptFlags,
}

/// A loaded function library.
#[derive(Debug, Clone)]
pub struct Library {
    /// The library name.
    pub name: String,
    /// The code as loaded (metadata line included).
    pub code: Bytes,
    /// Its functions, in registration order.
    pub functions: Vec<FunctionInfo>,
}

/// A callable function.
pub struct FunctionEntry {
    /// Its name as registered.
    pub name: String,
    /// The library it belongs to.
    pub library: String,
    /// Its flags.
    pub flags: ScriptFlags,
    /// As [`Script::whole_db`].
    pub whole_db: bool,
    func: Function,
}

/// What the command layer answers for one `redis.call` / `redis.pcall`.
#[derive(Debug)]
pub enum CallOutcome {
    /// The command ran; its reply (possibly an error reply).
    Reply(Frame),
    /// The command was refused before running (Redis's script checks); the error text, with
    /// or without its leading `-CODE`.
    Rejected(String),
    /// The script must stop and be run again from the start (it reached a key whose lock it
    /// does not hold before writing anything). Nothing it did is visible.
    Abort,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// The reply for the client.
    Reply(Frame),
    /// A call answered [`CallOutcome::Abort`]: run the script again.
    Restart,
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A cached EVAL script.
    Script(&'a Sha),
    /// A function, by its (case-insensitive) name.
    Function(&'a str),
}

/// The Lua VM with its caches.
pub struct Engine {
    lua: Lua,
    run: Arc<RunState>,
    redis: Table,
    /// The protocol `redis.call` replies are converted with (`redis.setresp`), per run.
    resp3: Arc<AtomicBool>,
    fields: Fields,
    eval_env: Table,
    function_env: Table,
    run_eval: Function,
    run_fcall: Function,
    load_library_fn: Function,
    scripts: HashMap<Sha, Script, foldhash::fast::RandomState>,
    libraries: IndexMap<String, Library, foldhash::fast::RandomState>,
    functions: HashMap<String, FunctionEntry, foldhash::fast::RandomState>,
}

/// The text a call gets back after the script was told to restart.
const ABORTED: &str = "Script aborted to be run again with the whole database locked";

/// An error a Rust function raises in a script, in the form Redis's C function would have
/// raised it: an error table (`redis.call` failures, `redis.setresp` misuse) or a message
/// already prefixed with the caller's position (`luaL_error` in cjson and bit).
#[derive(Debug, Clone)]
pub enum Raise {
    /// `{err = text}`.
    Table(String),
    /// A plain string error.
    Plain(String),
}

impl std::fmt::Display for Raise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Raise::Table(t) | Raise::Plain(t) => f.write_str(t),
        }
    }
}

impl std::error::Error for Raise {}

/// Raises `{err = text}`.
fn raise_table(text: impl Into<String>) -> mlua::Error {
    mlua::Error::external(Raise::Table(text.into()))
}

/// Raises `msg` prefixed with the calling Lua line (`luaL_error`'s `luaL_where(L, 1)`).
fn raise_at(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line()?;
            let src = d.source().short_src?.into_owned();
            Some(format!("{src}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::external(Raise::Plain(format!("{at}{msg}")))
}

/// The [`Raise`] or [`Interrupt`] inside an mlua error, through callback wrappers.
fn find_raise(e: &mlua::Error) -> Option<Raise> {
    match e {
        mlua::Error::CallbackError { cause, .. } => find_raise(cause),
        mlua::Error::WithContext { cause, .. } => find_raise(cause),
        other => {
            if let Some(r) = other.downcast_ref::<Raise>() {
                return Some(r.clone());
            }
            other
                .downcast_ref::<Interrupt>()
                .map(|i| Raise::Table(format!("ERR {i}")))
        }
    }
}

/// Lua's `tonumber` on an argument (numbers and numeric strings).
fn to_number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => Some(*n),
        Value::Integer(n) => Some(*n as f64),
        Value::String(s) => s.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Up to this many keys and arguments together reach the script as Lua call arguments, and
/// the prelude builds KEYS and ARGV from them (one call instead of a table write per item);
/// more go in tables built here (a Lua C stack holds about 8000 values).
const VARARG_MAX: usize = 256;

fn build(lua: &Lua, run: &Arc<RunState>, resp3: &Arc<AtomicBool>) -> mlua::Result<Table> {
    let rs = lua.create_table()?;
    rs.raw_set(
        "user_frame",
        lua.create_function(|lua, ()| {
            let mut level = 1;
            loop {
                let frame = lua.inspect_stack(level, |d| {
                    let s = d.source();
                    // C functions, tail-call markers and the prelude carry no user line.
                    let internal = s.what == "C"
                        || s.what == "tail"
                        || s.source.as_deref() == Some("=limitkv");
                    (internal, s.source.map(|c| c.into_owned()), d.current_line())
                });
                match frame {
                    None => return Ok((None, None)),
                    Some((false, source, line)) => return Ok((source, line)),
                    Some(_) => level += 1,
                }
            }
        })?,
    )?;
    rs.raw_set(
        "unwrap_error",
        lua.create_function(|lua, v: Value| {
            let Value::Error(e) = &v else {
                return Ok(v);
            };
            Ok(match find_raise(e) {
                Some(Raise::Table(text)) => {
                    let t = lua.create_table_with_capacity(0, 1)?;
                    t.raw_set("err", text)?;
                    Value::Table(t)
                }
                Some(Raise::Plain(msg)) => Value::String(lua.create_string(msg)?),
                None => Value::String(lua.create_string(e.to_string())?),
            })
        })?,
    )?;
    let resp = resp3.clone();
    rs.raw_set(
        "setresp",
        lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR redis.setresp() requires one argument."));
            }
            match to_number(args.front()) {
                Some(v) if v == 2.0 || v == 3.0 => {
                    resp.store(v == 3.0, Ordering::Relaxed);
                    Ok(())
                }
                _ => Err(raise_table("ERR RESP version must be 2 or 3.")),
            }
        })?,
    )?;
    rs.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR wrong number of arguments"));
            }
            // lua_tolstring: numbers as Lua prints them, other types as nothing.
            let bytes = match &args[0] {
                Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
                Value::Number(n) => Bytes::from(super::convert::format_g(*n, 14)),
                Value::Integer(n) => Bytes::from(n.to_string()),
                _ => Bytes::new(),
            };
            lua.create_string(sha1_hex(&bytes))
        })?,
    )?;
    rs.raw_set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(raise_table(
                    "ERR redis.log() requires two arguments or more.",
                ));
            }
            let level = to_number(args.front()).unwrap_or(0.0) as i64;
            if !(0..=3).contains(&level) {
                return Err(raise_table("ERR Invalid debug level."));
            }
            let parts: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.to_string_lossy()),
                    Value::Number(n) => Some(super::convert::format_g(*n, 14)),
                    Value::Integer(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            let msg = parts.join(" ");
            match level {
                0 | 1 => tracing::debug!(target: "limitkv::script", "{msg}"),
                2 => tracing::info!(target: "limitkv::script", "{msg}"),
                _ => tracing::warn!(target: "limitkv::script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    rs.raw_set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR redis.set_repl() requires one argument."));
            }
            let flags = to_number(args.front()).unwrap_or(0.0) as i64;
            if flags & !3 != 0 {
                return Err(raise_table("ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."));
            }
            Ok(())
        })?,
    )?;
    rs.raw_set(
        "cjson_encode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_at(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)",
                ));
            }
            match cjson::encode(&args[0]) {
                Ok(json) => lua.create_string(json),
                Err(msg) => Err(raise_at(lua, &msg)),
            }
        })?,
    )?;
    rs.raw_set(
        "cjson_decode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_at(
                    lua,
                    "bad argument #1 to 'decode' (expected 1 argument)",
                ));
            }
            let text = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => super::convert::format_g(*n, 14).into_bytes(),
                Value::Integer(n) => n.to_string().into_bytes(),
                other => {
                    let msg = format!(
                        "bad argument #1 to 'decode' (string expected, got {})",
                        match other {
                            Value::Nil => "nil",
                            Value::Boolean(_) => "boolean",
                            Value::Table(_) => "table",
                            Value::Function(_) => "function",
                            _ => "userdata",
                        }
                    );
                    return Err(raise_at(lua, &msg));
                }
            };
            cjson::decode(lua, &text).map_err(|msg| raise_at(lua, &msg))
        })?,
    )?;
    rs.raw_set("null", cjson::null())?;
    for name in bit::NAMES {
        let f = lua.create_function(move |lua, args: MultiValue| match bit::run(name, &args) {
            Ok(bit::Out::Bits(b)) => Ok(Value::Number(f64::from(b as i32))),
            Ok(bit::Out::Text(t)) => Ok(Value::String(lua.create_string(t)?)),
            Err(msg) => Err(raise_at(lua, &msg)),
        })?;
        rs.raw_set(format!("bit_{name}"), f)?;
    }
    let version = crate::version::REDIS_COMPAT_VERSION;
    rs.raw_set("version", version)?;
    rs.raw_set("version_num", version_num(version))?;
    let triggers = HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS);
    lua.set_hook(triggers, hook(run.clone()))?;
    // Hooks are per Lua thread: every coroutine a script creates gets the count hook too, or
    // a loop inside one could never be stopped.
    let coroutine_state = run.clone();
    rs.raw_set(
        "hook_thread",
        lua.create_function(move |_, co: mlua::Thread| {
            co.set_hook(
                HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
                hook(coroutine_state.clone()),
            )
        })?,
    )?;
    rs.raw_set(
        "limit_memory",
        lua.create_function(|lua, ()| lua.set_memory_limit(MEMORY_LIMIT).map(drop))?,
    )?;
    lua.load(PRELUDE).set_name("=limitkv").call::<Table>(rs)
}

/// A boxed count hook.
type Hook = Box<dyn Fn(&Lua, &mlua::Debug) -> mlua::Result<VmState> + Send>;

/// The count hook: [`RunState::check`] every [`HOOK_INSTRUCTIONS`]. Once it interrupts a
/// script it fires on every instruction of that Lua thread (as Redis switches to a line hook),
/// so a script that catches the error with `pcall` meets it again at once and cannot go on.
fn hook(state: Arc<RunState>) -> Hook {
    Box::new(move |lua, _| match state.check() {
        Ok(()) => Ok(VmState::Continue),
        // Never inside the prelude (the error handler, pcall's unwrapping): an error there
        // would replace the script's error with "error in error handling".
        Err(_) if in_prelude(lua) => Ok(VmState::Continue),
        Err(interrupt) => {
            state.note_hook_escalated();
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(1),
                hook(state.clone()),
            )?;
            Err(mlua::Error::external(interrupt))
        }
    })
}

/// True if the running Lua function belongs to the prelude.
fn in_prelude(lua: &Lua) -> bool {
    lua.inspect_stack(0, |d| d.source().source.as_deref() == Some("=limitkv"))
        .unwrap_or(false)
}

/// `0x00MMmmpp` of a `major.minor.patch` version, as `redis.REDIS_VERSION_NUM`.
fn version_num(v: &str) -> i64 {
    let mut n = 0i64;
    for part in v.split('.').take(3) {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

impl Engine {
    /// A fresh VM with the sandbox in place.
    ///
    /// Panics only if the embedded prelude fails, which is a bug caught by every test.
    pub fn new(run: Arc<RunState>) -> Engine {
        // A new engine starts with an empty script cache.
        run.clear_loaded();
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )
        .expect("invariant: the safe standard libraries load");
        lua.set_memory_limit(MEMORY_LIMIT)
            .expect("invariant: Lua 5.1 states track their memory");
        let resp3 = Arc::new(AtomicBool::new(false));
        let internals = build(&lua, &run, &resp3).expect("invariant: the embedded prelude runs");
        let get = |name: &str| -> Value {
            internals
                .raw_get(name)
                .expect("invariant: the prelude returns its internals")
        };
        let table = |name: &str| match get(name) {
            Value::Table(t) => t,
            other => panic!("invariant: prelude internal {name} is a table, got {other:?}"),
        };
        let function = |name: &str| match get(name) {
            Value::Function(f) => f,
            other => panic!("invariant: prelude internal {name} is a function, got {other:?}"),
        };
        lua.set_type_metatable::<mlua::String>(Some(table("string_mt")));
        Engine {
            redis: table("redis"),
            resp3,
            fields: Fields::new(&lua).expect("invariant: a fresh VM has memory for seven strings"),
            eval_env: table("eval_env"),
            function_env: table("function_env"),
            run_eval: function("run_eval"),
            run_fcall: function("run_fcall"),
            load_library_fn: function("load_library"),
            lua,
            run,
            scripts: HashMap::default(),
            libraries: IndexMap::default(),
            functions: HashMap::default(),
        }
    }

    fn compile(&self, code: &[u8], name: &str, env: &Table) -> Result<Function, String> {
        if code.first() == Some(&0x1b) {
            return Err(format!("{}: bytecode loading is disabled", &name[1..]));
        }
        self.lua
            .load(code)
            .set_name(name)
            .set_mode(ChunkMode::Text)
            .set_environment(env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            })
    }

    /// Adds `body` to the script cache (compiling it) unless it is there; returns its SHA1
    /// and whether it was new. Errors are Redis's texts (`ERR Error compiling script ...`,
    /// shebang errors).
    pub fn load_script(&mut self, body: &Bytes) -> Result<(Sha, bool), String> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok((sha, false));
        }
        let (flags, shebang_len) = parse_shebang(body)?;
        let func = self
            .compile(&body[shebang_len..], "@user_script", &self.eval_env)
            .map_err(|m| format!("ERR Error compiling script (new function): {m}"))?;
        self.scripts.insert(
            sha,
            Script {
                body: body.clone(),
                flags,
                whole_db: true,
                func,
            },
        );
        self.run.set_loaded(sha);
        Ok((sha, true))
    }

    /// The cached script with this SHA1.
    pub fn script(&self, sha: &Sha) -> Option<&Script> {
        self.scripts.get(sha)
    }

    /// Records whether runs of `target` must lock the whole database.
    pub fn set_whole_db(&mut self, target: Target<'_>, whole_db: bool) {
        match target {
            Target::Script(sha) => {
                if let Some(s) = self.scripts.get_mut(sha) {
                    s.whole_db = whole_db;
                }
            }
            Target::Function(name) => {
                if let Some(f) = self.functions.get_mut(&name.to_ascii_lowercase()) {
                    f.whole_db = whole_db;
                }
            }
        }
    }

    /// Empties the script cache (`SCRIPT FLUSH`).
    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.run.clear_loaded();
        self.lua.gc_collect().ok();
    }

    /// Every cached script body, for AOF compaction.
    pub fn script_bodies(&self) -> Vec<Bytes> {
        self.scripts.values().map(|s| s.body.clone()).collect()
    }

    /// Every library, in load order.
    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    /// The function called `name` (case-insensitive).
    pub fn function(&self, name: &str) -> Option<&FunctionEntry> {
        self.functions.get(&name.to_ascii_lowercase())
    }

    /// Number of functions over all libraries.
    pub fn function_count(&self) -> usize {
        self.functions.len()
    }

    /// Number of libraries.
    pub fn library_count(&self) -> usize {
        self.libraries.len()
    }

    /// Loads (or with `replace`, replaces) a library; returns its name. Errors are Redis's
    /// texts, `ERR ...`.
    pub fn load_library(&mut self, code: &Bytes, replace: bool) -> Result<String, String> {
        let (engine, name, offset) = parse_library_meta(code)?;
        if !valid_name(&name) {
            return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
        }
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(format!("ERR Engine '{engine}' not found"));
        }
        if self.libraries.contains_key(&name) && !replace {
            return Err(format!("ERR Library '{name}' already exists"));
        }
        let chunk = self
            .compile(&code[offset..], "@user_function", &self.function_env)
            .map_err(|m| format!("ERR Error compiling function: {m}"))?;
        self.reset_hook();
        self.run.begin_load();
        let loaded = self.load_library_fn.call::<(bool, Value)>(chunk);
        let timed_out = self.run.check() == Err(Interrupt::LoadTimeout);
        self.run.end_load();
        let regs = match loaded {
            Ok((true, Value::Table(regs))) => regs,
            Ok((_, Value::String(msg))) if !timed_out => {
                return Err(format!(
                    "ERR Error registering functions: {}",
                    msg.to_string_lossy()
                ))
            }
            Ok(_) | Err(_) if timed_out => {
                return Err("ERR Error registering functions: ERR FUNCTION LOAD timeout".into())
            }
            Ok(other) => {
                return Err(format!(
                    "ERR Error registering functions: ERR {:?}",
                    other.1.type_name()
                ))
            }
            Err(e) => return Err(format!("ERR Error registering functions: ERR {e}")),
        };
        let mut entries = Vec::new();
        for reg in regs.sequence_values::<Table>() {
            let reg = reg.map_err(|e| format!("ERR {e}"))?;
            let fname: String = reg.raw_get("name").map_err(|e| format!("ERR {e}"))?;
            let func: Function = reg.raw_get("callback").map_err(|e| format!("ERR {e}"))?;
            let description: Option<String> =
                reg.raw_get("description").map_err(|e| format!("ERR {e}"))?;
            let mut flags = 0u8;
            let names: Table = reg.raw_get("flags").map_err(|e| format!("ERR {e}"))?;
            for f in names.sequence_values::<mlua::String>() {
                let f = f.map_err(|e| format!("ERR {e}"))?;
                flags |= ScriptFlags::from_name(&f.as_bytes()).unwrap_or(0);
            }
            entries.push((fname, description, ScriptFlags(flags), func));
        }
        if entries.is_empty() {
            return Err("ERR No functions registered".into());
        }
        for (fname, ..) in &entries {
            if let Some(existing) = self.functions.get(&fname.to_ascii_lowercase()) {
                if existing.library != name {
                    return Err(format!("ERR Function {fname} already exists"));
                }
            }
        }
        self.remove_library(&name);
        let mut infos = Vec::with_capacity(entries.len());
        for (fname, description, flags, func) in entries {
            infos.push(FunctionInfo {
                name: fname.clone(),
                description,
                flags,
            });
            self.functions.insert(
                fname.to_ascii_lowercase(),
                FunctionEntry {
                    name: fname,
                    library: name.clone(),
                    flags,
                    whole_db: true,
                    func,
                },
            );
        }
        self.libraries.insert(
            name.clone(),
            Library {
                name: name.clone(),
                code: code.clone(),
                functions: infos,
            },
        );
        Ok(name)
    }

    fn remove_library(&mut self, name: &str) -> bool {
        let Some(lib) = self.libraries.shift_remove(name) else {
            return false;
        };
        for f in &lib.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        true
    }

    /// Deletes a library (`FUNCTION DELETE`); false if there is none by that name.
    pub fn delete_library(&mut self, name: &str) -> bool {
        self.remove_library(name)
    }

    /// Deletes every library (`FUNCTION FLUSH`).
    pub fn flush_functions(&mut self) {
        self.libraries.clear();
        self.functions.clear();
        self.lua.gc_collect().ok();
    }

    /// Puts the normal count hook back after an interrupted script escalated it.
    fn reset_hook(&self) {
        if self.run.take_hook_escalated() {
            let normal = HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS);
            if let Err(e) = self.lua.set_hook(normal, hook(self.run.clone())) {
                tracing::error!(error = %e, "cannot reset the script count hook");
            }
        }
    }

    /// Runs an EVAL script or a function with `keys` and `args`. Each `redis.call` goes to
    /// `call` with the request and whether the script speaks RESP3 (`redis.setresp(3)`).
    ///
    /// Returns `None` if the target does not exist (the caller checked, so only a race with
    /// nothing: the token is held).
    pub fn run(
        &mut self,
        target: Target<'_>,
        keys: &[Bytes],
        args: &[Bytes],
        call: &mut dyn FnMut(&[Bytes], bool) -> CallOutcome,
    ) -> Option<RunOutcome> {
        let (func, name, is_function) = match target {
            Target::Script(sha) => {
                let s = self.scripts.get(sha)?;
                // A Sha is 40 hex digits, so always UTF-8 (no allocation per run).
                let name = std::str::from_utf8(sha).unwrap_or_default();
                (s.func.clone(), std::borrow::Cow::Borrowed(name), false)
            }
            Target::Function(n) => {
                let f = self.functions.get(&n.to_ascii_lowercase())?;
                (
                    f.func.clone(),
                    std::borrow::Cow::Owned(f.name.clone()),
                    true,
                )
            }
        };
        self.reset_hook();
        let aborted = Cell::new(false);
        let call = RefCell::new(call);
        let resp3_flag = &*self.resp3;
        let fields = &self.fields;
        // One redis.call / redis.pcall: the front checks, then the caller's dispatch. `Err`
        // is what `redis.call` raises; `redis.pcall` returns it as an error table instead.
        let dispatch = |lua: &Lua, argv: MultiValue| -> mlua::Result<Result<Value, Value>> {
            let _unlimited = Unlimited::new(lua);
            let resp3 = resp3_flag.load(Ordering::Relaxed);
            if aborted.get() {
                return Ok(Err(rejected(lua, ABORTED)?));
            }
            if argv.is_empty() {
                let msg = "Please specify at least one argument for this redis lib call";
                return Ok(Err(rejected(lua, msg)?));
            }
            let mut buf = BytesMut::with_capacity(128);
            let mut ends = Vec::with_capacity(argv.len());
            for v in argv.iter() {
                if !push_arg(v, &mut buf) {
                    let msg = "Lua redis lib command arguments must be strings or integers";
                    return Ok(Err(rejected(lua, msg)?));
                }
                ends.push(buf.len());
            }
            let all = buf.freeze();
            let mut start = 0;
            let req: Vec<Bytes> = ends
                .into_iter()
                .map(|end| {
                    let arg = all.slice(start..end);
                    start = end;
                    arg
                })
                .collect();
            let outcome = (call.borrow_mut())(&req, resp3);
            match outcome {
                CallOutcome::Reply(frame) => {
                    let v = frame_to_lua(lua, fields, &frame, resp3)?;
                    Ok(if frame.is_error() { Err(v) } else { Ok(v) })
                }
                CallOutcome::Rejected(msg) => Ok(Err(rejected(lua, &msg)?)),
                CallOutcome::Abort => {
                    aborted.set(true);
                    self.run.abort();
                    Ok(Err(rejected(lua, ABORTED)?))
                }
            }
        };
        let unlimited = Unlimited::new(&self.lua);
        let result = self.lua.scope(|scope| {
            let redis_call =
                scope.create_function(|lua, argv: MultiValue| match dispatch(lua, argv)? {
                    Ok(v) => Ok(v),
                    Err(Value::Table(t)) => {
                        let text: String = t.raw_get("err")?;
                        Err(raise_table(text))
                    }
                    Err(other) => Ok(other),
                })?;
            let redis_pcall = scope.create_function(|lua, argv: MultiValue| {
                Ok(match dispatch(lua, argv)? {
                    Ok(v) | Err(v) => v,
                })
            })?;
            self.resp3.store(false, Ordering::Relaxed);
            let runner = if is_function {
                &self.run_fcall
            } else {
                &self.run_eval
            };
            let (ok, value): (bool, Value) = if keys.len() + args.len() <= VARARG_MAX {
                // UTF-8 strings go straight onto the Lua stack; others become Lua strings first.
                let items = keys
                    .iter()
                    .chain(args)
                    .map(|b| match std::str::from_utf8(b) {
                        Ok(text) => Ok(Either::Left(text)),
                        Err(_) => self.lua.create_string(b).map(Either::Right),
                    });
                let items = items.collect::<mlua::Result<Vec<_>>>()?;
                let _limited = Limited(&self.lua);
                runner.call((
                    func,
                    &redis_call,
                    &redis_pcall,
                    keys.len(),
                    Variadic::from(items),
                ))?
            } else {
                let keys_t = string_array(&self.lua, keys)?;
                let args_t = string_array(&self.lua, args)?;
                let _limited = Limited(&self.lua);
                runner.call((func, &redis_call, &redis_pcall, keys_t, args_t))?
            };
            let resp3 = self.resp3.load(Ordering::Relaxed);
            Ok(if ok {
                lua_to_frame(&self.fields, &value, resp3)
            } else {
                self.error_reply(&value, &name)
            })
        });
        if result.is_err() {
            // The runner clears them itself unless it failed before getting to that.
            self.redis.raw_set("call", Value::Nil).ok();
            self.redis.raw_set("pcall", Value::Nil).ok();
        }
        drop(unlimited);
        if aborted.get() {
            return Some(RunOutcome::Restart);
        }
        Some(RunOutcome::Reply(match result {
            Ok(frame) => frame,
            Err(e) => Frame::Error(sanitize_error(
                format!("ERR Error running script {name}, {e}").as_bytes(),
            )),
        }))
    }

    /// The reply for a script that raised: Redis's `-<err> script: <name>, on <source>:<line>.`
    fn error_reply(&self, err: &Value, name: &str) -> Frame {
        let Value::Table(t) = err else {
            let text = match err {
                Value::String(s) => s.to_string_lossy(),
                _ => "execution failure".into(),
            };
            let text: String = text.chars().take(100).collect();
            return Frame::Error(sanitize_error(
                format!("ERR Error running script {name}, {text}").as_bytes(),
            ));
        };
        let mut msg = match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.to_string_lossy(),
            Ok(Value::Number(n)) => super::convert::format_g(n, 14),
            Ok(Value::Integer(n)) => n.to_string(),
            _ => "ERR unknown error".to_owned(),
        };
        if self.run.was_killed() {
            msg = format!("ERR {}", Interrupt::Killed);
        }
        let source = t.raw_get::<Option<String>>("source").ok().flatten();
        let line = t.raw_get::<Option<i64>>("line").ok().flatten();
        if let (Some(source), Some(line)) = (source, line) {
            msg = format!("{msg} script: {name}, on {source}:{line}.");
        }
        Frame::Error(sanitize_error(msg.as_bytes()))
    }
}

fn string_array(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, b) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(b)?)?;
    }
    Ok(t)
}

/// Redis's error table for a refused call: `{err="CODE msg", ignore_error_stats_update=true}`.
fn rejected(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 2)?;
    t.raw_set("err", error_text(text))?;
    t.raw_set("ignore_error_stats_update", true)?;
    Ok(Value::Table(t))
}

/// Redis's `luaPushErrorBuff`: `-CODE msg` keeps its code, anything else gets `ERR`; CR and LF
/// at the ends of the message are trimmed.
pub fn error_text(text: &str) -> String {
    let (code, msg) = match text.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code, msg),
            None => ("ERR", rest),
        },
        None => ("ERR", text),
    };
    let msg = msg.trim_matches(|c| c == '\r' || c == '\n');
    format!("{code} {msg}")
}

/// Redis's `evalExtractShebangFlags`: the flags and the length of the shebang line (the body
/// after it keeps its newline, so line numbers stay right).
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags(ScriptFlags::EVAL_COMPAT), 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = 0u8;
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(',') {
            match ScriptFlags::from_name(f.as_bytes()) {
                Some(bit) => flags |= bit,
                // Upstash's flag (its scripts lock only their declared keys), which
                // `@upstash/ratelimit` puts on every script: limitkv runs scripts as Redis
                // does, so it accepts the flag and it changes nothing.
                None if f == ScriptFlags::UPSTASH_KEY_LOCKING => {}
                None => return Err(format!("ERR Unexpected flag in script shebang: {f}")),
            }
        }
    }
    Ok((ScriptFlags(flags), end))
}

/// Redis's `functionExtractLibMetaData`: engine, library name, and where the code starts.
fn parse_library_meta(code: &[u8]) -> Result<(String, String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&c| c == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(first) = parts.next() else {
        return Err("ERR Invalid library metadata".into());
    };
    let engine = first[2..].to_owned();
    let mut name = None;
    for part in parts {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_owned());
            continue;
        }
        return Err(format!("ERR Invalid metadata value given: {part}"));
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    Ok((engine, name, end))
}

/// Library and function names: letters, digits and underscores, at least one.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}
