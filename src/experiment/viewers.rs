//! VoD viewers run by the world: each arrives on schedule, plays the movie with its R, D, P and
//! policy against the world's origin, writes its report, then seeds for a while or until the
//! world stops, so later viewers can take from earlier ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::content::mix;
use super::peers::{Tracked, linger_while_showing, session_options};
use super::scenario::ViewerClass;
use super::world::WorldShared;
use crate::engine::report::VodReport;
use crate::engine::session::{self, Content, Deadlines, Session, VodOptions};
use crate::engine::torrent::TorrentStats;
use crate::engine::vod_server::VodServer;
use crate::policy::picker::DeadlineConfig;
use crate::policy::vod::VodParams;
use crate::proto::metainfo::Metainfo;

/// Runs viewer `i` of class `class_index`.
pub(crate) async fn run_viewer(
    shared: Arc<WorldShared>,
    class_index: usize,
    i: u32,
    mut tracked: Tracked,
    cancel: CancellationToken,
) {
    let class = &shared.scenario.viewers[class_index];
    let name = format!("{}-{i}", class.name);
    let arrive = shared.started + class.arrival.of(i, class.count);
    tokio::select! {
        _ = cancel.cancelled() => { tracked.update(|r| r.state = "stopped".into()); return; }
        _ = sleep_until(arrive) => {}
    }
    let session = match start(&shared, class, class_index, i, &name).await {
        Ok(s) => s,
        Err(e) => {
            shared.event(&format!("{name}: cannot start playback: {e}"));
            tracked.update(|r| {
                r.state = "failed".into();
                r.error = Some(e);
            });
            return;
        }
    };
    tracked.update(|r| {
        r.state = "online".into();
        r.listen = session.torrent.listen_addr;
    });
    shared.event(&format!(
        "{name}: playing at {} B/s, D={} s, P={} s ({})",
        class.rate,
        class.delay.as_secs_f64(),
        class.prefetch.as_secs_f64(),
        class.policy.name()
    ));
    let mut stats = session.torrent.stats.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let done = loop {
        let s = stats.borrow_and_update().clone();
        tracked.show(&s);
        if s.vod.as_ref().is_some_and(|v| v.complete_at.is_some()) {
            break s;
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                tracked.close(session).await;
                tracked.update(|r| r.state = "stopped".into());
                return;
            }
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    };
    let Some(report) = report(&shared.meta, shared.movie_file(class).1, class, &done) else {
        tracked.close(session).await;
        return;
    };
    shared.event(&format!(
        "{name}: movie complete; penalty {} bytes ({:.2}%)",
        report.penalty_bytes,
        100.0 * report.penalty_fraction
    ));
    let path = shared.run_dir.join("viewers").join(format!("{name}.json"));
    if let Ok(json) = serde_json::to_string_pretty(&report) {
        let _ = std::fs::write(&path, json + "\n");
    }
    tracked.update(|r| {
        r.completions = 1;
        r.state = "seeding".into();
        r.report = Some(report);
    });
    let stayed = linger_while_showing(&session, &tracked, class.stay, &cancel).await;
    tracked.close(session).await;
    tracked.update(|r| r.state = if stayed { "gone" } else { "stopped" }.into());
}

async fn start(
    shared: &Arc<WorldShared>,
    class: &ViewerClass,
    class_index: usize,
    i: u32,
    name: &str,
) -> Result<Session, String> {
    let meta = &shared.meta;
    let file = shared.movie_file(class).1;
    let params =
        VodParams::new(class.rate, class.delay, class.prefetch).map_err(|e| e.to_string())?;
    let server = VodServer::parse(&shared.origin_url, meta).map_err(|e| e.to_string())?;
    server.check().await.map_err(|e| e.to_string())?;
    let dir = shared.run_dir.join("viewers").join(name);
    let seed = mix(shared.scenario.seed, &[3, class_index as u64, u64::from(i)]);
    let mut options = session_options(shared, class.limits, seed);
    options.policy = class.policy;
    options.vod = Some(VodOptions {
        params,
        file,
        server: Some(Arc::new(server)),
        deadline: DeadlineConfig::default(),
        deadlines: Deadlines::Schedule,
    });
    let target = dir.join(&meta.name);
    session::start(meta, Content::SaveAs(target), options, |_, _| {})
        .await
        .map_err(|e| e.to_string())
}

/// The report of `vod-scoring.md` for a finished viewer (None if the class's R, D, P are
/// invalid, which `start` refuses before a viewer ever plays).
fn report(
    meta: &Metainfo,
    file: usize,
    class: &ViewerClass,
    s: &TorrentStats,
) -> Option<VodReport> {
    let params = VodParams::new(class.rate, class.delay, class.prefetch).ok()?;
    Some(VodReport::new(meta, file, class.policy.name(), &params, s))
}
