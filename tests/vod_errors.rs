//! The VoD client refuses bad values before it joins a swarm: one clear line on stderr, a
//! non-zero exit, no report and nothing saved. Each run is bounded (a server that cannot be
//! reached must fail fast, not hang).

mod common;
mod vod_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::content::deterministic_content;
use common::process::{LOOPBACK_FLAGS, ProcessGuard, loopback_command};
use vod_support::{BTVOD, Movie, Origin};

const BOUND: Duration = Duration::from_secs(30);

struct Failed {
    code: Option<i32>,
    stderr: String,
}

/// Runs the client with `args` in `dir`, expecting it to fail within `BOUND`.
fn run_failing(dir: &Path, args: &[&str]) -> Failed {
    let mut child = Command::new(BTVOD)
        .args(args)
        .args(LOOPBACK_FLAGS)
        .args(["--saveas", "saved.bin"])
        .args(["--report", "report.json"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start btvod");
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for btvod") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("btvod {args:?} still running after {BOUND:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "btvod {args:?} succeeded:\n{stderr}");
    assert!(
        !dir.join("report.json").exists(),
        "btvod {args:?} wrote a report"
    );
    assert!(!dir.join("saved.bin").exists(), "btvod {args:?} saved data");
    Failed {
        code: status.code(),
        stderr,
    }
}

/// btvod run with `args` fails with one line on stderr, holding each of `expect`.
fn fails_with_one_line(dir: &Path, args: &[&str], expect: &[&str]) {
    assert_one_line(&run_failing(dir, args), args, expect);
}

/// One line from btvod itself, naming what is wrong.
fn assert_one_line(f: &Failed, args: &[&str], expect: &[&str]) {
    let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "btvod {args:?}: not one line:\n{}",
        f.stderr
    );
    assert_eq!(f.code, Some(1), "btvod {args:?}: {}", f.stderr);
    assert!(lines[0].starts_with("btvod: "), "{}", lines[0]);
    for word in expect {
        assert!(
            lines[0].contains(word),
            "btvod {args:?}: `{word}` not in: {}",
            lines[0]
        );
    }
}

/// A value the argument parser refuses: its one error line names the option, followed only by
/// the parser's usual pointer to --help; exit status 2.
fn assert_parser_error(f: &Failed, args: &[&str], expect: &[&str]) {
    let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(f.code, Some(2), "btvod {args:?}: {}", f.stderr);
    assert!(lines[0].starts_with("error: "), "{}", f.stderr);
    for word in expect {
        assert!(lines[0].contains(word), "`{word}` not in: {}", lines[0]);
    }
    assert!(
        lines[1..].iter().all(|l| l.contains("--help")),
        "more than the error and the --help pointer:\n{}",
        f.stderr
    );
}

#[test]
fn bad_values_give_one_clear_line_and_a_failure_status() {
    let mut movie = Movie::single(300_000, 31, 64 * 1024);
    let dir = movie.scratch("errors");
    let torrent = movie.torrent.display().to_string();
    let copy = format!("file:{}", movie.content_path.display());
    let t = torrent.as_str();

    // P > D.
    let args = [
        "--rate",
        "100",
        "--delay",
        "1",
        "--prefetch",
        "2",
        "--server",
        &copy,
        t,
    ];
    let f = run_failing(&dir, &args);
    assert_one_line(&f, &args, &["prefetch", "delay"]);

    // R = 0, and a rate that is not one.
    for rate in ["0", "0KiB"] {
        let args = ["--rate", rate, "--server", &copy, t];
        let f = run_failing(&dir, &args);
        assert_parser_error(&f, &args, &["--rate", "zero"]);
    }
    let args = ["--rate", "fast", "--server", &copy, t];
    assert_parser_error(&run_failing(&dir, &args), &args, &["--rate"]);
    // No rate at all.
    let args = ["--server", &copy, t];
    fails_with_one_line(&dir, &args, &["--rate"]);

    // A negative delay.
    let args = ["--rate", "100", "--delay=-1", "--server", &copy, t];
    fails_with_one_line(&dir, &args, &["--delay"]);

    // Unknown --file, by index and by path.
    let args = ["--rate", "100", "--file", "3", "--server", &copy, t];
    fails_with_one_line(&dir, &args, &["--file 3", "1 files"]);
    let args = ["--rate", "100", "--file", "other.mkv", "--server", &copy, t];
    fails_with_one_line(&dir, &args, &["other.mkv", "no such file"]);

    // Unreadable torrents: missing, and not a torrent.
    let missing = dir.join("missing.torrent").display().to_string();
    let args = ["--rate", "100", "--server", &copy, &missing];
    fails_with_one_line(&dir, &args, &["missing.torrent"]);
    let garbage = dir.join("garbage.torrent");
    fs::write(&garbage, b"d8:announce3:abce").expect("write a broken torrent");
    let garbage = garbage.display().to_string();
    let args = ["--rate", "100", "--server", &copy, &garbage];
    fails_with_one_line(&dir, &args, &["garbage.torrent", "not a usable torrent"]);

    // No server at all: the torrent has no url-list and no --server is given.
    assert!(movie.meta.url_list.is_empty());
    let args = ["--rate", "100", t];
    fails_with_one_line(&dir, &args, &["no VoD server", "--server"]);

    // A server that cannot be reached at start: given, and as the torrent's web seed.
    let args = ["--rate", "100", "--server", "http://127.0.0.1:1/", t];
    fails_with_one_line(&dir, &args, &["http://127.0.0.1:1/", "unreachable"]);
    movie.set_web_seed("http://127.0.0.1:1/");
    let args = ["--rate", "100", t];
    fails_with_one_line(&dir, &args, &["127.0.0.1:1", "unreachable"]);

    // Servers that are there but not usable: a scheme we do not speak, a local copy that is
    // missing or of other content, an origin serving something else.
    let args = ["--rate", "100", "--server", "ftp://127.0.0.1/movie.bin", t];
    fails_with_one_line(&dir, &args, &["ftp://", "unsupported"]);
    let args = [
        "--rate",
        "100",
        "--server",
        "file:/nonexistent/movie.bin",
        t,
    ];
    fails_with_one_line(&dir, &args, &["/nonexistent/movie.bin"]);
    let other = Movie::single(200_000, 32, 64 * 1024);
    let other_copy = format!("file:{}", other.content_path.display());
    let args = ["--rate", "100", "--server", &other_copy, t];
    fails_with_one_line(&dir, &args, &["300000", "200000"]);
    let origin = Origin::start(&other.content_path, 0);
    let url = origin.url();
    let args = ["--rate", "100", "--server", &url, t];
    fails_with_one_line(&dir, &args, &["300000", "200000"]);
    assert_eq!(
        origin.stats().bytes_served,
        0,
        "a refused server was charged"
    );
}

/// An origin whose file has the torrent's length but other bytes passes the start-up check;
/// the first piece it sends fails its hash check, so does the whole piece fetched again, and
/// then the server is given up: it is never asked for the same piece a third time, nor for
/// any other piece, however long the client runs.
#[test]
fn a_server_with_other_content_is_given_up_after_one_whole_refetch() {
    let movie = Movie::single(300_000, 33, 64 * 1024);
    let wrong = movie.scratch("wrong").join("movie.bin");
    fs::write(&wrong, deterministic_content(300_000, 34)).expect("write other content");
    let origin = Origin::start(&wrong, 0);
    let dir = movie.scratch("client");
    let torrent = movie.torrent.display().to_string();
    let url = origin.url();
    // Piece i is due at 0.5 + i s: piece 0 is bought (twice), then pieces 1 and 2 come due.
    let args = loopback_command(
        &[
            "--rate",
            "64",
            "--delay",
            "0.5",
            "--prefetch",
            "0",
            "--server",
            &url,
        ],
        &["--saveas", "saved.bin", "-q", &torrent],
    );
    let client = ProcessGuard::spawn("btvod (VoD client)", BTVOD, &args, &dir, |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let status = client.wait_exit(Duration::from_secs(3)).ok();
    let served = origin.stats().bytes_served;
    // Before the fix the client bought the piece again and again: gigabytes within seconds.
    assert_eq!(
        served,
        2 * 64 * 1024,
        "bytes bought from a server with other content\n{}",
        client.report()
    );
    if let Some(status) = status {
        // Once the player stops on the server's error, it must say why and fail.
        assert!(!status.success(), "{}", client.report());
        assert!(
            client.report().contains("hash check"),
            "{}",
            client.report()
        );
    }
}
