//! The tokio shell: sockets, files, timers. It moves bytes and reports events; policy lives in
//! `crate::policy`.

pub mod announce;
pub mod codec;
pub mod dht;
pub mod lsd;
pub mod magnet;
pub mod metadata_fetch;
pub mod multicast;
pub mod peer;
pub mod playback;
pub mod rate_limit;
pub mod report;
pub mod search;
pub mod session;
pub mod storage;
pub mod torrent;
pub mod vod_server;
