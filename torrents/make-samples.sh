#!/usr/bin/env bash
# Makes the sample torrents in this directory from the scenarios that define their content:
# the bytes are generated from each scenario's content seed, so every machine gets the same
# content and the same info-hash. The small .torrent files are committed; the content is not
# (pass --content to write it to torrents/content/, e.g. to seed it with another client).
#
#   torrents/make-samples.sh [--content]
#
# Uses $BTVOD_BIN, else target/release/btvod (built if missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
bin="${BTVOD_BIN:-$root/target/release/btvod}"
if [[ ! -x "$bin" ]]; then
  echo "make-samples: building btvod (cargo build --release)..." >&2
  (cd "$root" && cargo build --release --bin btvod) >&2
fi
with_content=""
[[ "${1:-}" == "--content" ]] && with_content=1
# scenario -> sample: demo -> sample-movie.bin, fast (and the other 6 MiB scenarios) ->
# movie-6m.bin, multifile -> sample-series (a multi-file torrent).
for scenario in demo fast multifile; do
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$bin" world "$root/scripts/scenarios/$scenario.toml" --prepare --run-dir "$tmp" \
    --announce http://127.0.0.1:6969/announce
  cp "$tmp"/*.torrent "$here/"
  if [[ -n "$with_content" ]]; then
    mkdir -p "$here/content"
    for item in "$tmp"/*; do
      [[ "$item" == *.torrent ]] && continue
      rm -rf "$here/content/$(basename "$item")"
      mv "$item" "$here/content/"
    done
  fi
  rm -rf "$tmp"
  trap - EXIT
done
echo "make-samples: torrents in $here${with_content:+, content in $here/content}" >&2
