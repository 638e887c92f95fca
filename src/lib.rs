//! btvod: a BitTorrent-compatible video-on-demand client.
//!
//! Layers: `proto` (bytes to typed values) and `policy` (decisions) are pure: no tokio, no clock,
//! no RNG of their own. `engine` and `service` are the tokio shell that moves bytes.

pub mod engine;
pub mod experiment;
pub mod make_torrent;
pub mod policy;
pub mod proto;
pub mod service;
pub mod units;
