//! Media and transcript events: `MediaStored`, `MediaRejected`, `TranscriptReady`,
//! `TranscriptFailed`. See the matching files in `schemas/`.

use serde::{Deserialize, Serialize};

use super::Event;

/// One attachment fetched and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaStored {
    pub event_id: String,
    pub stored_at: i64,
    pub message_sid: String,
    pub media_index: i32,
    pub sender: String,
    pub user_id: Option<String>,
    pub received_at: i64,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub source_url: String,
}

/// One attachment refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaRejected {
    pub event_id: String,
    pub rejected_at: i64,
    pub message_sid: String,
    pub media_index: i32,
    pub sender: String,
    pub user_id: Option<String>,
    pub received_at: i64,
    pub declared_content_type: String,
    pub reason: String,
    pub detail: String,
}

/// The text of one audio attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptReady {
    pub event_id: String,
    pub transcribed_at: i64,
    pub message_sid: String,
    pub media_index: i32,
    pub sender: String,
    pub user_id: Option<String>,
    pub received_at: i64,
    pub provider: String,
    pub model: Option<String>,
    pub language: Option<String>,
    pub text: String,
    pub confidence: Option<f64>,
    pub audio_duration_ms: Option<i64>,
    pub object_key: String,
}

/// An audio attachment that could not be transcribed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptFailed {
    pub event_id: String,
    pub failed_at: i64,
    pub message_sid: String,
    pub media_index: i32,
    pub sender: String,
    pub user_id: Option<String>,
    pub received_at: i64,
    pub provider: String,
    pub reason: String,
    pub detail: String,
}

impl Event for MediaStored {
    const FULL_NAME: &'static str = "smsflow.events.MediaStored";
    const NAME: &'static str = "MediaStored";
}

impl Event for MediaRejected {
    const FULL_NAME: &'static str = "smsflow.events.MediaRejected";
    const NAME: &'static str = "MediaRejected";
}

impl Event for TranscriptReady {
    const FULL_NAME: &'static str = "smsflow.events.TranscriptReady";
    const NAME: &'static str = "TranscriptReady";
}

impl Event for TranscriptFailed {
    const FULL_NAME: &'static str = "smsflow.events.TranscriptFailed";
    const NAME: &'static str = "TranscriptFailed";
}

impl MediaStored {
    /// Kafka key: the owner once known, else the sender.
    pub fn partition_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.sender)
    }
}
