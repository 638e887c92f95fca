//! Pure decisions: which blocks to request (`picker`), whom to unchoke (`choker`), which
//! connections make room at the cap (`turnover`). Time and randomness are passed in by the
//! caller; nothing here reads a clock or owns an unseeded RNG.

pub mod bounds;
pub mod choker;
pub mod pacing;
pub mod picker;
pub mod sim;
pub mod turnover;
pub mod vod;

use std::time::Duration;

/// Time since the torrent started (the VoD contract's t = 0), as measured by the shell.
pub type Time = Duration;

/// A connection's identity inside one torrent, assigned by the engine and never reused while
/// the torrent runs (so a late event from a closed connection cannot hit a new one).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Payload bytes received that did not become part of a piece, by why. The torrent task (or
/// the simulator) owns the one count; reports and snapshots read it from there.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Waste {
    /// A block we already held (an endgame race, a duplicate answer).
    pub duplicate: u64,
    /// A block of a piece the VoD server had taken over, or that nobody reads: it came too
    /// late to save anything.
    pub late: u64,
    /// A block we never asked that peer for (or took back more than a send buffer ago).
    pub unasked: u64,
}

impl Waste {
    pub fn total(&self) -> u64 {
        self.duplicate + self.late + self.unasked
    }
}

/// What the engine measured about a peer when it asks the picker for requests. The picker
/// itself tracks which pieces the peer has and which requests are in flight to it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PeerView {
    pub key: PeerKey,
    /// Payload bytes per second received from this peer, recently.
    pub download_rate: f64,
    /// Smoothed request round-trip time, if one has been measured yet.
    pub rtt: Option<Duration>,
}

impl PeerView {
    /// A view with no measurements yet (a fresh connection).
    pub fn new(key: PeerKey) -> Self {
        Self {
            key,
            download_rate: 0.0,
            rtt: None,
        }
    }
}
