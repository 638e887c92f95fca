//! The players reading the torrent's files (`btvod stream`): one playhead per open reader,
//! which new reader is a seek, and how long the players stalled. Time is passed in.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use super::playhead::Playhead;
use crate::policy::Time;

/// A reader's identity, chosen by the shell and never reused while the session runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReaderId(pub u64);

/// How the session took a newly opened reader.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The first reader of the file, or one starting near where another reader of it is or
    /// was (a player's next request, a second reader at the same place).
    Continues,
    /// Far from every place the file was being read: the viewer jumped.
    Seek,
}

/// Closed readers remembered for telling a seek from a continuation.
const REMEMBERED: usize = 8;

#[derive(Debug, Clone)]
struct Reader {
    head: Playhead,
    /// Since when it has been waiting for a piece, if it is.
    waiting_since: Option<Time>,
    /// The byte after the last one it asked for.
    end: u64,
    /// A player that plays this reader's bytes at R from its first one: how far it got. None
    /// before the first byte (the wait for it is start-up, not a stall).
    play: Option<Played>,
    /// Time that player had nothing to play.
    stalled: Duration,
}

/// Where the modelled player is: byte `pos` of the file at `at`.
#[derive(Debug, Clone, Copy)]
struct Played {
    pos: u64,
    at: Time,
}

impl Reader {
    fn started(&self) -> bool {
        self.play.is_some()
    }

    /// The modelled player plays on to `now` from what it was sent; the time it had nothing
    /// to play meanwhile goes to `stalled`.
    fn play_until(&mut self, now: Time, rate: u64) {
        let Some(played) = &mut self.play else {
            return;
        };
        let sent = self.head.position();
        let elapsed = now.saturating_sub(played.at);
        let buffered =
            Duration::from_secs_f64(sent.saturating_sub(played.pos) as f64 / rate.max(1) as f64);
        if elapsed <= buffered {
            played.pos += (elapsed.as_secs_f64() * rate as f64) as u64;
        } else {
            played.pos = sent;
            // A reader sent everything it asked for is done, not starved.
            if sent < self.end {
                self.stalled += elapsed - buffered;
            }
        }
        played.at = played.at.max(now);
    }
}

/// Every open reader and what the readers did so far.
#[derive(Debug, Clone)]
pub struct Readers {
    rate: u64,
    prefetch: Duration,
    open: BTreeMap<ReaderId, Reader>,
    /// Before the first reader opens: a paused playhead at the start of the movie, so that its
    /// first pieces are fetched from peers nearest first (never bought) while the player starts.
    prospect: Option<Playhead>,
    /// Where recently closed readers stood: (file, position).
    closed: VecDeque<(Range<u64>, u64)>,
    seeks: u32,
    /// Time during which at least one started reader was waiting for data, up to
    /// `waiting_since`.
    waited: Duration,
    waiting_since: Option<Time>,
    /// Stall of the readers already closed.
    closed_stall: Duration,
    first_byte_at: Option<Time>,
}

impl Readers {
    pub fn new(rate: u64, prefetch: Duration) -> Self {
        Self {
            rate: rate.max(1),
            prefetch,
            open: BTreeMap::new(),
            prospect: None,
            closed: VecDeque::new(),
            seeks: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            closed_stall: Duration::ZERO,
            first_byte_at: None,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Until a reader opens, the movie's first bytes are wanted as if a reader were paused
    /// at them: nearest first, never due.
    pub fn expect(&mut self, now: Time, movie: Range<u64>) {
        let mut head = Playhead::reader(now, movie, 0, self.rate, self.prefetch);
        head.pause(now);
        self.prospect = Some(head);
    }

    /// How far from every known position of a file a request must start to be a seek: four
    /// seconds of play or two pieces, whichever is more (a player's next request after a short
    /// skip, or its re-request of bytes it dropped, stays close).
    pub fn seek_distance(&self, piece_len: u32) -> u64 {
        (4 * self.rate).max(2 * u64::from(piece_len))
    }

    /// A reader of `file` (torrent bytes) asked for its bytes `span`.
    pub fn open(
        &mut self,
        now: Time,
        id: ReaderId,
        file: Range<u64>,
        span: Range<u64>,
        piece_len: u32,
    ) -> Opened {
        self.prospect = None;
        let far = self.seek_distance(piece_len);
        let byte = span.start;
        let mut known = self
            .open
            .values()
            .map(|r| (r.head.file().clone(), r.head.position()))
            .chain(self.closed.iter().cloned())
            .filter(|(f, _)| *f == file)
            .peekable();
        let opened = if known.peek().is_none() || known.any(|(_, p)| p.abs_diff(byte) <= far) {
            Opened::Continues
        } else {
            self.seeks += 1;
            Opened::Seek
        };
        let head = Playhead::reader(now, file, byte, self.rate, self.prefetch);
        self.open.insert(
            id,
            Reader {
                head,
                waiting_since: None,
                end: span.end,
                play: None,
                stalled: Duration::ZERO,
            },
        );
        opened
    }

    /// The reader was sent every byte before `byte` (of its file).
    pub fn read(&mut self, now: Time, id: ReaderId, byte: u64) {
        let rate = self.rate;
        if let Some(r) = self.open.get_mut(&id) {
            r.play_until(now, rate);
            if byte > r.head.position() {
                self.first_byte_at.get_or_insert(now);
                r.play.get_or_insert(Played {
                    pos: r.head.position(),
                    at: now,
                });
            }
            r.head.observe(now, byte);
        }
        self.set_waiting(now, id, false);
    }

    /// The reader waits for a piece that is not verified yet (`true`), or no longer.
    pub fn set_waiting(&mut self, now: Time, id: ReaderId, waiting: bool) {
        if let Some(r) = self.open.get_mut(&id) {
            r.waiting_since = match (waiting, r.waiting_since) {
                (true, None) => Some(now),
                (true, since) => since,
                (false, _) => None,
            };
        }
        self.update_waited(now);
    }

    pub fn pause(&mut self, now: Time, id: ReaderId) {
        if let Some(r) = self.open.get_mut(&id) {
            r.head.pause(now);
        }
    }

    pub fn resume(&mut self, now: Time, id: ReaderId) {
        if let Some(r) = self.open.get_mut(&id) {
            r.head.resume(now);
        }
    }

    pub fn close(&mut self, now: Time, id: ReaderId) {
        let rate = self.rate;
        if let Some(mut r) = self.open.remove(&id) {
            r.play_until(now, rate);
            self.closed_stall += r.stalled;
            if self.closed.len() == REMEMBERED {
                self.closed.pop_front();
            }
            self.closed
                .push_back((r.head.file().clone(), r.head.position()));
        }
        self.update_waited(now);
    }

    pub fn set_rate(&mut self, now: Time, rate: u64) {
        let old = self.rate;
        self.rate = rate.max(1);
        for r in self.open.values_mut() {
            r.play_until(now, old);
            r.head.set_rate(now, self.rate);
        }
        if let Some(head) = &mut self.prospect {
            head.set_rate(now, self.rate);
        }
    }

    fn update_waited(&mut self, now: Time) {
        let waiting = self
            .open
            .values()
            .any(|r| r.started() && r.waiting_since.is_some());
        match (waiting, self.waiting_since) {
            (true, None) => self.waiting_since = Some(now),
            (false, Some(since)) => {
                self.waited += now.saturating_sub(since);
                self.waiting_since = None;
            }
            _ => {}
        }
    }

    /// Stall: for each reader, the time a player playing its bytes at R from the first one
    /// would have had nothing to play (bytes it asked for not sent yet), summed over readers.
    /// A player's cache hides a reader's short waits; this counts what it could not hide. The
    /// wait for a reader's first byte (start-up, a seek) is time to first byte instead.
    pub fn stall(&self, now: Time) -> Duration {
        let open: Duration = self
            .open
            .values()
            .map(|r| {
                let mut r = r.clone();
                r.play_until(now, self.rate);
                r.stalled
            })
            .sum();
        self.closed_stall + open
    }

    /// Time during which a reader that had been sent bytes waited for more: the literal
    /// measure, longer than the stall since players read ahead of what they play.
    pub fn waited(&self, now: Time) -> Duration {
        self.waited
            + self
                .waiting_since
                .map_or(Duration::ZERO, |s| now.saturating_sub(s))
    }

    pub fn seeks(&self) -> u32 {
        self.seeks
    }

    /// When the first byte was sent to a reader.
    pub fn first_byte_at(&self) -> Option<Time> {
        self.first_byte_at
    }

    /// Every playhead deadlines come from: the open readers' (or, before any, the prospect).
    pub fn playheads(&self) -> impl Iterator<Item = &Playhead> {
        self.open
            .values()
            .map(|r| &r.head)
            .chain(self.prospect.iter())
    }

    pub fn any_paused(&self) -> bool {
        self.open.values().any(|r| r.head.is_paused())
    }

    /// Every open reader: id, playhead, whether it waits for data.
    pub fn list(&self) -> impl Iterator<Item = (ReaderId, &Playhead, bool)> {
        self.open
            .iter()
            .map(|(id, r)| (*id, &r.head, r.waiting_since.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    const MOVIE: Range<u64> = 0..10_000_000;
    const PIECE: u32 = 65_536;

    /// R = 100,000 B/s.
    fn readers() -> Readers {
        Readers::new(100_000, secs(2.0))
    }

    #[test]
    fn a_request_far_from_every_known_position_is_a_seek() {
        let mut r = readers();
        let open =
            |r: &mut Readers, t, id, at| r.open(secs(t), ReaderId(id), MOVIE, at..MOVIE.end, PIECE);
        assert_eq!(open(&mut r, 0.0, 1, 0), Opened::Continues);
        r.read(secs(1.0), ReaderId(1), 300_000);
        r.close(secs(1.5), ReaderId(1));
        // The player's next request near where the last one stopped.
        assert_eq!(open(&mut r, 2.0, 2, 350_000), Opened::Continues);
        r.close(secs(2.5), ReaderId(2));
        assert_eq!(open(&mut r, 3.0, 3, 7_000_000), Opened::Seek);
        // A second file is its own first reader, not a seek.
        assert_eq!(
            r.open(
                secs(3.0),
                ReaderId(4),
                10_000_000..10_001_000,
                0..1000,
                PIECE
            ),
            Opened::Continues
        );
        assert_eq!(r.seeks(), 1);
    }

    #[test]
    fn a_player_with_bytes_in_hand_does_not_stall_while_its_reader_waits() {
        let mut r = readers();
        r.open(secs(0.0), ReaderId(1), MOVIE, 0..MOVIE.end, PIECE);
        r.set_waiting(secs(0.0), ReaderId(1), true);
        // Start-up: the first byte after 2 s is not a stall.
        r.read(secs(2.0), ReaderId(1), 300_000);
        assert_eq!(r.first_byte_at(), Some(secs(2.0)));
        assert_eq!(r.stall(secs(2.0)), Duration::ZERO);
        // 3 s of movie in hand; the reader waits from 2.5 s to 4.5 s: the player never ran dry.
        r.set_waiting(secs(2.5), ReaderId(1), true);
        r.read(secs(4.5), ReaderId(1), 500_000);
        assert_eq!(r.stall(secs(4.5)), Duration::ZERO);
        assert_eq!(
            r.waited(secs(4.5)),
            secs(2.0),
            "the literal wait is still reported"
        );
        // 5 s in hand from t = 2: dry at 7 s; nothing more until 9 s.
        assert_eq!(r.stall(secs(8.0)), secs(1.0), "counted while it lasts");
        r.read(secs(9.0), ReaderId(1), 600_000);
        assert_eq!(r.stall(secs(9.0)), secs(2.0));
        r.close(secs(9.5), ReaderId(1));
        assert_eq!(
            r.stall(secs(30.0)),
            secs(2.0),
            "a closed reader stalls no more"
        );
    }

    #[test]
    fn a_reader_sent_all_it_asked_for_is_not_starved() {
        let mut r = readers();
        r.open(secs(0.0), ReaderId(1), MOVIE, 9_000_000..9_100_000, PIECE);
        r.read(secs(0.0), ReaderId(1), 9_100_000);
        assert_eq!(r.stall(secs(60.0)), Duration::ZERO);
    }

    #[test]
    fn two_stalling_readers_add_up() {
        let mut r = readers();
        for id in [1, 2] {
            r.open(secs(0.0), ReaderId(id), MOVIE, 0..MOVIE.end, PIECE);
            r.read(secs(0.0), ReaderId(id), 100_000);
        }
        assert_eq!(r.stall(secs(3.0)), secs(4.0));
    }
}
