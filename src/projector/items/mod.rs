//! Read models fed by `sms.enrichments.v1` and `sms.reviews.v1`: `items`,
//! `items_by_user_status` (the pending, approved and rejected lists), `message_parts`, and
//! the enrichment progress in `message_status`.
//!
//! A review carries everything needed to move its item, so proposals and reviews apply in
//! any order (a replay reads both topics at once) and converge through write timestamps.
//!
//! ## Bounding the tombstones of the review queue
//!
//! A review deletes the item's row from the pending list, which leaves a tombstone that a
//! later read of that partition must step over. Three rules keep that cost bounded:
//!
//! 1. Lists are partitioned by the hour the item was created (`bucket`, `yyyymmddhh` UTC), so
//!    one read steps over at most one user-hour of reviewed items.
//! 2. `list_buckets` indexes each user's buckets per status with two versions:
//!    `added_version` (the write timestamp of the newest event that added rows, written after
//!    those rows) and `drained_version` (the `added_version` a check saw before finding the
//!    bucket empty). After a review empties a pending bucket the projector records it as
//!    drained, and readers skip drained buckets without touching their tombstones. Rows that
//!    arrive later raise `added_version`, which un-drains the bucket.
//! 3. A review deletes only from the lists the item can be in: always pending (the tombstone
//!    also shadows a proposal that a replay applies after its review), and the approved or
//!    rejected list only when the item's current status says it is there.
//!
//! Rules 2 and 3 read before they write, so the events of one user's bucket apply in order
//! (`order_key`): a proposal's `added_version` then only grows, a drain check cannot miss
//! rows that an earlier proposal of the same bucket was still writing, and a second review
//! of an item sees the first one's status.
//!
//! The reads of these tables, rule 2's skip included ([`bucket_is_drained`]), are in
//! [`read`].
//!
//! ## A message ingested twice
//!
//! Item ids are derived from the message, so two copies of one MessageSid (appended twice
//! when dedupe was off, e.g. Redis down in `fail_open`) propose the same items, but each copy
//! carries its own `received_at`, which is the rows' write timestamp, clustering key and
//! bucket. An item therefore keeps the creation time of the first copy written: a proposal
//! reads the item's `created_at` first and, if the item exists from an earlier copy, writes
//! its rows with that time. They then land on the same list row with a timestamp no newer
//! than the first copy's, so the item is listed once and a review made between the copies
//! (stamped later) stays. Both copies are read in offset order; two copies in different hour
//! buckets that are in flight at the same moment (a replay, a catch-up) can still both miss
//! each other's row and list the item twice until it is reviewed.

use std::sync::Arc;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use tracing::Instrument;

use super::cql::cql_span;
use super::{OrderKey, Position};
use crate::events::{ItemReviewed, ItemsProposed, PartEnriched, ProposedItem};
use crate::store::{select_one, StoreError};

mod read;

pub use read::{ItemReads, ItemRow, ListedItem, MessageRow, Page, PageToken, PartRow};

/// Items of one event written at once.
const ITEM_WRITES_IN_FLIGHT: usize = 16;

/// The statuses of an item, and the lists of `items_by_user_status`.
pub const STATUSES: [&str; 3] = ["pending", "approved", "rejected"];

/// The hour bucket (`yyyymmddhh`, UTC) of an item created at `micros`.
pub fn bucket_of(micros: i64) -> i32 {
    let t = Utc
        .timestamp_micros(micros)
        .single()
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    ((t.year() * 100 + t.month() as i32) * 100 + t.day() as i32) * 100 + t.hour() as i32
}

/// Rule 2 of the module doc: a bucket emptied by reviews, with nothing added since, is
/// skipped by readers without touching its tombstones.
pub fn bucket_is_drained(added_version: Option<i64>, drained_version: Option<i64>) -> bool {
    added_version.is_some() && added_version == drained_version
}

crate::inbound_union! {
    /// An event of the items projection.
    #[derive(Debug, Clone)]
    pub enum ItemsEvent {
        Proposed(ItemsProposed),
        Part(PartEnriched),
        Reviewed(ItemReviewed),
    }
}

/// Prepared writes for the item read models.
pub struct ItemsProjection {
    session: Arc<Session>,
    upsert_item: PreparedStatement,
    insert_listed: PreparedStatement,
    delete_listed: PreparedStatement,
    review_item: PreparedStatement,
    part_done: PreparedStatement,
    insert_part: PreparedStatement,
    insert_by_message: PreparedStatement,
    item_status: PreparedStatement,
    item_created: PreparedStatement,
    bucket_added: PreparedStatement,
    bucket_version: PreparedStatement,
    bucket_first_row: PreparedStatement,
    bucket_drained: PreparedStatement,
}

impl ItemsProjection {
    /// Prepare the statements once.
    pub async fn new(session: Arc<Session>, ks: &str) -> Result<Self, StoreError> {
        let prepare = |cql: String, what: &'static str| {
            let session = session.clone();
            async move {
                session
                    .prepare(cql)
                    .await
                    .map_err(StoreError::prepare(what))
            }
        };
        Ok(ItemsProjection {
            upsert_item: prepare(format!(
                "UPDATE {ks}.items USING TIMESTAMP ? SET user_id = ?, message_sid = ?, part = ?, \
                 kind = ?, value = ?, normalized = ?, confidence = ?, source = ?, span_start = ?, \
                 span_end = ?, status = 'pending', created_at = ? WHERE item_id = ?"
            ), "upsert items").await?,
            insert_listed: prepare(format!(
                "INSERT INTO {ks}.items_by_user_status (user_id, status, bucket, created_at, item_id, \
                 message_sid, kind, value, normalized, confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 USING TIMESTAMP ?"
            ), "insert items_by_user_status").await?,
            delete_listed: prepare(format!(
                "DELETE FROM {ks}.items_by_user_status USING TIMESTAMP ? WHERE user_id = ? AND \
                 status = ? AND bucket = ? AND created_at = ? AND item_id = ?"
            ), "delete items_by_user_status").await?,
            review_item: prepare(format!(
                "UPDATE {ks}.items USING TIMESTAMP ? SET status = ?, reviewed_at = ?, user_id = ?, \
                 message_sid = ?, kind = ?, value = ?, normalized = ?, created_at = ? WHERE item_id = ?"
            ), "review items").await?,
            part_done: prepare(format!(
                "UPDATE {ks}.message_status USING TIMESTAMP ? SET parts_done = parts_done + ?, \
                 stage_at = stage_at + ? WHERE message_sid = ?"
            ), "update message_status").await?,
            insert_part: prepare(format!(
                "INSERT INTO {ks}.message_parts (message_sid, part, outcome, item_count, text, enriched_at) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ), "insert message_parts").await?,
            insert_by_message: prepare(format!(
                "INSERT INTO {ks}.items_by_message (message_sid, item_id) VALUES (?, ?) USING TIMESTAMP ?"
            ), "insert items_by_message").await?,
            item_status: prepare(format!(
                "SELECT status FROM {ks}.items WHERE item_id = ?"
            ), "select items status").await?,
            item_created: prepare(format!(
                "SELECT created_at FROM {ks}.items WHERE item_id = ?"
            ), "select items created_at").await?,
            bucket_added: prepare(format!(
                "UPDATE {ks}.list_buckets USING TIMESTAMP ? SET added_version = ? \
                 WHERE user_id = ? AND status = ? AND bucket = ?"
            ), "update list_buckets added").await?,
            bucket_version: prepare(format!(
                "SELECT added_version FROM {ks}.list_buckets WHERE user_id = ? AND status = ? AND bucket = ?"
            ), "select list_buckets").await?,
            bucket_first_row: prepare(format!(
                "SELECT item_id FROM {ks}.items_by_user_status WHERE user_id = ? AND status = ? \
                 AND bucket = ? LIMIT 1"
            ), "select items_by_user_status").await?,
            bucket_drained: prepare(format!(
                "UPDATE {ks}.list_buckets USING TIMESTAMP ? SET drained_version = ? \
                 WHERE user_id = ? AND status = ? AND bucket = ?"
            ), "update list_buckets drained").await?,
            session,
        })
    }

    async fn proposed(&self, ev: &ItemsProposed, ts: i64) -> Result<(), StoreError> {
        // By index: a closure over `&ProposedItem` trips the `Send` check of `apply`.
        let writes = (0..ev.items.len()).map(|i| self.proposed_item(ev, &ev.items[i]));
        // Items of one part are written a few at a time (a vCard can hold hundreds).
        use futures::StreamExt;
        let added = futures::stream::iter(writes)
            .buffer_unordered(ITEM_WRITES_IN_FLIGHT)
            .collect::<Vec<Result<Option<i32>, StoreError>>>()
            .await
            .into_iter()
            .collect::<Result<std::collections::BTreeSet<Option<i32>>, StoreError>>()?;
        // Only after the rows: a drain check that reads this version sees them. The version
        // is the append time, so it grows in offset order within a bucket. Items an earlier
        // copy of the message already wrote add nothing.
        for bucket in added.into_iter().flatten() {
            self.bucket_added(&ev.user_id, "pending", bucket, ts)
                .await?;
        }
        Ok(())
    }

    /// When an item was first proposed (ms), if an earlier copy of its message wrote it.
    async fn first_created(&self, item_id: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<CqlTimestamp>,)> = select_one(
            &self.session,
            &self.item_created,
            (item_id,),
            "select items created_at",
        )
        .instrument(cql_span("SELECT", "items"))
        .await?;
        Ok(row.and_then(|(c,)| c).map(|c| c.0))
    }

    /// One proposed item's rows; returns the pending bucket it added a row to, `None` when an
    /// earlier copy of the message had written the item.
    async fn proposed_item(
        &self,
        ev: &ItemsProposed,
        item: &ProposedItem,
    ) -> Result<Option<i32>, StoreError> {
        // The rows are stamped with the message's received time, not the proposal's append
        // time: every review is appended later, so a proposal delivered again (an upstream
        // duplicate, a re-enrichment) can never put a reviewed item back into pending. A copy
        // of the message received later takes the first copy's time (see the module doc).
        let first = self
            .first_created(&item.item_id)
            .await?
            .map(|ms| ms.saturating_mul(1000))
            .filter(|first| *first <= ev.received_at);
        let row_ts = first.unwrap_or(ev.received_at);
        let created = CqlTimestamp(row_ts.div_euclid(1000));
        let bucket = bucket_of(row_ts);
        let upsert = self.session.execute_unpaged(
            &self.upsert_item,
            (
                row_ts,
                ev.user_id.as_str(),
                ev.message_sid.as_str(),
                ev.part.as_str(),
                item.kind.as_str(),
                item.value.as_str(),
                item.normalized.as_str(),
                item.confidence,
                item.source.as_str(),
                item.span_start,
                item.span_end,
                created,
                item.item_id.as_str(),
            ),
        );
        let listed = self.session.execute_unpaged(
            &self.insert_listed,
            (
                ev.user_id.as_str(),
                "pending",
                bucket,
                created,
                item.item_id.as_str(),
                ev.message_sid.as_str(),
                item.kind.as_str(),
                item.value.as_str(),
                item.normalized.as_str(),
                item.confidence,
                row_ts,
            ),
        );
        let by_message = self.session.execute_unpaged(
            &self.insert_by_message,
            (ev.message_sid.as_str(), item.item_id.as_str(), row_ts),
        );
        let (a, b, c) = tokio::join!(
            upsert.instrument(cql_span("UPDATE", "items")),
            listed.instrument(cql_span("INSERT", "items_by_user_status")),
            by_message.instrument(cql_span("INSERT", "items_by_message"))
        );
        a.map_err(StoreError::execute("upsert items"))?;
        b.map_err(StoreError::execute("insert items_by_user_status"))?;
        c.map_err(StoreError::execute("insert items_by_message"))?;
        Ok(first.is_none().then_some(bucket))
    }

    /// A bucket's `added_version`.
    async fn bucket_version(
        &self,
        user: &str,
        status: &str,
        bucket: i32,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = select_one(
            &self.session,
            &self.bucket_version,
            (user, status, bucket),
            "select list_buckets",
        )
        .instrument(cql_span("SELECT", "list_buckets"))
        .await?;
        Ok(row.and_then(|(v,)| v))
    }

    /// Record that an event at `ts` added rows to a list bucket.
    async fn bucket_added(
        &self,
        user: &str,
        status: &str,
        bucket: i32,
        ts: i64,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.bucket_added, (ts, ts, user, status, bucket))
            .instrument(cql_span("UPDATE", "list_buckets"))
            .await
            .map_err(StoreError::execute("update list_buckets added"))?;
        Ok(())
    }

    /// After a delete: if the bucket has no live row left, record it as drained at the version
    /// read before looking, so readers skip its tombstones until rows are added again.
    ///
    /// `version` must have been read (`bucket_version`) before this looks at the rows; any
    /// earlier moment is fine, because rows are always written before the version that
    /// announces them.
    async fn drain_if_empty(
        &self,
        user: &str,
        status: &str,
        bucket: i32,
        version: Option<i64>,
        ts: i64,
    ) -> Result<(), StoreError> {
        // Nothing added yet (a replay applied the review before its proposal): nothing to skip.
        let Some(version) = version else {
            return Ok(());
        };
        let live: Option<(String,)> = select_one(
            &self.session,
            &self.bucket_first_row,
            (user, status, bucket),
            "select items_by_user_status",
        )
        .instrument(cql_span("SELECT", "items_by_user_status"))
        .await?;
        if live.is_none() {
            self.session
                .execute_unpaged(&self.bucket_drained, (ts, version, user, status, bucket))
                .instrument(cql_span("UPDATE", "list_buckets"))
                .await
                .map_err(StoreError::execute("update list_buckets drained"))?;
        }
        Ok(())
    }

    async fn part(&self, ev: &PartEnriched, ts: i64) -> Result<(), StoreError> {
        let at = CqlTimestamp(ev.enriched_at.div_euclid(1000));
        let parts: Vec<&str> = vec![ev.part.as_str()];
        let stage: std::collections::HashMap<&str, CqlTimestamp> =
            std::collections::HashMap::from([("enriched", at)]);
        let status = self
            .session
            .execute_unpaged(&self.part_done, (ts, parts, stage, ev.message_sid.as_str()));
        let part = self.session.execute_unpaged(
            &self.insert_part,
            (
                ev.message_sid.as_str(),
                ev.part.as_str(),
                ev.outcome.as_str(),
                ev.item_count,
                ev.text.as_deref(),
                at,
                ts,
            ),
        );
        let (a, b) = tokio::join!(
            status.instrument(cql_span("UPDATE", "message_status")),
            part.instrument(cql_span("INSERT", "message_parts"))
        );
        a.map_err(StoreError::execute("update message_status"))?;
        b.map_err(StoreError::execute("insert message_parts"))?;
        Ok(())
    }

    async fn reviewed(&self, ev: &ItemReviewed, ts: i64) -> Result<(), StoreError> {
        let status = match ev.decision.as_str() {
            "approve" => "approved",
            "reject" => "rejected",
            other => {
                // Validated by the API; an unknown decision from elsewhere changes nothing.
                tracing::error!(decision = other, "unknown review decision skipped");
                return Ok(());
            }
        };
        let created = CqlTimestamp(ev.item_created_at.div_euclid(1000));
        let bucket = bucket_of(ev.item_created_at);
        // Which decided list the item is in now (a bucket's events apply in order).
        let status_read = async {
            let row: Option<(Option<String>,)> = select_one(
                &self.session,
                &self.item_status,
                (ev.item_id.as_str(),),
                "select items status",
            )
            .instrument(cql_span("SELECT", "items"))
            .await?;
            Ok::<_, StoreError>(row.and_then(|(s,)| s))
        };
        // The pending bucket's version for the drain check below, read at the same time.
        let (previous, pending_version) = tokio::try_join!(
            status_read,
            self.bucket_version(&ev.user_id, "pending", bucket)
        )?;
        let item = self
            .session
            .execute_unpaged(
                &self.review_item,
                (
                    ts,
                    status,
                    CqlTimestamp(ev.reviewed_at.div_euclid(1000)),
                    ev.user_id.as_str(),
                    ev.message_sid.as_str(),
                    ev.kind.as_str(),
                    ev.value.as_str(),
                    ev.normalized.as_str(),
                    created,
                    ev.item_id.as_str(),
                ),
            )
            .instrument(cql_span("UPDATE", "items"));
        let listed = self
            .session
            .execute_unpaged(
                &self.insert_listed,
                (
                    ev.user_id.as_str(),
                    status,
                    bucket,
                    created,
                    ev.item_id.as_str(),
                    ev.message_sid.as_str(),
                    ev.kind.as_str(),
                    ev.value.as_str(),
                    ev.normalized.as_str(),
                    None::<f32>,
                    ts,
                ),
            )
            .instrument(cql_span("INSERT", "items_by_user_status"));
        let (a, b) = tokio::join!(item, listed);
        a.map_err(StoreError::execute("review items"))?;
        b.map_err(StoreError::execute("insert items_by_user_status"))?;
        // Into the new list before out of the old ones, so the item is never in none.
        // Pending always (also to shadow a proposal a replay applies later); a decided list
        // only when the item is there, so a first review leaves one tombstone, not two.
        let decided = STATUSES
            .iter()
            .copied()
            .find(|s| *s != "pending" && Some(*s) == previous.as_deref());
        let lists: Vec<&str> = std::iter::once("pending")
            .chain(decided)
            .filter(|l| *l != status)
            .collect();
        let deletes = futures::future::try_join_all(lists.iter().map(|list| {
            self.session
                .execute_unpaged(
                    &self.delete_listed,
                    (
                        ts,
                        ev.user_id.as_str(),
                        *list,
                        bucket,
                        created,
                        ev.item_id.as_str(),
                    ),
                )
                .instrument(cql_span("DELETE", "items_by_user_status"))
        }));
        let (a, b) = tokio::join!(self.bucket_added(&ev.user_id, status, bucket, ts), deletes);
        a?;
        b.map_err(StoreError::execute("delete items_by_user_status"))?;
        for list in lists {
            let version = if list == "pending" {
                pending_version
            } else {
                self.bucket_version(&ev.user_id, list, bucket).await?
            };
            self.drain_if_empty(&ev.user_id, list, bucket, version, ts)
                .await?;
        }
        Ok(())
    }

    async fn write(&self, ev: &ItemsEvent, pos: &Position) -> Result<(), StoreError> {
        let ts = pos.write_timestamp();
        match ev {
            ItemsEvent::Proposed(e) => self.proposed(e, ts).await,
            ItemsEvent::Part(e) => self.part(e, ts).await,
            ItemsEvent::Reviewed(e) => self.reviewed(e, ts).await,
        }
    }
}

impl super::Projection for ItemsProjection {
    type Event = ItemsEvent;
    const NAME: &'static str = super::ITEMS_PROJECTION;

    fn topics(&self) -> &'static [&'static str] {
        &[crate::topics::ENRICHMENTS, crate::topics::REVIEWS]
    }

    fn message_sid<'a>(&self, event: &'a ItemsEvent) -> Option<&'a str> {
        Some(match event {
            ItemsEvent::Proposed(e) => &e.message_sid,
            ItemsEvent::Part(e) => &e.message_sid,
            ItemsEvent::Reviewed(e) => &e.message_sid,
        })
    }

    /// One list bucket's proposals, reviews and drain checks apply in order, across both
    /// topics; see the module doc. Buckets are independent, so one busy user still gets
    /// concurrency across hours. A part's progress follows its user's order.
    fn order_key(&self, event: &ItemsEvent, record_key: Option<&[u8]>) -> Option<OrderKey> {
        match event {
            ItemsEvent::Proposed(e) => Some(OrderKey::Named(format!(
                "{}/{}",
                bucket_of(e.received_at),
                e.user_id
            ))),
            ItemsEvent::Reviewed(e) => Some(OrderKey::Named(format!(
                "{}/{}",
                bucket_of(e.item_created_at),
                e.user_id
            ))),
            ItemsEvent::Part(_) => record_key.map(|k| OrderKey::Record(k.to_vec())),
        }
    }

    fn apply(
        &self,
        event: &ItemsEvent,
        pos: &Position,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.write(event, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_skipped_only_when_nothing_was_added_after_it_drained() {
        assert!(bucket_is_drained(Some(7), Some(7)));
        assert!(!bucket_is_drained(Some(8), Some(7)), "rows added since");
        assert!(!bucket_is_drained(Some(7), None), "never drained");
        assert!(!bucket_is_drained(None, None), "nothing recorded yet");
    }

    #[test]
    fn buckets_are_utc_hours() {
        // 2026-11-28T12:00:00Z and one microsecond before it.
        assert_eq!(bucket_of(1_795_867_200_000_000), 2026112812);
        assert_eq!(bucket_of(1_795_867_199_999_999), 2026112811);
        // Buckets sort like time, across a year boundary.
        assert!(bucket_of(1_798_761_600_000_000) > bucket_of(1_798_761_599_000_000));
    }
}
