//! A local world in one process: the built-in tracker and the metered origin (port 0 on the
//! world's address, 127.0.0.1 by default), the scenario's content and torrent, and every world
//! peer and viewer as a real engine session with its own listen port and limits, each on its
//! schedule. A world may be one part of several (`part`): it then runs its share of the
//! members, and parts after the first use the first one's tracker and origin. The run
//! directory receives `world.json` (URLs, paths and every peer's traffic, refreshed every
//! two seconds), `events.log`, the content, partial copies and viewer reports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::content::materialise;
use super::links::Links;
use super::member::LtProgram;
use super::part::{Part, RemoteServices};
use super::peers::run_peer;
pub use super::process_limits::MAX_MEMBERS_PER_PROCESS;
use super::process_limits::connections_per_member;
use super::roster::{PeerRecord, PeerRole, PeerState, Roster};
use super::scenario::{PeerClient, Scenario};
use super::shared::WorldShared;
use super::viewers::run_viewer;
use crate::engine::session::PolicyKind;
use crate::engine::torrent::TorrentConfig;
use crate::make_torrent::{MakeTorrentOptions, make_torrent};
use crate::proto::metainfo::Metainfo;
use crate::service::origin::{self, OriginConfig, OriginMeter};
use crate::service::tracker::{self, AddressBook, TrackerConfig};

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("run directory {}: {source}", path.display())]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the content: {0}")]
    Content(std::io::Error),
    #[error("cannot make the torrent: {0}")]
    Torrent(String),
    #[error("cannot listen on the world's address: {0}")]
    Listen(std::io::Error),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(
        "this part runs {0} peers and viewers; one process runs at most \
         {MAX_MEMBERS_PER_PROCESS}: split the world with --part"
    )]
    TooManyMembers(usize),
    #[error("viewer class {class}: no file `{file}` in the torrent")]
    NoMovie { class: String, file: String },
}

/// How a world runs.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Run the scenario's viewers (an experiment runner may drive its own instead).
    pub run_viewers: bool,
    /// Re-announce interval the tracker gives peers.
    pub announce_interval: Duration,
    /// Every world peer runs this client, whatever its class says.
    pub peer_client: Option<PeerClient>,
    /// Every class's link has this round-trip time, whatever the scenario says.
    pub rtt: Option<Duration>,
    /// How libtorrent world peers are run.
    pub lt: LtProgram,
    /// The address every member, the tracker and the origin listen on.
    pub bind: IpAddr,
    /// Which share of the scenario's members this world runs.
    pub part: Part,
    /// The tracker and origin of part 1, for any other part.
    pub remote: Option<RemoteServices>,
    /// Every viewer class plays under this policy, whatever the scenario says.
    pub viewer_policy: Option<PolicyKind>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            run_viewers: true,
            announce_interval: Duration::from_secs(20),
            peer_client: None,
            rtt: None,
            lt: LtProgram::default(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            part: Part::whole(),
            remote: None,
            viewer_policy: None,
        }
    }
}

/// `world.json`: where things are, and what every peer did.
#[derive(Debug, Clone, Serialize)]
pub struct WorldSummary {
    pub scenario: String,
    /// `K/N`: which part of the scenario this world runs (`1/1`: all of it).
    pub part: String,
    pub pid: u32,
    pub tracker_url: String,
    pub origin_url: String,
    pub torrent: PathBuf,
    pub content: PathBuf,
    pub torrent_name: String,
    pub info_hash: String,
    pub piece_count: u32,
    pub piece_size: u32,
    pub total_bytes: u64,
    pub uptime_s: f64,
    pub origin_bytes_served: u64,
    pub peers: Vec<PeerRecord>,
}

/// A running world.
pub struct World {
    shared: Arc<WorldShared>,
    roster: Roster,
    meter: Arc<OriginMeter>,
    cancel: CancellationToken,
    peer_tasks: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
    services: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl World {
    /// Makes the content and torrent in `run_dir`, starts the tracker, the origin and every
    /// peer's schedule, and writes `world.json`.
    pub async fn start(
        scenario: Scenario,
        run_dir: &Path,
        options: WorldOptions,
    ) -> Result<World, WorldError> {
        let scenario = scenario
            .with_client(options.peer_client)
            .with_rtt(options.rtt)
            .with_viewer_policy(options.viewer_policy);
        let links = scenario.has_latency().then(|| Arc::new(Links::default()));
        if links.is_some() && (options.part.n() > 1 || !options.bind.is_loopback()) {
            return Err(WorldError::Unsupported(
                "link latency (rtt_ms, --rtt) needs a world in one part on 127.0.0.1: \
                 its relays stand on loopback addresses",
            ));
        }
        let members = (0..(scenario.peer_count() + scenario.viewer_count()) as usize)
            .filter(|&m| options.part.holds(m))
            .count();
        if members > MAX_MEMBERS_PER_PROCESS {
            return Err(WorldError::TooManyMembers(members));
        }
        let max_peers = connections_per_member(members, TorrentConfig::default().max_peers);
        let dir_err = |source| WorldError::RunDir {
            path: run_dir.to_path_buf(),
            source,
        };
        for sub in ["content", "peers", "viewers"] {
            std::fs::create_dir_all(run_dir.join(sub)).map_err(dir_err)?;
        }
        let run_dir = std::fs::canonicalize(run_dir).map_err(dir_err)?;
        let events = std::fs::File::create(run_dir.join("events.log")).map_err(dir_err)?;

        let meter = Arc::new(OriginMeter::new());
        let (urls, listeners) = service_listeners(&options).await?;
        let RemoteServices {
            tracker_url,
            origin_url,
        } = urls;
        let (content_path, meta, torrent_path) =
            make_torrent_file(&scenario, &run_dir, &tracker_url).await?;

        let mut services = Vec::new();
        if let Some((tracker, origin)) = listeners {
            let book = links.clone().map(|l| l as Arc<dyn AddressBook>);
            services.push(serve_tracker(tracker, options.announce_interval, book));
            services.push(serve_origin(origin, &content_path, &meter));
        }

        let shared = Arc::new(WorldShared {
            scenario,
            meta,
            run_dir,
            content_path,
            torrent_path,
            lt: options.lt,
            links,
            bind: options.bind,
            part: options.part,
            max_peers,
            tracker_url,
            origin_url,
            started: Instant::now(),
            events: Mutex::new(Some(events)),
        });
        shared.event(&format!(
            "world `{}` started: tracker {}, origin {}, {members} members here with at most \
             {max_peers} connections each",
            shared.scenario.name, shared.tracker_url, shared.origin_url
        ));
        let roster = Roster::new(shared.started);
        let cancel = CancellationToken::new();
        let peer_tasks = spawn_members(&shared, &roster, options.run_viewers, &cancel);
        wait_first_arrivals(&shared, &roster).await;
        let world = World {
            writer: tokio::spawn(write_periodically(
                Arc::clone(&shared),
                roster.clone(),
                Arc::clone(&meter),
                cancel.clone(),
            )),
            shared,
            roster,
            meter,
            cancel,
            peer_tasks,
            services,
        };
        world.write_summary();
        Ok(world)
    }

    pub fn tracker_url(&self) -> &str {
        &self.shared.tracker_url
    }

    /// The origin (VoD server) root URL, in BEP 19 layout.
    pub fn origin_url(&self) -> &str {
        &self.shared.origin_url
    }

    /// The world's torrent, announcing to its tracker.
    pub fn torrent_path(&self) -> &Path {
        &self.shared.torrent_path
    }

    /// The complete content: the file, or the torrent's top directory.
    pub fn content_path(&self) -> &Path {
        &self.shared.content_path
    }

    /// What the world's own tasks read (the experiment runner starts its viewers from it).
    pub(crate) fn shared(&self) -> &WorldShared {
        &self.shared
    }

    /// When the world started: the origin of its recorded times.
    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub fn metainfo(&self) -> &Metainfo {
        &self.shared.meta
    }

    pub fn run_dir(&self) -> &Path {
        &self.shared.run_dir
    }

    /// Bytes the origin has served (to every viewer, world or not).
    pub fn origin_bytes_served(&self) -> u64 {
        self.meter.bytes_served()
    }

    /// Every world peer's and viewer's record, now.
    pub fn peers(&self) -> Vec<PeerRecord> {
        self.roster.snapshot()
    }

    /// Waits until every world viewer has its report (or failed), up to `bound`; true if so.
    pub async fn wait_viewers(&self, bound: Duration) -> bool {
        let end = Instant::now() + bound;
        loop {
            let done = self
                .peers()
                .iter()
                .filter(|r| r.role == PeerRole::Viewer)
                .all(|r| r.report.is_some() || r.state == PeerState::Failed);
            if done {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn summary(&self) -> WorldSummary {
        summary(&self.shared, &self.roster, &self.meter)
    }

    fn write_summary(&self) {
        write_json(&self.shared.run_dir, &self.summary());
    }

    /// Stops every peer (each announces `stopped`), then the tracker and the origin, and
    /// writes the final `world.json`. Returns the final summary.
    pub async fn stop(self) -> WorldSummary {
        self.cancel.cancel();
        for task in self.peer_tasks {
            // A session's shutdown announces briefly; never wait on one forever.
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let _ = self.writer.await;
        if let Some(links) = &self.shared.links {
            links.close_all().await;
        }
        for (stop, task) in self.services {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.shared.event("world stopped");
        let summary = summary(&self.shared, &self.roster, &self.meter);
        write_json(&self.shared.run_dir, &summary);
        summary
    }
}

/// Waits (up to 30 s) until every world peer due at t = 0 is online or failed, and gives their
/// first announces a moment, so a client started on `world.json` finds them at the tracker.
async fn wait_first_arrivals(shared: &WorldShared, roster: &Roster) {
    // Roster indices of this part's world peers due at once (peers are enrolled first).
    let (mut due, mut index, mut member) = (Vec::new(), 0, 0);
    for class in &shared.scenario.peers {
        for i in 0..class.count {
            member += 1;
            if !shared.part.holds(member - 1) {
                continue;
            }
            if class.arrival.of(i, class.count).is_zero() {
                due.push(index);
            }
            index += 1;
        }
    }
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if !roster.any_waiting(&due) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The tracker's and origin's URLs: part 1 listens for them (returned), another part is given
/// part 1's.
async fn service_listeners(
    options: &WorldOptions,
) -> Result<(RemoteServices, Option<(TcpListener, TcpListener)>), WorldError> {
    match (&options.remote, options.part.runs_services()) {
        (Some(remote), false) => Ok((remote.clone(), None)),
        (None, true) => {
            let tracker = bind(options.bind).await?;
            let origin = bind(options.bind).await?;
            let urls = RemoteServices {
                tracker_url: format!("http://{}/announce", local(&tracker)?),
                origin_url: format!("http://{}/", local(&origin)?),
            };
            Ok((urls, Some((tracker, origin))))
        }
        _ => Err(WorldError::Unsupported(
            "part 1 runs the tracker and the origin; every other part is given theirs",
        )),
    }
}

async fn bind(address: IpAddr) -> Result<TcpListener, WorldError> {
    TcpListener::bind(SocketAddr::new(address, 0))
        .await
        .map_err(WorldError::Listen)
}

/// Writes the scenario's content and its torrent (announcing to `tracker_url`) under
/// `run_dir`; refuses a viewer class whose movie file the torrent does not hold.
async fn make_torrent_file(
    scenario: &Scenario,
    run_dir: &Path,
    tracker_url: &str,
) -> Result<(PathBuf, Metainfo, PathBuf), WorldError> {
    let (content_path, torrent_bytes) = {
        let spec = scenario.content.clone();
        let dir = run_dir.join("content");
        let announce = tracker_url.to_string();
        tokio::task::spawn_blocking(move || build_content(&spec, &dir, &announce))
            .await
            .map_err(|e| WorldError::Torrent(e.to_string()))??
    };
    let meta =
        Metainfo::from_bytes(&torrent_bytes).map_err(|e| WorldError::Torrent(e.to_string()))?;
    let torrent_path = run_dir.join(format!("{}.torrent", meta.name));
    std::fs::write(&torrent_path, &torrent_bytes).map_err(|source| WorldError::RunDir {
        path: run_dir.to_path_buf(),
        source,
    })?;
    for class in &scenario.viewers {
        if meta.movie_file(class.file.as_deref()).is_none() {
            return Err(WorldError::NoMovie {
                class: class.name.clone(),
                file: class.file.clone().unwrap_or_default(),
            });
        }
    }
    Ok((content_path, meta, torrent_path))
}

type Service = (oneshot::Sender<()>, JoinHandle<()>);

fn serve_tracker(
    listener: TcpListener,
    interval: Duration,
    address_book: Option<Arc<dyn AddressBook>>,
) -> Service {
    let config = TrackerConfig {
        interval,
        min_interval: Some(Duration::from_secs(2)),
        address_book,
        ..TrackerConfig::default()
    };
    spawn_service(|stop| async move {
        if let Err(e) = tracker::serve(listener, config, stop).await {
            tracing::error!("world tracker: {e}");
        }
    })
}

fn serve_origin(listener: TcpListener, content: &Path, meter: &Arc<OriginMeter>) -> Service {
    let mut config = OriginConfig::new(content.to_path_buf());
    config.meter = Arc::clone(meter);
    spawn_service(|stop| async move {
        if let Err(e) = origin::serve(listener, config, stop).await {
            tracing::error!("world origin: {e}");
        }
    })
}

/// Enrols every world peer (and viewer, if the world runs them) and starts its task.
fn spawn_members(
    shared: &Arc<WorldShared>,
    roster: &Roster,
    run_viewers: bool,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let pieces = shared.meta.geometry.piece_count();
    let mut tasks = Vec::new();
    let mut member = 0usize;
    let mut ours = || {
        member += 1;
        shared.part.holds(member - 1)
    };
    for (c, class) in shared.scenario.peers.iter().enumerate() {
        let role = if class.is_seed_class() {
            PeerRole::Seed
        } else {
            PeerRole::Partial
        };
        for i in 0..class.count {
            if !ours() {
                continue;
            }
            let tracked = roster.enrol(format!("{}-{i}", class.name), &class.name, role, pieces);
            let task = run_peer(Arc::clone(shared), c, i, tracked, cancel.clone());
            tasks.push(tokio::spawn(task));
        }
    }
    if run_viewers {
        for (c, class) in shared.scenario.viewers.iter().enumerate() {
            for i in 0..class.count {
                if !ours() {
                    continue;
                }
                let name = format!("{}-{i}", class.name);
                let tracked = roster.enrol(name, &class.name, PeerRole::Viewer, pieces);
                let task = run_viewer(Arc::clone(shared), c, i, tracked, cancel.clone());
                tasks.push(tokio::spawn(task));
            }
        }
    }
    tasks
}

fn local(listener: &TcpListener) -> Result<std::net::SocketAddr, WorldError> {
    listener.local_addr().map_err(WorldError::Listen)
}

/// Writes the content under `dir` and returns its path and the torrent's bytes.
pub fn build_content(
    spec: &super::scenario::ContentSpec,
    dir: &Path,
    announce: &str,
) -> Result<(PathBuf, Vec<u8>), WorldError> {
    let path = materialise(spec, dir).map_err(WorldError::Content)?;
    let opts = MakeTorrentOptions {
        path: path.clone(),
        piece_length: spec.piece_size,
        announce: vec![announce.to_string()],
        created_by: Some("btvod world".into()),
        creation_date: None,
        ..MakeTorrentOptions::default()
    };
    let bytes =
        make_torrent(&opts, &mut |_, _| {}).map_err(|e| WorldError::Torrent(e.to_string()))?;
    Ok((path, bytes))
}

fn spawn_service<F, Fut>(serve: F) -> (oneshot::Sender<()>, JoinHandle<()>)
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<()>();
    let stop = Box::pin(async move {
        let _ = rx.await;
    });
    (tx, tokio::spawn(serve(stop)))
}

fn summary(shared: &WorldShared, roster: &Roster, meter: &OriginMeter) -> WorldSummary {
    let meta = &shared.meta;
    WorldSummary {
        scenario: shared.scenario.name.clone(),
        part: shared.part.to_string(),
        pid: std::process::id(),
        tracker_url: shared.tracker_url.clone(),
        origin_url: shared.origin_url.clone(),
        torrent: shared.torrent_path.clone(),
        content: shared.content_path.clone(),
        torrent_name: meta.name.clone(),
        info_hash: meta.info_hash.to_hex(),
        piece_count: meta.geometry.piece_count(),
        piece_size: meta.geometry.piece_len(),
        total_bytes: meta.total_len(),
        uptime_s: shared.started.elapsed().as_secs_f64(),
        origin_bytes_served: meter.bytes_served(),
        peers: roster.snapshot(),
    }
}

/// Writes `world.json` whole (to a temporary name, then renamed) so readers never see half.
fn write_json(run_dir: &Path, summary: &WorldSummary) {
    let Ok(json) = serde_json::to_string_pretty(summary) else {
        return;
    };
    let tmp = run_dir.join(".world.json.tmp");
    if std::fs::write(&tmp, json + "\n").is_ok() {
        let _ = std::fs::rename(&tmp, run_dir.join("world.json"));
    }
}

async fn write_periodically(
    shared: Arc<WorldShared>,
    roster: Roster,
    meter: Arc<OriginMeter>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        write_json(&shared.run_dir, &summary(&shared, &roster, &meter));
    }
}
