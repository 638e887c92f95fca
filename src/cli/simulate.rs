//! `btvod simulate SCENARIO.toml`: the scenario in the pure simulator, its viewers under each
//! of btvod's policies, in virtual time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use btvod::experiment::Scenario;
use btvod::experiment::deadline_settings::set_deadline;
use btvod::experiment::simulate::simulate;
use btvod::experiment::world::build_content;
use btvod::policy::picker::DeadlineConfig;
use btvod::proto::metainfo::Metainfo;
use clap::Args;

#[derive(Args, Debug)]
#[command(
    long_about = "Runs SCENARIO.toml in the pure simulator (src/policy/sim) instead of a real \
                  world, as each viewer sees it (up to 12 of each class, spread over their \
                  arrivals): every other member is a simulated peer holding what the world \
                  draws for it plus what a fluid model of the swarm says it downloads \
                  meanwhile, in its online spells, behind its class's link, giving the viewer \
                  its share of its upload. Prints each policy's penalty (% of the movie, mean \
                  and range over --seeds and viewers) and the server bytes per viewer. Seconds \
                  for worlds a real run takes minutes for; how far its numbers are from real \
                  worlds is in BENCHMARKS.md \"Scale\"."
)]
pub struct SimulateArgs {
    /// The scenario (see scripts/scenarios/).
    pub scenario: PathBuf,
    /// Seeds to average over (latencies, the picker's random choices).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Every viewer class holds this many viewers instead of the scenario's count (a crowd
    /// of any size: the scaling curve of BENCHMARKS.md "Scale").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub viewers: Option<u32>,
    /// A deadline policy setting, KEY=VALUE (repeatable; seconds for times), as for
    /// `btvod experiment`: the direction of a change in seconds before a real run.
    #[arg(long = "deadline-set", value_name = "KEY=VALUE")]
    pub deadline_set: Vec<String>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(n) = args.viewers {
        for class in &mut scenario.viewers {
            class.count = n;
        }
    }
    let mut deadline = DeadlineConfig::default();
    for setting in &args.deadline_set {
        set_deadline(&mut deadline, setting)?;
    }
    let meta = torrent_of(&scenario)?;
    let started = Instant::now();
    let results = simulate(&scenario, &meta, args.seeds, &deadline)?;
    println!(
        "scenario `{}`, simulated, {} seed(s):",
        scenario.name,
        args.seeds.max(1)
    );
    println!(
        "{:<16} {:<14} {:>10} {:>16} {:>18}",
        "viewer class", "policy", "penalty %", "range", "server MiB/viewer"
    );
    for r in &results {
        let (lo, hi) = r
            .fractions
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), f| {
                (l.min(*f), h.max(*f))
            });
        println!(
            "{:<16} {:<14} {:>10.1} {:>16} {:>18.2}",
            r.class,
            r.policy,
            100.0 * r.mean(),
            format!("{:.1}-{:.1}", 100.0 * lo, 100.0 * hi),
            r.mean() * r.movie_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The scenario's torrent, made in a scratch directory that is removed after.
fn torrent_of(scenario: &Scenario) -> anyhow::Result<Metainfo> {
    let dir = std::env::temp_dir().join(format!("btvod-simulate-{}", std::process::id()));
    let made = build_content(&scenario.content, &dir, "http://127.0.0.1:1/announce");
    let _ = std::fs::remove_dir_all(&dir);
    let (_, bytes) = made.context("cannot make the scenario's torrent")?;
    Ok(Metainfo::from_bytes(&bytes)?)
}
