//! The dead letter of a record a consumer gives up on, the same for every consumer: the
//! stage runner appends it inside its batch's transaction, the projection runner appends it
//! before its checkpoint may pass the record. `smsflow dlq` reads and replays both alike.

use crate::events::{DeadLetter, DeadLetterHeader};

use super::Record;

/// Why a consumer gave up on a record, as a dead letter records it.
#[derive(Debug, Clone, Copy)]
pub struct GiveUp<'a> {
    /// Who gave up: a stage name, or `projector:<projection>`.
    pub consumer: &'a str,
    /// `poison`, `permanent`, `retries_exhausted`, `timed_out`.
    pub kind: &'a str,
    /// What failed, for the operator.
    pub error: &'a str,
    /// Attempts made.
    pub attempts: u32,
}

/// The dead letter of `record`: the original key, value and headers, where it was read, and
/// why it was given up.
pub fn dead_letter(record: &Record, why: GiveUp<'_>) -> DeadLetter {
    DeadLetter {
        event_id: uuid::Uuid::now_v7().to_string(),
        failed_at: crate::clock::now_micros(),
        stage: why.consumer.to_owned(),
        error_kind: why.kind.to_owned(),
        error: why.error.to_owned(),
        attempts: i32::try_from(why.attempts).unwrap_or(i32::MAX),
        source_topic: record.topic.clone(),
        source_partition: record.partition,
        source_offset: record.offset,
        original_key: record.key.clone(),
        original_value: record.payload.clone(),
        original_headers: record
            .headers
            .iter()
            .map(|(k, v)| DeadLetterHeader {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

/// The text of a caught panic's payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
