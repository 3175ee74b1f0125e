//! A circuit breaker: consecutive transient failures open it, so an outage costs one fast
//! refusal per input instead of a timeout each; after a pause one trial call may close it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// One trial call decides; `trial_in_flight` while it runs.
    HalfOpen { trial_in_flight: bool },
}

/// Shared by every call to one provider.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
    provider: &'static str,
}

/// Permission for one call; report how it went with [`Pass::succeeded`] or [`Pass::failed`].
/// Dropped without a report (the call was cancelled), it frees the trial slot.
#[must_use = "report the call's outcome"]
pub struct Pass<'a> {
    breaker: &'a Breaker,
    trial: bool,
    reported: bool,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `open_for`; `provider` labels its gauge.
    pub fn new(provider: &'static str, threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            provider,
        }
    }

    /// The current state (for tests and admin views).
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// A pass for one call, or how long until calls may resume (zero while a trial runs).
    pub fn enter(&self) -> Result<Pass<'_>, Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            BreakerState::Closed { .. } => Ok(self.pass(false)),
            BreakerState::Open { until } if now < until => Err(until - now),
            BreakerState::Open { .. }
            | BreakerState::HalfOpen {
                trial_in_flight: false,
            } => {
                *state = BreakerState::HalfOpen {
                    trial_in_flight: true,
                };
                Ok(self.pass(true))
            }
            BreakerState::HalfOpen {
                trial_in_flight: true,
            } => Err(Duration::ZERO),
        }
    }

    /// Refuse every call until `until` (the provider asked for it with `Retry-After`).
    pub fn hold_until(&self, until: Instant) {
        let mut state = self.lock();
        let until = match *state {
            BreakerState::Open { until: current } => current.max(until),
            _ => until,
        };
        let was_open = matches!(*state, BreakerState::Open { .. });
        *state = BreakerState::Open { until };
        if !was_open {
            super::metrics::breaker_open(self.provider, true);
        }
    }

    fn pass(&self, trial: bool) -> Pass<'_> {
        Pass {
            breaker: self,
            trial,
            reported: false,
        }
    }

    fn record(&self, trial: bool, ok: bool) {
        let mut state = self.lock();
        let before = *state;
        *state = match (before, ok) {
            (BreakerState::Closed { .. }, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 >= self.threshold => {
                BreakerState::Open {
                    until: Instant::now() + self.open_for,
                }
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed {
                failures: failures + 1,
            },
            (BreakerState::HalfOpen { .. }, true) if trial => BreakerState::Closed { failures: 0 },
            (BreakerState::HalfOpen { .. }, false) if trial => BreakerState::Open {
                until: Instant::now() + self.open_for,
            },
            // A call that started before the breaker opened says nothing about now.
            (other, _) => other,
        };
        let was_open = !matches!(before, BreakerState::Closed { .. });
        let is_open = !matches!(*state, BreakerState::Closed { .. });
        if was_open != is_open {
            super::metrics::breaker_open(self.provider, is_open);
        }
    }

    fn release_trial(&self) {
        let mut state = self.lock();
        if *state
            == (BreakerState::HalfOpen {
                trial_in_flight: true,
            })
        {
            *state = BreakerState::HalfOpen {
                trial_in_flight: false,
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Pass<'_> {
    /// The provider answered (even if it refused the audio).
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record(self.trial, true);
    }

    /// The provider failed in a way that may be an outage.
    pub fn failed(mut self) {
        self.reported = true;
        self.breaker.record(self.trial, false);
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if !self.reported && self.trial {
            self.breaker.release_trial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new("test", 3, Duration::from_secs(30))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_failures_and_half_opens_after_the_pause() {
        let b = breaker();
        for _ in 0..2 {
            b.enter().unwrap().failed();
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        b.enter().unwrap().failed();
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        let wait = b.enter().err().unwrap();
        assert_eq!(wait, Duration::from_secs(30));

        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.enter().is_err(), "still open one second before the end");
        tokio::time::advance(Duration::from_secs(1)).await;
        let trial = b.enter().expect("half-open lets one trial through");
        assert_eq!(
            b.enter().err(),
            Some(Duration::ZERO),
            "only one trial at a time"
        );
        trial.succeeded();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_it_again() {
        let b = breaker();
        for _ in 0..3 {
            b.enter().unwrap().failed();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        b.enter().unwrap().failed();
        assert_eq!(b.enter().err(), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        b.enter().unwrap().failed();
        b.enter().unwrap().failed();
        b.enter().unwrap().succeeded();
        b.enter().unwrap().failed();
        assert_eq!(b.state(), BreakerState::Closed { failures: 1 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_trial_frees_the_slot() {
        let b = breaker();
        for _ in 0..3 {
            b.enter().unwrap().failed();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(b.enter().unwrap());
        assert!(b.enter().is_ok(), "a new trial may start");
    }

    #[tokio::test(start_paused = true)]
    async fn hold_until_refuses_calls_until_then() {
        let b = breaker();
        b.hold_until(Instant::now() + Duration::from_secs(90));
        assert_eq!(b.enter().err(), Some(Duration::from_secs(90)));
        tokio::time::advance(Duration::from_secs(90)).await;
        b.enter().unwrap().succeeded();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }
}
