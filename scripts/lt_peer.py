#!/usr/bin/python3
"""One libtorrent peer on 127.0.0.1 for btvod's interop tests and swarm experiments.

Run with /usr/bin/python3 (Debian's python3-libtorrent imports only there). Prints one JSON
object per line on stdout: {"event":"listening","port":N} first, then "status" about once a
second, "tracker_reply"/"tracker_error" as announces come back, and "complete" once every
piece is present, verified and written to disk. Fatal errors go to stderr as
{"event":"error","message":...} with a non-zero exit. SIGTERM and SIGINT stop it cleanly
(exit 0).

Exit codes: 0 done or stopped, 1 error, 2 bad arguments, 3 --max-seconds ran out before
--exit-when-complete was satisfied.
"""

import argparse
import json
import os
import select
import signal
import sys
import threading
import time

try:
    import libtorrent as lt
except ImportError as err:
    sys.stderr.write(json.dumps({
        "event": "error",
        "message": f"cannot import libtorrent ({err}): install the Debian package "
                   "python3-libtorrent and run this script with /usr/bin/python3",
    }) + "\n")
    sys.exit(1)

STATUS_PERIOD_S = 1.0


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def fail(message, code=1):
    sys.stderr.write(json.dumps({"event": "error", "message": message}) + "\n")
    sys.stderr.flush()
    sys.exit(code)


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--torrent", help=".torrent file to download or seed")
    source.add_argument("--magnet", help="magnet link to download (its metadata fetched from "
                        "the peers it names); prints a \"metadata\" event once it is known")
    p.add_argument("--save-path", required=True, help="directory holding (or receiving) the content")
    p.add_argument("--listen-port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any)")
    p.add_argument("--listen-host", default="127.0.0.1",
                   help="address to listen on: 127.0.0.1 (default), ::1, or a host's own address")
    p.add_argument("--connect", type=host_port, action="append", default=[],
                   metavar="HOST:PORT", help="peer to dial (repeatable)")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--max-connections", type=int, default=0,
                   help="connections kept at most, 0 = libtorrent's default (200)")
    p.add_argument("--seed-mode", action="store_true",
                   help="content is complete: fail if libtorrent's check finds pieces missing")
    p.add_argument("--sequential", action="store_true", help="download pieces in order")
    p.add_argument("--deadlines-after", type=float, default=None, metavar="S",
                   help="after S seconds, set_piece_deadline on every piece (50 ms apart, in "
                        "order): libtorrent's streaming mode, which CANCELs its queued requests")
    p.add_argument("--exit-when-complete", action="store_true")
    p.add_argument("--max-seconds", type=float, default=0, help="hard stop after N s (0 = never)")
    p.add_argument("--dht-bootstrap", type=host_port, default=None, metavar="HOST:PORT",
                   help="turn the DHT on (settings for a loopback DHT), join through this node, "
                        "and announce the torrent there every 2 s until it completes")
    p.add_argument("--encryption", choices=["disabled", "enabled", "forced"], default="disabled",
                   help="MSE/PE both ways: disabled (plaintext only, the default), enabled "
                   "(either), forced (encrypted only, RC4 payload)")
    p.add_argument("--transport", choices=["tcp", "utp", "both"], default="tcp",
                   help="peer transports, both ways: tcp (the default), utp (uTP only: no "
                   "TCP in or out), both")
    p.add_argument("--lsd", action="store_true",
                   help="local service discovery (BEP 14) on: announce and hear on 127.0.0.1")
    p.add_argument("--no-pex", action="store_true",
                   help="no peer exchange (nor libtorrent's other default plugins)")
    p.add_argument("--stop-on-eof", action="store_true",
                   help="stop when stdin reaches end of file: a parent that holds the pipe "
                        "open takes this peer down with it, however the parent ends")
    args = p.parse_args()
    if not 0 <= args.listen_port < 65536:
        p.error("--listen-port must be 0..65535")
    if args.magnet and (args.seed_mode or args.deadlines_after is not None):
        p.error("--magnet cannot be used with --seed-mode or --deadlines-after")
    if min(args.upload_limit, args.download_limit, args.max_seconds, args.max_connections) < 0:
        p.error("limits, --max-seconds and --max-connections must not be negative")
    return args


def loopback_settings(listen_port, upload_limit, download_limit=0, host="127.0.0.1",
                      max_connections=0):
    """Settings for a libtorrent peer that talks only to peers on the loopback (shared with
    lt_vod.py); max_connections 0 keeps libtorrent's connection limit."""
    shown = f"[{host}]" if ":" in host else host
    settings = {
        "listen_interfaces": f"{shown}:{listen_port}",
        # A port asked for by number must be that port, not a silent substitute.
        "listen_system_port_fallback": listen_port == 0,
        "max_retry_port_bind": 0,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # btvod speaks TCP only; keep libtorrent's peers on TCP too.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Every local peer is 127.0.0.1: the default (one connection per IP) would pick one.
        "allow_multiple_connections_per_ip": True,
        "in_enc_policy": lt.enc_policy.disabled,
        "out_enc_policy": lt.enc_policy.disabled,
        "upload_rate_limit": upload_limit,
        "download_rate_limit": download_limit,
        "rate_limit_ip_overhead": False,
        # storage: cache_flushed_alert, which "complete" waits for.
        "alert_mask": lt.alert_category.error | lt.alert_category.status
        | lt.alert_category.tracker | lt.alert_category.storage,
    }
    if max_connections:
        settings["connections_limit"] = max_connections
    return settings


# Read ends of the pipes libtorrent writes to when alerts are waiting, by session.
_ALERT_PIPES = {}


def wait_for_alerts(ses, timeout_s):
    """Returns once the session has alerts to pop, or after timeout_s seconds.

    Not ses.wait_for_alert(): in libtorrent 2.0 it returns a pointer into the alert queue that
    libtorrent's own threads are still filling, which moves when the queue grows, and the
    binding then reads it. Under load that crashed the process now and then (SIGSEGV in the
    binding's wrapper of the alert it returns; libtorrent issue #5018). The queue's notify pipe
    (set_alert_fd) wakes us as promptly without touching the queue."""
    fd = _ALERT_PIPES[id(ses)]
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
    if ready:
        try:
            os.read(fd, 4096)
        except BlockingIOError:
            pass


def start_session(settings, plugins=True):
    # Without the default plugins there is no peer exchange: a world that puts relays in front
    # of its peers must not have them gossip the addresses behind the relays.
    ses = lt.session(settings, 1 if plugins else 0)
    # Loopback is in libtorrent's unlimited "local" peer class; put every address in the global
    # class so the rate limits apply. Set last: later settings changes can reset the filter.
    everyone = lt.ip_filter()
    global_class = 1 << lt.session.global_peer_class_id
    everyone.add_rule("0.0.0.0", "255.255.255.255", global_class)
    everyone.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", global_class)
    ses.set_peer_class_filter(everyone)
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    ses.set_alert_fd(write_end)
    _ALERT_PIPES[id(ses)] = read_end
    return ses


def make_session(args):
    settings = loopback_settings(args.listen_port, args.upload_limit, args.download_limit,
                                 args.listen_host, args.max_connections)
    if args.dht_bootstrap:
        host, port = args.dht_bootstrap
        # A DHT of loopback nodes: libtorrent's address restrictions would refuse every one.
        settings.update({
            "enable_dht": True,
            "dht_bootstrap_nodes": f"{host}:{port}",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
        })
    if args.lsd:
        settings["enable_lsd"] = True
    if args.transport != "tcp":
        tcp = args.transport == "both"
        settings.update({
            "enable_incoming_tcp": tcp,
            "enable_outgoing_tcp": tcp,
            "enable_incoming_utp": True,
            "enable_outgoing_utp": True,
        })
    if args.encryption != "disabled":
        policy = getattr(lt.enc_policy, args.encryption)
        settings.update({
            "in_enc_policy": policy,
            "out_enc_policy": policy,
            # Forced: the payload too, not only the handshake.
            "allowed_enc_level": lt.enc_level.rc4 if args.encryption == "forced"
            else lt.enc_level.both,
        })
    if args.magnet:
        # For the first_piece event (the magnet benchmark's time to the first piece).
        settings["alert_mask"] |= lt.alert_category.piece_progress
    return start_session(settings, plugins=not args.no_pex)


def wait_listening(ses, deadline):
    while time.monotonic() < deadline:
        port = ses.listen_port()
        if port:
            return port
        wait_for_alerts(ses, 0.1)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.listen_failed_alert):
                fail(f"cannot listen on 127.0.0.1: {alert.message()}")
    fail("libtorrent did not start listening within 10 s")


def pieces_hex(s):
    """The pieces held as a BitTorrent bitfield in hex (first piece = high bit of byte 0)."""
    bits = bytearray((len(s.pieces) + 7) // 8)
    for i, held in enumerate(s.pieces):
        if held:
            bits[i // 8] |= 0x80 >> (i % 8)
    return bits.hex()


def status_event(s):
    emit("status", progress=round(s.progress, 6), state=str(s.state), bitfield=pieces_hex(s),
         downloaded=s.total_payload_download, uploaded=s.total_payload_upload,
         have=s.total_done, pieces=s.num_pieces, peers=s.num_peers,
         download_rate=s.download_payload_rate, upload_rate=s.upload_payload_rate)


def main():
    args = parse_args()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    if args.stop_on_eof:
        def watch_stdin():
            # The raw fd: a daemon thread blocked in a buffered read would abort shutdown.
            while os.read(0, 4096):
                pass
            stop.append("eof")
        threading.Thread(target=watch_stdin, daemon=True).start()

    info = None
    if args.torrent:
        try:
            info = lt.torrent_info(args.torrent)
        except RuntimeError as err:
            fail(f"cannot read torrent {args.torrent}: {err}")
    started = time.monotonic()
    ses = make_session(args)
    emit("listening", port=wait_listening(ses, started + 10))

    flags = lt.torrent_flags.sequential_download if args.sequential else 0
    if info is not None:
        handle = ses.add_torrent({"ti": info, "save_path": args.save_path, "flags": flags})
    else:
        try:
            params = lt.parse_magnet_uri(args.magnet)
        except RuntimeError as err:
            fail(f"cannot read magnet link {args.magnet}: {err}")
        params.save_path = args.save_path
        params.flags |= flags
        handle = ses.add_torrent(params)
    for host, port in args.connect:
        handle.connect_peer((host, port))

    completed = False
    # libtorrent reports a torrent finished once every piece is verified, which may be before
    # its disk thread has written them: "complete" waits for the flush it then asks for.
    flushing = False
    flushed = False
    next_status = 0.0
    next_dht_announce = 0.0
    first_piece = False
    deadlines_set = args.deadlines_after is None
    while not stop:
        now = time.monotonic()
        if not deadlines_set and now - started >= args.deadlines_after:
            deadlines_set = True
            for i in range(info.num_pieces()):
                handle.set_piece_deadline(i, 50 * i)
            emit("deadlines_set")
        if args.max_seconds and now - started >= args.max_seconds:
            if args.exit_when_complete:
                fail(f"not complete after --max-seconds {args.max_seconds:g}", 3)
            break
        if args.dht_bootstrap and now >= next_dht_announce:
            # libtorrent announces every 15 min on its own; a test cannot wait for that.
            handle.force_dht_announce()
            next_dht_announce = now + 2.0
        wait_for_alerts(ses, 0.1)
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                fail(alert.message())
            elif isinstance(alert, lt.cache_flushed_alert) and flushing:
                flushed = True
            elif isinstance(alert, lt.metadata_received_alert):
                emit("metadata", seconds=round(time.monotonic() - started, 3))
            elif isinstance(alert, lt.piece_finished_alert) and not first_piece:
                first_piece = True
                emit("first_piece", piece=alert.piece_index)
            elif isinstance(alert, lt.tracker_reply_alert):
                emit("tracker_reply", url=alert.url, peers=alert.num_peers)
            elif isinstance(alert, lt.tracker_error_alert):
                emit("tracker_error", url=alert.url, message=alert.message())
            elif isinstance(alert, lt.torrent_checked_alert) and args.seed_mode:
                s = handle.status()
                if not s.is_seeding:
                    fail(f"--seed-mode: {args.save_path} does not hold the complete content "
                         f"({s.progress:.1%} present after libtorrent's check)")
        s = handle.status()
        if now >= next_status:
            status_event(handle.status(lt.status_flags_t.query_pieces))
            next_status = now + STATUS_PERIOD_S
        if not flushing and s.has_metadata and (s.is_seeding or s.is_finished):
            flushing = True
            handle.flush_cache()
        if flushed and not completed:
            completed = True
            status_event(handle.status(lt.status_flags_t.query_pieces))
            emit("complete")
            if args.exit_when_complete:
                break
    ses.pause()


if __name__ == "__main__":
    main()
