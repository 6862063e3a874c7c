#!/usr/bin/env bash
# Replication cost and throughput (docs/replication.md, docs/benchmarks.md):
#
#   scripts/bench-repl.sh [BIN]            # default target/release/limitkv
#   REPS=3 N=500000 P=16 KEYS=1000000 scripts/bench-repl.sh
#
# 1. The master's cost: per round, a fresh master alone, then a fresh master with two replicas
#    attached (link up), each running redis-benchmark CL.THROTTLE (-c 50 -P P, random keys among
#    100,000, burst 100 so nearly every call is an admission, i.e. a replicated effect). Prints
#    requests/s of both and, at the end, the medians and the cost (1 - with/without); and the
#    master's CPU time per request (from /proc/PID/stat, until both replicas caught up) alone
#    and with the replicas, which on a machine whose cores the replicas share is the master's
#    own cost of feeding them.
# 2. Replication throughput: in the rounds with replicas, the effects admitted (limiter_allowed)
#    divided by the time from the start of the benchmark until both replicas acknowledged the
#    master's final offset (slave_repl_offset equal to master_repl_offset).
# 3. A full sync of KEYS limiter keys: the master is loaded with KEYS distinct CL.THROTTLE keys
#    (10 per hour, so none expires during the run)
#    (redis-cli --pipe), a fresh replica attaches, and the time until its link is up, its DBSIZE
#    and a peek (PTTL) of one key are printed.
# Needs redis-cli, redis-benchmark and python3 on PATH.
set -euo pipefail
BIN=${1:-target/release/limitkv}
REPS=${REPS:-3}; N=${N:-500000}; P=${P:-16}; KEYS=${KEYS:-1000000}
OUT=$(mktemp -d /tmp/bench-repl.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
  for _ in $(seq 200); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}
field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"; }
start() { # port [replicaof-port]
  local args=(--port "$1" --bind 127.0.0.1)
  [ $# -ge 2 ] && args+=(--replicaof "127.0.0.1 $2")
  "$BIN" "${args[@]}" >>"$OUT/servers.log" 2>&1 &
  PIDS+=($!)
  wait_up "$1"
}
stop_all() { cleanup; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; PIDS=(); }
wait_link() {
  for _ in $(seq 600); do
    [ "$(field "$1" replication master_link_status)" = up ] && return
    sleep 0.05
  done
  echo "replica on $1 did not sync" >&2; exit 1
}
bench() {
  timeout 600 redis-benchmark -p "$1" -n "$N" -c 50 -P "$P" -r 100000 --csv \
    CL.THROTTLE 'user:__rand_int__' 100 1000 60 | tail -1 | cut -d, -f2 | tr -d '"'
}
now() { date +%s.%N; }
# The master's CPU time (user + system, clock ticks) from /proc: its cost per request does not
# depend on what else shares the cores (here: the two replicas and redis-benchmark).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
us_per_req() { python3 -c "print(round(($2 - $1) / $HZ * 1e6 / $N, 3))"; }

for ((rep = 1; rep <= REPS; rep++)); do
  m=$(free_port); start "$m"
  c0=$(ticks "${PIDS[0]}")
  alone=$(bench "$m")
  cpu_alone=$(us_per_req "$c0" "$(ticks "${PIDS[0]}")")
  stop_all
  m=$(free_port); r1=$(free_port); r2=$(free_port)
  start "$m"; start "$r1" "$m"; start "$r2" "$m"
  wait_link "$r1"; wait_link "$r2"
  t0=$(now); c0=$(ticks "${PIDS[0]}")
  with=$(bench "$m")
  target=$(field "$m" replication master_repl_offset)
  for r in "$r1" "$r2"; do
    for _ in $(seq 6000); do
      [ "$(field "$r" replication slave_repl_offset)" -ge "$target" ] && break
      sleep 0.01
    done
  done
  t1=$(now); cpu_with=$(us_per_req "$c0" "$(ticks "${PIDS[0]}")")
  effects=$(field "$m" stats limiter_allowed)
  eps=$(python3 -c "print(round($effects / ($t1 - $t0)))")
  echo "round $rep: alone $alone rps, with 2 replicas $with rps, $effects effects replicated to both in $(python3 -c "print(round($t1 - $t0, 2))") s = $eps effects/s, stream $target bytes; master CPU per request alone $cpu_alone us, with 2 replicas $cpu_with us" | tee -a "$OUT/runs"
  echo "$alone $with $eps $cpu_alone $cpu_with" >>"$OUT/nums"
  stop_all
done
[ "$REPS" -gt 0 ] && python3 - "$OUT/nums" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
a = statistics.median(r[0] for r in rows); w = statistics.median(r[1] for r in rows)
e = statistics.median(r[2] for r in rows)
print(f"median: alone {a:.0f} rps, with 2 replicas {w:.0f} rps, ratio with/alone {w / a:.3f}, cost {100 * (1 - w / a):.1f}% (target <= 15%), replication {e:.0f} effects/s")
ca = statistics.median(r[3] for r in rows); cw = statistics.median(r[4] for r in rows)
print(f"median master CPU per request: alone {ca:.3f} us, with 2 replicas {cw:.3f} us, the master's own cost {100 * (cw / ca - 1):.1f}% (target <= 15%)")
PY

# 3. A full sync of KEYS keys (one per hour: they stay live for an hour).
m=$(free_port); start "$m"
python3 - "$KEYS" <<'PY' | redis-cli -p "$m" --pipe >"$OUT/pipe.log"
import sys
out = sys.stdout
for i in range(int(sys.argv[1])):
    k = f"key:{i}"
    out.write(f"*5\r\n$11\r\nCL.THROTTLE\r\n${len(k)}\r\n{k}\r\n$2\r\n10\r\n$1\r\n1\r\n$4\r\n3600\r\n")
PY
echo "master: $(redis-cli -p "$m" DBSIZE) keys"
r=$(free_port)
t0=$(now); start "$r" "$m"; wait_link "$r"; t1=$(now)
echo "full sync of $(redis-cli -p "$r" DBSIZE) keys: $(python3 -c "print(round($t1 - $t0, 2))") s (start to link up); peek PTTL key:123 = $(redis-cli -p "$r" PTTL key:123) ms; replica RSS $(ps -o rss= -p "${PIDS[-1]}") KiB"
stop_all
echo "logs: $OUT"
