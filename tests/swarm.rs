//! Loopback swarms of btvod peers, in-process: each peer is a `session::start` on 127.0.0.1:0,
//! and the built-in tracker introduces them where a test needs one. Every test checks the
//! downloaded bytes against the seed's and bounds its own time.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::session::Session;
use btvod::engine::torrent::TorrentConfig;
use btvod::proto::metainfo::Metainfo;
use btvod::proto::wire::{Handshake, Message};
use btvod::proto::{InfoHash, PeerId};
use bytes::BytesMut;
use common::content::{deterministic_content, free_port};
use common::loopback::{Answers, empty_interested_opening};
use common::movie_dir::{MovieDir, assert_same_file, torrent_of};
use common::session::{
    KIB, SessionExt, limits, options, plaintext, shutdown_all, start_leecher, start_seed,
    start_tracker,
};
use tokio::time::{Instant, sleep, timeout};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_one_leecher_gets_an_identical_copy() {
    let world = MovieDir::new(3 * MIB + 12_345, 64 * 1024, 1);
    let seed = world.seed(options(1, vec![], limits(0, 0))).await;
    let leech = world
        .leecher(0, options(2, vec![seed.addr()], limits(0, 0)))
        .await;
    world
        .assert_completes(&leech, 0, Duration::from_secs(30), "the leecher")
        .await;
    let len = world.content.len() as u64;
    let got = leech.stats();
    assert_eq!(got.bytes_left, 0);
    assert_eq!(got.hash_failures, 0);
    assert!(
        got.downloaded >= len && got.downloaded - got.waste.total() <= len,
        "downloaded {} (wasted {}) for {len} bytes of content",
        got.downloaded,
        got.waste.total()
    );
    // The seed's counter is published on its tick: poll for it.
    seed.wait_stats(Duration::from_secs(5), "seed upload count", |s| {
        s.uploaded >= len
    })
    .await;
    shutdown_all([leech, seed]).await;
}

/// One seed too slow to serve eight leechers alone within the bound: they can only finish in
/// time by trading pieces among themselves, which they find through the tracker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_leechers_finish_by_trading_among_themselves() {
    const LEECHERS: usize = 8;
    const SEED_KIB_S: u64 = 384;
    const BOUND: Duration = Duration::from_secs(50);
    let len = 8 * MIB;
    // Serving eight copies alone would take 8 * 8 MiB / 384 KiB/s = 170 s, 3.4 times the bound.
    let alone = (LEECHERS * len) as f64 / (SEED_KIB_S * KIB) as f64;
    assert!(alone > 3.0 * BOUND.as_secs_f64());

    let tracker = start_tracker().await;
    let world = MovieDir::announcing(len, 128 * 1024, 8, std::slice::from_ref(&tracker.url));
    let seed = world
        .seed(options(100, vec![], limits(SEED_KIB_S, 0)))
        .await;
    let started = Instant::now();
    let mut leechers = Vec::new();
    for i in 0..LEECHERS {
        leechers.push(
            world
                .leecher(i, options(i as u64, vec![], limits(0, 0)))
                .await,
        );
    }
    for (i, leech) in leechers.iter().enumerate() {
        let left = BOUND.saturating_sub(started.elapsed());
        leech.wait_complete(left, &format!("leecher {i}")).await;
    }
    let took = started.elapsed();
    for i in 0..LEECHERS {
        world.assert_downloaded(i);
    }
    let seed_up = seed.stats().uploaded;
    let leech_up: u64 = leechers.iter().map(|l| l.stats().uploaded).sum();
    let leech_down: u64 = leechers.iter().map(|l| l.stats().downloaded).sum();
    let leech_wasted: u64 = leechers.iter().map(|l| l.stats().waste.total()).sum();
    eprintln!(
        "8 leechers done in {took:?}: seed uploaded {seed_up}, leechers uploaded {leech_up}, downloaded {leech_down}, wasted {leech_wasted}"
    );
    assert!(
        leech_up > seed_up && leech_up > 3 * len as u64,
        "leechers uploaded {leech_up} bytes to each other, the seed {seed_up}: they did not trade"
    );
    for l in leechers {
        l.shutdown().await;
    }
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_file_torrent_with_an_empty_file_arrives_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let top = dir.path().join("seed/album");
    fs::create_dir_all(top.join("disc 2")).expect("content dirs");
    // Lengths chosen so that pieces of 32 KiB straddle every boundary, and one file fits inside
    // a single piece with neighbours on both sides.
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("01 intro.bin", deterministic_content(100_000, 11)),
        ("02 empty.txt", Vec::new()),
        ("03 tiny.bin", deterministic_content(7, 12)),
        ("disc 2/04 long.bin", deterministic_content(300_001, 13)),
        ("disc 2/05 tail.bin", deterministic_content(40_000, 14)),
    ];
    for (name, data) in &files {
        fs::write(top.join(name), data).expect("write a content file");
    }
    let meta = torrent_of(&top, 32 * 1024, &[]);
    assert_eq!(
        meta.files.len(),
        files.len(),
        "every file is in the torrent"
    );
    let seed = start_seed(&meta, &top, options(1, vec![], limits(0, 0))).await;
    let out = dir.path().join("leech");
    let leech = start_leecher(&meta, &out, options(2, vec![seed.addr()], limits(0, 0))).await;
    leech
        .wait_complete(Duration::from_secs(30), "the leecher")
        .await;
    for (name, data) in &files {
        assert_same_file(&out.join("album").join(name), data);
    }
    shutdown_all([leech, seed]).await;
}

/// Two seeds; one goes away while the leecher has requests out to it. The leecher finishes
/// from the other, and nothing it kept from the dead one is corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_vanishing_mid_transfer_does_not_stop_the_download() {
    let world = MovieDir::new(6 * MIB, 256 * 1024, 3);
    // Capped so the transfer lasts long enough to cut one seed off in the middle of it.
    let a = world.seed(options(10, vec![], limits(1024, 0))).await;
    let b = world.seed(options(11, vec![], limits(1024, 0))).await;
    let leech = world
        .leecher(0, options(12, vec![a.addr(), b.addr()], limits(0, 0)))
        .await;
    a.wait_stats(Duration::from_secs(20), "seed A uploading 1 MiB", |s| {
        s.uploaded >= MIB as u64
    })
    .await;
    let a_uploaded = a.stats().uploaded;
    a.shutdown().await;
    let at_cut = leech.stats();
    assert!(
        !at_cut.complete && at_cut.pieces_have > 0,
        "the cut must come mid-transfer: {at_cut:?}"
    );
    // Once the leecher has dropped A, all A sent has arrived (A kept sending what was asked
    // of it until its shutdown, so its own count read before it is short).
    let noticed = leech
        .wait_stats(Duration::from_secs(5), "the leecher noticing", |s| {
            s.peers == 1
        })
        .await;
    world
        .assert_completes(&leech, 0, Duration::from_secs(30), "the leecher")
        .await;
    let done = leech.stats();
    assert_eq!(done.hash_failures, 0);
    let len = world.content.len() as u64;
    b.wait_stats(Duration::from_secs(5), "seed B's upload count", |s| {
        s.uploaded + noticed.downloaded >= len
    })
    .await;
    eprintln!(
        "seed A sent {a_uploaded} before it went, seed B {}",
        b.stats().uploaded
    );
    shutdown_all([leech, b]).await;
}

/// Measures the leecher's download rate over a window after a warm-up, and checks it is
/// within 10% of `cap` bytes/s.
async fn assert_rate_holds(leech: &Session, cap: u64, what: &str) {
    const WARM_UP: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(6);
    leech
        .wait_stats(Duration::from_secs(10), "first data", |s| s.downloaded > 0)
        .await;
    sleep(WARM_UP).await;
    let (t0, d0) = (Instant::now(), leech.stats().downloaded);
    sleep(WINDOW).await;
    let (t1, d1) = (Instant::now(), leech.stats().downloaded);
    assert!(
        !leech.stats().complete,
        "the window must end before the download does"
    );
    let rate = (d1 - d0) as f64 / (t1 - t0).as_secs_f64();
    let (rate_kib, cap_kib) = (rate / KIB as f64, cap / KIB);
    eprintln!("{what}: {rate_kib:.1} KiB/s (cap {cap_kib})");
    let off = (rate - cap as f64).abs() / cap as f64;
    assert!(
        off <= 0.10,
        "{what}: measured {rate_kib:.1} KiB/s, {:.1}% away from the {cap_kib} KiB/s cap",
        off * 100.0
    );
}

/// A seed capped at 512 KiB/s delivers within 10% of that, measured at the leecher over a
/// window that starts after a warm-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_upload_cap_holds_within_ten_percent() {
    let world = MovieDir::new(7 * MIB, 64 * 1024, 4);
    let seed = world.seed(options(1, vec![], limits(512, 0))).await;
    let leech = world
        .leecher(0, options(2, vec![seed.addr()], limits(0, 0)))
        .await;
    assert_rate_holds(&leech, 512 * KIB, "upload-capped seed").await;
    world
        .assert_completes(&leech, 0, Duration::from_secs(20), "the leecher")
        .await;
    shutdown_all([leech, seed]).await;
}

/// The same for a leecher's download cap, with two unlimited seeds feeding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leecher_download_cap_holds_within_ten_percent() {
    let world = MovieDir::new(7 * MIB, 64 * 1024, 10);
    let a = world.seed(options(1, vec![], limits(0, 0))).await;
    let b = world.seed(options(2, vec![], limits(0, 0))).await;
    let leech = world
        .leecher(0, options(3, vec![a.addr(), b.addr()], limits(0, 512)))
        .await;
    assert_rate_holds(&leech, 512 * KIB, "download-capped leecher").await;
    world
        .assert_completes(&leech, 0, Duration::from_secs(20), "the leecher")
        .await;
    shutdown_all([leech, a, b]).await;
}

/// A leecher stopped halfway resumes from what it wrote: the second run downloads only what
/// was missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leecher_downloads_only_the_remainder() {
    let world = MovieDir::new(4 * MIB, 64 * 1024, 5);
    let total = world.meta.geometry.piece_count();
    let seed = world.seed(options(1, vec![], limits(1024, 0))).await;
    let first = world
        .leecher(0, options(2, vec![seed.addr()], limits(0, 0)))
        .await;
    first
        .wait_stats(Duration::from_secs(20), "half the pieces", |s| {
            s.pieces_have >= total / 2
        })
        .await;
    let had = first.stats().pieces_have;
    first.shutdown().await;
    assert!(had < total, "stopped before the end");

    let second = world
        .leecher(0, options(3, vec![seed.addr()], limits(0, 0)))
        .await;
    let resumed = second.stats();
    assert!(
        resumed.pieces_have >= had,
        "the recheck found {} pieces, the first run had verified {had}",
        resumed.pieces_have
    );
    let remainder = resumed.bytes_left;
    assert!(remainder > 0 && remainder < world.content.len() as u64);
    world
        .assert_completes(&second, 0, Duration::from_secs(30), "the restarted leecher")
        .await;
    let got = second.stats();
    assert!(
        got.downloaded >= remainder && got.downloaded <= remainder + 8 * 16 * KIB,
        "the second run downloaded {} bytes for a remainder of {remainder}",
        got.downloaded
    );
    shutdown_all([second, seed]).await;
}

/// Two peers that dial each other at the same moment end up with two connections; each side
/// must drop the same one, or both drop "the other" and the pair is left with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_dialling_each_other_at_once_keep_one_connection() {
    const PAIRS: usize = 6;
    let world = MovieDir::new(512 * 1024, 32 * 1024, 6);
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let seed = world
            .seed(options(200 + i as u64, vec![], limits(0, 0)))
            .await;
        let leech = world
            .leecher(i, options(300 + i as u64, vec![], limits(0, 0)))
            .await;
        pairs.push((seed, leech));
    }
    for (seed, leech) in &pairs {
        seed.torrent.add_peers(vec![leech.addr()]);
        leech.torrent.add_peers(vec![seed.addr()]);
    }
    for (i, (seed, leech)) in pairs.iter().enumerate() {
        world
            .assert_completes(leech, i, Duration::from_secs(20), &format!("leecher {i}"))
            .await;
        // Exactly one connection survives on both sides.
        seed.wait_stats(
            Duration::from_secs(5),
            "the seed settling on one connection",
            |s| s.peers == 1,
        )
        .await;
        assert_eq!(leech.stats().peers, 1, "leecher {i} kept one connection");
    }
    for (seed, leech) in pairs {
        shutdown_all([leech, seed]).await;
    }
}

/// A peer that completes the handshake, claims every piece, unchokes, and then never answers a
/// request. Runs until the test's runtime ends.
async fn start_black_hole(meta: &Metainfo) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the black hole");
    let addr = listener.local_addr().expect("black hole address");
    let info_hash = meta.info_hash;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut theirs = [0u8; 68];
                if stream.read_exact(&mut theirs).await.is_err() {
                    return;
                }
                let mut out = BytesMut::new();
                Handshake::ours(info_hash, PeerId(*b"-XX0000-blackhole!!!")).encode(&mut out);
                Message::HaveAll.encode(&mut out);
                Message::Unchoke.encode(&mut out);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// Requests a peer never answers are asked again of a peer that does (by timeout, or by the
/// endgame when every block is requested): a silent peer cannot stall the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_requests_does_not_stall_the_download() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 7);
    let hole = start_black_hole(&world.meta).await;
    let seed = world.seed(options(1, vec![], limits(0, 0))).await;
    let config = TorrentConfig {
        request_timeout: Duration::from_secs(2),
        ..plaintext()
    };
    // The silent peer first, so that it is sure to be given requests.
    let leech = world.leecher(0, options(2, vec![hole], config)).await;
    leech
        .wait_stats(
            Duration::from_secs(5),
            "connecting to the silent peer",
            |s| s.peers == 1,
        )
        .await;
    leech.torrent.add_peers(vec![seed.addr()]);
    world
        .assert_completes(&leech, 0, Duration::from_secs(15), "the leecher")
        .await;
    assert_eq!(leech.stats().peers, 2, "the silent peer is slow, not gone");
    shutdown_all([leech, seed]).await;
}

/// Connections that fail, are refused as duplicates, or end normally all give back their place
/// under `max_peers`: after a churn of them a seed capped at two peers still takes a newcomer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_does_not_use_up_the_peer_cap() {
    use tokio::io::AsyncWriteExt;
    let world = MovieDir::new(256 * 1024, 32 * 1024, 8);
    let seed_config = TorrentConfig {
        max_peers: 2,
        ..TorrentConfig::default()
    };
    let seed = world.seed(options(1, vec![], seed_config)).await;
    let seed_addr = seed.addr();
    // Handshakes that fail: garbage, and a peer of another torrent.
    for i in 0..4u8 {
        let mut s = tokio::net::TcpStream::connect(seed_addr)
            .await
            .expect("connect");
        let mut junk = BytesMut::new();
        if i % 2 == 0 {
            junk.extend_from_slice(&[i; 68]);
        } else {
            Handshake::ours(InfoHash([i; 20]), PeerId([i; 20])).encode(&mut junk);
        }
        let _ = s.write_all(&junk).await;
        drop(s);
    }
    // Leechers that finish and leave, each also dialled back by the seed (a duplicate).
    for i in 0..3 {
        let leech = world
            .leecher(i, options(10 + i as u64, vec![seed_addr], limits(0, 0)))
            .await;
        seed.torrent.add_peers(vec![leech.addr()]);
        leech
            .wait_complete(Duration::from_secs(10), &format!("leecher {i}"))
            .await;
        leech.shutdown().await;
    }
    seed.wait_stats(
        Duration::from_secs(5),
        "the seed seeing everyone leave",
        |s| s.peers == 0,
    )
    .await;
    let last = world
        .leecher(9, options(99, vec![seed_addr], limits(0, 0)))
        .await;
    world
        .assert_completes(&last, 9, Duration::from_secs(10), "the last leecher")
        .await;
    shutdown_all([last, seed]).await;
}

/// A BEP 6 peer that asks a slow seed for more blocks than it queues is told REJECT for the
/// excess instead of being left to time out, and every block it does get is the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_rejects_requests_beyond_its_queue_to_a_fast_peer() {
    use btvod::proto::wire::{BlockSpec, WireDecoder};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ASKED: u32 = 700;
    let world = MovieDir::new(ASKED as usize * 16 * 1024, 256 * 1024, 9);
    let seed = world.seed(options(1, vec![], limits(128, 0))).await;
    let mut s = tokio::net::TcpStream::connect(seed.addr())
        .await
        .expect("connect");
    let opening = empty_interested_opening(world.meta.info_hash, PeerId(*b"-XX0000-rawfastpeer!"));
    s.write_all(&opening).await.expect("send handshake");
    let mut buf = BytesMut::new();
    let mut decoder = WireDecoder::for_piece_count(world.meta.geometry.piece_count());
    let mut handshake_done = false;
    let (mut answers, mut asked) = (Answers::default(), false);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = timeout(deadline - Instant::now(), s.read_buf(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{answers:?} of {ASKED} by the deadline"))
            .expect("read from the seed");
        assert!(n > 0, "the seed closed the connection");
        if !handshake_done {
            match Handshake::decode(&mut buf).expect("the seed's handshake") {
                Some(h) => assert!(h.supports_fast(), "btvod advertises BEP 6"),
                None => continue,
            }
            handshake_done = true;
        }
        while let Some(message) = decoder.decode(&mut buf).expect("a valid frame") {
            match message {
                Message::Unchoke if !asked => {
                    let mut out = BytesMut::new();
                    for i in 0..ASKED {
                        let spec = BlockSpec {
                            piece: i / 16,
                            offset: (i % 16) * 16 * 1024,
                            len: 16 * 1024,
                        };
                        Message::Request(spec).encode(&mut out);
                    }
                    s.write_all(&out).await.expect("send requests");
                    asked = true;
                }
                other => answers.count(&other, &world),
            }
        }
        // A handful of served blocks is proof enough; the rest would take a minute at 128 KiB/s.
        // The seed queues 512 and sends one: about 187 are over (fewer as the queue drains).
        if answers.served >= 8 && answers.rejected >= 150 {
            break;
        }
    }
    assert!(
        (150..=ASKED - 513).contains(&answers.rejected),
        "{} of {ASKED} requests rejected; the seed queues 512 (+1 being sent)",
        answers.rejected
    );
    seed.shutdown().await;
}

/// A peer that is not listening yet when we first dial it (or that drops us while it is still
/// loading the torrent) is dialled again with back-off, not forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refused_the_first_dial_is_dialled_again() {
    let world = MovieDir::new(MIB + 3, 64 * 1024, 31);
    // Reserve a port, then free it: the first dial meets a refused connection.
    let seed_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let leech = world
        .leecher(0, options(32, vec![seed_addr], limits(0, 0)))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leech.stats().peers, 0, "nobody listens yet");
    let mut seed_opts = options(33, vec![], limits(0, 0));
    seed_opts.listen = seed_addr;
    let seed = world.seed(seed_opts).await;
    // Back-off after one failure is 1 s, checked on the 1 s tick.
    world
        .assert_completes(&leech, 0, Duration::from_secs(20), "the leecher")
        .await;
    shutdown_all([leech, seed]).await;
}
