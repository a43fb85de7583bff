//! The reconnect schedule: exponential backoff with full jitter.
//!
//! Attempt `n` (from 0) waits a uniformly random time in `[0, min(cap, base * 2^n)]`
//! ("full jitter"), so that many agents cut off by the same outage do not reconnect in step.
//! A healthy session resets the schedule.

use std::time::Duration;

/// The reconnect schedule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The ceiling of the first delay.
    pub base: Duration,
    /// The largest ceiling any delay can have.
    pub cap: Duration,
}

impl Default for BackoffConfig {
    /// A base of 1 s and a cap of 60 s.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

/// Where the agent is in its reconnect schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    /// A schedule at its first attempt.
    pub fn new(config: BackoffConfig) -> Self {
        Self { config, attempt: 0 }
    }

    /// The upper bound of the delay before attempt `attempt`: `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.config
            .base
            .checked_mul(factor)
            .map_or(self.config.cap, |d| d.min(self.config.cap))
    }

    /// The delay for the current attempt given `unit`, a number in `[0, 1]` (a random draw in
    /// [`Backoff::next_delay`]); then moves to the next attempt. Pure, for testing.
    pub fn delay_with(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay before the next reconnect, drawn with full jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.delay_with(rand::random::<f64>())
    }

    /// How many delays were drawn since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the first attempt, after a healthy session.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn schedule() -> Backoff {
        Backoff::new(BackoffConfig::default())
    }

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let b = schedule();
        let secs: Vec<u64> = (0..9).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = schedule();
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.delay_with(1.0), Duration::from_secs(60));
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.delay_with(1.0), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn every_delay_is_within_zero_and_its_ceiling(draws in proptest::collection::vec(0.0f64..=1.0, 1..80)) {
            let mut b = schedule();
            for (n, unit) in draws.iter().enumerate() {
                let ceiling = b.ceiling(u32::try_from(n).unwrap());
                let delay = b.delay_with(*unit);
                prop_assert!(delay <= ceiling);
                prop_assert!(delay <= Duration::from_secs(60));
            }
        }

        #[test]
        fn random_delays_stay_in_bounds(attempts in 1usize..100) {
            let mut b = schedule();
            for n in 0..attempts {
                let ceiling = b.ceiling(u32::try_from(n).unwrap());
                prop_assert!(b.next_delay() <= ceiling);
            }
        }

        #[test]
        fn the_ceiling_never_shrinks(n in 0u32..200) {
            let b = schedule();
            prop_assert!(b.ceiling(n) <= b.ceiling(n + 1));
        }
    }
}
