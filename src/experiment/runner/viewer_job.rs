//! One viewer of an experiment run: it arrives on its class's schedule, plays the movie under
//! the run's contender (a btvod session in this process, or `lt_vod.py`), samples its curve,
//! and seeds after completing for the class's `stay` or until the run ends.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Contender, RunnerOptions, Sample, ViewerOutcome};
use crate::engine::report::VodReport;
use crate::engine::session::{self, Content, PolicyKind};
use crate::experiment::error::ViewerError;
use crate::experiment::scenario::ViewerClass;
use crate::experiment::world::World;

/// One viewer of a run.
pub(super) struct ViewerJob {
    pub world: Arc<World>,
    pub class: ViewerClass,
    pub class_index: usize,
    pub i: u32,
    pub contender: Contender,
    pub options: RunnerOptions,
    pub arrive: Instant,
    /// When the run ends at the latest.
    pub bound: Instant,
}

impl ViewerJob {
    pub fn name(&self) -> String {
        format!("{}-{}", self.class.name, self.i)
    }

    pub fn file(&self) -> usize {
        self.world
            .metainfo()
            .movie_file(self.class.file.as_deref())
            .unwrap_or(0)
    }

    fn outcome(&self) -> ViewerOutcome {
        ViewerOutcome {
            name: self.name(),
            class: self.class.name.clone(),
            arrive_s: self
                .class
                .arrival
                .of(self.i, self.class.count)
                .as_secs_f64(),
            rate_bytes_per_s: self.class.rate,
            delay_s: self.class.delay.as_secs_f64(),
            prefetch_s: self.class.prefetch.as_secs_f64(),
            score: None,
            report: None,
            samples: Vec::new(),
            downloaded: 0,
            uploaded: 0,
            error: None,
            world_offset_s: None,
            bounds: None,
        }
    }

    /// Plays; `done` is told once, when the viewer completes or fails.
    pub async fn run(
        self,
        cancel: CancellationToken,
        done: mpsc::UnboundedSender<()>,
    ) -> ViewerOutcome {
        let mut out = self.outcome();
        tokio::select! {
            _ = cancel.cancelled() => {
                out.error = Some("the run ended before this viewer arrived".into());
                return out;
            }
            _ = sleep_until(self.arrive) => {}
        }
        let dir = self.world.run_dir().join("viewers").join(self.name());
        let result = match self.contender {
            Contender::Btvod(kind) => self.play_btvod(kind, &dir, &mut out, &cancel, &done).await,
            Contender::Libtorrent { deadline } => {
                self.play_libtorrent(deadline, &dir, &mut out, &cancel, &done)
                    .await
            }
        };
        if result.is_err() || out.score.is_none() {
            // Not counted at completion: a viewer that failed is done too.
            let _ = done.send(());
        }
        if let Err(e) = result {
            tracing::warn!("{}: {e}", self.name());
            out.error = Some(e.to_string());
        }
        out
    }

    async fn play_btvod(
        &self,
        kind: PolicyKind,
        dir: &Path,
        out: &mut ViewerOutcome,
        cancel: &CancellationToken,
        done: &mpsc::UnboundedSender<()>,
    ) -> Result<(), ViewerError> {
        let meta = self.world.metainfo();
        let shared = self.world.shared();
        let params = shared.viewer_params(self.class_index)?;
        let options = shared
            .viewer_options(
                self.class_index,
                self.i,
                kind,
                self.options.deadline.clone(),
            )
            .await?;
        let started = Instant::now();
        out.world_offset_s = Some((started - self.world.started()).as_secs_f64());
        let target = Content::SaveAs(dir.join(&meta.name));
        let session = session::start(meta, target, options, |_, _| {}).await?;
        let listen = session.torrent.listen_addr;
        if let Some(addr) = listen {
            shared.link_viewer(addr).await;
        }
        let stats = session.torrent.stats.clone();
        let mut tick = tokio::time::interval(self.options.sample_every);
        let mut completed = false;
        let mut failure = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = stats.borrow().clone();
            let Some(v) = &s.vod else { continue };
            out.samples.push(Sample {
                // The snapshot's own time: its bytes had all arrived by then.
                t: v.now.as_secs_f64(),
                contiguous: Some(v.contiguous),
                penalty: v.ledger.penalty_bytes,
                downloaded: s.downloaded,
            });
            if v.complete_at.is_some() {
                let report = VodReport::new(meta, self.file(), kind.name(), &params, &s);
                out.report = serde_json::to_value(&report).ok();
                out.score = Some(report);
                completed = true;
                let _ = done.send(());
                break;
            }
            if let Some(e) = &v.server_error {
                failure = Some(ViewerError::ServerFailed(e.clone()));
                break;
            }
        }
        if completed {
            self.linger(cancel).await;
        }
        let s = stats.borrow().clone();
        out.downloaded = s.downloaded;
        out.uploaded = s.uploaded;
        shared.unlink(listen).await;
        session.shutdown().await;
        failure.map_or(Ok(()), Err)
    }

    /// After completing: seed for the class's `stay`, or until the run ends.
    pub async fn linger(&self, cancel: &CancellationToken) {
        match self.class.stay {
            Some(d) => {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = sleep(d) => {}
                }
            }
            None => cancel.cancelled().await,
        }
    }
}
