//! The one retry schedule: exponential backoff with jitter, capped. Stage retries, projector
//! writes and the HTTP clients of notify and transcribe all wait by it.

use std::time::Duration;

/// Delays that double per attempt from `initial` up to `max`, each drawn from the upper half
/// of its step (`[step/2, step]`), so that callers that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first step.
    pub initial: Duration,
    /// The largest step.
    pub max: Duration,
}

impl Backoff {
    /// A schedule from `initial` doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The step after failed attempt number `attempt` (1-based), before jitter.
    pub fn step(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max)
    }

    /// The pause after failed attempt number `attempt` (1-based), with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// The pause after failed attempt `attempt` with an explicit `jitter` in [0, 1].
    pub fn delay_with(&self, attempt: u32, jitter: f64) -> Duration {
        let half = self.step(attempt) / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_within_its_jitter_band_and_is_capped() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let steps = [500, 1000, 2000, 4000, 4000, 4000];
        for (i, step) in steps.iter().enumerate() {
            let attempt = i as u32 + 1;
            let step = Duration::from_millis(*step);
            assert_eq!(b.delay_with(attempt, 0.0), step / 2, "attempt {attempt}");
            assert_eq!(b.delay_with(attempt, 1.0), step, "attempt {attempt}");
            let d = b.delay(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            b.delay_with(200, 1.0),
            Duration::from_secs(4),
            "no overflow"
        );
    }
}
