//! Fixtures for the VoD client tests (`tests/vod*.rs`): a movie and its torrent, the metered
//! origin (`btvod origin`, read through its `/stats`), an in-process swarm of btvod seeds and
//! partial peers on 127.0.0.1, and the VoD client itself (`btvod [OPTIONS] FILE.torrent`) run
//! to its end with a bound, its JSON report read back and checked against the contract
//! (`vod-scoring.md`).
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use btvod::engine::session::{self, Content, Session, SessionOptions};
use btvod::engine::torrent::TorrentConfig;
use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use btvod::service::origin::OriginStats;
use btvod::service::tracker::{self, TrackerConfig};
use serde::Deserialize;
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

/// The report keys the contract promises (`vod-scoring.md`).
pub const REPORT_KEYS: [&str; 20] = [
    "torrent_name",
    "info_hash",
    "file",
    "policy",
    "rate_bytes_per_s",
    "delay_s",
    "prefetch_s",
    "movie_bytes",
    "penalty_bytes",
    "penalty_fraction",
    "pieces_from_server",
    "peer_bytes",
    "uploaded_bytes",
    "duplicate_bytes",
    "wasted_bytes",
    "stall_s",
    "complete_at_s",
    "peers_seen",
    // Not in the contract's table, but reported and checked here.
    "server_requests",
    "hash_failures",
];

#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub torrent_name: String,
    pub info_hash: String,
    pub file: String,
    pub policy: String,
    pub rate_bytes_per_s: u64,
    pub delay_s: f64,
    pub prefetch_s: f64,
    pub movie_bytes: u64,
    pub penalty_bytes: u64,
    pub penalty_fraction: f64,
    pub pieces_from_server: u32,
    pub peer_bytes: u64,
    pub uploaded_bytes: u64,
    pub duplicate_bytes: u64,
    pub wasted_bytes: u64,
    pub stall_s: f64,
    pub complete_at_s: Option<f64>,
    pub peers_seen: usize,
    pub server_requests: u64,
    pub hash_failures: u32,
}

/// One finished run of the VoD client.
pub struct Played {
    pub status: ExitStatus,
    pub report: Report,
    pub json: serde_json::Value,
    /// The movie file as saved.
    pub saved: PathBuf,
    /// How long the process ran.
    pub elapsed: Duration,
    /// The end of its stderr (the human summary).
    pub log: String,
}

/// How to run the VoD client.
pub struct PlayArgs {
    pub rate_kib: u64,
    pub delay: f64,
    pub prefetch: f64,
    pub policy: &'static str,
    pub server: Option<String>,
    pub peers: Vec<SocketAddr>,
    pub tracker: Option<String>,
    pub file: Option<String>,
    pub upload_kib: u64,
    pub extra: Vec<String>,
}

impl PlayArgs {
    pub fn new(rate_kib: u64, delay: f64, prefetch: f64) -> PlayArgs {
        PlayArgs {
            rate_kib,
            delay,
            prefetch,
            policy: "deadline",
            server: None,
            peers: Vec::new(),
            tracker: None,
            file: None,
            upload_kib: 0,
            extra: Vec::new(),
        }
    }
}

/// Runs `btvod [OPTIONS] torrent` to its end (at most `bound`) and reads its report. `tag`
/// names the run's save path and report file.
pub fn play(movie: &Movie, args: &PlayArgs, tag: &str, bound: Duration) -> Played {
    let out = movie.scratch(&format!("play-{tag}"));
    let saveas = if movie.meta.is_single_file {
        out.join("movie.bin")
    } else {
        out.join("pack")
    };
    let report_path = out.join("report.json");
    let mut argv: Vec<String> = vec![
        "--rate".into(),
        args.rate_kib.to_string(),
        "--delay".into(),
        args.delay.to_string(),
        "--prefetch".into(),
        args.prefetch.to_string(),
        "--policy".into(),
        args.policy.into(),
        "--saveas".into(),
        saveas.display().to_string(),
        "--report".into(),
        report_path.display().to_string(),
        "--port".into(),
        "0".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--max-upload-rate".into(),
        args.upload_kib.to_string(),
        "--rng-seed".into(),
        "7".into(),
        "-q".into(),
    ];
    if let Some(server) = &args.server {
        argv.extend(["--server".into(), server.clone()]);
    }
    for peer in &args.peers {
        argv.extend(["--peer".into(), peer.to_string()]);
    }
    if let Some(t) = &args.tracker {
        argv.extend(["--tracker".into(), t.clone()]);
    }
    if let Some(f) = &args.file {
        argv.extend(["--file".into(), f.clone()]);
    }
    argv.extend(args.extra.iter().cloned());
    argv.push(movie.torrent.display().to_string());
    let started = Instant::now();
    let guard = ProcessGuard::spawn("btvod (VoD client)", BTVOD, &argv, &out, |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let status = guard
        .wait_exit(bound)
        .unwrap_or_else(|e| panic!("the VoD client did not finish: {e}"));
    let elapsed = started.elapsed();
    let log = guard.report();
    assert!(status.success(), "the VoD client failed ({status}):\n{log}");
    let text = fs::read_to_string(&report_path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}\n{log}", report_path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"));
    let report: Report = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("report lacks a key or has a wrong type: {e}\n{text}"));
    let saved = if movie.meta.is_single_file {
        saveas
    } else {
        saveas.join(
            movie.meta.files[movie.movie_file]
                .path
                .iter()
                .collect::<PathBuf>(),
        )
    };
    Played {
        status,
        report,
        json,
        saved,
        elapsed,
        log,
    }
}

/// What every finished run must satisfy, whatever the swarm did: the report's keys and
/// meanings, the penalty equal to the origin's meter, the movie byte-identical.
/// `single_file`: movie bytes and torrent bytes coincide, so peer + penalty = movie.
pub fn assert_consistent(p: &Played, movie: &Movie, args: &PlayArgs, origin: &OriginStats) {
    let r = &p.report;
    let ctx = format!("report {:#}\n{}", p.json, p.log);
    for key in REPORT_KEYS {
        assert!(p.json.get(key).is_some(), "report lacks `{key}`: {ctx}");
    }
    assert_eq!(r.movie_bytes, movie.len(), "movie_bytes is L: {ctx}");
    assert_eq!(r.policy, args.policy, "{ctx}");
    assert_eq!(
        r.rate_bytes_per_s,
        args.rate_kib * KIB,
        "R in bytes/s: {ctx}"
    );
    assert!((r.delay_s - args.delay).abs() < 1e-9, "{ctx}");
    assert!((r.prefetch_s - args.prefetch).abs() < 1e-9, "{ctx}");
    assert_eq!(r.info_hash, movie.meta.info_hash.to_hex(), "{ctx}");
    assert_eq!(r.torrent_name, movie.meta.name, "{ctx}");
    let file = movie.meta.relative_path(movie.movie_file);
    assert_eq!(Path::new(&r.file), file, "{ctx}");
    assert_eq!(r.hash_failures, 0, "no peer here sends bad data: {ctx}");
    // The score, metered on both sides.
    assert_eq!(
        r.penalty_bytes, origin.bytes_served,
        "penalty_bytes must equal the origin's bytes_served: {ctx}\norigin {origin:?}"
    );
    let fraction = r.penalty_bytes as f64 / r.movie_bytes as f64;
    assert!((r.penalty_fraction - fraction).abs() < 1e-9, "{ctx}");
    // Pieces the server touched: at least one block each, at most one piece each.
    let pfs = u64::from(r.pieces_from_server);
    assert_eq!(pfs == 0, r.penalty_bytes == 0, "{ctx}");
    assert!(
        r.penalty_bytes <= pfs * movie.piece_len(),
        "more penalty than whole pieces: {ctx}"
    );
    if pfs > 0 {
        assert!(
            r.penalty_bytes > (pfs - 1) * BLOCK,
            "fewer bytes than one block per piece: {ctx}"
        );
        assert!(
            origin.partial_responses >= pfs,
            "fewer range answers than pieces: {ctx}\norigin {origin:?}"
        );
    }
    let movie_pieces = movie_pieces(movie);
    assert!(pfs <= movie_pieces, "{ctx}");
    if movie.meta.is_single_file {
        // Every movie byte came once, from peers before its deadline or from the server.
        assert_eq!(
            r.peer_bytes + r.penalty_bytes,
            r.movie_bytes,
            "peer_bytes + penalty_bytes must be L: {ctx}"
        );
        // 16 KiB granularity: only the torrent's last block may be short.
        let last_block = movie.len() % BLOCK;
        let rem = r.penalty_bytes % BLOCK;
        assert!(
            rem == 0 || rem == last_block,
            "penalty not made of whole blocks: {ctx}"
        );
    }
    let complete = r
        .complete_at_s
        .unwrap_or_else(|| panic!("complete_at_s missing: {ctx}"));
    assert!(
        complete > 0.0 && complete <= p.elapsed.as_secs_f64() + 0.5,
        "complete_at_s {complete} outside the run ({:?}): {ctx}",
        p.elapsed
    );
    assert!(r.stall_s >= 0.0 && r.stall_s.is_finite(), "{ctx}");
    let saved = fs::read(&p.saved).unwrap_or_else(|e| panic!("read {}: {e}", p.saved.display()));
    assert_eq!(saved.len(), movie.movie().len(), "saved length: {ctx}");
    let first_diff = saved.iter().zip(movie.movie()).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "saved movie differs from the original: {ctx}"
    );
}

/// Pieces holding at least one movie byte.
pub fn movie_pieces(movie: &Movie) -> u64 {
    let range = movie.meta.geometry.files()[movie.movie_file].range();
    let pl = movie.piece_len();
    (range.end - 1) / pl - range.start / pl + 1
}
