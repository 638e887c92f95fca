//! The experiment runner: a scenario run once per policy and repetition, each run in a fresh
//! [`World`] (same seed, so the same content, partial copies and schedules) whose viewers the
//! runner plays itself: btvod policies in-process with the engine's own session code, the
//! libtorrent competitors as `scripts/lt_vod.py` processes. Each viewer's report, its
//! contiguous-bytes curve, the origin's meter and every world peer's traffic are collected.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::content::mix;
use super::scenario::{Scenario, ViewerClass};
use super::world::{World, WorldError, WorldOptions};
use crate::engine::report::VodReport;
use crate::engine::session::{self, Content, Deadlines, PolicyKind, SessionOptions, VodOptions};
use crate::engine::torrent::TorrentConfig;
use crate::engine::vod_server::VodServer;
use crate::policy::picker::{AheadOrder, DeadlineConfig};
use crate::policy::vod::VodParams;
use crate::proto::metainfo::Metainfo;

/// A policy an experiment compares: one of btvod's pickers, or libtorrent's streaming modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Btvod(PolicyKind),
    /// `lt_vod.py --mode deadline` (`set_piece_deadline`) or `sequential`.
    Libtorrent {
        deadline: bool,
    },
}

impl Contender {
    pub const NAMES: &'static str =
        "deadline, rarest, sequential, libtorrent-deadline, libtorrent-sequential";

    pub fn parse(name: &str) -> Result<Contender, String> {
        Ok(match name.trim() {
            "deadline" => Contender::Btvod(PolicyKind::Deadline),
            "rarest" => Contender::Btvod(PolicyKind::Rarest),
            "sequential" => Contender::Btvod(PolicyKind::Sequential),
            "libtorrent-deadline" => Contender::Libtorrent { deadline: true },
            "libtorrent-sequential" => Contender::Libtorrent { deadline: false },
            other => return Err(format!("unknown policy `{other}` (known: {})", Self::NAMES)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Contender::Btvod(kind) => kind.name(),
            Contender::Libtorrent { deadline: true } => "libtorrent-deadline",
            Contender::Libtorrent { deadline: false } => "libtorrent-sequential",
        }
    }
}

/// How an experiment runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub contenders: Vec<Contender>,
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
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
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
        }
    }
}

/// The scored part of a viewer's report (btvod's `VodReport` and lt_vod.py's share the keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Score {
    pub policy: String,
    pub movie_bytes: u64,
    pub penalty_bytes: u64,
    pub penalty_fraction: f64,
    pub pieces_from_server: u32,
    pub peer_bytes: u64,
    pub uploaded_bytes: u64,
    pub stall_s: f64,
    pub complete_at_s: Option<f64>,
}

/// One point of a viewer's curve, `t` seconds after it started (its contract t = 0).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    pub t: f64,
    /// Movie bytes present contiguously from the start (`None` where the client does not say).
    pub contiguous: Option<u64>,
    pub penalty: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerOutcome {
    pub name: String,
    pub class: String,
    pub arrive_s: f64,
    pub rate_bytes_per_s: u64,
    pub delay_s: f64,
    pub prefetch_s: f64,
    pub score: Option<Score>,
    /// The viewer's report as written (all its keys).
    pub report: Option<serde_json::Value>,
    pub samples: Vec<Sample>,
    /// Payload totals when it was stopped (it kept seeding after completing).
    pub downloaded: u64,
    pub uploaded: u64,
    pub error: Option<String>,
}

/// What a world peer (not a viewer) moved during the run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerTraffic {
    pub name: String,
    pub class: String,
    pub role: String,
    pub downloaded: u64,
    pub uploaded: u64,
    pub completions: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub policy: String,
    /// 1-based repetition.
    pub run: u32,
    pub dir: PathBuf,
    pub wall_s: f64,
    /// Some viewer had not completed when the run's time bound ran out.
    pub timed_out: bool,
    /// Bytes the world's VoD origin served: must equal the viewers' summed penalty.
    pub origin_bytes: u64,
    pub viewers: Vec<ViewerOutcome>,
    pub peers: Vec<PeerTraffic>,
    pub error: Option<String>,
}

impl RunOutcome {
    pub fn penalty_sum(&self) -> u64 {
        self.viewers
            .iter()
            .filter_map(|v| v.score.as_ref())
            .map(|s| s.penalty_bytes)
            .sum()
    }

    /// Every viewer completed and was scored.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self
                .viewers
                .iter()
                .all(|v| v.score.as_ref().is_some_and(|s| s.complete_at_s.is_some()))
    }
}

/// What the runner tells its caller while it works.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        policy: &'static str,
        run: u32,
    },
    Tick {
        policy: &'static str,
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
    std::fs::create_dir_all(&options.out).map_err(|source| RunnerError::Out {
        path: options.out.clone(),
        source,
    })?;
    let gate = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = Vec::new();
    for run in 1..=options.runs.max(1) {
        for &contender in &options.contenders {
            let (scenario, options, progress) =
                (scenario.clone(), options.clone(), Arc::clone(&progress));
            let gate = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let dir = options.out.join(format!("{}-{run}", contender.name()));
                progress(Progress::Started {
                    policy: contender.name(),
                    run,
                });
                let outcome = run_once(&scenario, contender, run, &dir, &options, &progress).await;
                progress(Progress::Finished(Box::new(outcome.clone())));
                outcome
            }));
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
        run,
        dir: dir.to_path_buf(),
        wall_s: 0.0,
        timed_out: false,
        origin_bytes: 0,
        viewers: Vec::new(),
        peers: Vec::new(),
        error: None,
    };
    let _ = std::fs::remove_dir_all(dir);
    let world_options = WorldOptions {
        run_viewers: false,
        ..WorldOptions::default()
    };
    let world = match World::start(scenario.clone(), dir, world_options).await {
        Ok(w) => w,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let t0 = Instant::now();
    let bound = run_bound(scenario, world.metainfo(), options.slack);
    let world = Arc::new(world);
    let cancel = CancellationToken::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut tasks = Vec::new();
    for (c, class) in scenario.viewers.iter().enumerate() {
        for i in 0..class.count {
            let job = ViewerJob {
                world: Arc::clone(&world),
                scenario_seed: scenario.seed,
                class: class.clone(),
                class_index: c,
                i,
                contender,
                options: options.clone(),
                arrive: t0 + class.arrival.of(i, class.count),
                bound: t0 + bound,
            };
            let (cancel, done) = (cancel.clone(), done_tx.clone());
            tasks.push(tokio::spawn(job.run(cancel, done)));
        }
    }
    drop(done_tx);
    let viewers = tasks.len();
    let mut viewers_done = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = t0 + bound;
    while viewers_done < viewers {
        tokio::select! {
            got = done_rx.recv() => match got {
                Some(()) => viewers_done += 1,
                None => break,
            },
            _ = tick.tick() => progress(Progress::Tick {
                policy: contender.name(),
                run,
                t: t0.elapsed().as_secs_f64(),
                viewers_done,
                viewers,
                origin_bytes: world.origin_bytes_served(),
            }),
            _ = sleep_until(end) => { outcome.timed_out = true; break; }
        }
    }
    cancel.cancel();
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(v)) => outcome.viewers.push(v),
            Ok(Err(e)) => outcome.error = Some(format!("viewer task: {e}")),
            Err(_) => outcome.error = Some("a viewer did not stop within 30 s".into()),
        }
    }
    let world = match Arc::try_unwrap(world) {
        Ok(w) => w,
        Err(_) => {
            outcome.error = Some("the world is still in use".into());
            return outcome;
        }
    };
    let summary = world.stop().await;
    outcome.origin_bytes = summary.origin_bytes_served;
    outcome.peers = summary
        .peers
        .iter()
        .map(|p| PeerTraffic {
            name: p.name.clone(),
            class: p.class.clone(),
            role: p.role.clone(),
            downloaded: p.downloaded,
            uploaded: p.uploaded,
            completions: p.completions,
        })
        .collect();
    if !options.keep_data {
        for sub in ["content", "peers", "viewers"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
    }
    outcome.wall_s = wall.elapsed().as_secs_f64();
    let _ = std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&outcome).unwrap_or_default() + "\n",
    );
    outcome
}

/// One viewer of a run.
struct ViewerJob {
    world: Arc<World>,
    scenario_seed: u64,
    class: ViewerClass,
    class_index: usize,
    i: u32,
    contender: Contender,
    options: RunnerOptions,
    arrive: Instant,
    bound: Instant,
}

impl ViewerJob {
    fn name(&self) -> String {
        format!("{}-{}", self.class.name, self.i)
    }

    fn file(&self) -> usize {
        self.world
            .metainfo()
            .movie_file(self.class.file.as_deref())
            .unwrap_or(0)
    }

    fn outcome(&self) -> ViewerOutcome {
        ViewerOutcome {
            name: self.name(),
            class: self.class.name.clone(),
            arrive_s: self
                .class
                .arrival
                .of(self.i, self.class.count)
                .as_secs_f64(),
            rate_bytes_per_s: self.class.rate,
            delay_s: self.class.delay.as_secs_f64(),
            prefetch_s: self.class.prefetch.as_secs_f64(),
            score: None,
            report: None,
            samples: Vec::new(),
            downloaded: 0,
            uploaded: 0,
            error: None,
        }
    }

    async fn run(
        self,
        cancel: CancellationToken,
        done: mpsc::UnboundedSender<()>,
    ) -> ViewerOutcome {
        let mut out = self.outcome();
        tokio::select! {
            _ = cancel.cancelled() => {
                out.error = Some("the run ended before this viewer arrived".into());
                return out;
            }
            _ = sleep_until(self.arrive) => {}
        }
        let dir = self.world.run_dir().join("viewers").join(self.name());
        let result = match self.contender {
            Contender::Btvod(kind) => self.play_btvod(kind, &dir, &mut out, &cancel, &done).await,
            Contender::Libtorrent { deadline } => {
                self.play_libtorrent(deadline, &dir, &mut out, &cancel, &done)
                    .await
            }
        };
        if result.is_err() || out.score.is_none() {
            // Not counted at completion: a viewer that failed is done too.
            let _ = done.send(());
        }
        if let Err(e) = result {
            tracing::warn!("{}: {e}", self.name());
            out.error = Some(e);
        }
        out
    }

    async fn play_btvod(
        &self,
        kind: PolicyKind,
        dir: &Path,
        out: &mut ViewerOutcome,
        cancel: &CancellationToken,
        done: &mpsc::UnboundedSender<()>,
    ) -> Result<(), String> {
        let meta = self.world.metainfo();
        let file = self.file();
        let c = &self.class;
        let params = VodParams::new(c.rate, c.delay, c.prefetch).map_err(|e| e.to_string())?;
        let server = VodServer::parse(self.world.origin_url(), meta).map_err(|e| e.to_string())?;
        server.check().await.map_err(|e| e.to_string())?;
        // The seed a world viewer of this class and index would use.
        let seed = mix(
            self.scenario_seed,
            &[3, self.class_index as u64, u64::from(self.i)],
        );
        let options = SessionOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            torrent: TorrentConfig {
                upload_limit: c.limits.upload,
                download_limit: c.limits.download,
                ..TorrentConfig::default()
            },
            peers: Vec::new(),
            trackers: Some(vec![vec![self.world.tracker_url().to_string()]]),
            policy: kind,
            seed,
            vod: Some(VodOptions {
                params,
                file,
                server: Some(Arc::new(server)),
                deadline: self.options.deadline.clone(),
                deadlines: Deadlines::Schedule,
            }),
        };
        let started = Instant::now();
        let session = session::start(
            meta,
            Content::SaveAs(dir.join(&meta.name)),
            options,
            |_, _| {},
        )
        .await
        .map_err(|e| e.to_string())?;
        let stats = session.torrent.stats.clone();
        let mut tick = tokio::time::interval(self.options.sample_every);
        let mut completed = false;
        let mut failure = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = stats.borrow().clone();
            let Some(v) = &s.vod else { continue };
            out.samples.push(Sample {
                t: started.elapsed().as_secs_f64(),
                contiguous: Some(v.contiguous),
                penalty: v.ledger.penalty_bytes,
            });
            if v.complete_at.is_some() {
                let report = VodReport::new(meta, file, kind.name(), &params, &s);
                out.score = serde_json::to_value(&report)
                    .ok()
                    .and_then(|j| serde_json::from_value(j).ok());
                out.report = serde_json::to_value(&report).ok();
                completed = true;
                let _ = done.send(());
                break;
            }
            if let Some(e) = &v.server_error {
                failure = Some(format!("VoD server: {e}"));
                break;
            }
        }
        if completed {
            self.linger(cancel).await;
        }
        let s = stats.borrow().clone();
        out.downloaded = s.downloaded;
        out.uploaded = s.uploaded;
        session.shutdown().await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// After completing: seed for the class's `stay`, or until the run ends.
    async fn linger(&self, cancel: &CancellationToken) {
        match self.class.stay {
            Some(d) => {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = sleep(d) => {}
                }
            }
            None => cancel.cancelled().await,
        }
    }

    async fn play_libtorrent(
        &self,
        deadline: bool,
        dir: &Path,
        out: &mut ViewerOutcome,
        cancel: &CancellationToken,
        done: &mpsc::UnboundedSender<()>,
    ) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let c = &self.class;
        let report_path = dir.join("report.json");
        let max_s = self.bound.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        let mut cmd = tokio::process::Command::new(&self.options.python);
        cmd.arg(&self.options.lt_script)
            .arg("--torrent")
            .arg(self.world.torrent_path())
            .arg("--save-path")
            .arg(dir)
            .args(["--rate", &c.rate.to_string()])
            .args(["--delay", &c.delay.as_secs_f64().to_string()])
            .args(["--prefetch", &c.prefetch.as_secs_f64().to_string()])
            .args(["--file", &self.file().to_string()])
            .args(["--server", self.world.origin_url()])
            .args(["--mode", if deadline { "deadline" } else { "sequential" }])
            .args(["--tracker", self.world.tracker_url()])
            .args(["--upload-limit", &c.limits.upload.to_string()])
            .args(["--max-seconds", &max_s.as_secs().to_string()])
            .arg("--report")
            .arg(&report_path)
            .arg("--seed-after")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.options.python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let errors = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut last = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                last = line;
            }
            last
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut completed_at: Option<Instant> = None;
        let stay_over = |at: Option<Instant>| async move {
            match (at, self.class.stay) {
                (Some(at), Some(d)) => sleep_until(at + d).await,
                _ => std::future::pending().await,
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = stay_over(completed_at) => break,
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    match event["event"].as_str() {
                        Some("status") => out.samples.push(Sample {
                            t: event["t"].as_f64().unwrap_or(0.0),
                            contiguous: event["contiguous"].as_u64(),
                            penalty: event["penalty"].as_u64().unwrap_or(0),
                        }),
                        Some("complete") => {
                            out.report = Some(event["report"].clone());
                            out.score = serde_json::from_value(event["report"].clone()).ok();
                            completed_at = Some(Instant::now());
                            let _ = done.send(());
                        }
                        Some("timeout") | Some("stopped") if out.report.is_none() => {
                            out.report = Some(event["report"].clone());
                            out.score = serde_json::from_value(event["report"].clone()).ok();
                        }
                        _ => {}
                    }
                }
            }
        }
        // SIGTERM: lt_vod.py rewrites its report with the final counters and exits.
        if let Some(pid) = child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let status = match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        };
        let last_error = tokio::time::timeout(Duration::from_secs(2), errors)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        if let Some(report) = std::fs::read(&report_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            out.downloaded = report["downloaded_bytes"].as_u64().unwrap_or(0);
            out.uploaded = report["uploaded_bytes"].as_u64().unwrap_or(0);
            if out.report.is_none() {
                out.score = serde_json::from_value(report.clone()).ok();
                out.report = Some(report);
            }
        }
        if completed_at.is_none() {
            return Err(format!(
                "lt_vod.py did not complete the movie (exit {}): {last_error}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
        Ok(())
    }
}

/// Sets one `DeadlineConfig` field from `key=value` (seconds for durations; `none` turns
/// `cancel_late_after` or `ahead_horizon` off), for experiments with the policy's settings.
pub fn set_deadline(config: &mut DeadlineConfig, setting: &str) -> Result<(), String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("`{setting}`: expected KEY=VALUE"))?;
    let (key, value) = (key.trim(), value.trim());
    let num = || {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{key}: `{value}` is not a number zero or more"))
    };
    let secs = || num().map(Duration::from_secs_f64);
    match key {
        "urgent_window" => config.urgent_window = secs()?,
        "urgent_min_pieces" => config.urgent_min_pieces = num()? as u32,
        "safety_margin" => config.safety_margin = secs()?,
        "urgent_share" => config.urgent_share = num()?,
        "crowd_size" => config.crowd_size = num()? as usize,
        "at_risk_holders" => config.at_risk_holders = num()? as u32,
        "ahead_order" if value == "deadline" => config.ahead_order = AheadOrder::Deadline,
        "ahead_order" if value == "rarest" => config.ahead_order = AheadOrder::Rarest,
        "ahead_order" => return Err(format!("ahead_order: `{value}` is not deadline or rarest")),
        "ahead_horizon" if value == "none" => config.ahead_horizon = None,
        "ahead_horizon" => config.ahead_horizon = Some(secs()?),
        "max_requesters" => config.max_requesters = num()? as usize,
        "duplicate_gain" => config.duplicate_gain = secs()?,
        "cancel_late_after" if value == "none" => config.cancel_late_after = None,
        "cancel_late_after" => config.cancel_late_after = Some(secs()?),
        "trust_new_peers" => {
            config.trust_new_peers = match value {
                "true" => true,
                "false" => false,
                _ => return Err(format!("trust_new_peers: `{value}` is not true or false")),
            }
        }
        "unmeasured_rate" => config.unmeasured_rate = num()?,
        "unmeasured_rtt" => config.unmeasured_rtt = secs()?,
        other => {
            return Err(format!(
                "unknown deadline setting `{other}` (urgent_window, urgent_min_pieces, \
                 safety_margin, urgent_share, crowd_size, at_risk_holders, ahead_order, \
                 ahead_horizon, max_requesters, duplicate_gain, cancel_late_after, \
                 trust_new_peers, unmeasured_rate, unmeasured_rtt)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_settings_are_parsed_by_name_and_bad_ones_named() {
        let mut config = DeadlineConfig::default();
        for setting in [
            "crowd_size=3",
            "ahead_horizon=none",
            "trust_new_peers=true",
            "urgent_share = 0.5",
        ] {
            set_deadline(&mut config, setting).unwrap();
        }
        assert_eq!(config.crowd_size, 3);
        assert_eq!(config.ahead_horizon, None);
        assert!(config.trust_new_peers);
        assert_eq!(config.urgent_share, 0.5);
        let unknown = set_deadline(&mut config, "crowd=3").unwrap_err();
        assert!(
            unknown.contains("`crowd`") && unknown.contains("crowd_size"),
            "{unknown}"
        );
        let bad = set_deadline(&mut config, "crowd_size=-1").unwrap_err();
        assert!(bad.contains("crowd_size"), "{bad}");
        assert!(set_deadline(&mut config, "crowd_size").is_err());
    }
}
