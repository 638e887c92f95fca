//! Unit tests of the tracker's swarm bookkeeping, with injected time and a seeded RNG.

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const TTL: Duration = Duration::from_secs(120);

fn limits() -> Limits {
    Limits {
        max_torrents: 3,
        max_peers_per_torrent: 4,
        peer_ttl: TTL,
    }
}

fn query(hash: u8, peer: u8, left: u64, event: Option<AnnounceEvent>) -> AnnounceQuery {
    AnnounceQuery {
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([peer; 20]),
        port: 6000 + u16::from(peer),
        uploaded: 0,
        downloaded: 0,
        left: Some(left),
        event,
        compact: true,
        no_peer_id: false,
        numwant: None,
        ip: None,
    }
}

fn addr(peer: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, peer], 6000 + u16::from(peer)))
}

struct World {
    state: TrackerState,
    rng: StdRng,
    t0: Instant,
}

impl World {
    fn new() -> Self {
        World {
            state: TrackerState::new(limits()),
            rng: StdRng::seed_from_u64(3),
            t0: Instant::now(),
        }
    }
    fn announce(&mut self, q: AnnounceQuery, at_secs: u64, numwant: usize) -> AnnounceAnswer {
        let peer = q.peer_id.0[0];
        let now = self.t0 + Duration::from_secs(at_secs);
        self.state
            .announce(&q, addr(peer), now, numwant, &mut self.rng)
            .unwrap()
    }
}

fn sorted_addrs(a: &AnnounceAnswer) -> Vec<SocketAddr> {
    let mut v: Vec<_> = a.peers.iter().map(|p| p.addr).collect();
    v.sort();
    v
}

#[test]
fn never_returns_the_requester_and_counts_seeders() {
    let mut w = World::new();
    let first = w.announce(query(1, 1, 100, Some(AnnounceEvent::Started)), 0, 50);
    assert!(
        first.peers.is_empty(),
        "alone in the swarm: nobody to return"
    );
    w.announce(query(1, 2, 0, Some(AnnounceEvent::Started)), 0, 50);
    let again = w.announce(query(1, 1, 100, None), 1, 50);
    assert_eq!(sorted_addrs(&again), [addr(2)]);
    assert_eq!(again.peers[0].peer_id, Some(PeerId([2; 20])));
    assert_eq!((again.stats.complete, again.stats.incomplete), (1, 1));
}

#[test]
fn seeders_get_only_leechers_and_numwant_caps_the_list() {
    let mut w = World::new();
    for p in 1..=3 {
        w.announce(query(1, p, 10, None), 0, 50);
    }
    w.announce(query(1, 9, 0, None), 0, 50);
    let seeder_view = w.announce(query(1, 8, 0, None), 0, 50);
    assert_eq!(sorted_addrs(&seeder_view), [addr(1), addr(2), addr(3)]);
    let two = w.announce(query(1, 1, 10, None), 0, 2);
    assert_eq!(two.peers.len(), 2);
    assert!(!two.peers.iter().any(|p| p.addr == addr(1)));
}

#[test]
fn stopped_removes_and_completed_counts_once() {
    let mut w = World::new();
    w.announce(query(1, 1, 10, Some(AnnounceEvent::Started)), 0, 50);
    w.announce(query(1, 2, 10, Some(AnnounceEvent::Started)), 0, 50);
    w.announce(query(1, 2, 0, Some(AnnounceEvent::Completed)), 5, 50);
    w.announce(query(1, 2, 0, Some(AnnounceEvent::Completed)), 6, 50);
    let stats = w.state.scrape(&[]).files[&InfoHash([1; 20])];
    assert_eq!(
        stats,
        ScrapeStats {
            complete: 1,
            incomplete: 1,
            downloaded: 1
        }
    );
    let stopped = w.announce(query(1, 2, 0, Some(AnnounceEvent::Stopped)), 7, 50);
    assert!(stopped.peers.is_empty());
    let view = w.announce(query(1, 1, 10, None), 8, 50);
    assert!(view.peers.is_empty(), "a stopped peer is not handed out");
    assert_eq!(view.stats.complete, 0);
}

#[test]
fn silent_peers_expire_after_the_ttl() {
    let mut w = World::new();
    w.announce(query(1, 1, 10, None), 0, 50);
    w.announce(query(1, 2, 10, None), 100, 50);
    w.state.expire(w.t0 + TTL);
    assert_eq!(
        w.state.snapshot()[0].peers.len(),
        2,
        "exactly at the TTL it is kept"
    );
    w.state.expire(w.t0 + TTL + Duration::from_secs(1));
    let peers: Vec<_> = w.state.snapshot()[0].peers.iter().map(|p| p.addr).collect();
    assert_eq!(peers, [addr(2)]);
    w.state
        .expire(w.t0 + Duration::from_secs(100) + TTL + Duration::from_secs(1));
    assert!(
        w.state.snapshot().is_empty(),
        "an empty swarm with no downloads is dropped"
    );
}

#[test]
fn memory_is_bounded() {
    let mut w = World::new();
    for p in 1..=10 {
        w.announce(query(1, p, 10, None), 0, 50);
    }
    assert_eq!(
        w.state.snapshot()[0].peers.len(),
        4,
        "peers per torrent capped"
    );
    let late = w.announce(query(1, 20, 10, None), 0, 50);
    assert_eq!(late.peers.len(), 4, "a peer over the cap still gets peers");
    for h in 2..=3 {
        w.announce(query(h, 1, 10, None), 0, 50);
    }
    let now = w.t0 + Duration::from_secs(1);
    let refused = w
        .state
        .announce(&query(4, 1, 10, None), addr(1), now, 50, &mut w.rng);
    assert_eq!(refused, Err(Refusal::TooManyTorrents(3)));
    // Once the old swarms expire there is room again.
    let later = w.t0 + TTL + Duration::from_secs(1);
    let accepted = w
        .state
        .announce(&query(4, 1, 10, None), addr(1), later, 50, &mut w.rng);
    assert!(accepted.is_ok());
}

#[test]
fn scrape_selects_named_torrents() {
    let mut w = World::new();
    w.announce(query(1, 1, 0, None), 0, 50);
    w.announce(query(2, 1, 5, None), 0, 50);
    let one = w.state.scrape(&[InfoHash([2; 20]), InfoHash([7; 20])]);
    assert_eq!(one.files.len(), 1);
    assert_eq!(one.files[&InfoHash([2; 20])].incomplete, 1);
    assert_eq!(w.state.scrape(&[]).files.len(), 2);
}
