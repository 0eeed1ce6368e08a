#!/usr/bin/env bash
# What a cluster rate limit adds per request (issue 19): the same wrk command against strait
# answering a fixed `respond` with no limit, with a local limit (`scope: local`, counted in
# process), and with a cluster limit (`scope: cluster`: one EVALSHA of the GCRA script per
# request to a redis-server on loopback). Every limit is set far above what wrk sends, so
# every request is counted and none is refused: the figures are the cost of counting.
#
#   benches/cluster_rate.sh          STRAIT_BIN [target/release/strait]  DURATION [5]  CONNS [8]
#
# Loopback only; every run is bounded by DURATION; every process started here is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
STRAIT_BIN=${STRAIT_BIN:-target/release/strait}
DURATION=${DURATION:-5}
CONNS=${CONNS:-8}
PORT=18291
REDIS_PORT=18292
command -v wrk >/dev/null || { echo "cluster_rate.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "cluster_rate.sh needs redis-server (apt-get install redis-server)" >&2; exit 1; }
[ -x "$STRAIT_BIN" ] || { echo "no strait binary at $STRAIT_BIN (cargo build --release)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/strait-cluster-bench.XXXXXX)
PID=
REDIS_PID=
cleanup() {
  [ -z "$PID" ] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  [ -z "$REDIS_PID" ] || { kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }
  rm -rf "$TMP"
}
trap cleanup EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 1 50); do
  [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] && break
  sleep 0.1
done

config() { # $1: the domain's rate_limit, if any
  cat >"$TMP/strait.yaml" <<EOF
server: { threads: 1 }
listeners: [{ addr: 127.0.0.1:$PORT }]
logging: { level: warn }
cluster: { nodes: 2, redis: { url: "redis://127.0.0.1:$REDIS_PORT/0", timeout: 20ms } }
domains:
  - hosts: ["*"]
    respond: { status: 200, body: "ok\n" }
$1
EOF
}

run() { # $1: label, $2: domain keys
  config "$2"
  "$STRAIT_BIN" -c "$TMP/strait.yaml" >"$TMP/$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "$1: strait did not answer 200 (got $code)" >&2; cat "$TMP/$1.log" >&2; exit 1; }
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/" >"$TMP/$1.wrk"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/$1.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$TMP/$1.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$TMP/$1.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/$1.wrk")
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, strait with 1 worker, redis-server on loopback"
echo
echo '| strait | req/s | p50 | p99 | non-2xx |'
echo '|---|---:|---:|---:|---:|'
run none ""
run "local limit" "    rate_limit: { requests: 100000000, per: 1s, scope: local }"
run "cluster limit (Redis)" "    rate_limit: { requests: 100000000, per: 1s, scope: cluster }"
echo
