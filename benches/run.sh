#!/usr/bin/env bash
# strait vs nginx vs HAProxy as round-robin reverse proxies, on loopback. See benches/README.md.
#
#   benches/run.sh              full run (5 profiles x 3 proxies x 3 rounds + 2 static profiles x 2, about 11 minutes)
#   QUICK=1 benches/run.sh      one 3 s round per profile (about 3.5 minutes)
#   PROFILES="plain cache" PROXIES="strait nginx" ROUNDS=5 benches/run.sh
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [8] seconds per wrk run  WARMUP [2] seconds per proxy and profile
#   PROFILES [plain plain16k observe cache c1000 static tls tcp idle10k]  PROXIES [strait nginx haproxy]
#            `static` is static4k + static1m: strait `serve` vs nginx `root` on a 4 KiB and
#            a 1 MiB file (HAProxy and bare Pingora serve no files and sit these out)
#            `tls` is tls_h1 + tls_h2 + tls_hs + tls_idle: the plain proxy terminating TLS (one
#            RSA 2048 certificate for all three), HTTP/1.1 keep-alive (wrk), HTTP/2 (h2load, 32
#            clients x 8 streams), a full handshake per request (16 `openssl s_time -new`) and
#            resident memory with 10 000 idle TLS keep-alive clients (as idle10k)
#            `idle10k`: resident memory with 10 000 idle keep-alive clients (benches/idle_conns.py)
#            `tcp` is tcp_ka + tcp_conn: the proxies as plain TCP relays (strait's `tcp` listener,
#            nginx `stream`, HAProxy `mode tcp`) in front of the origin, wrk through them with
#            keep-alive (tcp_ka) and with a new connection per request (tcp_conn)
#   BASELINE [plain] profiles that also run bare Pingora (benches/baseline/bare_pingora.rs),
#                    the floor under strait; "" for none
#   WORKERS [1] worker processes/threads of every proxy   CONNS [64] wrk connections
#   PROXY_CPUS [1] / LOAD_CPUS [0]  taskset lists for the proxies / for wrk and the origin
#                                   (PIN=0 disables pinning)
#   STRAIT_BIN [target/release/strait, built here with cargo build --release]
#   OUT [benches/results/<date>]  where raw.tsv, summary.md and the logs are kept
#
# Only loopback addresses are used; every wrk run is bounded by DURATION; every process
# started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1}
  DURATION=${DURATION:-3}
  WARMUP=${WARMUP:-1}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
PROFILES=${PROFILES:-plain plain16k observe cache c1000 static tls tcp idle10k}
expanded=""
for p in $PROFILES; do
  case $p in
  static) expanded="$expanded static4k static1m" ;;
  tls) expanded="$expanded tls_h1 tls_h2 tls_hs tls_idle" ;;
  tcp) expanded="$expanded tcp_ka tcp_conn" ;;
  *) expanded="$expanded $p" ;;
  esac
done
PROFILES=${expanded# }
PROXIES=${PROXIES:-strait nginx haproxy}
WORKERS=${WORKERS:-1}
CONNS=${CONNS:-64}
PIN=${PIN:-1}
PROXY_CPUS=${PROXY_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/benches/results/$STAMP}

ORIGIN_A=18081
ORIGIN_B=18082
ORIGIN_STATUS=18089
BASELINE=${BASELINE-plain}
declare -A PORT=([strait]=18100 [nginx]=18101 [haproxy]=18102 [pingora]=18103)
STRAIT_PROBE=18110
STRAIT_ADMIN=18111
NGINX_STATUS=18112
HAPROXY_STATS=18113
HOST_HEADER="bench.local"

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# --- tools ------------------------------------------------------------------------------------
need_install=()
command -v wrk >/dev/null || need_install+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_install+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_install+=(haproxy)
command -v taskset >/dev/null || need_install+=(util-linux)
command -v curl >/dev/null || need_install+=(curl)
command -v h2load >/dev/null || need_install+=(nghttp2-client)
# nginx's stream module (the tcp profiles) is a separate package on Debian.
case " $PROFILES " in *" tcp_"*)
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need_install+=(libnginx-mod-stream) ;;
esac
command -v openssl >/dev/null || need_install+=(openssl)
command -v python3 >/dev/null || need_install+=(python3)
if [ ${#need_install[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_install[*]}; install them (apt-get install ${need_install[*]}) or run as root"
  say "installing ${need_install[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_install[@]}" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_install[@]}" >/dev/null; }
fi
export PATH=$PATH:/usr/sbin:/sbin
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)

if [ -z "${STRAIT_BIN:-}" ]; then
  say "cargo build --release (strait and the bare Pingora baseline)"
  cargo build --release --quiet --bin strait --example bare_pingora
  STRAIT_BIN=$ROOT/target/release/strait
fi
BARE_BIN=${BARE_BIN:-$(dirname "$STRAIT_BIN")/examples/bare_pingora}
[ -x "$STRAIT_BIN" ] || die "no strait binary at $STRAIT_BIN"
[ -z "$BASELINE" ] || [ -x "$BARE_BIN" ] || die "no bare Pingora binary at $BARE_BIN (cargo build --release --example bare_pingora)"

# wrk -c1000 needs 1000 sockets in wrk and 2000+ in each proxy; idle10k 10 000 in the client
# and as many in the proxy (HAProxy asks for two descriptors per maxconn): root raises the hard
# limit too.
[ "$(id -u)" != 0 ] || ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || die "ulimit -n is $(ulimit -n); the c1000 profile needs at least 4096"
case " $PROFILES " in *" idle10k "* | *" tls_idle "*)
  [ "$(ulimit -n)" -ge 12000 ] || die "ulimit -n is $(ulimit -n); the idle10k and tls_idle profiles need at least 12000" ;;
esac

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  PIN_PROXY=(taskset -c "$PROXY_CPUS")
  PIN_LOAD=(taskset -c "$LOAD_CPUS")
else
  PIN_PROXY=()
  PIN_LOAD=()
  PROXY_CPUS=all
  LOAD_CPUS=all
fi

TMP=$(mktemp -d /tmp/strait-bench.XXXXXX)
# nginx workers run as nobody when started by root; they must reach the cache and temp dirs.
chmod 755 "$TMP"
mkdir -p "$OUT" "$TMP/www" "$TMP/static"
# The processes started here and still running, by name.
declare -A LIVE=()
cleanup() {
  local pid
  for pid in "${LIVE[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${LIVE[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # Keep the logs of this run next to its results.
  cp "$TMP"/*.log "$OUT"/ 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- origin: one nginx worker, two ports --------------------------------------------------------
SMALL_BODY='{"ok":true,"from":"origin","pad":"0123456789abcdef0123456789"}'
head -c 16384 /dev/zero | tr '\0' 'x' >"$TMP/www/16k"
# The static profiles' files, served by strait (`serve`) and nginx (`root`) themselves; /small
# is what wait_http asks for.
head -c 4096 /dev/zero | tr '\0' 's' >"$TMP/static/4k"
head -c 1048576 /dev/zero | tr '\0' 'm' >"$TMP/static/1m"
echo ok >"$TMP/static/small"
chmod -R a+rX "$TMP/static"
# The tls profiles' certificate, one for all three proxies (HAProxy wants certificate and key in
# one file). RSA 2048, so that a full handshake costs the server more than the client (an RSA
# signature against its cheap verification): with a P-256 key the client's side (ECDSA
# verification) costs more than the proxy's, and tls_hs measured wrk on its one core.
case " $PROFILES " in *" tls_"*)
  mkdir -p "$TMP/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.local \
    -addext subjectAltName=DNS:bench.local,IP:127.0.0.1 \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>/dev/null
  cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/combined.pem"
  chmod -R a+rX "$TMP/tls"
  ;;
esac
cat >"$TMP/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/origin.pid;
error_log $TMP/origin-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  sendfile on;
  tcp_nodelay on;
  server {
    listen 127.0.0.1:$ORIGIN_A backlog=4096;
    listen 127.0.0.1:$ORIGIN_B backlog=4096;
    root $TMP/www;
    add_header Cache-Control "public, max-age=3600";
    location = /small { default_type application/json; return 200 '$SMALL_BODY'; }
    location = /16k { default_type application/octet-stream; }
  }
  server {
    listen 127.0.0.1:$ORIGIN_STATUS;
    location = /status { stub_status; }
  }
}
EOF

wait_http() { # url name
  local i
  for i in $(seq 1 100); do
    kill -0 "${LIVE[$2]}" 2>/dev/null || die "$2 exited; see $TMP/$2.log: $(tail -3 "$TMP/$2.log")"
    if curl -fsSk -o /dev/null -m 1 -H "Host: $HOST_HEADER" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "nothing answers at $1"
}

start() { # name cmd...  (pinning is part of cmd)
  local name=$1
  shift
  "$@" >>"$TMP/$name.log" 2>&1 &
  LIVE[$name]=$!
}

stop() { # name
  local pid=${LIVE[$1]:-}
  [ -n "$pid" ] || return 0
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "LIVE[$1]"
}

start origin "${PIN_LOAD[@]}" "$NGINX" -p "$TMP" -c "$TMP/origin.conf" -e "$TMP/origin-error.log"
wait_http "http://127.0.0.1:$ORIGIN_A/small" origin
wait_http "http://127.0.0.1:$ORIGIN_B/16k" origin

origin_accepts() {
  curl -fsS -m 2 "http://127.0.0.1:$ORIGIN_STATUS/status" | awk 'NR == 3 { print $1 }'
}

# --- proxy configs ----------------------------------------------------------------------------
# All three do the same work per request: round robin over the two origin ports on pooled
# keep-alive connections, Host rewritten, X-Forwarded-For/-Proto/-Host and X-Request-Id set.
# The listener's TLS settings in the tls profiles (resumption needs no switch here: neither wrk
# nor h2load offers a session to resume, so every handshake is a full one on all three).
tls_strait() { # profile
  case $1 in tls_*)
    echo "    tls:
      certs: [{ cert: $TMP/tls/cert.pem, key: $TMP/tls/key.pem }]
      http2: true" ;;
  esac
}

# The listener's relay in the tcp profiles (the domain below then serves no listener).
tcp_strait() { # profile
  case $1 in tcp_*)
    echo "    tcp: { backends: [\"127.0.0.1:$ORIGIN_A\", \"127.0.0.1:$ORIGIN_B\"], load_balancer: round_robin }" ;;
  esac
}

write_strait() { # profile
  local p=$1 hc="" obs="" cache="" dcache=""
  if [ "$p" = observe ]; then
    hc='    health_check: { type: http, path: /small, interval: 1s, timeout: 1s, fail_threshold: 2, success_threshold: 1 }'
    obs="  access_log: $TMP/strait-access.log
probe:
  addr: 127.0.0.1:$STRAIT_PROBE
admin:
  addr: 127.0.0.1:$STRAIT_ADMIN"
  fi
  if [ "$p" = cache ]; then
    cache="cache:
  max_bytes: 64MiB
  max_entries: 10000"
    dcache="    cache: true"
  fi
  local domain
  if [ "$p" = static4k ] || [ "$p" = static1m ]; then
    domain="  - hosts: [\"*\"]
    serve: { root: $TMP/static }"
  else
    domain="  - hosts: [\"*\"]
    load_balancer: round_robin
    backends:
      - { addr: \"http://127.0.0.1:$ORIGIN_A\" }
      - { addr: \"http://127.0.0.1:$ORIGIN_B\" }
    max_idle_conns: 1024
    max_retries: 1"
  fi
  cat >"$TMP/strait.yaml" <<EOF
server:
  threads: $WORKERS
  pid_file: $TMP/strait.pid
  upgrade_sock: $TMP/strait-upgrade.sock
  grace_period: 1s
  shutdown_timeout: 1s
listeners:
  - addr: 127.0.0.1:${PORT[strait]}
$(tls_strait "$p")$(tcp_strait "$p")
logging:
  level: info
$obs
$cache
domains:
$domain
$hc
$dcache
EOF
}

write_nginx() { # profile
  local p=$1 log="access_log off;" status="" cache_path="" cache=""
  if [ "$p" = observe ]; then
    log="access_log $TMP/nginx-access.log;"
    status="server { listen 127.0.0.1:$NGINX_STATUS; location = /status { stub_status; } }"
  fi
  if [ "$p" = cache ]; then
    cache_path="proxy_cache_path $TMP/nginx-cache levels=1:2 keys_zone=bench:10m max_size=64m inactive=60m use_temp_path=off;"
    cache="proxy_cache bench; proxy_cache_valid 200 1h; add_header X-Cache \$upstream_cache_status;"
  fi
  # static: the files from a root folder, with the sendfile Debian's stock nginx.conf turns on.
  local site="location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$proxy_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
      $cache
    }"
  if [ "$p" = static4k ] || [ "$p" = static1m ]; then
    site="root $TMP/static;
    sendfile on;
    location / { }"
  fi
  # The main context, the same for the HTTP and the TCP (stream) configurations.
  local main="worker_processes $WORKERS;
worker_rlimit_nofile 40000;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 16384; }"
  case $p in tcp_*)
    cat >"$TMP/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
$main
stream {
  upstream origin {
    server 127.0.0.1:$ORIGIN_A;
    server 127.0.0.1:$ORIGIN_B;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    proxy_pass origin;
  }
}
EOF
    return
    ;;
  esac
  local listen="listen 127.0.0.1:${PORT[nginx]} backlog=4096;"
  case $p in tls_*)
    listen="listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
    ssl_certificate $TMP/tls/cert.pem;
    ssl_certificate_key $TMP/tls/key.pem;
    ssl_session_cache off;
    ssl_session_tickets off;" ;;
  esac
  cat >"$TMP/nginx.conf" <<EOF
$main
http {
  $log
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy;
  $cache_path
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  upstream origin {
    server 127.0.0.1:$ORIGIN_A;
    server 127.0.0.1:$ORIGIN_B;
    keepalive 1024;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    $listen
    $site
  }
  $status
}
EOF
}

write_haproxy() { # profile
  local p=$1 check="" log="" stats="" cache_section="" cache_use=""
  if [ "$p" = observe ]; then
    check="check inter 1s fall 2 rise 1"
    log="log stdout format raw local0
  option httplog"
    stats="frontend stats
  bind 127.0.0.1:$HAPROXY_STATS
  http-request use-service prometheus-exporter if { path /metrics }
  stats enable
  stats uri /stats"
  fi
  if [ "$p" = cache ]; then
    cache_section="cache bench
  total-max-size 64
  max-object-size 65536
  max-age 3600"
    cache_use="http-request cache-use bench
  http-response cache-store bench"
  fi
  case $p in tcp_*)
    cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 9900
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  balance roundrobin
  server o1 127.0.0.1:$ORIGIN_A
  server o2 127.0.0.1:$ORIGIN_B
EOF
    return
    ;;
  esac
  local bind="bind 127.0.0.1:${PORT[haproxy]}"
  case $p in tls_*)
    bind="bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/tls/combined.pem alpn h2,http/1.1 no-tls-tickets" ;;
  esac
  cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  # Two descriptors per connection: the most a 20 000 descriptor limit allows (idle10k).
  maxconn 9900
  tune.ssl.cachesize 0
defaults
  mode http
  $log
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  $bind
  option forwardfor
  unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt%pid
  unique-id-header X-Request-Id
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  $cache_use
  default_backend be
backend be
  balance roundrobin
  http-request set-header Host origin
  server o1 127.0.0.1:$ORIGIN_A $check
  server o2 127.0.0.1:$ORIGIN_B $check
$cache_section
$stats
EOF
}

start_proxy() { # name profile
  local name=$1 p=$2
  case $name in
  strait)
    write_strait "$p"
    start strait "${PIN_PROXY[@]}" "$STRAIT_BIN" -c "$TMP/strait.yaml"
    ;;
  nginx)
    write_nginx "$p"
    start nginx "${PIN_PROXY[@]}" "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log"
    ;;
  haproxy)
    write_haproxy "$p"
    start haproxy "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$TMP/haproxy.cfg"
    ;;
  pingora)
    start pingora "${PIN_PROXY[@]}" "$BARE_BIN" "127.0.0.1:${PORT[pingora]}" "$WORKERS" \
      "127.0.0.1:$ORIGIN_A" "127.0.0.1:$ORIGIN_B"
    ;;
  esac
  wait_http "$(scheme "$p")://127.0.0.1:${PORT[$name]}/small" "$name"
}

scheme() { # profile
  case $1 in tls_*) echo https ;; *) echo http ;; esac
}

# utime+stime (clock ticks) of a process and all its children (nginx master + workers).
cpu_ticks() { # pid
  local pids total=0 f
  pids="$1 $(pgrep -P "$1" | tr '\n' ' ')"
  for p in $pids; do
    f=/proc/$p/stat
    [ -r "$f" ] || continue
    # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    total=$((total + $(sed 's/.*) //' "$f" | awk '{ print $12 + $13 }')))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

to_us() { # "635.91us" | "1.20ms" | "2.00s" -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n
  }'
}

# Clock ticks the whole machine (all CPUs) spent in processes (user, nice, system, steal), and
# in interrupts (irq, softirq: much of loopback TCP is processed there, charged to no
# process), from /proc/stat.
machine_ticks() {
  awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat
}
irq_ticks() {
  awk '/^cpu / { print $7 + $8; exit }' /proc/stat
}

# CPU ticks of this shell's finished children (wrk runs in the foreground), from the output of
# the `times` builtin saved in file $1: `times` must run in this shell, not in a $(...).
child_ticks() {
  awk -v hz="$HZ" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
    printf "%d", t * hz
  }' "$1"
}

RAW=$OUT/raw.tsv
printf 'profile\tproxy\tround\trps\tp50_us\tp99_us\tcpu_us_per_req\tproxy_busy_pct\tload_busy_pct\tirq_pct\tother_pct\torigin_conns\terrors\n' >"$RAW"

MEM=$OUT/memory.tsv
printf 'profile\tproxy\tround\tpeak_rss_kb\tidle_rss_kb\tidle_held\n' >"$MEM"
H2_CLIENTS=${H2_CLIENTS:-32}
H2_STREAMS=${H2_STREAMS:-8}
HS_CLIENTS=${HS_CLIENTS:-16}
IDLE_CONNS=${IDLE_CONNS:-10000}

# Sum of a /proc/<pid>/status field (VmRSS, VmHWM; kB) over a process and its children.
mem_kb() { # pid field
  local total=0 p v
  for p in $1 $(pgrep -P "$1" | tr '\n' ' '); do
    v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# h2load's summary as the lines of wrk's that run_one reads: request rate, count, mean
# latency (as the 50% line), failures as non-2xx.
h2load_as_wrk() {
  awk '
    /^finished in/ { gsub(",", ""); rps = $4 }
    /^requests:/ { total = $2; done = $8; failed = $10 + $12 + $14 }
    /^time for request:/ { mean = $6 }
    END {
      printf "%d requests in 0s\n", done
      printf "Requests/sec: %s\n", rps
      printf "     50%% %s\n", mean
      if (failed > 0) printf "  Non-2xx or 3xx responses: %d\n", failed
    }'
}

# The s_time clients' totals as the lines of wrk's that run_one reads: the connections (one
# request each) over the run's duration; s_time measures no latency.
s_time_as_wrk() { # duration
  awk -v d="$1" '
    / connections in .* real seconds/ { n += $1 }
    /ERROR|errno/ { failed++ }
    END {
      printf "%d requests in %ss\n", n, d
      printf "Requests/sec: %.2f\n", n / d
      if (failed > 0) printf "  Non-2xx or 3xx responses: %d\n", failed
    }'
}

# idle10k: IDLE_CONNS clients each send one request and then stay connected, idle; the
# proxy's resident memory is read before and while they are held.
run_idle() { # proxy profile (idle10k, or tls_idle: the clients speak TLS)
  local name=$1 profile=$2 pid=${LIVE[$1]} before held ready="$TMP/idle.ready" client tls=()
  [ "$profile" != tls_idle ] || tls=(tls)
  rm -f "$ready"
  before=$(mem_kb "$pid" VmRSS)
  "${PIN_LOAD[@]}" python3 "$ROOT/benches/idle_conns.py" 127.0.0.1 "${PORT[$name]}" "$IDLE_CONNS" "$ready" 120 \
    "${tls[@]}" >>"$TMP/idle.log" 2>&1 &
  client=$!
  for _ in $(seq 1 900); do
    [ -s "$ready" ] && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.2
  done
  [ -s "$ready" ] || { kill "$client" 2>/dev/null; die "$profile: the client did not finish opening connections to $name"; }
  sleep 1
  held=$(mem_kb "$pid" VmRSS)
  kill "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$name" 1 "$before" "$held" "$(awk '{ print $1 }' "$ready")" >>"$MEM"
  say "$profile $name: $(cat "$ready" | awk '{ print $1 " connections held, " $2 " failed" }'), RSS ${before} kB before, ${held} kB with them"
}

wrk_cmd() { # port path conns duration [scheme]
  echo "wrk -t1 -c$3 -d$4s --latency -H 'Host: $HOST_HEADER' ${5:-http}://127.0.0.1:$1$2"
}

# Columns: proxy_busy_pct is the proxy's CPU time over the run's wall time (100 = one core
# saturated); load_busy_pct the same for wrk plus the origin (on their own core when pinned:
# near 100 means the load side, not the proxy, limits the rate); irq_pct is interrupt and
# softirq time (loopback TCP receive work, charged to no process) as a share of all CPUs;
# other_pct is process CPU used on the machine by anything else, as a share of all CPUs
# (other tenants; rounds with more than a few percent are suspect).
run_one() { # profile proxy round path conns
  local p=$1 name=$2 round=$3 path=$4 conns=$5 pid=${LIVE[$2]} out
  local before after acc_before acc_after o_before o_after m_before m_after w_before w_after i_before i_after
  acc_before=$(origin_accepts)
  o_before=$(cpu_ticks "${LIVE[origin]}")
  times >"$TMP/times.before"
  m_before=$(machine_ticks)
  i_before=$(irq_ticks)
  before=$(cpu_ticks "$pid")
  if [ "$p" = tls_h2 ]; then
    # h2load prints wrk-like lines for run_one to read below (it reports no percentiles: its
    # mean goes in the p50 column, and p99 stays empty).
    "${PIN_LOAD[@]}" h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$DURATION" \
      "https://127.0.0.1:${PORT[$name]}$path" >"$TMP/h2load.out" 2>&1 || true
    cat "$TMP/h2load.out" >>"$OUT/h2load-$p-$name.txt"
    h2load_as_wrk <"$TMP/h2load.out" >"$TMP/wrk.out"
  elif [ "$p" = tls_hs ]; then
    # HS_CLIENTS sequential `openssl s_time -new` clients: a new connection and a full
    # handshake (-new: never a resumed session) for each GET. wrk is not used here: it
    # reconnects with SSL_clear(), which keeps the session, so it resumes wherever the server
    # allows it, and strait (OpenSSL's defaults) allows it where nginx and HAProxy are set not to.
    local k s_pids=()
    for k in $(seq 1 "$HS_CLIENTS"); do
      "${PIN_LOAD[@]}" openssl s_time -connect "127.0.0.1:${PORT[$name]}" -new -time "$DURATION" \
        -www "$path" >"$TMP/s_time.$k" 2>&1 &
      s_pids+=($!)
    done
    wait "${s_pids[@]}" || true
    cat "$TMP"/s_time.* | s_time_as_wrk "$DURATION" >"$TMP/wrk.out"
    rm -f "$TMP"/s_time.*
  else
    "${PIN_LOAD[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -H "Host: $HOST_HEADER" \
      "${WRK_CLOSE[@]}" "$(scheme "$p")://127.0.0.1:${PORT[$name]}$path" >"$TMP/wrk.out"
  fi
  after=$(cpu_ticks "$pid")
  m_after=$(machine_ticks)
  i_after=$(irq_ticks)
  times >"$TMP/times.after"
  o_after=$(cpu_ticks "${LIVE[origin]}")
  acc_after=$(origin_accepts)
  out=$(cat "$TMP/wrk.out")
  echo "$out" >>"$OUT/wrk-$p-$name.txt"
  local rps reqs p50 p99 errs cpu busy load other irq
  w_before=$(child_ticks "$TMP/times.before")
  w_after=$(child_ticks "$TMP/times.after")
  rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
  reqs=$(echo "$out" | awk '/ requests in / { print $1 }')
  p50=$(to_us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  errs=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }')
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  busy=$(awk -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
  load=$(awk -v t=$((w_after - w_before + o_after - o_before)) -v hz="$HZ" -v d="$DURATION" \
    'BEGIN { printf "%.0f", t / hz / d * 100 }')
  other=$(awk -v m=$((m_after - m_before)) -v own=$((after - before + w_after - w_before + o_after - o_before)) \
    -v hz="$HZ" -v d="$DURATION" -v n="$(nproc)" 'BEGIN { o = (m - own) / hz / d / n * 100; printf "%.0f", o < 0 ? 0 : o }')
  irq=$(awk -v t=$((i_after - i_before)) -v hz="$HZ" -v d="$DURATION" -v n="$(nproc)" \
    'BEGIN { printf "%.0f", t / hz / d / n * 100 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$name" "$round" "$rps" "$p50" "$p99" "$cpu" \
    "$busy" "$load" "$irq" "$other" $((acc_after - acc_before)) "$errs" >>"$RAW"
  # Peak resident memory of the proxy (all its processes) since it started, this profile's
  # load included.
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$name" "$round" "$(mem_kb "$pid" VmHWM)" "" "" >>"$MEM"
  say "$p $name round $round: $rps req/s, p50 ${p50}us p99 ${p99}us, ${cpu}us CPU/req, busy ${busy}% (load side ${load}%, irq ${irq}%, others ${other}%), origin conns +$((acc_after - acc_before)), errors $errs"
}

say "results in $OUT; proxies on CPU $PROXY_CPUS, wrk and origin on CPU $LOAD_CPUS, $WORKERS worker(s) each"
for p in $PROFILES; do
  case $p in
  plain | observe | cache)
    path=/small
    conns=$CONNS
    ;;
  plain16k)
    path=/16k
    conns=$CONNS
    ;;
  c1000)
    path=/small
    conns=1000
    ;;
  static4k)
    path=/4k
    conns=$CONNS
    ;;
  static1m)
    path=/1m
    conns=$CONNS
    ;;
  tls_h1 | tls_h2 | tcp_ka | tcp_conn)
    path=/small
    conns=$CONNS
    ;;
  tls_hs)
    path=/small
    conns=$CONNS
    ;;
  idle10k | tls_idle)
    proxies=$PROXIES
    for name in $proxies; do
      start_proxy "$name" "$p"
      run_idle "$name" "$p"
      stop "$name"
    done
    continue
    ;;
  *) die "unknown profile $p" ;;
  esac
  # tcp_conn: a new connection (through the relay, to the origin) for every request.
  WRK_CLOSE=()
  [ "$p" != tcp_conn ] || WRK_CLOSE=(-H "Connection: close")
  proxies=$PROXIES
  case " $BASELINE " in *" $p "*) proxies="$proxies pingora" ;; esac
  case $p in static*) proxies=$(echo " $proxies " | sed 's/ haproxy / /; s/ pingora / /') ;; esac
  case $p in tls_* | tcp_*) proxies=$(echo " $proxies " | sed 's/ pingora / /') ;; esac
  for name in $proxies; do
    start_proxy "$name" "$p"
    # Warm-up: fills the upstream pools (and the caches), not measured.
    "${PIN_LOAD[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" -H "Host: $HOST_HEADER" \
      "$(scheme "$p")://127.0.0.1:${PORT[$name]}$path" >/dev/null
  done
  case $p in
  tls_h2) echo "$p: h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS -D$DURATION https://127.0.0.1:<port>$path" ;;
  tls_hs) echo "$p: $HS_CLIENTS x openssl s_time -connect 127.0.0.1:<port> -new -time $DURATION -www $path" ;;
  *) echo "$p: $(wrk_cmd '<port>' "$path" "$conns" "$DURATION" "$(scheme "$p")")${WRK_CLOSE[*]:+ -H 'Connection: close'}" ;;
  esac >>"$OUT/commands.txt"
  for round in $(seq 1 "$ROUNDS"); do
    for name in $proxies; do
      run_one "$p" "$name" "$round" "$path" "$conns"
    done
  done
  for name in $proxies; do
    stop "$name"
  done
done

# --- summary ----------------------------------------------------------------------------------
{
  echo "# strait vs nginx vs HAProxy, $STAMP"
  echo
  echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
  echo "- versions: $("$STRAIT_BIN" --version), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$HAPROXY" -v | head -1 | awk '{ print "haproxy/" $3 }'), $(wrk -v 2>&1 | head -1 | awk '{ print $1 "/" $2 }')"
  echo "- layout: $WORKERS worker(s) per proxy on CPU $PROXY_CPUS; wrk and the origin (1 nginx worker) on CPU $LOAD_CPUS"
  echo "- rounds: $ROUNDS x ${DURATION}s per proxy and profile (after ${WARMUP}s warm-up), interleaved A B C A B C"
  echo "- command: $(wrk_cmd '<port>' '<path>' '<conns>' "$DURATION")"
  echo
  echo "Medians over the rounds. CPU/req: the proxy's utime+stime (all its processes) per request."
  echo "busy: proxy CPU / wall time; load: wrk + origin CPU / wall time; irq: interrupt + softirq"
  echo "time (loopback TCP), % of all CPUs; others: other processes on the machine, % of all CPUs."
  echo "Ratios: strait's req/s over nginx's / HAProxy's / bare Pingora's."
  echo
  echo "| profile | proxy | req/s | p50 µs | p99 µs | CPU µs/req | busy % | load % | irq % | others % | origin conns opened | errors | vs nginx | vs HAProxy | vs Pingora |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '
    function median(key, col,   n, i, j, t, a) {
      n = 0
      for (i = 1; i <= cnt[key]; i++) a[++n] = val[key, i, col]
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      if (n % 2) return a[(n + 1) / 2]
      return (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ratio(pr, other, rps) {
      if (!((pr SUBSEP other) in cnt)) return "-"
      return sprintf("%.2f", rps / median(pr SUBSEP other, 4))
    }
    NR > 1 {
      key = $1 SUBSEP $2
      if (!(key in cnt)) { order[++k] = key; if (!($1 in seenp)) { seenp[$1] = 1; profs[++np] = $1 } }
      cnt[key]++
      for (c = 4; c <= 13; c++) val[key, cnt[key], c] = $c
    }
    END {
      for (i = 1; i <= np; i++) {
        pr = profs[i]
        for (o = 1; o <= k; o++) {
          split(order[o], kp, SUBSEP)
          if (kp[1] != pr) continue
          key = order[o]
          rps = median(key, 4)
          vn = "-"; vh = "-"; vp = "-"
          if (kp[2] == "strait") { vn = ratio(pr, "nginx", rps); vh = ratio(pr, "haproxy", rps); vp = ratio(pr, "pingora", rps) }
          printf "| %s | %s | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %d | %d | %s | %s | %s |\n", pr, kp[2], rps, median(key, 5), median(key, 6), median(key, 7), median(key, 8), median(key, 9), median(key, 10), median(key, 11), median(key, 12), median(key, 13), vn, vh, vp
        }
      }
    }' "$RAW"
  echo
  echo "Memory: peak resident set (VmHWM, all the proxy's processes) by the end of each profile"
  echo "(largest over the rounds; c1000 is the figure with 1 000 active connections), and for"
  echo "idle10k (tls_idle: TLS clients) the resident set before and while $IDLE_CONNS idle keep-alive"
  echo "clients are held."
  echo
  echo "| profile | proxy | peak RSS MiB | idle RSS before MiB | idle clients held | with them MiB | per idle client KiB |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  awk -F'\t' -v n="$IDLE_CONNS" '
    NR > 1 {
      key = $1 SUBSEP $2
      if (!(key in seen)) { seen[key] = 1; order[++k] = key }
      if ($1 == "idle10k" || $1 == "tls_idle") { before[key] = $4; held[key] = $5; count[key] = $6 }
      else if ($4 > peak[key]) peak[key] = $4
    }
    END {
      for (i = 1; i <= k; i++) {
        split(order[i], kp, SUBSEP)
        if (kp[1] == "idle10k" || kp[1] == "tls_idle")
          printf "| %s | %s | - | %.1f | %d | %.1f | %.1f |\n", kp[1], kp[2], before[order[i]] / 1024, count[order[i]], held[order[i]] / 1024, count[order[i]] ? (held[order[i]] - before[order[i]]) / count[order[i]] : 0
        else
          printf "| %s | %s | %.1f | - | - | - | - |\n", kp[1], kp[2], peak[order[i]] / 1024
      }
    }' "$MEM"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
