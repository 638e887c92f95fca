use std::time::Duration;

use super::{Member, Progress, Rebirth, run};
use crate::proto::geometry::Geometry;

const PIECE: u32 = 1000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Ten pieces of 1000 bytes.
fn geometry() -> Geometry {
    Geometry::new(PIECE, &[10 * u64::from(PIECE)]).unwrap()
}

fn seed(upload: f64) -> Member {
    Member {
        spells: vec![(Duration::ZERO, None)],
        upload,
        progress: Progress::Seed,
        rebirth: None,
    }
}

fn partial(missing: Vec<u32>, upload: f64) -> Member {
    Member {
        spells: vec![(Duration::ZERO, None)],
        upload,
        progress: Progress::Partial {
            missing,
            download: f64::INFINITY,
        },
        rebirth: None,
    }
}

/// A viewer arriving at `from` whose piece i is due `due_after + i` seconds later.
fn viewer(from: u64, due_after: u64, upload: f64) -> Member {
    let movie = (0..10)
        .map(|i| (i, secs(from + due_after + u64::from(i))))
        .collect();
    Member {
        spells: vec![(secs(from), None)],
        upload,
        progress: Progress::Viewer {
            movie,
            download: f64::INFINITY,
        },
        rebirth: None,
    }
}

#[test]
fn a_seed_splits_its_upload_among_downloaders_until_they_complete() {
    // 1000 B/s for two peers missing 2 and 4 pieces: 500 B/s each until the first is done
    // (4 s), then all of it for the other, which then needs 2 more pieces (2 s).
    let members = [
        seed(1000.0),
        partial(vec![0, 1], 1.0),
        partial(vec![2, 3, 4, 5], 1.0),
    ];
    let courses = run(&members, &geometry(), secs(20));
    assert_eq!(courses[1].gains, vec![(secs(2), 0), (secs(4), 1)]);
    assert_eq!(courses[2].gains.last(), Some(&(secs(6), 5)));
    let shares = &courses[0].share;
    assert_eq!(shares[0], (Duration::ZERO, 500.0));
    assert_eq!(shares[1], (secs(4), 1000.0));
}

#[test]
fn a_partial_peer_takes_no_more_than_its_download_limit() {
    let mut slow = partial(vec![0, 1], 1.0);
    slow.progress = Progress::Partial {
        missing: vec![0, 1],
        download: 250.0,
    };
    let courses = run(&[seed(1000.0), slow], &geometry(), secs(20));
    assert_eq!(courses[1].gains, vec![(secs(4), 0), (secs(8), 1)]);
}

#[test]
fn without_uploaders_a_viewer_holds_each_piece_at_its_deadline() {
    let courses = run(&[viewer(5, 4, 1000.0)], &geometry(), secs(30));
    let expected: Vec<_> = (0..10).map(|i| (secs(9 + u64::from(i)), i)).collect();
    assert_eq!(courses[0].gains, expected);
}

#[test]
fn a_viewer_helps_only_the_viewers_it_is_ahead_of() {
    // The first viewer gets 3000 B/s from the seed alone (the later one has nothing it lacks):
    // three pieces a second from t = 0. The second, arriving at 10 s when the first is
    // complete, gets the first's whole upload and half the seed's (the first plays until
    // 29 s and is served until then).
    let members = [seed(3000.0), viewer(0, 20, 2000.0), viewer(10, 20, 0.5)];
    let courses = run(&members, &geometry(), secs(40));
    assert_eq!(
        courses[1].gains[..3],
        [(secs(1), 0), (secs(1), 1), (secs(1), 2)]
    );
    assert_eq!(courses[1].gains.last(), Some(&(secs(4), 9)));
    // From 10 s: 1500 + 2000 B/s, three and a half pieces a second.
    assert_eq!(courses[2].gains[4], (secs(12), 4));
    assert_eq!(courses[2].gains.last(), Some(&(secs(13), 9)));
    // Before the second came, the first helped no one: its whole upload is its share.
    assert_eq!(courses[1].share[0], (Duration::ZERO, 2000.0));
}

#[test]
fn a_member_offline_gets_nothing_and_shares_nothing() {
    let mut late = partial(vec![0], 1.0);
    late.spells = vec![(secs(5), None)];
    let mut gone = seed(1000.0);
    gone.spells = vec![(Duration::ZERO, Some(secs(3)))];
    let courses = run(&[gone, late, seed(500.0)], &geometry(), secs(10));
    // Only the second seed is there when the partial peer comes: 1000 B in 2 s.
    assert_eq!(courses[1].gains, vec![(secs(7), 0)]);
    assert!(courses[0].share.iter().all(|s| s.0 < secs(3)));
}

#[test]
fn a_member_keeps_what_it_gained_across_its_spells() {
    let mut churning = partial(vec![0, 1, 2], 1.0);
    churning.spells = vec![(Duration::ZERO, Some(secs(2))), (secs(10), None)];
    let courses = run(&[seed(1000.0), churning], &geometry(), secs(20));
    // Two pieces in the first spell, the third a second into the second.
    assert_eq!(
        courses[1].gains,
        vec![(secs(1), 0), (secs(2), 1), (secs(11), 2)]
    );
}

#[test]
fn a_viewer_helps_a_partial_peer_with_the_pieces_it_holds() {
    // The seed's 100 B/s fetch nothing in time, so the viewer holds piece k from its deadline
    // at k + 1 s. Its upload is far larger than the seed's: the partial peer, lacking 9, 5
    // and 1 (drawn in that order), takes each from the viewer in the step after the viewer
    // holds it, in the viewer's order and long before the viewer is complete.
    let members = [seed(100.0), viewer(0, 1, 1e9), partial(vec![9, 5, 1], 1.0)];
    let courses = run(&members, &geometry(), secs(20));
    assert_eq!(
        courses[2].gains,
        vec![(secs(3), 1), (secs(7), 5), (secs(11), 9)]
    );
}

#[test]
fn a_viewer_holding_nothing_a_partial_peer_lacks_leaves_it_to_the_others() {
    // The partial peer lacks only piece 9, which the viewer holds from 10 s: until then the
    // seed's whole upload is split between the two, and the viewer's offer is no help.
    let members = [seed(1000.0), viewer(0, 20, 1e9), partial(vec![9], 1.0)];
    let courses = run(&members, &geometry(), secs(20));
    assert_eq!(courses[2].gains, vec![(secs(2), 9)]);
}

#[test]
fn what_a_capped_downloader_cannot_take_goes_to_the_others() {
    // Half the seed's 1000 B/s is offered to a peer that takes 100 B/s: the other 400 go to
    // the uncapped peer, which gets about 900 B/s (a piece a second after the first).
    let mut capped = partial(vec![0], 1.0);
    capped.progress = Progress::Partial {
        missing: vec![0],
        download: 100.0,
    };
    let members = [seed(1000.0), capped, partial(vec![1, 2, 3], 1.0)];
    let courses = run(&members, &geometry(), secs(20));
    assert_eq!(courses[1].gains, vec![(secs(10), 0)]);
    assert_eq!(
        courses[2].gains,
        vec![(secs(2), 1), (secs(3), 2), (secs(4), 3)]
    );
    assert!(
        (courses[0].share[0].1 - 900.0).abs() < 1.0,
        "{:?}",
        courses[0].share
    );
}

#[test]
fn a_viewer_is_served_until_its_last_deadline_however_early_it_fills() {
    // The viewer holds the whole movie at 10 s, but plays until 39 s: a VoD viewer fetches
    // in time, not early, so the seed still splits its upload with it when a partial peer
    // comes at 15 s. The partial peer gets 500 B/s, not 1000: a piece every two seconds.
    let mut late = partial(vec![0, 1, 2, 3], 1.0);
    late.spells = vec![(secs(15), None)];
    let members = [seed(1000.0), viewer(0, 30, 0.5), late];
    let courses = run(&members, &geometry(), secs(40));
    assert_eq!(courses[1].gains.last(), Some(&(secs(10), 9)));
    assert_eq!(
        courses[2].gains,
        vec![(secs(17), 0), (secs(19), 1), (secs(21), 2), (secs(23), 3)]
    );
}

#[test]
fn a_partial_peer_that_starts_over_lacks_its_next_life_s_pieces_after_lingering() {
    // Complete at 2 s (two pieces at the seed's 1000 B/s), it seeds 2 s and starts over at
    // 4 s lacking 2 and 3, which take two more seconds; it has no third life.
    let mut again = partial(vec![0, 1], 1.0);
    again.rebirth = Some(Rebirth {
        linger: secs(2),
        lives: vec![vec![2, 3]],
    });
    let courses = run(&[seed(1000.0), again], &geometry(), secs(20));
    assert_eq!(courses[1].rebirths, vec![secs(4)]);
    assert_eq!(
        courses[1].gains,
        vec![(secs(1), 0), (secs(2), 1), (secs(5), 2), (secs(6), 3)]
    );
}
