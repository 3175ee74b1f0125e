//! When to call Twilio again: the backoff, `Retry-After` honoured, and a bounded number of
//! calls.

use std::time::Duration;

use super::config::NotifyConfig;
use crate::backoff::Backoff;

/// The retry schedule of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// What to do after a failed call that may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then call again.
    RetryIn(Duration),
    /// Stop: the calls are used up, or Twilio asked for a longer pause than `max`.
    GiveUp,
}

impl RetryPolicy {
    /// The schedule from `[notify]`.
    pub fn from_config(c: &NotifyConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: c.max_attempts,
            backoff: Backoff::new(c.backoff_base, c.backoff_max),
        }
    }

    /// After failed call number `attempt`: Twilio's `Retry-After` when it sent one, else the
    /// backoff (drawn with `jitter` in [0, 1)); give up when the calls are used up or the
    /// asked-for pause exceeds the backoff's cap (the input then goes back to the stage
    /// runner, which retries it later without holding a Twilio permit).
    pub fn after_failure(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Next {
        if attempt >= self.max_attempts {
            return Next::GiveUp;
        }
        match retry_after {
            Some(d) if d > self.backoff.max => Next::GiveUp,
            Some(d) => Next::RetryIn(d),
            None => Next::RetryIn(self.backoff.delay_with(attempt, jitter)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(4)),
        }
    }

    #[test]
    fn without_retry_after_the_backoff_decides() {
        let p = policy();
        assert_eq!(
            p.after_failure(2, None, 1.0),
            Next::RetryIn(Duration::from_secs(1))
        );
        assert_eq!(
            p.after_failure(1, None, 0.0),
            Next::RetryIn(Duration::from_millis(250))
        );
    }

    #[test]
    fn retries_stop_after_max_attempts() {
        let p = policy();
        for attempt in 1..5 {
            assert!(matches!(
                p.after_failure(attempt, None, 0.3),
                Next::RetryIn(_)
            ));
        }
        assert_eq!(p.after_failure(5, None, 0.3), Next::GiveUp);
        assert_eq!(
            p.after_failure(5, Some(Duration::from_secs(1)), 0.3),
            Next::GiveUp
        );
    }

    #[test]
    fn retry_after_wins_over_backoff_unless_beyond_the_cap() {
        let p = policy();
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(3)), 0.0),
            Next::RetryIn(Duration::from_secs(3))
        );
        assert_eq!(
            p.after_failure(1, Some(Duration::ZERO), 0.9),
            Next::RetryIn(Duration::ZERO)
        );
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(60)), 0.0),
            Next::GiveUp
        );
    }
}
