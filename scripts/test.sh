#!/usr/bin/env bash
# The whole test suite, as a new user or CI runs it: installs the test dependencies
# (local identity servers), then runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --all-targets "$@"
