#!/usr/bin/env bash
# Runs the real client libraries (redis-py, node-redis, ioredis) in their default settings
# against a freshly started limitkv binary. Installs the libraries from PyPI and npm into
# throwaway locations. Usage: tests/compat/run.sh [path/to/limitkv]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/target/debug/limitkv}"
[ -x "$bin" ] || (cd "$root" && cargo build --quiet)

work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --port "$port" --bind 127.0.0.1 --loglevel warning &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
  sleep 0.1
done

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet redis
"$work/venv/bin/python" "$here/smoke.py" "$port"

if command -v npm >/dev/null 2>&1; then
  cp "$here/smoke.mjs" "$work/"
  (cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund redis ioredis >/dev/null)
  node "$work/smoke.mjs" "$port"
else
  echo "npm not found: node-redis / ioredis smoke skipped"
fi
