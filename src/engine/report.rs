//! The end-of-run reports: `vod-scoring.md`'s keys, and `btvod stream`'s additions, built
//! from the torrent's final stats.

use serde::{Deserialize, Serialize};

use crate::engine::torrent::TorrentStats;
use crate::policy::vod::VodParams;
use crate::proto::metainfo::Metainfo;

impl VodReport {
    /// With the time a magnet's metadata took to fetch (None: it was not fetched).
    pub fn fetched_in(self, metadata_fetch: Option<std::time::Duration>) -> Self {
        Self {
            metadata_fetch_s: metadata_fetch.map(|t| t.as_secs_f64()),
            ..self
        }
    }

    /// The report of one playback from the torrent's final stats.
    pub fn new(
        meta: &Metainfo,
        file: usize,
        policy: &str,
        params: &VodParams,
        s: &TorrentStats,
    ) -> Self {
        let v = s.vod.clone().unwrap_or_default();
        let l = &v.ledger;
        VodReport {
            torrent_name: meta.name.clone(),
            info_hash: meta.info_hash.to_hex(),
            file: meta.relative_path(file).display().to_string(),
            policy: policy.to_string(),
            rate_bytes_per_s: if v.streaming { v.rate } else { params.rate() },
            delay_s: params.delay().as_secs_f64(),
            prefetch_s: params.prefetch().as_secs_f64(),
            movie_bytes: v.movie_bytes,
            penalty_bytes: l.penalty_bytes,
            penalty_fraction: l.penalty_bytes as f64 / v.movie_bytes.max(1) as f64,
            pieces_from_server: l.pieces_from_server,
            peer_bytes: l.peer_bytes,
            uploaded_bytes: s.uploaded,
            duplicate_bytes: s.waste.duplicate,
            // Blocks the server had already covered, and blocks never asked of their sender:
            // either way the peer's upload went to nothing.
            wasted_bytes: s.waste.late + s.waste.unasked,
            stall_s: v.stall.as_secs_f64(),
            complete_at_s: v.complete_at.map(|t| t.as_secs_f64()),
            peers_seen: s.peers_seen,
            server_requests: l.server_requests,
            hash_failures: s.hash_failures,
            metadata_fetch_s: None,
        }
    }
}

/// The end-of-run report (`vod-scoring.md`); these key names are stable (`lt_vod.py` writes
/// them too, so an experiment reads either client's report as this type).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VodReport {
    pub torrent_name: String,
    pub info_hash: String,
    pub file: String,
    pub policy: String,
    pub rate_bytes_per_s: u64,
    pub delay_s: f64,
    pub prefetch_s: f64,
    pub movie_bytes: u64,
    pub penalty_bytes: u64,
    pub penalty_fraction: f64,
    pub pieces_from_server: u32,
    pub peer_bytes: u64,
    pub uploaded_bytes: u64,
    pub duplicate_bytes: u64,
    pub wasted_bytes: u64,
    pub stall_s: f64,
    pub complete_at_s: Option<f64>,
    pub peers_seen: usize,
    pub server_requests: u64,
    pub hash_failures: u32,
    /// Seconds spent fetching a magnet's metadata before the run (its deadlines start once
    /// the metadata is known); absent for a `.torrent` or metadata saved by an earlier fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_fetch_s: Option<f64>,
}

/// The report of `btvod stream`: the contract's keys plus what a viewer with a player saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamReport {
    #[serde(flatten)]
    pub vod: VodReport,
    /// Requests far from every place the file was being read.
    pub seeks: u32,
    /// Bytes from the VoD server (the penalty) and from peers, of every file read.
    pub server_bytes: u64,
    pub peer_bytes_received: u64,
    /// Bytes received from peers for pieces a seek had left (already on their way when their
    /// requests were cancelled).
    pub abandoned_bytes: u64,
    /// Seconds readers that had been sent bytes waited for more (players read ahead, so this
    /// is longer than `stall_s`, which counts only what a player playing at R would have).
    pub reader_wait_s: f64,
    /// Seconds from the start until the first byte was sent to a reader.
    pub time_to_first_byte_s: Option<f64>,
    /// Where R came from: the container's duration, the player's reads, or `--rate`.
    pub rate_source: String,
}

impl StreamReport {
    pub fn new(vod: VodReport, s: &TorrentStats, rate_source: &str) -> Self {
        let v = s.vod.clone().unwrap_or_default();
        StreamReport {
            seeks: v.seeks,
            server_bytes: v.ledger.penalty_bytes,
            peer_bytes_received: s.downloaded,
            abandoned_bytes: v.ledger.abandoned_bytes,
            reader_wait_s: v.reader_wait.as_secs_f64(),
            time_to_first_byte_s: v.first_byte_at.map(|t| t.as_secs_f64()),
            rate_source: rate_source.to_string(),
            vod,
        }
    }
}
