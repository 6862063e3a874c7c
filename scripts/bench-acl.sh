#!/usr/bin/env bash
# The cost of ACL checks: CL.THROTTLE and LIMIT.CHECK through redis-benchmark as the default
# user (every permission: nothing is checked) and as a restricted user (`+@limiter` on its own
# key prefix: every command, key and derived policy key is checked), alternating, on one
# limitkv.
#
#   scripts/bench-acl.sh
#
# Environment: REQUESTS (default 200000), CLIENTS (50), PIPELINE (16), KEYSPACE (100000),
# REPEAT (runs per case and user, alternating; default 5). Prints a Markdown table of the
# median ops/s per case and the restricted/default ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-100000}
REPEAT=${REPEAT:-5}

cargo build --release --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/release/limitkv --port "$port" --loglevel warning &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  redis-cli -p "$port" PING >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ACL SETUSER app on '>pw' +@limiter '~app:*' '~limitkv:bench:*' >/dev/null
redis-cli -p "$port" POLICY.SET bench RATE 30/1m BURST 16 WINDOW 100/1m QUOTA 1000/day >/dev/null

run() { # [--user U -a P] command...
  redis-benchmark -p "$port" -n "$REQUESTS" -c "$CLIENTS" -P "$PIPELINE" -r "$KEYSPACE" \
    --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| case | default user ops/s | restricted user ops/s | ratio |"
echo "|---|---|---|---|"
for case in throttle check; do
  if [ $case = throttle ]; then
    cmd=(CL.THROTTLE app:__rand_int__ 15 30 60)
  else
    cmd=(LIMIT.CHECK bench app:__rand_int__)
  fi
  : >/tmp/bench-acl-default
  : >/tmp/bench-acl-app
  for _ in $(seq "$REPEAT"); do
    run "${cmd[@]}" >>/tmp/bench-acl-default
    run --user app -a pw "${cmd[@]}" >>/tmp/bench-acl-app
  done
  d=$(median </tmp/bench-acl-default)
  a=$(median </tmp/bench-acl-app)
  ratio=$(python3 -c "print(f'{$a/$d:.3f}')")
  echo "| ${cmd[*]} -P $PIPELINE | $d | $a | $ratio |"
done
