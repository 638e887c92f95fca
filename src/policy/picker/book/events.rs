//! What changes the book: peer events (bitfields, HAVEs, requests voided or answered) and
//! piece events (verified, failed, handed to the server and back, wanted or not).

use super::{PieceBook, PieceState, Slot, TAKEN_BACK_KEPT};
use crate::policy::PeerKey;
use crate::policy::picker::BlockOutcome;
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, PieceIndex};

impl PieceBook {
    /// The next request to take back with CANCEL (queued by the events below), oldest first.
    #[must_use = "a request taken back must be CANCELled at its peer"]
    pub fn poll_cancel(&mut self) -> Option<(PeerKey, BlockRef)> {
        self.cancels.pop_front()
    }

    // ---- peer events ----

    pub fn peer_bitfield(&mut self, peer: PeerKey, have: &Bitfield) {
        let n = self.geometry.piece_count();
        let have = if have.len() == n {
            have.clone()
        } else {
            tracing::warn!(%peer, got = have.len(), expected = n, "bitfield of the wrong length; keeping the pieces in range");
            let mut fixed = Bitfield::empty(n);
            for p in have.ones().filter_map(|i| self.geometry.piece(i)) {
                fixed.set(p);
            }
            fixed
        };
        self.forget_pieces(peer);
        self.cursor_epoch += 1;
        let entry = self.entry(peer);
        entry.has = have;
        if entry.has.is_complete() {
            entry.seed = true;
            self.seeds += 1;
        } else {
            let ones: Vec<u32> = entry.has.ones().collect();
            self.change_availability_of_all(&ones, 1);
        }
    }

    pub fn peer_have(&mut self, peer: PeerKey, piece: PieceIndex) {
        let entry = self.entry(peer);
        if !entry.has.set(piece) {
            return;
        }
        if entry.has.is_complete() {
            // It became a seed: move its count from the per-piece table to `seeds`.
            entry.seed = true;
            let others: Vec<u32> = entry.has.ones().filter(|&p| p != piece.get()).collect();
            self.seeds += 1;
            self.change_availability_of_all(&others, -1);
        } else {
            self.change_availability(piece.get(), 1);
        }
        // The piece may lie before the peer's cursor: pull the cursor back to it.
        if self.state_of(piece.get()) == PieceState::Fresh {
            let at = (self.fresh_key(piece.get()), piece.get());
            if let Some(entry) = self.peers.get_mut(&peer) {
                entry.cursor = entry.cursor.min(at);
            }
        }
    }

    pub fn peer_gone(&mut self, peer: PeerKey) {
        self.void_all(peer);
        self.forget_pieces(peer);
        self.peers.remove(&peer);
    }

    /// Every request in flight to the peer is void (choked, gone). A choking peer may still
    /// send what its send buffer holds: those requests count as taken back.
    pub fn void_all(&mut self, peer: PeerKey) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let blocks = entry.in_flight.take();
        for &(block, sent) in &blocks {
            entry.taken_back.push_capped(block, sent, TAKEN_BACK_KEPT);
        }
        for (block, _) in blocks {
            self.unassign(peer, block);
        }
    }

    /// REJECT REQUEST: the peer will not send the block, whether or not we took it back.
    pub fn void_request(&mut self, peer: PeerKey, block: BlockRef) {
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        // Both: the older request, the taken-back one, is answered first.
        if e.taken_back.remove(block).is_some() {
            e.cancels.honoured += 1;
        } else if e.in_flight.remove(block).is_some() {
            self.unassign(peer, block);
        }
    }

    pub fn request_timed_out(&mut self, peer: PeerKey, block: BlockRef) {
        if self.take_back(peer, block) {
            self.unassign(peer, block);
        }
    }

    pub fn block_received(&mut self, peer: PeerKey, block: BlockRef) -> BlockOutcome {
        let p = block.piece().get();
        if self.geometry.block(block.piece(), block.index()) != Some(block) {
            return BlockOutcome::Unrequested;
        }
        if let Some(e) = self.peers.get_mut(&peer) {
            let asked = e.in_flight.remove(block);
            let taken_back = e.taken_back.remove(block);
            // The older request is the one answered (first in, first out); every taken-back
            // request sent before it was dropped by the peer, or it would have come first.
            let answered = match (asked, taken_back) {
                (Some(a), Some(t)) if t <= a => Some((t, true)),
                (Some(a), _) => Some((a, false)),
                (None, Some(t)) => Some((t, true)),
                (None, None) => None,
            };
            if let Some((sent, ignored)) = answered {
                e.cancels.ignored += u32::from(ignored);
                e.cancels.honoured += e.taken_back.forget_sent_before(sent);
            }
        }
        match self.state_of(p) {
            PieceState::Have | PieceState::Complete => return BlockOutcome::Duplicate,
            // The server is filling this piece; its requests were cancelled, this came late.
            PieceState::Elsewhere => return BlockOutcome::Superseded,
            // Never asked for: nobody reads its file.
            PieceState::Unwanted => return BlockOutcome::Unrequested,
            PieceState::Fresh => self.start(p),
            PieceState::Started => {}
        }
        let Some(sp) = self.started.get_mut(&p) else {
            return BlockOutcome::Unrequested;
        };
        let Some(slot) = sp.slots.get_mut(block.index() as usize) else {
            return BlockOutcome::Unrequested;
        };
        let mut racers = Vec::new();
        match std::mem::replace(slot, Slot::Received) {
            Slot::Received => return BlockOutcome::Duplicate,
            Slot::Missing => {
                sp.missing -= 1;
                sp.received += 1;
                let missing = sp.missing;
                self.adjust_unrequested(p, -1);
                if missing == 0 {
                    self.open.remove(&p);
                }
            }
            Slot::Requested(others) => {
                sp.received += 1;
                racers = others;
            }
        }
        for other in racers.into_iter().filter(|&o| o != peer) {
            self.take_back(other, block);
        }
        let complete = self
            .started
            .get(&p)
            .is_some_and(|sp| sp.received as usize == sp.slots.len());
        if complete {
            self.started.remove(&p);
            self.set_state(p, PieceState::Complete);
        }
        BlockOutcome::New {
            piece_complete: complete,
        }
    }

    // ---- piece events ----

    pub fn piece_verified(&mut self, piece: PieceIndex) {
        self.retire(piece.get());
        self.started.remove(&piece.get());
        self.set_state(piece.get(), PieceState::Have);
        self.ours.set(piece);
    }

    pub fn piece_failed(&mut self, piece: PieceIndex) {
        let p = piece.get();
        self.retire(p);
        self.started.remove(&p);
        self.ours.clear(piece);
        self.cursor_epoch += 1;
        self.set_state(p, PieceState::Fresh);
        self.fresh.insert((self.fresh_key(p), p));
        self.adjust_unrequested(p, i64::from(self.geometry.block_count(piece)));
    }

    pub fn piece_owned_elsewhere(&mut self, piece: PieceIndex) {
        if matches!(
            self.state_of(piece.get()),
            PieceState::Have | PieceState::Complete | PieceState::Elsewhere
        ) {
            return;
        }
        self.retire(piece.get());
        self.set_state(piece.get(), PieceState::Elsewhere);
    }

    /// The piece was handed to someone else and is back (a seek made its deadline moot): it is
    /// asked of peers again, except for the `held` blocks, which are kept.
    pub fn piece_released(&mut self, piece: PieceIndex, held: &[BlockRef]) {
        let p = piece.get();
        if self.state_of(p) != PieceState::Elsewhere {
            return;
        }
        if held.is_empty() && !self.started.contains_key(&p) {
            self.cursor_epoch += 1;
            self.set_state(p, PieceState::Fresh);
            self.fresh.insert((self.fresh_key(p), p));
            self.adjust_unrequested(p, i64::from(self.geometry.block_count(piece)));
            return;
        }
        if self.started.contains_key(&p) {
            // Blocks received before the piece was handed over are still held.
            self.open.insert(p);
            self.set_state(p, PieceState::Started);
        } else {
            self.start(p);
        }
        let Some(sp) = self.started.get_mut(&p) else {
            return;
        };
        for block in held.iter().filter(|b| b.piece() == piece) {
            if let Some(slot) = sp.slots.get_mut(block.index() as usize)
                && *slot == Slot::Missing
            {
                *slot = Slot::Received;
                sp.missing -= 1;
                sp.received += 1;
            }
        }
        let (missing, complete) = (sp.missing, sp.received as usize == sp.slots.len());
        if complete {
            self.started.remove(&p);
            self.open.remove(&p);
            self.set_state(p, PieceState::Complete);
            return;
        }
        if missing == 0 {
            self.open.remove(&p);
        }
        self.adjust_unrequested(p, i64::from(missing));
    }

    /// Takes back every request of a started piece (a seek left it far from every reader):
    /// CANCELs are queued, the blocks can be asked again later, received blocks are kept.
    pub fn cancel_piece_requests(&mut self, piece: PieceIndex) {
        let p = piece.get();
        if self.state_of(p) != PieceState::Started {
            return;
        }
        let asked: Vec<(PeerKey, BlockRef)> = match self.started.get(&p) {
            Some(sp) => sp
                .slots
                .iter()
                .zip(self.geometry.blocks(piece))
                .flat_map(|(slot, block)| match slot {
                    Slot::Requested(peers) => peers.iter().map(|&k| (k, block)).collect(),
                    _ => Vec::new(),
                })
                .collect(),
            None => Vec::new(),
        };
        for (peer, block) in asked {
            self.request_timed_out(peer, block);
        }
    }

    /// Whether the piece is to be downloaded at all. An unwanted piece that is not started is
    /// never requested; one already started or held is left as it is.
    pub fn set_wanted(&mut self, piece: PieceIndex, wanted: bool) {
        let p = piece.get();
        match (self.state_of(p), wanted) {
            (PieceState::Fresh, false) => {
                self.fresh.remove(&(self.fresh_key(p), p));
                self.adjust_unrequested(p, -i64::from(self.geometry.block_count(piece)));
                self.set_state(p, PieceState::Unwanted);
            }
            (PieceState::Unwanted, true) => {
                self.cursor_epoch += 1;
                self.set_state(p, PieceState::Fresh);
                self.fresh.insert((self.fresh_key(p), p));
                self.adjust_unrequested(p, i64::from(self.geometry.block_count(piece)));
            }
            _ => {}
        }
    }
}
