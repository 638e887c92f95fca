//! The 68-byte handshake that opens every peer connection, and its reserved feature bits.

use bytes::{Buf, BufMut, BytesMut};

use super::WireError;
use crate::proto::{InfoHash, PeerId};

/// The protocol string with its length prefix, exactly as it opens every handshake.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Protocol string (20) + reserved (8) + info hash (20) + peer id (20).
pub const HANDSHAKE_LEN: usize = 68;

/// BEP 6: reserved byte 7, bit 0x04.
const FAST_BYTE: usize = 7;
const FAST_BIT: u8 = 0x04;
/// BEP 10: reserved byte 5, bit 0x10.
const EXTENSION_BYTE: usize = 5;
const EXTENSION_BIT: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    /// The handshake btvod sends: the Fast extension and the extension protocol (BEP 10) on,
    /// nothing else (no DHT bit).
    pub fn ours(info_hash: InfoHash, peer_id: PeerId) -> Self {
        let mut reserved = [0u8; 8];
        reserved[FAST_BYTE] |= FAST_BIT;
        reserved[EXTENSION_BYTE] |= EXTENSION_BIT;
        Self {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// Whether the sender supports BEP 6 (HAVE ALL/NONE, REJECT, ALLOWED FAST, SUGGEST).
    /// The Fast messages are only legal when both sides set this bit.
    pub fn supports_fast(&self) -> bool {
        self.reserved[FAST_BYTE] & FAST_BIT != 0
    }

    /// Whether the sender supports BEP 10 extended messages: only then may it be sent any.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BYTE] & EXTENSION_BIT != 0
    }

    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HANDSHAKE_LEN);
        dst.put_slice(PROTOCOL);
        dst.put_slice(&self.reserved);
        dst.put_slice(&self.info_hash.0);
        dst.put_slice(&self.peer_id.0);
    }

    /// Takes one handshake off the front of `buf`. `Ok(None)` means more bytes are needed (and
    /// nothing was consumed). A wrong protocol string is reported as soon as the first wrong
    /// byte arrives, so an encrypted or HTTP peer is refused without waiting for 68 bytes.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, WireError> {
        let seen = buf.len().min(PROTOCOL.len());
        if buf[..seen] != PROTOCOL[..seen] {
            return Err(WireError::BadProtocol {
                got: String::from_utf8_lossy(&buf[..seen]).into_owned(),
            });
        }
        if buf.len() < HANDSHAKE_LEN {
            buf.reserve(HANDSHAKE_LEN - buf.len());
            return Ok(None);
        }
        buf.advance(PROTOCOL.len());
        let mut reserved = [0u8; 8];
        buf.copy_to_slice(&mut reserved);
        let mut info_hash = [0u8; 20];
        buf.copy_to_slice(&mut info_hash);
        let mut peer_id = [0u8; 20];
        buf.copy_to_slice(&mut peer_id);
        Ok(Some(Self {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        }))
    }
}
