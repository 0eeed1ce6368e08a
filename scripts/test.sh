#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real origins and real
# strait processes on loopback), and the shipped configs validated by `strait -t`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo fmt --all -- --check
# The request path in src/proxy must read top-down: no module loop.
python3 scripts/module-graph.py src/proxy >/dev/null
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
for f in conf/strait.yaml conf/examples/*.yaml conf/container/strait.yaml; do
  [ -e "$f" ] || continue
  cargo run -q -- -t -c "$f"
done
# The unit files (forking and notify), with their binary paths pointed at the one just built.
if command -v systemd-analyze >/dev/null; then
  unit_dir=$(mktemp -d)
  for unit in systemd/*.service; do
    name=$(basename "$unit")
    sed "s#/usr/local/bin/strait#$PWD/target/debug/strait#g" "$unit" > "$unit_dir/$name"
    systemd-analyze verify "$unit_dir/$name"
    echo "$unit: verified"
  done
  rm -rf "$unit_dir"
fi
