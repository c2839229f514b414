#!/usr/bin/env bash
# Whole-process benchmarks (see scripts/bench.py) and the in-process bench target.
# Builds the release binary first. Takes about two minutes plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo build --release --bin mcp-credd
cargo bench --bench core
python3 scripts/bench.py
