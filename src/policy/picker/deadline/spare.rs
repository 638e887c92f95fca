//! Spare bandwidth of the deadline policy: once the urgent window is asked for, the pieces due
//! next, pieces few peers hold, and other files' pieces, while a peer's pipe has room ahead.

use super::{AheadOrder, DeadlinePicker, FRESH_SCAN_ROUNDS, Window};
use crate::policy::PeerKey;
use crate::policy::picker::{PieceBook, PieceState};
use crate::policy::vod::DeadlineTable;
use crate::proto::geometry::{BLOCK_LEN, BlockRef, PieceIndex};

use super::estimate::Pipe;

impl DeadlinePicker {
    /// Movie pieces due after the urgent window held by at most `holders` connected peers:
    /// started ones first (so they finish and can be shared), then fresh ones rarest-first,
    /// equally rare ones in deadline order.
    pub(super) fn request_beyond(
        &mut self,
        key: PeerKey,
        window: &Window,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
        holders: u32,
    ) {
        if out.len() >= limit {
            return;
        }
        let end = window.end;
        self.request_started_then_fresh(key, pipe, limit, out, move |book, d, p| {
            d.secs(p).is_some_and(|d| d > end) && book.availability(p) <= holders
        });
    }

    /// Movie pieces due after the urgent window, nearest deadline first: they are the next to
    /// become urgent. (Rarest-first here would spend a scarce swarm's bandwidth on pieces due
    /// long after it has grown, and leave the next ones to the server.)
    pub(super) fn request_ahead(
        &mut self,
        key: PeerKey,
        window: &Window,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
    ) {
        if self.config.ahead_order == AheadOrder::Rarest {
            return self.request_beyond(key, window, pipe, limit, out, u32::MAX);
        }
        for position in window.urgent.end..self.table.order().len() {
            if out.len() >= limit || !self.has_room_ahead(pipe) {
                return;
            }
            let Some(piece) = self.piece_at(position) else {
                return;
            };
            if self.askable(key, piece) {
                self.take(key, piece, pipe, limit, out);
            }
        }
    }

    /// Pieces with no movie byte (other files of the torrent): last, rarest-first.
    pub(super) fn request_other_files(
        &mut self,
        key: PeerKey,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
    ) {
        self.request_started_then_fresh(key, pipe, limit, out, |_, d, p| d.due(p).is_none());
    }

    /// Pieces `keep` accepts that this peer has: started ones first (so they finish and can
    /// be shared), then fresh ones rarest-first, while the pipe has room ahead.
    fn request_started_then_fresh(
        &mut self,
        key: PeerKey,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
        keep: impl Fn(&PieceBook, &DeadlineTable, PieceIndex) -> bool,
    ) {
        let open: Vec<PieceIndex> = self
            .book
            .open_pieces()
            .filter(|&p| self.book.peer_has(key, p) && keep(&self.book, &self.table, p))
            .collect();
        for piece in open {
            if !self.has_room_ahead(pipe) {
                return;
            }
            self.take(key, piece, pipe, limit, out);
        }
        self.request_fresh(key, pipe, limit, out, keep);
    }

    /// Fresh pieces `keep` accepts, in the book's rarest-first order.
    fn request_fresh(
        &mut self,
        key: PeerKey,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
        keep: impl Fn(&PieceBook, &DeadlineTable, PieceIndex) -> bool,
    ) {
        let per_piece = self.book.geometry().piece_len().div_ceil(BLOCK_LEN).max(1) as usize;
        // Candidates this peer cannot deliver in time stay fresh and come back first in the
        // next scan: ask for that many more, a few rounds at most.
        let mut too_late = 0;
        for _ in 0..FRESH_SCAN_ROUNDS {
            if out.len() >= limit {
                break;
            }
            let want = (limit - out.len()).div_ceil(per_piece) + too_late;
            let table = &self.table;
            let chosen = self
                .book
                .fresh_candidates_where(key, want, |book, p| keep(book, table, p));
            for &piece in &chosen {
                if !self.has_room_ahead(pipe) {
                    return;
                }
                self.take(key, piece, pipe, limit, out);
            }
            if chosen.len() < want {
                break;
            }
            too_late = chosen
                .iter()
                .filter(|&&p| self.book.state(p) == PieceState::Fresh)
                .count();
        }
    }
}
