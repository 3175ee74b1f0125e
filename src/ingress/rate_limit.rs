//! Rate limits per sender and per user: GCRA (the generic cell rate algorithm), taken in
//! Redis by the admission script (`super::admission`) together with the duplicate claim, so
//! every ingress instance shares the same budget and time comes from Redis's clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A budget: `limit` messages per `period`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off switch.
    pub enabled: bool,
    /// Messages allowed per period per sender.
    pub sender_limit: u32,
    /// The period.
    #[serde(with = "humantime_serde")]
    pub sender_period: Duration,
    /// Messages that may arrive at once before spacing applies.
    pub sender_burst: u32,
    /// Messages allowed per period per user, over all of the user's numbers.
    pub user_limit: u32,
    /// The user period.
    #[serde(with = "humantime_serde")]
    pub user_period: Duration,
    /// The user burst.
    pub user_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            sender_limit: 60,
            sender_period: Duration::from_secs(60),
            sender_burst: 20,
            user_limit: 300,
            user_period: Duration::from_secs(60),
            user_burst: 60,
        }
    }
}

/// The answer for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; the sender may send again after this long.
    Limited {
        retry_after: Duration,
    },
    /// Redis did not answer and the policy is fail-open.
    Unchecked,
}

/// Redis did not answer and the policy is fail-closed.
#[derive(Debug, thiserror::Error)]
#[error("rate limit check unavailable (Redis: {0}); retry later")]
pub struct RateLimitUnavailable(pub String);

/// One budget in GCRA terms (the admission script does the arithmetic).
#[derive(Debug, Clone, Copy)]
struct Budget {
    interval_ms: u64,
    tolerance_ms: u64,
    period: Duration,
}

impl Budget {
    fn new(limit: u32, period: Duration, burst: u32) -> Budget {
        let interval_ms = (period.as_millis() as u64 / u64::from(limit.max(1))).max(1);
        Budget {
            interval_ms,
            tolerance_ms: interval_ms * u64::from(burst.saturating_sub(1)),
            period,
        }
    }
}

/// One budget of one sender or user, as the admission script takes it.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The Redis key holding the bucket's theoretical arrival time.
    pub key: String,
    /// Milliseconds between two messages at the sustained rate.
    pub interval_ms: u64,
    /// How far ahead of the sustained rate a burst may run, in milliseconds.
    pub tolerance_ms: u64,
    /// The budget's period.
    pub period: Duration,
}

/// The sender and user budgets; `admission` takes from them in Redis.
pub struct RateLimiter {
    prefix: String,
    sender: Budget,
    user: Budget,
}

impl RateLimiter {
    /// `prefix` isolates key spaces (the Kafka topic prefix).
    pub fn new(prefix: &str, settings: &RateLimitSettings) -> Self {
        RateLimiter {
            prefix: prefix.to_owned(),
            sender: Budget::new(
                settings.sender_limit,
                settings.sender_period,
                settings.sender_burst,
            ),
            user: Budget::new(
                settings.user_limit,
                settings.user_period,
                settings.user_burst,
            ),
        }
    }

    /// The sender's budget.
    pub fn sender_bucket(&self, sender: &str) -> Bucket {
        self.bucket(
            format!("{}smsflow:rate:sender:{sender}", self.prefix),
            self.sender,
        )
    }

    /// The user's budget (all their numbers together).
    pub fn user_bucket(&self, user_id: &str) -> Bucket {
        self.bucket(
            format!("{}smsflow:rate:user:{user_id}", self.prefix),
            self.user,
        )
    }

    fn bucket(&self, key: String, budget: Budget) -> Bucket {
        Bucket {
            key,
            interval_ms: budget.interval_ms,
            tolerance_ms: budget.tolerance_ms,
            period: budget.period,
        }
    }
}

/// Paid replies (TwiML `<Message>`) to senders that are not enriched: at most one per sender
/// per window, across every instance, so an auto-responder texting us cannot start a
/// ping-pong that costs an SMS each way.
pub struct ReplyGate {
    pool: deadpool_redis::Pool,
    prefix: String,
}

impl ReplyGate {
    /// `prefix` isolates key spaces (the Kafka topic prefix).
    pub fn new(pool: deadpool_redis::Pool, prefix: &str) -> ReplyGate {
        ReplyGate {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    /// May `sender` get a reply now? True at most once per `window` (one `SET NX PX` in
    /// Redis), whatever the reply. When Redis does not answer, no reply: the promise is "at
    /// most once", and a missing reply costs nothing.
    pub async fn claim(&self, sender: &str, window: Duration) -> bool {
        let key = format!("{}smsflow:rate:reply:{sender}", self.prefix);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let result: Result<Option<String>, String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            deadpool_redis::redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(window_ms)
                .query_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(set) => set.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot gate the reply in Redis; not replying");
                false
            }
        }
    }
}
