#!/usr/bin/env python3
"""Drives a headless mpv over its JSON IPC like a viewer, and reports what the viewer saw.

Usage: mpv_drive.py URL [--seek-at S --seek-to FRACTION] [--timeout S] [--mpv PATH] [--since T]

mpv reads the URL paced like a player with a small cache (interop-notes.md: a 128 KiB
demuxer cache, 16 KiB receive buffer, short_seek_size=1 so a seek is a new Range request).
Prints one JSON object on stdout:
  first_frame_s   seconds from --since (a time.time() value, e.g. when the streaming client was
                  started; default: this script's start, mpv's own start-up included) to the
                  first playback-restart (first frame shown)
  stalls          [[start_s, seconds], ...] while paused-for-cache was true after the first frame
  stall_s         their sum
  seek_resume_s   seconds from the seek command to the next playback-restart (if a seek was asked)
  last_pos_s      the last time-pos seen; duration_s the movie's duration
  reached_end     last_pos_s >= duration_s - 0.5 (mpv says eof even for a cut stream)
Exit status 0 when the run ended by itself (eof or end-file), 2 on timeout.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seek-at", type=float, default=None, help="seconds of playback before seeking")
    ap.add_argument("--seek-to", type=float, default=0.7, help="fraction of the movie to seek to")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--mpv", default="mpv")
    ap.add_argument("--since", type=float, default=None,
                    help="time.time() that first_frame_s counts from")
    args = ap.parse_args()
    if args.since is None:
        args.since = time.time()

    tmp = tempfile.mkdtemp(prefix="mpvdrive")
    sock_path = os.path.join(tmp, "ipc")
    mpv = subprocess.Popen(
        [
            args.mpv, "--no-config", "--idle=yes", "--vo=null", "--ao=null", "--really-quiet",
            f"--input-ipc-server={sock_path}", "--cache=yes", "--cache-secs=2",
            "--demuxer-max-bytes=128KiB", "--demuxer-readahead-secs=2",
            "--stream-lavf-o=short_seek_size=1,recv_buffer_size=16384",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        return drive(args, mpv, sock_path)
    finally:
        mpv.kill()
        mpv.wait()


def drive(args, mpv, sock_path) -> int:
    deadline = time.monotonic() + 10
    while not os.path.exists(sock_path):
        if time.monotonic() > deadline or mpv.poll() is not None:
            print(json.dumps({"error": "mpv did not open its IPC socket"}))
            return 1
        time.sleep(0.02)
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile("rwb", buffering=0)

    def send(*cmd):
        f.write((json.dumps({"command": list(cmd)}) + "\n").encode())

    for i, prop in enumerate(["time-pos", "paused-for-cache", "duration", "eof-reached"], 1):
        send("observe_property", i, prop)
    start = time.monotonic()
    send("loadfile", args.url)
    now = lambda: time.monotonic() - start
    first_frame = None
    duration = None
    last_pos = None
    stalls = []
    stall_since = None
    seek_sent = None
    seek_resume = None
    ended = False
    s.settimeout(0.2)
    buf = b""
    end_at = start + args.timeout
    while time.monotonic() < end_at:
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        except socket.timeout:
            pass
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            ev = msg.get("event")
            if os.environ.get("MPV_DRIVE_TRACE"):
                print(f"{now():8.3f} {json.dumps(msg)}", file=sys.stderr)
            if ev == "playback-restart":
                if first_frame is None:
                    first_frame = time.time() - args.since
                elif seek_sent is not None and seek_resume is None:
                    seek_resume = now() - seek_sent
            elif ev == "end-file":
                ended = True
            elif ev == "property-change":
                name, data = msg.get("name"), msg.get("data")
                if name == "time-pos" and data is not None:
                    last_pos = data
                elif name == "duration" and data:
                    duration = data
                elif name == "paused-for-cache" and first_frame is not None:
                    if data and stall_since is None:
                        stall_since = now()
                    elif not data and stall_since is not None:
                        stalls.append([round(stall_since, 3), round(now() - stall_since, 3)])
                        stall_since = None
                elif name == "eof-reached" and data:
                    ended = True
        if ended:
            break
        if (args.seek_at is not None and seek_sent is None and last_pos is not None
                and last_pos >= args.seek_at and duration):
            send("seek", args.seek_to * 100, "absolute-percent")
            seek_sent = now()
    if stall_since is not None:
        stalls.append([round(stall_since, 3), round(now() - stall_since, 3)])
    out = {
        "first_frame_s": first_frame,
        "stalls": stalls,
        "stall_count": len(stalls),
        "stall_s": round(sum(d for _, d in stalls), 3),
        "seek_resume_s": seek_resume,
        "last_pos_s": last_pos,
        "duration_s": duration,
        "reached_end": bool(duration and last_pos is not None and last_pos >= duration - 0.5),
        "wall_s": round(now(), 3),
        "timed_out": not ended,
    }
    print(json.dumps(out))
    return 0 if ended else 2


if __name__ == "__main__":
    sys.exit(main())
