//! Tit-for-tat choking: whom we upload to. Regular slots go to the interested peers that give
//! us the most (or, as a seed, take the most), re-evaluated every 10 s; optimistic slots (one
//! per five regular ones, at least one) rotate every 30 s to random interested peers; a peer that snubs us loses its regular slot.
//! Between rounds a slot left idle (its peer lost interest or left) goes at once to a waiting peer.
//! With a known upload capacity, a round that left much of it unused opens more regular slots.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use crate::policy::{PeerKey, Time};

#[derive(Clone, Debug, PartialEq)]
pub struct ChokerConfig {
    /// Unchoke slots earned by rate (the optimistic slots come on top).
    pub regular_slots: usize,
    pub rechoke_interval: Duration,
    pub optimistic_interval: Duration,
    /// One optimistic slot per this many regular slots, at least one (libtorrent's default):
    /// a seed that opened 40 slots to peers that can take little each is otherwise entered
    /// by one newcomer per 30 s, however many wait.
    pub slots_per_optimistic: usize,
    /// Peers connected for less than this are `newcomer_weight` times as likely to be picked
    /// optimistically: they have nothing to trade yet and need a first piece.
    pub newcomer_age: Duration,
    pub newcomer_weight: u32,
    /// A peer that unchokes us but sends nothing for this long is snubbing us.
    pub snub_after: Duration,
    /// Our upload limit in bytes per second, when there is one. Peers that can only take a
    /// little each (their downloads capped) would otherwise leave most of it idle: a seed
    /// of 256 KiB/s with four slots on 4 KiB/s peers sends 16 KiB/s while others wait.
    pub upload_capacity: Option<f64>,
    /// The most regular slots a round may open to use `upload_capacity`.
    pub max_regular_slots: usize,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        Self {
            regular_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            slots_per_optimistic: 5,
            newcomer_age: Duration::from_secs(60),
            newcomer_weight: 3,
            snub_after: Duration::from_secs(60),
            upload_capacity: None,
            max_regular_slots: 40,
        }
    }
}

impl ChokerConfig {
    /// For a VoD viewer: every byte it misses costs penalty and every byte it uploads costs
    /// nothing, so it unchokes twice as many peers (libtorrent's default slot count) to be
    /// in more peers' tit-for-tat top slots.
    pub fn viewer() -> Self {
        Self {
            regular_slots: 8,
            ..Self::default()
        }
    }
}

/// What the engine knows about one connected peer at rechoke time.
#[derive(Clone, Debug, PartialEq)]
pub struct ChokerPeer {
    pub key: PeerKey,
    pub connected_at: Time,
    /// The peer wants data from us.
    pub interested: bool,
    /// We want data from the peer.
    pub am_interested: bool,
    /// Payload bytes per second from the peer to us, recently.
    pub download_rate: f64,
    /// Payload bytes per second from us to the peer, recently.
    pub upload_rate: f64,
    /// When the peer last unchoked us, while it keeps us unchoked; None while it chokes us.
    pub unchoked_us_at: Option<Time>,
    /// When the last block from the peer arrived.
    pub last_block_at: Option<Time>,
}

impl ChokerPeer {
    /// Unchokes us and we want its data, yet nothing came for `snub_after`.
    pub fn is_snubbed(&self, now: Time, snub_after: Duration) -> bool {
        let Some(since) = self.unchoked_us_at else {
            return false;
        };
        let last = self.last_block_at.map_or(since, |b| b.max(since));
        self.am_interested && now.saturating_sub(last) >= snub_after
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChokeDecision {
    Choke(PeerKey),
    Unchoke(PeerKey),
}

pub struct Choker {
    config: ChokerConfig,
    unchoked: BTreeSet<PeerKey>,
    /// Optimistically unchoked peers, each with when it got its slot.
    optimistic: BTreeMap<PeerKey, Time>,
    last_rechoke: Option<Time>,
    /// Regular slots this round: `regular_slots`, or more while upload capacity is unused.
    slots: usize,
}

impl Choker {
    pub fn new(config: ChokerConfig) -> Self {
        Self {
            slots: config.regular_slots,
            config,
            unchoked: BTreeSet::new(),
            optimistic: BTreeMap::new(),
            last_rechoke: None,
        }
    }

    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// Peers we currently leave unchoked (regular and optimistic).
    pub fn unchoked(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.unchoked.iter().copied()
    }
    /// Peers in optimistic slots.
    pub fn optimistic(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.optimistic.keys().copied()
    }
    /// Optimistic slots this round: one per `slots_per_optimistic` regular ones, at least one.
    pub fn optimistic_slot_count(&self) -> usize {
        (self.slots / self.config.slots_per_optimistic.max(1)).max(1)
    }
    /// Regular slots in use this round.
    pub fn regular_slot_count(&self) -> usize {
        self.slots
    }

    /// Call often (every second, and when a peer's interest changes or it leaves); it ranks
    /// everyone when a round is due, fills idle slots otherwise, and returns the changes to
    /// send. `peers` are all connected peers; missing ones are dropped.
    pub fn rechoke(
        &mut self,
        now: Time,
        peers: &[ChokerPeer],
        am_seed: bool,
        rng: &mut impl Rng,
    ) -> Vec<ChokeDecision> {
        let present: BTreeSet<PeerKey> = peers.iter().map(|p| p.key).collect();
        self.unchoked.retain(|k| present.contains(k));
        self.optimistic.retain(|k, _| present.contains(k));
        let due = self
            .last_rechoke
            .is_none_or(|t| now >= t + self.config.rechoke_interval);
        if !due {
            return self.fill_idle_slots(now, peers, am_seed);
        }
        self.last_rechoke = Some(now);
        self.slots = self.resize_slots(peers);

        let regular = self.regular(now, peers, am_seed);
        self.update_optimistic(now, peers, &regular, rng);

        let mut next = regular;
        next.extend(self.optimistic.keys());
        let mut decisions: Vec<ChokeDecision> = self
            .unchoked
            .difference(&next)
            .map(|&k| ChokeDecision::Choke(k))
            .chain(
                next.difference(&self.unchoked)
                    .map(|&k| ChokeDecision::Unchoke(k)),
            )
            .collect();
        decisions.sort();
        tracing::debug!(?next, optimistic = ?self.optimistic.keys(), "rechoke");
        self.unchoked = next;
        decisions
    }

    /// The best interested, non-snubbing peers by the rate that matters now.
    fn regular(&self, now: Time, peers: &[ChokerPeer], am_seed: bool) -> BTreeSet<PeerKey> {
        self.ranked_candidates(now, peers, am_seed)
            .take(self.slots)
            .map(|p| p.key)
            .collect()
    }

    /// The regular slot count for the round starting now. Below 80% of a known capacity with
    /// every slot busy, open as many more slots as the unused upload would fill at the rate
    /// the busy ones took; above 95%, close one a round back toward the configured count.
    fn resize_slots(&self, peers: &[ChokerPeer]) -> usize {
        let base = self.config.regular_slots;
        let Some(capacity) = self.config.upload_capacity.filter(|c| *c > 0.0) else {
            return base;
        };
        let (busy, busy_rate) = peers
            .iter()
            .filter(|p| p.interested && self.unchoked.contains(&p.key))
            .fold((0usize, 0.0), |(n, rate), p| (n + 1, rate + p.upload_rate));
        let used: f64 = peers.iter().map(|p| p.upload_rate).sum();
        if used >= 0.95 * capacity {
            return self.slots.saturating_sub(1).max(base);
        }
        let waiting = peers
            .iter()
            .any(|p| p.interested && !self.unchoked.contains(&p.key));
        if used >= 0.8 * capacity || !waiting || busy < self.slots {
            return self.slots;
        }
        let per_slot = busy_rate / busy.max(1) as f64;
        let wanted = if per_slot > 0.0 {
            let extra = ((0.9 * capacity - used) / per_slot).ceil() as usize;
            self.slots + extra
        } else {
            self.slots
        };
        wanted.clamp(base, self.config.max_regular_slots.max(base))
    }

    /// Interested, non-snubbing peers, best first by the rate that matters now.
    fn ranked_candidates<'a>(
        &self,
        now: Time,
        peers: &'a [ChokerPeer],
        am_seed: bool,
    ) -> impl Iterator<Item = &'a ChokerPeer> {
        let rate = |p: &ChokerPeer| {
            if am_seed {
                p.upload_rate
            } else {
                p.download_rate
            }
        };
        let mut candidates: Vec<&ChokerPeer> = peers
            .iter()
            .filter(|p| p.interested && (am_seed || !p.is_snubbed(now, self.config.snub_after)))
            .collect();
        candidates.sort_by(|a, b| rate(b).total_cmp(&rate(a)).then(a.key.cmp(&b.key)));
        candidates.into_iter()
    }

    /// Between rounds: every slot not used by an interested peer (its peer completed, lost
    /// interest or left) goes now to the best peer still waiting, and a present peer that lost
    /// interest gives its slot up. A swarm where peers finish often (and so stop wanting
    /// data) would otherwise leave upload idle for up to a whole rechoke interval while a
    /// newcomer, such as a viewer whose first deadline is seconds away, waits.
    fn fill_idle_slots(
        &mut self,
        now: Time,
        peers: &[ChokerPeer],
        am_seed: bool,
    ) -> Vec<ChokeDecision> {
        let interested: BTreeSet<PeerKey> = peers
            .iter()
            .filter(|p| p.interested)
            .map(|p| p.key)
            .collect();
        let busy = self.unchoked.intersection(&interested).count();
        let free = (self.slots + self.optimistic_slot_count()).saturating_sub(busy);
        if free == 0 {
            return Vec::new();
        }
        let waiting: Vec<PeerKey> = self
            .ranked_candidates(now, peers, am_seed)
            .map(|p| p.key)
            .filter(|k| !self.unchoked.contains(k))
            .take(free)
            .collect();
        let idle: Vec<PeerKey> = self
            .unchoked
            .iter()
            .copied()
            .filter(|k| !interested.contains(k))
            .take(waiting.len())
            .collect();
        let mut decisions = Vec::with_capacity(waiting.len() + idle.len());
        for key in idle {
            self.unchoked.remove(&key);
            self.optimistic.remove(&key);
            decisions.push(ChokeDecision::Choke(key));
        }
        for key in waiting {
            self.unchoked.insert(key);
            decisions.push(ChokeDecision::Unchoke(key));
        }
        decisions.sort();
        decisions
    }

    /// Keeps each optimistic peer that still wants data for `optimistic_interval`, then
    /// fills the free optimistic slots by lot among the other interested peers, newcomers
    /// weighted up. A peer whose turn just ended is drawn only if nobody else waits.
    fn update_optimistic(
        &mut self,
        now: Time,
        peers: &[ChokerPeer],
        regular: &BTreeSet<PeerKey>,
        rng: &mut impl Rng,
    ) {
        let interval = self.config.optimistic_interval;
        let wants =
            |k: &PeerKey| !regular.contains(k) && peers.iter().any(|p| p.key == *k && p.interested);
        let previous = std::mem::take(&mut self.optimistic);
        self.optimistic = previous
            .iter()
            .filter(|&(k, &since)| wants(k) && now < since + interval)
            .map(|(&k, &since)| (k, since))
            .collect();
        let mut candidates: Vec<&ChokerPeer> = peers
            .iter()
            .filter(|p| {
                p.interested && !regular.contains(&p.key) && !self.optimistic.contains_key(&p.key)
            })
            .collect();
        let free = self
            .optimistic_slot_count()
            .saturating_sub(self.optimistic.len());
        // Rotate: the peers whose turn ended keep a slot only if too few others want one.
        let fresh = candidates
            .iter()
            .filter(|p| !previous.contains_key(&p.key))
            .count();
        if fresh >= free {
            candidates.retain(|p| !previous.contains_key(&p.key));
        }
        candidates.sort_by_key(|p| p.key);
        let weight = |p: &ChokerPeer| {
            if now.saturating_sub(p.connected_at) < self.config.newcomer_age {
                self.config.newcomer_weight.max(1)
            } else {
                1
            }
        };
        for _ in 0..free {
            let total: u32 = candidates.iter().map(|p| weight(p)).sum();
            if total == 0 {
                break;
            }
            let mut ticket = rng.random_range(0..total);
            let Some(i) = candidates.iter().position(|p| {
                let hit = ticket < weight(p);
                ticket = ticket.saturating_sub(weight(p));
                hit
            }) else {
                break;
            };
            let chosen = candidates.remove(i);
            self.optimistic.insert(chosen.key, now);
        }
    }
}

#[cfg(test)]
#[path = "choker_tests.rs"]
mod tests;
