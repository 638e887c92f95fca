#!/usr/bin/env bash
# Profiles a btvod leecher downloading from one unlimited seed on loopback with `perf record`,
# then prints the hottest functions (self time, user and kernel) to stdout.
#
# Usage: scripts/bench/profile-leecher.sh [--seed lt|btvod] [--size 1GiB] [--piece-length 1MiB]
#          [--call-graph dwarf|fp|none]
# Needs content and torrents made by scripts/bench-throughput.sh (run it once with the same
# --size and --piece-length) and a release build. perf data goes to
# target/bench-throughput/perf-<seed>-<size>.data for `perf report -i`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$ROOT/target/bench-throughput"
PY=/usr/bin/python3
SEED=lt
SIZE=1GiB
PIECE=1MiB
CALLGRAPH=none
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) SEED="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --piece-length) PIECE="$2"; shift 2 ;;
        --call-graph) CALLGRAPH="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
BTVOD="$ROOT/target/release/btvod"
TORRENT="$WORK/bench-$SIZE-$PIECE.torrent"
CONTENT="$WORK/content/bench-$SIZE.bin"
if [ ! -x "$BTVOD" ] || [ ! -f "$TORRENT" ] || [ ! -f "$CONTENT" ]; then
    echo "run scripts/bench-throughput.sh --size $SIZE --piece-length $PIECE first" >&2
    exit 1
fi

SEED_PG=""
cleanup() {
    [ -n "$SEED_PG" ] || return 0
    kill -TERM -- "-$SEED_PG" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 -- "-$SEED_PG" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$SEED_PG" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/logs"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
SEED_LOG="$WORK/logs/profile-seed-$SEED.out"
if [ "$SEED" = lt ]; then
    setsid "$PY" "$ROOT/scripts/lt_peer.py" --torrent "$TORRENT" --save-path "$WORK/content" \
        --listen-port "$PORT" --seed-mode >"$SEED_LOG" 2>&1 </dev/null &
    SEED_PG=$!
    ready() { grep -q '"state": "seeding"' "$SEED_LOG"; }
else
    setsid "$BTVOD" seed "$TORRENT" --content "$CONTENT" -q --port "$PORT" --bind 127.0.0.1 \
        >"$SEED_LOG" 2>&1 </dev/null &
    SEED_PG=$!
    ready() { ss -Hltn "sport = :$PORT" | grep -q .; }
fi
deadline=$((SECONDS + 120))
until ready; do
    if ! kill -0 "$SEED_PG" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        cat "$SEED_LOG" >&2
        echo "seed did not start" >&2
        exit 1
    fi
    sleep 0.2
done

OUT="$WORK/out/profile"
rm -rf "$OUT"
DATA="$WORK/perf-$SEED-$SIZE.data"
case "$CALLGRAPH" in
    none) CG=() ;;
    fp) CG=(-g) ;;
    dwarf) CG=(--call-graph "dwarf,16384") ;;
    *) echo "--call-graph is dwarf, fp or none" >&2; exit 2 ;;
esac
perf record -q -F 1999 "${CG[@]}" -o "$DATA" -- \
    timeout --foreground -k 5 300 "$BTVOD" get "$TORRENT" --out "$OUT" --peer "127.0.0.1:$PORT" -q \
    --port 0 --bind 127.0.0.1 >&2
cmp "$OUT/$(basename "$CONTENT")" "$CONTENT" || { echo "downloaded file differs" >&2; exit 1; }
rm -rf "$OUT"
echo "# self time by function ($DATA)"
perf report -i "$DATA" --no-children --sort comm,dso,symbol --percent-limit 0.7 --stdio 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -60
