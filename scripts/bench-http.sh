#!/usr/bin/env bash
# Throughput of the HTTP check API (`/v1/check`) with keep-alive, measured with wrk against a
# release build (docs/benchmarks.md, "HTTP check API"). Prints a Markdown report on stdout;
# wrk's raw output goes to bench-results/http-<UTC timestamp>/.
#
#   scripts/bench-http.sh                      # 10 s per case, 2 wrk threads, 50 connections
#   DURATION=30s CONNECTIONS=100 scripts/bench-http.sh
#   NO_BUILD=1 scripts/bench-http.sh           # use the existing target/release/limitkv
#   PIPELINE=16 (default) sets the depth of the last case (HTTP/1.1 pipelining)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
KEYSPACE=${KEYSPACE:-100000}
# Server worker threads (0 = limitkv's default: one per core but one, at least two).
SERVER_THREADS=${SERVER_THREADS:-0}

if ! command -v wrk >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "--- installing wrk and redis-tools" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-tools >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-tools >/dev/null; }
fi

# The binary under test (another build: LIMITKV=/path/to/limitkv NO_BUILD=1).
LIMITKV=${LIMITKV:-target/release/limitkv}
if [ -z "${NO_BUILD:-}" ]; then
  echo "--- cargo build --release" >&2
  cargo build --release --quiet
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
HTTP_PORT=$(free_port)
OUT="bench-results/http-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

"$LIMITKV" --port "$PORT" --http-port "$HTTP_PORT" --bind 127.0.0.1 \
  --threads "$SERVER_THREADS" >"$OUT/limitkv.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

redis-cli -p "$PORT" POLICY.SET bench RATE 100/1m >/dev/null
redis-cli -p "$PORT" POLICY.SET plan RATE 30/1m BURST 16 WINDOW 100/1m QUOTA 1000/day >/dev/null

cat >"$OUT/random-ids.lua" <<'LUA'
-- GET /v1/check with a random identity of KEYSPACE per request (fixed seed).
math.randomseed(42)
local keyspace = tonumber(os.getenv("KEYSPACE") or "100000")
local policy = os.getenv("POLICY") or "bench"
request = function()
  return wrk.format("GET", "/v1/check?policy=" .. policy .. "&id=user:" .. math.random(1, keyspace))
end
LUA
cat >"$OUT/post-random-ids.lua" <<'LUA'
-- POST /v1/check with a JSON body and a random identity of KEYSPACE per request.
math.randomseed(42)
local keyspace = tonumber(os.getenv("KEYSPACE") or "100000")
request = function()
  local body = '{"policy":"bench","identity":"user:' .. math.random(1, keyspace) .. '"}'
  return wrk.format("POST", "/v1/check", {["Content-Type"] = "application/json"}, body)
end
LUA

cat >"$OUT/pipelined.lua" <<'LUA'
-- HTTP/1.1 pipelining: PIPELINE GET /v1/check requests of one identity per write (wrk counts
-- each answer).
init = function(args)
  local depth = tonumber(os.getenv("PIPELINE") or "16")
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format("GET", "/v1/check?policy=bench&id=u1")
  end
  req = table.concat(batch)
end
request = function() return req end
LUA
PIPELINE=${PIPELINE:-16}

BASE="http://127.0.0.1:$HTTP_PORT"
# The server's CPU time (user + system, clock ticks) from /proc: its cost per request holds
# on a loaded machine where requests/s does not.
ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
run() {
  local slug=$1 name=$2
  shift 2
  echo "--- $name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $*" >&2
  local t0 t1
  t0=$(ticks)
  KEYSPACE=$KEYSPACE POLICY=${POLICY:-bench} wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" \
    >"$OUT/$slug.txt" 2>&1
  t1=$(ticks)
  local rps p50 p99 non2xx requests cpu
  requests=$(awk '/requests in/ {print $1}' "$OUT/$slug.txt")
  cpu=$(awk -v t="$((t1 - t0))" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$slug.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$OUT/$slug.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$OUT/$slug.txt")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' "$OUT/$slug.txt")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}" "$cpu"
}

echo "## HTTP check API ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, keep-alive; KEYSPACE=$KEYSPACE; raw output in $OUT"
echo
echo "| case | requests/s | p50 | p99 | 429s (non-2xx) | server CPU µs/request |"
echo "| --- | --- | --- | --- | --- | --- |"
run get-one "GET one identity (RATE 100/1m, mostly 429)" "$BASE/v1/check?policy=bench&id=u1"
run get-random "GET random identities (RATE 100/1m)" -s "$OUT/random-ids.lua" "$BASE"
POLICY=plan run get-random-3-rules "GET random identities (3 rules)" -s "$OUT/random-ids.lua" "$BASE"
run post-random "POST JSON random identities (RATE 100/1m)" -s "$OUT/post-random-ids.lua" "$BASE"
PIPELINE=$PIPELINE run get-one-pipelined "GET one identity, $PIPELINE pipelined per connection" -s "$OUT/pipelined.lua" "$BASE"
