//! `[kafka]`: brokers, topic naming and the producer's limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// Kafka connection and topic naming.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Prefix for every topic name; empty in production, random in tests.
    pub topic_prefix: String,
    /// How long ingress waits for Kafka's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub produce_deadline: Duration,
    /// Producer linger: a small batching window that trades latency for throughput.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Most records the producer keeps queued; beyond that ingress answers 503 at once.
    pub producer_queue_max_messages: u32,
    /// Replication factor used by `smsflow topics` when the topology file does not fix one.
    pub replication_factor: Option<i32>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096".into(),
            topic_prefix: String::new(),
            produce_deadline: Duration::from_secs(3),
            linger: Duration::from_millis(2),
            producer_queue_max_messages: 100_000,
            replication_factor: None,
        }
    }
}

impl KafkaSettings {
    /// A topic's full name with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{}", self.topic_prefix, base)
    }

    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            !self.brokers.trim().is_empty(),
            "kafka.brokers",
            "must name at least one broker",
        )?;
        ensure(
            !self.produce_deadline.is_zero() && self.produce_deadline < Duration::from_secs(15),
            "kafka.produce_deadline",
            "must be above 0 and below Twilio's 15 s webhook timeout",
        )
    }
}
