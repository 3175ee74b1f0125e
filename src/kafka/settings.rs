//! `[kafka]`: brokers, topic naming, the producer's limits, and the wire format with its
//! schema registry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::confluent::SchemaRegistrySettings;
use crate::events::WireFormat;
use crate::validation::{ensure, is_http_url, InvalidSetting};

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
    /// librdkafka debug contexts (its `debug` property, e.g. `eos,msg,topic`), logged at DEBUG
    /// under the `librdkafka` target; empty = off. For diagnosing a client, not for production.
    pub client_debug: String,
    /// Replication factor used by `smsflow topics` when the topology file does not fix one.
    pub replication_factor: Option<i32>,
    /// How producers frame records: `single_object` (Avro single-object encoding, readable
    /// with `schemas/` alone) or `confluent` (schema-registry ids). Readers accept both.
    pub wire_format: WireFormat,
    /// The Confluent-compatible schema registry (`smsflow schemas`, confluent wire format).
    pub schema_registry: SchemaRegistrySettings,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096".into(),
            topic_prefix: String::new(),
            produce_deadline: Duration::from_secs(3),
            linger: Duration::from_millis(2),
            producer_queue_max_messages: 100_000,
            client_debug: String::new(),
            replication_factor: None,
            wire_format: WireFormat::SingleObject,
            schema_registry: SchemaRegistrySettings::default(),
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
        )?;
        let registry = &self.schema_registry;
        // No registry: Confluent-framed records are then poison for readers.
        let url = crate::secrets::ExposeSecret::expose_secret(&registry.url);
        let no_registry = url.is_empty() && self.wire_format == WireFormat::SingleObject;
        ensure(
            no_registry || is_http_url(url),
            "kafka.schema_registry.url",
            "must be an absolute http(s) URL such as http://127.0.0.1:8081/apis/ccompat/v7 (empty only with kafka.wire_format = single_object)",
        )?;
        ensure(
            !registry.timeout.is_zero(),
            "kafka.schema_registry.timeout",
            "must be above 0",
        )
    }
}
