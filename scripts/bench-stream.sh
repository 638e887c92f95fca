#!/usr/bin/env bash
# Streaming benchmark: `btvod stream`, rqbit 9's HTTP stream and a simple libtorrent reader
# with piece deadlines (scripts/lt_stream.py), each under mpv driven the same way
# (scripts/mpv_drive.py), one after the other in fresh btvod worlds built from the same
# scenario: three seeds whose upload is 1.36x or 1.5x the
# video's bitrate, without and with a metered origin (there `btvod --rate` runs too, for the
# server bytes the classic command pays in the same world). N rounds; the table of means and
# spreads goes to stdout and, with --write-md, into BENCHMARKS.md ("Streaming").
#
# Usage: scripts/bench-stream.sh [--runs 3] [--secs 60] [--kbit 1700] [--clients btvod,lt,rqbit]
#          [--worlds w136:1.36:0,w150:1.5:0,w136o:1.36:1] [--no-rqbit] [--write-md]
# rqbit is installed into target/bench-tools/ when missing (cargo install; long on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/bench-stream"
TOOLS="$ROOT/target/bench-tools"
RUNS=3
SECS=60
KBIT=1700
CLIENTS="btvod,lt,rqbit"
WORLDS="w136:1.36:0,w150:1.5:0,w136o:1.36:1"
RQBIT=1
WRITE=0
ARGS="$*"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --secs) SECS="$2"; shift 2 ;;
        --kbit) KBIT="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --worlds) WORLDS="$2"; shift 2 ;;
        --no-rqbit) RQBIT=0; shift ;;
        --write-md) WRITE=1; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-stream: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for p in mpv ffmpeg ffprobe; do
    command -v "$p" >/dev/null || { echo "bench-stream: needs $p (apt-get install mpv ffmpeg)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import libtorrent' 2>/dev/null || { echo "bench-stream: needs python3-libtorrent" >&2; exit 1; }

cd "$ROOT"
cargo build --release --quiet
mkdir -p "$WORK" "$TOOLS"
RQBIT_BIN="$TOOLS/bin/rqbit"
if [[ "$CLIENTS" == *rqbit* && "$RQBIT" == 1 && ! -x "$RQBIT_BIN" ]]; then
    echo "bench-stream: installing rqbit 9 into $TOOLS (log: $TOOLS/install.log)" >&2
    timeout 3600 cargo install rqbit --version "^9" --no-default-features --features default-tls \
        --root "$TOOLS" >"$TOOLS/install.log" 2>&1 || echo "bench-stream: rqbit not installed" >&2
fi

# The video: deterministic H.264/AAC, CBR, a keyframe a second, faststart.
VIDEO="$WORK/movie-${SECS}s-${KBIT}k.mp4"
if [[ ! -s "$VIDEO" ]]; then
    vk=$((KBIT - 96))
    ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=640x360:rate=25:duration=$SECS" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECS" \
        -c:v libx264 -b:v "${vk}k" -minrate "${vk}k" -maxrate "${vk}k" -bufsize "${vk}k" \
        -x264-params nal-hrd=cbr:force-cfr=1 -g 25 -keyint_min 25 -sc_threshold 0 \
        -c:a aac -b:a 96k -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
        -flags:a +bitexact -movflags +faststart "$VIDEO"
fi
size=$(stat -c %s "$VIDEO")
BITRATE=$((size / SECS))
RESULTS="$WORK/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
COMMIT="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT+=" plus uncommitted changes to src/"
SECONDS=0
/usr/bin/python3 "$ROOT/scripts/bench/stream.py" --btvod "$ROOT/target/release/btvod" \
    --rqbit "$RQBIT_BIN" --video "$VIDEO" --bitrate "$BITRATE" --worlds "$WORLDS" \
    --clients "$CLIENTS" --runs "$RUNS" --work "$WORK/runs" --results "$RESULTS"
TABLE="$(/usr/bin/python3 "$ROOT/scripts/bench/stream.py" --btvod x --video x \
    --bitrate "$BITRATE" --results "$RESULTS" --summarize)"
HEADER="Command: \`scripts/bench-stream.sh $ARGS\` ($((SECONDS / 60)) min, commit $COMMIT, $(date -u +%Y-%m-%d), $(nproc) cores).
Video: ${SECS} s, $((BITRATE * 8 / 1000)) kbit/s ($size bytes), 256 KiB pieces. Results: \`${RESULTS#"$ROOT"/}\`."
printf '%s\n\n%s\n' "$HEADER" "$TABLE"
if [[ "$WRITE" == 1 ]]; then
    /usr/bin/python3 - "$ROOT/BENCHMARKS.md" "$HEADER" "$TABLE" <<'EOF'
import sys
path, header, table = sys.argv[1:4]
text = open(path).read()
start, end = "<!-- stream-table:start -->", "<!-- stream-table:end -->"
block = f"{start}\n{header}\n\n{table}\n{end}"
if start in text and end in text:
    text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
EOF
fi
