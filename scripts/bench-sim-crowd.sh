#!/usr/bin/env bash
# Simulated scaling curve: server bytes per viewer as a flash crowd grows. Runs
# `btvod simulate SCENARIO --viewers N` (the pure simulator with the fluid swarm model) for each
# size and prints one Markdown row per size and policy: penalty % (mean and range over the
# simulated viewers and seeds), server MiB per viewer, and the seconds the simulation took.
#
# Usage: scripts/bench-sim-crowd.sh [--sizes "1 10 100 1000"] [--seeds 1]
#          [--scenario scripts/scenarios/scale/crowd-200.toml]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES="1 10 100 1000"
SEEDS=1
SCENARIO="$ROOT/scripts/scenarios/scale/crowd-200.toml"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) SIZES="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --scenario) SCENARIO="$2"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-sim-crowd: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$ROOT"
cargo build --release --quiet
BIN="$ROOT/target/release/btvod"
echo "Command: \`scripts/bench-sim-crowd.sh --sizes \"$SIZES\" --seeds $SEEDS --scenario ${SCENARIO#"$ROOT"/}\`."
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem/ {print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD)."
echo
echo "| viewers | policy | penalty % | range over viewers | server MiB per viewer | simulated in s |"
echo "|---|---|---|---|---|---|"
for n in $SIZES; do
    out="$("$BIN" simulate "$SCENARIO" --seeds "$SEEDS" --viewers "$n" 2>&1)"
    took="$(sed -n 's/^simulated in \([0-9.]*\) s$/\1/p' <<<"$out")"
    # Rows: class, policy, penalty %, range, MiB per viewer.
    awk -v n="$n" -v took="$took" 'NF == 5 && $3 ~ /^[0-9.]+$/ {
        printf "| %s | %s | %s | %s | %s | %s |\n", n, $2, $3, $4, $5, took
    }' <<<"$out"
done
