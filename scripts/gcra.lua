-- GCRA rate limiter for a stock redis-server, with the semantics and reply of redis-cell's
-- CL.THROTTLE. Used by scripts/bench-vs-redis.sh as the baseline when no redis-cell module
-- is available.
--
--   EVALSHA <sha> 1 <key> <max_burst> <count> <period_s> [<quantity>]
--
-- Reply: { limited (0|1), limit, remaining, retry_after_s, reset_after_s }, as CL.THROTTLE.
--
-- Terms (as in redis-cell):
--   emission interval T = trunc(period_s * 1e9 / count) ns  (float division, truncated)
--   limit               = max_burst + 1
--   tolerance           = T * limit
--   increment           = T * quantity
--   TAT                 = theoretical arrival time, the only state kept
-- A request is admitted when max(now, TAT) + increment - tolerance <= now; the new TAT is then
-- max(now, TAT) + increment.
--
-- State: the TAT in nanoseconds since the Unix epoch, stored as a decimal integer string
-- (redis-cell's format), with a PX expiry rounded up to the next whole millisecond so the key
-- never disappears before its TAT. Lua 5.1 numbers are doubles, which cannot hold an absolute
-- nanosecond time exactly, so the stored string is split into seconds and nanoseconds and all
-- arithmetic is done on offsets from `now`. These are exact while they stay below 2^53 ns
-- (about 104 days), which bounds the tolerance (T * limit) this script handles exactly.
--
-- Rounding, as redis-cell:
--   remaining     = trunc(trunc(next / 1000) / trunc(T / 1000)) with next = tolerance - ttl,
--                   or 0 when next <= -T. (For T < 1 us, where redis-cell divides by zero, it
--                   is floor(max(next, 0) / T).)
--   a duration    = its whole seconds, plus 1 if the sub-second part is at least 1 ms
--   retry_after_s = -1 when admitted, or when quantity can never be admitted
--   reset_after_s = time until the bucket is full again (0 for a fresh key)
--
-- The clock is the server's redis.call('TIME') (microsecond resolution).

local NS_PER_S = 1000000000

local function trunc(x)
  if x >= 0 then
    return math.floor(x)
  end
  return math.ceil(x)
end

-- An integer argument, or nil when absent/not an integer.
local function int_arg(i)
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v ~= v then
    return nil
  end
  return v
end

-- redis-cell's seconds rounding for a non-negative duration in ns.
local function cell_seconds(ns)
  local s = math.floor(ns / NS_PER_S)
  if ns - s * NS_PER_S >= 1000000 then
    s = s + 1
  end
  return s
end

if #KEYS ~= 1 or #ARGV < 3 or #ARGV > 4 then
  return redis.error_reply('ERR usage: EVALSHA sha 1 key max_burst count period [quantity]')
end
local key = KEYS[1]
local max_burst = int_arg(1)
local count = int_arg(2)
local period = int_arg(3)
local quantity = 1
if #ARGV == 4 then
  quantity = int_arg(4)
end
if max_burst == nil or count == nil or period == nil or quantity == nil then
  return redis.error_reply('ERR value is not an integer or out of range')
end
if max_burst < 0 then
  return redis.error_reply('ERR max_burst must be >= 0')
end
if count <= 0 then
  return redis.error_reply('ERR count must be > 0')
end
if period <= 0 then
  return redis.error_reply('ERR period must be > 0')
end
if quantity < 0 then
  return redis.error_reply('ERR quantity must be >= 0')
end

local emission = trunc(period * NS_PER_S / count)
if emission <= 0 then
  return redis.error_reply('ERR emission interval must be > 0 (count is too large for the period)')
end
local limit = max_burst + 1
local tolerance = emission * limit
local increment = emission * quantity
if tolerance > 2 ^ 53 or increment > 2 ^ 53 then
  return redis.error_reply('ERR rate parameters are out of range')
end

local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ns = tonumber(t[2]) * 1000

-- rel = TAT - now, in ns; a missing key is a fresh bucket (TAT = now).
local rel = 0
local stored = redis.call('GET', key)
if stored then
  local tat_s = tonumber(string.sub(stored, 1, -10)) or 0
  local tat_ns = tonumber(string.sub(stored, -9))
  if tat_ns == nil then
    return redis.error_reply('ERR stored TAT is not an integer')
  end
  rel = (tat_s - now_s) * NS_PER_S + (tat_ns - now_ns)
end

local base = rel
if base < 0 then
  base = 0 -- max(now, TAT) - now
end
local new_rel = base + increment -- new TAT - now
local diff = tolerance - new_rel -- now - allow_at

local limited, retry_after, ttl
if diff < 0 then
  limited = 1
  if increment <= tolerance then
    retry_after = -diff
  end
  ttl = base
else
  limited = 0
  ttl = new_rel
  if quantity > 0 then
    local abs = now_ns + new_rel
    local carry = math.floor(abs / NS_PER_S)
    local tat = string.format('%d%09d', now_s + carry, abs - carry * NS_PER_S)
    redis.call('SET', key, tat, 'PX', math.max(1, math.ceil(new_rel / 1000000)))
  end
end

local next_ns = tolerance - ttl
local remaining = 0
if next_ns > -emission then
  local emission_us = trunc(emission / 1000)
  if emission_us == 0 then
    remaining = math.floor(math.max(next_ns, 0) / emission)
  else
    remaining = trunc(trunc(next_ns / 1000) / emission_us)
  end
end

local retry_s = -1
if retry_after ~= nil then
  retry_s = cell_seconds(retry_after)
end
return { limited, limit, remaining, retry_s, cell_seconds(ttl) }
