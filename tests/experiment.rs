//! `btvod experiment` end to end on a short scenario (1 MiB, a swarm slower than playback so
//! every policy pays a penalty): the printed table, runs.csv, summary.csv and results.json
//! carry the viewers' own reports' numbers, the world origin's meter equals the penalty summed
//! over the viewers, the plot is drawn, and the libtorrent competitor (scripts/lt_vod.py)
//! completes the scenario and is scored the same way, in a world of btvod peers and in one of
//! libtorrent peers (`--world both`). Bad arguments give one clear line.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::external::require_python_libtorrent;
use serde_json::Value;

/// Two viewers a second apart on a swarm of ~160 KiB/s against R = 128 KiB/s: about 10 s a run.
const SHORT: &str = r#"
name = "short"
seed = 21
[content]
name = "short.bin"
size = "1MiB"
piece_size = "32KiB"

[[peers]]
name = "seed"
count = 1
have = 1.0
upload = "64KiB"

[[peers]]
name = "partial"
count = 3
have = 0.3
have_max = 0.6
upload = "32KiB"

[[viewers]]
count = 2
rate = "128KiB"
delay = 3
prefetch = 1
arrive_spread = 1
"#;

/// Runs `btvod experiment` on the short scenario, bounded by `timeout`.
fn experiment(dir: &Path, policies: &str, extra: &[&str]) -> Output {
    let scenario = dir.join("short.toml");
    std::fs::write(&scenario, SHORT).expect("write the scenario");
    let out = dir.join("out");
    Command::new("timeout")
        .args(["-k", "5", "150", env!("CARGO_BIN_EXE_btvod"), "experiment"])
        .arg(&scenario)
        .args(["--policies", policies, "--runs", "1", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("run btvod experiment")
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn results(dir: &Path) -> Value {
    let bytes = std::fs::read(dir.join("out/results.json")).expect("results.json is written");
    serde_json::from_slice(&bytes).expect("results.json is JSON")
}

/// The run of `policy` in results.json.
fn run_of<'a>(results: &'a Value, policy: &str) -> &'a Value {
    results["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["policy"] == policy)
        .unwrap_or_else(|| panic!("no {policy} run in {results:#}"))
}

/// Checks one run against its viewers' reports and the world's own `world.json`.
fn check_run(dir: &Path, results: &Value, policy: &str) -> u64 {
    let run = run_of(results, policy);
    let viewers = run["viewers"].as_array().expect("viewers");
    assert_eq!(viewers.len(), 2, "both viewers played: {run:#}");
    let mut summed = 0;
    for v in viewers {
        let report = &v["report"];
        assert_eq!(report["policy"], policy, "{v:#}");
        assert_eq!(report["movie_bytes"], 1 << 20);
        assert!(report["complete_at_s"].as_f64().is_some(), "{v:#}");
        let penalty = report["penalty_bytes"].as_u64().expect("penalty_bytes");
        assert_eq!(v["score"]["penalty_bytes"], penalty);
        // Both bounds are lower bounds of what this very run paid.
        for bound in ["capacity", "ordering"] {
            let b = v["bounds"][bound].as_u64().expect("bounds are computed");
            assert!(
                b <= penalty,
                "{bound} bound {b} above the penalty {penalty}: {v:#}"
            );
        }
        assert!(
            report["peer_bytes"].as_u64().unwrap() + penalty >= 1 << 20,
            "every movie byte came from a peer or the server: {report:#}"
        );
        summed += penalty;
    }
    assert!(
        summed > 0,
        "the swarm is slower than playback: some penalty"
    );
    // The origin's meter, as the world itself recorded it, equals the summed penalty.
    let world: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("out/{policy}-1/world.json"))).expect("world.json"),
    )
    .expect("world.json is JSON");
    assert_eq!(world["origin_bytes_served"], summed, "{world:#}");
    assert_eq!(run["origin_bytes"], summed);
    let row = results["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == policy)
        .expect("a row");
    assert_eq!(row["penalty_bytes"], summed);
    assert_eq!(row["ok"], true);
    // The world's own peers traded (what the swarm did besides serving the viewers).
    assert!(row["peers_uploaded"].as_u64().unwrap() > 0, "{row:#}");

    // runs.csv: one line per viewer with its report's numbers.
    let csv = std::fs::read_to_string(dir.join("out/runs.csv")).expect("runs.csv");
    for v in viewers {
        let r = &v["report"];
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{policy},1,{},", v["name"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("no line for {policy} {} in\n{csv}", v["name"]));
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols[3], "true", "{line}");
        assert_eq!(cols[4], r["penalty_bytes"].to_string(), "{line}");
        assert_eq!(cols[6], r["pieces_from_server"].to_string(), "{line}");
        assert_eq!(cols[11], summed.to_string(), "origin column: {line}");
    }
    // summary.csv: one run, so the mean is that run's sum and the spread is zero.
    let summary = std::fs::read_to_string(dir.join("out/summary.csv")).expect("summary.csv");
    let line = summary
        .lines()
        .find(|l| l.starts_with(&format!("{policy},")))
        .unwrap_or_else(|| panic!("no {policy} in\n{summary}"));
    let cols: Vec<&str> = line.split(',').collect();
    assert_eq!(cols[1..3], ["1", "0"], "{line}");
    assert_eq!(cols[3].parse::<f64>().unwrap(), summed as f64, "{line}");
    assert_eq!(cols[4].parse::<f64>().unwrap(), 0.0, "{line}");
    summed
}

/// The printed table's penalty cell of `policy`: "mean ± sd [min-max]" in KiB.
fn table_penalty(stdout: &str, policy: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(policy))
        .unwrap_or_else(|| panic!("no {policy} line in the table:\n{stdout}"));
    let cells: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    cells[3].to_string()
}

#[test]
fn experiment_table_files_and_reports_agree_and_the_origin_meter_equals_the_penalty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = experiment(dir.path(), "deadline,rarest", &[]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = results(dir.path());
    for policy in ["deadline", "rarest"] {
        let summed = check_run(dir.path(), &results, policy);
        let kib = format!("{:.0}", summed as f64 / 1024.0);
        assert_eq!(
            table_penalty(&stdout, policy),
            format!("{kib} ± 0 [{kib}-{kib}]"),
            "{}",
            show(&out)
        );
    }
    // The deadline viewers' curves: contiguous bytes sampled over time, never above the movie,
    // reaching the whole movie by the end.
    let run = run_of(&results, "deadline");
    for v in run["viewers"].as_array().unwrap() {
        let samples = v["samples"].as_array().expect("samples");
        assert!(
            samples.len() >= 10,
            "sampled every 250 ms: {}",
            samples.len()
        );
        let last = samples.last().unwrap();
        assert_eq!(last["contiguous"], 1 << 20, "{last}");
        assert!(
            samples
                .iter()
                .all(|s| s["contiguous"].as_u64().unwrap() <= 1 << 20)
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("out/plot.svg")).expect("plot.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains(">deadline<") && svg.contains(">rarest<"),
        "one panel per policy"
    );
    assert!(
        svg.matches("<polyline").count() >= 6,
        "B(t) and the viewers' curves"
    );
    for name in ["table.txt", "table.md"] {
        let text = std::fs::read_to_string(dir.path().join("out").join(name)).expect(name);
        assert!(
            text.contains("deadline") && text.contains("rarest"),
            "{text}"
        );
    }
}

#[test]
fn the_libtorrent_competitor_completes_the_scenario_and_is_scored() {
    require_python_libtorrent();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = experiment(dir.path(), "libtorrent-deadline", &[]);
    assert!(out.status.success(), "{}", show(&out));
    let results = results(dir.path());
    let summed = check_run(dir.path(), &results, "libtorrent-deadline");
    let run = run_of(&results, "libtorrent-deadline");
    for v in run["viewers"].as_array().unwrap() {
        assert!(
            v["report"]["client"]
                .as_str()
                .unwrap()
                .starts_with("libtorrent"),
            "the report is lt_vod.py's: {v:#}"
        );
        let samples = v["samples"].as_array().unwrap();
        assert!(!samples.is_empty(), "status lines were read");
        // Its curve for the plot: contiguous bytes that never fall and reach the movie.
        let curve: Vec<u64> = samples
            .iter()
            .filter_map(|s| s["contiguous"].as_u64())
            .collect();
        assert!(curve.windows(2).all(|w| w[0] <= w[1]), "{curve:?}");
        assert_eq!(curve.last(), Some(&(1 << 20)), "{curve:?}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kib = format!("{:.0}", summed as f64 / 1024.0);
    assert_eq!(
        table_penalty(&stdout, "libtorrent-deadline"),
        format!("{kib} ± 0 [{kib}-{kib}]")
    );
}

#[test]
fn a_policy_runs_in_a_btvod_world_and_in_a_libtorrent_world_and_each_is_scored() {
    require_python_libtorrent();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = experiment(dir.path(), "deadline", &["--world", "both"]);
    assert!(out.status.success(), "{}", show(&out));
    let results = results(dir.path());
    let runs = results["runs"].as_array().expect("runs");
    let worlds: Vec<&str> = runs.iter().map(|r| r["world"].as_str().unwrap()).collect();
    assert_eq!(worlds, ["btvod", "libtorrent"], "{results:#}");
    for run in runs {
        let world = run["world"].as_str().unwrap();
        let penalty: u64 = run["viewers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["score"]["penalty_bytes"].as_u64().expect("scored"))
            .sum();
        assert_eq!(run["origin_bytes"], penalty, "{world} world: {run:#}");
        assert!(
            penalty > 0,
            "the swarm is slower than playback in the {world} world"
        );
        let peers_up: u64 = run["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["uploaded"].as_u64().unwrap())
            .sum();
        assert!(peers_up > 0, "the {world} world's peers uploaded: {run:#}");
        let log =
            std::fs::read_to_string(Path::new(run["dir"].as_str().unwrap()).join("events.log"))
                .expect("events.log");
        assert!(log.contains(&format!("incarnation 0, {world})")), "{log}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for world in ["btvod", "libtorrent"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["deadline", world])),
            "a table line for deadline in the {world} world:\n{stdout}"
        );
    }
    let csv = std::fs::read_to_string(dir.path().join("out/runs.csv")).expect("runs.csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|&c| c == "world")
        .expect("a world column");
    let in_lt_world = csv
        .lines()
        .filter(|l| l.split(',').nth(column) == Some("libtorrent"))
        .count();
    assert_eq!(
        in_lt_world, 2,
        "both viewers of the libtorrent world:\n{csv}"
    );
}

#[test]
fn bad_arguments_give_one_clear_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = experiment(dir.path(), "deadline,fastest", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown policy `fastest`"), "{stderr}");
    let out = experiment(dir.path(), "deadline", &["--deadline-set", "urgent_window"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected KEY=VALUE"),
        "{}",
        show(&out)
    );
    assert!(!dir.path().join("out/results.json").exists(), "nothing ran");
}
