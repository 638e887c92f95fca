//! Random event sequences against both pickers, with the bookkeeping invariants checked after
//! every step: no request for a piece the peer lacks or we hold, never a block twice from one
//! peer, never a block from two peers outside endgame, availability and endgame as recomputed.

use std::collections::BTreeSet;
use std::time::Duration;

use btvod::policy::picker::{BlockOutcome, Picker, PieceState, RarestFirst, Sequential};
use btvod::policy::{PeerKey, PeerView};
use btvod::proto::bitfield::Bitfield;
use btvod::proto::geometry::{BLOCK_LEN, BlockRef, Geometry};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PEERS: u64 = 4;

#[derive(Debug, Clone)]
enum Op {
    Bitfield {
        peer: u64,
        mask: u16,
    },
    Have {
        peer: u64,
        piece: u32,
    },
    Gone {
        peer: u64,
    },
    Choked {
        peer: u64,
    },
    Ask {
        peer: u64,
        slots: usize,
    },
    /// Deliver the n-th block in flight to the peer; a completed piece passes its check if `ok`.
    Deliver {
        peer: u64,
        nth: usize,
        ok: bool,
    },
    Reject {
        peer: u64,
        nth: usize,
    },
    Timeout {
        peer: u64,
        nth: usize,
    },
    Elsewhere {
        piece: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0..PEERS;
    prop_oneof![
        1 => (peer.clone(), any::<u16>()).prop_map(|(peer, mask)| Op::Bitfield { peer, mask }),
        1 => (peer.clone(), 0..16u32).prop_map(|(peer, piece)| Op::Have { peer, piece }),
        1 => peer.clone().prop_map(|peer| Op::Gone { peer }),
        1 => peer.clone().prop_map(|peer| Op::Choked { peer }),
        4 => (peer.clone(), 0..6usize).prop_map(|(peer, slots)| Op::Ask { peer, slots }),
        4 => (peer.clone(), 0..8usize, prop::bool::weighted(0.8))
            .prop_map(|(peer, nth, ok)| Op::Deliver { peer, nth, ok }),
        1 => (peer.clone(), 0..8usize).prop_map(|(peer, nth)| Op::Reject { peer, nth }),
        1 => (peer, 0..8usize).prop_map(|(peer, nth)| Op::Timeout { peer, nth }),
        1 => (0..16u32).prop_map(|piece| Op::Elsewhere { piece }),
    ]
}

/// Events that move availability, for checking rarest-first choices: joins, haves, departures.
fn churn_op() -> impl Strategy<Value = Op> {
    let peer = 0..PEERS;
    prop_oneof![
        2 => (peer.clone(), any::<u16>()).prop_map(|(peer, mask)| Op::Bitfield { peer, mask }),
        3 => (peer.clone(), 0..16u32).prop_map(|(peer, piece)| Op::Have { peer, piece }),
        2 => peer.clone().prop_map(|peer| Op::Gone { peer }),
        4 => (peer.clone(), 1..3usize).prop_map(|(peer, slots)| Op::Ask { peer, slots }),
        2 => (peer, 0..8usize).prop_map(|(peer, nth)| Op::Deliver { peer, nth, ok: true }),
    ]
}

struct World {
    rarest: bool,
    picker: Box<dyn Picker>,
    geometry: Geometry,
    /// What each peer has, as the test knows it (None: never announced anything).
    peers: Vec<Option<Bitfield>>,
}

impl World {
    fn all_blocks(&self) -> Vec<BlockRef> {
        self.geometry
            .pieces()
            .flat_map(|p| self.geometry.blocks(p))
            .collect()
    }

    fn nth_in_flight(&self, peer: PeerKey, nth: usize) -> Option<BlockRef> {
        let blocks: Vec<_> = self.picker.book().in_flight(peer).collect();
        (!blocks.is_empty()).then(|| blocks[nth % blocks.len()])
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = Duration::from_secs(5);
        let n = self.geometry.piece_count();
        match *op {
            Op::Bitfield { peer, mask } => {
                let mut b = Bitfield::empty(n);
                for p in self.geometry.pieces() {
                    if mask & (1 << p.get()) != 0 {
                        b.set(p);
                    }
                }
                self.picker.on_peer_bitfield(PeerKey(peer), &b);
                self.peers[peer as usize] = Some(b);
            }
            Op::Have { peer, piece } => {
                if let Some(p) = self.geometry.piece(piece % n) {
                    self.picker.on_peer_have(PeerKey(peer), p);
                    self.peers[peer as usize]
                        .get_or_insert_with(|| Bitfield::empty(n))
                        .set(p);
                }
            }
            Op::Gone { peer } => {
                self.picker.on_peer_gone(PeerKey(peer));
                self.peers[peer as usize] = None;
            }
            Op::Choked { peer } => self.picker.on_choked(PeerKey(peer)),
            Op::Ask { peer, slots } => {
                let key = PeerKey(peer);
                let before: BTreeSet<_> = self.picker.book().in_flight(key).collect();
                let book = self.picker.book();
                let peer_has = |p| {
                    self.peers[peer as usize]
                        .as_ref()
                        .is_some_and(|bf: &Bitfield| bf.has(p))
                };
                // Rarest-first (past the random first pieces): the first fresh piece started
                // is one of the rarest fresh pieces the peer has.
                let rarest_fresh = (self.rarest && book.ours().count() >= 4)
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
                let out = self.picker.next_requests(now, &PeerView::new(key), slots);
                prop_assert!(out.len() <= slots);
                let book = self.picker.book();
                if let (Some(min), Some(b)) = (
                    rarest_fresh,
                    out.iter().find(|b| was_fresh[b.piece().as_usize()]),
                ) {
                    prop_assert_eq!(book.availability(b.piece()), min, "not the rarest: {:?}", b);
                }
                let distinct: BTreeSet<_> = out.iter().copied().collect();
                prop_assert_eq!(distinct.len(), out.len(), "a block twice in one answer");
                for b in &out {
                    let has = self.peers[peer as usize]
                        .as_ref()
                        .is_some_and(|bf| bf.has(b.piece()));
                    prop_assert!(has, "requested {:?} from a peer that lacks it", b);
                    prop_assert!(!book.ours().has(b.piece()), "requested a piece we hold");
                    prop_assert!(!before.contains(b), "{:?} requested twice from one peer", b);
                    let requesters = book.requesters(*b);
                    prop_assert!(requesters.contains(&key));
                    prop_assert!(
                        requesters.len() == 1 || book.is_endgame(),
                        "{:?} requested from {:?} outside endgame",
                        b,
                        requesters
                    );
                }
            }
            Op::Deliver { peer, nth, ok } => {
                let key = PeerKey(peer);
                if let Some(b) = self.nth_in_flight(key, nth) {
                    match self.picker.on_block(now, key, b) {
                        BlockOutcome::New { piece_complete } => {
                            let piece = b.piece();
                            prop_assert_eq!(
                                piece_complete,
                                self.picker.book().state(piece) == PieceState::Complete
                            );
                            if piece_complete && ok {
                                self.picker.on_piece_verified(piece);
                            } else if piece_complete {
                                self.picker.on_piece_failed(piece);
                                prop_assert_eq!(
                                    self.picker.book().missing_blocks(piece).len(),
                                    self.geometry.block_count(piece) as usize
                                );
                            }
                        }
                        other => prop_assert!(false, "in-flight block came back as {:?}", other),
                    }
                }
            }
            Op::Reject { peer, nth } => {
                if let Some(b) = self.nth_in_flight(PeerKey(peer), nth) {
                    self.picker.on_request_rejected(PeerKey(peer), b);
                }
            }
            Op::Timeout { peer, nth } => {
                if let Some(b) = self.nth_in_flight(PeerKey(peer), nth) {
                    self.picker.on_request_timeout(PeerKey(peer), b);
                    let cancels = self.picker.cancellations();
                    prop_assert!(cancels.contains(&(PeerKey(peer), b)));
                }
            }
            Op::Elsewhere { piece } => {
                if let Some(p) = self.geometry.piece(piece % n) {
                    self.picker.on_piece_owned_elsewhere(p);
                    let book = self.picker.book();
                    for b in self.geometry.blocks(p) {
                        prop_assert!(book.requesters(b).is_empty());
                    }
                }
            }
        }
        self.check_invariants()
    }

    fn check_invariants(&mut self) -> Result<(), TestCaseError> {
        let _ = self.picker.cancellations();
        let book = self.picker.book();
        for p in self.geometry.pieces() {
            let holders = self.peers.iter().flatten().filter(|bf| bf.has(p)).count() as u32;
            prop_assert_eq!(book.availability(p), holders, "availability of {}", p);
            prop_assert_eq!(book.ours().has(p), book.state(p) == PieceState::Have);
        }
        let mut obtainable_unrequested = false;
        for b in self.all_blocks() {
            let state = book.state(b.piece());
            let requesters = book.requesters(b);
            for &q in requesters {
                prop_assert!(
                    book.in_flight(q).any(|x| x == b),
                    "{:?} lost track of {:?}",
                    q,
                    b
                );
            }
            if !requesters.is_empty() {
                prop_assert_eq!(state, PieceState::Started);
            }
            let pickable = matches!(state, PieceState::Fresh | PieceState::Started);
            if pickable
                && book.availability(b.piece()) > 0
                && requesters.is_empty()
                && book.missing_blocks(b.piece()).contains(&b)
            {
                obtainable_unrequested = true;
            }
        }
        prop_assert_eq!(book.is_endgame(), !obtainable_unrequested);
        for q in 0..PEERS {
            for b in book.in_flight(PeerKey(q)) {
                prop_assert!(book.requesters(b).contains(&PeerKey(q)));
            }
        }
        Ok(())
    }
}

fn world(rarest: bool, pieces: u32, blocks: u32, short_tail: u32, ours: u16, seed: u64) -> World {
    let piece_len = BLOCK_LEN * blocks;
    let total = u64::from(piece_len) * u64::from(pieces) - u64::from(short_tail % piece_len);
    let geometry = Geometry::new(piece_len, &[total]).expect("valid geometry");
    let mut have = Bitfield::empty(geometry.piece_count());
    for p in geometry.pieces() {
        if ours & (1 << p.get()) != 0 {
            have.set(p);
        }
    }
    let picker: Box<dyn Picker> = if rarest {
        Box::new(RarestFirst::new(geometry.clone(), &have, StdRng::seed_from_u64(seed)).unwrap())
    } else {
        Box::new(Sequential::new(geometry.clone(), &have).unwrap())
    };
    World {
        rarest,
        picker,
        geometry,
        peers: vec![None; PEERS as usize],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_events(
        rarest in any::<bool>(),
        pieces in 1..=10u32,
        blocks in 1..=3u32,
        short_tail in 0..BLOCK_LEN * 2,
        ours in any::<u16>(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut w = world(rarest, pieces, blocks, short_tail, ours, seed);
        w.check_invariants()?;
        for op in &ops {
            w.step(op)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Larger torrents, four pieces held, one block per piece: many fresh-piece choices, each
    /// checked against the availability recomputed from the peers' sets.
    #[test]
    fn rarest_first_starts_a_rarest_piece(
        pieces in 8..=16u32,
        seed in any::<u64>(),
        ops in prop::collection::vec(churn_op(), 1..200),
    ) {
        let mut w = world(true, pieces, 1, 0, 0b1111, seed);
        for op in &ops {
            w.step(op)?;
        }
    }
}
