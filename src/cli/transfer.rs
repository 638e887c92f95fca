//! `btvod seed` and `btvod get`: plain BitTorrent seeding and downloading with a live
//! progress line, and a clean shutdown on Ctrl-C that announces `stopped`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use btvod::engine::session::{self, Content, PolicyKind, SessionOptions};
use btvod::engine::torrent::{TorrentConfig, TorrentStats};
use btvod::proto::metainfo::Metainfo;
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::PeerOptions;

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The content: the file (single-file torrent) or the top directory (multi-file).
    #[arg(long)]
    pub content: PathBuf,
    #[command(flatten)]
    pub common: PeerOptions,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The .torrent file, or a magnet link (quote it: it holds `&`); a magnet's metadata is
    /// fetched from the swarm first and saved as OUT/INFOHASH.torrent, so a restart skips it.
    pub torrent: String,
    /// Directory to download into (the torrent's name is created inside it).
    #[arg(long, short, default_value = ".")]
    pub out: PathBuf,
    /// Piece order.
    #[arg(long, value_enum, default_value_t = GetPolicy::Rarest)]
    pub policy: GetPolicy,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub seed_after: bool,
    #[command(flatten)]
    pub common: PeerOptions,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum GetPolicy {
    Rarest,
    Sequential,
}

/// Session options from the peer options every mode shares.
pub(super) fn options(common: &PeerOptions, policy: PolicyKind) -> SessionOptions {
    SessionOptions {
        listen: SocketAddr::new(common.bind, common.port),
        torrent: TorrentConfig {
            max_peers: common.max_peers,
            upload_limit: common.max_upload_rate,
            download_limit: common.max_download_rate,
            pex: !common.no_pex,
            encryption: common.encryption.policy(),
            utp: common.utp.policy(),
            ..TorrentConfig::default()
        },
        peers: common.peers.clone(),
        trackers: (!common.trackers.is_empty())
            .then(|| common.trackers.iter().map(|t| vec![t.clone()]).collect()),
        policy,
        seed: common.rng_seed.unwrap_or_else(rand::random),
        vod: None,
        dht: None,
        lsd: !common.no_lsd,
        // `seed` and `stream` turn it on.
        lan_search: false,
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Metainfo> {
    Metainfo::load(path).with_context(|| format!("{} is not a usable torrent", path.display()))
}

fn recheck_bar(quiet: bool) -> (ProgressBar, impl FnMut(u32, u32) + Send + 'static) {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("checking {bar:30} {pos}/{len} pieces")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    (bar, move |done, total| {
        b.set_length(u64::from(total));
        b.set_position(u64::from(done));
    })
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let meta = load(&args.torrent)?;
    let dht = args.common.dht().await;
    let (bar, progress) = recheck_bar(args.common.quiet);
    let session = session::start(
        &meta,
        Content::Existing(args.content.clone()),
        SessionOptions {
            dht: dht.clone(),
            lan_search: !args.common.no_lan_search,
            ..options(&args.common, PolicyKind::Rarest)
        },
        progress,
    )
    .await
    .with_context(|| format!("cannot seed {}", args.content.display()))?;
    bar.finish_and_clear();
    let stats = session.torrent.stats.borrow().clone();
    if !stats.complete {
        session.shutdown().await;
        anyhow::bail!(
            "{} does not match the torrent: {} of {} pieces verified",
            args.content.display(),
            stats.pieces_have,
            stats.piece_count
        );
    }
    announce_listening(&session.torrent.listen_addr, &meta);
    run_until(&session, args.common.quiet, false).await;
    session.shutdown().await;
    Ok(())
}

pub async fn get(mut args: GetArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let dht = args.common.dht().await;
    let loaded =
        super::source::load(&args.torrent, &args.out, &mut args.common, dht.as_ref()).await?;
    if loaded.selected_files().is_some() {
        eprintln!("note: the link's file selection (so) is not applied: get downloads every file");
    }
    let meta = loaded.meta;
    let policy = match args.policy {
        GetPolicy::Rarest => PolicyKind::Rarest,
        GetPolicy::Sequential => PolicyKind::Sequential,
    };
    let (bar, progress) = recheck_bar(args.common.quiet);
    let session = session::start(
        &meta,
        Content::DownloadDir(args.out.clone()),
        SessionOptions {
            dht: dht.clone(),
            ..options(&args.common, policy)
        },
        progress,
    )
    .await
    .with_context(|| format!("cannot download into {}", args.out.display()))?;
    bar.finish_and_clear();
    announce_listening(&session.torrent.listen_addr, &meta);
    let ended = run_until(&session, args.common.quiet, !args.seed_after).await;
    let finished = ended == Ended::Complete;
    if finished {
        eprintln!(
            "complete: {} in {}",
            human_bytes(meta.total_len()),
            args.out
                .join(meta.relative_path(0).iter().next().unwrap_or_default())
                .display()
        );
        if args.seed_after {
            run_until(&session, args.common.quiet, false).await;
        }
    }
    let stats = session.torrent.stats.borrow().clone();
    session.shutdown().await;
    match ended {
        Ended::Complete => Ok(()),
        Ended::Interrupted => anyhow::bail!("interrupted before the download completed"),
        Ended::WriteFailed(error) => anyhow::bail!(
            "{error}; stopped with {} of {} pieces verified and written: \
             run again with room on the disk to resume from them",
            stats.pieces_have,
            stats.piece_count
        ),
    }
}

fn announce_listening(addr: &Option<SocketAddr>, meta: &Metainfo) {
    if let Some(addr) = addr {
        tracing::info!(%addr, info_hash = %meta.info_hash, "listening for peers");
    }
}

/// Why [`run_until`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Every piece is verified (or, when seeding on, Ctrl-C came after that).
    Complete,
    Interrupted,
    /// A piece could not be written (disk full, ...): going on would only fetch it again.
    WriteFailed(String),
}

/// Shows progress until Ctrl-C, until a write fails, or until the torrent is complete when
/// `stop_when_complete`.
async fn run_until(session: &session::Session, quiet: bool, stop_when_complete: bool) -> Ended {
    let mut stats = session.torrent.stats.clone();
    let line = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let s = stats.borrow_and_update().clone();
        line.set_message(progress_line(&s));
        if stop_when_complete && s.complete {
            line.finish_and_clear();
            return Ended::Complete;
        }
        // A failed write publishes stats (the piece is let go), so this is seen at once.
        if let Some(error) = session.storage.write_failure() {
            line.finish_and_clear();
            return Ended::WriteFailed(error.to_string());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                line.finish_and_clear();
                return if stats.borrow().complete { Ended::Complete } else { Ended::Interrupted };
            }
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    }
}

fn progress_line(s: &TorrentStats) -> String {
    let pct = if s.piece_count == 0 {
        100.0
    } else {
        100.0 * f64::from(s.pieces_have) / f64::from(s.piece_count)
    };
    format!(
        "{}/{} pieces ({pct:.1}%)  down {}/s  up {}/s  peers {} ({} uTP, {} encrypted)  uploaded {}",
        s.pieces_have,
        s.piece_count,
        human_bytes(s.download_rate as u64),
        human_bytes(s.upload_rate as u64),
        s.peers,
        s.peers_utp,
        s.peers_encrypted,
        human_bytes(s.uploaded),
    )
}
