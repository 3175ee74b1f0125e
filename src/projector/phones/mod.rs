//! Read models fed by `sms.phones.v1`: `phones` (read through `phones::PhoneDirectory`) and
//! `phones_by_user` (`GET /v1/phones`). Writes here, reads in [`read`].
//!
//! Every event carries the phone's whole state, so applying the latest one per phone is
//! enough (the topic is compacted). An unlink deletes the user's `phones_by_user` row; the
//! `phones` row stays, holding the opt-out that belongs to the number. Compaction can remove
//! an unlink that a lagging projector never applied (the number's later link to another user
//! supersedes it), so every event also deletes the row of the owner the `phones` table holds,
//! when that owner is not the event's.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use tracing::Instrument;

use super::cql::cql_span;
use super::Position;
use crate::events::PhoneEvent;
use crate::store::StoreError;

mod read;

pub use read::{PhoneReads, UserPhone};

/// Prepared writes for the phone read models.
pub struct PhonesProjection {
    session: Arc<Session>,
    upsert_phone: PreparedStatement,
    upsert_by_user: PreparedStatement,
    delete_by_user: PreparedStatement,
    select_owner: PreparedStatement,
}

impl PhonesProjection {
    /// Prepare the statements once.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        let upsert_phone = session
            .prepare(format!(
                "UPDATE {keyspace}.phones USING TIMESTAMP ? SET user_id = ?, verified = ?, \
                 opted_out = ?, linked_at = ?, verified_at = ?, opted_out_at = ?, time_zone = ? WHERE phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("upsert phones"))?;
        let upsert_by_user = session
            .prepare(format!(
                "UPDATE {keyspace}.phones_by_user USING TIMESTAMP ? SET verified = ?, \
                 opted_out = ?, linked_at = ?, time_zone = ? WHERE user_id = ? AND phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("upsert phones_by_user"))?;
        let delete_by_user = session
            .prepare(format!(
                "DELETE FROM {keyspace}.phones_by_user USING TIMESTAMP ? WHERE user_id = ? AND phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("delete phones_by_user"))?;
        let select_owner = session
            .prepare(format!(
                "SELECT user_id FROM {keyspace}.phones WHERE phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("select phones owner"))?;
        Ok(PhonesProjection {
            session,
            upsert_phone,
            upsert_by_user,
            delete_by_user,
            select_owner,
        })
    }

    async fn write(&self, ev: &PhoneEvent, pos: &Position) -> Result<(), StoreError> {
        let ts = pos.write_timestamp();
        let phone = ev.phone();
        let s = ev.state();
        let at = |v: Option<i64>| -> Option<CqlTimestamp> {
            v.map(|us| CqlTimestamp(us.div_euclid(1000)))
        };
        let owner = self.owner(phone).await?;
        // A null here is meaningful (no owner any more), so it is written, not unset.
        self.session
            .execute_unpaged(
                &self.upsert_phone,
                (
                    ts,
                    s.user_id.as_deref(),
                    s.verified,
                    s.opted_out,
                    at(s.linked_at),
                    at(s.verified_at),
                    at(s.opted_out_at),
                    s.time_zone.as_deref(),
                    phone,
                ),
            )
            .instrument(cql_span("UPDATE", "phones"))
            .await
            .map_err(StoreError::execute("upsert phones"))?;
        let unlinked = match ev {
            PhoneEvent::Unlinked(u) => u.previous_user_id.as_deref(),
            _ => None,
        };
        // The owner read before this write may be a later event's (a replay): then the delete
        // carries this older event's timestamp and the later rows outlive it.
        let stale = owner
            .as_deref()
            .filter(|o| Some(*o) != s.user_id.as_deref());
        let mut gone: Vec<&str> = unlinked.into_iter().chain(stale).collect();
        gone.dedup();
        for prev in gone {
            self.session
                .execute_unpaged(&self.delete_by_user, (ts, prev, phone))
                .instrument(cql_span("DELETE", "phones_by_user"))
                .await
                .map_err(StoreError::execute("delete phones_by_user"))?;
        }
        if let Some(user) = s.user_id.as_deref() {
            let linked = at(s.linked_at).map_or(MaybeUnset::Unset, MaybeUnset::Set);
            self.session
                .execute_unpaged(
                    &self.upsert_by_user,
                    (
                        ts,
                        s.verified,
                        s.opted_out,
                        linked,
                        s.time_zone.as_deref(),
                        user,
                        phone,
                    ),
                )
                .instrument(cql_span("UPDATE", "phones_by_user"))
                .await
                .map_err(StoreError::execute("upsert phones_by_user"))?;
        }
        Ok(())
    }
}

impl PhonesProjection {
    /// The user the `phones` table has for `phone` now, if any.
    async fn owner(&self, phone: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.select_owner, (phone,))
            .instrument(cql_span("SELECT", "phones"))
            .await
            .map_err(StoreError::execute("select phones owner"))?
            .into_rows_result()
            .map_err(StoreError::rows("select phones owner"))?;
        let row = rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(StoreError::rows("select phones owner"))?;
        Ok(row.and_then(|(user,)| user))
    }
}

impl super::Projection for PhonesProjection {
    type Event = PhoneEvent;
    const NAME: &'static str = super::PHONES_PROJECTION;

    fn topics(&self) -> &'static [&'static str] {
        &[crate::topics::PHONES]
    }

    fn apply(
        &self,
        event: &PhoneEvent,
        pos: &Position,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.write(event, pos)
    }
}
