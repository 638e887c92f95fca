//! One playback: the playheads (the course's fixed clock, or players reading over HTTP), the
//! deadline table built from them, which pieces the server must take over and when, which it
//! must give back after a seek, and the ledger. The engine and the simulator drive this same
//! type; time is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::playhead::Playhead;
use super::readers::{Opened, ReaderId, Readers};
use super::table::DeadlineTable;
use super::{Ledger, Schedule};
use crate::policy::Time;
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::PieceIndex;

/// A piece due within this of now is near a reader: its requests at peers matter now. One
/// that a seek moves beyond it (or behind every reader) is abandoned and its requests are
/// cancelled, so the new window's blocks are not queued behind them.
pub const NEAR: Duration = Duration::from_secs(20);

/// A piece the server was given is handed back once it is due this much later than it could
/// be fetched (or not due at all): after a seek, not when the server's estimate wobbles.
pub const RELEASE_MARGIN: Duration = Duration::from_secs(10);

/// Who the deadlines come from.
#[derive(Debug, Clone)]
enum Audience {
    /// The course contract: one playhead that plays the movie from t = D, never moved (its
    /// table is built once).
    Clock,
    /// Players reading the torrent's files.
    Readers(Box<Readers>),
}

/// What the shell must do after the playheads moved: hand `table` to the picker, cancel the
/// requests of `abandoned` pieces at peers (the picker does, told by `on_deadlines`), and stop
/// the server fetches of `released` pieces and give them back to the picker.
#[derive(Debug, Clone)]
#[must_use = "the picker must be given the new table and the released pieces"]
pub struct DeadlineUpdate {
    pub table: Arc<DeadlineTable>,
    pub released: Vec<PieceIndex>,
    pub abandoned: Vec<PieceIndex>,
}

/// Deadlines, server take-overs and the ledger for one playback.
#[derive(Debug, Clone)]
pub struct VodSession {
    schedule: Schedule,
    audience: Audience,
    table: Arc<DeadlineTable>,
    /// The playheads moved since `table` was built, at `built_at`.
    stale: bool,
    built_at: Time,
    /// The movie piece (torrent index) the playhead was in when `table` was built, per reader:
    /// reads inside the same piece do not rebuild the table.
    built_at_pieces: Vec<(ReaderId, u32)>,
    /// The first entry of `table.order()` whose deadline has not been handled yet; every
    /// entry before it is firm and was handled, and it is firm itself.
    cursor: usize,
    /// Pieces handed to the server and not verified yet.
    taken: BTreeSet<u32>,
    /// When each piece of the torrent became verified. Which pieces we have is the picker's
    /// book's fact; this adds when, and is kept in step by the shell calling `on_verified`
    /// where it tells the book (`piece_verified`).
    ready_at: Vec<Option<Time>>,
    /// Bytes the server delivered per piece, so a piece is counted in `pieces_from_server`
    /// once however many fetches it took.
    server_bytes: Vec<u64>,
    /// Movie pieces not verified yet.
    movie_missing: u32,
    complete_at: Option<Time>,
    /// Pieces a seek moved away from every reader (until one is near again), with when.
    abandoned: BTreeMap<u32, Time>,
    ledger: Ledger,
}

impl VodSession {
    /// The course contract: deadlines `D - P + b/R` from t = 0. `have` is what is already
    /// verified at t = 0 (resumed from disk).
    pub fn new(schedule: Schedule, have: &Bitfield) -> Self {
        let table = DeadlineTable::fixed(&schedule);
        Self::with_audience(schedule, have, Audience::Clock, table)
    }

    /// Deadlines from readers (`btvod stream`): nothing is due until a reader opens. The
    /// schedule's R and P apply to every reader; its D is not used.
    /// Until the first reader opens, the movie's first pieces are wanted nearest first (as for
    /// a paused reader at its start), so a player that starts finds them coming.
    pub fn for_readers(schedule: Schedule, have: &Bitfield) -> Self {
        let mut readers = Readers::new(schedule.params.rate(), schedule.params.prefetch());
        readers.expect(Duration::ZERO, schedule.movie.clone());
        let table = DeadlineTable::build(&schedule.geometry, Duration::ZERO, readers.playheads());
        Self::with_audience(schedule, have, Audience::Readers(Box::new(readers)), table)
    }

    fn with_audience(
        schedule: Schedule,
        have: &Bitfield,
        audience: Audience,
        table: DeadlineTable,
    ) -> Self {
        let n = schedule.geometry.piece_count() as usize;
        let ready_at: Vec<Option<Time>> = (0..n)
            .map(|i| {
                schedule
                    .geometry
                    .piece(i as u32)
                    .is_some_and(|p| have.has(p))
                    .then_some(Duration::ZERO)
            })
            .collect();
        let movie_missing = schedule
            .pieces
            .clone()
            .filter(|&i| ready_at.get(i as usize).is_some_and(Option::is_none))
            .count() as u32;
        let mut s = Self {
            audience,
            table: Arc::new(table),
            stale: false,
            built_at: Duration::ZERO,
            built_at_pieces: Vec::new(),
            cursor: 0,
            taken: BTreeSet::new(),
            ready_at,
            server_bytes: vec![0; n],
            movie_missing,
            complete_at: None,
            abandoned: BTreeMap::new(),
            ledger: Ledger::default(),
            schedule,
        };
        s.skip_unfirm();
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
    /// The current deadline table (the picker is handed each new one).
    pub fn table(&self) -> &Arc<DeadlineTable> {
        &self.table
    }
    /// The readers, when deadlines come from players.
    pub fn readers(&self) -> Option<&Readers> {
        match &self.audience {
            Audience::Readers(r) => Some(r),
            Audience::Clock => None,
        }
    }
    fn readers_mut(&mut self) -> Option<&mut Readers> {
        match &mut self.audience {
            Audience::Readers(r) => Some(r),
            Audience::Clock => None,
        }
    }

    fn ready(&self, i: u32) -> bool {
        self.ready_at.get(i as usize).is_some_and(Option::is_some)
    }
    pub fn is_ready(&self, piece: PieceIndex) -> bool {
        self.ready(piece.get())
    }
    /// The server was given the piece and it is not verified yet.
    pub fn is_taken(&self, piece: PieceIndex) -> bool {
        self.taken.contains(&piece.get())
    }

    // ---- readers (each marks the table stale; `poll_deadlines` rebuilds it) ----

    /// A reader of `file` (torrent bytes) asked for its bytes `span`.
    pub fn open_reader(
        &mut self,
        now: Time,
        id: ReaderId,
        file: Range<u64>,
        span: Range<u64>,
    ) -> Opened {
        let piece_len = self.schedule.geometry.piece_len();
        let Some(readers) = self.readers_mut() else {
            return Opened::Continues;
        };
        let opened = readers.open(now, id, file, span, piece_len);
        self.stale = true;
        opened
    }

    /// The reader was sent every byte of its file before `byte`.
    pub fn reader_read(&mut self, now: Time, id: ReaderId, byte: u64) {
        let geometry = &self.schedule.geometry;
        let Audience::Readers(readers) = &mut self.audience else {
            return;
        };
        readers.read(now, id, byte);
        // A new piece under the playhead changes which pieces are due; reads inside one piece
        // only shift times a little, and the next tick picks that up.
        let piece = readers
            .list()
            .find(|(r, _, _)| *r == id)
            .and_then(|(_, h, _)| geometry.piece_at(h.file().start + h.position()))
            .map(PieceIndex::get);
        let built = self
            .built_at_pieces
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, p)| *p);
        if piece != built {
            self.stale = true;
        }
    }

    /// The reader waits for a piece that is not verified yet (`true`), or no longer.
    pub fn reader_waiting(&mut self, now: Time, id: ReaderId, waiting: bool) {
        if let Some(r) = self.readers_mut() {
            r.set_waiting(now, id, waiting);
        }
    }

    pub fn reader_paused(&mut self, now: Time, id: ReaderId) {
        if let Some(r) = self.readers_mut() {
            r.pause(now, id);
            self.stale = true;
        }
    }

    pub fn reader_resumed(&mut self, now: Time, id: ReaderId) {
        if let Some(r) = self.readers_mut() {
            r.resume(now, id);
            self.stale = true;
        }
    }

    pub fn close_reader(&mut self, now: Time, id: ReaderId) {
        if let Some(r) = self.readers_mut() {
            r.close(now, id);
            self.stale = true;
        }
    }

    /// A new playback rate for every reader.
    pub fn set_rate(&mut self, now: Time, rate: u64) {
        if let Some(r) = self.readers_mut() {
            r.set_rate(now, rate);
            self.stale = true;
        }
    }

    /// Once a tick: readers' deadlines move with time (re-based reads, paused projections).
    pub fn on_tick(&mut self) {
        if self
            .readers()
            .is_some_and(|r| r.playheads().next().is_some())
        {
            self.stale = true;
        }
    }

    /// If the playheads moved: the new deadline table, the pieces no longer near any reader,
    /// and the pieces the server had been given that are no longer due (due later than
    /// `lead` + [`RELEASE_MARGIN`] from now, or not at all). `lead` is how early the server is
    /// asked before a deadline.
    pub fn poll_deadlines(&mut self, now: Time, lead: Duration) -> Option<DeadlineUpdate> {
        if !self.stale {
            return None;
        }
        self.stale = false;
        let Audience::Readers(readers) = &self.audience else {
            return None;
        };
        let geometry = &self.schedule.geometry;
        let table = DeadlineTable::build(geometry, now, readers.playheads());
        self.built_at_pieces = readers
            .list()
            .filter_map(|(id, h, _)| {
                geometry
                    .piece_at(h.file().start + h.position())
                    .map(|p| (id, p.get()))
            })
            .collect();
        // Near when each table was built: time passing only brings pieces nearer, so what was
        // near then and is not now was moved away by the readers.
        let near_before: Vec<u32> = self.table.order()
            [..self.table.count_due_by(self.built_at + NEAR)]
            .iter()
            .map(|(_, i)| *i)
            .collect();
        let near_now = &table.order()[..table.count_due_by(now + NEAR)];
        for (_, i) in near_now {
            self.abandoned.remove(i);
        }
        let near_now: BTreeSet<u32> = near_now.iter().map(|(_, i)| *i).collect();
        let mut abandoned = Vec::new();
        for i in near_before {
            if !near_now.contains(&i) && !self.ready(i) && !self.abandoned.contains_key(&i) {
                self.abandoned.insert(i, now);
                abandoned.extend(geometry.piece(i));
            }
        }
        let keep_until = now + lead + RELEASE_MARGIN;
        let mut released = Vec::new();
        for &i in &self.taken {
            let Some(piece) = geometry.piece(i) else {
                continue;
            };
            let due = table.due(piece);
            if due.is_none_or(|d| !d.firm || d.at > keep_until) {
                released.push(piece);
            }
        }
        for piece in &released {
            self.taken.remove(&piece.get());
        }
        self.table = Arc::new(table);
        self.built_at = now;
        self.cursor = 0;
        self.skip_unfirm();
        Some(DeadlineUpdate {
            table: Arc::clone(&self.table),
            released,
            abandoned,
        })
    }

    /// Moves the cursor past entries that are not firm deadlines: nothing is ever taken at
    /// them, and only a new table (which resets the cursor) can make them firm.
    fn skip_unfirm(&mut self) {
        let order = self.table.order();
        while let Some(&(_, i)) = order.get(self.cursor) {
            let firm = self
                .schedule
                .geometry
                .piece(i)
                .and_then(|p| self.table.due(p))
                .is_some_and(|d| d.firm);
            if firm {
                break;
            }
            self.cursor += 1;
        }
    }

    // ---- deadlines and the server ----

    /// Pieces whose firm deadline falls at or before `now + lead` and that are neither
    /// verified nor already the server's: the shell must fetch their missing blocks now.
    /// `lead` is the estimated time for the server to deliver a piece (zero for a local copy),
    /// so the fetch lands by the deadline and is never issued earlier than that.
    pub fn take_due(&mut self, now: Time, lead: Duration) -> Vec<PieceIndex> {
        let mut due = Vec::new();
        let table = Arc::clone(&self.table);
        while let Some(&(at, i)) = table.order().get(self.cursor) {
            if at > now + lead {
                break;
            }
            if !self.ready(i) && self.taken.insert(i) {
                due.extend(self.schedule.geometry.piece(i));
            }
            self.cursor += 1;
            self.skip_unfirm();
        }
        due
    }

    /// The next deadline still to be handled, for the shell's timer.
    pub fn next_deadline(&self) -> Option<Time> {
        self.table.order().get(self.cursor).map(|(at, _)| *at)
    }

    /// The server delivered `bytes` for `piece` (counted exactly once, as received).
    pub fn on_server_bytes(&mut self, piece: PieceIndex, bytes: u64) {
        self.ledger.penalty_bytes += bytes;
        self.ledger.server_requests += 1;
        if let Some(b) = self.server_bytes.get_mut(piece.as_usize()) {
            if *b == 0 && bytes > 0 {
                self.ledger.pieces_from_server += 1;
            }
            *b += bytes;
        }
    }

    /// A peer delivered `bytes` of `piece`, asked for at `requested_at`: counted as abandoned
    /// if a seek left the piece after the request (its CANCEL came too late).
    pub fn on_peer_bytes(&mut self, piece: PieceIndex, bytes: u64, requested_at: Time) {
        if self
            .abandoned
            .get(&piece.get())
            .is_some_and(|&at| requested_at <= at)
        {
            self.ledger.abandoned_bytes += bytes;
        }
    }

    /// A piece passed its hash check at `now`; `peer_movie_bytes` is how many of its movie bytes
    /// came from peers (the rest came from the server).
    pub fn on_verified(&mut self, now: Time, piece: PieceIndex, peer_movie_bytes: u64) {
        let Some(slot) = self.ready_at.get_mut(piece.as_usize()) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        *slot = Some(now);
        self.taken.remove(&piece.get());
        self.abandoned.remove(&piece.get());
        if self.schedule.is_movie_piece(piece) {
            self.movie_missing = self.movie_missing.saturating_sub(1);
            self.ledger.peer_bytes += peer_movie_bytes;
        }
        self.note_complete(now);
    }

    fn note_complete(&mut self, now: Time) {
        if self.complete_at.is_none() && self.movie_missing == 0 {
            self.complete_at = Some(now);
        }
    }

    /// Movie pieces verified so far.
    pub fn ready_count(&self) -> u32 {
        self.schedule.pieces.len() as u32 - self.movie_missing
    }

    /// Every movie piece is verified: the penalty can no longer change.
    pub fn complete_at(&self) -> Option<Time> {
        self.complete_at
    }

    /// Seconds playback waited for data. The fixed playhead plays from t = D at R and each
    /// piece must be verified before its first byte plays, a late piece delaying everything
    /// after it; readers count the time a playing reader waited for a piece.
    pub fn stall(&self, now: Time) -> Duration {
        let Audience::Clock = &self.audience else {
            return self.readers().map_or(Duration::ZERO, |r| r.stall(now));
        };
        let mut shift = Duration::ZERO;
        for i in self.schedule.pieces.clone() {
            let Some(piece) = self.schedule.geometry.piece(i) else {
                break;
            };
            let Some(play) = self.schedule.play_time(piece) else {
                continue;
            };
            let need = play + shift;
            match self.ready_at.get(i as usize).copied().flatten() {
                Some(at) if at > need => shift += at - need,
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

    /// Time readers that had been sent bytes waited for more (streaming only; see
    /// [`Readers::waited`]).
    pub fn reader_wait(&self, now: Time) -> Duration {
        self.readers().map_or(Duration::ZERO, |r| r.waited(now))
    }

    /// Movie bytes played by `now`: the fixed playhead's position allowing for stalls so far,
    /// or the furthest position an open reader of the movie has reached.
    pub fn position(&self, now: Time) -> u64 {
        match &self.audience {
            Audience::Clock => {
                let params = &self.schedule.params;
                let played = now.saturating_sub(params.delay() + self.stall(now));
                let bytes = (played.as_nanos() * u128::from(params.rate()) / 1_000_000_000) as u64;
                bytes.min(self.schedule.movie_len())
            }
            Audience::Readers(r) => r
                .playheads()
                .filter(|h| *h.file() == self.schedule.movie)
                .map(Playhead::position)
                .max()
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
