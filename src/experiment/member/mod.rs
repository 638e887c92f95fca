//! A world peer's running client, whichever program it is: btvod's engine in this process or
//! a libtorrent process, seen through the same few numbers.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

mod lt_peer;

pub(crate) use self::lt_peer::LtPeer;
pub(crate) use self::lt_peer::max_connections_args;
pub use self::lt_peer::{LtPeerError, LtProgram};
use crate::engine::session::Session;
use crate::engine::torrent::TorrentStats;
use crate::proto::bitfield::Bitfield;

/// What the world records of a running client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberStats {
    pub pieces_have: u32,
    pub piece_count: u32,
    /// Payload bytes of this client run.
    pub downloaded: u64,
    pub uploaded: u64,
    pub complete: bool,
    /// Which pieces it holds, when the client says.
    pub have: Option<Arc<Bitfield>>,
}

impl From<&TorrentStats> for MemberStats {
    /// Without the pieces themselves: [`MemberWatch`] adds them from the verified set.
    fn from(s: &TorrentStats) -> Self {
        MemberStats {
            pieces_have: s.pieces_have,
            piece_count: s.piece_count,
            downloaded: s.downloaded,
            uploaded: s.uploaded,
            complete: s.complete,
            have: None,
        }
    }
}

/// A running world peer.
pub(crate) enum Member {
    Btvod(Session),
    Libtorrent(LtPeer),
}

/// The live stats of a [`Member`].
pub(crate) enum MemberWatch {
    /// Its stats, and the verified pieces the torrent publishes for readers.
    Btvod(watch::Receiver<TorrentStats>, watch::Receiver<Bitfield>),
    Libtorrent(watch::Receiver<MemberStats>),
}

impl Member {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        match self {
            Member::Btvod(s) => s.torrent.listen_addr,
            Member::Libtorrent(p) => Some(p.listen_addr()),
        }
    }

    pub fn watch(&self) -> MemberWatch {
        match self {
            Member::Btvod(s) => {
                MemberWatch::Btvod(s.torrent.stats.clone(), s.torrent.reader_link().have)
            }
            Member::Libtorrent(p) => MemberWatch::Libtorrent(p.stats()),
        }
    }

    pub fn stats(&self) -> MemberStats {
        let mut watch = self.watch();
        watch.now()
    }

    /// Stops the client (btvod announces `stopped`; libtorrent is sent SIGTERM).
    pub async fn shutdown(self) {
        match self {
            Member::Btvod(s) => s.shutdown().await,
            Member::Libtorrent(p) => p.stop().await,
        }
    }
}

impl MemberWatch {
    /// The latest stats, marked seen.
    pub fn now(&mut self) -> MemberStats {
        match self {
            MemberWatch::Btvod(rx, have) => MemberStats {
                have: Some(Arc::new(have.borrow().clone())),
                ..MemberStats::from(&*rx.borrow_and_update())
            },
            MemberWatch::Libtorrent(rx) => rx.borrow_and_update().clone(),
        }
    }

    /// Waits for new stats (forever once the client is gone, so a `select!` moves on by its
    /// other arms).
    pub async fn changed(&mut self) {
        let gone = match self {
            MemberWatch::Btvod(rx, _) => rx.changed().await.is_err(),
            MemberWatch::Libtorrent(rx) => rx.changed().await.is_err(),
        };
        if gone {
            std::future::pending::<()>().await;
        }
    }
}
