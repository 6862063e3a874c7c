#!/usr/bin/env bash
# Interleaved A/B runs of `appendfsync always` INCR (-c 50, no pipelining) against redis-server
# with the same policy, reporting per run: throughput of both and their ratio, server CPU
# (user+system) and voluntary context switches per request of both, and limitkv's fsyncs.
#
#   scripts/aof-always-ab.sh BIN [BIN ...]         # each binary once per round
#   REPS=6 N=100000 LKARGS="--threads 1" DIRBASE=/dev/shm scripts/aof-always-ab.sh target/release/limitkv
#
# DIRBASE puts both AOFs on another filesystem (/dev/shm: tmpfs, where an fsync costs nearly
# nothing, to see the cost of the commit mechanism apart from the disk). Needs redis-server and
# redis-benchmark on PATH. Servers listen on random ports of 127.0.0.1 and are stopped after
# each run.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
REPS=${REPS:-3}; N=${N:-100000}; DIRBASE=${DIRBASE:-/tmp}
csw() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
cpu() { awk '{print $14 + $15}' /proc/"$1"/stat; }
run() { # port pid -> "rps cpu_us_per_req csw_per_req"
  local s0 c0 r s1 c1 hz
  hz=$(getconf CLK_TCK)
  s0=$(csw "$2"); c0=$(cpu "$2")
  r=$(timeout 120 redis-benchmark -p "$1" -n "$N" -c 50 -r 100000 --csv INCR 'ctr:__rand_int__' | tail -1 | cut -d, -f2 | tr -d '"')
  s1=$(csw "$2"); c1=$(cpu "$2")
  echo "$r $(echo "($c1 - $c0) * 1000000 / $hz / $N" | bc -l) $(echo "($s1 - $s0) / $N" | bc -l)"
}
printf '%-28s %9s %9s %6s %7s %7s %6s %6s %8s\n' binary lk_rps redis_rps ratio lk_cpu rd_cpu lk_csw rd_csw fsyncs
for ((rep = 1; rep <= REPS; rep++)); do
  for bin in "$@"; do
    port=$((20000 + RANDOM % 20000)); rport=$((port + 1))
    d1=$(mktemp -d "$DIRBASE/aofab.XXXX"); d2=$(mktemp -d "$DIRBASE/aofab.XXXX")
    # shellcheck disable=SC2086
    "$bin" --port "$port" --bind 127.0.0.1 --appendonly yes --dir "$d1" --appendfsync always ${LKARGS:-} >/dev/null 2>&1 &
    lk=$!
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly yes --dir "$d2" --appendfsync always >/dev/null 2>&1 &
    rs=$!
    for p in $port $rport; do
      for _ in $(seq 50); do redis-cli -p "$p" PING >/dev/null 2>&1 && break; sleep 0.1; done
    done
    read -r lr lc ls <<<"$(run "$port" "$lk")"
    read -r rr rc rsw <<<"$(run "$rport" "$rs")"
    f=$(redis-cli -p "$port" INFO persistence | tr -d '\r' | awk -F: '/^aof_fsyncs:/ {print $2}')
    kill "$lk" "$rs"; wait "$lk" "$rs" 2>/dev/null || true
    rm -rf "$d1" "$d2"
    printf '%-28s %9.0f %9.0f %6.2f %7.1f %7.1f %6.2f %6.2f %8s\n' "$(basename "$bin")${LKARGS:+ $LKARGS}" \
      "$lr" "$rr" "$(echo "$lr / $rr" | bc -l)" "$lc" "$rc" "$ls" "$rsw" "$f"
  done
done
