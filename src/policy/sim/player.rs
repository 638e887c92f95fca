//! A simulated player for streaming scenarios: it opens a reader on the movie, plays at R from
//! where it opened, reads only verified bytes (waiting when the next piece is not there), and
//! seeks when its script says (its reader closes and one opens at the new place). It drives the
//! same `VodSession` reader events the stream server does.

use std::ops::Range;

use crate::policy::Time;
use crate::policy::vod::{ReaderId, VodSession};
use crate::proto::geometry::Geometry;

/// When the player starts, and where it jumps later (movie bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerScript {
    pub start: Time,
    pub seeks: Vec<(Time, u64)>,
}

pub(super) struct Player {
    script: PlayerScript,
    /// The next seek of the script not done yet.
    next_seek: usize,
    reader: Option<Reading>,
    next_id: u64,
}

struct Reading {
    id: ReaderId,
    /// The next movie byte to play (everything before it was read).
    at: u64,
    since: Time,
}

impl Player {
    pub(super) fn new(script: PlayerScript) -> Self {
        Self {
            script,
            next_seek: 0,
            reader: None,
            next_id: 1,
        }
    }

    /// Plays on to `now`: opens at the start time, seeks when due, and reads what is verified
    /// at R since the last step.
    pub(super) fn step(
        &mut self,
        now: Time,
        session: &mut VodSession,
        geometry: &Geometry,
        movie: &Range<u64>,
    ) {
        if now < self.script.start {
            return;
        }
        let rate = session.readers().map_or(1, |r| r.rate());
        let seek = self
            .script
            .seeks
            .get(self.next_seek)
            .filter(|(at, _)| *at <= now)
            .map(|(_, to)| *to);
        if self.reader.is_none() || seek.is_some() {
            if let Some(old) = self.reader.take() {
                session.close_reader(now, old.id);
            }
            if seek.is_some() {
                self.next_seek += 1;
            }
            let id = ReaderId(self.next_id);
            self.next_id += 1;
            let at = seek.unwrap_or(0).min(movie.end - movie.start);
            session.open_reader(now, id, movie.clone(), at..movie.end - movie.start);
            self.reader = Some(Reading { id, at, since: now });
        }
        let Some(r) = &mut self.reader else {
            return;
        };
        let played = now.saturating_sub(r.since);
        let want = r.at + (played.as_secs_f64() * rate as f64) as u64;
        // Only verified bytes: up to the first piece that is not there.
        let mut reach = r.at;
        while reach < want.min(movie.end - movie.start) {
            match geometry.piece_at(movie.start + reach) {
                Some(p) if session.is_ready(p) => {
                    reach = geometry.piece_range(p).end.min(movie.end) - movie.start;
                }
                _ => break,
            }
        }
        let reach = reach.min(want);
        let waiting = reach < want && reach < movie.end - movie.start;
        if reach > r.at {
            session.reader_read(now, r.id, reach);
        }
        session.reader_waiting(now, r.id, waiting);
        // A player that waited does not catch up: it plays on from where it is.
        r.at = reach;
        r.since = now;
    }
}
