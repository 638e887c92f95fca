//! A scenario file in the pure simulator (`policy::sim`), seen by one viewer: every world peer
//! becomes a simulated peer holding exactly the pieces the world draws for it (seeds all of
//! them), online in the same spells (arrival, churn), behind its class's link, and giving this
//! viewer an even share of its upload among everyone downloading from it (the scenario's
//! viewers and its partial peers, each counted for the share of the time it is online). What the model leaves out (choking, partial peers' pieces
//! growing, viewers serving each other) is why its numbers are calibrated against real worlds
//! (BENCHMARKS.md "Scale").

use std::time::Duration;

use super::content::draw_pieces;
use super::scenario::{PeerClass, Scenario};
use super::shared::SeedUse;
use crate::policy::picker::DeadlineConfig;
use crate::policy::sim::{self, Holding, SimError, SimPeer};
use crate::policy::vod::{Schedule, VodError, VodParams};
use crate::proto::metainfo::Metainfo;

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the scenario has no viewers: nothing to simulate")]
    NoViewers,
    #[error("viewer class {0}: no such file in the torrent")]
    NoMovie(String),
    #[error("viewer class {class}: {source}")]
    Params { class: String, source: VodError },
    #[error("{0}")]
    Sim(#[from] SimError),
}

/// Simulated penalty of one policy for one viewer class, over seeds.
#[derive(Debug, Clone)]
pub struct SimulatedPenalty {
    pub class: String,
    pub policy: &'static str,
    /// Penalty fraction of the movie, one per seed.
    pub fractions: Vec<f64>,
}

impl SimulatedPenalty {
    pub fn mean(&self) -> f64 {
        self.fractions.iter().sum::<f64>() / self.fractions.len().max(1) as f64
    }
}

/// The policies btvod plays, in the simulator's terms.
pub fn policies() -> [sim::Policy; 3] {
    [
        sim::Policy::Deadline(DeadlineConfig::default()),
        sim::Policy::RarestFirst,
        sim::Policy::Sequential,
    ]
}

/// Every viewer class's first viewer under each policy, for `seeds` seeds (1, 2, ...).
pub fn simulate(
    scenario: &Scenario,
    meta: &Metainfo,
    seeds: u64,
) -> Result<Vec<SimulatedPenalty>, SimulateError> {
    if scenario.viewers.is_empty() {
        return Err(SimulateError::NoViewers);
    }
    let mut out = Vec::new();
    for class_index in 0..scenario.viewers.len() {
        for policy in policies() {
            let mut fractions = Vec::new();
            for seed in 1..=seeds.max(1) {
                let world = viewer_view(scenario, meta, class_index, seed)?;
                fractions.push(sim::run_policy(&world, &policy)?.penalty_fraction());
            }
            out.push(SimulatedPenalty {
                class: scenario.viewers[class_index].name.clone(),
                policy: policy.name(),
                fractions,
            });
        }
    }
    Ok(out)
}

/// The world as the first viewer of class `class_index` meets it, in the simulator's terms.
pub fn viewer_view(
    scenario: &Scenario,
    meta: &Metainfo,
    class_index: usize,
    seed: u64,
) -> Result<sim::Scenario, SimulateError> {
    let class = &scenario.viewers[class_index];
    let file = meta
        .movie_file(class.file.as_deref())
        .ok_or_else(|| SimulateError::NoMovie(class.name.clone()))?;
    let params = VodParams::new(class.rate, class.delay, class.prefetch);
    let movie = meta.geometry.files()[file].range();
    let schedule = params
        .and_then(|p| Schedule::new(p, &meta.geometry, movie))
        .map_err(|source| SimulateError::Params {
            class: class.name.clone(),
            source,
        })?;
    let arrive = class.arrival.of(0, class.count);
    let horizon = arrive
        + class.delay
        + Duration::from_secs_f64(meta.files[file].length as f64 / class.rate.max(1) as f64)
        + Duration::from_secs(120);
    let downloaders = downloaders(scenario);
    let mut peers = Vec::new();
    for (c, peer_class) in scenario.peers.iter().enumerate() {
        // Everyone downloading from this peer but itself shares its upload.
        let itself = if downloads(peer_class) {
            online_share(peer_class)
        } else {
            0.0
        };
        let others = downloaders - itself;
        // No upload limit (0) is the loopback's speed, about 1 GB/s.
        let upload = match peer_class.limits.upload {
            0 => 1e9,
            limit => limit as f64,
        };
        let rate = upload / others.max(1.0);
        let latency = peer_class.link.rtt / 2;
        for i in 0..peer_class.count {
            let holding = if peer_class.is_seed_class() {
                Holding::All
            } else {
                let draw_seed = scenario_seed(scenario, c, i);
                Holding::Set(draw_pieces(
                    peer_class.draw,
                    peer_class.fraction_for(i),
                    meta.geometry.piece_count(),
                    i,
                    peer_class.count,
                    draw_seed,
                ))
            };
            for (from, to) in spells(peer_class, i, horizon) {
                // Times from this viewer's arrival; a spell already over is left out.
                if to.is_some_and(|t| t <= arrive) {
                    continue;
                }
                let mut peer = SimPeer::new(holding.clone(), rate, latency)
                    .arriving_at(from.saturating_sub(arrive));
                if let Some(to) = to {
                    peer = peer.leaving_at(to - arrive);
                }
                peers.push(peer);
            }
        }
    }
    Ok(sim::Scenario {
        name: format!("{} ({})", scenario.name, class.name),
        geometry: meta.geometry.clone(),
        schedule,
        peers,
        pipeline: Duration::from_secs(1),
        depth: 2..=64,
        tick: Duration::from_millis(250),
        seed,
        player: None,
    })
}

/// The seed the world draws partial peer `i` of class `c`'s first incarnation with.
fn scenario_seed(scenario: &Scenario, c: usize, i: u32) -> u64 {
    super::content::mix(
        scenario.seed,
        &[SeedUse::PartialDraw as u64, c as u64, u64::from(i), 0],
    )
}

/// Whether a peer of the class downloads (and so competes with the viewer for uploads).
fn downloads(class: &PeerClass) -> bool {
    !class.is_seed_class()
}

/// Partial peers (weighted by the time they are online) and viewers: who competes for a
/// peer's upload on average.
fn downloaders(scenario: &Scenario) -> f64 {
    let partial: f64 = scenario
        .peers
        .iter()
        .filter(|c| downloads(c))
        .map(|c| f64::from(c.count) * online_share(c))
        .sum();
    partial + f64::from(scenario.viewer_count())
}

/// The share of the time a peer of the class is online: its churn's on / (on + off).
fn online_share(class: &PeerClass) -> f64 {
    match (class.leave_after, class.rejoin_after) {
        (Some(on), Some(off)) => on.as_secs_f64() / (on + off).as_secs_f64().max(1e-9),
        _ => 1.0,
    }
}

/// A world peer's online spells from the world's start until `horizon`: arrival, then churn.
fn spells(class: &PeerClass, i: u32, horizon: Duration) -> Vec<(Duration, Option<Duration>)> {
    let mut at = class.arrival.of(i, class.count);
    let Some(online) = class.leave_after else {
        return vec![(at, None)];
    };
    let mut out = Vec::new();
    while at < horizon {
        out.push((at, Some(at + online)));
        match class.rejoin_after {
            Some(offline) => at += online + offline,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
    fn each_world_peer_gives_the_viewer_its_share_in_its_spells() {
        let s = scenario(WORLD);
        let meta = meta();
        let view = viewer_view(&s, &meta, 0, 1).unwrap();
        assert_eq!(view.geometry, meta.geometry);
        // Partial peers are online a quarter of the time: downloaders 2 x 0.25 + 1 viewer.
        let seed = &view.peers[0];
        assert!((seed.upload_rate - 90.0 * 1024.0 / 1.5).abs() < 1e-6);
        assert_eq!(seed.holding, Holding::All);
        // The seed is there before the viewer (arriving at 15 s) and stays.
        assert_eq!((seed.arrive, seed.leave), (Duration::ZERO, None));
        let partials = &view.peers[1..];
        assert!(
            partials
                .iter()
                .all(|p| matches!(&p.holding, Holding::Set(v) if v.len() == 8))
        );
        // Spells every 40 s; the first (0-10 s) ended before the viewer came.
        assert_eq!(partials[0].arrive, Duration::from_secs(25));
        assert_eq!(partials[0].leave, Some(Duration::from_secs(35)));
        let share = 30.0 * 1024.0 / 1.25;
        assert!(
            partials
                .iter()
                .all(|p| (p.upload_rate - share).abs() < 1e-6)
        );
    }

    #[test]
    fn a_fast_world_needs_no_server_and_a_slow_one_needs_it_more() {
        let meta = meta();
        let penalty = |text: &str| {
            let results = simulate(&scenario(text), &meta, 1).unwrap();
            assert_eq!(results.len(), 3, "one row per policy: {results:?}");
            results[0].mean()
        };
        assert_eq!(penalty(&WORLD.replace("90KiB", "unlimited")), 0.0);
        let slow = penalty(&WORLD.replace("90KiB", "20KiB"));
        let slower = penalty(&WORLD.replace("90KiB", "10KiB"));
        assert!(slow > 0.2 && slower > slow, "{slow} {slower}");
    }
}
