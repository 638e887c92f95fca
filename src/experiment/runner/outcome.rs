//! What a run produced: each viewer's score, report and curve, each world peer's traffic,
//! the origin's meter; written as `run.json`.

use std::path::PathBuf;

use serde::Serialize;

use super::bounds::PenaltyBounds;
use crate::engine::report::VodReport;
use crate::experiment::roster::PeerRole;

/// One point of a viewer's curve, `t` seconds after it started (its contract t = 0).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    pub t: f64,
    /// Movie bytes present contiguously from the start (`None` where the client does not say).
    pub contiguous: Option<u64>,
    pub penalty: u64,
    /// Payload bytes received from peers so far.
    pub downloaded: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerOutcome {
    pub name: String,
    pub class: String,
    pub arrive_s: f64,
    pub rate_bytes_per_s: u64,
    pub delay_s: f64,
    pub prefetch_s: f64,
    /// The viewer's report, parsed: btvod's, or lt_vod.py's (which writes the same keys).
    pub score: Option<VodReport>,
    /// The viewer's report as written (all its keys).
    pub report: Option<serde_json::Value>,
    pub samples: Vec<Sample>,
    /// Payload totals when it was stopped (it kept seeding after completing).
    pub downloaded: u64,
    pub uploaded: u64,
    pub error: Option<String>,
    /// The viewer's t = 0 in the world's time (seconds since the world started).
    pub world_offset_s: Option<f64>,
    /// The least penalty it could have paid (`policy::bounds`), once the run is over.
    pub bounds: Option<PenaltyBounds>,
}

/// What a world peer (not a viewer) moved during the run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerTraffic {
    pub name: String,
    pub class: String,
    pub role: PeerRole,
    pub downloaded: u64,
    pub uploaded: u64,
    pub completions: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub policy: String,
    /// Which clients the world's peers ran (`btvod`, `libtorrent` or `mixed`).
    pub world: String,
    /// 1-based repetition.
    pub run: u32,
    pub dir: PathBuf,
    pub wall_s: f64,
    /// Some viewer had not completed when the run's time bound ran out.
    pub timed_out: bool,
    /// Bytes the world's VoD origin served: must equal the viewers' summed penalty.
    pub origin_bytes: u64,
    pub viewers: Vec<ViewerOutcome>,
    pub peers: Vec<PeerTraffic>,
    pub error: Option<String>,
}

impl RunOutcome {
    pub fn penalty_sum(&self) -> u64 {
        self.viewers
            .iter()
            .filter_map(|v| v.score.as_ref())
            .map(|s| s.penalty_bytes)
            .sum()
    }

    /// Every viewer completed and was scored.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self
                .viewers
                .iter()
                .all(|v| v.score.as_ref().is_some_and(|s| s.complete_at_s.is_some()))
    }
}
