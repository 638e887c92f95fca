//! What the built-in tracker knows: swarms of peers per torrent. Plain data; the current time
//! and the RNG are passed in, so expiry and peer selection are tested without sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IteratorRandom;

use crate::proto::tracker::{
    AnnounceEvent, AnnounceQuery, ScrapeResponse, ScrapeStats, TrackerPeer,
};
use crate::proto::{InfoHash, PeerId};

/// Memory bounds and expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_torrents: usize,
    pub max_peers_per_torrent: usize,
    /// A peer not heard from for this long is forgotten.
    pub peer_ttl: Duration,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerRecord {
    pub addr: SocketAddr,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: Option<u64>,
    pub last_seen: Instant,
}

impl PeerRecord {
    fn is_seeder(&self) -> bool {
        self.left == Some(0)
    }
}

#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<PeerId, PeerRecord>,
    /// `completed` events seen.
    downloaded: u32,
}

impl Swarm {
    fn stats(&self) -> ScrapeStats {
        let seeders = self.peers.values().filter(|p| p.is_seeder()).count();
        ScrapeStats {
            complete: count(seeders),
            incomplete: count(self.peers.len() - seeders),
            downloaded: self.downloaded,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Why an announce was refused; the text goes back to the client as `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("tracker is full: it already tracks {0} torrents")]
    TooManyTorrents(usize),
}

/// The answer to one announce, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnnounceAnswer {
    pub peers: Vec<TrackerPeer>,
    pub stats: ScrapeStats,
}

/// A read-only copy of one torrent for the status page.
#[derive(Debug, Clone)]
pub(crate) struct TorrentView {
    pub info_hash: InfoHash,
    pub stats: ScrapeStats,
    pub peers: Vec<PeerRecord>,
}

pub(crate) struct TrackerState {
    limits: Limits,
    torrents: HashMap<InfoHash, Swarm>,
}

impl TrackerState {
    pub fn new(limits: Limits) -> Self {
        TrackerState {
            limits,
            torrents: HashMap::new(),
        }
    }

    /// Records an announce from `addr` (already decided by the caller: socket address, or the
    /// `ip` parameter when trusted) and picks up to `numwant` other peers at random.
    pub fn announce(
        &mut self,
        query: &AnnounceQuery,
        addr: SocketAddr,
        now: Instant,
        numwant: usize,
        rng: &mut impl Rng,
    ) -> Result<AnnounceAnswer, Refusal> {
        if !self.torrents.contains_key(&query.info_hash) {
            if query.event == Some(AnnounceEvent::Stopped) {
                return Ok(AnnounceAnswer {
                    peers: Vec::new(),
                    stats: ScrapeStats::default(),
                });
            }
            if self.torrents.len() >= self.limits.max_torrents {
                // Make room: silent peers go, and so do swarms kept only for their counts.
                self.expire(now);
                self.torrents.retain(|_, s| !s.peers.is_empty());
            }
            if self.torrents.len() >= self.limits.max_torrents {
                return Err(Refusal::TooManyTorrents(self.limits.max_torrents));
            }
        }
        let max_peers = self.limits.max_peers_per_torrent;
        let swarm = self.torrents.entry(query.info_hash).or_default();
        if query.event == Some(AnnounceEvent::Stopped) {
            swarm.peers.remove(&query.peer_id);
            let stats = swarm.stats();
            if swarm.peers.is_empty() && swarm.downloaded == 0 {
                self.torrents.remove(&query.info_hash);
            }
            return Ok(AnnounceAnswer {
                peers: Vec::new(),
                stats,
            });
        }
        let was_seeder = swarm
            .peers
            .get(&query.peer_id)
            .is_some_and(PeerRecord::is_seeder);
        if query.event == Some(AnnounceEvent::Completed) && !was_seeder {
            swarm.downloaded = swarm.downloaded.saturating_add(1);
        }
        let record = PeerRecord {
            addr,
            uploaded: query.uploaded,
            downloaded: query.downloaded,
            left: query.left,
            last_seen: now,
        };
        if swarm.peers.len() < max_peers || swarm.peers.contains_key(&query.peer_id) {
            swarm.peers.insert(query.peer_id, record);
        } else {
            tracing::debug!(torrent = %query.info_hash, "swarm is full; peer answered but not recorded");
        }
        // Seeders have no use for other seeders.
        let want_seeders = !record.is_seeder();
        let peers = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != query.peer_id && p.addr != addr)
            .filter(|(_, p)| want_seeders || !p.is_seeder())
            .map(|(id, p)| TrackerPeer {
                addr: p.addr,
                peer_id: Some(*id),
            })
            .choose_multiple(rng, numwant);
        Ok(AnnounceAnswer {
            peers,
            stats: swarm.stats(),
        })
    }

    /// Forgets peers silent for longer than the TTL (about two missed intervals), and swarms
    /// left with nobody unless they have a download count worth showing.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.limits.peer_ttl;
        for swarm in self.torrents.values_mut() {
            swarm
                .peers
                .retain(|_, p| now.saturating_duration_since(p.last_seen) <= ttl);
        }
        self.torrents
            .retain(|_, s| !s.peers.is_empty() || s.downloaded > 0);
    }

    /// Counts for the named torrents (unknown ones are left out), or for all if none named.
    pub fn scrape(&self, info_hashes: &[InfoHash]) -> ScrapeResponse {
        let files = if info_hashes.is_empty() {
            self.torrents.iter().map(|(h, s)| (*h, s.stats())).collect()
        } else {
            info_hashes
                .iter()
                .filter_map(|h| self.torrents.get(h).map(|s| (*h, s.stats())))
                .collect()
        };
        ScrapeResponse { files }
    }

    pub fn snapshot(&self) -> Vec<TorrentView> {
        let mut out: Vec<TorrentView> = self
            .torrents
            .iter()
            .map(|(h, s)| {
                let mut peers: Vec<PeerRecord> = s.peers.values().copied().collect();
                peers.sort_by_key(|p| p.addr);
                TorrentView {
                    info_hash: *h,
                    stats: s.stats(),
                    peers,
                }
            })
            .collect();
        out.sort_by_key(|t| t.info_hash);
        out
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
