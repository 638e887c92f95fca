//! Shared fixtures for integration tests (`mod common;`): guards for real third-party
//! BitTorrent programs and the inputs they need. Each test binary uses a subset.

pub mod content;
pub mod external;
pub mod loopback;
pub mod process;
