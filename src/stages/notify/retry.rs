//! When to call Twilio again: exponential backoff with jitter, `Retry-After` honoured, and a
//! bounded number of calls.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::config::NotifyConfig;

/// The retry schedule of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
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
            base: c.backoff_base,
            max: c.backoff_max,
        }
    }

    /// The pause after failed call number `attempt` (1-based): `base * 2^(attempt-1)`, capped
    /// at `max`, then drawn from its upper half with `jitter` in [0, 1), so that senders that
    /// failed together do not retry together.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// After failed call number `attempt`: Twilio's `Retry-After` when it sent one, else the
    /// backoff; give up when the calls are used up or the asked-for pause exceeds `max` (the
    /// input then goes back to the stage runner, which retries it later without holding a
    /// Twilio permit).
    pub fn after_failure(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Next {
        if attempt >= self.max_attempts {
            return Next::GiveUp;
        }
        match retry_after {
            Some(d) if d > self.max => Next::GiveUp,
            Some(d) => Next::RetryIn(d),
            None => Next::RetryIn(self.backoff(attempt, jitter)),
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    crate::stages::transcribe::http::retry_after(headers, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(4),
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_within_its_jitter_band_and_is_capped() {
        let p = policy();
        let ceilings = [500, 1000, 2000, 4000, 4000, 4000];
        for (i, ceiling) in ceilings.iter().enumerate() {
            let attempt = i as u32 + 1;
            let ceiling = Duration::from_millis(*ceiling);
            assert_eq!(p.backoff(attempt, 0.0), ceiling / 2, "attempt {attempt}");
            assert_eq!(p.backoff(attempt, 1.0), ceiling, "attempt {attempt}");
            let mid = p.backoff(attempt, 0.5);
            assert!(
                mid > ceiling / 2 && mid < ceiling,
                "attempt {attempt}: {mid:?}"
            );
        }
        assert_eq!(p.backoff(200, 1.0), Duration::from_secs(4), "no overflow");
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

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 21:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(&headers("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers("Sat, 28 Nov 2026 21:00:05 GMT"), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after(&headers("Sat, 28 Nov 2026 20:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&headers("later"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
