//! Puts a torrent to work: lays its files out on disk, resumes what is already there, listens,
//! dials `--peer` addresses, announces to trackers, and runs the torrent task.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

use tokio::sync::{mpsc, oneshot, watch};

use super::announce::{
    AnnounceLoopConfig, Announcer, AnnouncerConfig, TransferStats, spawn_announce_loop,
};
use super::playback::Playback;
use super::storage::{Storage, StorageError, StorageLayout};
use super::torrent::{self, TorrentConfig, TorrentHandle, TorrentSetup};
use super::vod_server::VodServer;
use crate::policy::picker::{DeadlineConfig, DeadlinePicker, Picker, RarestFirst, Sequential};
use crate::policy::vod::{Schedule, VodError, VodParams, VodSession};
use crate::proto::PeerId;
use crate::proto::metainfo::Metainfo;
use crate::proto::tracker::TrackerTiers;

/// Which piece policy the torrent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    #[default]
    Rarest,
    Sequential,
    /// The VoD deadline policy (needs [`VodOptions`]).
    Deadline,
}

impl PolicyKind {
    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Rarest => "rarest",
            PolicyKind::Sequential => "sequential",
            PolicyKind::Deadline => "deadline",
        }
    }
}

/// Playback: the movie, its R, D and P, and the VoD server that covers missed deadlines.
#[derive(Clone)]
pub struct VodOptions {
    pub params: VodParams,
    /// Index of the movie in the torrent's file list.
    pub file: usize,
    /// The paid source; without one a late piece is waited for (streaming only).
    pub server: Option<Arc<VodServer>>,
    pub deadline: DeadlineConfig,
    pub deadlines: Deadlines,
}

/// Where deadlines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadlines {
    /// The course contract: `D - P + b/R` from t = 0.
    Schedule,
    /// Players reading the files over HTTP (`btvod stream`). Only the movie and the files
    /// readers open are downloaded, unless `download_all`.
    Readers { download_all: bool },
}

impl std::fmt::Debug for VodOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodOptions")
            .field("params", &self.params)
            .field("file", &self.file)
            .field("server", &self.server.as_ref().map(|s| s.display_url()))
            .field("deadlines", &self.deadlines)
            .finish()
    }
}

/// Where the torrent's bytes live.
#[derive(Debug, Clone)]
pub enum Content {
    /// Download into this directory (the torrent's name is created inside it).
    DownloadDir(PathBuf),
    /// Existing content to seed: the file itself (single-file torrent) or the torrent's top
    /// directory (multi-file), under any name.
    Existing(PathBuf),
    /// Download to this path: the file itself (single-file torrent) or the torrent's top
    /// directory (multi-file), under any name.
    SaveAs(PathBuf),
}

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
    Picker(String),
    #[error("playback: {0}")]
    Vod(#[from] VodError),
    #[error("the deadline policy needs playback options (a movie, R, D, P and a server)")]
    DeadlineWithoutPlayback,
    #[error("file index {0} is not in the torrent")]
    NoSuchFile(usize),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A running torrent with its tracker announcer.
pub struct Session {
    pub torrent: TorrentHandle,
    pub storage: Arc<Storage>,
    pub peer_id: PeerId,
    announcer: Option<AnnounceBridge>,
}

impl Session {
    /// Announces `stopped` (briefly) and closes every connection.
    pub async fn shutdown(self) {
        if let Some(bridge) = self.announcer {
            let _ = bridge.stop.send(());
            let _ = bridge.task.await;
        }
        self.torrent.shutdown().await;
    }
}

/// Joins the announce loop to the torrent: transfer totals go to the tracker, peers come back,
/// and `completed` is announced when the last piece is verified.
struct AnnounceBridge {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start_announcer(
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
    let transfer = |s: &super::torrent::TorrentStats| TransferStats {
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

/// Maps a torrent onto disk: files relative to a root directory.
pub fn layout(meta: &Metainfo, content: &Content) -> Result<(StorageLayout, bool), SessionError> {
    let (root, files, existing) = match content {
        Content::DownloadDir(dir) => {
            let files = (0..meta.files.len())
                .map(|i| (meta.relative_path(i), meta.files[i].length))
                .collect();
            (dir.clone(), files, false)
        }
        Content::Existing(path) | Content::SaveAs(path) => {
            let existing = matches!(content, Content::Existing(_));
            if meta.is_single_file {
                let parent = parent_of(path)?;
                let name = path
                    .file_name()
                    .ok_or_else(|| SessionError::BadContentPath(path.clone()))?;
                (
                    parent,
                    vec![(PathBuf::from(name), meta.total_len())],
                    existing,
                )
            } else {
                let files = meta
                    .files
                    .iter()
                    .map(|f| (f.path.iter().collect::<PathBuf>(), f.length))
                    .collect();
                (path.clone(), files, existing)
            }
        }
    };
    Ok((
        StorageLayout {
            root,
            files,
            geometry: meta.geometry.clone(),
            piece_hashes: meta.piece_hashes().to_vec(),
        },
        existing,
    ))
}

fn parent_of(path: &Path) -> Result<PathBuf, SessionError> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Some(p) => Ok(p.to_path_buf()),
        None => Err(SessionError::BadContentPath(path.to_path_buf())),
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
    let (storage, have) = tokio::task::spawn_blocking(move || {
        let mut progress = progress;
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
    .await
    .map_err(|e| SessionError::Internal(format!("recheck task: {e}")))??;
    let storage = Arc::new(storage);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let peer_id = PeerId::ours(rng.random());
    let vod_session = match &options.vod {
        Some(vod) => {
            let extent = meta
                .geometry
                .files()
                .get(vod.file)
                .ok_or(SessionError::NoSuchFile(vod.file))?;
            let schedule = Schedule::new(vod.params, &meta.geometry, extent.range())?;
            Some(match vod.deadlines {
                Deadlines::Schedule => VodSession::new(schedule, &have),
                Deadlines::Readers { .. } => VodSession::for_readers(schedule, &have),
            })
        }
        None => None,
    };
    let mut picker: Box<dyn Picker + Send> = match options.policy {
        PolicyKind::Deadline => {
            let (Some(vod_session), Some(vod)) = (&vod_session, &options.vod) else {
                return Err(SessionError::DeadlineWithoutPlayback);
            };
            let picker = DeadlinePicker::new(
                meta.geometry.clone(),
                &have,
                Arc::clone(vod_session.table()),
                StdRng::seed_from_u64(rng.random()),
                vod.deadline.clone(),
            )
            .map_err(|e| SessionError::Picker(e.to_string()))?;
            if vod.server.is_some() {
                Box::new(picker)
            } else {
                Box::new(picker.late_from_peers())
            }
        }
        PolicyKind::Rarest => Box::new(
            RarestFirst::new(
                meta.geometry.clone(),
                &have,
                StdRng::seed_from_u64(rng.random()),
            )
            .map_err(|e| SessionError::Picker(e.to_string()))?,
        ),
        PolicyKind::Sequential => Box::new(
            Sequential::new(meta.geometry.clone(), &have)
                .map_err(|e| SessionError::Picker(e.to_string()))?,
        ),
    };
    if let Some(vod) = &options.vod
        && vod.deadlines
            == (Deadlines::Readers {
                download_all: false,
            })
    {
        // Only the movie until a reader opens another file.
        let wanted = meta.geometry.pieces_of_file(vod.file);
        for piece in meta.geometry.pieces() {
            if !wanted.contains(&piece.get()) {
                picker.on_wanted(piece, false);
            }
        }
    }
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| SessionError::Listen {
                addr: options.listen,
                source,
            })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let playback = match (vod_session, &options.vod) {
        (Some(vod_session), Some(vod)) => Some(Playback::new(vod_session, vod.server.clone())),
        _ => None,
    };
    let handle = torrent::start(TorrentSetup {
        info_hash: meta.info_hash,
        our_id: peer_id,
        geometry: meta.geometry.clone(),
        storage: Arc::clone(&storage),
        have,
        picker,
        listener: Some(listener),
        config: options.torrent.clone(),
        seed: rng.random(),
        started,
        playback,
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
    Ok(Session {
        torrent: handle,
        storage,
        peer_id,
        announcer,
    })
}
