"""COMPAT_EMULATE_SCRIPTS=1: the ``limits`` storage's Lua scripts run on the client instead, as the
same sequence of plain commands (not atomic, which a single test client does not notice).

This exercises every command the scripts call, with the scripts' exact arguments, on a server that
has no EVAL yet, and pins the scripts' semantics (tests/compat/scripts/README.md) in code. Against
redis-server the same scenarios must pass with and without emulation. Lua details kept: a Lua
number passed to redis.call becomes a string with "%.17g", Lua's tostring uses "%.14g", Lua
``true`` replies 1 and ``false`` replies nil.
"""

import math
import os

EMULATING = os.environ.get("COMPAT_EMULATE_SCRIPTS") == "1"


def arg(n):
    """A Lua number as redis.call sends it."""
    return "%.17g" % n


def tonumber(v):
    """Lua's tonumber of a reply or argument (nil/false/non-numeric give None)."""
    if v is None or v is False:
        return None
    if isinstance(v, (int, float)):
        return v
    try:
        return float(v)
    except ValueError:
        return None


def incr_expire(call, keys, argv):
    amount = tonumber(argv[1])
    current = call("incrby", keys[0], arg(amount))
    if tonumber(current) == amount:
        call("expire", keys[0], argv[0])
    return current


def acquire_moving_window(call, keys, argv):
    timestamp, limit, expiry, amount = (tonumber(a) for a in argv)
    if amount > limit:
        return None
    entry = call("lindex", keys[0], arg(limit - amount))
    if entry is not None and tonumber(entry) >= timestamp - expiry:
        return None
    entries = [arg(timestamp)] * int(amount)
    for i in range(0, len(entries), 5000):
        call("lpush", keys[0], *entries[i : i + 5000])
    call("ltrim", keys[0], "0", arg(limit - 1))
    call("expire", keys[0], arg(expiry))
    return 1


def moving_window(call, keys, argv):
    length = tonumber(argv[1])
    target = tonumber(argv[0])
    low, high, result = 0, length - 1, None
    while low <= high:
        mid = math.floor((low + high) / 2)
        val = tonumber(call("lindex", keys[0], arg(mid)))
        if val is not None and val >= target:
            result = mid
            low = mid + 1
        else:
            high = mid - 1
    if result is None:
        return None
    oldest = tonumber(call("lindex", keys[0], arg(result)))
    return [("%.14g" % oldest).encode(), int(result + 1)]


def roll_over(call, keys, expiry, current_ttl):
    """The shared step: when less than one window is left on the current counter, it becomes
    the previous one and a new current counter starts at 0."""
    if current_ttl > 0 and current_ttl < expiry:
        call("rename", keys[1], keys[0])
        call("set", keys[1], "0", "PX", arg(current_ttl + expiry))
        return True
    return False


def acquire_sliding_window(call, keys, argv):
    limit = tonumber(argv[0])
    expiry = tonumber(argv[1]) * 1000
    amount = tonumber(argv[2])
    if amount > limit:
        return None
    current_ttl = tonumber(call("pttl", keys[1]))
    roll_over(call, keys, expiry, current_ttl)
    previous_count = tonumber(call("get", keys[0])) or 0
    previous_ttl = tonumber(call("pttl", keys[0])) or 0
    current_count = tonumber(call("get", keys[1])) or 0
    current_ttl = tonumber(call("pttl", keys[1])) or 0
    previous_ttl = max(previous_ttl, 0)
    current_ttl = max(current_ttl, 0)
    weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
    if weighted + amount > limit:
        return None
    if call("exists", keys[1]) == 1:
        call("incrby", keys[1], arg(amount))
    else:
        call("set", keys[1], arg(amount), "PX", arg(expiry * 2))
    return 1


def sliding_window(call, keys, argv):
    expiry = tonumber(argv[0]) * 1000
    reply = [call("get", keys[0]), call("pttl", keys[0]), call("get", keys[1]), call("pttl", keys[1])]
    if roll_over(call, keys, expiry, reply[3]):
        reply = [call("get", keys[0]), call("pttl", keys[0]), call("get", keys[1]), call("pttl", keys[1])]
    return reply


def clear_keys(call, keys, argv):
    found = call("keys", keys[0])
    res = 0
    for i in range(0, len(found), 5000):
        res += call("del", *found[i : i + 5000])
    return res


# By SHA1 of the exact script text (see scripts/index.tsv): a library upgrade that changes a
# script fails with "no emulation" instead of emulating stale code.
IMPLEMENTATIONS = {
    "628bd136a573a06b346879695681af12ccef300f": incr_expire,
    "741eab638ba93ed71020bb821c45c022d0fa02c4": acquire_moving_window,
    "ad795214f59fe26d6fdec07973836dd16586f5ec": moving_window,
    "e8ac2a60cb040b0dbb56815a1e9c6fd032ce62e7": acquire_sliding_window,
    "e7a0a27d4101baabb124af209bb0245197a359a1": sliding_window,
    "f2994557f1daca13bfef97c2a31ca4b174e031ca": clear_keys,
}

SCRIPT_ATTRIBUTES = (
    "lua_moving_window",
    "lua_acquire_moving_window",
    "lua_clear_keys",
    "lua_incr_expire",
    "lua_sliding_window",
    "lua_acquire_sliding_window",
)


def install(storage):
    """Replaces a limits RedisStorage's registered scripts with their emulations."""
    client = storage.storage

    def call(*args):
        return client.execute_command(*args)

    for attribute in SCRIPT_ATTRIBUTES:
        script = getattr(storage, attribute)
        impl = IMPLEMENTATIONS.get(script.sha)
        if impl is None:
            raise RuntimeError(f"no emulation for {attribute} (script {script.sha})")

        def run(keys=None, args=None, client=None, impl=impl):
            return impl(call, list(keys or []), [a if isinstance(a, str) else str(a) for a in (args or [])])

        setattr(storage, attribute, run)
    return storage
