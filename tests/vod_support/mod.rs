//! Fixtures for the VoD client tests (`tests/vod*.rs`): a movie and its torrent, the metered
//! origin (`btvod origin`, read through its `/stats`), and an in-process swarm of btvod seeds
//! and partial peers on 127.0.0.1. The client itself is run and checked in [`client`].
#![allow(dead_code)]

mod client;

// Each test binary uses a subset.
#[allow(unused_imports)]
pub use client::{PlayArgs, Played, REPORT_KEYS, Report, assert_consistent, movie_pieces, play};

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use btvod::engine::session::{self, Content, Session, SessionOptions};
use btvod::engine::torrent::TorrentConfig;
use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use btvod::service::origin::OriginStats;
use btvod::service::tracker::{self, TrackerConfig};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::common::content::{deterministic_content, free_port};
use crate::common::process::ProcessGuard;

pub const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");
pub const KIB: u64 = 1024;
/// The block size of the wire protocol: the server is asked for whole blocks.
pub const BLOCK: u64 = 16 * 1024;

/// A movie on disk with its torrent: one file, or a directory of several.
pub struct Movie {
    pub dir: TempDir,
    /// The file (single-file torrent) or top directory (multi-file) holding the content.
    pub content_path: PathBuf,
    pub torrent: PathBuf,
    pub meta: Metainfo,
    /// Each file's bytes, in torrent order.
    pub files: Vec<Vec<u8>>,
    /// Which file is the movie.
    pub movie_file: usize,
}

impl Movie {
    /// A single-file torrent of `len` deterministic bytes named `movie.bin`.
    pub fn single(len: usize, seed: u64, piece_len: u32) -> Movie {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        fs::create_dir_all(&src).expect("create the source dir");
        let content = deterministic_content(len, seed);
        let content_path = src.join("movie.bin");
        fs::write(&content_path, &content).expect("write the movie");
        let (torrent, meta) = torrent_of(dir.path(), &content_path, piece_len, None);
        Movie {
            dir,
            content_path,
            torrent,
            meta,
            files: vec![content],
            movie_file: 0,
        }
    }

    /// A multi-file torrent `pack/` of the given files (name, length); `movie_file` is the one
    /// the tests play.
    pub fn multi(files: &[(&str, usize)], movie_file: usize, seed: u64, piece_len: u32) -> Movie {
        let dir = tempfile::tempdir().expect("temp dir");
        let top = dir.path().join("src").join("pack");
        fs::create_dir_all(&top).expect("create the source dir");
        let mut contents = Vec::new();
        for (i, (name, len)) in files.iter().enumerate() {
            let bytes = deterministic_content(*len, seed + i as u64);
            fs::write(top.join(name), &bytes).expect("write a file of the pack");
            contents.push(bytes);
        }
        let (torrent, meta) = torrent_of(dir.path(), &top, piece_len, None);
        Movie {
            dir,
            content_path: top,
            torrent,
            meta,
            files: contents,
            movie_file,
        }
    }

    /// Remakes the torrent with `url` as its web seed (url-list); the info-hash stays.
    pub fn set_web_seed(&mut self, url: &str) {
        let piece_len = self.meta.geometry.piece_len();
        let (torrent, meta) = torrent_of(self.dir.path(), &self.content_path, piece_len, Some(url));
        assert_eq!(meta.info_hash, self.meta.info_hash);
        self.torrent = torrent;
        self.meta = meta;
    }

    pub fn movie(&self) -> &[u8] {
        &self.files[self.movie_file]
    }
    pub fn len(&self) -> u64 {
        self.movie().len() as u64
    }
    pub fn piece_len(&self) -> u64 {
        u64::from(self.meta.geometry.piece_len())
    }
    pub fn piece_count(&self) -> u32 {
        self.meta.geometry.piece_count()
    }
    /// The whole torrent as one byte stream.
    pub fn stream(&self) -> Vec<u8> {
        self.files.concat()
    }
    /// A fresh directory inside the movie's temp dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).expect("create a scratch dir");
        path
    }
}

/// Makes `dir/movie.torrent` of `content` with btvod's `make_torrent` (no tracker: each test
/// says how peers meet), with `web_seed` as its url-list if given.
fn torrent_of(
    dir: &Path,
    content: &Path,
    piece_len: u32,
    web_seed: Option<&str>,
) -> (PathBuf, Metainfo) {
    let opts = MakeTorrentOptions {
        path: content.to_path_buf(),
        piece_length: Some(piece_len),
        web_seeds: web_seed.into_iter().map(str::to_string).collect(),
        ..MakeTorrentOptions::default()
    };
    let bytes = make_torrent(&opts, &mut |_, _| {}).expect("make the torrent");
    let torrent = dir.join("movie.torrent");
    fs::write(&torrent, &bytes).expect("write the torrent");
    let meta = Metainfo::from_bytes(&bytes).expect("parse the torrent we made");
    (torrent, meta)
}

/// `btvod origin` on a free port, stopped on drop; its meter is read through `/stats`.
pub struct Origin {
    pub port: u16,
    guard: ProcessGuard,
}

impl Origin {
    pub fn start(content: &Path, latency_ms: u64) -> Origin {
        Self::start_on(
            content,
            free_port(),
            &["--latency-ms", &latency_ms.to_string()],
        )
    }

    /// `btvod origin` on `port` with more options (`--rate`, `--latency-ms`).
    pub fn start_on(content: &Path, port: u16, options: &[&str]) -> Origin {
        let mut args: Vec<String> = [
            "origin",
            "--content",
            &content.display().to_string(),
            "--port",
            &port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(options.iter().map(|s| s.to_string()));
        let guard = ProcessGuard::spawn("btvod origin", BTVOD, &args, Path::new("."), |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let origin = Origin { port, guard };
        let deadline = Instant::now() + Duration::from_secs(20);
        while origin.try_stats().is_none() {
            if let Some(status) = origin.guard.exited() {
                panic!("btvod origin exited ({status})\n{}", origin.guard.report());
            }
            assert!(
                Instant::now() < deadline,
                "btvod origin did not answer /stats within 20 s\n{}",
                origin.guard.report()
            );
            thread::sleep(Duration::from_millis(50));
        }
        origin
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn try_stats(&self) -> Option<OriginStats> {
        let body = http_get(self.port, "/stats").ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Stops the origin (SIGTERM: bodies under way get its 2 s grace, then are cut) and returns
    /// the bytes it served, from the line it prints on the way out.
    pub fn stop(self) -> u64 {
        self.guard.stop();
        let log = self.guard.report();
        let line = log
            .lines()
            .find(|l| l.contains("origin: stopped;"))
            .unwrap_or_else(|| panic!("the origin did not print its meter on exit:\n{log}"));
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes_served="))
            .unwrap_or_else(|| panic!("no bytes_served in: {line}"));
        value.parse().expect("bytes_served is a number")
    }

    /// The origin's own meter.
    pub fn stats(&self) -> OriginStats {
        self.try_stats()
            .unwrap_or_else(|| panic!("no /stats from the origin\n{}", self.guard.report()))
    }
}

/// A bounded HTTP/1.0 GET on 127.0.0.1; the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Result<Vec<u8>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    if !out.starts_with(b"HTTP/1.1 200") && !out.starts_with(b"HTTP/1.0 200") {
        return Err(String::from_utf8_lossy(&out[..split]).into_owned());
    }
    Ok(out.split_off(split + 4))
}

/// btvod peers in-process on 127.0.0.1 (seeds and partial peers), with an optional built-in
/// tracker; everything stops when this drops.
pub struct Swarm {
    rt: Runtime,
    sessions: Vec<Session>,
    pub tracker: Option<String>,
    _stop_tracker: Option<oneshot::Sender<()>>,
}

impl Swarm {
    pub fn new(with_tracker: bool) -> Swarm {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the swarm");
        let (tracker, stop) = if with_tracker {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind the tracker");
            let addr = listener.local_addr().expect("tracker address");
            let (stop, stopped) = oneshot::channel::<()>();
            rt.spawn(tracker::serve(listener, TrackerConfig::default(), async {
                let _ = stopped.await;
            }));
            (Some(format!("http://{addr}/announce")), Some(stop))
        } else {
            (None, None)
        };
        Swarm {
            rt,
            sessions: Vec::new(),
            tracker,
            _stop_tracker: stop,
        }
    }

    fn options(&self, upload: u64, download: u64, seed: u64) -> SessionOptions {
        SessionOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            torrent: TorrentConfig {
                upload_limit: upload,
                download_limit: download,
                ..TorrentConfig::default()
            },
            peers: Vec::new(),
            trackers: self.tracker.clone().map(|t| vec![vec![t]]),
            seed,
            ..SessionOptions::default()
        }
    }

    /// A seed of the whole content, uploading at most `upload` bytes/s (0 = unlimited).
    pub fn seed(&mut self, movie: &Movie, upload: u64) -> SocketAddr {
        let opts = self.options(upload, 0, 1000 + self.sessions.len() as u64);
        let s = self
            .rt
            .block_on(session::start(
                &movie.meta,
                Content::Existing(movie.content_path.clone()),
                opts,
                |_, _| {},
            ))
            .expect("start a seed");
        assert!(s.torrent.stats.borrow().complete, "the seed must verify");
        self.push(s)
    }

    /// A partial peer: its copy holds only the pieces `holds` picks (the rest are zeros) and
    /// is rechecked on start; it uploads at most `upload` and downloads at most `download`
    /// bytes/s. Returns its address and how many pieces it verified.
    pub fn partial(
        &mut self,
        movie: &Movie,
        holds: impl Fn(u32) -> bool,
        upload: u64,
        download: u64,
    ) -> (SocketAddr, u32) {
        let n = self.sessions.len();
        let root = movie.scratch(&format!("partial{n}"));
        let stream = movie.stream();
        let piece_len = movie.piece_len() as usize;
        let mut offset = 0u64;
        let single = movie.meta.is_single_file;
        for (i, file) in movie.meta.files.iter().enumerate() {
            let path = if single {
                root.join("movie.bin")
            } else {
                root.join(movie.meta.files[i].path.iter().collect::<PathBuf>())
            };
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create a partial peer's dir");
            }
            let mut f = fs::File::create(&path).expect("create a partial file");
            f.set_len(file.length).expect("size a partial file");
            for piece in 0..movie.piece_count() {
                if !holds(piece) {
                    continue;
                }
                let start = piece as usize * piece_len;
                let end = (start + piece_len).min(stream.len());
                // The part of this piece inside this file.
                let lo = start.max(offset as usize);
                let hi = end.min((offset + file.length) as usize);
                if lo < hi {
                    f.seek(SeekFrom::Start(lo as u64 - offset))
                        .expect("seek in a partial file");
                    f.write_all(&stream[lo..hi])
                        .expect("write a piece into a partial file");
                }
            }
            offset += file.length;
        }
        let content = if single {
            root.join("movie.bin")
        } else {
            root.clone()
        };
        let opts = self.options(upload, download, 2000 + n as u64);
        let s = self
            .rt
            .block_on(session::start(
                &movie.meta,
                Content::SaveAs(content),
                opts,
                |_, _| {},
            ))
            .expect("start a partial peer");
        let have = s.torrent.stats.borrow().pieces_have;
        (self.push(s), have)
    }

    fn push(&mut self, s: Session) -> SocketAddr {
        let addr = s.torrent.listen_addr.expect("a session listens");
        self.sessions.push(s);
        addr
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.sessions
            .iter()
            .filter_map(|s| s.torrent.listen_addr)
            .collect()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for s in self.sessions.drain(..) {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await
            });
        }
    }
}

/// Picks about `share` (0..1) of the pieces, fixed by `seed`.
pub fn some_pieces(seed: u64, share: f64) -> impl Fn(u32) -> bool {
    move |piece| {
        let mut x = (u64::from(piece) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        ((x % 1000) as f64) < share * 1000.0
    }
}
