//! The DHT (BEP 5), through the `mainline` crate: one node per process that finds peers for an
//! info-hash and announces ours, its routing table saved across runs.
//!
//! Why `mainline`: a maintained Rust implementation of BEP 5 (with BEP 42 node ids and BEP 44)
//! that takes our own bootstrap nodes and runs on a loopback network for tests. Its API is
//! blocking (an actor thread), so every call here runs on tokio's blocking pool. It speaks
//! IPv4 only. Released `mainline` drops KRPC messages whose transaction id is not 4 bytes, and
//! libtorrent's are 2: `vendor/mainline` carries the fix (its PATCHED.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::proto::InfoHash;

/// How often a torrent looks up peers and announces itself again (BEP 5 tokens last about 10
/// minutes; libtorrent announces every 15).
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Nodes remembered from the last run, at most.
const MAX_SAVED_NODES: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct DhtConfig {
    /// `HOST:PORT` nodes to join through; empty: the well-known routers (`mainline`'s list).
    pub bootstrap: Vec<String>,
    /// UDP port (0: any free one).
    pub port: u16,
    /// The file that keeps the routing table between runs (read at start, written by `save`).
    pub state_file: Option<PathBuf>,
    /// Answer other nodes from the start. Otherwise the node is read-only (BEP 43) until
    /// `mainline` finds it reachable: a node behind NAT in routing tables only slows lookups.
    pub server: bool,
}

/// A running DHT node; cheap to clone.
#[derive(Clone, Debug)]
pub struct DhtNode {
    dht: mainline::Dht,
    state_file: Option<PathBuf>,
}

impl DhtNode {
    /// Starts the node: resolves the bootstrap nodes (and those saved by the last run) and
    /// binds its UDP port, off the runtime.
    pub async fn start(config: DhtConfig) -> std::io::Result<Self> {
        tokio::task::spawn_blocking(move || Self::start_blocking(config))
            .await
            .map_err(std::io::Error::other)?
    }

    fn start_blocking(config: DhtConfig) -> std::io::Result<Self> {
        let saved: Vec<String> = config
            .state_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|text| {
                text.lines()
                    .map(str::to_owned)
                    .take(MAX_SAVED_NODES)
                    .collect()
            })
            .unwrap_or_default();
        let mut builder = mainline::Dht::builder();
        if config.server {
            builder.server_mode();
        }
        if !config.bootstrap.is_empty() {
            builder.bootstrap(&config.bootstrap);
        }
        if !saved.is_empty() {
            builder.extra_bootstrap(&saved);
        }
        // Always set: unset, mainline takes 6881, the usual peer port, whose UDP is uTP's.
        builder.port(config.port);
        let dht = builder.build().or_else(|e| {
            // The port may be taken (another client): any port does.
            if config.port == 0 {
                return Err(e);
            }
            tracing::info!(port = config.port, error = %e, "DHT port taken; using any");
            builder.port(0).build()
        })?;
        Ok(Self {
            dht,
            state_file: config.state_file,
        })
    }

    pub async fn local_addr(&self) -> Option<SocketAddr> {
        let dht = self.dht.clone();
        tokio::task::spawn_blocking(move || SocketAddr::V4(dht.info().local_addr()))
            .await
            .ok()
    }

    /// Looks up peers for `info_hash` now and every `every`, announcing our `port` too when
    /// given (a seed, or a peer that serves); batches of peers go to `sink`. Ends when the
    /// returned task is aborted or `sink` closes.
    pub fn keep_looking(
        &self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
        sink: mpsc::Sender<Vec<SocketAddr>>,
        every: Duration,
    ) -> JoinHandle<()> {
        let dht = self.dht.clone();
        tokio::spawn(async move {
            loop {
                let (d, out) = (dht.clone(), sink.clone());
                let round =
                    tokio::task::spawn_blocking(move || lookup(&d, info_hash, announce_port, &out));
                match round.await {
                    Ok(found) => tracing::debug!(found, torrent = %info_hash, "DHT lookup done"),
                    Err(_) => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = sink.closed() => return,
                }
            }
        })
    }

    /// Writes the routing table to the state file, for the next run's bootstrap.
    pub async fn save(&self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let dht = self.dht.clone();
        let written = tokio::task::spawn_blocking(move || {
            let nodes = dht.to_bootstrap();
            if nodes.is_empty() {
                return Ok(());
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text: String = nodes
                .iter()
                .take(MAX_SAVED_NODES)
                .map(|n| format!("{n}\n"))
                .collect();
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::info!(error = %e, "could not save the DHT routing table");
        }
    }
}

/// One lookup, then our announce: peers go to `sink` batch by batch as nodes answer (a
/// lookup takes seconds, and the first peer is all a magnet needs). Returns how many came.
fn lookup(
    dht: &mainline::Dht,
    info_hash: InfoHash,
    announce_port: Option<u16>,
    sink: &mpsc::Sender<Vec<SocketAddr>>,
) -> usize {
    let id = mainline::Id::from(info_hash.0);
    let mut found = 0;
    for batch in dht.get_peers(id) {
        let peers: Vec<SocketAddr> = batch
            .into_iter()
            .filter(|p| p.port() != 0)
            .map(SocketAddr::V4)
            .collect();
        found += peers.len();
        if sink.blocking_send(peers).is_err() {
            return found;
        }
    }
    if let Some(port) = announce_port
        && let Err(e) = dht.announce_peer(id, Some(port))
    {
        tracing::debug!(error = %e, torrent = %info_hash, "DHT announce failed");
    }
    found
}

/// The routing table's file: `$XDG_STATE_HOME/btvod/dht-nodes`, else
/// `~/.local/state/btvod/dht-nodes`.
pub fn default_state_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("btvod").join("dht-nodes"))
}
