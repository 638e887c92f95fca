#!/usr/bin/env bash
# run_all_vod.sh: starts and stops a local BitTorrent world for VoD experiments.
#
#   run_all_vod.sh start [--scenario FILE] [--no-viewers] [CLIENT COMMAND...]
#   run_all_vod.sh stop
#   run_all_vod.sh status
#   run_all_vod.sh demo
#
# `start` builds target/release/btvod if it is missing or older than the sources, makes a run
# directory runs/<timestamp>/ (runs/current points at it), and starts `btvod world SCENARIO`
# in the background: the built-in tracker, the VoD origin, and the scenario's seeds, partial
# peers and viewers, all on 127.0.0.1. It waits for world.json, then starts the client command
# if one is given, in RUN/client/, with TORRENT, TRACKER, SERVER and RUN_DIR in its environment
# and {torrent} {tracker} {server} {run} in its arguments replaced. Every process it starts is
# recorded in runs/current/pids (PID, start time, role) in its own session, and `stop` ends
# exactly those (TERM, then KILL after a grace period) and checks nothing of them is left.
# `demo` starts the demo world, plays it with `btvod --rate 60 --delay 6 --prefetch 2`, prints
# the penalty report and stops.
#
# Environment: BTVOD_BIN (a btvod binary to use instead of building), BTVOD_RUNS (where run
# directories go; default ./runs), BTVOD_WORLD_WAIT (seconds to wait for the world, default 60),
# BTVOD_DEMO_TIMEOUT (seconds the demo client may take, default 180).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNS="${BTVOD_RUNS:-$ROOT/runs}"
CURRENT="$RUNS/current"
SCENARIOS="$ROOT/scripts/scenarios"
WORLD_WAIT="${BTVOD_WORLD_WAIT:-60}"
DEMO_TIMEOUT="${BTVOD_DEMO_TIMEOUT:-180}"
STOP_GRACE=15

say() { printf 'run_all_vod: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

usage() {
  cat >&2 <<'EOF'
usage: run_all_vod.sh start [--scenario FILE] [--no-viewers] [CLIENT COMMAND...]
       run_all_vod.sh stop | status | demo

  start    start a local world (tracker, VoD origin, seeds, partial peers, viewers) from a
           scenario (default scripts/scenarios/demo.toml), then CLIENT COMMAND if given, e.g.
             run_all_vod.sh start target/release/btvod --rate 60 --server {server} \
                 --tracker {tracker} --port 0 --report {run}/report.json {torrent}
  stop     stop exactly the processes `start` recorded, and check none is left
  status   show the current world, its URLs and its processes
  demo     start the demo world, play it with `btvod --rate 60 --delay 6 --prefetch 2`,
           print the penalty report, stop
EOF
}

# The btvod binary: $BTVOD_BIN, else target/release/btvod, built if missing or stale.
btvod_bin() {
  if [[ -n "${BTVOD_BIN:-}" ]]; then
    [[ -x "$BTVOD_BIN" ]] || die "BTVOD_BIN=$BTVOD_BIN is not an executable"
    # Absolute, since clients run in their own directory.
    printf '%s/%s\n' "$(cd "$(dirname "$BTVOD_BIN")" && pwd)" "$(basename "$BTVOD_BIN")"
    return
  fi
  local bin="$ROOT/target/release/btvod"
  local stale=""
  if [[ -x "$bin" ]]; then
    stale="$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$bin" -print -quit 2>/dev/null || true)"
  fi
  if [[ ! -x "$bin" || -n "$stale" ]]; then
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (https://rustup.rs), then try again"
    say "building btvod (cargo build --release; the first build takes a few minutes)..."
    (cd "$ROOT" && cargo build --release --bin btvod) >&2 || die "cargo build --release failed"
  fi
  printf '%s\n' "$bin"
}

# The start time of PID (field 22 of /proc/PID/stat), empty if it is gone or a zombie.
start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  # Fields after the command name, which may hold spaces: state is the first.
  local rest="${stat##*) }"
  local -a f
  read -r -a f <<<"$rest"
  [[ "${f[0]}" == "Z" ]] && return 0
  printf '%s\n' "${f[19]}"
}

# True when the recorded process is still the one we started.
alive() {
  local now
  now="$(start_time "$1")"
  [[ -n "$now" && "$now" == "$2" ]]
}

# Live processes in process group $1 (our processes lead their own group).
group_members() {
  local stat rest pid
  local -a f
  for stat in /proc/[0-9]*/stat; do
    rest="$(cat "$stat" 2>/dev/null)" || continue
    pid="${stat#/proc/}"
    pid="${pid%/stat}"
    rest="${rest##*) }"
    read -r -a f <<<"$rest"
    [[ "${f[0]}" != "Z" && "${f[2]}" == "$1" ]] && printf '%s\n' "$pid"
  done
  return 0
}

record() { # PID ROLE
  local t=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    t="$(start_time "$1")"
    [[ -n "$t" ]] && break
    sleep 0.05
  done
  [[ -n "$t" ]] || t="gone"
  printf '%s %s %s\n' "$1" "$t" "$2" >>"$CURRENT/pids"
}

# Any recorded process (or member of its group) still running?
anything_running() {
  [[ -f "$CURRENT/pids" ]] || return 1
  local pid t role
  while read -r pid t role; do
    alive "$pid" "$t" && return 0
    [[ -n "$(group_members "$pid")" ]] && return 0
  done <"$CURRENT/pids"
  return 1
}

json_field() { # FILE KEY: a top-level string field of world.json
  sed -n "s/^  \"$2\": \"\(.*\)\",\{0,1\}$/\1/p" "$1" | head -n 1
}

cmd_start() {
  local scenario="$SCENARIOS/demo.toml"
  local -a world_flags=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --scenario)
        [[ $# -ge 2 ]] || die "--scenario needs a file"
        scenario="$2"
        shift 2
        ;;
      --scenario=*)
        scenario="${1#--scenario=}"
        shift
        ;;
      --no-viewers)
        world_flags+=(--no-viewers)
        shift
        ;;
      --)
        shift
        break
        ;;
      *) break ;;
    esac
  done
  [[ -f "$scenario" ]] || die "no scenario file $scenario (see $SCENARIOS/)"
  scenario="$(cd "$(dirname "$scenario")" && pwd)/$(basename "$scenario")"
  if anything_running; then
    die "a world is already running in $(readlink -f "$CURRENT"): run_all_vod.sh stop first"
  fi
  local bin
  bin="$(btvod_bin)"
  mkdir -p "$RUNS"
  local stamp run
  stamp="$(date +%Y%m%d-%H%M%S)"
  run="$RUNS/$stamp"
  [[ -e "$run" ]] && run="$RUNS/$stamp-$$" && stamp="$stamp-$$"
  mkdir -p "$run/client"
  ln -sfn "$stamp" "$CURRENT"
  : >"$CURRENT/pids"

  say "starting world $(basename "$scenario") in $run"
  setsid "$bin" world "$scenario" --run-dir "$run" "${world_flags[@]}" \
    >"$run/world.log" 2>&1 </dev/null &
  local world_pid=$!
  record "$world_pid" world
  local waited=0
  while [[ ! -f "$run/world.json" ]]; do
    if ! kill -0 "$world_pid" 2>/dev/null; then
      tail -n 20 "$run/world.log" >&2 || true
      die "the world exited before it was ready (log: $run/world.log)"
    fi
    if ((waited >= WORLD_WAIT * 10)); then
      cmd_stop
      die "the world was not ready within ${WORLD_WAIT} s (log: $run/world.log)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  TORRENT="$(json_field "$run/world.json" torrent)"
  TRACKER="$(json_field "$run/world.json" tracker_url)"
  SERVER="$(json_field "$run/world.json" origin_url)"
  RUN_DIR="$run"
  export TORRENT TRACKER SERVER RUN_DIR
  say "world running (PID $world_pid)"
  printf 'tracker  %s\norigin   %s\ntorrent  %s\nrun dir  %s\n' "$TRACKER" "$SERVER" "$TORRENT" "$run"

  if [[ $# -gt 0 ]]; then
    local -a cmd=()
    local arg
    for arg in "$@"; do
      arg="${arg//\{torrent\}/$TORRENT}"
      arg="${arg//\{tracker\}/$TRACKER}"
      arg="${arg//\{server\}/$SERVER}"
      arg="${arg//\{run\}/$run}"
      cmd+=("$arg")
    done
    # The client runs in RUN/client: make a relative program path absolute first.
    if [[ "${cmd[0]}" == */* && "${cmd[0]}" != /* ]]; then
      cmd[0]="$PWD/${cmd[0]}"
    fi
    (cd "$run/client" && exec setsid "${cmd[@]}" >"$run/client.log" 2>&1 </dev/null) &
    local client_pid=$!
    record "$client_pid" client
    say "client running (PID $client_pid) in $run/client; log: $run/client.log"
  fi
  [[ -z "${IN_DEMO:-}" ]] && say "stop everything with: $0 stop"
  return 0
}

cmd_stop() {
  if [[ ! -f "$CURRENT/pids" ]]; then
    say "nothing to stop (no $CURRENT/pids)"
    return 0
  fi
  local -a pids=() times=() roles=()
  local pid t role i
  while read -r pid t role; do
    pids+=("$pid")
    times+=("$t")
    roles+=("$role")
  done <"$CURRENT/pids"
  # Clients first, then the world, so the world's peers see them leave.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if alive "${pids[i]}" "${times[i]}" || [[ -n "$(group_members "${pids[i]}")" ]]; then
      say "stopping ${roles[i]} (PID ${pids[i]})"
      kill -TERM -- "-${pids[i]}" 2>/dev/null || kill -TERM "${pids[i]}" 2>/dev/null || true
    fi
  done
  local deadline=$((SECONDS + STOP_GRACE)) left
  while :; do
    left=0
    for ((i = 0; i < ${#pids[@]}; i++)); do
      if alive "${pids[i]}" "${times[i]}" || [[ -n "$(group_members "${pids[i]}")" ]]; then
        left=1
      fi
    done
    ((left == 0 || SECONDS >= deadline)) && break
    sleep 0.2
  done
  if ((left)); then
    for ((i = 0; i < ${#pids[@]}; i++)); do
      if alive "${pids[i]}" "${times[i]}" || [[ -n "$(group_members "${pids[i]}")" ]]; then
        say "${roles[i]} (PID ${pids[i]}) did not stop within ${STOP_GRACE} s: killing it"
        kill -KILL -- "-${pids[i]}" 2>/dev/null || kill -KILL "${pids[i]}" 2>/dev/null || true
      fi
    done
    sleep 1
  fi
  local survivors=""
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if alive "${pids[i]}" "${times[i]}"; then
      survivors+=" ${pids[i]}"
    fi
    survivors+="$(group_members "${pids[i]}" | tr '\n' ' ' | sed 's/^/ /;s/ *$//')"
  done
  if [[ -n "${survivors// /}" ]]; then
    die "still running after KILL:$survivors"
  fi
  rm -f "$CURRENT/pids"
  say "stopped; nothing left running (run dir: $(readlink -f "$CURRENT"))"
}

cmd_status() {
  if [[ ! -f "$CURRENT/pids" ]]; then
    echo "no world running"
    return 0
  fi
  local run pid t role
  run="$(readlink -f "$CURRENT")"
  echo "run dir  $run"
  if [[ -f "$run/world.json" ]]; then
    printf 'tracker  %s\norigin   %s\ntorrent  %s\n' "$(json_field "$run/world.json" tracker_url)" \
      "$(json_field "$run/world.json" origin_url)" "$(json_field "$run/world.json" torrent)"
    local states
    states="$(sed -n 's/^      "state": "\(.*\)",$/\1/p' "$run/world.json" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')"
    echo "peers    ${states:-none}"
  fi
  while read -r pid t role; do
    if alive "$pid" "$t"; then
      echo "$role  PID $pid  running"
    else
      echo "$role  PID $pid  exited"
    fi
  done <"$CURRENT/pids"
  [[ -f "$run/report.json" ]] && echo "report   $run/report.json"
  return 0
}

cmd_demo() {
  local bin
  bin="$(btvod_bin)"
  export BTVOD_BIN="$bin"
  IN_DEMO=1
  trap 'cmd_stop' EXIT
  trap 'say "interrupted"; exit 130' INT TERM
  cmd_start --scenario "$SCENARIOS/demo.toml"
  local run
  run="$(readlink -f "$CURRENT")"
  say "playing $(basename "$TORRENT") with: btvod --rate 60 --delay 6 --prefetch 2 (at most ${DEMO_TIMEOUT} s)"
  local status=0
  (cd "$run/client" && timeout "$DEMO_TIMEOUT" "$bin" --rate 60 --delay 6 --prefetch 2 \
    --server "$SERVER" --tracker "$TRACKER" --bind 127.0.0.1 --port 0 \
    --report "$run/report.json" "$TORRENT") || status=$?
  if [[ $status -ne 0 || ! -f "$run/report.json" ]]; then
    [[ $status -eq 124 ]] && die "the client did not finish within ${DEMO_TIMEOUT} s"
    die "the client failed (exit status $status)"
  fi
  echo "penalty report ($run/report.json):"
  cat "$run/report.json"
  trap - EXIT
  cmd_stop
  # In a terminal, about 20 s of a text movie: it arrives from a seed slower than the movie,
  # and the late frames are bought from the server (the penalty on the bottom line).
  if [[ -t 1 ]]; then demo_movie "$run" "$bin"; fi
}

demo_movie() {
  local run="$1" bin="$2" dir port pid
  dir="$run/movie"
  mkdir -p "$dir/watch"
  /usr/bin/python3 "$ROOT/scripts/make_ascii_movie.py" --minutes 0.35 -o "$dir/walk.txt" >/dev/null
  "$bin" make-torrent "$dir/walk.txt" -o "$dir/walk.torrent" --piece-length 16KiB >/dev/null
  port=$((20000 + RANDOM % 10000))
  "$bin" seed "$dir/walk.torrent" --content "$dir/walk.txt" --bind 127.0.0.1 --port "$port" \
    --max-upload-rate 1 --no-dht --no-lsd --no-lan-search -q >"$dir/seed.log" 2>&1 &
  pid=$!
  say "a text movie from a slow seed, late frames from the server (q quits)"
  sleep 1
  (cd "$dir/watch" && "$bin" watch ../walk.torrent --peer "127.0.0.1:$port" --bind 127.0.0.1 \
    --port 0 --no-dht --no-lsd --server "file:$dir/walk.txt" --delay 2) || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start)
    shift
    cmd_start "$@"
    ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  demo) cmd_demo ;;
  -h | --help | help) usage ;;
  *)
    usage
    exit 2
    ;;
esac
