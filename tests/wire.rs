//! The wire codec over real TCP on 127.0.0.1: a handshake then every message kind through
//! `Framed`, in both directions, and a hostile peer refused at its first bad frame.

use std::time::Duration;

use btvod::engine::codec::{CodecError, HandshakeCodec, PeerCodec};
use btvod::proto::wire::{BlockSpec, Handshake, Message, WireError};
use btvod::proto::{InfoHash, PeerId};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
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
            Err(CodecError::Wire(WireError::FrameTooLarge { len: u32::MAX, .. }))
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
        stream.write_all(b"GET /announce HTTP/1.1\r\n").await.unwrap();
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
        matches!(first, Some(Err(CodecError::Wire(WireError::BadProtocol { .. })))),
        "{first:?}"
    );
}
