#!/usr/bin/env bash
# Penalty benchmark: every shipped scenario with viewers x every policy (btvod deadline, rarest,
# sequential; libtorrent's deadline and sequential streaming through scripts/lt_vod.py), N runs
# each with `btvod experiment`, and one table of means and spreads over runs (mean ± sd
# [min-max]) written between the penalty-table markers of BENCHMARKS.md.
#
# Usage: scripts/bench-penalty.sh [--runs 2] [--jobs 2] [--scenarios "fast matched ..."]
#          [--policies deadline,rarest,...] [--world btvod|libtorrent|both] [--rtt 100ms]
#          [--deadline-set KEY=VALUE]... [--no-write]
# Work files go to target/bench-penalty/<scenario>/ (runs.csv, results.json, plot.svg, ...).
# --jobs runs that many worlds at once: runs are rate-limited by their scenarios, not by the
# CPU, but on 2 cores keep it at 2 or 3 (see BENCHMARKS.md for the comparison).
# --deadline-set tries a deadline setting without rebuilding (the table then says so).
# --world and --rtt pass through to `btvod experiment` (which world peers, what link latency).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/bench-penalty"
RUNS=2
JOBS=2
SCENARIOS=""
POLICIES="deadline,rarest,sequential,libtorrent-deadline,libtorrent-sequential"
WRITE=1
SETTINGS=()
WORLD=()
ARGS="$*"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --policies) POLICIES="$2"; shift 2 ;;
        --deadline-set) SETTINGS+=(--deadline-set "$2"); shift 2 ;;
        --world|--rtt) WORLD+=("$1" "$2"); shift 2 ;;
        --no-write) WRITE=0; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-penalty: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -z "$SCENARIOS" ]]; then
    for f in "$ROOT"/scripts/scenarios/*.toml; do
        # Only scenarios with viewers are scored.
        if grep -q '^\[\[viewers\]\]' "$f"; then
            SCENARIOS+="$(basename "$f" .toml) "
        fi
    done
fi

# libtorrent's policies and worlds need Debian's binding (scripts/test.sh installs it): say so
# now rather than after a grid of failed runs.
if [[ "$POLICIES ${WORLD[*]:-}" == *libtorrent* || "${WORLD[*]:-}" == *both* ]] \
    && ! /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
    echo "bench-penalty: /usr/bin/python3 cannot import libtorrent; install python3-libtorrent" \
        "(scripts/test.sh installs the test dependencies)" >&2
    exit 1
fi

cd "$ROOT"
cargo build --release --quiet
BIN="$ROOT/target/release/btvod"
mkdir -p "$WORK"
STARTED=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT="$(git rev-parse --short HEAD)"
# Others may be editing the shared checkout: say when the binary was built from more than HEAD.
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT+=" plus uncommitted changes to src/"

SECONDS=0
TABLE="$WORK/table.md"
: > "$TABLE"
header=1
for s in $SCENARIOS; do
    out="$WORK/$s"
    echo "== $s" >&2
    status=0
    "$BIN" experiment "scripts/scenarios/$s.toml" --policies "$POLICIES" --runs "$RUNS" \
        --jobs "$JOBS" --out "$out" "${SETTINGS[@]}" "${WORLD[@]}" || status=$?
    if [[ ! -f "$out/table.md" ]]; then
        echo "bench-penalty: $s produced no table (exit $status)" >&2
        continue
    fi
    if [[ $header -eq 1 ]]; then
        cat "$out/table.md" >> "$TABLE"
        header=0
    else
        tail -n +3 "$out/table.md" >> "$TABLE"
    fi
done
ELAPSED=$SECONDS

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
SECTION="$WORK/section.md"
{
    echo "Command: \`scripts/bench-penalty.sh${ARGS:+ $ARGS}\` (N = $RUNS runs of each policy, $JOBS at once)."
    echo "Machine: $(nproc) cores ($CPU), $(free -g | awk '/^Mem/ {print $2}') GiB; $STARTED; commit $COMMIT; took $((ELAPSED / 60)) min."
    if [[ ${#SETTINGS[@]} -gt 0 ]]; then
        echo "Deadline settings changed from the defaults: ${SETTINGS[*]}."
    fi
    echo
    echo "Penalty and stall are summed / averaged over a run's viewers (flash-crowd has 12); cells"
    echo "are mean ± sd [min-max] over the runs; \"peers down/up\" is what the world's own seeds and"
    echo "partial peers downloaded and uploaded (means, KiB)."
    echo
    cat "$TABLE"
} > "$SECTION"
cat "$SECTION"

if [[ $WRITE -eq 1 ]]; then
    python3 - "$ROOT/BENCHMARKS.md" "$SECTION" <<'EOF'
import sys
path, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(path).read()
begin, end = "<!-- penalty-table:begin -->", "<!-- penalty-table:end -->"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + f"\n\n## Penalty\n\n{block}\n"
open(path, "w").write(text)
EOF
    echo "bench-penalty: table written into BENCHMARKS.md" >&2
fi
