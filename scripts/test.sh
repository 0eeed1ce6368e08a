#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real origins and real
# strait processes on loopback), and the shipped configs validated by `strait -t`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
for f in conf/strait.yaml conf/examples/*.yaml; do
  [ -e "$f" ] || continue
  cargo run -q -- -t -c "$f"
done
