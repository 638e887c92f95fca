//! The VoD server slow or down at a deadline, with no peer at all so that every movie byte is
//! bought: playback waits (and the report says how long), the fetches are retried until the
//! server answers, the penalty equals the origin's own meter to the byte (nothing counted
//! twice, nothing lost), and the movie ends byte-identical. (A distant server, 300 ms per
//! answer, and a body cut mid-way are in tests/vod.rs.)

mod common;
mod vod_support;

use std::thread;
use std::time::{Duration, Instant};

use vod_support::{Movie, Origin, PlayArgs, assert_consistent, play};

const PIECE: u32 = 64 * 1024;
/// Longest any one client run may take (each movie here plays in under 15 s).
const RUN_BOUND: Duration = Duration::from_secs(45);

/// The origin sends 32 KiB/s and the movie plays at 64 KiB/s: whatever lead the client takes,
/// the server's pieces land late, so playback stalls for about half the movie's length. Every
/// byte the origin sent is in the penalty, once.
#[test]
fn a_throttled_server_stalls_playback_and_is_charged_exactly_what_it_sent() {
    let movie = Movie::single(4 * PIECE as usize + 1000, 41, PIECE);
    let origin = Origin::start_on(
        &movie.content_path,
        common::content::free_port(),
        &["--rate", "32KiB"],
    );
    let mut args = PlayArgs::new(64, 1.0, 0.0);
    args.server = Some(origin.url());
    let p = play(&movie, &args, "throttled", RUN_BOUND);
    let stats = origin.stats();
    assert_consistent(&p, &movie, &args, &stats);
    let r = &p.report;
    eprintln!("throttled server: {r:?}\norigin: {stats:?}");
    assert_eq!(r.peer_bytes, 0, "{r:?}");
    assert_eq!(
        r.penalty_bytes,
        movie.len(),
        "every byte bought once: {r:?}"
    );
    // 265 KiB at 32 KiB/s is over 8 s of transfer for 4 s of movie (played from t = 1 s).
    assert!(
        r.stall_s > 2.0,
        "a server at half the playback rate stalled only {} s: {r:?}",
        r.stall_s
    );
}

/// The origin passes the client's start-up check and then goes away before the first deadline;
/// it comes back on the same port 3 s later. The client keeps retrying meanwhile (the fetcher
/// backs off, then the piece is asked for again), playback stalls while the server is away,
/// and once it is back the movie completes: penalty = both origins' meters = the movie's
/// length, nothing bought twice.
#[test]
fn a_server_down_at_a_deadline_and_back_is_retried_and_charged_once() {
    let movie = Movie::single(4 * PIECE as usize + 1000, 42, PIECE);
    let port = common::content::free_port();
    let first = Origin::start_on(&movie.content_path, port, &[]);
    let mut args = PlayArgs::new(64, 1.0, 0.0);
    args.server = Some(first.url());
    thread::scope(|scope| {
        let client = scope.spawn(|| play(&movie, &args, "down", RUN_BOUND));
        // The start-up check (one HEAD) has reached the origin: the client is past it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while first.stats().requests == 0 {
            assert!(
                Instant::now() < deadline,
                "the client never checked the server"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let down_at = Instant::now();
        let first_served = first.stop();
        // The first piece is due 1 s after start: it and the next come due while it is down.
        thread::sleep(Duration::from_millis(3000).saturating_sub(down_at.elapsed()));
        let down_for = down_at.elapsed();
        let back = Origin::start_on(&movie.content_path, port, &[]);
        let p = client.join().expect("the client run");
        let stats = back.stats();
        let r = &p.report;
        eprintln!("down {down_for:?}, first origin {first_served}: {r:?}\norigin: {stats:?}");
        assert!(p.status.success(), "{}", p.log);
        assert_eq!(
            r.penalty_bytes,
            first_served + stats.bytes_served,
            "penalty is not every byte both origins sent: {r:?}"
        );
        assert_eq!(r.penalty_bytes, movie.len(), "nothing bought twice: {r:?}");
        let saved = std::fs::read(&p.saved).expect("read the saved movie");
        assert!(saved == movie.movie(), "saved movie differs");
        // Piece 0 was due at 1 s and could not come before the origin was back (~3 s).
        assert!(
            r.stall_s > 1.0,
            "a server away for {down_for:?} stalled playback only {} s: {r:?}",
            r.stall_s
        );
    });
}
