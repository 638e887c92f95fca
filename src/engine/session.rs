//! Puts a torrent to work: lays its files out on disk (`layout`), resumes what is already
//! there, builds its playback and picker (`policy`), listens, dials `--peer` addresses,
//! announces to trackers (`bridge`), and runs the torrent task.

mod bridge;
mod layout;
mod policy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use librqbit_utp::UtpSocketUdp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

use self::bridge::{AnnounceBridge, start_announcer};
use super::dht::{DhtNode, REANNOUNCE_EVERY};
use super::lsd::{self, LsdConfig};
use super::multicast::LanInterface;
use super::peer::link::UtpPolicy;
use super::playback::Playback;
use super::search;
use super::storage::{Storage, StorageError, StorageLayout};
use super::torrent::{self, TorrentConfig, TorrentHandle, TorrentSetup};
use crate::policy::picker::{DeadlineError, PickerError};
use crate::policy::vod::VodError;
use crate::proto::PeerId;
use crate::proto::bitfield::Bitfield;
use crate::proto::metainfo::Metainfo;

pub use self::layout::{Content, layout};
pub use self::policy::{Deadlines, PolicyKind, VodOptions};

#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub listen: SocketAddr,
    pub torrent: TorrentConfig,
    /// Peers to dial without a tracker.
    pub peers: Vec<SocketAddr>,
    /// Tracker tiers to use instead of the torrent's (None = the torrent's own).
    pub trackers: Option<Vec<Vec<String>>>,
    pub policy: PolicyKind,
    /// Seeds every random choice of this session (peer id, tie breaks, optimistic unchokes).
    pub seed: u64,
    /// Watch a movie of the torrent while it downloads.
    pub vod: Option<VodOptions>,
    /// Find peers and announce through this DHT node (never for a private torrent, BEP 27).
    pub dht: Option<DhtNode>,
    /// Local service discovery (BEP 14) on the LAN of `listen` (never for a private torrent).
    pub lsd: bool,
    /// Answer `btvod search` queries on the LAN of `listen` that match the torrent's name.
    pub lan_search: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            torrent: TorrentConfig::default(),
            peers: Vec::new(),
            trackers: None,
            policy: PolicyKind::default(),
            seed: rand::rng().random(),
            vod: None,
            dht: None,
            lsd: false,
            lan_search: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("content path {0} has no parent directory")]
    BadContentPath(PathBuf),
    #[error("the piece picker refused our piece set: {0}")]
    Picker(#[from] PickerError),
    #[error("the deadline policy refused its settings: {0}")]
    Deadline(#[from] DeadlineError),
    #[error("playback: {0}")]
    Vod(#[from] VodError),
    #[error("the deadline policy needs playback options (a movie, R, D, P and a server)")]
    DeadlineWithoutPlayback,
    #[error("file index {0} is not in the torrent")]
    NoSuchFile(usize),
    #[error("the recheck task failed: {0}")]
    Recheck(#[from] tokio::task::JoinError),
}

/// A running torrent with its tracker announcer.
pub struct Session {
    pub torrent: TorrentHandle,
    pub storage: Arc<Storage>,
    pub peer_id: PeerId,
    announcer: Option<AnnounceBridge>,
    /// The DHT node and this torrent's lookups and announces on it.
    dht: Option<(DhtNode, tokio::task::JoinHandle<()>)>,
    /// This torrent's LSD announces and listening, and its LAN search responder.
    lsd: Vec<tokio::task::JoinHandle<()>>,
    lan_search: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
    /// Announces `stopped` (briefly) and closes every connection.
    pub async fn shutdown(self) {
        if let Some((_, task)) = &self.dht {
            task.abort();
        }
        for task in self.lsd.iter().chain(&self.lan_search) {
            task.abort();
        }
        if let Some(bridge) = self.announcer {
            let _ = bridge.stop.send(());
            let _ = bridge.task.await;
        }
        self.torrent.shutdown().await;
        // The routing table outlives the run: the next one bootstraps from it.
        if let Some((node, _)) = &self.dht {
            node.save().await;
        }
    }
}

/// Opens storage, rechecks what is on disk (calling `progress(checked, total)`), and starts the
/// torrent, its listener and its announcer.
pub async fn start(
    meta: &Metainfo,
    content: Content,
    options: SessionOptions,
    progress: impl FnMut(u32, u32) + Send + 'static,
) -> Result<Session, SessionError> {
    // t = 0 of the VoD contract: the metainfo is loaded and work on the torrent begins.
    let started = tokio::time::Instant::now();
    let (layout, existing) = layout(meta, &content)?;
    let (storage, have) = open_and_recheck(layout, existing, progress).await?;
    let storage = Arc::new(storage);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let peer_id = PeerId::ours(rng.random());
    let vod_session = policy::vod_session(meta, options.vod.as_ref(), &have)?;
    let playing = vod_session.as_ref().zip(options.vod.as_ref());
    let picker = policy::picker(meta, options.policy, playing, &have, &mut rng)?;
    let listener = listen(options.listen).map_err(|source| SessionError::Listen {
        addr: options.listen,
        source,
    })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let utp = bind_utp(&options, port).await;
    let playback = match (vod_session, &options.vod) {
        (Some(vod_session), Some(vod)) => Some(Playback::new(vod_session, vod.server.clone())),
        _ => None,
    };
    let handle = torrent::start(TorrentSetup {
        info_hash: meta.info_hash,
        our_id: peer_id,
        geometry: meta.geometry.clone(),
        storage: Arc::clone(&storage),
        picker,
        listener: Some(listener),
        utp,
        config: options.torrent.clone(),
        seed: rng.random(),
        started,
        playback,
        metadata: (!meta.private).then(|| Arc::from(meta.raw_info())),
        private: meta.private,
    })
    .await;
    if !options.peers.is_empty() {
        handle.add_peers(options.peers.clone());
    }
    let tiers = options
        .trackers
        .clone()
        .unwrap_or_else(|| meta.tracker_tiers());
    let announcer = start_announcer(tiers, meta, peer_id, port, &handle, &mut rng);
    let dht = match (&options.dht, meta.private) {
        (Some(dht), false) => Some((
            dht.clone(),
            dht.keep_looking(
                meta.info_hash,
                Some(port),
                handle.peer_sink(),
                REANNOUNCE_EVERY,
            ),
        )),
        _ => None,
    };
    let lsd = if options.lsd && !meta.private {
        start_lsd(&options, meta, port, &handle)
    } else {
        Vec::new()
    };
    let lan_search = options
        .lan_search
        .then(|| start_search_responder(&options, meta, port))
        .flatten();
    Ok(Session {
        torrent: handle,
        storage,
        peer_id,
        announcer,
        dht,
        lsd,
        lan_search,
    })
}

/// LSD in each group `--bind` covers (IPv4, IPv6 or both); a group that cannot be joined is
/// said once and left out (a host without IPv6 multicast, for one).
fn start_lsd(
    options: &SessionOptions,
    meta: &Metainfo,
    port: u16,
    handle: &TorrentHandle,
) -> Vec<tokio::task::JoinHandle<()>> {
    let interfaces = LanInterface::covered_by(options.listen.ip());
    let tasks: Vec<_> = interfaces
        .iter()
        .filter_map(|&interface| {
            let config = LsdConfig {
                interface,
                info_hash: meta.info_hash,
                port,
            };
            lsd::start(config, handle.peer_sink())
                .map_err(|e| tracing::debug!(?interface, error = %e, "an LSD group is not joined"))
                .ok()
        })
        .collect();
    if tasks.is_empty() {
        tracing::warn!("local service discovery is off: no multicast group could be joined");
    }
    tasks
}

/// The IPv4 interface `--bind` names for LAN multicast (any, for an unspecified or IPv6 one).
fn lan_interface(options: &SessionOptions) -> std::net::Ipv4Addr {
    match options.listen.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
    }
}

/// The LAN search responder for this torrent; a failure leaves it off, said once.
fn start_search_responder(
    options: &SessionOptions,
    meta: &Metainfo,
    port: u16,
) -> Option<tokio::task::JoinHandle<()>> {
    let listing = search::Listing {
        info_hash: meta.info_hash,
        name: meta.name.clone(),
        size: meta.total_len(),
        port,
    };
    search::respond(lan_interface(options), listing)
        .map_err(|e| tracing::warn!(error = %e, "LAN search answers are off"))
        .ok()
}

/// uTP's UDP socket on the peer port (as peers expect), unless `--utp disable`. A port whose
/// UDP is taken leaves uTP off, said once: TCP still works.
async fn bind_utp(options: &SessionOptions, port: u16) -> Option<Arc<UtpSocketUdp>> {
    if options.torrent.utp == UtpPolicy::Disable {
        return None;
    }
    let addr = SocketAddr::new(options.listen.ip(), port);
    match UtpSocketUdp::new_udp(addr).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "uTP is off: its UDP port cannot be bound");
            None
        }
    }
}

/// Opens (or creates) the files and finds the pieces already verified on disk, off the
/// runtime.
async fn open_and_recheck(
    layout: StorageLayout,
    existing: bool,
    mut progress: impl FnMut(u32, u32) + Send + 'static,
) -> Result<(Storage, Bitfield), SessionError> {
    let opened = tokio::task::spawn_blocking(move || {
        if !existing {
            // A download directory that does not exist yet is made, as the CLI does.
            std::fs::create_dir_all(&layout.root).map_err(|source| StorageError::Io {
                op: "create",
                path: layout.root.clone(),
                source,
            })?;
        }
        let storage = if existing {
            Storage::open_existing(layout)?
        } else {
            Storage::open(layout)?
        };
        let have = storage.recheck(&mut progress)?;
        Ok::<_, StorageError>((storage, have))
    })
    .await??;
    Ok(opened)
}

/// The peer listener. On `::` it is dual-stack (IPv4 peers arrive as mapped addresses, which
/// the accept loop turns back into IPv4); where IPv6 is missing, `::` falls back to `0.0.0.0`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |addr: SocketAddr| -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(!addr.ip().is_unspecified())?;
        }
        // A restarted client gets its port back at once rather than after TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        TcpListener::from_std(socket.into())
    };
    match open(addr) {
        Err(e) if addr.ip() == std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) => {
            tracing::info!(error = %e, "no IPv6 here: listening on IPv4 only");
            open(SocketAddr::from(([0, 0, 0, 0], addr.port())))
        }
        other => other,
    }
}
