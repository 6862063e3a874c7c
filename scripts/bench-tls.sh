#!/usr/bin/env bash
# Measures what TLS costs: redis-benchmark against limitkv's plain port and its TLS port (same
# server process), and, for reference, against redis-server's plain and TLS ports.
#
#   scripts/bench-tls.sh [--quick]
#
# Builds limitkv (cargo build --release), makes a CA and a server certificate (EC P-256) with the
# openssl CLI in a temporary directory, and starts
#   limitkv --port P --tls-port T --tls-auth-clients no ...
#   redis-server --port P2 --tls-port T2 --tls-auth-clients no --save '' --appendonly no ...
# on free loopback ports. Each case runs against limitkv plain, limitkv TLS, redis plain and
# redis TLS in turn, REPEAT times; a row shows the run with the median throughput. TLS runs
# add `--tls --cacert ca.crt` (redis-benchmark then opens CLIENTS TLS connections once, so the
# handshakes are not what is measured: the per-request cost of encryption is).
#
# Cases: `-t set,get,incr` with -c CLIENTS, without and with -P PIPELINE, and
# `-r KEYSPACE CL.THROTTLE user:__rand_int__ 15 30 60` (limitkv only), without and with
# -P PIPELINE.
#
# Environment: REQUESTS (default 100000; --quick 10000), CLIENTS (50), PIPELINE (16),
# KEYSPACE (100000), REPEAT (3; --quick 1), REDIS_TLS=0 skips redis-server, LIMITKV_ARGS
# (extra limitkv arguments).
#
# Prints a Markdown table to stdout; raw CSVs and server logs go to
# bench-results/tls-<UTC timestamp>/ (gitignored). Server and benchmark share the machine's
# cores: compare the columns of one run, not runs on different machines.
set -euo pipefail

CMDLINE="$0${*:+ $*}"
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  REQUESTS=${REQUESTS:-10000}
  REPEAT=${REPEAT:-1}
fi
REQUESTS=${REQUESTS:-100000}
REPEAT=${REPEAT:-3}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-100000}
REDIS_TLS=${REDIS_TLS:-1}

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in redis-benchmark redis-cli openssl; do
  command -v $tool >/dev/null || {
    echo "$tool not found (apt-get install redis-tools openssl)" >&2
    exit 1
  }
done
if ! redis-benchmark --help 2>&1 | grep -q -- '--tls'; then
  echo "this redis-benchmark was built without TLS" >&2
  exit 1
fi
if [[ $REDIS_TLS == 1 ]] && ! command -v redis-server >/dev/null; then
  echo "redis-server not found: skipping it (REDIS_TLS=0)" >&2
  REDIS_TLS=0
fi

out="$root/bench-results/tls-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
echo "building limitkv (release)" >&2
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/limitkv"

pki=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]+"${pids[@]}"}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${pids[@]+"${pids[@]}"}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$pki"
}
trap cleanup EXIT

(
  cd "$pki"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 2 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
  openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost"
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
    -days 2 -extfile server.ext
) >"$out/pki.log" 2>&1

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

tls_args=(--tls-cert-file "$pki/server.crt" --tls-key-file "$pki/server.key"
  --tls-ca-cert-file "$pki/ca.crt" --tls-auth-clients no)

wait_ping() {
  for _ in $(seq 100); do
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  echo "server on port $1 did not answer PING" >&2
  exit 1
}

lk_port=$(free_port)
lk_tls=$(free_port)
# shellcheck disable=SC2086
"$bin" --port "$lk_port" --tls-port "$lk_tls" --bind 127.0.0.1 "${tls_args[@]}" \
  ${LIMITKV_ARGS:-} >"$out/limitkv.log" 2>&1 &
pids+=($!)
wait_ping "$lk_port"
targets=("limitkv plain:$lk_port:" "limitkv TLS:$lk_tls:tls")
if [[ $REDIS_TLS == 1 ]]; then
  rd_port=$(free_port)
  rd_tls=$(free_port)
  redis-server --port "$rd_port" --tls-port "$rd_tls" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no "${tls_args[@]}" >"$out/redis.log" 2>&1 &
  pids+=($!)
  wait_ping "$rd_port"
  targets+=("redis plain:$rd_port:" "redis TLS:$rd_tls:tls")
fi

# One redis-benchmark run: prints "test<TAB>rps" lines.
bench() {
  local port=$1 tls=$2 csv=$3
  shift 3
  local extra=()
  [[ -n $tls ]] && extra=(--tls --cacert "$pki/ca.crt")
  redis-benchmark -h 127.0.0.1 -p "$port" "${extra[@]}" -n "$REQUESTS" -c "$CLIENTS" --csv "$@" \
    >"$csv" 2>>"$out/redis-benchmark.stderr"
  tail -n +2 "$csv" | awk -F'","' '{gsub(/"/, "", $1); printf "%s\t%s\n", $1, $2}'
}

declare -A results # "case|target" -> space-separated rps of each repeat
cases=("plain:-t set,get,incr" "pipelined:-t set,get,incr -P $PIPELINE"
  "plain:-r $KEYSPACE CL.THROTTLE user:__rand_int__ 15 30 60"
  "pipelined:-r $KEYSPACE -P $PIPELINE CL.THROTTLE user:__rand_int__ 15 30 60")
for ((rep = 1; rep <= REPEAT; rep++)); do
  for c in "${cases[@]}"; do
    kind=${c%%:*}
    read -r -a args <<<"${c#*:}"
    for t in "${targets[@]}"; do
      IFS=: read -r name port tls <<<"$t"
      [[ $name == redis* && ${args[*]} == *CL.THROTTLE* ]] && continue
      echo "run $rep: $name ${args[*]}" >&2
      csv="$out/${name// /-}-$kind-${args[-1]//[^a-z0-9]/}-$rep.csv"
      while IFS=$'\t' read -r test rps; do
        test=${test%% user:*}
        [[ $kind == pipelined ]] && test="$test (-P $PIPELINE)"
        results["$test|$name"]+="$rps "
      done < <(bench "$port" "$tls" "$csv" "${args[@]}")
    done
  done
done

median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

{
  echo "\`$CMDLINE\` (REQUESTS=$REQUESTS CLIENTS=$CLIENTS PIPELINE=$PIPELINE KEYSPACE=$KEYSPACE REPEAT=$REPEAT)"
  echo
  echo "limitkv $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(redis-server --version 2>/dev/null | cut -d' ' -f3 || true), $(nproc) cores, ${REPEAT} runs per cell (median)"
  echo
  echo "| case | limitkv plain | limitkv TLS | TLS/plain | redis plain | redis TLS | TLS/plain |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for key in "${!results[@]}"; do
    echo "${key%%|*}"
  done | sort -u | while read -r test; do
    lp=$(median <<<"${results["$test|limitkv plain"]:-}")
    lt=$(median <<<"${results["$test|limitkv TLS"]:-}")
    rp=$(median <<<"${results["$test|redis plain"]:-}")
    rt=$(median <<<"${results["$test|redis TLS"]:-}")
    echo "| $test | ${lp:--} | ${lt:--} | $(ratio "$lt" "$lp") | ${rp:--} | ${rt:--} | $(ratio "$rt" "$rp") |"
  done
} | tee "$out/report.md"
