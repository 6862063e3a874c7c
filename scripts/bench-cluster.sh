#!/usr/bin/env bash
# Cluster mode's cost (issue 22; docs/cluster.md, docs/benchmarks.md run AL):
#
#   scripts/bench-cluster.sh [path/to/limitkv]       # default target/release/limitkv
#   REPS=5 N=300000 P=16 scripts/bench-cluster.sh
#
# Per round, interleaved: one node with cluster mode off, then one node with `cluster-enabled
# yes` (the emulated one-node cluster: every command pays the slot check), each running
# redis-benchmark CL.THROTTLE (-c 50 -P P, random keys among 100,000) and LIMIT.CHECK; then
# three nodes (slots 0-5460, 5461-10922, 10923-16383, pushed by `limitkv cluster apply`) under
# `redis-benchmark --cluster` CL.THROTTLE (`user:{tag}:__rand_int__`: redis-benchmark puts a tag
# of each node's slots in the key), the aggregate figure. (redis-benchmark stops at the first
# error reply, so it cannot time -MOVED answers; clients cache the map, so a steady load sees
# none.) Prints every run and the medians, then the one-node servers' CPU time per request
# (from /proc/PID/stat), the cost of the slot check that sharing the cores does not blur (take
# N=1000000 or more for it). Needs redis-cli and redis-benchmark on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/target/release/limitkv}
REPS=${REPS:-3}; N=${N:-200000}; P=${P:-16}
OUT=$(mktemp -d /tmp/bench-cluster.XXXX)
pids=()
cleanup() { for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
  for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2
  exit 1
}
start() { # dir args...: starts a server, sets PORT (not run in $(...), so the pid is kept)
  local dir=$1
  shift
  PORT=$(free_port)
  mkdir -p "$dir"
  "$BIN" --port "$PORT" --bind 127.0.0.1 --dir "$dir" "$@" >/dev/null 2>&1 &
  pids+=($!)
  wait_up "$PORT"
}
stop_all() { cleanup; for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
bench() { # name redis-benchmark-args... -> "name requests/s"
  local name=$1
  shift
  timeout 300 redis-benchmark -n "$N" -c 50 -P "$P" -r 100000 --csv "$@" \
    | grep '^"' | tail -1 | cut -d, -f2 | tr -d '"' | sed "s/^/$name /"
}

# The server's CPU time (user + system, clock ticks) from /proc: its cost per request, which
# does not move with what else runs on the cores (use N of a million or more: a tick is 10 ms).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
cpu_bench() { # name pid redis-benchmark-args... -> "name requests/s"; "name us" to $OUT/cpu
  local name=$1 pid=$2 c0
  shift 2
  c0=$(ticks "$pid")
  bench "$name" "$@"
  python3 -c "print('$name', round(($(ticks "$pid") - $c0) / $HZ * 1e6 / $N, 3))" >>"$OUT/cpu"
}

for ((rep = 1; rep <= REPS; rep++)); do
  for mode in off on; do
    enabled=no
    [ "$mode" = on ] && enabled=yes
    start "$OUT/r$rep-$mode" --cluster-enabled "$enabled"
    redis-cli -p "$PORT" POLICY.SET bench RATE 30/1m QUOTA 1000/day >/dev/null
    pid=${pids[-1]}
    {
      cpu_bench "one-node-cluster-$mode PING" "$pid" -p "$PORT" PING
      cpu_bench "one-node-cluster-$mode CL.THROTTLE" "$pid" -p "$PORT" CL.THROTTLE 'user:__rand_int__' 15 30 60
      cpu_bench "one-node-cluster-$mode LIMIT.CHECK" "$pid" -p "$PORT" LIMIT.CHECK bench 'user:__rand_int__'
    } | tee -a "$OUT/runs"
    stop_all
  done
  ports=()
  for n in 1 2 3; do
    start "$OUT/r$rep-c$n" --cluster-enabled yes
    ports+=("$PORT")
  done
  cat >"$OUT/topology.toml" <<TOML
epoch = 1
[[node]]
address = "127.0.0.1:${ports[0]}"
slots = ["0-5460"]
[[node]]
address = "127.0.0.1:${ports[1]}"
slots = ["5461-10922"]
[[node]]
address = "127.0.0.1:${ports[2]}"
slots = ["10923-16383"]
TOML
  "$BIN" cluster apply "$OUT/topology.toml" >/dev/null
  bench "three-nodes CL.THROTTLE" --cluster -p "${ports[0]}" CL.THROTTLE 'user:{tag}:__rand_int__' 15 30 60 \
    | tee -a "$OUT/runs"
  stop_all
done

echo "--- medians over $REPS rounds (requests/s), runs in $OUT/runs"
awk '{ k = $1 " " $2; v[k] = v[k] " " $3 } END { for (k in v) print k, v[k] }' "$OUT/runs" \
  | while read -r name cmd values; do
    median=$(tr ' ' '\n' <<<"$values" | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%-28s %-12s %10s   (%s)\n' "$name" "$cmd" "$median" "$values"
  done | sort

echo "--- server CPU per request, medians over $REPS rounds (microseconds)"
awk '{ k = $1 " " $2; v[k] = v[k] " " $3 } END { for (k in v) print k, v[k] }' "$OUT/cpu" \
  | while read -r name cmd values; do
    median=$(tr ' ' '\n' <<<"$values" | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%-28s %-12s %10s   (%s)\n' "$name" "$cmd" "$median" "$values"
  done | sort
