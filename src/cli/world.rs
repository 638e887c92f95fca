//! `btvod world SCENARIO.toml --run-dir DIR`: runs a local world (tracker, origin, seeds,
//! partial peers, viewers) until Ctrl-C or SIGTERM, writing `DIR/world.json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use btvod::experiment::world::build_content;
use btvod::experiment::{PeerRole, PeerState, Scenario, World, WorldOptions, WorldSummary};
use btvod::units::human_bytes;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Args, Debug)]
#[command(
    long_about = "Runs a local BitTorrent world described by a scenario file (see \
                  scripts/scenarios/*.toml for the format): the built-in tracker and a metered \
                  VoD origin on 127.0.0.1, the scenario's content and torrent, seeds and partial \
                  peers with their upload and download limits, arrivals, churn and \
                  reincarnation, and its VoD viewers. It writes DIR/world.json (tracker URL, \
                  origin URL, torrent and content paths, every peer's traffic; refreshed every \
                  2 s) and DIR/events.log, and runs until Ctrl-C or SIGTERM.\n\n\
                  Play the world's torrent with:\n  \
                  btvod --rate 60 --server ORIGIN_URL --tracker TRACKER_URL DIR/NAME.torrent"
)]
pub struct WorldArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Directory for the world's files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Do not run the scenario's viewers (only the tracker, origin and world peers).
    #[arg(long)]
    pub no_viewers: bool,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Only make the content and the torrent in the run directory, then exit.
    #[arg(long)]
    pub prepare: bool,
    /// Announce URL written into the torrent with --prepare.
    #[arg(
        long,
        default_value = "http://127.0.0.1:6969/announce",
        requires = "prepare"
    )]
    pub announce: String,
}

pub async fn run(args: WorldArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    if args.prepare {
        return prepare(&scenario, &args);
    }
    let duration = match args.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--duration must be a positive number of seconds (got {s})"),
        None => None,
    };
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    eprintln!(
        "world `{}`: making the content and starting {} peers and {} viewers...",
        scenario.name,
        scenario.peer_count(),
        if args.no_viewers {
            0
        } else {
            scenario.viewer_count()
        }
    );
    let options = WorldOptions {
        run_viewers: !args.no_viewers,
        ..WorldOptions::default()
    };
    let world = World::start(scenario, &args.run_dir, options)
        .await
        .context("cannot start the world")?;
    let s = world.summary();
    println!("tracker  {}", s.tracker_url);
    println!("origin   {}", s.origin_url);
    println!("torrent  {}", s.torrent.display());
    println!("content  {}", s.content.display());
    println!(
        "world.json in {}; Ctrl-C or SIGTERM stops the world",
        world.run_dir().display()
    );
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => { eprintln!("SIGTERM: stopping the world"); break; }
            _ = int.recv() => { eprintln!("interrupted: stopping the world"); break; }
            _ = until_deadline => { eprintln!("--duration reached: stopping the world"); break; }
            _ = tick.tick() => eprintln!("{}", status_line(&world.summary())),
        }
    }
    let summary = world.stop().await;
    eprintln!("{}", status_line(&summary));
    eprintln!("world stopped");
    Ok(())
}

fn prepare(scenario: &Scenario, args: &WorldArgs) -> anyhow::Result<()> {
    let dir = &args.run_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (content, bytes) = build_content(&scenario.content, dir, &args.announce)?;
    let meta = btvod::proto::metainfo::Metainfo::from_bytes(&bytes)?;
    let torrent = dir.join(format!("{}.torrent", meta.name));
    std::fs::write(&torrent, &bytes)
        .with_context(|| format!("cannot write {}", torrent.display()))?;
    println!(
        "{}  {}  ({}, info-hash {})",
        torrent.display(),
        content.display(),
        human_bytes(meta.total_len()),
        meta.info_hash.to_hex()
    );
    Ok(())
}

fn status_line(s: &WorldSummary) -> String {
    let online = s
        .peers
        .iter()
        .filter(|p| p.state == PeerState::Online)
        .count();
    let up: u64 = s.peers.iter().map(|p| p.uploaded).sum();
    let down: u64 = s.peers.iter().map(|p| p.downloaded).sum();
    let viewers_done = s
        .peers
        .iter()
        .filter(|p| p.role == PeerRole::Viewer && p.report.is_some())
        .count();
    format!(
        "t={:.0}s  online {online}/{}  uploaded {}  downloaded {}  viewers done {viewers_done}  origin served {}",
        s.uptime_s,
        s.peers.len(),
        human_bytes(up),
        human_bytes(down),
        human_bytes(s.origin_bytes_served)
    )
}
