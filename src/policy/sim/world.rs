//! The simulator's event loop: peers' FIFO upload queues, block arrivals, hash checks, the
//! server take-over at each deadline, and when our client asks the picker for requests.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::player::Player;
use super::{Holding, PeerSpecError, Scenario, SimError, SimOutcome};
use crate::policy::picker::{BlockOutcome, Picker};
use crate::policy::vod::VodSession;
use crate::policy::{PeerKey, PeerView, Time};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BLOCK_LEN, BlockRef, Geometry, PieceIndex};

/// What happens, in this order when two events share an instant: peers come (and gain pieces
/// or change rate), data moves, then deadlines fall due (a block arriving exactly at its
/// deadline is in time), then the periodic asking, then peers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Join(usize),
    /// The peer comes to hold this piece.
    Gain(usize, u32),
    /// The peer's `k`-th rate step takes effect.
    RateStep(usize, usize),
    RequestAtPeer(usize, BlockRef),
    CancelAtPeer(usize, BlockRef),
    /// The peer finished sending a block (its `k`-th start: an aborted send's event is void).
    Sent(usize, BlockRef, u64),
    BlockArrives(usize, BlockRef),
    Deadline,
    Tick,
    Leave(usize),
}

impl Event {
    fn class(&self) -> u8 {
        match self {
            Event::Join(_) | Event::Gain(..) | Event::RateStep(..) => 0,
            Event::RequestAtPeer(..)
            | Event::CancelAtPeer(..)
            | Event::Sent(..)
            | Event::BlockArrives(..) => 1,
            Event::Deadline => 2,
            Event::Tick => 3,
            Event::Leave(_) => 4,
        }
    }
}

struct PeerSim {
    has: Bitfield,
    rate: f64,
    latency: Duration,
    corrupt: bool,
    ignores_cancel: bool,
    present: bool,
    /// Requests it received and has not started sending, FIFO.
    queue: VecDeque<BlockRef>,
    /// The block it is sending, and how many sends it started.
    sending: Option<BlockRef>,
    sends: u64,
    /// Our measurement of its rate: unknown (0) until its first block arrived.
    measured: f64,
}

pub(super) struct World<'a> {
    scenario: &'a Scenario,
    picker: &'a mut dyn Picker,
    session: VodSession,
    peers: Vec<PeerSim>,
    events: BinaryHeap<Reverse<(Time, u8, u64, Event)>>,
    seq: u64,
    now: Time,
    /// Which peer delivered each block we hold of pieces not yet verified.
    delivered_by: BTreeMap<PieceIndex, BTreeMap<u32, usize>>,
    /// When each block was asked of each peer, until it arrives. Not the book's record: that
    /// forgets a request when it is cancelled, while the block may already be on its way.
    requested_at: BTreeMap<(usize, BlockRef), Time>,
    /// Streaming: the player whose reads set the deadlines.
    player: Option<Player>,
    out: SimOutcome,
}

fn holding_bits(
    g: &Geometry,
    holding: &Holding,
    rng: &mut StdRng,
) -> Result<Bitfield, PeerSpecError> {
    let n = g.piece_count();
    let share = |s: f64| {
        if (0.0..=1.0).contains(&s) {
            Ok((f64::from(n) * s).round() as u32)
        } else {
            Err(PeerSpecError::ShareOutOfRange(s))
        }
    };
    let range = match holding {
        Holding::All => 0..n,
        Holding::Prefix(s) => 0..share(*s)?,
        Holding::Suffix(s) => n - share(*s)?..n,
        Holding::Pieces(r) => r.start.min(n)..r.end.min(n),
        Holding::Set(pieces) => {
            let mut b = Bitfield::empty(n);
            for p in pieces.iter().filter_map(|&i| g.piece(i)) {
                b.set(p);
            }
            return Ok(b);
        }
        Holding::Fraction(s) => {
            share(*s)?;
            let mut b = Bitfield::empty(n);
            for p in g.pieces() {
                if rng.random_bool(*s) {
                    b.set(p);
                }
            }
            return Ok(b);
        }
    };
    let mut b = Bitfield::empty(n);
    for p in range.filter_map(|i| g.piece(i)) {
        b.set(p);
    }
    Ok(b)
}

impl<'a> World<'a> {
    pub(super) fn new(
        scenario: &'a Scenario,
        picker: &'a mut dyn Picker,
    ) -> Result<Self, SimError> {
        let g = &scenario.geometry;
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let mut peers = Vec::new();
        for (i, spec) in scenario.peers.iter().enumerate() {
            let bad = |reason: PeerSpecError| SimError::BadPeer { peer: i, reason };
            let rates =
                std::iter::once(spec.upload_rate).chain(spec.rate_steps.iter().map(|s| s.1));
            for rate in rates {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(bad(PeerSpecError::RateNotPositive(rate)));
                }
            }
            peers.push(PeerSim {
                has: holding_bits(g, &spec.holding, &mut rng).map_err(bad)?,
                rate: spec.upload_rate,
                latency: spec.latency,
                corrupt: spec.corrupt,
                ignores_cancel: spec.ignores_cancel,
                present: false,
                queue: VecDeque::new(),
                sending: None,
                sends: 0,
                measured: 0.0,
            });
        }
        let none = Bitfield::empty(g.piece_count());
        let session = match &scenario.player {
            Some(_) => VodSession::for_readers(scenario.schedule.clone(), &none),
            None => VodSession::new(scenario.schedule.clone(), &none),
        };
        let out = SimOutcome {
            policy: picker.name(),
            ledger: Default::default(),
            waste: Default::default(),
            movie_bytes: scenario.schedule.movie_len(),
            complete_at: Duration::ZERO,
            stall: Duration::ZERO,
            server_fetches: Vec::new(),
            arrivals: Vec::new(),
            banned: Vec::new(),
        };
        let mut w = Self {
            scenario,
            picker,
            session,
            peers,
            events: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            delivered_by: BTreeMap::new(),
            requested_at: BTreeMap::new(),
            player: scenario.player.clone().map(Player::new),
            out,
        };
        for (i, spec) in scenario.peers.iter().enumerate() {
            w.at(spec.arrive, Event::Join(i));
            if let Some(leave) = spec.leave {
                w.at(leave, Event::Leave(i));
            }
            for &(t, piece) in &spec.gains {
                w.at(t, Event::Gain(i, piece));
            }
            for (k, &(t, _)) in spec.rate_steps.iter().enumerate() {
                w.at(t, Event::RateStep(i, k));
            }
        }
        if let Some(d) = w.session.next_deadline() {
            w.at(d, Event::Deadline);
        }
        w.at(Duration::ZERO, Event::Tick);
        Ok(w)
    }

    fn at(&mut self, t: Time, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((t, e.class(), self.seq, e)));
    }

    pub(super) fn run(mut self) -> Result<SimOutcome, SimError> {
        let last_deadline = self
            .scenario
            .schedule
            .deadline(self.scenario.geometry.last_piece())
            .or_else(|| self.session.next_deadline())
            .unwrap_or(Duration::ZERO);
        while self.session.complete_at().is_none() {
            let Some(Reverse((t, _, _, e))) = self.events.pop() else {
                return Err(SimError::NoProgress { at: self.now });
            };
            if t > last_deadline + Duration::from_secs(3600) {
                return Err(SimError::NoProgress { at: t });
            }
            self.now = t;
            self.handle(e);
            self.send_cancels();
        }
        self.out.complete_at = self.session.complete_at().unwrap_or(self.now);
        self.out.stall = self.session.stall(self.out.complete_at);
        self.out.ledger = self.session.ledger().clone();
        Ok(self.out)
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Join(i) => {
                let Some(p) = self.peers.get_mut(i) else {
                    return;
                };
                p.present = true;
                let has = p.has.clone();
                self.picker.on_peer_bitfield(key(i), &has);
                self.ask(i);
            }
            Event::Gain(i, piece) => self.gain(i, piece),
            Event::RateStep(i, k) => {
                let rate = self.scenario.peers[i].rate_steps[k].1;
                if let Some(p) = self.peers.get_mut(i) {
                    p.rate = rate;
                }
            }
            Event::Leave(i) => {
                if let Some(p) = self.peers.get_mut(i) {
                    p.present = false;
                    p.queue.clear();
                }
                self.picker.on_peer_gone(key(i));
            }
            Event::RequestAtPeer(i, block) => {
                let Some(p) = self.peers.get_mut(i).filter(|p| p.present) else {
                    return;
                };
                p.queue.push_back(block);
                self.send_next(i);
            }
            Event::CancelAtPeer(i, block) => self.cancel_at_peer(i, block),
            Event::Sent(i, block, k) => {
                let Some(p) = self.peers.get_mut(i).filter(|p| p.sends == k) else {
                    return;
                };
                p.sending = None;
                let latency = p.latency;
                if p.present {
                    self.at(self.now + latency, Event::BlockArrives(i, block));
                }
                self.send_next(i);
            }
            Event::BlockArrives(i, block) => self.block_arrives(i, block),
            Event::Deadline => self.deadline(),
            Event::Tick => {
                self.play();
                for i in 0..self.peers.len() {
                    self.ask(i);
                }
                let next = self.now + self.scenario.tick.max(Duration::from_millis(1));
                self.at(next, Event::Tick);
            }
        }
    }

    /// A downloading peer comes to hold a piece, and says so if it is connected.
    fn gain(&mut self, i: usize, piece: u32) {
        let Some(piece) = self.scenario.geometry.piece(piece) else {
            return;
        };
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        if !p.has.set(piece) || !p.present {
            return;
        }
        self.picker.on_peer_have(key(i), piece);
        self.ask(i);
    }

    /// The peer starts sending the next block of its queue if its link is idle.
    fn send_next(&mut self, i: usize) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        if p.sending.is_some() || !p.present {
            return;
        }
        let Some(block) = p.queue.pop_front() else {
            return;
        };
        p.sending = Some(block);
        p.sends += 1;
        let took = Duration::from_secs_f64(f64::from(block.len()) / p.rate);
        let k = p.sends;
        self.at(self.now + took, Event::Sent(i, block, k));
    }

    /// A CANCEL reaches the peer. A btvod uploader drops the request, even the block it is
    /// pacing under its upload limit (`engine/peer/pump.rs`), and goes on to the next one;
    /// what it paid goes back to its limit, shared by everyone it serves, so the time is lost
    /// to us. libtorrent sends what it has queued regardless (`ignores_cancel`).
    fn cancel_at_peer(&mut self, i: usize, block: BlockRef) {
        let Some(p) = self.peers.get_mut(i).filter(|p| !p.ignores_cancel) else {
            return;
        };
        p.queue.retain(|b| *b != block);
        if p.sending == Some(block) {
            p.sending = None;
            p.sends += 1;
            self.send_next(i);
        }
    }

    fn block_arrives(&mut self, i: usize, block: BlockRef) {
        let Some(p) = self.peers.get_mut(i).filter(|p| p.present) else {
            return;
        };
        p.measured = p.rate;
        self.out.arrivals.push((self.now, key(i), block));
        let len = u64::from(block.len());
        if let Some(at) = self.requested_at.remove(&(i, block)) {
            self.session.on_peer_bytes(block.piece(), len, at);
        }
        match self.picker.on_block(self.now, key(i), block) {
            BlockOutcome::New { piece_complete } => {
                let piece = block.piece();
                self.delivered_by
                    .entry(piece)
                    .or_default()
                    .insert(block.index(), i);
                if piece_complete {
                    let bad = self.bad_senders(piece);
                    if bad.is_empty() {
                        self.picker.on_piece_verified(piece);
                        let movie = self
                            .scenario
                            .schedule
                            .movie_overlap(self.scenario.geometry.piece_range(piece));
                        self.session.on_verified(self.now, piece, movie);
                        self.delivered_by.remove(&piece);
                    } else {
                        self.picker.on_piece_failed(piece);
                        self.delivered_by.remove(&piece);
                        self.ban(&bad);
                    }
                }
            }
            BlockOutcome::Duplicate => self.out.waste.duplicate += len,
            BlockOutcome::Superseded => self.out.waste.late += len,
            BlockOutcome::Unrequested => {}
        }
        self.ask(i);
    }

    /// Corrupt peers that delivered blocks of the piece.
    fn bad_senders(&self, piece: PieceIndex) -> Vec<usize> {
        let mut bad: Vec<usize> = self
            .delivered_by
            .get(&piece)
            .into_iter()
            .flat_map(|m| m.values().copied())
            .filter(|&i| self.peers.get(i).is_some_and(|p| p.corrupt))
            .collect();
        bad.sort_unstable();
        bad.dedup();
        bad
    }

    fn ban(&mut self, bad: &[usize]) {
        for &i in bad {
            if let Some(p) = self.peers.get_mut(i)
                && p.present
            {
                p.present = false;
                p.queue.clear();
                self.picker.on_peer_gone(key(i));
                self.out.banned.push(key(i));
            }
        }
    }

    /// The server takes over every piece due now and not verified: it supplies the missing
    /// blocks (and the whole piece again if what peers sent fails the check).
    fn deadline(&mut self) {
        let g = &self.scenario.geometry;
        for piece in self.session.take_due(self.now, Duration::ZERO) {
            let missing: u64 = self
                .picker
                .book()
                .missing_blocks(piece)
                .iter()
                .map(|b| u64::from(b.len()))
                .sum();
            self.picker.on_piece_owned_elsewhere(piece);
            let at = self.now;
            tracing::debug!(%piece, bytes = missing, ?at, "simulated: fetching from the server");
            self.session.on_server_bytes(piece, missing);
            self.out.server_fetches.push((piece, missing));
            let size = u64::from(g.piece_size(piece));
            let movie = self.scenario.schedule.movie_overlap(g.piece_range(piece));
            let from_peers = size - missing;
            let bad = self.bad_senders(piece);
            let peer_movie = if bad.is_empty() {
                // Movie bytes are the piece's bytes except for a piece straddling files.
                movie.min(from_peers)
            } else {
                self.session.on_server_bytes(piece, size);
                self.out.server_fetches.push((piece, size));
                self.session.ledger_mut().hash_failures_after_server += 1;
                self.ban(&bad);
                0
            };
            self.delivered_by.remove(&piece);
            self.picker.on_piece_verified(piece);
            self.session.on_verified(self.now, piece, peer_movie);
        }
        // Streaming deadlines move with the player: its tick handles them instead.
        if let Some(d) = self.session.next_deadline()
            && self.player.is_none()
        {
            self.at(d, Event::Deadline);
        }
        for i in 0..self.peers.len() {
            self.ask(i);
        }
    }

    /// Streaming: the player plays on, the picker gets the deadlines its reads make (and
    /// cancels what a seek left), and whatever is due goes to the server.
    fn play(&mut self) {
        let Some(player) = &mut self.player else {
            return;
        };
        let movie = self.scenario.schedule.movie();
        player.step(self.now, &mut self.session, &self.scenario.geometry, &movie);
        self.session.on_tick();
        if let Some(update) = self.session.poll_deadlines(self.now, Duration::ZERO) {
            self.picker.on_deadlines(&update.table, &update.abandoned);
            for piece in update.released {
                self.picker.on_piece_released(piece, &[]);
            }
        }
        self.deadline();
    }

    /// What the picker took back reaches each peer after its latency. Called once per event,
    /// after it was handled (the picker's calling order).
    fn send_cancels(&mut self) {
        while let Some((k, block)) = self.picker.poll_cancel() {
            let i = k.0 as usize;
            if let Some(p) = self.peers.get(i) {
                let latency = p.latency;
                self.at(self.now + latency, Event::CancelAtPeer(i, block));
            }
        }
    }

    /// Fills the peer's request pipe up to its depth (from its measured rate).
    fn ask(&mut self, i: usize) {
        let Some(p) = self.peers.get(i).filter(|p| p.present) else {
            return;
        };
        let depth_range = &self.scenario.depth;
        let by_rate = (p.measured * self.scenario.pipeline.as_secs_f64() / f64::from(BLOCK_LEN))
            .ceil() as usize;
        let depth = by_rate.clamp((*depth_range.start()).max(1), (*depth_range.end()).max(1));
        let in_flight = self.picker.book().in_flight_count(key(i));
        if in_flight >= depth {
            return;
        }
        let view = PeerView {
            key: key(i),
            download_rate: p.measured,
            rtt: Some(p.latency * 2),
        };
        let latency = p.latency;
        let asked = self
            .picker
            .next_requests(self.now, &view, depth - in_flight);
        for block in asked {
            self.requested_at.insert((i, block), self.now);
            self.at(self.now + latency, Event::RequestAtPeer(i, block));
        }
    }
}

fn key(i: usize) -> PeerKey {
    PeerKey(i as u64)
}
