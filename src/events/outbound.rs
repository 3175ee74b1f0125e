//! Outbound SMS events on `sms.outbound.v1`. See the matching files in `schemas/`.

use serde::{Deserialize, Serialize};

use super::Event;

/// An SMS to send through the Twilio Messages API (`schemas/OutboundRequested.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRequested {
    pub event_id: String,
    /// UTC microseconds.
    pub requested_at: i64,
    pub user_id: Option<String>,
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub purpose: String,
    pub message_sid: Option<String>,
}

impl Event for OutboundRequested {
    const FULL_NAME: &'static str = "smsflow.events.OutboundRequested";
    const NAME: &'static str = "OutboundRequested";
}

impl OutboundRequested {
    /// Kafka key: the owner once known, else the recipient.
    pub fn partition_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.to)
    }
}
