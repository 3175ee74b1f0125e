//! `[projector]`: the projection runner's consumer group, buffer and write concurrency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// Projector tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorSettings {
    /// Consumer group used for partition assignment (offsets live in CQL, not here); each
    /// projection's group is this plus `-<projection>`.
    pub group_id: String,
    /// Most records one projection holds between reading and its checkpoint: queued behind
    /// an earlier event of their key, being written, or written but behind a slower record of
    /// their partition. Reading pauses at this bound.
    pub batch_max: usize,
    /// Most events being written at once, per projection. An event may be many statements
    /// (an items event writes up to 16 items at once, each several rows): 256 events kept one
    /// local Cassandra node past its 5 s request timeout in `review_tombstones`, 32 did not.
    /// Raise it for a cluster, and watch the write latency.
    pub max_in_flight: usize,
    /// How often each partition's checkpoint follows its lowest fully written offset.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        ProjectorSettings {
            group_id: "smsflow-projector".into(),
            batch_max: 512,
            max_in_flight: 32,
            checkpoint_interval: Duration::from_millis(200),
        }
    }
}

impl ProjectorSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            self.batch_max > 0,
            "projector.batch_max",
            "must be positive",
        )?;
        ensure(
            self.max_in_flight > 0,
            "projector.max_in_flight",
            "must be positive",
        )?;
        ensure(
            !self.checkpoint_interval.is_zero(),
            "projector.checkpoint_interval",
            "must be above 0",
        )
    }

    /// The consumer group of one projection.
    pub fn group_of(&self, projection: &str) -> String {
        format!("{}-{projection}", self.group_id)
    }
}
