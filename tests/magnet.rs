//! Magnet links against libtorrent on 127.0.0.1, both ways: `btvod get MAGNET` fetches the
//! metadata (BEP 9 over BEP 10) from a libtorrent seed the link names or opentracker lists, and
//! libtorrent given only a magnet gets metadata and content from a btvod seed. Then hostile
//! metadata peers against the fetch itself.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::metadata_fetch::{FetchError, FetchProgress, FetchSetup, fetch};
use btvod::engine::peer::mse::EncryptionPolicy;
use btvod::engine::torrent::TorrentConfig;
use btvod::proto::PeerId;
use btvod::proto::extension::metadata::{MetadataMessage, piece_count, piece_of};
use btvod::proto::extension::{ExtendedHandshake, HANDSHAKE_ID, OUR_UT_METADATA_ID};
use btvod::proto::metainfo::Metainfo;
use btvod::proto::wire::Message;
use common::cli::{assert_exits_ok, btvod, btvod_get, magnet_link, seed_behind_opentracker};
use common::external::{LibtorrentPeer, LtOptions, make_torrent_with_libtorrent};
use common::movie_dir::MovieDir;
use common::raw_peer::{RawPeer, Read};
use common::session::{options, runtime};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn magnet_of(meta: &Metainfo, hints: &[(&str, &str)]) -> String {
    let mut all = vec![("dn", "movie")];
    all.extend_from_slice(hints);
    magnet_link(meta.info_hash, &all)
}

#[test]
fn btvod_gets_a_magnet_from_the_libtorrent_seed_it_names_and_keeps_the_metadata() {
    let world = MovieDir::new(14 * MIB + 333, 16 * 1024, 41);
    // Enough pieces that the metadata spans several 16 KiB messages.
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 16 * 1024, &[]);
    let meta = Metainfo::load(&torrent).unwrap();
    assert!(
        meta.raw_info().len() > 16 * 1024,
        "the test wants a multi-piece dictionary"
    );
    let seed = LibtorrentPeer::start(&torrent, &world.seed_dir(), &LtOptions::seed());
    let out = world.leech_dir(0);
    let link = magnet_of(&meta, &[("x.pe", &seed.addr().to_string())]);
    let get = btvod_get(&link, &out, &[]);
    assert_exits_ok(&get, BOUND, "btvod get MAGNET", &seed.report());
    world.assert_downloaded(0);
    let saved = out.join(format!("{}.torrent", meta.info_hash));
    let kept = Metainfo::load(&saved).expect("the fetched metadata is saved as a torrent");
    assert_eq!(kept.info_hash, meta.info_hash);
    assert_eq!(kept.raw_info(), meta.raw_info());

    // With the seed gone, a second run can only work from the saved file.
    seed.stop();
    let again = btvod_get(&link, &out, &[]);
    assert_exits_ok(&again, BOUND, "btvod get MAGNET again", "");
    assert!(
        again
            .report()
            .contains("using the metadata fetched earlier"),
        "{}",
        again.report()
    );
}

/// A VoD run started from a magnet: the deadlines start once the metadata is known, and the
/// report says how long fetching it took (absent when the saved `.torrent` is used).
#[test]
fn a_vod_run_from_a_magnet_reports_how_long_the_metadata_took() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 43);
    let seed = LibtorrentPeer::start(&world.torrent_path(), &world.seed_dir(), &LtOptions::seed());
    let out = world.leech_dir(0);
    std::fs::create_dir_all(&out).unwrap();
    let link = magnet_of(&world.meta, &[("x.pe", &seed.addr().to_string())]);
    let server = format!("file:{}", world.content_path().display());
    let run = |name: &str| {
        let report = out.join(name);
        let play = btvod(
            &[
                "--rate",
                "4MiB",
                "--delay",
                "2",
                "--prefetch",
                "1",
                "--server",
                &server,
                "--report",
                &report.display().to_string(),
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dht",
                &link,
            ],
            &out,
        );
        assert_exits_ok(&play, BOUND, "btvod --rate ... MAGNET", &seed.report());
        let text = std::fs::read_to_string(&report).expect("the report is written");
        (
            play,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (play, first) = run("first.json");
    let took = first["metadata_fetch_s"].as_f64().unwrap_or_else(|| {
        panic!(
            "no metadata_fetch_s in the report: {first}\n{}",
            play.report()
        )
    });
    assert!(took > 0.0 && took < BOUND.as_secs_f64(), "{took}");
    assert!(
        play.report().contains("metadata    fetched in"),
        "{}",
        play.report()
    );
    assert_eq!(first["movie_bytes"].as_u64(), Some(2 * MIB as u64));

    let (_, second) = run("second.json");
    assert!(
        second.get("metadata_fetch_s").is_none(),
        "the saved metadata was not fetched again: {second}"
    );
}

#[test]
fn btvod_gets_a_magnet_whose_only_hint_is_opentracker() {
    let mut world = MovieDir::new(2 * MIB, 64 * 1024, 42);
    let (tracker, _seed) = seed_behind_opentracker(&mut world);
    let out = world.leech_dir(0);
    let link = magnet_of(&world.meta, &[("tr", &tracker.announce_url())]);
    let get = btvod_get(&link, &out, &[]);
    assert_exits_ok(&get, BOUND, "btvod get MAGNET (tr only)", &tracker.report());
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_given_only_a_magnet_gets_metadata_and_content_from_a_btvod_seed() {
    // Over 820 pieces: the dictionary is served in two 16 KiB messages.
    let world = MovieDir::new(14 * MIB, 16 * 1024, 43);
    let rt = runtime();
    let seed = rt.block_on(world.seed(options(7, vec![], TorrentConfig::default())));
    let addr = seed.torrent.listen_addr.expect("the seed listens");
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            magnet: Some(magnet_of(&world.meta, &[("x.pe", &addr.to_string())])),
            exit_when_complete: true,
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_metadata(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", seed.torrent.stats.borrow()));
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", seed.torrent.stats.borrow()));
    world.assert_downloaded(0);
    rt.block_on(seed.shutdown());
}

/// A metadata peer that answers every request from `info` (which may be wrong) and offers
/// `size`; it serves as many connections as come.
async fn fake_metadata_peer(meta: Metainfo, size: u32, info: Vec<u8>) -> SocketAddr {
    fake_metadata_peer_closing_first(meta, size, info, 0).await
}

/// The same, closing its first `refused` connections at once (a client still starting).
async fn fake_metadata_peer_closing_first(
    meta: Metainfo,
    size: u32,
    info: Vec<u8>,
    mut refused: usize,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if refused > 0 {
                refused -= 1;
                drop(stream);
                continue;
            }
            let (meta, info) = (meta.clone(), info.clone());
            tokio::spawn(async move {
                let mut peer = RawPeer::wrap(stream, meta.geometry.piece_count());
                if peer.handshake(Duration::from_secs(5)).await.is_none() {
                    return;
                }
                let mut ours = common::raw_peer::handshake_bytes(meta.info_hash, [9; 20], true);
                ours[25] |= 0x10; // BEP 10
                peer.send_raw(&ours).await;
                let mut hello = ExtendedHandshake::ours(Some(size), None);
                hello.extensions.insert("ut_metadata".into(), 5);
                let payload = hello.encode().into();
                peer.send(&[Message::Extended {
                    id: HANDSHAKE_ID,
                    payload,
                }])
                .await;
                loop {
                    match peer.next(Duration::from_secs(30)).await {
                        Read::Message(Message::Extended { id: 5, payload }) => {
                            let Ok(MetadataMessage::Request { piece }) =
                                MetadataMessage::parse(&payload)
                            else {
                                continue;
                            };
                            let data = piece_of(&info, piece).unwrap_or_default().to_vec();
                            let answer = MetadataMessage::Data {
                                piece,
                                total_size: size,
                                data,
                            };
                            let payload = answer.encode().into();
                            peer.send(&[Message::Extended {
                                id: OUR_UT_METADATA_ID,
                                payload,
                            }])
                            .await;
                        }
                        Read::Message(_) => {}
                        Read::Closed | Read::Quiet => return,
                    }
                }
            });
        }
    });
    addr
}

fn fetch_setup(meta: &Metainfo) -> FetchSetup {
    FetchSetup {
        info_hash: meta.info_hash,
        our_id: PeerId::ours([1; 12]),
        listen_port: None,
        handshake_timeout: Duration::from_secs(5),
        max_connections: 4,
        first_redial: Duration::from_millis(200),
        // The fake peers below speak plaintext only; an encrypted first try would add a dial.
        encryption: EncryptionPolicy::Disable,
    }
}

/// The honest peer is a btvod seed: btvod's fetch against btvod's serving.
#[test]
fn a_peer_with_wrong_metadata_is_dropped_and_an_honest_one_still_gives_it() {
    let world = MovieDir::new(14 * MIB, 16 * 1024, 44);
    let rt = runtime();
    rt.block_on(async {
        let info = world.meta.raw_info().to_vec();
        assert_eq!(piece_count(info.len() as u32), 2);
        let mut wrong = info.clone();
        let last = wrong.len() - 2;
        wrong[last] ^= 0xff;
        let liar = fake_metadata_peer(world.meta.clone(), info.len() as u32, wrong).await;
        let seed = world
            .seed(options(8, vec![], TorrentConfig::default()))
            .await;
        let honest = seed.torrent.listen_addr.expect("the seed listens");
        let (tx, rx) = mpsc::channel(4);
        // The liar first: its pieces are taken, the hash fails, then the honest peer's count.
        tx.send(vec![liar]).await.unwrap();
        let (progress, _) = watch::channel(FetchProgress::default());
        let setup = FetchSetup {
            max_connections: 1,
            ..fetch_setup(&world.meta)
        };
        let task = tokio::spawn(fetch(setup, rx, Duration::from_secs(20), progress));
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(vec![honest]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the fetch ends within its limit")
            .unwrap()
            .expect("the honest peer's metadata is fetched");
        assert_eq!(got.info, info);
        assert_eq!(got.dialled, 2);
        seed.shutdown().await;
    });
}

#[test]
fn absurd_sizes_and_wrong_length_pieces_are_refused_and_the_fetch_says_why_it_failed() {
    let world = MovieDir::new(MIB, 16 * 1024, 45);
    let rt = runtime();
    rt.block_on(async {
        let info = world.meta.raw_info().to_vec();
        let huge = fake_metadata_peer(world.meta.clone(), 1 << 31, info.clone()).await;
        // Pieces of the wrong length: a size that disagrees with the data.
        let short = fake_metadata_peer(world.meta.clone(), info.len() as u32 + 1, info).await;
        let (tx, rx) = mpsc::channel(4);
        tx.send(vec![huge, short]).await.unwrap();
        drop(tx);
        let (progress, _) = watch::channel(FetchProgress::default());
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            fetch(
                fetch_setup(&world.meta),
                rx,
                Duration::from_secs(3),
                progress,
            ),
        )
        .await
        .expect("the fetch ends within its limit");
        match outcome {
            // Both are dropped, and with no address left to dial the fetch ends at once.
            Err(FetchError::NoPeers { dialled, offered }) => {
                assert_eq!(dialled, 2);
                assert_eq!(offered, 2);
            }
            other => panic!("expected no peer left, got {other:?}"),
        }
    });
}

#[test]
fn a_peer_that_closes_at_first_is_dialled_again_after_a_pause() {
    let world = MovieDir::new(MIB, 16 * 1024, 46);
    let rt = runtime();
    rt.block_on(async {
        let info = world.meta.raw_info().to_vec();
        let size = info.len() as u32;
        let peer =
            fake_metadata_peer_closing_first(world.meta.clone(), size, info.clone(), 2).await;
        let (tx, rx) = mpsc::channel(4);
        tx.send(vec![peer]).await.unwrap();
        drop(tx);
        let (progress, _) = watch::channel(FetchProgress::default());
        let got = fetch(
            fetch_setup(&world.meta),
            rx,
            Duration::from_secs(60),
            progress,
        )
        .await
        .expect("the third try gets the metadata");
        assert_eq!(got.info, info);
        assert_eq!(got.dialled, 3);
        // Redialled after 200 ms, then 600 ms more.
        assert!(
            got.elapsed >= Duration::from_millis(800),
            "got it after {:?}",
            got.elapsed
        );
    });
}
