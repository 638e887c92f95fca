//! A second connection from a peer we are already connected to, on real loopback TCP: the
//! settled connection stays, whoever dialled either one.

mod common;

use std::time::Duration;

use btvod::proto::PeerId;
use btvod::proto::wire::Handshake;
use bytes::BytesMut;
use common::movie_dir::MovieDir;
use common::session::{SessionExt, options, plaintext, shutdown_all};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

/// The lowest peer id there is: by the rule for dials that cross, a connection it dialled
/// would win over one the seed dialled.
const LOW_ID: PeerId = PeerId([0; 20]);

/// Completes the handshake on `stream` as `LOW_ID`.
async fn handshake(stream: &mut TcpStream, info_hash: btvod::proto::InfoHash) {
    let mut out = BytesMut::new();
    Handshake::ours(info_hash, LOW_ID).encode(&mut out);
    stream.write_all(&out).await.expect("send the handshake");
    let mut theirs = [0u8; 68];
    stream
        .read_exact(&mut theirs)
        .await
        .expect("the seed's handshake");
}

/// Whether the connection is closed (EOF or error) within `wait`, reading whatever comes.
async fn closes_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut sink = [0u8; 4096];
    timeout(wait, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await
    .is_ok()
}

/// The seed dials us; six seconds later (past the settling time) we dial it with the same
/// peer id, as a peer does that learns our address again from a tracker or PEX. Closing the
/// old connection would void every request in flight on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_does_not_replace_a_settled_one() {
    let world = MovieDir::new(256 * 1024, 32 * 1024, 1);
    let seed = world.seed(options(1, vec![], plaintext())).await;
    let info_hash = world.meta.info_hash;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    seed.torrent
        .add_peers(vec![listener.local_addr().expect("listener address")]);
    let (mut first, _) = timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the seed dials within 10 s")
        .expect("accept");
    handshake(&mut first, info_hash).await;
    seed.wait_stats(Duration::from_secs(5), "the first connection", |s| {
        s.peers == 1
    })
    .await;
    sleep(Duration::from_secs(6)).await;

    let mut second = TcpStream::connect(seed.addr())
        .await
        .expect("dial the seed");
    handshake(&mut second, info_hash).await;
    assert!(
        closes_within(&mut second, Duration::from_secs(5)).await,
        "the new connection is the one closed"
    );
    assert!(
        !closes_within(&mut first, Duration::from_secs(1)).await,
        "the settled connection stays open"
    );
    assert_eq!(seed.stats().peers, 1);
    shutdown_all([seed]).await;
}
