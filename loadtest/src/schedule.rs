//! The open-loop schedule: request `i` is due at `start + i / rate`, whatever happened to the
//! requests before it. Latency is measured from that due time, so a stalled server cannot hide
//! its stall by slowing the generator down (no coordinated omission).

use std::time::Duration;

/// When request `i` is due, relative to the start.
pub fn due(i: u64, rate_per_sec: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate_per_sec)
}

/// How many requests a run of `duration` at `rate` sends.
pub fn count(duration: Duration, rate_per_sec: f64) -> u64 {
    (duration.as_secs_f64() * rate_per_sec).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_evenly_spaced_and_independent_of_responses() {
        assert_eq!(due(0, 500.0), Duration::ZERO);
        assert_eq!(due(500, 500.0), Duration::from_secs(1));
        assert_eq!(due(1, 500.0), Duration::from_millis(2));
        assert_eq!(count(Duration::from_secs(10), 500.0), 5000);
    }
}
