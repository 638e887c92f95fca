//! The VoD contract (`vod-scoring.md`) as pure arithmetic: piece deadlines from R, D and P, the
//! playback clock, which pieces the server must take over and when, and the penalty ledger that
//! is the single source of the score. Time is passed in; nothing here reads a clock.

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub penalty_bytes: u64,
    pub server_requests: u64,
    pub pieces_from_server: u32,
    pub peer_bytes: u64,
    pub duplicate_bytes: u64,
    pub wasted_bytes: u64,
    pub uploaded_bytes: u64,
    pub hash_failures_after_server: u32,
}

/// Deadlines, server take-overs and the ledger for one playback.
#[derive(Debug, Clone)]
pub struct VodSession {
    schedule: Schedule,
    ledger: Ledger,
    /// The first movie piece whose deadline has not been handled yet.
    cursor: u32,
    /// Pieces the server was asked for (they stay the server's until verified).
    taken: Vec<bool>,
    /// When each movie piece became verified (index relative to the first movie piece).
    ready_at: Vec<Option<Time>>,
    /// Bytes the server delivered per movie piece, so a piece is counted in
    /// `pieces_from_server` once however many fetches it took.
    server_bytes: Vec<u64>,
    complete_at: Option<Time>,
}

impl VodSession {
    /// `have` is what is already verified at t = 0 (resumed from disk).
    pub fn new(schedule: Schedule, have: &Bitfield) -> Self {
        let n = schedule.pieces.len();
        let first = schedule.pieces.start;
        let ready_at = (0..n)
            .map(|i| {
                let present = schedule
                    .geometry
                    .piece(first + i as u32)
                    .is_some_and(|p| have.has(p));
                present.then_some(Duration::ZERO)
            })
            .collect();
        let mut s = Self {
            cursor: first,
            taken: vec![false; n],
            ready_at,
            server_bytes: vec![0; n],
            complete_at: None,
            ledger: Ledger::default(),
            schedule,
        };
        s.note_complete(Duration::ZERO);
        s
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    fn slot(&self, piece: PieceIndex) -> Option<usize> {
        piece
            .get()
            .checked_sub(self.schedule.pieces.start)
            .map(|i| i as usize)
            .filter(|i| *i < self.ready_at.len())
    }

    pub fn is_ready(&self, piece: PieceIndex) -> bool {
        self.slot(piece).is_some_and(|i| self.ready_at[i].is_some())
    }
    pub fn is_taken(&self, piece: PieceIndex) -> bool {
        self.slot(piece).is_some_and(|i| self.taken[i])
    }

    /// Movie pieces whose deadline falls at or before `now + lead` and that are neither
    /// verified nor already the server's: the shell must fetch their missing blocks now.
    /// `lead` is the estimated time for the server to deliver a piece (zero for a local copy),
    /// so the fetch lands by the deadline and is never issued earlier than that.
    pub fn take_due(&mut self, now: Time, lead: Duration) -> Vec<PieceIndex> {
        let mut due = Vec::new();
        while self.cursor < self.schedule.pieces.end {
            let Some(piece) = self.schedule.geometry.piece(self.cursor) else {
                break;
            };
            let Some(deadline) = self.schedule.deadline(piece) else {
                break;
            };
            if deadline > now + lead {
                break;
            }
            if let Some(i) = self.slot(piece)
                && self.ready_at[i].is_none()
                && !self.taken[i]
            {
                self.taken[i] = true;
                due.push(piece);
            }
            self.cursor += 1;
        }
        due
    }

    /// The next deadline still to be handled, for the shell's timer.
    pub fn next_deadline(&self) -> Option<Time> {
        let piece = self.schedule.geometry.piece(self.cursor)?;
        self.schedule.deadline(piece)
    }

    /// The server delivered `bytes` for `piece` (counted exactly once, as received).
    pub fn on_server_bytes(&mut self, piece: PieceIndex, bytes: u64) {
        self.ledger.penalty_bytes += bytes;
        self.ledger.server_requests += 1;
        if let Some(i) = self.slot(piece) {
            if self.server_bytes[i] == 0 && bytes > 0 {
                self.ledger.pieces_from_server += 1;
            }
            self.server_bytes[i] += bytes;
        }
    }

    /// A piece passed its hash check at `now`; `peer_movie_bytes` is how many of its movie bytes
    /// came from peers (the rest came from the server).
    pub fn on_verified(&mut self, now: Time, piece: PieceIndex, peer_movie_bytes: u64) {
        let Some(i) = self.slot(piece) else { return };
        if self.ready_at[i].is_some() {
            return;
        }
        self.ready_at[i] = Some(now);
        self.ledger.peer_bytes += peer_movie_bytes;
        self.note_complete(now);
    }

    fn note_complete(&mut self, now: Time) {
        if self.complete_at.is_none() && self.ready_at.iter().all(Option::is_some) {
            self.complete_at = Some(now);
        }
    }

    /// Movie pieces verified so far.
    pub fn ready_count(&self) -> u32 {
        self.ready_at.iter().filter(|r| r.is_some()).count() as u32
    }

    /// Every movie piece is verified: the penalty can no longer change.
    pub fn complete_at(&self) -> Option<Time> {
        self.complete_at
    }

    /// Seconds playback would have waited: playing from t = D at R, each piece must be
    /// verified before its first byte plays; a late piece delays everything after it.
    pub fn stall(&self, now: Time) -> Duration {
        let mut shift = Duration::ZERO;
        for (i, ready) in self.ready_at.iter().enumerate() {
            let Some(piece) = self
                .schedule
                .geometry
                .piece(self.schedule.pieces.start + i as u32)
            else {
                break;
            };
            let Some(play) = self.schedule.play_time(piece) else {
                continue;
            };
            let need = play + shift;
            match ready {
                Some(at) if *at > need => shift += *at - need,
                Some(_) => {}
                // Not there yet: playback has waited since `need` if that has passed.
                None => {
                    if now > need {
                        shift += now - need;
                    }
                    break;
                }
            }
        }
        shift
    }

    /// Movie bytes played by `now`, allowing for stalls so far.
    pub fn position(&self, now: Time) -> u64 {
        let played = now.saturating_sub(self.schedule.params.delay + self.stall(now));
        let bytes =
            (played.as_nanos() * u128::from(self.schedule.params.rate) / 1_000_000_000) as u64;
        bytes.min(self.schedule.movie_len())
    }
}

#[cfg(test)]
#[path = "vod_tests.rs"]
mod tests;
