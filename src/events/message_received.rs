//! `MessageReceived`: the event ingress appends for every accepted webhook.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Event;

/// See `schemas/MessageReceived.avsc` for the documented fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageReceived {
    pub event_id: String,
    /// UTC microseconds.
    pub received_at: i64,
    pub message_sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub body: String,
    pub num_segments: i32,
    pub media: Vec<MediaRef>,
    pub geo: Option<Geo>,
    pub sms_status: Option<String>,
    pub api_version: Option<String>,
    pub idempotency_token: Option<String>,
    pub user_id: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// One attachment as Twilio announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub url: String,
    pub content_type: String,
}

/// Geographic hints Twilio adds when it knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Geo {
    pub from_city: Option<String>,
    pub from_state: Option<String>,
    pub from_zip: Option<String>,
    pub from_country: Option<String>,
    pub to_city: Option<String>,
    pub to_state: Option<String>,
    pub to_zip: Option<String>,
    pub to_country: Option<String>,
}

impl Event for MessageReceived {
    const FULL_NAME: &'static str = "smsflow.events.MessageReceived";
    const NAME: &'static str = "MessageReceived";
}

impl MessageReceived {
    /// Kafka key: the owner once known, else the sender, so one person's events stay in order.
    pub fn partition_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.from)
    }

    /// Parts that enrichment will report on: the body plus one per attachment.
    pub fn parts_expected(&self) -> i32 {
        1 + self.media.len() as i32
    }
}
