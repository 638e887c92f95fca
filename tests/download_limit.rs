//! A downloader under a download limit keeps the requests in flight to all its peers together
//! within a few seconds of the limit, on real loopback TCP: more would only wait in its
//! limiter, where their senders look silent.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use btvod::engine::torrent::TorrentConfig;
use btvod::proto::InfoHash;
use common::movie_dir::MovieDir;
use common::raw_peer::answer_as_seed;
use common::session::{KIB, SessionExt, options, plaintext, shutdown_all};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const REQUEST: u8 = 6;
const CANCEL: u8 = 8;

/// A peer that has every piece, unchokes at once and never answers a request: it counts the
/// requests it holds (REQUESTs less CANCELs) in `held`.
async fn holding_peer(
    info_hash: InfoHash,
    pieces: u32,
    id: u8,
    held: Arc<AtomicI64>,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        if answer_as_seed(&mut stream, info_hash, pieces, id, true)
            .await
            .is_err()
        {
            return;
        }
        while let Ok(id) = read_frame_id(&mut stream).await {
            match id {
                Some(REQUEST) => held.fetch_add(1, Ordering::SeqCst),
                Some(CANCEL) => held.fetch_sub(1, Ordering::SeqCst),
                _ => 0,
            };
        }
    });
    (addr, task)
}

/// The id of the next frame (`None` for a keep-alive), its payload read and dropped.
async fn read_frame_id(stream: &mut TcpStream) -> std::io::Result<Option<u8>> {
    let len = stream.read_u32().await? as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut body = vec![0u8; len.min(1 << 20)];
    stream.read_exact(&mut body).await?;
    Ok(Some(body[0]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_limit_bounds_the_requests_to_all_peers_together() {
    timeout(Duration::from_secs(60), async {
        // 64 pieces of 64 KiB: far more blocks than any queue holds.
        let world = MovieDir::new(4 * 1024 * 1024, 64 * 1024, 3);
        let info_hash = world.meta.info_hash;
        let pieces = world.piece_count();
        let held = Arc::new(AtomicI64::new(0));
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for id in 1..=10u8 {
            let (addr, task) = holding_peer(info_hash, pieces, id, Arc::clone(&held)).await;
            addrs.push(addr);
            tasks.push(task);
        }
        // 16 KiB/s: each peer alone may hold two blocks (two seconds of the limit), all ten
        // together eight blocks (eight seconds), not twenty.
        let config = TorrentConfig {
            download_limit: 16 * KIB,
            ..plaintext()
        };
        let leech = world.leecher(0, options(2, addrs, config)).await;
        leech
            .wait_stats(Duration::from_secs(10), "all ten peers", |s| s.peers == 10)
            .await;
        // Watched over three of the torrent's one-second ticks, each of which asks every
        // unchoking peer for what its queue has room for.
        let mut most = 0;
        for _ in 0..60 {
            most = most.max(held.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            (4..=8).contains(&most),
            "the peers together held up to {most} requests; the limit allows 8"
        );
        shutdown_all(vec![leech]).await;
        for task in tasks {
            task.abort();
        }
    })
    .await
    .expect("the test took over 60 s");
}
