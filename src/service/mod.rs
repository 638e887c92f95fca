//! Servers a user starts on their own: the built-in tracker and the metered VoD origin.

pub mod origin;
pub mod tracker;
