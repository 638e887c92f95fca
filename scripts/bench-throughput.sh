#!/usr/bin/env bash
# Throughput benchmark: one unlimited seed -> one leecher over loopback, end to end (process
# start to exit, file verified), for btvod and reference clients on the same torrent:
#   btvod->btvod, libtorrent->btvod, libtorrent->libtorrent, libtorrent->rqbit
# and, when asked for in --pairs, over encrypted TCP (MSE/PE with an RC4 payload, from a second
# libtorrent seed that forces it): lt-btvod-rc4 (btvod --encryption require) and lt-lt-rc4;
# over uTP (from a third libtorrent seed that takes only uTP): lt-btvod-utp (btvod --utp
# prefer) and lt-lt-utp.
# Clients alternate within each round (the order rotates every round); the table gives medians
# of --rounds rounds of MB/s (10^6 bytes/s of payload over wall time), CPU seconds (user+sys)
# and peak RSS, measured with /usr/bin/time. --mem-sizes also runs btvod->btvod at other sizes
# to show whether memory grows with the torrent.
#
# Usage: scripts/bench-throughput.sh [--rounds 3] [--size 1GiB] [--piece-length 1MiB]
#          [--mem-sizes "256MiB"] [--pairs "btvod-btvod lt-btvod lt-lt lt-rqbit"]
#          (also: lt-btvod-rc4 lt-lt-rc4 lt-btvod-utp lt-lt-utp)
#          [--timeout 300] [--no-rqbit] [--write-md]
# Work files (content, torrents, downloads, logs) go to target/bench-throughput/ and the content
# is made once and reused; rqbit is installed into target/bench-tools/ when missing.
# Every process it starts runs in its own process group and is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/bench-throughput"
TOOLS="$ROOT/target/bench-tools"
PY=/usr/bin/python3
ROUNDS=3
SIZE=1GiB
PIECE=1MiB
MEM_SIZES="256MiB"
PAIRS="lt-btvod lt-lt lt-rqbit btvod-btvod"
TMO=300
RQBIT=1
WRITE_MD=0

CMDLINE="scripts/bench-throughput.sh$(printf ' %q' "$@")"
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --piece-length) PIECE="$2"; shift 2 ;;
        --mem-sizes) MEM_SIZES="$2"; shift 2 ;;
        --pairs) PAIRS="$2"; shift 2 ;;
        --timeout) TMO="$2"; shift 2 ;;
        --no-rqbit) RQBIT=0; shift ;;
        --write-md) WRITE_MD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "--rounds must be a positive integer" >&2; exit 2 ;; esac
case "$TMO" in ''|*[!0-9]*|0) echo "--timeout must be a positive number of seconds" >&2; exit 2 ;; esac

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench/common.sh"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- prerequisites
if [ ! -x /usr/bin/time ]; then
    log "installing the time package"
    apt-get install -y time >/dev/null || { echo "install the Debian package 'time'" >&2; exit 1; }
fi
need openssl openssl
need ss iproute2
need setsid util-linux
"$PY" -c 'import libtorrent' 2>/dev/null || { echo "install python3-libtorrent" >&2; exit 1; }

mkdir -p "$WORK" "$TOOLS"
RQBIT_BIN="$TOOLS/bin/rqbit"
RQBIT_NOTE=""
want_pair() { case " $PAIRS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if want_pair lt-rqbit && [ "$RQBIT" = 1 ] && [ ! -x "$RQBIT_BIN" ]; then
    log "rqbit missing: cargo install rqbit into $TOOLS (long on 2 cores; log: $TOOLS/install.log)"
    if ! timeout 3600 cargo install rqbit --no-default-features --features default-tls \
        --root "$TOOLS" >"$TOOLS/install.log" 2>&1; then
        RQBIT_NOTE="rqbit could not be installed: $(grep -m1 -i 'error' "$TOOLS/install.log" || tail -1 "$TOOLS/install.log")"
        log "$RQBIT_NOTE"
    fi
fi
if want_pair lt-rqbit && { [ "$RQBIT" = 0 ] || [ ! -x "$RQBIT_BIN" ]; }; then
    PAIRS="$(echo " $PAIRS " | sed 's/ lt-rqbit / /; s/^ //; s/ $//')"
    [ -n "$RQBIT_NOTE" ] || RQBIT_NOTE="rqbit skipped (--no-rqbit or not installed)"
fi

log "building btvod (release)"
(cd "$ROOT" && cargo build --release --quiet --bin btvod)
BTVOD="$ROOT/target/release/btvod"

# --- content and torrents, made once per size and reused
declare -A CONTENT TORRENT
prepare() {
    local label="$1" bytes name
    bytes="$(bytes_of "$label")"
    name="bench-$label.bin"
    mkdir -p "$WORK/content"
    if [ ! -f "$WORK/content/$name" ] || [ "$(stat -c %s "$WORK/content/$name")" != "$bytes" ]; then
        log "making $label of deterministic content (AES-128-CTR keystream, fixed key)"
        head -c "$bytes" /dev/zero | openssl enc -aes-128-ctr -nosalt \
            -K 62747660f0d0000000000000000000ff -iv 00000000000000000000000000000000 \
            >"$WORK/content/$name.tmp"
        mv "$WORK/content/$name.tmp" "$WORK/content/$name"
    fi
    local t="$WORK/bench-$label-$PIECE.torrent"
    if [ ! -f "$t" ] || [ "$t" -ot "$WORK/content/$name" ]; then
        log "making $t (piece length $PIECE)"
        "$BTVOD" make-torrent "$WORK/content/$name" -o "$t" --piece-length "$PIECE" --no-date \
            >/dev/null
    fi
    CONTENT[$label]="$WORK/content/$name"
    TORRENT[$label]="$t"
}

# --- seeds: one btvod seed and one libtorrent seed per size, alive for the whole run
declare -A BT_SEED_PORT LT_SEED_PORT LT_RC4_SEED_PORT LT_UTP_SEED_PORT
# A libtorrent seed of $1 ("plain" or "rc4"); sets SEED_PORT.
start_lt_seed() {
    local label="$1" kind="$2" port extra=()
    [ "$kind" = rc4 ] && extra=(--encryption forced)
    [ "$kind" = utp ] && extra=(--transport utp)
    port="$(free_port)"
    start_bg "$WORK/logs/seed-lt-$kind-$label.out" "$WORK/logs/seed-lt-$kind-$label.err" \
        "$PY" "$ROOT/scripts/lt_peer.py" --torrent "${TORRENT[$label]}" \
        --save-path "$WORK/content" --listen-port "$port" --seed-mode "${extra[@]}"
    local pid="$STARTED_PID" deadline=$((SECONDS + 120))
    until grep -q '"state": "seeding"' "$WORK/logs/seed-lt-$kind-$label.out"; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            cat "$WORK/logs/seed-lt-$kind-$label.err" >&2
            echo "libtorrent seed did not reach seeding" >&2
            exit 1
        fi
        sleep 0.2
    done
    SEED_PORT="$port"
}
start_seeds() {
    local label="$1" port need_lt="$2" need_rc4="${3:-0}" need_utp="${4:-0}"
    port="$(free_port)"
    start_bg "$WORK/logs/seed-btvod-$label.out" "$WORK/logs/seed-btvod-$label.err" \
        "$BTVOD" seed "${TORRENT[$label]}" --content "${CONTENT[$label]}" -q \
        --port "$port" --bind 127.0.0.1
    wait_listening "$port" "$STARTED_PID" 120 \
        || { cat "$WORK/logs/seed-btvod-$label.err" >&2; echo "btvod seed did not start" >&2; exit 1; }
    BT_SEED_PORT[$label]="$port"
    if [ "$need_lt" = 1 ]; then
        start_lt_seed "$label" plain
        LT_SEED_PORT[$label]="$SEED_PORT"
    fi
    if [ "$need_rc4" = 1 ]; then
        start_lt_seed "$label" rc4
        LT_RC4_SEED_PORT[$label]="$SEED_PORT"
    fi
    if [ "$need_utp" = 1 ]; then
        start_lt_seed "$label" utp
        LT_UTP_SEED_PORT[$label]="$SEED_PORT"
    fi
}

# --- one transfer: prints "elapsed user sys maxrss_kib ok"
RESULTS="$WORK/results-$(date +%Y%m%d-%H%M%S).tsv"
printf 'size_bytes\tsize_label\tpair\tround\telapsed_s\tuser_s\tsys_s\tmaxrss_kib\tok\n' >"$RESULTS"
FAILURES=0

run_pair() {
    local label="$1" pair="$2" round="$3" bytes out tf name seed_port cmd=()
    bytes="$(bytes_of "$label")"
    name="$(basename "${CONTENT[$label]}")"
    out="$WORK/out/$pair"
    rm -rf "$out"
    mkdir -p "$out"
    tf="$WORK/logs/time-$label-$pair-$round.txt"
    case "$pair" in
        btvod-btvod) seed_port="${BT_SEED_PORT[$label]}" ;;
        *-rc4) seed_port="${LT_RC4_SEED_PORT[$label]}" ;;
        *-utp) seed_port="${LT_UTP_SEED_PORT[$label]}" ;;
        lt-*) seed_port="${LT_SEED_PORT[$label]}" ;;
    esac
    case "$pair" in
        lt-btvod-rc4)
            cmd=("$BTVOD" get "${TORRENT[$label]}" --out "$out" --peer "127.0.0.1:$seed_port"
                -q --port 0 --bind 127.0.0.1 --encryption require) ;;
        lt-btvod-utp)
            cmd=("$BTVOD" get "${TORRENT[$label]}" --out "$out" --peer "127.0.0.1:$seed_port"
                -q --port 0 --bind 127.0.0.1 --utp prefer --encryption disable) ;;
        lt-lt-utp)
            cmd=("$PY" "$ROOT/scripts/lt_peer.py" --torrent "${TORRENT[$label]}" --save-path "$out"
                --connect "127.0.0.1:$seed_port" --exit-when-complete --max-seconds "$TMO"
                --transport utp) ;;
        lt-lt-rc4)
            cmd=("$PY" "$ROOT/scripts/lt_peer.py" --torrent "${TORRENT[$label]}" --save-path "$out"
                --connect "127.0.0.1:$seed_port" --exit-when-complete --max-seconds "$TMO"
                --encryption forced) ;;
        *-btvod)
            cmd=("$BTVOD" get "${TORRENT[$label]}" --out "$out" --peer "127.0.0.1:$seed_port"
                -q --port 0 --bind 127.0.0.1) ;;
        lt-lt)
            cmd=("$PY" "$ROOT/scripts/lt_peer.py" --torrent "${TORRENT[$label]}" --save-path "$out"
                --connect "127.0.0.1:$seed_port" --exit-when-complete --max-seconds "$TMO") ;;
        lt-rqbit)
            # Global options before the subcommand; no DHT, LSD, UPnP, trackers or HTTP API.
            cmd=("$RQBIT_BIN" -v warn --disable-dht --disable-dht-persistence --disable-lsd
                --disable-upnp-port-forward --disable-trackers --listen-ip 127.0.0.1
                download -o "$out" --exit-on-finish --disable-http-api
                --initial-peers "127.0.0.1:$seed_port" "${TORRENT[$label]}") ;;
        *) echo "unknown pair $pair" >&2; exit 2 ;;
    esac
    local base="$WORK/logs/run-$label-$pair-$round"
    start_bg "$base.out" "$base.err" /usr/bin/time -f '%e %U %S %M' -o "$tf" \
        timeout --foreground -k 5 "$TMO" "${cmd[@]}"
    local pid="$STARTED_PID" rc=0
    wait "$pid" || rc=$?
    forget_group "$pid"
    local ok=1 e=0 u=0 s=0 m=0
    if [ "$rc" != 0 ]; then
        log "$pair $label round $round: exit status $rc (see $base.err)"
        ok=0
    fi
    if [ -s "$tf" ]; then read -r e u s m < <(tail -1 "$tf") || true; fi
    case "$e" in ''|*[!0-9.]*) e=0; ok=0 ;; esac
    local got
    got="$(find "$out" -type f -name "$name" | head -1)"
    if [ "$ok" = 1 ] && { [ -z "$got" ] || ! cmp -s "$got" "${CONTENT[$label]}"; }; then
        log "$pair $label round $round: downloaded file missing or different from the content"
        ok=0
    fi
    [ "$ok" = 1 ] || FAILURES=$((FAILURES + 1))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$bytes" "$label" "$(pretty "$pair")" \
        "$round" "$e" "$u" "$s" "$m" "$ok" >>"$RESULTS"
    rm -rf "$out"
    log "$(pretty "$pair") $label round $round: ${e}s wall, ${u}s user, ${s}s sys, ${m} KiB peak RSS, ok=$ok"
}

pretty() {
    case "$1" in
        btvod-btvod) echo "btvod->btvod" ;;
        lt-btvod) echo "libtorrent->btvod" ;;
        lt-lt) echo "libtorrent->libtorrent" ;;
        lt-rqbit) echo "libtorrent->rqbit" ;;
        lt-btvod-rc4) echo "libtorrent->btvod (RC4)" ;;
        lt-lt-rc4) echo "libtorrent->libtorrent (RC4)" ;;
        lt-btvod-utp) echo "libtorrent->btvod (uTP)" ;;
        lt-lt-utp) echo "libtorrent->libtorrent (uTP)" ;;
    esac
}

mkdir -p "$WORK/logs" "$WORK/out"
prepare "$SIZE"
need_lt=0
need_rc4=0
need_utp=0
for p in $PAIRS; do
    case "$p" in *-rc4) need_rc4=1 ;; *-utp) need_utp=1 ;; lt-*) need_lt=1 ;; esac
done
start_seeds "$SIZE" "$need_lt" "$need_rc4" "$need_utp"
MEM_LIST=()
for m in $MEM_SIZES; do [ "$m" = "$SIZE" ] || MEM_LIST+=("$m"); done
if want_pair btvod-btvod; then
    for m in "${MEM_LIST[@]}"; do prepare "$m"; start_seeds "$m" 0; done
fi

read -r -a PAIR_ARR <<<"$PAIRS"
n=${#PAIR_ARR[@]}
for round in $(seq "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for i in $(seq 0 $((n - 1))); do
        # Rotate the order each round so no client always runs first (or right after another).
        run_pair "$SIZE" "${PAIR_ARR[$(((i + round - 1) % n))]}" "$round"
    done
    if want_pair btvod-btvod; then
        for m in "${MEM_LIST[@]}"; do run_pair "$m" btvod-btvod "$round"; done
    fi
done
cleanup

CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -z "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ] || REV="$REV + uncommitted src changes"
HEADER="Run $(date -u +%Y-%m-%dT%H:%MZ), btvod at $REV, $ROUNDS rounds, piece length $PIECE, machine: nproc $(nproc), \"$CPU_MODEL\", load average at the end $(cut -d' ' -f1-3 /proc/loadavg).
Command: \`$CMDLINE\` (pairs: $PAIRS; size $SIZE; memory sizes: ${MEM_SIZES:-none})"
if [ -n "$RQBIT_NOTE" ]; then HEADER="$HEADER
Note: $RQBIT_NOTE"; fi
summ=("$PY" "$ROOT/scripts/bench/summarize.py" "$RESULTS" --header "$HEADER")
[ "$WRITE_MD" = 1 ] && summ+=(--benchmarks-md "$ROOT/BENCHMARKS.md")
"${summ[@]}"
log "raw results: $RESULTS"
if [ "$FAILURES" != 0 ]; then
    log "$FAILURES transfer(s) failed"
    exit 1
fi
