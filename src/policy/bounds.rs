//! Reference numbers for a viewer's penalty that no policy can beat: the capacity bound (what
//! the world peers could have delivered at most) and the ordering bound (what the bytes this
//! viewer did receive could have saved at most). Pure functions of a recorded trace.
//!
//! Time is in seconds since the viewer's t = 0 (the contract's), as `f64`. A byte received at
//! time t counts for a piece due at d when t <= d: at d the client asks the server only for
//! what it lacks, so a byte landing exactly then is (at best) in time, and the lenient reading
//! keeps both numbers lower bounds.
//!
//! Odd inputs never panic; they are read so that the numbers stay lower bounds:
//! - a NaN deadline is "never due" (+inf): any byte may serve that piece;
//! - a spell or receipt with a NaN time, a spell with `to <= from`, a NaN, zero or negative
//!   upload contributes nothing; an infinite upload is unlimited;
//! - spells are cut to t >= 0 (the viewer receives nothing before it starts), receipts are
//!   taken at their times as given;
//! - piece numbers out of range in a spell are ignored, repeated ones count once;
//! - spells of one peer should not overlap; if they do, each counts in full;
//! - byte counts saturate at `u64::MAX` (a movie larger than that reads as that large).

mod capacity;
mod ordering;

pub use capacity::capacity_bound;
pub use ordering::ordering_bound;

/// One movie piece: when it is due and how many bytes of it the server would have to send if
/// nothing of it arrived from peers in time (its length).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct DuePiece {
    /// Seconds since the viewer's t = 0 (d_i of the contract).
    pub deadline: f64,
    pub bytes: u64,
}

/// A stretch of time during which one world peer was online with a fixed set of pieces and
/// could upload at a fixed rate; a peer's life is a sequence of these.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldingSpell {
    pub peer: u32,
    /// The spell covers [from, to), seconds since the viewer's t = 0.
    pub from: f64,
    pub to: f64,
    /// Upload capacity in bytes per second.
    pub upload: f64,
    /// Indices into the movie's `DuePiece` list of the pieces the peer held throughout.
    pub pieces: Vec<u32>,
}

/// Total bytes of the movie pieces (saturating: the bounds are never above it).
pub fn movie_bytes(pieces: &[DuePiece]) -> u64 {
    pieces
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.bytes))
}

/// A deadline as both bounds read it: NaN is "never due".
fn effective_deadline(piece: &DuePiece) -> f64 {
    if piece.deadline.is_nan() {
        f64::INFINITY
    } else {
        piece.deadline
    }
}

#[cfg(test)]
mod tests;
