#!/usr/bin/env bash
# Starts and stops a local BitTorrent world for VoD experiments.
set -euo pipefail
case "${1:-}" in
  demo|start|stop|status)
    echo "run_all_vod.sh $1: not built yet." >&2
    echo "  'demo' will build btvod, start a tracker, a VoD origin and a world of seeds and" >&2
    echo "  partial peers on 127.0.0.1, play a sample torrent with" >&2
    echo "  'btvod --rate 60 --delay 6 --prefetch 2', print the penalty report, and stop." >&2
    exit 2
    ;;
  *)
    echo "usage: run_all_vod.sh demo | start [CLIENT COMMAND...] | stop | status" >&2
    exit 2
    ;;
esac
