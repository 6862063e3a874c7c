#!/usr/bin/env bash
# Issue 18's overhead check: "CL.THROTTLE at -P 16 with all counters and history on is within
# 5% of before". Measures the server's CPU time per request (user + system ticks from
# /proc/PID/stat, as scripts/bench-repl.sh does), which does not depend on what else shares the
# cores, so it stays meaningful on a loaded machine where requests/s do not.
#
#   scripts/bench-overhead.sh [BEFORE_BIN] [AFTER_BIN]
#   REPS=5 N=500000 P=16 scripts/bench-overhead.sh
#
# BEFORE_BIN: a release build without the counters. Without it, the script builds one from
#   BEFORE_REV (default 4f249f8^, the commit before INFO commandstats/errorstats, the
#   per-command latency buckets and the per-rule outcome counters) in a temporary git worktree
#   with its own target directory (a full release build: minutes).
# AFTER_BIN: default target/release/limitkv; run twice per round, with `--usage-history no`
#   and with the default `--usage-history yes` (the counters cannot be switched off: they are
#   the comparison with BEFORE).
#
# Per round, each server is fresh and gets redis-benchmark CL.THROTTLE (-c 50 -P P, random keys
# among 100,000, burst 100), then LIMIT.CHECK on one policy (random identities among 100,000:
# every check feeds the usage history when it is on; BEFORE has the same command). Prints each
# round and the medians: CPU µs per request and the ratios after/before (target <= 1.05).
# Needs redis-cli, redis-benchmark and python3 on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-5}; N=${N:-500000}; P=${P:-16}
BEFORE=${1:-}
AFTER=$(realpath "${2:-$ROOT/target/release/limitkv}")
OUT=$(mktemp -d /tmp/bench-overhead.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$OUT/before-src" ] && git -C "$ROOT" worktree remove --force "$OUT/before-src" 2>/dev/null || true
}
trap cleanup EXIT

if [ -z "$BEFORE" ]; then
  REV=${BEFORE_REV:-4f249f8^}
  git -C "$ROOT" worktree add --detach "$OUT/before-src" "$REV" >/dev/null
  echo "building $REV in $OUT/before-src (release) ..." >&2
  (cd "$OUT/before-src" && CARGO_TARGET_DIR="$OUT/before-target" cargo build --release --quiet)
  BEFORE="$OUT/before-target/release/limitkv"
fi
BEFORE=$(realpath "$BEFORE")

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
  for _ in $(seq 200); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
us_per_req() { python3 -c "print(round(($2 - $1) / $HZ * 1e6 / $N, 3))"; }

# run BIN [ARGS...]: prints "throttle_us check_us" for a fresh server.
run() {
  local port; port=$(free_port)
  "$@" --port "$port" --bind 127.0.0.1 >>"$OUT/servers.log" 2>&1 &
  local pid=$!; PIDS=("$pid")
  wait_up "$port"
  redis-cli -p "$port" POLICY.SET api RATE 1000/1m >/dev/null
  local c0 c1 c2
  c0=$(ticks "$pid")
  redis-benchmark -p "$port" -n "$N" -c 50 -P "$P" -r 100000 -q \
    CL.THROTTLE 'user:__rand_int__' 100 1000 60 >/dev/null
  c1=$(ticks "$pid")
  redis-benchmark -p "$port" -n "$N" -c 50 -P "$P" -r 100000 -q \
    LIMIT.CHECK api 'id:__rand_int__' >/dev/null
  c2=$(ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; PIDS=()
  echo "$(us_per_req "$c0" "$c1") $(us_per_req "$c1" "$c2")"
}

echo "before: $BEFORE; after: $AFTER; N=$N P=$P REPS=$REPS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((rep = 1; rep <= REPS; rep++)); do
  b=$(run "$BEFORE")
  off=$(run "$AFTER" --usage-history no)
  on=$(run "$AFTER" --usage-history yes)
  echo "round $rep: CPU us/request (CL.THROTTLE LIMIT.CHECK): before $b, after history off $off, after history on $on"
  echo "$b $off $on" >>"$OUT/nums"
done
python3 - "$OUT/nums" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
med = [statistics.median(r[i] for r in rows) for i in range(6)]
names = ["before", "after, history off", "after, history on"]
for cmd, off in (("CL.THROTTLE", 0), ("LIMIT.CHECK", 1)):
    b = med[off]
    parts = [f"{n} {med[off + 2 * i]:.3f} us" for i, n in enumerate(names)]
    ratio = med[off + 4] / b
    print(f"median {cmd}: " + ", ".join(parts) + f"; on/before {ratio:.3f} (target <= 1.05)")
PY
echo "logs: $OUT"
