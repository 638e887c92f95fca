//! A downloader at its peer cap gives up peers that give it nothing for an address it has
//! not dialled, on real loopback TCP: the only way it meets the seed that has its data.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::torrent::TorrentConfig;
use btvod::proto::InfoHash;
use common::movie_dir::MovieDir;
use common::raw_peer::answer_as_seed;
use common::session::{SessionExt, options, plaintext, shutdown_all};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A peer that says it has every piece and never unchokes anyone: it reads what comes and
/// sends nothing after its bitfield. Returns its address and its task.
async fn useless_peer(info_hash: InfoHash, pieces: u32, id: u8) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        if answer_as_seed(&mut stream, info_hash, pieces, id, false)
            .await
            .is_err()
        {
            return;
        }
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloader_at_its_cap_replaces_silent_peers_and_meets_the_seed() {
    timeout(Duration::from_secs(60), async {
        let world = MovieDir::new(256 * 1024, 32 * 1024, 7);
        let info_hash = world.meta.info_hash;
        let pieces = world.piece_count();
        let seed = world.seed(options(1, vec![], plaintext())).await;
        let (first, first_task) = useless_peer(info_hash, pieces, 1).await;
        let (second, second_task) = useless_peer(info_hash, pieces, 2).await;
        let config = TorrentConfig {
            max_peers: 2,
            replace_silent_after: Duration::from_secs(2),
            ..plaintext()
        };
        let leech = world
            .leecher(0, options(2, vec![first, second], config))
            .await;
        leech
            .wait_stats(Duration::from_secs(10), "both silent peers", |s| {
                s.peers == 2
            })
            .await;
        // The seed's address waits behind the cap: only giving up a silent peer lets it in.
        leech.torrent.add_peers(vec![seed.addr()]);
        world
            .assert_completes(&leech, 0, Duration::from_secs(30), "the leecher")
            .await;
        first_task.abort();
        second_task.abort();
        shutdown_all([leech, seed]).await;
    })
    .await
    .expect("the test finishes within 60 s");
}
