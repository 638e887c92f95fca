//! How long a fetch from the VoD server takes, learnt from fetches already made: moving
//! averages (EWMA) of time to first byte and of body throughput. Pure: durations are given.

use std::time::Duration;

/// Bodies shorter than this say more about scheduling noise than about bandwidth.
const MIN_THROUGHPUT_SAMPLE: u64 = 16 * 1024;
/// Weight of the newest sample: a server that slows down is noticed within a few fetches.
const ALPHA: f64 = 0.3;

/// What the estimator believes now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateReading {
    /// Request sent to response headers; `None` before the first response.
    pub time_to_first_byte: Option<Duration>,
    /// Body bytes per second; `None` before the first body of at least 16 KiB.
    pub bytes_per_s: Option<f64>,
    pub ttfb_samples: u64,
    pub throughput_samples: u64,
}

#[derive(Debug, Clone)]
pub struct Estimator {
    /// Used until a body has been measured.
    assumed_bytes_per_s: f64,
    ttfb_s: Option<f64>,
    bytes_per_s: Option<f64>,
    ttfb_samples: u64,
    throughput_samples: u64,
}

impl Estimator {
    pub fn new(assumed_bytes_per_s: u64) -> Estimator {
        Estimator {
            assumed_bytes_per_s: assumed_bytes_per_s.max(1) as f64,
            ttfb_s: None,
            bytes_per_s: None,
            ttfb_samples: 0,
            throughput_samples: 0,
        }
    }

    /// A response's headers arrived `elapsed` after its request was sent.
    pub fn observe_first_byte(&mut self, elapsed: Duration) {
        self.ttfb_s = Some(ewma(self.ttfb_s, elapsed.as_secs_f64()));
        self.ttfb_samples += 1;
    }

    /// A body of `bytes` took `elapsed` from headers to its last byte.
    pub fn observe_body(&mut self, bytes: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if bytes < MIN_THROUGHPUT_SAMPLE || secs <= 0.0 {
            return;
        }
        self.bytes_per_s = Some(ewma(self.bytes_per_s, bytes as f64 / secs));
        self.throughput_samples += 1;
    }

    /// Expected time for `requests` requests carrying `bytes` body bytes in all, one after the
    /// other: each pays the time to first byte, the bytes share the throughput.
    pub fn estimate(&self, bytes: u64, requests: u32) -> Duration {
        let rate = self.bytes_per_s.unwrap_or(self.assumed_bytes_per_s);
        let secs = f64::from(requests) * self.ttfb_s.unwrap_or(0.0) + bytes as f64 / rate;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }

    pub fn reading(&self) -> EstimateReading {
        EstimateReading {
            time_to_first_byte: self
                .ttfb_s
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            bytes_per_s: self.bytes_per_s,
            ttfb_samples: self.ttfb_samples,
            throughput_samples: self.throughput_samples,
        }
    }
}

fn ewma(old: Option<f64>, sample: f64) -> f64 {
    match old {
        Some(old) => old + ALPHA * (sample - old),
        None => sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn before_any_sample_only_the_assumed_rate_counts() {
        let e = Estimator::new(MIB);
        assert_eq!(e.estimate(MIB, 1), Duration::from_secs(1));
        assert_eq!(e.reading().time_to_first_byte, None);
    }

    #[test]
    fn the_first_sample_is_taken_whole_then_averaged() {
        let mut e = Estimator::new(1);
        e.observe_first_byte(Duration::from_millis(200));
        e.observe_body(MIB, Duration::from_secs(1));
        assert_eq!(e.estimate(2 * MIB, 1), Duration::from_millis(2200));
        // Two requests pay the time to first byte twice.
        assert_eq!(e.estimate(2 * MIB, 2), Duration::from_millis(2400));
        e.observe_first_byte(Duration::from_millis(1200));
        let ttfb = e.reading().time_to_first_byte.unwrap();
        assert!((ttfb.as_secs_f64() - 0.5).abs() < 1e-9, "{ttfb:?}");
    }

    #[test]
    fn converges_to_a_new_speed_within_a_few_fetches() {
        let mut e = Estimator::new(1);
        e.observe_body(MIB, Duration::from_secs(1));
        for _ in 0..10 {
            e.observe_body(MIB, Duration::from_millis(250));
        }
        let rate = e.reading().bytes_per_s.unwrap();
        assert!((rate / (4.0 * MIB as f64) - 1.0).abs() < 0.05, "{rate}");
    }

    #[test]
    fn small_or_instant_bodies_do_not_move_the_throughput() {
        let mut e = Estimator::new(MIB);
        e.observe_body(100, Duration::from_micros(1));
        e.observe_body(MIB, Duration::ZERO);
        assert_eq!(e.reading().bytes_per_s, None);
        assert_eq!(e.reading().throughput_samples, 0);
    }
}
