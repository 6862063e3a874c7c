-- limitkv's Lua prelude: runs once per VM, with the full standard library still in place,
-- before the sandbox is sealed. It builds what Redis 7.0 builds in C: the `redis` API, the
-- read-only globals, the error handler, the `pcall` that unwraps error tables, and the
-- environments of EVAL scripts and function libraries. Every internal function is defined
-- here (chunk name `=limitkv`), so the error handler can skip these frames when it looks for
-- the user's line.
--
-- Argument: `rs`, a table of Rust functions. Returns a table of internals for the Rust side.
--
-- Functions a script may call in tail position and that can fail (redis.call, cjson.*, bit.*,
-- redis.setresp, ...) are Rust functions, not Lua wrappers: a Lua tail call would remove the
-- script's frame, and with it the line Redis reports. They raise Rust errors (userdata); the
-- handler and pcall turn those back into what Redis raises (`rs.unwrap_error`).

local rs = ...

local type, tostring, tonumber, error, select, rawget, rawset, rawequal, next, pairs, ipairs =
      type, tostring, tonumber, error, select, rawget, rawset, rawequal, next, pairs, ipairs
local raw_setmetatable, getmetatable, raw_pcall, xpcall, setfenv, unpack =
      setmetatable, getmetatable, pcall, xpcall, setfenv, unpack
local raw_loadstring, raw_load = loadstring, load
local s_byte, s_sub, s_find, s_lower = string.byte, string.sub, string.find, string.lower
local G = _G

local INTERNAL = '=limitkv'

-- Tables that scripts can read but never change (the emulation of Redis's read-only tables).
local protected = raw_setmetatable({}, { __mode = 'k' })

local function readonly_error()
  error('Attempt to modify a readonly table', 2)
end

-- A read-only view of `real`: reads fall through (a table `__index`, so no function call on
-- the hot path), writes raise Redis's error.
local function proxy(real)
  local p = raw_setmetatable({}, { __index = real, __newindex = readonly_error, __metatable = false })
  protected[p] = true
  return p
end

local function setmetatable(t, mt)
  if protected[t] then error({ err = 'ERR Attempt to modify a readonly table' }) end
  return raw_setmetatable(t, mt)
end

local function safe_rawset(t, k, v)
  if protected[t] then error({ err = 'ERR Attempt to modify a readonly table' }) end
  return rawset(t, k, v)
end

local function nonexistent(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end

-- Redis's error handler: the error becomes a table {err=..., source=..., line=...} where the
-- source and line are those of the innermost user frame (not C, not this prelude).
local user_frame, unwrap_error = rs.user_frame, rs.unwrap_error
local function handler(err)
  local source, line = user_frame()
  if type(err) == 'userdata' then err = unwrap_error(err) end
  if type(err) ~= 'table' then err = { err = 'ERR ' .. tostring(err) } end
  if source then
    rawset(err, 'source', source)
    rawset(err, 'line', line)
  end
  return err
end

-- Redis 7's pcall: an error table with a string `err` is returned as that string.
local function pcall_result(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == 'userdata' then e = unwrap_error(e) end
  if type(e) == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end

local function pcall(f, ...)
  return pcall_result(raw_pcall(f, ...))
end

-- xpcall's handler sees errors as Redis raises them (tables and strings, not userdata).
local function safe_xpcall(f, h)
  return xpcall(f, function(e)
    if type(e) == 'userdata' then e = unwrap_error(e) end
    return h(e)
  end)
end

-- Errors in Redis's format: "-CODE msg" keeps its code, anything else gets ERR.
local function trim_crlf(s)
  local i, j = 1, #s
  while i <= j do
    local c = s_byte(s, i)
    if c ~= 13 and c ~= 10 then break end
    i = i + 1
  end
  while j >= i do
    local c = s_byte(s, j)
    if c ~= 13 and c ~= 10 then break end
    j = j - 1
  end
  return s_sub(s, i, j)
end

local function error_table(e)
  local code, msg
  if s_byte(e, 1) == 45 then
    local sp = s_find(e, ' ', 1, true)
    if sp then
      code, msg = s_sub(e, 2, sp - 1), s_sub(e, sp + 1)
    else
      code, msg = 'ERR', s_sub(e, 2)
    end
  else
    code, msg = 'ERR', e
  end
  return { err = code .. ' ' .. trim_crlf(msg) }
end

-- The bytecode loader is never reachable: chunks are text, with the scripts' environment.
local env_of_caller -- set below: the environment new chunks get

local function loadstring(s, name)
  if type(s) == 'string' and s_byte(s, 1) == 27 then
    return nil, 'bytecode loading is disabled'
  end
  local f, e = raw_loadstring(s, name)
  if f then setfenv(f, env_of_caller()) end
  return f, e
end

local function load(fn, name)
  local first = true
  local function reader()
    local piece = fn()
    if first and type(piece) == 'string' and #piece > 0 then
      first = false
      if s_byte(piece, 1) == 27 then error('bytecode loading is disabled') end
    end
    return piece
  end
  local f, e = raw_load(reader, name)
  if f then setfenv(f, env_of_caller()) end
  return f, e
end

---------------------------------------------------------------------------------------------
-- The redis API.


local function error_reply(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  if s_byte(e, 1) ~= 45 then e = '-' .. e end
  return error_table(e)
end

local function status_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  return { ok = s }
end

local function add_constants(t)
  t.LOG_DEBUG, t.LOG_VERBOSE, t.LOG_NOTICE, t.LOG_WARNING = 0, 1, 2, 3
  t.REDIS_VERSION = rs.version
  t.REDIS_VERSION_NUM = rs.version_num
end

-- `call` and `pcall` are the Rust side's per-run functions, installed by the runners below.
local R = {
  setresp = rs.setresp,
  error_reply = error_reply,
  status_reply = status_reply,
  sha1hex = rs.sha1hex,
  log = rs.log,
  replicate_commands = function() return true end,
  set_repl = rs.set_repl,
  breakpoint = function() return false end,
  debug = function() end,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
add_constants(R)

local cjson = {
  encode = rs.cjson_encode,
  decode = rs.cjson_decode,
  null = rs.null,
  _NAME = 'cjson',
  _VERSION = '2.1.0',
}

local bit = {}
for _, name in ipairs({ 'tobit', 'bnot', 'band', 'bor', 'bxor', 'lshift', 'rshift', 'arshift',
                        'rol', 'ror', 'bswap', 'tohex' }) do
  bit[name] = rs['bit_' .. name]
end

---------------------------------------------------------------------------------------------
-- Globals. EVAL scripts and function libraries each get a read-only view of their own table
-- of globals (functions never see KEYS/ARGV, as in Redis where they live in another VM).

local allowed = {
  'assert', 'collectgarbage', 'error', 'gcinfo', 'getmetatable', 'ipairs', 'next',
  'pairs', 'rawequal', 'rawget', 'select', 'tonumber', 'tostring', 'type', 'unpack',
  '_VERSION',
}

local string_proxy = proxy(string)

-- Coroutines get the count hook (busy threshold, SCRIPT KILL) like the main thread.
local co_create, co_resume = coroutine.create, coroutine.resume
local hook_thread = rs.hook_thread
local function create(f)
  local co = co_create(f)
  hook_thread(co)
  return co
end
local function wrap_result(ok, ...)
  if ok then return ... end
  local e = ...
  -- As Lua's own wrap: a string error gets the caller's position.
  if type(e) == 'string' then error(e, 3) end
  error(e, 0)
end
local function wrap(f)
  local co = create(f)
  return function(...)
    return wrap_result(co_resume(co, ...))
  end
end
local coroutine_lib = {}
for k, v in pairs(coroutine) do coroutine_lib[k] = v end
coroutine_lib.create = create
coroutine_lib.wrap = wrap
local coroutine_proxy = proxy(coroutine_lib)

local function make_globals()
  local g = {}
  for _, name in ipairs(allowed) do g[name] = G[name] end
  g.setmetatable = setmetatable
  g.rawset = safe_rawset
  g.pcall = pcall
  g.xpcall = safe_xpcall
  g.loadstring = loadstring
  g.load = load
  g.string = string_proxy
  g.table = proxy(table)
  g.math = proxy(math)
  g.coroutine = coroutine_proxy
  g.cjson = proxy(cjson)
  g.bit = proxy(bit)
  raw_setmetatable(g, { __index = nonexistent, __metatable = false })
  protected[g] = true
  return g
end

-- Strings' metatable (installed by the Rust side) must not lead back to the real, writable
-- string library: methods resolve through a read-only view, and getmetatable('') answers a
-- read-only view of the metatable.
local string_mt = { __index = string_proxy }
string_mt.__metatable = proxy(string_mt)
protected[string_mt] = true

-- `server` is an alias of `redis` (as in Valkey and later Redis releases; Redis 7.0 has none).
local redis_proxy = proxy(R)
local eval_globals = make_globals()
eval_globals.redis = redis_proxy
eval_globals.server = redis_proxy
local eval_env = proxy(eval_globals)
rawset(eval_globals, '_G', eval_env)

-- Function runtime: the redis API without register_function.
local function_globals = make_globals()
function_globals.redis = redis_proxy
function_globals.server = redis_proxy
local function_env_mt = { __index = function_globals, __newindex = readonly_error, __metatable = false }
local function_env = raw_setmetatable({}, function_env_mt)
protected[function_env] = true
rawset(function_globals, '_G', function_env)

-- Which environment a chunk made by loadstring gets: the one its caller runs in.
local current_env = eval_env
env_of_caller = function() return current_env end

---------------------------------------------------------------------------------------------
-- Function libraries: the load-time API and registration.

local pending -- registrations of the library being loaded, or nil outside FUNCTION LOAD

local FLAGS = { ['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
                ['no-cluster'] = true, ['allow-cross-slot-keys'] = true }

local function valid_name(name)
  return #name > 0 and not s_find(name, '[^%w_]')
end

local function reg_error(msg) error({ err = 'ERR ' .. msg }) end

local function register_function(...)
  if pending == nil then
    reg_error('redis.register_function can only be called on FUNCTION LOAD command')
  end
  local n = select('#', ...)
  if n < 1 or n > 2 then reg_error('wrong number of arguments to redis.register_function') end
  local name, callback, flags, desc = nil, nil, {}, nil
  if n == 1 then
    local args = ...
    if type(args) ~= 'table' then
      reg_error('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for k, v in next, args do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        reg_error('named argument key given to redis.register_function is not a string')
      end
      local key = s_lower(tostring(k))
      if key == 'function_name' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          reg_error('function_name argument given to redis.register_function must be a string')
        end
        name = tostring(v)
      elseif key == 'description' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          reg_error('description argument given to redis.register_function must be a string')
        end
        desc = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then
          reg_error('callback argument given to redis.register_function must be a function')
        end
        callback = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then
          reg_error('flags argument to redis.register_function must be a table representing function flags')
        end
        for i = 1, #v do
          local f = v[i]
          if type(f) ~= 'string' or not FLAGS[f] then reg_error('unknown flag given') end
          flags[#flags + 1] = f
        end
      else
        reg_error('unknown argument given to redis.register_function')
      end
    end
    if name == nil then reg_error('redis.register_function must get a function name argument') end
    if callback == nil then reg_error('redis.register_function must get a callback argument') end
  else
    local a, b = ...
    if type(a) ~= 'string' and type(a) ~= 'number' then
      reg_error('first argument to redis.register_function must be a string')
    end
    if type(b) ~= 'function' then
      reg_error('second argument to redis.register_function must be a function')
    end
    name, callback = tostring(a), b
  end
  if not valid_name(name) then
    reg_error('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  for i = 1, #pending do
    if pending[i].name == name then reg_error('Function already exists in the library') end
  end
  pending[#pending + 1] = { name = name, callback = callback, flags = flags, description = desc }
end

local load_redis = { register_function = register_function, log = rs.log }
add_constants(load_redis)
raw_setmetatable(load_redis, { __index = nonexistent, __metatable = false })
protected[load_redis] = true
local load_redis_proxy = proxy(load_redis)
local load_api = { redis = load_redis_proxy, server = load_redis_proxy }
raw_setmetatable(load_api, { __index = nonexistent, __metatable = false })
protected[load_api] = true

-- Runs a library's main chunk with the load-time API; returns its registrations or an error
-- message ("ERR ...").
local function load_library(chunk)
  pending = {}
  function_env_mt.__index = load_api
  current_env = function_env
  local ok, e = raw_pcall(chunk)
  function_env_mt.__index = function_globals
  current_env = eval_env
  local regs = pending
  pending = nil
  if ok then return true, regs end
  if type(e) == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' or type(m) == 'number' then return false, tostring(m) end
    return false, 'ERR unknown error'
  end
  return false, 'ERR ' .. tostring(e)
end

---------------------------------------------------------------------------------------------
-- Running.

-- KEYS and ARGV come either as two tables, or as the number of keys followed by the keys and
-- the arguments themselves (cheaper for the usual few: see VARARG_MAX in engine.rs).
local limit_memory = rs.limit_memory
local function split_args(call, pcall, nkeys, ...)
  limit_memory()
  R.call, R.pcall = call, pcall
  if type(nkeys) == 'table' then return nkeys, (...) end
  local keys = { ... }
  local argv = { select(nkeys + 1, ...) }
  for i = select('#', ...), nkeys + 1, -1 do keys[i] = nil end
  return keys, argv
end

local function run_eval(f, ...)
  local keys, argv = split_args(...)
  rawset(eval_globals, 'KEYS', keys)
  rawset(eval_globals, 'ARGV', argv)
  current_env = eval_env
  local ok, r = xpcall(f, handler)
  R.call, R.pcall = nil, nil
  return ok, r
end

local cur_f, cur_k, cur_a
local function trampoline() return cur_f(cur_k, cur_a) end

local function run_fcall(f, ...)
  local keys, args = split_args(...)
  cur_f, cur_k, cur_a = f, keys, args
  current_env = function_env
  local ok, r = xpcall(trampoline, handler)
  R.call, R.pcall = nil, nil
  cur_f, cur_k, cur_a = nil, nil, nil
  current_env = eval_env
  return ok, r
end

-- Lock the real globals too: nothing may reach them, but a slip should fail loudly.
raw_setmetatable(G, { __index = nonexistent, __newindex = readonly_error, __metatable = false })

return {
  string_mt = string_mt,
  redis = R,
  eval_env = eval_env,
  function_env = function_env,
  run_eval = run_eval,
  run_fcall = run_fcall,
  load_library = load_library,
}
