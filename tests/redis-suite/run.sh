#!/usr/bin/env bash
# Redis's own test suite (the tcl `runtest` of a Redis source tree) against limitkv. A measuring
# tool: it fetches nothing, never modifies the given tree, and exits 0 whatever the results (2 on
# a usage error). See docs/compat.md, "Redis's own test suite".
#
#   tests/redis-suite/run.sh REDIS_SRC [--shared] [--bin path/to/limitkv] [--timeout SEC]
#                            [--logdir DIR] [unit ...]
#
#   REDIS_SRC      a Redis 7.0.15 source tree (its runtest, tests/, tests/helpers)
#   unit           a test unit under tests/unit, e.g. `protocol` or `type/list` (`incr` also finds
#                  type/incr); default: the list in $default_units below
#   --shared       run every unit against ONE limitkv, started once, in order (to see state left
#                  by one unit break the next); the runner itself still starts afresh per unit
#   --bin PATH     limitkv binary (default target/release/limitkv, else target/debug/limitkv)
#   --timeout SEC  time limit of one unit (default 300); a unit over it counts as `timeout`
#   --logdir DIR   keep the runner's and the server's output per unit in DIR
#
# Each unit runs in a scratch copy of runtest + tests/ whose src/redis-cli, src/redis-server and
# src/redis-benchmark are symlinks to the installed Debian binaries, as
#   ./runtest --host 127.0.0.1 --port P --baseport B --single unit/NAME --ignore-encoding
#             --durable --clients 1 --tags "-needs:debug -needs:repl ..."
# against a fresh limitkv on a free loopback port (stopped afterwards), or the shared one.
# Counts come from the runner's [ok] / [err] / [exception] / [ignore] / [skip] lines. An
# [ignore] line for a whole `external:skip` block counts once, whatever the number of tests in it.
# A unit ends as: ok (the runner finished it), exception (the runner aborted; counted as one
# failure), timeout (killed after SEC; one failure), aborted (the runner exited without finishing
# it; one failure); `+server-died` is added when limitkv was gone afterwards.
# Output: one line per unit as it ends, the failures, a per-unit table, and last
#   redis-suite: N passed, N failed, N ignored, N skipped, N of M units unfinished
set -uo pipefail

default_units="protocol keyspace expire incr type/string type/hash type/list type/set type/zset
multi scripting functions pubsub pubsubshard info-command scan introspection introspection-2
auth acl"
# Tags of tests that need what limitkv does not have (DEBUG, replicas, SAVE, maxmemory, ...).
deny_tags="-needs:debug -needs:repl -needs:save -needs:config-maxmemory -needs:reset"
deny_tags+=" -needs:pfdebug -needs:latency -needs:config-resetstat -needs:local-process"

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() {
    sed -n '6,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    [ $# -gt 0 ] && echo "run.sh: $*" >&2
    exit 2
}

src="" shared=0 bin="" unit_timeout=300 logdir="" units=()
while [ $# -gt 0 ]; do
    case "$1" in
        --shared) shared=1 ;;
        --bin) [ $# -ge 2 ] || usage "--bin needs a path"; bin="$2"; shift ;;
        --timeout)
            [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage "--timeout needs seconds"
            unit_timeout="$2"; shift ;;
        --logdir) [ $# -ge 2 ] || usage "--logdir needs a directory"; logdir="$2"; shift ;;
        -h|--help) usage ;;
        -*) usage "unknown option $1" ;;
        *) if [ -z "$src" ]; then src="$1"; else units+=("$1"); fi ;;
    esac
    shift
done
[ -n "$src" ] || usage "REDIS_SRC is required"
for f in runtest tests/test_helper.tcl tests/helpers; do
    [ -e "$src/$f" ] || usage "$src is not a Redis source tree (no $f)"
done
src="$(cd "$src" && pwd)"
if [ -z "$bin" ]; then
    for b in "$root/target/release/limitkv" "$root/target/debug/limitkv"; do
        [ -x "$b" ] && { bin="$b"; break; }
    done
    [ -n "$bin" ] || usage "no limitkv binary in target/; build it or give --bin"
fi
[ -x "$bin" ] || usage "$bin is not an executable"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in redis-cli redis-server redis-benchmark tclsh timeout; do
    command -v "$tool" >/dev/null || usage "$tool is not installed"
done
# shellcheck disable=SC2206 # the default list is split on whitespace on purpose
[ ${#units[@]} -gt 0 ] || units=($default_units)

# Unit names as the runner wants them (unit/NAME); `incr` lives in unit/type/ in Redis 7.
resolved=()
for u in "${units[@]}"; do
    u="${u#unit/}"; u="${u%.tcl}"
    if [ -f "$src/tests/unit/$u.tcl" ]; then resolved+=("unit/$u")
    elif [ -f "$src/tests/unit/type/$u.tcl" ]; then resolved+=("unit/type/$u")
    else usage "no unit $u in $src/tests/unit"
    fi
done

scratch="$(mktemp -d "${TMPDIR:-/tmp}/redis-suite.XXXXXX")"
server_pid=""
cleanup() {
    stop_server
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$src/runtest" "$scratch/runtest"
cp -R "$src/tests" "$scratch/tests"
mkdir -p "$scratch/src" "$scratch/tests/tmp" "$scratch/srv" "$scratch/logs"
for tool in redis-cli redis-server redis-benchmark; do
    ln -s "$(command -v "$tool")" "$scratch/src/$tool"
done
if [ -n "$logdir" ]; then mkdir -p "$logdir" || usage "cannot create $logdir"; else logdir="$scratch/logs"; fi
logdir="$(cd "$logdir" && pwd)"

# A free loopback port that nothing else can take first (see tests/free_port.py).
free_port() {
    python3 "$root/tests/free_port.py"
}

# start_server LOG: a limitkv on a free loopback port; sets server_pid and port.
start_server() {
    local log="$1" i
    port="$(free_port)"
    (cd "$scratch/srv" && exec "$bin" --port "$port" --bind 127.0.0.1 --dir "$scratch/srv") \
        >>"$log" 2>&1 &
    server_pid=$!
    for i in $(seq 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "(limitkv did not answer PING on port $port; see above)" >>"$log"
    stop_server
    return 1
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    local i
    if kill "$server_pid" 2>/dev/null; then
        for i in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null
    fi
    wait "$server_pid" 2>/dev/null
    server_pid=""
}

strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

total_pass=0 total_fail=0 total_ign=0 total_skip=0 unfinished=0
table=() failures="$scratch/failures"
: >"$failures"

# run_unit UNIT: one runner invocation against $port; appends to the table and the failures.
run_unit() {
    local unit="$1" name="${1#unit/}" log rc status pass fail ign skip start elapsed last base
    log="$logdir/${name//\//-}.log"
    start=$(date +%s)
    # The runner listens for its test client on the first port of [baseport-32, baseport) that
    # its own check finds free; that check misses a port another run holds on 127.0.0.1, so two
    # runs at once would collide on the fixed default (21079). Start the range at a free port.
    base=$(( $(free_port) + 32 ))
    (cd "$scratch" && exec timeout -k 10 "$unit_timeout" ./runtest --host 127.0.0.1 \
        --port "$port" --baseport "$base" --single "$unit" --ignore-encoding --durable \
        --clients 1 --tags "$deny_tags") </dev/null 2>&1 | strip_ansi >"$log"
    rc=${PIPESTATUS[0]}
    elapsed=$(( $(date +%s) - start ))
    pass=$(grep -c '^\[ok\]: ' "$log")
    fail=$(grep -c '^\[err\]: ' "$log")
    ign=$(grep -c '^\[ignore\]: ' "$log")
    skip=$(grep -c '^\[skip\]: ' "$log")
    # A test's failure reads "[err]: NAME in tests/unit/X.tcl"; an error outside any test (the
    # rest of its start_server block is then skipped) carries the error text instead, with its
    # first 10 characters cut off by the runner.
    grep '^\[err\]: ' "$log" | sed -e 's/^\[err\]: //' | while IFS= read -r line; do
        case "$line" in
            *" in tests/$unit.tcl") echo "$name: ${line% in tests/"$unit".tcl}" ;;
            *) echo "$name: [block aborted, rest of its start_server block not run] $line" ;;
        esac
    done >>"$failures"
    last="$(grep -E '^\[(ok|err)\]: ' "$log" | tail -n 1 | sed -E 's/^\[(ok|err)\]: //')"
    if grep -qE "^\[[0-9]+/[0-9]+ done\]: $unit " "$log"; then
        status=ok
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status=timeout
        echo "$name: [timeout after ${unit_timeout} s; last finished test: ${last:-none}]" >>"$failures"
        # Who was the server busy with? (the runner prints no "test started" line)
        { echo "--- CLIENT LIST at the timeout"
          timeout 5 redis-cli -h 127.0.0.1 -p "$port" client list 2>&1; } >>"$log"
    elif grep -q '^\[exception\]: ' "$log"; then
        status=exception
        echo "$name: [exception] $(grep -m1 '^\[exception\]: ' "$log" | cut -c14-)" >>"$failures"
    else
        status=aborted
        echo "$name: [runner exited $rc without finishing the unit; last finished test: ${last:-none}]" >>"$failures"
    fi
    [ "$status" = ok ] || { fail=$((fail + 1)); unfinished=$((unfinished + 1)); }
    if ! kill -0 "$server_pid" 2>/dev/null; then status+="+server-died"; fi
    total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
    total_ign=$((total_ign + ign)); total_skip=$((total_skip + skip))
    table+=("$(printf '%-18s %6s %6s %7s %7s  %s (%s s)' "$name" "$pass" "$fail" "$ign" "$skip" \
        "$status" "$elapsed")")
    printf '%s: %s passed, %s failed, %s ignored, %s skipped: %s (%s s)\n' \
        "$unit" "$pass" "$fail" "$ign" "$skip" "$status" "$elapsed"
}

# A unit that could not run at all (no server): one failure.
no_server_unit() {
    local name="${1#unit/}"
    echo "$name: [limitkv did not start / was not running]" >>"$failures"
    total_fail=$((total_fail + 1)); unfinished=$((unfinished + 1))
    table+=("$(printf '%-18s %6s %6s %7s %7s  %s' "$name" 0 1 0 0 no-server)")
    echo "$1: no-server"
}

mode="one fresh server per unit"
[ "$shared" -eq 1 ] && mode="one shared server"
echo "redis-suite: $(basename "$src") runner, $bin, $mode, ${#resolved[@]} units, logs in $logdir"
if [ "$shared" -eq 1 ]; then
    if start_server "$logdir/limitkv-shared.log"; then
        for unit in "${resolved[@]}"; do
            if kill -0 "$server_pid" 2>/dev/null; then run_unit "$unit"; else no_server_unit "$unit"; fi
        done
    else
        for unit in "${resolved[@]}"; do no_server_unit "$unit"; done
    fi
    stop_server
else
    for unit in "${resolved[@]}"; do
        name="${unit#unit/}"; slog="$logdir/limitkv-${name//\//-}.log"
        if start_server "$slog"; then run_unit "$unit"; else no_server_unit "$unit"; fi
        stop_server
    done
fi

echo
echo "failures:"
if [ -s "$failures" ]; then sed 's/^/  /' "$failures"; else echo "  none"; fi
echo
printf '%-18s %6s %6s %7s %7s  %s\n' unit passed failed ignored skipped status
printf '%s\n' "${table[@]}"
echo "redis-suite: $total_pass passed, $total_fail failed, $total_ign ignored, $total_skip skipped, $unfinished of ${#resolved[@]} units unfinished"
exit 0
