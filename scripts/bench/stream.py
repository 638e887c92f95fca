#!/usr/bin/env python3
"""Streaming benchmark runs (called by scripts/bench-stream.sh, which builds and installs).

For each world and round, every client streams the same video in a fresh world built from the
same scenario, one client after the other, under mpv driven the same way
(scripts/mpv_drive.py: paced reading, a seek to 70% after --seek-at seconds of playback):
  btvod     `btvod stream` (with the world's origin as --server in the worlds that have one)
  rqbit     rqbit's HTTP stream (http://HOST/torrents/0/stream/0)
  lt        scripts/lt_stream.py, a simple libtorrent reader with piece deadlines
and, in worlds with an origin, `btvod --rate R --delay 6 --prefetch 2` (the classic command,
no player) for the server bytes the same world costs it.
Each run appends one JSON object to RESULTS; --summarize prints the markdown table.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"


def log(msg):
    print(f"[bench-stream {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start(cmd, out, err, env=None):
    return subprocess.Popen(cmd, stdout=open(out, "w"), stderr=open(err, "w"),
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def stop(proc, grace=10):
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return proc.returncode
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def wait_for(check, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def first_line_with(path, needle):
    try:
        with open(path) as f:
            for line in f:
                if needle in line:
                    return line
    except OSError:
        pass
    return None


def http_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)
    except Exception:  # noqa: BLE001 - a benchmark probe: any failure means "not yet"
        return None


def scenario_text(video, ratio, bitrate):
    # Three seeds, each uploading a third of ratio x bitrate: the viewer is the swarm's one
    # downloader, so ratio x bitrate is what it can get. (Partial peers that download compete
    # for it, and under a tight download limit a btvod peer reads its socket, REQUESTs
    # included, only as fast as the limit allows, which starves its uploads too.)
    each = int(ratio * bitrate / 3)
    return (
        f'name = "stream-{ratio}"\ndescription = "streaming benchmark, upload {ratio}x the bitrate"\n'
        f'seed = 5\n[content]\nname = "movie.mp4"\npath = "{video}"\npiece_size = "256KiB"\n'
        f'[[peers]]\nname = "seed"\ncount = 3\nhave = 1.0\nupload = "{each}B"\n'
    )


def run_one(args, world_name, ratio, with_server, client, rnd, bitrate, work):
    run_dir = os.path.join(work, f"{world_name}-{client}-{rnd}")
    # A fresh directory: a client finding the movie from an earlier run would not download.
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    scen = os.path.join(run_dir, "scenario.toml")
    with open(scen, "w") as f:
        f.write(scenario_text(args.video, ratio, bitrate))
    wdir = os.path.join(run_dir, "world")
    world = start([args.btvod, "world", scen, "--run-dir", wdir, "--no-viewers"],
                  os.path.join(run_dir, "world.out"), os.path.join(run_dir, "world.err"))
    procs = [world]
    result = {"world": world_name, "ratio": ratio, "server": with_server, "client": client,
              "round": rnd}
    try:
        info = wait_for(lambda: read_json(os.path.join(wdir, "world.json")), 60, "world.json")
        torrent, tracker, origin = info["torrent"], info["tracker_url"], info["origin_url"]
        cdir = os.path.join(run_dir, "client")
        os.makedirs(cdir, exist_ok=True)
        out, err = os.path.join(run_dir, "client.out"), os.path.join(run_dir, "client.err")
        url = None
        # First frame counts from here: when the viewer asked to play.
        since = time.time()
        if client == "btvod":
            cmd = [args.btvod, "stream", torrent, "--tracker", tracker, "--port", "0",
                   "--bind", "127.0.0.1", "--http-port", "0", "--saveas",
                   os.path.join(cdir, "movie.mp4"), "--report",
                   os.path.join(run_dir, "report.json"), "-q"]
            if with_server:
                cmd += ["--server", origin]
            proc = start(cmd, out, err)
            procs.append(proc)
            line = wait_for(lambda: first_line_with(out, " at http://"), 30, "btvod's URL")
            url = line.split(" at ", 1)[1].strip()
        elif client == "rqbit":
            port = free_port()
            cmd = [args.rqbit, "-v", "warn", "--disable-dht", "--disable-dht-persistence",
                   "--disable-lsd", "--disable-upnp-port-forward", "--listen-ip", "127.0.0.1",
                   "--http-api-listen-addr", f"127.0.0.1:{port}", "download", "-o", cdir,
                   torrent]
            proc = start(cmd, out, err)
            procs.append(proc)
            wait_for(lambda: http_json(f"http://127.0.0.1:{port}/torrents"), 30, "rqbit's API")
            url = f"http://127.0.0.1:{port}/torrents/0/stream/0"
            result["api"] = f"http://127.0.0.1:{port}"
        elif client == "lt":
            cmd = [PY, os.path.join(ROOT, "scripts/lt_stream.py"), "--torrent", torrent,
                   "--save-path", cdir, "--rate", str(bitrate)]
            proc = start(cmd, out, err)
            procs.append(proc)
            line = wait_for(lambda: first_line_with(out, '"listening"'), 30, "lt_stream")
            url = json.loads(line)["url"]
        elif client == "classic":
            cmd = [args.btvod, "--rate", f"{bitrate}B", "--delay", "6", "--prefetch", "2",
                   "--server", origin, "--tracker", tracker, "--port", "0", "--bind",
                   "127.0.0.1", "--saveas", os.path.join(cdir, "movie.mp4"), "--report",
                   os.path.join(run_dir, "report.json"), "-q", torrent]
            proc = start(cmd, out, err)
            procs.append(proc)
            proc.wait(args.timeout)
        if url:
            drive = subprocess.run(
                [PY, os.path.join(ROOT, "scripts/mpv_drive.py"), url, "--seek-at",
                 str(args.seek_at), "--seek-to", "0.7", "--timeout", str(args.timeout),
                 "--since", str(since)],
                capture_output=True, text=True, timeout=args.timeout + 30)
            result["mpv"] = json.loads(drive.stdout.strip() or "{}")
            if client == "rqbit":
                stats = http_json(f"{result['api']}/torrents/0/stats/v1") or {}
                result["downloaded"] = (stats.get("progress_bytes")
                                        or stats.get("live", {}).get("snapshot", {}).get(
                                            "fetched_bytes"))
        stop(procs[-1])
        report = read_json(os.path.join(run_dir, "report.json"))
        if report:
            result["report"] = report
        if with_server:
            stats = http_json(origin.rstrip("/") + "/stats") or {}
            result["origin_bytes"] = stats.get("bytes_served")
    except Exception as e:  # noqa: BLE001 - record the failure and go on with the next run
        result["error"] = str(e)
        log(f"{world_name} {client} round {rnd}: {e}")
    finally:
        for p in reversed(procs):
            stop(p)
    return result


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {statistics.stdev(values):.2f}"


def summarize(path, bitrate):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    worlds = []
    for r in runs:
        key = (r["world"], r["ratio"], r["server"])
        if key not in worlds:
            worlds.append(key)
    out = ["| world | client | runs | first frame s | stalls | stall s | seek→resume s "
           "| reached end | server MB | abandoned KB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for world, ratio, server in worlds:
        for client in ["btvod", "lt", "rqbit", "classic"]:
            rs = [r for r in runs if r["world"] == world and r["client"] == client]
            if not rs:
                continue
            ok = [r for r in rs if "error" not in r]
            mpv = [r.get("mpv", {}) for r in ok]
            server_mb = [r["report"]["penalty_bytes"] / 1e6 for r in ok
                         if "report" in r and server]
            abandoned = [r["report"].get("abandoned_bytes", 0) / 1e3 for r in ok
                         if "report" in r and client == "btvod"]
            ends = sum(1 for m in mpv if m.get("reached_end"))
            out.append(
                f"| {world} ({ratio}x{', origin' if server else ''}) | {client} | "
                f"{len(ok)}/{len(rs)} | {mean_sd([m.get('first_frame_s') for m in mpv])} | "
                f"{mean_sd([m.get('stall_count') for m in mpv])} | "
                f"{mean_sd([m.get('stall_s') for m in mpv])} | "
                f"{mean_sd([m.get('seek_resume_s') for m in mpv])} | "
                f"{ends if mpv else '-'}/{len(mpv) if mpv else '-'} | "
                f"{mean_sd(server_mb) if server_mb else '-'} | "
                f"{mean_sd(abandoned) if abandoned else '-'} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--btvod", required=True)
    ap.add_argument("--rqbit")
    ap.add_argument("--video", required=True)
    ap.add_argument("--bitrate", type=int, required=True, help="bytes per second")
    ap.add_argument("--worlds", default="w136:1.36:0,w150:1.5:0,w136o:1.36:1")
    ap.add_argument("--clients", default="btvod,lt,rqbit")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seek-at", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--work", default=None)
    ap.add_argument("--results", required=True)
    ap.add_argument("--summarize", action="store_true")
    args = ap.parse_args()
    if args.summarize:
        print(summarize(args.results, args.bitrate))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench-stream-")
    clients = [c for c in args.clients.split(",") if c]
    if "rqbit" in clients and not (args.rqbit and os.access(args.rqbit, os.X_OK)):
        log("rqbit not installed: skipped")
        clients.remove("rqbit")
    for rnd in range(1, args.runs + 1):
        for spec in args.worlds.split(","):
            name, ratio, server = spec.split(":")
            order = clients + (["classic"] if server == "1" else [])
            # Rotate the order each round so no client always goes first.
            k = (rnd - 1) % len(order)
            for client in order[k:] + order[:k]:
                log(f"round {rnd} {name} {client}")
                r = run_one(args, name, float(ratio), server == "1", client, rnd, args.bitrate, work)
                with open(args.results, "a") as f:
                    f.write(json.dumps(r) + "\n")
                log(json.dumps({k2: r.get(k2) for k2 in ("client", "world", "mpv", "error")}))


if __name__ == "__main__":
    main()
