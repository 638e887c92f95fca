//! What every task of a running world reads: the scenario, the torrent, where things are, the
//! event log, and the session options and seeds its peers and viewers are started with.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::content::mix;
use super::error::ViewerError;
use super::links::Links;
use super::member::LtProgram;
use super::part::Part;
use super::scenario::{Limits, Scenario, ViewerClass};
use crate::engine::peer::link::UtpPolicy;
use crate::engine::peer::mse::EncryptionPolicy;
use crate::engine::session::{PolicyKind, SessionOptions, VodOptions};
use crate::engine::torrent::TorrentConfig;
use crate::engine::vod_server::VodServer;
use crate::policy::picker::DeadlineConfig;
use crate::policy::vod::{VodError, VodParams};
use crate::proto::metainfo::Metainfo;

/// Why a seed is drawn: each purpose has its own stream, so adding one never moves another.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedUse {
    /// A world peer's session RNG, per incarnation.
    PeerSession = 1,
    /// The pieces a partial peer's incarnation saved.
    PartialDraw = 2,
    /// A viewer's session RNG (the same whether the world or the experiment runner plays it).
    ViewerSession = 3,
    /// A latency relay's jitter.
    Link = 4,
}

pub(crate) struct WorldShared {
    pub scenario: Scenario,
    pub meta: Metainfo,
    pub run_dir: PathBuf,
    pub content_path: PathBuf,
    /// The world's torrent, announcing to its tracker.
    pub torrent_path: PathBuf,
    /// How a libtorrent world peer is run.
    pub lt: LtProgram,
    /// The latency relays, when some class has a link with delay.
    pub links: Option<Arc<Links>>,
    /// The address every member listens on.
    pub bind: IpAddr,
    /// Which share of the scenario's members this world runs.
    pub part: Part,
    /// Connections each member keeps at most (fewer than the engine's default in a world too
    /// big for the open-files limit).
    pub max_peers: usize,
    pub tracker_url: String,
    pub origin_url: String,
    pub started: Instant,
    pub(super) events: Mutex<Option<std::fs::File>>,
}

impl WorldShared {
    /// Appends a line to `events.log` (and the debug log).
    pub fn event(&self, line: &str) {
        let t = self.started.elapsed().as_secs_f64();
        tracing::debug!("world t={t:.1}s {line}");
        let mut file = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "t={t:7.1}s {line}");
        }
    }

    /// The movie of a viewer class: its path in the torrent and its index.
    pub fn movie_file(&self, class: &ViewerClass) -> (String, usize) {
        let i = self.meta.movie_file(class.file.as_deref()).unwrap_or(0);
        (self.meta.relative_path(i).display().to_string(), i)
    }

    /// The seed for `purpose` of member `i` of class `class_index` (and more indices after).
    pub fn seed(&self, purpose: SeedUse, class_index: usize, i: u32, more: &[u64]) -> u64 {
        let mut words = vec![purpose as u64, class_index as u64, u64::from(i)];
        words.extend_from_slice(more);
        mix(self.scenario.seed, &words)
    }

    /// Puts a viewer listening at `addr` behind one relay per peer class, so peers that dial
    /// it see their class's link (nothing to do in a world without latency).
    pub async fn link_viewer(&self, addr: SocketAddr) {
        if let Some(links) = &self.links {
            let classes: Vec<_> = self.scenario.peers.iter().map(|c| c.link).collect();
            let seed = mix(
                self.scenario.seed,
                &[SeedUse::Link as u64, u64::from(addr.port())],
            );
            links.open_viewer(addr, &classes, seed).await;
        }
    }

    /// Puts world peer `i` of class `class_index`, listening at `addr`, behind its class's link.
    pub async fn link_peer(&self, addr: SocketAddr, class_index: usize, i: u32) {
        if let Some(links) = &self.links {
            let link = self.scenario.peers[class_index].link;
            let seed = self.seed(SeedUse::Link, class_index, i, &[u64::from(addr.port())]);
            links.open_peer(addr, class_index, link, seed).await;
        }
    }

    /// Takes down the relays in front of `addr`.
    pub async fn unlink(&self, addr: Option<SocketAddr>) {
        if let (Some(links), Some(addr)) = (&self.links, addr) {
            links.close(addr).await;
        }
    }

    /// Options shared by every session of the world: the world's address, the class's
    /// limits, the world's tracker, rarest-first.
    pub fn session_options(&self, limits: Limits, seed: u64) -> SessionOptions {
        SessionOptions {
            listen: SocketAddr::new(self.bind, 0),
            torrent: TorrentConfig {
                max_peers: limits.connections(self.max_peers),
                upload_limit: limits.upload,
                download_limit: limits.download,
                // Peers told of each other would connect around the world's relays.
                pex: false,
                // Plaintext TCP, as the world's libtorrent peers are set to speak, and which
                // its latency relays carry.
                encryption: EncryptionPolicy::Disable,
                utp: UtpPolicy::Disable,
                ..TorrentConfig::default()
            },
            peers: Vec::new(),
            trackers: Some(vec![vec![self.tracker_url.clone()]]),
            policy: PolicyKind::Rarest,
            seed,
            vod: None,
            // A world's peers never use the DHT or LSD: worlds that run at once share content.
            dht: None,
            lsd: false,
            lan_search: false,
        }
    }

    /// The R, D and P of viewer class `class_index`.
    pub fn viewer_params(&self, class_index: usize) -> Result<VodParams, VodError> {
        let class = &self.scenario.viewers[class_index];
        VodParams::new(class.rate, class.delay, class.prefetch)
    }

    /// A viewer's session: viewer `i` of class `class_index` playing under `policy` with the
    /// deadline policy's `deadline` settings, the world's origin as its VoD server (checked).
    pub async fn viewer_options(
        &self,
        class_index: usize,
        i: u32,
        policy: PolicyKind,
        deadline: DeadlineConfig,
    ) -> Result<SessionOptions, ViewerError> {
        let class = &self.scenario.viewers[class_index];
        let params = self.viewer_params(class_index)?;
        let server = VodServer::parse(&self.origin_url, &self.meta)?;
        server.check().await?;
        let seed = self.seed(SeedUse::ViewerSession, class_index, i, &[]);
        let vod = VodOptions {
            deadline,
            ..VodOptions::scheduled(params, self.movie_file(class).1, server)
        };
        Ok(SessionOptions {
            policy,
            vod: Some(vod),
            ..self.session_options(class.limits, seed)
        })
    }
}
