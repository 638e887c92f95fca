# Shared by the whole-swarm benchmark scripts (sourced, not run): size parsing, process-group
# bookkeeping that stops exactly what the script started, ports. Needs $PY (a Python 3) set.
# START_PREFIX (an array, empty by default) goes before every background command, e.g. nice.

# Byte count of "256MiB", "1GiB", "1000000" ...
bytes_of() {
    local s="$1" n unit
    n="${s%%[!0-9]*}"; unit="${s#"$n"}"
    [ -n "$n" ] || { echo "bad size: $s" >&2; exit 2; }
    case "$unit" in
        ""|B) echo "$n" ;;
        KiB) echo $((n * 1024)) ;;
        MiB) echo $((n * 1024 * 1024)) ;;
        GiB) echo $((n * 1024 * 1024 * 1024)) ;;
        *) echo "bad size unit in $s (use B, KiB, MiB or GiB)" >&2; exit 2 ;;
    esac
}

# --- process bookkeeping: every child is a process-group leader (setsid) and is stopped by id.
PGIDS=()
START_PREFIX=()
stop_group() {
    local pg="$1" i
    kill -TERM -- "-$pg" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 -- "-$pg" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
}
cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
    PGIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" in its own process group with stdout/stderr to files; sets STARTED_PID.
start_bg() {
    local out="$1" err="$2"; shift 2
    setsid "${START_PREFIX[@]}" "$@" >"$out" 2>"$err" </dev/null &
    STARTED_PID=$!
    PGIDS+=("$STARTED_PID")
}
forget_group() {
    local pg="$1" kept=() p
    for p in "${PGIDS[@]}"; do [ "$p" = "$pg" ] || kept+=("$p"); done
    PGIDS=("${kept[@]}")
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1 while process $2 lives (deadline $3 s).
wait_listening() {
    local port="$1" pid="$2" deadline=$((SECONDS + $3))
    while [ $SECONDS -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
        sleep 0.2
    done
    return 1
}

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: apt-get install $2" >&2; exit 1; }; }
