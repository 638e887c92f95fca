//! An experiment's results: per-run numbers, per-policy statistics (mean, standard deviation,
//! min and max over runs), the table printed at the end, and the CSV and JSON files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::roster::PeerRole;
use super::runner::RunOutcome;

/// Mean, sample standard deviation, min and max of some runs' values.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Stat {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Stat {
            n,
            mean,
            sd: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One run reduced to the numbers compared (sums and means over its viewers).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRow {
    pub policy: String,
    /// Which clients the world's peers ran.
    pub world: String,
    pub run: u32,
    pub ok: bool,
    pub viewers: usize,
    /// Sum of the viewers' penalties.
    pub penalty_bytes: u64,
    /// Summed penalty over summed movie lengths.
    pub penalty_fraction: f64,
    pub origin_bytes: u64,
    /// Sums over the viewers of their penalty bounds (`runner::PenaltyBounds`); `None` when
    /// some viewer has none (a world in parts records no bounds).
    pub capacity_bound_bytes: Option<u64>,
    pub ordering_bound_bytes: Option<u64>,
    /// Mean over viewers.
    pub stall_s: f64,
    /// Mean over viewers of `complete_at_s` (`None` if one did not complete).
    pub complete_s: Option<f64>,
    pub viewers_uploaded: u64,
    /// What the world's own peers (seeds, partial peers) downloaded and uploaded.
    pub peers_downloaded: u64,
    pub peers_uploaded: u64,
    pub wall_s: f64,
}

impl RunRow {
    pub fn of(run: &RunOutcome) -> RunRow {
        let scores: Vec<_> = run
            .viewers
            .iter()
            .filter_map(|v| v.score.as_ref())
            .collect();
        let movie: u64 = scores.iter().map(|s| s.movie_bytes).sum();
        let penalty = run.penalty_sum();
        let n = scores.len().max(1) as f64;
        let completes: Option<Vec<f64>> = if scores.len() == run.viewers.len() {
            scores.iter().map(|s| s.complete_at_s).collect()
        } else {
            None
        };
        let world = run.peers.iter().filter(|p| p.role != PeerRole::Viewer);
        let bounds: Option<Vec<_>> = run.viewers.iter().map(|v| v.bounds).collect();
        RunRow {
            policy: run.policy.clone(),
            world: run.world.clone(),
            run: run.run,
            ok: run.ok(),
            viewers: run.viewers.len(),
            penalty_bytes: penalty,
            penalty_fraction: penalty as f64 / movie.max(1) as f64,
            origin_bytes: run.origin_bytes,
            capacity_bound_bytes: bounds.as_ref().map(|b| b.iter().map(|b| b.capacity).sum()),
            ordering_bound_bytes: bounds.as_ref().map(|b| b.iter().map(|b| b.ordering).sum()),
            stall_s: scores.iter().map(|s| s.stall_s).sum::<f64>() / n,
            complete_s: completes.map(|c| c.iter().sum::<f64>() / c.len().max(1) as f64),
            viewers_uploaded: run.viewers.iter().map(|v| v.uploaded).sum(),
            peers_downloaded: world.clone().map(|p| p.downloaded).sum(),
            peers_uploaded: world.map(|p| p.uploaded).sum(),
            wall_s: run.wall_s,
        }
    }
}

/// One policy in one kind of world over its runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicySummary {
    pub policy: String,
    pub world: String,
    pub runs: usize,
    /// Runs where a viewer failed or did not complete in time (left out of the statistics).
    pub failed_runs: usize,
    pub penalty_bytes: Stat,
    pub penalty_fraction: Stat,
    pub capacity_bound_bytes: Stat,
    pub ordering_bound_bytes: Stat,
    pub stall_s: Stat,
    pub complete_s: Stat,
    pub peers_downloaded: Stat,
    pub peers_uploaded: Stat,
}

/// Per-policy summaries, world by world, in the order they first appear.
pub fn summarise(rows: &[RunRow]) -> Vec<PolicySummary> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        let key = (r.world.as_str(), r.policy.as_str());
        if !order.contains(&key) {
            order.push(key);
        }
    }
    order.sort_by_key(|&(world, _)| order_of(rows, world));
    order
        .into_iter()
        .map(|(world, policy)| {
            let all: Vec<&RunRow> = rows
                .iter()
                .filter(|r| r.policy == policy && r.world == world)
                .collect();
            let good: Vec<&RunRow> = all.iter().copied().filter(|r| r.ok).collect();
            let stat = |f: &dyn Fn(&RunRow) -> f64| {
                Stat::of(&good.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let known = |f: &dyn Fn(&RunRow) -> Option<u64>| {
                Stat::of(
                    &good
                        .iter()
                        .filter_map(|r| f(r))
                        .map(|b| b as f64)
                        .collect::<Vec<_>>(),
                )
            };
            PolicySummary {
                policy: policy.to_string(),
                world: world.to_string(),
                runs: all.len(),
                failed_runs: all.len() - good.len(),
                penalty_bytes: stat(&|r| r.penalty_bytes as f64),
                penalty_fraction: stat(&|r| r.penalty_fraction),
                capacity_bound_bytes: known(&|r| r.capacity_bound_bytes),
                ordering_bound_bytes: known(&|r| r.ordering_bound_bytes),
                stall_s: stat(&|r| r.stall_s),
                complete_s: stat(&|r| r.complete_s.unwrap_or(f64::NAN)),
                peers_downloaded: stat(&|r| r.peers_downloaded as f64),
                peers_uploaded: stat(&|r| r.peers_uploaded as f64),
            }
        })
        .collect()
}

/// Where a world first appears among the rows (the sort above is stable, so policies keep
/// their order within a world).
fn order_of(rows: &[RunRow], world: &str) -> usize {
    rows.iter().position(|r| r.world == world).unwrap_or(0)
}

fn kib(b: f64) -> f64 {
    b / 1024.0
}

fn spread(s: &Stat, scale: f64, digits: usize) -> String {
    if s.n == 0 {
        return "-".into();
    }
    format!(
        "{:.d$} ± {:.d$} [{:.d$}-{:.d$}]",
        s.mean * scale,
        s.sd * scale,
        s.min * scale,
        s.max * scale,
        d = digits
    )
}

/// The columns of the table, with each cell as text.
fn cells(s: &PolicySummary) -> [String; 10] {
    [
        s.policy.clone(),
        s.world.clone(),
        if s.failed_runs > 0 {
            format!("{} ({} failed)", s.runs, s.failed_runs)
        } else {
            s.runs.to_string()
        },
        spread(&s.penalty_bytes, kib(1.0), 0),
        spread(&s.penalty_fraction, 100.0, 1),
        spread(&s.capacity_bound_bytes, kib(1.0), 0),
        spread(&s.ordering_bound_bytes, kib(1.0), 0),
        spread(&s.stall_s, 1.0, 1),
        spread(&s.complete_s, 1.0, 1),
        format!(
            "{:.0} / {:.0}",
            kib(s.peers_downloaded.mean),
            kib(s.peers_uploaded.mean)
        ),
    ]
}

const HEADERS: [&str; 10] = [
    "policy",
    "world",
    "runs",
    "penalty KiB",
    "penalty %",
    "capacity bound KiB",
    "ordering bound KiB",
    "stall s",
    "complete s",
    "peers down/up KiB",
];

/// The table printed at the end: mean ± standard deviation [min-max] over runs.
pub fn render_table(summaries: &[PolicySummary]) -> String {
    let rows: Vec<[String; 10]> = summaries.iter().map(cells).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                let _ = write!(out, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{c}", " ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(String::from));
    for row in &rows {
        out += &line(row);
    }
    out
}

/// The same table in Markdown, with the scenario's name in the first column.
pub fn render_markdown(scenario: &str, summaries: &[PolicySummary], header: bool) -> String {
    let mut out = String::new();
    if header {
        out += "| scenario | ";
        out += &HEADERS.join(" | ");
        out += " |\n|---|";
        out += &"---|".repeat(HEADERS.len());
        out += "\n";
    }
    for s in summaries {
        let _ = writeln!(out, "| {scenario} | {} |", cells(s).join(" | "));
    }
    out
}

#[derive(Serialize)]
struct ResultsFile<'a> {
    scenario: &'a str,
    seed: u64,
    summary: &'a [PolicySummary],
    rows: &'a [RunRow],
    runs: &'a [RunOutcome],
}

/// Writes `runs.csv` (one line per viewer per run), `summary.csv`, `results.json` (everything,
/// with each viewer's report and curve), `table.txt` and `table.md` into `out`.
pub fn write_files(
    out: &Path,
    scenario: &str,
    seed: u64,
    runs: &[RunOutcome],
) -> std::io::Result<Vec<PathBuf>> {
    let rows: Vec<RunRow> = runs.iter().map(RunRow::of).collect();
    let summaries = summarise(&rows);
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> std::io::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };

    let mut csv = String::from(
        "policy,run,viewer,completed,penalty_bytes,penalty_fraction,pieces_from_server,\
         peer_bytes,stall_s,complete_at_s,uploaded_bytes,origin_bytes,peers_downloaded,\
         peers_uploaded,error,world,capacity_bound_bytes,ordering_bound_bytes\n",
    );
    for (run, row) in runs.iter().zip(&rows) {
        for v in &run.viewers {
            let s = v.score.clone().unwrap_or_default();
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:.6},{},{},{:.3},{},{},{},{},{},{},{},{},{}",
                run.policy,
                run.run,
                v.name,
                s.complete_at_s.is_some(),
                s.penalty_bytes,
                s.penalty_fraction,
                s.pieces_from_server,
                s.peer_bytes,
                s.stall_s,
                s.complete_at_s
                    .map(|t| format!("{t:.3}"))
                    .unwrap_or_default(),
                v.uploaded,
                run.origin_bytes,
                row.peers_downloaded,
                row.peers_uploaded,
                csv_text(v.error.as_deref().or(run.error.as_deref()).unwrap_or("")),
                run.world,
                v.bounds.map(|b| b.capacity.to_string()).unwrap_or_default(),
                v.bounds.map(|b| b.ordering.to_string()).unwrap_or_default(),
            );
        }
    }
    put("runs.csv", csv)?;

    let mut csv = String::from("policy,runs,failed_runs");
    for col in [
        "penalty_bytes",
        "penalty_fraction",
        "stall_s",
        "complete_s",
        "peers_downloaded",
        "peers_uploaded",
        "capacity_bound_bytes",
        "ordering_bound_bytes",
    ] {
        for stat in ["mean", "sd", "min", "max"] {
            let _ = write!(csv, ",{col}_{stat}");
        }
    }
    csv.push_str(",world\n");
    for s in &summaries {
        let _ = write!(csv, "{},{},{}", s.policy, s.runs, s.failed_runs);
        for st in [
            s.penalty_bytes,
            s.penalty_fraction,
            s.stall_s,
            s.complete_s,
            s.peers_downloaded,
            s.peers_uploaded,
            s.capacity_bound_bytes,
            s.ordering_bound_bytes,
        ] {
            let _ = write!(csv, ",{},{},{},{}", st.mean, st.sd, st.min, st.max);
        }
        let _ = writeln!(csv, ",{}", s.world);
    }
    put("summary.csv", csv)?;

    let json = serde_json::to_string_pretty(&ResultsFile {
        scenario,
        seed,
        summary: &summaries,
        rows: &rows,
        runs,
    })
    .map_err(std::io::Error::other)?;
    put("results.json", json + "\n")?;
    put("table.txt", render_table(&summaries))?;
    put("table.md", render_markdown(scenario, &summaries, true))?;
    Ok(written)
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace('\n', " "))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_sample_sd_and_range() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(s.n, 4);
        assert!((s.mean - 3.0).abs() < 1e-12);
        assert!((s.sd - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 6.0));
        assert_eq!(Stat::of(&[5.0]).sd, 0.0);
        assert_eq!(Stat::of(&[]).n, 0);
    }

    #[test]
    fn csv_text_quotes_only_when_needed() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
