#!/usr/bin/python3
"""A simple libtorrent HTTP streamer with piece deadlines: the reference `btvod stream` is
measured against in the streaming benchmark (BENCHMARKS.md, "Streaming").

One libtorrent 2.0 session (lt_peer.py's loopback settings) downloads the movie file only and
serves it over HTTP/1.1 with single byte ranges. A response reading byte b waits for b's piece
and, each time it enters a new piece, gives that piece and the next ones within --window-s of
playback deadlines spaced by the piece's play time at --rate (set_piece_deadline), after
clearing the deadlines of the previous window (clear_piece_deadlines): so a seek moves the
deadlines with the reader. Bytes are read from the file once libtorrent has the piece
(libtorrent 2.0 writes through a shared memory map, so a verified piece is visible to read()).

Usage: lt_stream.py --torrent T --save-path DIR --http-port N --rate BYTES_PER_S
                    [--tracker URL]... [--connect HOST:PORT]... [--window-s 10]
Prints {"event":"listening","http_port":N,"url":...} on stdout once serving, then runs until
SIGTERM or SIGINT.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_peer import emit, host_port, loopback_settings, start_session  # noqa: E402

import libtorrent as lt  # noqa: E402

CHUNK = 16 * 1024
POLL_S = 0.02


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--rate", type=float, required=True, metavar="BYTES_PER_S")
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--tracker", action="append", default=[])
    p.add_argument("--connect", type=host_port, action="append", default=[])
    return p.parse_args()


class Movie:
    """The torrent, its movie file, and the deadline window of the current reader."""

    def __init__(self, handle, info, file_index, rate, window_s, save_path):
        self.handle = handle
        self.info = info
        fs = info.files()
        self.index = file_index
        self.offset = fs.file_offset(file_index)
        self.size = fs.file_size(file_index)
        self.path = os.path.join(save_path, fs.file_path(file_index))
        self.name = os.path.basename(fs.file_path(file_index))
        self.piece_len = info.piece_length()
        self.piece_ms = max(1, int(1000 * self.piece_len / rate))
        self.window = max(1, int(window_s * rate / self.piece_len))
        self.lock = threading.Lock()
        self.window_start = None

    def piece_of(self, pos):
        return (self.offset + pos) // self.piece_len

    def prioritise(self, piece):
        """Deadlines for `piece` and the next ones; the previous window's are cleared."""
        with self.lock:
            if self.window_start == piece:
                return
            self.window_start = piece
            last = min(self.info.num_pieces(), piece + self.window)
            self.handle.clear_piece_deadlines()
            for i, p in enumerate(range(piece, last)):
                self.handle.set_piece_deadline(p, i * self.piece_ms)

    def wait_for(self, piece, alive):
        while not self.handle.have_piece(piece):
            if not alive():
                return False
            time.sleep(POLL_S)
        return True


def handler_for(movie):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_HEAD(self):
            self.answer(body=False)

        def do_GET(self):
            self.answer(body=True)

        def answer(self, body):
            size = movie.size
            start, end, status = 0, size, 200
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                else:
                    start, end = max(0, size - int(m.group(2))), size
                status = 206
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if not body:
                return
            pos = start
            # The file exists once libtorrent has written the first piece of it.
            first = movie.piece_of(pos)
            movie.prioritise(first)
            movie.wait_for(first, lambda: True)
            with open(movie.path, "rb") as f:
                while pos < end:
                    piece = movie.piece_of(pos)
                    movie.prioritise(piece)
                    if not movie.wait_for(piece, lambda: True):
                        return
                    piece_end = (piece + 1) * movie.piece_len - movie.offset
                    n = min(CHUNK, end - pos, piece_end - pos)
                    f.seek(pos)
                    data = f.read(n)
                    if len(data) != n:
                        return
                    try:
                        self.wfile.write(data)
                    except OSError:
                        return
                    pos += n

    return Handler


def main():
    args = parse_args()
    settings = loopback_settings(0, 0)
    settings["tick_interval"] = 100
    ses = start_session(settings)
    info = lt.torrent_info(args.torrent)
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = args.save_path
    params.trackers = args.tracker
    fs = info.files()
    movie_index = max(range(fs.num_files()), key=fs.file_size)
    params.file_priorities = [4 if i == movie_index else 0 for i in range(fs.num_files())]
    handle = ses.add_torrent(params)
    for host, port in args.connect:
        handle.connect_peer((host, port))
    movie = Movie(handle, info, movie_index, args.rate, args.window_s, args.save_path)
    server = ThreadingHTTPServer(("127.0.0.1", args.http_port), handler_for(movie))
    server.daemon_threads = True
    port = server.server_address[1]
    emit("listening", http_port=port, url=f"http://127.0.0.1:{port}/{movie.name}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while not stop.wait(1.0):
        s = handle.status()
        emit("status", downloaded=s.total_payload_download, pieces=s.num_pieces)
    s = handle.status()
    emit("stopped", downloaded=s.total_payload_download, pieces=s.num_pieces)
    server.shutdown()


if __name__ == "__main__":
    main()
