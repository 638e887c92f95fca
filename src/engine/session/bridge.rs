//! The announce bridge: transfer totals go from the torrent to the tracker loop, peers come
//! back, and `completed` is announced when the last piece is verified.

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::announce::{
    AnnounceLoopConfig, Announcer, AnnouncerConfig, TransferStats, spawn_announce_loop,
};
use crate::engine::torrent::{TorrentHandle, TorrentStats};
use crate::proto::PeerId;
use crate::proto::metainfo::Metainfo;
use crate::proto::tracker::TrackerTiers;

/// Joins the announce loop to the torrent: transfer totals go to the tracker, peers come back,
/// and `completed` is announced when the last piece is verified.
pub(super) struct AnnounceBridge {
    pub(super) stop: oneshot::Sender<()>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

pub(super) fn start_announcer(
    tiers: Vec<Vec<String>>,
    meta: &Metainfo,
    peer_id: PeerId,
    port: u16,
    torrent: &TorrentHandle,
    rng: &mut StdRng,
) -> Option<AnnounceBridge> {
    let tiers = TrackerTiers::new(tiers, rng);
    for skipped in tiers.skipped() {
        tracing::warn!(?skipped, "tracker not used");
    }
    if tiers.is_empty() {
        return None;
    }
    let announcer = match Announcer::new(tiers, AnnouncerConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the tracker client");
            return None;
        }
    };
    let mut stats = torrent.stats.clone();
    let transfer = |s: &TorrentStats| TransferStats {
        uploaded: s.uploaded,
        downloaded: s.downloaded,
        left: s.bytes_left,
    };
    let initial = transfer(&stats.borrow());
    let was_complete = stats.borrow().complete;
    let (transfer_tx, transfer_rx) = watch::channel(initial);
    let mut config = AnnounceLoopConfig::new(meta.info_hash, peer_id, port);
    config.key = Some(rng.random());
    let (handle, mut peers) = spawn_announce_loop(announcer, config, transfer_rx);
    let sink = torrent.peer_sink();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut complete = was_complete;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                Some(addrs) = peers.recv() => {
                    // Bounded: a torrent task that is behind loses this batch, not memory.
                    if let Err(mpsc::error::TrySendError::Full(dropped)) = sink.try_send(addrs) {
                        tracing::debug!(dropped = dropped.len(), "tracker peers dropped: torrent busy");
                    }
                }
                changed = stats.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let s = stats.borrow_and_update().clone();
                    transfer_tx.send_replace(transfer(&s));
                    if s.complete && !complete {
                        complete = true;
                        handle.completed();
                    }
                }
            }
        }
        handle.shutdown().await;
    });
    Some(AnnounceBridge {
        stop: stop_tx,
        task,
    })
}
