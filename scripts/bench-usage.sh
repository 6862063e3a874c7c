#!/usr/bin/env bash
# The usage history's cost on the hot path: one release binary run by scripts/bench-ab.sh twice
# per round, with `--usage-history no` (the feed off: one relaxed load per decision) and with
# the default `--usage-history yes` (every LIMIT.CHECK pushes a sample into its thread's stripe;
# random identities among 100,000 keep the top-K sketches evicting):
#
#   scripts/bench-usage.sh [BIN]            (default target/release/limitkv)
#   REPS=5 N=300000 scripts/bench-usage.sh
#
# CL.THROTTLE, GCRA and RATE.TAKE do not record history (they are not policy decisions); they
# are the noise reference next to redis-server. Prints bench-ab.sh's medians and ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/limitkv}")
DIR=$(mktemp -d /tmp/bench-usage.XXXX)
printf '#!/bin/sh\nexec %s --usage-history no "$@"\n' "$BIN" > "$DIR/history-off"
printf '#!/bin/sh\nexec %s --usage-history yes "$@"\n' "$BIN" > "$DIR/history-on"
chmod +x "$DIR/history-off" "$DIR/history-on"
"$ROOT/scripts/bench-ab.sh" "$DIR/history-off" "$DIR/history-on"
