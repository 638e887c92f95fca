//! Faults around a real `btvod get` process: killed with SIGKILL mid-download and started
//! again on the same directory (it resumes from the verified pieces on disk, keeps nothing
//! corrupt, and downloads only the rest), a download directory on a disk that fills up (a
//! clear error and an exit, and a rerun with room resumes from what was written), and a
//! tracker that is down at start (the `--peer` peers carry the download, and the tracker is
//! reached within seconds once it comes up). The seeds are in-process sessions, so what they upload is what
//! the process downloaded.

mod common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btvod::engine::session::Session;
use btvod::proto::tracker::{ScrapeResponse, ScrapeStats, scrape_url};
use common::content::free_port_below_ephemeral;
use common::movie_dir::MovieDir;
use common::process::{OutputLine, ProcessGuard};
use common::session::{SessionExt, limits, options};
use tokio::time::{Instant, sleep, timeout};

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");
const PIECE: usize = 64 * 1024;

/// A `btvod get` process (under the test lifeline, so it never outlives the test) whose log
/// lines, stdout and stderr together, are kept for the test to read.
struct Get {
    guard: ProcessGuard,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Get {
    fn start(world: &MovieDir, extra: &[String]) -> Self {
        let mut args = vec!["-c".to_string(), r#"exec "$0" "$@" 2>&1"#.to_string()];
        args.extend(Self::command(world, extra));
        Self::spawn(world, "/bin/sh", args)
    }

    /// `BTVOD get TORRENT --out OUT ...extra`.
    fn command(world: &MovieDir, extra: &[String]) -> Vec<String> {
        let mut args = vec![
            BTVOD.to_string(),
            "get".to_string(),
            world.torrent_path().display().to_string(),
            "--out".to_string(),
            world.leech_dir(0).display().to_string(),
            "--port".to_string(),
            "0".to_string(),
            "--bind".to_string(),
            "127.0.0.1".to_string(),
            "--rng-seed".to_string(),
            "7".to_string(),
        ];
        args.extend_from_slice(extra);
        args
    }

    /// `program args...`, which must run btvod with its stderr on stdout.
    fn spawn(world: &MovieDir, program: &str, args: Vec<String>) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let guard = ProcessGuard::spawn("btvod get", program, &args, world.root(), move |l| {
            if let OutputLine::Line(text) = l {
                sink.lock().expect("lines").push(strip_ansi(text));
            }
        })
        .expect("start btvod get");
        Self { guard, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// The pid of btvod itself: the lifeline's child (`sh` exec'd into it).
    fn btvod_pid(&self, within: Duration) -> u32 {
        let lifeline = self.guard.pid();
        let deadline = std::time::Instant::now() + within;
        loop {
            let children = fs::read_dir("/proc")
                .expect("read /proc")
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| parent_of(*pid) == Some(lifeline));
            for pid in children {
                let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                if exe.file_name() == Path::new(BTVOD).file_name() {
                    return pid;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "btvod did not start under its lifeline"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself, on a blocking thread.
    async fn wait_exit(self, within: Duration) -> (std::process::ExitStatus, String) {
        tokio::task::spawn_blocking(move || {
            let status = self
                .guard
                .wait_exit(within)
                .unwrap_or_else(|e| panic!("{e}"));
            let log = self.log();
            (status, log)
        })
        .await
        .expect("waiting thread")
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number right after `marker` in `text`.
fn number_after<N: std::str::FromStr>(text: &str, marker: &str) -> Option<N> {
    let at = text.find(marker)? + marker.len();
    let digits = text[at..].len()
        - text[at..]
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    text[at..at + digits].parse().ok()
}

/// The `present=N` of the "recheck done" log line.
fn recheck_present(log: &str) -> Option<u32> {
    number_after(
        log.lines().find(|l| l.contains("recheck done"))?,
        "present=",
    )
}

/// SIGKILL mid-download, one verified piece then damaged on disk (as a torn write would leave
/// it), and a restart on the same directory: the recheck finds exactly the intact verified
/// pieces, the damaged one is fetched again, the second run downloads about the remainder
/// only, and the file ends byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_download_it_resumes_from_what_it_verified() {
    let world = MovieDir::new(4 * 1024 * 1024, PIECE as u32, 11);
    let total = world.content.len().div_ceil(PIECE);
    // 1 MiB/s: the 4 MiB take about four seconds, so the kill lands mid-way.
    let first_seed = world.seed(options(1, vec![], limits(1024, 0))).await;
    let first = Get::start(&world, &["--peer".into(), first_seed.addr().to_string()]);
    let pid = first.btvod_pid(Duration::from_secs(10));
    let until = Instant::now() + Duration::from_secs(20);
    while world.good_pieces_of(&world.leech_file(0)).len() < total / 4 {
        assert!(
            Instant::now() < until,
            "the first run verified {} pieces in 20 s\n{}",
            world.good_pieces_of(&world.leech_file(0)).len(),
            first.guard.report()
        );
        sleep(Duration::from_millis(50)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -9 {pid}");
    let (status, _) = first.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "the killed run did not finish: {status}");
    first_seed.shutdown().await;

    let mut had = world.good_pieces_of(&world.leech_file(0));
    assert!(
        had.len() >= total / 4 && had.len() < total,
        "{} of {total} pieces on disk after the kill",
        had.len()
    );
    // Only verified pieces are ever written: every other piece is still a hole.
    let on_disk = fs::read(world.leech_file(0)).expect("read the partial download");
    for (i, want) in world.content.chunks(PIECE).enumerate() {
        let got = on_disk
            .get(i * PIECE..i * PIECE + want.len())
            .unwrap_or(&[]);
        assert!(
            got == want || got.iter().all(|&b| b == 0),
            "piece {i} holds bytes that are neither the content nor a hole after the kill"
        );
    }
    // Damage one verified piece: the restart must not trust it.
    let damaged = had.remove(had.len() / 2);
    let mut bytes = fs::read(world.leech_file(0)).expect("read the partial download");
    bytes[damaged * PIECE + 1234] ^= 0x5A;
    fs::write(world.leech_file(0), &bytes).expect("damage a piece");

    // The second run has its own seed, so that seed's upload is what the run downloaded.
    let second_seed = world.seed(options(2, vec![], limits(0, 0))).await;
    let second = Get::start(&world, &["--peer".into(), second_seed.addr().to_string()]);
    let (status, log) = second.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "the restarted run failed: {status}\n{log}"
    );
    world.assert_downloaded(0);
    let present = recheck_present(&log).unwrap_or_else(|| panic!("no recheck line in:\n{log}"));
    assert_eq!(
        present as usize,
        had.len(),
        "the recheck counts the intact verified pieces (piece {damaged} was damaged)"
    );
    let remainder = ((total - had.len()) * PIECE) as u64;
    let mut rx = second_seed.torrent.stats.clone();
    // The seed publishes its upload count with the disconnection.
    // The `Ref` wait_for returns is dropped at once: held, it blocks the seed's last stats
    // update at shutdown (a watch's sender waits for its readers).
    let settled = timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.peers == 0 && s.uploaded > 0),
    )
    .await
    .map(|r| r.map(|_| ()));
    assert!(
        matches!(settled, Ok(Ok(()))),
        "the second seed saw the run end: {:?}",
        second_seed.stats()
    );
    let downloaded = second_seed.stats().uploaded;
    assert!(
        downloaded >= remainder && downloaded <= remainder + 16 * 16 * 1024,
        "the restarted run downloaded {downloaded} bytes for a remainder of {remainder}"
    );
    assert!(downloaded < world.content.len() as u64);
    second_seed.shutdown().await;
}

/// A tracker that refuses connections at start does not stop a download: the `--peer` seed
/// carries it, and the process exits 0 with the file complete (the `stopped` announce to the
/// dead tracker does not hold up the exit either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_down_at_start_does_not_stop_a_download_from_peers() {
    let world = MovieDir::new(2 * 1024 * 1024 + 4321, PIECE as u32, 12);
    let seed = world.seed(options(3, vec![], limits(0, 0))).await;
    assert_get_finishes_soon(
        &world,
        &seed,
        "http://127.0.0.1:1/announce".to_string(),
        "a dead tracker",
    )
    .await;
    seed.shutdown().await;
}

/// `btvod get` announcing to `tracker` and given the seed as `--peer` downloads the content
/// and exits within 15 s, despite what the tracker does (`trouble`).
async fn assert_get_finishes_soon(
    world: &MovieDir,
    seed: &Session,
    tracker: String,
    trouble: &str,
) {
    let started = Instant::now();
    let get = Get::start(
        world,
        &[
            "--tracker".into(),
            tracker,
            "--peer".into(),
            seed.addr().to_string(),
        ],
    );
    let (status, log) = get.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "btvod get failed: {status}\n{log}");
    world.assert_downloaded(0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?} with {trouble}\n{log}",
        started.elapsed()
    );
}

/// A tracker that accepts connections and never answers: the download still completes from
/// the `--peer` seed, and the exit is not held up past the bounded `stopped` announce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_that_never_answers_does_not_stop_a_download_or_its_exit() {
    let world = MovieDir::new(1024 * 1024 + 99, PIECE as u32, 13);
    let seed = world.seed(options(4, vec![], limits(0, 0))).await;
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the hung tracker");
    let hung_addr = hung.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    assert_get_finishes_soon(
        &world,
        &seed,
        format!("http://{hung_addr}/announce"),
        "a tracker that never answers",
    )
    .await;
    held.abort();
    seed.shutdown().await;
}

/// The script run under `unshare`: mounts a tmpfs of `$2` bytes on `$1` (in a private mount
/// namespace, so nothing outside the test sees it), runs `$0 "$@"` (btvod) there, and copies
/// what it left in the tmpfs to `$3` before the namespace, and the tmpfs with it, goes away.
const TMPFS_SCRIPT: &str = r#"
dir=$1; size=$2; keep=$3; shift 3
mount -t tmpfs -o "size=$size" none "$dir" || exit 97
"$0" "$@" 2>&1 &
pid=$!
trap 'kill -9 $pid' TERM INT HUP
wait $pid; rc=$?
cp -r "$dir/." "$keep/"
exit $rc
"#;

/// Whether this machine lets an unprivileged mount namespace mount a tmpfs.
fn can_mount_tmpfs(dir: &Path) -> Result<(), String> {
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=64k none "$0""#)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The download directory is a 1 MiB tmpfs and the content 3 MiB: once the disk is full, the
/// process stops within seconds with one line naming the file and "No space left on device"
/// and a failure status (before the fix it fetched the unwritable pieces again forever). The
/// pieces it says it wrote are on disk intact; a rerun with room, on a copy of what was left,
/// keeps exactly the intact pieces (a piece cut short by the full disk is not one) and ends
/// byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_download_with_a_clear_error_and_loses_nothing_written() {
    let world = MovieDir::new(3 * 1024 * 1024 + 777, PIECE as u32, 14);
    let total = world.content.len().div_ceil(PIECE);
    fs::create_dir_all(world.leech_dir(0)).expect("make the mount point");
    if let Err(why) = can_mount_tmpfs(&world.leech_dir(0)) {
        eprintln!("SKIPPED: this machine cannot mount a tmpfs in a user namespace: {why}");
        return;
    }
    let kept = world.root().join("kept");
    fs::create_dir_all(&kept).expect("make the directory for what the tmpfs held");
    let seed = world.seed(options(5, vec![], limits(0, 0))).await;
    let wrapper = [
        "--user",
        "--map-root-user",
        "--mount",
        "/bin/sh",
        "-c",
        TMPFS_SCRIPT,
    ]
    .map(String::from)
    .to_vec();
    // BTVOD is the script's $0; the script's own arguments come right after it.
    let mut args = wrapper;
    let tail = Get::command(&world, &["--peer".into(), seed.addr().to_string()]);
    args.push(tail[0].clone());
    args.extend([
        world.leech_dir(0).display().to_string(),
        "1m".to_string(),
        kept.display().to_string(),
    ]);
    args.extend_from_slice(&tail[1..]);
    let started = Instant::now();
    let get = Get::spawn(&world, "unshare", args);
    let (status, log) = get.wait_exit(Duration::from_secs(30)).await;
    let took = started.elapsed();
    seed.shutdown().await;
    assert_ne!(status.code(), Some(97), "the tmpfs was not mounted\n{log}");
    assert_eq!(status.code(), Some(1), "exit status {status}\n{log}");
    assert!(
        took < Duration::from_secs(15),
        "took {took:?} to stop\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let last = log.lines().last().unwrap_or_default();
    for word in ["btvod: ", "movie.bin", "No space left on device"] {
        assert!(last.contains(word), "`{word}` not in the last line:\n{log}");
    }
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(
        errors <= 16,
        "{errors} error lines: the pieces were fetched again\n{log}"
    );
    eprintln!("full disk run, {took:?}:\n{log}");
    let reported = reported_written(last).unwrap_or_else(|| panic!("no count in: {last}"));

    // What the tmpfs held: the pieces reported written are there, the rest are holes or
    // pieces the full disk cut short (never reported).
    let partial = kept.join("movie.bin");
    let good = world.good_pieces_of(&partial);
    assert!(
        reported > 0 && reported <= good.len() && good.len() < total,
        "reported {reported} pieces written, {} intact of {total}\n{log}",
        good.len()
    );

    // Rerun with room, on what the full disk left.
    fs::copy(&partial, world.leech_file(0)).expect("copy the partial download");
    let seed = world.seed(options(6, vec![], limits(0, 0))).await;
    let rerun = Get::start(&world, &["--peer".into(), seed.addr().to_string()]);
    let (status, log) = rerun.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "the rerun failed: {status}\n{log}");
    world.assert_downloaded(0);
    let present = recheck_present(&log).unwrap_or_else(|| panic!("no recheck line in:\n{log}"));
    assert_eq!(
        present as usize,
        good.len(),
        "the recheck keeps the intact pieces"
    );
    seed.shutdown().await;
}

/// The `N` of "stopped with N of M pieces verified and written".
fn reported_written(line: &str) -> Option<usize> {
    number_after(line, "stopped with ")
}

/// The built-in tracker's scrape of the world's torrent, or `None` while it is not up.
async fn scrape(port: u16, world: &MovieDir) -> Option<ScrapeStats> {
    let announce = url::Url::parse(&format!("http://127.0.0.1:{port}/announce")).ok()?;
    let url = scrape_url(&announce, &[world.meta.info_hash])?;
    let body = reqwest::get(url).await.ok()?.bytes().await.ok()?;
    ScrapeResponse::parse(&body)
        .ok()?
        .files
        .get(&world.meta.info_hash)
        .copied()
}

/// Nothing listens on the tracker's port when `btvod get` starts: it downloads from its
/// `--peer` seed meanwhile, and once `btvod tracker` is started on that port the client's
/// retry reaches it within 10 s (the tracker's scrape counts it). With the former first retry
/// of 15 s, doubling, the tracker would have waited about 14 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_down_at_start_is_announced_to_soon_after_it_comes_up() {
    let world = MovieDir::new(4 * 1024 * 1024, PIECE as u32, 15);
    let total = world.content.len().div_ceil(PIECE);
    // 512 KiB/s: the download takes about eight seconds, most of it while the tracker is down.
    let seed = world.seed(options(8, vec![], limits(512, 0))).await;
    let port = free_port_below_ephemeral();
    let get = Get::start(
        &world,
        &[
            "--tracker".into(),
            format!("http://127.0.0.1:{port}/announce"),
            "--peer".into(),
            seed.addr().to_string(),
            "--seed-after".into(),
        ],
    );
    let until = Instant::now() + Duration::from_secs(20);
    while world.good_pieces_of(&world.leech_file(0)).len() < 4
        || !get.log().contains("announce failed")
    {
        assert!(
            Instant::now() < until,
            "no download from the peer while the tracker is down ({} pieces)\n{}",
            world.good_pieces_of(&world.leech_file(0)).len(),
            get.log()
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scrape(port, &world).await,
        None,
        "the tracker is not up yet"
    );
    let tracker = ProcessGuard::spawn(
        "btvod tracker",
        BTVOD,
        &[
            "tracker".to_string(),
            "--port".to_string(),
            port.to_string(),
            "--bind".to_string(),
            "127.0.0.1".to_string(),
        ],
        world.root(),
        |_| {},
    )
    .expect("start btvod tracker");
    let up = Instant::now();
    loop {
        let seen = scrape(port, &world).await;
        if seen.is_some_and(|s| s.complete + s.incomplete >= 1) {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "the tracker has not heard from the client {:?} after it came up ({seen:?})\n{}\n{}",
            up.elapsed(),
            get.log(),
            tracker.report()
        );
        sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the tracker heard from the client {:?} after it came up",
        up.elapsed()
    );
    let until = Instant::now() + Duration::from_secs(30);
    while world.good_pieces_of(&world.leech_file(0)).len() < total {
        assert!(
            Instant::now() < until,
            "the download did not finish\n{}",
            get.log()
        );
        sleep(Duration::from_millis(100)).await;
    }
    world.assert_downloaded(0);
    drop(get);
    drop(tracker);
    seed.shutdown().await;
}
