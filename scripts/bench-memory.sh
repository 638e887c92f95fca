#!/usr/bin/env bash
# Memory benchmark: peak RSS of `btvod get` downloading one torrent of each given size from one
# unlimited seed over loopback (127.0.0.1), to show that memory does not grow with the torrent.
# Per size: make the content (AES-128-CTR keystream, nothing compresses), make a torrent with
# `btvod make-torrent`, start the seed (libtorrent's scripts/lt_peer.py --seed-mode, or
# `btvod seed`), run `/usr/bin/time btvod get --peer SEED`, check the download with cmp, then
# delete the content and the download (each size needs twice its size on disk while it runs).
# Prints a markdown table (size, pieces, wall s, MB/s, CPU s, RSS at a quarter, half and three
# quarters of the run, sampled from /proc every 0.2 s, peak RSS MB, ok).
#
# Usage: scripts/bench-memory.sh [--seed lt|btvod] [--piece-length 1MiB] [--runs 1]
#          [--timeout 900] [--keep] [SIZE...]        (sizes default to: 1GiB 4GiB)
# Work files go to $CARGO_TARGET_DIR/bench-memory (default target/bench-memory); BTVOD_BIN
# uses a given binary instead of building the release one. Every process it starts runs in
# its own process group and is stopped on exit; everything runs under `nice -n 10`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$TARGET/bench-memory"
PY=/usr/bin/python3
SEED=lt
PIECE=1MiB
RUNS=1
TMO=900
KEEP=0
SIZES=()

CMDLINE="scripts/bench-memory.sh$(printf ' %q' "$@")"
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --seed) SEED="$2"; shift 2 ;;
        --piece-length) PIECE="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --timeout) TMO="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) SIZES+=("$1"); shift ;;
    esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1GiB 4GiB)
case "$SEED" in lt|btvod) ;; *) echo "--seed must be lt or btvod" >&2; exit 2 ;; esac
case "$RUNS" in ''|*[!0-9]*|0) echo "--runs must be a positive integer" >&2; exit 2 ;; esac
case "$TMO" in ''|*[!0-9]*|0) echo "--timeout must be a positive number of seconds" >&2; exit 2 ;; esac

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench/common.sh"
START_PREFIX=(nice -n 10)
for s in "${SIZES[@]}"; do bytes_of "$s" >/dev/null; done

log() { printf '[bench-memory %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Samples btvod's resident set (KiB) every 0.2 s while the /usr/bin/time process $1 lives
# (btvod is its grandchild, under `timeout`), one value per line into $2.
sample_rss() {
    local timer="$1" out="$2" child="" btvod="" rss
    : >"$out"
    while kill -0 "$timer" 2>/dev/null; do
        if [ -z "$btvod" ]; then
            child="$(pgrep -P "$timer" | head -1)" || true
            [ -z "$child" ] || btvod="$(pgrep -P "$child" | head -1)" || true
        fi
        if [ -n "$btvod" ]; then
            rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$btvod/status" 2>/dev/null)" || true
            [ -z "$rss" ] || echo "$rss" >>"$out"
        fi
        sleep 0.2
    done
}
# The samples at 1/4, 1/2 and 3/4 of the run ("0 0 0" when there are none).
quartiles() {
    awk '{v[NR] = $1} END {
        if (NR == 0) { print "0 0 0"; exit }
        printf "%d %d %d\n", v[int(NR / 4) + 1], v[int(NR / 2) + 1], v[int(3 * NR / 4) + 1]
    }' "$1"
}

[ -x /usr/bin/time ] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
need openssl openssl
need ss iproute2
need setsid util-linux
if [ "$SEED" = lt ]; then
    "$PY" -c 'import libtorrent' 2>/dev/null || { echo "install python3-libtorrent" >&2; exit 1; }
fi

if [ -n "${BTVOD_BIN:-}" ]; then
    BTVOD="$BTVOD_BIN"
else
    log "building btvod (release)"
    (cd "$ROOT" && nice -n 10 cargo build --release --quiet --bin btvod)
    BTVOD="$TARGET/release/btvod"
fi

mkdir -p "$WORK/logs"
RESULTS="$WORK/results-$(date +%Y%m%d-%H%M%S).tsv"
printf 'size\tpieces\trun\telapsed_s\tuser_s\tsys_s\tmaxrss_kib\trss_q1_kib\trss_q2_kib\trss_q3_kib\tok\n' >"$RESULTS"
FAILURES=0

for label in "${SIZES[@]}"; do
    bytes="$(bytes_of "$label")"
    content="$WORK/content/bench-$label.bin"
    torrent="$WORK/bench-$label-$PIECE.torrent"
    mkdir -p "$WORK/content"
    avail=$(($(df --output=avail -B1 "$WORK" | tail -1)))
    if [ ! -f "$content" ] && [ "$avail" -lt $((2 * bytes + 1024 * 1024 * 1024)) ]; then
        echo "not enough disk in $WORK for $label: need twice the size plus 1 GiB" >&2
        exit 1
    fi
    if [ ! -f "$content" ] || [ "$(stat -c %s "$content")" != "$bytes" ]; then
        log "making $label of content"
        head -c "$bytes" /dev/zero | nice -n 10 openssl enc -aes-128-ctr -nosalt \
            -K 62747660f0d0000000000000000000ff -iv 00000000000000000000000000000000 \
            >"$content.tmp"
        mv "$content.tmp" "$content"
    fi
    if [ ! -f "$torrent" ] || [ "$torrent" -ot "$content" ]; then
        log "making $torrent"
        nice -n 10 "$BTVOD" make-torrent "$content" -o "$torrent" --piece-length "$PIECE" \
            --no-date >/dev/null 2>&1
    fi
    pieces="$("$BTVOD" info "$torrent" | sed -n 's/^Pieces: *\([0-9][0-9]*\) x.*/\1/p')"
    port="$(free_port)"
    if [ "$SEED" = lt ]; then
        start_bg "$WORK/logs/seed-$label.out" "$WORK/logs/seed-$label.err" \
            "$PY" "$ROOT/scripts/lt_peer.py" --torrent "$torrent" \
            --save-path "$WORK/content" --listen-port "$port" --seed-mode
        seed_pid="$STARTED_PID"
        deadline=$((SECONDS + 300))
        until grep -q '"state": "seeding"' "$WORK/logs/seed-$label.out"; do
            if ! kill -0 "$seed_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
                cat "$WORK/logs/seed-$label.err" >&2
                echo "libtorrent seed did not reach seeding" >&2
                exit 1
            fi
            sleep 0.2
        done
    else
        start_bg "$WORK/logs/seed-$label.out" "$WORK/logs/seed-$label.err" \
            "$BTVOD" seed "$torrent" --content "$content" -q --port "$port" --bind 127.0.0.1
        seed_pid="$STARTED_PID"
        wait_listening "$port" "$seed_pid" 300 \
            || { cat "$WORK/logs/seed-$label.err" >&2; echo "btvod seed did not start" >&2; exit 1; }
    fi

    for run in $(seq "$RUNS"); do
        out="$WORK/out"
        rm -rf "$out"
        mkdir -p "$out"
        tf="$WORK/logs/time-$label-$run.txt"
        log "$label run $run: btvod get from the $SEED seed on port $port"
        start_bg "$WORK/logs/get-$label-$run.out" "$WORK/logs/get-$label-$run.err" \
            /usr/bin/time -f '%e %U %S %M' -o "$tf" timeout --foreground -k 5 "$TMO" \
            "$BTVOD" get "$torrent" --out "$out" --peer "127.0.0.1:$port" -q --port 0 \
            --bind 127.0.0.1
        pid="$STARTED_PID"
        sample_rss "$pid" "$WORK/logs/rss-$label-$run.txt" &
        sampler=$!
        rc=0
        wait "$pid" || rc=$?
        wait "$sampler" || true
        read -r q1 q2 q3 < <(quartiles "$WORK/logs/rss-$label-$run.txt")
        ok=1 e=0 u=0 s=0 m=0
        [ "$rc" = 0 ] || { log "exit status $rc (see $WORK/logs/get-$label-$run.err)"; ok=0; }
        if [ -s "$tf" ]; then read -r e u s m < <(tail -1 "$tf") || true; fi
        if [ "$ok" = 1 ] && ! cmp -s "$out/$(basename "$content")" "$content"; then
            log "the download differs from the content"
            ok=0
        fi
        [ "$ok" = 1 ] || FAILURES=$((FAILURES + 1))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$pieces" "$run" "$e" \
            "$u" "$s" "$m" "$q1" "$q2" "$q3" "$ok" >>"$RESULTS"
        log "$label run $run: ${e}s wall, ${u}s user, ${s}s sys, ${m} KiB peak RSS (${q1}/${q2}/${q3} KiB at 1/4, 1/2, 3/4 of the run), ok=$ok"
        rm -rf "$out"
    done
    stop_group "$seed_pid"
    if [ "$KEEP" = 0 ]; then rm -f "$content" "$torrent"; fi
done
cleanup

CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -z "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ] || REV="$REV + uncommitted src changes"
echo "Run $(date -u +%Y-%m-%dT%H:%MZ), btvod at $REV, seed $SEED, piece length $PIECE, machine: nproc $(nproc), \"$CPU_MODEL\", $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Command: \`$CMDLINE\`"
echo
echo "| size | pieces | run | wall s | MB/s | CPU s (user+sys) | RSS MB at 1/4, 1/2, 3/4 of the run | peak RSS MB | ok |"
echo "|---|---|---|---|---|---|---|---|---|"
tail -n +2 "$RESULTS" | while IFS=$'\t' read -r label pieces run e u s m q1 q2 q3 ok; do
    bytes="$(bytes_of "$label")"
    awk -v l="$label" -v p="$pieces" -v r="$run" -v e="$e" -v u="$u" -v s="$s" -v m="$m" \
        -v q1="$q1" -v q2="$q2" -v q3="$q3" -v ok="$ok" -v b="$bytes" 'BEGIN {
            mbs = (e > 0) ? b / e / 1e6 : 0
            printf "| %s | %s | %s | %.1f | %.0f | %.2f (%.2f+%.2f) | %.1f, %.1f, %.1f | %.1f | %s |\n",
                l, p, r, e, mbs, u + s, u, s, q1 * 1024 / 1e6, q2 * 1024 / 1e6,
                q3 * 1024 / 1e6, m * 1024 / 1e6, (ok == 1 ? "yes" : "NO")
        }'
done
log "raw results: $RESULTS"
if [ "$FAILURES" != 0 ]; then
    log "$FAILURES transfer(s) failed"
    exit 1
fi
