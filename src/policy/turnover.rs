//! Connection turnover at the peer cap: which connections to close so that newcomers fit,
//! and which to give up so that we meet peers we have not tried.
//!
//! A torrent accepts a few connections past its cap (`slack`) and then closes as many idle
//! old ones. Without it the first peers to arrive hold every slot for good: in a flash crowd
//! the seeds are full of partial peers before the first viewer knocks.
//!
//! A torrent that still downloads, at its cap, with addresses it has not dialled, replaces
//! peers that give it nothing (`to_replace`). Without it a viewer that a tracker told of 50
//! peers of a 200-peer swarm, none of them one of the 4 seeds, never met a seed.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::policy::choker::ChokerPeer;
use crate::policy::{PeerKey, Time};

/// A connection younger than this is never closed to make room: it has not had its chance
/// at an optimistic unchoke yet.
pub const MIN_AGE: Duration = Duration::from_secs(60);

/// Incoming connections accepted past a cap of `cap`, to be replaced by turnover.
pub fn slack(cap: usize) -> usize {
    (cap / 5).max(1)
}

/// Up to `excess` connections to close: those that neither give nor take (we choke them,
/// and they choke us or we want nothing from them), connected for at least `MIN_AGE`, the
/// longest-connected first. Fewer when fewer qualify.
#[must_use]
pub fn to_close(
    now: Time,
    peers: &[ChokerPeer],
    unchoked_by_us: &BTreeSet<PeerKey>,
    excess: usize,
) -> Vec<PeerKey> {
    let mut idle: Vec<&ChokerPeer> = peers
        .iter()
        .filter(|p| !unchoked_by_us.contains(&p.key))
        .filter(|p| !p.am_interested || p.unchoked_us_at.is_none())
        .filter(|p| now.saturating_sub(p.connected_at) >= MIN_AGE)
        .collect();
    idle.sort_by_key(|p| (p.connected_at, p.key));
    idle.into_iter().take(excess).map(|p| p.key).collect()
}

/// How long a connection may give us nothing before `to_replace` gives it up, by default: an
/// optimistic unchoke comes round every 30 s.
pub const GIVES_NOTHING_FOR: Duration = Duration::from_secs(30);

/// Connections given up at most per call of `to_replace`, for a cap of `cap`.
pub fn replace_at_most(cap: usize) -> usize {
    (cap / 10).max(1)
}

/// Up to `n` connections to give up for addresses not tried yet: peers we do not upload to
/// that sent us no block for `silent_for` (`GIVES_NOTHING_FOR` by default), connected at
/// least that long; those that never sent one first, then the longest silent, then the
/// longest connected.
#[must_use]
pub fn to_replace(
    now: Time,
    peers: &[ChokerPeer],
    unchoked_by_us: &BTreeSet<PeerKey>,
    silent_for: Duration,
    n: usize,
) -> Vec<PeerKey> {
    let silent_since = |t: Time| now.saturating_sub(t) >= silent_for;
    let mut useless: Vec<&ChokerPeer> = peers
        .iter()
        .filter(|p| !unchoked_by_us.contains(&p.key))
        .filter(|p| silent_since(p.connected_at))
        .filter(|p| p.last_block_at.is_none_or(silent_since))
        .collect();
    // None sorts first: peers that never sent a block go before the longest silent.
    useless.sort_by_key(|p| (p.last_block_at, p.connected_at, p.key));
    useless.into_iter().take(n).map(|p| p.key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Time {
        Duration::from_secs(s)
    }

    fn peer(key: u64, connected: u64) -> ChokerPeer {
        ChokerPeer {
            key: PeerKey(key),
            connected_at: secs(connected),
            interested: true,
            am_interested: false,
            download_rate: 0.0,
            upload_rate: 0.0,
            unchoked_us_at: None,
            last_block_at: None,
        }
    }

    #[test]
    fn the_oldest_idle_connections_go_first() {
        let peers = vec![peer(1, 30), peer(2, 10), peer(3, 20), peer(4, 0)];
        let unchoked = BTreeSet::from([PeerKey(4)]);
        assert_eq!(
            to_close(secs(100), &peers, &unchoked, 2),
            vec![PeerKey(2), PeerKey(3)]
        );
    }

    #[test]
    fn peers_we_serve_or_that_serve_us_and_newcomers_stay() {
        let serving_us = ChokerPeer {
            am_interested: true,
            unchoked_us_at: Some(secs(5)),
            ..peer(1, 0)
        };
        let served = peer(2, 0);
        let newcomer = peer(3, 50);
        let peers = vec![serving_us, served, newcomer];
        let unchoked = BTreeSet::from([PeerKey(2)]);
        assert!(to_close(secs(100), &peers, &unchoked, 3).is_empty());
        // A peer that chokes us, though we want its pieces, gives nothing: it may go.
        let choking = ChokerPeer {
            am_interested: true,
            ..peer(4, 0)
        };
        assert_eq!(
            to_close(secs(100), &[choking], &unchoked, 1),
            vec![PeerKey(4)]
        );
    }

    #[test]
    fn peers_that_give_nothing_are_replaced_never_givers_first() {
        let gave = |key, at| ChokerPeer {
            am_interested: true,
            last_block_at: Some(secs(at)),
            ..peer(key, 0)
        };
        let peers = vec![
            gave(1, 40),
            peer(2, 10),
            gave(3, 60),
            peer(4, 0),
            gave(5, 90),
            peer(6, 80),
        ];
        let none = BTreeSet::new();
        // 5 gave a block 10 s ago and 6 connected 20 s ago: both keep their chance.
        assert_eq!(
            to_replace(secs(100), &peers, &none, GIVES_NOTHING_FOR, 10),
            vec![PeerKey(4), PeerKey(2), PeerKey(1), PeerKey(3)]
        );
        assert_eq!(
            to_replace(secs(100), &peers, &none, GIVES_NOTHING_FOR, 3),
            vec![PeerKey(4), PeerKey(2), PeerKey(1)]
        );
        // A peer we upload to stays, whatever it gives back.
        let served = BTreeSet::from([PeerKey(4)]);
        assert_eq!(
            to_replace(secs(100), &peers, &served, GIVES_NOTHING_FOR, 1),
            vec![PeerKey(2)]
        );
        assert_eq!(replace_at_most(50), 5);
        assert_eq!(replace_at_most(5), 1);
    }

    #[test]
    fn slack_is_a_fifth_of_the_cap_and_at_least_one() {
        assert_eq!(slack(50), 10);
        assert_eq!(slack(3), 1);
    }
}
