//! One checking function per fuzz target. Each takes raw bytes, never panics on any input
//! unless btvod broke a promise, and panics (an `assert!`) when it did: a decoder that panics,
//! a value that does not re-encode to the bytes it came from, a picker whose bookkeeping
//! disagrees with a model of it. Structured inputs (event lists, chunk sizes) are read from the
//! bytes with [`Input`], so a libFuzzer artifact replays byte for byte in a regression test.

mod bencode;
mod extension;
mod input;
mod lan;
mod metainfo;
mod mse;
mod picker;
mod tracker;
mod wire;

pub use bencode::bencode;
pub use extension::{extension, magnet, pex};
pub use input::Input;
pub use lan::lan;
pub use metainfo::metainfo;
pub use mse::mse_handshake;
pub use picker::{peer_messages, picker_events};
pub use tracker::{announce_query, tracker_response, udp_tracker};
pub use wire::wire_stream;
