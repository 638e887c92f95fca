use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn piece(deadline: f64, bytes: u64) -> DuePiece {
    DuePiece { deadline, bytes }
}

fn spell(peer: u32, from: f64, to: f64, upload: f64, pieces: &[u32]) -> HoldingSpell {
    HoldingSpell {
        peer,
        from,
        to,
        upload,
        pieces: pieces.to_vec(),
    }
}

#[test]
fn both_bounds_are_zero_when_a_seed_can_send_everything_in_time() {
    let pieces = [piece(10.0, 1000), piece(20.0, 1000)];
    let seed = [spell(7, 0.0, 100.0, 1000.0, &[0, 1])];
    assert_eq!(capacity_bound(&pieces, &seed), 0);
    assert_eq!(ordering_bound(&pieces, &[(1.0, 1000), (2.0, 1000)]), 0);
}

#[test]
fn ordering_bound_equals_the_penalty_of_an_in_order_delivery() {
    // Piece 0 at t = 5 (in time), piece 1 at t = 25 (late), piece 2 at t = 28 (in time):
    // the delivery's penalty is piece 1, and no reordering of those bytes saves it.
    let pieces = [piece(10.0, 100), piece(20.0, 100), piece(30.0, 100)];
    let received = [(5.0, 100), (25.0, 100), (28.0, 100)];
    assert_eq!(ordering_bound(&pieces, &received), 100);
    // Bytes that came early for a late piece could have saved an earlier one instead.
    assert_eq!(ordering_bound(&pieces, &[(1.0, 200), (40.0, 100)]), 100);
    assert_eq!(ordering_bound(&pieces, &[(40.0, 300)]), 300);
}

#[test]
fn a_receipt_exactly_at_a_deadline_counts() {
    let pieces = [piece(10.0, 100)];
    assert_eq!(ordering_bound(&pieces, &[(10.0, 100)]), 0);
    assert_eq!(ordering_bound(&pieces, &[(10.000_001, 100)]), 100);
}

#[test]
fn capacity_is_limited_by_holdings() {
    // Peer 1 has plenty of upload but only piece 1; piece 0 only the slow peer 2 holds.
    let pieces = [piece(10.0, 1000), piece(10.0, 1000)];
    let spells = [
        spell(1, 0.0, 100.0, 1e6, &[1]),
        spell(2, 0.0, 100.0, 30.0, &[0]),
    ];
    assert_eq!(capacity_bound(&pieces, &spells), 1000 - 300);
    assert_eq!(capacity_bound(&pieces, &spells[..1]), 1000);
}

#[test]
fn the_flow_reroutes_a_peer_that_holds_more() {
    // Peer 1 holds both pieces, peer 2 only piece 1: both saved only if peer 1 serves piece 0.
    let pieces = [piece(10.0, 1000), piece(10.0, 1000)];
    let spells = [
        spell(2, 0.0, 10.0, 100.0, &[1]),
        spell(1, 0.0, 10.0, 100.0, &[1, 0]),
    ];
    assert_eq!(capacity_bound(&pieces, &spells), 0);
}

#[test]
fn an_offline_gap_costs_what_the_peer_could_have_sent_meanwhile() {
    // 100 B/s online for [0, 4) and [8, 20): 600 bytes before the deadline at 10.
    let pieces = [piece(10.0, 1000)];
    let spells = [
        spell(1, 0.0, 4.0, 100.0, &[0]),
        spell(1, 8.0, 20.0, 100.0, &[0]),
    ];
    assert_eq!(capacity_bound(&pieces, &spells), 400);
}

#[test]
fn early_capacity_carries_over_to_later_deadlines() {
    // Before t = 5 the spell can send 500 bytes, which piece 0 (due at 5) or 1 may use; after
    // 5 only piece 1. Total 2000 in 20 s, piece 0 gets at most 500.
    let pieces = [piece(5.0, 1000), piece(20.0, 1500)];
    let spells = [spell(1, 0.0, 20.0, 100.0, &[0, 1])];
    assert_eq!(capacity_bound(&pieces, &spells), 2500 - 2000);
}

#[test]
fn deadlines_exactly_at_slot_edges() {
    let due_at_10 = [piece(10.0, 1000)];
    // A spell ending at the deadline counts in full; one starting at it counts nothing.
    assert_eq!(
        capacity_bound(&due_at_10, &[spell(1, 0.0, 10.0, 100.0, &[0])]),
        0
    );
    assert_eq!(
        capacity_bound(&due_at_10, &[spell(1, 10.0, 20.0, 100.0, &[0])]),
        1000
    );
    // A deadline inside a spell counts the part before it.
    let due_at_5 = [piece(5.0, 1000)];
    assert_eq!(
        capacity_bound(&due_at_5, &[spell(1, 0.0, 10.0, 100.0, &[0])]),
        500
    );
    // Due at t = 0: nothing can arrive before the viewer starts.
    let due_at_0 = [piece(0.0, 1000)];
    assert_eq!(
        capacity_bound(&due_at_0, &[spell(1, -10.0, 10.0, 100.0, &[0])]),
        1000
    );
}

#[test]
fn empty_inputs() {
    assert_eq!(capacity_bound(&[], &[]), 0);
    assert_eq!(ordering_bound(&[], &[]), 0);
    assert_eq!(capacity_bound(&[], &[spell(1, 0.0, 9.0, 1.0, &[0])]), 0);
    assert_eq!(ordering_bound(&[], &[(1.0, 5)]), 0);
    let pieces = [piece(10.0, 1000), piece(20.0, 0)];
    assert_eq!(capacity_bound(&pieces, &[]), 1000);
    assert_eq!(ordering_bound(&pieces, &[]), 1000);
    assert_eq!(
        capacity_bound(&pieces, &[spell(1, 0.0, 9.0, 1e9, &[])]),
        1000
    );
}

#[test]
fn odd_inputs_are_read_as_documented() {
    let nan_due = [piece(f64::NAN, 1000)];
    // A NaN deadline is never due: anything can serve it.
    assert_eq!(ordering_bound(&nan_due, &[(50.0, 1000)]), 0);
    assert_eq!(
        capacity_bound(&nan_due, &[spell(1, 0.0, 1.0, 1000.0, &[0])]),
        0
    );
    let pieces = [piece(10.0, 1000)];
    let refused = [
        spell(1, f64::NAN, 5.0, 1000.0, &[0]),
        spell(1, 0.0, f64::NAN, 1000.0, &[0]),
        spell(1, 5.0, 1.0, 1000.0, &[0]),
        spell(1, 0.0, 5.0, f64::NAN, &[0]),
        spell(1, 0.0, 5.0, -1000.0, &[0]),
        spell(1, 0.0, 5.0, 1000.0, &[9, u32::MAX]),
    ];
    assert_eq!(capacity_bound(&pieces, &refused), 1000);
    assert_eq!(ordering_bound(&pieces, &[(f64::NAN, 1000)]), 1000);
    // Infinite upload, an open-ended spell, a repeated piece, huge sizes.
    let unlimited = [spell(1, 0.0, f64::INFINITY, f64::INFINITY, &[0, 0])];
    assert_eq!(capacity_bound(&pieces, &unlimited), 0);
    // Sizes beyond u64 saturate (the total is read as u64::MAX) instead of overflowing.
    let huge = [piece(10.0, u64::MAX), piece(20.0, u64::MAX)];
    assert_eq!(capacity_bound(&huge, &[]), u64::MAX);
    assert_eq!(capacity_bound(&huge, &unlimited), 0);
    assert_eq!(ordering_bound(&huge, &[(0.0, u64::MAX), (1.0, 5)]), 0);
    assert_eq!(ordering_bound(&huge, &[(15.0, 5)]), u64::MAX - 5);
}

/// A world of the size the experiments make: 600 pieces due every 0.5 s from t = 10, `seeds`
/// seeds, viewers whose holdings grow from when they joined (up to 200 s before ours), a spell
/// per peer every 5 s (a tenth of them offline).
fn world_trace_with(
    seed: u64,
    seeds: u32,
    uploads: std::ops::Range<f64>,
) -> (Vec<DuePiece>, Vec<HoldingSpell>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let pieces: Vec<DuePiece> = (0..600)
        .map(|i| piece(10.0 + 0.5 * f64::from(i), 256 * 1024))
        .collect();
    let mut spells = Vec::new();
    for peer in 0..60u32 {
        let upload = rng.random_range(uploads.clone());
        let joined: f64 = rng.random_range(-200.0..250.0);
        let mut held: Vec<u32> = Vec::new();
        let mut t = joined.max(0.0);
        while t < 310.0 {
            let to = t + 5.0;
            if peer < seeds {
                held = (0..600).collect();
            } else {
                // A viewer fetching about two pieces a second from its start, plus a few extras.
                let upto = ((to - joined) * 2.0).clamp(0.0, 600.0) as u32;
                held.extend((held.len() as u32..upto).filter(|_| rng.random_bool(0.9)));
                held.push(rng.random_range(0..600));
            }
            if !rng.random_bool(0.1) {
                spells.push(spell(peer, t, to, upload, &held));
            }
            t = to;
        }
    }
    (pieces, spells)
}

/// A feasible delivery from the trace: each spell sends in slots of `step` seconds what its
/// upload allows, of pieces it holds that are due after the slot and still needed, earliest
/// first. Returns the receipts and the delivery's penalty.
fn greedy_delivery(
    pieces: &[DuePiece],
    spells: &[HoldingSpell],
    step: f64,
) -> (Vec<(f64, u64)>, u64) {
    let mut needed: Vec<u64> = pieces.iter().map(|p| p.bytes).collect();
    let mut receipts = Vec::new();
    let mut order: Vec<&HoldingSpell> = spells.iter().collect();
    order.sort_by(|a, b| a.from.total_cmp(&b.from));
    for s in order {
        let mut held: Vec<u32> = s
            .pieces
            .iter()
            .copied()
            .filter(|&p| (p as usize) < pieces.len())
            .collect();
        held.sort_by(|a, b| {
            pieces[*a as usize]
                .deadline
                .total_cmp(&pieces[*b as usize].deadline)
        });
        let mut t = s.from.max(0.0);
        while t < s.to {
            let end = (t + step).min(s.to);
            let mut budget = (s.upload * (end - t)).floor() as u64;
            for &p in &held {
                let p = p as usize;
                if budget == 0 || pieces[p].deadline < end {
                    continue;
                }
                let sent = budget.min(needed[p]);
                needed[p] -= sent;
                budget -= sent;
                if sent > 0 {
                    receipts.push((end, sent));
                }
            }
            t = end;
        }
    }
    (receipts, needed.iter().sum())
}

#[test]
fn a_world_sized_trace_stays_under_a_feasible_delivery() {
    // Plenty of seeds, then none and slow uploads (the flow is contested).
    for (seeds, uploads) in [(10, 20_000.0..400_000.0), (0, 1_000.0..16_000.0)] {
        let (pieces, spells) = world_trace_with(1, seeds, uploads);
        let capacity = capacity_bound(&pieces, &spells);
        let (receipts, penalty) = greedy_delivery(&pieces, &spells, 1.0);
        let ordering = ordering_bound(&pieces, &receipts);
        assert!(capacity <= ordering, "{capacity} > {ordering}");
        assert_eq!(ordering, penalty, "every greedy byte was useful");
        assert!(ordering <= movie_bytes(&pieces));
        assert_eq!(capacity == 0, seeds > 0, "the two worlds differ");
    }
}

/// The max-flow by the min-cut formula over every set of pieces, with one supply per (spell,
/// unit slot): exact for integer times, independent of the chain construction.
fn brute_capacity_bound(pieces: &[DuePiece], spells: &[HoldingSpell]) -> u64 {
    let mut supplies: Vec<(u64, u32)> = Vec::new(); // (bytes, mask of pieces it can serve)
    for s in spells {
        let mut t = s.from.max(0.0);
        while t < s.to {
            let mask = s
                .pieces
                .iter()
                .filter(|&&p| (p as usize) < pieces.len() && pieces[p as usize].deadline >= t + 1.0)
                .fold(0u32, |m, &p| m | 1 << p);
            supplies.push((s.upload as u64, mask));
            t += 1.0;
        }
    }
    let flow = (0u32..1 << pieces.len())
        .map(|sink_side| {
            let cut_pieces: u64 = (0..pieces.len())
                .filter(|i| sink_side & 1 << i == 0)
                .map(|i| pieces[i].bytes)
                .sum();
            let cut_supplies: u64 = supplies
                .iter()
                .filter(|(_, mask)| mask & sink_side != 0)
                .map(|(bytes, _)| bytes)
                .sum();
            cut_pieces + cut_supplies
        })
        .min()
        .unwrap_or(0);
    movie_bytes(pieces) - flow
}

fn small_trace() -> impl Strategy<Value = (Vec<DuePiece>, Vec<HoldingSpell>)> {
    let pieces = prop::collection::vec((0u32..30, 0u64..3000), 0..8);
    let spells =
        prop::collection::vec((0u32..3, -5i32..30, 1u32..15, 0u32..300, any::<u8>()), 0..8);
    (pieces, spells).prop_map(|(pieces, spells)| {
        let pieces: Vec<DuePiece> = pieces
            .into_iter()
            .map(|(d, b)| piece(f64::from(d), b))
            .collect();
        let spells = spells
            .into_iter()
            .map(|(peer, from, len, upload, mask)| {
                let held: Vec<u32> = (0..8).filter(|i| mask & 1 << i != 0).collect();
                let from = f64::from(from);
                spell(peer, from, from + f64::from(len), f64::from(upload), &held)
            })
            .collect();
        (pieces, spells)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn capacity_bound_is_the_exact_max_flow((pieces, spells) in small_trace()) {
        prop_assert_eq!(capacity_bound(&pieces, &spells), brute_capacity_bound(&pieces, &spells));
    }

    #[test]
    fn bounds_lie_under_any_feasible_delivery(
        (pieces, spells) in small_trace(),
        step in prop::sample::select(vec![0.5, 1.0, 3.0]),
    ) {
        let total = movie_bytes(&pieces);
        let capacity = capacity_bound(&pieces, &spells);
        let (receipts, penalty) = greedy_delivery(&pieces, &spells, step);
        let ordering = ordering_bound(&pieces, &receipts);
        prop_assert!(capacity <= ordering);
        prop_assert_eq!(ordering, penalty);
        prop_assert!(ordering <= total);
        // Any extra receipts can only lower the ordering bound.
        let mut more = receipts.clone();
        more.push((0.0, 100));
        prop_assert!(ordering_bound(&pieces, &more) <= ordering);
    }
}
