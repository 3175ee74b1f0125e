//! The confirm stage's memory: one Redis hash per message (see `tally` for its fields), kept
//! for `confirm.max_age` after its last write.

use std::collections::HashMap;
use std::time::Duration;

use super::tally::EMITTER;

/// Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("confirm state (Redis) unavailable: {0}; the input is retried")]
pub struct StateError(String);

/// Per-message hashes in Redis.
#[derive(Clone)]
pub struct MessageState {
    pool: deadpool_redis::Pool,
    prefix: String,
    ttl: Duration,
}

impl MessageState {
    /// `prefix` isolates key spaces (the Kafka topic prefix, so tests do not collide).
    pub fn new(pool: deadpool_redis::Pool, prefix: &str, ttl: Duration) -> MessageState {
        MessageState {
            pool,
            prefix: prefix.to_owned(),
            ttl,
        }
    }

    fn key(&self, message_sid: &str) -> String {
        format!("{}smsflow:confirm:{message_sid}", self.prefix)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StateError> {
        self.pool.get().await.map_err(|e| StateError(e.to_string()))
    }

    /// Set `fields` and read the whole hash back, atomically: whoever writes last sees every
    /// earlier write, so the input that completes a message always notices.
    pub async fn record(
        &self,
        message_sid: &str,
        fields: &[(String, String)],
    ) -> Result<HashMap<String, String>, StateError> {
        let key = self.key(message_sid);
        let mut conn = self.conn().await?;
        let (all,): (HashMap<String, String>,) = deadpool_redis::redis::pipe()
            .atomic()
            .hset_multiple(&key, fields)
            .ignore()
            .pexpire(&key, self.ttl_ms())
            .ignore()
            .hgetall(&key)
            .query_async(&mut *conn)
            .await
            .map_err(|e| StateError(e.to_string()))?;
        Ok(all)
    }

    /// Claim the reply for `claimant` (an input record's position). True for the first
    /// claimant and again for the same one, so the record whose transaction aborted emits again
    /// on its retry, while other records of a complete message (copies, or racing it) do not.
    pub async fn claim(&self, message_sid: &str, claimant: &str) -> Result<bool, StateError> {
        let key = self.key(message_sid);
        let mut conn = self.conn().await?;
        let (owner,): (Option<String>,) = deadpool_redis::redis::pipe()
            .atomic()
            .hset_nx(&key, EMITTER, claimant)
            .ignore()
            // Never leave a key without its expiry, even if it expired since `record`.
            .pexpire(&key, self.ttl_ms())
            .ignore()
            .hget(&key, EMITTER)
            .query_async(&mut *conn)
            .await
            .map_err(|e| StateError(e.to_string()))?;
        Ok(owner.as_deref() == Some(claimant))
    }
}
