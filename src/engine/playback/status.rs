//! Where playback stands, live: the status line, `/status` and the end-of-run report read it
//! from the torrent's stats snapshot.

use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use crate::policy::Time;
use crate::policy::vod::{Ledger, VodSession};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::Geometry;

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
