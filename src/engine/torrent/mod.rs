//! The torrent task: the one owner of piece state, the picker, the choker and every peer's
//! protocol state. Peer tasks only move frames; they report here over one channel. Which
//! fact lives where is listed in `STATE.md` beside this file.

mod accept;
mod address_book;
mod assembly;
mod ban;
mod checked;
mod extended;
mod handlers;
mod peer_state;
mod pex;
mod readers;
mod tick;
mod vod;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::address_book::AddressBook;
use self::assembly::Assembly;
use self::ban::Bans;
use self::peer_state::PeerState;
use librqbit_utp::UtpSocketUdp;

use super::peer::connect::Dialer;
use super::peer::link::{UtpPolicy, dial_order};
use super::peer::mse::EncryptionPolicy;
use super::peer::{self, PeerCommand, PeerContext, PeerEvent};
use super::playback::{Playback, VodStatus};
use super::rate_limit::RateLimiter;
use super::storage::Storage;
use crate::policy::choker::{Choker, ChokerConfig};
use crate::policy::picker::Picker;
use crate::policy::{PeerKey, Time, Waste, turnover};
use crate::proto::bitfield::Bitfield;
use crate::proto::extension::pex::PexFlags;
use crate::proto::geometry::{Geometry, PieceIndex};
use crate::proto::{InfoHash, PeerId};

pub use self::peer_state::RateMeter;
pub use self::readers::{PlayerEvent, ReaderLink};

/// How the torrent behaves; the defaults suit a desktop client.
#[derive(Debug, Clone)]
pub struct TorrentConfig {
    pub max_peers: usize,
    pub upload_limit: u64,
    pub download_limit: u64,
    /// A peer that delivers none of our requests for this long loses them all (they go to
    /// other peers). A peer that keeps delivering keeps its queue, however slow it is.
    pub request_timeout: Duration,
    pub tick: Duration,
    /// Dialling plus the handshake exchange must finish within this, or the connection is
    /// dropped (a peer that connects and sends nothing, or trickles its handshake).
    pub handshake_timeout: Duration,
    /// A connected peer that sends no complete frame for this long is dropped.
    pub inactivity_timeout: Duration,
    /// At the peer cap, with addresses not yet dialled, while we still download: a peer that
    /// has sent us no block for this long is given up for one of them (`policy::turnover`).
    pub replace_silent_after: Duration,
    /// Peer exchange (BEP 11): tell peers whom we are connected to and dial whom they tell
    /// of. Never for a private torrent; off in worlds, whose relays it would get around.
    pub pex: bool,
    /// MSE/PE: which connections to accept and how to dial (`--encryption`).
    pub encryption: EncryptionPolicy,
    /// uTP beside TCP (`--utp`): whether to accept it and which to dial first.
    pub utp: UtpPolicy,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        Self {
            max_peers: 50,
            upload_limit: 0,
            download_limit: 0,
            request_timeout: Duration::from_secs(20),
            tick: Duration::from_secs(1),
            handshake_timeout: peer::HANDSHAKE_TIMEOUT,
            inactivity_timeout: peer::INACTIVITY_TIMEOUT,
            replace_silent_after: turnover::GIVES_NOTHING_FOR,
            pex: true,
            encryption: EncryptionPolicy::default(),
            utp: UtpPolicy::default(),
        }
    }
}

/// A snapshot for progress lines, reports and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorrentStats {
    pub pieces_have: u32,
    pub piece_count: u32,
    pub bytes_left: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub download_rate: f64,
    pub upload_rate: f64,
    pub peers: usize,
    /// Of `peers`: connections over uTP, and with an RC4-encrypted payload.
    pub peers_utp: usize,
    pub peers_encrypted: usize,
    pub peers_seen: usize,
    pub complete: bool,
    /// Blocks received that we already had, came too late, or were never asked for.
    pub waste: Waste,
    pub hash_failures: u32,
    /// Playback, when the torrent is being watched.
    pub vod: Option<VodStatus>,
}

/// What the torrent needs to run.
pub struct TorrentSetup {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    pub geometry: Geometry,
    pub storage: Arc<Storage>,
    /// Also the owner of which pieces we have (its book's `ours`, from resume data).
    pub picker: Box<dyn Picker + Send>,
    pub listener: Option<TcpListener>,
    /// The UDP socket uTP peers reach us on (the listener's port), when uTP is on.
    pub utp: Option<Arc<UtpSocketUdp>>,
    pub config: TorrentConfig,
    pub seed: u64,
    /// t = 0 of the VoD contract: when work on the torrent began. The torrent task is the one
    /// clock: everything it feeds the playback is measured from here.
    pub started: Instant,
    /// Deadlines and the VoD server, when the torrent is being watched.
    pub playback: Option<Playback>,
    /// The raw info dictionary, served to peers that ask for it (BEP 9); `None` for a private
    /// torrent, whose metadata must come only from its `.torrent` file (BEP 27).
    pub metadata: Option<Arc<[u8]>>,
    /// BEP 27: peers come only from the torrent's trackers (no peer exchange, no DHT).
    pub private: bool,
}

/// The running torrent, seen from outside.
pub struct TorrentHandle {
    pub listen_addr: Option<SocketAddr>,
    pub stats: watch::Receiver<TorrentStats>,
    peers: mpsc::Sender<Vec<SocketAddr>>,
    readers: ReaderLink,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TorrentHandle {
    /// Addresses to dial (from a tracker or `--peer`). While [`PEER_BATCHES`] batches wait,
    /// more are dropped: the known-address set is capped anyway, and trackers send more.
    pub fn add_peers(&self, addrs: Vec<SocketAddr>) {
        if let Err(mpsc::error::TrySendError::Full(dropped)) = self.peers.try_send(addrs) {
            tracing::debug!(
                dropped = dropped.len(),
                "address batches backed up; batch dropped"
            );
        }
    }

    /// A sender for addresses, for the announce loop (which must `try_send` and drop when full).
    pub fn peer_sink(&self) -> mpsc::Sender<Vec<SocketAddr>> {
        self.peers.clone()
    }

    /// What a reader of the torrent's files (an HTTP response) talks to.
    pub fn reader_link(&self) -> ReaderLink {
        self.readers.clone()
    }

    /// Stops every connection and waits for the task to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }

    /// Waits until every piece is present (returns at once for a seed).
    pub async fn wait_complete(&mut self) {
        let _ = self.stats.wait_for(|s| s.complete).await;
    }
}

/// Starts the torrent task (and its listener's accept loop) and returns its handle; the task
/// runs until `TorrentHandle::shutdown`.
pub async fn start(setup: TorrentSetup) -> TorrentHandle {
    let listen_addr = setup.listener.as_ref().and_then(|l| l.local_addr().ok());
    // Bounded: a full channel makes peer tasks stop reading their sockets (TCP back-pressure),
    // so at most this many blocks (16 MiB) wait for the torrent task.
    let (events_tx, events_rx) = mpsc::channel(1024);
    let (peers_tx, peers_rx) = mpsc::channel(PEER_BATCHES);
    let (player_tx, player_rx) = mpsc::channel(readers::PLAYER_EVENTS);
    // Readers wait on this for the pieces they need: a copy of `have`, set after each piece
    // is verified and written (`publish_verified`), never otherwise.
    let have = setup.picker.book().ours().clone();
    let (have_tx, have_rx) = watch::channel(have.clone());
    let cancel = CancellationToken::new();
    let ctx = peer_context(&setup, events_tx);
    let next_key = Arc::new(AtomicU64::new(1));
    let live = Arc::new(AtomicUsize::new(0));
    let admission = accept::Admission {
        ctx: ctx.clone(),
        next_key: Arc::clone(&next_key),
        live: Arc::clone(&live),
        max_peers: setup.config.max_peers,
        handshaking: Arc::new(AtomicUsize::new(0)),
        cancel: cancel.clone(),
    };
    if let Some(listener) = setup.listener {
        tokio::spawn(accept::accept_tcp(listener, admission.clone()));
    }
    if let Some(socket) = setup.utp {
        tokio::spawn(accept::accept_utp(socket, admission));
    }
    // `bytes_left` from the start: the first announce reads it, and a zero there would tell
    // the tracker that a fresh leecher is a seed.
    let stats0 = TorrentStats {
        pieces_have: have.count(),
        piece_count: setup.geometry.piece_count(),
        bytes_left: bytes_left(&setup.geometry, &have),
        complete: have.is_complete(),
        ..Default::default()
    };
    let (stats_tx, stats_rx) = watch::channel(stats0);
    let choker_config = ChokerConfig {
        upload_capacity: (setup.config.upload_limit > 0)
            .then_some(setup.config.upload_limit as f64),
        ..if setup.playback.is_some() {
            ChokerConfig::viewer()
        } else {
            ChokerConfig::default()
        }
    };
    let pex = setup.config.pex && !setup.private;
    let torrent = Torrent {
        geometry: setup.geometry,
        storage: setup.storage,
        picker: setup.picker,
        choker: Choker::new(choker_config),
        rng: StdRng::seed_from_u64(setup.seed),
        peers: HashMap::new(),
        assembly: Assembly::default(),
        verifying: HashSet::new(),
        addresses: AddressBook::default(),
        dialing: HashMap::new(),
        seen: HashSet::new(),
        ctx,
        next_key,
        live,
        config: setup.config,
        started: setup.started,
        playback: setup.playback,
        metadata: setup.metadata,
        pex,
        listen_port: listen_addr.map(|a| a.port()),
        stats: stats_tx,
        have_tx,
        downloaded: 0,
        uploaded: 0,
        waste: Waste::default(),
        hash_failures: 0,
        storage_failed: false,
        bans: Bans::default(),
        last_tick: Instant::now(),
        last_replaced: None,
        // Unbounded but not fed by peers: one message per piece in `verifying` (a piece is
        // checked once at a time), and no new requests go out while eight wait.
        checked: mpsc::unbounded_channel(),
    };
    let task = tokio::spawn(torrent.run(events_rx, peers_rx, player_rx, cancel.clone()));
    TorrentHandle {
        listen_addr,
        stats: stats_rx,
        peers: peers_tx,
        readers: ReaderLink {
            events: player_tx,
            have: have_rx,
        },
        cancel,
        task,
    }
}

/// What every peer task of this torrent is given.
fn peer_context(setup: &TorrentSetup, events: mpsc::Sender<PeerEvent>) -> PeerContext {
    PeerContext {
        info_hash: setup.info_hash,
        our_id: setup.our_id,
        piece_count: setup.geometry.piece_count(),
        storage: Arc::clone(&setup.storage),
        events,
        upload_limit: RateLimiter::new(setup.config.upload_limit),
        download_limit: RateLimiter::new(setup.config.download_limit),
        handshake_timeout: setup.config.handshake_timeout,
        inactivity_timeout: setup.config.inactivity_timeout,
        dialer: Dialer {
            info_hash: setup.info_hash,
            encryption: setup.config.encryption,
            order: dial_order(setup.config.utp, setup.utp.is_some()),
            utp: setup.utp.clone(),
            budget: setup.config.handshake_timeout,
        },
    }
}

/// Result of verifying and writing one piece off the runtime.
struct Checked {
    piece: PieceIndex,
    ok: bool,
    /// Who sent each block (None: the VoD server).
    senders: Vec<Option<PeerKey>>,
    /// SHA-1 of each block, when a ban may depend on it (a failed piece, or a verified piece
    /// that failed before); empty otherwise.
    digests: Vec<[u8; 20]>,
    error: Option<String>,
}

/// The torrent task's state; only the task touches it (see the module doc). Facts owned
/// elsewhere are not copied here: pieces we have, pieces each peer has and requests in flight
/// are the picker's book's; the VoD deadlines and ledger are `playback`'s.
struct Torrent {
    geometry: Geometry,
    storage: Arc<Storage>,
    /// Owns the requests in flight, which pieces each peer has and which we have (its book).
    picker: Box<dyn Picker + Send>,
    choker: Choker,
    /// Seeded by the session: the choker's optimistic picks.
    rng: StdRng,
    /// Connected peers that finished their handshake.
    peers: HashMap<PeerKey, PeerState>,
    /// Blocks of pieces being received, until a piece is handed to be verified.
    assembly: Assembly,
    /// Pieces being hashed and written off the runtime (see `MAX_VERIFYING`).
    verifying: HashSet<PieceIndex>,
    /// Addresses to dial, and those dialled, connected or backing off.
    addresses: AddressBook,
    /// Dials under way, by the key their connection will have.
    dialing: HashMap<PeerKey, SocketAddr>,
    /// Distinct peer ids met, for the peers-seen count (at most `MAX_SEEN`).
    seen: HashSet<PeerId>,
    /// What every peer task is given.
    ctx: PeerContext,
    /// Keys are never reused (shared with the accept loop).
    next_key: Arc<AtomicU64>,
    /// Connections dialled, accepted or alive, against `max_peers` (shared with the accept
    /// loop; each peer task's `Gone` or `Failed` event takes its count back).
    live: Arc<AtomicUsize>,
    config: TorrentConfig,
    /// t = 0: `now()` is measured from here, for the picker, the choker and the playback.
    started: Instant,
    playback: Option<Playback>,
    /// See `TorrentSetup::metadata`; our port, for the extension handshake.
    metadata: Option<Arc<[u8]>>,
    /// Peer exchange is on: the config asks for it and the torrent is not private.
    pex: bool,
    listen_port: Option<u16>,
    stats: watch::Sender<TorrentStats>,
    /// Verified pieces for readers (see `start`).
    have_tx: watch::Sender<Bitfield>,
    /// Payload bytes received from and sent to peers.
    downloaded: u64,
    uploaded: u64,
    /// Received bytes that were not needed; the one count (stats and reports read it).
    waste: Waste,
    hash_failures: u32,
    /// A verified piece could not be written: no more requests (see `on_checked`).
    storage_failed: bool,
    /// Peers that sent data failing a hash check are not taken back.
    bans: Bans,
    /// When `on_tick` last ran, for the rate meters.
    last_tick: Instant,
    /// When peers that give us nothing were last given up for untried addresses (see
    /// `replace_useless`).
    last_replaced: Option<Instant>,
    /// Results of `verify`, back from the blocking pool.
    checked: (
        mpsc::UnboundedSender<Checked>,
        mpsc::UnboundedReceiver<Checked>,
    ),
}

impl Torrent {
    fn now(&self) -> Time {
        self.started.elapsed()
    }

    /// The pieces we hold verified: the picker's book is their one record.
    fn have(&self) -> &Bitfield {
        self.picker.book().ours()
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<PeerEvent>,
        mut new_peers: mpsc::Receiver<Vec<SocketAddr>>,
        mut player: mpsc::Receiver<PlayerEvent>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.playback_wake();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sleep_until_opt(wake) => self.on_deadlines(),
                Some(fetched) = next_fetched(&mut self.playback) => self.on_server_fetched(fetched),
                Some(event) = events.recv() => self.on_event(event),
                Some(event) = player.recv() => self.on_player_event(event),
                Some(checked) = self.checked.1.recv() => self.on_checked(checked),
                Some(addrs) = new_peers.recv() => {
                    for addr in addrs {
                        self.add_candidate(addr);
                    }
                    self.dial_more(&cancel);
                }
                _ = tick.tick() => {
                    self.on_tick();
                    self.addresses.requeue_due(Instant::now());
                    self.dial_more(&cancel);
                }
            }
            // The picker's calling order: whatever the event made it take back is CANCELled
            // here, once, rather than by each handler.
            self.send_cancels();
        }
        // What readers said before the end still counts in the last snapshot (a report is
        // written from it once this task is done).
        while let Ok(event) = player.try_recv() {
            self.on_player_event(event);
        }
        self.publish_stats();
        for peer in self.peers.values() {
            peer.send(PeerCommand::Close);
        }
        let _ = self.storage.sync();
    }

    fn add_candidate(&mut self, addr: SocketAddr) {
        self.add_candidate_hinted(addr, PexFlags(0));
    }

    /// As `add_candidate`, with what peer exchange said of it: one that speaks uTP is dialled
    /// over uTP first, a seed before the rest (PEX offers seeds only while we download).
    fn add_candidate_hinted(&mut self, addr: SocketAddr, hints: PexFlags) {
        if self.bans.is_banned_addr(&addr) {
            return;
        }
        match hints.has(PexFlags::SEED) {
            true => self.addresses.offer_first(addr),
            false => self.addresses.offer(addr),
        }
        if hints.has(PexFlags::UTP) {
            self.addresses.hint_utp(addr);
        }
    }

    fn dial_more(&mut self, cancel: &CancellationToken) {
        while self.live.load(Ordering::Relaxed) < self.config.max_peers {
            let Some(addr) = self.addresses.next() else {
                break;
            };
            if self
                .peers
                .values()
                .any(|p| p.addr == addr || p.listening_addr() == Some(addr))
                || self.dialing.values().any(|a| *a == addr)
                || self.bans.is_banned_addr(&addr)
            {
                continue;
            }
            let key = PeerKey(self.next_key.fetch_add(1, Ordering::Relaxed));
            self.live.fetch_add(1, Ordering::Relaxed);
            self.dialing.insert(key, addr);
            let mut ctx = self.ctx.clone();
            // A peer that PEX says speaks uTP is dialled over uTP first.
            if self.addresses.speaks_utp(&addr) {
                ctx.dialer.order = dial_order(UtpPolicy::Prefer, ctx.dialer.utp.is_some());
            }
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = peer::run_outgoing(key, addr, ctx) => {}
                }
            });
        }
    }

    fn publish_stats(&self) {
        let (down, up) = self.peers.values().fold((0.0, 0.0), |(d, u), p| {
            (d + p.download.rate(), u + p.upload.rate())
        });
        let have = self.have();
        let left = bytes_left(&self.geometry, have);
        self.stats.send_replace(TorrentStats {
            pieces_have: have.count(),
            piece_count: self.geometry.piece_count(),
            bytes_left: left,
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            download_rate: down,
            upload_rate: up,
            peers: self.peers.len(),
            peers_utp: self.peers.values().filter(|p| p.utp).count(),
            peers_encrypted: self.peers.values().filter(|p| p.encrypted).count(),
            peers_seen: self.seen.len(),
            complete: have.is_complete(),
            waste: self.waste,
            hash_failures: self.hash_failures,
            vod: self.playback.as_ref().map(|p| p.status(self.now(), have)),
        });
    }
}

/// Pieces being hashed and written at once. When the disk or the hash falls behind the network,
/// no new requests go out until it catches up, so memory does not grow with the torrent.
const MAX_VERIFYING: usize = 8;

/// Distinct peer ids remembered for the peers-seen count, at most.
const MAX_SEEN: usize = 65_536;

/// Address batches (a tracker answer, or `--peer`) waiting for the torrent task at most.
const PEER_BATCHES: usize = 64;

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_fetched(playback: &mut Option<Playback>) -> Option<super::playback::ServerFetched> {
    match playback {
        Some(p) => p.next_fetched().await,
        None => std::future::pending().await,
    }
}

fn bytes_left(geometry: &Geometry, have: &Bitfield) -> u64 {
    geometry
        .pieces()
        .filter(|p| !have.has(*p))
        .map(|p| u64::from(geometry.piece_size(p)))
        .sum()
}
