//! Rarest-first, as in the original BitTorrent client: finish started pieces first, pick the
//! first few pieces at random (to have something to trade quickly), then the rarest.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{FreshOrder, Picker, PickerError, PieceBook};
use crate::policy::{PeerView, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry};

/// Until we hold this many verified pieces, fresh pieces are chosen at random: a rare piece
/// takes longest to arrive, and a newcomer first needs any piece at all to trade.
pub const RANDOM_FIRST_PIECES: u32 = 4;

pub struct RarestFirst {
    book: PieceBook,
    rng: StdRng,
}

impl RarestFirst {
    /// `rng` is seeded by the caller; it draws the tie-break ranks and the random first pieces.
    pub fn new(geometry: Geometry, ours: &Bitfield, mut rng: StdRng) -> Result<Self, PickerError> {
        let mut rank: Vec<u32> = (0..geometry.piece_count()).collect();
        rank.shuffle(&mut rng);
        let book = PieceBook::new(geometry, ours, FreshOrder::Rarest { rank })?;
        Ok(Self { book, rng })
    }
}

impl Picker for RarestFirst {
    fn name(&self) -> &'static str {
        "rarest-first"
    }
    fn book(&self) -> &PieceBook {
        &self.book
    }
    fn book_mut(&mut self) -> &mut PieceBook {
        &mut self.book
    }

    fn next_requests(&mut self, now: Time, peer: &PeerView, slots: usize) -> Vec<BlockRef> {
        let rng = &mut self.rng;
        self.book
            .request_standard(now, peer.key, slots, |book, key, want| {
                if book.ours().count() < RANDOM_FIRST_PIECES {
                    book.random_fresh_candidates(key, want, rng)
                } else {
                    book.fresh_candidates(key, want)
                }
            })
    }
}
