//! An experiment viewer played by libtorrent: `scripts/lt_vod.py` as a child process, its JSON
//! event lines read for the curve and the report, stopped with SIGTERM so it writes its final
//! counters.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::viewer_job::ViewerJob;
use super::{Sample, ViewerOutcome};
use crate::experiment::error::ViewerError;
use crate::experiment::member::max_connections_args;

impl ViewerJob {
    pub(super) async fn play_libtorrent(
        &self,
        deadline: bool,
        dir: &Path,
        out: &mut ViewerOutcome,
        cancel: &CancellationToken,
        done: &mpsc::UnboundedSender<()>,
    ) -> Result<(), ViewerError> {
        std::fs::create_dir_all(dir).map_err(|source| ViewerError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let report_path = dir.join("report.json");
        let mut child = self
            .lt_command(deadline, dir, &report_path)
            .spawn()
            .map_err(|source| ViewerError::Spawn {
                program: self.options.python.clone(),
                source,
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ViewerError::Spawn {
                program: self.options.python.clone(),
                source: std::io::Error::other("no pipes to the child"),
            });
        };
        let errors = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut last = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                last = line;
            }
            last
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut listen = None;
        let completed = self
            .follow(&mut lines, out, &mut listen, cancel, done)
            .await;
        let status = stop(&mut child).await;
        self.world.shared().unlink(listen).await;
        let last_error = tokio::time::timeout(Duration::from_secs(2), errors)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        read_final_report(&report_path, out);
        if !completed {
            return Err(ViewerError::LibtorrentIncomplete {
                status: status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                last_error,
            });
        }
        Ok(())
    }

    fn lt_command(&self, deadline: bool, dir: &Path, report: &Path) -> Command {
        let c = &self.class;
        let max_s = self.bound.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        let world = &self.world;
        let mut cmd = Command::new(&self.options.python);
        cmd.arg(&self.options.lt_script)
            .arg("--torrent")
            .arg(world.torrent_path())
            .arg("--save-path")
            .arg(dir)
            .args(["--rate", &c.rate.to_string()])
            .args(["--delay", &c.delay.as_secs_f64().to_string()])
            .args(["--prefetch", &c.prefetch.as_secs_f64().to_string()])
            .args(["--file", &self.file().to_string()])
            .args(["--server", world.origin_url()])
            .args(["--mode", if deadline { "deadline" } else { "sequential" }])
            .args(["--tracker", world.tracker_url()])
            .args(["--upload-limit", &c.limits.upload.to_string()])
            .args(max_connections_args(c.limits))
            .args(["--max-seconds", &max_s.as_secs().to_string()])
            .arg("--report")
            .arg(report)
            .arg("--seed-after")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Reads the child's event lines until the run ends, the child exits, or the viewer's
    /// `stay` after completing is over; true if it completed the movie.
    async fn follow(
        &self,
        lines: &mut Lines<BufReader<ChildStdout>>,
        out: &mut ViewerOutcome,
        listen: &mut Option<SocketAddr>,
        cancel: &CancellationToken,
        done: &mpsc::UnboundedSender<()>,
    ) -> bool {
        let mut completed_at: Option<Instant> = None;
        let stay_over = |at: Option<Instant>| async move {
            match (at, self.class.stay) {
                (Some(at), Some(d)) => sleep_until(at + d).await,
                _ => std::future::pending().await,
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = stay_over(completed_at) => break,
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    match take_event(&line, out) {
                        Some(Event::Complete) if completed_at.is_none() => {
                            completed_at = Some(Instant::now());
                            let _ = done.send(());
                        }
                        Some(Event::Started) => {
                            let t0 = Instant::now() - self.world.started();
                            out.world_offset_s = Some(t0.as_secs_f64());
                        }
                        Some(Event::Listening(port)) => {
                            let addr = SocketAddr::from(([127, 0, 0, 1], port));
                            self.world.shared().link_viewer(addr).await;
                            *listen = Some(addr);
                        }
                        _ => {}
                    }
                }
            }
        }
        completed_at.is_some()
    }
}

#[derive(PartialEq)]
enum Event {
    Listening(u16),
    /// Its t = 0 (read a moment after: later, never earlier, which keeps the bounds low).
    Started,
    Complete,
    Other,
}

/// Folds one event line of lt_vod.py into the outcome (lines that are not events are skipped).
fn take_event(line: &str, out: &mut ViewerOutcome) -> Option<Event> {
    let event = serde_json::from_str::<serde_json::Value>(line).ok()?;
    match event["event"].as_str() {
        Some("listening") => {
            let port = event["port"].as_u64().and_then(|p| u16::try_from(p).ok())?;
            return Some(Event::Listening(port));
        }
        Some("status") => out.samples.push(Sample {
            t: event["t"].as_f64().unwrap_or(0.0),
            contiguous: event["contiguous"].as_u64(),
            penalty: event["penalty"].as_u64().unwrap_or(0),
            downloaded: event["downloaded"].as_u64().unwrap_or(0),
        }),
        Some("started") => return Some(Event::Started),
        Some("complete") => {
            out.report = Some(event["report"].clone());
            out.score = serde_json::from_value(event["report"].clone()).ok();
            return Some(Event::Complete);
        }
        Some("timeout") | Some("stopped") if out.report.is_none() => {
            out.report = Some(event["report"].clone());
            out.score = serde_json::from_value(event["report"].clone()).ok();
        }
        _ => {}
    }
    Some(Event::Other)
}

/// SIGTERM: lt_vod.py rewrites its report with the final counters and exits (killed if it
/// has not within 15 s). Its exit status, if it exited.
async fn stop(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// Takes the payload totals (and the report, if no event carried one) from the report file
/// lt_vod.py wrote last.
fn read_final_report(path: &Path, out: &mut ViewerOutcome) {
    let Some(report) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return;
    };
    out.downloaded = report["downloaded_bytes"].as_u64().unwrap_or(0);
    out.uploaded = report["uploaded_bytes"].as_u64().unwrap_or(0);
    if out.report.is_none() {
        out.score = serde_json::from_value(report.clone()).ok();
        out.report = Some(report);
    }
}
