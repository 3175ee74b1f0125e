//! Enrichment and review events: `ItemsProposed` and `PartEnriched` on `sms.enrichments.v1`,
//! `ItemReviewed` on `sms.reviews.v1`. See the matching files in `schemas/`.

use serde::{Deserialize, Serialize};

use super::Event;

/// One extracted item inside `ItemsProposed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedItem {
    pub item_id: String,
    pub kind: String,
    pub value: String,
    pub normalized: String,
    pub confidence: f32,
    pub source: String,
    pub span_start: i32,
    pub span_end: i32,
}

/// All items of one message part (`schemas/ItemsProposed.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemsProposed {
    pub event_id: String,
    pub message_sid: String,
    pub user_id: String,
    pub part: String,
    pub received_at: i64,
    pub proposed_at: i64,
    pub items: Vec<ProposedItem>,
}

/// One message part finished (`schemas/PartEnriched.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEnriched {
    pub event_id: String,
    pub message_sid: String,
    pub user_id: String,
    pub part: String,
    pub received_at: i64,
    pub enriched_at: i64,
    pub item_count: i32,
    pub outcome: String,
    pub text: Option<String>,
}

/// A person's decision on an item (`schemas/ItemReviewed.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemReviewed {
    pub event_id: String,
    pub item_id: String,
    pub user_id: String,
    pub decision: String,
    pub reviewed_at: i64,
    pub message_sid: String,
    pub item_created_at: i64,
    pub kind: String,
    pub value: String,
    pub normalized: String,
}

impl Event for ItemsProposed {
    const FULL_NAME: &'static str = "smsflow.events.ItemsProposed";
    const NAME: &'static str = "ItemsProposed";
}

impl Event for PartEnriched {
    const FULL_NAME: &'static str = "smsflow.events.PartEnriched";
    const NAME: &'static str = "PartEnriched";
}

impl Event for ItemReviewed {
    const FULL_NAME: &'static str = "smsflow.events.ItemReviewed";
    const NAME: &'static str = "ItemReviewed";
}
