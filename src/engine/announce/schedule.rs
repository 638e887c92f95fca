//! When to announce next: a pure function of the last outcome, so it is tested without time.

use std::time::Duration;

/// Bounds on how often the loop announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulePolicy {
    /// Used when a tracker gives no `interval`.
    pub default_interval: Duration,
    /// Never re-announce sooner than this, whatever the tracker says.
    pub interval_floor: Duration,
    /// Never wait longer than this, so a bogus huge interval cannot silence us for days.
    pub interval_ceiling: Duration,
    /// First retry delay after a failure; doubles per consecutive failure. Short, so a
    /// tracker that is down at start (or restarting) is reached within seconds once it is up;
    /// the doubling keeps a tracker that stays down from being hammered.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for SchedulePolicy {
    fn default() -> Self {
        SchedulePolicy {
            default_interval: Duration::from_secs(30 * 60),
            interval_floor: Duration::from_secs(15),
            interval_ceiling: Duration::from_secs(2 * 60 * 60),
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(30 * 60),
        }
    }
}

/// What happened to the last announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOutcome {
    Answered {
        interval: Option<Duration>,
        min_interval: Option<Duration>,
    },
    /// `consecutive` counts this failure too, so it is at least 1.
    Failed { consecutive: u32 },
}

/// How long to wait before the next regular announce.
pub fn next_announce_delay(policy: &SchedulePolicy, outcome: AnnounceOutcome) -> Duration {
    match outcome {
        AnnounceOutcome::Answered {
            interval,
            min_interval,
        } => interval
            .unwrap_or(policy.default_interval)
            .max(min_interval.unwrap_or_default())
            .min(policy.interval_ceiling)
            .max(policy.interval_floor),
        AnnounceOutcome::Failed { consecutive } => {
            let doublings = consecutive.saturating_sub(1).min(30);
            policy
                .backoff_initial
                .saturating_mul(1u32 << doublings)
                .min(policy.backoff_max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn answered(interval: Option<u64>, min_interval: Option<u64>) -> AnnounceOutcome {
        AnnounceOutcome::Answered {
            interval: interval.map(s),
            min_interval: min_interval.map(s),
        }
    }

    #[test]
    fn follows_the_trackers_interval_within_bounds() {
        let p = SchedulePolicy::default();
        assert_eq!(next_announce_delay(&p, answered(Some(1800), None)), s(1800));
        assert_eq!(next_announce_delay(&p, answered(None, None)), s(1800));
        assert_eq!(
            next_announce_delay(&p, answered(Some(60), Some(120))),
            s(120)
        );
        assert_eq!(
            next_announce_delay(&p, answered(Some(0), None)),
            s(15),
            "floor"
        );
        assert_eq!(
            next_announce_delay(&p, answered(Some(u32::MAX as u64), None)),
            s(7200)
        );
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let p = SchedulePolicy::default();
        let delays: Vec<u64> = (1..=10)
            .map(|n| next_announce_delay(&p, AnnounceOutcome::Failed { consecutive: n }).as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        let later = AnnounceOutcome::Failed { consecutive: 11 };
        assert_eq!(next_announce_delay(&p, later), s(1800), "the cap");
        let huge = AnnounceOutcome::Failed {
            consecutive: u32::MAX,
        };
        assert_eq!(next_announce_delay(&p, huge), s(1800));
        let zero = AnnounceOutcome::Failed { consecutive: 0 };
        assert_eq!(next_announce_delay(&p, zero), s(2));
    }
}
