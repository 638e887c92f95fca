//! `btvod [OPTIONS] FILE.torrent`: plays a movie from the swarm, fetching from the VoD server
//! whatever misses its deadline, and reports the penalty (`vod-scoring.md`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use btvod::engine::playback::VodStatus;
use btvod::engine::report::VodReport;
use btvod::engine::session::{self, Content, PolicyKind, Session, SessionOptions, VodOptions};
use btvod::engine::torrent::TorrentStats;
use btvod::engine::vod_server::VodServer;
use btvod::policy::vod::VodParams;
use btvod::proto::metainfo::Metainfo;
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};

use super::source::Loaded;

#[derive(Args, Debug)]
pub struct PlayArgs {
    /// The movie's .torrent file, or a magnet link (quote it: it holds `&`). A magnet's
    /// metadata is fetched first and saved as INFOHASH.torrent beside the download; the
    /// deadlines start once it is known.
    pub torrent: Option<String>,
    /// Playback rate R, in KiB/s unless a unit is given (60 = 61,440 B/s; also 2MiB, 500KB, 4Mbit).
    #[arg(long, value_parser = parse_play_rate)]
    pub rate: Option<u64>,
    /// Start-up delay D in seconds: how long the viewer waits before playback starts.
    #[arg(long, default_value_t = 6.0)]
    pub delay: f64,
    /// Prefetch P in seconds: how long before it is played a byte must be present (P <= D).
    #[arg(long, default_value_t = 2.0)]
    pub prefetch: f64,
    /// Which file of a multi-file torrent is the movie: an index (0-based) or a path inside the
    /// torrent. Default: the largest file.
    #[arg(long)]
    pub file: Option<String>,
    /// Piece policy.
    #[arg(long, value_enum, default_value_t = PlayPolicy::Deadline)]
    pub policy: PlayPolicy,
    /// The VoD server: file:/path/to/complete/copy or http://host/path (Range requests).
    /// Default: the torrent's first web seed (url-list).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Where to save: the movie file (single-file torrent) or the torrent's directory.
    /// Default: the torrent's name in the current directory.
    #[arg(long)]
    pub saveas: Option<PathBuf>,
    /// Write the JSON report here at the end.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Keep seeding after the movie is complete, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,
    #[command(flatten)]
    pub common: super::PeerOptions,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayPolicy {
    Deadline,
    Rarest,
    Sequential,
}

impl PlayPolicy {
    pub(super) fn kind(self) -> PolicyKind {
        match self {
            PlayPolicy::Deadline => PolicyKind::Deadline,
            PlayPolicy::Rarest => PolicyKind::Rarest,
            PlayPolicy::Sequential => PolicyKind::Sequential,
        }
    }
}

fn parse_play_rate(s: &str) -> Result<u64, String> {
    let rate = btvod::units::parse_byte_size(s, 1024).map_err(|e| e.to_string())?;
    if rate == 0 {
        return Err("the playback rate must be above zero".into());
    }
    Ok(rate)
}

pub(super) fn seconds(what: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v < 0.0 {
        bail!("{what} must be a number of seconds, zero or more (got {v})");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The movie file: `--file` as an index or a path, else the largest of the files a magnet's
/// `so` selects, else the largest file.
pub(super) fn choose_file(loaded: &Loaded, file: Option<&str>) -> anyhow::Result<usize> {
    let meta = &loaded.meta;
    if meta.files.is_empty() {
        bail!("the torrent has no files");
    }
    if file.is_none()
        && let Some(selected) = loaded.selected_files()
        && let Some(&largest) = selected
            .iter()
            .max_by_key(|&&i| (meta.files[i].length, std::cmp::Reverse(i)))
    {
        return Ok(largest);
    }
    meta.movie_file(file).with_context(|| match file {
        Some(f) if f.parse::<usize>().is_ok() => format!(
            "--file {f}: the torrent has {} files (0 to {})",
            meta.files.len(),
            meta.files.len() - 1
        ),
        Some(f) => format!("--file {f}: no such file in the torrent (see `btvod info`)"),
        None => "the torrent has no files".to_string(),
    })
}

pub async fn run(mut args: PlayArgs) -> anyhow::Result<()> {
    let Some(torrent) = args.torrent.clone() else {
        bail!(
            "no torrent given: btvod --rate 60 --delay 6 --prefetch 2 FILE.torrent|MAGNET (see --help)"
        );
    };
    let Some(rate) = args.rate else {
        bail!("--rate is required: the movie's playback rate, e.g. --rate 60 (KiB/s)");
    };
    let params = VodParams::new(
        rate,
        seconds("--delay", args.delay)?,
        seconds("--prefetch", args.prefetch)?,
    )?;
    let dht = args.common.dht().await;
    let loaded = super::source::load(
        &torrent,
        &save_dir(args.saveas.as_deref()),
        &mut args.common,
        dht.as_ref(),
    )
    .await?;
    let file = choose_file(&loaded, args.file.as_deref())?;
    let meta = &loaded.meta;
    let server = vod_server(args.server.as_deref(), meta).await?;
    let content = match &args.saveas {
        Some(path) => Content::SaveAs(path.clone()),
        None => Content::DownloadDir(PathBuf::from(".")),
    };
    let options = SessionOptions {
        vod: Some(VodOptions::scheduled(params, file, server)),
        dht: dht.clone(),
        ..super::transfer::options(&args.common, args.policy.kind())
    };
    let session = session::start(meta, content, options, |_, _| {})
        .await
        .context("cannot start playback")?;
    let ended = watch(&session, args.common.quiet).await;
    let final_stats = session.torrent.stats.borrow().clone();
    let report = VodReport::new(meta, file, args.policy.kind().name(), &params, &final_stats)
        .fetched_in(loaded.metadata_fetch);
    let finished = matches!(ended, Ended::Complete);
    print_summary(&report, finished);
    super::play::write_report(args.report.as_deref(), &report)?;
    if finished && args.seed {
        eprintln!("seeding until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    session.shutdown().await;
    match ended {
        Ended::Complete => Ok(()),
        Ended::Failed(e) => bail!("{e}"),
        Ended::Interrupted => bail!("interrupted before the movie was complete"),
    }
}

/// Stops the session and returns its final stats: the torrent task's last snapshot, taken once
/// it has taken in everything, which is what a report scores.
pub(super) async fn shut_down(session: Session) -> TorrentStats {
    let stats = session.torrent.stats.clone();
    session.shutdown().await;
    stats.borrow().clone()
}

/// Writes `report` as pretty JSON to `--report`'s path, if one was given.
pub(super) fn write_report(
    path: Option<&std::path::Path>,
    report: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// The VoD server of `--server`, else the torrent's first web seed; checked before playback.
pub(super) async fn vod_server(url: Option<&str>, meta: &Metainfo) -> anyhow::Result<VodServer> {
    let Some(url) = url.or_else(|| meta.url_list.first().map(String::as_str)) else {
        bail!(
            "no VoD server: give --server file:/path/to/copy or http://..., or a torrent with a web seed"
        );
    };
    let server = VodServer::parse(url, meta).with_context(|| format!("bad --server {url}"))?;
    server
        .check()
        .await
        .with_context(|| format!("the VoD server {url} is not usable"))?;
    Ok(server)
}

/// How a playback ended.
enum Ended {
    Complete,
    /// Ctrl-C.
    Interrupted,
    /// The disk or the VoD server failed: waiting on could not complete the movie.
    Failed(String),
}

/// Shows the playback's status line until the movie is complete, Ctrl-C, or a failure.
async fn watch(session: &Session, quiet: bool) -> Ended {
    let line = super::status_line(quiet);
    let mut stats = session.torrent.stats.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let ended = loop {
        let s = stats.borrow_and_update().clone();
        if let Some(e) = session.storage.write_failure() {
            // Disk full or failing: every piece from now on would be fetched for nothing.
            break Ended::Failed(format!("{e}; playback stopped"));
        }
        if let Some(v) = &s.vod {
            line.set_message(status_text(&s, v));
            if v.complete_at.is_some() {
                break Ended::Complete;
            }
            if let Some(e) = &v.server_error {
                // The server cannot complete the movie: no point waiting for the deadlines.
                break Ended::Failed(e.clone());
            }
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ended::Interrupted,
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    };
    line.finish_and_clear();
    ended
}

fn status_text(s: &TorrentStats, v: &VodStatus) -> String {
    format!(
        "t={:.1}s  played {} / {}  buffered {} (+{:.1}s)  pieces {}/{} ({} from server)  penalty {}  stall {:.1}s  peers {}  down {}/s  up {}/s",
        v.now.as_secs_f64(),
        human_bytes(v.position),
        human_bytes(v.movie_bytes),
        human_bytes(v.contiguous),
        v.buffer_ahead(),
        v.movie_pieces_ready,
        v.movie_pieces,
        v.ledger.pieces_from_server,
        human_bytes(v.ledger.penalty_bytes),
        v.stall.as_secs_f64(),
        s.peers,
        human_bytes(s.download_rate as u64),
        human_bytes(s.upload_rate as u64),
    )
}

fn print_summary(r: &VodReport, finished: bool) {
    let head = match r.complete_at_s {
        Some(t) if finished => format!("movie complete at t={t:.1}s"),
        _ => "playback interrupted".to_string(),
    };
    eprintln!(
        "{head} ({} policy, {} of {} at {}/s, D={}s P={}s)",
        r.policy,
        r.file,
        human_bytes(r.movie_bytes),
        human_bytes(r.rate_bytes_per_s),
        r.delay_s,
        r.prefetch_s
    );
    eprintln!(
        "  penalty     {} bytes ({:.2}% of the movie), {} pieces from the server",
        r.penalty_bytes,
        100.0 * r.penalty_fraction,
        r.pieces_from_server
    );
    eprintln!(
        "  from peers  {} bytes; uploaded {} bytes; duplicate {} / wasted {} bytes",
        r.peer_bytes, r.uploaded_bytes, r.duplicate_bytes, r.wasted_bytes
    );
    eprintln!(
        "  stall       {:.2} s; peers seen {}",
        r.stall_s, r.peers_seen
    );
    if let Some(t) = r.metadata_fetch_s {
        eprintln!("  metadata    fetched in {t:.1} s before the deadlines started");
    }
}

/// Where a magnet's fetched `.torrent` goes: beside the download.
pub(super) fn save_dir(saveas: Option<&std::path::Path>) -> PathBuf {
    saveas
        .and_then(|p| p.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
}
