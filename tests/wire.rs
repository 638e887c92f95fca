//! The wire codec over real TCP on 127.0.0.1: a handshake then every message kind through
//! `Framed`, in both directions; a hostile peer refused at its first bad frame; and a real
//! libtorrent seed (python3-libtorrent) that our codec handshakes with and downloads blocks from.

use std::time::Duration;

use btvod::engine::codec::{CodecError, HandshakeCodec, PeerCodec};
use btvod::proto::wire::{BlockSpec, Handshake, Message, WireError};
use btvod::proto::{InfoHash, PeerId};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;

const LIMIT: Duration = Duration::from_secs(20);

fn every_message() -> Vec<Message> {
    let spec = |piece, offset, len| BlockSpec { piece, offset, len };
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { piece: 77 },
        Message::Bitfield(Bytes::from(vec![0b1101_0000; 40])),
        Message::Request(spec(2, 16384, 16384)),
        Message::Piece {
            piece: 2,
            offset: 16384,
            data: Bytes::from((0..16384u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()),
        },
        Message::Cancel(spec(2, 16384, 16384)),
        Message::Port(6881),
        Message::Suggest { piece: 4 },
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(spec(9, 0, 100)),
        Message::AllowedFast { piece: 11 },
        Message::Extended {
            id: 3,
            payload: Bytes::from_static(b"de"),
        },
        Message::Unknown { id: 250, len: 10 },
    ]
}

/// Handshakes on `stream`, then sends every message and collects as many from the other side.
async fn run_peer(stream: TcpStream, ours: Handshake) -> (Handshake, Vec<Message>) {
    let mut framed = Framed::new(stream, HandshakeCodec);
    framed.send(ours).await.unwrap();
    let theirs = framed.next().await.expect("peer closed").unwrap();
    // map_codec keeps whatever the peer sent right behind its handshake.
    let mut framed = framed.map_codec(|_| PeerCodec::for_piece_count(320));
    let outgoing = every_message();
    let count = outgoing.len();
    for msg in outgoing {
        framed.feed(msg).await.unwrap();
    }
    framed.flush().await.unwrap();
    let mut received = Vec::new();
    while received.len() < count {
        received.push(framed.next().await.expect("peer closed").unwrap());
    }
    (theirs, received)
}

#[tokio::test]
async fn handshake_and_every_message_cross_a_tcp_connection_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let info_hash = InfoHash([0x5a; 20]);
    let server_hs = Handshake::ours(info_hash, PeerId::ours([1; 12]));
    let client_hs = Handshake::ours(info_hash, PeerId::ours([2; 12]));

    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        run_peer(stream, server_hs).await
    });
    let client = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        run_peer(stream, client_hs).await
    });
    let (server_saw, client_saw) = timeout(LIMIT, async {
        (server.await.unwrap(), client.await.unwrap())
    })
    .await
    .expect("exchange timed out");

    assert_eq!(server_saw.0, client_hs);
    assert_eq!(client_saw.0, server_hs);
    assert!(server_saw.0.supports_fast());
    assert_eq!(server_saw.1, every_message());
    assert_eq!(client_saw.1, every_message());
}

/// Writes `raw` as a peer would after a valid handshake and returns what our side decodes.
async fn receive_after_handshake(raw: Vec<u8>) -> Vec<Result<Message, CodecError>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hs = Handshake::ours(InfoHash([1; 20]), PeerId::ours([9; 12]));
    let hostile = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut bytes = BytesMut::new();
        hs.encode(&mut bytes);
        bytes.extend_from_slice(&raw);
        stream.write_all(&bytes).await.unwrap();
        // Keep the socket open: the refusal must come from the decoder, not from EOF.
        tokio::time::sleep(LIMIT).await;
    });
    let outcome = timeout(LIMIT, async {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, HandshakeCodec);
        framed.next().await.unwrap().unwrap();
        let mut framed = framed.map_codec(|_| PeerCodec::default());
        let mut seen = Vec::new();
        while let Some(item) = framed.next().await {
            let stop = item.is_err();
            seen.push(item);
            if stop {
                break;
            }
        }
        seen
    })
    .await
    .expect("the decoder neither refused nor finished");
    hostile.abort();
    outcome
}

#[tokio::test]
async fn a_four_gib_frame_from_a_peer_is_refused_without_waiting_for_it() {
    let mut raw = BytesMut::new();
    Message::Unchoke.encode(&mut raw);
    raw.put_u32(u32::MAX);
    raw.put_u8(7);
    let seen = receive_after_handshake(raw.to_vec()).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(matches!(seen[0], Ok(Message::Unchoke)));
    assert!(
        matches!(
            seen[1],
            Err(CodecError::Wire(WireError::FrameTooLarge {
                len: u32::MAX,
                ..
            }))
        ),
        "{:?}",
        seen[1]
    );
}

#[tokio::test]
async fn an_oversized_have_from_a_peer_is_refused() {
    let raw = vec![0, 0, 0, 9, 4, 0, 0, 0, 1];
    let seen = receive_after_handshake(raw).await;
    assert!(
        matches!(
            seen.as_slice(),
            [Err(CodecError::Wire(WireError::BadLength { len: 9, .. }))]
        ),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_non_bittorrent_peer_is_refused_at_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let talker = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /announce HTTP/1.1\r\n")
            .await
            .unwrap();
        tokio::time::sleep(LIMIT).await;
    });
    let first = timeout(LIMIT, async {
        let (stream, _) = listener.accept().await.unwrap();
        Framed::new(stream, HandshakeCodec).next().await
    })
    .await
    .expect("handshake decoder waited instead of refusing");
    talker.abort();
    assert!(
        matches!(
            first,
            Some(Err(CodecError::Wire(WireError::BadProtocol { .. })))
        ),
        "{first:?}"
    );
}

/// Seeds `movie.bin` of the directory given as argv[1] from a fresh libtorrent session on an
/// ephemeral loopback port, then prints `READY <port> <info hash hex>` and runs until stdin closes.
const LIBTORRENT_SEED: &str = r#"
import os, sys, time
import libtorrent as lt
d = sys.argv[1]
fs = lt.file_storage()
lt.add_files(fs, os.path.join(d, "movie.bin"))
t = lt.create_torrent(fs, 32768)
lt.set_piece_hashes(t, d)
path = os.path.join(d, "movie.torrent")
with open(path, "wb") as f:
    f.write(lt.bencode(t.generate()))
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "in_enc_policy": lt.enc_policy.disabled, "out_enc_policy": lt.enc_policy.disabled,
    "alert_mask": 0,
})
ti = lt.torrent_info(path)
h = ses.add_torrent({"ti": ti, "save_path": d})
deadline = time.time() + 30
while not h.status().is_seeding:
    if time.time() > deadline:
        sys.exit("libtorrent did not start seeding within 30 s")
    time.sleep(0.05)
print("READY", ses.listen_port(), str(ti.info_hashes().v1), flush=True)
sys.stdin.read()
"#;

const PYTHON: &str = "/usr/bin/python3";

fn require_libtorrent() {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        ok,
        "{PYTHON} cannot import libtorrent: install the Debian package python3-libtorrent \
         (scripts/test.sh does)"
    );
}

/// Reads messages until one matches `want`, returning it (other messages are skipped).
async fn next_matching(
    framed: &mut Framed<TcpStream, PeerCodec>,
    want: impl Fn(&Message) -> bool,
) -> Message {
    loop {
        let msg = framed
            .next()
            .await
            .expect("libtorrent closed the connection")
            .expect("libtorrent sent a frame our decoder refused");
        if want(&msg) {
            return msg;
        }
    }
}

#[tokio::test]
async fn libtorrent_seed_accepts_our_handshake_and_serves_blocks() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    // 100,000 bytes in 32 KiB pieces: 3 full pieces and a 1,696-byte last one.
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(dir.path().join("movie.bin"), &content).unwrap();

    let mut seed = tokio::process::Command::new(PYTHON)
        .args(["-c", LIBTORRENT_SEED])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start /usr/bin/python3");
    let stdout = seed.stdout.take().unwrap();

    timeout(Duration::from_secs(60), async {
        let ready = BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .unwrap()
            .expect("libtorrent seed exited before it was ready");
        let fields: Vec<&str> = ready.split_whitespace().collect();
        let [_, port, hash] = fields.as_slice() else {
            panic!("unexpected seed output {ready:?}");
        };
        let info_hash = InfoHash::from_hex(hash).unwrap();
        let stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .await
            .unwrap();

        let mut framed = Framed::new(stream, HandshakeCodec);
        framed
            .send(Handshake::ours(info_hash, PeerId::ours([4; 12])))
            .await
            .unwrap();
        let theirs = framed.next().await.expect("no handshake").unwrap();
        assert_eq!(theirs.info_hash, info_hash);
        assert!(theirs.supports_fast(), "libtorrent supports BEP 6");

        let mut framed = framed.map_codec(|_| PeerCodec::for_piece_count(4));
        // We both set the Fast bit, so a seed announces itself with HAVE ALL.
        let have = next_matching(&mut framed, |m| {
            matches!(m, Message::HaveAll | Message::Bitfield(_))
        })
        .await;
        assert_eq!(have, Message::HaveAll);

        framed.send(Message::Interested).await.unwrap();
        next_matching(&mut framed, |m| *m == Message::Unchoke).await;
        let wanted = [(1, 16384, 16384), (3, 0, 1696)];
        for (piece, offset, len) in wanted {
            framed
                .send(Message::Request(BlockSpec { piece, offset, len }))
                .await
                .unwrap();
        }
        for (piece, offset, len) in wanted {
            let Message::Piece {
                piece: got_piece,
                offset: got_offset,
                data,
            } = next_matching(&mut framed, |m| matches!(m, Message::Piece { .. })).await
            else {
                unreachable!()
            };
            assert_eq!((got_piece, got_offset), (piece, offset));
            let start = piece as usize * 32768 + offset as usize;
            assert!(
                data[..] == content[start..start + len as usize],
                "block ({piece}, {offset}) differs"
            );
        }
    })
    .await
    .expect("exchange with libtorrent timed out");
    drop(seed.stdin.take());
    let _ = timeout(Duration::from_secs(10), seed.wait()).await;
}
