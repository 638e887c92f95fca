//! When each chunk of one direction of a relayed connection may be released: arrival plus the
//! link's one-way delay and a seeded jitter, never before the chunk ahead of it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::LinkDelay;

/// The release times of one direction of one connection.
pub(super) struct ReleaseSchedule {
    one_way: Duration,
    /// Each direction draws up to half the link's jitter, so a round trip gets up to all of it.
    one_way_jitter_nanos: u64,
    rng: StdRng,
    last_release: Option<Instant>,
}

impl ReleaseSchedule {
    pub(super) fn new(delay: LinkDelay, seed: u64) -> ReleaseSchedule {
        ReleaseSchedule {
            one_way: delay.rtt / 2,
            one_way_jitter_nanos: u64::try_from((delay.jitter / 2).as_nanos()).unwrap_or(u64::MAX),
            rng: StdRng::seed_from_u64(seed),
            last_release: None,
        }
    }

    /// When a chunk that arrived at `arrival` may be sent on: `max(previous release, arrival +
    /// delay)`, so bytes are never reordered however the jitter falls.
    pub(super) fn release_at(&mut self, arrival: Instant) -> Instant {
        let jitter = if self.one_way_jitter_nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.random_range(0..=self.one_way_jitter_nanos))
        };
        let due = arrival + self.one_way + jitter;
        let release = self.last_release.map_or(due, |last| last.max(due));
        self.last_release = Some(release);
        release
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(rtt_ms: u64, jitter_ms: u64) -> LinkDelay {
        LinkDelay {
            rtt: Duration::from_millis(rtt_ms),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    #[test]
    fn without_jitter_a_chunk_waits_half_the_rtt() {
        let mut schedule = ReleaseSchedule::new(delay(100, 0), 1);
        let now = Instant::now();
        assert_eq!(schedule.release_at(now), now + Duration::from_millis(50));
    }

    #[test]
    fn jittered_releases_stay_in_range_and_never_go_backwards() {
        let mut schedule = ReleaseSchedule::new(delay(100, 40), 7);
        let start = Instant::now();
        let mut previous = start;
        let mut spread = Duration::ZERO;
        for i in 0..1000 {
            let arrival = start + Duration::from_micros(i * 100);
            let release = schedule.release_at(arrival);
            assert!(
                release >= previous,
                "chunk {i} released before the one ahead of it"
            );
            assert!(release >= arrival + Duration::from_millis(50));
            previous = release;
            spread = spread.max(release - arrival);
        }
        // The draws reach well into the 20 ms one-way jitter (monotonicity can only add).
        assert!(spread > Duration::from_millis(60), "spread {spread:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let start = Instant::now();
        let times = |seed| {
            let mut schedule = ReleaseSchedule::new(delay(10, 30), seed);
            (0..50)
                .map(|i| schedule.release_at(start + Duration::from_millis(i * 20)))
                .collect::<Vec<_>>()
        };
        assert_eq!(times(3), times(3));
        assert_ne!(times(3), times(4));
    }
}
