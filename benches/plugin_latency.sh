#!/usr/bin/env bash
# What a plugin adds per request (issue 17): the same wrk command against strait answering a
# fixed `respond` with no plugin, with the Python auth example (examples/plugins/auth.py) as a
# `command` plugin over its Unix socket, and with that plugin behind the decision cache
# (`cache: { key: header:Authorization }`, so one call per token per ttl).
#
#   benches/plugin_latency.sh          STRAIT_BIN [target/release/strait]  DURATION [5]  CONNS [8]
#
# Loopback only; every run is bounded by DURATION; every process started here is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STRAIT_BIN=${STRAIT_BIN:-target/release/strait}
DURATION=${DURATION:-5}
CONNS=${CONNS:-8}
PORT=18290
command -v wrk >/dev/null || { echo "plugin_latency.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -x "$STRAIT_BIN" ] || { echo "no strait binary at $STRAIT_BIN (cargo build --release)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/strait-plugin-bench.XXXXXX)
PID=
cleanup() {
  [ -z "$PID" ] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$TMP"
}
trap cleanup EXIT

config() { # $1: the domain's plugin keys
  cat >"$TMP/strait.yaml" <<EOF
server: { threads: 1 }
listeners: [{ addr: 127.0.0.1:$PORT }]
logging: { level: warn }
plugins:
  auth: { command: [python3, "$ROOT/examples/plugins/auth.py"], timeout: 2s }
  cached: { command: [python3, "$ROOT/examples/plugins/auth.py"], timeout: 2s, cache: { key: "header:Authorization", ttl: 60s } }
domains:
  - hosts: ["*"]
    respond: { status: 200, body: "ok\n" }
$1
EOF
}

run() { # $1: label, $2: domain plugin keys
  config "$2"
  "$STRAIT_BIN" -c "$TMP/strait.yaml" >"$TMP/$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$PORT/" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "$1: strait did not answer 200 (got $code)" >&2; cat "$TMP/$1.log" >&2; exit 1; }
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$PORT/" >"$TMP/$1.wrk"
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/$1.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$TMP/$1.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$TMP/$1.wrk")
  printf '| %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99"
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "wrk -t1 -c$CONNS -d${DURATION}s --latency -H 'Authorization: Bearer s3cret', strait with 1 worker"
echo
echo '| strait | req/s | p50 | p99 |'
echo '|---|---:|---:|---:|'
run none ""
run plugin "    plugins: [auth]"
run "plugin + decision cache" "    plugins: [cached]"
