#!/usr/bin/env bash
# Benchmarks limitkv against a real redis-server, side by side, with redis-benchmark.
#
#   scripts/bench-vs-redis.sh [--quick]
#
# Builds limitkv (cargo build --release), starts it and `redis-server --save '' --appendonly no`
# on free loopback ports, and runs the same redis-benchmark cases against each:
#   - `-t ping,set,get,incr` with -c CLIENTS, without and with -P PIPELINE;
#   - CL.THROTTLE on random keys (-r KEYSPACE), without and with -P PIPELINE. limitkv runs
#     `CL.THROTTLE user:__rand_int__ 15 30 60`. redis-server runs the same command through the
#     redis-cell module when REDIS_CELL_MODULE names its .so, otherwise
#     `EVALSHA <scripts/gcra.lua> 1 user:__rand_int__ 15 30 60 1`, a Lua port of CL.THROTTLE.
#     The case is skipped, with a message, when limitkv does not know CL.THROTTLE yet.
#   - the rate-limit libraries' Lua scripts (tests/compat/scripts: rate-limiter-flexible,
#     rate-limit-redis, limits), each loaded with SCRIPT LOAD on both servers and run as
#     `EVALSHA <sha> <numkeys> <keys> <args>` with the library's key and argument conventions, on
#     random keys with -P PIPELINE, plus one script no server can recognise (a known script with
#     a comment appended). Skipped, with a message, when limitkv does not support SCRIPT LOAD.
#   - a policy with four rules: limitkv runs one `LIMIT.CHECK bench user:__rand_int__ TOKENS 10`
#     against `RATE 30/1m BURST 16 WINDOW 100/1m QUOTA 1000/day TOKENS 50000/1m`; redis-server
#     makes the same four decisions as four scripts/gcra.lua calls (one key each, quantity 10
#     for the tokens). Each of the four calls is benchmarked on its own; a decision costs the
#     sum of their times, so redis decisions/s = 1 / sum(1 / calls/s). Without and with
#     -P PIPELINE. Skipped when limitkv does not know LIMIT.CHECK or with POLICY_BENCH=0.
#
# Prints a Markdown report (command, versions, machine, table of ops/s, p50/p99 latency and the
# limitkv/redis ratio) to stdout; progress goes to stderr. Raw redis-benchmark CSVs, server logs
# and a copy of the report go to bench-results/<UTC timestamp>/ (gitignored).
#
# Environment:
#   REQUESTS          requests per test (default 200000; --quick sets 20000)
#   CLIENTS           parallel connections (default 50)
#   PIPELINE          pipeline depth of the pipelined cases (default 16)
#   KEYSPACE          -r range for the CL.THROTTLE keys (default 100000)
#   FAMILY_BENCH=0    skip the native-family cases (RATE/WINDOW/QUOTA/COST/LEASE/BREAKER)
#   AOF_BENCH=0       skip the append-only-file cases (both servers with appendonly yes)
#   LIMITKV_ARGS=...  extra arguments for every limitkv start (e.g. "--threads 1")
#   SCRIPT_BENCH=0    skip the rate-limit libraries' Lua scripts (EVALSHA of each script in
#                     tests/compat/scripts on both servers; skipped when limitkv lacks SCRIPT LOAD)
#   POLICY_BENCH=0    skip the LIMIT.CHECK (4 rules) vs four GCRA calls cases
#   REPEAT            runs per case and server, alternating; the row shows the run with the
#                     median throughput (default 3; --quick sets 1)
#   REDIS_CELL_MODULE path to a redis-cell .so to load into redis-server (optional)
#
# Both servers and redis-benchmark share the machine's cores: the numbers compare the two
# servers under the same conditions, not either server's ceiling.
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
  REQUESTS=20000
  REPEAT=${REPEAT:-1}
fi
REPEAT=${REPEAT:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-100000}
REDIS_CELL_MODULE=${REDIS_CELL_MODULE:-}
for v in REQUESTS CLIENTS PIPELINE KEYSPACE REPEAT; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "$v must be a positive integer, got '${!v}'" >&2
    exit 2
  fi
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START_SECONDS=$SECONDS

log() { echo "bench: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- tools -----------------------------------------------------------------------------------

install_redis() {
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "redis-server/redis-tools missing and not root: install them"
    sudo=(sudo)
  fi
  log "installing redis-server and redis-tools"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools >&2
  fi
}

for tool in redis-server redis-cli redis-benchmark; do
  if ! command -v "$tool" >/dev/null; then
    install_redis
    break
  fi
done
command -v cargo >/dev/null || die "cargo not found"

if [[ -n $REDIS_CELL_MODULE && ! -f $REDIS_CELL_MODULE ]]; then
  die "REDIS_CELL_MODULE=$REDIS_CELL_MODULE is not a file"
fi

log "building limitkv (cargo build --release)"
cargo build --release >&2
LIMITKV_BIN=$ROOT/target/release/limitkv
[[ -x $LIMITKV_BIN ]] || die "$LIMITKV_BIN was not built"

# --- servers ---------------------------------------------------------------------------------

OUT=$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

LIMITKV_PID=
REDIS_PID=

stop_pid() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 5 s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$LIMITKV_PID"
  stop_pid "$REDIS_PID"
  if [[ $rc != 0 ]]; then
    log "failed (exit $rc); server logs are in $OUT"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nobody listens on, avoiding the ports given as arguments.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    [[ " $* " == *" $p "* ]] && continue
    port_in_use "$p" || {
      echo "$p"
      return 0
    }
  done
  die "no free port found"
}

# Waits until the server on port $1 (process $2, name $3) answers PING.
wait_ping() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during startup; see $OUT/$name.log"
    if [[ $(redis-cli -p "$port" ping 2>/dev/null || true) == PONG ]]; then
      return 0
    fi
    sleep 0.1
  done
  die "$name did not answer PING on port $port within 30 s"
}

LIMITKV_PORT=$(free_port)
REDIS_PORT=$(free_port "$LIMITKV_PORT")

# (Re)starts limitkv with extra arguments; its log goes to $OUT/limitkv$1.log.
start_limitkv() {
  local tag=$1
  shift
  stop_pid "$LIMITKV_PID"
  log "starting limitkv on 127.0.0.1:$LIMITKV_PORT $*"
  # shellcheck disable=SC2086  # LIMITKV_ARGS is split into words on purpose
  "$LIMITKV_BIN" --port "$LIMITKV_PORT" --bind 127.0.0.1 ${LIMITKV_ARGS:-} "$@" >"$OUT/limitkv$tag.log" 2>&1 &
  LIMITKV_PID=$!
  wait_ping "$LIMITKV_PORT" "$LIMITKV_PID" "limitkv$tag"
}

# (Re)starts redis-server with the given persistence arguments.
start_redis() {
  local tag=$1
  shift
  stop_pid "$REDIS_PID"
  REDIS_ARGS=(--port "$REDIS_PORT" --bind 127.0.0.1 --save '' --daemonize no "$@")
  if [[ -n $REDIS_CELL_MODULE ]]; then
    REDIS_ARGS+=(--loadmodule "$REDIS_CELL_MODULE")
  fi
  log "starting redis-server ${REDIS_ARGS[*]}"
  redis-server "${REDIS_ARGS[@]}" >"$OUT/redis$tag.log" 2>&1 &
  REDIS_PID=$!
  wait_ping "$REDIS_PORT" "$REDIS_PID" "redis$tag"
}

start_limitkv ""
start_redis "" --appendonly no

# --- CL.THROTTLE setup -----------------------------------------------------------------------

# One reply as a single line of space-separated words.
one_line() { { redis-cli "$@" 2>&1 || true; } | tr '\n' ' ' | sed 's/ *$//'; }

THROTTLE_ARGS=(15 30 60)
EXPECTED_FRESH="0 16 15 -1 2"
THROTTLE_NOTE=
RUN_THROTTLE=1
PROBE_KEY="bench:probe:$$"

limitkv_probe=$(one_line -p "$LIMITKV_PORT" CL.THROTTLE "$PROBE_KEY" "${THROTTLE_ARGS[@]}")
redis-cli -p "$LIMITKV_PORT" DEL "$PROBE_KEY" >/dev/null 2>&1 || true
if [[ $limitkv_probe == "ERR unknown command"* ]]; then
  RUN_THROTTLE=0
  THROTTLE_NOTE="CL.THROTTLE skipped: this limitkv build does not know the command ($limitkv_probe)."
  log "$THROTTLE_NOTE"
elif [[ $limitkv_probe != "$EXPECTED_FRESH" ]]; then
  die "limitkv: CL.THROTTLE $PROBE_KEY ${THROTTLE_ARGS[*]} on a fresh key gave '$limitkv_probe', expected '$EXPECTED_FRESH'"
fi

if [[ -n $REDIS_CELL_MODULE ]]; then
  REDIS_THROTTLE=(CL.THROTTLE "user:__rand_int__" "${THROTTLE_ARGS[@]}")
  REDIS_THROTTLE_DESC="redis-cell module ($REDIS_CELL_MODULE)"
  redis_probe=$(one_line -p "$REDIS_PORT" CL.THROTTLE "$PROBE_KEY" "${THROTTLE_ARGS[@]}")
else
  GCRA_SHA=$(redis-cli -p "$REDIS_PORT" -x SCRIPT LOAD <"$ROOT/scripts/gcra.lua")
  [[ $GCRA_SHA =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD of scripts/gcra.lua failed: $GCRA_SHA"
  REDIS_THROTTLE=(EVALSHA "$GCRA_SHA" 1 "user:__rand_int__" "${THROTTLE_ARGS[@]}" 1)
  REDIS_THROTTLE_DESC="scripts/gcra.lua via EVALSHA (sha $GCRA_SHA)"
  redis_probe=$(one_line -p "$REDIS_PORT" EVALSHA "$GCRA_SHA" 1 "$PROBE_KEY" "${THROTTLE_ARGS[@]}" 1)
fi
redis-cli -p "$REDIS_PORT" DEL "$PROBE_KEY" >/dev/null
if [[ $redis_probe != "$EXPECTED_FRESH" ]]; then
  die "redis: ${REDIS_THROTTLE[0]} on a fresh key gave '$redis_probe', expected '$EXPECTED_FRESH'"
fi
log "CL.THROTTLE check on a fresh key: limitkv '$limitkv_probe', redis '$redis_probe'"

# --- benchmark runs --------------------------------------------------------------------------

ROWS=()  # "case|lk_rps|lk_p50|lk_p99|rd_rps|rd_p50|rd_p99"
WARNINGS=()

# Runs redis-benchmark against server $1 (limitkv|redis) with file tag $2 and extra args;
# leaves the CSV in $OUT/$1-$2.csv.
run_bench() {
  local server=$1 tag=$2
  shift 2
  local port=$LIMITKV_PORT
  [[ $server == redis ]] && port=$REDIS_PORT
  local csv=$OUT/$server-$tag.csv err=$OUT/$server-$tag.stderr
  log "$server: redis-benchmark -n $REQUESTS -c $CLIENTS $*"
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQUESTS" -c "$CLIENTS" --csv "$@" >"$csv" 2>"$err" ||
    die "redis-benchmark failed against $server; see $err"
  if grep -qi 'error' "$err"; then
    WARNINGS+=("$server $tag: redis-benchmark reported errors: $(grep -i -m1 error "$err")")
  fi
}

# Prints "rps p50 p99" for the row of test $2 in CSV $1 ("-" if absent).
csv_row() {
  awk -F'","' -v t="$2" '
    { gsub(/^"|"$/, ""); }
    $1 == t { print $2, $5, $7; found = 1; exit }
    END { if (!found) print "- - -" }' "$1"
}

# Prints "rps p50 p99" of the repetition with the median rps of test $3 for server $1, tag $2.
median_row() {
  local server=$1 tag=$2 t=$3 rep
  for ((rep = 1; rep <= REPEAT; rep++)); do
    csv_row "$OUT/$server-$tag-r$rep.csv" "$t"
  done | sort -g -k1,1 | awk -v n="$REPEAT" '{ rows[NR] = $0 } END { print rows[int((n + 1) / 2)] }'
}

# Runs the standard tests on both servers (REPEAT times, alternating) and records one row per
# test, from the repetition with the median throughput.
bench_standard() {
  local tag=$1 label=$2 rep
  shift 2
  for ((rep = 1; rep <= REPEAT; rep++)); do
    run_bench limitkv "$tag-r$rep" -t ping,set,get,incr "$@"
    run_bench redis "$tag-r$rep" -t ping,set,get,incr "$@"
  done
  local t lk rd
  for t in PING_INLINE PING_MBULK SET GET INCR; do
    lk=$(median_row limitkv "$tag" "$t")
    rd=$(median_row redis "$tag" "$t")
    ROWS+=("$t $label|${lk// /|}|${rd// /|}")
  done
}

bench_throttle() {
  local tag=$1 label=$2 rep
  shift 2
  for ((rep = 1; rep <= REPEAT; rep++)); do
    redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    run_bench limitkv "$tag-r$rep" -r "$KEYSPACE" "$@" CL.THROTTLE "user:__rand_int__" "${THROTTLE_ARGS[@]}"
    run_bench redis "$tag-r$rep" -r "$KEYSPACE" "$@" "${REDIS_THROTTLE[@]}"
  done
  local lk rd
  lk=$(median_row limitkv "$tag" "CL.THROTTLE user:__rand_int__ ${THROTTLE_ARGS[*]}")
  rd=$(median_row redis "$tag" "${REDIS_THROTTLE[*]}")
  ROWS+=("CL.THROTTLE $label|${lk// /|}|${rd// /|}")
}

bench_standard std-c$CLIENTS "(c=$CLIENTS)"
bench_standard std-c$CLIENTS-P$PIPELINE "(c=$CLIENTS, P=$PIPELINE)" -P "$PIPELINE"
if [[ $RUN_THROTTLE == 1 ]]; then
  bench_throttle throttle-c$CLIENTS "(c=$CLIENTS, r=$KEYSPACE)"
  bench_throttle throttle-c$CLIENTS-P$PIPELINE "(c=$CLIENTS, P=$PIPELINE, r=$KEYSPACE)" -P "$PIPELINE"
fi

# --- policies: one LIMIT.CHECK of four rules vs the same four decisions as four calls ---------

POLICY_ROWS=()  # "case|lk_rps|lk_p50|lk_p99|rd_decisions_per_s|rd_p50_sum|rd_p99_sum"
POLICY_NOTE=
POLICY_DEF=(RATE 30/1m BURST 16 WINDOW 100/1m QUOTA 1000/day TOKENS 50000/1m)
POLICY_CHECK=(LIMIT.CHECK bench "user:__rand_int__" TOKENS 10)
# The same four limits as GCRA parameters (max_burst count period_s quantity), one key each.
POLICY_REDIS_CALLS=(
  "rate:user:__rand_int__ 15 30 60 1"
  "window:user:__rand_int__ 99 100 60 1"
  "quota:user:__rand_int__ 999 1000 86400 1"
  "tokens:user:__rand_int__ 49999 50000 60 10"
)

# Runs the policy case with extra redis-benchmark args; adds one row.
bench_policy() {
  local tag=$1 label=$2 rep i
  shift 2
  for ((rep = 1; rep <= REPEAT; rep++)); do
    redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    run_bench limitkv "$tag-r$rep" -r "$KEYSPACE" "$@" "${POLICY_CHECK[@]}"
    for i in "${!POLICY_REDIS_CALLS[@]}"; do
      read -r -a call <<<"${POLICY_REDIS_CALLS[$i]}"
      run_bench redis "$tag-call$i-r$rep" -r "$KEYSPACE" "$@" EVALSHA "$POLICY_SHA" 1 "${call[@]}"
    done
  done
  local lk rd_rows=() row
  lk=$(median_row limitkv "$tag" "${POLICY_CHECK[*]}")
  for i in "${!POLICY_REDIS_CALLS[@]}"; do
    read -r -a call <<<"${POLICY_REDIS_CALLS[$i]}"
    rd_rows+=("$(median_row redis "$tag-call$i" "EVALSHA $POLICY_SHA 1 ${call[*]}")")
  done
  # decisions/s = 1 / sum(1/rps); latencies: the sums of the four calls' p50 and p99.
  row=$(printf '%s\n' "${rd_rows[@]}" | awk '
    { if ($1 + 0 > 0) inv += 1 / $1; else bad = 1; p50 += $2; p99 += $3 }
    END { if (bad || inv == 0) print "- - -"; else printf "%.0f %.3f %.3f\n", 1 / inv, p50, p99 }')
  POLICY_ROWS+=("LIMIT.CHECK, 4 rules $label|${lk// /|}|${row// /|}")
}

if [[ ${POLICY_BENCH:-1} == 1 ]]; then
  policy_probe=$(one_line -p "$LIMITKV_PORT" POLICY.SET bench "${POLICY_DEF[@]}")
  if [[ $policy_probe != OK ]]; then
    POLICY_NOTE="LIMIT.CHECK skipped: this limitkv build does not take POLICY.SET ($policy_probe)."
    log "$POLICY_NOTE"
  else
    POLICY_SHA=$(redis-cli -p "$REDIS_PORT" -x SCRIPT LOAD <"$ROOT/scripts/gcra.lua")
    [[ $POLICY_SHA =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD of scripts/gcra.lua failed: $POLICY_SHA"
    probe=$(one_line -p "$LIMITKV_PORT" LIMIT.CHECK bench "$PROBE_KEY" TOKENS 10)
    [[ $probe == "allowed 1 "* ]] || die "limitkv: LIMIT.CHECK on a fresh identity gave '$probe'"
    bench_policy policy-c$CLIENTS "(c=$CLIENTS, r=$KEYSPACE)"
    bench_policy policy-c$CLIENTS-P$PIPELINE "(c=$CLIENTS, P=$PIPELINE, r=$KEYSPACE)" -P "$PIPELINE"
  fi
fi

# --- native families on limitkv, against CL.THROTTLE on the same server ----------------------

FAMILY_ROWS=()  # "label|rps|p50|p99|throttle_rps|cpu_us|throttle_cpu_us"
FAMILIES=(
  "RATE.TAKE|RATE.TAKE user:__rand_int__ 30/1m BURST 16"
  "WINDOW.TAKE|WINDOW.TAKE user:__rand_int__ 30/1m"
  "QUOTA.TAKE|QUOTA.TAKE user:__rand_int__ 1000/day"
  "COST.INCRBY|COST.INCRBY user:__rand_int__ 0.01 CAP 1.00 PER day"
  "LEASE.ACQUIRE|LEASE.ACQUIRE user:__rand_int__ LIMIT 100 TTL 30s"
  "BREAKER.ALLOW|BREAKER.ALLOW user:__rand_int__"
)
# CPU time (user + system) the limitkv process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$LIMITKV_PID/stat"; }
# Server CPU microseconds per request of one run: what a command costs the server, whatever the
# client (redis-benchmark parsing longer replies on the same cores) makes of the throughput.
cpu_us_per_req() {
  awk -v t0="$1" -v t1="$2" -v hz="$(getconf CLK_TCK)" -v n="$REQUESTS" \
    'BEGIN { printf "%.3f", (t1 - t0) * 1000000 / hz / n }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if [[ $RUN_THROTTLE == 1 && ${FAMILY_BENCH:-1} == 1 ]]; then
  for fam in "${FAMILIES[@]}"; do
    label=${fam%%|*}
    read -r -a words <<<"${fam#*|}"
    tag="family-${label,,}"
    # The CL.THROTTLE baseline runs right before each family run, so both see the same
    # machine conditions; the ratio compares their medians.
    cpu=() base_cpu=()
    for ((rep = 1; rep <= REPEAT; rep++)); do
      redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
      t0=$(cpu_ticks)
      run_bench limitkv "$tag-base-r$rep" -r "$KEYSPACE" -P "$PIPELINE" CL.THROTTLE "user:__rand_int__" "${THROTTLE_ARGS[@]}"
      base_cpu+=("$(cpu_us_per_req "$t0" "$(cpu_ticks)")")
      redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
      t0=$(cpu_ticks)
      run_bench limitkv "$tag-r$rep" -r "$KEYSPACE" -P "$PIPELINE" "${words[@]}"
      cpu+=("$(cpu_us_per_req "$t0" "$(cpu_ticks)")")
    done
    row=$(median_row limitkv "$tag" "${words[*]}")
    base=$(median_row limitkv "$tag-base" "CL.THROTTLE user:__rand_int__ ${THROTTLE_ARGS[*]}")
    FAMILY_ROWS+=("$label|${row// /|}|${base%% *}|$(median "${cpu[@]}")|$(median "${base_cpu[@]}")")
  done
fi

# --- rate-limit libraries' Lua scripts via EVALSHA (tests/compat/scripts) -----------------------

# Each case: script file | EVALSHA arguments after the digest (numkeys, keys, args), following the
# library's own conventions (key prefixes, argument order and units; see
# tests/compat/scripts/README.md). redis-benchmark gives every __rand_int__ its own random value,
# so the two keys of the sliding-window scripts are drawn independently (the previous window is
# then usually empty, as within a window). The moving-window timestamps are fixed at the start of
# the run. limits-clear-keys.lua (KEYS over the whole keyspace) is not a hot path and is left out.
# A case marked "keep" (the reading scripts) runs on the keys the case before it wrote, on both
# servers alike; the others start from FLUSHALL.
# "unknown script" is rate-limiter-flexible's script with a comment appended: a digest no server
# can recognise, so limitkv runs it in Lua (issue 6: within 1.5x of redis-server).
SCRIPTS_DIR=$ROOT/tests/compat/scripts
BENCH_NOW=$(date +%s.%N | cut -c1-17)
BENCH_START=$(awk -v n="$BENCH_NOW" 'BEGIN { printf "%.6f", n - 60 }')
SCRIPT_CASES=(
  "rate-limiter-flexible-incr-ttl.lua|1 rlflx:__rand_int__ 1 60 100 60"
  "rate-limit-redis-increment.lua|1 rl:__rand_int__ 60000"
  "rate-limit-redis-get.lua|1 rl:__rand_int__|keep"
  "limits-incr-expire.lua|1 LIMITS:LIMITER/__rand_int__/100/1/minute 60 1"
  "limits-acquire-moving-window.lua|1 LIMITS:LIMITER/__rand_int__/100/1/minute $BENCH_NOW 100 60 1"
  "limits-moving-window.lua|1 LIMITS:LIMITER/__rand_int__/100/1/minute $BENCH_START 100|keep"
  "limits-acquire-sliding-window.lua|2 LIMITS:{LIMITER/__rand_int__/100/1/minute}/-1 LIMITS:{LIMITER/__rand_int__/100/1/minute} 100 60 1"
  "limits-sliding-window.lua|2 LIMITS:{LIMITER/__rand_int__/100/1/minute}/-1 LIMITS:{LIMITER/__rand_int__/100/1/minute} 60|keep"
  "unknown script|1 rlflx:__rand_int__ 1 60 100 60"
)
SCRIPT_ROWS=()  # "case|lk_rps|lk_p50|lk_p99|rd_rps|rd_p50|rd_p99"
SCRIPT_NOTE=

# Prints "rps p50 p99" of the only test in CSV $1 ("- - -" if absent); redis-benchmark names a
# custom command after its words, which are long here.
csv_first_row() {
  awk -F'","' 'NR == 2 { gsub(/^"|"$/, ""); print $2, $5, $7; found = 1; exit }
    END { if (!found) print "- - -" }' "$1"
}

# SCRIPT LOAD of stdin on port $1; prints the digest or the error.
script_load() { redis-cli -p "$1" -x SCRIPT LOAD 2>&1 | tr -d '\r'; }

if [[ ${SCRIPT_BENCH:-1} == 1 ]]; then
  redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
  redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
  lk_probe=$(printf 'return 1' | script_load "$LIMITKV_PORT")
  if ! [[ $lk_probe =~ ^[0-9a-f]{40}$ ]]; then
    SCRIPT_NOTE="Library scripts skipped: this limitkv build does not support SCRIPT LOAD/EVALSHA ($lk_probe)."
    log "$SCRIPT_NOTE"
  else
    for case in "${SCRIPT_CASES[@]}"; do
      IFS='|' read -r file words keep <<<"$case"
      read -r -a sargs <<<"$words"
      if [[ $file == "unknown script" ]]; then
        body=$(cat "$SCRIPTS_DIR/rate-limiter-flexible-incr-ttl.lua"; printf '\n-- not a known script')
        want=$(printf '%s' "$body" | sha1sum | cut -c1-40)
      else
        body=$(cat "$SCRIPTS_DIR/$file")
        want=$(awk -F'\t' -v f="$file" '$1 == f { print $4 }' "$SCRIPTS_DIR/index.tsv")
        # $(...) drops trailing newlines: load the file itself when the script ends with one.
        [[ $(sha1sum <"$SCRIPTS_DIR/$file" | cut -c1-40) == "$want" ]] || die "$file does not match its SHA1 in index.tsv"
      fi
      for port_name in "$LIMITKV_PORT limitkv" "$REDIS_PORT redis"; do
        read -r p name <<<"$port_name"
        if [[ $file == "unknown script" ]]; then
          got=$(printf '%s' "$body" | script_load "$p")
        else
          got=$(script_load "$p" <"$SCRIPTS_DIR/$file")
        fi
        [[ $got == "$want" ]] || die "$name: SCRIPT LOAD of $file gave '$got', expected $want"
      done
      tag="script-$(echo "${file%.lua}" | tr ' ' '-')"
      for ((rep = 1; rep <= REPEAT; rep++)); do
        if [[ $keep != keep ]]; then
          redis-cli -p "$LIMITKV_PORT" FLUSHALL >/dev/null
          redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
        fi
        run_bench limitkv "$tag-r$rep" -r "$KEYSPACE" -P "$PIPELINE" EVALSHA "$want" "${sargs[@]}"
        run_bench redis "$tag-r$rep" -r "$KEYSPACE" -P "$PIPELINE" EVALSHA "$want" "${sargs[@]}"
      done
      row=()
      for server in limitkv redis; do
        row+=("$(for ((rep = 1; rep <= REPEAT; rep++)); do csv_first_row "$OUT/$server-$tag-r$rep.csv"; done |
          sort -g -k1,1 | awk -v n="$REPEAT" '{ rows[NR] = $0 } END { print rows[int((n + 1) / 2)] }')")
      done
      SCRIPT_ROWS+=("${file%.lua}|${row[0]// /|}|${row[1]// /|}")
    done
  fi
fi

# --- persistence: AOF on both servers, same fsync policy --------------------------------------

AOF_ROWS=()  # "case|lk_rps|lk_p50|lk_p99|rd_rps|rd_p50|rd_p99"
if [[ ${AOF_BENCH:-1} == 1 ]]; then
  for policy in everysec always; do
    rm -rf "$OUT/aof-limitkv-$policy" "$OUT/aof-redis-$policy"
    mkdir -p "$OUT/aof-limitkv-$policy" "$OUT/aof-redis-$policy"
    start_limitkv "-$policy" --appendonly yes --appendfsync "$policy" --dir "$OUT/aof-limitkv-$policy"
    start_redis "-$policy" --appendonly yes --appendfsync "$policy" --dir "$OUT/aof-redis-$policy"
    if [[ -z $REDIS_CELL_MODULE ]]; then
      GCRA_SHA=$(redis-cli -p "$REDIS_PORT" -x SCRIPT LOAD <"$ROOT/scripts/gcra.lua")
      REDIS_THROTTLE=(EVALSHA "$GCRA_SHA" 1 "user:__rand_int__" "${THROTTLE_ARGS[@]}" 1)
    fi
    tag=aof-$policy-incr
    for ((rep = 1; rep <= REPEAT; rep++)); do
      run_bench limitkv "$tag-r$rep" -t incr
      run_bench redis "$tag-r$rep" -t incr
    done
    lk=$(median_row limitkv "$tag" INCR)
    rd=$(median_row redis "$tag" INCR)
    AOF_ROWS+=("INCR (c=$CLIENTS, appendfsync $policy)|${lk// /|}|${rd// /|}")
    if [[ $RUN_THROTTLE == 1 ]]; then
      tag=aof-$policy-throttle
      for ((rep = 1; rep <= REPEAT; rep++)); do
        run_bench limitkv "$tag-r$rep" -r "$KEYSPACE" CL.THROTTLE "user:__rand_int__" "${THROTTLE_ARGS[@]}"
        run_bench redis "$tag-r$rep" -r "$KEYSPACE" "${REDIS_THROTTLE[@]}"
      done
      lk=$(median_row limitkv "$tag" "CL.THROTTLE user:__rand_int__ ${THROTTLE_ARGS[*]}")
      rd=$(median_row redis "$tag" "${REDIS_THROTTLE[*]}")
      AOF_ROWS+=("CL.THROTTLE (c=$CLIENTS, r=$KEYSPACE, appendfsync $policy)|${lk// /|}|${rd// /|}")
    fi
  done
fi

# --- report ----------------------------------------------------------------------------------

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
limitkv_rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)

report() {
  echo "# limitkv vs redis-server"
  echo
  echo "- command: \`REQUESTS=$REQUESTS REPEAT=$REPEAT CLIENTS=$CLIENTS PIPELINE=$PIPELINE KEYSPACE=$KEYSPACE${REDIS_CELL_MODULE:+ REDIS_CELL_MODULE=$REDIS_CELL_MODULE}${LIMITKV_ARGS:+ LIMITKV_ARGS=\"$LIMITKV_ARGS\"} $CMDLINE\`"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- limitkv: git $limitkv_rev (target/release/limitkv)"
  echo "- redis: $(redis-server --version)"
  echo "- $(redis-benchmark --version)"
  echo "- machine: nproc $(nproc), ${cpu_model:-unknown CPU}"
  echo "- CL.THROTTLE on redis: $REDIS_THROTTLE_DESC"
  echo "- fairness: limitkv, redis-server and redis-benchmark all share the same $(nproc) cores;" \
    "the servers run one at a time (the other idles), and redis-benchmark itself takes a core."
  echo
  echo "| case | limitkv ops/s | redis ops/s | ratio | limitkv p50/p99 ms | redis p50/p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  local row name lk_rps lk_p50 lk_p99 rd_rps rd_p50 rd_p99 ratio
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name lk_rps lk_p50 lk_p99 rd_rps rd_p50 rd_p99 <<<"$row"
    ratio=$(awk -v a="$lk_rps" -v b="$rd_rps" \
      'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s |\n' \
      "$name" "${lk_rps/-/0}" "${rd_rps/-/0}" "$ratio" "$lk_p50" "$lk_p99" "$rd_p50" "$rd_p99"
  done
  echo
  echo "ratio = limitkv ops/s / redis ops/s (above 1: limitkv is faster)."
  if [[ $RUN_THROTTLE == 1 ]]; then
    echo "CL.THROTTLE rows: limitkv runs \`CL.THROTTLE user:__rand_int__ ${THROTTLE_ARGS[*]}\`," \
      "redis runs \`${REDIS_THROTTLE[*]}\`, both with -r $KEYSPACE."
  fi
  [[ -n $THROTTLE_NOTE ]] && echo "$THROTTLE_NOTE"
  if ((${#POLICY_ROWS[@]} > 0)); then
    echo
    echo "## Policies: one LIMIT.CHECK of 4 rules vs the same 4 decisions as 4 GCRA calls on redis"
    echo
    echo "| case | limitkv decisions/s | redis decisions/s | ratio | limitkv p50/p99 ms | redis p50/p99 ms (sum of 4 calls) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for row in "${POLICY_ROWS[@]}"; do
      IFS='|' read -r name lk_rps lk_p50 lk_p99 rd_rps rd_p50 rd_p99 <<<"$row"
      ratio=$(awk -v a="$lk_rps" -v b="$rd_rps" \
        'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
      printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s |\n' \
        "$name" "${lk_rps/-/0}" "${rd_rps/-/0}" "$ratio" "$lk_p50" "$lk_p99" "$rd_p50" "$rd_p99"
    done
    echo
    echo "limitkv: \`POLICY.SET bench ${POLICY_DEF[*]}\` then \`${POLICY_CHECK[*]}\`;" \
      "redis: \`EVALSHA <scripts/gcra.lua> 1 <key> <max_burst> <count> <period_s> <quantity>\` for" \
      "each of: ${POLICY_REDIS_CALLS[*]/#/; }, benchmarked separately; redis decisions/s = 1 / sum(1 / calls/s)."
    echo "Target (issue 4): a ratio of at least 3."
  fi
  [[ -n $POLICY_NOTE ]] && echo "$POLICY_NOTE"
  if ((${#FAMILY_ROWS[@]} > 0)); then
    echo
    echo "## Native families on limitkv (c=$CLIENTS, P=$PIPELINE, r=$KEYSPACE)"
    echo
    echo "| command | ops/s | p50/p99 ms | CL.THROTTLE ops/s (interleaved) | throughput ratio | server CPU µs/req | CL.THROTTLE CPU µs/req | cost ratio |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local f label rps p50 p99 base cpu bcpu
    for f in "${FAMILY_ROWS[@]}"; do
      IFS='|' read -r label rps p50 p99 base cpu bcpu <<<"$f"
      printf '| %s | %.0f | %s / %s | %.0f | %s | %s | %s | %s |\n' "$label" "${rps/-/0}" "$p50" "$p99" "${base/-/0}" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')" \
        "$cpu" "$bcpu" \
        "$(awk -v a="$cpu" -v b="$bcpu" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')"
    done
    echo
    echo "Target (issue 3): every family's TAKE costs at most 1.5x a CL.THROTTLE: a cost ratio (server CPU per request," \
      "median of the runs) of at most 1.5, or a throughput ratio of at least 0.67 (which also counts redis-benchmark" \
      "parsing the longer replies on the same cores)."
  fi
  if ((${#SCRIPT_ROWS[@]} > 0)); then
    echo
    echo "## Rate-limit libraries' Lua scripts via EVALSHA (c=$CLIENTS, P=$PIPELINE, r=$KEYSPACE)"
    echo
    echo "| script (tests/compat/scripts) | limitkv ops/s | redis ops/s | ratio | limitkv p50/p99 ms | redis p50/p99 ms |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for row in "${SCRIPT_ROWS[@]}"; do
      IFS='|' read -r name lk_rps lk_p50 lk_p99 rd_rps rd_p50 rd_p99 <<<"$row"
      ratio=$(awk -v a="$lk_rps" -v b="$rd_rps" \
        'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
      printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s |\n' \
        "$name" "${lk_rps/-/0}" "${rd_rps/-/0}" "$ratio" "$lk_p50" "$lk_p99" "$rd_p50" "$rd_p99"
    done
    echo
    echo "Targets (issue 6): at least 3x redis-server on the libraries' scripts; the unknown script at least 1/1.5 of redis-server."
  fi
  [[ -n $SCRIPT_NOTE ]] && echo "$SCRIPT_NOTE"
  if ((${#AOF_ROWS[@]} > 0)); then
    echo
    echo "## With the append-only file (both servers: appendonly yes, same appendfsync)"
    echo
    echo "| case | limitkv ops/s | redis ops/s | ratio | limitkv p50/p99 ms | redis p50/p99 ms |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for row in "${AOF_ROWS[@]}"; do
      IFS='|' read -r name lk_rps lk_p50 lk_p99 rd_rps rd_p50 rd_p99 <<<"$row"
      ratio=$(awk -v a="$lk_rps" -v b="$rd_rps" \
        'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
      printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s |\n' \
        "$name" "${lk_rps/-/0}" "${rd_rps/-/0}" "$ratio" "$lk_p50" "$lk_p99" "$rd_p50" "$rd_p99"
    done
    echo
    echo "Targets (issue 5): limitkv everysec within 10% of its in-memory rows above; limitkv always at least redis always."
  fi
  local w
  for w in "${WARNINGS[@]+"${WARNINGS[@]}"}"; do
    echo "warning: $w"
  done
  echo "Raw CSVs: ${OUT#"$ROOT"/}/ ($((SECONDS - START_SECONDS)) s including the build)."
}

report | tee "$OUT/report.md"
