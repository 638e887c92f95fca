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

use btvod::engine::session::{self, Content, Session, SessionOptions};
use btvod::engine::torrent::TorrentStats;
use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use common::external::{
    LibtorrentPeer, LtOptions, OpenTracker, Transmission, deterministic_content, free_port,
    make_torrent_with_libtorrent,
};
use tempfile::TempDir;
use tokio::runtime::Runtime;

const MIB: usize = 1024 * 1024;
const FILE_NAME: &str = "movie.bin";
/// Transmission asks for data only at its ~10 s pulse and takes a while to get going.
const TRANSMISSION_BOUND: Duration = Duration::from_secs(90);
const LIBTORRENT_BOUND: Duration = Duration::from_secs(60);

/// A seed directory with `FILE_NAME`, an empty download directory, and the content.
struct World {
    dir: TempDir,
    content: Vec<u8>,
}

impl World {
    fn new(len: usize, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("seed")).expect("seed dir");
        fs::create_dir_all(dir.path().join("leech")).expect("leech dir");
        let content = deterministic_content(len, seed);
        fs::write(dir.path().join("seed").join(FILE_NAME), &content).expect("write content");
        Self { dir, content }
    }
    fn seed_dir(&self) -> PathBuf {
        self.dir.path().join("seed")
    }
    fn leech_dir(&self) -> PathBuf {
        self.dir.path().join("leech")
    }
    fn content_path(&self) -> PathBuf {
        self.seed_dir().join(FILE_NAME)
    }
    /// A torrent of the content made by btvod, written next to it.
    fn btvod_torrent(&self, piece_len: u32, announce: &[String]) -> (PathBuf, Metainfo) {
        let opts = MakeTorrentOptions {
            path: self.content_path(),
            piece_length: Some(piece_len),
            announce: announce.to_vec(),
            ..MakeTorrentOptions::default()
        };
        let bytes = make_torrent(&opts, &mut |_, _| {}).expect("btvod makes a torrent");
        let path = self.dir.path().join("btvod.torrent");
        fs::write(&path, &bytes).expect("write the torrent");
        (
            path,
            Metainfo::from_bytes(&bytes).expect("parse our torrent"),
        )
    }
    fn assert_downloaded(&self) {
        let got = fs::read(self.leech_dir().join(FILE_NAME)).expect("read the downloaded file");
        assert_eq!(got.len(), self.content.len(), "downloaded length");
        let first = got.iter().zip(&self.content).position(|(a, b)| a != b);
        assert_eq!(first, None, "first byte that differs from the seed's");
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn loopback_options(peers: Vec<SocketAddr>) -> SessionOptions {
    SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        peers,
        seed: 7,
        ..SessionOptions::default()
    }
}

fn stats(s: &Session) -> TorrentStats {
    s.torrent.stats.borrow().clone()
}

/// Runs the engine's wait for `pred` on the runtime, bounded by `bound`.
fn wait_stats(
    rt: &Runtime,
    s: &Session,
    bound: Duration,
    pred: impl Fn(&TorrentStats) -> bool,
) -> Result<TorrentStats, String> {
    let mut rx = s.torrent.stats.clone();
    rt.block_on(async {
        match tokio::time::timeout(bound, rx.wait_for(|st| pred(st))).await {
            Ok(Ok(st)) => Ok(st.clone()),
            _ => Err(format!("not within {bound:?}: {:?}", stats(s))),
        }
    })
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
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

#[test]
fn btvod_cli_downloads_from_a_libtorrent_seed() {
    let world = World::new(5 * MIB + 777, 21);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 64 * 1024, &[]);
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir(), &LtOptions::seed());
    let peer = seed.addr().to_string();
    let out = world.leech_dir().display().to_string();
    let mut get = Btvod::start(
        &cli_args("get", &torrent, &["--out", &out, "--peer", &peer]),
        world.dir.path().join("get.log"),
    );
    let status = get
        .wait_exit(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", get.tail(), seed.report()));
    assert!(
        status.success(),
        "btvod get failed: {status}\n{}",
        get.tail()
    );
    world.assert_downloaded();
    seed.wait_status(Duration::from_secs(5), |s| {
        s.uploaded >= world.content.len() as u64
    })
    .unwrap_or_else(|e| panic!("the libtorrent seed did not send the content: {e}"));
}

#[test]
fn libtorrent_downloads_from_a_btvod_seed() {
    let world = World::new(5 * MIB + 777, 22);
    let (torrent, meta) = world.btvod_torrent(64 * 1024, &[]);
    let rt = runtime();
    let seed = rt
        .block_on(session::start(
            &meta,
            Content::Existing(world.content_path()),
            loopback_options(vec![]),
            |_, _| {},
        ))
        .expect("start the btvod seed");
    let addr = seed.torrent.listen_addr.expect("seed listens");
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(),
        &LtOptions {
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            ..LtOptions::download_from(addr)
        },
    );
    leech
        .wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", stats(&seed)));
    leech
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    world.assert_downloaded();
    let len = world.content.len() as u64;
    wait_stats(&rt, &seed, Duration::from_secs(5), |s| s.uploaded >= len)
        .unwrap_or_else(|e| panic!("the btvod seed's upload count: {e}"));
    rt.block_on(seed.shutdown());
}

/// libtorrent's streaming mode (piece deadlines) CANCELs the requests it has queued at a peer
/// and, with BEP 6, counts each against the peer until the PIECE or a REJECT answers it. A seed
/// that dropped cancelled requests silently was never asked again (the leecher stalled after
/// the first piece); it now answers with REJECT.
#[test]
fn a_libtorrent_leecher_in_streaming_mode_downloads_from_a_rate_limited_btvod_seed() {
    let world = World::new(3 * MIB, 23);
    let (torrent, meta) = world.btvod_torrent(256 * 1024, &[]);
    let rt = runtime();
    let mut options = loopback_options(vec![]);
    // Slow enough that the leecher has requests queued when its deadlines are set.
    options.torrent.upload_limit = 512 * 1024;
    let seed = rt
        .block_on(session::start(
            &meta,
            Content::Existing(world.content_path()),
            options,
            |_, _| {},
        ))
        .expect("start the btvod seed");
    let addr = seed.torrent.listen_addr.expect("seed listens");
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(),
        &LtOptions {
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            deadlines_after: Some(1.0),
            ..LtOptions::download_from(addr)
        },
    );
    // 3 MiB at 512 KiB/s: about 6 s; a stalled leecher never completes.
    leech
        .wait_complete(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", stats(&seed)));
    world.assert_downloaded();
    rt.block_on(seed.shutdown());
}

#[test]
fn btvod_downloads_from_a_transmission_seed_it_dials() {
    let world = World::new(3 * MIB + 5, 23);
    let (torrent, meta) = world.btvod_torrent(32 * 1024, &[]);
    // Transmission finds the complete file in its download dir and seeds it.
    let transmission = Transmission::start(&torrent, &world.seed_dir(), free_port());
    let rt = runtime();
    // Transmission accepts loopback peers only when they dial it.
    let leech = rt
        .block_on(session::start(
            &meta,
            Content::DownloadDir(world.leech_dir()),
            loopback_options(vec![transmission.addr()]),
            |_, _| {},
        ))
        .expect("start the btvod leecher");
    let done = wait_stats(&rt, &leech, TRANSMISSION_BOUND, |s| s.complete)
        .unwrap_or_else(|e| panic!("btvod did not complete: {e}\n{}", transmission.report()));
    world.assert_downloaded();
    assert_eq!(done.hash_failures, 0);
    assert!(done.downloaded >= world.content.len() as u64);
    rt.block_on(leech.shutdown());
}

#[test]
fn transmission_downloads_from_a_btvod_cli_seed_that_dials_it() {
    let world = World::new(3 * MIB + 5, 24);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 32 * 1024, &[]);
    let transmission = Transmission::start(&torrent, &world.leech_dir(), free_port());
    let content = world.content_path().display().to_string();
    let peer = transmission.addr().to_string();
    let mut seed = Btvod::start(
        &cli_args("seed", &torrent, &["--content", &content, "--peer", &peer]),
        world.dir.path().join("seed.log"),
    );
    if let Err(e) = transmission.wait_complete(FILE_NAME, &world.content, TRANSMISSION_BOUND) {
        let exited = seed.child.try_wait().ok().flatten();
        panic!("{e}\nbtvod seed exit status: {exited:?}\n{}", seed.tail());
    }
    world.assert_downloaded();
}

/// Makes the torrent twice: once to learn the info-hash for opentracker's whitelist, once with
/// the tracker's URL (the info-hash does not cover the announce URL).
fn torrent_through_opentracker(world: &World) -> (OpenTracker, PathBuf, Metainfo) {
    let (_, meta) = world.btvod_torrent(64 * 1024, &[]);
    let tracker = OpenTracker::start(&[meta.info_hash.to_hex()]);
    let (torrent, announced) = world.btvod_torrent(64 * 1024, &[tracker.announce_url()]);
    assert_eq!(announced.info_hash, meta.info_hash);
    (tracker, torrent, announced)
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
    let world = World::new(4 * MIB, 25);
    let (tracker, torrent, meta) = torrent_through_opentracker(&world);
    let rt = runtime();
    let seed = rt
        .block_on(session::start(
            &meta,
            Content::Existing(world.content_path()),
            loopback_options(vec![]),
            |_, _| {},
        ))
        .expect("start the btvod seed");
    // The seed must be in opentracker's list before the leecher asks: peers already in a
    // swarm learn of a newcomer only when it dials them, and nobody re-announces for minutes.
    wait_seeds_on_tracker(&tracker, &meta, Duration::from_secs(20));
    let leech = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(),
        &LtOptions {
            exit_when_complete: true,
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}\n{}", stats(&seed), tracker.report()));
    world.assert_downloaded();
    let len = world.content.len() as u64;
    wait_stats(&rt, &seed, Duration::from_secs(5), |s| s.uploaded >= len)
        .unwrap_or_else(|e| panic!("the btvod seed's upload count: {e}"));
    rt.block_on(seed.shutdown());
}

#[test]
fn btvod_finds_a_libtorrent_seed_through_opentracker() {
    let world = World::new(4 * MIB, 26);
    let (tracker, torrent, meta) = torrent_through_opentracker(&world);
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir(), &LtOptions::seed());
    seed.wait_tracker_reply(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", tracker.report()));
    let rt = runtime();
    let leech = rt
        .block_on(session::start(
            &meta,
            Content::DownloadDir(world.leech_dir()),
            loopback_options(vec![]),
            |_, _| {},
        ))
        .expect("start the btvod leecher");
    let done = wait_stats(&rt, &leech, LIBTORRENT_BOUND, |s| s.complete).unwrap_or_else(|e| {
        panic!(
            "btvod did not complete: {e}\n{}\n{}",
            seed.report(),
            tracker.report()
        )
    });
    world.assert_downloaded();
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
    let world = World::new(4 * MIB, 27);
    let (torrent, meta) = world.btvod_torrent(64 * 1024, &[]);
    let rt = runtime();
    let mut seed_options = loopback_options(vec![]);
    seed_options.torrent.upload_limit = SEED_CAP;
    let seed = rt
        .block_on(session::start(
            &meta,
            Content::Existing(world.content_path()),
            seed_options,
            |_, _| {},
        ))
        .expect("start the btvod seed");
    let seed_addr = seed.torrent.listen_addr.expect("seed listens");
    let btvod_dir = world.dir.path().join("btvod-leech");
    let mut leech_options = loopback_options(vec![seed_addr]);
    leech_options.seed = 8;
    let leech = rt
        .block_on(session::start(
            &meta,
            Content::DownloadDir(btvod_dir.clone()),
            leech_options,
            |_, _| {},
        ))
        .expect("start the btvod leecher");
    let leech_addr = leech.torrent.listen_addr.expect("leecher listens");
    let lt = LibtorrentPeer::start(
        &torrent,
        &world.leech_dir(),
        &LtOptions {
            connect: vec![seed_addr, leech_addr],
            max_seconds: Some(LIBTORRENT_BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    lt.wait_complete(LIBTORRENT_BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod leecher: {:?}", stats(&leech)));
    let done = wait_stats(&rt, &leech, Duration::from_secs(20), |s| s.complete)
        .unwrap_or_else(|e| panic!("the btvod leecher: {e}\n{}", lt.report()));
    world.assert_downloaded();
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
