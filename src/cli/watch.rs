//! `btvod watch`: a text movie played in the terminal as it arrives. The frame being shown is
//! a reader's playhead (as a player's read position is for `stream`): each frame's bytes fall
//! due when it is to be shown, late ones come from the VoD server when one is given, and
//! otherwise the picture waits and the status line says "buffering".

mod screen;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use btvod::engine::report::VodReport;
use btvod::engine::session::{
    self, Content, Deadlines, PolicyKind, Session, SessionOptions, VodOptions,
};
use btvod::engine::torrent::{PlayerEvent, TorrentStats};
use btvod::policy::picker::DeadlineConfig;
use btvod::policy::vod::{ReaderId, VodParams};
use btvod::proto::ascii_movie::{Frame, MovieFormat, frames};
use btvod::units::human_bytes;
use clap::{Args, ValueEnum};
use tokio::time::Instant;

use self::screen::Screen;
use super::PeerOptions;

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The .torrent file or magnet link of a text movie.
    pub torrent: String,
    /// How the movie is laid out: Nutella's frames separated by a delimiter line, or
    /// asciimation (a count line of 1/15 s ticks, then --frame-lines lines of picture).
    #[arg(long, value_enum, default_value = "nutella")]
    pub format: Format,
    /// The line that ends a frame (Nutella's format).
    #[arg(long, default_value = "end")]
    pub delimiter: String,
    /// Frames per second (Nutella's format), 1 to 10.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub fps: u32,
    /// Lines of picture per frame (asciimation).
    #[arg(long, default_value_t = 13)]
    pub frame_lines: usize,
    /// Seconds from the start before the first frame is shown (or later, when it arrives).
    #[arg(long, default_value_t = 2.0)]
    pub delay: f64,
    /// The VoD server late frames are bought from: file:/path or http://host/path. Without
    /// one, a late frame makes the picture wait.
    #[arg(long)]
    pub server: Option<String>,
    /// The movie of a multi-file torrent (index or path); default: the largest file.
    #[arg(long)]
    pub file: Option<String>,
    /// Save the movie here (default: its name in the current directory).
    #[arg(long)]
    pub saveas: Option<PathBuf>,
    /// Write the end-of-run report (JSON, as `btvod --report`) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No terminal: print one status line a second instead of the picture.
    #[arg(long)]
    pub no_tty: bool,
    #[command(flatten)]
    pub common: PeerOptions,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Format {
    Nutella,
    Asciimation,
}

/// Frames ahead of the playhead the deadlines are kept for (the prefetch, in seconds).
const PREFETCH: Duration = Duration::from_secs(1);
const READER: ReaderId = ReaderId(1);
/// While buffering, the picture stays and only the status line's time moves.
const REDRAW_WHILE_WAITING: Duration = Duration::from_millis(250);

pub async fn run(mut args: WatchArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Format::Nutella => MovieFormat::Nutella {
            delimiter: args.delimiter.clone(),
        },
        Format::Asciimation => MovieFormat::Asciimation {
            frame_lines: args.frame_lines,
        },
    };
    let delay = super::play::seconds("--delay", args.delay)?;
    // One time unit: a Nutella frame, or an asciimation tick.
    let unit = match args.format {
        Format::Nutella => Duration::from_secs(1) / args.fps,
        Format::Asciimation => Duration::from_secs(1) / 15,
    };
    let dht = args.common.dht().await;
    let save_dir = super::play::save_dir(args.saveas.as_deref());
    let loaded =
        super::source::load(&args.torrent, &save_dir, &mut args.common, dht.as_ref()).await?;
    let file = super::play::choose_file(&loaded, args.file.as_deref())?;
    let meta = loaded.meta;
    let server = match &args.server {
        Some(url) => Some(std::sync::Arc::new(
            super::play::vod_server(Some(url), &meta).await?,
        )),
        None => None,
    };
    let len = meta.files[file].length;
    // A first guess of R (a kilobyte a frame); the frames read give the real one.
    let params = VodParams::streaming((1024.0 / unit.as_secs_f64()) as u64, PREFETCH)?;
    let content = match &args.saveas {
        Some(path) => Content::SaveAs(path.clone()),
        None => Content::DownloadDir(PathBuf::from(".")),
    };
    let options = SessionOptions {
        vod: Some(VodOptions {
            params,
            file,
            server,
            deadline: DeadlineConfig::default(),
            deadlines: Deadlines::Readers { download_all: true },
        }),
        dht: dht.clone(),
        ..super::transfer::options(&args.common, PolicyKind::Deadline)
    };
    let session = session::start(&meta, content, options, |_, _| {})
        .await
        .context("cannot start the movie")?;
    let extent = meta.geometry.files()[file].range();
    let mut movie = Movie::new(&session, extent.start, len, format, unit);
    movie
        .tell(PlayerEvent::Open {
            id: READER,
            file,
            span: 0..len,
        })
        .await;
    let ended = play(&mut movie, &session, delay, args.no_tty).await;
    let final_stats = super::play::shut_down(session).await;
    let report = VodReport::new(
        &meta,
        file,
        PolicyKind::Deadline.name(),
        &params,
        &final_stats,
    )
    .fetched_in(loaded.metadata_fetch);
    eprintln!("{}", summary(&movie, &final_stats));
    super::play::write_report(args.report.as_deref(), &report)?;
    ended
}

/// What has arrived of the movie, and where the playhead is.
struct Movie {
    events: tokio::sync::mpsc::Sender<PlayerEvent>,
    have: tokio::sync::watch::Receiver<btvod::proto::bitfield::Bitfield>,
    storage: std::sync::Arc<btvod::engine::storage::Storage>,
    /// Where the file starts in the torrent, and its length.
    start: u64,
    len: u64,
    format: MovieFormat,
    unit: Duration,
    /// The file's verified first bytes, the frames they hold, and those frames' time units.
    bytes: Vec<u8>,
    frames: Vec<Frame>,
    units: u64,
    /// The next frame to show; frames shown; whether we are waiting for one.
    next: usize,
    buffering: bool,
    rate: u64,
}

impl Movie {
    fn new(session: &Session, start: u64, len: u64, format: MovieFormat, unit: Duration) -> Self {
        let link = session.torrent.reader_link();
        Self {
            events: link.events,
            have: link.have,
            storage: std::sync::Arc::clone(&session.storage),
            start,
            len,
            format,
            unit,
            bytes: Vec::new(),
            frames: Vec::new(),
            units: 0,
            next: 0,
            buffering: false,
            rate: 0,
        }
    }

    async fn tell(&self, event: PlayerEvent) {
        let _ = self.events.send(event).await;
    }

    fn complete(&self) -> bool {
        self.bytes.len() as u64 == self.len
    }

    /// Reads the pieces verified since the last call, a piece at a time (storage reads spans
    /// within one piece), and finds the frames in what they add.
    fn refresh(&mut self) -> anyhow::Result<()> {
        let geometry = self.storage.geometry();
        let grown = self.bytes.len();
        while (self.bytes.len() as u64) < self.len {
            let at = self.start + self.bytes.len() as u64;
            let Some(piece) = geometry.piece_at(at).filter(|&p| self.have.borrow().has(p)) else {
                break;
            };
            let to = geometry.piece_range(piece).end.min(self.start + self.len);
            let from = self.bytes.len();
            self.bytes.resize(from + (to - at) as usize, 0);
            self.storage
                .read_span(at..to, &mut self.bytes[from..])
                .context("cannot read the movie's verified bytes")?;
        }
        if self.bytes.len() > grown {
            // Frames end where the last one did: only the bytes after it are read again.
            let base = self.frames.last().map_or(0, |f| f.end);
            let more = frames(&self.bytes[base as usize..], &self.format, self.complete())?;
            for f in more {
                self.units += u64::from(f.units);
                self.frames.push(Frame {
                    start: f.start + base,
                    end: f.end + base,
                    ..f
                });
            }
        }
        Ok(())
    }

    /// Bytes a second the frames seen so far take to play.
    fn learnt_rate(&self) -> Option<u64> {
        let bytes = self.frames.last()?.end;
        let seconds = self.units as f64 * self.unit.as_secs_f64();
        (seconds > 0.0).then(|| (bytes as f64 / seconds).max(1.0) as u64)
    }
}

/// Shows frames at their times until the movie ends or a key or Ctrl-C stops it.
async fn play(
    movie: &mut Movie,
    session: &Session,
    delay: Duration,
    no_tty: bool,
) -> anyhow::Result<()> {
    let (screen, mut keys) = if no_tty || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        (None, tokio::sync::mpsc::channel(1).1)
    } else {
        let (s, k) = Screen::open().context("cannot use the terminal (try --no-tty)")?;
        (Some(s), k)
    };
    let started = Instant::now();
    let mut show_at = started + delay;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut last_line, mut last_draw) = (started, started);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            Some(key) = keys.recv() => if key == b'q' || key == 3 { return Ok(()) },
            _ = tick.tick() => {}
        }
        movie.refresh()?;
        if let Some(rate) = movie.learnt_rate()
            && rate.abs_diff(movie.rate) * 10 > movie.rate
        {
            movie.rate = rate;
            movie.tell(PlayerEvent::Rate { bytes_per_s: rate }).await;
        }
        let now = Instant::now();
        if movie.next >= movie.frames.len() {
            if movie.complete() {
                return Ok(());
            }
            if now >= show_at && !movie.buffering {
                movie.buffering = true;
                movie
                    .tell(PlayerEvent::Waiting {
                        id: READER,
                        waiting: true,
                    })
                    .await;
            }
        } else if now >= show_at {
            if movie.buffering {
                movie.buffering = false;
                movie
                    .tell(PlayerEvent::Waiting {
                        id: READER,
                        waiting: false,
                    })
                    .await;
                show_at = now;
            }
            let frame = &movie.frames[movie.next];
            show_at += movie.unit * frame.units;
            movie.next += 1;
            movie
                .tell(PlayerEvent::Read {
                    id: READER,
                    byte: frame.end,
                })
                .await;
            if let Some(s) = &screen {
                s.draw(&frame.text, &status(movie, session, started));
                last_draw = now;
            }
        }
        if screen.is_none() && now.duration_since(last_line) >= Duration::from_secs(1) {
            last_line = now;
            println!("{}", status(movie, session, started));
        } else if let (Some(s), true) = (&screen, movie.buffering)
            && now.duration_since(last_draw) >= REDRAW_WHILE_WAITING
        {
            last_draw = now;
            let shown = movie
                .next
                .checked_sub(1)
                .map_or("", |i| movie.frames[i].text.as_str());
            s.draw(shown, &status(movie, session, started));
        }
    }
}

/// The bottom line: frame, time, buffer ahead, peers, penalty.
fn status(movie: &Movie, session: &Session, started: Instant) -> String {
    let s = session.torrent.stats.borrow();
    let penalty = penalty(&s);
    let total = if movie.complete() {
        movie.frames.len().to_string()
    } else {
        format!("{}+", movie.frames.len())
    };
    format!(
        "frame {}/{total}  t={:.1}s  ahead {} frames  peers {}  penalty {}{}",
        movie.next,
        started.elapsed().as_secs_f64(),
        movie.frames.len().saturating_sub(movie.next),
        s.peers,
        human_bytes(penalty),
        if movie.buffering { "  buffering" } else { "" }
    )
}

fn summary(movie: &Movie, s: &TorrentStats) -> String {
    format!(
        "watched {} of {} frames; penalty {} bytes; from peers {} bytes",
        movie.next,
        movie.frames.len(),
        penalty(s),
        s.downloaded
    )
}

fn penalty(s: &TorrentStats) -> u64 {
    s.vod.as_ref().map_or(0, |v| v.ledger.penalty_bytes)
}
