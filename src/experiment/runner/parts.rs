//! One experiment run spread over several `btvod world --part K/N` processes, each placed by
//! a command template (`ip netns exec host{k} {cmd}`, an ssh line) or run here: part 1 first
//! (its tracker and origin), then the others with their URLs; every part plays its share of
//! the viewers under the run's policy. The parts' `world.json` files are read while they run
//! and merged at the end into the one outcome a single world gives (no curves or bounds: those
//! need one process's record of every member).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use super::{PeerTraffic, ProgressFn, RunOutcome, RunnerOptions, ViewerOutcome, run_bound};
use crate::engine::report::VodReport;
use crate::engine::session::PolicyKind;
use crate::experiment::roster::PeerRole;
use crate::experiment::scenario::Scenario;
use crate::proto::metainfo::Metainfo;

/// How each run's world is spread over processes or hosts.
#[derive(Debug, Clone)]
pub struct PartsPlan {
    pub n: u32,
    /// How part `{k}`'s command `{cmd}` is run (through `sh -c`); `None`: directly, here.
    pub host_cmd: Option<String>,
    /// Part `{k}`'s address (`--bind`); `None`: 127.0.0.1.
    pub host_addr: Option<String>,
    /// The scenario file the parts load (the same on every host).
    pub scenario: PathBuf,
    /// The btvod binary the parts run.
    pub btvod: PathBuf,
}

/// How long part 1 has to write its first `world.json`, and a stopped part to exit.
const START_BOUND: Duration = Duration::from_secs(60);
const STOP_BOUND: Duration = Duration::from_secs(30);

/// A part's process group, killed whole if still running when dropped.
struct PartProcess {
    k: u32,
    dir: PathBuf,
    child: Child,
}

impl Drop for PartProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: killpg only sends a signal; the group is the one this part leads.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl PartProcess {
    fn world_json(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.join("world.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM to the group (the world stops and writes its final `world.json`), then waits.
    async fn stop(&mut self) -> Result<(), String> {
        if let Some(pid) = self.child.id() {
            // SAFETY: as in drop.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGTERM) };
        }
        match tokio::time::timeout(STOP_BOUND, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            // A wrapper (ssh, a shell) that died of the signal the part got too.
            Ok(Ok(status)) if status.signal() == Some(libc::SIGTERM) => Ok(()),
            Ok(Ok(status)) => Err(format!("part {} exited with {status}", self.k)),
            Ok(Err(e)) => Err(format!("part {}: {e}", self.k)),
            Err(_) => Err(format!(
                "part {} did not stop within {STOP_BOUND:?}",
                self.k
            )),
        }
    }
}

/// One run of `policy` in `scenario` spread over `plan.n` parts under `dir/part-K`.
pub(super) async fn run_in_parts(
    scenario: &Scenario,
    plan: &PartsPlan,
    policy: PolicyKind,
    outcome: &mut RunOutcome,
    options: &RunnerOptions,
    progress: &ProgressFn,
) {
    let dir = outcome.dir.clone();
    let mut parts = Vec::new();
    let started = start_parts(scenario, plan, policy, &dir, &mut parts).await;
    let meta = match started {
        Ok(meta) => meta,
        Err(e) => {
            outcome.error = Some(e);
            for part in &mut parts {
                let _ = part.stop().await;
            }
            return;
        }
    };
    let t0 = Instant::now();
    let end = t0 + run_bound(scenario, &meta, options.slack);
    let viewers = scenario.viewer_count() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let worlds: Vec<Value> = parts.iter().filter_map(PartProcess::world_json).collect();
        let done = viewers_done(&worlds);
        progress(super::Progress::Tick {
            policy: policy.name(),
            world: scenario.world_kind(),
            run: outcome.run,
            t: t0.elapsed().as_secs_f64(),
            viewers_done: done,
            viewers,
            origin_bytes: worlds
                .first()
                .map_or(0, |w| u64_at(w, "origin_bytes_served")),
        });
        if done >= viewers {
            break;
        }
        if Instant::now() >= end {
            outcome.timed_out = true;
            break;
        }
        if let Some(k) = parts.iter_mut().find_map(|p| p.exited().then_some(p.k)) {
            outcome.error = Some(format!("part {k} exited early (log: part-{k}.log)"));
            break;
        }
    }
    // The later parts first, so part 1's tracker and origin outlive their peers.
    for part in parts.iter_mut().rev() {
        if let Err(e) = part.stop().await {
            outcome.error.get_or_insert(e);
        }
    }
    let worlds: Vec<Value> = parts.iter().filter_map(PartProcess::world_json).collect();
    if worlds.len() != parts.len() {
        outcome
            .error
            .get_or_insert("a part left no world.json".into());
    }
    merge(scenario, &worlds, outcome);
}

/// Starts part 1, waits for its URLs, then the others; the torrent's metainfo once all run.
async fn start_parts(
    scenario: &Scenario,
    plan: &PartsPlan,
    policy: PolicyKind,
    dir: &Path,
    parts: &mut Vec<PartProcess>,
) -> Result<Metainfo, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let mut remote = None;
    for k in 1..=plan.n {
        let part = spawn_part(scenario, plan, policy, dir, k, remote.as_ref())?;
        let world = wait_world_json(&part).await;
        parts.push(part);
        let world = world?;
        if k == 1 {
            let tracker = world["tracker_url"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let origin = world["origin_url"].as_str().unwrap_or_default().to_string();
            let torrent = world["torrent"].as_str().unwrap_or_default().to_string();
            remote = Some((tracker, origin, torrent));
        }
    }
    let (_, _, torrent) = remote.unwrap_or_default();
    let bytes = std::fs::read(&torrent).map_err(|e| format!("part 1's torrent {torrent}: {e}"))?;
    Metainfo::from_bytes(&bytes).map_err(|e| format!("part 1's torrent: {e}"))
}

fn spawn_part(
    scenario: &Scenario,
    plan: &PartsPlan,
    policy: PolicyKind,
    dir: &Path,
    k: u32,
    remote: Option<&(String, String, String)>,
) -> Result<PartProcess, String> {
    let fill = |template: &str| template.replace("{k}", &k.to_string());
    let part_dir = dir.join(format!("part-{k}"));
    let mut args: Vec<String> = vec![
        plan.btvod.display().to_string(),
        "world".into(),
        plan.scenario.display().to_string(),
        "--run-dir".into(),
        part_dir.display().to_string(),
        "--part".into(),
        format!("{k}/{}", plan.n),
        "--bind".into(),
        plan.host_addr.as_deref().map_or("127.0.0.1".into(), fill),
        "--viewer-policy".into(),
        policy.name().into(),
    ];
    if let Some(client) = scenario.peers.first().map(|c| c.client)
        && scenario.peers.iter().all(|c| c.client == client)
    {
        args.extend(["--peer-client".into(), client.name().into()]);
    }
    if let Some((tracker, origin, _)) = remote {
        args.extend(["--tracker".into(), tracker.clone()]);
        args.extend(["--origin".into(), origin.clone()]);
    }
    let mut command = match &plan.host_cmd {
        Some(template) => {
            // `exec`: the part's process is the template's command, which itself execs btvod
            // (ip netns exec does) or carries the signal on (ssh).
            let line = format!(
                "exec {}",
                fill(template).replace("{cmd}", &shell_words(&args))
            );
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
        None => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let log_path = dir.join(format!("part-{k}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start part {k}: {e}"))?;
    Ok(PartProcess {
        k,
        dir: part_dir,
        child,
    })
}

/// The part's first `world.json` (written once its world runs), or why not.
async fn wait_world_json(part: &PartProcess) -> Result<Value, String> {
    let end = Instant::now() + START_BOUND;
    loop {
        if let Some(world) = part.world_json() {
            return Ok(world);
        }
        if Instant::now() >= end {
            return Err(format!(
                "part {} did not start within {START_BOUND:?}",
                part.k
            ));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Single-quoted for `sh`, each word.
fn shell_words(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    quoted.join(" ")
}

fn u64_at(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

fn records(worlds: &[Value]) -> impl Iterator<Item = &Value> {
    worlds
        .iter()
        .flat_map(|w| w["peers"].as_array().into_iter().flatten())
}

fn viewers_done(worlds: &[Value]) -> usize {
    records(worlds)
        .filter(|r| r["role"] == "viewer")
        .filter(|r| !r["report"].is_null() || r["state"] == "failed")
        .count()
}

/// Every part's viewers and world peers into `outcome`; the origin's meter is part 1's.
fn merge(scenario: &Scenario, worlds: &[Value], outcome: &mut RunOutcome) {
    outcome.origin_bytes = worlds
        .first()
        .map_or(0, |w| u64_at(w, "origin_bytes_served"));
    for record in records(worlds) {
        let name = record["name"].as_str().unwrap_or_default().to_string();
        let class = record["class"].as_str().unwrap_or_default().to_string();
        let role = match record["role"].as_str() {
            Some("viewer") => PeerRole::Viewer,
            Some("seed") => PeerRole::Seed,
            _ => PeerRole::Partial,
        };
        if role != PeerRole::Viewer {
            outcome.peers.push(PeerTraffic {
                name,
                class,
                role,
                downloaded: u64_at(record, "downloaded"),
                uploaded: u64_at(record, "uploaded"),
                completions: u64_at(record, "completions") as u32,
            });
            continue;
        }
        let Some(spec) = scenario.viewers.iter().find(|c| c.name == class) else {
            continue;
        };
        let i: u32 = name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let report = (!record["report"].is_null()).then(|| record["report"].clone());
        outcome.viewers.push(ViewerOutcome {
            name,
            class,
            arrive_s: spec.arrival.of(i, spec.count).as_secs_f64(),
            rate_bytes_per_s: spec.rate,
            delay_s: spec.delay.as_secs_f64(),
            prefetch_s: spec.prefetch.as_secs_f64(),
            score: report
                .as_ref()
                .and_then(|r| serde_json::from_value::<VodReport>(r.clone()).ok()),
            report,
            samples: Vec::new(),
            downloaded: u64_at(record, "downloaded"),
            uploaded: u64_at(record, "uploaded"),
            error: record["error"].as_str().map(str::to_string),
            world_offset_s: None,
            bounds: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_sh() {
        let words = vec!["a b".to_string(), "it's".to_string()];
        assert_eq!(shell_words(&words), r"'a b' 'it'\''s'");
    }
}
