//! Making room for urgent blocks: a peer's queue full of work due after the urgent window
//! gives way to urgent blocks nobody was asked for.
//!
//! Peers serve requests in the order asked. Work ahead of the window keeps a fast peer's queue
//! full (every slot it frees is refilled), so a block that turns urgent without a peer (its
//! peer choked us, or was too slow and had it taken back) finds no slot, or only one behind
//! seconds of work due later, and goes to the server. Taking back the requests with the most
//! slack lets it in; they are asked again once the urgent ones are queued.

use super::estimate::Pipe;
use super::{DeadlinePicker, Window};
use crate::policy::PeerKey;
use crate::proto::geometry::{BLOCK_LEN, BlockRef};

impl DeadlinePicker {
    /// Takes back this peer's requests for pieces due after the urgent window (no deadline
    /// first, then the latest), as few as let the urgent blocks nobody was asked for that it
    /// holds arrive in time and fit in `slots` plus the freed ones. A piece that would not
    /// arrive in time even with every such request taken back is left to others. Never the
    /// request the peer is serving now, nor a probe. Returns how many were taken back.
    pub(super) fn make_room_for_urgent(
        &mut self,
        key: PeerKey,
        window: &Window,
        pipe: &mut Pipe,
        slots: usize,
    ) -> usize {
        let mut spare = self.spare_requests(key, window);
        if spare.is_empty() {
            return 0;
        }
        // What taking back every spare request left would free, kept as they are taken.
        let mut spare_bytes: f64 = spare.iter().map(|b| f64::from(b.len())).sum();
        let ignored = self.book.cancel_ignored_share(key);
        let block = f64::from(BLOCK_LEN);
        let mut taken = 0usize;
        let mut need_blocks = 0usize;
        for position in window.urgent.clone() {
            let Some(piece) = self.piece_at(position) else {
                break;
            };
            let (Some(deadline), true) = (self.table.secs(piece), self.askable(key, piece)) else {
                continue;
            };
            let unasked = self.book.unrequested_count(piece) as usize;
            if unasked == 0 {
                continue;
            }
            let due = deadline - pipe.margin;
            let blocks = need_blocks + unasked;
            let best = pipe.arrival_after(blocks as f64 * block - spare_bytes * (1.0 - ignored));
            if best > due || blocks > slots + taken + spare.len() {
                continue;
            }
            need_blocks = blocks;
            while pipe.arrival_after(need_blocks as f64 * block) > due
                || need_blocks > slots + taken
            {
                let Some(b) = spare.pop() else { break };
                spare_bytes -= f64::from(b.len());
                pipe.take_back(f64::from(b.len()), ignored);
                self.book.request_timed_out(key, b);
                taken += 1;
            }
        }
        if taken > 0 {
            tracing::debug!(%key, n = taken, "taking back work ahead for urgent blocks");
        }
        taken
    }

    /// This peer's requests that may give way, the one to give way first last: due after the
    /// window or never, not the first in its queue (being sent), not a probe.
    fn spare_requests(&self, key: PeerKey, window: &Window) -> Vec<BlockRef> {
        let probe = self.links.get(&key).and_then(|l| l.probe());
        let mut spare: Vec<(f64, BlockRef)> = self
            .book
            .requests(key)
            .skip(1)
            .filter(|&(b, _)| Some(b) != probe)
            .filter_map(|(b, _)| {
                let due = self.table.secs(b.piece()).unwrap_or(f64::INFINITY);
                (due > window.end).then_some((due, b))
            })
            .collect();
        spare.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        spare.into_iter().map(|(_, b)| b).collect()
    }
}
