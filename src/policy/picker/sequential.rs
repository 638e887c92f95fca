//! Sequential: the lowest-index piece first (the plain streaming baseline), with the same
//! started-pieces-first and endgame rules as rarest-first.

use super::{FreshOrder, Picker, PickerError, PieceBook};
use crate::policy::{PeerView, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry};

pub struct Sequential {
    book: PieceBook,
}

impl Sequential {
    pub fn new(geometry: Geometry, ours: &Bitfield) -> Result<Self, PickerError> {
        let book = PieceBook::new(geometry, ours, FreshOrder::Sequential)?;
        Ok(Self { book })
    }
}

impl Picker for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }
    fn book(&self) -> &PieceBook {
        &self.book
    }
    fn book_mut(&mut self) -> &mut PieceBook {
        &mut self.book
    }

    fn next_requests(&mut self, now: Time, peer: &PeerView, slots: usize) -> Vec<BlockRef> {
        self.book
            .request_standard(now, peer.key, slots, |book, key, want| {
                book.fresh_candidates(key, want)
            })
    }
}
