#!/usr/bin/env python3
"""Writes the small committed seed inputs, one directory per fuzz target:
`python3 fuzz/seeds/make_seeds.py` (deterministic; rerun after changing it). The sample torrents
in torrents/ (made by `btvod make-torrent`) are copied in as further metainfo/bencode seeds."""
import hashlib, os, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

def be(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(be(x) for x in v) + b"e"
    if isinstance(v, dict):  # in insertion order: seeds may be non-canonical on purpose
        return b"d" + b"".join(be(k) + be(x) for k, x in v.items()) + b"e"
    raise TypeError(v)

def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def torrent(files, piece_len, name, extra=None, sort=True):
    total = sum(l for _, l in files)
    content = bytes((i * 7) % 251 for i in range(total))
    pieces = b"".join(hashlib.sha1(content[i:i + piece_len]).digest()
                      for i in range(0, total, piece_len))
    if len(files) == 1 and files[0][0] is None:
        info = {"length": total, "name": name, "piece length": piece_len, "pieces": pieces}
    else:
        info = {"files": [{"length": l, "path": p} for p, l in files], "name": name,
                "piece length": piece_len, "pieces": pieces}
    if not sort:
        info = dict(reversed(list(info.items())))
    top = {"announce": "http://127.0.0.1:6969/announce"}
    top.update(extra or {})
    top["info"] = info
    return be(top)

# metainfo and bencode
single = torrent([(None, 40000)], 16384, "movie.bin")
multi = torrent([(["a", "b.mkv"], 30000), (["c.srt"], 1000)], 32768, "series",
                {"announce-list": [["http://127.0.0.1:1/announce"], ["http://t/announce"]],
                 "comment": "x", "creation date": 1700000000, "url-list": ["http://s/"]})
odd = torrent([(None, 5)], 3, "n\xe9", {"url-list": "http://one/"}, sort=False)
for t in ("metainfo", "bencode"):
    write(t, "single.torrent", single)
    write(t, "multi.torrent", multi)
    write(t, "noncanonical.torrent", odd)
    for f in os.listdir(os.path.join(ROOT, "torrents")):
        if f.endswith(".torrent"):
            shutil.copy(os.path.join(ROOT, "torrents", f), os.path.join(HERE, t, f))
write("bencode", "nested", be([1, -5, b"", {"k": [[], {}]}, "i0e"]))

# tracker responses
peers4 = bytes([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80])
peers6 = bytes(15) + b"\x01" + b"\x1a\xe1"
write("tracker_response", "compact", be({"complete": 3, "incomplete": 1, "interval": 1800,
                                         "min interval": 60, "peers": peers4, "peers6": peers6}))
write("tracker_response", "dicts", be({"interval": 30, "peers": [
    {"ip": "127.0.0.1", "peer id": b"-BV0100-abcdefghijkl", "port": 6881},
    {"ip": "::ffff:10.0.0.1", "port": 1}, {"ip": "host.example", "port": 2}],
    "tracker id": "abc", "warning message": "careful"}) + b"\n")
write("tracker_response", "failure", be({"failure reason": "unregistered torrent"}))
write("tracker_response", "scrape", be({"files": {b"\x01" * 20: {"complete": 1, "downloaded": 2,
                                                                 "incomplete": 3}}}))

# announce queries: mode byte 0 = raw query text, 1 = client request fields
q = ("info_hash=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14"
     "&peer_id=-BV0100-abcdefghijkl&port=6881&uploaded=0&downloaded=10&left=99"
     "&compact=1&event=started&numwant=50&ip=127.0.0.1&key=1A2B")
write("announce_query", "query", b"\x00" + q.encode())
write("announce_query", "scrape", b"\x00info_hash=%AA%BB%CC%DD%EE%FF%00%11%22%33%44%55%66%77%88%99%AA%BB%CC%DD")
write("announce_query", "request", b"\x01" + bytes(range(40)) + b"\x7f" + bytes(range(64)))

# wire stream: flags, [u16 piece count], u32 chunk seed, then the stream
def frame(mid, payload=b""):
    body = bytes([mid]) + payload
    return struct.pack(">I", len(body)) + body
hs = b"\x13BitTorrent protocol" + bytes(7) + b"\x04" + b"\xaa" * 20 + b"-BV0100-abcdefghijkl"
msgs = (frame(5, b"\xff\xc0") + frame(1) + frame(2) + frame(4, struct.pack(">I", 3))
        + frame(6, struct.pack(">III", 0, 0, 16384)) + frame(7, struct.pack(">II", 0, 0) + b"x" * 100)
        + struct.pack(">I", 0) + frame(14) + frame(16, struct.pack(">III", 1, 16384, 16384))
        + frame(9, b"\x1a\xe1") + frame(20, b"\x00d1:md") + frame(99, b"zz") + frame(17, b"\x00\x00\x00\x01"))
write("wire_stream", "handshake_and_messages", b"\x03" + struct.pack("<H", 10) + b"\x05\x00\x00\x00" + hs + msgs)
write("wire_stream", "messages", b"\x00" + b"\x07\x00\x00\x00" + msgs)

# picker: kind, pieces-1, blocks-1, u16 tail, u16 ours, u8 fast, u32 seed, [deadline params], ops
for kind in range(3):
    head = bytes([kind, 7, 1]) + struct.pack("<HHB", 100, 0b11, 0b0101) + struct.pack("<I", 42)
    if kind == 2:
        head += struct.pack("<HHB", 63, 6000, 80) + struct.pack("<I", 0) + b"\x00" + b"\x01"
    # picker_events ops: (op, peer, args...)
    ops = b""
    for peer in range(4):
        ops += bytes([0, peer]) + struct.pack("<H", 0xffff >> peer)
    for r in range(6):
        for peer in range(4):
            ops += bytes([4, peer, 4]) + struct.pack("<H", 500) + bytes([20])
            ops += bytes([7, peer, r, 10])
        ops += bytes([12, 0]) + struct.pack("<HH", 700, 4000)
    ops += bytes([9, 1, 0, 10, 2, 0, 11, 0, 5, 2, 3, 3, 0])
    write("picker_events", "kind%d" % kind, head + ops)
    # peer_messages ops: (op, peer, args...)
    ops = b""
    for peer in range(4):
        ops += bytes([0, peer, 6]) + frame(5, bytes([0xff >> peer]))
        ops += bytes([1, peer, 5]) + frame(1)
    for r in range(6):
        for peer in range(4):
            ops += bytes([2, peer, 4]) + struct.pack("<H", 500) + bytes([20])
            ops += bytes([3, peer, r, 0])
        ops += bytes([5, 0]) + struct.pack("<HH", 700, 4000)
    ops += bytes([0, 1, 9]) + frame(4, struct.pack(">I", 2)) + bytes([0, 2, 5]) + frame(0)
    ops += bytes([3, 3, 0, 250, 4, 1])
    write("peer_messages", "kind%d" % kind, head + ops)

# magnet links: hex and base32 hashes, every hint, a hybrid link, numbered keys
H = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
write("magnet", "hex", ("magnet:?xt=urn:btih:%s&dn=Big+Buck%%20Bunny&xl=276445467"
      "&tr=udp%%3A%%2F%%2Ftracker.example%%3A1337&tr=http://t.example/announce"
      "&ws=https://cdn.example/movie/&x.pe=127.0.0.1:6881&x.pe=[::1]:6882&x.pe=peer.example:51413"
      "&so=0,2,4-6" % H).encode())
write("magnet", "base32", b"magnet:?xt=urn:btih:3WBFL3G4PSSV7MF37AJSHWDQMLNR63I4&tr.1=http://a/&tr.2=http://b/")
write("magnet", "hybrid", ("magnet:?xt=urn:btmh:1220%s&xt=urn:btih:%s" % ("ab" * 32, H)).encode())
# extension payloads: libtorrent's handshake, ours, and the three ut_metadata messages
write("extension", "lt_handshake", b"d12:complete_agoi-1e1:md11:lt_donthavei7e11:upload_onlyi3e"
      b"11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e"
      b"1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01e")
write("extension", "request", be({"msg_type": 0, "piece": 0}))
write("extension", "reject", be({"msg_type": 2, "piece": 3}))
write("extension", "data", be({"msg_type": 1, "piece": 1, "total_size": 20000}) + bytes(range(256)) * 14)

# pex: a message with both families and flags, one with only drops, and one past 50 entries
V4 = lambda i: bytes([10, 0, i >> 8 & 255, i & 255, 0x1a, 0xe1])
V6 = bytes(15) + b"\x01\x1a\xe1"
write("pex", "both", be({"added": V4(1) + V4(2), "added.f": b"\x12\x01", "added6": V6,
                         "added6.f": b"\x04", "dropped": V4(3), "dropped6": b""}))
write("pex", "dropped", be({"dropped": V4(4) + V4(5)}))
write("pex", "many", be({"added": b"".join(V4(i) for i in range(60)), "added.f": bytes(60)}))

# lan: an LSD announce as libtorrent sends it, a search query and a search answer
write("lan", "lsd", b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n"
      b"Infohash: 0123456789abcdef0123456789abcdef01234567\r\ncookie: 7a3f\r\n\r\n\r\n")
write("lan", "query", b"BTVOD-SEARCH 1\r\nId: 00000000deadbeef\r\nQuery: walk movie\r\n\r\n")
write("lan", "answer", b"BTVOD-FOUND 1\r\nId: 00000000deadbeef\r\nInfohash: "
      b"0123456789abcdef0123456789abcdef01234567\r\nSize: 1234\r\nPort: 6881\r\n"
      b"Name: nutella-walk-movie.txt\r\n\r\n")

# mse_handshake: the first bytes choose the offer, the methods allowed, stranger or honest pair,
# the paddings and which direction is edited; the rest drives chunk sizes and edits
write("mse_handshake", "honest_rc4", bytes([0, 0, 0, 10, 20, 0]) + bytes([5, 50] * 40))
write("mse_handshake", "honest_plain", bytes([2, 1, 0, 0, 0, 1]) + bytes([5, 7] * 40))
write("mse_handshake", "edited", bytes([2, 2, 0, 5, 5, 1]) + bytes([0, 0, 30, 1, 200] * 20))
write("mse_handshake", "stranger", bytes([2, 2, 1]) + bytes(range(96)) + bytes(600))

# udp_tracker: 4 bytes of the expected transaction id, then a BEP 15 packet
T = struct.pack(">I", 0x01020304)
H20, P20 = bytes(range(20)), b"-BV0100-abcdefghijkl"
write("udp_tracker", "connect_req", T + struct.pack(">QII", 0x41727101980, 0, 0x01020304))
write("udp_tracker", "announce_req", T + struct.pack(">QII", 7, 1, 0x01020304) + H20 + P20
      + struct.pack(">QQQIIIiH", 1, 2, 3, 2, 0, 99, -1, 6881))
write("udp_tracker", "scrape_req", T + struct.pack(">QII", 7, 2, 0x01020304) + H20 + bytes(20))
write("udp_tracker", "connect_reply", T + struct.pack(">IIQ", 0, 0x01020304, 0xdeadbeef))
write("udp_tracker", "announce_reply", T + struct.pack(">IIIII", 1, 0x01020304, 60, 1, 2)
      + bytes([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2]))
write("udp_tracker", "announce_reply6", T + struct.pack(">IIIII", 1, 0x01020304, 60, 1, 2)
      + bytes(15) + b"\x01" + b"\x1a\xe1")
write("udp_tracker", "scrape_reply", T + struct.pack(">IIIII", 2, 0x01020304, 5, 6, 7))
write("udp_tracker", "error_reply", T + struct.pack(">II", 3, 0x01020304) + b"not whitelisted")

