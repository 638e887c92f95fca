//! Servers a user starts: the built-in tracker, the metered VoD origin, and the HTTP server that
//! streams a torrent's files to a player while they download.

pub mod origin;
pub mod stream;
pub mod tracker;
