//! The scenario format: a small TOML file describing a local world. Parsed once into typed,
//! validated values; unknown keys and out-of-range values are refused with the key named.
//!
//! ```toml
//! name = "fast"                  # optional; default: the file name
//! description = "..."            # optional
//! seed = 42                      # seeds the content, the partial draws and every peer's RNG
//!
//! [content]                      # one of: size (one file), [[content.files]] (a directory), path
//! name = "movie.bin"             # the torrent's name (file name, or directory name)
//! size = "4MiB"                  # generated deterministically from `seed`
//! piece_size = "64KiB"           # power of two, 16 KiB to 16 MiB; default: chosen from the size
//! seed = 7                       # optional content seed; default: the scenario's
//! # [[content.files]]            # a multi-file torrent instead of `size`:
//! # path = "extras/trailer.bin"  #   `/`-separated path inside the torrent's directory
//! # size = "512KiB"
//! # path = "real/movie.mp4"      # or a real file or directory (relative to the scenario file)
//!
//! [[peers]]                      # a class of world peers (repeat for each class)
//! name = "seed"                  # letters, digits, `-` and `_`; peers are named seed-0, seed-1...
//! count = 2
//! have = 1.0                     # fraction of pieces saved at start (1.0 = a seed)
//! have_max = 1.0                 # optional: saved fractions spread evenly from have to have_max
//! draw = "random"                # which pieces: random | prefix | suffix | stripe
//! client = "btvod"               # btvod | libtorrent (scripts/lt_peer.py); default btvod
//! rtt_ms = 0                     # round trip of every connection to this class's peers
//! jitter_ms = 0                  #   (a delaying relay in front of each), plus up to jitter
//! upload = "100KiB"              # per peer, bytes/s ("KiB" etc.; a bare number is KiB/s;
//! download = "unlimited"         #   0 or "unlimited" = no limit). Default: unlimited
//! arrive = 0                     # seconds after the world starts
//! arrive_spread = 0              # the class's arrivals spread evenly over this many seconds
//! leave_after = 30               # churn: leave after this many seconds online...
//! rejoin_after = 10              # ...and come back (with what it had) after this many offline
//! reincarnate = true             # after completing, linger, then restart with a fresh partial set
//! linger = 5                     # seconds a completed peer seeds before it reincarnates
//! max_peers = 50                 # optional: connections each peer keeps at most (default:
//!                                #   its client's, btvod 50, libtorrent 200)
//!
//! [[viewers]]                    # VoD viewers run by the world (repeat for each class)
//! name = "viewer"
//! count = 1
//! rate = "60KiB"                 # R per second (a bare number is KiB/s, as `btvod --rate`)
//! delay = 6                      # D, seconds
//! prefetch = 2                   # P, seconds (P <= D)
//! policy = "deadline"            # deadline | rarest | sequential
//! file = "feature.bin"           # optional: the movie in a multi-file torrent (default largest)
//! arrive = 0
//! arrive_spread = 0
//! upload = "unlimited"
//! download = "unlimited"
//! stay = 10                      # optional: seconds to keep seeding after the movie is
//!                                #   complete; default: until the world stops
//! max_peers = 50                 # optional, as for [[peers]]
//! ```
//!
//! `draw = "stripe"` gives peer i of a class the contiguous run of pieces starting at i/count of
//! the torrent (wrapping), so the class's peers hold different parts.

mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use self::raw::RawScenario;
use crate::engine::session::PolicyKind;
use crate::service::relay::LinkDelay;

/// Most peers and viewers a scenario may hold, over all its parts (a guard against typos; one
/// process runs at most `world::MAX_MEMBERS_PER_PROCESS` of them).
pub const MAX_WORLD_PEERS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario {origin}: {source}")]
    Toml {
        origin: String,
        source: toml::de::Error,
    },
    #[error("scenario {origin}: {at}: {reason}")]
    Invalid {
        origin: String,
        at: String,
        reason: String,
    },
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub content: ContentSpec,
    pub peers: Vec<PeerClass>,
    pub viewers: Vec<ViewerClass>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContentSpec {
    /// The torrent's name: its file, or its top directory.
    pub name: String,
    /// `None`: chosen from the total size by [`crate::make_torrent::auto_piece_length`].
    pub piece_size: Option<u32>,
    pub source: ContentSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentSource {
    /// Deterministic bytes from `seed`. `files` is `None` for a single-file torrent of
    /// `size` bytes, else the directory's files (path components, length) in order.
    Generated {
        seed: u64,
        size: u64,
        files: Option<Vec<(Vec<String>, u64)>>,
    },
    /// A real file or directory (absolute, or resolved against the scenario's directory).
    Path(PathBuf),
}

/// Which pieces a partial peer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Draw {
    Random,
    Prefix,
    Suffix,
    Stripe,
}

/// Which BitTorrent program a world peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerClient {
    /// btvod's own engine, in the world's process (rarest-first).
    #[default]
    Btvod,
    /// A libtorrent 2.0 session: `scripts/lt_peer.py` under `/usr/bin/python3`.
    Libtorrent,
}

impl PeerClient {
    pub fn name(self) -> &'static str {
        match self {
            PeerClient::Btvod => "btvod",
            PeerClient::Libtorrent => "libtorrent",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerClass {
    pub name: String,
    pub count: u32,
    pub have: f64,
    pub have_max: f64,
    pub draw: Draw,
    pub client: PeerClient,
    /// The link between this class's peers and every viewer (and the peers that dial them).
    pub link: LinkDelay,
    pub limits: Limits,
    pub arrival: Arrival,
    pub leave_after: Option<Duration>,
    pub rejoin_after: Option<Duration>,
    /// Linger time before reincarnating with a fresh partial set; `None`: no reincarnation.
    pub reincarnate: Option<Duration>,
}

impl PeerClass {
    /// The fraction of pieces peer `i` of the class saved: spread evenly from `have` to
    /// `have_max`, so each world peer starts with a different amount.
    pub fn fraction_for(&self, i: u32) -> f64 {
        if self.count <= 1 {
            return self.have;
        }
        self.have + (self.have_max - self.have) * f64::from(i) / f64::from(self.count - 1)
    }

    pub fn is_seed_class(&self) -> bool {
        self.have >= 1.0
    }
}

/// Upload and download caps in bytes per second (0 = unlimited), and the connection cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub upload: u64,
    pub download: u64,
    /// Connections each member keeps at most (`None`: its client's default; a world too big
    /// for the open-files limit may hold a btvod member to fewer).
    pub max_peers: Option<u32>,
}

impl Limits {
    /// Connections a btvod member keeps at most, given the most the world's process allows
    /// each member (the open-files rule): the class's cap if it is lower.
    pub fn connections(&self, process_cap: usize) -> usize {
        self.max_peers
            .map_or(process_cap, |cap| process_cap.min(cap as usize))
    }

    /// The upload cap in bytes per second, `None` when unlimited.
    pub fn upload_rate(&self) -> Option<f64> {
        (self.upload > 0).then_some(self.upload as f64)
    }
    /// The download cap in bytes per second, `None` when unlimited.
    pub fn download_rate(&self) -> Option<f64> {
        (self.download > 0).then_some(self.download as f64)
    }
}

/// When the peers of a class arrive.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Arrival {
    pub at: Duration,
    pub spread: Duration,
}

impl Arrival {
    /// Arrival of peer `i` of `count`: evenly spaced over the spread.
    pub fn of(&self, i: u32, count: u32) -> Duration {
        if count <= 1 {
            return self.at;
        }
        self.at + self.spread.mul_f64(f64::from(i) / f64::from(count - 1))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViewerClass {
    pub name: String,
    pub count: u32,
    pub rate: u64,
    pub delay: Duration,
    pub prefetch: Duration,
    pub policy: PolicyKind,
    pub file: Option<String>,
    pub arrival: Arrival,
    pub limits: Limits,
    pub stay: Option<Duration>,
}

impl Scenario {
    /// Reads and validates a scenario file; a relative content `path` is taken from its
    /// directory.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        Self::parse(&text, &path.display().to_string(), &stem, base)
    }

    /// Parses scenario text. `origin` names it in errors, `default_name` is used when it has no
    /// `name`, and a relative content `path` is resolved against `base`.
    pub fn parse(
        text: &str,
        origin: &str,
        default_name: &str,
        base: &Path,
    ) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|source| ScenarioError::Toml {
            origin: origin.to_string(),
            source,
        })?;
        raw.validate(base, default_name)
            .map_err(|(at, reason)| ScenarioError::Invalid {
                origin: origin.to_string(),
                at,
                reason,
            })
    }

    /// Number of world peers (not viewers).
    pub fn peer_count(&self) -> u32 {
        self.peers.iter().map(|c| c.count).sum()
    }

    /// The same scenario with every world peer running `client` (`None`: as written).
    pub fn with_client(&self, client: Option<PeerClient>) -> Scenario {
        let mut out = self.clone();
        if let Some(client) = client {
            for class in &mut out.peers {
                class.client = client;
            }
        }
        out
    }

    /// The same scenario with every class's round-trip time `rtt` (`None`: as written).
    pub fn with_rtt(&self, rtt: Option<Duration>) -> Scenario {
        let mut out = self.clone();
        if let Some(rtt) = rtt {
            for class in &mut out.peers {
                class.link.rtt = rtt;
            }
        }
        out
    }

    /// The same scenario with every viewer class playing under `policy` (`None`: as written).
    pub fn with_viewer_policy(&self, policy: Option<PolicyKind>) -> Scenario {
        let mut out = self.clone();
        if let Some(policy) = policy {
            for class in &mut out.viewers {
                class.policy = policy;
            }
        }
        out
    }

    /// Whether any connection in its world has latency.
    pub fn has_latency(&self) -> bool {
        self.peers.iter().any(|c| c.link != LinkDelay::default())
    }

    /// Which clients its world peers run: `btvod`, `libtorrent`, or `mixed`.
    pub fn world_kind(&self) -> &'static str {
        let mut clients = self.peers.iter().map(|c| c.client);
        match clients.next() {
            None => PeerClient::Btvod.name(),
            Some(first) if clients.all(|c| c == first) => first.name(),
            Some(_) => "mixed",
        }
    }

    pub fn viewer_count(&self) -> u32 {
        self.viewers.iter().map(|c| c.count).sum()
    }
}
