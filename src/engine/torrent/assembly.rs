//! Pieces being received: blocks are gathered in memory and only a verified piece is written,
//! so nothing unverified ever reaches the file or is uploaded.

use std::collections::HashMap;

use crate::policy::PeerKey;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

/// One piece being received: its bytes so far, which blocks are in, and who sent each.
pub struct PieceBuffer {
    pub data: Vec<u8>,
    received: Vec<bool>,
    missing: u32,
    /// Who sent each block (None: the VoD server), to punish the senders of a piece that fails
    /// its hash.
    pub senders: Vec<Option<PeerKey>>,
}

/// Every piece being received, by index (a piece leaves when it is handed to be verified).
#[derive(Default)]
pub struct Assembly {
    pieces: HashMap<PieceIndex, PieceBuffer>,
}

/// What storing a block did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// The block was already there.
    Duplicate,
    Partial,
    /// The last block of the piece: the piece is ready to verify.
    Complete,
}

impl Assembly {
    pub fn store(
        &mut self,
        geometry: &Geometry,
        block: BlockRef,
        from: Option<PeerKey>,
        data: &[u8],
    ) -> Stored {
        let piece = block.piece();
        let buf = self.pieces.entry(piece).or_insert_with(|| {
            let count = geometry.block_count(piece);
            PieceBuffer {
                data: vec![0; geometry.piece_size(piece) as usize],
                received: vec![false; count as usize],
                missing: count,
                senders: vec![None; count as usize],
            }
        });
        let index = block.index() as usize;
        if !block.is_aligned() || buf.received.get(index).copied().unwrap_or(true) {
            return Stored::Duplicate;
        }
        let start = block.offset() as usize;
        buf.data[start..start + data.len()].copy_from_slice(data);
        buf.received[index] = true;
        buf.missing -= 1;
        buf.senders[index] = from;
        if buf.missing == 0 {
            Stored::Complete
        } else {
            Stored::Partial
        }
    }

    /// Whether a block of a piece being gathered is already held.
    pub fn has_block(&self, block: BlockRef) -> bool {
        self.pieces
            .get(&block.piece())
            .and_then(|b| b.received.get(block.index() as usize).copied())
            .unwrap_or(false)
    }

    pub fn take(&mut self, piece: PieceIndex) -> Option<PieceBuffer> {
        self.pieces.remove(&piece)
    }
}
