//! The players reading the torrent's files (`btvod stream`): one playhead per open reader,
//! which new reader is a seek, and how long readers waited for data (stall). Time is passed in.

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
    /// Whether it has been sent a byte: its first wait is start-up, not a stall.
    started: bool,
}

/// Every open reader and what the readers did so far.
#[derive(Debug, Clone)]
pub struct Readers {
    rate: u64,
    prefetch: Duration,
    open: BTreeMap<ReaderId, Reader>,
    /// Where recently closed readers stood: (file, position).
    closed: VecDeque<(Range<u64>, u64)>,
    seeks: u32,
    /// Stall: time during which at least one started reader was waiting, up to `stall_since`.
    stalled: Duration,
    stall_since: Option<Time>,
    first_byte_at: Option<Time>,
}

impl Readers {
    pub fn new(rate: u64, prefetch: Duration) -> Self {
        Self {
            rate: rate.max(1),
            prefetch,
            open: BTreeMap::new(),
            closed: VecDeque::new(),
            seeks: 0,
            stalled: Duration::ZERO,
            stall_since: None,
            first_byte_at: None,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// How far from every known position of a file a request must start to be a seek: four
    /// seconds of play or two pieces, whichever is more (a player's next request after a short
    /// skip, or its re-request of bytes it dropped, stays close).
    pub fn seek_distance(&self, piece_len: u32) -> u64 {
        (4 * self.rate).max(2 * u64::from(piece_len))
    }

    pub fn open(
        &mut self,
        now: Time,
        id: ReaderId,
        file: Range<u64>,
        byte: u64,
        piece_len: u32,
    ) -> Opened {
        let far = self.seek_distance(piece_len);
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
                started: false,
            },
        );
        opened
    }

    /// The reader was sent every byte before `byte` (of its file).
    pub fn read(&mut self, now: Time, id: ReaderId, byte: u64) {
        if let Some(r) = self.open.get_mut(&id) {
            if byte > r.head.position() && self.first_byte_at.is_none() {
                self.first_byte_at = Some(now);
            }
            if byte > r.head.position() {
                r.started = true;
            }
            r.head.observe(now, byte);
        }
        self.set_waiting(now, id, false);
    }

    /// The reader waits for a piece that is not verified yet (`true`), or no longer (`false`).
    pub fn set_waiting(&mut self, now: Time, id: ReaderId, waiting: bool) {
        if let Some(r) = self.open.get_mut(&id) {
            r.waiting_since = match (waiting, r.waiting_since) {
                (true, None) => Some(now),
                (true, since) => since,
                (false, _) => None,
            };
        }
        self.update_stall(now);
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
        if let Some(r) = self.open.remove(&id) {
            if self.closed.len() == REMEMBERED {
                self.closed.pop_front();
            }
            self.closed
                .push_back((r.head.file().clone(), r.head.position()));
        }
        self.update_stall(now);
    }

    pub fn set_rate(&mut self, now: Time, rate: u64) {
        self.rate = rate.max(1);
        for r in self.open.values_mut() {
            r.head.set_rate(now, self.rate);
        }
    }

    fn update_stall(&mut self, now: Time) {
        let stalled = self
            .open
            .values()
            .any(|r| r.started && r.waiting_since.is_some());
        match (stalled, self.stall_since) {
            (true, None) => self.stall_since = Some(now),
            (false, Some(since)) => {
                self.stalled += now.saturating_sub(since);
                self.stall_since = None;
            }
            _ => {}
        }
    }

    /// Time during which a reader that had been playing waited for data. (A reader's wait for
    /// its first byte, at start-up or after a seek, is reported as time to first byte.)
    pub fn stall(&self, now: Time) -> Duration {
        self.stalled
            + self
                .stall_since
                .map_or(Duration::ZERO, |s| now.saturating_sub(s))
    }

    pub fn seeks(&self) -> u32 {
        self.seeks
    }

    /// When the first byte was sent to a reader.
    pub fn first_byte_at(&self) -> Option<Time> {
        self.first_byte_at
    }

    pub fn playheads(&self) -> impl Iterator<Item = &Playhead> {
        self.open.values().map(|r| &r.head)
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

    fn readers() -> Readers {
        Readers::new(100_000, secs(2.0))
    }

    #[test]
    fn a_request_far_from_every_known_position_is_a_seek() {
        let mut r = readers();
        assert_eq!(
            r.open(secs(0.0), ReaderId(1), MOVIE, 0, 65_536),
            Opened::Continues
        );
        r.read(secs(1.0), ReaderId(1), 300_000);
        r.close(secs(1.5), ReaderId(1));
        // The player's next request near where the last one stopped.
        assert_eq!(
            r.open(secs(2.0), ReaderId(2), MOVIE, 350_000, 65_536),
            Opened::Continues
        );
        r.close(secs(2.5), ReaderId(2));
        assert_eq!(
            r.open(secs(3.0), ReaderId(3), MOVIE, 7_000_000, 65_536),
            Opened::Seek
        );
        // A second file is its own first reader, not a seek.
        assert_eq!(
            r.open(secs(3.0), ReaderId(4), 10_000_000..10_001_000, 0, 65_536),
            Opened::Continues
        );
        assert_eq!(r.seeks(), 1);
    }

    #[test]
    fn only_waits_of_a_playing_reader_are_stalls() {
        let mut r = readers();
        r.open(secs(0.0), ReaderId(1), MOVIE, 0, 65_536);
        r.set_waiting(secs(0.0), ReaderId(1), true);
        r.read(secs(2.0), ReaderId(1), 1000);
        assert_eq!(
            r.stall(secs(2.0)),
            Duration::ZERO,
            "start-up is not a stall"
        );
        assert_eq!(r.first_byte_at(), Some(secs(2.0)));
        r.set_waiting(secs(5.0), ReaderId(1), true);
        assert_eq!(r.stall(secs(6.0)), secs(1.0), "counted while it lasts");
        // Two readers waiting at once count once.
        r.open(secs(6.0), ReaderId(2), MOVIE, 1000, 65_536);
        r.read(secs(6.0), ReaderId(2), 2000);
        r.set_waiting(secs(6.5), ReaderId(2), true);
        r.read(secs(7.0), ReaderId(1), 3000);
        r.read(secs(8.0), ReaderId(2), 4000);
        assert_eq!(r.stall(secs(20.0)), secs(3.0));
        // A reader that closes while waiting stops the stall.
        r.set_waiting(secs(21.0), ReaderId(1), true);
        r.close(secs(22.0), ReaderId(1));
        assert_eq!(r.stall(secs(30.0)), secs(4.0));
    }
}
