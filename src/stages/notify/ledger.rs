//! The send ledger: one Redis record per `OutboundRequested.event_id`, so that a retried or
//! replayed request is never sent twice.
//!
//! A record is `pending` while a send is under way (it expires after `claim_ttl`, which
//! outlasts every attempt) and then holds the decision (the `OutboundStatusChanged` the stage
//! emitted, as JSON) for `record_ttl`. A request that finds a decision gets it back; one that
//! finds `pending` is retried later by the runner; a send Twilio certainly did not take
//! releases its claim.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{Script, Value};

use crate::events::OutboundStatusChanged;

/// What the ledger knows about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Never seen: it is now `pending` and this caller owns the send.
    Fresh,
    /// Decided before: this is what was emitted.
    Decided(Box<OutboundStatusChanged>),
    /// A send is under way elsewhere, or its outcome was never recorded (see the module doc).
    Pending,
}

/// Redis did not answer, or holds something unreadable.
#[derive(Debug, thiserror::Error)]
#[error("send ledger (Redis) unavailable: {0}")]
pub struct LedgerError(pub String);

/// Send records in Redis.
#[derive(Clone)]
pub struct Ledger {
    pool: deadpool_redis::Pool,
    prefix: String,
    claim_ttl: Duration,
    record_ttl: Duration,
    claim: Arc<Script>,
    release: Arc<Script>,
}

const PENDING: &str = "pending";

// Returns the current value, or 1 after taking the key as pending.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[1])
return 1
"#;

// Deletes the key only while it is still pending: a recorded decision is never dropped.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

impl Ledger {
    /// `prefix` isolates key spaces (the Kafka topic prefix, so tests do not collide).
    pub fn new(
        pool: deadpool_redis::Pool,
        prefix: &str,
        claim_ttl: Duration,
        record_ttl: Duration,
    ) -> Ledger {
        Ledger {
            pool,
            prefix: prefix.to_owned(),
            claim_ttl,
            record_ttl,
            claim: Arc::new(Script::new(CLAIM)),
            release: Arc::new(Script::new(RELEASE)),
        }
    }

    fn key(&self, event_id: &str) -> String {
        format!("{}smsflow:notify:send:{event_id}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, LedgerError> {
        self.pool
            .get()
            .await
            .map_err(|e| LedgerError(e.to_string()))
    }

    /// Take the request, or learn what became of it.
    pub async fn claim(&self, event_id: &str) -> Result<Claim, LedgerError> {
        let mut conn = self.conn().await?;
        let value: Value = self
            .claim
            .key(self.key(event_id))
            .arg(self.claim_ttl.as_millis() as u64)
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
        let text = match value {
            Value::Int(1) => return Ok(Claim::Fresh),
            Value::BulkString(b) => String::from_utf8(b)
                .map_err(|_| LedgerError("a send record is not UTF-8".into()))?,
            Value::SimpleString(s) => s,
            other => return Err(LedgerError(format!("unexpected claim answer {other:?}"))),
        };
        if text == PENDING {
            return Ok(Claim::Pending);
        }
        serde_json::from_str(&text)
            .map(|ev| Claim::Decided(Box::new(ev)))
            .map_err(|e| LedgerError(format!("a send record is unreadable: {e}")))
    }

    /// Remember the decision for `record_ttl`.
    pub async fn record(
        &self,
        event_id: &str,
        ev: &OutboundStatusChanged,
    ) -> Result<(), LedgerError> {
        let json = serde_json::to_string(ev).map_err(|e| LedgerError(e.to_string()))?;
        let mut conn = self.conn().await?;
        deadpool_redis::redis::cmd("SET")
            .arg(self.key(event_id))
            .arg(json)
            .arg("PX")
            .arg(self.record_ttl.as_millis() as u64)
            .query_async::<()>(&mut *conn)
            .await
            .map_err(|e| LedgerError(e.to_string()))
    }

    /// Give the request back: nothing was sent, so a later attempt may send it.
    pub async fn release(&self, event_id: &str) {
        let result: Result<i64, LedgerError> = async {
            let mut conn = self.conn().await?;
            self.release
                .key(self.key(event_id))
                .invoke_async(&mut *conn)
                .await
                .map_err(|e| LedgerError(e.to_string()))
        }
        .await;
        if let Err(e) = result {
            // The claim expires by itself after claim_ttl; until then retries wait.
            tracing::warn!(error = %e, "could not release a send claim");
        }
    }
}
