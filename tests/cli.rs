//! The command line as a user meets it: `info`, `make-torrent`, `tracker` and the one-line errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use common::content::{deterministic_content, require_python_libtorrent};
use common::process::{OutputLine, ProcessGuard};

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");

fn btvod(args: &[&str], dir: &Path) -> Output {
    Command::new(BTVOD)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run btvod")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_names_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = btvod(&["--help"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["info", "make-torrent", "tracker", "seed", "get"] {
        assert!(text.contains(sub), "--help does not mention {sub}:\n{text}");
    }
}

#[test]
fn a_bad_torrent_gives_one_clear_line_and_a_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.torrent"), b"d8:announce3:abce").unwrap();
    for (file, expect) in [
        ("bad.torrent", "not a usable torrent"),
        ("missing.torrent", "cannot read"),
    ] {
        let out = btvod(&["info", file], dir.path());
        assert!(!out.status.success(), "info {file} succeeded");
        let err = stderr(&out);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "more than one line: {err}"
        );
        assert!(err.contains(expect), "{file}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = btvod(&["get", "missing.torrent", "--port", "0", "-q"], dir.path());
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim_end().lines().count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_magnet_link_is_described_and_a_bad_one_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
    let link = format!(
        "magnet:?xt=urn:btih:{hash}&dn=Big+Buck+Bunny&tr=http%3A%2F%2Ft.example%2Fannounce\
         &x.pe=127.0.0.1:6881&so=0,2-3"
    );
    let out = btvod(&["info", &link], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        hash,
        "Big Buck Bunny",
        "http://t.example/announce",
        "127.0.0.1:6881",
        "only 0,2-3",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let v2 = format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(32));
    for (bad, expect) in [
        ("magnet:?dn=nothing", "no `xt=urn:btih:` info-hash"),
        ("magnet:?xt=urn:btih:123", "not a BitTorrent info-hash"),
        (v2.as_str(), "v2 torrents are not supported yet"),
    ] {
        for command in [&["info", bad][..], &["get", bad, "--port", "0", "-q"]] {
            let out = btvod(command, dir.path());
            assert!(!out.status.success(), "{command:?} succeeded");
            let err = stderr(&out);
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "more than one line: {err}"
            );
            assert!(err.contains(expect), "{command:?}: {err}");
        }
    }
    // No tracker btvod can use, no peer and no DHT: said at once, not after a long wait.
    let no_source = format!("magnet:?xt=urn:btih:{hash}&tr=ftp%3A%2F%2F127.0.0.1%2Fannounce");
    let out = btvod(
        &["get", &no_source, "--port", "0", "-q", "--no-dht"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no way to find peers"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn make_torrent_output_is_read_alike_by_btvod_info_and_libtorrent() {
    require_python_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("movie");
    std::fs::create_dir(&content).unwrap();
    std::fs::write(content.join("a.bin"), deterministic_content(300_001, 1)).unwrap();
    std::fs::write(content.join("b.bin"), deterministic_content(70_000, 2)).unwrap();
    let out = btvod(
        &[
            "make-torrent",
            "movie",
            "-o",
            "movie.torrent",
            "--announce",
            "http://127.0.0.1:6969/announce",
            "--piece-length",
            "32KiB",
            "--web-seed",
            "http://127.0.0.1:8080/movie",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info = btvod(&["info", "movie.torrent"], dir.path());
    assert!(info.status.success(), "{}", stderr(&info));
    let text = String::from_utf8_lossy(&info.stdout);
    let ours = text
        .lines()
        .find_map(|l| l.strip_prefix("Info-hash:"))
        .map(|h| h.trim().to_string())
        .expect("info prints the info-hash");
    assert!(text.contains("a.bin") && text.contains("b.bin"), "{text}");
    assert!(
        text.contains("http://127.0.0.1:8080/movie"),
        "web seed missing: {text}"
    );
    // 370,001 bytes in 32 KiB pieces.
    assert!(text.contains("12 x 32768"), "{text}");
    let lt = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, libtorrent as lt; ti = lt.torrent_info(sys.argv[1]); \
             print(str(ti.info_hashes().v1), ti.num_pieces())",
        ])
        .arg(dir.path().join("movie.torrent"))
        .output()
        .unwrap();
    assert!(lt.status.success(), "{}", stderr(&lt));
    let lt_text = String::from_utf8_lossy(&lt.stdout);
    assert_eq!(lt_text.trim(), format!("{ours} 12"));
}

#[test]
fn tracker_subcommand_serves_announces_and_a_status_page() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    // The URL line goes to stderr; run through a shell to fold it into stdout for the guard.
    let guard = ProcessGuard::spawn(
        "btvod tracker",
        "/bin/sh",
        &["-c".into(), format!("exec {BTVOD} tracker --port 0 2>&1")],
        dir.path(),
        move |line| {
            if let OutputLine::Line(l) = line {
                let _ = tx.send(l.to_string());
            }
        },
    )
    .expect("start btvod tracker");
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no announce URL printed:\n{}", guard.report()));
        if let Some(rest) = line.split("announce URL ").nth(1) {
            break rest.split(',').next().unwrap().trim().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let base = url.trim_end_matches("/announce");
    let hash = "%01".repeat(20);
    let announce = format!(
        "{url}?info_hash={hash}&peer_id=-XX0001-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=5&compact=1"
    );
    let body = http_get(&announce);
    assert!(body.windows(8).any(|w| w == b"interval"), "{body:?}");
    let page = String::from_utf8_lossy(&http_get(&format!("{base}/"))).into_owned();
    assert!(
        page.contains(&"01".repeat(20)),
        "status page lacks the torrent:\n{page}"
    );
    drop(guard);
}

/// A minimal HTTP/1.0 GET over a std TcpStream, bounded in time.
fn http_get(url: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    out.split_off(split)
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), deterministic_content(40_000, 3)).unwrap();
    let made = btvod(&["make-torrent", "a.bin", "-o", "a.torrent"], dir.path());
    assert!(made.status.success(), "{}", stderr(&made));
    let (tx, rx) = mpsc::channel();
    let guard = ProcessGuard::spawn(
        "btvod seed",
        "/bin/sh",
        &[
            "-c".into(),
            format!("exec {BTVOD} seed a.torrent --content a.bin --port 0 -v 2>&1"),
        ],
        dir.path(),
        move |line| {
            if let OutputLine::Line(l) = line {
                let _ = tx.send(l.to_string());
            }
        },
    )
    .expect("start btvod seed");
    let line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no `listening` log line:\n{}", guard.report()));
        if line.contains("listening for peers") {
            break line;
        }
    };
    assert!(
        !line.contains('\u{1b}'),
        "colour codes in a piped log: {line:?}"
    );
    drop(guard);
}

/// A world in parts refuses what cannot work, each with one line saying what to do.
#[test]
fn world_parts_refuse_bad_combinations_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/scenarios/demo.toml");
    let run = dir.path().join("run").display().to_string();
    let latency = dir.path().join("latency.toml");
    let text = std::fs::read_to_string(scenario).unwrap();
    std::fs::write(
        &latency,
        text.replace("upload = \"160KiB\"", "upload = \"160KiB\"\nrtt_ms = 50"),
    )
    .unwrap();
    let latency = latency.display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&[scenario, "--part", "3/2"], "1 <= K <= N"),
        (&[scenario, "--part", "x"], "K/N"),
        (&[scenario, "--part", "2/2"], "needs --tracker and --origin"),
        (
            &[
                scenario,
                "--tracker",
                "http://a/announce",
                "--origin",
                "http://a/",
            ],
            "part 1 starts the tracker",
        ),
        (&[&latency, "--part", "1/2"], "link latency"),
    ];
    for (args, expect) in cases {
        let mut all = vec!["world", "--run-dir", &run];
        all.extend_from_slice(args);
        let out = btvod(&all, dir.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn simulate_sizes_the_crowd_and_reports_server_bytes_per_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/scenarios/flash-crowd.toml"
    );
    let deadline_mib = |viewers: &str| {
        let out = btvod(
            &["simulate", scenario, "--seeds", "1", "--viewers", viewers],
            dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("server MiB/viewer"), "{text}");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("deadline"))
            .unwrap_or_else(|| panic!("no deadline row: {text}"));
        line.split_whitespace()
            .last()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    // One viewer alone on the 128 KiB/s seed pays less per head than 12 sharing it.
    let alone = deadline_mib("1");
    let crowd = deadline_mib("12");
    assert!(alone < crowd, "alone {alone} MiB, in a crowd {crowd} MiB");
    let out = btvod(&["simulate", scenario, "--viewers", "0"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--viewers"), "{}", stderr(&out));
}

#[test]
fn simulate_takes_the_deadline_policys_settings() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/scenarios/slow.toml");
    let deadline_percent = |extra: &[&str]| {
        let mut args = vec!["simulate", scenario, "--seeds", "1"];
        args.extend_from_slice(extra);
        let out = btvod(&args, dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("deadline"))
            .unwrap_or_else(|| panic!("no deadline row: {text}"));
        line.split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    // Asking only for blocks due 30 s after they would arrive leaves most to the server.
    let default = deadline_percent(&[]);
    let cautious = deadline_percent(&["--deadline-set", "safety_margin=30"]);
    assert!(cautious > default + 10.0, "{cautious}% against {default}%");
    let out = btvod(
        &["simulate", scenario, "--deadline-set", "no_such_knob=1"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no_such_knob"), "{}", stderr(&out));
}
