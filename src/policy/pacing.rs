//! How deep a client keeps its queue of requests to each peer. The engine paces its requests
//! by this, and `btvod simulate` paces its simulated viewer by it too: with a shallower queue
//! the simulated sequential picker fetched only pieces about to be due and paid 40 points more
//! than the real one (BENCHMARKS.md "Scale").

use std::time::Duration;

/// A peer's rate is kept requested this far ahead.
pub const PIPELINE: Duration = Duration::from_secs(2);
/// Blocks kept requested of a peer at least (before its rate is measured too) and at most.
pub const MIN_QUEUE: usize = 16;
pub const MAX_QUEUE: usize = 250;
