//! Players reading the torrent's files (`btvod stream`): what a reader tells the torrent task,
//! the link a reader holds (its events in, verified pieces out), and how the torrent task turns
//! the events into deadlines, cancellations and released server fetches.

use std::ops::Range;

use tokio::sync::{mpsc, watch};

use super::Torrent;
use crate::policy::picker::PieceState;
use crate::policy::vod::{Opened, ReaderId};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, PieceIndex};

/// What a reader of a file did. Times are the torrent task's: it stamps each event on arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerEvent {
    /// A reader of file `file` (index in the torrent) asked for its bytes `span`.
    Open {
        id: ReaderId,
        file: usize,
        span: Range<u64>,
    },
    /// The reader was sent every byte of its file before `byte`.
    Read {
        id: ReaderId,
        byte: u64,
    },
    /// The reader waits for a piece that is not verified yet (or no longer).
    Waiting {
        id: ReaderId,
        waiting: bool,
    },
    /// Its writes blocked (a player whose cache is full): nothing of it falls due.
    Paused {
        id: ReaderId,
    },
    Resumed {
        id: ReaderId,
    },
    Closed {
        id: ReaderId,
    },
    /// The playback rate, learnt from the container or the reads (bytes per second).
    Rate {
        bytes_per_s: u64,
    },
}

/// What an HTTP reader needs from the torrent: a way to say what it does, and the verified
/// pieces (a snapshot the torrent task updates as each piece is verified and written).
#[derive(Clone)]
pub struct ReaderLink {
    pub events: mpsc::Sender<PlayerEvent>,
    pub have: watch::Receiver<Bitfield>,
}

/// Player events waiting for the torrent task at most; a reader waits for room (its reads
/// slow down), so nothing is lost.
pub(super) const PLAYER_EVENTS: usize = 1024;

impl Torrent {
    pub(super) fn on_player_event(&mut self, event: PlayerEvent) {
        let now = self.now();
        if let PlayerEvent::Open { file, .. } = &event {
            self.want_file(*file);
        }
        let Some(playback) = &mut self.playback else {
            return;
        };
        let session = playback.session_mut();
        match event {
            PlayerEvent::Open { id, file, span } => {
                let Some(extent) = self.geometry.files().get(file) else {
                    return;
                };
                tracing::debug!(reader = id.0, file, ?span, "reader opened");
                let opened = session.open_reader(now, id, extent.range(), span);
                if opened == Opened::Seek {
                    tracing::debug!(reader = id.0, "a seek");
                }
            }
            PlayerEvent::Read { id, byte } => session.reader_read(now, id, byte),
            PlayerEvent::Waiting { id, waiting } => session.reader_waiting(now, id, waiting),
            PlayerEvent::Paused { id } => session.reader_paused(now, id),
            PlayerEvent::Resumed { id } => session.reader_resumed(now, id),
            PlayerEvent::Closed { id } => session.close_reader(now, id),
            PlayerEvent::Rate { bytes_per_s } => session.set_rate(now, bytes_per_s),
        }
        self.apply_deadlines();
        self.publish_stats();
    }

    /// A file someone reads is downloaded (the rest only with `--all`).
    fn want_file(&mut self, file: usize) {
        let mut more = false;
        for i in self.geometry.pieces_of_file(file) {
            let Some(piece) = self.geometry.piece(i) else {
                continue;
            };
            more |= self.picker.book().state(piece) == PieceState::Unwanted;
            self.picker.on_wanted(piece, true);
        }
        if more {
            self.recompute_interest();
        }
    }

    /// After the playheads moved: the picker gets the new deadlines (and cancels requests of
    /// pieces now far from every reader), and pieces no longer due are taken from the server.
    pub(super) fn apply_deadlines(&mut self) {
        let now = self.now();
        let Some(playback) = &mut self.playback else {
            return;
        };
        let lead = playback.lead(&self.geometry);
        let Some(update) = playback.session_mut().poll_deadlines(now, lead) else {
            return;
        };
        if !update.abandoned.is_empty() {
            tracing::debug!(
                pieces = update.abandoned.len(),
                "cancelling requests far from every reader"
            );
        }
        self.picker.on_deadlines(&update.table, &update.abandoned);
        for piece in update.released {
            self.release_from_server(piece);
        }
        let keys: Vec<_> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(key);
        }
    }

    /// The piece is no longer due: its server fetch stops between requests and the piece goes
    /// back to the peers once the fetch reports (at once if none is under way).
    fn release_from_server(&mut self, piece: PieceIndex) {
        let fetching = self.playback.as_mut().is_some_and(|p| p.stop_fetch(piece));
        tracing::debug!(%piece, fetching, "no longer due: given back to the peers");
        if !fetching {
            self.give_back(piece);
        }
    }

    /// The picker asks peers for the piece again, except for the blocks already held.
    pub(super) fn give_back(&mut self, piece: PieceIndex) {
        let held: Vec<BlockRef> = self
            .geometry
            .blocks(piece)
            .filter(|b| self.assembly.has_block(*b))
            .collect();
        self.picker.on_piece_released(piece, &held);
    }

    /// Readers waiting for the piece are woken: it is verified and written.
    pub(super) fn publish_verified(&self, piece: PieceIndex) {
        self.have_tx.send_modify(|have| {
            have.set(piece);
        });
    }
}
