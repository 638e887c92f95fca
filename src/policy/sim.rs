//! A pure, seeded, event-driven swarm simulator for comparing piece policies under the VoD
//! contract: simulated peers serve our requests FIFO at their upload rate after a latency, the
//! VoD server takes over every piece not verified at its deadline, and the same `VodSession`
//! ledger that scores real runs scores the simulated one. No async runtime, no clock: time is a number.

mod player;
mod scenarios;
mod world;

use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use player::PlayerScript;
pub use scenarios::{RATE, ScenarioKind, scenario};

use crate::policy::PeerKey;
use crate::policy::picker::{
    DeadlineConfig, DeadlineError, DeadlinePicker, Picker, RarestFirst, Sequential,
};
use crate::policy::vod::{Ledger, Schedule};
use crate::policy::{Time, Waste};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("cannot build the {policy} picker for the scenario: {source}")]
    Picker {
        policy: &'static str,
        source: DeadlineError,
    },
    #[error("peer {peer} of the scenario: {reason}")]
    BadPeer { peer: usize, reason: PeerSpecError },
    #[error(
        "the simulation passed t = {at:?} without completing the movie; the scenario or the \
         simulator is inconsistent"
    )]
    NoProgress { at: Time },
}

/// What is wrong with a simulated peer's description.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerSpecError {
    #[error("upload rate {0} is not positive")]
    RateNotPositive(f64),
    #[error("share {0} is not between 0 and 1")]
    ShareOutOfRange(f64),
}

/// Which pieces a simulated peer holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Holding {
    /// Every piece (a seed).
    All,
    /// Each piece independently with this probability (drawn from the scenario's seed).
    Fraction(f64),
    /// The first share of the pieces.
    Prefix(f64),
    /// The last share of the pieces.
    Suffix(f64),
    /// Exactly these piece indices.
    Pieces(Range<u32>),
    /// Exactly these pieces, anywhere (a world peer's drawn partial copy).
    Set(Vec<u32>),
}

/// One simulated peer: what it holds, how fast it uploads to us, when it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPeer {
    pub holding: Holding,
    /// Payload bytes per second it sends us (its upload share for us; it never chokes us).
    pub upload_rate: f64,
    /// One-way latency; a request takes this long to reach it and a block to come back.
    pub latency: Duration,
    pub arrive: Time,
    pub leave: Option<Time>,
    /// Sends garbage: every piece with one of its blocks fails the hash check.
    pub corrupt: bool,
    /// Sends every block it was asked for, CANCEL or not, as libtorrent does with requests it
    /// has already moved to its send buffer (rate-limited peers keep many there).
    pub ignores_cancel: bool,
    /// Pieces it comes to hold during the run (a peer downloading too), each from a time.
    pub gains: Vec<(Time, u32)>,
    /// Its upload rate for us from each time on, as others start or stop sharing it.
    pub rate_steps: Vec<(Time, f64)>,
}

impl SimPeer {
    pub fn new(holding: Holding, upload_rate: f64, latency: Duration) -> Self {
        Self {
            holding,
            upload_rate,
            latency,
            arrive: Duration::ZERO,
            leave: None,
            corrupt: false,
            ignores_cancel: false,
            gains: Vec::new(),
            rate_steps: Vec::new(),
        }
    }
    pub fn gaining(mut self, gains: Vec<(Time, u32)>) -> Self {
        self.gains = gains;
        self
    }
    pub fn with_rate_steps(mut self, steps: Vec<(Time, f64)>) -> Self {
        self.rate_steps = steps;
        self
    }
    pub fn leaving_at(mut self, at: Time) -> Self {
        self.leave = Some(at);
        self
    }
    pub fn arriving_at(mut self, at: Time) -> Self {
        self.arrive = at;
        self
    }
    pub fn corrupt(mut self) -> Self {
        self.corrupt = true;
        self
    }
    pub fn ignoring_cancel(mut self) -> Self {
        self.ignores_cancel = true;
        self
    }
}

/// A world to simulate: torrent, movie, peers, and how our client paces its requests.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub geometry: Geometry,
    pub schedule: Schedule,
    pub peers: Vec<SimPeer>,
    /// Request pipe per peer, in seconds of its measured rate (WebTorrent uses 0.5-1 s).
    pub pipeline: Duration,
    /// Pipe depth bounds in blocks (the lower one applies before a rate is measured).
    pub depth: RangeInclusive<usize>,
    /// Every peer with room in its pipe is asked at this period, besides after its blocks.
    pub tick: Duration,
    /// Seeds the peers' random holdings and the picker's RNG.
    pub seed: u64,
    /// Deadlines from a player that opens, plays and seeks (`btvod stream`), instead of the
    /// fixed schedule.
    pub player: Option<PlayerScript>,
}

impl Scenario {
    /// The same world with every peer sending what it was asked for despite CANCELs (a swarm
    /// of libtorrent peers with full send buffers).
    pub fn with_peers_ignoring_cancel(mut self) -> Self {
        self.name.push_str(", CANCEL ignored");
        for p in &mut self.peers {
            p.ignores_cancel = true;
        }
        self
    }
}

/// The policies the simulator can build, so all are compared under identical conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Deadline(DeadlineConfig),
    RarestFirst,
    Sequential,
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Deadline(_) => "deadline",
            Policy::RarestFirst => "rarest-first",
            Policy::Sequential => "sequential",
        }
    }

    /// A picker of this policy for the scenario's torrent, with nothing held yet.
    pub fn build(&self, scenario: &Scenario) -> Result<Box<dyn Picker + Send>, SimError> {
        let g = scenario.geometry.clone();
        let ours = Bitfield::empty(g.piece_count());
        let rng = StdRng::seed_from_u64(scenario.seed ^ 0x05ee_d0fb_770d);
        let err = |source| SimError::Picker {
            policy: self.name(),
            source,
        };
        Ok(match self {
            Policy::Deadline(config) => Box::new(
                DeadlinePicker::for_schedule(g, &ours, &scenario.schedule, rng, config.clone())
                    .map_err(err)?,
            ),
            Policy::RarestFirst => {
                Box::new(RarestFirst::new(g, &ours, rng).map_err(|e| err(e.into()))?)
            }
            Policy::Sequential => Box::new(Sequential::new(g, &ours).map_err(|e| err(e.into()))?),
        })
    }
}

/// What a simulated playback came to.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub policy: &'static str,
    /// The score and its companions, from the same `VodSession` a real run uses.
    pub ledger: Ledger,
    /// Blocks that arrived and were not needed.
    pub waste: Waste,
    pub movie_bytes: u64,
    /// When every movie piece was verified.
    pub complete_at: Time,
    pub stall: Duration,
    /// Pieces the server delivered bytes for, with the bytes, in the order fetched.
    pub server_fetches: Vec<(PieceIndex, u64)>,
    /// Every block a peer delivered to us, duplicates included, in arrival order.
    pub arrivals: Vec<(Time, PeerKey, BlockRef)>,
    /// Peers disconnected for sending data that failed a hash check.
    pub banned: Vec<PeerKey>,
}

impl SimOutcome {
    pub fn penalty_fraction(&self) -> f64 {
        self.ledger.penalty_bytes as f64 / self.movie_bytes.max(1) as f64
    }
}

/// Runs the scenario with the policy's picker.
pub fn run_policy(scenario: &Scenario, policy: &Policy) -> Result<SimOutcome, SimError> {
    let mut picker = policy.build(scenario)?;
    run(scenario, picker.as_mut())
}

/// Runs the scenario with any picker (fresh, holding nothing) until the movie is complete.
pub fn run(scenario: &Scenario, picker: &mut dyn Picker) -> Result<SimOutcome, SimError> {
    world::World::new(scenario, picker)?.run()
}
