//! The query API over the item read models: the pending, approved and rejected lists, one
//! item, one message's progress and items, and reviews (appended as `ItemReviewed`; the API
//! never writes a read model).
//!
//! A user sees only their own data. Someone else's item or message answers 404, exactly as
//! a missing one does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};

use super::auth::{self, Authenticator, Caller};
use super::error::{ApiError, ErrorBody};
use views::{
    Item, ItemPage, ItemStatus, ItemSummary, MessagePart, MessageProgress, ReviewAccepted,
    ReviewRequest,
};

pub mod views;
use super::phones::rfc3339_millis;
use crate::events::ItemReviewed;
use crate::kafka::EventProducer;
use crate::store::StoreError;

/// How many buckets (user-hours) one page looks at before it returns what it has, with a
/// token to go on: this bounds a request however sparse the list is.
const MAX_BUCKETS_PER_PAGE: usize = 2_000;
/// Index rows read per round trip.
const INDEX_PAGE: i32 = 256;
/// The largest page.
const MAX_LIMIT: usize = 200;
/// How long `?wait=true` waits for the projector.
const REVIEW_WAIT: Duration = Duration::from_secs(10);

/// What the item routes share.
pub struct ItemsApi {
    session: Arc<Session>,
    producer: EventProducer,
    reviews_topic: String,
    list: PreparedStatement,
    list_from: PreparedStatement,
    buckets: PreparedStatement,
    item: PreparedStatement,
    status: PreparedStatement,
    parts: PreparedStatement,
    by_message: PreparedStatement,
}

type ItemRow = (
    Option<String>,       // user_id
    Option<String>,       // message_sid
    Option<String>,       // part
    Option<String>,       // kind
    Option<String>,       // value
    Option<String>,       // normalized
    Option<f32>,          // confidence
    Option<String>,       // source
    Option<i32>,          // span_start
    Option<i32>,          // span_end
    Option<String>,       // status
    Option<CqlTimestamp>, // created_at
    Option<CqlTimestamp>, // reviewed_at
);

type ListRow = (
    CqlTimestamp,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f32>,
);

impl ItemsApi {
    /// Prepare the reads.
    pub async fn new(
        session: Arc<Session>,
        keyspace: &str,
        producer: EventProducer,
        reviews_topic: String,
    ) -> Result<ItemsApi, StoreError> {
        let ks = keyspace;
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                session
                    .prepare(cql)
                    .await
                    .map_err(StoreError::prepare("items API"))
            }
        };
        let cols = "created_at, item_id, message_sid, kind, value, normalized, confidence";
        Ok(ItemsApi {
            list: prepare(format!(
                "SELECT {cols} FROM {ks}.items_by_user_status WHERE user_id = ? AND status = ? AND bucket = ? LIMIT ?"
            ))
            .await?,
            list_from: prepare(format!(
                "SELECT {cols} FROM {ks}.items_by_user_status WHERE user_id = ? AND status = ? AND bucket = ? AND created_at <= ? LIMIT ?"
            ))
            .await?,
            buckets: prepare(format!(
                "SELECT bucket, added_version, drained_version FROM {ks}.list_buckets WHERE user_id = ? AND status = ? AND bucket <= ? LIMIT ?"
            ))
            .await?,
            item: prepare(format!(
                "SELECT user_id, message_sid, part, kind, value, normalized, confidence, source, span_start, span_end, status, created_at, reviewed_at FROM {ks}.items WHERE item_id = ?"
            ))
            .await?,
            status: prepare(format!(
                "SELECT user_id, received_at, parts_expected, parts_done, stage_at FROM {ks}.message_status WHERE message_sid = ?"
            ))
            .await?,
            parts: prepare(format!(
                "SELECT part, outcome, item_count, text FROM {ks}.message_parts WHERE message_sid = ?"
            ))
            .await?,
            by_message: prepare(format!(
                "SELECT item_id FROM {ks}.items_by_message WHERE message_sid = ?"
            ))
            .await?,
            session,
            producer,
            reviews_topic,
        })
    }

    async fn item(&self, id: &str) -> Result<Option<ItemRow>, ApiError> {
        self.session
            .execute_unpaged(&self.item, (id,))
            .await
            .map_err(read_error)?
            .into_rows_result()
            .map_err(read_error)?
            .maybe_first_row::<ItemRow>()
            .map_err(read_error)
    }
}

fn read_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("cannot read the read model: {e}"))
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

/// Where the next page starts: strictly after this row, in list order (`t = i64::MAX`: at the
/// top of bucket `b`).
#[derive(Serialize, Deserialize)]
struct PageToken {
    b: i32,
    t: i64,
    i: String,
}

fn item_view(id: &str, r: &ItemRow) -> Item {
    Item {
        id: id.to_owned(),
        message_sid: r.1.clone(),
        part: r.2.clone(),
        kind: r.3.clone(),
        value: r.4.clone(),
        normalized: r.5.clone(),
        confidence: r.6,
        source: r.7.clone(),
        span: vec![r.8, r.9],
        status: r.10.as_deref().and_then(ItemStatus::parse),
        created_at: r.11.and_then(|t| rfc3339_millis(t.0)),
        reviewed_at: r.12.and_then(|t| rfc3339_millis(t.0)),
    }
}

#[utoipa::path(get, path = "/v1/items", tag = "items",
    summary = "The caller's items with one status, newest first, paged",
    security(("bearer" = [])),
    params(
        ("status" = Option<ItemStatus>, Query, description = "Default `pending`"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200; default 50", minimum = 1, maximum = 200),
        ("page_token" = Option<String>, Query, description = "`next_page_token` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = ItemPage),
        (status = 400, description = "A bad status or page_token", body = ErrorBody),
        (status = 401, description = "No bearer token, or not a valid one", body = ErrorBody),
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
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let after: Option<PageToken> = match &q.page_token {
        None => None,
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::invalid("page_token is not one this API issued"))?,
        ),
    };
    let mut out: Vec<ItemSummary> = Vec::with_capacity(limit);
    let mut last: Option<PageToken> = None;
    let mut more = false;
    let mut from_bucket = after.as_ref().map_or(i32::MAX, |a| a.b);
    let mut looked = 0usize;
    'walk: loop {
        let index: Vec<(i32, Option<i64>, Option<i64>)> = api
            .session
            .execute_unpaged(
                &api.buckets,
                (&caller.user_id, status, from_bucket, INDEX_PAGE),
            )
            .await
            .map_err(read_error)?
            .into_rows_result()
            .map_err(read_error)?
            .rows::<(i32, Option<i64>, Option<i64>)>()
            .map_err(read_error)?
            .collect::<Result<_, _>>()
            .map_err(read_error)?;
        let Some(&(lowest, _, _)) = index.last() else {
            break;
        };
        let exhausted = index.len() < INDEX_PAGE as usize;
        for (bucket, added, drained) in index {
            if added.is_some() && added == drained {
                // Emptied by reviews and nothing added since: skip its tombstones.
                continue;
            }
            looked += 1;
            if looked > MAX_BUCKETS_PER_PAGE {
                more = true;
                last = Some(PageToken {
                    b: bucket,
                    t: i64::MAX,
                    i: String::new(),
                });
                break 'walk;
            }
            let want = (limit - out.len() + 1) as i32;
            let result = match after.as_ref().filter(|a| a.b == bucket) {
                Some(a) => {
                    api.session
                        .execute_unpaged(
                            &api.list_from,
                            (
                                &caller.user_id,
                                status,
                                bucket,
                                CqlTimestamp(a.t),
                                want + 64,
                            ),
                        )
                        .await
                }
                None => {
                    api.session
                        .execute_unpaged(&api.list, (&caller.user_id, status, bucket, want))
                        .await
                }
            };
            let rows: Vec<ListRow> = result
                .map_err(read_error)?
                .into_rows_result()
                .map_err(read_error)?
                .rows::<ListRow>()
                .map_err(read_error)?
                .collect::<Result<_, _>>()
                .map_err(read_error)?;
            for (created, id, sid, kind, value, normalized, confidence) in rows {
                // Within one millisecond, rows sort by id: skip up to and including the token's.
                if let Some(a) = after.as_ref().filter(|a| a.b == bucket) {
                    if created.0 == a.t && id <= a.i {
                        continue;
                    }
                }
                if out.len() == limit {
                    more = true;
                    break 'walk;
                }
                last = Some(PageToken {
                    b: bucket,
                    t: created.0,
                    i: id.clone(),
                });
                out.push(ItemSummary {
                    id,
                    message_sid: sid,
                    kind,
                    value,
                    normalized,
                    confidence,
                    status: listed,
                    created_at: rfc3339_millis(created.0),
                });
            }
        }
        if exhausted || lowest == i32::MIN {
            break;
        }
        from_bucket = lowest - 1;
    }
    let next = if more {
        last.and_then(|l| serde_json::to_vec(&l).ok())
            .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
    } else {
        None
    };
    Ok(Json(ItemPage {
        items: out,
        next_page_token: next,
    }))
}

#[utoipa::path(get, path = "/v1/items/{id}", tag = "items",
    summary = "One of the caller's items",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The item id")),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 401, description = "No bearer token, or not a valid one", body = ErrorBody),
        (status = 404, description = "No such item, or someone else's", body = ErrorBody),
        (status = 503, description = "The read model cannot be read; retry later", body = ErrorBody),
    ))]
async fn one(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Item>, ApiError> {
    match api.item(&id).await? {
        Some(r) if r.0.as_deref() == Some(caller.user_id.as_str()) => Ok(Json(item_view(&id, &r))),
        _ => Err(ApiError::not_found("item")),
    }
}

/// part, outcome, item_count, transcript.
type PartRow = (String, Option<String>, Option<i32>, Option<String>);

type StatusRow = (
    Option<String>,
    Option<CqlTimestamp>,
    Option<i32>,
    Option<Vec<String>>,
    Option<HashMap<String, CqlTimestamp>>,
);

#[utoipa::path(get, path = "/v1/messages/{sid}", tag = "items",
    summary = "A message's progress, transcripts and items",
    security(("bearer" = [])),
    params(("sid" = String, Path, description = "The Twilio MessageSid")),
    responses(
        (status = 200, description = "The message", body = MessageProgress),
        (status = 401, description = "No bearer token, or not a valid one", body = ErrorBody),
        (status = 404, description = "No such message, or someone else's", body = ErrorBody),
        (status = 503, description = "The read model cannot be read; retry later", body = ErrorBody),
    ))]
async fn message(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Path(sid): Path<String>,
) -> Result<Json<MessageProgress>, ApiError> {
    let status = api
        .session
        .execute_unpaged(&api.status, (&sid,))
        .await
        .map_err(read_error)?
        .into_rows_result()
        .map_err(read_error)?
        .maybe_first_row::<StatusRow>()
        .map_err(read_error)?;
    let Some((Some(owner), received, expected, done, stages)) = status else {
        return Err(ApiError::not_found("message"));
    };
    if owner != caller.user_id {
        return Err(ApiError::not_found("message"));
    }
    let done = done.unwrap_or_default();
    let expected = expected.unwrap_or(1);
    let parts: Vec<PartRow> = api
        .session
        .execute_unpaged(&api.parts, (&sid,))
        .await
        .map_err(read_error)?
        .into_rows_result()
        .map_err(read_error)?
        .rows()
        .map_err(read_error)?
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    let ids: Vec<(String,)> = api
        .session
        .execute_unpaged(&api.by_message, (&sid,))
        .await
        .map_err(read_error)?
        .into_rows_result()
        .map_err(read_error)?
        .rows()
        .map_err(read_error)?
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    let mut items = Vec::with_capacity(ids.len());
    for (id,) in ids.iter().take(500) {
        if let Some(r) = api.item(id).await? {
            items.push(item_view(id, &r));
        }
    }
    let stage_at: BTreeMap<String, Option<String>> = stages
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, rfc3339_millis(v.0)))
        .collect();
    Ok(Json(MessageProgress {
        message_sid: sid,
        received_at: received.and_then(|t| rfc3339_millis(t.0)),
        parts_expected: expected,
        done: done.len() as i32 >= expected,
        parts_done: done,
        stage_at,
        parts: parts
            .into_iter()
            .map(|(part, outcome, item_count, transcript)| MessagePart {
                part,
                outcome,
                item_count,
                transcript,
            })
            .collect(),
        items,
    }))
}

#[derive(Deserialize)]
struct ReviewQuery {
    #[serde(default)]
    wait: bool,
}

#[utoipa::path(post, path = "/v1/items/{id}/review", tag = "items",
    summary = "Approve or reject an item (appends `ItemReviewed`)",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The item id"),
        ("wait" = Option<bool>, Query, description = "Wait (10 s at most) until the projector applied the review"),
    ),
    request_body = ReviewRequest,
    responses(
        (status = 202, description = "Appended", body = ReviewAccepted),
        (status = 400, description = "A malformed body or an unknown decision", body = ErrorBody),
        (status = 401, description = "No bearer token, or not a valid one", body = ErrorBody),
        (status = 404, description = "No such item, or someone else's", body = ErrorBody),
        (status = 503, description = "The review was not stored, or the read model cannot be read; retry", body = ErrorBody),
    ))]
async fn review(
    State(api): State<Arc<ItemsApi>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<ReviewQuery>,
    body: Result<Json<ReviewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ReviewAccepted>), ApiError> {
    let Json(body) = body?;
    let status = body.decision.status();
    let row = match api.item(&id).await? {
        Some(r) if r.0.as_deref() == Some(caller.user_id.as_str()) => r,
        _ => return Err(ApiError::not_found("item")),
    };
    let event = ItemReviewed {
        event_id: uuid::Uuid::now_v7().to_string(),
        item_id: id.clone(),
        user_id: caller.user_id.clone(),
        decision: body.decision.as_str().to_owned(),
        reviewed_at: crate::clock::now_micros(),
        message_sid: row.1.clone().unwrap_or_default(),
        item_created_at: row.11.map_or(0, |t| t.0.saturating_mul(1000)),
        kind: row.3.clone().unwrap_or_default(),
        value: row.4.clone().unwrap_or_default(),
        normalized: row.5.clone().unwrap_or_default(),
    };
    api.producer
        .send(&api.reviews_topic, &caller.user_id, &event)
        .await
        .map_err(|e| ApiError::unavailable(format!("the review was not stored: {e}")))?;
    let mut applied = false;
    if q.wait {
        // Read-your-writes, bounded: poll the item until the projector shows the decision.
        let deadline = tokio::time::Instant::now() + REVIEW_WAIT;
        let mut pause = Duration::from_millis(10);
        while tokio::time::Instant::now() < deadline {
            if let Some(r) = api.item(&id).await? {
                let reviewed_us = r.12.map_or(0, |t| t.0.saturating_mul(1000));
                if r.10.as_deref() == Some(status) && reviewed_us >= event.reviewed_at / 1000 * 1000
                {
                    applied = true;
                    break;
                }
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
