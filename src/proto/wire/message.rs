//! The typed peer messages of BEP 3 and BEP 6, their ids, and how each is written to bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::{ExpectedLen, PIECE_BODY_HEADER_LEN};

/// A block named by raw numbers as they came off the wire. The torrent layer turns it into a
/// checked `BlockRef` with `Geometry::span`, which knows the piece sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockSpec {
    pub piece: u32,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A zero-length frame: keeps an idle connection open.
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have {
        piece: u32,
    },
    /// Raw payload; `Bitfield::from_wire` checks it against the piece count.
    Bitfield(Bytes),
    Request(BlockSpec),
    Piece {
        piece: u32,
        offset: u32,
        data: Bytes,
    },
    Cancel(BlockSpec),
    /// DHT port (BEP 5); btvod has no DHT and ignores it.
    Port(u16),
    Suggest {
        piece: u32,
    },
    HaveAll,
    HaveNone,
    Reject(BlockSpec),
    AllowedFast {
        piece: u32,
    },
    /// BEP 10 message: `id` 0 is the extension handshake, others name an extension as the
    /// receiver chose (see `proto::extension`).
    Extended {
        id: u8,
        payload: Bytes,
    },
    /// A message id this codec does not know; `len` bytes of payload (after the id) were skipped.
    Unknown {
        id: u8,
        len: u32,
    },
}

/// The message ids btvod knows, with the body length (id byte included) each one allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageId {
    Choke = 0,
    Unchoke = 1,
    Interested = 2,
    NotInterested = 3,
    Have = 4,
    Bitfield = 5,
    Request = 6,
    Piece = 7,
    Cancel = 8,
    Port = 9,
    Suggest = 13,
    HaveAll = 14,
    HaveNone = 15,
    Reject = 16,
    AllowedFast = 17,
    Extended = 20,
}

impl MessageId {
    pub fn from_u8(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::Choke,
            1 => Self::Unchoke,
            2 => Self::Interested,
            3 => Self::NotInterested,
            4 => Self::Have,
            5 => Self::Bitfield,
            6 => Self::Request,
            7 => Self::Piece,
            8 => Self::Cancel,
            9 => Self::Port,
            13 => Self::Suggest,
            14 => Self::HaveAll,
            15 => Self::HaveNone,
            16 => Self::Reject,
            17 => Self::AllowedFast,
            20 => Self::Extended,
            _ => return None,
        })
    }

    /// The body length (the frame's length prefix: id byte plus payload) this kind allows.
    pub fn body_len(self) -> ExpectedLen {
        use ExpectedLen::{AtLeast, Exactly};
        match self {
            Self::Choke
            | Self::Unchoke
            | Self::Interested
            | Self::NotInterested
            | Self::HaveAll
            | Self::HaveNone => Exactly(1),
            Self::Have | Self::Suggest | Self::AllowedFast => Exactly(5),
            Self::Request | Self::Cancel | Self::Reject => Exactly(13),
            Self::Port => Exactly(3),
            Self::Bitfield => AtLeast(1),
            Self::Piece => AtLeast(PIECE_BODY_HEADER_LEN),
            // The extended message id byte must be there.
            Self::Extended => AtLeast(2),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Choke => "CHOKE",
            Self::Unchoke => "UNCHOKE",
            Self::Interested => "INTERESTED",
            Self::NotInterested => "NOT INTERESTED",
            Self::Have => "HAVE",
            Self::Bitfield => "BITFIELD",
            Self::Request => "REQUEST",
            Self::Piece => "PIECE",
            Self::Cancel => "CANCEL",
            Self::Port => "PORT",
            Self::Suggest => "SUGGEST PIECE",
            Self::HaveAll => "HAVE ALL",
            Self::HaveNone => "HAVE NONE",
            Self::Reject => "REJECT REQUEST",
            Self::AllowedFast => "ALLOWED FAST",
            Self::Extended => "EXTENDED",
        }
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {})", self.name(), *self as u8)
    }
}

/// Writes the 13-byte frame header of a PIECE carrying `len` bytes of block data, so the
/// caller can send the data from its own buffer without copying it into `dst`.
pub fn piece_header(piece: u32, offset: u32, len: u32, dst: &mut BytesMut) {
    dst.reserve(13);
    dst.put_u32(PIECE_BODY_HEADER_LEN.saturating_add(len));
    dst.put_u8(MessageId::Piece as u8);
    dst.put_u32(piece);
    dst.put_u32(offset);
}

impl Message {
    /// The frame's length prefix: id byte plus payload (0 for KEEP-ALIVE).
    pub fn body_len(&self) -> usize {
        match self {
            Self::KeepAlive => 0,
            Self::Choke
            | Self::Unchoke
            | Self::Interested
            | Self::NotInterested
            | Self::HaveAll
            | Self::HaveNone => 1,
            Self::Have { .. } | Self::Suggest { .. } | Self::AllowedFast { .. } => 5,
            Self::Request(_) | Self::Cancel(_) | Self::Reject(_) => 13,
            Self::Port(_) => 3,
            Self::Bitfield(bits) => 1 + bits.len(),
            Self::Piece { data, .. } => PIECE_BODY_HEADER_LEN as usize + data.len(),
            Self::Extended { payload, .. } => 2 + payload.len(),
            Self::Unknown { len, .. } => 1 + *len as usize,
        }
    }

    /// Appends the whole frame (length prefix included) to `dst`. An `Unknown` message is
    /// written with `len` zero bytes of payload (useful only to test peers that skip it).
    pub fn encode(&self, dst: &mut BytesMut) {
        let body_len = self.body_len();
        dst.reserve(4 + body_len);
        // Bodies are bounded by what a frame can hold; a larger one is a caller bug that the
        // peer will refuse anyway.
        dst.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
        match self {
            Self::KeepAlive => {}
            Self::Choke => dst.put_u8(MessageId::Choke as u8),
            Self::Unchoke => dst.put_u8(MessageId::Unchoke as u8),
            Self::Interested => dst.put_u8(MessageId::Interested as u8),
            Self::NotInterested => dst.put_u8(MessageId::NotInterested as u8),
            Self::HaveAll => dst.put_u8(MessageId::HaveAll as u8),
            Self::HaveNone => dst.put_u8(MessageId::HaveNone as u8),
            Self::Have { piece } => put_piece(dst, MessageId::Have, *piece),
            Self::Suggest { piece } => put_piece(dst, MessageId::Suggest, *piece),
            Self::AllowedFast { piece } => put_piece(dst, MessageId::AllowedFast, *piece),
            Self::Request(spec) => put_block(dst, MessageId::Request, spec),
            Self::Cancel(spec) => put_block(dst, MessageId::Cancel, spec),
            Self::Reject(spec) => put_block(dst, MessageId::Reject, spec),
            Self::Port(port) => {
                dst.put_u8(MessageId::Port as u8);
                dst.put_u16(*port);
            }
            Self::Bitfield(bits) => {
                dst.put_u8(MessageId::Bitfield as u8);
                dst.put_slice(bits);
            }
            Self::Piece {
                piece,
                offset,
                data,
            } => {
                dst.put_u8(MessageId::Piece as u8);
                dst.put_u32(*piece);
                dst.put_u32(*offset);
                dst.put_slice(data);
            }
            Self::Extended { id, payload } => {
                dst.put_u8(MessageId::Extended as u8);
                dst.put_u8(*id);
                dst.put_slice(payload);
            }
            Self::Unknown { id, len } => {
                dst.put_u8(*id);
                dst.put_bytes(0, *len as usize);
            }
        }
    }
}

fn put_piece(dst: &mut BytesMut, id: MessageId, piece: u32) {
    dst.put_u8(id as u8);
    dst.put_u32(piece);
}

fn put_block(dst: &mut BytesMut, id: MessageId, spec: &BlockSpec) {
    dst.put_u8(id as u8);
    dst.put_u32(spec.piece);
    dst.put_u32(spec.offset);
    dst.put_u32(spec.len);
}
