//! Admission: the duplicate claim and both rate limits of one webhook, in one Redis round trip.
//!
//! A webhook used to pay three or four round trips before its answer (claim, sender budget,
//! user budget, confirm), and most of ingress's CPU was kernel socket work. Now one script
//! claims the message and takes from its budgets atomically, and the confirm after the append
//! runs off the answer path (see `Deduper::confirm`). What each check promises is unchanged:
//! - a message already appended answers 200 and appends nothing, one still being appended
//!   answers 503, and neither takes from any budget;
//! - a fresh message is marked pending before its budgets are taken, so a rate-limited one is
//!   still recorded once (as `SenderRejected`);
//! - the user budget is taken only when the sender's allowed the message, as before;
//! - when Redis does not answer, `fail_open` goes on without both checks (counted once) and
//!   `fail_closed` answers 503.

use std::time::{Duration, Instant};

use deadpool_redis::redis::Script;
use tracing::Instrument;

use super::dedupe::{Claim, DedupeUnavailable, Deduper, RedisFailurePolicy};
use super::rate_limit::{Decision, RateLimitUnavailable, RateLimiter};
use super::IngressError;
use crate::redis_link::RedisLink;
use crate::telemetry::sampled_child;

/// Which budgets a message takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budgets<'a> {
    /// Keywords and opted-out senders: none.
    None,
    /// The sender's.
    Sender { sender: &'a str },
    /// The sender's, then (if it allowed the message) the verified user's.
    SenderAndUser { sender: &'a str, user: &'a str },
}

/// What Redis said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub claim: Claim,
    pub decision: Decision,
    /// When limited, the period of the budget that said no: the window of at most one
    /// rate-limit reply.
    pub window: Duration,
}

// KEYS: the claim keys (ARGV[1] of them), then the sender's bucket and the user's bucket when
// ARGV[3] / ARGV[6] are non-zero. ARGV[2]: pending TTL (ms); ARGV[3..4] and ARGV[5..6]:
// emission interval and burst tolerance (ms) of the sender and user budgets (GCRA, the generic
// cell rate algorithm, timed by Redis's clock so every instance shares one budget).
// Returns {claim, limited_by, retry_after_ms}: claim 0 = fresh (now pending) or not checked,
// 1 = done, 2 = pending; limited_by 0 = allowed, 1 = sender, 2 = user.
const ADMIT: &str = r#"
local nclaim = tonumber(ARGV[1])
for i = 1, nclaim do
  local v = redis.call('GET', KEYS[i])
  if v == 'done' then return {1, 0, 0} end
  if v then return {2, 0, 0} end
end
for i = 1, nclaim do
  redis.call('SET', KEYS[i], 'pending', 'PX', ARGV[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function take(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance - interval
  if allow_at > now then return allow_at - now end
  redis.call('SET', key, new_tat, 'PX', math.max(1, new_tat - now + tolerance))
  return 0
end
local k = nclaim + 1
local sender_interval = tonumber(ARGV[3])
if sender_interval > 0 then
  local wait = take(KEYS[k], sender_interval, tonumber(ARGV[4]))
  if wait > 0 then return {0, 1, wait} end
  k = k + 1
end
local user_interval = tonumber(ARGV[5])
if user_interval > 0 then
  local wait = take(KEYS[k], user_interval, tonumber(ARGV[6]))
  if wait > 0 then return {0, 2, wait} end
end
return {0, 0, 0}
"#;

/// Runs the admission script.
pub struct Admitter {
    redis: RedisLink,
    policy: RedisFailurePolicy,
    script: Script,
}

impl Admitter {
    pub fn new(redis: RedisLink, policy: RedisFailurePolicy) -> Admitter {
        Admitter {
            redis,
            policy,
            script: Script::new(ADMIT),
        }
    }

    /// Claim `message_sid` (with `dedupe`) and take from `budgets` (with `limiter`), in one
    /// round trip; none when both are off, or when this process is still confirming the
    /// message (it was appended: a duplicate).
    pub async fn admit(
        &self,
        dedupe: Option<&Deduper>,
        limiter: Option<&RateLimiter>,
        message_sid: &str,
        idempotency_token: Option<&str>,
        budgets: Budgets<'_>,
    ) -> Result<Admission, IngressError> {
        let claim_keys = dedupe.map(|d| d.keys(message_sid, idempotency_token));
        if let (Some(d), Some(keys)) = (dedupe, &claim_keys) {
            if d.is_confirming(keys) {
                return Ok(Admission {
                    claim: Claim::Duplicate,
                    decision: Decision::Allowed,
                    window: Duration::ZERO,
                });
            }
        }
        let (sender, user) = match (limiter, budgets) {
            (None, _) | (_, Budgets::None) => (None, None),
            (Some(l), Budgets::Sender { sender }) => (Some(l.sender_bucket(sender)), None),
            (Some(l), Budgets::SenderAndUser { sender, user }) => {
                (Some(l.sender_bucket(sender)), Some(l.user_bucket(user)))
            }
        };
        let unchecked = Admission {
            claim: Claim::Unchecked,
            decision: Decision::Unchecked,
            window: Duration::ZERO,
        };
        if claim_keys.is_none() && sender.is_none() {
            return Ok(Admission {
                decision: Decision::Allowed,
                ..unchecked
            });
        }

        let started = Instant::now();
        let claim_keys = claim_keys.unwrap_or_default();
        let pending_ttl = dedupe.map_or(0, |d| d.pending_ttl_ms());
        let result: Result<(i64, i64, i64), String> = async {
            let mut conn = self.redis.get().await.map_err(|e| e.to_string())?;
            let mut inv = self.script.prepare_invoke();
            for k in &claim_keys {
                inv.key(k);
            }
            inv.arg(claim_keys.len()).arg(pending_ttl);
            for bucket in [&sender, &user] {
                match bucket {
                    Some(b) => {
                        inv.key(&b.key).arg(b.interval_ms).arg(b.tolerance_ms);
                    }
                    None => {
                        inv.arg(0).arg(0);
                    }
                }
            }
            inv.invoke_async(&mut conn).await.map_err(|e| e.to_string())
        }
        .instrument(sampled_child(|| tracing::info_span!("webhook.admission")))
        .await;
        crate::metrics::webhook_step("admission", started.elapsed());
        let (claimed, limited_by, wait) = match result {
            Ok(r) => r,
            Err(e)
                if self
                    .policy
                    .proceeds_without("the duplicate check and rate limits", &e) =>
            {
                return Ok(unchecked)
            }
            Err(e) if dedupe.is_some() => return Err(DedupeUnavailable(e).into()),
            Err(e) => return Err(RateLimitUnavailable(e).into()),
        };
        let claim = match claimed {
            1 => Claim::Duplicate,
            2 => Claim::InFlight,
            _ if dedupe.is_some() => Claim::Fresh(claim_keys),
            _ => Claim::Unchecked,
        };
        let retry_after = Duration::from_millis(wait.max(0) as u64);
        let (decision, window) = match (limited_by, &sender, &user) {
            (1, Some(b), _) | (2, _, Some(b)) => (Decision::Limited { retry_after }, b.period),
            _ => (Decision::Allowed, Duration::ZERO),
        };
        Ok(Admission {
            claim,
            decision,
            window,
        })
    }
}
