//! `[stages]`: the transactional stage runner's batching, concurrency and retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::validation::{ensure, InvalidSetting};

/// The transactional stage runner, shared by every stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    /// Stable name of this process among a stage's instances; part of the transactional id,
    /// so a restarted instance fences its predecessor's open transaction at once.
    /// Default: the host name.
    pub instance_id: Option<String>,
    /// Most inputs handled in one transaction.
    pub batch_max: usize,
    /// How long a batch waits to fill up after its first input.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Most inputs handled concurrently (inputs with the same key are always sequential).
    pub max_in_flight: usize,
    /// Attempts for a transient failure before the input is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Kafka transaction timeout; also bounds commit and abort on shutdown.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// Most time one input may take, all its attempts and their backoff included; an input
    /// still running then is dead-lettered as `timed_out` and its partition moves on.
    #[serde(with = "humantime_serde")]
    pub input_timeout: Duration,
    /// Most time a batch is handled before its transaction: inputs not finished then are left
    /// for the next batch (the finished ones before them in their partition are committed).
    /// Together with the commit it stays inside `max_poll_interval`, so a slow batch never
    /// gets the consumer evicted from its group.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// librdkafka's `max.poll.interval.ms`: a consumer that does not poll for this long is
    /// evicted and its transaction can no longer commit.
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,
    /// On shutdown, how long inputs already running may still take; then what finished is
    /// committed and the rest is left for the partition's next owner. It keeps a SIGTERM's
    /// drain inside a pod's grace period although one input may run `input_timeout`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for StageSettings {
    fn default() -> Self {
        StageSettings {
            instance_id: None,
            batch_max: 500,
            batch_linger: Duration::from_millis(20),
            max_in_flight: 64,
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            transaction_timeout: Duration::from_secs(30),
            input_timeout: Duration::from_secs(150),
            batch_timeout: Duration::from_secs(200),
            max_poll_interval: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

impl StageSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(self.batch_max > 0, "stages.batch_max", "must be positive")?;
        ensure(
            self.max_in_flight > 0,
            "stages.max_in_flight",
            "must be positive",
        )?;
        ensure(
            self.max_attempts > 0,
            "stages.max_attempts",
            "must be positive",
        )?;
        ensure(
            !self.backoff_initial.is_zero() && self.backoff_initial <= self.backoff_max,
            "stages.backoff_initial",
            "must be above 0 and not above stages.backoff_max",
        )?;
        // Each batch then finishes at least its first input (dead-lettered at worst), so a
        // partition always moves on.
        ensure(
            !self.input_timeout.is_zero() && self.input_timeout < self.batch_timeout,
            "stages.input_timeout",
            "must be above 0 and below stages.batch_timeout",
        )?;
        // The batch, then sending its offsets and committing (each bounded by the transaction
        // timeout), all before the next poll.
        ensure(
            self.batch_timeout + 2 * self.transaction_timeout < self.max_poll_interval,
            "stages.batch_timeout",
            "plus twice stages.transaction_timeout must stay below stages.max_poll_interval",
        )?;
        // librdkafka's range; below the brokers' default group.min.session.timeout.ms (6 s)
        // the session timeout that follows it would be refused.
        ensure(
            self.max_poll_interval >= Duration::from_secs(6)
                && self.max_poll_interval <= Duration::from_secs(24 * 3600),
            "stages.max_poll_interval",
            "must be between 6 s and 24 h",
        )
    }

    /// librdkafka's consumer settings for this runner's poll interval.
    pub(super) fn poll_settings(&self) -> [(&'static str, String); 2] {
        let poll_ms = self.max_poll_interval.as_millis();
        // The session timeout may not exceed the poll interval; librdkafka's default is 45 s.
        let session_ms = poll_ms.min(45_000);
        [
            ("max.poll.interval.ms", poll_ms.to_string()),
            ("session.timeout.ms", session_ms.to_string()),
        ]
    }

    /// The retry schedule of a transient failure.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_initial, self.backoff_max)
    }
}
