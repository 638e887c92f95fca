//! From a magnet link to a validated torrent: the `.torrent` an earlier fetch saved, or the
//! metadata fetched (BEP 9) from the peers the link, its trackers and `--peer` name, then saved
//! so a restart does not fetch it again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};

use super::announce::{
    AnnounceLoopConfig, Announcer, AnnouncerConfig, TransferStats, spawn_announce_loop,
};
use super::dht::DhtNode;
use super::metadata_fetch::{self, FetchError, FetchProgress, FetchSetup};
use super::peer::mse::EncryptionPolicy;
use crate::proto::PeerId;
use crate::proto::extension::metadata::torrent_file;
use crate::proto::magnet::{Magnet, PeerHint};
use crate::proto::metainfo::{Metainfo, MetainfoError};
use crate::proto::tracker::TrackerTiers;

/// How to look for a magnet's metadata.
#[derive(Debug, Clone)]
pub struct MagnetOptions {
    /// Where the fetched `.torrent` is saved (and looked for first): `<info-hash>.torrent`.
    pub save_dir: PathBuf,
    /// Peers to ask besides the link's `x.pe`.
    pub peers: Vec<SocketAddr>,
    /// Trackers to ask besides the link's `tr` (one tier each).
    pub trackers: Vec<String>,
    /// Told to peers and trackers (0: none yet).
    pub listen_port: u16,
    pub timeout: Duration,
    pub max_connections: usize,
    pub seed: u64,
    /// Look the info-hash up in the DHT too.
    pub dht: Option<DhtNode>,
    /// How to dial peers for the metadata (MSE/PE).
    pub encryption: EncryptionPolicy,
}

/// The torrent, and how it was found.
#[derive(Debug)]
pub struct Resolved {
    pub meta: Metainfo,
    pub saved: PathBuf,
    /// Peers to dial at once: the link's `x.pe` (host names resolved) and, after a fetch,
    /// every peer its sources gave.
    pub link_peers: Vec<SocketAddr>,
    /// How long fetching took; `None` when an earlier fetch's file was used.
    pub fetch_time: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum MagnetError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(
        "the link gives no way to find peers: no usable tracker, no `x.pe` peer, no --peer or \
         --tracker, and the DHT is off"
    )]
    NoSources,
    #[error("the fetched metadata is not a usable torrent: {0}")]
    Torrent(#[source] MetainfoError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where an earlier fetch of this link saved its torrent.
pub fn saved_path(magnet: &Magnet, dir: &Path) -> PathBuf {
    dir.join(format!("{}.torrent", magnet.info_hash.to_hex()))
}

/// The link's torrent: loaded if an earlier fetch saved it, else fetched and saved.
pub async fn resolve(
    magnet: &Magnet,
    options: &MagnetOptions,
    progress: watch::Sender<FetchProgress>,
) -> Result<Resolved, MagnetError> {
    let saved = saved_path(magnet, &options.save_dir);
    let link_peers = link_peers(magnet).await;
    // A file that does not load (or is another torrent's) is fetched over.
    if let Ok(meta) = Metainfo::load(&saved)
        && meta.info_hash == magnet.info_hash
    {
        tracing::info!(path = %saved.display(), "using the metadata fetched earlier");
        return Ok(Resolved {
            meta,
            saved,
            link_peers,
            fetch_time: None,
        });
    }
    let mut trackers = magnet.trackers.clone();
    trackers.extend(options.trackers.iter().cloned());
    let mut direct = link_peers.clone();
    direct.extend(&options.peers);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let our_id = PeerId::ours(rng.random());
    let (addrs_tx, addrs_rx) = mpsc::channel(16);
    let no_direct = direct.is_empty();
    let _ = addrs_tx.try_send(direct);
    // While the metadata is missing a lookup every 10 s; the session then keeps it announced.
    let looking = options.dht.as_ref().map(|dht| {
        dht.keep_looking(
            magnet.info_hash,
            None,
            addrs_tx.clone(),
            Duration::from_secs(10),
        )
    });
    let announcing = announce(magnet, &trackers, our_id, options, addrs_tx, &mut rng);
    if announcing.is_none() && no_direct && looking.is_none() {
        return Err(MagnetError::NoSources);
    }
    let setup = FetchSetup {
        info_hash: magnet.info_hash,
        our_id,
        listen_port: (options.listen_port != 0).then_some(options.listen_port),
        handshake_timeout: Duration::from_secs(10),
        max_connections: options.max_connections,
        first_redial: metadata_fetch::FIRST_REDIAL,
        encryption: options.encryption,
    };
    let fetched = metadata_fetch::fetch(setup, addrs_rx, options.timeout, progress).await;
    if let Some(task) = looking {
        task.abort();
    }
    if let Some((handle, forward)) = announcing {
        forward.abort();
        handle.shutdown().await;
    }
    let fetched = fetched?;
    let mut link_peers = link_peers;
    for peer in &fetched.known {
        if !link_peers.contains(peer) {
            link_peers.push(*peer);
        }
    }
    let file = torrent_file(&fetched.info, &trackers, &magnet.web_seeds);
    let meta = Metainfo::from_bytes(&file).map_err(MagnetError::Torrent)?;
    write_atomically(&saved, &file)?;
    tracing::info!(
        took = ?fetched.elapsed,
        dialled = fetched.dialled,
        path = %saved.display(),
        "metadata fetched"
    );
    Ok(Resolved {
        meta,
        saved,
        link_peers,
        fetch_time: Some(fetched.elapsed),
    })
}

/// The link's `x.pe`, host names resolved.
async fn link_peers(magnet: &Magnet) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for hint in &magnet.peers {
        match hint {
            PeerHint::Addr(a) => out.push(*a),
            PeerHint::Host { host, port } => {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(found) => out.extend(found),
                    Err(e) => {
                        tracing::warn!(%host, error = %e, "cannot resolve a peer of the link")
                    }
                }
            }
        }
    }
    out
}

type Announcing = (
    super::announce::AnnounceLoopHandle,
    tokio::task::JoinHandle<()>,
);

/// Announces to the trackers while the metadata is fetched; their peers go to `sink`.
fn announce(
    magnet: &Magnet,
    trackers: &[String],
    our_id: PeerId,
    options: &MagnetOptions,
    sink: mpsc::Sender<Vec<SocketAddr>>,
    rng: &mut StdRng,
) -> Option<Announcing> {
    let tiers = TrackerTiers::new(trackers.iter().map(|t| vec![t.clone()]).collect(), rng);
    for skipped in tiers.skipped() {
        tracing::warn!(?skipped, "tracker not used");
    }
    if tiers.is_empty() {
        return None;
    }
    let announcer = Announcer::new(tiers, AnnouncerConfig::default())
        .inspect_err(|e| tracing::error!(error = %e, "cannot start the tracker client"))
        .ok()?;
    // What is left is not known yet: the link's length if it gives one, else "something".
    let left = magnet.exact_length.unwrap_or(1);
    let (_stats_tx, stats) = watch::channel(TransferStats {
        uploaded: 0,
        downloaded: 0,
        left,
    });
    let mut config = AnnounceLoopConfig::new(magnet.info_hash, our_id, options.listen_port);
    config.key = Some(rng.random());
    let (handle, mut peers) = spawn_announce_loop(announcer, config, stats);
    let forward = tokio::spawn(async move {
        while let Some(batch) = peers.recv().await {
            if sink.send(batch).await.is_err() {
                return;
            }
        }
    });
    Some((handle, forward))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MagnetError> {
    let io = |source| MagnetError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("torrent.part");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
