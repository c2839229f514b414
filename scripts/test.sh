#!/usr/bin/env bash
# The whole test suite, as a new user or CI runs it: installs the test dependencies
# (local identity servers), then runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
log=$(mktemp)
set +e
cargo test --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
rm -f "$log"
exit "$status"
