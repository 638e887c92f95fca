//! The local world: every shipped scenario parses and bad ones are refused with the key named;
//! the committed sample torrents are what their scenarios generate; partial copies hold exactly
//! their drawn pieces; an in-process world trades, churns, reincarnates and serves a viewer to
//! completion; and `run_all_vod.sh` starts, stops (leaving no process) and runs the demo.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use btvod::engine::session::{self, Content, SessionOptions};
use btvod::experiment::content::{draw_pieces, write_partial};
use btvod::experiment::scenario::{ContentSource, Draw, Scenario};
use btvod::experiment::world::build_content;
use btvod::experiment::{PeerRole, PeerState, World, WorldOptions};
use btvod::proto::metainfo::Metainfo;
use tokio::time::{Instant, sleep};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The scenarios scripts/scenarios must hold, each with a sample torrent in torrents/.
const SHIPPED: [&str; 8] = [
    "demo",
    "fast",
    "matched",
    "slow",
    "scarce",
    "churn",
    "flash-crowd",
    "multifile",
];

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "test", "test", Path::new(ROOT)).expect("a valid test scenario")
}

fn shipped(name: &str) -> Scenario {
    let path = Path::new(ROOT)
        .join("scripts/scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(ROOT).join("scripts/scenarios");
    let mut names = HashSet::new();
    for entry in std::fs::read_dir(&dir).expect("scripts/scenarios") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !s.description.is_empty(),
                "{} has no description",
                path.display()
            );
            assert!(s.peer_count() > 0, "{} has no world peers", path.display());
            names.insert(s.name);
        }
    }
    for want in SHIPPED {
        assert!(names.contains(want), "no shipped scenario named {want}");
    }
    // What each one claims to model, in the viewer's fair share of the world's upload: the
    // total split evenly between the peers still downloading (partial peers) and the viewers.
    let fair_share = |s: &Scenario| -> f64 {
        let upload: u64 = s
            .peers
            .iter()
            .map(|c| c.limits.upload * u64::from(c.count))
            .sum();
        let downloaders: u32 = s
            .peers
            .iter()
            .filter(|c| c.have < 1.0)
            .map(|c| c.count)
            .sum::<u32>()
            + s.viewer_count();
        upload as f64 / f64::from(downloaders) / s.viewers[0].rate as f64
    };
    let (fast, matched, slow) = (shipped("fast"), shipped("matched"), shipped("slow"));
    assert!(fair_share(&fast) > 4.0, "fast: swarm much faster than R");
    let ratio = fair_share(&matched);
    assert!(
        (0.7..=1.3).contains(&ratio),
        "matched: swarm about R ({ratio})"
    );
    let ratio = fair_share(&slow);
    assert!(ratio < 0.5, "slow: swarm slower than R ({ratio})");
    assert!(
        shipped("scarce")
            .peers
            .iter()
            .any(|c| c.draw == Draw::Stripe)
    );
    let churn = shipped("churn");
    assert!(
        churn.peers.iter().any(|c| c.leave_after.is_some()
            && c.rejoin_after.is_some()
            && c.reincarnate.is_some())
    );
    let crowd = shipped("flash-crowd");
    assert!(crowd.viewer_count() >= 10 && crowd.viewers[0].limits.upload > 0);
    assert!(crowd.viewers[0].arrival.spread <= Duration::from_secs(2));
    match shipped("multifile").content.source {
        ContentSource::Generated { files: Some(f), .. } => assert!(f.len() >= 2),
        other => panic!("multifile content is {other:?}"),
    }
}

#[test]
fn bad_scenarios_are_refused_with_the_key_named() {
    let base = "seed = 1\n[content]\nname = \"m.bin\"\nsize = \"1MiB\"\n";
    let cases = [
        (format!("{base}colour = 3\n"), "colour"),
        (
            format!("{base}[[peers]]\nname = \"p\"\nhave = 0.5\nhave_max = 0.2\n"),
            "have_max",
        ),
        (
            format!("{base}[[peers]]\nname = \"p\"\nupload = \"5 furlongs\"\n"),
            "upload",
        ),
        (
            format!("{base}[[peers]]\nname = \"p\"\nrejoin_after = 3\n"),
            "rejoin_after",
        ),
        (
            format!("{base}[[peers]]\nname = \"p\"\nhave = 1.0\nreincarnate = true\n"),
            "reincarnate",
        ),
        (
            format!("{base}[[peers]]\nname = \"p\"\ndraw = \"sideways\"\n"),
            "sideways",
        ),
        (format!("{base}[[peers]]\nname = \"a/b\"\n"), "name"),
        (
            format!("{base}[[peers]]\nname = \"p\"\nmax_peers = 0\n"),
            "max_peers",
        ),
        (
            format!("{base}[[viewers]]\nrate = 60\ndelay = 6\nprefetch = 2\nmax_peers = -3\n"),
            "max_peers",
        ),
        (
            format!("{base}[[viewers]]\nrate = 60\ndelay = 2\nprefetch = 3\n"),
            "prefetch",
        ),
        (
            format!("{base}[[viewers]]\nrate = 60\ndelay = 6\nprefetch = 2\npolicy = \"x\"\n"),
            "policy",
        ),
        (
            "[content]\nname = \"m\"\nsize = \"1MiB\"\npiece_size = \"48KiB\"\n".into(),
            "piece_size",
        ),
        ("[content]\nname = \"m\"\n".into(), "content"),
        (
            "[content]\nname = \"../m\"\nsize = 5\n".into(),
            "content.name",
        ),
    ];
    for (text, key) in cases {
        let err = Scenario::parse(&text, "case", "case", Path::new("."))
            .expect_err(&format!("accepted:\n{text}"))
            .to_string();
        assert!(
            err.contains(key),
            "error `{err}` does not name `{key}` for:\n{text}"
        );
    }
    let ok = scenario(&format!(
        "{base}[[peers]]\nname = \"p\"\ncount = 5\nhave = 0.2\nhave_max = 0.6\nupload = 64\n"
    ));
    let p = &ok.peers[0];
    assert_eq!(p.limits.upload, 64 * 1024, "a bare rate is KiB/s");
    assert_eq!(p.limits.download, 0, "no download cap by default");
    assert_eq!(
        p.limits.max_peers, None,
        "the client's own connection cap by default"
    );
    assert_eq!(p.limits.connections(50), 50);
    let capped = scenario(&format!(
        "{base}[[peers]]\nname = \"p\"\nmax_peers = 12\n[[viewers]]\nrate = 60\ndelay = 6\n\
         prefetch = 2\nmax_peers = 80\n"
    ));
    let (peer, viewer) = (capped.peers[0].limits, capped.viewers[0].limits);
    assert_eq!(peer.max_peers, Some(12));
    assert_eq!(peer.connections(50), 12, "the class's cap when lower");
    assert_eq!(
        viewer.connections(27),
        27,
        "never above what the process allows each member"
    );
    let fractions: Vec<f64> = (0..5).map(|i| p.fraction_for(i)).collect();
    assert!((fractions[0] - 0.2).abs() < 1e-9 && (fractions[4] - 0.6).abs() < 1e-9);
    assert!(
        fractions.windows(2).all(|w| w[0] < w[1]),
        "each starts with a different amount"
    );
}

#[test]
fn committed_sample_torrents_are_what_their_scenarios_generate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut multi_file = false;
    for name in SHIPPED {
        let s = shipped(name);
        let committed = Path::new(ROOT)
            .join("torrents")
            .join(format!("{}.torrent", s.content.name));
        let committed = Metainfo::load(&committed).unwrap_or_else(|e| {
            panic!(
                "scenario {name}: {} ({e}); run torrents/make-samples.sh",
                committed.display()
            )
        });
        let out = dir.path().join(name);
        let (_, bytes) = build_content(&s.content, &out, "http://127.0.0.1:1/announce")
            .expect("generate the content");
        let made = Metainfo::from_bytes(&bytes).expect("parse");
        assert_eq!(
            made.info_hash, committed.info_hash,
            "scenario {name}: the content no longer matches the committed torrent"
        );
        multi_file |= !committed.is_single_file && committed.files.len() > 1;
    }
    assert!(multi_file, "one sample torrent is multi-file");
}

#[tokio::test]
async fn partial_copies_hold_exactly_the_drawn_pieces() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = shipped("multifile");
    let (complete, bytes) =
        build_content(&s.content, &dir.path().join("content"), "http://x/a").expect("generate");
    let meta = Metainfo::from_bytes(&bytes).expect("parse");
    let n = meta.geometry.piece_count();
    let pieces = draw_pieces(Draw::Random, 0.4, n, 0, 1, 99);
    // The first piece spans the file boundaries of the trailer, subtitles and feature.
    let mut pieces: Vec<u32> = pieces.into_iter().chain([0, n - 1]).collect();
    pieces.sort_unstable();
    pieces.dedup();
    let target = dir.path().join("partial").join(&meta.name);
    write_partial(&meta, &complete, &target, &pieces).expect("partial copy");
    let options = SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        trackers: Some(Vec::new()),
        seed: 1,
        ..SessionOptions::default()
    };
    let session = session::start(&meta, Content::SaveAs(target), options, |_, _| {})
        .await
        .expect("the engine opens the partial copy");
    let have = session.torrent.stats.borrow().pieces_have;
    session.shutdown().await;
    assert_eq!(
        have,
        pieces.len() as u32,
        "the engine's recheck finds exactly the drawn pieces"
    );
}

/// The world of scenario `text` in a fresh directory (which must outlive it).
async fn start_world(text: &str) -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().expect("temp dir");
    let world = World::start(scenario(text), dir.path(), WorldOptions::default())
        .await
        .expect("start the world");
    (dir, world)
}

/// A small world where everything happens within seconds.
const SMALL_WORLD: &str = r#"
seed = 5
[content]
name = "small.bin"
size = "1MiB"
piece_size = "32KiB"

[[peers]]
name = "seed"
count = 1
have = 1.0
upload = "256KiB"

[[peers]]
name = "partial"
count = 3
have = 0.3
have_max = 0.6
upload = "128KiB"
download = "128KiB"

[[viewers]]
count = 1
rate = "128KiB"
delay = 4
prefetch = 1
arrive = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_trades_and_serves_a_viewer_to_completion() {
    let (dir, world) = start_world(SMALL_WORLD).await;
    assert!(world.tracker_url().starts_with("http://127.0.0.1:"));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("world.json")).expect("world.json is written at start"),
    )
    .expect("world.json is JSON");
    assert_eq!(json["origin_url"], world.origin_url());
    assert_eq!(
        PathBuf::from(json["torrent"].as_str().unwrap()),
        world.torrent_path()
    );
    assert!(
        world.wait_viewers(Duration::from_secs(60)).await,
        "the viewer did not finish within 60 s: {:#?}",
        world.peers()
    );
    let peers = world.peers();
    let viewer = peers
        .iter()
        .find(|p| p.role == PeerRole::Viewer)
        .expect("a viewer");
    let report = viewer.report.clone().expect("the viewer's report");
    assert_eq!(report.movie_bytes, 1 << 20);
    assert!(report.complete_at_s.is_some());
    // The server is metered on both sides: what the viewer took is what the origin sent.
    assert_eq!(world.origin_bytes_served(), report.penalty_bytes);
    assert!(
        report.peer_bytes > 0,
        "the viewer got data from the swarm: {report:?}"
    );
    let movie = std::fs::read(dir.path().join("viewers/viewer-0/small.bin")).expect("movie");
    let content = std::fs::read(world.content_path()).expect("content");
    assert!(movie == content, "the viewer's copy equals the content");
    let partials: Vec<_> = peers
        .iter()
        .filter(|p| p.role == PeerRole::Partial)
        .collect();
    assert_eq!(partials.len(), 3);
    let starts: HashSet<u32> = partials.iter().map(|p| p.pieces_at_start).collect();
    assert_eq!(
        starts.len(),
        3,
        "each partial peer starts with a different amount: {partials:?}"
    );
    assert!(
        partials.iter().all(|p| p.downloaded > 0),
        "partials downloaded: {partials:?}"
    );
    let world_uploaded: u64 = peers
        .iter()
        .filter(|p| p.role != PeerRole::Viewer)
        .map(|p| p.uploaded)
        .sum();
    let partial_uploaded: u64 = partials.iter().map(|p| p.uploaded).sum();
    assert!(
        world_uploaded >= report.peer_bytes,
        "world peers served the viewer"
    );
    assert!(
        partial_uploaded > 0,
        "partial peers traded with each other or the viewer"
    );
    let summary = world.stop().await;
    assert!(
        summary.peers.iter().all(|p| p.state == PeerState::Stopped),
        "{:#?}",
        summary.peers
    );
    let events = std::fs::read_to_string(dir.path().join("events.log")).expect("events.log");
    assert!(events.contains("viewer-0: movie complete"), "{events}");
    assert!(events.contains("world stopped"), "{events}");
}

const CHURN_WORLD: &str = r#"
seed = 6
[content]
name = "churn.bin"
size = "256KiB"
piece_size = "16KiB"

[[peers]]
name = "seed"
count = 1
have = 1.0
upload = "2MiB"

[[peers]]
name = "phoenix"
count = 2
have = 0.5
draw = "prefix"
reincarnate = true
linger = 0.5

[[peers]]
name = "flaky"
count = 1
have = 0.25
draw = "suffix"
leave_after = 1.5
rejoin_after = 0.5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_peers_leave_rejoin_and_reincarnate() {
    let (dir, world) = start_world(CHURN_WORLD).await;
    let end = Instant::now() + Duration::from_secs(30);
    let happened = |peers: &[btvod::experiment::PeerRecord]| {
        let phoenix_again = peers
            .iter()
            .filter(|p| p.class == "phoenix")
            .all(|p| p.incarnation >= 2 && p.completions >= 2);
        let events = std::fs::read_to_string(dir.path().join("events.log")).unwrap_or_default();
        phoenix_again && events.matches("flaky-0: online").count() >= 2
    };
    while !happened(&world.peers()) {
        assert!(
            Instant::now() < end,
            "no churn and reincarnation within 30 s: {:#?}\n{}",
            world.peers(),
            std::fs::read_to_string(dir.path().join("events.log")).unwrap_or_default()
        );
        sleep(Duration::from_millis(200)).await;
    }
    let events = std::fs::read_to_string(dir.path().join("events.log")).expect("events");
    assert!(events.contains("flaky-0: left; rejoins"), "{events}");
    assert!(events.contains("phoenix-1: reincarnates"), "{events}");
    // A reincarnated peer starts again from its fresh partial set, not from its complete copy.
    let phoenix = &world.peers()[1];
    assert!(
        phoenix.downloaded >= 2 * 128 * 1024,
        "two incarnations downloaded half each: {phoenix:?}"
    );
    world.stop().await;
}

/// Runs `run_all_vod.sh` with the debug binary and its own runs directory.
fn script(runs: &Path, args: &[&str], bound: Duration) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(bound.as_secs().to_string())
        .arg(Path::new(ROOT).join("run_all_vod.sh"))
        .args(args)
        .env("BTVOD_BIN", env!("CARGO_BIN_EXE_btvod"))
        .env("BTVOD_RUNS", runs)
        .current_dir(runs);
    let out = cmd.output().expect("run run_all_vod.sh");
    assert_ne!(
        out.status.code(),
        Some(124),
        "run_all_vod.sh {args:?} hung: {}",
        show(&out)
    );
    out
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

fn recorded(runs: &Path) -> Vec<(u32, String)> {
    std::fs::read_to_string(runs.join("current/pids"))
        .expect("runs/current/pids")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().expect("a PID"), f[2].to_string())
        })
        .collect()
}

#[test]
fn start_then_stop_leaves_no_process_behind() {
    let runs = tempfile::tempdir().expect("temp dir");
    // A client with a child of its own: stop must take the child too.
    let out = script(
        runs.path(),
        &[
            "start",
            "--no-viewers",
            "sh",
            "-c",
            "sleep 300 & echo {torrent} $SERVER; wait",
        ],
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "start failed: {}", show(&out));
    let pids = recorded(runs.path());
    let roles: Vec<&str> = pids.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(roles, ["world", "client"]);
    for (pid, role) in &pids {
        assert!(
            !group_members(*pid).is_empty(),
            "{role} (PID {pid}) is not running"
        );
    }
    let client = pids[1].0;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while group_members(client).len() < 2 {
        assert!(
            std::time::Instant::now() < end,
            "the client's child never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(runs.path().join("current/client.log")).unwrap_or_default();
    assert!(
        log.contains(".torrent http://127.0.0.1:"),
        "placeholders and env: {log}"
    );
    let status = script(runs.path(), &["status"], Duration::from_secs(20));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("world  PID") && text.contains("running"),
        "{text}"
    );
    assert!(text.contains("tracker  http://127.0.0.1:"), "{text}");
    let again = script(runs.path(), &["start"], Duration::from_secs(20));
    assert!(
        !again.status.success(),
        "a second start while running must be refused"
    );

    let out = script(runs.path(), &["stop"], Duration::from_secs(60));
    assert!(out.status.success(), "stop failed: {}", show(&out));
    for (pid, role) in &pids {
        assert!(
            group_members(*pid).is_empty(),
            "{role} group {pid} left running"
        );
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "{role} PID {pid} left: {stat}"
        );
    }
    assert!(
        !runs.path().join("current/pids").exists(),
        "the pid file is removed"
    );
    let status = script(runs.path(), &["status"], Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&status.stdout).contains("no world running"));
    // The world stopped cleanly on SIGTERM and wrote its final state.
    let log = std::fs::read_to_string(runs.path().join("current/world.log")).expect("world.log");
    assert!(log.contains("world stopped"), "{log}");
}

#[test]
fn demo_plays_the_sample_and_prints_a_penalty_report() {
    let runs = tempfile::tempdir().expect("temp dir");
    let out = script(runs.path(), &["demo"], Duration::from_secs(150));
    assert!(out.status.success(), "demo failed: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"penalty_bytes\""),
        "the report is printed: {stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(runs.path().join("current/report.json")).expect("report.json"),
    )
    .expect("the report is JSON");
    assert_eq!(report["movie_bytes"], 2 << 20);
    assert_eq!(report["rate_bytes_per_s"], 60 * 1024);
    assert!(report["penalty_bytes"].as_u64().is_some());
    assert!(report["complete_at_s"].as_f64().is_some());
    assert!(
        !runs.path().join("current/pids").exists(),
        "demo stops its world"
    );
    let log = std::fs::read_to_string(runs.path().join("current/world.log")).expect("world.log");
    assert!(log.contains("world stopped"), "{log}");
}
