//! `btvod world SCENARIO.toml --run-dir DIR [--part K/N]`: runs a local world (tracker,
//! origin, seeds, partial peers, viewers), or one part of one spread over hosts, until Ctrl-C
//! or SIGTERM, writing `DIR/world.json`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use btvod::experiment::part::{Part, RemoteServices};
use btvod::experiment::scenario::PeerClient;
use btvod::experiment::world::build_content;
use btvod::experiment::{PeerRole, PeerState, Scenario, World, WorldOptions, WorldSummary};
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};
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
                  btvod --rate 60 --server ORIGIN_URL --tracker TRACKER_URL DIR/NAME.torrent\n\n\
                  A world over several hosts: each host runs one part with its own address, \
                  part 1 first (it starts the tracker and the origin and prints their URLs):\n  \
                  btvod world S.toml --run-dir R1 --part 1/2 --bind 10.0.0.1\n  \
                  btvod world S.toml --run-dir R2 --part 2/2 --bind 10.0.0.2 \
                  --tracker TRACKER_URL --origin ORIGIN_URL\n\
                  Part K runs every N-th world peer and viewer (scenario order, from the K-th); \
                  every part makes the same content and torrent from the scenario's seed."
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
    /// Run only part K of N of the scenario's peers and viewers (see above).
    #[arg(long, value_name = "K/N", default_value = "1/1")]
    pub part: Part,
    /// The tracker of part 1 (parts after the first).
    #[arg(long, value_name = "URL", requires = "origin")]
    pub tracker: Option<String>,
    /// The origin of part 1 (parts after the first).
    #[arg(long, value_name = "URL", requires = "tracker")]
    pub origin: Option<String>,
    /// The address the world's peers, tracker and origin listen on: this host's address on
    /// the network the other parts reach.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Every world peer runs this client, whatever its class says.
    #[arg(long, value_enum)]
    pub peer_client: Option<ClientArg>,
    /// Every viewer plays under this policy, whatever its class says.
    #[arg(long, value_enum)]
    pub viewer_policy: Option<super::play::PlayPolicy>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ClientArg {
    Btvod,
    Libtorrent,
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
    let share = |count: u32| count.div_ceil(args.part.n());
    eprintln!(
        "world `{}` part {}: making the content and starting about {} peers and {} viewers...",
        scenario.name,
        args.part,
        share(scenario.peer_count()),
        if args.no_viewers {
            0
        } else {
            share(scenario.viewer_count())
        }
    );
    let remote = match (args.part.runs_services(), &args.tracker, &args.origin) {
        (true, None, None) => None,
        (false, Some(tracker), Some(origin)) => Some(RemoteServices {
            tracker_url: tracker.clone(),
            origin_url: origin.clone(),
        }),
        (true, _, _) => {
            anyhow::bail!("part 1 starts the tracker and the origin: drop --tracker and --origin")
        }
        (false, _, _) => anyhow::bail!(
            "part {} needs --tracker and --origin: the URLs part 1 printed",
            args.part
        ),
    };
    let options = WorldOptions {
        run_viewers: !args.no_viewers,
        bind: args.bind,
        part: args.part,
        remote,
        peer_client: args.peer_client.map(|c| match c {
            ClientArg::Btvod => PeerClient::Btvod,
            ClientArg::Libtorrent => PeerClient::Libtorrent,
        }),
        viewer_policy: args.viewer_policy.map(|p| p.kind()),
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
