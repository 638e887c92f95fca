//! The piece picker: events about peers and blocks go in, block requests come out. Every
//! policy (rarest-first, sequential, later the VoD deadline policy) sits behind [`Picker`] and
//! shares the block bookkeeping of [`PieceBook`].
//!
//! Calling order (one loop drives it, as quinn-proto's `Connection`): feed each event to its
//! `on_*` method; ask `next_requests` for every peer with free slots and send what it returns;
//! at the end of every turn of the loop, drain `poll_cancel` and send a CANCEL for each. The
//! book is the one record of what is in flight to whom and since when: callers query it
//! instead of keeping their own.

mod book;
mod deadline;
mod rarest;
mod sequential;
#[cfg(test)]
mod tests;

pub use book::{FreshOrder, PieceBook, PieceState};
pub use deadline::{AheadOrder, DeadlineConfig, DeadlineError, DeadlinePicker, UnmeasuredRate};
pub use rarest::RarestFirst;
pub use sequential::Sequential;

use std::sync::Arc;

use crate::policy::vod::DeadlineTable;
use crate::policy::{PeerKey, PeerView, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, PieceIndex};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickerError {
    #[error(
        "our piece set has {got} pieces but the torrent has {expected}; \
         the resume data belongs to another torrent"
    )]
    WrongPieceCount { got: u32, expected: u32 },
}

/// What a received block meant to the bookkeeping.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// We needed it: store it. When `piece_complete`, every block of the piece is now held and
    /// the piece should be verified (then `on_piece_verified` or `on_piece_failed`).
    New { piece_complete: bool },
    /// We already held it (an endgame race or a late answer): discard, count as duplicate.
    Duplicate,
    /// The piece was handed to someone else (the VoD server): discard, count as wasted.
    Superseded,
    /// Not a block of our 16 KiB grid, so never something we asked for: discard.
    Unrequested,
}

/// Events in, requests out. The event methods have default bodies that update the shared
/// [`PieceBook`]; a policy usually only writes `next_requests`.
pub trait Picker {
    /// The policy's name, as shown in reports.
    fn name(&self) -> &'static str;
    fn book(&self) -> &PieceBook;
    fn book_mut(&mut self) -> &mut PieceBook;

    /// Blocks to request from `peer` now: up to `slots`, plus as many as the call took back
    /// from that peer (CANCELs to poll from the book), so the requests in flight to it grow by
    /// at most `slots`. Each returned block is recorded as in flight to that peer until it
    /// arrives or is voided.
    fn next_requests(&mut self, now: Time, peer: &PeerView, slots: usize) -> Vec<BlockRef>;

    /// The peer's full piece set (BITFIELD; HAVE ALL / HAVE NONE as a full or empty set).
    fn on_peer_bitfield(&mut self, peer: PeerKey, have: &Bitfield) {
        self.book_mut().peer_bitfield(peer, have);
    }
    fn on_peer_have(&mut self, peer: PeerKey, piece: PieceIndex) {
        self.book_mut().peer_have(peer, piece);
    }
    /// The connection closed: its requests are void and its pieces no longer count.
    fn on_peer_gone(&mut self, peer: PeerKey) {
        self.book_mut().peer_gone(peer);
    }
    /// The peer choked us: it discards our requests (BEP 3), so they are void.
    fn on_choked(&mut self, peer: PeerKey) {
        self.book_mut().void_all(peer);
    }
    fn on_block(&mut self, now: Time, peer: PeerKey, block: BlockRef) -> BlockOutcome {
        let _ = now;
        self.book_mut().block_received(peer, block)
    }
    /// REJECT REQUEST (fast extension): the block may be asked of someone else.
    fn on_request_rejected(&mut self, peer: PeerKey, block: BlockRef) {
        self.book_mut().void_request(peer, block);
    }
    /// The engine gave up waiting: the request is void and a CANCEL is queued for it.
    fn on_request_timeout(&mut self, peer: PeerKey, block: BlockRef) {
        self.book_mut().request_timed_out(peer, block);
    }
    fn on_piece_verified(&mut self, piece: PieceIndex) {
        self.book_mut().piece_verified(piece);
    }
    /// Hash mismatch: every block of the piece is missing again.
    fn on_piece_failed(&mut self, piece: PieceIndex) {
        self.book_mut().piece_failed(piece);
    }
    /// Someone else (the VoD server) completes this piece: stop asking peers for it.
    fn on_piece_owned_elsewhere(&mut self, piece: PieceIndex) {
        self.book_mut().piece_owned_elsewhere(piece);
    }
    /// The handed-over piece is back (a seek made its deadline moot): ask peers for it again,
    /// except for the `held` blocks.
    fn on_piece_released(&mut self, piece: PieceIndex, held: &[BlockRef]) {
        self.book_mut().piece_released(piece, held);
    }
    /// Whether a piece is to be downloaded at all (files nobody reads are not).
    fn on_wanted(&mut self, piece: PieceIndex, wanted: bool) {
        self.book_mut().set_wanted(piece, wanted);
    }
    /// The playheads moved: `table` holds the new deadlines (deadline-aware policies keep it
    /// instead of their own), and the requests of `abandoned` pieces, now far from every
    /// reader, are taken back at once so the new window's blocks are not queued behind them.
    fn on_deadlines(&mut self, table: &Arc<DeadlineTable>, abandoned: &[PieceIndex]) {
        let _ = table;
        for &piece in abandoned {
            self.book_mut().cancel_piece_requests(piece);
        }
    }
    /// The next request to take back with CANCEL: endgame duplicates of a block that arrived,
    /// requests of pieces owned elsewhere or left behind by a seek, timed-out or late
    /// requests. Already void in the book; the caller only tells the peer.
    #[must_use = "a request taken back must be CANCELled at its peer"]
    fn poll_cancel(&mut self) -> Option<(PeerKey, BlockRef)> {
        self.book_mut().poll_cancel()
    }
    /// Every pending cancellation at once (`poll_cancel` until it returns None).
    #[must_use = "a request taken back must be CANCELled at its peer"]
    fn cancellations(&mut self) -> Vec<(PeerKey, BlockRef)> {
        std::iter::from_fn(|| self.poll_cancel()).collect()
    }
}
