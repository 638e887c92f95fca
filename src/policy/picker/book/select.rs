//! Selection helpers the policies are built from: finish open pieces, find fresh pieces in the
//! book's order (or at random), and endgame duplicates. Each marks what it picks as in flight,
//! sent at `now`.

use rand::Rng;

use super::{FreshOrder, PieceBook, PieceState, Slot};
use crate::policy::{PeerKey, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BLOCK_LEN, BlockRef, Geometry, PieceIndex};

/// Random probes before the random choice falls back to listing the peer's candidates.
const RANDOM_PROBES: usize = 64;

fn holds(has: &Bitfield, geometry: &Geometry, p: u32) -> bool {
    geometry.piece(p).is_some_and(|piece| has.has(piece))
}

impl PieceBook {
    /// The standard shape of a pick: blocks of started pieces first (strict priority, so pieces
    /// finish and can be shared), then fresh pieces from `choose`, then endgame duplicates.
    /// `choose(book, peer, want)` returns up to `want` fresh pieces the peer has, best first.
    pub fn request_standard(
        &mut self,
        now: Time,
        peer: PeerKey,
        slots: usize,
        mut choose: impl FnMut(&mut Self, PeerKey, usize) -> Vec<PieceIndex>,
    ) -> Vec<BlockRef> {
        let mut out = Vec::with_capacity(slots);
        if slots == 0 || !self.peers.contains_key(&peer) {
            return out;
        }
        self.request_open(now, peer, slots, &mut out);
        let per_piece = self.geometry.piece_len().div_ceil(BLOCK_LEN).max(1) as usize;
        while out.len() < slots {
            let want = (slots - out.len()).div_ceil(per_piece);
            let chosen = choose(self, peer, want);
            let before = out.len();
            for &piece in &chosen {
                self.request_piece(now, peer, piece, slots, &mut out);
            }
            if out.len() == before || chosen.len() < want {
                break;
            }
        }
        self.request_endgame(now, peer, slots, &mut out);
        out
    }

    /// Unrequested blocks of started pieces the peer has, lowest piece index first.
    pub fn request_open(
        &mut self,
        now: Time,
        peer: PeerKey,
        slots: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        // One pass over the open set (it holds about one piece per active peer), collecting
        // just enough of the peer's pieces to fill the slots.
        let mut needed = slots.saturating_sub(out.len());
        let mut chosen = Vec::new();
        for &p in &self.open {
            if needed == 0 {
                break;
            }
            if holds(&entry.has, &self.geometry, p) {
                let missing = self.started.get(&p).map_or(0, |sp| sp.missing as usize);
                needed = needed.saturating_sub(missing);
                chosen.push(p);
            }
        }
        for p in chosen {
            if let Some(piece) = self.geometry.piece(p) {
                self.request_piece(now, peer, piece, slots, out);
            }
        }
    }

    /// Requests the piece's unrequested blocks in order, starting it if fresh, until `out`
    /// holds `slots` blocks. Does nothing if the peer lacks the piece or it is not pickable.
    pub fn request_piece(
        &mut self,
        now: Time,
        peer: PeerKey,
        piece: PieceIndex,
        slots: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let p = piece.get();
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        if out.len() >= slots || !entry.has.has(piece) {
            return;
        }
        match self.state_of(p) {
            PieceState::Fresh => self.start(p),
            PieceState::Started => {}
            _ => return,
        }
        let (Some(sp), Some(entry)) = (self.started.get_mut(&p), self.peers.get_mut(&peer)) else {
            return;
        };
        let mut taken = 0;
        for (slot, block) in sp.slots.iter_mut().zip(self.geometry.blocks(piece)) {
            if out.len() >= slots {
                break;
            }
            if *slot == Slot::Missing {
                *slot = Slot::Requested(vec![peer]);
                entry.in_flight.push(block, now);
                out.push(block);
                taken += 1;
            }
        }
        sp.missing -= taken;
        if sp.missing == 0 {
            self.open.remove(&p);
        }
        self.adjust_unrequested(p, -i64::from(taken));
    }

    /// Up to `want` fresh pieces the peer has, in the book's order (rarest or lowest index).
    /// The scan resumes at the peer's cursor: everything before it is known to be lacked by
    /// the peer, so a peer missing the first pieces in order pays for skipping them once.
    pub fn fresh_candidates(&mut self, peer: PeerKey, want: usize) -> Vec<PieceIndex> {
        self.fresh_candidates_where(peer, want, |_, _| true)
    }

    /// As [`Self::fresh_candidates`], keeping only pieces `keep` accepts (the cursor still
    /// marks the first held piece, so skipping never hides a piece from later scans).
    pub fn fresh_candidates_where(
        &mut self,
        peer: PeerKey,
        want: usize,
        keep: impl Fn(&Self, PieceIndex) -> bool,
    ) -> Vec<PieceIndex> {
        let Some(entry) = self.peers.get(&peer) else {
            return Vec::new();
        };
        if want == 0 {
            return Vec::new();
        }
        // A non-seed peer counts itself in the availability of its pieces: skip the zeros.
        let start = match self.order {
            FreshOrder::Rarest { .. } if !entry.seed => (1u64 << 32, 0),
            _ => (0, 0),
        };
        let lower = if entry.cursor_epoch == self.cursor_epoch {
            entry.cursor.max(start)
        } else {
            start
        };
        let mut found: Vec<u32> = Vec::new();
        let mut first_held = None;
        for &(key, p) in self.fresh.range(lower..) {
            if holds(&entry.has, &self.geometry, p) {
                first_held.get_or_insert((key, p));
                if !self
                    .geometry
                    .piece(p)
                    .is_some_and(|piece| keep(self, piece))
                {
                    continue;
                }
                found.push(p);
                if found.len() == want {
                    break;
                }
            }
        }
        let epoch = self.cursor_epoch;
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.cursor = first_held.unwrap_or((u64::MAX, u32::MAX));
            entry.cursor_epoch = epoch;
        }
        found
            .into_iter()
            .filter_map(|p| self.geometry.piece(p))
            .collect()
    }

    /// Up to `want` distinct fresh pieces the peer has, chosen uniformly at random.
    pub fn random_fresh_candidates(
        &self,
        peer: PeerKey,
        want: usize,
        rng: &mut impl Rng,
    ) -> Vec<PieceIndex> {
        let Some(entry) = self.peers.get(&peer) else {
            return Vec::new();
        };
        let n = self.geometry.piece_count();
        let usable = |p: u32, found: &[u32]| {
            self.state_of(p) == PieceState::Fresh
                && holds(&entry.has, &self.geometry, p)
                && !found.contains(&p)
        };
        let mut found: Vec<u32> = Vec::new();
        for _ in 0..RANDOM_PROBES {
            if found.len() >= want {
                break;
            }
            let p = rng.random_range(0..n);
            if usable(p, &found) {
                found.push(p);
            }
        }
        if found.len() < want {
            let mut all: Vec<u32> = entry.has.ones().filter(|&p| usable(p, &found)).collect();
            while found.len() < want && !all.is_empty() {
                found.push(all.swap_remove(rng.random_range(0..all.len())));
            }
        }
        found
            .into_iter()
            .filter_map(|p| self.geometry.piece(p))
            .collect()
    }

    /// Asks `peer` for a block already in flight to others (a deadline race): first arrival
    /// wins and the other requests are cancelled, as in endgame. False if the block is not in
    /// flight, the peer lacks its piece or already has the request.
    pub fn request_duplicate(&mut self, now: Time, peer: PeerKey, block: BlockRef) -> bool {
        let p = block.piece().get();
        if self.state_of(p) != PieceState::Started
            || self.geometry.block(block.piece(), block.index()) != Some(block)
        {
            return false;
        }
        let Some(entry) = self.peers.get_mut(&peer) else {
            return false;
        };
        if !entry.has.has(block.piece()) {
            return false;
        }
        let slot = self
            .started
            .get_mut(&p)
            .and_then(|sp| sp.slots.get_mut(block.index() as usize));
        match slot {
            Some(Slot::Requested(q)) if !q.contains(&peer) => {
                q.push(peer);
                entry.in_flight.push(block, now);
                true
            }
            _ => false,
        }
    }

    /// In endgame, blocks already in flight to other peers (never to this one), the least
    /// duplicated first, so a slow peer's last blocks are raced by faster ones.
    pub fn request_endgame(
        &mut self,
        now: Time,
        peer: PeerKey,
        slots: usize,
        out: &mut Vec<BlockRef>,
    ) {
        if out.len() >= slots || !self.is_endgame() {
            return;
        }
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        let mut candidates: Vec<(usize, u32, u32)> = Vec::new();
        for (&p, sp) in &self.started {
            if self.state_of(p) != PieceState::Started || !holds(&entry.has, &self.geometry, p) {
                continue;
            }
            for (i, slot) in sp.slots.iter().enumerate() {
                if let Slot::Requested(q) = slot
                    && !q.contains(&peer)
                {
                    candidates.push((q.len(), p, i as u32));
                }
            }
        }
        candidates.sort_unstable();
        for (_, p, i) in candidates.into_iter().take(slots - out.len()) {
            let Some(block) = self
                .geometry
                .piece(p)
                .and_then(|pc| self.geometry.block(pc, i))
            else {
                continue;
            };
            let slot = self
                .started
                .get_mut(&p)
                .and_then(|sp| sp.slots.get_mut(i as usize));
            if let (Some(Slot::Requested(q)), Some(entry)) = (slot, self.peers.get_mut(&peer)) {
                q.push(peer);
                entry.in_flight.push(block, now);
                out.push(block);
            }
        }
    }
}
