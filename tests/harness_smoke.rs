//! The interop harness on its own, without btvod's engine: libtorrent to libtorrent (unlimited
//! and rate-limited), libtorrent to Transmission, and two libtorrent peers that meet through
//! opentracker. If these fail, interop failures elsewhere are about the harness, not btvod.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::external::{
    LibtorrentPeer, LtOptions, OpenTracker, Transmission, deterministic_content, free_port,
    make_torrent_with_libtorrent,
};
use tempfile::TempDir;

const MIB: usize = 1024 * 1024;
const PIECE_LEN: u32 = 64 * 1024;
const FILE_NAME: &str = "movie.bin";

/// A seed directory holding `FILE_NAME` with `len` deterministic bytes, and an empty
/// directory for the downloader.
struct World {
    _dir: TempDir,
    seed_dir: PathBuf,
    leech_dir: PathBuf,
    content: Vec<u8>,
}

impl World {
    fn new(len: usize, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let seed_dir = dir.path().join("seed");
        let leech_dir = dir.path().join("leech");
        fs::create_dir_all(&seed_dir).expect("create seed dir");
        fs::create_dir_all(&leech_dir).expect("create leech dir");
        let content = deterministic_content(len, seed);
        fs::write(seed_dir.join(FILE_NAME), &content).expect("write content");
        Self {
            _dir: dir,
            seed_dir,
            leech_dir,
            content,
        }
    }

    fn content_path(&self) -> PathBuf {
        self.seed_dir.join(FILE_NAME)
    }

    fn assert_downloaded(&self, dir: &Path) {
        let got = fs::read(dir.join(FILE_NAME)).expect("read the downloaded file");
        assert_eq!(got.len(), self.content.len(), "downloaded length");
        let first_difference = got.iter().zip(&self.content).position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "downloaded bytes differ from the seed's"
        );
    }
}

/// Waits for the seed to report at least `len` payload bytes uploaded: the data came from it.
fn assert_seed_uploaded(seed: &LibtorrentPeer, len: usize) {
    let status = seed.wait_status(Duration::from_secs(5), |s| s.uploaded >= len as u64);
    if let Err(err) = status {
        panic!("the seed did not upload the content: {err}");
    }
}

#[test]
fn libtorrent_downloader_gets_2_mib_from_a_libtorrent_seed() {
    let world = World::new(2 * MIB, 1);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir, &LtOptions::seed());
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir,
        &LtOptions {
            max_seconds: Some(60),
            ..LtOptions::download_from(seed.addr())
        },
    );

    leech
        .wait_complete(Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));
    let code = leech
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        code,
        Some(0),
        "--exit-when-complete exits cleanly\n{}",
        leech.report()
    );
    world.assert_downloaded(&world.leech_dir);
    assert_seed_uploaded(&seed, world.content.len());
}

#[test]
fn a_rate_limited_libtorrent_seed_holds_its_limit_on_loopback() {
    const LIMIT: u64 = 256 * 1024;
    let world = World::new(MIB, 2);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let seed_options = LtOptions {
        upload_limit: LIMIT,
        ..LtOptions::seed()
    };
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir, &seed_options);
    let seed_addr = seed.addr();

    let started = Instant::now();
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir,
        &LtOptions {
            max_seconds: Some(40),
            ..LtOptions::download_from(seed_addr)
        },
    );
    leech
        .wait_complete(Duration::from_secs(40))
        .unwrap_or_else(|err| panic!("{err}"));
    let elapsed = started.elapsed();
    eprintln!("1 MiB through a {LIMIT} B/s seed limit took {elapsed:?}");

    // 1 MiB at 256 KiB/s is 4 s of transfer; unlimited loopback takes well under 1 s with
    // start-up included. libtorrent was measured at 0.96-0.99x of its limit here.
    let ideal = Duration::from_secs_f64(world.content.len() as f64 / LIMIT as f64);
    assert!(
        elapsed >= ideal.mul_f64(0.75),
        "1 MiB came in {elapsed:?} through a 256 KiB/s limit (at least {:?} expected): the limit \
         did not hold on loopback\n{}",
        ideal.mul_f64(0.75),
        seed.report()
    );
    assert!(
        elapsed <= ideal * 5,
        "1 MiB took {elapsed:?} at 256 KiB/s (ideal {ideal:?})"
    );
    world.assert_downloaded(&world.leech_dir);
}

/// The most peers a slow libtorrent seed reports connected while two leechers dial it.
fn most_peers_of_a_seed_dialled_by_two(max_connections: Option<u32>) -> u32 {
    let world = World::new(MIB, 4);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let seed = LibtorrentPeer::start(
        &torrent,
        &world.seed_dir,
        &LtOptions {
            // 1 MiB at 64 KiB/s: both leechers still want it throughout the test.
            upload_limit: 64 * 1024,
            max_connections,
            ..LtOptions::seed()
        },
    );
    let leechers: Vec<_> = (0..2)
        .map(|i| {
            let dir = world.leech_dir.join(i.to_string());
            fs::create_dir_all(&dir).expect("leech dir");
            LibtorrentPeer::start(&torrent, &dir, &LtOptions::download_from(seed.addr()))
        })
        .collect();
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        most = most.max(seed.last_status().map_or(0, |s| s.peers));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(leechers);
    most
}

#[test]
fn a_libtorrent_peer_keeps_to_its_connection_cap() {
    // The scenario key `max_peers` reaches a libtorrent world peer as --max-connections.
    assert_eq!(most_peers_of_a_seed_dialled_by_two(None), 2);
    assert_eq!(most_peers_of_a_seed_dialled_by_two(Some(1)), 1);
}

#[test]
fn transmission_downloads_from_a_libtorrent_seed_that_dials_it() {
    let world = World::new(2 * MIB, 3);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let transmission = Transmission::start(&torrent, &world.leech_dir, free_port());
    // Transmission ignores 127.x peers unless they dial in, so the seed connects to it.
    let seed_options = LtOptions {
        connect: vec![transmission.addr()],
        ..LtOptions::seed()
    };
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir, &seed_options);

    if let Err(err) = transmission.wait_complete(FILE_NAME, &world.content, Duration::from_secs(90))
    {
        panic!("{err}\n{}", seed.report());
    }
    world.assert_downloaded(&world.leech_dir);
    assert_seed_uploaded(&seed, world.content.len());
}

#[test]
fn two_libtorrent_peers_meet_through_opentracker_and_transfer() {
    let world = World::new(2 * MIB, 4);
    // The info-hash does not cover the announce URL, so a torrent made before the tracker's
    // port is known names the same torrent as the one made after.
    let (_, info_hash) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let tracker = OpenTracker::start(std::slice::from_ref(&info_hash));
    let (torrent, announced_hash) =
        make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[tracker.announce_url()]);
    assert_eq!(announced_hash, info_hash);

    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir, &LtOptions::seed());
    // The seed must be in the swarm first: peers learn of a newcomer only when it dials them.
    seed.wait_tracker_reply(Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}\n{}", tracker.report()));
    let leech_options = LtOptions {
        exit_when_complete: true,
        max_seconds: Some(60),
        ..LtOptions::default()
    };
    let leech = LibtorrentPeer::start(&torrent, &world.leech_dir, &leech_options);

    let peers = leech
        .wait_tracker_reply(Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}\n{}", tracker.report()));
    assert!(
        peers >= 1,
        "opentracker gave the leecher no peers (the seed announced first)"
    );
    leech
        .wait_complete(Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));
    leech
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|err| panic!("{err}"));
    world.assert_downloaded(&world.leech_dir);
    assert_seed_uploaded(&seed, world.content.len());
}

/// PIDs of live processes whose command line mentions `needle` (a test's unique temp path).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

#[test]
fn lt_peer_stops_cleanly_on_sigterm_and_leaves_no_process() {
    let world = World::new(256 * 1024, 5);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir, &LtOptions::seed());
    seed.wait_complete(Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}"));
    let save_path = world.seed_dir.display().to_string();
    assert_eq!(
        processes_mentioning(&save_path).len(),
        2,
        "the lifeline and lt_peer.py run"
    );

    assert_eq!(
        seed.stop(),
        Some(0),
        "lt_peer.py exits 0 on SIGTERM\n{}",
        seed.report()
    );
    assert_eq!(
        processes_mentioning(&save_path),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[test]
fn guards_stop_their_processes_when_a_test_panics() {
    let world = World::new(256 * 1024, 6);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let leech_path = world.leech_dir.display().to_string();
    let outcome = std::panic::catch_unwind(|| {
        let leech = LibtorrentPeer::start(&torrent, &world.leech_dir, &LtOptions::default());
        leech.port();
        assert!(
            !processes_mentioning(&leech_path).is_empty(),
            "the peer runs"
        );
        panic!("(expected) a test failing while its peer runs");
    });
    assert!(outcome.is_err());
    assert_eq!(
        processes_mentioning(&leech_path),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[test]
fn lt_peer_reports_a_seed_without_its_content_as_an_error() {
    let world = World::new(256 * 1024, 7);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), PIECE_LEN, &[]);
    let not_a_seed = LibtorrentPeer::start(&torrent, &world.leech_dir, &LtOptions::seed());

    let code = not_a_seed
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        code,
        Some(1),
        "an error exits non-zero\n{}",
        not_a_seed.report()
    );
    let report = not_a_seed.report();
    assert!(
        report.contains(r#""event": "error""#)
            && report.contains("does not hold the complete content"),
        "the error is a JSON line on stderr that says what is wrong:\n{report}"
    );
    assert!(not_a_seed.wait_complete(Duration::from_secs(1)).is_err());
}
