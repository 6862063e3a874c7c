"""The restart scenario for Python ``limits``: fixed, moving and sliding-window-counter limiters
count, the server restarts (append-only file on), the same storage object goes on counting.

Asserts that the counts continue and, when COMPAT_SCRIPTS_PERSIST=1 (limitkv), that redis-py
never receives NOSCRIPT (its Script object would hide it with SCRIPT LOAD + EVALSHA, so EVALSHA
is watched) and that SCRIPT EXISTS still knows the scripts. redis-server forgets its scripts on
restart: against it the NOSCRIPT count is only reported.

Needs COMPAT_RESTART (a shell command that restarts the server, from run.sh) and EVAL.
"""

import os
import subprocess

import redis
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from emulate import EMULATING, install
from harness import RUN_ID, URL, check, finish, scenario, server_has_eval, skip

expect_persist = os.environ.get("COMPAT_SCRIPTS_PERSIST") == "1"
restart = os.environ.get("COMPAT_RESTART")
TITLE = "restart: limits counts continue across a server restart"

if not restart:
    skip(TITLE, "COMPAT_RESTART is not set (run it through tests/compat/run.sh)")
    finish()
if not EMULATING and not server_has_eval() and not os.environ.get("COMPAT_NO_SKIP"):
    skip(TITLE, "needs EVAL")
    finish()

st = storage_from_string(URL, key_prefix=f"{RUN_ID}:restart")
if EMULATING:
    install(st)
client = st.storage
noscript = {"count": 0}
evalsha = client.evalsha


def watched_evalsha(*args, **kwargs):
    try:
        return evalsha(*args, **kwargs)
    except redis.exceptions.NoScriptError:
        noscript["count"] += 1
        raise


client.evalsha = watched_evalsha

item = RateLimitItemPerMinute(10)
limiters = {
    "fixed": FixedWindowRateLimiter(st),
    "moving": MovingWindowRateLimiter(st),
    "sliding": SlidingWindowCounterRateLimiter(st),
}
before = {}
for name, limiter in limiters.items():
    before[name] = [limiter.hit(item, name) for _ in range(3)]
    before[name].append(limiter.get_window_stats(item, name).remaining)

# redis-py's Script tries EVALSHA first and loads the script on NOSCRIPT, so a fresh server gives
# one NOSCRIPT per script on first use: only the ones after the restart count.
noscript["before restart"] = noscript["count"]
noscript["count"] = 0
subprocess.run(["bash", "-c", restart], check=True, stdin=subprocess.DEVNULL)

for name, limiter in limiters.items():

    @scenario(f"restart: limits {name} window counts continue")
    def _(name=name, limiter=limiter):
        check("before the restart", before[name], [True, True, True, 7])
        check("hit after the restart", limiter.hit(item, name), True)
        check("remaining after the restart", limiter.get_window_stats(item, name).remaining, 6)


@scenario(
    "restart: limits never saw NOSCRIPT, SCRIPT EXISTS knows its scripts",
    skip_reason="scripts are emulated on the client (COMPAT_EMULATE_SCRIPTS=1)"
    if EMULATING
    else None
    if expect_persist
    else f"server does not keep scripts across restarts; NOSCRIPT seen after it: {noscript['count']}",
)
def _():
    check("NOSCRIPT replies to EVALSHA after the restart", noscript["count"], 0)
    shas = [s.sha for s in (st.lua_incr_expire, st.lua_acquire_moving_window, st.lua_acquire_sliding_window)]
    check(f"SCRIPT EXISTS {' '.join(shas)}", client.script_exists(*shas), [True, True, True])

finish()
