//! The torrent argument every command takes: a `.torrent` file or a magnet link, whose
//! metadata is then fetched from the swarm (with a progress line) and saved beside the download.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use btvod::engine::dht::DhtNode;
use btvod::engine::magnet::{MagnetOptions, resolve};
use btvod::engine::metadata_fetch::FetchProgress;
use btvod::proto::magnet::Magnet;
use btvod::proto::metainfo::Metainfo;
use btvod::units::human_bytes;
use tokio::sync::watch;

use super::PeerOptions;

/// How long to look for a magnet's metadata before giving up.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(300);

/// A magnet link, if `arg` is one (with a clear error if it is a bad one).
pub fn magnet(arg: &str) -> anyhow::Result<Option<Magnet>> {
    if !Magnet::is_magnet(arg) {
        return Ok(None);
    }
    let m = Magnet::parse(arg).context("not a usable magnet link")?;
    for w in &m.warnings {
        tracing::warn!("magnet link: {w}");
    }
    Ok(Some(m))
}

/// A torrent ready to start, and how long its metadata took to fetch (None when it was a
/// file or had been saved by an earlier fetch); a VoD report carries that time.
pub struct Loaded {
    pub meta: Metainfo,
    pub metadata_fetch: Option<Duration>,
    /// The magnet it came from, for its `so` file selection.
    pub link: Option<Magnet>,
}

impl Loaded {
    /// The files a magnet's `so` (BEP 53) selects that the torrent has; None when it selects
    /// none of them, or is not a magnet.
    pub fn selected_files(&self) -> Option<Vec<usize>> {
        let link = self.link.as_ref()?;
        link.select_only.as_ref()?;
        let files: Vec<usize> = (0..self.meta.files.len())
            .filter(|&i| link.selects(i))
            .collect();
        if files.is_empty() {
            tracing::warn!("the magnet's file selection names no file of the torrent; ignored");
            return None;
        }
        Some(files)
    }
}

/// The torrent `arg` names: a file loaded, or a magnet's metadata fetched (or loaded from
/// where an earlier fetch saved it in `save_dir`). A magnet's `x.pe` peers join `common.peers`,
/// so the session dials them too.
pub async fn load(
    arg: &str,
    save_dir: &Path,
    common: &mut PeerOptions,
    dht: Option<&DhtNode>,
) -> anyhow::Result<Loaded> {
    let Some(link) = magnet(arg)? else {
        let path = Path::new(arg);
        let meta = Metainfo::load(path)
            .with_context(|| format!("{} is not a usable torrent", path.display()))?;
        return Ok(Loaded {
            meta,
            metadata_fetch: None,
            link: None,
        });
    };
    let options = MagnetOptions {
        save_dir: save_dir.to_path_buf(),
        peers: common.peers.clone(),
        trackers: common.trackers.clone(),
        listen_port: common.port,
        timeout: METADATA_TIMEOUT,
        max_connections: common.max_peers.clamp(1, 16),
        seed: common.rng_seed.unwrap_or_else(rand::random),
        dht: dht.cloned(),
        encryption: common.encryption.policy(),
    };
    let (progress_tx, mut progress) = watch::channel(FetchProgress::default());
    let line = super::status_line(common.quiet);
    let name = link
        .display_name
        .clone()
        .unwrap_or_else(|| link.info_hash.to_hex());
    let show = {
        let line = line.clone();
        tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let p = progress.borrow_and_update().clone();
                line.set_message(progress_text(&name, &p));
                line.tick();
            }
        })
    };
    let resolved = resolve(&link, &options, progress_tx).await;
    show.abort();
    line.finish_and_clear();
    let resolved = resolved.context("cannot get the magnet link's metadata")?;
    for peer in resolved.link_peers {
        if !common.peers.contains(&peer) {
            common.peers.push(peer);
        }
    }
    if let Some(took) = resolved.fetch_time {
        eprintln!(
            "metadata fetched in {:.1} s, saved as {}",
            took.as_secs_f64(),
            resolved.saved.display()
        );
    }
    Ok(Loaded {
        meta: resolved.meta,
        metadata_fetch: resolved.fetch_time,
        link: Some(link),
    })
}

fn progress_text(name: &str, p: &FetchProgress) -> String {
    match p.size {
        Some(size) => format!(
            "fetching metadata of {name}: {}/{} pieces of {}  ({} peers offer it, {} dialled)",
            p.pieces_have,
            p.pieces_total,
            human_bytes(u64::from(size)),
            p.offering,
            p.dialled
        ),
        None => format!(
            "looking for peers with the metadata of {name}: {} dialled",
            p.dialled
        ),
    }
}
