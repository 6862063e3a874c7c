#!/usr/bin/env bash
# Interleaved A/B throughput of two (or more) limitkv binaries on the hot limiter commands, with
# a redis-server run in every round as the reference for the machine's noise:
#
#   scripts/bench-ab.sh BIN_A BIN_B [BIN ...]
#   REPS=5 N=300000 P=16 scripts/bench-ab.sh /tmp/limitkv-before target/release/limitkv
#
# Per round, each binary is started on a free loopback port and redis-benchmark (-c 50 -P P,
# random keys among 100,000) runs, in this order: PING, CL.THROTTLE, GCRA, RATE.TAKE and
# LIMIT.CHECK (a policy of four rules, as scripts/bench-vs-redis.sh defines it); then
# redis-server --save '' runs PING and `EVALSHA scripts/gcra.lua` (a Lua CL.THROTTLE). Prints
# one line per run and, at the end, the median requests/s of every binary and case and each
# binary's ratio to the first. Needs redis-server, redis-cli and redis-benchmark on PATH.
#
# RANGE=1000000 draws the random keys among a million (default 100,000). HOT=1 adds
# CL.THROTTLE on one key (`CL.THROTTLE.hot`) for every server. REDIS_CELL_MODULE=path/to/
# libredis_cell.so loads redis-cell into the reference redis-server, which then also runs
# CL.THROTTLE itself (random and, with HOT=1, hot key) beside the Lua port.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,13p "$0"; exit 2; }
REPS=${REPS:-3}; N=${N:-200000}; P=${P:-16}; RANGE=${RANGE:-100000}; HOT=${HOT:-0}
CELL=${REDIS_CELL_MODULE:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(mktemp -d /tmp/bench-ab.XXXX)
POLICY=(POLICY.SET bench RATE 30/1m BURST 16 WINDOW 100/1m QUOTA 1000/day TOKENS 50000/1m)

bench() { # port name command... -> requests/s
  local port=$1 name=$2
  shift 2
  timeout 300 redis-benchmark -p "$port" -n "$N" -c 50 -P "$P" -r "$RANGE" --csv "$@" \
    | tail -1 | cut -d, -f2 | tr -d '"' | sed "s/^/$name /"
}

# A port nothing listens on now (the kernel picks it), so a random pick cannot collide.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_up() {
  for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2
  exit 1
}

for ((rep = 1; rep <= REPS; rep++)); do
  for bin in "$@"; do
    port=$(free_port)
    "$bin" --port "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
    pid=$!
    wait_up "$port"
    redis-cli -p "$port" "${POLICY[@]}" >/dev/null
    {
      bench "$port" PING PING
      bench "$port" CL.THROTTLE CL.THROTTLE 'user:__rand_int__' 15 30 60
      if [ "$HOT" = 1 ]; then bench "$port" CL.THROTTLE.hot CL.THROTTLE user:hot 15 30 60; fi
      bench "$port" GCRA GCRA 'user:__rand_int__' 15 30 60
      bench "$port" RATE.TAKE RATE.TAKE 'rate:__rand_int__' 30/1m BURST 16
      bench "$port" LIMIT.CHECK LIMIT.CHECK bench 'user:__rand_int__' TOKENS 10
    } | sed "s|^|$bin |" | tee -a "$OUT/runs"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    ${CELL:+--loadmodule "$CELL"} >/dev/null 2>&1 &
  pid=$!
  wait_up "$port"
  sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$ROOT/scripts/gcra.lua")")
  {
    bench "$port" PING PING
    if [ -n "$CELL" ]; then
      bench "$port" CL.THROTTLE CL.THROTTLE 'user:__rand_int__' 15 30 60
      if [ "$HOT" = 1 ]; then bench "$port" CL.THROTTLE.hot CL.THROTTLE user:hot 15 30 60; fi
      bench "$port" gcra.lua EVALSHA "$sha" 1 'user:__rand_int__' 15 30 60 1
    else
      bench "$port" CL.THROTTLE EVALSHA "$sha" 1 'user:__rand_int__' 15 30 60 1
    fi
  } | sed "s|^|redis-server |" | tee -a "$OUT/runs"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done

echo
echo "median requests/s over $REPS rounds (redis-benchmark -c 50 -P $P -n $N -r $RANGE):"
first=$1
awk -v first="$first" '
  { v[$1 " " $2] = v[$1 " " $2] " " $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
    if (!($2 in seenc)) { seenc[$2] = 1; cases[++m] = $2 } }
  function median(s,   a, k, i, j, t) {
    k = split(s, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    printf "| binary |"; for (c = 1; c <= m; c++) printf " %s |", cases[c]; print ""
    printf "|---|"; for (c = 1; c <= m; c++) printf "---|"; print ""
    for (b = 1; b <= n; b++) {
      printf "| %s |", order[b]
      for (c = 1; c <= m; c++) {
        key = order[b] " " cases[c]
        if (!(key in v)) { printf " – |"; continue }
        r = median(v[key]); base = median(v[first " " cases[c]])
        if (order[b] == first || order[b] == "redis-server" || base == 0) printf " %.0f |", r
        else printf " %.0f (%.3fx) |", r, r / base
      }
      print ""
    }
  }' "$OUT/runs"
echo "raw runs: $OUT/runs"
