#!/usr/bin/env bash
# Instructions per proxied request (valgrind --tool=callgrind), the deterministic figure the
# optimisation notes in benches/README.md quote. See "Where the time goes" there.
#
#   benches/callgrind.sh                  strait, plain proxy, /small
#   PROFILE=cache benches/callgrind.sh    strait serving cache hits
#   PROFILE=observe benches/callgrind.sh  access log, metrics and health checks on
#   TARGET=pingora benches/callgrind.sh   bare Pingora (benches/baseline/bare_pingora.rs)
#   TARGET=nginx benches/callgrind.sh     nginx as the same proxy (PROFILE=cache: proxy_cache)
#
# Environment: STRAIT_BIN [target/release/strait],
# PINGORA_BIN [target/release/examples/bare_pingora], REQUESTS [4000], CONNS [8],
# KEEP [unset: the callgrind output is deleted; a directory: it is kept there].
#
# The origin is one nginx worker on two loopback ports. The target warms up with 800 requests,
# then instrumentation is switched on for REQUESTS GETs of /small over CONNS keep-alive
# connections and off again. Only user-space instructions are counted (the kernel's TCP work
# is not), so this is the figure for code changes, not for the whole cost of a request.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=${PROFILE:-plain}
TARGET=${TARGET:-strait}
REQUESTS=${REQUESTS:-4000}
CONNS=${CONNS:-8}
ORIGIN_A=18181
ORIGIN_B=18182
PORT=18190
export PATH=$PATH:/usr/sbin:/sbin

for tool in valgrind callgrind_control nginx python3 curl; do
  command -v "$tool" >/dev/null || {
    echo "callgrind.sh needs $tool (apt-get install valgrind nginx-light python3 curl)" >&2
    exit 1
  }
done

TMP=$(mktemp -d /tmp/strait-callgrind.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp "$TMP"/callgrind.out.* "$KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/www"
cat >"$TMP/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/origin.pid;
error_log $TMP/origin-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$ORIGIN_A;
    listen 127.0.0.1:$ORIGIN_B;
    root $TMP/www;
    add_header Cache-Control "public, max-age=3600";
    location = /small { default_type application/json; return 200 '{"ok":true,"from":"origin","pad":"0123456789abcdef0123456789"}'; }
  }
}
EOF
nginx -p "$TMP" -c "$TMP/origin.conf" -e "$TMP/origin-error.log" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)

VALGRIND=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$TMP/callgrind.out.%p")
case $TARGET in
strait)
  BIN=${STRAIT_BIN:-$ROOT/target/release/strait}
  [ -x "$BIN" ] || cargo build --release --quiet --bin strait
  extra=""
  [ "$PROFILE" = cache ] && extra="cache: { max_bytes: 64MiB, max_entries: 10000 }"
  domain_extra=""
  [ "$PROFILE" = cache ] && domain_extra="    cache: true"
  if [ "$PROFILE" = observe ]; then
    extra="probe: { addr: 127.0.0.1:18191 }
admin: { addr: 127.0.0.1:18192 }"
    domain_extra="    health_check: { type: http, path: /small, interval: 1s, timeout: 1s }"
  fi
  log=""
  [ "$PROFILE" = observe ] && log="  access_log: $TMP/access.log"
  cat >"$TMP/strait.yaml" <<EOF
server:
  threads: 1
  pid_file: $TMP/strait.pid
  upgrade_sock: $TMP/strait-upgrade.sock
listeners:
  - addr: 127.0.0.1:$PORT
logging:
  level: warn
$log
$extra
domains:
  - hosts: ["*"]
    backends:
      - { addr: "http://127.0.0.1:$ORIGIN_A" }
      - { addr: "http://127.0.0.1:$ORIGIN_B" }
$domain_extra
EOF
  "${VALGRIND[@]}" "$BIN" -c "$TMP/strait.yaml" >"$TMP/target.log" 2>&1 &
  ;;
pingora)
  BIN=${PINGORA_BIN:-$ROOT/target/release/examples/bare_pingora}
  [ -x "$BIN" ] || cargo build --release --quiet --example bare_pingora
  "${VALGRIND[@]}" "$BIN" "127.0.0.1:$PORT" 1 "127.0.0.1:$ORIGIN_A" "127.0.0.1:$ORIGIN_B" >"$TMP/target.log" 2>&1 &
  ;;
nginx)
  cache_path="" cache=""
  if [ "$PROFILE" = cache ]; then
    cache_path="proxy_cache_path $TMP/cache keys_zone=bench:10m use_temp_path=off;"
    cache="proxy_cache bench; proxy_cache_valid 200 1h;"
  fi
  cat >"$TMP/nginx.conf" <<EOF
master_process off;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  $cache_path
  upstream origin { server 127.0.0.1:$ORIGIN_A; server 127.0.0.1:$ORIGIN_B; keepalive 64; }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Request-Id \$request_id;
      $cache
    }
  }
}
EOF
  "${VALGRIND[@]}" nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" >"$TMP/target.log" 2>&1 &
  ;;
*)
  echo "TARGET is strait, pingora or nginx" >&2
  exit 1
  ;;
esac
VP=$!
PIDS+=("$VP")

up=0
for _ in $(seq 1 300); do
  if curl -fs -o /dev/null -m 2 -H 'Host: bench.local' "http://127.0.0.1:$PORT/small"; then
    up=1
    break
  fi
  kill -0 "$VP" 2>/dev/null || break
  sleep 0.2
done
[ "$up" = 1 ] || {
  echo "the target did not answer; its log:" >&2
  tail -20 "$TMP/target.log" >&2
  exit 1
}

client() { # requests
  python3 - "$1" "$CONNS" "$PORT" <<'EOF'
import http.client, sys, threading
n, k, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bad = []
def run(m):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(m):
        c.request("GET", "/small", headers={"Host": "bench.local", "User-Agent": "callgrind"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            bad.append(r.status)
    c.close()
threads = [threading.Thread(target=run, args=(n // k,)) for _ in range(k)]
for t in threads: t.start()
for t in threads: t.join()
if bad:
    sys.exit(f"{len(bad)} answers were not 200: {sorted(set(bad))}")
EOF
}

client 800
callgrind_control -i on "$VP" >/dev/null 2>&1
client "$REQUESTS"
callgrind_control -d "$VP" >/dev/null 2>&1
callgrind_control -i off "$VP" >/dev/null 2>&1
total=$(cat "$TMP"/callgrind.out.*.1 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }')
[ "$total" -gt 0 ] || {
  echo "no callgrind dump found" >&2
  exit 1
}
echo "$TARGET $PROFILE: $((total / REQUESTS)) instructions per request ($total over $REQUESTS requests, $CONNS connections)"
