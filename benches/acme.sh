#!/usr/bin/env bash
# ACME (issue 15), measured against pebble on loopback: how long strait takes from start to a
# certificate served by HTTP-01 and by TLS-ALPN-01, and whether serving an ACME host costs a
# TLS handshake anything: full handshakes, one at a time, on one TLS
# listener that holds both an ACME host and a static certificate, each named by SNI.
#
#   benches/acme.sh          STRAIT_BIN [target/release/strait]  DURATION [5]  ROUNDS [3]
#
# Needs pebble and pebble-challtestsrv (scripts/setup.sh --test). Loopback only; every run is
# bounded; every process started here is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
STRAIT_BIN=${STRAIT_BIN:-target/release/strait}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
for c in pebble pebble-challtestsrv openssl curl; do
  command -v $c >/dev/null || { echo "acme.sh needs $c" >&2; exit 1; }
done
[ -x "$STRAIT_BIN" ] || { echo "no strait binary at $STRAIT_BIN (cargo build --release)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/strait-acme-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
B=18400 # ports B..B+9
HTTP=$B TLS=$((B+1)) ADMIN=$((B+2)) API=$((B+3)) MGMT=$((B+4)) DNS=$((B+5))

# Pebble's own HTTPS certificate, and a static certificate for static.test.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$TMP/api.key" -out "$TMP/api.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=static.test \
  -addext subjectAltName=DNS:static.test -keyout "$TMP/static.key" -out "$TMP/static.crt" 2>/dev/null
cat >"$TMP/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$API", "managementListenAddress": "127.0.0.1:$MGMT",
 "certificate": "$TMP/api.crt", "privateKey": "$TMP/api.key", "httpPort": $HTTP, "tlsPort": $TLS,
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
pebble-challtestsrv -dns01 127.0.0.1:$DNS -http01 "" -https01 "" -tlsalpn01 "" \
  -management 127.0.0.1:$((B+6)) -defaultIPv6 "" >"$TMP/dns.log" 2>&1 &
PIDS+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config "$TMP/pebble.json" -dnsserver 127.0.0.1:$DNS -strict=false >"$TMP/pebble.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sk "https://localhost:$API/dir" >/dev/null && break; sleep 0.1; done

now_ms() { date +%s%3N; }

# $1: with a plain listener (http-01) or not (tls-alpn-01). Sets ISSUED_MS.
issue() {
  local plain="" storage="$TMP/storage-$1"
  [ "$1" = http-01 ] && plain="  - addr: 127.0.0.1:$HTTP"
  cat >"$TMP/strait.yaml" <<EOF
server: { threads: 1, pid_file: $TMP/strait.pid, upgrade_sock: $TMP/upgrade.sock }
logging: { level: warn }
acme: { directory: "https://localhost:$API/dir", storage: $storage, ca_roots: $TMP/api.crt }
listeners:
$plain
  - addr: 127.0.0.1:$TLS
    tls: { acme: [a.strait.test], certs: [{ cert: $TMP/static.crt, key: $TMP/static.key }] }
admin: { addr: 127.0.0.1:$ADMIN }
domains:
  - hosts: [a.strait.test, static.test]
    respond: { status: 200, body: "ok\n" }
EOF
  local start; start=$(now_ms)
  "$STRAIT_BIN" -c "$TMP/strait.yaml" >"$TMP/strait-$1.log" 2>&1 &
  STRAIT=$!
  PIDS+=($STRAIT)
  for _ in $(seq 600); do
    curl -s "http://127.0.0.1:$ADMIN/certificates" 2>/dev/null | grep -q '"status": *"issued"' && break
    sleep 0.02
  done
  ISSUED_MS=$(( $(now_ms) - start ))
  curl -s "http://127.0.0.1:$ADMIN/certificates" | grep -q '"status": *"issued"' || {
    echo "no certificate by $1:"; cat "$TMP/strait-$1.log"; exit 1; }
}

handshakes() { # $1: SNI. Full handshakes per second over DURATION, one at a time (OpenSSL
  # 3.0's s_time cannot send SNI, so Python's ssl module, which is OpenSSL too, drives them).
  python3 - "$1" "$TLS" "$DURATION" <<'PY'
import socket, ssl, sys, time
sni, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.options |= ssl.OP_NO_TICKET  # full handshakes only
n, end = 0, time.monotonic() + duration
start = time.monotonic()
while time.monotonic() < end:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            tls.do_handshake()
    n += 1
print(f"{n / (time.monotonic() - start):.0f}")
PY
}

stop() { kill -TERM "$STRAIT" 2>/dev/null || true; wait "$STRAIT" 2>/dev/null || true; }

echo "time from start to a served certificate (ms):"
issue tls-alpn-01; echo "  tls-alpn-01: $ISSUED_MS"; stop
issue http-01; echo "  http-01:     $ISSUED_MS"
echo "full TLS handshakes per second (one client, no session reuse, ${DURATION}s, strait threads: 1):"
for r in $(seq "$ROUNDS"); do
  echo "  round $r: acme host $(handshakes a.strait.test)/s, self-signed static certificate $(handshakes static.test)/s"
done
stop
# The same issued chain and key as a static certificate: the ACME path against the static one
# with nothing else different.
sed -i -e '/^acme:/d' -e "s|acme: \[a.strait.test\], certs: \[|certs: [{ cert: $TMP/storage-http-01/a.strait.test.crt, key: $TMP/storage-http-01/a.strait.test.key }, |" "$TMP/strait.yaml"
"$STRAIT_BIN" -c "$TMP/strait.yaml" >"$TMP/strait-static.log" 2>&1 &
STRAIT=$!
PIDS+=($STRAIT)
for _ in $(seq 250); do curl -s "http://127.0.0.1:$ADMIN/certificates" >/dev/null 2>&1 && break; sleep 0.02; done
for r in $(seq "$ROUNDS"); do
  echo "  round $r: the issued chain as a static certificate $(handshakes a.strait.test)/s"
done
stop
