//! `picker_events` and `peer_messages`: random event sequences against every picker
//! (rarest-first, sequential, the deadline policy), with the bookkeeping checked against a
//! model after every step, as `tests/picker_props.rs` does for two of them.
//!
//! `picker_events` drives the `Picker` API directly. `peer_messages` drives it the way the
//! torrent task does: each peer's bytes go through the wire decoder and every decoded message
//! is applied as `engine::torrent::handlers` applies it (a frame the torrent refuses drops the
//! peer), so arbitrary message sequences meet a peer's protocol state.
//!
//! Invariants: a request names a block of a piece the peer has and we lack, never twice to one
//! peer, never to more peers than the policy allows outside endgame; availability equals the
//! peers' sets recounted; requesters and in-flight lists mirror each other; endgame holds
//! exactly when every obtainable block is requested; an in-flight block comes back `New`.
//! The event lists are read from the fuzz bytes by [`Input`] (layout: `World::build`, then
//! one op per step); `BTVOD_FUZZ_TRACE=1` prints each step.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use btvod::policy::picker::{
    BlockOutcome, DeadlineConfig, DeadlinePicker, Picker, PieceState, RarestFirst, Sequential,
};
use btvod::policy::vod::{DeadlineTable, Playhead, Schedule, VodParams};
use btvod::policy::{PeerKey, PeerView};
use btvod::proto::bitfield::Bitfield;
use btvod::proto::geometry::{BLOCK_LEN, BlockRef, Geometry, PieceIndex};
use btvod::proto::wire::{BlockSpec, Message, WireDecoder};
use bytes::BytesMut;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Input;

const PEERS: u32 = 4;

/// `BTVOD_FUZZ_TRACE=1` prints every step, for reading a failing input.
fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BTVOD_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rarest,
    Sequential,
    Deadline,
}

struct World {
    kind: Kind,
    picker: Box<dyn Picker>,
    geometry: Geometry,
    /// What each peer has, as the model knows it (None: never announced anything).
    peers: Vec<Option<Bitfield>>,
    /// Whether each peer speaks BEP 6 (then a CHOKE does not void requests).
    fast: Vec<bool>,
    /// Bytes received from each peer and not yet decoded.
    streams: Vec<BytesMut>,
    max_requesters: usize,
    now: Duration,
    position: u64,
}

pub fn picker_events(data: &[u8]) {
    let mut input = Input::new(data);
    let mut world = World::new(&mut input);
    world.check();
    let mut steps = 0;
    while !input.is_empty() && steps < 400 {
        world.event(&mut input);
        world.check();
        steps += 1;
    }
}

pub fn peer_messages(data: &[u8]) {
    let mut input = Input::new(data);
    let mut world = World::new(&mut input);
    world.check();
    let mut steps = 0;
    while !input.is_empty() && steps < 400 {
        world.message(&mut input);
        world.check();
        steps += 1;
    }
}

impl World {
    fn new(input: &mut Input<'_>) -> World {
        let world = Self::build(input);
        trace!(
            "{:?} picker, {} pieces of {} B, {} B, ours {:?}, fast {:?}",
            world.kind,
            world.geometry.piece_count(),
            world.geometry.piece_len(),
            world.geometry.total_len(),
            world.picker.book().ours().ones().collect::<Vec<_>>(),
            world.fast
        );
        world
    }

    fn build(input: &mut Input<'_>) -> World {
        let kind = match input.below(3) {
            0 => Kind::Rarest,
            1 => Kind::Sequential,
            _ => Kind::Deadline,
        };
        let pieces = 1 + input.below(16);
        let blocks = 1 + input.below(3);
        let piece_len = BLOCK_LEN * blocks;
        let short_tail = u64::from(input.u16()) % u64::from(piece_len);
        let total = u64::from(piece_len) * u64::from(pieces) - short_tail;
        let geometry = Geometry::new(piece_len, &[total]).expect("valid geometry");
        let ours_mask = input.u16();
        let mut ours = Bitfield::empty(geometry.piece_count());
        for p in geometry.pieces() {
            if ours_mask & (1 << p.get()) != 0 {
                ours.set(p);
            }
        }
        let fast_mask = input.u8();
        let seed = u64::from(input.u32());
        let rng = StdRng::seed_from_u64(seed);
        let mut max_requesters = 1;
        let picker: Box<dyn Picker> = match kind {
            Kind::Rarest => Box::new(RarestFirst::new(geometry.clone(), &ours, rng).unwrap()),
            Kind::Sequential => Box::new(Sequential::new(geometry.clone(), &ours).unwrap()),
            Kind::Deadline => {
                let rate = 1024 * (1 + u64::from(input.u16()));
                let delay = Duration::from_millis(u64::from(input.u16()));
                let prefetch = delay.mul_f64(f64::from(input.u8()) / 255.0);
                let params = VodParams::new(rate, delay, prefetch).expect("valid VoD params");
                let start = u64::from(input.u32()) % total;
                let movie = if input.bool() { start..total } else { 0..total };
                let schedule = Schedule::new(params, &geometry, movie).expect("a movie range");
                let config = DeadlineConfig {
                    max_requesters: 1 + input.below(3) as usize,
                    race_alone: input.bool(),
                    ..DeadlineConfig::default()
                };
                max_requesters = config.max_requesters;
                let picker =
                    DeadlinePicker::for_schedule(geometry.clone(), &ours, &schedule, rng, config)
                        .expect("valid deadline picker");
                Box::new(picker)
            }
        };
        World {
            kind,
            picker,
            peers: vec![None; PEERS as usize],
            fast: (0..PEERS).map(|i| fast_mask & (1 << i) != 0).collect(),
            streams: vec![BytesMut::new(); PEERS as usize],
            geometry,
            max_requesters,
            now: Duration::ZERO,
            position: 0,
        }
    }

    fn nth_in_flight(&self, peer: PeerKey, nth: u32) -> Option<BlockRef> {
        let blocks: Vec<_> = self.picker.book().in_flight(peer).collect();
        (!blocks.is_empty()).then(|| blocks[nth as usize % blocks.len()])
    }

    /// One event straight to the `Picker` API.
    fn event(&mut self, input: &mut Input<'_>) {
        let n = self.geometry.piece_count();
        let op = input.below(13);
        let peer = input.below(PEERS);
        let key = PeerKey(u64::from(peer));
        trace!("t={:?} event {op} peer {peer}", self.now);
        match op {
            0 => {
                let mask = input.u16();
                let mut b = Bitfield::empty(n);
                for p in self.geometry.pieces() {
                    if mask & (1 << p.get()) != 0 {
                        b.set(p);
                    }
                }
                self.picker.on_peer_bitfield(key, &b);
                self.peers[peer as usize] = Some(b);
            }
            1 => {
                let p = self.geometry.piece(input.below(n)).expect("in range");
                self.picker.on_peer_have(key, p);
                self.peers[peer as usize]
                    .get_or_insert_with(|| Bitfield::empty(n))
                    .set(p);
            }
            2 => self.gone(peer),
            3 => self.picker.on_choked(key),
            4..=6 => {
                let slots = input.below(7) as usize;
                let rate = f64::from(input.u16()) * 64.0;
                let rtt = input.u8();
                self.ask(peer, slots, rate, rtt);
            }
            7 | 8 => {
                let nth = input.u8();
                let ok = input.u8() < 200;
                if let Some(b) = self.nth_in_flight(key, u32::from(nth)) {
                    self.deliver(key, b, ok);
                }
            }
            9 => {
                if let Some(b) = self.nth_in_flight(key, u32::from(input.u8())) {
                    self.picker.on_request_rejected(key, b);
                }
            }
            10 => {
                if let Some(b) = self.nth_in_flight(key, u32::from(input.u8())) {
                    self.picker.on_request_timeout(key, b);
                    let cancels = self.picker.cancellations();
                    assert!(
                        cancels.contains(&(key, b)),
                        "a timed-out request is not cancelled"
                    );
                }
            }
            11 => {
                let p = self.geometry.piece(input.below(n)).expect("in range");
                self.picker.on_piece_owned_elsewhere(p);
                for b in self.geometry.blocks(p) {
                    let book = self.picker.book();
                    if book.state(p) == PieceState::Elsewhere {
                        assert!(book.requesters(b).is_empty(), "requests left on {b:?}");
                    }
                }
            }
            _ => self.tick(input),
        }
    }

    /// One step of the engine's view: bytes from a peer, our requests, time passing.
    fn message(&mut self, input: &mut Input<'_>) {
        let op = input.below(6);
        let peer = input.below(PEERS);
        let key = PeerKey(u64::from(peer));
        trace!("t={:?} message step {op} peer {peer}", self.now);
        match op {
            // Raw bytes from the peer.
            0 | 1 => {
                let bytes = input.short_bytes();
                self.receive(peer, bytes);
            }
            2 => {
                let slots = input.below(7) as usize;
                let rate = f64::from(input.u16()) * 64.0;
                self.ask(peer, slots, rate, input.u8());
            }
            // A well-formed answer to one of our requests, through the codec.
            3 => {
                let nth = input.u8();
                let reject = input.u8() >= 224;
                if let Some(b) = self.nth_in_flight(key, u32::from(nth)) {
                    let message = if reject && self.fast[peer as usize] {
                        Message::Reject(BlockSpec {
                            piece: b.piece().get(),
                            offset: b.offset(),
                            len: b.len(),
                        })
                    } else {
                        Message::Piece {
                            piece: b.piece().get(),
                            offset: b.offset(),
                            data: vec![nth; b.len() as usize].into(),
                        }
                    };
                    let mut frame = BytesMut::new();
                    message.encode(&mut frame);
                    self.receive(peer, &frame);
                }
            }
            4 => self.gone(peer),
            _ => self.tick(input),
        }
    }

    /// Time passes and a reader moves (or seeks): every picker is handed the new deadline
    /// table and takes back the requests of the pieces the reader left behind.
    fn tick(&mut self, input: &mut Input<'_>) {
        self.now += Duration::from_millis(u64::from(input.u16()));
        let total = self.geometry.total_len();
        self.position = (self.position + u64::from(input.u16()) * 16) % total.max(1);
        let head = Playhead::reader(
            self.now,
            0..total,
            self.position,
            64 * 1024,
            Duration::from_secs(1),
        );
        let table = Arc::new(DeadlineTable::build(&self.geometry, self.now, [&head]));
        let behind: Vec<PieceIndex> = self
            .geometry
            .pieces()
            .filter(|p| table.due(*p).is_none())
            .collect();
        self.picker.on_deadlines(&table, &behind);
    }

    fn gone(&mut self, peer: u32) {
        self.picker.on_peer_gone(PeerKey(u64::from(peer)));
        self.peers[peer as usize] = None;
        self.streams[peer as usize].clear();
    }

    /// Bytes arrive from `peer`: decode what is complete and apply it as the torrent task
    /// does; a frame it refuses drops the connection.
    fn receive(&mut self, peer: u32, bytes: &[u8]) {
        let mut decoder = WireDecoder::for_piece_count(self.geometry.piece_count());
        self.streams[peer as usize].extend_from_slice(bytes);
        loop {
            let mut stream = std::mem::take(&mut self.streams[peer as usize]);
            let decoded = decoder.decode(&mut stream);
            self.streams[peer as usize] = stream;
            match decoded {
                Ok(None) => return,
                Ok(Some(message)) => {
                    if self.apply(peer, message).is_err() {
                        return self.gone(peer);
                    }
                }
                Err(_) => return self.gone(peer),
            }
        }
    }

    /// `Torrent::on_message`, as far as it touches the picker.
    fn apply(&mut self, peer: u32, message: Message) -> Result<(), ()> {
        let key = PeerKey(u64::from(peer));
        let n = self.geometry.piece_count();
        match message {
            // Without BEP 6 a choke silently voids every request.
            Message::Choke if !self.fast[peer as usize] => self.picker.on_choked(key),
            Message::Have { piece } => {
                let piece = self.geometry.piece(piece).ok_or(())?;
                let has = self.peers[peer as usize].get_or_insert_with(|| Bitfield::empty(n));
                if has.set(piece) {
                    self.picker.on_peer_have(key, piece);
                }
            }
            Message::Bitfield(bytes) => {
                let has = Bitfield::from_wire(&bytes, n).map_err(|_| ())?;
                assert_eq!(has.to_wire(), &bytes[..], "bitfield round trip");
                self.set_bitfield(peer, has);
            }
            Message::HaveAll => self.set_bitfield(peer, Bitfield::full(n)),
            Message::HaveNone => self.set_bitfield(peer, Bitfield::empty(n)),
            Message::Reject(spec) => {
                if let Some(block) = self.geometry.span(spec.piece, spec.offset, spec.len)
                    && self.picker.book().in_flight(key).any(|b| b == block)
                {
                    self.picker.on_request_rejected(key, block);
                }
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                let len = u32::try_from(data.len()).map_err(|_| ())?;
                let block = self.geometry.span(piece, offset, len).ok_or(())?;
                if self.picker.book().in_flight(key).any(|b| b == block) {
                    self.deliver(key, block, data.first().is_none_or(|b| b % 8 != 7));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn set_bitfield(&mut self, peer: u32, has: Bitfield) {
        self.picker.on_peer_bitfield(PeerKey(u64::from(peer)), &has);
        self.peers[peer as usize] = Some(has);
    }

    fn deliver(&mut self, key: PeerKey, b: BlockRef, ok: bool) {
        match self.picker.on_block(self.now, key, b) {
            BlockOutcome::New { piece_complete } => {
                let piece = b.piece();
                assert_eq!(
                    piece_complete,
                    self.picker.book().state(piece) == PieceState::Complete
                );
                if piece_complete && ok {
                    self.picker.on_piece_verified(piece);
                } else if piece_complete {
                    self.picker.on_piece_failed(piece);
                    assert_eq!(
                        self.picker.book().missing_blocks(piece).len(),
                        self.geometry.block_count(piece) as usize
                    );
                }
            }
            other => panic!("in-flight block {b:?} came back as {other:?}"),
        }
    }

    fn ask(&mut self, peer: u32, slots: usize, rate: f64, rtt_ms: u8) {
        let key = PeerKey(u64::from(peer));
        let _ = self.picker.cancellations();
        let before: BTreeSet<_> = self.picker.book().in_flight(key).collect();
        let view = PeerView {
            key,
            download_rate: rate,
            rtt: (rtt_ms > 0).then(|| Duration::from_millis(u64::from(rtt_ms) * 4)),
        };
        let book = self.picker.book();
        let peer_has = |p| {
            self.peers[peer as usize]
                .as_ref()
                .is_some_and(|bf: &Bitfield| bf.has(p))
        };
        // Rarest-first (past the random first pieces): the first fresh piece started is one of
        // the rarest fresh pieces the peer has.
        let rarest_fresh = (self.kind == Kind::Rarest && book.ours().count() >= 4)
            .then(|| {
                self.geometry
                    .pieces()
                    .filter(|&p| book.state(p) == PieceState::Fresh && peer_has(p))
                    .map(|p| book.availability(p))
                    .min()
            })
            .flatten();
        let was_fresh: Vec<bool> = self
            .geometry
            .pieces()
            .map(|p| book.state(p) == PieceState::Fresh)
            .collect();

        let out = self.picker.next_requests(self.now, &view, slots);
        trace!("  asked {view:?} for {slots}: {out:?} (in flight before: {before:?})");

        let taken_back = self.picker.cancellations();
        // Requests the call took back from this peer may be replaced in the same call.
        let freed = taken_back.iter().filter(|(k, _)| *k == key).count();
        assert!(
            out.len() <= slots + freed,
            "{} requests for {slots} slots and {freed} taken back",
            out.len()
        );
        let book = self.picker.book();
        if let (Some(min), Some(b)) = (
            rarest_fresh,
            out.iter().find(|b| was_fresh[b.piece().as_usize()]),
        ) {
            assert_eq!(book.availability(b.piece()), min, "not the rarest: {b:?}");
        }
        let distinct: BTreeSet<_> = out.iter().copied().collect();
        assert_eq!(distinct.len(), out.len(), "a block twice in one answer");
        for b in &out {
            assert_eq!(
                self.geometry.block(b.piece(), b.index()),
                Some(*b),
                "off-grid {b:?}"
            );
            assert!(
                peer_has(b.piece()),
                "requested {b:?} from a peer that lacks it"
            );
            assert!(
                !book.ours().has(b.piece()),
                "requested a piece we hold: {b:?}"
            );
            // The deadline policy may take back a request that would be late where it sits in
            // the peer's queue (behind hopeless ones) and ask for it again at the queue's new
            // end: a CANCEL then a REQUEST, which is harmless. Never a second live request.
            assert!(
                !before.contains(b) || taken_back.contains(&(key, *b)),
                "{b:?} requested twice from one peer"
            );
            let requesters = book.requesters(*b);
            assert!(requesters.contains(&key));
            assert!(
                requesters.len() <= self.max_requesters || book.is_endgame(),
                "{b:?} requested from {requesters:?} outside endgame"
            );
        }
    }

    fn check(&mut self) {
        let _ = self.picker.cancellations();
        let book = self.picker.book();
        for p in self.geometry.pieces() {
            let holders = self.peers.iter().flatten().filter(|bf| bf.has(p)).count() as u32;
            assert_eq!(book.availability(p), holders, "availability of {p}");
            assert_eq!(book.ours().has(p), book.state(p) == PieceState::Have);
        }
        let mut obtainable_unrequested = false;
        for p in self.geometry.pieces() {
            let state = book.state(p);
            let missing = book.missing_blocks(p);
            for b in self.geometry.blocks(p) {
                let requesters = book.requesters(b);
                for &q in requesters {
                    assert!(
                        book.in_flight(q).any(|x| x == b),
                        "{q:?} lost track of {b:?}"
                    );
                }
                if !requesters.is_empty() {
                    assert_eq!(state, PieceState::Started, "requests on a {state:?} piece");
                }
                let pickable = matches!(state, PieceState::Fresh | PieceState::Started);
                if pickable
                    && book.availability(p) > 0
                    && requesters.is_empty()
                    && missing.contains(&b)
                {
                    obtainable_unrequested = true;
                }
            }
        }
        assert_eq!(book.is_endgame(), !obtainable_unrequested, "endgame flag");
        for q in 0..PEERS {
            let key = PeerKey(u64::from(q));
            assert_eq!(book.in_flight_count(key), book.in_flight(key).count());
            for b in book.in_flight(key) {
                assert!(
                    book.requesters(b).contains(&key),
                    "{b:?} in flight but not requested"
                );
            }
        }
    }
}
