//! The torrent task's VoD duties: at each movie piece's deadline, hand what the swarm did not
//! deliver to the VoD server, store what the server sends, and refetch a piece whole when it
//! fails its check after the server was involved (`vod-scoring.md`).

use std::time::Duration;

use tokio::time::Instant;

use super::Torrent;
use super::assembly::Stored;
use crate::engine::playback::ServerFetched;
use crate::proto::geometry::{BlockRef, PieceIndex};

/// A failed server fetch is tried again after this long (the fetcher already retried).
const REFETCH_DELAY: Duration = Duration::from_millis(500);

impl Torrent {
    pub(super) fn playback_wake(&self) -> Option<Instant> {
        let at = self.playback.as_ref()?.next_wake(&self.geometry)?;
        Some(self.started + at)
    }

    /// Deadlines have come: every due piece not verified goes to the server.
    pub(super) fn on_deadlines(&mut self) {
        let now = self.now();
        let Some(playback) = &mut self.playback else {
            return;
        };
        let due = playback.take_due(now, &self.geometry);
        for piece in due {
            if self.picker.book().ours().has(piece) {
                continue;
            }
            if self.verifying.contains(&piece) {
                // Its check decides: nothing to fetch if it passes, all of it if it fails.
                if let Some(p) = &mut self.playback {
                    p.note_due_while_verifying(piece);
                }
                continue;
            }
            self.trace_missing(now, piece);
            self.picker.on_piece_owned_elsewhere(piece);
            let missing: Vec<BlockRef> = self
                .geometry
                .blocks(piece)
                .filter(|b| !self.assembly.has_block(*b))
                .collect();
            tracing::debug!(%piece, blocks = missing.len(), "deadline: fetching from the server");
            if let Some(p) = &mut self.playback {
                p.fetch(&self.geometry, piece, missing, false, Duration::ZERO);
            }
        }
        self.publish_stats();
    }

    /// At debug level: which blocks of a piece due now are missing, and of which peers each
    /// was asked how long ago (none: nobody was), the question every bought block raises.
    fn trace_missing(&self, now: crate::policy::Time, piece: PieceIndex) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let book = self.picker.book();
        let missing: Vec<String> = self
            .geometry
            .blocks(piece)
            .filter(|b| !self.assembly.has_block(*b))
            .map(|b| {
                let asked: Vec<String> = book
                    .requesters(b)
                    .iter()
                    .map(|&k| match book.sent_at(k, b) {
                        Some(at) => format!("{k} {:.1}s ago", now.saturating_sub(at).as_secs_f64()),
                        None => k.to_string(),
                    })
                    .collect();
                format!("block {} asked of [{}]", b.index(), asked.join(", "))
            })
            .collect();
        tracing::debug!(%piece, ?missing, "deadline: blocks missing");
    }

    pub(super) fn on_server_fetched(&mut self, fetched: ServerFetched) {
        let Some(playback) = &mut self.playback else {
            return;
        };
        playback.on_fetched(&fetched);
        let piece = fetched.piece;
        let mut complete = false;
        for (block, data) in &fetched.blocks {
            match self.assembly.store(&self.geometry, *block, None, data) {
                Stored::Complete => complete = true,
                Stored::Partial | Stored::Duplicate => {}
            }
        }
        if complete {
            self.verify(piece);
        } else if !playback.owns_on_failure(piece) {
            // A seek made it moot while it was being fetched: back to the peers.
            self.give_back(piece);
            let keys: Vec<_> = self.peers.keys().copied().collect();
            for key in keys {
                self.fill_requests(key);
            }
        } else if fetched.stopped || fetched.error.is_some() {
            // What arrived is kept; only the rest is asked for again.
            let after = match &fetched.error {
                Some(error) => {
                    tracing::warn!(%piece, %error, "VoD server fetch failed; retrying");
                    REFETCH_DELAY
                }
                None => Duration::ZERO,
            };
            let missing: Vec<BlockRef> = self
                .geometry
                .blocks(piece)
                .filter(|b| !self.assembly.has_block(*b))
                .collect();
            playback.fetch(&self.geometry, piece, missing, fetched.whole, after);
        }
        self.publish_stats();
    }

    /// After a failed check: if the piece is the server's (or was due while being checked),
    /// fetch it whole from the server again.
    pub(super) fn server_refetch_if_owned(&mut self, piece: PieceIndex) {
        let Some(playback) = &mut self.playback else {
            return;
        };
        if !playback.owns_on_failure(piece) {
            return;
        }
        if !playback.on_failed(piece) {
            if let Some(error) = playback.server_error() {
                tracing::error!(%piece, "{error}");
            }
            return;
        }
        self.picker.on_piece_owned_elsewhere(piece);
        let all: Vec<BlockRef> = self.geometry.blocks(piece).collect();
        if let Some(p) = &mut self.playback {
            p.ledger_mut().hash_failures_after_server += 1;
            p.fetch(&self.geometry, piece, all, true, Duration::ZERO);
        }
    }
}
