use std::time::Duration;

use super::*;
use crate::policy::vod::VodParams;
use crate::proto::geometry::Geometry;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

const PIECE: u32 = 1000;

/// 100 pieces of 1000 bytes, one file; R = 1000 B/s (a piece a second), P = 1 s.
fn streaming() -> (Geometry, VodSession) {
    let g = Geometry::new(PIECE, &[100_000]).unwrap();
    let params = VodParams::new(1000, secs(1.0), secs(1.0)).unwrap();
    let s = Schedule::new(params, &g, 0..100_000).unwrap();
    (g.clone(), VodSession::for_readers(s, &Bitfield::empty(100)))
}

fn pieces(g: &Geometry, ids: &[u32]) -> Vec<PieceIndex> {
    ids.iter().map(|&i| g.piece(i).unwrap()).collect()
}

const MOVIE: std::ops::Range<u64> = 0..100_000;

#[test]
fn the_fixed_playhead_keeps_the_course_deadlines() {
    let g = Geometry::new(PIECE, &[10_000]).unwrap();
    let params = VodParams::new(1000, secs(5.0), secs(1.0)).unwrap();
    let s = Schedule::new(params, &g, 0..10_000).unwrap();
    let mut v = VodSession::new(s.clone(), &Bitfield::empty(10));
    for p in g.pieces() {
        assert_eq!(v.table().due(p).map(|d| d.at), s.deadline(p));
    }
    assert_eq!(v.next_deadline(), Some(secs(4.0)));
    assert!(
        v.poll_deadlines(secs(3.0), Duration::ZERO).is_none(),
        "never moves"
    );
    v.on_tick();
    assert!(v.poll_deadlines(secs(3.0), Duration::ZERO).is_none());
    assert_eq!(v.take_due(secs(5.0), Duration::ZERO), pieces(&g, &[0, 1]));
}

#[test]
fn nothing_is_due_until_a_reader_opens_then_its_next_bytes_are_due_at_once() {
    let (g, mut v) = streaming();
    assert_eq!(v.next_deadline(), None);
    assert!(v.take_due(secs(100.0), Duration::ZERO).is_empty());
    assert_eq!(
        v.open_reader(secs(2.0), ReaderId(1), MOVIE, 0..MOVIE.end),
        Opened::Continues
    );
    let update = v
        .poll_deadlines(secs(2.0), Duration::ZERO)
        .expect("a new table");
    assert!(update.released.is_empty() && update.abandoned.is_empty());
    // Piece 0 is due now; piece k at 2 + k - 1 s, never before 2 s.
    assert_eq!(update.table.due(g.piece(0).unwrap()).unwrap().at, secs(2.0));
    assert_eq!(update.table.due(g.piece(1).unwrap()).unwrap().at, secs(2.0));
    assert_eq!(update.table.due(g.piece(5).unwrap()).unwrap().at, secs(6.0));
    assert_eq!(v.take_due(secs(2.0), Duration::ZERO), pieces(&g, &[0, 1]));
}

#[test]
fn a_seek_abandons_the_old_window_and_releases_what_the_server_was_fetching() {
    let (g, mut v) = streaming();
    v.open_reader(secs(0.0), ReaderId(1), MOVIE, 0..MOVIE.end);
    let _ = v.poll_deadlines(secs(0.0), Duration::ZERO);
    assert_eq!(v.take_due(secs(0.0), Duration::ZERO), pieces(&g, &[0, 1]));
    // The player closes the connection and asks for 70% of the movie.
    v.close_reader(secs(0.5), ReaderId(1));
    assert_eq!(
        v.open_reader(secs(0.5), ReaderId(2), MOVIE, 70_000..MOVIE.end),
        Opened::Seek
    );
    let update = v.poll_deadlines(secs(0.5), Duration::ZERO).unwrap();
    assert_eq!(update.released, pieces(&g, &[0, 1]), "no longer due");
    assert!(!v.is_taken(g.piece(0).unwrap()));
    // Pieces 0..=21 were due within 20 s of now; none is due now.
    assert_eq!(update.abandoned, pieces(&g, &(0..=21).collect::<Vec<_>>()));
    assert_eq!(v.take_due(secs(0.5), Duration::ZERO), pieces(&g, &[70, 71]));
    // Blocks asked for before the seek and arriving after it are counted; blocks of the same
    // piece asked for again later (to seed, or a seek back) are not.
    v.on_peer_bytes(g.piece(3).unwrap(), 500, secs(0.2));
    v.on_peer_bytes(g.piece(3).unwrap(), 300, secs(0.9));
    v.on_peer_bytes(g.piece(70).unwrap(), 500, secs(0.2));
    assert_eq!(v.ledger().abandoned_bytes, 500);
}

#[test]
fn a_backward_seek_re_arms_the_pieces_behind() {
    let (g, mut v) = streaming();
    v.open_reader(secs(0.0), ReaderId(1), MOVIE, 50_000..MOVIE.end);
    let _ = v.poll_deadlines(secs(0.0), Duration::ZERO);
    assert!(v.table().due(g.piece(10).unwrap()).is_none());
    assert_eq!(v.take_due(secs(0.0), Duration::ZERO), pieces(&g, &[50, 51]));
    v.close_reader(secs(1.0), ReaderId(1));
    assert_eq!(
        v.open_reader(secs(1.0), ReaderId(2), MOVIE, 10_000..MOVIE.end),
        Opened::Seek
    );
    let update = v.poll_deadlines(secs(1.0), Duration::ZERO).unwrap();
    // Pieces 50 and 51 are due ~40 s from now: given back, and their peer requests cancelled.
    assert_eq!(update.released, pieces(&g, &[50, 51]));
    assert!(update.abandoned.contains(&g.piece(52).unwrap()));
    assert_eq!(v.take_due(secs(1.0), Duration::ZERO), pieces(&g, &[10, 11]));
    assert_eq!(v.next_deadline(), Some(secs(2.0)), "piece 12 is next");
}

#[test]
fn a_reader_moving_within_a_piece_does_not_rebuild_the_table() {
    let (_, mut v) = streaming();
    v.open_reader(secs(0.0), ReaderId(1), MOVIE, 0..MOVIE.end);
    let _ = v.poll_deadlines(secs(0.0), Duration::ZERO);
    v.reader_read(secs(0.1), ReaderId(1), 500);
    assert!(v.poll_deadlines(secs(0.1), Duration::ZERO).is_none());
    v.reader_read(secs(0.2), ReaderId(1), 1500);
    assert!(v.poll_deadlines(secs(0.2), Duration::ZERO).is_some());
    v.on_tick();
    assert!(v.poll_deadlines(secs(1.0), Duration::ZERO).is_some());
}

#[test]
fn nothing_falls_due_while_the_only_reader_is_paused() {
    let (g, mut v) = streaming();
    v.open_reader(secs(0.0), ReaderId(1), MOVIE, 0..MOVIE.end);
    v.reader_read(secs(0.0), ReaderId(1), 10_000);
    v.reader_paused(secs(1.0), ReaderId(1));
    let update = v.poll_deadlines(secs(1.0), Duration::ZERO).unwrap();
    // The picker still gets the order (nearest first) ...
    assert_eq!(update.table.order().first().map(|(_, i)| *i), Some(10));
    // ... but the server gets nothing, however late it is.
    assert_eq!(v.next_deadline(), None);
    assert!(v.take_due(secs(60.0), Duration::ZERO).is_empty());
    v.reader_resumed(secs(60.0), ReaderId(1));
    let _ = v.poll_deadlines(secs(60.0), Duration::ZERO);
    assert_eq!(
        v.take_due(secs(60.0), Duration::ZERO),
        pieces(&g, &[10, 11])
    );
}

#[test]
fn a_piece_verified_in_time_is_not_taken_and_completion_counts_movie_pieces() {
    let g = Geometry::new(PIECE, &[2000, 3000]).unwrap();
    let params = VodParams::new(1000, secs(1.0), secs(1.0)).unwrap();
    let s = Schedule::new(params, &g, 2000..5000).unwrap();
    let mut v = VodSession::for_readers(s, &Bitfield::empty(5));
    v.open_reader(secs(0.0), ReaderId(1), 2000..5000, 0..3000);
    let _ = v.poll_deadlines(secs(0.0), Duration::ZERO);
    v.on_verified(secs(0.0), g.piece(2).unwrap(), 1000);
    assert_eq!(v.take_due(secs(0.0), Duration::ZERO), pieces(&g, &[3]));
    v.on_verified(secs(0.5), g.piece(3).unwrap(), 0);
    v.on_verified(secs(0.7), g.piece(4).unwrap(), 1000);
    assert_eq!(
        v.complete_at(),
        Some(secs(0.7)),
        "pieces 0 and 1 are another file"
    );
    assert_eq!(v.ledger().peer_bytes, 2000);
    assert_eq!(v.ready_count(), 3);
}

#[test]
fn before_the_first_reader_the_movie_start_is_wanted_first_and_never_due() {
    let (g, mut v) = streaming();
    assert_eq!(v.table().order().first().map(|(_, i)| *i), Some(0));
    assert!(v.table().due(g.piece(0).unwrap()).is_some_and(|d| !d.firm));
    assert_eq!(v.next_deadline(), None);
    assert!(v.take_due(secs(100.0), Duration::ZERO).is_empty());
    // The first reader replaces it: its own deadlines, firm.
    v.open_reader(secs(1.0), ReaderId(1), MOVIE, 0..MOVIE.end);
    let update = v.poll_deadlines(secs(1.0), Duration::ZERO).unwrap();
    assert!(update.abandoned.is_empty(), "the same pieces are wanted");
    assert!(
        update
            .table
            .due(g.piece(0).unwrap())
            .is_some_and(|d| d.firm)
    );
}
