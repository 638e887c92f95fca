//! A world of libtorrent peers from a scenario (`client = "libtorrent"`): each peer holds the
//! fraction of pieces its class saved, uploads at its class's limit (within 10%) while others
//! want its pieces, and no libtorrent process outlives the world.

mod common;

use std::path::Path;
use std::time::Duration;

use btvod::experiment::scenario::{PeerClient, Scenario};
use btvod::experiment::{PeerRecord, World, WorldOptions};
use common::external::require_python_libtorrent;
use tokio::time::{Instant, sleep};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KIB: f64 = 1024.0;

/// Three libtorrent peers (a seed at 96 KiB/s and two half-copies at 48 KiB/s holding different
/// halves) and one unlimited btvod leecher: every libtorrent peer has more demand than upload.
const LT_WORLD: &str = r#"
name = "lt-world"
seed = 5
[content]
name = "movie.bin"
size = "3MiB"
piece_size = "64KiB"
[[peers]]
name = "seed"
client = "libtorrent"
have = 1.0
upload = "96KiB"
[[peers]]
name = "half"
client = "libtorrent"
count = 2
have = 0.5
draw = "stripe"
upload = "48KiB"
[[peers]]
name = "leech"
have = 0.0
"#;

/// Each peer's uploaded total at the instants it changed (libtorrent reports once a second,
/// and the roster is polled far more often, so a change marks a report's time closely).
type Uploads = Vec<Vec<(Instant, u64)>>;

fn note_uploads(peers: &[PeerRecord], seen: &mut Uploads) {
    seen.resize(peers.len(), Vec::new());
    for (p, series) in peers.iter().zip(seen.iter_mut()) {
        if series.last().is_none_or(|&(_, up)| up != p.uploaded) {
            series.push((Instant::now(), p.uploaded));
        }
    }
}

/// The upload rate between the first report at least 3 s after uploading began and the last
/// report at least 8 s after that (`None` if the series is shorter).
fn steady_rate(series: &[(Instant, u64)]) -> Option<f64> {
    let began = series.iter().find(|&&(_, up)| up > 0)?.0;
    let from = series
        .iter()
        .find(|&&(t, _)| t >= began + Duration::from_secs(3))?;
    let to = series
        .iter()
        .rev()
        .find(|&&(t, _)| t >= from.0 + Duration::from_secs(8))?;
    Some((to.1 - from.1) as f64 / (to.0 - from.0).as_secs_f64())
}

fn lt_processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("lt_peer.py") && text.contains(&needle) {
            found.push(text);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_world_peers_hold_their_share_upload_at_their_limit_and_stop() {
    require_python_libtorrent();
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = Scenario::parse(LT_WORLD, "test", "test", Path::new(ROOT)).expect("scenario");
    assert_eq!(scenario.peers[0].client, PeerClient::Libtorrent);
    let world = World::start(scenario, dir.path(), WorldOptions::default())
        .await
        .expect("start the world");
    let pieces = world.metainfo().geometry.piece_count();
    let mut uploads = Uploads::new();
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let peers = world.peers();
        note_uploads(&peers, &mut uploads);
        if uploads[..3].iter().all(|s| steady_rate(s).is_some()) {
            break;
        }
        assert!(
            Instant::now() < end,
            "no 8 s of steady upload from every libtorrent peer within 40 s: {peers:#?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
    let peers = world.peers();
    for (p, limit) in peers[..3].iter().zip([96.0 * KIB, 48.0 * KIB, 48.0 * KIB]) {
        let rate = steady_rate(&uploads[peers.iter().position(|q| q.name == p.name).unwrap()])
            .expect("a steady rate");
        assert!(
            (0.9 * limit..=1.1 * limit).contains(&rate),
            "{} uploaded at {:.1} KiB/s, its limit is {:.0} KiB/s",
            p.name,
            rate / KIB,
            limit / KIB
        );
    }
    assert_eq!(peers[0].pieces_at_start, pieces, "the seed starts complete");
    for half in &peers[1..3] {
        assert_eq!(
            half.pieces_at_start,
            pieces / 2,
            "{} saved half the pieces",
            half.name
        );
    }
    assert!(
        !lt_processes_under(dir.path()).is_empty(),
        "the scan finds the running libtorrent peers"
    );
    world.stop().await;
    let left = lt_processes_under(dir.path());
    assert!(
        left.is_empty(),
        "libtorrent peers outlived the world: {left:#?}"
    );
}
