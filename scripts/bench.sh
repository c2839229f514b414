#!/usr/bin/env bash
# Whole-process benchmarks (see scripts/bench.py) and the in-process bench target.
# Builds the release binary first. Takes about three minutes plus the build.
#
# Side by side with pizauth: set PIZAUTH to a pizauth binary (built or installed by you;
# this script does not fetch or build it). Both daemons then hold one refreshable token
# from the same local provider and their resident memory is reported in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PIZAUTH:-}" ]]; then
    if [[ ! -x "$PIZAUTH" ]]; then
        echo "bench: PIZAUTH=$PIZAUTH is not an executable file" >&2
        exit 2
    fi
    echo "bench: pizauth for the side-by-side run: $PIZAUTH"
else
    echo "bench: PIZAUTH is not set: measuring mcp-credd alone (no side-by-side figure)"
fi
bash scripts/test-deps.sh
cargo build --release --bin mcp-credd
cargo bench --bench core
python3 scripts/bench.py
