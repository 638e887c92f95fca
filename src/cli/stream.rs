//! `btvod stream TORRENT` (and `btvod play TORRENT`, the same with `--player mpv`): joins the
//! swarm and serves the torrent's files over HTTP to a player, whose reads and seeks drive the
//! deadlines; the paid source is used only when a deadline would be missed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, bail};
use btvod::engine::playback::VodStatus;
use btvod::engine::report::{StreamReport, VodReport};
use btvod::engine::session::{
    self, Content, Deadlines, PolicyKind, Session, SessionOptions, VodOptions,
};
use btvod::engine::torrent::TorrentStats;
use btvod::engine::vod_server::VodServer;
use btvod::policy::picker::DeadlineConfig;
use btvod::policy::vod::VodParams;
use btvod::proto::metainfo::Metainfo;
use btvod::service::stream::{self, StreamSource, file_url_path};
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};
use tokio::process::{Child, Command};
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// The .torrent file, or a magnet link (quote it: it holds `&`); a magnet's metadata is
    /// fetched first and saved as INFOHASH.torrent beside the download.
    pub torrent: String,
    /// Start this player on the movie's URL; btvod exits when it does. Default: none for
    /// `stream` (serve until Ctrl-C), mpv for `play`.
    #[arg(long, value_enum)]
    pub player: Option<Player>,
    /// Port of the HTTP server the player reads from (0 = any free port).
    #[arg(long, default_value_t = 8888)]
    pub http_port: u16,
    /// Address of the HTTP server: this machine only by default.
    #[arg(long, default_value = "127.0.0.1")]
    pub http_bind: IpAddr,
    /// Playback rate R: `auto` (from the container's duration, else from how fast the player
    /// reads), or KiB/s unless a unit is given (2MiB, 500KB, 4Mbit).
    #[arg(long, default_value = "auto", value_parser = parse_rate_or_auto)]
    pub rate: RateChoice,
    /// Prefetch P in seconds: how long before it is played a byte must be present.
    #[arg(long, default_value_t = 2.0)]
    pub prefetch: f64,
    /// The movie of a multi-file torrent: an index (0-based) or a path inside the torrent.
    /// Default: the largest file. Other files are downloaded when a player reads them.
    #[arg(long)]
    pub file: Option<String>,
    /// Download every file, not only those a player reads.
    #[arg(long)]
    pub all: bool,
    /// The paid VoD server used only when a deadline would be missed: file:/path/to/copy or
    /// http://host/path (Range requests). Default: the torrent's first web seed (url-list);
    /// without either, the player waits for the swarm.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Where to save: the movie file (single-file torrent) or the torrent's directory.
    /// Default: the torrent's name in the current directory.
    #[arg(long)]
    pub saveas: Option<PathBuf>,
    /// Remove the files this run created when it exits.
    #[arg(long)]
    pub delete_on_exit: bool,
    /// Write the JSON report here at the end.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub common: super::PeerOptions,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Player {
    Mpv,
    Vlc,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateChoice {
    Auto,
    Fixed(u64),
}

fn parse_rate_or_auto(s: &str) -> Result<RateChoice, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(RateChoice::Auto);
    }
    match btvod::units::parse_byte_size(s, 1024).map_err(|e| e.to_string())? {
        0 => Err("the playback rate must be above zero".into()),
        r => Ok(RateChoice::Fixed(r)),
    }
}

/// Until the container says, R is taken as the file played over 90 minutes: the first bytes
/// a player asks for are due at once whatever R is, and the header that gives R comes first.
const ASSUMED_PLAY_SECS: u64 = 90 * 60;
const MIN_ASSUMED_RATE: u64 = 16 * 1024;

/// `default_player` is the command's: none for `stream`, mpv for `play`.
pub async fn run(mut args: StreamArgs, default_player: Player) -> anyhow::Result<()> {
    let prefetch = super::play::seconds("--prefetch", args.prefetch)?;
    let save_dir = super::play::save_dir(args.saveas.as_deref());
    let dht = args.common.dht().await;
    let loaded =
        super::source::load(&args.torrent, &save_dir, &mut args.common, dht.as_ref()).await?;
    let file = super::play::choose_file(&loaded, args.file.as_deref())?;
    let (meta, metadata_fetch) = (Arc::new(loaded.meta), loaded.metadata_fetch);
    let player = match args.player.unwrap_or(default_player) {
        Player::None => None,
        p => Some(find_player(p)?),
    };
    let (rate, rate_source) = initial_rate(args.rate, meta.files[file].length);
    let params = VodParams::streaming(rate, prefetch)?;
    let server = open_server(args.server.as_deref(), &meta).await?;
    let content = match &args.saveas {
        Some(path) => Content::SaveAs(path.clone()),
        None => Content::DownloadDir(PathBuf::from(".")),
    };
    let created = if args.delete_on_exit {
        Some(Created::before(&meta, &content)?)
    } else {
        None
    };
    let http = bind_http(&args).await?;
    let options = SessionOptions {
        vod: Some(VodOptions {
            params,
            file,
            server: server.map(Arc::new),
            deadline: DeadlineConfig::default(),
            deadlines: Deadlines::Readers {
                download_all: args.all,
            },
        }),
        dht: dht.clone(),
        lan_search: !args.common.no_lan_search,
        ..super::transfer::options(&args.common, PolicyKind::Deadline)
    };
    let session = session::start(&meta, content, options, |_, _| {})
        .await
        .context("cannot start streaming")?;
    let web = Web::start(http, &meta, file, &session, args.rate, &rate_source)?;
    // On stdout, for scripts: the first line names the movie's URL.
    println!(
        "streaming {} at {}\n  files: {base}/  playlist: {base}/playlist.m3u  status: {base}/status",
        meta.relative_path(file).display(),
        web.movie_url,
        base = web.base,
    );
    let mut child = match player {
        Some(p) => Some(start_player(
            p,
            &web.movie_url,
            &subtitle_urls(&meta, file, &web.base),
        )?),
        None => None,
    };
    let ended = watch_until_done(&session, &mut child, args.common.quiet).await;
    // No new readers; the torrent task takes in what the last ones said and ends, and its
    // final snapshot is the report's.
    let notes = web.stop();
    let final_stats = super::play::shut_down(session).await;
    let vod = VodReport::new(
        &meta,
        file,
        PolicyKind::Deadline.name(),
        &params,
        &final_stats,
    )
    .fetched_in(metadata_fetch);
    let learned = notes
        .borrow()
        .get("rate_source")
        .and_then(|v| v.as_str().map(String::from));
    let report = StreamReport::new(
        vod,
        &final_stats,
        learned.as_deref().unwrap_or(&rate_source),
    );
    print_summary(&report, &ended);
    super::play::write_report(args.report.as_deref(), &report)?;
    if let Some(created) = created {
        created.remove();
    }
    match ended {
        Ended::Failed(e) => bail!("{e}"),
        Ended::PlayerExited(_) | Ended::Interrupted => Ok(()),
    }
}

async fn bind_http(args: &StreamArgs) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((args.http_bind, args.http_port))
        .await
        .with_context(|| {
            format!(
                "cannot serve HTTP on {}:{} (another program there? try --http-port)",
                args.http_bind, args.http_port
            )
        })
}

/// R to start with, and where it came from.
fn initial_rate(choice: RateChoice, movie_len: u64) -> (u64, String) {
    match choice {
        RateChoice::Fixed(r) => (r, "--rate".to_string()),
        RateChoice::Auto => (
            (movie_len / ASSUMED_PLAY_SECS).max(MIN_ASSUMED_RATE),
            "assumed until the container or the reads say".to_string(),
        ),
    }
}

/// The HTTP side of a stream: the server task, and (with `--rate auto`) the task that learns
/// R from the container or the reads.
struct Web {
    base: String,
    movie_url: String,
    notes: watch::Receiver<serde_json::Map<String, serde_json::Value>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Web {
    fn start(
        http: tokio::net::TcpListener,
        meta: &Arc<Metainfo>,
        file: usize,
        session: &Session,
        rate: RateChoice,
        rate_source: &str,
    ) -> anyhow::Result<Self> {
        let http_addr = http.local_addr()?;
        let link = session.torrent.reader_link();
        let mut notes = serde_json::Map::new();
        notes.insert("rate_source".into(), rate_source.into());
        let (notes_tx, notes_rx) = watch::channel(notes);
        let sent = Arc::new(AtomicU64::new(0));
        if rate == RateChoice::Auto {
            tokio::spawn(stream::rate::learn(
                file,
                Arc::clone(&session.storage),
                link.clone(),
                Arc::clone(&sent),
                notes_tx,
            ));
        }
        let source = StreamSource {
            meta: Arc::clone(meta),
            storage: Arc::clone(&session.storage),
            link,
            stats: session.torrent.stats.clone(),
            notes: notes_rx.clone(),
            sent,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(stream::serve(http, source, async {
            let _ = stopped.await;
        }));
        let base = format!("http://{}", shown_addr(http_addr));
        let movie_url = format!("{base}{}", file_url_path(meta, file));
        Ok(Self {
            base,
            movie_url,
            notes: notes_rx,
            stop,
            task,
        })
    }

    /// Takes no new readers; returns the notes (where R came from) for the report.
    fn stop(self) -> watch::Receiver<serde_json::Map<String, serde_json::Value>> {
        let _ = self.stop.send(());
        self.task.abort();
        self.notes
    }
}

/// `--server`, else the torrent's web seed; a web seed that cannot be used is only a warning
/// (the player then waits for the swarm), an explicit `--server` is an error.
async fn open_server(explicit: Option<&str>, meta: &Metainfo) -> anyhow::Result<Option<VodServer>> {
    let (url, from_torrent) = match (explicit, meta.url_list.first()) {
        (Some(url), _) => (url.to_string(), false),
        (None, Some(url)) => (url.clone(), true),
        (None, None) => return Ok(None),
    };
    let checked = async {
        let server = VodServer::parse(&url, meta)?;
        server.check().await?;
        Ok::<_, btvod::engine::vod_server::VodServerError>(server)
    }
    .await;
    match checked {
        Ok(server) => Ok(Some(server)),
        Err(e) if from_torrent => {
            tracing::warn!("not using the torrent's web seed {url}: {e}");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("the VoD server {url} is not usable")),
    }
}

fn shown_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Subtitle files in the movie's directory inside the torrent, as URLs.
fn subtitle_urls(meta: &Metainfo, movie: usize, base: &str) -> Vec<String> {
    let dir = meta.relative_path(movie).parent().map(Path::to_path_buf);
    (0..meta.files.len())
        .filter(|&i| i != movie)
        .filter(|&i| {
            let p = meta.relative_path(i);
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            matches!(ext.as_str(), "srt" | "vtt" | "ass" | "ssa")
                && p.parent().map(Path::to_path_buf) == dir
        })
        .map(|i| format!("{base}{}", file_url_path(meta, i)))
        .collect()
}

/// The player's program, or one line saying it is missing.
fn find_player(player: Player) -> anyhow::Result<PathBuf> {
    let name = match player {
        Player::Mpv => "mpv",
        Player::Vlc => "vlc",
        Player::None => bail!("no player"),
    };
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.with_context(|| {
        format!("--player {name}: `{name}` is not installed (or not on PATH); install it or use --player none")
    })
}

fn start_player(program: PathBuf, url: &str, subtitles: &[String]) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&program);
    let is_vlc = program.file_name().is_some_and(|n| n == "vlc");
    for sub in subtitles {
        if is_vlc {
            cmd.arg(format!("--input-slave={sub}"));
        } else {
            cmd.arg(format!("--sub-file={sub}"));
        }
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        // Ctrl-C and every other way out of btvod end the player too.
        .kill_on_drop(true);
    cmd.spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

enum Ended {
    PlayerExited(Option<i32>),
    Interrupted,
    Failed(String),
}

/// Shows the status line until the player exits, Ctrl-C or SIGTERM arrives, or the session
/// fails (a full disk, a server that serves other content).
async fn watch_until_done(session: &Session, child: &mut Option<Child>, quiet: bool) -> Ended {
    let line = super::status_line(quiet);
    let mut stats = session.torrent.stats.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ended = loop {
        let s = stats.borrow_and_update().clone();
        if let Some(e) = session.storage.write_failure() {
            break Ended::Failed(format!("{e}; streaming stopped"));
        }
        if let Some(v) = &s.vod {
            line.set_message(status_line(&s, v));
            if let Some(e) = &v.server_error {
                break Ended::Failed(e.clone());
            }
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ended::Interrupted,
            _ = async {
                match &mut term {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending().await,
                }
            } => break Ended::Interrupted,
            status = async {
                match child.as_mut() {
                    Some(c) => c.wait().await,
                    None => std::future::pending().await,
                }
            } => break Ended::PlayerExited(status.ok().and_then(|s| s.code())),
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    };
    line.finish_and_clear();
    ended
}

fn status_line(s: &TorrentStats, v: &VodStatus) -> String {
    let at = v.position as f64 / v.rate.max(1) as f64;
    format!(
        "t={:.1}s  playhead {:.1}s ({} / {})  buffer +{:.1}s  peers {} ({} in)  server {}  stall {:.1}s  seeks {}  readers {}  down {}/s  up {}/s",
        v.now.as_secs_f64(),
        at,
        human_bytes(v.position),
        human_bytes(v.movie_bytes),
        v.buffer_ahead(),
        s.peers,
        human_bytes(s.downloaded),
        human_bytes(v.ledger.penalty_bytes),
        v.stall.as_secs_f64(),
        v.seeks,
        v.readers.len(),
        human_bytes(s.download_rate as u64),
        human_bytes(s.upload_rate as u64),
    )
}

fn print_summary(r: &StreamReport, ended: &Ended) {
    let why = match ended {
        Ended::PlayerExited(Some(0)) | Ended::PlayerExited(None) => "the player exited".to_string(),
        Ended::PlayerExited(Some(code)) => format!("the player exited with status {code}"),
        Ended::Interrupted => "stopped".to_string(),
        Ended::Failed(e) => format!("failed: {e}"),
    };
    let v = &r.vod;
    eprintln!(
        "{why}: {} of {}, R {}/s ({})",
        v.file,
        human_bytes(v.movie_bytes),
        human_bytes(v.rate_bytes_per_s),
        r.rate_source
    );
    eprintln!(
        "  server      {} bytes ({:.2}% of the movie), {} pieces",
        r.server_bytes,
        100.0 * v.penalty_fraction,
        v.pieces_from_server
    );
    eprintln!(
        "  from peers  {} bytes; uploaded {} bytes; after seeks {} bytes",
        r.peer_bytes_received, v.uploaded_bytes, r.abandoned_bytes
    );
    let ttfb = r
        .time_to_first_byte_s
        .map_or("-".to_string(), |t| format!("{t:.2} s"));
    eprintln!(
        "  stall       {:.2} s; seeks {}; first byte served after {ttfb}",
        v.stall_s, r.seeks
    );
}

/// The files and directories a run creates, to remove with `--delete-on-exit`.
struct Created {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Created {
    fn before(meta: &Metainfo, content: &Content) -> anyhow::Result<Self> {
        let (layout, _) = session::layout(meta, content)?;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for (rel, _) in &layout.files {
            let path = layout.root.join(rel);
            if !path.exists() {
                files.push(path.clone());
            }
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d.exists() || dirs.contains(&d.to_path_buf()) {
                    break;
                }
                dirs.push(d.to_path_buf());
                dir = d.parent();
            }
        }
        Ok(Self { files, dirs })
    }

    fn remove(self) {
        for f in &self.files {
            if let Err(e) = std::fs::remove_file(f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", f.display());
            }
        }
        // Deepest first; a directory something else was put in stays.
        let mut dirs = self.dirs;
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}
