//! btvod's peer engine against real clients on 127.0.0.1, both directions: btvod downloads from
//! a libtorrent seed and from a Transmission seed; libtorrent and Transmission download from a
//! btvod seed; and btvod and libtorrent find each other through opentracker. Some torrents are
//! made by btvod, some by libtorrent; some runs use the `btvod` binary, others the engine
//! in-process (which shows its byte counters).

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use btvod::engine::session::{Session, SessionOptions};
use btvod::engine::torrent::TorrentConfig;
use btvod::proto::metainfo::Metainfo;
use common::external::{
    LibtorrentPeer, LtOptions, OpenTracker, Transmission, free_port, make_torrent_with_libtorrent,
};
use common::movie_dir::{FILE_NAME, MovieDir};
use common::session::{SessionExt, options, runtime};
use tokio::runtime::Runtime;

const MIB: usize = 1024 * 1024;
/// Transmission asks for data only at its ~10 s pulse and takes a while to get going.
const TRANSMISSION_BOUND: Duration = Duration::from_secs(90);
const LIBTORRENT_BOUND: Duration = Duration::from_secs(60);

/// An in-process btvod on 127.0.0.1:0 that dials `peers`.
fn btvod_options(peers: Vec<SocketAddr>) -> SessionOptions {
    options(7, peers, TorrentConfig::default())
}

/// libtorrent downloading into `leech_dir(0)` from `seed` alone, in streaming mode (piece
/// deadlines) from `deadlines_after` seconds if given; it gives up after `LIBTORRENT_BOUND`.
fn libtorrent_leecher(
    world: &MovieDir,
    seed: &Session,
    deadlines_after: Option<f64>,
) -> LibtorrentPeer {
    LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            deadlines_after,
            ..LtOptions::download_from(seed.addr())
        },
    )
}

/// The btvod seed's counter shows the whole content uploaded (it is published on the seed's
/// tick: polled); then the seed stops.
fn assert_seed_sent_all(rt: &Runtime, seed: Session, world: &MovieDir) {
    let len = world.content.len() as u64;
    rt.block_on(seed.try_wait_stats(Duration::from_secs(5), |s| s.uploaded >= len))
        .unwrap_or_else(|e| panic!("the btvod seed's upload count: {e}"));
    rt.block_on(seed.shutdown());
}

/// The `btvod` binary as a child process, killed on drop.
struct Btvod {
    child: Child,
    log: PathBuf,
}

impl Btvod {
    fn start(args: &[String], log: PathBuf) -> Self {
        let file = fs::File::create(&log).expect("create the btvod log");
        let child = Command::new(env!("CARGO_BIN_EXE_btvod"))
            .args(args)
            .env("RUST_LOG", "btvod=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("run the btvod binary");
        Self { child, log }
    }

    fn wait_exit(&mut self, bound: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll btvod") {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "btvod still running after {bound:?}\n{}",
                    self.tail()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!("--- btvod log (last lines):\n{}", lines[from..].join("\n"))
    }
}

impl Drop for Btvod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_args(command: &str, torrent: &Path, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        command.to_string(),
        torrent.display().to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "-q".into(),
        "--no-lsd".into(),
        "--no-lan-search".into(),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

#[test]
fn btvod_cli_downloads_from_a_libtorrent_seed() {
    let world = MovieDir::new(5 * MIB + 777, 64 * 1024, 21);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 64 * 1024, &[]);
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir(), &LtOptions::seed());
    let peer = seed.addr().to_string();
    let out = world.leech_dir(0).display().to_string();
    let mut get = Btvod::start(
        &cli_args("get", &torrent, &["--out", &out, "--peer", &peer]),
        world.root().join("get.log"),
    );
    let status = get
        .wait_exit(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", get.tail(), seed.report()));
    assert!(
        status.success(),
        "btvod get failed: {status}\n{}",
        get.tail()
    );
    world.assert_downloaded(0);
    seed.wait_status(Duration::from_secs(5), |s| {
        s.uploaded >= world.content.len() as u64
    })
    .unwrap_or_else(|e| panic!("the libtorrent seed did not send the content: {e}"));
}

#[test]
fn libtorrent_downloads_from_a_btvod_seed() {
    let world = MovieDir::new(5 * MIB + 777, 64 * 1024, 22);
    let rt = runtime();
    let seed = rt.block_on(world.seed(btvod_options(vec![])));
    let leech = libtorrent_leecher(&world, &seed, None);
    leech
        .wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", seed.stats()));
    leech
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    world.assert_downloaded(0);
    assert_seed_sent_all(&rt, seed, &world);
}

/// libtorrent's streaming mode (piece deadlines) CANCELs the requests it has queued at a peer
/// and, with BEP 6, counts each against the peer until the PIECE or a REJECT answers it. A seed
/// that dropped cancelled requests silently was never asked again (the leecher stalled after
/// the first piece); it now answers with REJECT.
#[test]
fn a_libtorrent_leecher_in_streaming_mode_downloads_from_a_rate_limited_btvod_seed() {
    let world = MovieDir::new(3 * MIB, 256 * 1024, 23);
    let rt = runtime();
    let mut opts = btvod_options(vec![]);
    // Slow enough that the leecher has requests queued when its deadlines are set.
    opts.torrent.upload_limit = 512 * 1024;
    let seed = rt.block_on(world.seed(opts));
    let leech = libtorrent_leecher(&world, &seed, Some(1.0));
    // 3 MiB at 512 KiB/s: about 6 s; a stalled leecher never completes.
    leech
        .wait_complete(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", seed.stats()));
    world.assert_downloaded(0);
    rt.block_on(seed.shutdown());
}

#[test]
fn btvod_downloads_from_a_transmission_seed_it_dials() {
    let world = MovieDir::new(3 * MIB + 5, 32 * 1024, 23);
    let torrent = world.torrent_path();
    // Transmission finds the complete file in its download dir and seeds it.
    let transmission = Transmission::start(&torrent, &world.seed_dir(), free_port());
    let rt = runtime();
    // Transmission accepts loopback peers only when they dial it.
    let leech = rt.block_on(world.leecher(0, btvod_options(vec![transmission.addr()])));
    let done = rt
        .block_on(leech.try_wait_stats(TRANSMISSION_BOUND, |s| s.complete))
        .unwrap_or_else(|e| panic!("btvod did not complete: {e}\n{}", transmission.report()));
    world.assert_downloaded(0);
    assert_eq!(done.hash_failures, 0);
    assert!(done.downloaded >= world.content.len() as u64);
    rt.block_on(leech.shutdown());
}

#[test]
fn transmission_downloads_from_a_btvod_cli_seed_that_dials_it() {
    let world = MovieDir::new(3 * MIB + 5, 32 * 1024, 24);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 32 * 1024, &[]);
    let transmission = Transmission::start(&torrent, &world.leech_dir(0), free_port());
    let content = world.content_path().display().to_string();
    let peer = transmission.addr().to_string();
    let mut seed = Btvod::start(
        &cli_args("seed", &torrent, &["--content", &content, "--peer", &peer]),
        world.root().join("seed.log"),
    );
    if let Err(e) = transmission.wait_complete(FILE_NAME, &world.content, TRANSMISSION_BOUND) {
        let exited = seed.child.try_wait().ok().flatten();
        panic!("{e}\nbtvod seed exit status: {exited:?}\n{}", seed.tail());
    }
    world.assert_downloaded(0);
}

/// Makes the torrent twice: once to learn the info-hash for opentracker's whitelist, once with
/// the tracker's URL (the info-hash does not cover the announce URL).
fn torrent_through_opentracker(world: &mut MovieDir) -> OpenTracker {
    let info_hash = world.meta.info_hash;
    let tracker = OpenTracker::start(&[info_hash.to_hex()]);
    world.retorrent(&[tracker.announce_url()]);
    assert_eq!(world.meta.info_hash, info_hash);
    tracker
}

/// Scrapes opentracker until it counts a seed for the torrent.
fn wait_seeds_on_tracker(tracker: &OpenTracker, meta: &Metainfo, bound: Duration) {
    use std::io::{Read, Write};
    let hash: String = meta
        .info_hash
        .0
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let request = format!("GET /scrape?info_hash={hash} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let deadline = Instant::now() + bound;
    let mut last = String::new();
    while Instant::now() < deadline {
        let addr = SocketAddr::from(([127, 0, 0, 1], tracker.port()));
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut reply = Vec::new();
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut reply);
            }
            last = String::from_utf8_lossy(&reply).into_owned();
            if last.contains("8:completei") && !last.contains("8:completei0e") {
                return;
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "opentracker counted no seed within {bound:?}; last scrape: {last:?}\n{}",
        tracker.report()
    );
}

#[test]
fn libtorrent_finds_a_btvod_seed_through_opentracker() {
    let mut world = MovieDir::new(4 * MIB, 64 * 1024, 25);
    let tracker = torrent_through_opentracker(&mut world);
    let torrent = world.torrent_path();
    let rt = runtime();
    let seed = rt.block_on(world.seed(btvod_options(vec![])));
    // The seed must be in opentracker's list before the leecher asks: peers already in a
    // swarm learn of a newcomer only when it dials them, and nobody re-announces for minutes.
    wait_seeds_on_tracker(&tracker, &world.meta, Duration::from_secs(20));
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(0),
        &LtOptions {
            exit_when_complete: true,
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}\n{}", seed.stats(), tracker.report()));
    world.assert_downloaded(0);
    assert_seed_sent_all(&rt, seed, &world);
}

#[test]
fn btvod_finds_a_libtorrent_seed_through_opentracker() {
    let mut world = MovieDir::new(4 * MIB, 64 * 1024, 26);
    let tracker = torrent_through_opentracker(&mut world);
    let torrent = world.torrent_path();
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir(), &LtOptions::seed());
    seed.wait_tracker_reply(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", tracker.report()));
    let rt = runtime();
    let leech = rt.block_on(world.leecher(0, btvod_options(vec![])));
    let done = rt
        .block_on(leech.try_wait_stats(LIBTORRENT_BOUND, |s| s.complete))
        .unwrap_or_else(|e| {
            panic!(
                "btvod did not complete: {e}\n{}\n{}",
                seed.report(),
                tracker.report()
            )
        });
    world.assert_downloaded(0);
    assert!(done.peers_seen >= 1);
    seed.wait_status(Duration::from_secs(5), |s| {
        s.uploaded >= world.content.len() as u64
    })
    .unwrap_or_else(|e| panic!("the libtorrent seed did not send the content: {e}"));
    rt.block_on(leech.shutdown());
}

/// A capped btvod seed, a btvod leecher and a libtorrent leecher: the two leechers must trade
/// (HAVE, interest, choking, requests both ways between btvod and libtorrent) to finish.
#[test]
fn btvod_and_libtorrent_leechers_trade_pieces() {
    const SEED_CAP: u64 = 256 * 1024;
    let world = MovieDir::new(4 * MIB, 64 * 1024, 27);
    let torrent = world.torrent_path();
    let rt = runtime();
    let seed_config = TorrentConfig {
        upload_limit: SEED_CAP,
        ..TorrentConfig::default()
    };
    let seed = rt.block_on(world.seed(options(7, vec![], seed_config)));
    let seed_addr = seed.addr();
    let btvod_dir = world.leech_dir(1);
    let leech =
        rt.block_on(world.leecher(1, options(8, vec![seed_addr], TorrentConfig::default())));
    let leech_addr = leech.addr();
    let lt = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(0),
        &LtOptions {
            connect: vec![seed_addr, leech_addr],
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    lt.wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod leecher: {:?}", leech.stats()));
    let done = rt
        .block_on(leech.try_wait_stats(Duration::from_secs(20), |s| s.complete))
        .unwrap_or_else(|e| panic!("the btvod leecher: {e}\n{}", lt.report()));
    world.assert_downloaded(0);
    let got = fs::read(btvod_dir.join(FILE_NAME)).expect("read btvod's copy");
    assert!(
        got == world.content,
        "btvod's copy differs from the content"
    );
    let lt_status = lt
        .wait_status(Duration::from_secs(5), |s| {
            s.have == world.content.len() as u64
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let len = world.content.len() as u64;
    eprintln!(
        "btvod leecher uploaded {} to libtorrent, which uploaded {} to it",
        done.uploaded, lt_status.uploaded
    );
    assert!(
        done.uploaded >= len / 8 && lt_status.uploaded >= len / 8,
        "the leechers did not trade: btvod sent {}, libtorrent sent {}",
        done.uploaded,
        lt_status.uploaded
    );
    rt.block_on(leech.shutdown());
    rt.block_on(seed.shutdown());
}
