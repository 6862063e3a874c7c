#!/usr/bin/env bash
# Starts, stops and restarts one server (limitkv or redis-server) for the compatibility suite.
# The state of a server lives in its own directory, so a test program can restart the server it
# talks to (the restart scenario) with one command and keep its client objects alive:
#
#   server.sh start   STATE_DIR PORT COMMAND [ARGS...]   # start COMMAND ARGS... and wait for PING
#   server.sh stop    STATE_DIR                          # SIGTERM, wait until the process is gone
#   server.sh restart STATE_DIR                          # stop, then start the same command again
#
# COMMAND is run as is with `--port PORT --bind 127.0.0.1` appended, its output goes to
# STATE_DIR/server.log and its working directory is STATE_DIR. stdin/stdout are detached, so a
# caller that captures this script's output does not wait for the server to exit.
set -euo pipefail

die() {
  echo "server.sh: $*" >&2
  exit 1
}

# Sends PING on a fresh connection and succeeds on +PONG.
ping_ok() {
  local port=$1 line
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  [[ $line == "+PONG"* ]]
}

start() {
  local dir=$1
  local port
  port=$(cat "$dir/port")
  mapfile -d '' -t cmd <"$dir/cmd"
  (cd "$dir" && exec "${cmd[@]}" --port "$port" --bind 127.0.0.1 </dev/null >>"$dir/server.log" 2>&1) &
  echo $! >"$dir/pid"
  local pid=$!
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || die "${cmd[0]} exited during startup; log: $(tail -5 "$dir/server.log")"
    ping_ok "$port" && return 0
    sleep 0.1
  done
  die "${cmd[0]} did not answer PING on port $port within 30 s"
}

stop() {
  local dir=$1 pid
  [[ -f $dir/pid ]] || return 0
  pid=$(cat "$dir/pid")
  rm -f "$dir/pid"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "server.sh: pid $pid ignored SIGTERM for 10 s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

action=${1:-}
dir=${2:-}
[[ -n $action && -n $dir ]] || die "usage: server.sh start|stop|restart STATE_DIR [PORT COMMAND ARGS...]"
case $action in
  start)
    [[ $# -ge 4 ]] || die "usage: server.sh start STATE_DIR PORT COMMAND [ARGS...]"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    echo "$3" >"$dir/port"
    printf '%s\0' "${@:4}" >"$dir/cmd"
    start "$dir"
    ;;
  stop) stop "$dir" ;;
  restart)
    stop "$dir"
    start "$dir"
    ;;
  *) die "unknown action $action" ;;
esac
