//! The VoD contract (`vod-scoring.md`) as pure arithmetic: R, D and P, the movie's schedule,
//! the playheads deadlines come from (`playhead`, `readers`, `table`), which pieces the server
//! must take over and when (`session`), and the penalty ledger that is the single source of the
//! score. Time is passed in; nothing here reads a clock.

mod playhead;
mod readers;
mod session;
mod table;

pub use playhead::{Due, Playhead};
pub use readers::{Opened, ReaderId, Readers};
pub use session::{DeadlineUpdate, NEAR, RELEASE_MARGIN, VodSession};
pub use table::DeadlineTable;

use std::ops::Range;
use std::time::Duration;

use super::Time;
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VodError {
    #[error("the playback rate must be above zero")]
    ZeroRate,
    #[error("prefetch ({prefetch:?}) must not exceed the start-up delay ({delay:?})")]
    PrefetchOverDelay { prefetch: Duration, delay: Duration },
    #[error(
        "the movie (bytes {start}..{end}) is not inside the torrent ({total} bytes) or is empty"
    )]
    BadMovie { start: u64, end: u64, total: u64 },
}

/// R (bytes per second), D and P, checked: R > 0 and 0 <= P <= D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VodParams {
    rate: u64,
    delay: Duration,
    prefetch: Duration,
}

impl VodParams {
    pub fn new(rate: u64, delay: Duration, prefetch: Duration) -> Result<Self, VodError> {
        if rate == 0 {
            return Err(VodError::ZeroRate);
        }
        if prefetch > delay {
            return Err(VodError::PrefetchOverDelay { prefetch, delay });
        }
        Ok(Self {
            rate,
            delay,
            prefetch,
        })
    }
    /// R and P for players reading over HTTP (`btvod stream`): there is no start-up delay, a
    /// reader's next bytes are due when it asks for them.
    pub fn streaming(rate: u64, prefetch: Duration) -> Result<Self, VodError> {
        if rate == 0 {
            return Err(VodError::ZeroRate);
        }
        Ok(Self {
            rate,
            delay: Duration::ZERO,
            prefetch,
        })
    }
    pub fn rate(&self) -> u64 {
        self.rate
    }
    pub fn delay(&self) -> Duration {
        self.delay
    }
    pub fn prefetch(&self) -> Duration {
        self.prefetch
    }

    /// Time for `bytes` of movie to play at R, exact to the nanosecond (rounded down).
    fn play_time(&self, bytes: u64) -> Duration {
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// t_b = D - P + b / R: when movie byte `b` must be present.
    pub fn byte_deadline(&self, b: u64) -> Time {
        self.delay - self.prefetch + self.play_time(b)
    }

    /// B(t) = R (P + t - D): how many movie bytes must be present at `t` (not clamped to L).
    pub fn required_bytes(&self, now: Time) -> u64 {
        let ahead = now + self.prefetch;
        if ahead <= self.delay {
            return 0;
        }
        let secs = ahead - self.delay;
        (secs.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64
    }
}

/// The deadlines of one movie inside one torrent.
#[derive(Debug, Clone)]
pub struct Schedule {
    params: VodParams,
    /// The movie's bytes in the torrent's concatenated stream.
    movie: Range<u64>,
    pieces: Range<u32>,
    geometry: Geometry,
}

impl Schedule {
    pub fn new(
        params: VodParams,
        geometry: &Geometry,
        movie: Range<u64>,
    ) -> Result<Self, VodError> {
        if movie.start >= movie.end || movie.end > geometry.total_len() {
            return Err(VodError::BadMovie {
                start: movie.start,
                end: movie.end,
                total: geometry.total_len(),
            });
        }
        let first = (movie.start / u64::from(geometry.piece_len())) as u32;
        let last = ((movie.end - 1) / u64::from(geometry.piece_len())) as u32;
        Ok(Self {
            params,
            movie,
            pieces: first..last + 1,
            geometry: geometry.clone(),
        })
    }

    pub fn params(&self) -> &VodParams {
        &self.params
    }
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// The movie's bytes in the torrent's byte stream.
    pub fn movie(&self) -> Range<u64> {
        self.movie.clone()
    }
    pub fn movie_len(&self) -> u64 {
        self.movie.end - self.movie.start
    }
    /// Indices of the pieces that hold at least one movie byte, in deadline order.
    pub fn movie_pieces(&self) -> Range<u32> {
        self.pieces.clone()
    }
    pub fn is_movie_piece(&self, piece: PieceIndex) -> bool {
        self.pieces.contains(&piece.get())
    }

    /// d_i = D - P + max(s_i, 0) / R, or `None` for a piece with no movie byte.
    pub fn deadline(&self, piece: PieceIndex) -> Option<Time> {
        if !self.is_movie_piece(piece) {
            return None;
        }
        let start = self.geometry.piece_range(piece).start;
        Some(
            self.params
                .byte_deadline(start.saturating_sub(self.movie.start)),
        )
    }

    /// When playback (without stalls) reaches the piece's first movie byte: d_i + P.
    pub fn play_time(&self, piece: PieceIndex) -> Option<Time> {
        self.deadline(piece).map(|d| d + self.params.prefetch)
    }

    /// How many of the bytes in a torrent byte range belong to the movie.
    pub fn movie_overlap(&self, range: Range<u64>) -> u64 {
        let start = range.start.max(self.movie.start);
        let end = range.end.min(self.movie.end);
        end.saturating_sub(start)
    }

    /// How many of a piece's bytes belong to the movie.
    pub fn piece_movie_bytes(&self, piece: PieceIndex) -> u64 {
        self.movie_overlap(self.geometry.piece_range(piece))
    }

    pub fn block_movie_bytes(&self, block: BlockRef) -> u64 {
        let start = self.geometry.piece_range(block.piece()).start + u64::from(block.offset());
        self.movie_overlap(start..start + u64::from(block.len()))
    }

    /// Movie bytes present contiguously from the movie's start.
    pub fn contiguous_bytes(&self, have: &Bitfield) -> u64 {
        for i in self.pieces.clone() {
            let Some(piece) = self.geometry.piece(i) else {
                break;
            };
            if !have.has(piece) {
                return self
                    .movie_overlap(self.movie.start..self.geometry.piece_range(piece).start);
            }
        }
        self.movie_len()
    }
}

/// What the server has delivered and what playback saw; the score comes from here only.
/// (Bytes wasted on duplicates are the torrent's [`crate::policy::Waste`], not the ledger's.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub penalty_bytes: u64,
    pub server_requests: u64,
    pub pieces_from_server: u32,
    pub peer_bytes: u64,
    pub hash_failures_after_server: u32,
    /// Bytes received from peers for pieces a seek had moved away from every reader (their
    /// requests were cancelled; these were already on their way).
    pub abandoned_bytes: u64,
}

#[cfg(test)]
#[path = "vod_tests.rs"]
mod tests;
