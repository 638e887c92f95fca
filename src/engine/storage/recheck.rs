//! Resume: hash every piece on disk and report which are present. Pieces are shared among a
//! few threads (each with one reused piece buffer) because SHA-1 is the bottleneck once the
//! data is in the page cache.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;

use crate::proto::bitfield::Bitfield;

use super::{Storage, StorageError};

/// Threads a recheck uses by default: at most two (measured in BENCHMARKS.md, "Hashing").
pub fn default_recheck_threads() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

impl Storage {
    /// Hashes every piece on disk; a piece is present when its bytes hash right. Missing or
    /// short files make their pieces absent. `progress(checked, total)` runs on the calling
    /// thread after each piece.
    pub fn recheck(&self, progress: &mut dyn FnMut(u32, u32)) -> Result<Bitfield, StorageError> {
        self.recheck_with_threads(default_recheck_threads(), progress)
    }

    /// [`Storage::recheck`] with an explicit number of hashing threads (at least one).
    pub fn recheck_with_threads(
        &self,
        threads: usize,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Bitfield, StorageError> {
        let total = self.geometry().piece_count();
        let mut present = Bitfield::empty(total);
        let next_piece = AtomicU32::new(0);
        let stop = AtomicBool::new(false);
        let mut first_error = None;
        let mut checked = 0u32;
        thread::scope(|scope| {
            // Bounded so workers cannot run far ahead of a slow progress callback.
            let (sender, results) = mpsc::sync_channel(64);
            for _ in 0..threads.max(1) {
                let sender = sender.clone();
                let (next_piece, stop) = (&next_piece, &stop);
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(self.geometry().piece_len() as usize);
                    while !stop.load(Ordering::Relaxed) {
                        let index = next_piece.fetch_add(1, Ordering::Relaxed);
                        let Some(piece) = self.geometry().piece(index) else {
                            break;
                        };
                        let result = self.check_piece_into(piece, &mut buf);
                        if sender.send(result.map(|ok| (piece, ok))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            for result in results {
                match result {
                    Ok((piece, ok)) => {
                        if ok {
                            present.set(piece);
                        }
                        checked += 1;
                        progress(checked, total);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        tracing::info!(
            root = %self.root().display(),
            present = present.count(),
            total,
            "recheck done"
        );
        Ok(present)
    }
}
