use super::*;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "test", "test", std::path::Path::new(".")).unwrap()
}

const WORLD: &str = r#"
        seed = 3
        [content]
        name = "m.bin"
        size = "1MiB"
        piece_size = "64KiB"
        [[peers]]
        name = "seed"
        count = 1
        have = 1.0
        upload = "90KiB"
        [[peers]]
        name = "partial"
        count = 2
        have = 0.5
        upload = "30KiB"
        leave_after = 10
        rejoin_after = 30
        [[viewers]]
        count = 1
        rate = "64KiB"
        delay = 6
        prefetch = 2
        arrive = 15
    "#;

fn meta() -> Metainfo {
    // Each test its own directory: tests run in parallel in one process.
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(WORLD);
    let (_, bytes) =
        crate::experiment::world::build_content(&s.content, dir.path(), "http://x/a").unwrap();
    Metainfo::from_bytes(&bytes).unwrap()
}

#[test]
fn each_member_meets_the_viewer_with_what_it_holds_then_and_its_share() {
    let s = scenario(WORLD);
    let meta = meta();
    let crowd = Crowd::new(&s, &meta).unwrap();
    let view = crowd.viewer_view(&s, &meta, 0, 0, 1).unwrap();
    assert_eq!(view.geometry, meta.geometry);
    // Only the viewer downloads when it comes at 15 s: the seed's whole upload is its share.
    let seed = &view.peers[0];
    assert_eq!(seed.holding, Holding::All);
    assert!((seed.upload_rate - 90.0 * 1024.0).abs() < 1e-6);
    assert_eq!((seed.arrive, seed.leave), (Duration::ZERO, None));
    // The partial peers completed in their first spell (0-10 s, from the seed and each
    // other), over before the viewer came, and are back at 40 s with every piece.
    let partials = &view.peers[1..];
    assert!(
        partials
            .iter()
            .all(|p| matches!(&p.holding, Holding::Set(v) if v.len() == 16))
    );
    assert_eq!(partials[0].arrive, Duration::from_secs(25));
    assert_eq!(partials[0].leave, Some(Duration::from_secs(35)));
}

#[test]
fn a_partial_peer_that_starts_over_meets_the_viewer_as_each_of_its_lives() {
    // Without churn the partial peers complete within seconds; with `reincarnate` each
    // then seeds 2 s and starts over with a fresh half of the movie, as in a real world.
    let text = WORLD.replace(
        "leave_after = 10\n        rejoin_after = 30",
        "reincarnate = true\n        linger = 2",
    );
    let s = scenario(&text);
    let meta = meta();
    let crowd = Crowd::new(&s, &meta).unwrap();
    let rebirths = &crowd
        .courses
        .iter()
        .map(|c| c.rebirths.len())
        .collect::<Vec<_>>();
    // Members: the viewer, the seed, the two partial peers.
    assert!(rebirths[2..].iter().all(|&n| n >= 2), "{rebirths:?}");
    let view = crowd.viewer_view(&s, &meta, 0, 0, 1).unwrap();
    // A life that begins after the viewer came holds only its own draw at first.
    let later: Vec<_> = view.peers[1..]
        .iter()
        .filter(|p| p.arrive > Duration::ZERO)
        .collect();
    assert!(!later.is_empty());
    for p in later {
        assert!(
            matches!(&p.holding, Holding::Set(v) if v.len() < 16),
            "{p:?}"
        );
        assert!(!p.gains.is_empty());
    }
}

#[test]
fn a_busy_member_there_first_unchokes_a_newcomer_at_its_next_round() {
    // Eight partial peers, capped at 1 KiB/s, still download when the viewer comes at 15 s:
    // the seed (online since 0) helps nine members with five slots and rechokes every 10 s.
    let text = WORLD
        .replace(
            "count = 2\n        have = 0.5",
            "count = 8\n        have = 0.5",
        )
        .replace(
            "leave_after = 10\n        rejoin_after = 30",
            "download = \"1KiB\"",
        );
    let s = scenario(&text);
    let meta = meta();
    let crowd = Crowd::new(&s, &meta).unwrap();
    let view = crowd.viewer_view(&s, &meta, 0, 0, 1).unwrap();
    let seed = view
        .peers
        .iter()
        .find(|p| p.holding == Holding::All)
        .unwrap();
    assert_eq!(seed.arrive, Duration::from_secs(5), "its round at 20 s");
    // The partial peers' upload leaves it most of the seed's once it is unchoked.
    assert!(seed.upload_rate > 60.0 * 1024.0, "{}", seed.upload_rate);
}

#[test]
fn a_member_helping_more_than_its_slots_unchokes_the_viewer_in_turns() {
    // Twelve viewers at once: the seed helps twelve members with five slots.
    let text = WORLD.replace("count = 1\n        rate", "count = 12\n        rate");
    let s = scenario(&text);
    let meta = meta();
    let crowd = Crowd::new(&s, &meta).unwrap();
    let view = crowd.viewer_view(&s, &meta, 0, 0, 1).unwrap();
    let seed: Vec<_> = view
        .peers
        .iter()
        .filter(|p| p.holding == Holding::All)
        .collect();
    assert!(
        seed.len() > 1,
        "the seed comes in turns, not as one trickle"
    );
    let slot = 90.0 * 1024.0 / UNCHOKE_SLOTS;
    for (turn, next) in seed.iter().zip(seed.iter().skip(1)) {
        assert!(turn.leave.unwrap() - turn.arrive <= UNCHOKE_ROUND);
        assert!(next.arrive >= turn.leave.unwrap(), "turns do not overlap");
    }
    for turn in &seed {
        assert!(
            turn.upload_rate >= slot - 1e-6 && turn.upload_rate <= 90.0 * 1024.0,
            "an unchoked viewer gets at least a slot's share: {}",
            turn.upload_rate
        );
    }
}

#[test]
fn a_viewer_that_came_earlier_serves_a_later_one() {
    // A seed far slower than the movie, and a second viewer 20 s after the first.
    let text = WORLD
        .replace("90KiB", "20KiB")
        .replace("count = 1\n        rate", "count = 2\n        rate")
        .replace(
            "arrive = 15",
            "arrive = 15\n        arrive_spread = 20\n        upload = \"200KiB\"",
        );
    let meta = meta();
    let results = simulate(&scenario(&text), &meta, 1, &DeadlineConfig::default()).unwrap();
    let first_and_second = &results[0].fractions;
    assert_eq!(first_and_second.len(), 2);
    assert!(
        first_and_second[0] > 0.3 && first_and_second[1] < first_and_second[0] / 2.0,
        "{first_and_second:?}"
    );
}

#[test]
fn a_fast_world_needs_no_server_and_a_slow_one_needs_it_more() {
    let meta = meta();
    let penalty = |text: &str| {
        let results = simulate(&scenario(text), &meta, 1, &DeadlineConfig::default()).unwrap();
        assert_eq!(results.len(), 3, "one row per policy: {results:?}");
        results[0].mean()
    };
    assert_eq!(penalty(&WORLD.replace("90KiB", "unlimited")), 0.0);
    let slow = penalty(&WORLD.replace("90KiB", "20KiB"));
    let slower = penalty(&WORLD.replace("90KiB", "10KiB"));
    assert!(slow > 0.2 && slower > slow, "{slow} {slower}");
}
