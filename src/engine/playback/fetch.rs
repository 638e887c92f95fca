//! One server fetch: the missing blocks of a piece, asked in ranges of adjacent blocks, that a
//! seek can stop between ranges. Every byte the server sent is delivered (it was paid for).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::vod_server::VodServer;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

/// Bytes the server sent for some blocks of one piece, and why it stopped short if it did.
#[derive(Debug)]
pub struct ServerFetched {
    pub piece: PieceIndex,
    /// The blocks that arrived whole (all that were asked for unless it stopped early).
    pub blocks: Vec<(BlockRef, Vec<u8>)>,
    /// Why the rest did not arrive (a failure; `None` when it was stopped on purpose).
    pub error: Option<String>,
    /// It was told to stop (the piece is no longer due) before asking for everything.
    pub stopped: bool,
    /// Whether this was the whole-piece refetch after a failed hash check.
    pub whole: bool,
}

/// A fetch under way, as the playback sees it.
#[derive(Debug)]
pub(super) struct Fetch {
    /// Cleared to stop the fetch before its next range; set again to let it go on.
    wanted: Arc<AtomicBool>,
}

impl Fetch {
    pub(super) fn set_wanted(&self, wanted: bool) {
        self.wanted.store(wanted, Ordering::Relaxed);
    }
}

/// What to fetch and how.
pub(super) struct FetchOrder {
    pub piece: PieceIndex,
    pub blocks: Vec<BlockRef>,
    pub whole: bool,
    /// Wait this long first (a retry after a failure).
    pub after: Duration,
    /// Most blocks asked in one request: a stop takes effect between requests.
    pub blocks_per_request: usize,
}

/// Starts the fetch; its result arrives on `done`.
pub(super) fn spawn(
    server: Arc<VodServer>,
    geometry: &Geometry,
    order: FetchOrder,
    done: mpsc::UnboundedSender<ServerFetched>,
) -> Fetch {
    let wanted = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&wanted);
    let base = geometry.piece_range(order.piece).start;
    tokio::spawn(async move {
        if !order.after.is_zero() {
            tokio::time::sleep(order.after).await;
        }
        let mut out = Vec::with_capacity(order.blocks.len());
        let mut error = None;
        let mut stopped = false;
        'runs: for run in runs(&order.blocks) {
            for chunk in run.chunks(order.blocks_per_request.max(1)) {
                if !flag.load(Ordering::Relaxed) {
                    stopped = true;
                    break 'runs;
                }
                let start = base + u64::from(chunk[0].offset());
                let end = start + chunk.iter().map(|b| u64::from(b.len())).sum::<u64>();
                match server.fetch(start..end).await {
                    Ok(bytes) if bytes.len() as u64 == end - start => {
                        let mut at = 0usize;
                        for b in chunk {
                            let len = b.len() as usize;
                            out.push((*b, bytes[at..at + len].to_vec()));
                            at += len;
                        }
                    }
                    Ok(bytes) => {
                        error = Some(format!(
                            "server sent {} bytes for a {}-byte range",
                            bytes.len(),
                            end - start
                        ));
                        break 'runs;
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break 'runs;
                    }
                }
            }
        }
        // Ranges that arrived before a failure or a stop are delivered: they were paid for.
        let _ = done.send(ServerFetched {
            piece: order.piece,
            blocks: out,
            error,
            stopped,
            whole: order.whole,
        });
    });
    Fetch { wanted }
}

/// Splits blocks (sorted by offset) into runs of adjacent blocks.
fn runs(blocks: &[BlockRef]) -> Vec<&[BlockRef]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blocks.len() {
        let breaks =
            i == blocks.len() || blocks[i].offset() != blocks[i - 1].offset() + blocks[i - 1].len();
        if breaks {
            out.push(&blocks[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_gaps() {
        let g = Geometry::new(16384 * 6, &[16384 * 6]).unwrap();
        let p = g.piece(0).unwrap();
        let b: Vec<_> = [0, 1, 3, 4, 5]
            .iter()
            .map(|i| g.block(p, *i).unwrap())
            .collect();
        let r = runs(&b);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[1].len(), 3);
        assert!(runs(&[]).is_empty());
    }
}
