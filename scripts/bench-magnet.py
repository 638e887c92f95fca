#!/usr/bin/python3
"""Magnet benchmark: time from start to the metadata, the first piece and the complete
download, for `btvod get MAGNET` and for libtorrent given the same magnet, from one libtorrent
seed on 127.0.0.1 that the link names (`x.pe`). The two clients alternate (the order flips each round);
every download is checked against the content. Times run from process start (libtorrent's
include Python importing it and its session starting, reported apart). Prints a Markdown table
of medians and ranges and the btvod/libtorrent ratios, for the metadata, the first piece and
the complete download.

With --dht the link holds only the info-hash: both clients find the seed through a loopback
DHT of two libtorrent nodes (the seed's and a router's), bootstrapping from the router; every
run gets a fresh DHT (the time to start it is not counted).

Usage: scripts/bench-magnet.py [--runs 5] [--size-mib 64] [--piece-kib 256] [--timeout 120]
                               [--dht]
Work files go to target/bench-magnet/ (content made once). Needs python3-libtorrent and a
release build (`cargo build --release`). The first piece is the first verified: btvod's
log line, libtorrent's piece_finished_alert.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench-magnet")
BTVOD = os.path.join(ROOT, "target", "release", "btvod")
LT_PEER = os.path.join(ROOT, "scripts", "lt_peer.py")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--piece-kib", type=int, default=256)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--dht", action="store_true", help="find the seed through a loopback DHT")
    a = p.parse_args()
    if a.runs < 1 or a.size_mib < 1 or a.piece_kib < 16:
        p.error("--runs and --size-mib must be positive, --piece-kib at least 16")
    return a


def content(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    rng = random.Random(7)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n


def sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seed(torrent, seed_dir, extra=()):
    proc = subprocess.Popen(
        [sys.executable, LT_PEER, "--torrent", torrent, "--save-path", seed_dir, "--seed-mode",
         *extra], stdout=subprocess.PIPE, text=True)
    port = None
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "listening":
            port = event["port"]
        # Timing starts once the seed has checked its files and seeds.
        if port and event.get("event") == "status" and event.get("state") == "seeding":
            return proc, port
    raise SystemExit("the libtorrent seed did not start")


EXTRA = {"btvod": [], "libtorrent": []}


def run_btvod(magnet, out, timeout):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    start = time.monotonic()
    # Times are when lines appear, from process start as for libtorrent (not -q: the first
    # piece is an info log line).
    proc = subprocess.Popen([BTVOD, "get", magnet, "--out", out, "--bind", "127.0.0.1",
                             "--port", "0", *EXTRA["btvod"]],
                            stderr=subprocess.PIPE, text=True)
    metadata, first, lines = None, None, []
    for line in proc.stderr:
        lines.append(line)
        if metadata is None and "metadata fetched in" in line:
            metadata = time.monotonic() - start
        if first is None and "first piece verified" in line:
            first = time.monotonic() - start
    code = proc.wait(timeout=timeout)
    total = time.monotonic() - start
    if code != 0 or metadata is None or first is None:
        raise SystemExit("btvod get failed or did not say when the metadata or the first "
                         "piece came:\n" + "".join(lines[-20:]))
    return metadata, first, total


def run_libtorrent(magnet, out, timeout):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, LT_PEER, "--magnet", magnet, "--save-path", out,
                             "--exit-when-complete", "--max-seconds", str(timeout),
                             *EXTRA["libtorrent"]],
                            stdout=subprocess.PIPE, text=True)
    metadata, first = None, None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        event = json.loads(line)
        if event.get("event") == "listening":
            # Python's import of libtorrent and the session's start, before any network work.
            run_libtorrent.ready.append(time.monotonic() - start)
        if event.get("event") == "metadata":
            metadata = time.monotonic() - start
        if event.get("event") == "first_piece":
            first = time.monotonic() - start
    code = proc.wait()
    total = time.monotonic() - start
    if code != 0 or metadata is None or first is None:
        raise SystemExit(f"libtorrent did not complete (exit {code}):\n" + "".join(lines[-3:]))
    return metadata, first, total


run_libtorrent.ready = []


def start_named_world(torrent, seed_dir, info_hash):
    """One seed that the link names with x.pe; DHT at the clients' defaults."""
    seed, port = start_seed(torrent, seed_dir)
    magnet = f"magnet:?xt=urn:btih:{info_hash}&dn=movie.bin&x.pe=127.0.0.1:{port}"
    return [seed], magnet, []


def start_dht_world(torrent, seed_dir, info_hash):
    """A two-node libtorrent DHT (the seed's node and a router's) that the seed has announced
    to; the link holds only the info-hash and the clients bootstrap from the router."""
    seed_port, router_port = free_port(), free_port()
    router = subprocess.Popen(
        [sys.executable, LT_PEER, "--magnet", "magnet:?xt=urn:btih:" + "5" * 40,
         "--save-path", os.path.join(WORK, "router"), "--listen-port", str(router_port),
         "--dht-bootstrap", f"127.0.0.1:{seed_port}"], stdout=subprocess.DEVNULL)
    seed, _ = start_seed(torrent, seed_dir, ["--listen-port", str(seed_port),
                                             "--dht-bootstrap", f"127.0.0.1:{router_port}"])
    time.sleep(5)  # the seed's first DHT announces
    return [seed, router], f"magnet:?xt=urn:btih:{info_hash}", [
        "--dht-bootstrap", f"127.0.0.1:{router_port}"]


def stop(world):
    if world is None:
        return
    for proc in world[0]:
        proc.terminate()
        proc.wait()


def summary(values):
    med = statistics.median(values)
    return med, f"{med:.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    a = parse_args()
    if not os.access(BTVOD, os.X_OK):
        raise SystemExit("build first: cargo build --release")
    os.makedirs(WORK, exist_ok=True)
    data = os.path.join(WORK, "movie.bin")
    content(data, a.size_mib << 20)
    seed_dir = os.path.join(WORK, "seed")
    os.makedirs(seed_dir, exist_ok=True)
    if not os.path.exists(os.path.join(seed_dir, "movie.bin")):
        os.link(data, os.path.join(seed_dir, "movie.bin"))
    torrent = os.path.join(WORK, "movie.torrent")
    subprocess.run([BTVOD, "make-torrent", data, "-o", torrent, "--no-date", "--piece-length",
                    f"{a.piece_kib}KiB"], check=True, capture_output=True)
    info_hash = re.search(r"Info-hash:\s*([0-9a-f]{40})", subprocess.run(
        [BTVOD, "info", torrent], check=True, capture_output=True, text=True).stdout).group(1)
    want = sha1(data)
    results = {"btvod": ([], [], []), "libtorrent": ([], [], [])}
    runners = {"btvod": run_btvod, "libtorrent": run_libtorrent}
    world = None
    try:
        if not a.dht:
            world = start_named_world(torrent, seed_dir, info_hash)
        for r in range(a.runs):
            order = ["btvod", "libtorrent"] if r % 2 == 0 else ["libtorrent", "btvod"]
            for name in order:
                if a.dht:
                    # A fresh DHT each run: in one long-lived two-node DHT, repeated runs stall
                    # in one client or the other after a few runs (BENCHMARKS.md).
                    stop(world)
                    world = start_dht_world(torrent, seed_dir, info_hash)
                procs, magnet, extra = world
                EXTRA[name] = extra
                out = os.path.join(WORK, f"dl-{name}")
                times = runners[name](magnet, out, a.timeout)
                if sha1(os.path.join(out, "movie.bin")) != want:
                    raise SystemExit(f"{name}: the download differs from the content")
                for column, t in zip(results[name], times):
                    column.append(t)
                print(f"run {r + 1} {name}: metadata {times[0]:.2f} s, first piece "
                      f"{times[1]:.2f} s, complete {times[2]:.2f} s", file=sys.stderr)
    finally:
        stop(world)
    how = "through the DHT" if a.dht else "named by x.pe"
    print(f"{a.runs} runs, {a.size_mib} MiB in {a.piece_kib} KiB pieces, seed {how}, seconds "
          "from start: median [min-max]\n")
    print("| client | metadata s | first piece s | complete s |")
    print("|---|---|---|---|")
    meds = {}
    for name, columns in results.items():
        shown = [summary(c) for c in columns]
        meds[name] = [med for med, _ in shown]
        print(f"| {name} | " + " | ".join(text for _, text in shown) + " |")
    _, ready = summary(run_libtorrent.ready)
    print(f"\nlibtorrent's process start to its session listening (inside the times above): "
          f"{ready} s")
    b, l = meds["btvod"], meds["libtorrent"]
    print(f"\nbtvod/libtorrent (medians): metadata {b[0] / l[0]:.2f}x, "
          f"first piece {b[1] / l[1]:.2f}x, complete {b[2] / l[2]:.2f}x")


if __name__ == "__main__":
    main()
