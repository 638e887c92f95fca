//! The swarm around a simulated viewer as a fluid model in one-second steps: who shares each
//! member's upload when, and when partial peers and viewers come to hold each piece. It feeds
//! the simulator (`simulate.rs`) the growing holdings and changing upload shares that a
//! static view of the world leaves out.
//!
//! The rules, kept simple on purpose (BENCHMARKS.md "Scale" says how far they carry):
//! - every online member splits its upload evenly among the members it can help: online
//!   members still downloading, except that a viewer helps another viewer only while it has
//!   played further into the movie (viewers fetch in about playback order), and a partial
//!   peer only while it holds a piece the partial peer lacks (`from_viewers.rs`);
//! - a partial peer fills its missing pieces with what it receives, up to its download limit:
//!   what viewers give it with their pieces, the rest in a drawn order; it stops competing
//!   once complete, and one that reincarnates starts over after its linger (`Rebirth`);
//! - a viewer fills the movie in order with what it receives and holds every piece by its
//!   deadline at the latest (the server covers what the swarm did not); it is served until
//!   its last deadline, since a VoD viewer fetches in time rather than early.

mod from_viewers;

use std::time::Duration;

use crate::proto::geometry::Geometry;
use from_viewers::{Lacks, Orders, Reach};

/// One step of the model.
const STEP: Duration = Duration::from_secs(1);
/// Share changes smaller than this fraction are not passed on (each is an event).
const SHARE_CHANGE: f64 = 0.05;

/// One member of the swarm; times are from the world's start.
#[derive(Debug, Clone)]
pub(super) struct Member {
    /// When it is online: from, until (`None`: to the end).
    pub spells: Vec<(Duration, Option<Duration>)>,
    /// Bytes per second it uploads in all.
    pub upload: f64,
    pub progress: Progress,
    /// A partial peer that starts over once complete (`reincarnate` in a scenario).
    pub rebirth: Option<Rebirth>,
}

/// How a partial peer starts over: it seeds `linger` once complete, then lacks the next of
/// `lives` (each a drawn order of missing pieces, as a new incarnation in a real world).
#[derive(Debug, Clone)]
pub(super) struct Rebirth {
    pub linger: Duration,
    pub lives: Vec<Vec<u32>>,
}

#[derive(Debug, Clone)]
pub(super) enum Progress {
    /// Holds every piece.
    Seed,
    /// Downloads `missing`, in this order, at most `download` bytes per second.
    Partial { missing: Vec<u32>, download: f64 },
    /// Downloads `movie` in order, at most `download` bytes per second; holds each piece by
    /// its deadline (times from the world's start).
    Viewer {
        movie: Vec<(u32, Duration)>,
        download: f64,
    },
}

impl Member {
    fn online(&self, t: Duration) -> bool {
        self.spells
            .iter()
            .any(|&(from, to)| from <= t && to.is_none_or(|to| t < to))
    }
}

impl Progress {
    fn wanted(&self) -> usize {
        match self {
            Progress::Seed => 0,
            Progress::Partial { missing, .. } => missing.len(),
            Progress::Viewer { movie, .. } => movie.len(),
        }
    }
    fn download(&self) -> f64 {
        match self {
            Progress::Seed => 0.0,
            Progress::Partial { download, .. } | Progress::Viewer { download, .. } => *download,
        }
    }
    fn piece(&self, k: usize) -> Option<u32> {
        match self {
            Progress::Seed => None,
            Progress::Partial { missing, .. } => missing.get(k).copied(),
            Progress::Viewer { movie, .. } => movie.get(k).map(|m| m.0),
        }
    }
}

/// What the model says about one member over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Course {
    /// Pieces it comes to hold while online, with when.
    pub gains: Vec<(Duration, u32)>,
    /// When it started over as its next life (`Rebirth`): it holds only what that life drew,
    /// and the gains after it.
    pub rebirths: Vec<Duration>,
    /// The upload it gives each member it helps, from each time on (while online).
    pub share: Vec<(Duration, f64)>,
    /// How many members it helps, from each time on (while online).
    pub helped: Vec<(Duration, usize)>,
}

/// Where each member is: how many of its wanted pieces it holds, bytes into the next.
#[derive(Clone, Default)]
struct State {
    held: usize,
    bytes: f64,
    /// Partial peers: which pieces it lacks (it gains them out of its drawn order too).
    lacks: Option<Lacks>,
    /// Since when it is complete (it starts over after its `Rebirth`'s linger).
    complete_since: Option<Duration>,
}

/// Runs the model from the world's start to `horizon`.
pub(super) fn run(members: &[Member], geometry: &Geometry, horizon: Duration) -> Vec<Course> {
    let mut courses = vec![Course::default(); members.len()];
    let orders = Orders::new(members);
    let mut states: Vec<State> = members
        .iter()
        .map(|m| State {
            lacks: match &m.progress {
                Progress::Partial { missing, .. } => {
                    Some(orders.lacks(missing, geometry.piece_count()))
                }
                _ => None,
            },
            ..State::default()
        })
        .collect();
    let mut t = Duration::ZERO;
    while t <= horizon {
        force_deadlines(members, &mut states, &mut courses, t);
        start_over(members, &orders, geometry, &mut states, &mut courses, t);
        let online: Vec<bool> = members.iter().map(|m| m.online(t)).collect();
        let downloading: Vec<bool> = (0..members.len())
            .map(|i| online[i] && wants_at(&members[i], &states[i], t))
            .collect();
        let step = Step::new(members, &states, &online, &downloading, &orders);
        for (i, course) in courses.iter_mut().enumerate() {
            let s = step.shares[i];
            let changed = course
                .share
                .last()
                .is_none_or(|&(_, last)| (s - last).abs() > SHARE_CHANGE * last);
            if online[i] && s > 0.0 && changed {
                course.share.push((t, s));
            }
            let h = step.helped[i];
            if online[i] && course.helped.last().is_none_or(|&(_, last)| last != h) {
                course.helped.push((t, h));
            }
        }
        for i in (0..members.len()).filter(|&i| downloading[i]) {
            let mut rate = step.received[i];
            if let Some(lacks) = &mut states[i].lacks {
                // What the viewers gave, in proportion to what they offered.
                let from = rate * step.from_viewers[i] / step.offered[i].max(f64::MIN_POSITIVE);
                let bytes = from * STEP.as_secs_f64();
                let len = |p| piece_len(geometry, p);
                for p in from_viewers::fill_from_viewers(len, &orders, &step.reach, lacks, bytes) {
                    states[i].held += 1;
                    courses[i].gains.push((t + STEP, p));
                }
                rate -= from;
            }
            fill(
                geometry,
                &members[i],
                &mut states[i],
                &mut courses[i],
                rate,
                t,
            );
            if let Some(lacks) = &mut states[i].lacks {
                lacks.skip_held(&orders);
            }
        }
        t += STEP;
    }
    courses
}

/// Partial peers complete for `linger` start their next life, lacking what it drew.
fn start_over(
    members: &[Member],
    orders: &Orders,
    geometry: &Geometry,
    states: &mut [State],
    courses: &mut [Course],
    t: Duration,
) {
    for (i, m) in members.iter().enumerate() {
        let state = &mut states[i];
        let (Some(rebirth), Some(lacks)) = (&m.rebirth, &state.lacks) else {
            continue;
        };
        if state.held < lacks.wanted() {
            continue;
        }
        let since = *state.complete_since.get_or_insert(t);
        // Its first life is `Progress::Partial`'s, each rebirth starts the next.
        let Some(next) = rebirth.lives.get(courses[i].rebirths.len()) else {
            continue;
        };
        if t >= since + rebirth.linger {
            *state = State {
                lacks: Some(orders.lacks(next, geometry.piece_count())),
                ..State::default()
            };
            courses[i].rebirths.push(t);
        }
    }
}

/// Viewers hold every piece whose deadline has passed: the server brought what was missing.
fn force_deadlines(members: &[Member], states: &mut [State], courses: &mut [Course], t: Duration) {
    for (i, m) in members.iter().enumerate() {
        let Progress::Viewer { movie, .. } = &m.progress else {
            continue;
        };
        let state = &mut states[i];
        while let Some(&(piece, due)) = movie.get(state.held)
            && due <= t
        {
            courses[i].gains.push((due, piece));
            state.held += 1;
            state.bytes = 0.0;
        }
    }
}

/// One step's shares and what each downloading member receives.
struct Step {
    /// Each online member's upload per member it helps that can take it.
    shares: Vec<f64>,
    received: Vec<f64>,
    /// What each downloading member is offered in all, and partial peers by viewers.
    offered: Vec<f64>,
    from_viewers: Vec<f64>,
    reach: Reach,
    /// How many members each online member helps.
    helped: Vec<usize>,
}

impl Step {
    /// Even shares first; then the members offered more than their download limit take only
    /// that, and their uploaders give what is left to the others they help (one round of
    /// max-min fairness: a seed is not held back by peers capped at a few KiB/s).
    fn new(
        members: &[Member],
        states: &[State],
        online: &[bool],
        downloading: &[bool],
        orders: &Orders,
    ) -> Self {
        let mut reach = Reach::new(members, states, online, downloading, orders);
        let helped = helped(members, states, online, downloading, orders, &reach);
        let mut shares: Vec<f64> = (0..members.len())
            .map(|i| match online[i] {
                true => members[i].upload / helped[i].max(1) as f64,
                false => 0.0,
            })
            .collect();
        reach.with_shares(&shares);
        let (offered, _) = offers(members, states, online, downloading, &shares, &reach);
        let limit = |d: usize| members[d].progress.download();
        let capped: Vec<bool> = (0..members.len())
            .map(|d| downloading[d] && offered[d] > limit(d))
            .collect();
        // The share of a share a capped member leaves.
        let left = |d: usize| match capped[d] {
            true => 1.0 - limit(d) / offered[d],
            false => 0.0,
        };
        let left_all: f64 = (0..members.len()).map(left).sum();
        let capped_all = capped.iter().filter(|c| **c).count();
        for k in 0..members.len() {
            // Uploaders that help every downloader: seeds, partial peers, complete viewers.
            let everyone = !is_viewer(&members[k]) || !downloading[k];
            let uncapped = helped[k].saturating_sub(capped_all - usize::from(capped[k]));
            if online[k] && everyone && uncapped > 0 {
                let freed = shares[k] * (left_all - left(k));
                shares[k] += freed / uncapped as f64;
            }
        }
        reach.with_shares(&shares);
        let (offered, from_viewers) = offers(members, states, online, downloading, &shares, &reach);
        let received = (0..members.len())
            .map(|d| match (downloading[d], capped[d]) {
                (false, _) => 0.0,
                (true, true) => limit(d),
                (true, false) => offered[d].min(limit(d)),
            })
            .collect();
        Self {
            shares,
            received,
            offered,
            from_viewers,
            reach,
            helped,
        }
    }
}

/// What each downloading member is offered in all, and what of it viewers offer a partial
/// peer, at these shares.
fn offers(
    members: &[Member],
    states: &[State],
    online: &[bool],
    downloading: &[bool],
    shares: &[f64],
    reach: &Reach,
) -> (Vec<f64>, Vec<f64>) {
    let inflow = Inflow::new(members, states, online, shares);
    let from_viewers: Vec<f64> = (0..members.len())
        .map(|d| match (&states[d].lacks, downloading[d]) {
            (Some(l), true) => reach.offered_to(l),
            _ => 0.0,
        })
        .collect();
    let offered = (0..members.len())
        .map(|d| match downloading[d] {
            true => inflow.of(members, states, shares, from_viewers[d], d),
            false => 0.0,
        })
        .collect();
    (offered, from_viewers)
}

/// How many members each online member helps.
fn helped(
    members: &[Member],
    states: &[State],
    online: &[bool],
    downloading: &[bool],
    orders: &Orders,
    reach: &Reach,
) -> Vec<usize> {
    let partials = (0..members.len())
        .filter(|&i| downloading[i] && !is_viewer(&members[i]))
        .count();
    let mut viewers: Vec<usize> = (0..members.len())
        .filter(|&i| downloading[i] && is_viewer(&members[i]))
        .map(|i| viewer_held(&members[i], &states[i]))
        .collect();
    viewers.sort_unstable();
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if !online[i] {
                return 0;
            }
            if is_viewer(m) {
                // A viewer helps the viewers it has played past and the partial peers that
                // lack a piece it holds.
                let held = viewer_held(m, &states[i]);
                viewers.partition_point(|&h| h < held) + reach.partials_helped(orders, i, held)
            } else {
                partials + viewers.len() - usize::from(downloading[i])
            }
        })
        .collect()
}

/// What each member receives in a step, from the step's shares.
struct Inflow {
    /// Summed shares of online seeds and partial peers.
    others: f64,
    /// Online viewers' shares by how far they are, with the sum of the shares at or after
    /// each position.
    viewers: Vec<(usize, f64)>,
    after: Vec<f64>,
}

impl Inflow {
    fn new(members: &[Member], states: &[State], online: &[bool], shares: &[f64]) -> Self {
        let mut others = 0.0;
        let mut viewers = Vec::new();
        for (i, m) in members.iter().enumerate().filter(|(i, _)| online[*i]) {
            if is_viewer(m) {
                viewers.push((viewer_held(m, &states[i]), shares[i]));
            } else {
                others += shares[i];
            }
        }
        viewers.sort_unstable_by_key(|v| v.0);
        let mut after = vec![0.0; viewers.len() + 1];
        for k in (0..viewers.len()).rev() {
            after[k] = after[k + 1] + viewers[k].1;
        }
        Self {
            others,
            viewers,
            after,
        }
    }

    /// Every online member's share that helps downloading member `d` (`from_viewers`: what
    /// viewers offer it, if it is a partial peer).
    fn of(
        &self,
        members: &[Member],
        states: &[State],
        shares: &[f64],
        from_viewers: f64,
        d: usize,
    ) -> f64 {
        if is_viewer(&members[d]) {
            let held = states[d].held;
            let first_ahead = self.viewers.partition_point(|v| v.0 <= held);
            self.others + self.after[first_ahead]
        } else {
            self.others - shares[d] + from_viewers
        }
    }
}

/// Whether a member still asks for pieces at `t`. A viewer does until its last deadline: a
/// VoD viewer fetches in time, not early, so the world keeps serving it while it plays,
/// however far ahead the model's fill runs.
fn wants_at(m: &Member, state: &State, t: Duration) -> bool {
    match (&m.progress, &state.lacks) {
        (Progress::Viewer { movie, .. }, _) => movie.last().is_some_and(|m| t < m.1),
        (_, Some(lacks)) => state.held < lacks.wanted(),
        _ => false,
    }
}

/// How far a viewer is, counting a complete one as holding everything.
fn viewer_held(m: &Member, state: &State) -> usize {
    if state.held >= m.progress.wanted() {
        usize::MAX
    } else {
        state.held
    }
}

fn is_viewer(m: &Member) -> bool {
    matches!(m.progress, Progress::Viewer { .. })
}

/// A downloading member turns a step's bytes into whole pieces, in its order.
fn fill(
    geometry: &Geometry,
    member: &Member,
    state: &mut State,
    course: &mut Course,
    rate: f64,
    t: Duration,
) {
    state.bytes += rate * STEP.as_secs_f64();
    loop {
        let piece = match (&mut state.lacks, &member.progress) {
            (Some(lacks), _) => lacks.next_drawn(),
            _ => member.progress.piece(state.held),
        };
        let Some(piece) = piece else {
            break;
        };
        let len = piece_len(geometry, piece);
        if state.bytes < len {
            break;
        }
        state.bytes -= len;
        state.held += 1;
        if let Some(lacks) = &mut state.lacks {
            lacks.took_drawn(piece);
        }
        course.gains.push((t + STEP, piece));
    }
}

fn piece_len(geometry: &Geometry, piece: u32) -> f64 {
    geometry
        .piece(piece)
        .map_or(0.0, |p| f64::from(geometry.piece_size(p)))
}

#[cfg(test)]
#[path = "swarm_model_tests.rs"]
mod tests;
