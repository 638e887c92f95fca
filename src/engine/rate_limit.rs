//! Process-wide upload and download limits: token buckets shared by every peer connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket in bytes. Pure: the caller passes the elapsed time.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
}

impl TokenBucket {
    /// `rate` bytes per second; up to `burst` bytes may go at once after a quiet spell.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
        }
    }

    pub fn refill(&mut self, elapsed: Duration) {
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.burst);
    }

    /// Gives back `n` bytes taken but not used, up to the burst.
    pub fn refund(&mut self, n: u64) {
        self.tokens = (self.tokens + n as f64).min(self.burst);
    }

    /// Takes `n` bytes, going into debt if needed, and says how long the caller must wait for
    /// the debt to be repaid. Debt (rather than refusal) lets a 16 KiB block pass a small bucket.
    pub fn take(&mut self, n: u64) -> Duration {
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// A shared limit; `None` inside means unlimited. Cloning shares the bucket.
#[derive(Clone, Debug, Default)]
pub struct RateLimiter {
    inner: Option<Arc<Mutex<(TokenBucket, Instant)>>>,
}

impl RateLimiter {
    pub fn unlimited() -> Self {
        Self { inner: None }
    }

    /// `bytes_per_s` of 0 means unlimited. The burst is a quarter second of traffic, at least
    /// one block, so limits hold over short windows too.
    pub fn new(bytes_per_s: u64) -> Self {
        if bytes_per_s == 0 {
            return Self::unlimited();
        }
        let burst = (bytes_per_s / 4).max(16 * 1024);
        Self {
            inner: Some(Arc::new(Mutex::new((
                TokenBucket::new(bytes_per_s, burst),
                Instant::now(),
            )))),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }

    /// Returns `n` bytes acquired but never sent, so others may use them.
    pub fn refund(&self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(inner) = &self.inner {
            let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.refund(n);
        }
    }

    /// Waits until `n` bytes may pass. The lock is released before sleeping.
    pub async fn acquire(&self, n: u64) {
        let Some(inner) = &self.inner else { return };
        let wait = {
            let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let elapsed = now - guard.1;
            guard.1 = now;
            guard.0.refill(elapsed);
            guard.0.take(n)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_paces() {
        let mut b = TokenBucket::new(1000, 500);
        assert_eq!(b.take(500), Duration::ZERO);
        assert_eq!(b.take(250), Duration::from_millis(250));
        b.refill(Duration::from_millis(250));
        assert_eq!(b.take(0), Duration::ZERO);
        b.refill(Duration::from_secs(10));
        // Refill is capped at the burst.
        assert_eq!(b.take(600), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_holds_the_rate_over_a_window() {
        let limiter = RateLimiter::new(100 * 1024);
        let start = Instant::now();
        let mut sent = 0u64;
        while Instant::now() - start < Duration::from_secs(10) {
            limiter.acquire(16 * 1024).await;
            sent += 16 * 1024;
        }
        let rate = sent as f64 / 10.0;
        assert!(
            (rate - 102400.0).abs() / 102400.0 < 0.05,
            "rate {rate} B/s is not within 5% of 100 KiB/s"
        );
    }

    #[test]
    fn a_refund_repays_debt_but_never_exceeds_the_burst() {
        let mut b = TokenBucket::new(1000, 500);
        assert_eq!(b.take(1500), Duration::from_secs(1));
        b.refund(1000);
        assert_eq!(b.take(0), Duration::ZERO, "the debt is repaid");
        b.refund(10_000);
        assert_eq!(
            b.take(600),
            Duration::from_millis(100),
            "refill capped at the burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let limiter = RateLimiter::new(0);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire(1 << 20).await;
        }
        assert_eq!(Instant::now(), start);
    }
}
