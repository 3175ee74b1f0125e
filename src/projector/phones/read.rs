//! Reads of the phone read models: one number's state (`phones`), and a user's numbers
//! (`phones_by_user`).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use crate::events::PhoneState;
use crate::store::{select_one, StoreError};

/// Most numbers one user's list returns.
pub const MAX_PHONES_PER_USER: usize = 1000;

/// One of a user's numbers, as projected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPhone {
    /// E.164.
    pub phone: String,
    pub verified: bool,
    pub opted_out: bool,
    /// Milliseconds since the epoch; absent before the projector has the link time.
    pub linked_at_ms: Option<i64>,
    /// IANA name, or `None` for the deployment's default.
    pub time_zone: Option<String>,
}

/// Prepared reads of the phone read models.
pub struct PhoneReads {
    session: Arc<Session>,
    by_phone: PreparedStatement,
    by_user: PreparedStatement,
}

type PhoneRow = (
    Option<String>,
    Option<bool>,
    Option<bool>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
);

type UserRow = (
    String,
    Option<bool>,
    Option<bool>,
    Option<CqlTimestamp>,
    Option<String>,
);

impl PhoneReads {
    /// Prepare the reads.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<PhoneReads, StoreError> {
        let by_phone = session
            .prepare(format!(
                "SELECT user_id, verified, opted_out, linked_at, verified_at, opted_out_at, \
                 time_zone FROM {keyspace}.phones WHERE phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("select phones"))?;
        let mut by_user = session
            .prepare(format!(
                "SELECT phone, verified, opted_out, linked_at, time_zone FROM {keyspace}.phones_by_user WHERE user_id = ?"
            ))
            .await
            .map_err(StoreError::prepare("select phones_by_user"))?;
        by_user.set_page_size(100);
        Ok(PhoneReads {
            session,
            by_phone,
            by_user,
        })
    }

    /// The projected state of `phone` (E.164), `None` for a number nobody registered.
    pub async fn phone(&self, phone: &str) -> Result<Option<PhoneState>, StoreError> {
        let row: Option<PhoneRow> =
            select_one(&self.session, &self.by_phone, (phone,), "select phones").await?;
        let micros = |t: Option<CqlTimestamp>| t.map(|t| t.0.saturating_mul(1000));
        Ok(row.map(
            |(user_id, verified, opted_out, linked, verified_at, opted, time_zone)| PhoneState {
                user_id,
                verified: verified.unwrap_or(false),
                opted_out: opted_out.unwrap_or(false),
                linked_at: micros(linked),
                verified_at: micros(verified_at),
                opted_out_at: micros(opted),
                time_zone,
            },
        ))
    }

    /// `user_id`'s numbers (at most [`MAX_PHONES_PER_USER`]), paged through.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<UserPhone>, StoreError> {
        let rows: Vec<UserRow> = self
            .session
            .execute_iter(self.by_user.clone(), (user_id,))
            .await
            .map_err(StoreError::rows("select phones_by_user"))?
            .rows_stream::<UserRow>()
            .map_err(StoreError::rows("select phones_by_user"))?
            .take(MAX_PHONES_PER_USER)
            .try_collect()
            .await
            .map_err(StoreError::rows("select phones_by_user"))?;
        Ok(rows
            .into_iter()
            .map(
                |(phone, verified, opted_out, linked_at, time_zone)| UserPhone {
                    phone,
                    verified: verified.unwrap_or(false),
                    opted_out: opted_out.unwrap_or(false),
                    linked_at_ms: linked_at.map(|t| t.0),
                    time_zone,
                },
            )
            .collect())
    }
}
