//! One connection of the metadata fetch: handshake with the extension bit, extension
//! handshakes both ways, then `ut_metadata` requests out and pieces back. It moves frames; the
//! fetch decides what to ask.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use super::{ConnEvent, ConnId, FetchSetup};
use crate::engine::codec::PeerCodec;
use crate::engine::peer::connect::Dialer;
use crate::engine::peer::link::Transport;
use crate::engine::peer::stream::PeerStream;
use crate::engine::peer::{HandshakeError, read_handshake};
use crate::proto::extension::metadata::MetadataMessage;
use crate::proto::extension::{ExtendedHandshake, HANDSHAKE_ID, OUR_UT_METADATA_ID, UT_METADATA};
use crate::proto::wire::{Handshake, Message, WireDecoder};

/// Frames read while fetching: a metadata piece with its header, or the BITFIELD of a torrent
/// of up to two million pieces (its size is not known yet).
const MAX_FRAME: u32 = 256 * 1024;
/// How long a peer may take to send its extension handshake after ours.
const EXTENSION_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection of the fetch ended (logged, and counted in the final error).
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("handshake: {0}")]
    Handshake(HandshakeError),
    #[error("the peer serves another torrent")]
    WrongInfoHash,
    #[error("the peer does not speak the extension protocol (BEP 10)")]
    NoExtensions,
    #[error("the peer does not offer the metadata (no ut_metadata or metadata_size)")]
    NoMetadata,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("closed by the peer")]
    Closed,
}

/// Dials `addr` and runs the connection until the fetch drops its command sender.
pub(super) async fn run(
    id: ConnId,
    addr: SocketAddr,
    setup: FetchSetup,
    events: mpsc::Sender<ConnEvent>,
) {
    let why = talk(id, addr, &setup, &events).await.err();
    let _ = events.send(ConnEvent::Gone { id, why }).await;
}

async fn talk(
    id: ConnId,
    addr: SocketAddr,
    setup: &FetchSetup,
    events: &mpsc::Sender<ConnEvent>,
) -> Result<(), ConnError> {
    let limit = setup.handshake_timeout;
    // Over TCP: the torrent's uTP socket does not exist yet.
    let dialer = Dialer {
        info_hash: setup.info_hash,
        encryption: setup.encryption,
        order: &[Transport::Tcp],
        utp: None,
        budget: limit,
    };
    let mut stream = dialer
        .dial_over(Transport::Tcp, addr)
        .await
        .map_err(|e| ConnError::Handshake(e.into()))?;
    let mut out = BytesMut::new();
    Handshake::ours(setup.info_hash, setup.our_id).encode(&mut out);
    let theirs = timeout(limit, async {
        stream.write_all(&out).await.map_err(ConnError::Io)?;
        read_handshake(&mut stream)
            .await
            .map_err(ConnError::Handshake)
    })
    .await
    .map_err(|_| ConnError::Timeout)??;
    if theirs.info_hash != setup.info_hash {
        return Err(ConnError::WrongInfoHash);
    }
    if !theirs.supports_extensions() {
        return Err(ConnError::NoExtensions);
    }
    let codec = PeerCodec::new(WireDecoder::with_max_frame(MAX_FRAME));
    let mut framed = Framed::new(stream, codec);
    let ours = ExtendedHandshake::ours(None, setup.listen_port);
    let hello = Message::Extended {
        id: HANDSHAKE_ID,
        payload: ours.encode().into(),
    };
    framed
        .send(hello)
        .await
        .map_err(|e| ConnError::Protocol(e.to_string()))?;
    let (their_id, size) = timeout(EXTENSION_HANDSHAKE_TIMEOUT, their_extensions(&mut framed))
        .await
        .map_err(|_| ConnError::Timeout)??;
    let (commands_tx, mut commands) = mpsc::channel(64);
    let offer = ConnEvent::Offer {
        id,
        size,
        commands: commands_tx,
    };
    if events.send(offer).await.is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            piece = commands.recv() => {
                let Some(piece) = piece else { return Ok(()) };
                let request = Message::Extended {
                    id: their_id,
                    payload: MetadataMessage::Request { piece }.encode().into(),
                };
                framed.send(request).await.map_err(|e| ConnError::Protocol(e.to_string()))?;
            }
            frame = framed.next() => {
                let message = match frame {
                    None => return Err(ConnError::Closed),
                    Some(Err(e)) => return Err(ConnError::Protocol(e.to_string())),
                    Some(Ok(m)) => m,
                };
                let Message::Extended { id: OUR_UT_METADATA_ID, payload } = message else {
                    continue;
                };
                let event = match MetadataMessage::parse(&payload) {
                    Ok(MetadataMessage::Data { piece, total_size, data }) => {
                        ConnEvent::Piece { id, piece, total_size, data }
                    }
                    Ok(MetadataMessage::Reject { piece }) => ConnEvent::Rejected { id, piece },
                    // A peer may fetch from us too; we have nothing to give yet.
                    Ok(MetadataMessage::Request { .. }) => continue,
                    Err(e) => return Err(ConnError::Protocol(e.to_string())),
                };
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits for the peer's extension handshake; other frames (its BITFIELD, HAVEs) are skipped.
async fn their_extensions(
    framed: &mut Framed<PeerStream, PeerCodec>,
) -> Result<(u8, u32), ConnError> {
    loop {
        let message = match framed.next().await {
            None => return Err(ConnError::Closed),
            Some(Err(e)) => return Err(ConnError::Protocol(e.to_string())),
            Some(Ok(m)) => m,
        };
        if let Message::Extended {
            id: HANDSHAKE_ID,
            payload,
        } = message
        {
            let theirs = ExtendedHandshake::parse(&payload)
                .map_err(|e| ConnError::Protocol(e.to_string()))?;
            return match (theirs.id_of(UT_METADATA), theirs.metadata_size) {
                (Some(id), Some(size)) => Ok((id, size)),
                _ => Err(ConnError::NoMetadata),
            };
        }
    }
}
