//! `DeadLetter`: what a stage appends to `sms.deadletter.v1` when it gives up on an input.

use serde::{Deserialize, Serialize};

use super::Event;

/// See `schemas/DeadLetter.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: String,
    /// UTC microseconds.
    pub failed_at: i64,
    pub stage: String,
    pub error_kind: String,
    pub error: String,
    pub attempts: i32,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub original_key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub original_value: Option<Vec<u8>>,
    pub original_headers: Vec<DeadLetterHeader>,
}

/// One header of the original record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterHeader {
    pub key: String,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
}

impl Event for DeadLetter {
    const FULL_NAME: &'static str = "smsflow.events.DeadLetter";
    const NAME: &'static str = "DeadLetter";
}
