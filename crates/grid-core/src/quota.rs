//! Fuel quotas as token buckets, kept by the node that gives the fuel and
//! mirrored by the master that routes to it.

use std::time::Duration;

/// A fuel quota as a token bucket: `rate_per_hour` flows in continuously, up
/// to `burst`; jobs are billed what they burned.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate_per_hour: u64,
    burst: u64,
    tokens: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_hour: u64, burst: u64) -> Self {
        Self { rate_per_hour, burst, tokens: burst as f64 }
    }

    /// Adds what flowed in during `elapsed`.
    pub fn refill(&mut self, elapsed: Duration) {
        let added = self.rate_per_hour as f64 * elapsed.as_secs_f64() / 3600.0;
        self.tokens = (self.tokens + added).min(self.burst as f64);
    }

    /// Takes `fuel` out of the bucket (never below empty).
    pub fn charge(&mut self, fuel: u64) {
        self.tokens = (self.tokens - fuel as f64).max(0.0);
    }

    /// Whole tokens in the bucket.
    pub fn available(&self) -> u64 {
        self.tokens as u64
    }

    /// Sets the level, e.g. to what the node itself reports.
    pub fn set_available(&mut self, tokens: u64) {
        self.tokens = tokens.min(self.burst) as f64;
    }

    /// Fuel per hour.
    pub fn rate_per_hour(&self) -> u64 {
        self.rate_per_hour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_up_to_burst_and_bills() {
        let mut b = TokenBucket::new(3600, 100);
        assert_eq!(b.available(), 100);
        b.charge(80);
        assert_eq!(b.available(), 20);
        b.refill(Duration::from_secs(30));
        assert_eq!(b.available(), 50);
        b.refill(Duration::from_secs(3600));
        assert_eq!(b.available(), 100);
        b.charge(1000);
        assert_eq!(b.available(), 0);
    }
}
