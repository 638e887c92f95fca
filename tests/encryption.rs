//! Message stream encryption (MSE/PE) against libtorrent on 127.0.0.1, both ways, with
//! libtorrent forced to encrypt (handshake and RC4 payload, in and out); `--encryption require`
//! refusing a plaintext-only peer; and hostile handshakes against a btvod seed: one that never
//! sends the synchronisation marker and one that trickles a byte a second.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cli::{assert_exits_ok, assert_libtorrent_downloads, btvod_get, btvod_seed};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions};
use common::movie_dir::MovieDir;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn forced() -> Option<&'static str> {
    Some("forced")
}

#[test]
fn btvod_requiring_encryption_downloads_from_a_libtorrent_seed_that_forces_it() {
    let world = MovieDir::new(3 * MIB + 4321, 64 * 1024, 91);
    let seed = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.seed_dir(),
        &LtOptions {
            encryption: forced(),
            ..LtOptions::seed()
        },
    );
    let get = btvod_get(
        &world.torrent_path().display().to_string(),
        &world.leech_dir(0),
        &[
            "--peer",
            &seed.addr().to_string(),
            "--no-dht",
            "--encryption",
            "require",
        ],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get --encryption require",
        &seed.report(),
    );
    world.assert_downloaded(0);
}

#[test]
fn a_libtorrent_leecher_that_forces_encryption_downloads_from_a_btvod_seed() {
    let world = MovieDir::new(3 * MIB + 4321, 64 * 1024, 92);
    let port = free_port();
    let seed = btvod_seed(&world, port, &[]);
    let options = LtOptions {
        encryption: forced(),
        ..LtOptions::default()
    };
    assert_libtorrent_downloads(&world, localhost(port), options, BOUND, &seed);
}

/// A plaintext-only libtorrent seed: btvod with `--encryption require` fails every dial (the
/// seed closes on the encrypted handshake) and gets nothing; with the default it falls back
/// to plaintext and completes.
#[test]
fn require_refuses_a_plaintext_only_peer_and_prefer_falls_back() {
    let world = MovieDir::new(MIB, 64 * 1024, 93);
    let seed = LibtorrentPeer::start(&world.torrent_path(), &world.seed_dir(), &LtOptions::seed());
    let out = world.leech_dir(0);
    let (torrent, peer) = (
        world.torrent_path().display().to_string(),
        seed.addr().to_string(),
    );
    let strict = btvod_get(
        &torrent,
        &out,
        &["-v", "--peer", &peer, "--no-dht", "--encryption", "require"],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = |log: &str| {
        log.lines()
            .any(|l| l.contains("connection failed") && l.contains("encrypted handshake"))
    };
    while !refused(&strict.report()) {
        assert!(
            Instant::now() < deadline,
            "no failed dial\n{}",
            strict.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(strict.exited().is_none(), "{}", strict.report());
    assert!(
        world.good_pieces_of(&world.leech_file(0)).is_empty(),
        "a piece came over plaintext\n{}",
        strict.report()
    );
    strict.stop();
    let get = btvod_get(&torrent, &out, &["--peer", &peer, "--no-dht"]);
    assert_exits_ok(&get, BOUND, "btvod get (prefer)", &seed.report());
    world.assert_downloaded(0);
}

/// One connection sends a public key and 600 bytes of padding without the marker, another
/// trickles a public key a byte a second; both are dropped with a line each, and a leecher
/// downloads meanwhile.
#[test]
fn hostile_encrypted_handshakes_are_dropped_and_said() {
    let world = MovieDir::new(MIB, 64 * 1024, 94);
    let port = free_port();
    let seed = btvod_seed(&world, port, &[]);
    // A public key of 2 (any value in range does), then padding past the 512 allowed.
    let mut key = [0u8; 96];
    key[95] = 2;
    let mut never = TcpStream::connect(localhost(port)).unwrap();
    never.write_all(&key).unwrap();
    never.write_all(&[0x55; 600]).unwrap();
    let trickler = std::thread::spawn(move || {
        let mut slow = TcpStream::connect(localhost(port)).unwrap();
        let started = Instant::now();
        for b in key.iter().cycle().take(30) {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        started.elapsed()
    });
    let get = btvod_get(
        &world.torrent_path().display().to_string(),
        &world.leech_dir(0),
        &["--peer", &localhost(port).to_string(), "--no-dht"],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get beside hostile handshakes",
        &seed.report(),
    );
    world.assert_downloaded(0);
    // The marker-less one is closed at once.
    let mut rest = Vec::new();
    never
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = never.read_to_end(&mut rest);
    let took = trickler.join().unwrap();
    assert!(
        took < Duration::from_secs(25),
        "the trickler was kept {took:?}"
    );
    let log = seed.report();
    for said in [
        "no synchronisation marker within",
        "encrypted handshake timed out",
    ] {
        assert_eq!(log.matches(said).count(), 1, "`{said}` once\n{log}");
    }
}
