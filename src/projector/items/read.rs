//! Reads of the item read models: a user's list page (walking the hour buckets newest first
//! and skipping drained ones, rule 2 of the module doc), one item, and one message's
//! progress with its parts and items.

use std::collections::HashMap;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};

use super::bucket_is_drained;
use crate::store::{select_all, select_one, StoreError};

/// How many buckets (user-hours) one page looks at before it returns what it has, with a
/// token to go on: this bounds a request however sparse the list is.
const MAX_BUCKETS_PER_PAGE: usize = 2_000;
/// Index rows read per round trip.
const INDEX_PAGE: i32 = 256;
/// Most items one message's read returns.
const MAX_ITEMS_PER_MESSAGE: usize = 500;

/// One item as stored in `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub user_id: Option<String>,
    pub message_sid: Option<String>,
    pub part: Option<String>,
    pub kind: Option<String>,
    pub value: Option<String>,
    pub normalized: Option<String>,
    pub confidence: Option<f32>,
    pub source: Option<String>,
    pub span_start: Option<i32>,
    pub span_end: Option<i32>,
    pub status: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at_ms: Option<i64>,
    pub reviewed_at_ms: Option<i64>,
}

/// One row of a list (`items_by_user_status`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedItem {
    pub id: String,
    pub message_sid: Option<String>,
    pub kind: Option<String>,
    pub value: Option<String>,
    pub normalized: Option<String>,
    pub confidence: Option<f32>,
    pub created_at_ms: i64,
}

/// Where the next page starts: strictly after this row, in list order (`t = i64::MAX`: at the
/// top of bucket `b`). Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken {
    b: i32,
    t: i64,
    i: String,
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<ListedItem>,
    /// Where the next page starts; `None` at the end of the list.
    pub next: Option<PageToken>,
}

/// One message part's outcome (`message_parts`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartRow {
    pub part: String,
    pub outcome: Option<String>,
    pub item_count: Option<i32>,
    pub transcript: Option<String>,
}

/// A message's progress (`message_status`), its parts and its items.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub owner: String,
    pub received_at_ms: Option<i64>,
    pub parts_expected: Option<i32>,
    pub parts_done: Vec<String>,
    /// Stage name to milliseconds since the epoch.
    pub stage_at: HashMap<String, i64>,
    pub parts: Vec<PartRow>,
    /// The message's items, by id (at most 500).
    pub items: Vec<(String, ItemRow)>,
}

type ItemTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f32>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

type ListTuple = (
    CqlTimestamp,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f32>,
);

/// A `message_parts` row: part, outcome, item count, text.
type PartTuple = (String, Option<String>, Option<i32>, Option<String>);

type StatusTuple = (
    Option<String>,
    Option<CqlTimestamp>,
    Option<i32>,
    Option<Vec<String>>,
    Option<HashMap<String, CqlTimestamp>>,
);

/// Prepared reads of the item read models.
pub struct ItemReads {
    session: Arc<Session>,
    list: PreparedStatement,
    list_from: PreparedStatement,
    buckets: PreparedStatement,
    item: PreparedStatement,
    status: PreparedStatement,
    parts: PreparedStatement,
    by_message: PreparedStatement,
}

impl ItemReads {
    /// Prepare the reads.
    pub async fn new(session: Arc<Session>, ks: &str) -> Result<ItemReads, StoreError> {
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                session
                    .prepare(cql)
                    .await
                    .map_err(StoreError::prepare("item reads"))
            }
        };
        let cols = "created_at, item_id, message_sid, kind, value, normalized, confidence";
        Ok(ItemReads {
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
        })
    }

    /// One item, whoever owns it (the caller checks).
    pub async fn item(&self, id: &str) -> Result<Option<ItemRow>, StoreError> {
        let row: Option<ItemTuple> =
            select_one(&self.session, &self.item, (id,), "select items").await?;
        Ok(row.map(|r| ItemRow {
            user_id: r.0,
            message_sid: r.1,
            part: r.2,
            kind: r.3,
            value: r.4,
            normalized: r.5,
            confidence: r.6,
            source: r.7,
            span_start: r.8,
            span_end: r.9,
            status: r.10,
            created_at_ms: r.11.map(|t| t.0),
            reviewed_at_ms: r.12.map(|t| t.0),
        }))
    }

    /// Up to `limit` of `user`'s items with `status`, newest first, starting after `after`.
    pub async fn page(
        &self,
        user: &str,
        status: &str,
        limit: usize,
        after: Option<&PageToken>,
    ) -> Result<Page, StoreError> {
        let mut out: Vec<ListedItem> = Vec::with_capacity(limit);
        let mut last: Option<PageToken> = None;
        let mut more = false;
        let mut from_bucket = after.map_or(i32::MAX, |a| a.b);
        let mut looked = 0usize;
        'walk: loop {
            let index: Vec<(i32, Option<i64>, Option<i64>)> = select_all(
                &self.session,
                &self.buckets,
                (user, status, from_bucket, INDEX_PAGE),
                "select list_buckets",
            )
            .await?;
            let Some(&(lowest, _, _)) = index.last() else {
                break;
            };
            let exhausted = index.len() < INDEX_PAGE as usize;
            for (bucket, added, drained) in index {
                if bucket_is_drained(added, drained) {
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
                let here = after.filter(|a| a.b == bucket);
                const CONTEXT: &str = "select items_by_user_status";
                let rows: Vec<ListTuple> = match here {
                    Some(a) => {
                        let from = (user, status, bucket, CqlTimestamp(a.t), want + 64);
                        select_all(&self.session, &self.list_from, from, CONTEXT).await?
                    }
                    None => {
                        let top = (user, status, bucket, want);
                        select_all(&self.session, &self.list, top, CONTEXT).await?
                    }
                };
                for (created, id, message_sid, kind, value, normalized, confidence) in rows {
                    // Within one millisecond, rows sort by id: skip up to and including the
                    // token's.
                    if let Some(a) = here {
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
                    out.push(ListedItem {
                        id,
                        message_sid,
                        kind,
                        value,
                        normalized,
                        confidence,
                        created_at_ms: created.0,
                    });
                }
            }
            if exhausted || lowest == i32::MIN {
                break;
            }
            from_bucket = lowest - 1;
        }
        Ok(Page {
            items: out,
            next: if more { last } else { None },
        })
    }

    /// A message's progress, parts and items; `None` for a message nobody received or one
    /// that `owner` does not own (the two must look alike from outside).
    pub async fn message(&self, sid: &str, owner: &str) -> Result<Option<MessageRow>, StoreError> {
        let status: Option<StatusTuple> =
            select_one(&self.session, &self.status, (sid,), "select message_status").await?;
        let Some((Some(found_owner), received, expected, done, stages)) = status else {
            return Ok(None);
        };
        if found_owner != owner {
            return Ok(None);
        }
        let parts: Vec<PartTuple> =
            select_all(&self.session, &self.parts, (sid,), "select message_parts").await?;
        let ids: Vec<(String,)> = select_all(
            &self.session,
            &self.by_message,
            (sid,),
            "select items_by_message",
        )
        .await?;
        let mut items = Vec::with_capacity(ids.len().min(MAX_ITEMS_PER_MESSAGE));
        for (id,) in ids.into_iter().take(MAX_ITEMS_PER_MESSAGE) {
            if let Some(row) = self.item(&id).await? {
                items.push((id, row));
            }
        }
        Ok(Some(MessageRow {
            owner: found_owner,
            received_at_ms: received.map(|t| t.0),
            parts_expected: expected,
            parts_done: done.unwrap_or_default(),
            stage_at: stages
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
            parts: parts
                .into_iter()
                .map(|(part, outcome, item_count, transcript)| PartRow {
                    part,
                    outcome,
                    item_count,
                    transcript,
                })
                .collect(),
            items,
        }))
    }
}
