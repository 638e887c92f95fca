//! The frame decoder: checks each length prefix against a cap and the message kind before
//! buffering, then turns a complete frame into a [`Message`] without copying block data.

use bytes::{Buf, BytesMut};

use super::message::{BlockSpec, Message, MessageId};
use super::{DEFAULT_MAX_FRAME, ExpectedLen, MAX_BLOCK_LEN, PIECE_BODY_HEADER_LEN, WireError};

/// Bytes of the length prefix that opens every frame.
const PREFIX_LEN: usize = 4;

/// Decodes a stream of length-prefixed messages. Holds only the frame cap, so one decoder per
/// connection costs nothing; it keeps no partial state between calls (the buffer does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireDecoder {
    max_frame: u32,
}

impl Default for WireDecoder {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl WireDecoder {
    /// A decoder refusing frames whose length prefix exceeds `max_frame` (at least the default,
    /// so a full PIECE always fits).
    pub fn with_max_frame(max_frame: u32) -> Self {
        Self {
            max_frame: max_frame.max(DEFAULT_MAX_FRAME),
        }
    }

    /// The cap for a torrent of `piece_count` pieces: a full PIECE or the torrent's BITFIELD,
    /// whichever is larger.
    pub fn for_piece_count(piece_count: u32) -> Self {
        let bitfield_body = piece_count.div_ceil(8).saturating_add(1);
        Self::with_max_frame(bitfield_body)
    }

    /// The largest length prefix this decoder accepts.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Takes one message off the front of `buf`. `Ok(None)` means more bytes are needed; then
    /// nothing was consumed and `buf` has room reserved for the rest of the frame. Length
    /// errors are reported as soon as the prefix (and id) are buffered, before the body is.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let body_len = u32::from_be_bytes(*prefix);
        if body_len == 0 {
            buf.advance(PREFIX_LEN);
            return Ok(Some(Message::KeepAlive));
        }
        if body_len > self.max_frame {
            return Err(WireError::FrameTooLarge {
                len: body_len,
                max: self.max_frame,
            });
        }
        if let Some(&id) = buf.get(PREFIX_LEN) {
            check_body_len(id, body_len)?;
        }
        // Lossless: body_len <= max_frame, a u32, and usize is at least 32 bits here.
        let frame_len = PREFIX_LEN + body_len as usize;
        if buf.len() < frame_len {
            // One reservation for the whole frame, so a slowly arriving PIECE does not
            // reallocate as it grows.
            buf.reserve(frame_len - buf.len());
            return Ok(None);
        }
        buf.advance(PREFIX_LEN);
        let body = buf.split_to(body_len as usize);
        // check_body_len has already passed for this id, so the reads below cannot run short;
        // the checked reads keep a future mistake an error rather than a panic.
        parse_body(body)
            .map(Some)
            .ok_or(WireError::Truncated { len: body_len })
    }
}

/// Refuses a length prefix that the message kind `id` can never have.
fn check_body_len(id: u8, body_len: u32) -> Result<(), WireError> {
    let Some(kind) = MessageId::from_u8(id) else {
        return Ok(());
    };
    let expected = kind.body_len();
    let fits = match expected {
        ExpectedLen::Exactly(n) => body_len == n,
        ExpectedLen::AtLeast(n) => body_len >= n,
    };
    if !fits {
        return Err(WireError::BadLength {
            message: kind,
            len: body_len,
            expected,
        });
    }
    if kind == MessageId::Piece && body_len - PIECE_BODY_HEADER_LEN > MAX_BLOCK_LEN {
        return Err(WireError::BlockTooLong {
            len: body_len - PIECE_BODY_HEADER_LEN,
        });
    }
    Ok(())
}

/// Parses a complete body (id byte first) whose length `check_body_len` has accepted.
fn parse_body(mut body: BytesMut) -> Option<Message> {
    let id = body.try_get_u8().ok()?;
    let Some(kind) = MessageId::from_u8(id) else {
        return Some(Message::Unknown {
            id,
            len: body.len() as u32,
        });
    };
    Some(match kind {
        MessageId::Choke => Message::Choke,
        MessageId::Unchoke => Message::Unchoke,
        MessageId::Interested => Message::Interested,
        MessageId::NotInterested => Message::NotInterested,
        MessageId::HaveAll => Message::HaveAll,
        MessageId::HaveNone => Message::HaveNone,
        MessageId::Have => Message::Have {
            piece: body.try_get_u32().ok()?,
        },
        MessageId::Suggest => Message::Suggest {
            piece: body.try_get_u32().ok()?,
        },
        MessageId::AllowedFast => Message::AllowedFast {
            piece: body.try_get_u32().ok()?,
        },
        MessageId::Request => Message::Request(block_spec(&mut body)?),
        MessageId::Cancel => Message::Cancel(block_spec(&mut body)?),
        MessageId::Reject => Message::Reject(block_spec(&mut body)?),
        MessageId::Port => Message::Port(body.try_get_u16().ok()?),
        MessageId::Bitfield => Message::Bitfield(body.freeze()),
        MessageId::Piece => {
            let piece = body.try_get_u32().ok()?;
            let offset = body.try_get_u32().ok()?;
            Message::Piece {
                piece,
                offset,
                data: body.freeze(),
            }
        }
        MessageId::Extended => {
            let id = body.try_get_u8().ok()?;
            Message::Extended {
                id,
                payload: body.freeze(),
            }
        }
    })
}

fn block_spec(body: &mut BytesMut) -> Option<BlockSpec> {
    Some(BlockSpec {
        piece: body.try_get_u32().ok()?,
        offset: body.try_get_u32().ok()?,
        len: body.try_get_u32().ok()?,
    })
}
