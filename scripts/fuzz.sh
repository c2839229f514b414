#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time, one after another, and prints a
# summary line per target. Exits non-zero if any target crashed (or hit a timeout, an
# out-of-memory or a leak); reproducers are left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Environment:
#   FUZZ_SANITIZER   address (default) or none (faster, catches panics only)
#   FUZZ_KEEP_GOING  1: keep fuzzing a target after a crash (libFuzzer fork mode,
#                    -ignore_crashes), to collect several distinct crashes in one run
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=65536"
#   CARGO_TARGET_DIR default fuzz/target (kept apart from the main build)
#
# The toolchain is stable Rust; cargo-fuzz needs nightly-only flags (-Zsanitizer,
# -Cpasses=sancov), so RUSTC_BOOTSTRAP=1 is set for these builds only.
#
# Reproduce a finding:   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# Minimize it:           RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET fuzz/artifacts/TARGET/crash-...
# (both from the repository root or from fuzz/, with the same CARGO_TARGET_DIR).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
secs="${1:-60}"
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked || exit 1
fi

cd "$fuzz" || exit 1
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)" >&2
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$sanitizer" "$t" || {
        echo "build of $t failed" >&2
        exit 1
    }
done

mkdir -p "$fuzz/logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    log="$fuzz/logs/$t.log"
    mkdir -p "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
    before="$(find "$fuzz/artifacts/$t" -maxdepth 1 -type f -printf "%f\n" | sort)"
    args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    [ -f "$fuzz/dicts/$t.dict" ] && args+=(-dict="$fuzz/dicts/$t.dict")
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    # shellcheck disable=SC2206
    args+=(${FUZZ_ARGS:-})
    echo "fuzzing $t for ${secs}s (log: ${log#"$root"/})" >&2
    start=$(date +%s)
    cargo fuzz run --sanitizer "$sanitizer" "$t" -- "${args[@]}" >"$log" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - start))

    # libFuzzer's own numbers: executions, coverage after the seeds and at the end.
    runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    if [ -z "$runs" ]; then # fork mode prints no final stats: take the last status line
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    new_units=$(grep -oE '^stat::new_units_added: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    cov_start=$(grep -m1 'INITED' "$log" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
    # Fork mode has no INITED line: its first status line is the nearest.
    [ -z "$cov_start" ] && cov_start=$(grep -m1 -oE 'cov: [0-9]+' "$log" | grep -oE '[0-9]+')
    cov_end=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    ft_end=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    if [ -z "$new_units" ] && [ -n "$corp" ]; then
        new_units=$((corp - $(grep -m1 -oE 'corp: [0-9]+' "$log" | grep -oE '[0-9]+')))
    fi
    after="$(find "$fuzz/artifacts/$t" -maxdepth 1 -type f -printf "%f\n" | sort)"
    found=$(comm -13 <(echo "$before") <(echo "$after") | grep -E '^(crash|leak|timeout|oom)-' || true)
    nfound=$(printf '%s' "$found" | grep -c . || true)
    kinds=$(printf '%s\n' "$found" | sed -n 's/-.*//p' | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')
    status=ok
    if grep -q '^error: could not compile' "$log"; then
        # The sources changed since the build above and no longer compile.
        status=BUILD-FAILED
        failed+=("$t")
    elif [ "$nfound" -gt 0 ] || { [ "$rc" -ne 0 ] && ! grep -q 'Done [0-9]* runs\|DONE' "$log"; }; then
        status=FAILED
        failed+=("$t")
    fi
    line=$(printf '%-13s %-6s runs=%s time=%ss cov=%s (+%s this run) ft=%s corpus=%s new_units=%s crashes=%s' \
        "$t" "$status" "${runs:-?}" "$elapsed" "${cov_end:-?}" \
        "$(( ${cov_end:-0} - ${cov_start:-${cov_end:-0}} ))" "${ft_end:-?}" "${corp:-?}" \
        "${new_units:-?}" "$nfound${kinds:+ ($kinds)}")
    summary+=("$line")
    echo "$line"
    for f in $found; do
        echo "    reproducer: fuzz/artifacts/$t/$f"
    done
    if [ "$status" = FAILED ]; then
        # The panic message and the first frames in our code.
        grep -m1 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/    /'
        grep -m4 -E " in mcp_credd::|$root/src/" "$log" | sed 's/^ */    /'
    fi
done

echo
echo "summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/, logs in fuzz/logs/)"
    exit 1
fi
echo "no crashes"
