"""redis-py's RedisCluster against three limitkv nodes in cluster mode (docs/cluster.md).

Usage: python3 cluster.py PORT1 PORT2 PORT3. The nodes own slots 0-5460, 5461-10922 and
10923-16383 and have the policy `free RATE 3/1m QUOTA 5/day` (pushed by `limitkv cluster
apply`). Checks the exact admitted counts a single node gives. Exits non-zero on a mismatch.
"""
import sys

import redis
from redis.cluster import RedisCluster

ports = [int(p) for p in sys.argv[1:4]]


def as_fields(reply):
    """A map reply: a dict under RESP3, a flat list of pairs under RESP2."""
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


def check(label, got, want):
    if got != want:
        print(f"FAIL {label}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok {label}")


rc = RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)
check("three masters", sorted(n.port for n in rc.get_primaries()), sorted(ports))

# CL.THROTTLE key 4 10 60: a burst of 5, so 5 of 8 quick calls are admitted, per key.
admitted = 0
for i in range(30):
    for _ in range(8):
        r = rc.execute_command("CL.THROTTLE", f"user:{i}", 4, 10, 60)
        admitted += r[0] == 0
check("CL.THROTTLE admitted", admitted, 30 * 5)
per_node = [redis.Redis(port=p).dbsize() for p in ports]
check("keys on every node", all(n > 0 for n in per_node), True)
check("keys in all", sum(per_node), 30)

# LIMIT.CHECK declares the identity as its key (COMMAND GETKEYS): RATE 3/1m admits 3 of 5.
allowed = 0
for i in range(12):
    for _ in range(5):
        reply = rc.execute_command("LIMIT.CHECK", "free", f"customer-{i}")
        allowed += as_fields(reply)["allowed"] in (1, True)
check("LIMIT.CHECK allowed", allowed, 12 * 3)
status = rc.execute_command("LIMIT.STATUS", "free", "customer-0")
check("LIMIT.STATUS on the identity's node", as_fields(status)["allowed"] in (0, False), True)

# A reservation's id carries its identity's hash tag, so LIMIT.SETTLE (whose key is the id)
# reaches the node holding it, wherever the client sends it.
reply = as_fields(rc.execute_command("LIMIT.RESERVE", "free", "py-reserver"))
rid = reply["reservation"]
check("reservation id tagged", rid.startswith("{py-reserver}"), True)
check("reservation slot", rc.keyslot(rid), rc.keyslot("py-reserver"))
settled = as_fields(rc.execute_command("LIMIT.SETTLE", rid))
check("LIMIT.SETTLE through RedisCluster", (settled["reservation"], settled["action"]), (rid, "settle"))
try:
    rc.execute_command("LIMIT.CANCEL", rid)
    check("a settled reservation is gone", "no error", "error")
except redis.ResponseError as e:
    check("a settled reservation is gone", str(e).startswith("unknown reservation"), True)

# A transaction on hash-tagged keys runs on the node of their slot.
pipe = rc.pipeline(transaction=True)
for _ in range(4):
    pipe.execute_command("CL.THROTTLE", "{acct-7}:api", 2, 10, 60)
pipe.incr("{acct-7}:calls")
results = pipe.execute()
check("MULTI admitted", sum(1 for r in results[:4] if r[0] == 0), 3)
check("MULTI incr", results[4], 1)

# Cross-slot keys are refused with Redis's error.
try:
    redis.Redis(port=ports[0]).execute_command("MGET", "a", "b")
    check("CROSSSLOT", "no error", "error")
except redis.ResponseError as e:
    check("CROSSSLOT", str(e), "Keys in request don't hash to the same slot")
# The `limits` library on its Redis Cluster storage: 5 per minute for each of 6 identities.
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

storage = storage_from_string(f"redis+cluster://127.0.0.1:{ports[0]}", key_prefix=f"lim{time.time_ns()}")
for strategy in (FixedWindowRateLimiter, MovingWindowRateLimiter):
    limiter = strategy(storage)
    item = RateLimitItemPerMinute(5)
    hits = sum(limiter.hit(item, strategy.__name__, f"id-{i}") for i in range(6) for _ in range(8))
    check(f"limits {strategy.__name__}", hits, 30)
print("all cluster checks passed")
