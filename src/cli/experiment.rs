//! `btvod experiment SCENARIO.toml`: runs a scenario once per policy and repetition, each in a
//! fresh local world, and prints and writes the penalty comparison.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use btvod::experiment::deadline_settings::set_deadline;
use btvod::experiment::plot::render_svg;
use btvod::experiment::report::{RunRow, render_table, summarise, write_files};
use btvod::experiment::runner::{
    Contender, PartsPlan, Progress, ProgressFn, RunOutcome, RunnerOptions, run_experiment,
};
use btvod::experiment::scenario::PeerClient;
use btvod::experiment::{LtProgram, Scenario};
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
#[command(
    long_about = "Runs SCENARIO.toml once per policy and repetition. Every run is a fresh local \
                  world (same seed: same content, partial copies and schedules) with the \
                  built-in tracker and metered origin on 127.0.0.1; the scenario's viewers play \
                  under the policy being measured: btvod's in this process with the engine's \
                  own code, libtorrent's as scripts/lt_vod.py processes. At the end a table \
                  gives, per policy, the mean ± standard deviation [min-max] over runs of the \
                  penalty, stall and completion time, and what the world's own peers \
                  downloaded and uploaded; OUT receives runs.csv, summary.csv, results.json \
                  (every report and curve), table.txt, table.md and plot.svg.\n\n\
                  Example:\n  btvod experiment scripts/scenarios/matched.toml --policies \
                  deadline,rarest,libtorrent-deadline --runs 3 --out experiments/matched"
)]
pub struct ExperimentArgs {
    /// The scenario (see scripts/scenarios/).
    pub scenario: PathBuf,
    /// Policies to compare, comma-separated: deadline, rarest, sequential,
    /// libtorrent-deadline, libtorrent-sequential.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "deadline,rarest,sequential"
    )]
    pub policies: Vec<String>,
    /// Runs of every policy.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Every peer class's round-trip time to the viewers (e.g. 100ms, 0.25s, 0), in place of
    /// the scenario's `rtt_ms`: a delaying relay stands in front of each world peer.
    #[arg(long, value_parser = parse_rtt, value_name = "TIME")]
    pub rtt: Option<Duration>,
    /// The worlds every policy runs in: the scenario as written, every world peer btvod, every
    /// world peer libtorrent (scripts/lt_peer.py), or both of the last two.
    #[arg(long, value_enum, default_value_t = WorldChoice::Scenario)]
    pub world: WorldChoice,
    /// Output directory. Default: experiments/<scenario name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs going at once (each its own world; more than 1 shares the CPU between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// A deadline policy setting for these runs, KEY=VALUE (repeatable; seconds for times),
    /// e.g. --deadline-set urgent_window=15 --deadline-set max_requesters=3.
    #[arg(long = "deadline-set", value_name = "KEY=VALUE")]
    pub deadline_set: Vec<String>,
    /// Seconds allowed past the last viewer's last deadline before a run is cut off.
    #[arg(long, default_value_t = 30.0)]
    pub slack: f64,
    /// Keep every run's content, partial copies and movies (only logs and reports otherwise).
    #[arg(long)]
    pub keep_data: bool,
    /// The Python that imports libtorrent (for the libtorrent policies).
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python: PathBuf,
    /// The libtorrent viewer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_vod.py"))]
    pub lt_script: PathBuf,
    /// Spread each run's world over N `btvod world --part K/N` processes (part 1 runs the
    /// tracker and the origin; each part runs every N-th peer and viewer). btvod's policies
    /// only; no link latency, no curves or bounds in the table.
    #[arg(long, value_name = "N")]
    pub parts: Option<u32>,
    /// How part {k} runs its command {cmd}, through `sh -c`: e.g. 'ip netns exec host{k} {cmd}'
    /// or 'ssh node{k} {cmd}' (the scenario, the binary and OUT at the same paths there).
    /// Default: directly, on this host.
    #[arg(long, value_name = "TEMPLATE", requires = "parts")]
    pub host_cmd: Option<String>,
    /// Part {k}'s address, which its peers, tracker and origin listen on, e.g. '10.77.0.{k}'.
    /// Default: 127.0.0.1.
    #[arg(long, value_name = "TEMPLATE", requires = "parts")]
    pub host_addr: Option<String>,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldChoice {
    Scenario,
    Btvod,
    Libtorrent,
    Both,
}

impl WorldChoice {
    fn worlds(self) -> Vec<Option<PeerClient>> {
        match self {
            WorldChoice::Scenario => vec![None],
            WorldChoice::Btvod => vec![Some(PeerClient::Btvod)],
            WorldChoice::Libtorrent => vec![Some(PeerClient::Libtorrent)],
            WorldChoice::Both => vec![Some(PeerClient::Btvod), Some(PeerClient::Libtorrent)],
        }
    }
}

pub async fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let options = runner_options(&args, &scenario)?;
    let total = u64::from(options.runs) * options.contenders.len() as u64;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {pos}/{len} runs  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    eprintln!(
        "experiment `{}`: {} run(s) of {} into {}",
        scenario.name,
        options.runs,
        options
            .contenders
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", "),
        options.out.display()
    );
    let outcomes = run_experiment(&scenario, &options, progress_shown_on(bar.clone())).await?;
    bar.finish_and_clear();
    report(&scenario, &options, &outcomes)
}

/// `100ms`, `0.25s` or a bare number of milliseconds, up to a minute.
fn parse_rtt(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1e-3)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=60.0).contains(&(v * scale)) => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "`{text}`: expected a time such as 100ms or 0.25s, at most 60 s"
        )),
    }
}

/// The runner's options from the command line, every value checked.
fn runner_options(args: &ExperimentArgs, scenario: &Scenario) -> anyhow::Result<RunnerOptions> {
    let contenders = args
        .policies
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| Contender::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !args.slack.is_finite() || args.slack < 0.0 {
        bail!("--slack must be a number of seconds, zero or more");
    }
    let mut options = RunnerOptions {
        contenders,
        worlds: args.world.worlds(),
        rtt: args.rtt,
        runs: args.runs,
        jobs: args.jobs.max(1),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("experiments").join(&scenario.name)),
        python: args.python.clone(),
        lt_script: args.lt_script.clone(),
        slack: Duration::from_secs_f64(args.slack),
        keep_data: args.keep_data,
        ..RunnerOptions::default()
    };
    for setting in &args.deadline_set {
        set_deadline(&mut options.deadline, setting)?;
    }
    if let Some(n) = args.parts {
        if n == 0 || n > btvod::experiment::part::MAX_PARTS {
            bail!(
                "--parts must be 1 to {}",
                btvod::experiment::part::MAX_PARTS
            );
        }
        if !args.deadline_set.is_empty() {
            bail!("--deadline-set is not passed to the parts' viewers: drop it with --parts");
        }
        options.parts = Some(PartsPlan {
            n,
            host_cmd: args.host_cmd.clone(),
            host_addr: args.host_addr.clone(),
            scenario: std::fs::canonicalize(&args.scenario)
                .with_context(|| format!("cannot find {}", args.scenario.display()))?,
            btvod: std::env::current_exe().context("cannot find the btvod binary")?,
        });
        options.out = std::path::absolute(&options.out).context("the output directory")?;
    }
    let libtorrent = options
        .contenders
        .iter()
        .any(|c| matches!(c, Contender::Libtorrent { .. }));
    if libtorrent && !options.lt_script.is_file() {
        bail!(
            "the libtorrent policies need {} (see --lt-script)",
            options.lt_script.display()
        );
    }
    let lt_world = options
        .worlds
        .iter()
        .any(|&w| scenario.with_client(w).world_kind() != "btvod");
    let lt_peer = LtProgram::default().script;
    if lt_world && !lt_peer.is_file() {
        bail!("libtorrent world peers need {}", lt_peer.display());
    }
    Ok(options)
}

/// Shows the runner's progress on `bar`: one slot per run going, one line per run finished.
fn progress_shown_on(bar: ProgressBar) -> ProgressFn {
    let active: Mutex<Vec<(String, String)>> = Mutex::default();
    Arc::new(move |event: Progress| {
        let mut active = active.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Progress::Started { policy, world, run } => {
                active.push((run_key(policy, world, run), "starting".into()));
            }
            Progress::Tick {
                policy,
                world,
                run,
                t,
                viewers_done,
                viewers,
                origin_bytes,
            } => {
                let key = run_key(policy, world, run);
                let text = format!(
                    "t={t:.0}s viewers {viewers_done}/{viewers} penalty {}",
                    human_bytes(origin_bytes)
                );
                if let Some(slot) = active.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = text;
                }
            }
            Progress::Finished(outcome) => {
                let key = run_key(&outcome.policy, &outcome.world, outcome.run);
                active.retain(|(k, _)| *k != key);
                let line = run_line(&key, &outcome);
                if bar.is_hidden() {
                    // No terminal (a log, a script): the per-run lines still matter.
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
                bar.inc(1);
            }
        }
        bar.set_message(
            active
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(" | "),
        );
    })
}

/// How a run is named on the progress line: `deadline#2`, `deadline@libtorrent#2`.
fn run_key(policy: &str, world: &str, run: u32) -> String {
    match world {
        "btvod" => format!("{policy}#{run}"),
        world => format!("{policy}@{world}#{run}"),
    }
}

/// One finished run in a line.
fn run_line(key: &str, outcome: &RunOutcome) -> String {
    let row = RunRow::of(outcome);
    format!(
        "{key}: penalty {} bytes ({:.2}%), stall {:.1} s, complete {}, origin {} bytes{}",
        row.penalty_bytes,
        100.0 * row.penalty_fraction,
        row.stall_s,
        row.complete_s
            .map(|t| format!("{t:.1} s"))
            .unwrap_or_else(|| "-".into()),
        row.origin_bytes,
        failure_note(outcome)
    )
}

/// Prints the table, writes the result files and the plot, and fails if a run failed or
/// the origin's meter disagrees with the penalties.
fn report(
    scenario: &Scenario,
    options: &RunnerOptions,
    outcomes: &[RunOutcome],
) -> anyhow::Result<()> {
    let rows: Vec<RunRow> = outcomes.iter().map(RunRow::of).collect();
    let summaries = summarise(&rows);
    println!(
        "scenario `{}` (seed {}): mean ± sd [min-max] over runs; penalty summed over {} viewer(s) a run",
        scenario.name,
        scenario.seed,
        scenario.viewer_count()
    );
    print!("{}", render_table(&summaries));
    let mut files = write_files(&options.out, &scenario.name, scenario.seed, outcomes)
        .with_context(|| format!("cannot write results into {}", options.out.display()))?;
    let svg = options.out.join("plot.svg");
    std::fs::write(&svg, render_svg(&scenario.name, outcomes))
        .with_context(|| format!("cannot write {}", svg.display()))?;
    files.push(svg);
    eprintln!(
        "wrote {}",
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    let mismatched = outcomes
        .iter()
        .filter(|o| o.ok() && o.origin_bytes != o.penalty_sum())
        .count();
    if mismatched > 0 {
        bail!("{mismatched} run(s) where the origin's meter differs from the summed penalty");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} run(s) did not complete every viewer",
            outcomes.len()
        );
    }
    Ok(())
}

fn failure_note(o: &RunOutcome) -> String {
    if o.ok() {
        return String::new();
    }
    let why = o
        .error
        .clone()
        .or_else(|| o.viewers.iter().find_map(|v| v.error.clone()))
        .unwrap_or_else(|| "timed out".into());
    format!("  FAILED: {why}")
}
