#!/usr/bin/env bash
# The compatibility suite: real client and rate-limit libraries, installed from PyPI and npm at
# pinned versions, run against a freshly started server. See docs/compat.md.
#
#   tests/compat/run.sh [path/to/limitkv]      # against limitkv (built with cargo if missing)
#   tests/compat/run.sh --against-redis        # against a local redis-server, for reference
#   tests/compat/run.sh --against-redis --capture
#                                              # also rewrite tests/compat/scripts/ from MONITOR
#
# Programs (each prints PASS/FAIL/SKIPPED lines and a `counts: P F S` line):
#   smoke.py, smoke.mjs        redis-py, node-redis, ioredis basics (limitkv only: they use
#                              limitkv's own commands)
#   rlflex.mjs                 rate-limiter-flexible RateLimiterRedis (ioredis, node-redis)
#   express.mjs                express-rate-limit + rate-limit-redis behind an express app
#   upstash.mjs                @upstash/redis and @upstash/ratelimit over the Upstash REST API on
#                              limitkv's --http-port (skipped against redis-server)
#   limits_suite.py            Python limits: fixed, moving, sliding window counter
#   script_diff.mjs, script_diff.py
#                              each recorded script run by the server (EVALSHA) against its
#                              client-side emulation: same replies, same resulting keys
#   restart.mjs, restart_limits.py
#                              a second server with its append-only file on, restarted in the
#                              middle of counting
#   tls.py, tls.mjs            redis-py (ssl=True, rediss://), ioredis (tls option) and
#                              node-redis (rediss://) against a third server with a TLS port,
#                              certificates made with the openssl CLI (skipped without it)
#   cluster.py, cluster.mjs    redis-py RedisCluster, ioredis Cluster and node-redis
#                              createCluster (with rate-limit-redis) against three limitkv
#                              nodes in cluster mode, topology and policy pushed by `limitkv
#                              cluster apply`; reservations settled through each client by
#                              their tagged ids (limitkv only; docs/cluster.md)
#   scripts check              tests/compat/scripts/ is consistent (and, against redis-server,
#                              holds every script the libraries sent, seen through MONITOR)
# Scenarios that need EVAL print `SKIPPED ...: needs EVAL` on a server without it (checked with
# COMMAND INFO eval) and run, failing on error, on a server with it. On a server without EVAL, and
# always against redis-server (or with COMPAT_EMULATE_SCRIPTS=1), the library programs run a
# second time with the scripts emulated on the client ("[emulated scripts]"): the same commands
# the scripts would call, so everything but scripting itself is checked now.
#
# The libraries are installed once per lockfile into COMPAT_CACHE (default
# ~/.cache/limitkv-compat): `npm ci` from package-lock.json, a venv from requirements.txt.
# Ends with `compat: N passed, N failed, N skipped`; exits 1 if anything failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

against=limitkv
capture=0
bin=
for arg in "$@"; do
  case $arg in
    --against-redis) against=redis ;;
    --capture) capture=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "unknown option $arg (try --help)" >&2
      exit 2
      ;;
    *) bin=$arg ;;
  esac
done
if [[ $capture == 1 && $against != redis ]]; then
  echo "--capture needs --against-redis (scripts are captured from redis-server's MONITOR)" >&2
  exit 2
fi

log() { echo "compat: $*" >&2; }

if [[ $against == limitkv ]]; then
  bin=${bin:-${CARGO_TARGET_DIR:-$root/target}/debug/limitkv}
  if [[ ! -x $bin ]]; then
    log "building limitkv"
    (cd "$root" && cargo build --quiet)
  fi
  server_cmd=("$bin" --loglevel warning)
  aof_server_cmd=("$bin" --loglevel warning --appendonly yes --appendfsync always)
  scripts_persist=1
else
  command -v redis-server >/dev/null || {
    echo "redis-server not found (apt-get install redis-server)" >&2
    exit 1
  }
  server_cmd=(redis-server --save '' --appendonly no)
  aof_server_cmd=(redis-server --save '' --appendonly yes --appendfsync always)
  scripts_persist=0
fi

work="$(mktemp -d)"
monitor_pid=
cleanup() {
  # shellcheck disable=SC2086
  [[ -n $monitor_pid ]] && kill $monitor_pid 2>/dev/null
  "$here/server.sh" stop "$work/main" || true
  "$here/server.sh" stop "$work/aof" || true
  "$here/server.sh" stop "$work/tls" || true
  for n in 1 2 3; do "$here/server.sh" stop "$work/cluster$n" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port that nothing else can take first (see tests/free_port.py).
free_port() {
  python3 "$root/tests/free_port.py"
}

# --- libraries, cached per lockfile -----------------------------------------------------------

cache=${COMPAT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/limitkv-compat}
mkdir -p "$cache"

have_node=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  key=$(cat "$here/package-lock.json" <(node --version) | sha256sum | cut -c1-16)
  node_dir=$cache/node-$key
  if [[ ! -d $node_dir/node_modules ]]; then
    log "npm ci (pinned in tests/compat/package-lock.json) into $node_dir"
    tmp=$(mktemp -d "$cache/node-tmp.XXXXXX")
    cp "$here/package.json" "$here/package-lock.json" "$tmp/"
    (cd "$tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
    rm -rf "$node_dir"
    mv "$tmp" "$node_dir"
  fi
  mkdir -p "$work/node"
  ln -s "$node_dir/node_modules" "$work/node/node_modules"
  cp "$here"/*.mjs "$here/package.json" "$work/node/"
  have_node=1
else
  log "node/npm not found: the Node programs are skipped"
fi

key=$(cat "$here/requirements.txt" <(python3 --version) | sha256sum | cut -c1-16)
venv=$cache/py-$key
if [[ ! -f $venv/.installed ]]; then
  log "pip install (pinned in tests/compat/requirements.txt) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  touch "$venv/.installed"
fi
py=$venv/bin/python

# --- servers ----------------------------------------------------------------------------------

port=$(free_port)
main_extra=()
http_port=
if [[ $against == limitkv ]]; then
  # The HTTP listener, for the Upstash REST API (upstash.mjs).
  http_port=$(free_port)
  main_extra=(--http-port "$http_port")
fi
"$here/server.sh" start "$work/main" "$port" "${server_cmd[@]}" "${main_extra[@]+"${main_extra[@]}"}"
aof_port=$(free_port)
"$here/server.sh" start "$work/aof" "$aof_port" "${aof_server_cmd[@]}" --dir "$work/aof"

has_eval=$(COMPAT_PORT=$port "$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import harness; print("yes" if harness.server_has_eval() else "no")' "$here")
log "server: $against (${server_cmd[0]}) on 127.0.0.1:$port, EVAL: $has_eval"

if [[ $against == redis ]] && command -v redis-cli >/dev/null; then
  redis-cli -p "$port" monitor >"$work/monitor.log" 2>&1 &
  monitor_pid=$!
  redis-cli -p "$aof_port" monitor >"$work/monitor-aof.log" 2>&1 &
  monitor_pid="$monitor_pid $!"
fi

# --- programs ---------------------------------------------------------------------------------

passed=0
failed=0
skipped=0
failures=()

# Runs one program (label, then command) and adds its counts; a program that exits non-zero
# without a counts line counts as one failure.
run_program() {
  local label=$1
  shift
  local out=$work/$label.out rc
  echo "--- $label"
  set +e
  "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  local counts
  counts=$(grep -E '^counts: [0-9]+ [0-9]+ [0-9]+$' "$out" | tail -1 || true)
  if [[ -n $counts ]]; then
    read -r _ p f s <<<"$counts"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    ((f == 0)) || failures+=("$label: $(grep -c '^FAIL' "$out") failing scenario(s)")
  elif [[ $rc == 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$label: exited $rc")
  fi
}

export COMPAT_HOST=127.0.0.1 COMPAT_PORT=$port

if [[ $against == limitkv ]]; then
  run_program smoke.py "$py" "$here/smoke.py" "$port"
  ((have_node)) && run_program smoke.mjs node "$work/node/smoke.mjs" "$port"
fi
if ((have_node)); then
  run_program rlflex.mjs node "$work/node/rlflex.mjs"
  run_program express.mjs node "$work/node/express.mjs"
  # Skipped (every scenario) without an HTTP port, i.e. against redis-server.
  run_program upstash.mjs env COMPAT_HTTP_PORT="$http_port" node "$work/node/upstash.mjs"
fi
run_program limits_suite.py "$py" "$here/limits_suite.py"
((have_node)) && run_program script_diff.mjs env COMPAT_SCRIPTS_DIR="$here/scripts" node "$work/node/script_diff.mjs"
run_program script_diff.py "$py" "$here/script_diff.py"

restart_env=(COMPAT_PORT="$aof_port" COMPAT_RESTART="'$here/server.sh' restart '$work/aof'"
  COMPAT_SCRIPTS_PERSIST=$scripts_persist)
((have_node)) && run_program restart.mjs env "${restart_env[@]}" node "$work/node/restart.mjs"
run_program restart_limits.py env "${restart_env[@]}" "$py" "$here/restart_limits.py"

# TLS: a CA, a server certificate for 127.0.0.1/localhost and a client certificate, made here.
if command -v openssl >/dev/null; then
  pki=$work/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 2 -subj "/CN=limitkv compat CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    for name in server client; do
      openssl req "${ec[@]}" -keyout $name.key -out $name.csr -subj "/CN=$name"
      openssl x509 -req -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $name.crt \
        -days 2 -extfile $name.ext
    done
  ) >"$work/pki.log" 2>&1 || { cat "$work/pki.log" >&2; exit 1; }
  tls_port=$(free_port)
  tls_plain_port=$(free_port)
  "$here/server.sh" start "$work/tls" "$tls_plain_port" "${server_cmd[@]}" --tls-port "$tls_port" \
    --tls-cert-file "$pki/server.crt" --tls-key-file "$pki/server.key" \
    --tls-ca-cert-file "$pki/ca.crt" --tls-auth-clients optional
  tls_env=(COMPAT_PORT="$tls_plain_port" COMPAT_TLS_PORT="$tls_port" COMPAT_TLS_DIR="$pki"
    COMPAT_TLS_SERVER="$against")
  run_program tls.py env "${tls_env[@]}" "$py" "$here/tls.py"
  ((have_node)) && run_program tls.mjs env "${tls_env[@]}" node "$work/node/tls.mjs"
  "$here/server.sh" stop "$work/tls"
else
  log "openssl not found: the TLS programs are skipped"
  skipped=$((skipped + 1))
fi

# The same library scenarios with the scripts emulated on the client (emulate.mjs, emulate.py):
# on a server without EVAL they still exercise every command the scripts call, with the
# scripts' arguments; against redis-server they check the emulations themselves.
if [[ $has_eval == no || $against == redis || ${COMPAT_EMULATE_SCRIPTS:-} == 1 ]]; then
  if ((have_node)); then
    run_program rlflex.mjs-emulated env COMPAT_EMULATE_SCRIPTS=1 node "$work/node/rlflex.mjs"
    run_program express.mjs-emulated env COMPAT_EMULATE_SCRIPTS=1 node "$work/node/express.mjs"
    run_program restart.mjs-emulated env "${restart_env[@]}" COMPAT_EMULATE_SCRIPTS=1 node "$work/node/restart.mjs"
  fi
  run_program limits_suite.py-emulated env COMPAT_EMULATE_SCRIPTS=1 "$py" "$here/limits_suite.py"
  run_program restart_limits.py-emulated env "${restart_env[@]}" COMPAT_EMULATE_SCRIPTS=1 "$py" "$here/restart_limits.py"
fi

# Cluster mode: three nodes, the topology and a policy pushed by `limitkv cluster apply`, then
# the cluster clients of redis-py and ioredis (docs/cluster.md).
if [[ $against == limitkv ]]; then
  cluster_ports=()
  topology=$work/topology.toml
  printf 'epoch = 1\npolicy_version = 1\npolicies = ["free RATE 3/1m QUOTA 5/day"]\n' >"$topology"
  ranges=(0-5460 5461-10922 10923-16383)
  for n in 1 2 3; do
    p=$(free_port)
    cluster_ports+=("$p")
    mkdir -p "$work/cluster$n"
    "$here/server.sh" start "$work/cluster$n" "$p" "${server_cmd[@]}" --cluster-enabled yes --dir "$work/cluster$n"
    printf '\n[[node]]\naddress = "127.0.0.1:%s"\nslots = ["%s"]\n' "$p" "${ranges[$((n - 1))]}" >>"$topology"
  done
  run_program cluster-apply "$bin" cluster apply "$topology"
  run_program cluster.py "$py" "$here/cluster.py" "${cluster_ports[@]}"
  ((have_node)) && run_program cluster.mjs node "$work/node/cluster.mjs" "${cluster_ports[@]}"
  for n in 1 2 3; do "$here/server.sh" stop "$work/cluster$n"; done
fi

if [[ -n $monitor_pid ]]; then
  # shellcheck disable=SC2086
  kill $monitor_pid 2>/dev/null || true
  monitor_pid=
  mode=check
  [[ $capture == 1 ]] && mode=write
  run_program scripts "$py" "$here/capture_scripts.py" "$mode" "$here/scripts" "$work/monitor.log" "$work/monitor-aof.log"
else
  run_program scripts "$py" "$here/capture_scripts.py" verify "$here/scripts"
fi

echo
for f in "${failures[@]+"${failures[@]}"}"; do
  echo "failed: $f"
done
echo "compat: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
