//! Swarm experiments: a local world of BitTorrent peers described by a small TOML scenario.
//!
//! - [`scenario`]: the scenario format (content, peer classes with saved amounts, limits,
//!   arrivals and churn, VoD viewers), parsed once with clear errors.
//! - [`content`]: deterministic content from a seed, single or multi-file, and partial copies
//!   holding only chosen pieces.
//! - [`world`]: runs a world in one process with the real engine (tracker, origin, seeds,
//!   partial peers, viewers) and reports every peer's traffic; [`roster`] holds what each
//!   member is doing, `shared` what every member's task reads, `peers` and `viewers` their
//!   lives; a world peer runs btvod or libtorrent (`scripts/lt_peer.py`), seen alike through
//!   `member`; `links` puts latency relays in front of them.
//! - [`simulate`]: a scenario in the pure simulator, as each viewer sees it, with
//!   `swarm_model` for how the rest of the swarm grows meanwhile.
//! - [`part`]: a world split over processes or hosts, each part running its share.
//! - [`runner`]: an experiment, a scenario run per policy and repetition, with [`report`] and
//!   [`plot`] for its results and [`deadline_settings`] for the deadline policy's knobs.

pub mod content;
pub mod deadline_settings;
pub mod error;
mod links;
mod member;
pub mod part;
mod peers;
pub mod plot;
mod process_limits;
pub mod report;
pub mod roster;
pub mod runner;
pub mod scenario;
mod shared;
pub mod simulate;
mod swarm_model;
mod viewers;
pub mod world;

pub use member::{LtPeerError, LtProgram};
pub use roster::{PeerRecord, PeerRole, PeerState};
pub use scenario::Scenario;
pub use world::{World, WorldError, WorldOptions, WorldSummary};
