#!/usr/bin/env bash
# Builds strait (release) and runs it. With no arguments: `strait demo`, two local origins
# behind the proxy on http://127.0.0.1:8080. Any arguments are passed to strait instead,
# e.g. `scripts/run.sh -c conf/strait.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release
if [ $# -eq 0 ]; then set -- demo; fi
exec target/release/strait "$@"
