//! The peer wire protocol (BEP 3 plus the BEP 6 Fast extension): the handshake and the
//! length-prefixed messages, turned from untrusted bytes into typed values with a capped,
//! never-panicking decoder. Pure: only `bytes`, no async runtime.

mod decoder;
mod handshake;
mod message;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decoder::WireDecoder;
pub use handshake::{HANDSHAKE_LEN, Handshake, PROTOCOL};
pub use message::{BlockSpec, Message, MessageId, piece_header};

/// The largest block a PIECE may carry: every client requests at most 16 KiB (BEP 3 practice).
pub const MAX_BLOCK_LEN: u32 = crate::proto::geometry::BLOCK_LEN;

/// Bytes of a PIECE frame's body before the block data: id, piece index, offset.
pub const PIECE_BODY_HEADER_LEN: u32 = 9;

/// The default frame cap: a full 16 KiB PIECE, the largest message a well-behaved peer sends
/// (other than a BITFIELD of a torrent with more than 131,064 pieces).
pub const DEFAULT_MAX_FRAME: u32 = MAX_BLOCK_LEN + PIECE_BODY_HEADER_LEN;

/// Why a peer's bytes were refused. Every one means the connection should be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(
        "peer announced a {len}-byte frame, over the {max}-byte limit for this torrent; \
         the peer is broken or hostile, drop it"
    )]
    FrameTooLarge { len: u32, max: u32 },
    #[error("{message} message has a {len}-byte body, expected {expected}")]
    BadLength {
        message: MessageId,
        len: u32,
        expected: ExpectedLen,
    },
    #[error(
        "PIECE carries {len} bytes of block data, over the {max}-byte block limit",
        max = MAX_BLOCK_LEN
    )]
    BlockTooLong { len: u32 },
    #[error("a {len}-byte frame ended before its fields did")]
    Truncated { len: u32 },
    #[error(
        "not a BitTorrent handshake: expected \"\\x13BitTorrent protocol\", got {got:?} \
         (an encrypted or non-BitTorrent peer?)"
    )]
    BadProtocol { got: String },
}

/// The body length a message kind allows, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedLen {
    Exactly(u32),
    AtLeast(u32),
}

impl std::fmt::Display for ExpectedLen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "exactly {n}"),
            Self::AtLeast(n) => write!(f, "at least {n}"),
        }
    }
}
