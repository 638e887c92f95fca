//! The requests in flight to one peer, in the order they were sent, with when: the one record
//! of what we asked of whom (the engine's pipeline and the deadline estimates read it here).

use std::collections::VecDeque;

use crate::policy::Time;
use crate::proto::geometry::BlockRef;

/// Peers serve requests first in, first out, so the sending order is the order of arrival.
/// A queue holds a few hundred requests at most and answers arrive near its front, so the
/// linear searches stay short.
#[derive(Clone, Debug, Default)]
pub(super) struct Sent(VecDeque<(BlockRef, Time)>);

impl Sent {
    pub(super) fn push(&mut self, block: BlockRef, at: Time) {
        self.0.push_back((block, at));
    }

    /// `push`, forgetting the oldest entry beyond `cap` (a record kept only as a courtesy).
    pub(super) fn push_capped(&mut self, block: BlockRef, at: Time, cap: usize) {
        self.0.push_back((block, at));
        while self.0.len() > cap {
            self.0.pop_front();
        }
    }

    /// Removes the request; when it was sent, if it was in flight.
    pub(super) fn remove(&mut self, block: BlockRef) -> Option<Time> {
        let at = self.0.iter().position(|(b, _)| *b == block)?;
        self.0.remove(at).map(|(_, t)| t)
    }

    pub(super) fn sent_at(&self, block: BlockRef) -> Option<Time> {
        self.0.iter().find(|(b, _)| *b == block).map(|(_, t)| *t)
    }

    /// Forgets every request sent strictly before `at`; returns how many.
    pub(super) fn forget_sent_before(&mut self, at: Time) -> u32 {
        let before = self.0.len();
        self.0.retain(|(_, t)| *t >= at);
        (before - self.0.len()) as u32
    }

    pub(super) fn take(&mut self) -> VecDeque<(BlockRef, Time)> {
        std::mem::take(&mut self.0)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (BlockRef, Time)> + '_ {
        self.0.iter().copied()
    }
}
