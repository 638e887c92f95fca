//! uTP (BEP 29) beside TCP: btvod downloads from a libtorrent seed that takes only uTP, and
//! libtorrent allowed only uTP downloads from a btvod seed; an upload cap holds over uTP within
//! 10%; malformed datagrams at btvod's uTP port are dropped with a line and disturb nothing.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use btvod::engine::peer::link::UtpPolicy;
use btvod::engine::torrent::TorrentConfig;
use common::cli::{assert_exits_ok, assert_libtorrent_downloads, btvod_get, btvod_seed};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions};
use common::movie_dir::MovieDir;
use common::session::{KIB, SessionExt, options, shutdown_all};
use tokio::time::{Instant, sleep};

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn btvod_downloads_from_a_libtorrent_seed_that_takes_only_utp() {
    let world = MovieDir::new(3 * MIB + 777, 64 * 1024, 101);
    let seed = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.seed_dir(),
        &LtOptions {
            transport: Some("utp"),
            ..LtOptions::seed()
        },
    );
    // The default (`enable`): TCP first, refused, then uTP.
    let get = btvod_get(
        &world.torrent_path().display().to_string(),
        &world.leech_dir(0),
        &["--peer", &seed.addr().to_string(), "--no-dht"],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get from a uTP-only seed",
        &seed.report(),
    );
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_allowed_only_utp_downloads_from_a_btvod_seed() {
    let world = MovieDir::new(3 * MIB + 777, 64 * 1024, 102);
    let port = free_port();
    let seed = btvod_seed(&world, port, &[]);
    let options = LtOptions {
        transport: Some("utp"),
        ..LtOptions::default()
    };
    assert_libtorrent_downloads(&world, localhost(port), options, BOUND, &seed);
}

/// A seed capped at 512 KiB/s, a leecher that dials uTP first: the one connection is uTP and
/// the rate measured at the leecher over 6 s is within 10% of the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cap_holds_over_utp_within_ten_percent() {
    let world = MovieDir::new(7 * MIB, 64 * 1024, 103);
    let capped = TorrentConfig {
        upload_limit: 512 * KIB,
        ..TorrentConfig::default()
    };
    let seed = world.seed(options(1, vec![], capped)).await;
    let utp_first = TorrentConfig {
        utp: UtpPolicy::Prefer,
        ..TorrentConfig::default()
    };
    let leech = world
        .leecher(0, options(2, vec![seed.addr()], utp_first))
        .await;
    leech
        .wait_stats(Duration::from_secs(10), "first data over uTP", |s| {
            s.downloaded > 0 && s.peers_utp == 1
        })
        .await;
    sleep(Duration::from_secs(2)).await;
    let (t0, d0) = (Instant::now(), leech.stats().downloaded);
    sleep(Duration::from_secs(6)).await;
    let (t1, d1) = (Instant::now(), leech.stats().downloaded);
    let s = leech.stats();
    assert!(!s.complete, "the window must end before the download does");
    assert_eq!((s.peers, s.peers_utp), (1, 1), "one connection, over uTP");
    let rate = (d1 - d0) as f64 / (t1 - t0).as_secs_f64();
    let off = (rate - (512 * KIB) as f64).abs() / (512 * KIB) as f64;
    eprintln!("over uTP: {:.1} KiB/s (cap 512)", rate / KIB as f64);
    assert!(
        off <= 0.10,
        "{:.1} KiB/s is {:.1}% off",
        rate / KIB as f64,
        off * 100.0
    );
    shutdown_all([leech, seed]).await;
}

/// Datagrams that are no uTP packets (too short, a wrong version, a bad extension chain) at
/// the seed's uTP port are dropped, and a uTP download goes on. (`librqbit-utp` says so only
/// at trace level, `librqbit_utp::socket`; nothing is logged by default.)
#[test]
fn malformed_utp_packets_are_dropped_and_disturb_nothing() {
    let world = MovieDir::new(MIB, 64 * 1024, 104);
    let port = free_port();
    let seed = btvod_seed(&world, port, &[]);
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut packets: Vec<Vec<u8>> = vec![vec![0x41; 5], vec![0x12; 20]];
    // ST_DATA version 1 claiming an extension that runs past the end.
    let mut bad_ext = vec![0x01, 0x01];
    bad_ext.extend([0u8; 18]);
    bad_ext.extend([0x00, 0x30]);
    packets.push(bad_ext);
    for _ in 0..50 {
        for p in &packets {
            junk.send_to(p, localhost(port)).unwrap();
        }
    }
    let options = LtOptions {
        transport: Some("utp"),
        ..LtOptions::default()
    };
    assert_libtorrent_downloads(&world, localhost(port), options, BOUND, &seed);
    assert!(seed.exited().is_none(), "the seed died\n{}", seed.report());
    let log = seed.report();
    assert!(!log.contains("ERROR") && !log.contains("panicked"), "{log}");
}
