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
for f in conf/strait.yaml conf/examples/*.yaml; do
  [ -e "$f" ] || continue
  cargo run -q -- -t -c "$f"
done
# The unit file, with its binary paths pointed at the one just built.
if command -v systemd-analyze >/dev/null; then
  unit_dir=$(mktemp -d)
  sed "s#/usr/local/bin/strait#$PWD/target/debug/strait#g" systemd/strait.service > "$unit_dir/strait.service"
  systemd-analyze verify "$unit_dir/strait.service"
  rm -rf "$unit_dir"
  echo "systemd/strait.service: verified"
fi
