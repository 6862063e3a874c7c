#!/usr/bin/env bash
# Bytes per key: loads N keys of each kind through a real client and divides the growth of the
# server's memory by DBSIZE, for limitkv, redis-server + redis-cell and plain redis-server.
#
#   scripts/bench-memory.sh [N]                 (N defaults to 1000000)
#   CASES="limitkv:throttle redis:set" scripts/bench-memory.sh 10000000
#
# Every case starts a fresh server on a free loopback port (no persistence), reads its RSS
# (/proc/PID/status VmRSS) and `INFO memory` used_memory, loads N keys named `user:%012d`
# (17 bytes) with `redis-cli --pipe`, then reads DBSIZE, RSS and used_memory again and prints
# (after - before) / DBSIZE for both. For limitkv it also prints the keyspace index's load
# factor from `INFO keyspace` (`limitkv_index_db0`: entries / index buckets) when it reports it.
#
# Cases (CASES, space-separated; default: all):
#   limitkv:throttle  CL.THROTTLE key 15 1 3600 1    (one GCRA TAT per key, expires in 1 h)
#   limitkv:rate      RATE.TAKE key 1/1h BURST 15
#   limitkv:window    WINDOW.TAKE key 100/1h
#   limitkv:quota     QUOTA.TAKE key 1000/day
#   limitkv:cost      COST.INCRBY key 0.01 CAP 1.00 PER day
#   limitkv:lease     LEASE.ACQUIRE key LIMIT 10 TTL 1h
#   limitkv:breaker   BREAKER.REPORT key FAILURE THRESHOLD 5
#   limitkv:set       SET key <int> PX 3600000
#   cell:throttle     CL.THROTTLE key 15 1 3600 1 on redis-server with the redis-cell module
#   redis:set         SET key <int> PX 3600000 on plain redis-server
#
# Environment:
#   LIMITKV            the limitkv binary (default target/release/limitkv, built when missing)
#   LIMITKV_ARGS       extra limitkv arguments
#   REDIS_CELL_MODULE  a redis-cell .so; when unset the script builds redis-cell from its
#                      crates.io source with cargo (in /tmp/redis-cell-build) and skips the
#                      cell case with a message if that fails
#
# RSS includes allocator slack and the hash tables' empty buckets: it is what a key costs the
# machine. Other processes do not affect the figures (they are per-process deltas), but the
# load time does.
set -euo pipefail
N=${1:-1000000}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, got '$N'" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASES=${CASES:-"limitkv:throttle limitkv:rate limitkv:window limitkv:quota limitkv:cost limitkv:lease limitkv:breaker limitkv:set cell:throttle redis:set"}
LIMITKV=${LIMITKV:-$ROOT/target/release/limitkv}
WORK=$(mktemp -d /tmp/bench-memory.XXXX)
PID=

cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not on PATH" >&2; exit 1; }
done

if [[ $CASES == *limitkv:* && ! -x $LIMITKV ]]; then
  echo "building limitkv (cargo build --release)" >&2
  (cd "$ROOT" && cargo build --release --bin limitkv >&2)
fi

# redis-cell: its crates.io source, fetched and built with cargo (the module is a cdylib, so
# `cargo install` cannot build it).
cell_module() {
  if [[ -n ${REDIS_CELL_MODULE:-} ]]; then echo "$REDIS_CELL_MODULE"; return; fi
  local dir=/tmp/redis-cell-build
  local so
  so=$(ls "$dir"/src/target/release/libredis_cell.so 2>/dev/null || true)
  if [[ -n $so ]]; then echo "$so"; return; fi
  command -v cargo >/dev/null || return 1
  mkdir -p "$dir/fetch/src"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nredis-cell = "*"\n' \
    >"$dir/fetch/Cargo.toml"
  echo 'fn main() {}' >"$dir/fetch/src/main.rs"
  (cd "$dir/fetch" && cargo fetch >&2) || return 1
  local src
  src=$(cd "$dir/fetch" && cargo metadata --format-version 1 2>/dev/null \
    | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "redis-cell"))') || return 1
  rm -rf "$dir/src" && cp -r "$(dirname "$src")" "$dir/src"
  (cd "$dir/src" && cargo build --release >&2) || return 1
  ls "$dir"/src/target/release/libredis_cell.so
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_up() {
  for _ in $(seq 200); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server on port $1 did not start" >&2
  exit 1
}

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }

info_field() { # port section field -> value or empty
  redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}

# RESP for N commands: the template's KEY is `user:%012d`, INT the key's number.
generate() {
  python3 - "$N" "$@" <<'EOF'
import sys
n = int(sys.argv[1]); words = sys.argv[2:]
out = sys.stdout.buffer
head = b"*%d\r\n" % len(words)
buf = []
for i in range(n):
    parts = [head]
    for w in words:
        a = (b"user:%012d" % i) if w == "KEY" else (b"%d" % i if w == "INT" else w.encode())
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    buf.append(b"".join(parts))
    if len(buf) == 10000:
        out.write(b"".join(buf)); buf = []
out.write(b"".join(buf))
EOF
}

ROWS=()
run_case() { # server kind command words...
  local server=$1 kind=$2
  shift 2
  local port
  port=$(free_port)
  case $server in
    limitkv)
      # shellcheck disable=SC2086
      "$LIMITKV" --port "$port" --bind 127.0.0.1 --appendonly no ${LIMITKV_ARGS:-} \
        >"$WORK/server.log" 2>&1 &
      ;;
    cell)
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --loadmodule "$CELL" >"$WORK/server.log" 2>&1 &
      ;;
    redis)
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$WORK/server.log" 2>&1 &
      ;;
  esac
  PID=$!
  wait_up "$port"
  local rss0 used0 t0 t1 rss1 used1 keys lf
  rss0=$(rss_bytes "$PID")
  used0=$(info_field "$port" memory used_memory)
  t0=$(date +%s.%N)
  generate "$@" | redis-cli -p "$port" --pipe >"$WORK/pipe.log" 2>&1 || {
    echo "$server:$kind: loading failed: $(tail -3 "$WORK/pipe.log")" >&2
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    return
  }
  t1=$(date +%s.%N)
  if grep -q "errors: [1-9]" "$WORK/pipe.log"; then
    echo "$server:$kind: the server answered errors: $(tail -1 "$WORK/pipe.log")" >&2
  fi
  keys=$(redis-cli -p "$port" DBSIZE)
  rss1=$(rss_bytes "$PID")
  used1=$(info_field "$port" memory used_memory)
  lf=$(info_field "$port" keyspace limitkv_index_db0 | sed -n 's/.*load_factor=\([0-9.]*\).*/\1/p')
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
  local per_rss per_used
  per_rss=$(python3 -c "print(f'{($rss1 - $rss0) / max($keys, 1):.1f}')")
  if [[ -n $used0 && -n $used1 ]]; then
    per_used=$(python3 -c "print(f'{($used1 - $used0) / max($keys, 1):.1f}')")
  else
    per_used=-
  fi
  local secs
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  ROWS+=("| $server | $kind | \`$*\` | $keys | $per_rss | $per_used | ${lf:--} | $secs |")
  echo "${ROWS[-1]}" >&2
}

CELL=
for c in $CASES; do
  case $c in
    limitkv:throttle) run_case limitkv throttle CL.THROTTLE KEY 15 1 3600 1 ;;
    limitkv:rate) run_case limitkv rate RATE.TAKE KEY 1/1h BURST 15 ;;
    limitkv:window) run_case limitkv window WINDOW.TAKE KEY 100/1h ;;
    limitkv:quota) run_case limitkv quota QUOTA.TAKE KEY 1000/day ;;
    limitkv:cost) run_case limitkv cost COST.INCRBY KEY 0.01 CAP 1.00 PER day ;;
    limitkv:lease) run_case limitkv lease LEASE.ACQUIRE KEY LIMIT 10 TTL 1h ;;
    limitkv:breaker) run_case limitkv breaker BREAKER.REPORT KEY FAILURE THRESHOLD 5 ;;
    limitkv:set) run_case limitkv set SET KEY INT PX 3600000 ;;
    cell:throttle)
      if CELL=$(cell_module) && [[ -n $CELL ]]; then
        run_case cell throttle CL.THROTTLE KEY 15 1 3600 1
      else
        echo "redis-cell could not be built (cargo fetch/build of the crates.io source failed): cell:throttle skipped" >&2
      fi
      ;;
    redis:set) run_case redis set SET KEY INT PX 3600000 ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
done

echo "# bench-memory: $N keys per case, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
echo "# $(redis-server --version | cut -d' ' -f1-3); limitkv $("$LIMITKV" --version 2>/dev/null || echo '?')"
echo
echo "| server | kind | command | DBSIZE | RSS bytes/key | used_memory bytes/key | index load | load s |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
