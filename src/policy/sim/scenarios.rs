//! Named scenarios shared by the tests and the comparison table: one 2 Mbit/s movie of two
//! minutes, and swarms that are fast, about as fast as playback, lopsided, scarce or slow.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Holding, Scenario, SimPeer};
use crate::policy::vod::{Schedule, VodParams};
use crate::proto::geometry::{BLOCK_LEN, Geometry};

/// Playback rate R of every scenario: 256 KiB/s (about 2 Mbit/s).
pub const RATE: u64 = 256 * 1024;
/// Movie length in seconds of playback.
pub const MOVIE_SECS: u64 = 120;
/// Start-up delay D and prefetch P (the first piece is due at D - P = 4 s).
pub const DELAY: Duration = Duration::from_secs(6);
pub const PREFETCH: Duration = Duration::from_secs(2);
/// 256 KiB pieces: 16 blocks each, 120 pieces in the movie.
pub const PIECE_LEN: u32 = 16 * BLOCK_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioKind {
    /// Four seeds, each as fast as playback: 4 R in all.
    FastSwarm,
    /// Three seeds at 0.37 R: 1.1 R in all, little slack.
    AboutR,
    /// One seed at R with a short RTT, five seeds at 0.04 R behind long RTTs; our client keeps
    /// a fixed queue of 8 requests per peer.
    OneFastManySlow,
    /// Two peers hold the first half at 0.6 R each; the only holder of the second half, a seed
    /// at 0.5 R, leaves at t = 40 s.
    ScarcePieces,
    /// Two seeds at 0.3 R: the server must supply about 40% whatever the policy.
    SlowSwarm,
    /// Six peers each holding a random half, 0.25 R each.
    PartialHolders,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::FastSwarm,
        ScenarioKind::AboutR,
        ScenarioKind::OneFastManySlow,
        ScenarioKind::ScarcePieces,
        ScenarioKind::SlowSwarm,
        ScenarioKind::PartialHolders,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::FastSwarm => "fast swarm (4 R)",
            ScenarioKind::AboutR => "about R (1.1 R)",
            ScenarioKind::OneFastManySlow => "one fast + 5 slow",
            ScenarioKind::ScarcePieces => "scarce half, holder leaves",
            ScenarioKind::SlowSwarm => "slow swarm (0.6 R)",
            ScenarioKind::PartialHolders => "6 partial holders",
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The scenario of that kind; `seed` varies latencies, random holdings and the picker's RNG.
pub fn scenario(kind: ScenarioKind, seed: u64) -> Scenario {
    let movie_len = RATE * MOVIE_SECS;
    let geometry = match Geometry::new(PIECE_LEN, &[movie_len]) {
        Ok(g) => g,
        Err(e) => unreachable!("constant geometry is valid: {e}"),
    };
    let schedule = VodParams::new(RATE, DELAY, PREFETCH)
        .and_then(|params| Schedule::new(params, &geometry, 0..movie_len));
    let schedule = match schedule {
        Ok(s) => s,
        Err(e) => unreachable!("constant schedule is valid: {e}"),
    };
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let r = RATE as f64;
    let mut peer = |holding: Holding, share: f64, base_ms: u64| {
        let jitter = rng.random_range(0..=base_ms / 2 + 5);
        SimPeer::new(holding, share * r, ms(base_ms + jitter))
    };
    let peers = match kind {
        ScenarioKind::FastSwarm => (0..4).map(|_| peer(Holding::All, 1.0, 30)).collect(),
        ScenarioKind::AboutR => (0..3).map(|_| peer(Holding::All, 0.37, 40)).collect(),
        ScenarioKind::OneFastManySlow => std::iter::once(peer(Holding::All, 1.0, 20))
            .chain((0..5).map(|_| peer(Holding::All, 0.04, 200)))
            .collect(),
        ScenarioKind::ScarcePieces => vec![
            peer(Holding::Prefix(0.5), 0.6, 40),
            peer(Holding::Prefix(0.5), 0.6, 40),
            peer(Holding::All, 0.5, 60).leaving_at(Duration::from_secs(40)),
        ],
        ScenarioKind::SlowSwarm => (0..2).map(|_| peer(Holding::All, 0.3, 50)).collect(),
        ScenarioKind::PartialHolders => (0..6)
            .map(|_| peer(Holding::Fraction(0.5), 0.25, 50))
            .collect(),
    };
    // A client with a fixed request queue (no rate-based pipelining) in the lopsided swarm:
    // the slow peers then sit on several blocks each, as users report.
    let depth = match kind {
        ScenarioKind::OneFastManySlow => 8..=8,
        _ => 2..=64,
    };
    Scenario {
        name: kind.name().to_string(),
        geometry,
        schedule,
        peers,
        pipeline: Duration::from_secs(1),
        depth,
        tick: ms(250),
        seed,
        player: None,
    }
}
