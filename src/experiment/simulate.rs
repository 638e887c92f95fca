//! A scenario file in the pure simulator (`policy::sim`), seen by each of its viewers in turn:
//! every other member (world peer spell or viewer) becomes a simulated peer holding the pieces
//! the world draws for it and those the fluid model (`swarm_model.rs`) says it gains, online
//! in the same spells, behind its class's link, and giving this viewer the share of its upload
//! the model says, in choking rounds where a real choker would use them (turns among more
//! members than slots, a newcomer's wait for a busy member's next round). What the model
//! leaves out (connection caps, who wins a slot, which pieces a member can offer whom) is why
//! its numbers are calibrated against real worlds (BENCHMARKS.md "Scale").

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::content::draw_pieces;
use super::scenario::{PeerClass, Scenario, ViewerClass};
use super::shared::SeedUse;
use super::swarm_model::{self, Course, Member, Progress, Rebirth};
use crate::policy::pacing;
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
    #[error("viewer class {0} has no viewer {1}")]
    NoViewer(String, u32),
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
    /// Penalty fraction of the movie, one per seed and simulated viewer.
    pub fractions: Vec<f64>,
    /// The movie's length, for penalties in bytes.
    pub movie_bytes: u64,
}

impl SimulatedPenalty {
    pub fn mean(&self) -> f64 {
        self.fractions.iter().sum::<f64>() / self.fractions.len().max(1) as f64
    }
}

/// The policies btvod plays, in the simulator's terms, the deadline policy with `deadline`'s
/// settings.
pub fn policies(deadline: &DeadlineConfig) -> [sim::Policy; 3] {
    [
        sim::Policy::Deadline(deadline.clone()),
        sim::Policy::RarestFirst,
        sim::Policy::Sequential,
    ]
}

/// Viewers simulated per class at most, evenly spread over its arrivals.
const VIEWERS_PER_CLASS: u32 = 12;

/// Each viewer class's viewers (up to [`VIEWERS_PER_CLASS`]) under each policy, for `seeds`
/// seeds (1, 2, ...), the deadline policy with `deadline`'s settings.
pub fn simulate(
    scenario: &Scenario,
    meta: &Metainfo,
    seeds: u64,
    deadline: &DeadlineConfig,
) -> Result<Vec<SimulatedPenalty>, SimulateError> {
    if scenario.viewers.is_empty() {
        return Err(SimulateError::NoViewers);
    }
    let crowd = Crowd::new(scenario, meta)?;
    let mut out = Vec::new();
    for (class_index, class) in scenario.viewers.iter().enumerate() {
        let movie_bytes = schedule_of(meta, class)?.movie_len();
        for policy in policies(deadline) {
            let mut fractions = Vec::new();
            for seed in 1..=seeds.max(1) {
                for viewer in sampled(class.count) {
                    let world = crowd.viewer_view(scenario, meta, class_index, viewer, seed)?;
                    fractions.push(sim::run_policy(&world, &policy)?.penalty_fraction());
                }
            }
            out.push(SimulatedPenalty {
                class: class.name.clone(),
                policy: policy.name(),
                fractions,
                movie_bytes,
            });
        }
    }
    Ok(out)
}

/// Which of a class's `count` viewers are simulated.
fn sampled(count: u32) -> Vec<u32> {
    if count <= VIEWERS_PER_CLASS {
        return (0..count).collect();
    }
    let mut out: Vec<u32> = (0..VIEWERS_PER_CLASS)
        .map(|k| k * (count - 1) / (VIEWERS_PER_CLASS - 1))
        .collect();
    out.dedup();
    out
}

/// Every member of the scenario's world and what the fluid model says of it.
pub struct Crowd {
    members: Vec<Member>,
    about: Vec<About>,
    courses: Vec<Course>,
    /// Where the model stops: the last viewer's last deadline and two minutes more.
    horizon: Duration,
}

/// What the simulator needs of a member beside the model.
struct About {
    /// What it holds when it comes, and when each later life begins (`Rebirth`).
    lives: Vec<Holding>,
    /// Its link's one-way latency to a viewer.
    latency: Duration,
    /// Which viewer it is: class and index.
    viewer: Option<(usize, u32)>,
}

impl Crowd {
    /// Runs the fluid model (`swarm_model.rs`) over the scenario's world.
    pub fn new(scenario: &Scenario, meta: &Metainfo) -> Result<Self, SimulateError> {
        let mut crowd = Crowd {
            members: Vec::new(),
            about: Vec::new(),
            courses: Vec::new(),
            horizon: Duration::ZERO,
        };
        for (v, class) in scenario.viewers.iter().enumerate() {
            let schedule = schedule_of(meta, class)?;
            for j in 0..class.count {
                let from = class.arrival.of(j, class.count);
                let movie: Vec<(u32, Duration)> = schedule
                    .movie_pieces()
                    .filter_map(|p| meta.geometry.piece(p))
                    .filter_map(|p| Some((p.get(), from + schedule.deadline(p)?)))
                    .collect();
                let last = movie.last().map_or(from, |m| m.1);
                crowd.horizon = crowd.horizon.max(last + Duration::from_secs(120));
                crowd.members.push(Member {
                    spells: vec![(from, class.stay.map(|stay| last + stay))],
                    upload: class.limits.upload_rate().unwrap_or(LOOPBACK_RATE),
                    progress: Progress::Viewer {
                        movie,
                        download: class.limits.download_rate().unwrap_or(f64::INFINITY),
                    },
                    rebirth: None,
                });
                crowd.about.push(About {
                    lives: vec![Holding::Set(Vec::new())],
                    latency: Duration::ZERO,
                    viewer: Some((v, j)),
                });
            }
        }
        for (c, class) in scenario.peers.iter().enumerate() {
            crowd.add_world_peers(scenario, meta, c, class);
        }
        crowd.courses = swarm_model::run(&crowd.members, &meta.geometry, crowd.horizon);
        Ok(crowd)
    }

    /// A world peer class's members, one per online spell.
    fn add_world_peers(
        &mut self,
        scenario: &Scenario,
        meta: &Metainfo,
        c: usize,
        class: &PeerClass,
    ) {
        let pieces = meta.geometry.piece_count();
        for i in 0..class.count {
            // Each life a partial peer starts: what it holds, and the order it fetches the rest.
            let draw = |life: u64| {
                let draw_seed = scenario_seed(scenario, c, i, life);
                let held = draw_pieces(
                    class.draw,
                    class.fraction_for(i),
                    pieces,
                    i,
                    class.count,
                    draw_seed,
                );
                let mut missing: Vec<u32> = (0..pieces).filter(|p| !held.contains(p)).collect();
                missing.shuffle(&mut StdRng::seed_from_u64(draw_seed));
                (held, missing)
            };
            let (lives, progress, rebirth) = if class.is_seed_class() {
                (vec![Holding::All], Progress::Seed, None)
            } else {
                let (held, missing) = draw(0);
                let download = class.limits.download_rate().unwrap_or(f64::INFINITY);
                let mut lives = vec![Holding::Set(held)];
                // It leaves and rejoins with what it had; it starts over only once complete.
                let rebirth = class.reincarnate.map(|linger| {
                    // Each life lasts its linger and a step at least: draw as many as fit.
                    let most = self.horizon.as_secs() / (linger.as_secs() + 1);
                    let (held, missing): (Vec<_>, Vec<_>) = (1..=most).map(draw).unzip();
                    lives.extend(held.into_iter().map(Holding::Set));
                    Rebirth {
                        linger,
                        lives: missing,
                    }
                });
                (lives, Progress::Partial { missing, download }, rebirth)
            };
            self.members.push(Member {
                spells: spells(class, i, self.horizon),
                upload: class.limits.upload_rate().unwrap_or(LOOPBACK_RATE),
                progress,
                rebirth,
            });
            self.about.push(About {
                lives,
                latency: class.link.rtt / 2,
                viewer: None,
            });
        }
    }

    /// The world as viewer `viewer` of class `class_index` meets it, in the simulator's terms:
    /// every other member holding what the model says it holds when, and giving this viewer
    /// its share of its upload.
    pub fn viewer_view(
        &self,
        scenario: &Scenario,
        meta: &Metainfo,
        class_index: usize,
        viewer: u32,
        seed: u64,
    ) -> Result<sim::Scenario, SimulateError> {
        let class = &scenario.viewers[class_index];
        let me = self
            .about
            .iter()
            .position(|a| a.viewer == Some((class_index, viewer)))
            .ok_or_else(|| SimulateError::NoViewer(class.name.clone(), viewer))?;
        let arrive = self.members[me].spells[0].0;
        let peers = (0..self.members.len())
            .filter(|&m| m != me)
            .flat_map(|m| {
                self.members[m]
                    .spells
                    .iter()
                    .flat_map(move |&spell| self.seen_in_spell(m, me, spell, arrive))
            })
            .collect();
        Ok(sim::Scenario {
            name: format!("{} ({} #{viewer})", scenario.name, class.name),
            geometry: meta.geometry.clone(),
            schedule: schedule_of(meta, class)?,
            peers,
            // Paced as the engine paces a real viewer's requests.
            pipeline: pacing::PIPELINE,
            depth: pacing::MIN_QUEUE..=pacing::MAX_QUEUE,
            tick: Duration::from_millis(250),
            seed,
            player: None,
        })
    }

    /// Member `m` in one of its spells as viewer `me` (arriving at `arrive`) meets it: the
    /// peers of each of its lives in that spell (`seen_in_life`).
    fn seen_in_spell(
        &self,
        m: usize,
        me: usize,
        spell: (Duration, Option<Duration>),
        arrive: Duration,
    ) -> Vec<SimPeer> {
        // Each life in the spell is a peer of its own: starting over, it holds other pieces.
        let rebirths = &self.courses[m].rebirths;
        let end = spell.1.unwrap_or(self.horizon);
        let mut life = rebirths.partition_point(|&r| r <= spell.0);
        let mut from = spell.0;
        let mut out = Vec::new();
        loop {
            let next = rebirths.get(life).copied().filter(|&r| r < end);
            let to = next.or(spell.1);
            out.extend(self.seen_in_life(m, me, (from, to), life, arrive));
            let Some(next) = next else {
                return out;
            };
            from = next;
            life += 1;
        }
    }

    /// Member `m` in one life within one of its spells, as viewer `me` meets it: one
    /// simulated peer giving its even share all along, or, when it helps more members than
    /// it has unchoke slots, one for each choking round in which it unchokes the viewer, at
    /// the share that round's turn gives. Real chokers give a few peers all their upload and
    /// the rest none; an even trickle from each of hundreds of peers is something the deadline
    /// policy rightly never asks of (BENCHMARKS.md "Scale").
    fn seen_in_life(
        &self,
        m: usize,
        me: usize,
        spell: (Duration, Option<Duration>),
        life: usize,
        arrive: Duration,
    ) -> Vec<SimPeer> {
        let meet = self.first_unchoke(m, spell.0, arrive);
        let end = spell.1.unwrap_or(self.horizon);
        if meet >= end {
            return Vec::new();
        }
        match self.turns(m, me, meet, end) {
            None => self
                .peer_seen_at(m, (meet, spell.1), life, arrive, None)
                .into_iter()
                .collect(),
            Some(turns) => turns
                .into_iter()
                .filter_map(|(from, to, rate)| {
                    self.peer_seen_at(m, (from, Some(to)), life, arrive, Some(rate))
                })
                .collect(),
        }
    }

    /// When member `m`, online since `since`, first uploads to a viewer arriving at `arrive`:
    /// at once, unless it was there first with more members to help than it has slots; then
    /// at its next choking round (a real choker does not hand a busy slot to a newcomer
    /// between rounds).
    fn first_unchoke(&self, m: usize, since: Duration, arrive: Duration) -> Duration {
        let busy =
            || last_at(&self.courses[m].helped, arrive).is_some_and(|h| h as f64 > UNCHOKE_SLOTS);
        if arrive <= since || !busy() {
            return arrive.max(since);
        }
        let rounds = (arrive - since).as_secs_f64() / UNCHOKE_ROUND.as_secs_f64();
        since + UNCHOKE_ROUND.mul_f64(rounds.ceil())
    }

    /// The rounds between `meet` and `end` in which member `m` unchokes viewer `me`, with the
    /// rate it then gives: one round in `n` when its even share spreads over `n` times its
    /// slots, at `n` times that share (the same bytes on average). `None` when it never helps
    /// more members than it has slots: then nothing changes.
    fn turns(
        &self,
        m: usize,
        me: usize,
        meet: Duration,
        end: Duration,
    ) -> Option<Vec<(Duration, Duration, f64)>> {
        let upload = self.members[m].upload;
        let share = &self.courses[m].share;
        // Which of its rounds is this viewer's: fixed per pair, spread over the members.
        let turn = (m as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ me as u64;
        let mut crowded = false;
        let mut out = Vec::new();
        let mut k = meet.as_secs() / UNCHOKE_ROUND.as_secs();
        loop {
            let from = (UNCHOKE_ROUND * k as u32).max(meet);
            if from >= end {
                break;
            }
            let to = (UNCHOKE_ROUND * (k as u32 + 1)).min(end);
            let s = share_at(share, from)?;
            let n = (upload / s / UNCHOKE_SLOTS).ceil().max(1.0) as u64;
            crowded |= n > 1;
            if k.wrapping_add(turn).is_multiple_of(n) {
                out.push((from, to, s * n as f64));
            }
            k += 1;
        }
        crowded.then_some(out)
    }

    /// Member `m` in one of its spells as a simulated peer for a viewer arriving at `arrive`,
    /// or `None` when the spell is over by then or the member holds nothing; `rate`, if
    /// given, replaces the model's share.
    fn peer_seen_at(
        &self,
        m: usize,
        (from, to): (Duration, Option<Duration>),
        life: usize,
        arrive: Duration,
        rate: Option<f64>,
    ) -> Option<SimPeer> {
        if to.is_some_and(|to| to <= arrive) {
            return None;
        }
        let course = &self.courses[m];
        // Times in the viewer's run: from its arrival.
        let meet = from.max(arrive);
        let during = |t: Duration| t > meet && to.is_none_or(|to| t < to);
        let born = life
            .checked_sub(1)
            .map_or(Duration::ZERO, |k| course.rebirths[k]);
        let holding = match &self.about[m].lives[life] {
            Holding::Set(held) => {
                let mut held = held.clone();
                let before = course.gains.iter().filter(|g| born <= g.0 && g.0 <= meet);
                held.extend(before.map(|g| g.1));
                let gains_later = course.gains.iter().any(|g| during(g.0));
                if held.is_empty() && !gains_later {
                    return None;
                }
                Holding::Set(held)
            }
            other => other.clone(),
        };
        // Its share when it meets the viewer, then its later changes.
        let (rate, steps) = match rate {
            Some(rate) => (rate, Vec::new()),
            None => (
                share_at(&course.share, meet)?,
                course
                    .share
                    .iter()
                    .filter(|s| during(s.0))
                    .map(|&(t, r)| (t - arrive, r))
                    .collect(),
            ),
        };
        let gains = course
            .gains
            .iter()
            .filter(|g| during(g.0))
            .map(|&(t, p)| (t - arrive, p))
            .collect();
        let mut peer = SimPeer::new(holding, rate, self.about[m].latency)
            .arriving_at(meet - arrive)
            .gaining(gains)
            .with_rate_steps(steps);
        if let Some(to) = to {
            peer = peer.leaving_at(to - arrive);
        }
        Some(peer)
    }
}

/// Peers a member uploads to at once: btvod's four regular unchoke slots and its optimistic
/// one.
const UNCHOKE_SLOTS: f64 = 5.0;
/// How long an unchoke lasts before the choker decides again.
const UNCHOKE_ROUND: Duration = Duration::from_secs(10);

/// A member's share at `t`: the last one set by then, else its first.
fn share_at(share: &[(Duration, f64)], t: Duration) -> Option<f64> {
    last_at(share, t).or(share.first().map(|s| s.1))
}

/// The last value of a series (by time) set at or before `t`.
fn last_at<T: Copy>(series: &[(Duration, T)], t: Duration) -> Option<T> {
    let after = series.partition_point(|s| s.0 <= t);
    after.checked_sub(1).map(|i| series[i].1)
}

/// The class's deadlines for its movie.
fn schedule_of(meta: &Metainfo, class: &ViewerClass) -> Result<Schedule, SimulateError> {
    let file = meta
        .movie_file(class.file.as_deref())
        .ok_or_else(|| SimulateError::NoMovie(class.name.clone()))?;
    let movie = meta.geometry.files()[file].range();
    VodParams::new(class.rate, class.delay, class.prefetch)
        .and_then(|p| Schedule::new(p, &meta.geometry, movie))
        .map_err(|source| SimulateError::Params {
            class: class.name.clone(),
            source,
        })
}

/// An unlimited upload on the loopback, bytes per second (the simulator needs a finite rate).
const LOOPBACK_RATE: f64 = 1e9;

/// The seed the world draws partial peer `i` of class `c`'s `life`-th incarnation with
/// (`peers.rs`).
fn scenario_seed(scenario: &Scenario, c: usize, i: u32, life: u64) -> u64 {
    super::content::mix(
        scenario.seed,
        &[SeedUse::PartialDraw as u64, c as u64, u64::from(i), life],
    )
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
#[path = "simulate_tests.rs"]
mod tests;
