//! VoD viewers run by the world: each arrives on schedule, plays the movie with its R, D, P and
//! policy against the world's origin, writes its report, then seeds for a while or until the
//! world stops, so later viewers can take from earlier ones.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::member::{Member, MemberStats};
use super::roster::{PeerState, Tracked};
use super::shared::WorldShared;
use crate::engine::report::VodReport;
use crate::engine::session::{self, Content, Session};
use crate::engine::torrent::TorrentStats;
use crate::policy::picker::DeadlineConfig;

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
    if !tracked.wait_arrival(arrive, &cancel).await {
        return;
    }
    let session = match start(&shared, class_index, i, &name).await {
        Ok(s) => s,
        Err(e) => {
            shared.event(&format!("{name}: cannot start playback: {e}"));
            tracked.fail(e.to_string());
            return;
        }
    };
    let listen = session.torrent.listen_addr;
    if let Some(addr) = listen {
        shared.link_viewer(addr).await;
    }
    tracked.update(|r| {
        r.state = PeerState::Online;
        r.listen = listen;
    });
    shared.event(&format!(
        "{name}: playing at {} B/s, D={} s, P={} s ({})",
        class.rate,
        class.delay.as_secs_f64(),
        class.prefetch.as_secs_f64(),
        class.policy.name()
    ));
    let played = play(&session, &tracked, &cancel).await;
    let session = Member::Btvod(session);
    let Some(done) = played else {
        shared.unlink(listen).await;
        tracked.close(session).await;
        tracked.set_state(PeerState::Stopped);
        return;
    };
    let Some(report) = report(&shared, class_index, &done) else {
        shared.unlink(listen).await;
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
        r.state = PeerState::Seeding;
        r.report = Some(report);
    });
    let stayed = tracked.linger(&session, class.stay, &cancel).await;
    shared.unlink(listen).await;
    tracked.close(session).await;
    tracked.set_state(if stayed {
        PeerState::Gone
    } else {
        PeerState::Stopped
    });
}

/// Shows the session's stats until its movie is complete (its final stats) or the world
/// stops (`None`).
async fn play(
    session: &Session,
    tracked: &Tracked,
    cancel: &CancellationToken,
) -> Option<TorrentStats> {
    let mut stats = session.torrent.stats.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let s = stats.borrow_and_update().clone();
        tracked.show(&MemberStats::from(&s));
        if s.vod.as_ref().is_some_and(|v| v.complete_at.is_some()) {
            return Some(s);
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    }
}

async fn start(
    shared: &WorldShared,
    class_index: usize,
    i: u32,
    name: &str,
) -> Result<Session, super::error::ViewerError> {
    let policy = shared.scenario.viewers[class_index].policy;
    let options = shared
        .viewer_options(class_index, i, policy, DeadlineConfig::default())
        .await?;
    let target = shared
        .run_dir
        .join("viewers")
        .join(name)
        .join(&shared.meta.name);
    Ok(session::start(&shared.meta, Content::SaveAs(target), options, |_, _| {}).await?)
}

/// The report of `vod-scoring.md` for a finished viewer (None if the class's R, D, P are
/// invalid, which `start` refuses before a viewer ever plays).
fn report(shared: &WorldShared, class_index: usize, s: &TorrentStats) -> Option<VodReport> {
    let class = &shared.scenario.viewers[class_index];
    let params = shared.viewer_params(class_index).ok()?;
    let file = shared.movie_file(class).1;
    Some(VodReport::new(
        &shared.meta,
        file,
        class.policy.name(),
        &params,
        s,
    ))
}
