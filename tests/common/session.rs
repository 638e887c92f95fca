//! In-process btvod sessions on 127.0.0.1:0 for integration tests: their options, starting a
//! seed or a leecher, the built-in tracker, and `SessionExt` (address, stats, bounded waits on
//! the stats) so that a test reads as the swarm it sets up.
#![allow(dead_code)]

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use btvod::engine::peer::mse::EncryptionPolicy;
use btvod::engine::session::{self, Content, Session, SessionOptions};
use btvod::engine::torrent::{TorrentConfig, TorrentStats};
use btvod::proto::metainfo::Metainfo;
use btvod::service::tracker::{self, TrackerConfig};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::time::timeout;

pub const KIB: u64 = 1024;

/// A session listening on 127.0.0.1:0 with random seed `seed`, dialling `peers`, no trackers
/// but the torrent's own.
pub fn options(seed: u64, peers: Vec<SocketAddr>, torrent: TorrentConfig) -> SessionOptions {
    SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        torrent,
        peers,
        trackers: None,
        seed,
        ..SessionOptions::default()
    }
}

/// The defaults, dialling in plaintext only: for tests whose hand-written peers speak only
/// the plaintext protocol (an encrypted first try would cost them their first exchange).
pub fn plaintext() -> TorrentConfig {
    TorrentConfig {
        encryption: EncryptionPolicy::Disable,
        ..TorrentConfig::default()
    }
}

/// Rate limits in KiB/s (0: none).
pub fn limits(upload_kib: u64, download_kib: u64) -> TorrentConfig {
    TorrentConfig {
        upload_limit: upload_kib * KIB,
        download_limit: download_kib * KIB,
        ..TorrentConfig::default()
    }
}

/// A seed of existing `content`; panics unless it verifies completely.
pub async fn start_seed(meta: &Metainfo, content: &Path, opts: SessionOptions) -> Session {
    let s = session::start(
        meta,
        Content::Existing(content.to_path_buf()),
        opts,
        |_, _| {},
    )
    .await
    .expect("start a seed");
    assert!(
        s.stats().complete,
        "the seed's content must verify completely"
    );
    s
}

/// A leecher downloading into `dir` (created if missing).
pub async fn start_leecher(meta: &Metainfo, dir: &Path, opts: SessionOptions) -> Session {
    fs::create_dir_all(dir).expect("create the download dir");
    session::start(
        meta,
        Content::DownloadDir(dir.to_path_buf()),
        opts,
        |_, _| {},
    )
    .await
    .expect("start a leecher")
}

/// What tests ask of a running session.
#[allow(async_fn_in_trait)]
pub trait SessionExt {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Its latest published stats.
    fn stats(&self) -> TorrentStats;
    /// The stats once `pred` holds, or an error with the last stats after `bound`.
    async fn try_wait_stats(
        &self,
        bound: Duration,
        pred: impl Fn(&TorrentStats) -> bool,
    ) -> Result<TorrentStats, String>;
    /// Waits until `pred` holds, or panics after `bound` saying `what` did not happen.
    async fn wait_stats(
        &self,
        bound: Duration,
        what: &str,
        pred: impl Fn(&TorrentStats) -> bool,
    ) -> TorrentStats;
    /// Waits until it has every piece, or panics after `bound` naming `who`.
    async fn wait_complete(&self, bound: Duration, who: &str) -> TorrentStats;
}

impl SessionExt for Session {
    fn addr(&self) -> SocketAddr {
        self.torrent.listen_addr.expect("session listens")
    }

    fn stats(&self) -> TorrentStats {
        self.torrent.stats.borrow().clone()
    }

    async fn try_wait_stats(
        &self,
        bound: Duration,
        pred: impl Fn(&TorrentStats) -> bool,
    ) -> Result<TorrentStats, String> {
        let mut rx = self.torrent.stats.clone();
        match timeout(bound, rx.wait_for(|st| pred(st))).await {
            Ok(Ok(st)) => Ok(st.clone()),
            _ => Err(format!("not within {bound:?}: {:?}", self.stats())),
        }
    }

    async fn wait_stats(
        &self,
        bound: Duration,
        what: &str,
        pred: impl Fn(&TorrentStats) -> bool,
    ) -> TorrentStats {
        self.try_wait_stats(bound, pred)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    async fn wait_complete(&self, bound: Duration, who: &str) -> TorrentStats {
        self.wait_stats(bound, &format!("{who} completing"), |st| st.complete)
            .await
    }
}

/// Shuts the sessions down, in order.
pub async fn shutdown_all(sessions: impl IntoIterator<Item = Session>) {
    for s in sessions {
        s.shutdown().await;
    }
}

/// The built-in tracker on 127.0.0.1:0; dropping the guard stops it.
pub struct Tracker {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

pub async fn start_tracker() -> Tracker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the tracker");
    let addr = listener.local_addr().expect("tracker address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(tracker::serve(listener, TrackerConfig::default(), async {
        let _ = stopped.await;
    }));
    Tracker {
        url: format!("http://{addr}/announce"),
        _stop: stop,
    }
}

/// A two-worker runtime for tests that drive third-party programs from blocking code.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
