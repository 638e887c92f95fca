//! Choker rules, each with explicit times.

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn secs(s: u64) -> Time {
    Duration::from_secs(s)
}

/// An interested old peer that unchokes us and sends at `down` bytes/s.
fn peer(key: u64, down: f64) -> ChokerPeer {
    ChokerPeer {
        key: PeerKey(key),
        connected_at: secs(0),
        interested: true,
        am_interested: true,
        download_rate: down,
        upload_rate: 0.0,
        unchoked_us_at: Some(secs(0)),
        last_block_at: None,
    }
}

/// Ages every peer past the newcomer window and keeps blocks arriving (no snubbing).
fn settled(mut peers: Vec<ChokerPeer>, now: Time) -> Vec<ChokerPeer> {
    for p in &mut peers {
        p.connected_at = Duration::ZERO;
        p.last_block_at = Some(now);
    }
    peers
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn keys(set: impl Iterator<Item = PeerKey>) -> Vec<u64> {
    set.map(|k| k.0).collect()
}

#[test]
fn regular_slots_go_to_the_best_interested_uploaders() {
    let mut peers: Vec<_> = (1..=7).map(|k| peer(k, k as f64 * 100.0)).collect();
    peers.push(ChokerPeer {
        interested: false,
        ..peer(8, 1e6)
    });
    let peers = settled(peers, secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    let decisions = choker.rechoke(secs(100), &peers, false, &mut rng(1));
    let opt = choker.optimistic().next().expect("an optimistic peer").0;
    assert!(
        (1..=3).contains(&opt),
        "optimistic among the rest, got {opt}"
    );
    let mut expected = vec![4, 5, 6, 7, opt];
    expected.sort();
    assert_eq!(keys(choker.unchoked()), expected);
    assert!(!decisions.contains(&ChokeDecision::Unchoke(PeerKey(8))));
    assert_eq!(decisions.len(), 5, "only unchokes on the first round");
}

#[test]
fn a_seed_ranks_by_upload_rate() {
    let peers: Vec<_> = (1..=6)
        .map(|k| ChokerPeer {
            upload_rate: (10 - k) as f64,
            ..peer(k, k as f64)
        })
        .collect();
    let peers = settled(peers, secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    choker.rechoke(secs(100), &peers, true, &mut rng(1));
    let unchoked = keys(choker.unchoked());
    for k in 1..=4 {
        assert!(unchoked.contains(&k), "peer {k} takes most from us");
    }
}

#[test]
fn regular_slots_are_reevaluated_every_ten_seconds() {
    let mut peers = settled((1..=5).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    choker.rechoke(secs(100), &peers, false, &mut rng(1));
    assert_eq!(
        choker.optimistic().next(),
        Some(PeerKey(1)),
        "the only one left"
    );
    // Peer 1 becomes the fastest: nothing changes before 10 s have passed.
    peers[0].download_rate = 1000.0;
    assert!(
        choker
            .rechoke(secs(109), &peers, false, &mut rng(1))
            .is_empty()
    );
    let decisions = choker.rechoke(secs(110), &peers, false, &mut rng(1));
    // Peer 1 now holds a regular slot; peer 2 (slowest) falls out of the top 4 and is the
    // only candidate for the optimistic slot, so nobody is choked.
    assert!(decisions.is_empty(), "{decisions:?}");
    assert_eq!(choker.optimistic().next(), Some(PeerKey(2)));
}

/// Six interested peers, five slots: after the first round exactly one waits choked.
fn one_waiting(choker: &mut Choker, peers: &[ChokerPeer]) -> u64 {
    choker.rechoke(secs(100), peers, false, &mut rng(1));
    let unchoked = keys(choker.unchoked());
    assert_eq!(unchoked.len(), 5);
    (1..=6).find(|k| !unchoked.contains(k)).expect("one waits")
}

#[test]
fn a_slot_whose_peer_lost_interest_goes_at_once_to_a_waiting_peer() {
    let mut peers = settled((1..=6).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    let waiting = one_waiting(&mut choker, &peers);
    peers[5].interested = false; // peer 6, the fastest, completed
    let decisions = choker.rechoke(secs(101), &peers, false, &mut rng(1));
    assert_eq!(
        decisions,
        vec![
            ChokeDecision::Choke(PeerKey(6)),
            ChokeDecision::Unchoke(PeerKey(waiting))
        ],
        "one second later, not at the round at 110 s"
    );
    assert!(keys(choker.unchoked()).contains(&waiting));
}

#[test]
fn a_lost_interest_with_nobody_waiting_changes_nothing_before_the_round() {
    let mut peers = settled((1..=5).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    choker.rechoke(secs(100), &peers, false, &mut rng(1));
    peers[4].interested = false;
    assert!(
        choker
            .rechoke(secs(101), &peers, false, &mut rng(1))
            .is_empty()
    );
    let decisions = choker.rechoke(secs(110), &peers, false, &mut rng(1));
    assert_eq!(decisions, vec![ChokeDecision::Choke(PeerKey(5))]);
}

#[test]
fn a_newly_interested_peer_takes_a_free_slot_between_rounds() {
    let mut peers = settled((1..=3).map(|k| peer(k, k as f64)).collect(), secs(100));
    peers[2].interested = false;
    let mut choker = Choker::new(ChokerConfig::default());
    choker.rechoke(secs(100), &peers, false, &mut rng(1));
    assert_eq!(keys(choker.unchoked()), vec![1, 2]);
    peers[2].interested = true;
    let decisions = choker.rechoke(secs(102), &peers, false, &mut rng(1));
    assert_eq!(decisions, vec![ChokeDecision::Unchoke(PeerKey(3))]);
}

#[test]
fn a_full_choker_makes_a_newcomer_wait_for_the_round() {
    let peers = settled((1..=6).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    one_waiting(&mut choker, &peers);
    assert!(
        choker
            .rechoke(secs(105), &peers, false, &mut rng(1))
            .is_empty(),
        "all five slots serve interested peers"
    );
}

#[test]
fn the_optimistic_slot_rotates_every_thirty_seconds() {
    let peers = settled((1..=10).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    let mut r = rng(3);
    choker.rechoke(secs(100), &peers, false, &mut r);
    let first = choker.optimistic().next().expect("optimistic");
    for t in [110, 120] {
        choker.rechoke(secs(t), &peers, false, &mut r);
        assert_eq!(choker.optimistic().next(), Some(first), "kept at t={t}");
    }
    let decisions = choker.rechoke(secs(130), &peers, false, &mut r);
    let second = choker.optimistic().next().expect("optimistic");
    assert_ne!(second, first, "rotated at 30 s");
    assert_eq!(
        decisions,
        vec![ChokeDecision::Choke(first), ChokeDecision::Unchoke(second)]
    );
}

#[test]
fn newcomers_are_three_times_as_likely_to_be_optimistic() {
    // Four fast regulars, one old and one new candidate: the newcomer should win ~3/4.
    let now = secs(100);
    let mut peers = settled((1..=6).map(|k| peer(k, k as f64 * 10.0)).collect(), now);
    peers[1].connected_at = secs(50); // peer 2: connected 50 s ago, still new
    let trials = 400;
    let newcomer_wins = (0..trials)
        .filter(|&seed| {
            let mut choker = Choker::new(ChokerConfig::default());
            choker.rechoke(now, &peers, false, &mut rng(seed));
            choker.optimistic().next() == Some(PeerKey(2))
        })
        .count();
    let share = newcomer_wins as f64 / trials as f64;
    assert!((0.65..0.85).contains(&share), "newcomer share {share}");
}

#[test]
fn a_snubbing_peer_loses_its_regular_slot_but_may_be_optimistic() {
    let now = secs(100);
    let mut peers = settled((1..=5).map(|k| peer(k, k as f64)).collect(), now);
    // Peer 5 is the fastest on record but unchoked us at t=30 and sent its last block at t=40.
    peers[4].download_rate = 1e6;
    peers[4].unchoked_us_at = Some(secs(30));
    peers[4].last_block_at = Some(secs(40));
    let config = ChokerConfig::default();
    assert!(
        !peers[4].is_snubbed(secs(99), config.snub_after),
        "59 s is not yet a snub"
    );
    assert!(peers[4].is_snubbed(now, config.snub_after));

    let mut choker = Choker::new(config.clone());
    choker.rechoke(now, &peers, false, &mut rng(1));
    assert_eq!(
        choker.optimistic().next(),
        Some(PeerKey(5)),
        "snubbed: optimistic only"
    );
    assert_eq!(keys(choker.unchoked()), vec![1, 2, 3, 4, 5]);

    // Had it sent a block at t=41, it would still be within 60 s and rank first.
    peers[4].last_block_at = Some(secs(41));
    let mut choker = Choker::new(config);
    choker.rechoke(now, &peers, false, &mut rng(1));
    assert_eq!(
        choker.optimistic().next(),
        Some(PeerKey(1)),
        "slowest left out of regulars"
    );
}

#[test]
fn a_peer_choking_us_or_unwanted_is_never_snubbed() {
    let p = ChokerPeer {
        unchoked_us_at: None,
        ..peer(1, 0.0)
    };
    assert!(!p.is_snubbed(secs(1000), Duration::from_secs(60)));
    let p = ChokerPeer {
        am_interested: false,
        ..peer(1, 0.0)
    };
    assert!(!p.is_snubbed(secs(1000), Duration::from_secs(60)));
}

#[test]
fn departed_peers_are_forgotten_without_decisions() {
    let mut peers = settled((1..=5).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    choker.rechoke(secs(100), &peers, false, &mut rng(1));
    peers.retain(|p| p.key != PeerKey(5));
    let decisions = choker.rechoke(secs(101), &peers, false, &mut rng(1));
    assert!(
        decisions.is_empty(),
        "no CHOKE to a closed connection: {decisions:?}"
    );
    assert_eq!(keys(choker.unchoked()), vec![1, 2, 3, 4]);
}

#[test]
fn a_departed_peer_s_slot_goes_at_once_to_a_waiting_peer() {
    let mut peers = settled((1..=6).map(|k| peer(k, k as f64)).collect(), secs(100));
    let mut choker = Choker::new(ChokerConfig::default());
    let waiting = one_waiting(&mut choker, &peers);
    peers.retain(|p| p.key != PeerKey(6));
    let decisions = choker.rechoke(secs(101), &peers, false, &mut rng(1));
    assert_eq!(decisions, vec![ChokeDecision::Unchoke(PeerKey(waiting))]);
}

/// A seed with `capacity` bytes/s whose `n` interested peers each take `each` bytes/s while
/// unchoked (their downloads capped), after a first round has unchoked some of them.
fn capped_seed_round(capacity: f64, n: u64, each: f64) -> Choker {
    let mut choker = Choker::new(ChokerConfig {
        upload_capacity: Some(capacity),
        ..ChokerConfig::default()
    });
    let mut peers = settled((1..=n).map(|k| peer(k, 0.0)).collect(), secs(100));
    let _ = choker.rechoke(secs(100), &peers, true, &mut rng(1));
    for p in &mut peers {
        if choker.unchoked().any(|k| k == p.key) {
            p.upload_rate = each;
        }
    }
    let _ = choker.rechoke(secs(110), &peers, true, &mut rng(1));
    choker
}

#[test]
fn unused_upload_capacity_opens_more_slots() {
    // Five busy slots send 20 of 256 KiB/s: enough slots to fill 90% at 4 KiB/s each,
    // bounded by the configured maximum.
    let choker = capped_seed_round(256.0 * 1024.0, 60, 4096.0);
    assert_eq!(choker.regular_slot_count(), 40);
    assert_eq!(
        choker.unchoked().count(),
        48,
        "and one optimistic slot per five"
    );

    let choker = capped_seed_round(64.0 * 1024.0, 60, 4096.0);
    // 20 KiB/s used, 57.6 wanted: ceil(37.6 / 4) = 10 more.
    assert_eq!(choker.regular_slot_count(), 14);
    assert_eq!(choker.unchoked().count(), 16);
}

#[test]
fn a_saturated_or_unlimited_upload_keeps_the_configured_slots() {
    // Five slots at 16 KiB/s fill 80 KiB/s: saturated, nothing opens.
    let choker = capped_seed_round(80.0 * 1024.0, 60, 16.0 * 1024.0);
    assert_eq!(choker.regular_slot_count(), 4);
    // No known capacity: the configured count whatever the rates.
    let mut choker = Choker::new(ChokerConfig::default());
    let mut peers = settled((1..=60).map(|k| peer(k, 0.0)).collect(), secs(100));
    let _ = choker.rechoke(secs(100), &peers, true, &mut rng(1));
    for p in &mut peers {
        p.upload_rate = 1.0;
    }
    let _ = choker.rechoke(secs(110), &peers, true, &mut rng(1));
    assert_eq!(choker.regular_slot_count(), 4);
    assert_eq!(choker.unchoked().count(), 5);
}

#[test]
fn opened_slots_close_one_a_round_once_upload_is_saturated() {
    let capacity = 256.0 * 1024.0;
    let mut choker = capped_seed_round(capacity, 60, 4096.0);
    assert_eq!(choker.regular_slot_count(), 40);
    let mut peers = settled((1..=60).map(|k| peer(k, 0.0)).collect(), secs(120));
    for p in &mut peers {
        p.upload_rate = capacity / 60.0;
    }
    let _ = choker.rechoke(secs(120), &peers, true, &mut rng(1));
    assert_eq!(choker.regular_slot_count(), 39);
}

#[test]
fn one_optimistic_slot_per_five_regular_ones_each_rotating() {
    let peers = settled((1..=30).map(|k| peer(k, k as f64)).collect(), secs(100));
    let config = ChokerConfig {
        regular_slots: 10,
        ..ChokerConfig::default()
    };
    let mut choker = Choker::new(config);
    let mut r = rng(5);
    choker.rechoke(secs(100), &peers, false, &mut r);
    assert_eq!(choker.optimistic_slot_count(), 2);
    let first: BTreeSet<PeerKey> = choker.optimistic().collect();
    assert_eq!(first.len(), 2, "both optimistic slots filled");
    assert!(
        first.iter().all(|k| k.0 <= 20),
        "optimistic peers are not the ten fastest: {first:?}"
    );
    assert_eq!(choker.unchoked().count(), 12);
    choker.rechoke(secs(110), &peers, false, &mut r);
    assert_eq!(
        choker.optimistic().collect::<BTreeSet<_>>(),
        first,
        "kept within 30 s"
    );
    choker.rechoke(secs(130), &peers, false, &mut r);
    let second: BTreeSet<PeerKey> = choker.optimistic().collect();
    assert_eq!(second.len(), 2);
    assert!(
        second.is_disjoint(&first),
        "{first:?} rotated out for {second:?}"
    );
}

#[test]
fn a_small_choker_keeps_one_optimistic_slot() {
    let choker = Choker::new(ChokerConfig::viewer());
    assert_eq!(choker.optimistic_slot_count(), 1, "8 regular slots");
}
