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
        )
    }

    /// The retry schedule of a transient failure.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_initial, self.backoff_max)
    }
}
