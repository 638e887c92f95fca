//! The experiment runner: a scenario run once per policy and repetition, each run in a fresh
//! [`World`] (same seed, so the same content, partial copies and schedules) whose viewers the
//! runner plays itself: btvod policies in-process with the engine's own session code, the
//! libtorrent competitors as `scripts/lt_vod.py` processes. Each viewer's report, its
//! contiguous-bytes curve, the origin's meter and every world peer's traffic are collected.

mod bounds;
mod contender;
mod lt_viewer;
mod outcome;
mod parts;
mod viewer_job;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

pub use self::bounds::PenaltyBounds;
pub use self::contender::{Contender, UnknownPolicy};
pub use self::outcome::{PeerTraffic, RunOutcome, Sample, ViewerOutcome};
pub use self::parts::PartsPlan;
use self::viewer_job::ViewerJob;
use super::roster::{PeerRecord, PeerRole};
use super::scenario::{PeerClient, Scenario};
use super::world::{World, WorldError, WorldOptions, WorldSummary};
use crate::engine::session::PolicyKind;
use crate::policy::picker::DeadlineConfig;
use crate::proto::metainfo::Metainfo;

/// How an experiment runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub contenders: Vec<Contender>,
    /// The worlds every policy runs in: each is the scenario with every world peer running
    /// this client (`None`: as the scenario says).
    pub worlds: Vec<Option<PeerClient>>,
    /// Every peer class's round-trip time to the viewers, whatever the scenario says.
    pub rtt: Option<Duration>,
    /// Repetitions of every policy.
    pub runs: u32,
    /// Runs going at once (each is its own world on its own ports).
    pub jobs: usize,
    /// Where run directories go (`DIR/<policy>-<run>/`).
    pub out: PathBuf,
    /// The settings btvod's deadline policy runs with.
    pub deadline: DeadlineConfig,
    /// The interpreter that imports libtorrent, and the libtorrent viewer.
    pub python: PathBuf,
    pub lt_script: PathBuf,
    /// Added to the last viewer's last deadline to bound a run.
    pub slack: Duration,
    /// How often a btvod viewer's contiguous bytes are sampled.
    pub sample_every: Duration,
    /// Keep content, partial copies and movies of each run (otherwise only its logs stay).
    pub keep_data: bool,
    /// Spread each run's world over `btvod world --part` processes (None: one world here).
    pub parts: Option<PartsPlan>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            worlds: vec![None],
            rtt: None,
            contenders: vec![
                Contender::Btvod(PolicyKind::Deadline),
                Contender::Btvod(PolicyKind::Rarest),
                Contender::Btvod(PolicyKind::Sequential),
            ],
            runs: 1,
            jobs: 1,
            out: PathBuf::from("experiments"),
            deadline: DeadlineConfig::default(),
            python: PathBuf::from("/usr/bin/python3"),
            lt_script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_vod.py")),
            slack: Duration::from_secs(30),
            sample_every: Duration::from_millis(250),
            keep_data: false,
            parts: None,
        }
    }
}

/// What the runner tells its caller while it works.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        policy: &'static str,
        world: &'static str,
        run: u32,
    },
    Tick {
        policy: &'static str,
        world: &'static str,
        run: u32,
        t: f64,
        viewers_done: usize,
        viewers: usize,
        origin_bytes: u64,
    },
    Finished(Box<RunOutcome>),
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the scenario has no viewers: nothing to score")]
    NoViewers,
    #[error("no policies to run")]
    NoPolicies,
    #[error("a world in parts plays btvod's policies only (the parts run the viewers), not {0}")]
    PartsPolicy(&'static str),
    #[error("a world in parts has no link latency: its relays stand on one host's loopback")]
    PartsLatency,
    #[error("{0}")]
    World(#[from] WorldError),
    #[error("cannot make {}: {source}", path.display())]
    Out {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs every policy `runs` times (repetition-major, so slow drift in the machine is shared
/// by all policies) with at most `jobs` runs at once; outcomes in that order.
pub async fn run_experiment(
    scenario: &Scenario,
    options: &RunnerOptions,
    progress: ProgressFn,
) -> Result<Vec<RunOutcome>, RunnerError> {
    if scenario.viewer_count() == 0 {
        return Err(RunnerError::NoViewers);
    }
    if options.contenders.is_empty() {
        return Err(RunnerError::NoPolicies);
    }
    if options.parts.is_some() {
        if let Some(c) = options
            .contenders
            .iter()
            .find(|c| c.btvod_policy().is_none())
        {
            return Err(RunnerError::PartsPolicy(c.name()));
        }
        if options.rtt.is_some_and(|r| !r.is_zero()) || scenario.has_latency() {
            return Err(RunnerError::PartsLatency);
        }
    }
    std::fs::create_dir_all(&options.out).map_err(|source| RunnerError::Out {
        path: options.out.clone(),
        source,
    })?;
    let gate = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = Vec::new();
    let worlds: Vec<Scenario> = options
        .worlds
        .iter()
        .map(|&client| scenario.with_client(client).with_rtt(options.rtt))
        .collect();
    for run in 1..=options.runs.max(1) {
        for world in &worlds {
            for &contender in &options.contenders {
                let (scenario, options, progress) =
                    (world.clone(), options.clone(), Arc::clone(&progress));
                let gate = Arc::clone(&gate);
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let dir = options.out.join(run_dir_name(&scenario, contender, run));
                    progress(Progress::Started {
                        policy: contender.name(),
                        world: scenario.world_kind(),
                        run,
                    });
                    let outcome =
                        run_once(&scenario, contender, run, &dir, &options, &progress).await;
                    progress(Progress::Finished(Box::new(outcome.clone())));
                    outcome
                }));
            }
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => tracing::error!("experiment run task: {e}"),
        }
    }
    Ok(outcomes)
}

/// `<policy>-<run>` in a world of btvod peers, `<world>-world-<policy>-<run>` in another.
fn run_dir_name(scenario: &Scenario, contender: Contender, run: u32) -> String {
    match scenario.world_kind() {
        "btvod" => format!("{}-{run}", contender.name()),
        world => format!("{world}-world-{}-{run}", contender.name()),
    }
}

/// The latest a run may take: the last viewer's arrival, its D and its movie at R, plus slack.
pub fn run_bound(scenario: &Scenario, meta: &Metainfo, slack: Duration) -> Duration {
    let mut bound = Duration::ZERO;
    for class in &scenario.viewers {
        let file = meta.movie_file(class.file.as_deref()).unwrap_or(0);
        let play = Duration::from_secs_f64(meta.files[file].length as f64 / class.rate as f64);
        let last = class.arrival.of(class.count.saturating_sub(1), class.count);
        bound = bound.max(last + class.delay + play);
    }
    bound + slack
}

/// One run: a fresh world, the scenario's viewers under `contender`, until all complete or
/// the bound; then everything stops.
pub async fn run_once(
    scenario: &Scenario,
    contender: Contender,
    run: u32,
    dir: &Path,
    options: &RunnerOptions,
    progress: &ProgressFn,
) -> RunOutcome {
    let wall = Instant::now();
    let mut outcome = RunOutcome {
        policy: contender.name().to_string(),
        world: scenario.world_kind().to_string(),
        run,
        dir: dir.to_path_buf(),
        wall_s: 0.0,
        timed_out: false,
        origin_bytes: 0,
        viewers: Vec::new(),
        peers: Vec::new(),
        error: None,
    };
    if let (Some(plan), Some(policy)) = (&options.parts, contender.btvod_policy()) {
        parts::run_in_parts(scenario, plan, policy, &mut outcome, options, progress).await;
        return finish(outcome, wall, dir);
    }
    let _ = std::fs::remove_dir_all(dir);
    let world_options = WorldOptions {
        run_viewers: false,
        ..WorldOptions::default()
    };
    let world = match World::start(scenario.clone(), dir, world_options).await {
        Ok(w) => Arc::new(w),
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let t0 = Instant::now();
    let end = t0 + run_bound(scenario, world.metainfo(), options.slack);
    let cancel = CancellationToken::new();
    let (done_tx, done_rx) = mpsc::unbounded_channel::<()>();
    let tasks = spawn_viewers(
        scenario, &world, contender, options, t0, end, &cancel, &done_tx,
    );
    drop(done_tx);
    let ticks = |viewers_done, viewers| Progress::Tick {
        policy: contender.name(),
        world: scenario.world_kind(),
        run,
        t: t0.elapsed().as_secs_f64(),
        viewers_done,
        viewers,
        origin_bytes: world.origin_bytes_served(),
    };
    outcome.timed_out =
        !wait_viewers(done_rx, tasks.len(), end, |d, n| progress(ticks(d, n))).await;
    cancel.cancel();
    collect_viewers(tasks, &mut outcome).await;
    let meta = world.metainfo().clone();
    let Ok(world) = Arc::try_unwrap(world) else {
        outcome.error = Some("the world is still in use".into());
        return outcome;
    };
    let summary = world.stop().await;
    for viewer in &mut outcome.viewers {
        let Some(offset) = viewer.world_offset_s else {
            continue;
        };
        viewer.bounds = bounds::viewer_bounds(
            &meta,
            scenario,
            &summary.peers,
            viewer,
            offset,
            summary.uptime_s,
        );
    }
    take_world(summary, &mut outcome);
    if !options.keep_data {
        for sub in ["content", "peers", "viewers"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
    }
    finish(outcome, wall, dir)
}

/// Stamps the run's wall time and writes `run.json`.
fn finish(mut outcome: RunOutcome, wall: Instant, dir: &Path) -> RunOutcome {
    outcome.wall_s = wall.elapsed().as_secs_f64();
    let _ = std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&outcome).unwrap_or_default() + "\n",
    );
    outcome
}

/// Starts every viewer of the scenario, each on its class's arrival schedule after `t0`.
#[allow(clippy::too_many_arguments)]
fn spawn_viewers(
    scenario: &Scenario,
    world: &Arc<World>,
    contender: Contender,
    options: &RunnerOptions,
    t0: Instant,
    end: Instant,
    cancel: &CancellationToken,
    done: &mpsc::UnboundedSender<()>,
) -> Vec<JoinHandle<ViewerOutcome>> {
    let mut tasks = Vec::new();
    for (c, class) in scenario.viewers.iter().enumerate() {
        for i in 0..class.count {
            let job = ViewerJob {
                world: Arc::clone(world),
                class: class.clone(),
                class_index: c,
                i,
                contender,
                options: options.clone(),
                arrive: t0 + class.arrival.of(i, class.count),
                bound: end,
            };
            tasks.push(tokio::spawn(job.run(cancel.clone(), done.clone())));
        }
    }
    tasks
}

/// Waits until `viewers` viewers are done, ticking `progress` every second; false if `end`
/// came first.
async fn wait_viewers(
    mut done: mpsc::UnboundedReceiver<()>,
    viewers: usize,
    end: Instant,
    progress: impl Fn(usize, usize),
) -> bool {
    let mut viewers_done = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while viewers_done < viewers {
        tokio::select! {
            got = done.recv() => match got {
                Some(()) => viewers_done += 1,
                None => break,
            },
            _ = tick.tick() => progress(viewers_done, viewers),
            _ = sleep_until(end) => return false,
        }
    }
    true
}

/// Gathers the viewers' outcomes (each has 30 s to stop after the run is cancelled).
async fn collect_viewers(tasks: Vec<JoinHandle<ViewerOutcome>>, outcome: &mut RunOutcome) {
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(v)) => outcome.viewers.push(v),
            Ok(Err(e)) => outcome.error = Some(format!("viewer task: {e}")),
            Err(_) => outcome.error = Some("a viewer did not stop within 30 s".into()),
        }
    }
}

/// Why no world peer ran, if none did (each has an error): the first one's error.
fn none_ran(peers: &[PeerRecord]) -> Option<String> {
    let mut world_peers = peers.iter().filter(|p| p.role != PeerRole::Viewer);
    let first = world_peers.clone().next()?;
    let why = first.error.as_deref()?;
    world_peers
        .all(|p| p.error.is_some())
        .then(|| format!("no world peer ran ({}: {why})", first.name))
}

/// The origin's meter and every world peer's traffic from the world's final summary. A world
/// none of whose peers ran (a client missing, say) gave the viewers nothing: its penalty
/// measures that failure, not a policy, so the run is an error.
fn take_world(summary: WorldSummary, outcome: &mut RunOutcome) {
    if let Some(why) = none_ran(&summary.peers) {
        outcome.error.get_or_insert(why);
    }
    outcome.origin_bytes = summary.origin_bytes_served;
    outcome.peers = summary
        .peers
        .iter()
        .map(|p| PeerTraffic {
            name: p.name.clone(),
            class: p.class.clone(),
            role: p.role,
            downloaded: p.downloaded,
            uploaded: p.uploaded,
            completions: p.completions,
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, role: PeerRole, error: Option<&str>) -> PeerRecord {
        PeerRecord {
            name: name.into(),
            role,
            error: error.map(str::to_string),
            ..PeerRecord::default()
        }
    }

    #[test]
    fn a_world_none_of_whose_peers_ran_fails_the_run() {
        let missing = "cannot import libtorrent";
        let all_failed = [
            peer("seed-0", PeerRole::Seed, Some(missing)),
            peer("partial-0", PeerRole::Partial, Some(missing)),
            peer("viewer-0", PeerRole::Viewer, None),
        ];
        let why = none_ran(&all_failed).expect("the run fails");
        assert!(why.contains("seed-0") && why.contains(missing), "{why}");
        // One peer that ran is a world, however poor.
        let one_ran = [
            peer("seed-0", PeerRole::Seed, Some(missing)),
            peer("partial-0", PeerRole::Partial, None),
        ];
        assert_eq!(none_ran(&one_ran), None);
        assert_eq!(none_ran(&[peer("viewer-0", PeerRole::Viewer, None)]), None);
    }
}
