//! The world's roster: one [`PeerRecord`] per world peer and viewer, what it is and what it is
//! doing, shared between the world (which writes `world.json` from it) and each peer's task
//! (which alone updates its own record through a [`Tracked`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::member::{Member, MemberStats};
use crate::engine::report::VodReport;
use crate::proto::bitfield::Bitfield;

/// What a world member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    /// Starts with every piece.
    Seed,
    /// Starts with a drawn part of the pieces.
    #[default]
    Partial,
    /// Plays the movie against the world's origin.
    Viewer,
}

/// What a world member is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Not arrived yet.
    #[default]
    Waiting,
    Online,
    /// Complete and seeding before it reincarnates.
    Lingering,
    /// A viewer whose movie is complete, seeding for later viewers.
    Seeding,
    /// Left on the churn schedule; rejoins later.
    Offline,
    /// Left for good.
    Gone,
    /// Could not prepare or start; `error` says why.
    Failed,
    /// The world stopped.
    Stopped,
}

/// What one world peer or viewer is doing and has done, for `world.json` and reports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PeerRecord {
    /// `<class>-<i>`.
    pub name: String,
    pub class: String,
    pub role: PeerRole,
    pub state: PeerState,
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
    /// What it held over time: from each instant (seconds since the world started) until the
    /// next, these pieces, or `None` while offline. Kept for the penalty bounds, not written.
    #[serde(skip)]
    pub holdings: Vec<(f64, Option<Arc<Bitfield>>)>,
}

/// Every member's record; each index is written by one peer task only.
#[derive(Clone)]
pub(crate) struct Roster {
    records: Arc<Mutex<Vec<PeerRecord>>>,
    /// The world's start: holdings are timed from it.
    started: Instant,
}

impl Roster {
    pub fn new(started: Instant) -> Roster {
        Roster {
            records: Arc::default(),
            started,
        }
    }

    /// Adds a member waiting to arrive and returns the handle its task updates it through.
    pub fn enrol(&self, name: String, class: &str, role: PeerRole, piece_count: u32) -> Tracked {
        let mut all = self.lock();
        all.push(PeerRecord {
            name,
            class: class.to_string(),
            role,
            piece_count,
            ..PeerRecord::default()
        });
        Tracked {
            roster: self.clone(),
            index: all.len() - 1,
            base_down: 0,
            base_up: 0,
        }
    }

    /// Every record, now.
    pub fn snapshot(&self) -> Vec<PeerRecord> {
        self.lock().clone()
    }

    /// Whether any of the members at `indices` has not arrived yet.
    pub fn any_waiting(&self, indices: &[usize]) -> bool {
        let all = self.lock();
        indices.iter().any(|&i| all[i].state == PeerState::Waiting)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PeerRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One member's record in the roster, with the totals of its finished sessions.
pub(crate) struct Tracked {
    roster: Roster,
    index: usize,
    /// Totals of sessions already shut down.
    base_down: u64,
    base_up: u64,
}

impl Tracked {
    pub fn update(&self, f: impl FnOnce(&mut PeerRecord)) {
        f(&mut self.roster.lock()[self.index]);
    }

    pub fn set_state(&self, state: PeerState) {
        self.update(|r| r.state = state);
    }

    /// Marks the member failed with the reason.
    pub fn fail(&self, error: String) {
        self.update(|r| {
            r.state = PeerState::Failed;
            r.error = Some(error);
        });
    }

    /// Waits until the member's arrival; false (and the record stopped) if the world stops
    /// first.
    pub async fn wait_arrival(&self, at: Instant, cancel: &CancellationToken) -> bool {
        tokio::select! {
            _ = cancel.cancelled() => {
                self.set_state(PeerState::Stopped);
                false
            }
            _ = sleep_until(at) => true,
        }
    }

    pub fn show(&self, s: &MemberStats) {
        let (down, up) = (self.base_down + s.downloaded, self.base_up + s.uploaded);
        let now = self.roster.started.elapsed().as_secs_f64();
        self.update(|r| {
            r.pieces_have = s.pieces_have;
            r.piece_count = s.piece_count;
            r.downloaded = down;
            r.uploaded = up;
            let changed = r.holdings.last().is_none_or(|(_, held)| *held != s.have);
            if s.have.is_some() && changed {
                r.holdings.push((now, s.have.clone()));
            }
        });
    }

    /// Shuts a client down and folds its totals into the base.
    pub async fn close(&mut self, member: Member) {
        let s = member.stats();
        self.show(&s);
        self.base_down += s.downloaded;
        self.base_up += s.uploaded;
        let now = self.roster.started.elapsed().as_secs_f64();
        self.update(|r| r.holdings.push((now, None)));
        member.shutdown().await;
    }

    /// Keeps a completed session seeding for `d` (`None`: until the world stops), showing its
    /// stats; false if the world stopped first.
    pub async fn linger(
        &self,
        member: &Member,
        d: Option<Duration>,
        cancel: &CancellationToken,
    ) -> bool {
        let end = d.map(|d| Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            self.show(&member.stats());
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
}
