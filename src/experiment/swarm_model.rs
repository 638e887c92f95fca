//! The swarm around a simulated viewer as a fluid model in one-second steps: who shares each
//! member's upload when, and when partial peers and viewers come to hold each piece. It feeds
//! the simulator (`simulate.rs`) the growing holdings and changing upload shares that a
//! static view of the world leaves out.
//!
//! The rules, kept simple on purpose (BENCHMARKS.md "Scale" says how far they carry):
//! - every online member splits its upload evenly among the members it can help: online
//!   members still downloading, except that a viewer helps another viewer only while it has
//!   played further into the movie (viewers fetch in about playback order), and partial peers
//!   only once it is complete (before, it holds the movie's start at most);
//! - a partial peer fills its missing pieces in a drawn order with what it receives, up to its
//!   download limit, and stops competing once complete;
//! - a viewer fills the movie in order with what it receives and holds every piece by its
//!   deadline at the latest (the server covers what the swarm did not).

use std::time::Duration;

use crate::proto::geometry::Geometry;

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
    /// The upload it gives each member it helps, from each time on (while online).
    pub share: Vec<(Duration, f64)>,
}

/// Where each member is: how many of its wanted pieces it holds, bytes into the next.
#[derive(Clone, Default)]
struct State {
    held: usize,
    bytes: f64,
}

/// Runs the model from the world's start to `horizon`.
pub(super) fn run(members: &[Member], geometry: &Geometry, horizon: Duration) -> Vec<Course> {
    let mut courses = vec![Course::default(); members.len()];
    let mut states = vec![State::default(); members.len()];
    let mut t = Duration::ZERO;
    while t <= horizon {
        force_deadlines(members, &mut states, &mut courses, t);
        let online: Vec<bool> = members.iter().map(|m| m.online(t)).collect();
        let downloading: Vec<bool> = (0..members.len())
            .map(|i| online[i] && states[i].held < members[i].progress.wanted())
            .collect();
        let step = Step::new(members, &states, &online, &downloading);
        for (i, course) in courses.iter_mut().enumerate() {
            let s = step.shares[i];
            let changed = course
                .share
                .last()
                .is_none_or(|&(_, last)| (s - last).abs() > SHARE_CHANGE * last);
            if online[i] && s > 0.0 && changed {
                course.share.push((t, s));
            }
        }
        for i in (0..members.len()).filter(|&i| downloading[i]) {
            let rate = step.received[i];
            fill(
                geometry,
                &members[i],
                &mut states[i],
                &mut courses[i],
                rate,
                t,
            );
        }
        t += STEP;
    }
    courses
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
}

impl Step {
    /// Even shares first; then the members offered more than their download limit take only
    /// that, and their uploaders give what is left to the others they help (one round of
    /// max-min fairness: a seed is not held back by peers capped at a few KiB/s).
    fn new(members: &[Member], states: &[State], online: &[bool], downloading: &[bool]) -> Self {
        let helped = helped(members, states, online, downloading);
        let mut shares: Vec<f64> = (0..members.len())
            .map(|i| match online[i] {
                true => members[i].upload / helped[i].max(1) as f64,
                false => 0.0,
            })
            .collect();
        let inflow = Inflow::new(members, states, online, &shares);
        let offered: Vec<f64> = (0..members.len())
            .map(|d| match downloading[d] {
                true => inflow.of(members, states, &shares, d),
                false => 0.0,
            })
            .collect();
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
        let inflow = Inflow::new(members, states, online, &shares);
        let received = (0..members.len())
            .map(|d| match (downloading[d], capped[d]) {
                (false, _) => 0.0,
                (true, true) => limit(d),
                (true, false) => inflow.of(members, states, &shares, d).min(limit(d)),
            })
            .collect();
        Self { shares, received }
    }
}

/// How many members each online member helps.
fn helped(
    members: &[Member],
    states: &[State],
    online: &[bool],
    downloading: &[bool],
) -> Vec<usize> {
    let partials = (0..members.len())
        .filter(|&i| downloading[i] && !is_viewer(&members[i]))
        .count();
    let mut viewers: Vec<usize> = (0..members.len())
        .filter(|&i| downloading[i] && is_viewer(&members[i]))
        .map(|i| states[i].held)
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
                // A viewer helps the viewers it has played past; once complete, everyone.
                let held = viewer_held(m, &states[i]);
                let behind = viewers.partition_point(|&h| h < held);
                if held == usize::MAX {
                    partials + behind
                } else {
                    behind
                }
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

    /// Every online member's share that helps downloading member `d`.
    fn of(&self, members: &[Member], states: &[State], shares: &[f64], d: usize) -> f64 {
        if is_viewer(&members[d]) {
            let held = states[d].held;
            let first_ahead = self.viewers.partition_point(|v| v.0 <= held);
            self.others + self.after[first_ahead]
        } else {
            // Partial peers get from the viewers that are complete.
            let first_complete = self.viewers.partition_point(|v| v.0 < usize::MAX);
            self.others - shares[d] + self.after[first_complete]
        }
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
    while let Some(piece) = member.progress.piece(state.held) {
        let len = geometry
            .piece(piece)
            .map_or(0.0, |p| f64::from(geometry.piece_size(p)));
        if state.bytes < len {
            break;
        }
        state.bytes -= len;
        state.held += 1;
        course.gains.push((t + STEP, piece));
    }
}

#[cfg(test)]
#[path = "swarm_model_tests.rs"]
mod tests;
