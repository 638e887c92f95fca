//! The life of one world peer: arrive, start with its saved pieces, trade under its limits,
//! leave and rejoin on the churn schedule, and after completing linger then reincarnate with a
//! fresh partial set. Every change is written to the peer's shared [`PeerRecord`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::content::{draw_pieces, mix, write_partial};
use super::scenario::PeerClass;
use super::world::WorldShared;
use crate::engine::report::VodReport;
use crate::engine::session::{self, Content, PolicyKind, Session, SessionOptions};
use crate::engine::torrent::{TorrentConfig, TorrentStats};

/// What one world peer or viewer is doing and has done, for `world.json` and reports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PeerRecord {
    /// `<class>-<i>`.
    pub name: String,
    pub class: String,
    /// `seed`, `partial` or `viewer`.
    pub role: String,
    /// `waiting`, `online`, `lingering`, `offline`, `gone`, `failed` or `stopped`.
    pub state: String,
    pub incarnation: u32,
    pub listen: Option<SocketAddr>,
    /// Pieces saved when the current incarnation started.
    pub pieces_at_start: u32,
    pub pieces_have: u32,
    pub piece_count: u32,
    /// Payload bytes over every incarnation and session.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Times this peer completed the torrent.
    pub completions: u32,
    pub error: Option<String>,
    /// A viewer's VoD report once its movie is complete.
    pub report: Option<VodReport>,
}

/// A peer's record in the world's table, with the totals of its finished sessions.
pub(crate) struct Tracked {
    pub records: Arc<Mutex<Vec<PeerRecord>>>,
    pub index: usize,
    /// Totals of sessions already shut down.
    pub base_down: u64,
    pub base_up: u64,
}

impl Tracked {
    pub fn update(&self, f: impl FnOnce(&mut PeerRecord)) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut records[self.index]);
    }

    pub fn show(&self, s: &TorrentStats) {
        let (down, up) = (self.base_down + s.downloaded, self.base_up + s.uploaded);
        self.update(|r| {
            r.pieces_have = s.pieces_have;
            r.piece_count = s.piece_count;
            r.downloaded = down;
            r.uploaded = up;
        });
    }

    /// Shuts a session down and folds its totals into the base.
    pub async fn close(&mut self, session: Session) {
        let s = session.torrent.stats.borrow().clone();
        self.show(&s);
        self.base_down += s.downloaded;
        self.base_up += s.uploaded;
        session.shutdown().await;
    }
}

/// Options shared by every session of the world.
pub(crate) fn session_options(
    shared: &WorldShared,
    limits: super::scenario::Limits,
    seed: u64,
) -> SessionOptions {
    SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        torrent: TorrentConfig {
            upload_limit: limits.upload,
            download_limit: limits.download,
            ..TorrentConfig::default()
        },
        peers: Vec::new(),
        trackers: Some(vec![vec![shared.tracker_url.clone()]]),
        policy: PolicyKind::Rarest,
        seed,
        vod: None,
    }
}

/// Sleeps for `d`; false when the world stopped first.
pub(crate) async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = sleep(d) => true,
    }
}

enum Outcome {
    Stop,
    Leave,
    Completed,
}

/// Runs peer `i` of class `class_index` until the world stops (or it leaves for good).
pub(crate) async fn run_peer(
    shared: Arc<WorldShared>,
    class_index: usize,
    i: u32,
    mut tracked: Tracked,
    cancel: CancellationToken,
) {
    let class: &PeerClass = &shared.scenario.peers[class_index];
    let name = format!("{}-{i}", class.name);
    let arrive = shared.started + class.arrival.of(i, class.count);
    tokio::select! {
        _ = cancel.cancelled() => { tracked.update(|r| r.state = "stopped".into()); return; }
        _ = sleep_until(arrive) => {}
    }
    let dir = shared.run_dir.join("peers").join(&name);
    let mut incarnation = 0u32;
    loop {
        let content = match prepare(&shared, class, class_index, i, incarnation, &dir).await {
            Ok(c) => c,
            Err(e) => {
                shared.event(&format!("{name}: cannot prepare its data: {e}"));
                tracked.update(|r| {
                    r.state = "failed".into();
                    r.error = Some(e);
                });
                return;
            }
        };
        tracked.update(|r| r.incarnation = incarnation);
        let seed = mix(
            shared.scenario.seed,
            &[1, class_index as u64, u64::from(i), u64::from(incarnation)],
        );
        // One incarnation: online and offline spells on the same data.
        let completed = loop {
            let options = session_options(&shared, class.limits, seed);
            let session =
                match session::start(&shared.meta, content.clone(), options, |_, _| {}).await {
                    Ok(s) => s,
                    Err(e) => {
                        shared.event(&format!("{name}: cannot start: {e}"));
                        tracked.update(|r| {
                            r.state = "failed".into();
                            r.error = Some(e.to_string());
                        });
                        return;
                    }
                };
            let s0 = session.torrent.stats.borrow().clone();
            tracked.update(|r| {
                r.state = "online".into();
                r.listen = session.torrent.listen_addr;
                r.pieces_at_start = s0.pieces_have;
            });
            shared.event(&format!(
                "{name}: online at {} with {}/{} pieces (incarnation {incarnation})",
                session
                    .torrent
                    .listen_addr
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                s0.pieces_have,
                s0.piece_count
            ));
            let outcome = watch(&session, &tracked, class, &cancel).await;
            match outcome {
                Outcome::Stop => {
                    tracked.close(session).await;
                    tracked.update(|r| r.state = "stopped".into());
                    return;
                }
                Outcome::Completed => {
                    tracked.update(|r| {
                        r.completions += 1;
                        r.state = "lingering".into();
                    });
                    shared.event(&format!("{name}: complete; seeding before it reincarnates"));
                    let go_on =
                        linger_while_showing(&session, &tracked, class.reincarnate, &cancel).await;
                    tracked.close(session).await;
                    if !go_on {
                        tracked.update(|r| r.state = "stopped".into());
                        return;
                    }
                    break true;
                }
                Outcome::Leave => {
                    tracked.close(session).await;
                    tracked.update(|r| {
                        r.state = "offline".into();
                        r.listen = None;
                    });
                    let Some(back) = class.rejoin_after else {
                        shared.event(&format!("{name}: left for good"));
                        tracked.update(|r| r.state = "gone".into());
                        return;
                    };
                    shared.event(&format!(
                        "{name}: left; rejoins in {:.0} s",
                        back.as_secs_f64()
                    ));
                    if !pause(back, &cancel).await {
                        tracked.update(|r| r.state = "stopped".into());
                        return;
                    }
                }
            }
        };
        if completed {
            incarnation += 1;
            shared.event(&format!("{name}: reincarnates with a fresh partial set"));
        }
    }
}

/// Waits for the session's next turn: the world stopping, the peer's time to leave, or (for a
/// peer that reincarnates) the last piece, updating the record as stats change.
async fn watch(
    session: &Session,
    tracked: &Tracked,
    class: &PeerClass,
    cancel: &CancellationToken,
) -> Outcome {
    let leave_at = class.leave_after.map(|d| Instant::now() + d);
    let mut stats = session.torrent.stats.clone();
    let was_complete = stats.borrow().complete;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let s = stats.borrow_and_update().clone();
        tracked.show(&s);
        if class.reincarnate.is_some() && s.complete && !was_complete {
            return Outcome::Completed;
        }
        let leave = async {
            match leave_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Outcome::Stop,
            _ = leave => return Outcome::Leave,
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    }
}

/// Keeps a completed session seeding for `d` (`None`: until the world stops), showing its
/// stats; false if the world stopped first.
pub(crate) async fn linger_while_showing(
    session: &Session,
    tracked: &Tracked,
    d: Option<Duration>,
    cancel: &CancellationToken,
) -> bool {
    let end = d.map(|d| Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tracked.show(&session.torrent.stats.borrow());
        let until_end = async {
            match end {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = until_end => return true,
            _ = tick.tick() => {}
        }
    }
}

/// The content a peer's incarnation starts from: the shared complete copy for a seed, else a
/// fresh partial copy in its own directory.
async fn prepare(
    shared: &Arc<WorldShared>,
    class: &PeerClass,
    class_index: usize,
    i: u32,
    incarnation: u32,
    dir: &std::path::Path,
) -> Result<Content, String> {
    if class.is_seed_class() {
        return Ok(Content::Existing(shared.content_path.clone()));
    }
    let pieces = draw_pieces(
        class.draw,
        class.fraction_for(i),
        shared.meta.geometry.piece_count(),
        i,
        class.count,
        mix(
            shared.scenario.seed,
            &[2, class_index as u64, u64::from(i), u64::from(incarnation)],
        ),
    );
    let target: PathBuf = dir.join(&shared.meta.name);
    let job = {
        let shared = Arc::clone(shared);
        let target = target.clone();
        move || write_partial(&shared.meta, &shared.content_path, &target, &pieces)
    };
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(Content::SaveAs(target))
}
