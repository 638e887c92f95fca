//! Arrival-time estimates for the deadline policy: what each peer's request pipe holds (the
//! book's record, in sending order), and when a block queued behind it would arrive.

use std::collections::HashMap;
use std::time::Duration;

use super::DeadlineConfig;
use crate::policy::picker::PieceBook;
use crate::policy::{PeerKey, PeerView, Time};
use crate::proto::geometry::{BLOCK_LEN, BlockRef};

/// What the estimates assume of a peer that has not been measured yet, resolved for one call
/// (the rate guess may be a share of the deadline table's playback rate).
#[derive(Clone, Copy, Debug)]
pub(super) struct Assumed {
    rate: f64,
    rtt: Duration,
}

impl Assumed {
    pub(super) fn new(config: &DeadlineConfig, playback: Option<f64>) -> Self {
        Self {
            rate: config.unmeasured_rate.bytes_per_sec(playback),
            rtt: config.unmeasured_rtt,
        }
    }
}

/// What the picker remembers about one connection between calls.
#[derive(Clone, Debug, Default)]
pub(super) struct PeerLink {
    /// Last measured payload rate, bytes per second (0: not measured yet).
    rate: f64,
    rtt: Option<Duration>,
    /// A request sent to an idle peer whatever its estimate said (see `DeadlinePicker::probe`);
    /// never taken back as late, so the peer is measured again.
    probe: Option<BlockRef>,
    /// How much later than estimated its blocks arrived, seconds: smoothed mean and mean
    /// deviation (`None` before the first).
    lateness: Option<(f64, f64)>,
    /// Estimated arrival of each block asked of it, while it may still come.
    promised: HashMap<BlockRef, f64>,
}

/// The largest per-peer margin `lateness_margin` learns: beyond it, a peer is better left to
/// the work ahead of the urgent window than judged on a few very late blocks.
const MAX_LEARNED_MARGIN_S: f64 = 4.0;

impl PeerLink {
    /// Learns the peer's rate while it has our requests to serve; while it is idle, only a
    /// rise is believed. An idle link's meter decays towards zero, and believing it left the
    /// peer idle for good (no request fits a deadline at 15 B/s), however fast it had become.
    /// `busy`: the peer has requests of ours in flight.
    pub(super) fn observe(&mut self, view: &PeerView, busy: bool) {
        let rate = view.download_rate;
        if rate.is_finite() && rate > 0.0 && (busy || rate > self.rate) {
            self.rate = rate;
        }
        if view.rtt.is_some() {
            self.rtt = view.rtt;
        }
    }

    /// The rate used for estimates: the measured one, or the guess for a peer that has not
    /// delivered anything yet.
    pub(super) fn rate(&self, assumed: &Assumed) -> f64 {
        if self.rate > 0.0 {
            self.rate
        } else {
            assumed.rate
        }
    }

    /// Whether the peer has delivered at a measurable rate yet.
    pub(super) fn is_measured(&self) -> bool {
        self.rate > 0.0
    }

    pub(super) fn rtt(&self, assumed: &Assumed) -> f64 {
        self.rtt.unwrap_or(assumed.rtt).as_secs_f64()
    }

    /// The probe is over once its request is no longer in flight (arrived, voided).
    pub(super) fn forget_answered_probe(&mut self, book: &PieceBook, key: PeerKey) {
        if self.probe.is_some_and(|p| book.sent_at(key, p).is_none()) {
            self.probe = None;
        }
    }

    pub(super) fn probe(&self) -> Option<BlockRef> {
        self.probe
    }

    pub(super) fn set_probe(&mut self, block: BlockRef) {
        self.probe = Some(block);
    }

    /// Remembers when the blocks just asked of it were estimated to arrive.
    pub(super) fn promise(&mut self, promised: impl IntoIterator<Item = (BlockRef, f64)>) {
        self.promised.extend(promised);
    }

    pub(super) fn promised(&self) -> usize {
        self.promised.len()
    }

    /// Forgets the estimates of blocks that will not come any more (`keep` says which may).
    pub(super) fn forget_promises(&mut self, keep: impl Fn(BlockRef) -> bool) {
        self.promised.retain(|&b, _| keep(b));
    }

    /// A block arrived at `now` (seconds since start): learns how late against its estimate.
    pub(super) fn arrived(&mut self, block: BlockRef, now: f64) {
        let Some(promised) = self.promised.remove(&block) else {
            return;
        };
        let late = now - promised;
        self.lateness = Some(match self.lateness {
            None => (late, late.abs() / 2.0),
            Some((mean, dev)) => (
                0.875 * mean + 0.125 * late,
                0.75 * dev + 0.25 * (late - mean).abs(),
            ),
        });
    }

    /// Seconds a block asked of this peer must be estimated to arrive before its deadline.
    pub(super) fn margin(&self, config: &DeadlineConfig) -> f64 {
        let base = config.safety_margin.as_secs_f64();
        match (config.lateness_margin, self.lateness) {
            (Some(k), Some((mean, dev))) => {
                (mean + k * dev).clamp(base, base.max(MAX_LEARNED_MARGIN_S))
            }
            _ => base,
        }
    }

    /// Estimated arrival (seconds since start) of every request in flight (`sent`, from the
    /// book, in sending order): a request is served once it reached the peer and everything
    /// before it was sent, `ahead` bytes of taken-back requests it sends anyway first.
    pub(super) fn arrivals(
        &self,
        now: Time,
        assumed: &Assumed,
        ahead: f64,
        sent: impl Iterator<Item = (BlockRef, Time)>,
    ) -> Vec<(BlockRef, f64)> {
        let rate = self.rate(assumed);
        let rtt = self.rtt(assumed);
        let mut bytes = ahead;
        sent.map(|(block, sent)| {
            bytes += f64::from(block.len());
            let earliest = (sent.as_secs_f64() + rtt).max(now.as_secs_f64());
            (block, earliest + bytes / rate)
        })
        .collect()
    }
}

impl PeerLink {
    /// Requests in flight that would arrive more than `grace` after their deadline, counting
    /// the requests kept ahead of each and the `ignored` share of those taken back (a peer
    /// that drops a cancelled request serves the ones behind it sooner; one that sends it
    /// anyway does not), after `ahead` bytes of earlier take-backs. A request found late is
    /// then late for a new request too: it would queue behind all the kept ones. The probe
    /// is never found late.
    pub(super) fn late_requests(
        &self,
        now: Time,
        assumed: &Assumed,
        grace: f64,
        (ahead, ignored): (f64, f64),
        sent: impl Iterator<Item = (BlockRef, Time)>,
        deadline: impl Fn(BlockRef) -> Option<f64>,
    ) -> Vec<BlockRef> {
        let rate = self.rate(assumed);
        let rtt = self.rtt(assumed);
        let mut kept_bytes = ahead;
        let mut late = Vec::new();
        for (block, sent) in sent {
            let len = f64::from(block.len());
            let earliest = (sent.as_secs_f64() + rtt).max(now.as_secs_f64());
            let judged = self.probe != Some(block);
            if judged
                && deadline(block).is_some_and(|d| earliest + (kept_bytes + len) / rate > d + grace)
            {
                late.push(block);
                kept_bytes += ignored * len;
            } else {
                kept_bytes += len;
            }
        }
        late
    }
}

/// The pipe of the peer being asked, as this call fills it.
pub(super) struct Pipe {
    /// When the call runs: the requests it makes are sent now.
    pub(super) at: Time,
    now: f64,
    rate: f64,
    rtt: f64,
    /// Bytes ahead of the next new request: in flight before the call plus chosen in it.
    queued: f64,
    /// How long before its deadline a block asked of this peer must be due to arrive.
    pub(super) margin: f64,
    /// The blocks chosen in this call with their estimated arrival, for `PeerLink::promise`.
    pub(super) promised: Vec<(BlockRef, f64)>,
    /// The peer is not measured yet and is trusted with any block it could deliver in time
    /// (see `DeadlinePicker::trusts`).
    pub(super) trusted: bool,
    /// Without a VoD server: an earlier piece was left with blocks this peer could not take
    /// now, so no later piece, and no piece without a deadline, may take its place (earliest
    /// deadline first, nothing skipped, nothing queued in front of what is due).
    pub(super) held_back: bool,
}

impl Pipe {
    /// `queued`: bytes the peer will send before a new request (see `DeadlinePicker::queued`).
    pub(super) fn new(
        link: &PeerLink,
        now: Time,
        config: &DeadlineConfig,
        assumed: &Assumed,
        trusted: bool,
        queued: f64,
    ) -> Self {
        Self {
            at: now,
            now: now.as_secs_f64(),
            rate: link.rate(assumed),
            rtt: link.rtt(assumed),
            queued,
            margin: link.margin(config),
            promised: Vec::new(),
            trusted,
            held_back: false,
        }
    }

    /// When one more block requested now would arrive.
    pub(super) fn next_arrival(&self) -> f64 {
        self.arrival_after(f64::from(BLOCK_LEN))
    }

    /// When the last of `bytes` more requested now would arrive.
    pub(super) fn arrival_after(&self, bytes: f64) -> f64 {
        self.now + self.rtt + (self.queued + bytes) / self.rate
    }

    /// How many more blocks to ask of this peer for a piece nobody else will fetch (no VoD
    /// server) and that may be late anyway: what it can deliver within `slice` seconds from
    /// now or by `by` if later, so the piece is spread over the peers in proportion to their
    /// rates instead of queued whole behind one of them. An unmeasured peer gets `first`; an
    /// idle one at least a block (its rate estimate may be stale, and the piece must come).
    pub(super) fn late_slice(&self, by: f64, slice: f64, first: usize) -> usize {
        if self.trusted {
            return first.saturating_sub((self.queued / f64::from(BLOCK_LEN)) as usize);
        }
        let n = self.blocks_by(by.max(self.now + slice));
        if n == 0 && self.queued <= 0.0 { 1 } else { n }
    }

    /// A request taken back in this call: the peer drops it unless it ignores cancels
    /// (`ignored`, the share of cancels it ignored so far), so less is queued ahead.
    pub(super) fn take_back(&mut self, bytes: f64, ignored: f64) {
        self.queued = (self.queued - bytes * (1.0 - ignored)).max(0.0);
    }

    /// Whole blocks in the pipe ahead of a new request.
    pub(super) fn queued_blocks(&self) -> usize {
        (self.queued / f64::from(BLOCK_LEN)) as usize
    }

    /// Seconds until everything already in the pipe has arrived.
    pub(super) fn backlog(&self) -> f64 {
        self.rtt + self.queued / self.rate
    }

    /// Whether a request sent now could still reach the peer before `by`.
    pub(super) fn reachable_by(&self, by: f64) -> bool {
        self.now + self.rtt < by
    }

    /// How many more full blocks requested now would arrive by `by` (seconds since start).
    pub(super) fn blocks_by(&self, by: f64) -> usize {
        let bytes = (by - self.now - self.rtt) * self.rate - self.queued;
        if bytes <= 0.0 || !bytes.is_finite() {
            return 0;
        }
        (bytes / f64::from(BLOCK_LEN)).floor().min(1e6) as usize
    }

    pub(super) fn push(&mut self, block: BlockRef) {
        self.queued += f64::from(block.len());
        let arrival = self.now + self.rtt + self.queued / self.rate;
        self.promised.push((block, arrival));
    }
}
