//! Read model fed by `OutboundStatusChanged`: `outbound_messages`, one row per request.

use std::collections::HashMap;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use tracing::Instrument;

use super::cql::{cql_span, unset_if_none};
use super::Position;
use crate::events::OutboundStatusChanged;
use crate::store::StoreError;

/// Prepared writes for the outbound read model.
pub struct OutboundProjection {
    session: Arc<Session>,
    upsert: PreparedStatement,
}

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// A status with no request id (a callback for a message smsflow did not send through
    /// the notify stage) has no row to update.
    NoRequest,
}

impl OutboundProjection {
    /// Prepare the statement once.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        let upsert = session
            .prepare(format!(
                "UPDATE {keyspace}.outbound_messages USING TIMESTAMP ? SET user_id = ?, \
                 to_number = ?, from_number = ?, purpose = ?, twilio_sid = ?, status = ?, \
                 error_code = ?, error_message = ?, reason = ?, status_at = status_at + ?, \
                 updated_at = ? WHERE request_event_id = ?"
            ))
            .await
            .map_err(StoreError::prepare("upsert outbound_messages"))?;
        Ok(OutboundProjection { session, upsert })
    }

    /// Write one event's cells; safe to repeat, and an older event never overwrites a newer one.
    pub async fn apply(
        &self,
        ev: &OutboundStatusChanged,
        pos: &Position,
    ) -> Result<Applied, StoreError> {
        let Some(request) = ev.request_event_id.as_deref() else {
            return Ok(Applied::NoRequest);
        };
        let changed = CqlTimestamp(ev.changed_at.div_euclid(1000));
        let status_at = HashMap::from([(ev.status.as_str(), changed)]);
        // Unset instead of null: a callback knows less than the stage, and must not erase it.
        let statement = self.session.execute_unpaged(
            &self.upsert,
            (
                pos.write_timestamp(),
                unset_if_none(ev.user_id.as_deref()),
                unset_if_none(ev.to.as_deref()),
                unset_if_none(ev.from.as_deref()),
                unset_if_none(ev.purpose.as_deref()),
                unset_if_none(ev.twilio_sid.as_deref()),
                ev.status.as_str(),
                ev.error_code.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                unset_if_none(ev.error_message.as_deref()),
                unset_if_none(ev.reason.as_deref()),
                status_at,
                changed,
                request,
            ),
        );
        statement
            .instrument(cql_span("UPDATE", "outbound_messages"))
            .await
            .map_err(StoreError::execute("upsert outbound_messages"))?;
        Ok(Applied::Written)
    }
}

// OutboundRequested shares the topic and never reaches the projection; a request's row
// starts with the stage's first status.
impl super::Projection for OutboundProjection {
    type Event = OutboundStatusChanged;
    const NAME: &'static str = super::OUTBOUND_PROJECTION;

    fn topics(&self) -> &'static [&'static str] {
        &[crate::topics::OUTBOUND]
    }

    async fn apply(&self, event: &OutboundStatusChanged, pos: &Position) -> Result<(), StoreError> {
        OutboundProjection::apply(self, event, pos)
            .await
            .map(|_| ())
    }
}
