//! Link latency in a world: a delaying relay in front of every online world peer (its class's
//! RTT), and one in front of every viewer per peer class, so a connection between a viewer and
//! a world peer sees that class's RTT whichever side dialled. The world's tracker hands out the
//! relays' addresses ([`AddressBook`]); an address not behind its relay yet is not handed out
//! to anyone, so no connection bypasses a link.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::service::relay::{LinkDelay, Relay, RelayConfig};
use crate::service::tracker::AddressBook;

/// The relays of a world with latency; one owner, shared with the tracker.
#[derive(Default)]
pub(crate) struct Links {
    table: Mutex<LinkTable>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.table();
        f.debug_struct("Links")
            .field("peers", &table.peers)
            .field("viewers", &table.viewers)
            .finish()
    }
}

#[derive(Default)]
struct LinkTable {
    /// A world peer's own listen address: its class and the address others dial.
    peers: HashMap<SocketAddr, (usize, SocketAddr)>,
    /// A viewer's listen address and a class: the address that class's peers dial.
    viewers: HashMap<(SocketAddr, usize), SocketAddr>,
    /// Every relay running, by the address it stands in front of.
    relays: HashMap<SocketAddr, Vec<Relay>>,
}

impl Links {
    fn table(&self) -> std::sync::MutexGuard<'_, LinkTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a relay with `link` in front of a world peer of class `class` listening at `addr`
    /// (none if the link has no delay).
    pub async fn open_peer(&self, addr: SocketAddr, class: usize, link: LinkDelay, seed: u64) {
        let (dial, relay) = front(addr, link, seed).await;
        let mut table = self.table();
        table.peers.insert(addr, (class, dial));
        table.relays.entry(addr).or_default().extend(relay);
    }

    /// Puts one relay per peer class (`links[class]`) in front of a viewer at `addr`.
    pub async fn open_viewer(&self, addr: SocketAddr, links: &[LinkDelay], seed: u64) {
        for (class, &link) in links.iter().enumerate() {
            let (dial, relay) = front(addr, link, seed.wrapping_add(class as u64)).await;
            let mut table = self.table();
            table.viewers.insert((addr, class), dial);
            table.relays.entry(addr).or_default().extend(relay);
        }
    }

    /// Takes the relays in front of `addr` down (a peer that left, a viewer that stopped).
    pub async fn close(&self, addr: SocketAddr) {
        let relays = {
            let mut table = self.table();
            table.peers.remove(&addr);
            table.viewers.retain(|(viewer, _), _| *viewer != addr);
            table.relays.remove(&addr).unwrap_or_default()
        };
        for relay in relays {
            relay.stop().await;
        }
    }

    /// Takes every relay down.
    pub async fn close_all(&self) {
        let relays: Vec<Relay> = {
            let mut table = self.table();
            table.peers.clear();
            table.viewers.clear();
            table.relays.drain().flat_map(|(_, r)| r).collect()
        };
        for relay in relays {
            relay.stop().await;
        }
    }
}

/// A relay in front of `addr` with `link`, and the address to dial for it; no relay (and
/// `addr` itself) when the link has no delay.
async fn front(addr: SocketAddr, link: LinkDelay, seed: u64) -> (SocketAddr, Option<Relay>) {
    if link == LinkDelay::default() {
        return (addr, None);
    }
    let mut config = RelayConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), addr);
    config.delay = link;
    config.seed = seed;
    match Relay::bind(config).await {
        Ok(relay) => (relay.local_addr(), Some(relay)),
        Err(e) => {
            // Without its relay the peer would be reached with no delay: better not at all.
            tracing::warn!("no latency relay in front of {addr}: {e}");
            (SocketAddr::from(([127, 0, 0, 1], 0)), None)
        }
    }
}

impl AddressBook for Links {
    fn seen_by(&self, asker: SocketAddr, peer: SocketAddr) -> Option<SocketAddr> {
        let table = self.table();
        if let Some(&(_, dial)) = table.peers.get(&peer) {
            return Some(dial).filter(|d| d.port() != 0);
        }
        // A viewer: asked by a world peer, the relay of that peer's class; asked by another
        // viewer, as it is (viewers' own links are not modelled).
        match table.peers.get(&asker) {
            Some(&(class, _)) => table
                .viewers
                .get(&(peer, class))
                .copied()
                .filter(|d| d.port() != 0),
            None if table.viewers.keys().any(|(v, _)| *v == peer) => Some(peer),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_tracker_hands_out_relays_by_who_asks_and_hides_what_has_none() {
        let links = Links::default();
        {
            let mut table = links.table();
            // Peer 1000 (class 0) behind relay 1001; peer 2000 (class 1) behind relay 2001.
            table.peers.insert(at(1000), (0, at(1001)));
            table.peers.insert(at(2000), (1, at(2001)));
            // Viewer 3000: relay 3010 for class 0, 3011 for class 1.
            table.viewers.insert((at(3000), 0), at(3010));
            table.viewers.insert((at(3000), 1), at(3011));
        }
        // A world peer is handed out as its relay, to viewers and peers alike.
        assert_eq!(links.seen_by(at(3000), at(1000)), Some(at(1001)));
        assert_eq!(links.seen_by(at(2000), at(1000)), Some(at(1001)));
        // A viewer is handed to each class as that class's relay in front of it.
        assert_eq!(links.seen_by(at(1000), at(3000)), Some(at(3010)));
        assert_eq!(links.seen_by(at(2000), at(3000)), Some(at(3011)));
        // Between viewers, as it is; anything not behind its relay yet, to nobody.
        assert_eq!(links.seen_by(at(4000), at(3000)), Some(at(3000)));
        assert_eq!(links.seen_by(at(1000), at(5000)), None);
        assert_eq!(links.seen_by(at(4000), at(5000)), None);
    }
}
