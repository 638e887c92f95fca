#!/usr/bin/python3
"""A libtorrent video-on-demand viewer scored by btvod's VoD contract (../shared/vod-scoring.md).

It joins a swarm with one libtorrent 2.0 session (the settings of lt_peer.py: loopback only, no
DHT/LSD/UPnP/NAT-PMP/uTP, several connections per IP, no encryption, every address in the
global peer class so rate limits hold) and streams the movie with libtorrent's own machinery:

  --mode deadline    set_piece_deadline() on every movie piece, with its contract deadline;
  --mode sequential  the sequential_download flag, no deadlines.

Scoring is the contract's, so the result compares with btvod's report. t = 0 is the moment the
torrent is added and libtorrent has verified what the save path already holds (at once when it
is empty); pieces present then count as present at t = 0. Movie piece i (movie bytes from s_i)
is due at d_i = D - P + max(s_i, 0) / R.

At d_i, if libtorrent does not have the piece, the blocks it does not hold are fetched from the
VoD server (one HTTP Range request per contiguous run of missing 16 KiB blocks and per file),
the blocks it holds are read back from the partial file(s), the whole piece is handed to
libtorrent with add_piece() (which writes it, checks its SHA-1 and announces HAVE), and every
byte received from the server is penalty. If that piece then fails its hash check, the whole
piece is fetched again and those bytes count too (a piece the server sent whole that still
fails means the server holds other content: that is an error, exit 1). Once every movie piece
is present the report is written and the script exits (or, with --seed-after, keeps seeding
and rewrites the report with the final upload counters when stopped).

How libtorrent's state is read, and what is approximate:
- Held blocks come from get_download_queue(): only blocks in the "finished" state (written to
  disk) count as held. Blocks "requested" or "writing" (received, not yet on disk) count as
  missing and are fetched from the server: conservative, so the penalty is never
  under-counted. A piece whose blocks are all finished at its deadline is only awaiting its
  hash check: nothing is fetched unless that check fails.
- Held blocks are read from the files on disk (libtorrent 2.0 writes through a shared memory
  map, so a finished block is visible to read()); pad files (BEP 47) read as zeros and are
  never fetched. add_piece() without overwrite_existing skips blocks libtorrent already has
  finished, so a block that finished meanwhile keeps the peer's copy.
- libtorrent's add_piece() sends CANCEL only for blocks requested from several peers; other
  in-flight requests are answered and the blocks dropped as redundant. They show up in
  wasted_bytes, not in the penalty, but they cost the swarm's bandwidth: libtorrent keeps
  request_queue_time (3 s by default) of download requested from each peer, so behind a slow
  seed much of what arrives is for pieces the server already completed. --request-queue-time
  tunes that (libtorrent's defaults otherwise).
- The session ticks every 100 ms (tick_interval; libtorrent's default, 500 ms, delays the first
  connection and time-critical requests by up to half a second: 0.16 s vs 0.51 s to finish a
  2 MiB movie from an unlimited loopback seed).
- The fetch is issued at d_i (no lead time): a fetch that takes time shows up as stall_s.
- peer_bytes: movie bytes of each present movie piece that did not come from the server.
- duplicate_bytes, wasted_bytes: from libtorrent's redundant-byte counters. wasted_bytes is
  the part it files as "unknown" or "already seeding" (blocks that arrive for a piece that is
  already complete, which is what a late block for a server-completed piece becomes);
  duplicate_bytes is the rest of total_redundant_bytes (end-game and time-critical duplicate
  requests, timed-out and cancelled requests). failed_bytes is total_failed_bytes.
- stall_s: playback starts at t = D at R bytes/s; each movie piece must be present when its
  first movie byte plays (d_i + P, shifted by earlier stalls), as btvod computes it.
- peers_seen: distinct peer ids seen, from the connection alerts (a disconnect names the peer
  id) and get_peer_info() every 250 ms.
- Pieces of other files are downloaded as libtorrent decides; only movie pieces are scored.

Output: JSON lines on stdout ({"event":"listening","port":N}, "status" about once a second
(with "contiguous": movie bytes present from the first on, for the experiment's plot),
"server_fetch" for each piece the server patched, "hash_failed", "complete" with the report),
a one-line summary on stderr, and with --report FILE the report as one JSON object.

Exit codes: 0 complete (or stopped by SIGTERM/SIGINT), 1 error, 2 bad arguments,
3 --max-seconds ran out before every movie piece was present.
"""

import argparse
import http.client
import json
import os
import signal
import sys
import time
import urllib.parse

try:
    import libtorrent as lt
except ImportError as err:
    sys.stderr.write(json.dumps({
        "event": "error",
        "message": f"cannot import libtorrent ({err}): install the Debian package "
                   "python3-libtorrent and run this script with /usr/bin/python3",
    }) + "\n")
    sys.exit(1)

BLOCK = 16 * 1024
# get_download_queue() block states (libtorrent block_info::block_state_t).
BLOCK_FINISHED = 3
STATUS_PERIOD_S = 1.0
PEER_SAMPLE_PERIOD_S = 0.25
# A safety net for missed alerts: every so often, poll which movie pieces are present.
HAVE_SCAN_PERIOD_S = 1.0
MAX_POLL_S = 0.05
HTTP_TIMEOUT_S = 20.0
HTTP_ATTEMPTS = 4


# The JSON-lines protocol and argument helpers are lt_peer.py's (same directory).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_peer import (  # noqa: E402
    emit, fail, host_port, loopback_settings, start_session, wait_for_alerts, wait_listening)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torrent", required=True, help=".torrent file of the movie")
    p.add_argument("--save-path", required=True, help="directory receiving the content")
    p.add_argument("--rate", type=float, required=True, metavar="BYTES_PER_S",
                   help="playback rate R in bytes per second")
    p.add_argument("--delay", type=float, required=True, metavar="S", help="start-up delay D")
    p.add_argument("--prefetch", type=float, default=0.0, metavar="S",
                   help="prefetch P (0 <= P <= D)")
    p.add_argument("--file", type=int, default=None, metavar="INDEX",
                   help="the movie's file index in the torrent (default: the largest file)")
    p.add_argument("--server", required=True, metavar="URL",
                   help="VoD server: http://HOST:PORT/ (BEP 19 layout, as `btvod origin` "
                        "serves) or file:/path (the content on a local disk)")
    p.add_argument("--mode", choices=("deadline", "sequential"), default="deadline")
    p.add_argument("--connect", type=host_port, action="append", default=[],
                   metavar="HOST:PORT", help="peer to dial (repeatable)")
    p.add_argument("--tracker", action="append", default=[], metavar="URL",
                   help="announce here instead of the torrent's trackers (repeatable)")
    p.add_argument("--listen-port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any)")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--max-connections", type=int, default=0,
                   help="connections kept at most, 0 = libtorrent's default (200)")
    p.add_argument("--request-queue-time", type=int, default=None, metavar="S",
                   help="libtorrent's request_queue_time: seconds of download kept requested "
                        "from each peer (libtorrent's default, 3, when not given)")
    p.add_argument("--report", metavar="FILE", help="write the report here as JSON")
    p.add_argument("--max-seconds", type=float, default=0, help="hard stop after N s (0 = never)")
    p.add_argument("--seed-after", action="store_true",
                   help="keep seeding once the movie is complete, until SIGTERM/SIGINT")
    args = p.parse_args()
    if not args.rate > 0:
        p.error("--rate must be more than 0 bytes per second")
    if not 0 <= args.prefetch <= args.delay:
        p.error("need 0 <= --prefetch <= --delay")
    if not 0 <= args.listen_port < 65536:
        p.error("--listen-port must be 0..65535")
    if args.request_queue_time is not None and not args.request_queue_time > 0:
        p.error("--request-queue-time must be more than 0")
    if min(args.upload_limit, args.max_seconds, args.max_connections) < 0:
        p.error("--upload-limit, --max-seconds and --max-connections must not be negative")
    scheme = urllib.parse.urlsplit(args.server).scheme
    if scheme not in ("http", "file"):
        p.error(f"--server must be an http:// or file: URL, got {args.server!r}")
    return args


def make_session(args):
    settings = loopback_settings(args.listen_port, args.upload_limit,
                                 max_connections=args.max_connections)
    settings.update({
        # libtorrent's housekeeping tick (500 ms by default) also paces new connections and
        # time-critical requests, and deadlines can be fractions of a second apart: tick faster.
        "tick_interval": 100,
        "alert_queue_size": 100000,
        "alert_mask": lt.alert_category.error | lt.alert_category.status
        | lt.alert_category.tracker | lt.alert_category.piece_progress
        | lt.alert_category.connect,
    })
    if args.request_queue_time is not None:
        settings["request_queue_time"] = args.request_queue_time
    return start_session(settings)


def wait_checked(ses, handle, deadline):
    """Waits for libtorrent's check of what the save path already holds."""
    checking = (lt.torrent_status.states.checking_files,
                lt.torrent_status.states.checking_resume_data)
    while time.monotonic() < deadline:
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                fail(alert.message())
            if isinstance(alert, lt.torrent_checked_alert):
                return
        if handle.status().state not in checking:
            return
        wait_for_alerts(ses, 0.02)
    fail("libtorrent did not finish checking the save path within 120 s")


class ServerError(Exception):
    pass


class VodServer:
    """Byte ranges of the torrent's files from the VoD server, every body byte counted."""

    def __init__(self, url, info):
        self.url = url
        self.files = info.files()
        self.single = info.num_files() == 1
        self.name = info.name()
        parts = urllib.parse.urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base_path = parts.path or "/"
        self.conn = None
        self.bytes_received = 0
        self.requests = 0

    def file_ref(self, index):
        """The request path (http) or local path (file:) of torrent file `index` (BEP 19)."""
        rel = self.files.file_path(index).replace(os.sep, "/")
        if self.scheme == "file":
            if self.single and not self.base_path.endswith("/"):
                return urllib.parse.unquote(self.base_path)
            # A directory holding the content, as --save-path holds it.
            return os.path.join(urllib.parse.unquote(self.base_path), rel)
        if self.single and not self.base_path.endswith("/"):
            return self.base_path
        return self.base_path.rstrip("/") + "/" + urllib.parse.quote(rel)

    def fetch(self, index, offset, length):
        """Bytes [offset, offset+length) of file `index`; counts every byte received."""
        if self.scheme == "file":
            return self._fetch_file(index, offset, length)
        return self._fetch_http(index, offset, length)

    def _fetch_file(self, index, offset, length):
        path = self.file_ref(index)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError as err:
            raise ServerError(f"cannot read {path}: {err}") from err
        self.requests += 1
        self.bytes_received += len(data)
        if len(data) != length:
            raise ServerError(f"{path} is shorter than the torrent says")
        return data

    def _fetch_http(self, index, offset, length):
        path = self.file_ref(index)
        got = bytearray()
        last_error = None
        for _attempt in range(HTTP_ATTEMPTS):
            start = offset + len(got)
            end = offset + length - 1
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=HTTP_TIMEOUT_S)
                self.conn.request("GET", path, headers={"Range": f"bytes={start}-{end}"})
                self.requests += 1
                resp = self.conn.getresponse()
                if resp.status != 206:
                    resp.close()
                    self.close()
                    raise ServerError(f"{self.url}: GET {path} bytes={start}-{end} answered "
                                      f"{resp.status} {resp.reason} (206 expected)")
                content_range = resp.getheader("Content-Range", "")
                if not content_range.startswith(f"bytes {start}-"):
                    resp.close()
                    self.close()
                    raise ServerError(f"{self.url}: asked bytes={start}-{end} of {path}, got "
                                      f"Content-Range {content_range!r}")
                while len(got) < length:
                    chunk = resp.read(min(65536, length - len(got)))
                    if not chunk:
                        break
                    got += chunk
                    self.bytes_received += len(chunk)
                if len(got) == length:
                    # The body is exactly what was asked; leave the connection reusable.
                    resp.read()
                    return bytes(got)
                self.close()
                last_error = f"body ended after {len(got)} of {length} bytes"
            except (OSError, http.client.HTTPException) as err:
                self.close()
                last_error = str(err) or type(err).__name__
        raise ServerError(f"{self.url}: GET {path} failed {HTTP_ATTEMPTS} times: {last_error}")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Movie:
    """The movie file's place in the torrent and the contract's deadlines."""

    def __init__(self, info, file_index, rate, delay, prefetch):
        fs = info.files()
        self.info = info
        self.fs = fs
        self.file_index = file_index
        self.start = fs.file_offset(file_index)
        self.length = fs.file_size(file_index)
        self.end = self.start + self.length
        self.piece_len = info.piece_length()
        self.first = self.start // self.piece_len
        self.last = (self.end - 1) // self.piece_len
        self.rate, self.delay, self.prefetch = rate, delay, prefetch

    def pieces(self):
        return range(self.first, self.last + 1)

    def piece_range(self, piece):
        start = piece * self.piece_len
        return start, start + self.info.piece_size(piece)

    def deadline(self, piece):
        start, _ = self.piece_range(piece)
        return self.delay - self.prefetch + max(start - self.start, 0) / self.rate

    def play_time(self, piece):
        return self.deadline(piece) + self.prefetch

    def overlap(self, start, end):
        return max(0, min(end, self.end) - max(start, self.start))


def is_pad(fs, index):
    """A BEP 47 pad file: zeros that exist only in the torrent, never on disk or the server."""
    return bool(int(fs.file_flags(index)) & int(lt.file_storage.flag_pad_file))


def choose_file(info, wanted, parser_error):
    fs = info.files()
    real = [i for i in range(fs.num_files()) if not is_pad(fs, i)]
    if wanted is not None:
        if wanted not in real:
            parser_error(f"--file {wanted}: the torrent's files are "
                         + ", ".join(f"{i} ({fs.file_path(i)})" for i in real))
        index = wanted
    else:
        index = max(real, key=lambda i: (fs.file_size(i), -i))
    if fs.file_size(index) == 0:
        parser_error(f"file {index} ({fs.file_path(index)}) is empty: nothing to play")
    return index


class Viewer:
    def __init__(self, args, info, movie, ses, handle, server, started):
        self.args = args
        self.info = info
        self.movie = movie
        self.ses = ses
        self.handle = handle
        self.server = server
        self.started = started
        self.ready_at = {}
        # piece -> block indices whose bytes came from the server
        self.server_blocks = {}
        self.server_bytes = {}
        # Pieces the server patched, waiting for libtorrent's verdict on add_piece().
        self.patched = set()
        # Past their deadline with every block held: waiting for libtorrent's hash check.
        self.awaiting_check = set()
        self.cursor = movie.first
        self.hash_failures_after_server = 0
        # Pieces whose every byte came from the server: if one fails, the server is wrong.
        self.whole_from_server = set()
        self.hash_failures = 0
        self.peers = set()
        self.waste = {}
        self.complete_at = None

    def now(self):
        return time.monotonic() - self.started

    # --- the contract -------------------------------------------------------------------------

    def mark_ready(self, piece, at):
        if piece in self.ready_at or not self.movie.first <= piece <= self.movie.last:
            return
        self.ready_at[piece] = at
        self.patched.discard(piece)
        self.awaiting_check.discard(piece)
        if self.complete_at is None and len(self.ready_at) == len(self.movie.pieces()):
            self.complete_at = at

    def handle_due(self):
        now = self.now()
        while self.cursor <= self.movie.last and self.movie.deadline(self.cursor) <= now:
            piece = self.cursor
            self.cursor += 1
            if piece in self.ready_at:
                continue
            if self.handle.have_piece(piece):
                self.mark_ready(piece, now)
                continue
            self.patch(piece, whole=False)
            now = self.now()

    def block_states(self, piece):
        """libtorrent's state of each block of a piece it is downloading (0 none, 1 requested,
        2 writing, 3 finished), or [] if the piece is not in its download queue."""
        for entry in self.handle.get_download_queue():
            if entry["piece_index"] == piece:
                return [b["state"] for b in entry["blocks"]]
        return []

    def patch(self, piece, whole):
        """Completes `piece` with the server's bytes for every block not held (all, if whole)."""
        start, end = self.movie.piece_range(piece)
        size = end - start
        nblocks = (size + BLOCK - 1) // BLOCK
        states = [] if whole else self.block_states(piece)
        held = {i for i, state in enumerate(states) if state == BLOCK_FINISHED}
        missing = [b for b in range(nblocks) if b not in held]
        if not missing:
            # Every block is on disk: libtorrent is checking the piece. Pay only if it fails.
            self.awaiting_check.add(piece)
            return
        before = self.server.bytes_received
        data = bytearray(size)
        try:
            for run_start, run_end in runs(missing):
                lo = run_start * BLOCK
                hi = min(run_end * BLOCK, size)
                self.fill(data, piece, lo, hi, from_server=True)
            for block in sorted(held):
                lo = block * BLOCK
                self.fill(data, piece, lo, min(lo + BLOCK, size), from_server=False)
        finally:
            got = self.server.bytes_received - before
            if got:
                self.server_bytes[piece] = self.server_bytes.get(piece, 0) + got
        if not held:
            self.whole_from_server.add(piece)
        blocks = self.server_blocks.setdefault(piece, set())
        blocks.update(missing)
        flags = lt.add_piece_flags_t.overwrite_existing if whole else 0
        self.handle.add_piece(piece, bytes(data), flags)
        self.patched.add(piece)
        self.awaiting_check.discard(piece)
        emit("server_fetch", piece=piece, t=round(self.now(), 3), bytes=got,
             blocks=len(missing), held=len(held), whole=whole,
             states="".join(str(state) for state in states))

    def fill(self, data, piece, lo, hi, from_server):
        """Copies piece bytes [lo, hi) into data, file by file (pad files are zeros)."""
        for sl in self.info.map_block(piece, lo, hi - lo):
            pos = lo
            lo += sl.size
            if is_pad(self.movie.fs, sl.file_index) or sl.size == 0:
                continue
            if from_server:
                chunk = self.server.fetch(sl.file_index, sl.offset, sl.size)
            else:
                chunk = read_local(os.path.join(self.args.save_path,
                                                self.movie.fs.file_path(sl.file_index)),
                                   sl.offset, sl.size)
            data[pos:pos + len(chunk)] = chunk

    def on_hash_failed(self, piece):
        self.hash_failures += 1
        if piece in self.ready_at or not self.movie.first <= piece <= self.movie.last:
            return
        past_deadline = piece < self.cursor
        if piece in self.patched:
            self.hash_failures_after_server += 1
            if piece in self.whole_from_server:
                raise ServerError(f"piece {piece} as the server sent it whole fails its hash "
                                  "check: the server's content is not this torrent's")
        if piece in self.patched or (past_deadline and piece in self.awaiting_check):
            emit("hash_failed", piece=piece, t=round(self.now(), 3), refetch=True)
            self.patched.discard(piece)
            self.patch(piece, whole=True)
        # Before its deadline a failed piece is the swarm's to deliver again.

    # --- libtorrent's side ---------------------------------------------------------------------

    def pump_alerts(self):
        for alert in self.ses.pop_alerts():
            if isinstance(alert, lt.piece_finished_alert):
                self.mark_ready(int(alert.piece_index), self.now())
            elif isinstance(alert, lt.hash_failed_alert):
                self.on_hash_failed(int(alert.piece_index))
            elif isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                fail(alert.message())
            elif isinstance(alert, lt.tracker_reply_alert):
                emit("tracker_reply", url=alert.url, peers=alert.num_peers)
            elif isinstance(alert, lt.tracker_error_alert):
                emit("tracker_error", url=alert.url, message=alert.message())
            elif isinstance(alert, lt.peer_alert):
                self.note_peer(alert.pid)
            elif isinstance(alert, lt.session_stats_alert):
                self.waste = {k: v for k, v in alert.values.items()
                              if k.startswith("ses.waste_piece_")}

    def scan_have(self):
        pieces = self.handle.status(lt.status_flags_t.query_pieces).pieces
        now = self.now()
        for piece in self.movie.pieces():
            if piece not in self.ready_at and pieces[piece]:
                self.mark_ready(piece, now)

    def sample_peers(self):
        for peer in self.handle.get_peer_info():
            self.note_peer(peer.pid)

    def note_peer(self, pid):
        # Before its handshake a peer has no id yet: count it once it has one.
        pid = str(pid)
        if pid.strip("0"):
            self.peers.add(pid)

    def stall(self, now):
        shift = 0.0
        for piece in self.movie.pieces():
            need = self.movie.play_time(piece) + shift
            at = self.ready_at.get(piece)
            if at is None:
                if now > need:
                    shift += now - need
                break
            if at > need:
                shift += at - need
        return shift

    def report(self):
        s = self.handle.status()
        movie = self.movie
        peer_bytes = 0
        for piece in self.ready_at:
            start, end = movie.piece_range(piece)
            from_server = 0
            for block in self.server_blocks.get(piece, ()):
                lo = start + block * BLOCK
                from_server += movie.overlap(lo, min(lo + BLOCK, end))
            peer_bytes += movie.overlap(start, end) - from_server
        wasted = self.waste.get("ses.waste_piece_unknown", 0) \
            + self.waste.get("ses.waste_piece_seed", 0)
        redundant = s.total_redundant_bytes
        penalty = self.server.bytes_received
        now = self.now()
        return {
            "torrent_name": self.info.name(),
            "info_hash": str(self.info.info_hashes().v1),
            "file": movie.fs.file_path(movie.file_index),
            "file_index": movie.file_index,
            "policy": f"libtorrent-{self.args.mode}",
            "client": f"libtorrent {lt.__version__}",
            "rate_bytes_per_s": round(self.args.rate),  # an integer, as in btvod's report
            "delay_s": self.args.delay,
            "prefetch_s": self.args.prefetch,
            "movie_bytes": movie.length,
            "piece_length": movie.piece_len,
            "movie_pieces": len(movie.pieces()),
            "penalty_bytes": penalty,
            "penalty_fraction": penalty / movie.length,
            "pieces_from_server": sum(1 for b in self.server_bytes.values() if b > 0),
            "server_requests": self.server.requests,
            "peer_bytes": peer_bytes,
            "uploaded_bytes": s.total_payload_upload,
            "downloaded_bytes": s.total_payload_download,
            "duplicate_bytes": max(0, redundant - wasted),
            "wasted_bytes": min(wasted, redundant),
            "failed_bytes": s.total_failed_bytes,
            "hash_failures": self.hash_failures,
            "hash_failures_after_server": self.hash_failures_after_server,
            "stall_s": round(self.stall(now), 6),
            "complete": self.complete_at is not None,
            "complete_at_s": None if self.complete_at is None else round(self.complete_at, 6),
            "elapsed_s": round(now, 6),
            "movie_pieces_present": len(self.ready_at),
            "peers_seen": len(self.peers),
        }

    def contiguous(self):
        """Movie bytes present from the first one on without a gap (the plot's curve)."""
        total = 0
        for piece in self.movie.pieces():
            if piece not in self.ready_at:
                break
            total += self.movie.overlap(*self.movie.piece_range(piece))
        return total

    def status_event(self):
        s = self.handle.status()
        emit("status", t=round(self.now(), 3), ready=len(self.ready_at),
             contiguous=self.contiguous(),
             pieces=len(self.movie.pieces()), penalty=self.server.bytes_received,
             downloaded=s.total_payload_download, uploaded=s.total_payload_upload,
             peers=s.num_peers, download_rate=s.download_payload_rate,
             upload_rate=s.upload_payload_rate)

    def refresh_waste(self):
        """Asks for the session counters and waits briefly for them (for the report)."""
        self.ses.post_session_stats()
        deadline = time.monotonic() + 2.0
        self.waste = {}
        while not self.waste and time.monotonic() < deadline:
            wait_for_alerts(self.ses, 0.1)
            self.pump_alerts()


def runs(blocks):
    """Sorted block indices as [start, end) runs of consecutive blocks."""
    out = []
    for b in blocks:
        if out and out[-1][1] == b:
            out[-1][1] = b + 1
        else:
            out.append([b, b + 1])
    return [tuple(r) for r in out]


def read_local(path, offset, size):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except FileNotFoundError:
        data = b""
    # A sparse file not yet extended reads short: zeros (a wrong block fails the hash check).
    return data + bytes(size - len(data))


def write_report(viewer, path):
    viewer.refresh_waste()
    report = viewer.report()
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    return report


def summary(report):
    done = f"complete at {report['complete_at_s']:.2f} s" if report["complete"] else \
        f"incomplete ({report['movie_pieces_present']}/{report['movie_pieces']} pieces)"
    return (f"lt_vod {report['policy']}: penalty {report['penalty_bytes']} B "
            f"({report['penalty_fraction']:.2%} of {report['movie_bytes']} B, "
            f"{report['pieces_from_server']} pieces from the server), {done}, "
            f"stall {report['stall_s']:.2f} s, peers {report['peers_seen']}")


def main():
    args = parse_args()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))

    try:
        info = lt.torrent_info(args.torrent)
    except RuntimeError as err:
        fail(f"cannot read torrent {args.torrent}: {err}")

    file_index = choose_file(info, args.file, lambda message: fail(message, 2))
    movie = Movie(info, file_index, args.rate, args.delay, args.prefetch)
    server = VodServer(args.server, info)
    os.makedirs(args.save_path, exist_ok=True)

    ses = make_session(args)
    wall_started = time.monotonic()
    emit("listening", port=wait_listening(ses, wall_started + 10))

    flags = lt.torrent_flags.sequential_download if args.mode == "sequential" else 0
    # Not paused, not auto-managed: the torrent starts at once.
    handle = ses.add_torrent({"ti": info, "save_path": args.save_path, "flags": flags})
    wait_checked(ses, handle, time.monotonic() + 120)
    # t = 0: the torrent is added and what was already on disk is verified (at once for an
    # empty save path), as btvod counts resumed pieces present at t = 0.
    started = time.monotonic()
    if args.tracker:
        handle.replace_trackers([{"url": url, "tier": tier}
                                 for tier, url in enumerate(args.tracker)])
    if args.mode == "deadline":
        for piece in movie.pieces():
            ms = max(0, int((movie.deadline(piece) - (time.monotonic() - started)) * 1000))
            handle.set_piece_deadline(piece, ms)
    for host, port in args.connect:
        handle.connect_peer((host, port))

    viewer = Viewer(args, info, movie, ses, handle, server, started)
    viewer.scan_have()
    emit("started", mode=args.mode, file=movie.fs.file_path(file_index), movie_bytes=movie.length,
         pieces=len(movie.pieces()), first_piece=movie.first,
         first_deadline=round(movie.deadline(movie.first), 6),
         last_deadline=round(movie.deadline(movie.last), 6))

    next_status = 0.0
    next_peers = 0.0
    next_scan = HAVE_SCAN_PERIOD_S
    report = None
    try:
        while not stop:
            now = viewer.now()
            if args.max_seconds and time.monotonic() - wall_started >= args.max_seconds:
                if report is not None:
                    break
                report = write_report(viewer, args.report)
                emit("timeout", report=report)
                sys.stderr.write(summary(report) + "\n")
                fail(f"not complete after --max-seconds {args.max_seconds:g}", 3)
            viewer.pump_alerts()
            if report is None:
                viewer.handle_due()
                if now >= next_scan:
                    viewer.scan_have()
                    next_scan = now + HAVE_SCAN_PERIOD_S
            if now >= next_peers:
                viewer.sample_peers()
                next_peers = now + PEER_SAMPLE_PERIOD_S
            if now >= next_status:
                viewer.status_event()
                next_status = now + STATUS_PERIOD_S
            if report is None and viewer.complete_at is not None:
                viewer.sample_peers()
                viewer.status_event()
                report = write_report(viewer, args.report)
                emit("complete", report=report)
                sys.stderr.write(summary(report) + "\n")
                sys.stderr.flush()
                if not args.seed_after:
                    break
            wait = MAX_POLL_S
            if report is None and viewer.cursor <= movie.last:
                wait = min(wait, max(0.0, movie.deadline(viewer.cursor) - viewer.now()))
            wait_for_alerts(ses, wait)
        if report is None:
            # Stopped by a signal before the movie was complete: still say where it stood.
            report = write_report(viewer, args.report)
            emit("stopped", report=report)
            sys.stderr.write(summary(report) + "\n")
        elif args.seed_after:
            # The score is settled; the upload counters went on while seeding.
            report = write_report(viewer, args.report)
            emit("stopped", report=report)
    except ServerError as err:
        fail(f"VoD server: {err}")
    server.close()
    ses.pause()


if __name__ == "__main__":
    main()
