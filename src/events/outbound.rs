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

/// A change in the state of one outbound SMS (`schemas/OutboundStatusChanged.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundStatusChanged {
    pub event_id: String,
    /// UTC microseconds.
    pub changed_at: i64,
    pub request_event_id: Option<String>,
    /// `notify` or `callback`.
    pub source: String,
    pub status: String,
    pub twilio_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub reason: Option<String>,
    pub user_id: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub purpose: Option<String>,
}

impl Event for OutboundStatusChanged {
    const FULL_NAME: &'static str = "smsflow.events.OutboundStatusChanged";
    const NAME: &'static str = "OutboundStatusChanged";
}

impl OutboundStatusChanged {
    /// Kafka key: the owner once known, else the recipient, else the Twilio SID.
    pub fn partition_key(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.to.as_deref())
            .or(self.twilio_sid.as_deref())
            .unwrap_or(&self.event_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{decode, encode};

    #[test]
    fn status_changed_round_trips_and_keys_like_the_request() {
        let ev = OutboundStatusChanged {
            event_id: "01930000-0000-7000-8000-000000000001".into(),
            changed_at: 1_764_000_000_000_000,
            request_event_id: Some("req-1".into()),
            source: "notify".into(),
            status: "failed".into(),
            twilio_sid: None,
            error_code: Some(21211),
            error_message: Some("The 'To' number is not a valid phone number.".into()),
            reason: None,
            user_id: None,
            to: Some("+15105550142".into()),
            from: Some("+14155550100".into()),
            purpose: Some("items_ready".into()),
        };
        let back: OutboundStatusChanged = decode(&encode(&ev).unwrap()).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.partition_key(), "+15105550142");
        let owned = OutboundStatusChanged {
            user_id: Some("u-1".into()),
            ..ev
        };
        assert_eq!(owned.partition_key(), "u-1");
    }
}
