//! What playback reports: the live status (status line, `/status`) and the end-of-run report
//! of `vod-scoring.md`, with the streaming additions.

use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use crate::engine::torrent::TorrentStats;
use crate::policy::Time;
use crate::policy::vod::{Ledger, VodParams, VodSession};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::Geometry;
use crate::proto::metainfo::Metainfo;

/// Where playback stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VodStatus {
    pub now: Time,
    /// Movie bytes played so far (readers: the furthest position of a movie reader).
    pub position: u64,
    /// Movie bytes present contiguously from the start.
    pub contiguous: u64,
    /// Movie bytes present contiguously from the playhead (the first movie reader's).
    pub buffered: u64,
    pub movie_bytes: u64,
    pub rate: u64,
    pub ledger: Ledger,
    pub stall: Duration,
    /// Streaming: time readers that had been sent bytes waited for more.
    pub reader_wait: Duration,
    pub complete_at: Option<Time>,
    pub movie_pieces: u32,
    pub movie_pieces_ready: u32,
    /// Set when the server was found to serve other content: the movie cannot be completed
    /// and the player should stop with this message.
    pub server_error: Option<String>,
    /// Deadlines come from readers (`btvod stream`) rather than the fixed schedule.
    pub streaming: bool,
    pub readers: Vec<ReaderStatus>,
    pub seeks: u32,
    /// When the first byte was sent to a reader.
    pub first_byte_at: Option<Time>,
}

/// One open reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderStatus {
    pub id: u64,
    /// Its file's first byte in the torrent's byte stream.
    pub file_offset: u64,
    /// The next byte of the file it will be sent.
    pub position: u64,
    /// Bytes present contiguously from its position.
    pub buffered: u64,
    pub paused: bool,
    pub waiting: bool,
}

impl VodStatus {
    pub fn of(
        session: &VodSession,
        now: Time,
        have: &Bitfield,
        server_error: Option<String>,
    ) -> Self {
        let schedule = session.schedule();
        let geometry = schedule.geometry();
        let position = session.position(now);
        let contiguous = schedule.contiguous_bytes(have);
        let readers: Vec<ReaderStatus> = session
            .readers()
            .into_iter()
            .flat_map(|r| r.list())
            .map(|(id, head, waiting)| ReaderStatus {
                id: id.0,
                file_offset: head.file().start,
                position: head.position(),
                buffered: present_from(geometry, have, head.file().clone(), head.position()),
                paused: head.is_paused(),
                waiting,
            })
            .collect();
        let buffered = match session.readers() {
            None => contiguous.saturating_sub(position),
            Some(_) => readers
                .iter()
                .find(|r| r.file_offset == schedule.movie().start)
                .map_or(0, |r| r.buffered),
        };
        VodStatus {
            now,
            position,
            contiguous,
            buffered,
            movie_bytes: schedule.movie_len(),
            rate: session
                .readers()
                .map_or(schedule.params().rate(), |r| r.rate()),
            ledger: session.ledger().clone(),
            stall: session.stall(now),
            reader_wait: session.reader_wait(now),
            complete_at: session.complete_at(),
            movie_pieces: schedule.movie_pieces().len() as u32,
            movie_pieces_ready: session.ready_count(),
            server_error,
            streaming: session.readers().is_some(),
            seeks: session.readers().map_or(0, |r| r.seeks()),
            first_byte_at: session.readers().and_then(|r| r.first_byte_at()),
            readers,
        }
    }

    /// Seconds of playback buffered beyond the playhead.
    pub fn buffer_ahead(&self) -> f64 {
        self.buffered as f64 / self.rate.max(1) as f64
    }
}

/// Bytes of a file present contiguously from `position` (of the file) on.
fn present_from(geometry: &Geometry, have: &Bitfield, file: Range<u64>, position: u64) -> u64 {
    let from = file.start + position;
    if from >= file.end {
        return 0;
    }
    let mut end = from;
    while end < file.end {
        match geometry.piece_at(end) {
            Some(p) if have.has(p) => end = geometry.piece_range(p).end,
            _ => break,
        }
    }
    end.min(file.end) - from
}

impl VodReport {
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
            duplicate_bytes: l.duplicate_bytes,
            wasted_bytes: l.wasted_bytes,
            stall_s: v.stall.as_secs_f64(),
            complete_at_s: v.complete_at.map(|t| t.as_secs_f64()),
            peers_seen: s.peers_seen,
            server_requests: l.server_requests,
            hash_failures: s.hash_failures,
        }
    }
}

/// The end-of-run report (`vod-scoring.md`); these key names are stable.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
