//! Duplicate webhooks: Twilio retries, and `#rc=` overrides add more tries, so one MessageSid
//! can arrive several times. Each is appended once.
//!
//! A claim is two-phase so that a failed append is never mistaken for a done one: the first
//! request marks the key `pending` (short TTL) before producing, then `done` (long TTL) once
//! Kafka acknowledged, or deletes it if the append failed. A retry that finds `done` gets 200
//! and appends nothing; one that finds `pending` gets 503 and Twilio tries again later.
//!
//! The claim is taken by the admission script, in the same round trip as the rate limits; the
//! `done` mark is written after the answer (the append is already durable then), and until it
//! lands this process itself answers a retry as a duplicate. A release (the append failed)
//! is awaited: it must land before Twilio retries.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::redis_link::RedisLink;

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

/// Claims of message ids in Redis: the claim itself is taken by the admission script
/// (`super::admission`); this confirms or releases it.
pub struct Deduper {
    redis: RedisLink,
    prefix: String,
    pending_ttl: Duration,
    done_ttl: Duration,
    /// Keys appended whose `done` mark is still on its way to Redis: a retry that arrives
    /// meanwhile is a duplicate, not a 503.
    confirming: Arc<Mutex<HashSet<String>>>,
    /// Bounds the confirms running in the background; past it, a confirm holds its answer.
    confirm_slots: Arc<Semaphore>,
}

/// Confirms in the background at once, at most (each is one short Redis round trip).
const MAX_BACKGROUND_CONFIRMS: usize = 4096;

impl Deduper {
    /// `prefix` isolates key spaces (it is the Kafka topic prefix, so tests do not collide).
    pub fn new(redis: RedisLink, prefix: &str, pending_ttl: Duration, done_ttl: Duration) -> Self {
        Deduper {
            redis,
            prefix: prefix.to_owned(),
            pending_ttl,
            done_ttl,
            confirming: Arc::default(),
            confirm_slots: Arc::new(Semaphore::new(MAX_BACKGROUND_CONFIRMS)),
        }
    }

    /// The keys that claim one message: its MessageSid and, when Twilio sent one, its
    /// idempotency token.
    pub fn keys(&self, message_sid: &str, idempotency_token: Option<&str>) -> Vec<String> {
        let mut keys = vec![format!("{}smsflow:dedupe:sid:{message_sid}", self.prefix)];
        if let Some(t) = idempotency_token.filter(|t| !t.is_empty()) {
            keys.push(format!("{}smsflow:dedupe:token:{t}", self.prefix));
        }
        keys
    }

    /// How long a claim stays pending, in milliseconds.
    pub fn pending_ttl_ms(&self) -> u64 {
        u64::try_from(self.pending_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Is one of `keys` appended, with its confirm still on its way to Redis?
    pub fn is_confirming(&self, keys: &[String]) -> bool {
        let confirming = self
            .confirming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keys.iter().any(|k| confirming.contains(k))
    }

    /// The append succeeded: remember it for `done_ttl`. The answer does not wait for Redis:
    /// until the `done` mark is written, this process answers a retry as a duplicate itself,
    /// and past `MAX_BACKGROUND_CONFIRMS` the confirm is awaited here.
    pub async fn confirm(&self, keys: Vec<String>) {
        let ttl = u64::try_from(self.done_ttl.as_millis()).unwrap_or(u64::MAX);
        let Ok(slot) = self.confirm_slots.clone().try_acquire_owned() else {
            return mark_done(&self.redis, &keys, ttl).await;
        };
        {
            let mut confirming = self
                .confirming
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            confirming.extend(keys.iter().cloned());
        }
        let redis = self.redis.clone();
        let confirming = self.confirming.clone();
        tokio::spawn(async move {
            mark_done(&redis, &keys, ttl).await;
            let mut set = confirming.lock().unwrap_or_else(PoisonError::into_inner);
            for k in &keys {
                set.remove(k);
            }
            drop(slot);
        });
    }

    /// On shutdown: wait until every `done` mark running in the background has reached Redis,
    /// at most `deadline`; false when some had not. Confirms after this one hold their
    /// request's answer instead, so the HTTP server's drain waits for them too.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let all = u32::try_from(MAX_BACKGROUND_CONFIRMS).unwrap_or(u32::MAX);
        match tokio::time::timeout(deadline, self.confirm_slots.acquire_many(all)).await {
            Ok(Ok(slots)) => {
                slots.forget();
                true
            }
            _ => false,
        }
    }

    /// The append failed: free the claim so Twilio's retry is accepted.
    pub async fn release(&self, keys: &[String]) {
        let result: Result<(), String> = async {
            let mut conn = self.redis.get().await.map_err(|e| e.to_string())?;
            deadpool_redis::redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not release a claim; it expires after the pending TTL");
        }
    }
}

/// Mark `keys` appended for `ttl_ms`, in one pipelined round trip.
async fn mark_done(redis: &RedisLink, keys: &[String], ttl_ms: u64) {
    let result: Result<(), String> = async {
        let mut conn = redis.get().await.map_err(|e| e.to_string())?;
        let mut pipe = deadpool_redis::redis::pipe();
        for k in keys {
            pipe.cmd("SET")
                .arg(k)
                .arg("done")
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
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
