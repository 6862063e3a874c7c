#!/usr/bin/env bash
# Interleaved A/B throughput of two (or more) limitkv binaries on scripts, at -P 16:
#
#   scripts/bench-scripts-ab.sh BIN_A BIN_B [BIN ...]
#   REPS=5 N=200000 P=16 THREADS=0 scripts/bench-scripts-ab.sh /tmp/limitkv-before target/release/limitkv
#
# Per round, each binary is started on a free loopback port (`--threads THREADS`, default 0 =
# the server's default) and redis-benchmark (-c 50 -P P, random keys among 100,000) runs, in
# this order:
#   EVALSHA_LUA   EVALSHA of scripts/gcra.lua (a Lua CL.THROTTLE: runs Lua under the token)
#   EVAL_LUA      EVAL of a one-call script (`return redis.call('incr', KEYS[1])`)
#   RLF_NATIVE    EVALSHA of rate-limiter-flexible's incr-ttl script (tests/compat/scripts),
#                 recognised by script/known.rs and answered natively
#   LIMITS_NATIVE EVALSHA of limits' acquire-moving-window script, recognised likewise
#   CL.THROTTLE   the native command, as the reference for the machine's noise
# Prints one line per run and, at the end, the median requests/s of every binary and case and
# each binary's ratio to the first. Needs redis-cli and redis-benchmark on PATH.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,17p "$0"; exit 2; }
REPS=${REPS:-3}; N=${N:-200000}; P=${P:-16}; THREADS=${THREADS:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(mktemp -d /tmp/bench-scripts-ab.XXXX)
SCRIPTS=$ROOT/tests/compat/scripts

bench() { # port name command... -> requests/s
  local port=$1 name=$2
  shift 2
  timeout 300 redis-benchmark -p "$port" -n "$N" -c 50 -P "$P" -r 100000 --csv "$@" \
    | python3 -c 'import csv, sys; print(list(csv.reader(sys.stdin))[-1][1])' | sed "s/^/$name /"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_up() {
  for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2
  exit 1
}

load() { # port file -> sha
  redis-cli -p "$1" -x SCRIPT LOAD <"$2"
}

for ((rep = 1; rep <= REPS; rep++)); do
  for bin in "$@"; do
    port=$(free_port)
    "$bin" --port "$port" --bind 127.0.0.1 --threads "$THREADS" >/dev/null 2>&1 &
    pid=$!
    wait_up "$port"
    gcra=$(load "$port" "$ROOT/scripts/gcra.lua")
    rlf=$(load "$port" "$SCRIPTS/rate-limiter-flexible-incr-ttl.lua")
    lim=$(load "$port" "$SCRIPTS/limits-acquire-moving-window.lua")
    {
      bench "$port" EVALSHA_LUA EVALSHA "$gcra" 1 'lua:__rand_int__' 15 30 60 1
      bench "$port" EVAL_LUA EVAL "return redis.call('incr', KEYS[1])" 1 'n:__rand_int__'
      bench "$port" RLF_NATIVE EVALSHA "$rlf" 1 'rlflx:__rand_int__' 1 60 100 60
      bench "$port" LIMITS_NATIVE EVALSHA "$lim" 1 'lmw:__rand_int__' 1700000000 100 60 1
      bench "$port" CL.THROTTLE CL.THROTTLE 'user:__rand_int__' 15 30 60
    } | sed "s|^|$bin |" | tee -a "$OUT/runs"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done

echo
echo "median requests/s over $REPS rounds (redis-benchmark -c 50 -P $P -n $N -r 100000):"
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
