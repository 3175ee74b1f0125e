//! The query API over the item read models: the pending, approved and rejected lists, one
//! item, one message's progress and items, and reviews (appended as `ItemReviewed`; the API
//! never writes a read model).
//!
//! A user sees only their own data. Someone else's item or message answers 404, exactly as
//! a missing one does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use serde::Deserialize;

use super::auth::{self, Authenticator, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::params::{PageToken, PAGE_TOKEN_MAX};
use views::{
    Item, ItemPage, ItemStatus, ItemSummary, MessagePart, MessageProgress, ReviewAccepted,
    ReviewRequest,
};

pub mod views;
use super::rfc3339_millis;
use crate::events::ItemReviewed;
use crate::http::RequestDeadline;
use crate::kafka::EventProducer;
use crate::projector::items::{ItemReads, ItemRow, PageToken as Position};

/// The largest page.
const MAX_LIMIT: usize = 200;
/// The page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 50;
/// How long `?wait=true` waits for the projector, at most.
const REVIEW_WAIT: Duration = Duration::from_secs(10);
/// Kept between the end of the wait and the request's deadline, to answer in time.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// What the item routes share: the read model's reads, and where reviews are appended.
pub struct ItemsApi {
    pub reads: ItemReads,
    pub producer: EventProducer,
    pub reviews_topic: String,
    /// `kafka.produce_deadline`: the longest an append can take. A review is appended only
    /// when that much time is left before the request's deadline, so a stored review is
    /// never answered 408.
    pub produce_deadline: Duration,
}

/// The routes, behind bearer authentication.
pub fn router(api: Arc<ItemsApi>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/v1/items", get(list))
        .route("/v1/items/{id}", get(one))
        .route("/v1/items/{id}/review", post(review))
        .route("/v1/messages/{sid}", get(message))
        .route_layer(middleware::from_fn_with_state(auth, auth::require_user))
        .with_state(api)
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    page_token: Option<String>,
}

/// The position a `page_token` stands for, or why it is not one this API issued.
fn position(token: &str) -> Result<Position, ApiError> {
    let refused = || {
        ApiError::invalid("page_token is not one this API issued; pass back the `next_page_token` of the previous page unchanged")
    };
    if token.is_empty() || token.len() > PAGE_TOKEN_MAX {
        return Err(refused());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(refused)
}

fn item_view(id: &str, r: &ItemRow) -> Item {
    Item {
        id: id.to_owned(),
        message_sid: r.message_sid.clone(),
        part: r.part.clone(),
        kind: r.kind.clone(),
        value: r.value.clone(),
        normalized: r.normalized.clone(),
        confidence: r.confidence,
        source: r.source.clone(),
        span: vec![r.span_start, r.span_end],
        status: r.status.as_deref().and_then(ItemStatus::parse),
        created_at: r.created_at_ms.and_then(rfc3339_millis),
        reviewed_at: r.reviewed_at_ms.and_then(rfc3339_millis),
    }
}

/// The caller's item, or 404 (someone else's item looks like a missing one).
async fn own_item(api: &ItemsApi, caller: &Caller, id: &str) -> Result<ItemRow, ApiError> {
    match api.reads.item(id).await? {
        Some(r) if r.user_id.as_deref() == Some(caller.user_id.as_str()) => Ok(r),
        _ => Err(ApiError::not_found("item")),
    }
}

#[utoipa::path(get, path = "/v1/items", tag = "items", operation_id = "listItems",
    summary = "The caller's items with one status, newest first, paged",
    security(("bearer" = [])),
    params(
        ("status" = Option<ItemStatus>, Query, description = "Default `pending`"),
        ("limit" = Option<u32>, Query, description = "Page size; default 50", minimum = 1, maximum = 200),
        ("page_token" = Option<PageToken>, Query, description = "The `next_page_token` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "One page", body = ItemPage,
            links(
                ("getItem" = (operation_id = "getItem", parameters(("id" = "$response.body#/items/0/id")))),
                ("reviewItem" = (operation_id = "reviewItem", parameters(("id" = "$response.body#/items/0/id")))),
                ("getMessage" = (operation_id = "getMessage", parameters(("sid" = "$response.body#/items/0/message_sid")))),
                ("nextPage" = (operation_id = "listItems", parameters(("page_token" = "$response.body#/next_page_token")))),
            )),
        (status = 400, description = "A status other than pending, approved or rejected, a limit outside 1 to 200, a page_token this API did not issue, or a malformed query", body = ErrorBody),
        (status = 503, description = "The read model cannot be read; retry later", body = ErrorBody),
    ))]
async fn list(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    let status = q.status.as_deref().unwrap_or("pending");
    let Some(listed) = ItemStatus::parse(status) else {
        return Err(ApiError::invalid(
            "status must be pending, approved or rejected",
        ));
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let after = q.page_token.as_deref().map(position).transpose()?;
    let page = api
        .reads
        .page(&caller.user_id, status, limit, after.as_ref())
        .await?;
    let next = page
        .next
        .and_then(|t| serde_json::to_vec(&t).ok())
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b));
    Ok(Json(ItemPage {
        items: page
            .items
            .into_iter()
            .map(|i| ItemSummary {
                id: i.id,
                message_sid: i.message_sid,
                kind: i.kind,
                value: i.value,
                normalized: i.normalized,
                confidence: i.confidence,
                status: listed,
                created_at: rfc3339_millis(i.created_at_ms),
            })
            .collect(),
        next_page_token: next,
    }))
}

#[utoipa::path(get, path = "/v1/items/{id}", tag = "items", operation_id = "getItem",
    summary = "One of the caller's items",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The item id")),
    responses(
        (status = 200, description = "The item", body = Item,
            links(
                ("reviewItem" = (operation_id = "reviewItem", parameters(("id" = "$response.body#/id")))),
                ("getMessage" = (operation_id = "getMessage", parameters(("sid" = "$response.body#/message_sid")))),
            )),
        (status = 400, description = "A path that does not decode (invalid UTF-8)", body = ErrorBody),
        (status = 404, description = "No such item, or someone else's", body = ErrorBody),
        (status = 503, description = "The read model cannot be read; retry later", body = ErrorBody),
    ))]
async fn one(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Item>, ApiError> {
    let row = own_item(&api, &caller, &id).await?;
    Ok(Json(item_view(&id, &row)))
}

#[utoipa::path(get, path = "/v1/messages/{sid}", tag = "items", operation_id = "getMessage",
    summary = "A message's progress, transcripts and items",
    security(("bearer" = [])),
    params(("sid" = String, Path, description = "The Twilio MessageSid")),
    responses(
        (status = 200, description = "The message", body = MessageProgress,
            links(
                ("getItem" = (operation_id = "getItem", parameters(("id" = "$response.body#/items/0/id")))),
                ("reviewItem" = (operation_id = "reviewItem", parameters(("id" = "$response.body#/items/0/id")))),
            )),
        (status = 400, description = "A path that does not decode (invalid UTF-8)", body = ErrorBody),
        (status = 404, description = "No such message, or someone else's", body = ErrorBody),
        (status = 503, description = "The read model cannot be read; retry later", body = ErrorBody),
    ))]
async fn message(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Path(sid): Path<String>,
) -> Result<Json<MessageProgress>, ApiError> {
    let Some(m) = api.reads.message(&sid, &caller.user_id).await? else {
        return Err(ApiError::not_found("message"));
    };
    let expected = m.parts_expected.unwrap_or(1);
    let stage_at: BTreeMap<String, Option<String>> = m
        .stage_at
        .into_iter()
        .map(|(k, v)| (k, rfc3339_millis(v)))
        .collect();
    Ok(Json(MessageProgress {
        message_sid: sid,
        received_at: m.received_at_ms.and_then(rfc3339_millis),
        parts_expected: expected,
        done: m.parts_done.len() as i32 >= expected,
        parts_done: m.parts_done,
        stage_at,
        parts: m
            .parts
            .into_iter()
            .map(|p| MessagePart {
                part: p.part,
                outcome: p.outcome,
                item_count: p.item_count,
                transcript: p.transcript,
            })
            .collect(),
        items: m.items.iter().map(|(id, r)| item_view(id, r)).collect(),
    }))
}

#[derive(Deserialize)]
struct ReviewQuery {
    #[serde(default)]
    wait: bool,
}

#[utoipa::path(post, path = "/v1/items/{id}/review", tag = "items", operation_id = "reviewItem",
    summary = "Approve or reject an item (appends `ItemReviewed`)",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The item id"),
        ("wait" = Option<bool>, Query, description = "Wait (10 s at most, and never past the request timeout) until the projector applied the review"),
    ),
    request_body = ReviewRequest,
    responses(
        (status = 202, description = "Appended", body = ReviewAccepted),
        (status = 400, description = "An unknown decision, an unknown field, malformed JSON, or a `wait` other than true or false", body = ErrorBody),
        (status = 404, description = "No such item, or someone else's", body = ErrorBody),
        (status = 503, description = "The review was not stored, or the read model cannot be read; retry", body = ErrorBody),
    ))]
async fn review(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    deadline: Option<Extension<RequestDeadline>>,
    Path(id): Path<String>,
    Query(q): Query<ReviewQuery>,
    Json(body): Json<ReviewRequest>,
) -> Result<(StatusCode, Json<ReviewAccepted>), ApiError> {
    let status = body.decision.status();
    let row = own_item(&api, &caller, &id).await?;
    // Without a server deadline (a router served some other way), the wait bounds itself.
    let answer_by = deadline.map_or_else(
        || tokio::time::Instant::now() + REVIEW_WAIT + ANSWER_MARGIN,
        |Extension(d)| d.0,
    ) - ANSWER_MARGIN;
    if tokio::time::Instant::now() + api.produce_deadline > answer_by {
        return Err(ApiError::unavailable(
            "too little of the request's time is left to store the review; nothing was stored, retry",
        ));
    }
    let event = ItemReviewed {
        event_id: uuid::Uuid::now_v7().to_string(),
        item_id: id.clone(),
        user_id: caller.user_id.clone(),
        decision: body.decision.as_str().to_owned(),
        reviewed_at: crate::clock::now_micros(),
        message_sid: row.message_sid.unwrap_or_default(),
        item_created_at: row.created_at_ms.map_or(0, |t| t.saturating_mul(1000)),
        kind: row.kind.unwrap_or_default(),
        value: row.value.unwrap_or_default(),
        normalized: row.normalized.unwrap_or_default(),
    };
    api.producer
        .send(&api.reviews_topic, &caller.user_id, &event)
        .await
        .map_err(|e| ApiError::dependency("Kafka (the review was not stored)", e))?;
    let mut applied = false;
    if q.wait {
        // Read-your-writes, bounded: poll the item until the projector shows the decision,
        // and stop in time to answer 202 (the review is stored) before the request's deadline.
        let wait_until = answer_by.min(tokio::time::Instant::now() + REVIEW_WAIT);
        let mut pause = Duration::from_millis(10);
        loop {
            let read = tokio::time::timeout_at(wait_until, api.reads.item(&id)).await;
            match read {
                Ok(Ok(Some(r))) => {
                    let reviewed_us = r.reviewed_at_ms.map_or(0, |t| t.saturating_mul(1000));
                    if r.status.as_deref() == Some(status)
                        && reviewed_us >= event.reviewed_at / 1000 * 1000
                    {
                        applied = true;
                        break;
                    }
                }
                Ok(Ok(None)) => {}
                // Stored, but the read model cannot say yet: answer what is known.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "review stored; cannot read whether it is applied");
                    break;
                }
                Err(_) => break,
            }
            let now = tokio::time::Instant::now();
            if now + pause >= wait_until {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(ReviewAccepted {
            event_id: event.event_id,
            applied,
        }),
    ))
}
