"""Python ``limits`` with its Redis storage (redis-py underneath), RESP2 and RESP3, against
COMPAT_HOST:COMPAT_PORT: FixedWindowRateLimiter, MovingWindowRateLimiter and
SlidingWindowCounterRateLimiter (hit / test / get_window_stats / clear), storage.reset() and
storage.check().

Every hit goes through one of the storage's Lua scripts (EVALSHA, then SCRIPT LOAD on NOSCRIPT),
so those scenarios need EVAL; the fixed window's test/get_window_stats/clear (GET, TTL, DEL) and
check (PING) run everywhere.
"""

import time

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from emulate import EMULATING, install
from harness import RUN_ID, URL, check, check_between, finish, scenario


def storage(proto, tag):
    st = storage_from_string(URL, key_prefix=f"{RUN_ID}:{tag}:r{proto}", protocol=proto)
    return install(st) if EMULATING else st


for proto in (2, 3):
    per_min = RateLimitItemPerMinute(3)
    st = storage(proto, "main")
    fixed = FixedWindowRateLimiter(st)
    moving = MovingWindowRateLimiter(st)
    sliding = SlidingWindowCounterRateLimiter(st)

    def name(s, proto=proto):
        return f"limits/resp{proto}: {s}"

    @scenario(name("storage check and fixed-window reads of an unknown key"))
    def _():
        check("check", st.check(), True)
        check("test", fixed.test(per_min, "unknown"), True)
        stats = fixed.get_window_stats(per_min, "unknown")
        check("remaining", stats.remaining, 3)
        check_between("reset_time", stats.reset_time - time.time(), -1, 0.1)
        fixed.clear(per_min, "unknown")

    @scenario(name("fixed window counts hits exactly"), needs_eval=True)
    def _():
        for i in range(3):
            check(f"hit {i + 1}", fixed.hit(per_min, "f-user"), True)
        check("hit 4", fixed.hit(per_min, "f-user"), False)
        check("test when spent", fixed.test(per_min, "f-user"), False)
        stats = fixed.get_window_stats(per_min, "f-user")
        check("remaining", stats.remaining, 0)
        check_between("reset in", stats.reset_time - time.time(), 58, 61)
        # cost counts several hits at once; a denied fixed-window hit is still counted.
        check("cost 2", fixed.hit(per_min, "f-bulk", cost=2), True)
        check("remaining after cost 2", fixed.get_window_stats(per_min, "f-bulk").remaining, 1)
        check("cost 2 over the limit", fixed.hit(per_min, "f-bulk", cost=2), False)
        check("remaining after a denied hit", fixed.get_window_stats(per_min, "f-bulk").remaining, 0)
        check("test cost 1", fixed.test(per_min, "f-bulk"), False)
        fixed.clear(per_min, "f-user")
        check("test after clear", fixed.test(per_min, "f-user"), True)
        check("remaining after clear", fixed.get_window_stats(per_min, "f-user").remaining, 3)
        check("hit after clear", fixed.hit(per_min, "f-user"), True)

    @scenario(name("moving window counts hits exactly"), needs_eval=True)
    def _():
        start = time.time()
        for i in range(3):
            check(f"hit {i + 1}", moving.hit(per_min, "m-user"), True)
        check("hit 4", moving.hit(per_min, "m-user"), False)
        check("test when spent", moving.test(per_min, "m-user"), False)
        stats = moving.get_window_stats(per_min, "m-user")
        check("remaining", stats.remaining, 0)
        check_between("reset_time - first hit", stats.reset_time - start, 59.9, 60.5)
        # A denied moving-window hit records nothing; cost above the limit is always refused.
        check("cost 2", moving.hit(per_min, "m-bulk", cost=2), True)
        check("cost 2 over the limit", moving.hit(per_min, "m-bulk", cost=2), False)
        check("remaining after a denied hit", moving.get_window_stats(per_min, "m-bulk").remaining, 1)
        check("test cost 1", moving.test(per_min, "m-bulk"), True)
        check("cost 1", moving.hit(per_min, "m-bulk"), True)
        check("cost above the limit", moving.hit(per_min, "m-huge", cost=4), False)
        check("remaining of an unknown key", moving.get_window_stats(per_min, "m-nobody").remaining, 3)
        moving.clear(per_min, "m-user")
        check("remaining after clear", moving.get_window_stats(per_min, "m-user").remaining, 3)

    @scenario(name("sliding window counter counts hits exactly"), needs_eval=True)
    def _():
        for i in range(3):
            check(f"hit {i + 1}", sliding.hit(per_min, "s-user"), True)
        check("hit 4", sliding.hit(per_min, "s-user"), False)
        check("test when spent", sliding.test(per_min, "s-user"), False)
        stats = sliding.get_window_stats(per_min, "s-user")
        check("remaining", stats.remaining, 0)
        check_between("reset in", stats.reset_time - time.time(), -0.1, 60)
        check("cost 2", sliding.hit(per_min, "s-bulk", cost=2), True)
        check("cost 2 over the limit", sliding.hit(per_min, "s-bulk", cost=2), False)
        check("remaining after a denied hit", sliding.get_window_stats(per_min, "s-bulk").remaining, 1)
        check("cost above the limit", sliding.hit(per_min, "s-huge", cost=4), False)
        stats = sliding.get_window_stats(per_min, "s-nobody")
        check("remaining of an unknown key", stats.remaining, 3)
        sliding.clear(per_min, "s-user")
        check("remaining after clear", sliding.get_window_stats(per_min, "s-user").remaining, 3)
        check("hit after clear", sliding.hit(per_min, "s-user"), True)

    @scenario(name("all three windows reset (real clock, 2/second, one 2.2 s wait)"), needs_eval=True)
    def _():
        per_sec = RateLimitItemPerSecond(2)
        for limiter in (fixed, moving, sliding):
            label = type(limiter).__name__
            check(f"{label} hit 1", limiter.hit(per_sec, f"reset-{label}"), True)
            check(f"{label} hit 2", limiter.hit(per_sec, f"reset-{label}"), True)
            check(f"{label} hit 3", limiter.hit(per_sec, f"reset-{label}"), False)
        # The sliding window counter weighs the previous window in: it is whole again only
        # once two windows have passed since its first hit.
        time.sleep(2.2)
        for limiter in (fixed, moving, sliding):
            label = type(limiter).__name__
            check(f"{label} test after the window", limiter.test(per_sec, f"reset-{label}"), True)
            check(f"{label} hit after the window", limiter.hit(per_sec, f"reset-{label}"), True)
            check(f"{label} remaining", limiter.get_window_stats(per_sec, f"reset-{label}").remaining, 1)

    @scenario(name("storage.reset deletes exactly the prefixed keys"), needs_eval=True)
    def _():
        own = storage(proto, "reset")
        FixedWindowRateLimiter(own).hit(per_min, "a")
        FixedWindowRateLimiter(own).hit(per_min, "b")
        MovingWindowRateLimiter(own).hit(per_min, "c")
        SlidingWindowCounterRateLimiter(own).hit(per_min, "d")
        check("deleted keys", own.reset(), 4)
        check("deleted keys again", own.reset(), 0)
        check("fixed after reset", FixedWindowRateLimiter(own).get_window_stats(per_min, "a").remaining, 3)

finish()
