//! The VoD client under test: `btvod [OPTIONS] FILE.torrent` run to its end with a bound, its
//! JSON report read back, and what every run must satisfy by the contract (`vod-scoring.md`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use btvod::service::origin::OriginStats;
use serde::Deserialize;

use super::{BLOCK, BTVOD, KIB, Movie};
use crate::common::process::ProcessGuard;

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
    /// What to play instead of the movie's torrent file (a magnet link).
    pub source: Option<String>,
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
            source: None,
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
        "--no-lsd".into(),
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
    argv.push(
        args.source
            .clone()
            .unwrap_or_else(|| movie.torrent.display().to_string()),
    );
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
