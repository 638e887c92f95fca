//! `scripts/lt_vod.py`, the libtorrent VoD viewer btvod is compared against, scored by the VoD
//! contract against a real libtorrent seed and a real `btvod origin`: no penalty when the swarm
//! keeps up, and with a seed far slower than playback a penalty that equals the origin's own
//! meter to the byte, fetched never before a piece's deadline, with the movie intact, in both
//! its deadline and sequential modes and across a file boundary.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::external::{
    LibtorrentPeer, LtOptions, deterministic_content, free_port, make_torrent_with_libtorrent,
    require_python_libtorrent,
};
use common::movie_dir::assert_same_file;
use common::process::{OutputLine, ProcessGuard, SYSTEM_PYTHON, Watched};
use serde_json::Value;
use tempfile::TempDir;

const LT_VOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_vod.py");
const KIB: u64 = 1024;
const BLOCK: u64 = 16 * KIB;
const PIECE_LEN: u32 = 64 * 1024;
/// lt_vod.py stops itself after this; the test gives it a little longer to exit.
const VOD_MAX_SECONDS: u64 = 60;

/// `btvod origin` serving `content` on a fresh port, stopped on Drop.
struct Origin {
    addr: SocketAddr,
    _process: ProcessGuard,
}

impl Origin {
    fn start(content: &Path) -> Origin {
        let port = free_port();
        let args = [
            "origin".to_string(),
            "--content".into(),
            content.display().to_string(),
            "--port".into(),
            port.to_string(),
        ];
        let process = ProcessGuard::spawn(
            "btvod origin",
            env!("CARGO_BIN_EXE_btvod"),
            &args,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            |_| {},
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if try_get(addr, "/stats").is_ok() {
                break;
            }
            if let Some(status) = process.exited() {
                panic!("btvod origin exited ({status})\n{}", process.report());
            }
            assert!(
                Instant::now() < deadline,
                "btvod origin did not answer /stats within 20 s\n{}",
                process.report()
            );
            thread::sleep(Duration::from_millis(50));
        }
        Origin {
            addr,
            _process: process,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The origin's meter (`GET /stats`, itself not metered).
    fn stats(&self) -> Value {
        let body = try_get(self.addr, "/stats").unwrap_or_else(|err| panic!("GET /stats: {err}"));
        serde_json::from_slice(&body).expect("/stats is JSON")
    }
}

/// A bare HTTP/1.1 GET that reads the whole reply; the body of a 200 answer.
fn try_get(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|err| err.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|err| err.to_string())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|err| err.to_string())?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header block")?;
    let head = String::from_utf8_lossy(&reply[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {}", head.lines().next().unwrap_or("")));
    }
    Ok(reply[split + 4..].to_vec())
}

/// How lt_vod.py is run.
struct VodRun<'a> {
    torrent: &'a Path,
    save_path: &'a Path,
    server: String,
    seed: Option<SocketAddr>,
    mode: &'a str,
    rate: u64,
    delay: f64,
    prefetch: f64,
}

/// What lt_vod.py left behind: its report file and the JSON events it printed.
struct VodOutcome {
    report: Value,
    events: Vec<Value>,
}

/// How lt_vod.py ended: exit code, report (if written), events, and its output for messages.
struct VodExit {
    code: Option<i32>,
    report: Option<Value>,
    events: Vec<Value>,
    output: String,
}

impl VodOutcome {
    fn u64(&self, key: &str) -> u64 {
        self.report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("report key {key} is not a count: {}", self.report))
    }

    fn f64(&self, key: &str) -> f64 {
        self.report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("report key {key} is not a number: {}", self.report))
    }

    fn server_fetches(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "server_fetch")
            .collect()
    }
}

/// Runs lt_vod.py to the end and requires a finished movie (exit 0 and a report).
fn run_vod(run: &VodRun<'_>) -> VodOutcome {
    let exit = run_vod_to_exit(run);
    assert_eq!(
        exit.code,
        Some(0),
        "lt_vod.py did not finish the movie\n{}",
        exit.output
    );
    let report = exit
        .report
        .unwrap_or_else(|| panic!("lt_vod.py wrote no report\n{}", exit.output));
    VodOutcome {
        report,
        events: exit.events,
    }
}

fn run_vod_to_exit(run: &VodRun<'_>) -> VodExit {
    let vod = RunningVod::start(run, &[]);
    let status = vod
        .process
        .wait_exit(Duration::from_secs(VOD_MAX_SECONDS + 20))
        .unwrap_or_else(|err| panic!("{err}"));
    vod.exit(status.code())
}

/// lt_vod.py while it runs.
struct RunningVod {
    process: ProcessGuard,
    events: Arc<Watched<Vec<Value>>>,
    report_path: PathBuf,
}

impl RunningVod {
    fn start(run: &VodRun<'_>, extra: &[&str]) -> RunningVod {
        require_python_libtorrent();
        let report_path = run.save_path.with_extension("report.json");
        let mut args: Vec<String> = vec![
            LT_VOD.into(),
            "--torrent".into(),
            run.torrent.display().to_string(),
            "--save-path".into(),
            run.save_path.display().to_string(),
            "--rate".into(),
            run.rate.to_string(),
            "--delay".into(),
            run.delay.to_string(),
            "--prefetch".into(),
            run.prefetch.to_string(),
            "--mode".into(),
            run.mode.into(),
            "--server".into(),
            run.server.clone(),
            "--report".into(),
            report_path.display().to_string(),
            "--max-seconds".into(),
            VOD_MAX_SECONDS.to_string(),
        ];
        if let Some(seed) = run.seed {
            args.extend(["--connect".into(), seed.to_string()]);
        }
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let events = Arc::new(Watched::new(Vec::new()));
        let sink = Arc::clone(&events);
        let process = ProcessGuard::spawn(
            "lt_vod.py",
            SYSTEM_PYTHON,
            &args,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            move |line| {
                if let OutputLine::Line(text) = line
                    && let Ok(event) = serde_json::from_str::<Value>(text)
                {
                    sink.update(|events| events.push(event));
                }
            },
        )
        .unwrap_or_else(|err| panic!("{err}"));
        RunningVod {
            process,
            events,
            report_path,
        }
    }

    /// Waits for the first event named `name`; panics after `timeout` or if the script exits.
    fn wait_event(&self, name: &str, timeout: Duration) -> Value {
        let found = self.events.wait_for(timeout, |events| {
            events.iter().find(|e| e["event"] == name).cloned()
        });
        found.unwrap_or_else(|| {
            panic!(
                "lt_vod.py printed no {name} event within {timeout:?}\n{}",
                self.process.report()
            )
        })
    }

    fn exit(self, code: Option<i32>) -> VodExit {
        let report = fs::read_to_string(&self.report_path)
            .ok()
            .map(|text| serde_json::from_str(&text).expect("the report is JSON"));
        let events = self.events.lock().clone();
        VodExit {
            code,
            report,
            events,
            output: self.process.report(),
        }
    }
}

/// A seed directory with `files` (name, content) under `top` (or one file when `top` is
/// None), its torrent (made by libtorrent for one file, by btvod for a directory), and an empty
/// directory for the viewer.
struct World {
    _dir: TempDir,
    seed_dir: PathBuf,
    view_dir: PathBuf,
    torrent: PathBuf,
    info_hash: String,
    /// What the origin serves: the single file, or the top directory.
    content_path: PathBuf,
}

impl World {
    fn single(len: usize, seed: u64) -> World {
        World::new(None, &[("movie.bin", deterministic_content(len, seed))])
    }

    fn new(top: Option<&str>, files: &[(&str, Vec<u8>)]) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let seed_dir = dir.path().join("seed");
        let view_dir = dir.path().join("view");
        let content_dir = match top {
            Some(name) => seed_dir.join(name),
            None => seed_dir.clone(),
        };
        fs::create_dir_all(&content_dir).expect("create content dir");
        fs::create_dir_all(&view_dir).expect("create viewer dir");
        for (name, bytes) in files {
            fs::write(content_dir.join(name), bytes).expect("write content");
        }
        let (content_path, (torrent, info_hash)) = match top {
            // libtorrent lists a directory's files in readdir order; btvod's make-torrent in
            // path order, so the tests know which file comes first.
            Some(_) => (content_dir.clone(), make_torrent_with_btvod(&content_dir)),
            None => {
                let path = seed_dir.join(files[0].0);
                let made = make_torrent_with_libtorrent(&path, PIECE_LEN, &[]);
                (path, made)
            }
        };
        World {
            _dir: dir,
            seed_dir,
            view_dir,
            torrent,
            info_hash,
            content_path,
        }
    }

    fn seed(&self, upload_limit: u64) -> LibtorrentPeer {
        let options = LtOptions {
            upload_limit,
            max_seconds: Some(VOD_MAX_SECONDS + 30),
            ..LtOptions::seed()
        };
        LibtorrentPeer::start(&self.torrent, &self.seed_dir, &options)
    }

    /// The viewer's copy of `relative` has exactly the seed's bytes.
    fn assert_same_file(&self, relative: &str) {
        let want = fs::read(self.seed_dir.join(relative)).expect("read the seed's file");
        assert_same_file(&self.view_dir.join(relative), &want);
    }

    /// lt_vod.py in deadline mode on this torrent, viewing into `view_dir`.
    fn vod_run(
        &self,
        server: String,
        seed: Option<SocketAddr>,
        rate: u64,
        delay: f64,
        prefetch: f64,
    ) -> VodRun<'_> {
        VodRun {
            torrent: &self.torrent,
            save_path: &self.view_dir,
            server,
            seed,
            mode: "deadline",
            rate,
            delay,
            prefetch,
        }
    }
}

/// `btvod make-torrent` of `content` (v1, files in path order, 64 KiB pieces) next to it, and
/// its info-hash as libtorrent reads it.
fn make_torrent_with_btvod(content: &Path) -> (PathBuf, String) {
    let torrent = content.with_extension("torrent");
    let made = Command::new(env!("CARGO_BIN_EXE_btvod"))
        .arg("make-torrent")
        .arg(content)
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-length", "64KiB", "--no-date"])
        .output()
        .expect("run btvod make-torrent");
    assert!(
        made.status.success(),
        "btvod make-torrent failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let read = Command::new(SYSTEM_PYTHON)
        .args([
            "-c",
            "import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hashes().v1)",
        ])
        .arg(&torrent)
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        read.status.success(),
        "libtorrent cannot read btvod's torrent: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let info_hash = String::from_utf8_lossy(&read.stdout).trim().to_string();
    (torrent, info_hash)
}

/// The contract's deadline of `piece` for a movie starting at torrent byte `movie_start`.
fn deadline(piece: u64, movie_start: u64, run: &VodRun<'_>) -> f64 {
    let start = (piece * u64::from(PIECE_LEN)).saturating_sub(movie_start);
    run.delay - run.prefetch + start as f64 / run.rate as f64
}

/// The report keys btvod writes, each present with the right kind of value, and a peer seen.
fn assert_report_shape(outcome: &VodOutcome, run: &VodRun<'_>, info_hash: &str, movie: u64) {
    assert_report_shape_without_peers(outcome, run, info_hash, movie);
    assert!(
        outcome.u64("peers_seen") >= 1,
        "the seed was connected: {}",
        outcome.report
    );
}

fn assert_report_shape_without_peers(
    outcome: &VodOutcome,
    run: &VodRun<'_>,
    info_hash: &str,
    movie: u64,
) {
    let r = &outcome.report;
    assert_eq!(r["info_hash"], info_hash, "{r}");
    assert_eq!(r["policy"], format!("libtorrent-{}", run.mode), "{r}");
    assert_eq!(outcome.f64("rate_bytes_per_s"), run.rate as f64);
    assert_eq!(outcome.f64("delay_s"), run.delay);
    assert_eq!(outcome.f64("prefetch_s"), run.prefetch);
    assert_eq!(outcome.u64("movie_bytes"), movie);
    for key in [
        "penalty_bytes",
        "pieces_from_server",
        "peer_bytes",
        "uploaded_bytes",
        "duplicate_bytes",
        "wasted_bytes",
        "peers_seen",
    ] {
        outcome.u64(key);
    }
    for key in ["penalty_fraction", "stall_s", "complete_at_s"] {
        outcome.f64(key);
    }
    assert!(
        r["torrent_name"].is_string() && r["file"].is_string(),
        "{r}"
    );
    assert_eq!(r["complete"], true, "{r}");
    let fraction = outcome.u64("penalty_bytes") as f64 / movie as f64;
    assert!(
        (outcome.f64("penalty_fraction") - fraction).abs() < 1e-9,
        "{r}"
    );
}

/// A slow seed and a fast movie: the server must be paid, exactly what its meter says, never
/// before a deadline, and the movie must come out intact.
fn slow_seed_pays_the_server(mode: &str) {
    const MOVIE: u64 = 2 * 1024 * KIB;
    const SEED_RATE: u64 = 64 * KIB;
    let world = World::single(MOVIE as usize, 11);
    let seed = world.seed(SEED_RATE);
    let origin = Origin::start(&world.content_path);
    let run = VodRun {
        mode,
        ..world.vod_run(origin.url(), Some(seed.addr()), 256 * KIB, 1.0, 0.5)
    };
    let outcome = run_vod(&run);
    assert_report_shape(&outcome, &run, &world.info_hash, MOVIE);
    let r = &outcome.report;
    let penalty = outcome.u64("penalty_bytes");
    let served = origin.stats()["bytes_served"]
        .as_u64()
        .expect("bytes_served");
    assert_eq!(
        penalty, served,
        "the viewer's penalty and the origin's meter differ: {r}"
    );

    // The whole movie plays within 8.25 s; the seed can send ~530 KiB of it in that time, so
    // at least ~75% must come from the server (50% leaves room for start-up timing).
    assert!(
        penalty >= MOVIE / 2,
        "a 64 KiB/s seed cannot carry a 256 KiB/s movie, yet the penalty is {penalty}: {r}"
    );
    assert_eq!(penalty % BLOCK, 0, "fetches are whole 16 KiB blocks: {r}");
    assert_eq!(outcome.u64("hash_failures_after_server"), 0, "{r}");
    // No piece failed after the server patched it, so each movie byte came from exactly one side.
    assert_eq!(
        outcome.u64("peer_bytes") + penalty,
        MOVIE,
        "peer bytes and server bytes must add up to the movie: {r}"
    );

    let fetches = outcome.server_fetches();
    let fetched: u64 = fetches.iter().map(|f| f["bytes"].as_u64().unwrap()).sum();
    assert_eq!(
        fetched, penalty,
        "server_fetch events add up to the penalty"
    );
    assert_eq!(outcome.u64("pieces_from_server"), fetches.len() as u64);
    for fetch in &fetches {
        let piece = fetch["piece"].as_u64().unwrap();
        let at = fetch["t"].as_f64().unwrap();
        let due = deadline(piece, 0, &run);
        assert!(
            at >= due - 0.002,
            "piece {piece} was fetched at t={at} before its deadline {due}"
        );
    }
    let last_deadline = deadline(MOVIE / u64::from(PIECE_LEN) - 1, 0, &run);
    let complete_at = outcome.f64("complete_at_s");
    assert!(
        complete_at <= last_deadline + 5.0,
        "every piece is due by {last_deadline} s, yet completion came at {complete_at} s: {r}"
    );
    world.assert_same_file("movie.bin");
}

#[test]
fn a_fast_seed_leaves_no_penalty() {
    const MOVIE: u64 = 2 * 1024 * KIB;
    let world = World::single(MOVIE as usize, 10);
    let seed = world.seed(0);
    let origin = Origin::start(&world.content_path);
    // The first piece is due 4 s in: ample for a loopback seed with no limit.
    let run = world.vod_run(origin.url(), Some(seed.addr()), 256 * KIB, 5.0, 1.0);
    let outcome = run_vod(&run);
    assert_report_shape(&outcome, &run, &world.info_hash, MOVIE);
    let r = &outcome.report;
    assert_eq!(outcome.u64("penalty_bytes"), 0, "{r}");
    assert_eq!(outcome.u64("pieces_from_server"), 0, "{r}");
    assert_eq!(outcome.u64("peer_bytes"), MOVIE, "{r}");
    assert_eq!(outcome.f64("stall_s"), 0.0, "{r}");
    assert!(outcome.server_fetches().is_empty(), "{:?}", outcome.events);
    assert!(
        outcome.f64("complete_at_s") < deadline(0, 0, &run),
        "the whole movie should be in before the first deadline: {r}"
    );
    assert_eq!(origin.stats()["bytes_served"], 0);
    world.assert_same_file("movie.bin");
}

#[test]
fn deadline_mode_behind_a_slow_seed_pays_exactly_what_the_origin_served() {
    slow_seed_pays_the_server("deadline");
}

#[test]
fn sequential_mode_behind_a_slow_seed_pays_exactly_what_the_origin_served() {
    slow_seed_pays_the_server("sequential");
}

#[test]
fn a_movie_inside_a_multi_file_torrent_is_patched_across_the_file_boundary() {
    // intro.bin ends 100,000 bytes in, inside piece 1: the movie's first piece also holds the
    // intro's tail, which must come from the origin as /show/intro.bin.
    const INTRO: u64 = 100_000;
    const MOVIE: u64 = 1024 * KIB;
    let world = World::new(
        Some("show"),
        &[
            ("intro.bin", deterministic_content(INTRO as usize, 20)),
            ("movie.bin", deterministic_content(MOVIE as usize, 21)),
        ],
    );
    let seed = world.seed(32 * KIB);
    let origin = Origin::start(&world.content_path);
    let run = world.vod_run(origin.url(), Some(seed.addr()), 256 * KIB, 0.5, 0.5);
    let outcome = run_vod(&run);
    assert_report_shape(&outcome, &run, &world.info_hash, MOVIE);
    let r = &outcome.report;
    assert_eq!(
        r["file"], "show/movie.bin",
        "the largest file is the movie: {r}"
    );
    let stats = origin.stats();
    let penalty = outcome.u64("penalty_bytes");
    assert_eq!(
        penalty,
        stats["bytes_served"].as_u64().unwrap(),
        "{r}\n{stats}"
    );
    // The first movie piece is due at t = 0, before any peer can deliver: the server sends all
    // of it, intro tail included, from both files.
    let first = outcome
        .server_fetches()
        .into_iter()
        .find(|f| f["piece"] == INTRO / u64::from(PIECE_LEN))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the first movie piece was not fetched: {:?}",
                outcome.events
            )
        });
    assert!(first["bytes"].as_u64().unwrap() > 0, "{first}");
    let intro_served = stats["files"]["intro.bin"]["bytes_served"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        intro_served > 0 && intro_served <= INTRO - u64::from(PIECE_LEN),
        "only the intro's tail in the shared piece is fetched: {stats}"
    );
    world.assert_same_file("show/movie.bin");
}

#[test]
fn with_no_peers_a_file_server_supplies_the_whole_movie_exactly_once() {
    const MOVIE: u64 = 1024 * KIB;
    let world = World::single(MOVIE as usize, 30);
    let run = world.vod_run(
        format!("file:{}", world.content_path.display()),
        None,
        2048 * KIB,
        0.2,
        0.2,
    );
    let outcome = run_vod(&run);
    assert_report_shape_without_peers(&outcome, &run, &world.info_hash, MOVIE);
    let r = &outcome.report;
    assert_eq!(outcome.u64("penalty_bytes"), MOVIE, "every byte, once: {r}");
    assert_eq!(
        outcome.u64("pieces_from_server"),
        MOVIE / u64::from(PIECE_LEN),
        "{r}"
    );
    assert_eq!(outcome.u64("peer_bytes"), 0, "{r}");
    assert_eq!(outcome.u64("hash_failures"), 0, "{r}");
    world.assert_same_file("movie.bin");
}

#[test]
fn a_server_holding_other_content_is_an_error_not_an_endless_refetch() {
    const MOVIE: u64 = 512 * KIB;
    const BAD_PIECE: u64 = 3;
    let world = World::single(MOVIE as usize, 31);
    let mut wrong = fs::read(&world.content_path).expect("read the content");
    wrong[(BAD_PIECE * u64::from(PIECE_LEN) + 100) as usize] ^= 0xff;
    let wrong_path = world.view_dir.with_extension("wrong.bin");
    fs::write(&wrong_path, &wrong).expect("write the wrong copy");
    let run = world.vod_run(
        format!("file:{}", wrong_path.display()),
        None,
        2048 * KIB,
        0.0,
        0.0,
    );
    let exit = run_vod_to_exit(&run);
    assert_eq!(exit.code, Some(1), "{}", exit.output);
    assert!(
        exit.output.contains(&format!(
            "piece {BAD_PIECE} as the server sent it whole fails"
        )),
        "the error names the piece and the server\n{}",
        exit.output
    );
}

#[test]
fn with_seed_after_the_viewer_keeps_seeding_until_stopped_and_reports_its_uploads() {
    const MOVIE: u64 = 1024 * KIB;
    let world = World::single(MOVIE as usize, 40);
    let seed = world.seed(0);
    let run = world.vod_run(
        format!("file:{}", world.content_path.display()),
        Some(seed.addr()),
        256 * KIB,
        5.0,
        1.0,
    );
    let vod = RunningVod::start(&run, &["--seed-after"]);
    let port = vod.wait_event("listening", Duration::from_secs(20))["port"]
        .as_u64()
        .expect("listening port");
    vod.wait_event("complete", Duration::from_secs(30));
    // The original seed leaves: whatever a newcomer gets now comes from the viewer.
    assert_eq!(seed.stop(), Some(0), "{}", seed.report());
    let newcomer_dir = world.view_dir.with_extension("newcomer");
    fs::create_dir_all(&newcomer_dir).expect("create the newcomer's dir");
    let viewer_addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
    let newcomer = LibtorrentPeer::start(
        &world.torrent,
        &newcomer_dir,
        &LtOptions {
            max_seconds: Some(30),
            ..LtOptions::download_from(viewer_addr)
        },
    );
    newcomer
        .wait_complete(Duration::from_secs(30))
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        vod.process.exited().is_none(),
        "--seed-after keeps the viewer running\n{}",
        vod.process.report()
    );
    let code = vod.process.stop().and_then(|status| status.code());
    let exit = vod.exit(code);
    assert_eq!(
        exit.code,
        Some(0),
        "SIGTERM ends it cleanly\n{}",
        exit.output
    );
    let report = exit.report.expect("the report");
    assert_eq!(report["penalty_bytes"], 0, "{report}");
    let uploaded = report["uploaded_bytes"].as_u64().expect("uploaded_bytes");
    assert!(
        uploaded >= MOVIE,
        "the final report counts the upload to the newcomer ({uploaded} bytes): {report}"
    );
    let got = fs::read(newcomer_dir.join("movie.bin")).expect("the newcomer's copy");
    assert!(
        got == fs::read(&world.content_path).unwrap(),
        "the newcomer's copy differs"
    );
}
