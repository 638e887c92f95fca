//! Pure decisions: which blocks to request, whom to unchoke, what is late. Time and randomness
//! are passed in by the caller.

pub mod choker;
pub mod picker;
