#!/usr/bin/env bash
# Runs btvod's cargo-fuzz targets (fuzz/) one after another, each for a bounded time, and
# prints per target the executions, libFuzzer's coverage (`cov:` edges, `ft:` features) and
# corpus size from its final stats.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]     (default: every target, 60 s each)
#
# Toolchain: cargo fuzz builds with nightly-only flags (-Zsanitizer=address and the
# sanitizer-coverage passes). Only the stable toolchain is installed, so this script sets
# RUSTC_BOOTSTRAP=1, which lets stable rustc accept them. FUZZ_SANITIZER=none builds without
# AddressSanitizer (faster; use it if the ASan build fails); the default is address.
# Builds are release with debug assertions and overflow checks (cargo fuzz's default).
#
# cargo-fuzz is installed into target/fuzz-tools if it is missing. Each target's corpus grows
# in fuzz/corpus/<target> (git-ignored) starting from the committed seeds in
# fuzz/seeds/<target>; a crash is saved in fuzz/artifacts/<target>/ and libFuzzer's log in
# fuzz/artifacts/<target>.log. Replay a crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-...
# and turn it into a test in tests/fuzz_regressions.rs.
#
# FUZZ_MAX_LEN sets libFuzzer's -max_len (default 8192 bytes).
# Everything runs at `nice -n 19` (FUZZ_NICE to change) and one target at a time, so a shared
# 2-core machine stays usable. CI does not run this; tests/fuzz_smoke.rs runs the same checks
# for a few seconds per target.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=60
targets=()
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz.sh: --seconds must be a positive integer" >&2; exit 2; }

tools="$PWD/target/fuzz-tools"
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
niceness="${FUZZ_NICE:-19}"
sanitizer="${FUZZ_SANITIZER:-address}"
# Long enough for a torrent with a few dozen files or a tracker text past its 1024-byte cap;
# libFuzzer still starts short and grows inputs over the run.
max_len="${FUZZ_MAX_LEN:-8192}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz into $tools" >&2
    nice -n "$niceness" cargo install cargo-fuzz --locked --root "$tools"
fi

mapfile -t all < <(cargo fuzz list --fuzz-dir fuzz)
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
    if ! printf '%s\n' "${all[@]}" | grep -qx -- "$t"; then
        echo "fuzz.sh: no fuzz target '$t' (targets: ${all[*]})" >&2
        exit 2
    fi
done

echo "fuzz.sh: building the targets (sanitizer: $sanitizer)" >&2
nice -n "$niceness" cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" >&2

failed=0
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t.log"
    echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
    set +e
    nice -n "$niceness" cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$t" \
        "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 \
        >"$log" 2>&1
    rc=$?
    set -e
    # The last status line carries the final coverage; the final stats the execution count.
    status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$status")
    if [[ $rc -eq 0 ]]; then
        result=ok
    else
        result="FAILED (exit $rc; $(grep -o 'Test unit written to .*' "$log" | tail -n 1 || echo "see $log"))"
        failed=1
    fi
    summary+=("$(printf '%-17s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-12s %s' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")")
    echo "${summary[-1]}"
done

echo
echo "fuzz.sh: ${seconds}s per target, sanitizer $sanitizer"
printf '%s\n' "${summary[@]}"
exit "$failed"
