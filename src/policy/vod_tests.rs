use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::policy::picker::{Picker, RarestFirst};
use crate::policy::{PeerKey, PeerView};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn course_example_b_of_t() {
    // R = 5 KB/s, D = 6 s, P = 2 s: 10 KB due at t = 6 s, 70 KB at t = 18 s.
    let p = VodParams::new(5_000, secs(6.0), secs(2.0)).unwrap();
    assert_eq!(p.required_bytes(secs(6.0)), 10_000);
    assert_eq!(p.required_bytes(secs(18.0)), 70_000);
    assert_eq!(
        p.required_bytes(secs(3.0)),
        0,
        "nothing is due before D - P"
    );
    assert_eq!(p.byte_deadline(10_000), secs(6.0));
    assert_eq!(p.byte_deadline(70_000), secs(18.0));
    assert_eq!(p.byte_deadline(0), secs(4.0));
}

#[test]
fn parameters_are_checked() {
    assert_eq!(
        VodParams::new(0, secs(6.0), secs(2.0)),
        Err(VodError::ZeroRate)
    );
    assert!(matches!(
        VodParams::new(1, secs(1.0), secs(2.0)),
        Err(VodError::PrefetchOverDelay { .. })
    ));
    assert!(VodParams::new(1, secs(2.0), secs(2.0)).is_ok());
}

#[test]
fn piece_deadlines_follow_their_first_movie_byte() {
    // Single file, 10 pieces of 1000 bytes, R = 1000 B/s, D = 5, P = 1: d_i = 4 + i.
    let g = Geometry::new(1000, &[10_000]).unwrap();
    let s = Schedule::new(
        VodParams::new(1000, secs(5.0), secs(1.0)).unwrap(),
        &g,
        0..10_000,
    )
    .unwrap();
    for i in 0..10 {
        assert_eq!(
            s.deadline(g.piece(i).unwrap()),
            Some(secs(4.0 + f64::from(i)))
        );
    }
}

#[test]
fn pieces_straddling_files_in_a_multi_file_torrent() {
    // Files: 1500 bytes (not the movie), movie 4000 bytes, 700 bytes after; pieces of 1000.
    let g = Geometry::new(1000, &[1500, 4000, 700]).unwrap();
    let params = VodParams::new(100, secs(10.0), secs(2.0)).unwrap();
    let s = Schedule::new(params, &g, 1500..5500).unwrap();
    assert_eq!(
        s.movie_pieces(),
        1..6,
        "piece 0 holds no movie byte; piece 5 holds its tail"
    );
    assert_eq!(s.deadline(g.piece(0).unwrap()), None);
    assert_eq!(s.deadline(g.piece(6).unwrap()), None);
    // Piece 1 starts before the movie: due with the movie's first byte.
    assert_eq!(s.deadline(g.piece(1).unwrap()), Some(secs(8.0)));
    // Piece 2 starts at movie byte 500: 8 + 500/100.
    assert_eq!(s.deadline(g.piece(2).unwrap()), Some(secs(13.0)));
    assert_eq!(s.deadline(g.piece(5).unwrap()), Some(secs(8.0 + 35.0)));
    assert_eq!(s.movie_overlap(g.piece_range(g.piece(1).unwrap())), 500);
    assert_eq!(s.movie_overlap(g.piece_range(g.piece(5).unwrap())), 500);
}

fn session(pieces: u32) -> (Geometry, VodSession) {
    let g = Geometry::new(32 * 1024, &[u64::from(pieces) * 32 * 1024]).unwrap();
    let params = VodParams::new(32 * 1024, secs(2.0), secs(1.0)).unwrap();
    let s = Schedule::new(params, &g, 0..g.total_len()).unwrap();
    let v = VodSession::new(s, &Bitfield::empty(pieces));
    (g, v)
}

#[test]
fn take_due_hands_each_late_piece_to_the_server_once() {
    let (g, mut v) = session(5); // d_i = 1 + i seconds
    assert!(v.take_due(secs(0.5), Duration::ZERO).is_empty());
    v.on_verified(secs(0.9), g.piece(0).unwrap(), 32 * 1024);
    assert!(
        v.take_due(secs(1.0), Duration::ZERO).is_empty(),
        "piece 0 was ready"
    );
    assert_eq!(
        v.take_due(secs(3.0), Duration::ZERO),
        vec![g.piece(1).unwrap(), g.piece(2).unwrap()]
    );
    assert!(
        v.take_due(secs(3.0), Duration::ZERO).is_empty(),
        "never twice"
    );
    // A lead moves the hand-over earlier by exactly that much.
    assert!(v.take_due(secs(3.4), secs(0.5)).is_empty());
    assert_eq!(v.take_due(secs(3.5), secs(0.5)), vec![g.piece(3).unwrap()]);
    assert_eq!(v.next_deadline(), Some(secs(5.0)));
}

#[test]
fn ledger_counts_server_bytes_exactly_and_pieces_once() {
    let (g, mut v) = session(4);
    let p1 = g.piece(1).unwrap();
    // Two of the piece's blocks were missing, then the piece failed and was fetched whole.
    v.on_server_bytes(p1, 16 * 1024);
    v.on_server_bytes(p1, 16 * 1024);
    v.on_server_bytes(p1, 32 * 1024);
    assert_eq!(v.ledger().penalty_bytes, 64 * 1024);
    assert_eq!(v.ledger().pieces_from_server, 1);
    assert_eq!(v.ledger().server_requests, 3);
    v.on_verified(secs(2.0), p1, 0);
    v.on_verified(secs(2.5), g.piece(0).unwrap(), 32 * 1024);
    v.on_verified(secs(3.0), g.piece(0).unwrap(), 32 * 1024);
    assert_eq!(v.ledger().peer_bytes, 32 * 1024, "a piece is counted once");
}

#[test]
fn complete_when_every_movie_piece_is_verified() {
    let (g, mut v) = session(2);
    v.on_verified(secs(1.0), g.piece(1).unwrap(), 1);
    assert_eq!(v.complete_at(), None);
    v.on_verified(secs(4.0), g.piece(0).unwrap(), 1);
    assert_eq!(v.complete_at(), Some(secs(4.0)));
    // Resumed complete from disk: complete at t = 0.
    let s = v.schedule().clone();
    assert_eq!(
        VodSession::new(s, &Bitfield::full(2)).complete_at(),
        Some(Duration::ZERO)
    );
}

#[test]
fn stall_accumulates_only_for_pieces_later_than_their_play_time() {
    let (g, mut v) = session(3); // d_i = 1 + i, plays at 2 + i
    v.on_verified(secs(1.5), g.piece(0).unwrap(), 0); // before its play time: no stall
    assert_eq!(
        v.position(secs(3.0)),
        32 * 1024,
        "one second of play by t = 3"
    );
    v.on_verified(secs(3.5), g.piece(1).unwrap(), 0); // plays at 3: 0.5 s stall
    v.on_verified(secs(4.2), g.piece(2).unwrap(), 0); // needed at 4 + 0.5 = 4.5: fine
    assert_eq!(v.stall(secs(10.0)), secs(0.5));
    assert_eq!(v.position(secs(100.0)), 3 * 32 * 1024);
    // A piece still missing stalls playback until now.
    let (g2, mut w) = session(2);
    w.on_verified(secs(1.0), g2.piece(0).unwrap(), 0);
    assert_eq!(w.stall(secs(3.25)), secs(0.25));
}

#[test]
fn a_deadline_takes_back_in_flight_requests_of_the_piece() {
    let (g, mut v) = session(3);
    let mut picker =
        RarestFirst::new(g.clone(), &Bitfield::empty(3), StdRng::seed_from_u64(1)).unwrap();
    let peer = PeerKey(7);
    picker.on_peer_bitfield(peer, &Bitfield::full(3));
    let asked = picker.next_requests(Duration::ZERO, &PeerView::new(peer), 6);
    assert_eq!(asked.len(), 6);
    let p0 = g.piece(0).unwrap();
    let in_flight_of_p0: Vec<_> = asked.iter().filter(|b| b.piece() == p0).copied().collect();
    assert!(!in_flight_of_p0.is_empty());
    let due = v.take_due(secs(1.0), Duration::ZERO);
    assert_eq!(due, vec![p0]);
    picker.on_piece_owned_elsewhere(p0);
    let mut cancelled: Vec<_> = picker
        .cancellations()
        .into_iter()
        .map(|(k, b)| {
            assert_eq!(k, peer);
            b
        })
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, in_flight_of_p0);
    // And the picker no longer offers that piece.
    let again = picker.next_requests(Duration::ZERO, &PeerView::new(peer), 10);
    assert!(again.iter().all(|b| b.piece() != p0));
}

#[test]
fn contiguous_bytes_stop_at_the_first_gap() {
    let (g, _) = session(4);
    let s = Schedule::new(
        VodParams::new(1, secs(1.0), secs(0.0)).unwrap(),
        &g,
        100..g.total_len(),
    )
    .unwrap();
    let mut have = Bitfield::empty(4);
    have.set(g.piece(0).unwrap());
    have.set(g.piece(2).unwrap());
    assert_eq!(s.contiguous_bytes(&have), 32 * 1024 - 100);
}
