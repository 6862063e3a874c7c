"""The writer of the Sentinel failover test (tests/sentinel.rs): finds the master through
redis-py's Sentinel client, runs CL.THROTTLE and LIMIT.CHECK, each followed by WAIT 1 <ms>,
and prints one JSON line per decision: the master it ran on, the remaining count, and how
many replicas acknowledged it. Connection errors (the master was killed, a demoted master
answering READONLY) are retried, as an application would, after asking Sentinel again.

    python sentinel_writer.py SENTINEL_PORT,... AFTER_FAILOVER_OPS DEADLINE_SECONDS
"""

import json
import sys
import time

from redis.sentinel import Sentinel

ports = [int(p) for p in sys.argv[1].split(",")]
after_failover_ops = int(sys.argv[2])
deadline = time.time() + float(sys.argv[3])

sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=0.5)
master = sentinel.master_for("mymaster", socket_timeout=1.0)
first = sentinel.discover_master("mymaster")
master.execute_command("POLICY.SET", "api", "QUOTA", "1000000/day")
done_after = 0
errors = 0


def remaining_of(kind, reply):
    if kind == "throttle":
        return reply[2]
    if not isinstance(reply, dict):
        reply = dict(zip(reply[0::2], reply[1::2]))
    return reply.get(b"remaining", reply.get("remaining"))


while time.time() < deadline and done_after < after_failover_ops:
    for kind, cmd in (
        ("throttle", ("CL.THROTTLE", "ft:gcra", 999999, 1, 3600)),
        ("check", ("LIMIT.CHECK", "api", "ft:user")),
    ):
        try:
            reply = master.execute_command(*cmd)
            acked = master.execute_command("WAIT", 1, 1000)
            where = sentinel.discover_master("mymaster")
        except Exception as e:  # noqa: BLE001 - any failure is retried, as an app would
            errors += 1
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
            time.sleep(0.1)
            continue
        moved = where != first
        if moved:
            done_after += 1
        print(
            json.dumps(
                {
                    "master": f"{where[0]}:{where[1]}",
                    "moved": moved,
                    "kind": kind,
                    "remaining": int(remaining_of(kind, reply)),
                    "acked": int(acked),
                }
            ),
            flush=True,
        )
print(json.dumps({"done": done_after, "errors": errors}), flush=True)
