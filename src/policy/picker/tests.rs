//! Table-like picker fixtures: one character per piece ("x" = has, digits = availability).

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::policy::PeerView;
use crate::proto::geometry::{BLOCK_LEN, Geometry};
use std::time::Duration;

const NOW: Time = Duration::from_secs(1);
const A: PeerKey = PeerKey(1);
const B: PeerKey = PeerKey(2);
const C: PeerKey = PeerKey(3);

fn geometry(pieces: u32, blocks_per_piece: u32) -> Geometry {
    let piece_len = BLOCK_LEN * blocks_per_piece;
    Geometry::new(piece_len, &[u64::from(piece_len) * u64::from(pieces)]).unwrap()
}

/// "x" marks a piece that is held.
fn bits(pattern: &str) -> Bitfield {
    let mut b = Bitfield::empty(pattern.len() as u32);
    let g = geometry(pattern.len() as u32, 1);
    for (i, c) in pattern.chars().enumerate() {
        if c == 'x' {
            b.set(g.piece(i as u32).unwrap());
        }
    }
    b
}

/// Adds background peers (keys from 1000) so piece i is held by `counts[i]` of them.
fn add_availability(picker: &mut dyn Picker, counts: &str) {
    let counts: Vec<u32> = counts.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    for level in 0..max {
        let pattern: String = counts
            .iter()
            .map(|&c| if c > level { 'x' } else { '.' })
            .collect();
        picker.on_peer_bitfield(PeerKey(1000 + u64::from(level)), &bits(&pattern));
    }
}

fn rarest(ours: &str, blocks_per_piece: u32, seed: u64) -> RarestFirst {
    let g = geometry(ours.len() as u32, blocks_per_piece);
    RarestFirst::new(g, &bits(ours), StdRng::seed_from_u64(seed)).unwrap()
}

fn sequential(ours: &str, blocks_per_piece: u32) -> Sequential {
    let g = geometry(ours.len() as u32, blocks_per_piece);
    Sequential::new(g, &bits(ours)).unwrap()
}

/// Requests as (piece, block index) pairs.
fn ask(picker: &mut dyn Picker, peer: PeerKey, slots: usize) -> Vec<(u32, u32)> {
    picker
        .next_requests(NOW, &PeerView::new(peer), slots)
        .into_iter()
        .map(|b| (b.piece().get(), b.index()))
        .collect()
}

fn block(picker: &dyn Picker, piece: u32, index: u32) -> BlockRef {
    let g = picker.book().geometry();
    g.block(g.piece(piece).unwrap(), index).unwrap()
}

fn pieces(requests: &[(u32, u32)]) -> Vec<u32> {
    requests.iter().map(|&(p, _)| p).collect()
}

#[test]
fn rarest_first_orders_by_availability() {
    let mut p = rarest("xxxx....", 1, 7);
    add_availability(&mut p, "99993142");
    p.on_peer_bitfield(A, &bits("....xxxx"));
    assert_eq!(pieces(&ask(&mut p, A, 4)), vec![5, 7, 4, 6]);
}

#[test]
fn rarest_first_only_offers_what_the_peer_has_and_we_lack() {
    let mut p = rarest("xxxxx...", 1, 7);
    add_availability(&mut p, "11111322");
    p.on_peer_bitfield(A, &bits("xxxxxx.x"));
    assert_eq!(pieces(&ask(&mut p, A, 8)), vec![7, 5]);
    assert!(ask(&mut p, A, 8).is_empty(), "nothing left to ask A for");
}

#[test]
fn availability_follows_haves_departures_and_seeds() {
    let mut p = rarest("....", 1, 7);
    p.on_peer_bitfield(A, &bits("xx.."));
    let piece1 = p.book().geometry().piece(1).unwrap();
    p.on_peer_have(B, piece1);
    p.on_peer_bitfield(C, &bits("xxxx"));
    let avail = |p: &RarestFirst| -> Vec<u32> {
        let g = p.book().geometry().clone();
        g.pieces().map(|i| p.book().availability(i)).collect()
    };
    assert_eq!(avail(&p), vec![2, 3, 1, 1]);
    // A completes its set with HAVEs and becomes a seed: the counts stay right.
    let g = p.book().geometry().clone();
    p.on_peer_have(A, g.piece(2).unwrap());
    p.on_peer_have(A, g.piece(3).unwrap());
    assert_eq!(avail(&p), vec![2, 3, 2, 2]);
    p.on_peer_gone(C);
    assert_eq!(avail(&p), vec![1, 2, 1, 1]);
    p.on_peer_gone(A);
    assert_eq!(avail(&p), vec![0, 1, 0, 0]);
}

#[test]
fn ties_are_broken_by_the_seed_deterministically() {
    let order = |seed| {
        let mut p = rarest("xxxx............", 1, seed);
        p.on_peer_bitfield(A, &bits("....xxxxxxxxxxxx"));
        add_availability(&mut p, "0000222222222222");
        pieces(&ask(&mut p, A, 12))
    };
    assert_eq!(order(42), order(42));
    let distinct: std::collections::BTreeSet<_> = (0..8).map(order).collect();
    assert!(distinct.len() > 1, "the seed should change the tie-break");
    assert!(
        distinct.iter().any(|o| o.windows(2).any(|w| w[0] > w[1])),
        "ties should not fall back to index order"
    );
}

#[test]
fn started_pieces_come_first_even_over_rarer_ones() {
    let mut p = rarest("xxxx....", 2, 7);
    add_availability(&mut p, "00001999");
    p.on_peer_bitfield(A, &bits("....xxxx"));
    p.on_peer_bitfield(B, &bits("....xxxx"));
    // B delivered block 0 of piece 6: piece 6 is started, its block 1 goes first.
    let out = p.on_block(NOW, B, block(&p, 6, 0));
    assert_eq!(
        out,
        BlockOutcome::New {
            piece_complete: false
        }
    );
    assert_eq!(ask(&mut p, A, 3), vec![(6, 1), (4, 0), (4, 1)]);
}

#[test]
fn the_first_pieces_are_random_then_rarest() {
    let first = |ours: &str, seed| {
        let mut p = rarest(ours, 1, seed);
        add_availability(&mut p, "5555555551555555");
        p.on_peer_bitfield(A, &bits(&"x".repeat(16)));
        pieces(&ask(&mut p, A, 1))[0]
    };
    let early: std::collections::BTreeSet<u32> =
        (0..20).map(|s| first("................", s)).collect();
    assert!(early.len() > 3, "random first pieces, got {early:?}");
    for seed in 0..20 {
        assert_eq!(
            first("xxxx............", seed),
            9,
            "rarest once 4 pieces are held"
        );
    }
}

#[test]
fn sequential_takes_the_lowest_index_the_peer_has() {
    let mut p = sequential("x.......", 1);
    add_availability(&mut p, "99111111");
    p.on_peer_bitfield(A, &bits(".xx.xxxx"));
    assert_eq!(pieces(&ask(&mut p, A, 3)), vec![1, 2, 4]);
    assert_eq!(pieces(&ask(&mut p, A, 9)), vec![5, 6, 7]);
}

#[test]
fn sequential_finishes_started_pieces_first() {
    let mut p = sequential("........", 2);
    p.on_peer_bitfield(A, &bits("xxxxxxxx"));
    p.on_block(NOW, B, block(&p, 5, 1));
    assert_eq!(ask(&mut p, A, 3), vec![(5, 0), (0, 0), (0, 1)]);
}

#[test]
fn no_block_goes_to_two_peers_before_endgame() {
    let mut p = sequential("x...", 3);
    for peer in [A, B, C] {
        p.on_peer_bitfield(peer, &bits("xxxx"));
    }
    let a = ask(&mut p, A, 8);
    assert_eq!(a.len(), 8);
    assert!(!p.book().is_endgame());
    assert!(!a.contains(&(3, 2)));
    assert_eq!(
        ask(&mut p, B, 1),
        vec![(3, 2)],
        "the unrequested block, no duplicate"
    );
    assert!(p.book().is_endgame());
    let c = ask(&mut p, C, 9);
    assert_eq!(c.len(), 9, "in endgame C races every block");
}

#[test]
fn endgame_duplicates_and_cancels_the_losers() {
    let mut p = sequential("x.", 2);
    for peer in [A, B, C] {
        p.on_peer_bitfield(peer, &bits("xx"));
    }
    assert_eq!(ask(&mut p, A, 5), vec![(1, 0), (1, 1)]);
    assert_eq!(ask(&mut p, B, 1), vec![(1, 0)], "duplicate in endgame");
    assert_eq!(
        ask(&mut p, C, 5),
        vec![(1, 1), (1, 0)],
        "least duplicated first"
    );
    assert!(ask(&mut p, A, 5).is_empty(), "never twice from one peer");
    assert!(ask(&mut p, B, 5).len() == 1, "B may still race for block 1");

    let b0 = block(&p, 1, 0);
    assert_eq!(
        p.on_block(NOW, B, b0),
        BlockOutcome::New {
            piece_complete: false
        }
    );
    let mut cancels = p.cancellations();
    cancels.sort();
    assert_eq!(cancels, vec![(A, b0), (C, b0)]);
    assert!(p.cancellations().is_empty(), "drained");
    assert_eq!(p.on_block(NOW, A, b0), BlockOutcome::Duplicate);

    let b1 = block(&p, 1, 1);
    assert_eq!(
        p.on_block(NOW, C, b1),
        BlockOutcome::New {
            piece_complete: true
        }
    );
    let mut cancels = p.cancellations();
    cancels.sort();
    assert_eq!(cancels, vec![(A, b1), (B, b1)]);
    for peer in [A, B, C] {
        assert_eq!(p.book().in_flight_count(peer), 0);
    }
}

#[test]
fn a_choke_voids_requests_so_others_can_take_them() {
    let mut p = sequential("..", 2);
    p.on_peer_bitfield(A, &bits("xx"));
    p.on_peer_bitfield(B, &bits("xx"));
    assert_eq!(ask(&mut p, A, 2), vec![(0, 0), (0, 1)]);
    p.on_choked(A);
    assert_eq!(p.book().in_flight_count(A), 0);
    assert_eq!(ask(&mut p, B, 2), vec![(0, 0), (0, 1)]);
    assert_eq!(p.book().requesters(block(&p, 0, 0)), &[B]);
    assert!(
        p.cancellations().is_empty(),
        "a choked peer needs no CANCEL"
    );
}

#[test]
fn rejects_and_timeouts_free_the_block_and_timeouts_cancel() {
    let mut p = sequential(".", 2);
    p.on_peer_bitfield(A, &bits("x"));
    p.on_peer_bitfield(B, &bits("x"));
    ask(&mut p, A, 2);
    p.on_request_rejected(A, block(&p, 0, 0));
    p.on_request_timeout(A, block(&p, 0, 1));
    assert_eq!(p.cancellations(), vec![(A, block(&p, 0, 1))]);
    assert_eq!(ask(&mut p, B, 2), vec![(0, 0), (0, 1)]);
}

#[test]
fn a_failed_piece_is_missing_again() {
    let mut p = sequential("..", 2);
    p.on_peer_bitfield(A, &bits("xx"));
    ask(&mut p, A, 2);
    assert_eq!(
        p.on_block(NOW, A, block(&p, 0, 0)),
        BlockOutcome::New {
            piece_complete: false
        }
    );
    assert_eq!(
        p.on_block(NOW, A, block(&p, 0, 1)),
        BlockOutcome::New {
            piece_complete: true
        }
    );
    let piece0 = block(&p, 0, 0).piece();
    assert_eq!(p.book().state(piece0), PieceState::Complete);
    p.on_piece_failed(piece0);
    assert_eq!(p.book().state(piece0), PieceState::Fresh);
    assert_eq!(p.book().missing_blocks(piece0).len(), 2);
    assert_eq!(ask(&mut p, A, 2), vec![(0, 0), (0, 1)]);
    p.on_block(NOW, A, block(&p, 0, 0));
    p.on_block(NOW, A, block(&p, 0, 1));
    p.on_piece_verified(piece0);
    assert!(p.book().ours().has(piece0));
    assert_eq!(p.on_block(NOW, A, block(&p, 0, 0)), BlockOutcome::Duplicate);
}

#[test]
fn a_piece_owned_elsewhere_is_cancelled_and_no_longer_asked_for() {
    let mut p = sequential("..", 2);
    p.on_peer_bitfield(A, &bits("xx"));
    assert_eq!(ask(&mut p, A, 1), vec![(0, 0)]);
    p.on_block(NOW, A, block(&p, 0, 0));
    assert_eq!(ask(&mut p, A, 1), vec![(0, 1)]);
    let piece0 = block(&p, 0, 0).piece();
    p.on_piece_owned_elsewhere(piece0);
    assert_eq!(p.cancellations(), vec![(A, block(&p, 0, 1))]);
    assert_eq!(p.book().missing_blocks(piece0), vec![block(&p, 0, 1)]);
    assert_eq!(pieces(&ask(&mut p, A, 4)), vec![1, 1]);
    assert_eq!(
        p.on_block(NOW, A, block(&p, 0, 1)),
        BlockOutcome::Superseded
    );
    p.on_piece_verified(piece0);
    assert_eq!(p.book().state(piece0), PieceState::Have);
}

#[test]
fn blocks_off_the_grid_are_unrequested() {
    let mut p = sequential("..", 2);
    p.on_peer_bitfield(A, &bits("xx"));
    let g = p.book().geometry().clone();
    let odd = g.span(0, 100, 1000).unwrap();
    assert_eq!(p.on_block(NOW, A, odd), BlockOutcome::Unrequested);
    assert_eq!(p.book().state(odd.piece()), PieceState::Fresh);
}

#[test]
fn resume_data_of_another_torrent_is_refused() {
    let err = Sequential::new(geometry(4, 1), &bits("xxx")).err();
    assert_eq!(
        err,
        Some(PickerError::WrongPieceCount {
            got: 3,
            expected: 4
        })
    );
}

#[test]
fn rarest_stays_exact_when_the_peer_lacks_the_rarest_pieces() {
    // 4 held, 1000 pieces of availability 1 that A lacks (more than one scan budget), then
    // A's pieces at availability 3, except piece 1777 at 2.
    let n = 2000;
    let mut ours = ".".repeat(n);
    ours.replace_range(0..4, "xxxx");
    let mut p = rarest(&ours, 1, 7);
    let range = |r: std::ops::Range<usize>, except: Option<usize>| -> String {
        (0..n)
            .map(|i| {
                if r.contains(&i) && Some(i) != except {
                    'x'
                } else {
                    '.'
                }
            })
            .collect()
    };
    p.on_peer_bitfield(B, &bits(&range(4..1000, None)));
    p.on_peer_bitfield(C, &bits(&range(1000..2000, None)));
    p.on_peer_bitfield(PeerKey(9), &bits(&range(1000..2000, Some(1777))));
    p.on_peer_bitfield(A, &bits(&range(1000..2000, None)));
    assert_eq!(pieces(&ask(&mut p, A, 1)), vec![1777]);
    let next = pieces(&ask(&mut p, A, 3));
    assert!(next.iter().all(|&i| (1000..2000).contains(&i) && i != 1777));
}

#[test]
fn the_scan_cursor_never_hides_a_better_piece() {
    // A lacks the rarest pieces 4..8, so its cursor moves past them on the first pick. Piece
    // 12 starts common (four more holders) and will become A's rarest when they leave.
    let mut p = rarest("xxxx............", 1, 7);
    add_availability(&mut p, "0000111133330333");
    p.on_peer_bitfield(A, &bits("........xxxxxxxx"));
    let holders = [B, C, PeerKey(4), PeerKey(5)];
    for h in holders {
        p.on_peer_bitfield(h, &bits("............x..."));
    }
    let first = pieces(&ask(&mut p, A, 1))[0];
    assert!((8..16).contains(&first) && first != 12);
    // A HAVE for a piece before the cursor: it is now A's rarest.
    let g = p.book().geometry().clone();
    p.on_peer_have(A, g.piece(5).unwrap());
    assert_eq!(pieces(&ask(&mut p, A, 1)), vec![5]);
    // Departures make 12 the rarest piece A has: it moved before A's cursor.
    for h in holders {
        p.on_peer_gone(h);
    }
    assert_eq!(pieces(&ask(&mut p, A, 1)), vec![12]);
}

#[test]
fn a_block_taken_back_but_sent_anyway_is_still_used() {
    let mut p = sequential(".", 2);
    p.on_peer_bitfield(A, &bits("x"));
    p.on_peer_bitfield(B, &bits("x"));
    assert_eq!(ask(&mut p, A, 2), vec![(0, 0), (0, 1)]);
    p.on_request_timeout(A, block(&p, 0, 0));
    assert_eq!(p.cancellations(), vec![(A, block(&p, 0, 0))]);
    assert_eq!(p.book().sent_at(A, block(&p, 0, 0)), None);
    assert!(p.book().taken_back_at(A, block(&p, 0, 0)).is_some());
    // Asked of B instead; A's copy, already in its send buffer, arrives first and wins.
    assert_eq!(ask(&mut p, B, 1), vec![(0, 0)]);
    assert_eq!(
        p.on_block(NOW, A, block(&p, 0, 0)),
        BlockOutcome::New {
            piece_complete: false
        }
    );
    assert_eq!(p.book().taken_back_at(A, block(&p, 0, 0)), None);
    assert_eq!(
        p.cancellations(),
        vec![(B, block(&p, 0, 0))],
        "B's request is taken back in turn"
    );
    assert!(p.book().taken_back_at(B, block(&p, 0, 0)).is_some());
    assert_eq!(p.on_block(NOW, B, block(&p, 0, 0)), BlockOutcome::Duplicate);
    assert_eq!(p.book().taken_back_at(B, block(&p, 0, 0)), None);
}

#[test]
fn the_book_learns_whether_a_peer_sends_cancelled_blocks_anyway() {
    let mut p = sequential("....", 1);
    let t = |s: u64| Duration::from_secs(s);
    for peer in [A, B, C] {
        p.on_peer_bitfield(peer, &bits("xxxx"));
    }
    assert_eq!(p.book().cancel_ignored_share(A), 0.5, "nothing seen yet");
    // A: the block taken back arrives anyway.
    let a = p.next_requests(t(1), &PeerView::new(A), 1);
    p.on_request_timeout(A, a[0]);
    let _ = p.cancellations();
    assert_eq!(p.book().taken_back(A).count(), 1);
    p.on_block(t(2), A, a[0]);
    assert_eq!(p.book().taken_back(A).count(), 0);
    assert!(p.book().cancel_ignored_share(A) > 0.6);
    // B: a block asked for later arrives first, so the taken-back one was dropped.
    let b0 = p.next_requests(t(1), &PeerView::new(B), 1);
    let b1 = p.next_requests(t(2), &PeerView::new(B), 1);
    p.on_request_timeout(B, b0[0]);
    let _ = p.cancellations();
    p.on_block(t(3), B, b1[0]);
    assert_eq!(p.book().taken_back(B).count(), 0);
    assert!(p.book().cancel_ignored_share(B) < 0.4);
    // C: REJECTed after the CANCEL.
    let c = p.next_requests(t(1), &PeerView::new(C), 1);
    p.on_request_timeout(C, c[0]);
    let _ = p.cancellations();
    p.on_request_rejected(C, c[0]);
    assert_eq!(p.book().taken_back(C).count(), 0);
    assert!(p.book().cancel_ignored_share(C) < 0.4);
}

#[test]
fn a_block_a_peer_sends_after_choking_us_is_still_used() {
    let mut p = sequential("..", 1);
    p.on_peer_bitfield(A, &bits("xx"));
    let asked = ask(&mut p, A, 1);
    p.on_choked(A);
    assert!(
        p.cancellations().is_empty(),
        "a choke voids requests without CANCEL"
    );
    assert_eq!(p.book().sent_at(A, block(&p, 0, 0)), None);
    assert_eq!(asked, vec![(0, 0)]);
    assert_eq!(
        p.on_block(NOW, A, block(&p, 0, 0)),
        BlockOutcome::New {
            piece_complete: true
        },
        "it was in the peer's send buffer"
    );
}
