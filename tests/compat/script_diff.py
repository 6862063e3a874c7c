"""Each recorded ``limits`` script, run by the server (SCRIPT LOAD + EVALSHA), against its
client-side emulation (emulate.py), on the same server: same starting keys in two namespaces,
then the replies and the resulting keys (type, value, TTL within 100 ms) must be equal.

Against redis-server this proves the emulations (the readable specification of each script in
tests/compat/scripts/README.md); against a server with its own scripting it checks that the
scripts run exactly as on Redis, reply shapes included (nil inside arrays, Lua number formatting)
that the libraries themselves would not notice. Needs EVAL.
"""

import os
import time

import redis

import emulate
from harness import HOST, PORT, RUN_ID, finish, scenario, server_has_eval

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")
NOW = time.time()
TTL_SLACK_MS = 100

# (script file, description, setup commands, keys, args, indexes of ms TTLs in the reply).
# "{1}" and "{2}" in setup commands and keys stand for the case's keys.
CASES = [
    ("limits-incr-expire.lua", "fresh key", [], ["{1}"], ["60", "1"], []),
    ("limits-incr-expire.lua", "counting key keeps its expiry", [["SET", "{1}", "2", "EX", "30"]], ["{1}"], ["60", "1"], []),
    ("limits-incr-expire.lua", "cost 3", [], ["{1}"], ["60", "3"], []),
    ("limits-incr-expire.lua", "wrong type", [["RPUSH", "{1}", "x"]], ["{1}"], ["60", "1"], []),
    ("limits-acquire-moving-window.lua", "fresh key", [], ["{1}"], [repr(NOW), "3", "60", "1"], []),
    (
        "limits-acquire-moving-window.lua",
        "full window denies",
        [["LPUSH", "{1}", repr(NOW - 3), repr(NOW - 2), repr(NOW - 1)]],
        ["{1}"],
        [repr(NOW), "3", "60", "1"],
        [],
    ),
    (
        "limits-acquire-moving-window.lua",
        "old entries allow and are trimmed",
        [["LPUSH", "{1}", repr(NOW - 90), repr(NOW - 80), repr(NOW - 70), repr(NOW - 1)]],
        ["{1}"],
        [repr(NOW), "3", "60", "2"],
        [],
    ),
    ("limits-acquire-moving-window.lua", "cost above the limit", [], ["{1}"], [repr(NOW), "3", "60", "4"], []),
    ("limits-moving-window.lua", "empty", [], ["{1}"], [repr(NOW - 60), "3"], []),
    (
        "limits-moving-window.lua",
        "two of three in the window",
        [["LPUSH", "{1}", repr(NOW - 70), repr(NOW - 20.123456789), repr(NOW - 1)]],
        ["{1}"],
        [repr(NOW - 60), "3"],
        [],
    ),
    ("limits-acquire-sliding-window.lua", "fresh keys", [], ["{2}", "{1}"], ["3", "60", "1"], []),
    (
        "limits-acquire-sliding-window.lua",
        "current window within its first minute",
        [["SET", "{1}", "2", "PX", "100000"]],
        ["{2}", "{1}"],
        ["3", "60", "1"],
        [],
    ),
    (
        "limits-acquire-sliding-window.lua",
        "roll-over, weighted previous window denies",
        [["SET", "{1}", "3", "PX", "50000"]],
        ["{2}", "{1}"],
        ["3", "60", "1"],
        [],
    ),
    (
        "limits-acquire-sliding-window.lua",
        "weighted previous window allows",
        [["SET", "{2}", "3", "PX", "10000"], ["SET", "{1}", "0", "PX", "70000"]],
        ["{2}", "{1}"],
        ["3", "60", "2"],
        [],
    ),
    ("limits-acquire-sliding-window.lua", "cost above the limit", [], ["{2}", "{1}"], ["3", "60", "4"], []),
    ("limits-sliding-window.lua", "fresh keys", [], ["{2}", "{1}"], ["60"], [1, 3]),
    (
        "limits-sliding-window.lua",
        "both windows",
        [["SET", "{2}", "4", "PX", "20000"], ["SET", "{1}", "1", "PX", "90000"]],
        ["{2}", "{1}"],
        ["60"],
        [1, 3],
    ),
    (
        "limits-sliding-window.lua",
        "roll-over",
        [["SET", "{1}", "3", "PX", "45000"]],
        ["{2}", "{1}"],
        ["60"],
        [1, 3],
    ),
    (
        "limits-clear-keys.lua",
        "three matching keys",
        [["SET", "{1}", "1"], ["SET", "{2}", "1"], ["RPUSH", "{1}x", "a"]],
        ["{p}*"],
        [],
        [],
    ),
]


def load_index():
    shas = {}
    with open(os.path.join(SCRIPTS, "index.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            shas[cols[0]] = cols[3]
    return shas


def expand(template, ns):
    return template.replace("{1}", f"{ns}:k1").replace("{2}", f"{ns}:k2").replace("{p}", f"{ns}:")


def outcome(fn):
    try:
        return ("reply", fn())
    except redis.ResponseError as e:
        return ("error", str(e).split()[0])


def normalize(result, ttl_positions):
    kind, value = result
    if kind == "reply" and isinstance(value, list):
        return kind, [("ttl", v) if i in ttl_positions else v for i, v in enumerate(value)]
    return kind, value


def same(a, b):
    if isinstance(a, tuple) and a and a[0] == "ttl":
        return isinstance(b, tuple) and (a[1] == b[1] or (a[1] > 0 and b[1] > 0 and abs(a[1] - b[1]) <= TTL_SLACK_MS))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def keyspace(r, ns):
    """The case's keys: name (without namespace) -> (type, value, ttl class or ms)."""
    state = {}
    for key in r.keys(f"{ns}:*"):
        name = key.decode()[len(ns) :]
        kind = r.type(key).decode()
        value = r.get(key) if kind == "string" else r.lrange(key, 0, -1) if kind == "list" else None
        state[name] = (kind, value, ("ttl", r.pttl(key)))
    return state


def main():
    if not server_has_eval():
        scenario("script diff: limits' scripts, server vs emulation", needs_eval=True)(lambda: None)
        finish()
    r = redis.Redis(host=HOST, port=PORT)
    shas = load_index()
    for n, (file, what, setup, keys, args, ttl_positions) in enumerate(CASES):

        @scenario(f"script diff: {file} {what}")
        def _(n=n, file=file, setup=setup, keys=keys, args=args, ttl_positions=ttl_positions):
            with open(os.path.join(SCRIPTS, file), "rb") as f:
                sha = r.script_load(f.read())
            if sha != shas[file]:
                raise AssertionError(f"SCRIPT LOAD gave {sha}, index.tsv says {shas[file]}")
            results, states = [], []
            for side in ("server", "emulated"):
                ns = f"{RUN_ID}:diff:{n}:{side}"
                for cmd in setup:
                    r.execute_command(*[expand(c, ns) for c in cmd])
                ks = [expand(k, ns) for k in keys]
                if side == "server":
                    result = outcome(lambda: r.evalsha(sha, len(ks), *ks, *args))
                else:
                    impl = emulate.IMPLEMENTATIONS[sha]
                    result = outcome(lambda: impl(r.execute_command, ks, list(args)))
                results.append(normalize(result, ttl_positions))
                states.append(keyspace(r, ns))
            if not same(results[0], results[1]):
                raise AssertionError(f"reply: server {results[0]!r}, emulated {results[1]!r}")
            if not same(states[0], states[1]):
                raise AssertionError(f"keys: server {states[0]!r}, emulated {states[1]!r}")

    finish()


main()
