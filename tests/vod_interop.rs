//! The VoD client against third-party seeds on 127.0.0.1: a rate-limited libtorrent seed, and
//! a Transmission seed it dials (Transmission takes ~10 s to start serving, so the movie plays
//! long enough for it to matter). Each run's report must hold together: the penalty equal to
//! the origin's meter, peer + penalty = movie, the file identical, and the peer delivered.

mod common;
mod vod_support;

use std::path::PathBuf;
use std::time::Duration;

use common::external::{LibtorrentPeer, LtOptions, Transmission, free_port};
use vod_support::{KIB, Movie, Origin, PlayArgs, assert_consistent, play};

const MIB: usize = 1024 * 1024;
const PIECE: u32 = 64 * 1024;
const RUN_BOUND: Duration = Duration::from_secs(60);

fn source_dir(movie: &Movie) -> PathBuf {
    movie
        .content_path
        .parent()
        .expect("the movie file has a directory")
        .to_path_buf()
}

/// A libtorrent seed capped at 128 KiB/s for a movie played at 256 KiB/s: about half comes
/// from the seed, the rest from the origin.
#[test]
fn plays_from_a_rate_limited_libtorrent_seed() {
    let movie = Movie::single(2 * MIB + 3000, 21, PIECE);
    let origin = Origin::start(&movie.content_path, 0);
    let seed = LibtorrentPeer::start(
        &movie.torrent,
        &source_dir(&movie),
        &LtOptions {
            upload_limit: 128 * KIB,
            ..LtOptions::seed()
        },
    );
    let mut args = PlayArgs::new(256, 3.0, 1.0);
    args.server = Some(origin.url());
    args.peers = vec![seed.addr()];
    let p = play(&movie, &args, "libtorrent", RUN_BOUND);
    let stats = origin.stats();
    assert_consistent(&p, &movie, &args, &stats);
    let r = &p.report;
    eprintln!("libtorrent seed: {r:?}");
    assert_eq!(r.peers_seen, 1, "{r:?}");
    // ~9 s of playback deadlines at ~128 KiB/s: well over a quarter of the movie.
    assert!(
        r.peer_bytes > movie.len() / 4,
        "the libtorrent seed delivered too little: {r:?}\n{}",
        seed.report()
    );
    assert!(
        r.penalty_bytes > 0,
        "a seed at half of R cost nothing: {r:?}"
    );
    let up = seed
        .wait_status(Duration::from_secs(5), |s| s.uploaded >= r.peer_bytes)
        .unwrap_or_else(|e| panic!("the seed's own count is below peer_bytes: {e}"));
    assert!(up.uploaded >= r.peer_bytes);
}

/// Transmission accepts loopback peers only when they dial it, and starts serving at its ~10 s
/// pulse: the early pieces are bought, the later ones come from Transmission, which is not
/// capped and so finishes the movie well before its last deadline (~22 s).
#[test]
fn plays_from_a_transmission_seed_it_dials() {
    let movie = Movie::single(5 * MIB, 22, PIECE);
    let origin = Origin::start(&movie.content_path, 0);
    let transmission = Transmission::start(&movie.torrent, &source_dir(&movie), free_port());
    let mut args = PlayArgs::new(256, 3.0, 1.0);
    args.server = Some(origin.url());
    args.peers = vec![transmission.addr()];
    let p = play(&movie, &args, "transmission", RUN_BOUND);
    let stats = origin.stats();
    assert_consistent(&p, &movie, &args, &stats);
    let r = &p.report;
    eprintln!("transmission seed: {r:?}");
    assert_eq!(r.peers_seen, 1, "{r:?}");
    assert!(
        r.peer_bytes > 0,
        "Transmission delivered nothing: {r:?}\n{}",
        transmission.report()
    );
    let last_deadline = 3.0 - 1.0 + (movie.len() - u64::from(PIECE)) as f64 / (256 * KIB) as f64;
    let done = r.complete_at_s.unwrap();
    assert!(
        done < last_deadline,
        "complete at {done} s, not before the last deadline {last_deadline} s: {r:?}"
    );
    assert!(r.pieces_from_server < movie.piece_count(), "{r:?}");
}
