//! The tokio shell: sockets, files, timers. It moves bytes and reports events; policy lives in
//! `crate::policy`.

pub mod announce;
pub mod codec;
pub mod rate_limit;
pub mod storage;
