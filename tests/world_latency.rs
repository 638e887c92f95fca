//! Link latency in a world: the tracker hands out a relay in front of each peer of a class with
//! an RTT (not the peer's own address), and a BitTorrent handshake through it takes the
//! scenario's round trip (within 10%); a class without one is handed out as it listens.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use btvod::experiment::scenario::Scenario;
use btvod::experiment::{World, WorldOptions};
use btvod::proto::PeerId;
use btvod::proto::tracker::{AnnounceRequest, AnnounceResponse};
use btvod::proto::wire::Handshake;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const FAR_AND_NEAR: &str = r#"
name = "latency"
seed = 9
[content]
name = "movie.bin"
size = "512KiB"
piece_size = "32KiB"
[[peers]]
name = "far"
have = 1.0
rtt_ms = 100
[[peers]]
name = "near"
have = 1.0
"#;

/// The peers the world's tracker gives an outsider (a client that is no world peer).
async fn handed_out(world: &World) -> Vec<SocketAddr> {
    let request = AnnounceRequest {
        info_hash: world.metainfo().info_hash,
        peer_id: PeerId(*b"-XX0000-latencyprobe"),
        port: 9,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: None,
        numwant: Some(50),
        key: None,
        tracker_id: None,
        compact: true,
    };
    let url = request.to_url(&world.tracker_url().parse().expect("tracker URL"));
    let body = reqwest::get(url.as_str())
        .await
        .expect("announce")
        .bytes()
        .await
        .expect("announce body");
    let reply = AnnounceResponse::parse(&body).expect("an announce reply");
    reply.peers.iter().map(|p| p.addr).collect()
}

/// What the tracker hands out once both world peers are behind their links (within 10 s).
async fn both_handed_out(world: &World) -> Vec<SocketAddr> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = handed_out(world).await;
        if addrs.len() == 2 {
            return addrs;
        }
        assert!(
            Instant::now() < end,
            "the tracker hands out both peers: {addrs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The quickest of five BitTorrent handshakes with the peer at `addr`: connect, send ours,
/// time until its answer is complete.
async fn handshake_rtt(world: &World, addr: SocketAddr) -> Duration {
    let mut ours = BytesMut::new();
    Handshake::ours(world.metainfo().info_hash, PeerId(*b"-XX0000-latencyprobe")).encode(&mut ours);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let sent = Instant::now();
        stream.write_all(&ours).await.expect("send the handshake");
        let mut theirs = [0u8; 68];
        timeout(Duration::from_secs(5), stream.read_exact(&mut theirs))
            .await
            .expect("an answer within 5 s")
            .expect("read the handshake");
        best = best.min(sent.elapsed());
        assert_eq!(theirs[0], 19, "a BitTorrent handshake comes back");
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_rtt_is_what_a_handshake_through_the_world_takes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario =
        Scenario::parse(FAR_AND_NEAR, "test", "test", Path::new(ROOT)).expect("scenario");
    let world = World::start(scenario, dir.path(), WorldOptions::default())
        .await
        .expect("start the world");
    let peers = world.peers();
    let far = peers[0].listen.expect("far listens");
    let near = peers[1].listen.expect("near listens");
    let addrs = both_handed_out(&world).await;
    assert!(
        addrs.contains(&near),
        "near has no relay: {addrs:?} vs {near}"
    );
    assert!(
        !addrs.contains(&far),
        "far is reached only through its relay: {addrs:?}"
    );
    let relay = *addrs.iter().find(|&&a| a != near).expect("far's relay");
    let through = handshake_rtt(&world, relay).await;
    assert!(
        (Duration::from_millis(100)..=Duration::from_millis(110)).contains(&through),
        "a handshake through far's link took {through:?}, the scenario says 100 ms"
    );
    let direct = handshake_rtt(&world, near).await;
    assert!(direct < Duration::from_millis(10), "near's took {direct:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rtt_option_gives_every_class_its_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario =
        Scenario::parse(FAR_AND_NEAR, "test", "test", Path::new(ROOT)).expect("scenario");
    let options = WorldOptions {
        rtt: Some(Duration::from_millis(40)),
        ..WorldOptions::default()
    };
    let world = World::start(scenario, dir.path(), options)
        .await
        .expect("start the world");
    let real: Vec<_> = world.peers().iter().filter_map(|p| p.listen).collect();
    let addrs = both_handed_out(&world).await;
    for addr in addrs {
        assert!(!real.contains(&addr), "{addr} is a peer's own address");
        let rtt = handshake_rtt(&world, addr).await;
        assert!(
            (Duration::from_millis(40)..=Duration::from_millis(44)).contains(&rtt),
            "{addr}: {rtt:?} instead of 40 ms"
        );
    }
    world.stop().await;
}
