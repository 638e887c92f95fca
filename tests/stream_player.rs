//! `btvod stream` under a real player: a deterministic H.264/AAC MP4 made by ffmpeg is put in
//! a btvod world on loopback, the `btvod` binary streams it, and mpv (headless, paced like a
//! viewer by `scripts/mpv_drive.py`) plays it. Checked: the first frame, playback to the end
//! (by position: mpv says eof for a cut stream too), a seek to 70% that resumes with the old
//! window's requests cancelled, and, with a swarm slower than the bitrate and a metered
//! origin, no stall and a penalty equal to the origin's meter.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btvod::experiment::scenario::Scenario;
use btvod::experiment::{World, WorldOptions};
use common::content::require_program;
use common::process::{OutputLine, ProcessGuard, SYSTEM_PYTHON, loopback_command};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");
/// The movie: 30 s at about 62 KB/s (430 kbit/s video, 64 kbit/s audio), a keyframe a second.
const MOVIE_SECS: u32 = 30;

/// Blocks received after the seek for pieces it abandoned stay under this: what was already
/// on the wire when the CANCELs went out, at most a second of the world's upload (128 KiB/s
/// in the first test) rounded up to four 64 KiB pieces.
const ABANDONED_BOUND: u64 = 256 * 1024;

/// The deterministic test video (interop-notes.md), made once per test binary.
fn video(dir: &Path) -> PathBuf {
    require_program("ffmpeg", "ffmpeg");
    let out = dir.join("movie.mp4");
    let d = MOVIE_SECS.to_string();
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate=25:duration={d}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={d}"))
        .args([
            "-c:v",
            "libx264",
            "-b:v",
            "430k",
            "-minrate",
            "430k",
            "-maxrate",
            "430k",
            "-bufsize",
            "430k",
            "-x264-params",
            "nal-hrd=cbr:force-cfr=1",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-movflags",
            "+faststart",
        ])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    out
}

/// A world of seeds (and partial peers) serving the video, rate-limited, no viewers.
async fn world(video: &Path, peers: &str, dir: &Path) -> World {
    let text = format!(
        "name = \"stream\"\nseed = 3\n[content]\nname = \"movie.mp4\"\npath = \"{}\"\n\
         piece_size = \"64KiB\"\n{peers}",
        video.display()
    );
    let scenario = Scenario::parse(&text, "test", "stream", dir).expect("a valid scenario");
    World::start(
        scenario,
        &dir.join("world"),
        WorldOptions {
            run_viewers: false,
            ..WorldOptions::default()
        },
    )
    .await
    .expect("start the world")
}

/// `btvod stream` as a process; returns it and the movie's URL once it is serving.
fn stream(world: &World, dir: &Path, extra: &[&str]) -> (ProcessGuard, String) {
    let url = Arc::new(Mutex::new(None::<String>));
    let seen = Arc::clone(&url);
    let torrent = world.torrent_path().display().to_string();
    let mut args = loopback_command(
        &["stream", &torrent, "--tracker", world.tracker_url()],
        &[
            "--http-port",
            "0",
            "--saveas",
            &dir.join("got.mp4").display().to_string(),
            "--report",
            &dir.join("report.json").display().to_string(),
            "-q",
        ],
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let guard = ProcessGuard::spawn("btvod stream", BTVOD, &args, dir, move |line| {
        if let OutputLine::Line(l) = line
            && let Some(at) = l.find(" at http://")
        {
            *seen.lock().unwrap() = Some(l[at + 4..].to_string());
        }
    })
    .expect("start btvod stream");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(u) = url.lock().unwrap().clone() {
            return (guard, u);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "btvod stream printed no URL\n{}",
            guard.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// mpv plays `url` like a viewer; what it saw.
fn play(url: &str, args: &[&str]) -> Value {
    require_program("mpv", "mpv");
    let out = Command::new(SYSTEM_PYTHON)
        .arg(Path::new(ROOT).join("scripts/mpv_drive.py"))
        .arg(url)
        .args(args)
        .args(["--timeout", "90"])
        .output()
        .expect("run the mpv driver");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "mpv driver: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Stops the stream (SIGTERM: it writes its report and exits) and reads the report.
fn finish(stream: ProcessGuard, dir: &Path) -> Value {
    let status = stream.stop();
    let report = std::fs::read(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}); exit {status:?}\n{}", stream.report()));
    serde_json::from_slice(&report).expect("the report is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpv_plays_to_the_end_and_a_seek_to_70_percent_cancels_the_old_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let video = video(dir.path());
    // Two seeds at 64 KiB/s: about twice the bitrate. No VoD server.
    let world = world(
        &video,
        "[[peers]]\nname = \"seed\"\ncount = 2\nhave = 1.0\nupload = \"64KiB\"\n",
        dir.path(),
    )
    .await;
    let (stream, url) = stream(&world, dir.path(), &[]);
    let seen =
        tokio::task::spawn_blocking(move || play(&url, &["--seek-at", "4", "--seek-to", "0.7"]))
            .await
            .expect("the player");
    let report = finish(stream, dir.path());
    world.stop().await;
    let context = format!("mpv saw {seen}\nreport {report:#}");
    assert!(
        seen["first_frame_s"].is_number(),
        "no first frame: {context}"
    );
    assert!(
        seen["seek_resume_s"].is_number(),
        "the seek never resumed: {context}"
    );
    assert_eq!(
        seen["reached_end"], true,
        "playback did not reach the end: {context}"
    );
    assert!(
        report["seeks"].as_u64() >= Some(1),
        "the seek was not seen: {context}"
    );
    assert!(
        report["abandoned_bytes"].as_u64() <= Some(ABANDONED_BOUND),
        "the old window kept arriving: {context}"
    );
    assert_eq!(report["server_bytes"], 0, "there is no server: {context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_slower_than_the_bitrate_does_not_stall_with_an_origin_that_is_paid_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let video = video(dir.path());
    // One seed at 40 KiB/s: two thirds of the bitrate.
    let world = world(
        &video,
        "[[peers]]\nname = \"seed\"\ncount = 1\nhave = 1.0\nupload = \"40KiB\"\n",
        dir.path(),
    )
    .await;
    let origin = world.origin_url().to_string();
    let (stream, url) = stream(&world, dir.path(), &["--server", &origin]);
    let seen = tokio::task::spawn_blocking(move || play(&url, &[]))
        .await
        .expect("the player");
    let report = finish(stream, dir.path());
    let metered = world.origin_bytes_served();
    world.stop().await;
    let context = format!("mpv saw {seen}\nreport {report:#}");
    assert_eq!(
        seen["reached_end"], true,
        "playback did not reach the end: {context}"
    );
    assert_eq!(seen["stall_count"], 0, "mpv waited for data: {context}");
    assert_eq!(report["stall_s"], 0.0, "{context}");
    let paid = report["penalty_bytes"].as_u64().expect("penalty");
    assert!(paid > 0, "a swarm this slow needs the origin: {context}");
    assert_eq!(paid, metered, "penalty vs the origin's meter: {context}");
    assert_eq!(report["server_bytes"].as_u64(), Some(paid));
}
