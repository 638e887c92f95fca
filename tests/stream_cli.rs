//! `btvod stream` and `btvod play` as a user runs them: the player is started on the movie's URL
//! with the subtitles beside it and btvod exits when it does; a missing player is one line and
//! exit 1; `--delete-on-exit` removes what the run wrote and nothing else.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::content::deterministic_content;
use common::loopback::{LoopbackSeed, start_seed, start_seed_of};
use common::process::{OutputLine, ProcessGuard, loopback_command};

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");

/// A stand-in `mpv` that writes its arguments to `args.txt`, fetches its last argument (the
/// URL) into `fetched`, and exits: what btvod sees of a player that plays to the end.
fn fake_player(bin: &Path, out: &Path) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{args}'\nfor u; do url=$u; done\n\
         exec /usr/bin/python3 -c 'import sys,urllib.request; \
         open(sys.argv[2],\"wb\").write(urllib.request.urlopen(sys.argv[1]).read())' \"$url\" '{fetched}'\n",
        args = out.join("args.txt").display(),
        fetched = out.join("fetched").display()
    );
    let path = bin.join("mpv");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_torrent(seed: &LoopbackSeed, dir: &Path) -> String {
    let path = dir.join("t.torrent");
    std::fs::write(&path, &seed.torrent).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_starts_the_player_with_the_subtitles_and_ends_when_it_exits() {
    let content = tempfile::tempdir().unwrap();
    let show = content.path().join("show");
    std::fs::create_dir_all(&show).unwrap();
    let movie = deterministic_content(768 * 1024, 21);
    std::fs::write(show.join("movie.mp4"), &movie).unwrap();
    std::fs::write(
        show.join("movie.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nhello\n",
    )
    .unwrap();
    let seed = start_seed_of(&show, 32 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_player(&bin, dir.path());
    let torrent = write_torrent(&seed, dir.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::task::spawn_blocking({
        let (dir, addr) = (dir.path().to_path_buf(), seed.addr().to_string());
        move || {
            Command::new("timeout")
                .args([
                    "60", BTVOD, "play", &torrent, "--peer", &addr, "--port", "0",
                ])
                .args(["--bind", "127.0.0.1", "--http-port", "0", "--saveas", "got"])
                .args(["--report", "report.json", "-q"])
                .env("PATH", path)
                .current_dir(&dir)
                .output()
                .expect("run btvod play")
        }
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "btvod play: {:?}\n{err}", out.status);
    assert!(err.contains("the player exited"), "{err}");
    let args = std::fs::read_to_string(dir.path().join("args.txt")).expect("the player ran");
    let mut lines = args.lines();
    let sub = lines.next().unwrap_or_default();
    assert!(
        sub.starts_with("--sub-file=http://127.0.0.1:") && sub.ends_with("/show/movie.srt"),
        "{args}"
    );
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .ends_with("/show/movie.mp4"),
        "{args}"
    );
    assert_eq!(std::fs::read(dir.path().join("fetched")).unwrap(), movie);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["server_bytes"], 0);
    assert!(report["time_to_first_byte_s"].is_number(), "{report}");
    seed.session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_player_is_one_line_and_exit_1() {
    let seed = start_seed(64 * 1024, 16 * 1024, 22).await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = write_torrent(&seed, dir.path());
    let out = Command::new(BTVOD)
        .args([
            "stream",
            &torrent,
            "--player",
            "vlc",
            "--http-port",
            "0",
            "--port",
            "0",
        ])
        .env("PATH", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("vlc") && err.contains("not installed"),
        "{err}"
    );
    seed.session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_on_exit_removes_what_the_run_wrote_and_nothing_else() {
    let seed = start_seed(256 * 1024, 16 * 1024, 23).await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = write_torrent(&seed, dir.path());
    std::fs::write(dir.path().join("mine.txt"), "kept").unwrap();
    let serving = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&serving);
    let args = loopback_command(
        &["stream", &torrent, "--peer", &seed.addr().to_string()],
        &[
            "--http-port",
            "0",
            "--saveas",
            "got/movie.bin",
            "--all",
            "--delete-on-exit",
            "-q",
        ],
    );
    let stream = ProcessGuard::spawn("btvod stream", BTVOD, &args, dir.path(), move |line| {
        if matches!(line, OutputLine::Line(l) if l.starts_with("streaming")) {
            *seen.lock().unwrap() = true;
        }
    })
    .unwrap();
    let written = dir.path().join("got/movie.bin");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(*serving.lock().unwrap() && written.exists()) {
        assert!(
            Instant::now() < deadline,
            "nothing written\n{}",
            stream.report()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = stream.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        stream.report()
    );
    assert!(!written.exists(), "the movie is still there");
    assert!(
        !dir.path().join("got").exists(),
        "the directory it made is still there"
    );
    assert!(
        dir.path().join("mine.txt").exists(),
        "a file it did not write was removed"
    );
    seed.session.shutdown().await;
}
