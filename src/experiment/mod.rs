//! Swarm experiments: a local world of BitTorrent peers described by a small TOML scenario.
//!
//! - [`scenario`]: the scenario format (content, peer classes with saved amounts, limits,
//!   arrivals and churn, VoD viewers), parsed once with clear errors.
//! - [`content`]: deterministic content from a seed, single or multi-file, and partial copies
//!   holding only chosen pieces.
//! - [`world`]: runs a world in one process with the real engine (tracker, origin, seeds,
//!   partial peers, viewers) and reports every peer's traffic.

pub mod content;
pub mod peers;
pub mod plot;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod viewers;
pub mod world;

pub use peers::PeerRecord;
pub use scenario::Scenario;
pub use world::{World, WorldError, WorldOptions, WorldSummary};
