//! Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

use std::time::Duration;

/// Backoff between retries: attempt `n` (1-based) sleeps a uniformly random time in
/// `[0, min(cap, base * 2^(n-1))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's longest sleep.
    pub base: Duration,
    /// The longest sleep of any retry.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(100), cap: Duration::from_secs(20) }
    }
}

impl Backoff {
    /// The longest sleep before retry `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random sleep before retry `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(fastrand::u64(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_with_jitter_below_the_ceiling() {
        let backoff = Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(100) };
        let ceilings: Vec<u128> = (1..=6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff.ceiling(200), Duration::from_millis(100));
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(40)));
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies the sleep");
    }
}
