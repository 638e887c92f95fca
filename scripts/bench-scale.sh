#!/usr/bin/env bash
# Scale benchmark: how big a world one `btvod world` process runs on this machine.
# For each size N it writes a scenario shaped like scripts/scenarios/scale/crowd-200.toml
# (N/50 seeds, the rest partial peers, N/4 viewers as a flash crowd) into
# target/bench-scale/, runs `btvod world` on it for --duration seconds under /usr/bin/time, and
# prints one Markdown row per size: CPU (cores used on average), peak memory (total and per
# member), the world's upload rate, and what the viewers took from peers and from the origin.
#
# Usage: scripts/bench-scale.sh [--sizes "100 200 500 1000"] [--duration 60] [--no-viewers]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/bench-scale"
SIZES="100 200 500 1000"
DURATION=60
VIEWERS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) SIZES="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --no-viewers) VIEWERS=0; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$ROOT"
cargo build --release --quiet
BIN="$ROOT/target/release/btvod"
mkdir -p "$WORK"
echo "Command: \`scripts/bench-scale.sh --sizes \"$SIZES\" --duration $DURATION$([[ $VIEWERS == 0 ]] && echo ' --no-viewers')\`."
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem/ {print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD)."
echo
echo "| world peers | viewers | cores used | peak RSS MiB | KiB per member | world upload MiB/s | viewers from peers MiB | from origin MiB |"
echo "|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
    seeds=$(( n / 50 > 0 ? n / 50 : 1 ))
    partial=$(( n - seeds ))
    viewers=$(( VIEWERS ? n / 4 : 0 ))
    scenario="$WORK/crowd-$n.toml"
    sed -e "s/^name = \"crowd-200\"/name = \"crowd-$n\"/" \
        -e "/^name = \"seed\"/{n;s/^count = .*/count = $seeds/}" \
        -e "/^name = \"partial\"/{n;s/^count = .*/count = $partial/}" \
        -e "/^name = \"crowd\"/{n;s/^count = .*/count = $(( viewers > 0 ? viewers : 1 ))/}" \
        "$ROOT/scripts/scenarios/scale/crowd-200.toml" > "$scenario"
    run="$WORK/run-$n"
    rm -rf "$run"
    flags=(--duration "$DURATION")
    [[ $VIEWERS == 0 ]] && flags+=(--no-viewers)
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time-$n" \
        "$BIN" world "$scenario" --run-dir "$run" "${flags[@]}" > /dev/null 2> "$WORK/world-$n.log" || true
    read -r wall user sys rss_kib < "$WORK/time-$n"
    [[ -f "$run/world.json" ]] || { echo "| $n | $viewers | failed: see target/bench-scale/world-$n.log | | | | | |"; continue; }
    python3 - "$run/world.json" "$n" "$viewers" "$wall" "$user" "$sys" "$rss_kib" <<'EOF'
import json, sys
path, n, viewers, wall, user, sys_s, rss = sys.argv[1:]
world = json.load(open(path))
wall, cpu, rss = float(wall), float(user) + float(sys_s), int(rss)
members = int(n) + int(viewers)
up = sum(p["uploaded"] for p in world["peers"])
from_peers = sum(p["downloaded"] for p in world["peers"] if p["role"] == "viewer")
mib = 1024 * 1024
print(f"| {n} | {viewers} | {cpu / wall:.2f} | {rss / 1024:.0f} | {rss / members:.0f} | "
      f"{up / world['uptime_s'] / mib:.1f} | {from_peers / mib:.1f} | "
      f"{world['origin_bytes_served'] / mib:.1f} |")
EOF
    rm -rf "$run/peers" "$run/viewers" "$run/content"
done
