#!/usr/bin/env bash
# Installs what building strait needs on Debian when it is missing: cmake (zlib-ng),
# perl and make (vendored OpenSSL), a C/C++ compiler, Python's jsonschema and yaml (schema test), chromium (dashboard test). Safe to run repeatedly.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v perl >/dev/null || need+=(perl)
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
# protoc: etcd-client (src/cluster/) compiles etcd's gRPC definitions at build time.
command -v protoc >/dev/null || need+=(protobuf-compiler)
# What only the test suite needs (`scripts/setup.sh --test`, from scripts/test.sh):
if [ "${1:-}" = "--test" ]; then
  # tests/it/schema.rs validates the shipped configs against the JSON Schema with these.
  python3 -c 'import jsonschema, yaml' 2>/dev/null || need+=(python3 python3-jsonschema python3-yaml)
  # tests/it/dashboard_browser.rs drives the dashboard in headless Chromium.
  command -v chromium >/dev/null || need+=(chromium)
  # tests/it/acme.rs orders certificates from pebble (an RFC 8555 test CA) and its DNS.
  { command -v pebble && command -v pebble-challtestsrv; } >/dev/null || need+=(pebble)
  # tests/it/cluster_rate.rs counts `scope: cluster` rate limits in a real Redis.
  command -v redis-server >/dev/null || need+=(redis-server)
  # tests/it/cluster/: a real etcd (etcd-server) and its command-line client (etcd-client).
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v etcdctl >/dev/null || need+=(etcd-client)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (>= 1.85) first" >&2; exit 1; }
