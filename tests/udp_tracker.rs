//! UDP trackers (BEP 15) for real: btvod's client against opentracker and against btvod's own
//! tracker, a magnet whose only hint is a UDP tracker, and a hostile tracker that answers with
//! other transactions' replies and truncated packets.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::announce::{AnnounceError, Announcer, AnnouncerConfig};
use btvod::engine::torrent::TorrentConfig;
use btvod::proto::tracker::udp::{UdpReply, UdpRequest};
use btvod::proto::tracker::{AnnounceEvent, AnnounceRequest, TrackerTiers};
use btvod::proto::{InfoHash, PeerId};
use btvod::service::tracker::{TrackerConfig, serve_with_udp};
use common::cli::{assert_exits_ok, btvod_get, magnet_link, seed_behind_opentracker};
use common::movie_dir::MovieDir;
use common::session::{options, runtime};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn announcer(url: &str) -> Announcer {
    let tiers = TrackerTiers::new(vec![vec![url.to_string()]], &mut StdRng::seed_from_u64(1));
    let config = AnnouncerConfig {
        udp_first_timeout: Duration::from_millis(300),
        udp_retransmits: 2,
        ..AnnouncerConfig::default()
    };
    Announcer::new(tiers, config).expect("a udp tracker is usable")
}

fn request(info_hash: InfoHash, port: u16) -> AnnounceRequest {
    AnnounceRequest {
        info_hash,
        peer_id: PeerId::ours([port as u8; 12]),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Some(AnnounceEvent::Started),
        numwant: Some(50),
        key: Some(7),
        tracker_id: None,
        compact: true,
    }
}

#[test]
fn btvod_finds_a_libtorrent_seed_through_opentracker_over_udp() {
    let mut world = MovieDir::new(2 * MIB, 64 * 1024, 51);
    let (tracker, _seed) = seed_behind_opentracker(&mut world);
    let rt = runtime();
    // The torrent names opentracker over HTTP; the leecher is told the UDP URL only.
    let mut opts = options(3, vec![], TorrentConfig::default());
    opts.trackers = Some(vec![vec![tracker.udp_announce_url()]]);
    let leech = rt.block_on(world.leecher(0, opts));
    rt.block_on(world.assert_completes(&leech, 0, BOUND, "btvod over UDP"));
    rt.block_on(leech.shutdown());
}

#[test]
fn btvod_get_with_a_magnet_whose_only_hint_is_a_udp_tracker() {
    let mut world = MovieDir::new(2 * MIB, 64 * 1024, 52);
    let (tracker, _seed) = seed_behind_opentracker(&mut world);
    let out = world.leech_dir(0);
    let link = magnet_link(world.meta.info_hash, &[("tr", &tracker.udp_announce_url())]);
    let get = btvod_get(&link, &out, &[]);
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get MAGNET (udp tr only)",
        &tracker.report(),
    );
    world.assert_downloaded(0);
}

#[test]
fn btvod_peers_meet_through_btvods_own_udp_tracker_which_also_scrapes() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 53);
    let rt = runtime();
    rt.block_on(async {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with_udp(
            http,
            Some(udp),
            TrackerConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let url = format!("udp://{addr}/announce");
        let mut opts = options(4, vec![], TorrentConfig::default());
        opts.trackers = Some(vec![vec![url.clone()]]);
        let seed = world.seed(opts.clone()).await;
        opts.seed = 5;
        let leech = world.leecher(0, opts).await;
        world
            .assert_completes(&leech, 0, BOUND, "btvod leecher")
            .await;

        // A raw scrape: the seed and the (now complete) leecher are counted.
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(addr).await.unwrap();
        let ask = |req: UdpRequest| {
            let client = &client;
            async move {
                client.send(&req.encode()).await.unwrap();
                let mut buf = vec![0; 2048];
                let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                    .await
                    .expect("the tracker answers")
                    .unwrap();
                UdpReply::parse(&buf[..n], req.transaction(), false).unwrap()
            }
        };
        let UdpReply::Connect { connection, .. } =
            ask(UdpRequest::Connect { transaction: 1 }).await
        else {
            panic!("no connection id");
        };
        let scrape = UdpRequest::Scrape {
            connection,
            transaction: 2,
            info_hashes: vec![world.meta.info_hash],
        };
        let UdpReply::Scrape { stats, .. } = ask(scrape).await else {
            panic!("no scrape reply")
        };
        assert_eq!(stats.len(), 1);
        assert!(stats[0].complete >= 1, "{stats:?}");
        // A made-up connection id is refused with an error packet.
        let forged = UdpRequest::Scrape {
            connection: 12345,
            transaction: 3,
            info_hashes: vec![world.meta.info_hash],
        };
        assert!(matches!(ask(forged).await, UdpReply::Error { .. }));
        leech.shutdown().await;
        seed.shutdown().await;
        drop(stop);
    });
}

/// A tracker that first answers with another transaction's reply and a truncated packet, then
/// correctly: the client logs and waits past the bad packets.
#[test]
fn replies_to_other_transactions_and_truncated_packets_are_waited_past() {
    let rt = runtime();
    rt.block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let peer: SocketAddr = "127.0.0.1:6999".parse().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0; 2048];
            loop {
                let (n, from) = socket.recv_from(&mut buf).await.unwrap();
                let req = UdpRequest::parse(&buf[..n]).unwrap();
                let t = req.transaction();
                let right = match req {
                    UdpRequest::Connect { .. } => UdpReply::Connect {
                        transaction: t,
                        connection: 99,
                    },
                    _ => UdpReply::Announce {
                        transaction: t,
                        interval: 30,
                        leechers: 1,
                        seeders: 2,
                        peers: vec![peer],
                    },
                };
                let wrong = UdpReply::Connect {
                    transaction: t ^ 1,
                    connection: 5,
                }
                .encode(false);
                let good = right.encode(false);
                for packet in [wrong, good[..6].to_vec(), good] {
                    socket.send_to(&packet, from).await.unwrap();
                }
            }
        });
        let mut a = announcer(&format!("udp://{addr}/announce"));
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            a.announce(&request(InfoHash([3; 20]), 7000)),
        )
        .await
        .expect("bounded")
        .expect("the good reply is used");
        assert_eq!(reply.peers.len(), 1);
        assert_eq!(reply.peers[0].addr, peer);
        assert_eq!(reply.complete, Some(2));
    });
}

#[test]
fn a_silent_udp_tracker_fails_after_the_bep_15_back_off() {
    let rt = runtime();
    rt.block_on(async {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let mut a = announcer(&format!("udp://{addr}/announce"));
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            a.announce(&request(InfoHash([4; 20]), 7001)),
        )
        .await
        .expect("bounded");
        // 300 ms, then 600 and 1200 ms after the retransmissions.
        assert!(
            matches!(result, Err(AnnounceError::AllFailed(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(2100),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    });
}
