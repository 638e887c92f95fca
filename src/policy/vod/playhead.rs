//! One reader of a file as the deadlines see it: the byte it plays next, when it plays it, at
//! what rate, and whether it is paused (`vod-scoring.md`, "Streaming to a player"). The course
//! contract is the one playhead that plays byte 0 at t = D and never pauses or seeks.

use std::ops::Range;
use std::time::Duration;

use super::VodParams;
use crate::policy::Time;

/// Where one reader stands. Positions are bytes of its file (0 = the file's first byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playhead {
    /// R, bytes per second.
    rate: u64,
    /// P: how long before it is played a byte must be present.
    prefetch: Duration,
    /// The file's bytes in the torrent's byte stream.
    file: Range<u64>,
    /// The next byte to play.
    position: u64,
    /// When `position` plays.
    plays_at: Time,
    /// No byte is due before this: the instant the position was observed. (A reader's next
    /// bytes are due "now", never in the past.)
    floor: Time,
    paused: bool,
}

impl Playhead {
    /// The course contract: byte 0 of the movie plays at t = D, observed at t = 0, so byte b is
    /// due at exactly `D - P + b/R`.
    pub fn fixed(params: &VodParams, movie: Range<u64>) -> Self {
        Self {
            rate: params.rate(),
            prefetch: params.prefetch(),
            file: movie,
            position: 0,
            plays_at: params.delay(),
            floor: Duration::ZERO,
            paused: false,
        }
    }

    /// A reader that asked for byte `position` of `file` at `now`: that byte is due at once.
    pub fn reader(
        now: Time,
        file: Range<u64>,
        position: u64,
        rate: u64,
        prefetch: Duration,
    ) -> Self {
        Self {
            rate: rate.max(1),
            prefetch,
            file,
            position,
            plays_at: now,
            floor: now,
            paused: false,
        }
    }

    /// The reader was sent everything before `byte` by `now`: `byte` counts as playing now.
    /// A paused reader that reads again is playing again.
    pub fn observe(&mut self, now: Time, byte: u64) {
        self.position = byte;
        self.plays_at = now;
        self.floor = now;
        self.paused = false;
    }

    /// The reader jumped to `byte`: bytes behind it are no longer due.
    pub fn seek(&mut self, now: Time, byte: u64) {
        self.observe(now, byte);
    }

    /// Nothing of this reader falls due until it resumes.
    pub fn pause(&mut self, _now: Time) {
        self.paused = true;
    }

    /// Playing again from where it paused: deadlines are re-based on `now`.
    pub fn resume(&mut self, now: Time) {
        if self.paused {
            let position = self.position;
            self.observe(now, position);
        }
    }

    /// A new playback rate (learnt from the container or from the reads), measured from the
    /// last observation; nothing becomes due in the past.
    pub fn set_rate(&mut self, now: Time, rate: u64) {
        self.rate = rate.max(1);
        self.floor = self.floor.max(now);
    }

    pub fn position(&self) -> u64 {
        self.position
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    pub fn rate(&self) -> u64 {
        self.rate
    }
    /// The file's bytes in the torrent's byte stream.
    pub fn file(&self) -> &Range<u64> {
        &self.file
    }
    fn len(&self) -> u64 {
        self.file.end - self.file.start
    }

    /// Time for `bytes` to play at R, exact to the nanosecond (rounded down).
    fn play_time(&self, bytes: u64) -> Duration {
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When byte `byte` of the file must be present: `plays_at + (byte - position)/R - P`, never
    /// before the observation. `None` for bytes behind the playhead or past the file, and for
    /// every byte while paused.
    pub fn deadline_of(&self, byte: u64) -> Option<Time> {
        if self.paused {
            return None;
        }
        self.unpaused_deadline(byte)
    }

    /// As [`deadline_of`](Self::deadline_of), but a paused reader is taken to resume at `now`:
    /// the order in which its next bytes are wanted, never a time anything falls due.
    pub fn projected_deadline(&self, now: Time, byte: u64) -> Option<Time> {
        if !self.paused {
            return self.deadline_of(byte);
        }
        let mut resumed = self.clone();
        resumed.resume(now);
        resumed.unpaused_deadline(byte)
    }

    fn unpaused_deadline(&self, byte: u64) -> Option<Time> {
        if byte < self.position || byte >= self.len() {
            return None;
        }
        let plays = self.plays_at + self.play_time(byte - self.position);
        Some(plays.saturating_sub(self.prefetch).max(self.floor))
    }

    /// When a torrent byte range (a piece) is due: at the deadline of its first byte that is in
    /// the file and not behind the playhead. `None` if it holds no such byte.
    pub fn range_deadline(&self, now: Time, range: Range<u64>) -> Option<Due> {
        let start = range.start.max(self.file.start);
        let end = range.end.min(self.file.end);
        if start >= end {
            return None;
        }
        let first = (start - self.file.start).max(self.position);
        if first >= end - self.file.start {
            return None;
        }
        let at = self.projected_deadline(now, first)?;
        Some(Due {
            at,
            firm: !self.paused,
        })
    }
}

/// When a piece is due, and whether that is a deadline (`firm`) or only the order a paused
/// reader will want it in: the server is used only at firm deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub at: Time,
    pub firm: bool,
}

impl Due {
    /// The earlier of two; a firm deadline wins a tie.
    pub fn earliest(a: Option<Due>, b: Option<Due>) -> Option<Due> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if (b.at, !b.firm) < (a.at, !a.firm) {
                b
            } else {
                a
            }),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    const R: u64 = 1000;

    fn reader_at(now: f64, pos: u64) -> Playhead {
        Playhead::reader(secs(now), 0..100_000, pos, R, secs(2.0))
    }

    #[test]
    fn the_fixed_playhead_is_the_course_schedule() {
        let p = VodParams::new(5_000, secs(6.0), secs(2.0)).unwrap();
        let h = Playhead::fixed(&p, 0..1_000_000);
        for b in [0u64, 1, 10_000, 70_000, 123_457, 999_999] {
            assert_eq!(h.deadline_of(b), Some(p.byte_deadline(b)), "byte {b}");
        }
        assert_eq!(h.deadline_of(1_000_000), None, "past the movie");
    }

    #[test]
    fn a_reader_needs_its_next_byte_now_and_later_bytes_at_r() {
        let h = reader_at(10.0, 5_000);
        assert_eq!(h.deadline_of(5_000), Some(secs(10.0)), "due at once");
        // 1 s of play ahead minus P = 2 s is still now: never before the observation.
        assert_eq!(h.deadline_of(6_000), Some(secs(10.0)));
        assert_eq!(h.deadline_of(9_000), Some(secs(12.0)));
        assert_eq!(h.deadline_of(4_999), None, "behind the playhead");
    }

    #[test]
    fn observing_moves_the_deadlines_with_the_reads() {
        let mut h = reader_at(0.0, 0);
        assert_eq!(h.deadline_of(20_000), Some(secs(18.0)));
        // The player read 10 KB in 1 s (filling its cache): byte 20,000 is now 10 s of play
        // after a byte played at t = 1.
        h.observe(secs(1.0), 10_000);
        assert_eq!(h.deadline_of(20_000), Some(secs(9.0)));
        // Reading slower than R brings them closer.
        h.observe(secs(20.0), 12_000);
        assert_eq!(h.deadline_of(20_000), Some(secs(26.0)));
    }

    #[test]
    fn a_seek_makes_bytes_behind_it_no_longer_due() {
        let mut h = reader_at(0.0, 0);
        h.seek(secs(3.0), 70_000);
        assert_eq!(h.deadline_of(10_000), None);
        assert_eq!(h.deadline_of(70_000), Some(secs(3.0)));
        assert_eq!(h.deadline_of(80_000), Some(secs(11.0)));
        // Backward: everything from the new position is due again.
        h.seek(secs(4.0), 1_000);
        assert_eq!(h.deadline_of(10_000), Some(secs(11.0)));
    }

    #[test]
    fn nothing_falls_due_while_paused_and_resuming_re_bases() {
        let mut h = reader_at(0.0, 0);
        h.pause(secs(1.0));
        assert_eq!(h.deadline_of(0), None);
        assert_eq!(h.deadline_of(50_000), None);
        // The projection keeps the order: as if it resumed now.
        assert_eq!(h.projected_deadline(secs(30.0), 10_000), Some(secs(38.0)));
        h.resume(secs(30.0));
        assert_eq!(h.deadline_of(0), Some(secs(30.0)));
        assert_eq!(h.deadline_of(10_000), Some(secs(38.0)));
        // Reading again also resumes.
        h.pause(secs(31.0));
        h.observe(secs(40.0), 2_000);
        assert_eq!(h.deadline_of(12_000), Some(secs(48.0)));
    }

    #[test]
    fn a_piece_is_due_with_its_first_byte_not_behind_the_playhead() {
        let h = Playhead::reader(secs(5.0), 1_000..11_000, 2_500, R, Duration::ZERO);
        // Torrent bytes 3000..4000 are file bytes 2000..3000; the reader is at 2500.
        assert_eq!(
            h.range_deadline(secs(5.0), 3_000..4_000),
            Some(Due {
                at: secs(5.0),
                firm: true
            })
        );
        assert_eq!(h.range_deadline(secs(5.0), 0..3_000), None, "behind");
        assert_eq!(
            h.range_deadline(secs(5.0), 11_000..12_000),
            None,
            "another file"
        );
        assert_eq!(
            h.range_deadline(secs(5.0), 5_500..6_500).map(|d| d.at),
            Some(secs(7.0))
        );
    }

    #[test]
    fn a_new_rate_counts_from_the_last_read_and_nothing_falls_due_in_the_past() {
        let mut h = reader_at(0.0, 0);
        h.set_rate(secs(2.0), 2 * R);
        assert_eq!(h.position(), 0);
        assert_eq!(h.deadline_of(2_000), Some(secs(2.0)));
        assert_eq!(h.deadline_of(12_000), Some(secs(4.0)));
    }

    #[test]
    fn the_earliest_due_wins_and_firm_breaks_ties() {
        let a = Some(Due {
            at: secs(3.0),
            firm: false,
        });
        let b = Some(Due {
            at: secs(3.0),
            firm: true,
        });
        assert_eq!(Due::earliest(a, b), b);
        assert_eq!(Due::earliest(a, None), a);
        let c = Some(Due {
            at: secs(1.0),
            firm: false,
        });
        assert_eq!(Due::earliest(b, c), c);
    }
}
