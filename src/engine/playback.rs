//! The VoD side of a torrent: fetching from the VoD server what the swarm did not deliver by
//! its deadline, stopping fetches a seek made useless, and the numbers for the status line and
//! the report. The torrent task owns one of these, feeds it and gives it the time; the
//! deadlines, the playheads and the ledger are `policy::vod`'s.

mod fetch;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::vod_server::VodServer;
use crate::policy::Time;
use crate::policy::vod::{Ledger, VodSession};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};
use fetch::{Fetch, FetchOrder};

pub use fetch::ServerFetched;
pub use status::{ReaderStatus, VodStatus};

/// While readers can seek, a fetch asks at most this many blocks per request, so a seek that
/// makes it useless stops it within 64 KiB (each request is read to its end, so the server's
/// meter and ours agree). The fixed schedule never abandons a piece: one request per run.
const STREAM_BLOCKS_PER_REQUEST: usize = 4;

/// A playback inside the torrent task: the VoD session (deadlines, playheads, ledger) and
/// the server fetches that cover missed deadlines. Owned by the torrent task, which feeds it
/// the time; it has no clock of its own.
pub struct Playback {
    session: VodSession,
    /// The paid source; without one, a late piece is simply waited for.
    server: Option<Arc<VodServer>>,
    fetched_tx: mpsc::UnboundedSender<ServerFetched>,
    fetched_rx: mpsc::UnboundedReceiver<ServerFetched>,
    /// Pieces the server is filling.
    fetching: HashMap<PieceIndex, Fetch>,
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
    blocks_per_request: usize,
}

impl Playback {
    pub fn new(session: VodSession, server: Option<Arc<VodServer>>) -> Self {
        // Unbounded but not fed by the server: one message per fetch task, and a piece has at
        // most one fetch under way (`fetching`), so at most one per piece waits.
        let (fetched_tx, fetched_rx) = mpsc::unbounded_channel();
        let blocks_per_request = if session.readers().is_some() {
            STREAM_BLOCKS_PER_REQUEST
        } else {
            usize::MAX
        };
        Self {
            session,
            server,
            fetched_tx,
            fetched_rx,
            fetching: HashMap::new(),
            server_blocks: HashMap::new(),
            due_while_verifying: Vec::new(),
            whole_fetches: HashSet::new(),
            server_error: None,
            booked: 0,
            blocks_per_request,
        }
    }

    pub fn session(&self) -> &VodSession {
        &self.session
    }
    pub fn session_mut(&mut self) -> &mut VodSession {
        &mut self.session
    }
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        self.session.ledger_mut()
    }
    pub fn has_server(&self) -> bool {
        self.server.is_some()
    }

    /// How early to ask the server for a full piece so it lands by its deadline.
    pub fn lead(&self, geometry: &Geometry) -> Duration {
        let Some(server) = &self.server else {
            return Duration::ZERO;
        };
        let blocks = geometry
            .piece_len()
            .div_ceil(crate::proto::geometry::BLOCK_LEN) as usize;
        let requests = blocks.div_ceil(self.blocks_per_request.min(blocks).max(1));
        server.estimate_requests(
            u64::from(geometry.piece_len()),
            u32::try_from(requests).unwrap_or(u32::MAX),
        )
    }

    /// When (since the torrent started) the torrent task must next call
    /// [`Playback::take_due`]; never without a server, which is the only thing deadlines do.
    pub fn next_wake(&self, geometry: &Geometry) -> Option<Time> {
        self.server.as_ref()?;
        let deadline = self.session.next_deadline()?;
        Some(deadline.saturating_sub(self.lead(geometry)))
    }

    /// Pieces that are due now and not verified (the server's from now on).
    pub fn take_due(&mut self, now: Time, geometry: &Geometry) -> Vec<PieceIndex> {
        if self.server.is_none() {
            return Vec::new();
        }
        let lead = self.lead(geometry);
        self.session.take_due(now, lead)
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

    /// Asks the server for `blocks` of `piece`. `after` delays the request (a retry after a
    /// failure). Nothing is asked without a server or of one found to serve other content. A
    /// fetch already under way for the piece is told to go on instead.
    pub fn fetch(
        &mut self,
        geometry: &Geometry,
        piece: PieceIndex,
        blocks: Vec<BlockRef>,
        whole: bool,
        after: Duration,
    ) {
        if let Some(f) = self.fetching.get(&piece) {
            f.set_wanted(true);
            return;
        }
        let Some(server) = &self.server else {
            return;
        };
        if blocks.is_empty() || self.server_error.is_some() {
            return;
        }
        if whole {
            self.whole_fetches.insert(piece);
        }
        let order = FetchOrder {
            piece,
            blocks,
            whole,
            after,
            blocks_per_request: self.blocks_per_request,
        };
        let f = fetch::spawn(Arc::clone(server), geometry, order, self.fetched_tx.clone());
        self.fetching.insert(piece, f);
    }

    /// The piece is no longer due: its fetch stops before its next request. Returns whether a
    /// fetch was under way (the piece is given back when it reports).
    pub fn stop_fetch(&mut self, piece: PieceIndex) -> bool {
        self.due_while_verifying.retain(|p| *p != piece);
        match self.fetching.get(&piece) {
            Some(f) => {
                f.set_wanted(false);
                true
            }
            None => false,
        }
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
        let Some(server) = &self.server else {
            return;
        };
        let received = server.meter().bytes_received;
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

    /// A piece passed its check at `now`: book how much of its movie came from peers.
    pub fn on_verified(&mut self, now: Time, piece: PieceIndex) {
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
            let shown = self
                .server
                .as_ref()
                .map_or("", |s| s.display_url())
                .to_string();
            self.server_error.get_or_insert_with(|| {
                format!(
                    "the VoD server {shown} sent piece {piece} whole and it fails its hash check: \
                     the server does not serve this torrent's content"
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
    pub fn status(&self, now: Time, have: &Bitfield) -> VodStatus {
        VodStatus::of(&self.session, now, have, self.server_error.clone())
    }
}
