//! Block bookkeeping shared by every picker: which pieces we hold, how many peers have each
//! piece, the state of every block of the pieces in progress, and what is in flight to whom.

mod events;
mod select;
mod sent;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use self::sent::Sent;
use super::PickerError;
use crate::policy::{PeerKey, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

/// How many taken-back requests are remembered per peer: libtorrent's default send buffer
/// (500 KiB) holds about 31 blocks, so twice that covers what a peer can still be sending.
const TAKEN_BACK_KEPT: usize = 64;

/// Where a piece stands from the picker's point of view.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PieceState {
    /// Not started: no block held or requested.
    Fresh,
    /// Some blocks requested or held.
    Started,
    /// Every block held, waiting for its hash check.
    Complete,
    /// Handed to someone else (the VoD server); peers are no longer asked for it.
    Elsewhere,
    /// Verified and ours.
    Have,
    /// Not wanted (a file nobody reads): never requested until wanted again.
    Unwanted,
}

/// The order in which fresh (not started) pieces are offered to a peer.
#[derive(Clone, Debug)]
pub enum FreshOrder {
    /// Fewest peers first (peers holding every piece do not change the order); ties broken by
    /// a random rank per piece drawn once from the caller's seeded RNG.
    Rarest { rank: Vec<u32> },
    /// Lowest index first.
    Sequential,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    Missing,
    /// In flight to these peers (more than one only in endgame). Never empty.
    Requested(Vec<PeerKey>),
    Received,
}

#[derive(Clone, Debug)]
struct StartedPiece {
    slots: Vec<Slot>,
    /// Slots in `Missing`: blocks nobody has been asked for.
    missing: u32,
    received: u32,
}

#[derive(Clone, Debug)]
struct PeerEntry {
    has: Bitfield,
    /// Holds every piece: counted in `PieceBook::seeds`, not in `availability`.
    seed: bool,
    in_flight: Sent,
    /// Requests we took back with CANCEL, with when they were sent, newest last (at most
    /// `TAKEN_BACK_KEPT`). A peer that had already queued the block sends it anyway
    /// (libtorrent fills its send buffer as requests come): it is still ours to use.
    taken_back: Sent,
    /// How this peer answered our CANCELs so far (see `cancel_ignored_share`).
    cancels: CancelAnswers,
    /// Every fresh entry ordered before this one is lacked by the peer, while `cursor_epoch`
    /// matches the book's (see `fresh_candidates`).
    cursor: (u64, u32),
    cursor_epoch: u64,
}

/// Taken-back requests a peer sent anyway, and ones it dropped: REJECTed, or passed over by a
/// block asked for later (peers serve first in, first out).
#[derive(Clone, Copy, Debug, Default)]
struct CancelAnswers {
    ignored: u32,
    honoured: u32,
}

/// The bookkeeping every picker shares. Policies read it and call its selection helpers.
#[derive(Clone, Debug)]
pub struct PieceBook {
    geometry: Geometry,
    ours: Bitfield,
    state: Vec<PieceState>,
    started: BTreeMap<u32, StartedPiece>,
    /// Started pieces that still have blocks nobody was asked for.
    open: BTreeSet<u32>,
    peers: BTreeMap<PeerKey, PeerEntry>,
    seeds: u32,
    /// Per piece, how many non-seed peers have it.
    availability: Vec<u32>,
    order: FreshOrder,
    /// Fresh pieces by `order`'s key.
    fresh: BTreeSet<(u64, u32)>,
    /// Unrequested blocks over all pieces we lack, and over those no non-seed peer has: with
    /// both, "every obtainable block is requested" (endgame) is a comparison, not a scan.
    unrequested_total: u64,
    unrequested_unavailable: u64,
    /// Requests taken back, waiting for `poll_cancel`.
    cancels: VecDeque<(PeerKey, BlockRef)>,
    /// Bumped when a held piece may have moved before a peer's cursor: an availability drop,
    /// a piece fresh again, a replaced bitfield. Rare events, so cursors stay useful.
    cursor_epoch: u64,
}

impl PieceBook {
    /// `ours` is the set of pieces already verified (resume data), one bit per piece.
    pub fn new(
        geometry: Geometry,
        ours: &Bitfield,
        order: FreshOrder,
    ) -> Result<Self, PickerError> {
        let n = geometry.piece_count();
        if ours.len() != n {
            return Err(PickerError::WrongPieceCount {
                got: ours.len(),
                expected: n,
            });
        }
        let mut book = Self {
            state: vec![PieceState::Fresh; n as usize],
            ours: ours.clone(),
            started: BTreeMap::new(),
            open: BTreeSet::new(),
            peers: BTreeMap::new(),
            seeds: 0,
            availability: vec![0; n as usize],
            order,
            fresh: BTreeSet::new(),
            unrequested_total: 0,
            unrequested_unavailable: 0,
            cancels: VecDeque::new(),
            cursor_epoch: 0,
            geometry,
        };
        for piece in book.geometry.pieces() {
            if ours.has(piece) {
                book.state[piece.as_usize()] = PieceState::Have;
            } else {
                let blocks = u64::from(book.geometry.block_count(piece));
                book.unrequested_total += blocks;
                book.unrequested_unavailable += blocks;
                book.fresh
                    .insert((book.fresh_key(piece.get()), piece.get()));
            }
        }
        Ok(book)
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// The pieces we hold verified.
    pub fn ours(&self) -> &Bitfield {
        &self.ours
    }
    pub fn state(&self, piece: PieceIndex) -> PieceState {
        self.state_of(piece.get())
    }
    /// How many connected peers have the piece.
    pub fn availability(&self, piece: PieceIndex) -> u32 {
        self.availability
            .get(piece.as_usize())
            .map_or(0, |a| a + self.seeds)
    }

    /// Connected peers that still lack a piece (known from a bitfield or a HAVE).
    pub fn downloaders(&self) -> usize {
        self.peers.len().saturating_sub(self.seeds as usize)
    }

    pub fn peer_has(&self, peer: PeerKey, piece: PieceIndex) -> bool {
        self.peers.get(&peer).is_some_and(|e| e.has.has(piece))
    }
    /// Blocks in flight to the peer, in the order they were sent.
    pub fn in_flight(&self, peer: PeerKey) -> impl Iterator<Item = BlockRef> + '_ {
        self.requests(peer).map(|(b, _)| b)
    }
    /// Requests in flight to the peer with when each was sent, oldest first (peers serve
    /// them in this order).
    pub fn requests(&self, peer: PeerKey) -> impl Iterator<Item = (BlockRef, Time)> + '_ {
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|e| e.in_flight.iter())
    }
    /// When the block was requested of the peer, if that request is still in flight.
    pub fn sent_at(&self, peer: PeerKey, block: BlockRef) -> Option<Time> {
        self.peers.get(&peer)?.in_flight.sent_at(block)
    }
    /// When the block was requested of the peer, if we took that request back since (and it
    /// has not arrived): a block that comes anyway was asked for, not pushed on us.
    pub fn taken_back_at(&self, peer: PeerKey, block: BlockRef) -> Option<Time> {
        self.peers.get(&peer)?.taken_back.sent_at(block)
    }
    /// How many pieces the peer has told us it has.
    /// Requests taken back from the peer that may still come (neither arrived nor known to
    /// be dropped), oldest sent first.
    pub fn taken_back(&self, peer: PeerKey) -> impl Iterator<Item = (BlockRef, Time)> + '_ {
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|e| e.taken_back.iter())
    }

    /// The share of taken-back requests this peer has sent anyway: near 1 for a libtorrent
    /// peer whose send buffer holds our queue, near 0 for one that drops them; 1/2 before
    /// either is seen. Those blocks still take its upload time ahead of newer requests.
    pub fn cancel_ignored_share(&self, peer: PeerKey) -> f64 {
        let c = self.peers.get(&peer).map(|e| e.cancels).unwrap_or_default();
        (f64::from(c.ignored) + 1.0) / (f64::from(c.ignored) + f64::from(c.honoured) + 2.0)
    }

    pub fn peer_piece_count(&self, peer: PeerKey) -> u32 {
        self.peers.get(&peer).map_or(0, |e| e.has.count())
    }
    /// Whether the peer has a piece we still want (worth being interested in).
    pub fn peer_offers_wanted(&self, peer: PeerKey) -> bool {
        self.peers.get(&peer).is_some_and(|e| {
            e.has
                .ones()
                .any(|i| self.geometry.piece(i).is_some_and(|p| self.wants(p)))
        })
    }
    pub fn in_flight_count(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |e| e.in_flight.len())
    }
    /// The peers a block is currently requested from.
    pub fn requesters(&self, block: BlockRef) -> &[PeerKey] {
        match self.slot(block) {
            Some(Slot::Requested(peers)) => peers,
            _ => &[],
        }
    }
    /// Every block we ask peers for is in flight already (for pieces some peer has).
    pub fn is_endgame(&self) -> bool {
        let obtainable = if self.seeds > 0 {
            self.unrequested_total
        } else {
            self.unrequested_total
                .saturating_sub(self.unrequested_unavailable)
        };
        obtainable == 0
    }
    /// Blocks of the piece we do not hold (in-flight ones included), in order: what the VoD
    /// server would have to supply.
    pub fn missing_blocks(&self, piece: PieceIndex) -> Vec<BlockRef> {
        let all = self.geometry.blocks(piece);
        match (self.state_of(piece.get()), self.started.get(&piece.get())) {
            (PieceState::Have | PieceState::Complete, _) => Vec::new(),
            (_, Some(sp)) => all
                .zip(&sp.slots)
                .filter(|(_, s)| **s != Slot::Received)
                .map(|(b, _)| b)
                .collect(),
            (_, None) => all.collect(),
        }
    }
    /// Whether some block of the piece has been asked of nobody (and it is wanted).
    pub fn has_unrequested(&self, piece: PieceIndex) -> bool {
        self.unrequested_of(piece.get()) > 0
    }
    /// How many blocks of the piece have been asked of nobody (0 if it is not wanted).
    pub fn unrequested_count(&self, piece: PieceIndex) -> u64 {
        self.unrequested_of(piece.get())
    }
    /// Started pieces with blocks nobody was asked for yet, ascending.
    pub fn open_pieces(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.open.iter().filter_map(|&p| self.geometry.piece(p))
    }

    /// Whether we still want the piece from someone: not held, not unwanted.
    pub fn wants(&self, piece: PieceIndex) -> bool {
        !matches!(
            self.state_of(piece.get()),
            PieceState::Have | PieceState::Unwanted
        )
    }

    // ---- internals ----

    fn state_of(&self, p: u32) -> PieceState {
        self.state
            .get(p as usize)
            .copied()
            .unwrap_or(PieceState::Have)
    }

    fn set_state(&mut self, p: u32, state: PieceState) {
        if let Some(s) = self.state.get_mut(p as usize) {
            *s = state;
        }
    }

    fn slot(&self, block: BlockRef) -> Option<&Slot> {
        self.started
            .get(&block.piece().get())?
            .slots
            .get(block.index() as usize)
    }

    fn entry(&mut self, peer: PeerKey) -> &mut PeerEntry {
        let n = self.geometry.piece_count();
        self.peers.entry(peer).or_insert_with(|| PeerEntry {
            has: Bitfield::empty(n),
            seed: false,
            in_flight: Sent::default(),
            taken_back: Sent::default(),
            cancels: CancelAnswers::default(),
            cursor: (0, 0),
            cursor_epoch: 0,
        })
    }

    fn fresh_key(&self, p: u32) -> u64 {
        match &self.order {
            FreshOrder::Rarest { rank } => {
                let avail = self.availability.get(p as usize).copied().unwrap_or(0);
                (u64::from(avail) << 32) | u64::from(rank.get(p as usize).copied().unwrap_or(p))
            }
            FreshOrder::Sequential => u64::from(p),
        }
    }

    /// Removes the peer's pieces from the availability counts (its set is kept).
    fn forget_pieces(&mut self, peer: PeerKey) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        if entry.seed {
            entry.seed = false;
            self.seeds = self.seeds.saturating_sub(1);
            return;
        }
        let ones: Vec<u32> = entry.has.ones().collect();
        self.change_availability_of_all(&ones, -1);
    }

    fn change_availability_of_all(&mut self, pieces: &[u32], delta: i32) {
        // Re-keying costs two tree operations per piece; for a large share of the torrent,
        // rebuilding the ordered set in one sorted pass is several times cheaper.
        let rebuild =
            matches!(self.order, FreshOrder::Rarest { .. }) && pieces.len() > self.fresh.len() / 8;
        for &p in pieces {
            self.change_availability_keyed(p, delta, !rebuild);
        }
        if rebuild {
            self.fresh = self
                .fresh
                .iter()
                .map(|&(_, p)| (self.fresh_key(p), p))
                .collect();
        }
    }

    fn change_availability(&mut self, p: u32, delta: i32) {
        self.change_availability_keyed(p, delta, true);
    }

    /// With `rekey` false the fresh set is left stale for this piece; the caller rebuilds it.
    fn change_availability_keyed(&mut self, p: u32, delta: i32, rekey: bool) {
        let Some(&old) = self.availability.get(p as usize) else {
            return;
        };
        let new = old.saturating_add_signed(delta);
        if new < old {
            self.cursor_epoch += 1;
        }
        let rekey = rekey
            && self.state_of(p) == PieceState::Fresh
            && matches!(self.order, FreshOrder::Rarest { .. });
        if rekey {
            self.fresh.remove(&(self.fresh_key(p), p));
        }
        self.availability[p as usize] = new;
        if rekey {
            self.fresh.insert((self.fresh_key(p), p));
        }
        let unrequested = self.unrequested_of(p);
        if old == 0 && new > 0 {
            self.unrequested_unavailable = self.unrequested_unavailable.saturating_sub(unrequested);
        } else if old > 0 && new == 0 {
            self.unrequested_unavailable += unrequested;
        }
    }

    fn unrequested_of(&self, p: u32) -> u64 {
        match self.state_of(p) {
            PieceState::Fresh => self
                .geometry
                .piece(p)
                .map_or(0, |piece| u64::from(self.geometry.block_count(piece))),
            PieceState::Started => self.started.get(&p).map_or(0, |sp| u64::from(sp.missing)),
            _ => 0,
        }
    }

    /// Every change of a piece's unrequested block count goes through here.
    fn adjust_unrequested(&mut self, p: u32, delta: i64) {
        self.unrequested_total = self.unrequested_total.saturating_add_signed(delta);
        if self.availability.get(p as usize) == Some(&0) {
            self.unrequested_unavailable =
                self.unrequested_unavailable.saturating_add_signed(delta);
        }
    }

    /// Fresh -> Started with every block missing (the unrequested count does not change).
    fn start(&mut self, p: u32) {
        let Some(piece) = self.geometry.piece(p) else {
            return;
        };
        self.fresh.remove(&(self.fresh_key(p), p));
        let blocks = self.geometry.block_count(piece);
        self.started.insert(
            p,
            StartedPiece {
                slots: vec![Slot::Missing; blocks as usize],
                missing: blocks,
                received: 0,
            },
        );
        self.open.insert(p);
        self.set_state(p, PieceState::Started);
    }

    /// Takes the piece out of picking: cancels its requests and drops its unrequested count.
    /// A started piece keeps its received blocks (for `missing_blocks`).
    fn retire(&mut self, p: u32) {
        let unrequested = self.unrequested_of(p);
        self.adjust_unrequested(p, -(unrequested as i64));
        match self.state_of(p) {
            PieceState::Fresh => {
                self.fresh.remove(&(self.fresh_key(p), p));
            }
            PieceState::Started | PieceState::Elsewhere => {
                self.open.remove(&p);
                let Some(piece) = self.geometry.piece(p) else {
                    return;
                };
                let mut taken = Vec::new();
                if let Some(sp) = self.started.get_mut(&p) {
                    for (slot, block) in sp.slots.iter_mut().zip(self.geometry.blocks(piece)) {
                        if let Slot::Requested(peers) = slot {
                            taken.extend(peers.iter().map(|&peer| (peer, block)));
                            *slot = Slot::Missing;
                            sp.missing += 1;
                        }
                    }
                }
                for (peer, block) in taken {
                    self.take_back(peer, block);
                }
            }
            PieceState::Complete | PieceState::Have | PieceState::Unwanted => {}
        }
    }

    /// Removes the peer's request for the block from its record and queues the CANCEL (the
    /// caller updates the block's slot). Returns whether it was in flight.
    fn take_back(&mut self, peer: PeerKey, block: BlockRef) -> bool {
        let Some(e) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(sent_at) = e.in_flight.remove(block) else {
            return false;
        };
        e.taken_back.push_capped(block, sent_at, TAKEN_BACK_KEPT);
        self.cancels.push_back((peer, block));
        true
    }

    /// The peer no longer has `block` in flight (already removed from its set by the caller).
    fn unassign(&mut self, peer: PeerKey, block: BlockRef) {
        let p = block.piece().get();
        if self.state_of(p) != PieceState::Started {
            return;
        }
        let Some(sp) = self.started.get_mut(&p) else {
            return;
        };
        let Some(slot) = sp.slots.get_mut(block.index() as usize) else {
            return;
        };
        if let Slot::Requested(peers) = slot {
            peers.retain(|&q| q != peer);
            if peers.is_empty() {
                *slot = Slot::Missing;
                sp.missing += 1;
                self.open.insert(p);
                self.adjust_unrequested(p, 1);
            }
        }
    }
}
