//! Command-line definitions and dispatch to one module per subcommand.

mod experiment;
mod info;
mod make;
mod origin;
mod play;
mod search;
mod simulate;
mod source;
mod stream;
mod tracker;
mod transfer;
mod watch;
mod world;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "btvod",
    version,
    about = "A BitTorrent client for watching a movie while it downloads",
    long_about = "btvod is a BitTorrent peer whose piece picker aims at playback deadlines.\n\n\
                  Without a subcommand it plays a movie: byte b must be present by \
                  D - P + b/R seconds, and whatever misses its deadline is fetched from the VoD \
                  server and counted as penalty. Example:\n  \
                  btvod --rate 60 --delay 6 --prefetch 2 --server http://127.0.0.1:8080/ movie.torrent\n\n\
                  Subcommands inspect and make .torrent files, run a tracker or a VoD origin, \
                  and seed or download torrents.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub play: play::PlayArgs,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Cli {
    pub fn quiet(&self) -> bool {
        match &self.command {
            Some(Command::Seed(a)) => a.common.quiet,
            Some(Command::Get(a)) => a.common.quiet,
            Some(Command::Stream(a) | Command::Play(a)) => a.common.quiet,
            // Log lines would scribble over the picture.
            Some(Command::Watch(a)) => a.common.quiet || !a.no_tty,
            // Many sessions log at once; the experiment's own progress line says what runs.
            Some(Command::Experiment(_)) => true,
            Some(_) => false,
            None => self.play.common.quiet,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what a .torrent file or a magnet link holds: name, info-hash, size, pieces, files,
    /// trackers (a magnet's only with --fetch).
    Info(info::InfoArgs),
    /// Make a .torrent file from a file or a directory.
    MakeTorrent(make::MakeArgs),
    /// Find torrents on the LAN by name: peers that seed or stream a torrent whose name has
    /// every word of NAME answer with a magnet link.
    Search(search::SearchArgs),
    /// Run a BitTorrent tracker: HTTP (announce, scrape, a status page at /) and UDP (BEP 15).
    Tracker(tracker::TrackerArgs),
    /// Seed existing content to the swarm.
    Seed(transfer::SeedArgs),
    /// Download a torrent (rarest-first, or sequential), then exit or keep seeding.
    Get(transfer::GetArgs),
    /// Serve content over HTTP as the metered VoD server (byte ranges, /stats).
    Origin(origin::OriginArgs),
    /// Run a local world from a scenario: tracker, VoD origin, seeds, partial peers, viewers.
    World(world::WorldArgs),
    /// Compare policies on a scenario: runs, penalty table, CSV/JSON and an SVG plot.
    Experiment(experiment::ExperimentArgs),
    /// Run a scenario in the pure simulator: each policy's penalty in virtual time.
    Simulate(simulate::SimulateArgs),
    /// Stream a torrent's files over HTTP to a player (mpv, VLC): its reads and seeks set the
    /// deadlines, and the VoD server is used only when one would be missed.
    Stream(stream::StreamArgs),
    /// Watch a torrent in mpv while it downloads: `stream --player mpv`.
    Play(stream::StreamArgs),
    /// Play a text movie (Nutella's or asciimation) in the terminal as it arrives.
    Watch(watch::WatchArgs),
}

/// Options every peer mode shares.
#[derive(Args, Debug, Clone)]
pub struct PeerOptions {
    /// Port to listen on for peers (0 = any free port).
    #[arg(long, default_value_t = 6881)]
    pub port: u16,
    /// Address to listen on for peers: every address, IPv6 and IPv4, by default (`::`, or
    /// `0.0.0.0` where there is no IPv6), since peers on other machines must reach it;
    /// 127.0.0.1 or ::1 keeps it to this machine.
    #[arg(long, default_value = "::")]
    pub bind: std::net::IpAddr,
    /// Upload limit for the whole process, in KiB/s unless a unit is given (0 = unlimited).
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub max_upload_rate: u64,
    /// Download limit for the whole process, in KiB/s unless a unit is given (0 = unlimited).
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub max_download_rate: u64,
    /// A peer to connect to directly, without a tracker (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<SocketAddr>,
    /// A tracker announce URL to use instead of the torrent's (repeatable; one tier each).
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Most peer connections at once.
    #[arg(long, default_value_t = 50)]
    pub max_peers: usize,
    /// Seed for every random choice (reproducible runs). Random when not given.
    #[arg(long, value_name = "N")]
    pub rng_seed: Option<u64>,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not use the DHT (it is on for magnet links and public torrents; private torrents
    /// never use it).
    #[arg(long)]
    pub no_dht: bool,
    /// No peer exchange (BEP 11): peers are not told whom we are connected to, and what they
    /// tell us is not dialled. Private torrents never use it.
    #[arg(long)]
    pub no_pex: bool,
    /// No local service discovery (BEP 14): torrents are not announced on the LAN's multicast
    /// group, and peers announcing them there are not dialled. Private torrents never use it.
    #[arg(long)]
    pub no_lsd: bool,
    /// `seed` and `stream` do not answer `btvod search` queries on the LAN.
    #[arg(long)]
    pub no_lan_search: bool,
    /// Message stream encryption (MSE/PE): `prefer` accepts both and dials with an encrypted
    /// handshake first, then plaintext if the peer refuses (the payload is RC4 only when the
    /// other side insists); `require` only connections with an RC4 payload; `disable` only
    /// plaintext.
    #[arg(long, value_enum, default_value = "prefer")]
    pub encryption: Encryption,
    /// uTP (BEP 29) beside TCP, on UDP at the peer port: `enable` accepts it and dials TCP
    /// first, then uTP; `prefer` dials uTP first; `disable` is TCP only.
    #[arg(long, value_enum, default_value = "enable")]
    pub utp: Utp,
    /// A DHT node to join through, instead of the well-known routers (repeatable): a DHT of
    /// your own. Without it, the routers and the nodes of the last run (kept in
    /// ~/.local/state/btvod/dht-nodes) are used.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
    /// UDP port of the DHT node (default: any free one; the peer port's UDP is uTP's).
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// The DHT node answers other nodes from the start, for a node others join through. By
    /// default it is read-only (BEP 43) until it finds itself reachable.
    #[arg(long)]
    pub dht_server: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Encryption {
    Prefer,
    Require,
    Disable,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Utp {
    Prefer,
    Enable,
    Disable,
}

impl Utp {
    pub fn policy(self) -> btvod::engine::peer::link::UtpPolicy {
        use btvod::engine::peer::link::UtpPolicy as P;
        match self {
            Self::Prefer => P::Prefer,
            Self::Enable => P::Enable,
            Self::Disable => P::Disable,
        }
    }
}

impl Encryption {
    pub fn policy(self) -> btvod::engine::peer::mse::EncryptionPolicy {
        use btvod::engine::peer::mse::EncryptionPolicy as P;
        match self {
            Self::Prefer => P::Prefer,
            Self::Require => P::Require,
            Self::Disable => P::Disable,
        }
    }
}

impl PeerOptions {
    /// The DHT node these options ask for, started; `None` with --no-dht or if it cannot
    /// start (said once on stderr: the swarm may still be found through trackers).
    pub async fn dht(&self) -> Option<btvod::engine::dht::DhtNode> {
        use btvod::engine::dht::{DhtConfig, DhtNode, default_state_file};
        if self.no_dht {
            return None;
        }
        let config = DhtConfig {
            bootstrap: self.dht_bootstrap.clone(),
            port: self.dht_port.unwrap_or(0),
            // A DHT of one's own is not mixed with the public nodes of earlier runs.
            state_file: self
                .dht_bootstrap
                .is_empty()
                .then(default_state_file)
                .flatten(),
            server: self.dht_server,
        };
        match DhtNode::start(config).await {
            Ok(node) => Some(node),
            Err(e) => {
                eprintln!("btvod: the DHT is off: {e}");
                None
            }
        }
    }
}

/// Rates on the command line are KiB/s by default, as in the original BitTornado tools.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    btvod::units::parse_byte_size(s, 1024).map_err(|e| e.to_string())
}

/// The one-line status of a playback: a spinner, or nothing with `-q`.
pub fn status_line(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    }
}

pub fn init_logging(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, quiet) {
        (0, true) => "error",
        // librqbit-utp warns at every start that the kernel caps its UDP receive buffer
        // (rmem_max); that says nothing a user can act on mid-run.
        (0, false) => "warn,btvod=info,librqbit_utp=error",
        (1, _) => "info,btvod=debug,librqbit_utp=error",
        _ => "debug,btvod=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a person at a terminal: captured logs stay plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => play::run(cli.play).await,
        Some(Command::Info(a)) => info::run(a).await,
        Some(Command::MakeTorrent(a)) => make::run(a),
        Some(Command::Tracker(a)) => tracker::run(a).await,
        Some(Command::Search(a)) => search::run(a).await,
        Some(Command::Seed(a)) => transfer::seed(a).await,
        Some(Command::Get(a)) => transfer::get(a).await,
        Some(Command::Origin(a)) => origin::run(a).await,
        Some(Command::World(a)) => world::run(a).await,
        Some(Command::Experiment(a)) => experiment::run(a).await,
        Some(Command::Simulate(a)) => simulate::run(a),
        Some(Command::Stream(a)) => stream::run(a, stream::Player::None).await,
        Some(Command::Play(a)) => stream::run(a, stream::Player::Mpv).await,
        Some(Command::Watch(a)) => watch::run(a).await,
    }
}

/// Where a subcommand's output file goes when none was named.
pub fn default_torrent_path(content: &std::path::Path) -> PathBuf {
    let name = content
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    PathBuf::from(format!("{name}.torrent"))
}
