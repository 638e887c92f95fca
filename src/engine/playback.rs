//! The VoD side of a torrent: when each movie piece is due, fetching what the swarm did not
//! deliver from the VoD server, and the report. The torrent task owns one of these and feeds
//! it; the arithmetic and the ledger are `policy::vod`'s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::torrent::TorrentStats;
use super::vod_server::VodServer;
use crate::policy::Time;
use crate::policy::vod::{Ledger, VodParams, VodSession};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};
use crate::proto::metainfo::Metainfo;

/// Bytes the server sent for some blocks of one piece, and why it stopped short if it did.
#[derive(Debug)]
pub struct ServerFetched {
    pub piece: PieceIndex,
    /// The blocks that arrived whole (all that were asked for unless `error` is set).
    pub blocks: Vec<(BlockRef, Vec<u8>)>,
    /// Why the rest did not arrive.
    pub error: Option<String>,
    /// Whether this was the whole-piece refetch after a failed hash check.
    pub whole: bool,
}

pub struct Playback {
    session: VodSession,
    server: Arc<VodServer>,
    started: Instant,
    fetched_tx: mpsc::UnboundedSender<ServerFetched>,
    fetched_rx: mpsc::UnboundedReceiver<ServerFetched>,
    /// Pieces the server is filling, with the blocks it was asked for.
    fetching: HashMap<PieceIndex, Vec<BlockRef>>,
    /// Blocks that came from the server, per piece not yet verified.
    server_blocks: HashMap<PieceIndex, Vec<BlockRef>>,
    /// Due pieces that were already being verified at their deadline: fetched whole if the
    /// check fails, left alone if it passes.
    due_while_verifying: Vec<PieceIndex>,
    /// Pieces being fetched whole from the server: if that copy fails its check too, the
    /// server does not serve this torrent's content.
    whole_fetches: HashSet<PieceIndex>,
    /// Why the server can no longer be used; nothing more is fetched from it.
    server_error: Option<String>,
    /// Server bytes booked to the ledger so far, to compare with the server's meter.
    booked: u64,
}

impl Playback {
    pub fn new(session: VodSession, server: Arc<VodServer>, started: Instant) -> Self {
        // Unbounded but not fed by the server: one message per fetch task, and a piece has at
        // most one fetch under way (`fetching`), so at most one per movie piece waits.
        let (fetched_tx, fetched_rx) = mpsc::unbounded_channel();
        Self {
            session,
            server,
            started,
            fetched_tx,
            fetched_rx,
            fetching: HashMap::new(),
            server_blocks: HashMap::new(),
            due_while_verifying: Vec::new(),
            whole_fetches: HashSet::new(),
            server_error: None,
            booked: 0,
        }
    }

    pub fn session(&self) -> &VodSession {
        &self.session
    }
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        self.session.ledger_mut()
    }

    /// How early to ask the server for a full piece so it lands by its deadline.
    fn lead(&self, geometry: &Geometry) -> Duration {
        self.server.estimate(u64::from(geometry.piece_len()))
    }

    /// When the torrent task must next call [`Playback::take_due`].
    pub fn next_wake(&self, geometry: &Geometry) -> Option<Instant> {
        let deadline = self.session.next_deadline()?;
        Some(self.started + deadline.saturating_sub(self.lead(geometry)))
    }

    pub fn now(&self) -> Time {
        self.started.elapsed()
    }

    /// Movie pieces that are due now and not verified.
    pub fn take_due(&mut self, geometry: &Geometry) -> Vec<PieceIndex> {
        let lead = self.lead(geometry);
        self.session.take_due(self.now(), lead)
    }

    pub fn note_due_while_verifying(&mut self, piece: PieceIndex) {
        self.due_while_verifying.push(piece);
    }

    /// Whether a failed hash check of `piece` must be answered by a whole-piece server fetch.
    pub fn owns_on_failure(&self, piece: PieceIndex) -> bool {
        self.session.is_taken(piece) || self.due_while_verifying.contains(&piece)
    }

    pub fn is_fetching(&self, piece: PieceIndex) -> bool {
        self.fetching.contains_key(&piece)
    }

    /// Asks the server for `blocks` of `piece` (contiguous runs become one range each).
    /// `after` delays the request (a retry after a failure). Nothing is asked of a server
    /// found to serve other content.
    pub fn fetch(
        &mut self,
        geometry: &Geometry,
        piece: PieceIndex,
        blocks: Vec<BlockRef>,
        whole: bool,
        after: Duration,
    ) {
        if blocks.is_empty() || self.server_error.is_some() {
            return;
        }
        if whole {
            self.whole_fetches.insert(piece);
        }
        self.fetching.insert(piece, blocks.clone());
        let server = Arc::clone(&self.server);
        let base = geometry.piece_range(piece).start;
        let tx = self.fetched_tx.clone();
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            let mut out = Vec::with_capacity(blocks.len());
            let mut error = None;
            for run in runs(&blocks) {
                let start = base + u64::from(run[0].offset());
                let end = start + run.iter().map(|b| u64::from(b.len())).sum::<u64>();
                match server.fetch(start..end).await {
                    Ok(bytes) if bytes.len() as u64 == end - start => {
                        let mut at = 0usize;
                        for b in run {
                            let len = b.len() as usize;
                            out.push((*b, bytes[at..at + len].to_vec()));
                            at += len;
                        }
                    }
                    Ok(bytes) => {
                        error = Some(format!(
                            "server sent {} bytes for a {}-byte range",
                            bytes.len(),
                            end - start
                        ));
                        break;
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            // Runs that arrived before a failure are delivered: they were paid for.
            let _ = tx.send(ServerFetched {
                piece,
                blocks: out,
                error,
                whole,
            });
        });
    }

    pub async fn next_fetched(&mut self) -> Option<ServerFetched> {
        self.fetched_rx.recv().await
    }

    /// Books what the server delivered.
    pub fn on_fetched(&mut self, fetched: &ServerFetched) {
        self.fetching.remove(&fetched.piece);
        if !fetched.blocks.is_empty() {
            let bytes: u64 = fetched.blocks.iter().map(|(_, d)| d.len() as u64).sum();
            self.session.on_server_bytes(fetched.piece, bytes);
            self.booked += bytes;
            self.server_blocks
                .entry(fetched.piece)
                .or_default()
                .extend(fetched.blocks.iter().map(|(b, _)| *b));
        }
        if self.fetching.is_empty() {
            self.book_unused_server_bytes();
        }
    }

    /// A fetch that failed midway (a body cut short and never completed) received bytes that
    /// no block holds; the server's meter counted them and so must the penalty, which is
    /// every byte received. Only while no fetch is under way is the difference exactly those.
    fn book_unused_server_bytes(&mut self) {
        let received = self.server.meter().bytes_received;
        if received > self.booked {
            let unused = received - self.booked;
            tracing::debug!(
                unused,
                "server bytes of failed fetches added to the penalty"
            );
            self.session.ledger_mut().penalty_bytes += unused;
            self.booked = received;
        }
    }

    /// A piece passed its check: book how much of its movie came from peers.
    pub fn on_verified(&mut self, piece: PieceIndex) {
        let schedule = self.session.schedule();
        let total = schedule.piece_movie_bytes(piece);
        let from_server: u64 = self
            .server_blocks
            .remove(&piece)
            .unwrap_or_default()
            .iter()
            .map(|b| schedule.block_movie_bytes(*b))
            .sum();
        self.due_while_verifying.retain(|p| *p != piece);
        self.whole_fetches.remove(&piece);
        let now = self.now();
        self.session
            .on_verified(now, piece, total.saturating_sub(from_server));
    }

    /// A piece failed its check after the server was involved. Returns whether to fetch it
    /// whole again: not when the copy that failed was already the server's whole piece, for
    /// then the server's own bytes are wrong and asking again would buy the same bytes forever.
    pub fn on_failed(&mut self, piece: PieceIndex) -> bool {
        self.server_blocks.remove(&piece);
        self.due_while_verifying.retain(|p| *p != piece);
        if self.whole_fetches.remove(&piece) {
            self.server_error.get_or_insert_with(|| {
                format!(
                    "the VoD server {} sent piece {piece} whole and it fails its hash check: \
                     the server does not serve this torrent's content",
                    self.server.display_url()
                )
            });
            return false;
        }
        self.server_error.is_none()
    }

    /// Why the server was given up, if it was.
    pub fn server_error(&self) -> Option<&str> {
        self.server_error.as_deref()
    }

    pub fn complete_at(&self) -> Option<Time> {
        self.session.complete_at()
    }

    /// A snapshot for the status line and the report.
    pub fn status(&self, have: &Bitfield) -> VodStatus {
        let now = self.now();
        let schedule = self.session.schedule();
        let pieces = schedule.movie_pieces();
        VodStatus {
            now,
            position: self.session.position(now),
            contiguous: schedule.contiguous_bytes(have),
            movie_bytes: schedule.movie_len(),
            rate: schedule.params().rate(),
            ledger: self.session.ledger().clone(),
            stall: self.session.stall(now),
            complete_at: self.session.complete_at(),
            movie_pieces: pieces.len() as u32,
            movie_pieces_ready: self.session.ready_count(),
            server_error: self.server_error.clone(),
        }
    }
}

/// Where playback stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VodStatus {
    pub now: Time,
    /// Movie bytes played so far.
    pub position: u64,
    /// Movie bytes present contiguously from the start.
    pub contiguous: u64,
    pub movie_bytes: u64,
    pub rate: u64,
    pub ledger: Ledger,
    pub stall: Duration,
    pub complete_at: Option<Time>,
    pub movie_pieces: u32,
    pub movie_pieces_ready: u32,
    /// Set when the server was found to serve other content: the movie cannot be completed
    /// and the player should stop with this message.
    pub server_error: Option<String>,
}

impl VodStatus {
    /// Seconds of playback buffered beyond the playhead.
    pub fn buffer_ahead(&self) -> f64 {
        self.contiguous.saturating_sub(self.position) as f64 / self.rate.max(1) as f64
    }
}

/// Splits blocks (sorted by offset) into runs of adjacent blocks.
fn runs(blocks: &[BlockRef]) -> Vec<&[BlockRef]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blocks.len() {
        let breaks =
            i == blocks.len() || blocks[i].offset() != blocks[i - 1].offset() + blocks[i - 1].len();
        if breaks {
            out.push(&blocks[start..i]);
            start = i;
        }
    }
    out
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
            rate_bytes_per_s: params.rate(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_gaps() {
        let g = Geometry::new(16384 * 6, &[16384 * 6]).unwrap();
        let p = g.piece(0).unwrap();
        let b: Vec<_> = [0, 1, 3, 4, 5]
            .iter()
            .map(|i| g.block(p, *i).unwrap())
            .collect();
        let r = runs(&b);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[1].len(), 3);
        assert!(runs(&[]).is_empty());
    }
}
