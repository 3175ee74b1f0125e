//! Read models fed by `MessageReceived`: `messages_by_user` and `message_status` (its
//! receipt and stage stamps; the items projection adds the parts done). Nothing in smsflow
//! reads `messages_by_user` back yet; `message_status` is read with the items it tracks
//! (`items::ItemReads::message`).

use std::collections::HashMap;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use tracing::Instrument;

use super::cql::{cql_span, unset_if_none};
use super::Position;
use crate::events::MessageReceived;
use crate::store::{select_one, StoreError};

/// The `messages_by_user` insert; public so the benchmark's raw driver loop runs this very
/// statement.
pub fn insert_message_cql(keyspace: &str) -> String {
    format!("INSERT INTO {keyspace}.messages_by_user (user_id, received_at, message_sid, account_sid, messaging_service_sid, \
     from_number, to_number, body, num_segments, media, geo, event_id) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
}

/// Prepared writes for the message read models.
pub struct MessagesProjection {
    session: Arc<Session>,
    insert_message: PreparedStatement,
    upsert_status: PreparedStatement,
    select_received: PreparedStatement,
}

impl MessagesProjection {
    /// Prepare the statements once.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        let insert_message = session
            .prepare(insert_message_cql(keyspace))
            .await
            .map_err(StoreError::prepare("insert messages_by_user"))?;
        let upsert_status = session
            .prepare(
                format!("UPDATE {keyspace}.message_status USING TIMESTAMP ? SET user_id = ?, received_at = ?, parts_expected = ?, \
                 stage_at = stage_at + ? WHERE message_sid = ?"),
            )
            .await
            .map_err(StoreError::prepare("upsert message_status"))?;
        let select_received = session
            .prepare(format!(
                "SELECT received_at FROM {keyspace}.message_status WHERE message_sid = ?"
            ))
            .await
            .map_err(StoreError::prepare("select message_status"))?;
        Ok(MessagesProjection {
            session,
            insert_message,
            upsert_status,
            select_received,
        })
    }

    /// Write one event's rows; safe to repeat.
    ///
    /// A second delivery of one MessageSid (appended while Redis was down, so dedupe could
    /// not stop it) has its own `received_at`, which is part of the timeline's key. It is
    /// written under the first delivery's `received_at`, read back from `message_status`,
    /// so it lands on the same row: one message, one row, in any replay.
    pub async fn apply(&self, ev: &MessageReceived, pos: &Position) -> Result<(), StoreError> {
        let ts = pos.write_timestamp();
        let owner = ev.partition_key();
        let first_seen: Option<(Option<CqlTimestamp>,)> = select_one(
            &self.session,
            &self.select_received,
            (ev.message_sid.as_str(),),
            "select message_status",
        )
        .instrument(cql_span("SELECT", "message_status"))
        .await?;
        let first_seen = first_seen.and_then(|(t,)| t);
        let received = first_seen.unwrap_or(CqlTimestamp(ev.received_at.div_euclid(1000)));
        let media: Vec<(&str, &str)> = ev
            .media
            .iter()
            .map(|m| (m.url.as_str(), m.content_type.as_str()))
            .collect();
        let geo: HashMap<&str, &str> = ev
            .geo
            .as_ref()
            .map(|g| {
                [
                    ("from_city", &g.from_city),
                    ("from_state", &g.from_state),
                    ("from_zip", &g.from_zip),
                    ("from_country", &g.from_country),
                    ("to_city", &g.to_city),
                    ("to_state", &g.to_state),
                    ("to_zip", &g.to_zip),
                    ("to_country", &g.to_country),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
                .collect()
            })
            .unwrap_or_default();
        // Unset instead of null: a null would write a tombstone for every absent value.
        let mss = unset_if_none(ev.messaging_service_sid.as_deref());
        let geo = if geo.is_empty() {
            MaybeUnset::Unset
        } else {
            MaybeUnset::Set(geo)
        };
        let insert = self.session.execute_unpaged(
            &self.insert_message,
            (
                owner,
                received,
                ev.message_sid.as_str(),
                ev.account_sid.as_str(),
                mss,
                ev.from.as_str(),
                ev.to.as_str(),
                ev.body.as_str(),
                ev.num_segments,
                media,
                geo,
                ev.event_id.as_str(),
                ts,
            ),
        );
        // `projected` is this write's wall clock, on the same host clock as `received`: with
        // `appended` (broker time) it splits end-to-end latency per stage (see loadtest/).
        let stages: HashMap<&str, CqlTimestamp> = HashMap::from([
            ("received", received),
            ("appended", CqlTimestamp(pos.log_time_ms)),
            ("projected", CqlTimestamp(crate::clock::now_millis())),
        ]);
        let status = self.session.execute_unpaged(
            &self.upsert_status,
            (
                ts,
                owner,
                received,
                ev.parts_expected(),
                stages,
                ev.message_sid.as_str(),
            ),
        );
        let (a, b) = tokio::join!(
            insert.instrument(cql_span("INSERT", "messages_by_user")),
            status.instrument(cql_span("UPDATE", "message_status"))
        );
        a.map_err(StoreError::execute("insert messages_by_user"))?;
        b.map_err(StoreError::execute("upsert message_status"))?;
        Ok(())
    }
}

// SenderRejected shares the topic and has no read model here. A second delivery of one
// MessageSid comes from the same sender, so the default order key (the record key) writes
// it after the first, which it reads back.
impl super::Projection for MessagesProjection {
    type Event = MessageReceived;
    const NAME: &'static str = super::MESSAGES_PROJECTION;

    fn topics(&self) -> &'static [&'static str] {
        &[crate::topics::MESSAGES]
    }

    fn message_sid<'a>(&self, event: &'a MessageReceived) -> Option<&'a str> {
        Some(&event.message_sid)
    }

    fn apply(
        &self,
        event: &MessageReceived,
        pos: &Position,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        MessagesProjection::apply(self, event, pos)
    }

    fn applied(&self, event: &MessageReceived) {
        let now_us = crate::clock::now_micros();
        crate::metrics::end_to_end_latency(std::time::Duration::from_micros(
            now_us.saturating_sub(event.received_at).max(0) as u64,
        ));
    }
}
