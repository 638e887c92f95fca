//! A world over several hosts: `btvod experiment --parts 2` runs a scenario as two
//! `btvod world --part K/2` processes, each in a network namespace of its own (its own
//! address on a bridge, what it sends shaped by the kernel's `tc tbf`) when the test can make
//! them, else as two processes on loopback (said in the output). The merged table counts every
//! peer and viewer once, and the origin's meter (in part 1) equals the penalty summed over
//! both parts' viewers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::netns::Lan;
use serde_json::Value;

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");

/// Two seeds too slow for two viewers (64 KiB/s each, the movie at 128 KiB/s), so both buy
/// from the origin, and two partial peers.
const SCENARIO: &str = r#"
name = "parts"
seed = 21
[content]
name = "movie.bin"
size = "2MiB"
piece_size = "64KiB"
[[peers]]
name = "seed"
count = 2
have = 1.0
upload = "64KiB"
[[peers]]
name = "partial"
count = 2
have = 0.5
upload = "64KiB"
[[viewers]]
count = 2
rate = "128KiB"
delay = 2
prefetch = 1
"#;

fn experiment(dir: &Path, extra: &[String]) -> std::process::Output {
    let scenario = dir.join("parts.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["180", BTVOD, "experiment"])
        .arg(&scenario)
        .args(["--policies", "deadline", "--parts", "2", "--out"])
        .arg(dir.join("out"))
        .args(["--slack", "20", "-q"])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("experiment took {:?}", started.elapsed());
    out
}

#[test]
fn a_scenario_in_two_parts_gives_one_table_that_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let lan = Lan::try_new(2, true);
    let extra = match &lan {
        Ok(lan) => {
            for host in &lan.hosts {
                host.shape("16mbit").unwrap();
            }
            let ns = lan.namespace_template();
            vec![
                "--host-cmd".to_string(),
                format!("ip netns exec {ns} {{cmd}}"),
                "--host-addr".to_string(),
                "10.77.0.{k}".to_string(),
            ]
        }
        Err(e) => {
            eprintln!("two processes on loopback: network namespaces cannot be made here ({e})");
            Vec::new()
        }
    };
    let out = experiment(dir.path(), &extra);
    let text = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{log}");

    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    let run = &results["runs"][0];
    let context = format!("{run:#}\n{text}\n{log}");
    assert_eq!(run["error"], Value::Null, "{context}");
    let mut peers: Vec<&str> = run["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        ["partial-0", "partial-1", "seed-0", "seed-1"],
        "{context}"
    );
    let viewers = run["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 2, "{context}");
    let penalties: Vec<u64> = viewers
        .iter()
        .map(|v| v["score"]["penalty_bytes"].as_u64().expect("scored"))
        .collect();
    assert!(penalties.iter().all(|p| *p > 0), "{context}");
    assert_eq!(
        run["origin_bytes"].as_u64().unwrap(),
        penalties.iter().sum::<u64>(),
        "the origin's meter against the summed penalty: {context}"
    );

    // Each part ran its own share, and every part process is gone.
    let run_dir = dir.path().join("out/deadline-1");
    for k in 1..=2 {
        let world: Value = serde_json::from_str(
            &std::fs::read_to_string(run_dir.join(format!("part-{k}/world.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(world["part"], format!("{k}/2"));
        assert_eq!(world["peers"].as_array().unwrap().len(), 3, "{world:#}");
        let pid = world["pid"].as_u64().unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "part {k} (pid {pid}) still runs"
        );
        if let Ok(lan) = &lan {
            assert!(
                world["tracker_url"].as_str().unwrap().contains("10.77.0.1"),
                "{world:#}"
            );
            // The peers of host 2 reached those of host 1 through the shaped link.
            assert!(lan.hosts[k - 1].shaped_bytes() > 256 * 1024, "host {k}");
        }
    }
    // Every part's log says it stopped on the signal, not by a kill.
    for k in 1..=2 {
        let log = std::fs::read_to_string(run_dir.join(format!("part-{k}.log"))).unwrap();
        assert!(log.contains("world stopped"), "part {k}:\n{log}");
    }
}
