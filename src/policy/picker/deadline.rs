//! The deadline-aware VoD policy (`--policy deadline`): every block is asked of a peer that can
//! deliver it before its piece's deadline, urgent blocks first, stuck urgent blocks raced by a
//! faster peer, hopeless requests taken back, and spare bandwidth spent on the next pieces due
//! (and on pieces few peers hold), a few seconds of work deep.
//!
//! Why per block: the VoD server fetches only the blocks a piece misses at its deadline
//! (`vod-scoring.md`), so every block that arrives in time saves its bytes, whether or not its
//! piece completes. Scheduling unit jobs against deadlines is earliest-deadline-first with the
//! jobs that would be late dropped (Moore-Hodgson), which is what the urgent window does for the
//! pipe of each peer, with arrival times estimated from the peer's queue, rate and RTT.

mod config;
mod estimate;
mod preempt;
mod spare;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use super::{BlockOutcome, FreshOrder, Picker, PieceBook, PieceState};
use crate::policy::vod::{DeadlineTable, Schedule};
use crate::policy::{PeerKey, PeerView, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};
pub use config::{AheadOrder, DeadlineConfig, DeadlineError, UnmeasuredRate};
use estimate::{Assumed, PeerLink, Pipe};

/// Without a VoD server, a block that cannot make its deadline is still asked of peers: each
/// peer is given about this many seconds of its rate at a time (an unmeasured one this many
/// blocks), so a late piece arrives from all of them at once.
const LATE_SLICE_S: f64 = 1.0;
const LATE_FIRST_BLOCKS: usize = 4;

/// Estimated arrivals of the requests in flight to other peers, read once per call and only
/// for the peers a stuck block is asked of (reading every peer's queue cost most of a call
/// in a swarm of hundreds).
type Arrivals = HashMap<PeerKey, Vec<(BlockRef, f64)>>;

/// Rounds of fresh-piece scanning per call before a peer's remaining slots are left empty.
const FRESH_SCAN_ROUNDS: usize = 4;

/// Pieces due within the urgent window (positions in the table's deadline order), and where
/// the window ends (seconds since start).
struct Window {
    urgent: Range<usize>,
    end: f64,
}

pub struct DeadlinePicker {
    book: PieceBook,
    /// The deadlines, as the VoD session last built them (never a copy of our own).
    table: Arc<DeadlineTable>,
    /// Entries of `table.order()` before this one are settled (verified, complete, or the
    /// server's): the window starts after them. Reset when a piece may be askable again.
    settled: usize,
    rng: StdRng,
    config: DeadlineConfig,
    links: BTreeMap<PeerKey, PeerLink>,
    /// No VoD server takes late pieces over: a block that cannot arrive in time is still
    /// asked of peers (earliest deadline first), since nobody else will fetch it.
    late_from_peers: bool,
}

impl DeadlinePicker {
    /// `ours`: pieces already verified; `table`: the deadlines for this torrent (a new one
    /// comes with each `on_deadlines`); `rng`: seeded by the caller (rarest-first tie-breaks
    /// and the urgent/rare mix).
    pub fn new(
        geometry: Geometry,
        ours: &Bitfield,
        table: Arc<DeadlineTable>,
        rng: StdRng,
        config: DeadlineConfig,
    ) -> Result<Self, DeadlineError> {
        config.check()?;
        if table.len() != geometry.piece_count() {
            return Err(DeadlineError::ScheduleMismatch {
                got: table.len(),
                expected: geometry.piece_count(),
            });
        }
        // Equally rare pieces are taken in index order.
        let rank: Vec<u32> = (0..geometry.piece_count()).collect();
        let book = PieceBook::new(geometry, ours, FreshOrder::Rarest { rank })?;
        Ok(Self {
            book,
            rng,
            config,
            links: BTreeMap::new(),
            table,
            settled: 0,
            late_from_peers: false,
        })
    }

    /// For a playback without a VoD server: late blocks are asked of peers too.
    pub fn late_from_peers(mut self) -> Self {
        self.late_from_peers = true;
        self
    }

    /// The course contract's picker: the fixed schedule's deadlines.
    pub fn for_schedule(
        geometry: Geometry,
        ours: &Bitfield,
        schedule: &Schedule,
        rng: StdRng,
        config: DeadlineConfig,
    ) -> Result<Self, DeadlineError> {
        let table = Arc::new(DeadlineTable::fixed(schedule));
        Self::new(geometry, ours, table, rng, config)
    }

    pub fn config(&self) -> &DeadlineConfig {
        &self.config
    }

    fn window(&mut self, now: Time) -> Window {
        let now = now.as_secs_f64();
        let order = self.table.order();
        // Pieces still to be fetched from peers, however overdue (a reader's next bytes are
        // due the moment it asks): the window starts at the first unsettled one, and never
        // before the pieces whose deadline has passed and that are settled.
        while let Some(&(_, i)) = order.get(self.settled) {
            let settled = self.book.geometry().piece(i).is_none_or(|p| {
                matches!(
                    self.book.state(p),
                    PieceState::Have
                        | PieceState::Complete
                        | PieceState::Elsewhere
                        | PieceState::Unwanted
                )
            });
            if !settled {
                break;
            }
            self.settled += 1;
        }
        let overdue = order.partition_point(|(at, _)| at.as_secs_f64() <= now);
        let pending = self.settled.min(overdue);
        let min_pieces = self.config.urgent_min_pieces.max(1) as usize;
        let nth = order
            .get(pending.max(overdue) + min_pieces - 1)
            .or(order.last())
            .map_or(now, |(at, _)| at.as_secs_f64());
        let end = (now + self.config.urgent_window.as_secs_f64()).max(nth);
        let last = order.partition_point(|(at, _)| at.as_secs_f64() <= end);
        Window {
            urgent: pending..last.max(pending),
            end,
        }
    }

    fn piece_at(&self, position: usize) -> Option<PieceIndex> {
        let &(_, i) = self.table.order().get(position)?;
        self.book.geometry().piece(i)
    }

    /// What the estimates assume of a peer not measured yet, against the current table's
    /// playback rate.
    fn assumed(&self) -> Assumed {
        Assumed::new(&self.config, self.table.rate())
    }

    /// Whether this peer, not measured yet, is asked for any block it could deliver in time
    /// (and its requests are not judged late): always with `trust_new_peers`, and at the
    /// start, while no peer is measured, since there is no faster peer to keep the block for
    /// (BENCHMARKS.md, "trusting new peers"). Decided once per call: it scans every link.
    fn trusts(&self, link: &PeerLink) -> bool {
        !link.is_measured()
            && (self.config.trust_new_peers
                || (self.config.opening_blocks > 0
                    && !self.links.values().any(PeerLink::is_measured)))
    }

    /// More than `crowd_size` connected peers still download: the crowd rule's mix and races
    /// of stuck blocks apply.
    fn in_crowd(&self) -> bool {
        self.book.downloaders() > self.config.crowd_size
    }

    /// The peer has the piece and we still need blocks of it.
    fn askable(&self, key: PeerKey, piece: PieceIndex) -> bool {
        self.book.peer_has(key, piece)
            && matches!(
                self.book.state(piece),
                PieceState::Fresh | PieceState::Started
            )
    }

    /// Whether the pipe still has room for work that is not urgent (see `ahead_horizon`).
    fn has_room_ahead(&self, pipe: &Pipe) -> bool {
        self.config
            .ahead_horizon
            .is_none_or(|h| pipe.backlog() < h.as_secs_f64())
    }

    /// Requests the piece's unrequested blocks that can still arrive in time from this peer.
    fn take(
        &mut self,
        key: PeerKey,
        piece: PieceIndex,
        pipe: &mut Pipe,
        limit: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let budget = match self.table.secs(piece) {
            _ if self.late_from_peers && pipe.held_back => 0,
            Some(d) if self.late_from_peers => {
                pipe.late_slice(d - pipe.margin, LATE_SLICE_S, LATE_FIRST_BLOCKS)
            }
            // Nothing is known of this peer yet. Asking it costs nothing if it is slow (the
            // server or a measured peer racing the block covers it), and a guess low enough to
            // be safe kept the first pieces from a fast seed that unchoked us just before
            // their deadlines.
            Some(d) if pipe.trusted => {
                let by = d - pipe.margin;
                match pipe.reachable_by(by) {
                    true if self.config.trust_new_peers => usize::MAX,
                    // Trust raises the guess and never lowers it: a piece due late gets
                    // what `unmeasured_rate` would give it.
                    true => pipe.blocks_by(by).max(
                        self.config
                            .opening_blocks
                            .saturating_sub(pipe.queued_blocks()),
                    ),
                    false => 0,
                }
            }
            Some(d) => pipe.blocks_by(d - pipe.margin),
            None => usize::MAX,
        };
        let limit = limit.min(out.len().saturating_add(budget));
        let before = out.len();
        self.book.request_piece(pipe.at, key, piece, limit, out);
        for &b in out.get(before..).unwrap_or_default() {
            pipe.push(b);
        }
        // Without a server a piece skipped now is never bought: it must not be passed over
        // for later ones (they would fill the queue and the skipped piece starve).
        if self.late_from_peers
            && self.table.secs(piece).is_some()
            && self.book.peer_has(key, piece)
            && self.book.has_unrequested(piece)
        {
            pipe.held_back = true;
        }
    }

    /// Earliest deadline first over the urgent window: per piece, the blocks nobody was asked
    /// for, then races for its blocks stuck at slower peers.
    fn request_urgent(
        &mut self,
        now: Time,
        key: PeerKey,
        window: &Window,
        pipe: &mut Pipe,
        slots: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let mut elsewhere = Arrivals::new();
        let races = self.config.max_requesters >= 2 && (self.in_crowd() || self.config.race_alone);
        for position in window.urgent.clone() {
            if out.len() >= slots {
                break;
            }
            let Some(piece) = self.piece_at(position) else {
                break;
            };
            if !self.askable(key, piece) {
                continue;
            }
            self.take(key, piece, pipe, slots, out);
            if races && self.book.state(piece) == PieceState::Started {
                self.race_stuck_blocks(now, key, piece, pipe, slots, out, &mut elsewhere);
            }
        }
    }

    /// Asks this peer too for blocks of the piece that would be late where they are, if it
    /// would deliver them in time and clearly sooner; first arrival wins.
    #[allow(clippy::too_many_arguments)]
    fn race_stuck_blocks(
        &mut self,
        now: Time,
        key: PeerKey,
        piece: PieceIndex,
        pipe: &mut Pipe,
        slots: usize,
        out: &mut Vec<BlockRef>,
        elsewhere: &mut Arrivals,
    ) {
        let Some(deadline) = self.table.secs(piece) else {
            return;
        };
        let due = deadline - pipe.margin;
        let gain = self.config.duplicate_gain.as_secs_f64();
        for block in self.book.geometry().blocks(piece) {
            let here = pipe.next_arrival();
            if out.len() >= slots || here > due {
                return;
            }
            let requesters = self.book.requesters(block);
            if requesters.is_empty()
                || requesters.contains(&key)
                || requesters.len() >= self.config.max_requesters
            {
                continue;
            }
            // The block is in flight only to its requesters: their queues are all we read.
            let there = requesters
                .iter()
                .map(|&k| {
                    let queue = elsewhere
                        .entry(k)
                        .or_insert_with(|| self.arrivals_at(now, k));
                    queue
                        .iter()
                        .find(|(b, _)| *b == block)
                        .map_or(f64::INFINITY, |&(_, at)| at)
                })
                .fold(f64::INFINITY, f64::min);
            if there > due && here + gain <= there && self.book.request_duplicate(now, key, block) {
                tracing::debug!(%key, %piece, "racing a stuck urgent block");
                out.push(block);
                pipe.push(block);
            }
        }
    }

    /// The estimated arrival of every block in flight to peer `k`, in its queue's order.
    fn arrivals_at(&self, now: Time, k: PeerKey) -> Vec<(BlockRef, f64)> {
        self.links.get(&k).map_or_else(Vec::new, |link| {
            let ahead = self.still_coming(k);
            link.arrivals(now, &self.assumed(), ahead, self.book.requests(k))
        })
    }

    /// One block for a peer that unchokes us but that no estimate gave work: the movie block
    /// with the most slack it can give us (the next piece beyond the window, else the last
    /// in it). Without a request an idle peer is never measured again and stays idle for good
    /// (BENCHMARKS.md, "probing idle peers").
    fn probe(
        &mut self,
        now: Time,
        key: PeerKey,
        window: &Window,
        taken_back: &[BlockRef],
        out: &mut Vec<BlockRef>,
    ) -> Option<BlockRef> {
        let order =
            (window.urgent.end..self.table.order().len()).chain(window.urgent.clone().rev());
        for position in order {
            let piece = self.piece_at(position)?;
            // Not a block just taken back from this very peer (a CANCEL and the same REQUEST
            // again in one call); if it has nothing else, the next call probes.
            let just_cancelled = taken_back.iter().any(|b| b.piece() == piece);
            if self.askable(key, piece) && !just_cancelled {
                self.book.request_piece(now, key, piece, 1, out);
                if let Some(&b) = out.first() {
                    tracing::debug!(%key, %piece, "probing an idle peer");
                    return Some(b);
                }
            }
        }
        None
    }
}

impl Picker for DeadlinePicker {
    fn name(&self) -> &'static str {
        "deadline"
    }
    fn book(&self) -> &PieceBook {
        &self.book
    }
    fn book_mut(&mut self) -> &mut PieceBook {
        &mut self.book
    }

    fn next_requests(&mut self, now: Time, peer: &PeerView, slots: usize) -> Vec<BlockRef> {
        let key = peer.key;
        let busy = self.book.in_flight_count(key) > 0;
        let link = self.links.entry(key).or_default();
        link.forget_answered_probe(&self.book, key);
        link.observe(peer, busy);
        let taken_back = self.cancel_late(now, key);
        let mut out = Vec::with_capacity(slots);
        let queued = self.queued(key);
        let mut pipe = match self.links.get(&key) {
            Some(link) => Pipe::new(
                link,
                now,
                &self.config,
                &self.assumed(),
                self.trusts(link),
                queued,
            ),
            None => return out,
        };
        let window = self.window(now);
        let made_room = if self.config.make_room_for_urgent && !pipe.trusted {
            self.make_room_for_urgent(key, &window, &mut pipe, slots)
        } else {
            0
        };
        let slots = slots + made_room;
        if slots == 0 {
            return out;
        }
        // BiToS' mix, slot by slot: this many slots try the at-risk pieces beyond the window
        // before the urgent ones (in a crowd only, see `crowd_size`).
        let p = if self.in_crowd() {
            self.config.urgent_share
        } else {
            1.0
        };
        let rare_first = (0..slots).filter(|_| !self.rng.random_bool(p)).count();
        let at_risk = self.config.at_risk_holders;
        // Nothing beyond the window when room was just made: that is the work taken back,
        // and asking it again in the same call would undo the room.
        if made_room == 0 {
            self.request_beyond(key, &window, &mut pipe, rare_first, &mut out, at_risk);
        }
        self.request_urgent(now, key, &window, &mut pipe, slots, &mut out);
        if made_room == 0 {
            self.request_ahead(key, &window, &mut pipe, slots, &mut out);
            self.request_other_files(key, &mut pipe, slots, &mut out);
        }
        let idle = self.book.in_flight_count(key) == 0;
        if out.is_empty() && idle {
            let probe = self.probe(now, key, &window, &taken_back, &mut out);
            if let (Some(b), Some(link)) = (probe, self.links.get_mut(&key)) {
                link.set_probe(b);
            }
        }
        if let Some(link) = self.links.get_mut(&key) {
            // Blocks voided or taken back and dropped are never answered; sweep now and then.
            let book = &self.book;
            if link.promised() > 2 * book.in_flight_count(key) + 64 {
                link.forget_promises(|b| {
                    book.sent_at(key, b).is_some() || book.taken_back_at(key, b).is_some()
                });
            }
            link.promise(pipe.promised);
        }
        out
    }

    fn on_block(&mut self, now: Time, peer: PeerKey, block: BlockRef) -> BlockOutcome {
        if let Some(link) = self.links.get_mut(&peer) {
            link.arrived(block, now.as_secs_f64());
        }
        self.book.block_received(peer, block)
    }

    fn on_peer_gone(&mut self, peer: PeerKey) {
        self.links.remove(&peer);
        self.book.peer_gone(peer);
    }

    fn on_deadlines(&mut self, table: &Arc<DeadlineTable>, abandoned: &[PieceIndex]) {
        for &piece in abandoned {
            self.book.cancel_piece_requests(piece);
        }
        self.table = Arc::clone(table);
        self.settled = 0;
    }

    // A piece that may be askable again can sit before the settled prefix of the order.
    fn on_piece_failed(&mut self, piece: PieceIndex) {
        self.book.piece_failed(piece);
        self.settled = 0;
    }
    fn on_piece_released(&mut self, piece: PieceIndex, held: &[BlockRef]) {
        self.book.piece_released(piece, held);
        self.settled = 0;
    }
    fn on_wanted(&mut self, piece: PieceIndex, wanted: bool) {
        self.book.set_wanted(piece, wanted);
        self.settled = 0;
    }
}

impl DeadlinePicker {
    /// Bytes of taken-back requests the peer is expected to send anyway (its share of
    /// cancels ignored so far): they take its upload time before anything asked later.
    fn still_coming(&self, key: PeerKey) -> f64 {
        let bytes: u64 = self
            .book
            .taken_back(key)
            .map(|(b, _)| u64::from(b.len()))
            .sum();
        bytes as f64 * self.book.cancel_ignored_share(key)
    }

    /// Bytes the peer will send before a new request: ours in flight and what it still sends
    /// of those taken back.
    fn queued(&self, key: PeerKey) -> f64 {
        let in_flight: u64 = self
            .book
            .requests(key)
            .map(|(b, _)| u64::from(b.len()))
            .sum();
        in_flight as f64 + self.still_coming(key)
    }

    /// Takes back this peer's requests that would arrive well after their deadline: they
    /// cannot save penalty, and they delay every request queued behind them.
    /// Returns the blocks taken back.
    fn cancel_late(&mut self, now: Time, key: PeerKey) -> Vec<BlockRef> {
        let Some(grace) = self.config.cancel_late_after else {
            return Vec::new();
        };
        let Some(link) = self.links.get(&key) else {
            return Vec::new();
        };
        if self.trusts(link) {
            // No measurement to call anything late by.
            return Vec::new();
        }
        let ahead = (self.still_coming(key), self.book.cancel_ignored_share(key));
        let sent = self.book.requests(key);
        let grace = grace.as_secs_f64();
        let late = link.late_requests(now, &self.assumed(), grace, ahead, sent, |b| {
            self.table.secs(b.piece())
        });
        for &block in &late {
            tracing::debug!(%key, piece = %block.piece(), "taking back a request that would be late");
            self.book.request_timed_out(key, block);
        }
        if let Some(link) = self.links.get_mut(&key) {
            link.forget_answered_probe(&self.book, key);
        }
        late
    }
}
