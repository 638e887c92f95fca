//! The ordering bound: the least penalty had every byte this viewer received from peers gone
//! to the best piece it could still have saved, whoever held what.

use super::{DuePiece, effective_deadline, movie_bytes};

/// The least penalty the bytes in `received` (time, bytes; any order) could have left, if each
/// byte received at t could count for any piece due at t or later. Receipts with a NaN time
/// are ignored. Between 0 and the movie's total bytes.
pub fn ordering_bound(pieces: &[DuePiece], received: &[(f64, u64)]) -> u64 {
    let mut due: Vec<(f64, u64)> = pieces
        .iter()
        .map(|p| (effective_deadline(p), p.bytes))
        .collect();
    due.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut receipts: Vec<(f64, u64)> = received
        .iter()
        .copied()
        .filter(|(t, _)| !t.is_nan())
        .collect();
    receipts.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Earliest deadline first is optimal: a byte usable for a piece is usable for every piece
    // due later, so filling the earliest piece first never takes a byte a later one needed.
    let mut next_receipt = 0;
    let mut pool: u64 = 0;
    let mut saved: u64 = 0;
    for (deadline, bytes) in due {
        while let Some(&(t, b)) = receipts.get(next_receipt)
            && t <= deadline
        {
            pool = pool.saturating_add(b);
            next_receipt += 1;
        }
        let take = pool.min(bytes);
        pool -= take;
        saved = saved.saturating_add(take);
    }
    movie_bytes(pieces).saturating_sub(saved)
}
