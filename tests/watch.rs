//! `btvod watch` on the generated movie (`scripts/make_ascii_movie.py`) in a btvod world
//! (tracker, metered origin, rate-limited seeds): in a real terminal (tmux), the movie's own
//! frame counter advances in order at about its 5 frames a second; a terminal too small for
//! the picture gets a message; with a world too slow for the movie and no server the status
//! line says "buffering", and with the world's origin the frames keep coming and the penalty
//! reported is what the origin metered.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use btvod::experiment::scenario::Scenario;
use btvod::experiment::{World, WorldOptions};
use common::cli::make_and_seed;
use common::content::require_program;
use common::session::runtime;
use tokio::runtime::Runtime;

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");
const BOUND: Duration = Duration::from_secs(60);

/// A btvod world serving the generated movie (`minutes` long) from one seed uploading
/// `upload` (0: unlimited), with no viewers of its own; the runtime keeps it going while the
/// test blocks.
struct MovieWorld {
    runtime: Runtime,
    world: Option<World>,
}

impl MovieWorld {
    fn start(dir: &Path, minutes: &str, upload: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make_ascii_movie.py");
        let movie = dir.join("walk.txt");
        let made = Command::new("/usr/bin/python3")
            .args([script, "--minutes", minutes, "-o"])
            .arg(&movie)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let text = format!(
            "name = \"watch\"\nseed = 5\n[content]\npath = \"walk.txt\"\npiece_size = \"16KiB\"\n\
             [[peers]]\nname = \"seed\"\ncount = 1\nhave = 1.0\nupload = \"{upload}\"\n"
        );
        let scenario = Scenario::parse(&text, "test", "watch", dir).expect("a valid scenario");
        let options = WorldOptions {
            run_viewers: false,
            ..WorldOptions::default()
        };
        let runtime = runtime();
        let world = runtime
            .block_on(World::start(scenario, &dir.join("world"), options))
            .expect("start the world");
        MovieWorld {
            runtime,
            world: Some(world),
        }
    }

    fn world(&self) -> &World {
        self.world.as_ref().expect("running")
    }

    /// `btvod watch` on the world's torrent, found through its tracker, run in `dir/out`.
    fn watch_command(&self, dir: &Path, extra: &str) -> String {
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        format!(
            "cd {} && {BTVOD} watch {} --tracker {} --bind 127.0.0.1 --port 0 \
             --no-dht --no-lsd --delay 1 {extra}; sleep 30",
            out.display(),
            self.world().torrent_path().display(),
            self.world().tracker_url(),
        )
    }
}

impl Drop for MovieWorld {
    fn drop(&mut self) {
        if let Some(world) = self.world.take() {
            self.runtime.block_on(world.stop());
        }
    }
}

/// A private tmux server (`tmux -L`) whose one session runs `command` in a `cols`x`rows`
/// terminal, killed on drop.
struct Tmux(String);

impl Tmux {
    fn start(command: &str, cols: u32, rows: u32) -> Self {
        require_program("tmux", "tmux");
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("btvod-watch-{}-{n}", std::process::id());
        let ok = Command::new("tmux")
            .args(["-L", &name, "new-session", "-d", "-x", &cols.to_string()])
            .args(["-y", &rows.to_string(), command])
            .status()
            .unwrap();
        assert!(ok.success());
        Tmux(name)
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `found` holds, or a panic with the last screen after `bound`.
    fn wait_for(&self, bound: Duration, found: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + bound;
        loop {
            let screen = self.screen();
            if found(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "not seen within {bound:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

/// The movie's own counter (` frame 00042 ...` in its last picture line).
fn movie_frame(screen: &str) -> Option<u32> {
    let at = screen.find(" frame ")?;
    screen[at + 7..].split_whitespace().next()?.parse().ok()
}

#[test]
fn the_frame_counter_advances_in_order_at_about_the_frame_rate() {
    let dir = tempfile::tempdir().unwrap();
    let world = MovieWorld::start(dir.path(), "0.5", "0");
    let tmux = Tmux::start(&world.watch_command(dir.path(), ""), 80, 24);
    tmux.wait_for(BOUND, |s| movie_frame(s).is_some());
    let (started, mut seen) = (Instant::now(), Vec::new());
    while started.elapsed() < Duration::from_secs(4) {
        if let Some(n) = movie_frame(&tmux.screen()) {
            seen.push(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {seen:?}"
    );
    let advanced = seen.last().unwrap() - seen[0];
    // 5 frames a second over about 4 s.
    assert!(
        (14..=26).contains(&advanced),
        "advanced {advanced} frames: {seen:?}"
    );
    let screen = tmux.screen();
    assert!(screen.contains("peers 1"), "the status line: {screen}");
}

#[test]
fn a_terminal_too_small_for_the_picture_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let world = MovieWorld::start(dir.path(), "0.2", "0");
    let tmux = Tmux::start(&world.watch_command(dir.path(), ""), 40, 10);
    let screen = tmux.wait_for(BOUND, |s| s.contains("The terminal is 40x10"));
    assert!(movie_frame(&screen).is_none(), "{screen}");
}

#[test]
fn a_slow_swarm_buffers_without_a_server_and_buys_frames_with_one() {
    let dir = tempfile::tempdir().unwrap();
    // One seed at 1 KiB/s for a movie of about 1.5 KiB a second.
    let world = MovieWorld::start(dir.path(), "0.5", "1");
    let tmux = Tmux::start(&world.watch_command(dir.path(), ""), 80, 24);
    tmux.wait_for(BOUND, |s| s.contains("buffering"));
    drop(tmux);

    // In the terminal: frames keep coming past the first piece's, and the penalty shows.
    let with_server = format!("--server {}", world.world().origin_url());
    let tmux = Tmux::start(&world.watch_command(dir.path(), &with_server), 80, 24);
    let screen = tmux.wait_for(BOUND, |s| movie_frame(s).is_some_and(|n| n >= 60));
    assert!(
        screen.contains("penalty ") && !screen.contains("penalty 0 B"),
        "no penalty shown:\n{screen}"
    );
    drop(tmux);

    // Without a terminal, to the end: the report's penalty is what the origin metered.
    let out = dir.path().join("served");
    std::fs::create_dir_all(&out).unwrap();
    let metered_before = world.world().origin_bytes_served();
    let run = Command::new("timeout")
        .args(["60", BTVOD, "watch"])
        .arg(world.world().torrent_path())
        .args([
            "--tracker",
            world.world().tracker_url(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--port", "0", "--no-dht", "--no-lsd", "--delay", "1", "--no-tty",
        ])
        .args([
            "--server",
            world.world().origin_url(),
            "--report",
            "report.json",
        ])
        .current_dir(&out)
        .output()
        .unwrap();
    let metered = world.world().origin_bytes_served() - metered_before;
    let text = String::from_utf8_lossy(&run.stdout);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{run:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let penalty = report["penalty_bytes"].as_u64().unwrap();
    assert!(penalty > 0, "nothing bought: {report}\n{text}");
    assert_eq!(penalty, metered, "penalty vs the origin's meter: {report}");
    assert!(
        log.contains("watched 150 of 150 frames"),
        "not played to the end:\n{text}\n{log}"
    );
}

/// An asciimation movie (a count line of 1/15 s ticks, then the picture): 30 frames of 2
/// ticks play in about 4 s, every one of them.
#[test]
fn an_asciimation_movie_plays_at_its_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!("2\nframe {i:03}\n  .\n   \n"));
    }
    let movie = dir.path().join("asc.txt");
    std::fs::write(&movie, text).unwrap();
    let (_seed, peer, torrent) = make_and_seed(&movie, "16KiB", false, &[]);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    let run = Command::new("timeout")
        .args(["60", BTVOD, "watch"])
        .arg(&torrent)
        .args([
            "--format",
            "asciimation",
            "--frame-lines",
            "3",
            "--peer",
            &peer,
        ])
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-dht", "--no-lsd"])
        .args(["--delay", "0", "--no-tty"])
        .current_dir(&out)
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{run:?}");
    assert!(log.contains("watched 30 of 30 frames"), "{log}");
    // 60 ticks of 1/15 s, plus start-up and the end.
    assert!(
        took >= Duration::from_millis(3900) && took < Duration::from_secs(12),
        "{took:?}"
    );
}
