//! btvod: a BitTorrent-compatible video-on-demand client.
//!
//! Layers: `proto` (bytes to typed values) and `policy` (decisions) are pure: no tokio, no clock,
//! no RNG of their own. `engine` and `service` are the tokio shell that moves bytes.

// The network-facing code (peer frames, tracker and origin requests and replies, files on
// disk) must not panic on what strangers send: no `unwrap`/`expect`/`panic!`/`unreachable!`
// outside tests. An unavoidable one carries `#[allow(...)]` and a comment saying why it
// cannot fail. (`policy` is fed only typed, range-checked values from `proto`.)
#[cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
pub mod engine;
pub mod experiment;
pub mod make_torrent;
pub mod policy;
#[cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
pub mod proto;
#[cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
pub mod service;
pub mod units;
