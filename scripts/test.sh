#!/usr/bin/env bash
# Runs btvod's whole test suite: installs the third-party programs the interop tests talk to
# (Debian packages) when they are missing, then runs `cargo test`. Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v transmission-show >/dev/null 2>&1 || missing+=(transmission-cli)
command -v opentracker >/dev/null 2>&1 || missing+=(opentracker)
command -v mktorrent >/dev/null 2>&1 || missing+=(mktorrent)
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
# A real player and the video it plays (tests/stream_player.rs).
command -v mpv >/dev/null 2>&1 || missing+=(mpv)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# Network namespaces as hosts of a LAN (tests/lsd.rs over IPv6).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# Debian's libtorrent binding imports only under the system interpreter.
/usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1 || missing+=(python3-libtorrent)

if ((${#missing[@]})); then
  echo "scripts/test.sh: installing test dependencies: ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then
    apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
  else
    echo "scripts/test.sh: missing Debian packages: ${missing[*]}" >&2
    echo "  install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  "${apt[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi

exec cargo test "$@"
