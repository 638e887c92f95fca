//! Shared fixtures for integration tests (`mod common;`): content and torrents (`movie_dir`),
//! in-process sessions and waits on them (`session`), hand-written peers (`loopback`, `raw_peer`), and
//! guards for real third-party programs and the inputs they need. Each test binary uses a
//! subset.

pub mod cli;
pub mod content;
pub mod external;
pub mod loopback;
pub mod movie_dir;
pub mod netns;
pub mod process;
pub mod raw_peer;
pub mod session;
