//! `SenderRejected`: a signed message ingress records but will not enrich.

use serde::{Deserialize, Serialize};

use super::Event;

/// See `schemas/SenderRejected.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderRejected {
    pub event_id: String,
    /// UTC microseconds.
    pub received_at: i64,
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub user_id: Option<String>,
    pub reason: String,
    pub retry_after_ms: Option<i64>,
}

impl Event for SenderRejected {
    const FULL_NAME: &'static str = "smsflow.events.SenderRejected";
    const NAME: &'static str = "SenderRejected";
}

impl SenderRejected {
    /// Kafka key: the owner once known, else the sender.
    pub fn partition_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.from)
    }
}
