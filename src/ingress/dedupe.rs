//! Duplicate webhooks: Twilio retries, and `#rc=` overrides add more tries, so one MessageSid
//! can arrive several times. Each is appended once.
//!
//! A claim is two-phase so that a failed append is never mistaken for a done one: the first
//! request marks the key `pending` (short TTL) before producing, then `done` (long TTL) once
//! Kafka acknowledged, or deletes it if the append failed. A retry that finds `done` gets 200
//! and appends nothing; one that finds `pending` gets 503 and Twilio tries again later.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::Script;
use serde::{Deserialize, Serialize};

/// What to do when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailurePolicy {
    /// Accept the webhook without the check (counted); downstream ids are deterministic, so
    /// a duplicate that slips through still projects once.
    FailOpen,
    /// Answer 503 so Twilio retries later.
    FailClosed,
}

impl RedisFailurePolicy {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            RedisFailurePolicy::FailOpen => "fail_open",
            RedisFailurePolicy::FailClosed => "fail_closed",
        }
    }

    /// Count and log a Redis failure of `check`; true means go on without it (fail-open).
    pub fn proceeds_without(self, check: &str, error: &str) -> bool {
        crate::metrics::redis_unavailable(self.label());
        match self {
            RedisFailurePolicy::FailOpen => {
                tracing::warn!(%error, "Redis unavailable; accepting without {check} (fail_open)");
                true
            }
            RedisFailurePolicy::FailClosed => false,
        }
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First sight: append, then `confirm` or `release`.
    Fresh(Vec<String>),
    /// Already appended: answer 200 and append nothing.
    Duplicate,
    /// Another request for the same message is appending right now.
    InFlight,
    /// Redis did not answer and the policy is fail-open.
    Unchecked,
}

/// Redis did not answer and the policy is fail-closed.
#[derive(Debug, thiserror::Error)]
#[error("duplicate check unavailable (Redis: {0}); retry later")]
pub struct DedupeUnavailable(pub String);

/// Claims message ids in Redis.
pub struct Deduper {
    pool: deadpool_redis::Pool,
    prefix: String,
    pending_ttl: Duration,
    done_ttl: Duration,
    policy: RedisFailurePolicy,
    claim: Arc<Script>,
}

// Claims every key or none: returns 1 when all were free (now pending), else the state of the
// first taken key ("done" or "pending").
const CLAIM: &str = r#"
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then return v end
end
for i, k in ipairs(KEYS) do
  redis.call('SET', k, 'pending', 'PX', ARGV[1])
end
return 1
"#;

impl Deduper {
    /// `prefix` isolates key spaces (it is the Kafka topic prefix, so tests do not collide).
    pub fn new(
        pool: deadpool_redis::Pool,
        prefix: &str,
        pending_ttl: Duration,
        done_ttl: Duration,
        policy: RedisFailurePolicy,
    ) -> Self {
        Deduper {
            pool,
            prefix: prefix.to_owned(),
            pending_ttl,
            done_ttl,
            policy,
            claim: Arc::new(Script::new(CLAIM)),
        }
    }

    fn keys(&self, message_sid: &str, idempotency_token: Option<&str>) -> Vec<String> {
        let mut keys = vec![format!("{}smsflow:dedupe:sid:{message_sid}", self.prefix)];
        if let Some(t) = idempotency_token.filter(|t| !t.is_empty()) {
            keys.push(format!("{}smsflow:dedupe:token:{t}", self.prefix));
        }
        keys
    }

    /// Claim a message before appending it.
    pub async fn claim(
        &self,
        message_sid: &str,
        idempotency_token: Option<&str>,
    ) -> Result<Claim, DedupeUnavailable> {
        let keys = self.keys(message_sid, idempotency_token);
        let result: Result<deadpool_redis::redis::Value, String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let mut inv = self.claim.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(self.pending_ttl.as_millis() as u64);
            inv.invoke_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        use deadpool_redis::redis::Value;
        match result {
            Ok(Value::Int(1)) => Ok(Claim::Fresh(keys)),
            Ok(Value::BulkString(b)) if b == b"done" => Ok(Claim::Duplicate),
            Ok(Value::SimpleString(s)) if s == "done" => Ok(Claim::Duplicate),
            Ok(_) => Ok(Claim::InFlight),
            Err(e) => self.unavailable(e),
        }
    }

    /// The append succeeded: remember it for `done_ttl`.
    pub async fn confirm(&self, keys: &[String]) {
        let ttl = self.done_ttl.as_millis() as u64;
        let result: Result<(), String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let mut pipe = deadpool_redis::redis::pipe();
            for k in keys {
                pipe.cmd("SET")
                    .arg(k)
                    .arg("done")
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
            }
            pipe.query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            // The pending mark expires by itself; a retry then appends again, and
            // deterministic downstream ids absorb that.
            tracing::warn!(error = %e, "could not mark a message as appended");
        }
    }

    /// The append failed: free the claim so Twilio's retry is accepted.
    pub async fn release(&self, keys: &[String]) {
        let result: Result<(), String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            deadpool_redis::redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not release a claim; it expires after the pending TTL");
        }
    }

    fn unavailable(&self, e: String) -> Result<Claim, DedupeUnavailable> {
        if self.policy.proceeds_without("the duplicate check", &e) {
            Ok(Claim::Unchecked)
        } else {
            Err(DedupeUnavailable(e))
        }
    }
}
