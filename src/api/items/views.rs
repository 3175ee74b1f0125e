//! What the item routes answer, as types: the handlers build them and the OpenAPI document
//! (`../openapi.rs`) is generated from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::params::PageToken;

/// A review's target status, and a list's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Pending,
    Approved,
    Rejected,
}

/// One page of a list, newest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<ItemSummary>,
    /// Pass as `page_token` for the next page; null on the last page.
    #[schema(required = true, value_type = Option<PageToken>)]
    pub next_page_token: Option<String>,
}

/// An item as the lists show it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ItemSummary {
    pub id: String,
    #[schema(required = true)]
    pub message_sid: Option<String>,
    /// `contact`, `phone`, `email`, `url`, `datetime`, `place`, `org`, `tag`.
    #[schema(required = true)]
    pub kind: Option<String>,
    /// As written in the source text.
    #[schema(required = true)]
    pub value: Option<String>,
    /// E.164 for phones, RFC 3339 for dates and times, and so on.
    #[schema(required = true)]
    pub normalized: Option<String>,
    /// 0 to 1.
    #[schema(required = true)]
    pub confidence: Option<f32>,
    pub status: ItemStatus,
    /// RFC 3339.
    #[schema(required = true, format = DateTime)]
    pub created_at: Option<String>,
}

/// One item.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: String,
    #[schema(required = true)]
    pub message_sid: Option<String>,
    /// The message part: `body`, or `media:N` for attachment N (a vCard or a voice note).
    #[schema(required = true)]
    pub part: Option<String>,
    #[schema(required = true)]
    pub kind: Option<String>,
    #[schema(required = true)]
    pub value: Option<String>,
    #[schema(required = true)]
    pub normalized: Option<String>,
    #[schema(required = true)]
    pub confidence: Option<f32>,
    /// `body`, `transcript` or `vcard`.
    #[schema(required = true)]
    pub source: Option<String>,
    /// `[start, end)` in characters of the source text.
    #[schema(min_items = 2, max_items = 2)]
    pub span: Vec<Option<i32>>,
    #[schema(required = true)]
    pub status: Option<ItemStatus>,
    /// RFC 3339.
    #[schema(required = true, format = DateTime)]
    pub created_at: Option<String>,
    /// RFC 3339; null until reviewed.
    #[schema(required = true, format = DateTime)]
    pub reviewed_at: Option<String>,
}

/// A message's progress through the pipeline, its transcripts and its items.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MessageProgress {
    pub message_sid: String,
    /// RFC 3339.
    #[schema(required = true, format = DateTime)]
    pub received_at: Option<String>,
    pub parts_expected: i32,
    /// The parts enriched so far.
    pub parts_done: Vec<String>,
    /// Every expected part is enriched.
    pub done: bool,
    /// When each stage handled the message (RFC 3339), by stage.
    pub stage_at: BTreeMap<String, Option<String>>,
    pub parts: Vec<MessagePart>,
    /// At most 500.
    pub items: Vec<Item>,
}

/// One part of a message.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MessagePart {
    pub part: String,
    #[schema(required = true)]
    pub outcome: Option<String>,
    #[schema(required = true)]
    pub item_count: Option<i32>,
    /// The transcript, for a voice note.
    #[schema(required = true)]
    pub transcript: Option<String>,
}

/// `POST /v1/items/{id}/review`. Unknown fields are refused.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: Decision,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

/// The review was appended as `ItemReviewed`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReviewAccepted {
    /// The `ItemReviewed` event's id.
    pub event_id: String,
    /// With `?wait=true`: the projector applied it within the wait. Always false without.
    pub applied: bool,
}

impl ItemStatus {
    /// The status stored in the read models, if it is one of the three.
    pub fn parse(s: &str) -> Option<ItemStatus> {
        match s {
            "pending" => Some(ItemStatus::Pending),
            "approved" => Some(ItemStatus::Approved),
            "rejected" => Some(ItemStatus::Rejected),
            _ => None,
        }
    }
}

impl Decision {
    /// As carried by `ItemReviewed.decision`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    /// The list the item moves to.
    pub fn status(&self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }
}
