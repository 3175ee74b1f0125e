//! Read models fed by `sms.enrichments.v1` and `sms.reviews.v1`: `items`,
//! `items_by_user_status` (the pending, approved and rejected lists), `message_parts`, and
//! the enrichment progress in `message_status`.
//!
//! A review carries everything needed to move its item, so proposals and reviews apply in
//! any order (a replay reads both topics at once) and converge through write timestamps.

use std::sync::Arc;

use chrono::{Datelike, TimeZone, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use tracing::Instrument;

use super::messages::cql_span;
use super::position::Position;
use crate::events::{decode, CodecError, Event, ItemReviewed, ItemsProposed, PartEnriched};
use crate::store::StoreError;

/// The statuses of an item, and the lists of `items_by_user_status`.
pub const STATUSES: [&str; 3] = ["pending", "approved", "rejected"];

/// The month bucket (`yyyymm`, UTC) of an item created at `micros`.
pub fn bucket_of(micros: i64) -> i32 {
    let t = Utc
        .timestamp_micros(micros)
        .single()
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    t.year() * 100 + t.month() as i32
}

/// The bucket before `bucket`.
pub fn previous_bucket(bucket: i32) -> i32 {
    let (y, m) = (bucket / 100, bucket % 100);
    if m <= 1 {
        (y - 1) * 100 + 12
    } else {
        y * 100 + m - 1
    }
}

/// An event of the items projection.
#[derive(Debug, Clone)]
pub enum ItemsEvent {
    Proposed(ItemsProposed),
    Part(PartEnriched),
    Reviewed(ItemReviewed),
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
            session,
        })
    }

    async fn proposed(&self, ev: &ItemsProposed, ts: i64) -> Result<(), StoreError> {
        let created = CqlTimestamp(ev.received_at.div_euclid(1000));
        let bucket = bucket_of(ev.received_at);
        for item in &ev.items {
            let upsert = self.session.execute_unpaged(
                &self.upsert_item,
                (
                    ts,
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
                    ts,
                ),
            );
            let by_message = self.session.execute_unpaged(
                &self.insert_by_message,
                (ev.message_sid.as_str(), item.item_id.as_str(), ts),
            );
            let (a, b, c) = tokio::join!(
                upsert.instrument(cql_span("UPDATE", "items")),
                listed.instrument(cql_span("INSERT", "items_by_user_status")),
                by_message.instrument(cql_span("INSERT", "items_by_message"))
            );
            a.map_err(StoreError::execute("upsert items"))?;
            b.map_err(StoreError::execute("insert items_by_user_status"))?;
            c.map_err(StoreError::execute("insert items_by_message"))?;
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
        self.session
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
            .instrument(cql_span("UPDATE", "items"))
            .await
            .map_err(StoreError::execute("review items"))?;
        // Out of every other list (a second review can change the decision), into this one.
        for other in STATUSES.iter().filter(|s| **s != status) {
            self.session
                .execute_unpaged(
                    &self.delete_listed,
                    (
                        ts,
                        ev.user_id.as_str(),
                        *other,
                        bucket,
                        created,
                        ev.item_id.as_str(),
                    ),
                )
                .instrument(cql_span("DELETE", "items_by_user_status"))
                .await
                .map_err(StoreError::execute("delete items_by_user_status"))?;
        }
        self.session
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
            .instrument(cql_span("INSERT", "items_by_user_status"))
            .await
            .map_err(StoreError::execute("insert items_by_user_status"))?;
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

    fn decode(&self, event_type: &str, payload: &[u8]) -> Result<Option<ItemsEvent>, CodecError> {
        Ok(Some(match event_type {
            ItemsProposed::NAME => ItemsEvent::Proposed(decode(payload)?),
            PartEnriched::NAME => ItemsEvent::Part(decode(payload)?),
            ItemReviewed::NAME => ItemsEvent::Reviewed(decode(payload)?),
            _ => return Ok(None),
        }))
    }

    fn message_sid<'a>(&self, event: &'a ItemsEvent) -> Option<&'a str> {
        Some(match event {
            ItemsEvent::Proposed(e) => &e.message_sid,
            ItemsEvent::Part(e) => &e.message_sid,
            ItemsEvent::Reviewed(e) => &e.message_sid,
        })
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
    fn buckets_are_utc_months_and_walk_back_across_years() {
        // 2026-11-28T12:00:00Z
        assert_eq!(bucket_of(1_795_867_200_000_000), 202611);
        assert_eq!(previous_bucket(202611), 202610);
        assert_eq!(previous_bucket(202601), 202512);
    }
}
