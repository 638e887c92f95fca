//! The simulator against the real worlds: every shipped scenario recorded in
//! `scripts/scenarios/real-penalties.csv` (btvod's policies in btvod worlds at 0 ms, written by
//! `scripts/bench/penalty_goals.py --record` from a run of `scripts/bench-penalty.sh`) is
//! simulated (`btvod simulate`'s model), and wherever the real runs put one policy clearly
//! ahead of another (by more than the larger spread), the simulator must rank them the same
//! way. The distance between simulated and real penalties is printed, not asserted: it is
//! what BENCHMARKS.md "Scale" reports.

use std::collections::HashMap;
use std::path::Path;

use btvod::experiment::Scenario;
use btvod::experiment::simulate::simulate;
use btvod::experiment::world::build_content;
use btvod::proto::metainfo::Metainfo;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Real {
    mean: f64,
    sd: f64,
}

fn record() -> HashMap<String, HashMap<String, Real>> {
    let path = Path::new(ROOT).join("scripts/scenarios/real-penalties.csv");
    let text = std::fs::read_to_string(&path).expect("the recorded real penalties");
    let mut out: HashMap<String, HashMap<String, Real>> = HashMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let real = Real {
            mean: f[3].parse().unwrap(),
            sd: f[4].parse().unwrap(),
        };
        out.entry(f[0].to_string())
            .or_default()
            .insert(f[1].to_string(), real);
    }
    out
}

fn simulated(name: &str, dir: &Path) -> HashMap<String, f64> {
    let path = Path::new(ROOT).join(format!("scripts/scenarios/{name}.toml"));
    let scenario = Scenario::load(&path).unwrap();
    let (_, bytes) = build_content(&scenario.content, &dir.join(name), "http://x/a").unwrap();
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    simulate(&scenario, &meta, 3, &Default::default())
        .unwrap()
        .into_iter()
        // One viewer class per shipped scenario; "rarest-first" is the record's "rarest".
        .map(|r| (r.policy.replace("rarest-first", "rarest"), 100.0 * r.mean()))
        .collect()
}

#[test]
fn the_simulator_ranks_btvods_policies_as_the_real_worlds_do() {
    let dir = tempfile::tempdir().unwrap();
    let record = record();
    assert!(
        record.len() >= 7,
        "every shipped scenario with viewers is recorded"
    );
    let mut disagreements = Vec::new();
    let mut names: Vec<&String> = record.keys().collect();
    names.sort();
    for name in names {
        let real = &record[name];
        let sim = simulated(name, dir.path());
        for (policy, r) in real {
            eprintln!(
                "{name:12} {policy:10} real {:5.1} ± {:4.1}  simulated {:5.1}",
                r.mean, r.sd, sim[policy]
            );
        }
        for (a, ra) in real {
            for (b, rb) in real {
                let clearly_ahead = ra.mean + ra.sd.max(rb.sd) < rb.mean;
                if clearly_ahead && sim[a] > sim[b] {
                    disagreements.push(format!(
                        "{name}: real {a} {:.1} < {b} {:.1}, simulated {:.1} > {:.1}",
                        ra.mean, rb.mean, sim[a], sim[b]
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
