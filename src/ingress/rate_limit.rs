//! Rate limits per sender and per user: GCRA (the generic cell rate algorithm) in one atomic Redis script,
//! so every ingress instance shares the same budget and time comes from Redis's clock.

use std::time::Duration;

use deadpool_redis::redis::Script;
use serde::{Deserialize, Serialize};

use super::dedupe::RedisFailurePolicy;

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

// KEYS[1] = bucket; ARGV[1] = emission interval (ms), ARGV[2] = burst tolerance (ms).
// Returns {1, 0} when allowed, {0, retry_after_ms} when limited.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance - interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now + tolerance))
return {1, 0}
"#;

/// One budget in GCRA terms.
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

/// Checks senders and users against their budgets.
pub struct RateLimiter {
    pool: deadpool_redis::Pool,
    prefix: String,
    sender: Budget,
    user: Budget,
    policy: RedisFailurePolicy,
    script: Script,
}

impl RateLimiter {
    /// `prefix` isolates key spaces (the Kafka topic prefix).
    pub fn new(
        pool: deadpool_redis::Pool,
        prefix: &str,
        settings: &RateLimitSettings,
        policy: RedisFailurePolicy,
    ) -> Self {
        RateLimiter {
            pool,
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
            policy,
            script: Script::new(GCRA),
        }
    }

    /// Take one message from the sender's budget.
    pub async fn check_sender(&self, sender: &str) -> Result<Decision, RateLimitUnavailable> {
        let key = format!("{}smsflow:rate:sender:{sender}", self.prefix);
        self.take(&key, self.sender).await
    }

    /// The sender budget's period: the window of at most one rate-limit reply.
    pub fn sender_period(&self) -> Duration {
        self.sender.period
    }

    /// The user budget's period.
    pub fn user_period(&self) -> Duration {
        self.user.period
    }

    /// Take one message from the user's budget (all their numbers together).
    pub async fn check_user(&self, user_id: &str) -> Result<Decision, RateLimitUnavailable> {
        let key = format!("{}smsflow:rate:user:{user_id}", self.prefix);
        self.take(&key, self.user).await
    }

    async fn take(&self, key: &str, budget: Budget) -> Result<Decision, RateLimitUnavailable> {
        let result: Result<(i64, i64), String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            self.script
                .key(key)
                .arg(budget.interval_ms)
                .arg(budget.tolerance_ms)
                .invoke_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok((1, _)) => Ok(Decision::Allowed),
            Ok((_, wait)) => Ok(Decision::Limited {
                retry_after: Duration::from_millis(wait.max(0) as u64),
            }),
            Err(e) if self.policy.proceeds_without("the rate limit", &e) => Ok(Decision::Unchecked),
            Err(e) => Err(RateLimitUnavailable(e)),
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
