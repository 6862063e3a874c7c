"""redis-py in its default settings (and with protocol=3) against a running limitkv.

Usage: python3 smoke.py PORT. Exits non-zero on the first mismatch.
"""
import sys

import redis

port = int(sys.argv[1])


def check(label, got, want):
    if got != want:
        print(f"FAIL {label}: got {got!r}, want {want!r}")
        sys.exit(1)


for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto, decode_responses=True)
    r.flushall()
    check(f"resp{proto} ping", r.ping(), True)
    check(f"resp{proto} set", r.set("a", "1", ex=10), True)
    check(f"resp{proto} get", r.get("a"), "1")
    check(f"resp{proto} incr", r.incr("c"), 1)
    check(f"resp{proto} ttl", r.ttl("a"), 10)
    check(f"resp{proto} mget", r.mget("a", "missing"), ["1", None])
    check(f"resp{proto} throttle", r.execute_command("CL.THROTTLE", "u", 15, 30, 60), [0, 16, 15, -1, 2])
    check(f"resp{proto} gcra", r.execute_command("GCRA", "g", 15, 30, 60), [0, 16, 15, -1, 2])
    check(f"resp{proto} setname", r.client_setname("smoke"), True)
    check(f"resp{proto} getname", r.client_getname(), "smoke")
    check(f"resp{proto} info", r.info()["loading"], 0)
    check(f"resp{proto} config", r.config_get("maxmemory"), {"maxmemory": "0"})
    check(f"resp{proto} type", r.type("u"), "gcra")
    check(f"resp{proto} scan", sorted(r.scan_iter()), ["a", "c", "g", "u"])
    check(f"resp{proto} pipeline", r.pipeline().incr("p").incr("p").get("p").execute(), [1, 2, "2"])
    try:
        r.get("u")
        check(f"resp{proto} wrongtype", "no error", "WRONGTYPE")
    except redis.ResponseError as e:
        check(f"resp{proto} wrongtype", str(e).split()[0], "WRONGTYPE")
    check(f"resp{proto} client list", r.client_list()[0]["lib-name"], "redis-py")
    r.close()

# ACL: redis-py's username= authenticates as a user (AUTH user pass, or HELLO 3 AUTH in RESP3).
admin = redis.Redis(port=port, decode_responses=True)
check("acl setuser", admin.acl_setuser("smoke-app", enabled=True, passwords=["+pw"],
                                         categories=["+@limiter"], keys=["app:*"]), True)
for proto in (2, 3):
    app = redis.Redis(port=port, protocol=proto, username="smoke-app", password="pw",
                      decode_responses=True)
    check(f"resp{proto} acl throttle", app.execute_command("CL.THROTTLE", f"app:{proto}", 15, 30, 60),
          [0, 16, 15, -1, 2])
    try:
        app.execute_command("CL.THROTTLE", "other", 15, 30, 60)
        check(f"resp{proto} acl noperm", "no error", "NoPermissionError")
    except redis.exceptions.NoPermissionError as e:
        check(f"resp{proto} acl noperm", "keys" in str(e), True)
    app.close()
try:
    redis.Redis(port=port, username="smoke-app", password="wrong").ping()
    check("acl wrongpass", "no error", "AuthenticationError")
except redis.exceptions.AuthenticationError:
    pass
check("acl deluser", admin.acl_deluser("smoke-app"), 1)
admin.close()

print("redis-py smoke: ok")
