//! `tokio_util` codec adapters over the pure wire protocol, for `Framed<TcpStream, _>`: one
//! codec for the handshake, then (via `Framed::map_codec`, which keeps buffered bytes) one for
//! the message stream.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::proto::wire::{Handshake, Message, WireDecoder, WireError};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("peer connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent bytes that break the wire protocol: {0}")]
    Wire(#[from] WireError),
}

/// Reads and writes the 68-byte handshake that opens a connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = Handshake;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Handshake>, CodecError> {
        Ok(Handshake::decode(src)?)
    }
}

impl Encoder<Handshake> for HandshakeCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Handshake, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

/// Reads and writes length-prefixed messages after the handshake, with the torrent's frame cap.
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerCodec {
    decoder: WireDecoder,
}

impl PeerCodec {
    pub fn new(decoder: WireDecoder) -> Self {
        Self { decoder }
    }

    /// A codec whose frame cap fits this torrent's BITFIELD (see `WireDecoder::for_piece_count`).
    pub fn for_piece_count(piece_count: u32) -> Self {
        Self::new(WireDecoder::for_piece_count(piece_count))
    }
}

impl Decoder for PeerCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Message> for PeerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}
