//! The deadline table: when each piece is due over every open playhead (the earliest wins),
//! and the pieces in deadline order. `VodSession` builds it from its playheads; the picker is
//! handed each new one and reads it, never keeping deadlines of its own.

use super::Schedule;
use super::playhead::{Due, Playhead};
use crate::policy::Time;
use crate::proto::geometry::{Geometry, PieceIndex};

#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineTable {
    /// Per piece of the torrent.
    due: Vec<Option<Due>>,
    /// The pieces that have a due time, by (time, index).
    order: Vec<(Time, u32)>,
    /// The fastest playhead's R, bytes per second (`None`: no playhead with a piece due).
    rate: Option<u64>,
}

impl DeadlineTable {
    /// No piece is due (no reader is open).
    pub fn empty(pieces: u32) -> Self {
        Self {
            due: vec![None; pieces as usize],
            order: Vec::new(),
            rate: None,
        }
    }

    /// The table of these playheads at `now`: a piece is due at the earliest of their
    /// deadlines (a paused playhead contributes its projected, not firm, times).
    pub fn build<'a>(
        geometry: &Geometry,
        now: Time,
        heads: impl IntoIterator<Item = &'a Playhead>,
    ) -> Self {
        let mut table = Self::empty(geometry.piece_count());
        for head in heads {
            let file = head.file();
            if file.start >= file.end {
                continue;
            }
            let from = file.start + head.position().min(file.end - file.start);
            let (Some(first), Some(last)) =
                (geometry.piece_at(from), geometry.piece_at(file.end - 1))
            else {
                continue;
            };
            for i in first.get()..=last.get() {
                let Some(piece) = geometry.piece(i) else {
                    break;
                };
                let due = head.range_deadline(now, geometry.piece_range(piece));
                if let Some(slot) = table.due.get_mut(i as usize) {
                    *slot = Due::earliest(*slot, due);
                }
            }
            table.rate = table.rate.max(Some(head.rate()));
        }
        table.order = table
            .due
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (d.at, i as u32)))
            .collect();
        table.order.sort_unstable();
        table
    }

    /// The course contract's table: the schedule's fixed playhead.
    pub fn fixed(schedule: &Schedule) -> Self {
        let head = Playhead::fixed(&schedule.params, schedule.movie.clone());
        Self::build(&schedule.geometry, Time::ZERO, [&head])
    }

    /// Pieces of the torrent the table covers.
    pub fn len(&self) -> u32 {
        self.due.len() as u32
    }
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    pub fn due(&self, piece: PieceIndex) -> Option<Due> {
        self.due.get(piece.as_usize()).copied().flatten()
    }

    /// When the piece is due, in seconds (the picker's hot lookup).
    pub fn secs(&self, piece: PieceIndex) -> Option<f64> {
        self.due(piece).map(|d| d.at.as_secs_f64())
    }

    /// Pieces with a due time, earliest first (ties by index).
    pub fn order(&self) -> &[(Time, u32)] {
        &self.order
    }

    /// The playback rate the deadlines advance at, bytes per second: the fastest playhead's
    /// (`None` while no playhead has a piece due).
    pub fn rate(&self) -> Option<f64> {
        self.rate.map(|r| r as f64)
    }

    /// How many pieces of the order are due at or before `t`.
    pub fn count_due_by(&self, t: Time) -> usize {
        self.order.partition_point(|(at, _)| *at <= t)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::vod::VodParams;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_fixed_playhead_gives_the_schedule_exactly() {
        // A movie in the middle of a multi-file torrent, pieces straddling its ends.
        let g = Geometry::new(1000, &[1500, 4000, 700]).unwrap();
        let params = VodParams::new(100, secs(10.0), secs(2.0)).unwrap();
        let s = Schedule::new(params, &g, 1500..5500).unwrap();
        let t = DeadlineTable::build(&g, Duration::ZERO, [&Playhead::fixed(&params, 1500..5500)]);
        for p in g.pieces() {
            assert_eq!(t.due(p).map(|d| d.at), s.deadline(p), "piece {p}");
            assert!(t.due(p).is_none_or(|d| d.firm));
        }
        let order: Vec<u32> = t.order().iter().map(|(_, i)| *i).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
        assert_eq!(t.rate(), Some(100.0));
    }

    #[test]
    fn two_readers_take_the_earlier_deadline() {
        // 10 pieces of 1000 bytes; R = 1000 B/s, P = 0. One reader at the front, one reading the
        // index at the end.
        let g = Geometry::new(1000, &[10_000]).unwrap();
        let front = Playhead::reader(secs(1.0), 0..10_000, 0, 1000, Duration::ZERO);
        let back = Playhead::reader(secs(1.0), 0..10_000, 8_000, 1000, Duration::ZERO);
        let t = DeadlineTable::build(&g, secs(1.0), [&front, &back]);
        let at = |i: u32| t.due(g.piece(i).unwrap()).map(|d| d.at);
        assert_eq!(at(0), Some(secs(1.0)));
        assert_eq!(at(7), Some(secs(8.0)));
        assert_eq!(at(8), Some(secs(1.0)), "the back reader needs it now");
        assert_eq!(at(9), Some(secs(2.0)));
        let order: Vec<u32> = t.order().iter().map(|(_, i)| *i).collect();
        assert_eq!(order, vec![0, 8, 1, 9, 2, 3, 4, 5, 6, 7]);
        assert_eq!(t.rate(), Some(1000.0));
        assert_eq!(DeadlineTable::empty(10).rate(), None, "no reader, no rate");
        assert_eq!(t.count_due_by(secs(1.0)), 2);
    }

    #[test]
    fn pieces_behind_every_reader_and_of_unread_files_are_not_due() {
        let g = Geometry::new(1000, &[5_000, 5_000]).unwrap();
        let h = Playhead::reader(secs(0.0), 0..5_000, 2_500, 1000, Duration::ZERO);
        let t = DeadlineTable::build(&g, Duration::ZERO, [&h]);
        let due: Vec<bool> = g.pieces().map(|p| t.due(p).is_some()).collect();
        assert_eq!(
            due,
            vec![
                false, false, true, true, true, false, false, false, false, false
            ]
        );
    }

    #[test]
    fn a_paused_reader_gives_an_order_but_no_firm_deadline() {
        let g = Geometry::new(1000, &[4_000]).unwrap();
        let mut h = Playhead::reader(secs(0.0), 0..4_000, 0, 1000, Duration::ZERO);
        h.pause(secs(1.0));
        let t = DeadlineTable::build(&g, secs(5.0), [&h]);
        let d = t.due(g.piece(1).unwrap()).unwrap();
        assert!(!d.firm);
        assert_eq!(d.at, secs(6.0), "as if it resumed now");
    }
}
