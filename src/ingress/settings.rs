//! `[ingress]`: signature checks, dedupe, rate limits, the sender policy and TwiML replies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dedupe::RedisFailurePolicy;
use super::rate_limit::RateLimitSettings;
use crate::validation::{ensure, InvalidSetting};

/// Webhook behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSettings {
    /// Check `X-Twilio-Signature`. Turning it off is refused unless `allow_unsigned` is set too.
    pub verify_signature: bool,
    /// Deliberate opt-in for local experiments without signatures.
    pub allow_unsigned: bool,
    /// Drop repeated deliveries of one MessageSid (or I-Twilio-Idempotency-Token) in Redis.
    pub dedupe: bool,
    /// How long an appended MessageSid is remembered.
    #[serde(with = "humantime_serde")]
    pub dedupe_ttl: Duration,
    /// When Redis does not answer: `fail_open` (accept, counted) or `fail_closed` (503).
    pub redis_failure: RedisFailurePolicy,
    /// Per-sender and per-user rate limits.
    pub rate_limit: RateLimitSettings,
    /// `registered` (default): only verified numbers in the phone registry are enriched;
    /// others are recorded as `SenderRejected`. `any`: every signed sender is accepted and
    /// keyed by its own number (a single-tenant deployment without accounts).
    pub sender_policy: SenderPolicy,
    /// TwiML replies; an empty text answers with no message.
    pub replies: Replies,
}

impl Default for IngressSettings {
    fn default() -> Self {
        IngressSettings {
            verify_signature: true,
            allow_unsigned: false,
            dedupe: true,
            dedupe_ttl: Duration::from_secs(24 * 3600),
            redis_failure: RedisFailurePolicy::FailOpen,
            rate_limit: RateLimitSettings::default(),
            sender_policy: SenderPolicy::Registered,
            replies: Replies::default(),
        }
    }
}

impl IngressSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            self.verify_signature || self.allow_unsigned,
            "ingress.verify_signature",
            "may be false only together with ingress.allow_unsigned = true",
        )
    }
}

/// Which senders ingress enriches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderPolicy {
    /// Only verified numbers of the phone registry; the rest become `SenderRejected`.
    Registered,
    /// Every signed sender, keyed by its own number (no accounts).
    Any,
}

/// Short TwiML replies. An empty text answers with no message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replies {
    /// To a number nobody registered.
    pub unknown: String,
    /// To a registered number that has not proved itself with its code yet.
    pub unverified: String,
    /// After a code texted back verified the number.
    pub verified: String,
    /// After STOP (and its synonyms) when Twilio did not handle it (no `OptOutType`).
    pub opted_out: String,
    /// After START (and its synonyms), likewise.
    pub opted_in: String,
    /// To HELP.
    pub help: String,
    /// To a message over a rate limit, at most once per sender per limit period (empty: none).
    pub rate_limited: String,
    /// `unknown` and `unverified` go out at most once per sender per this interval (each is
    /// a paid SMS, and an auto-responder would answer every one).
    #[serde(with = "humantime_serde")]
    pub stranger_interval: Duration,
}

impl Default for Replies {
    fn default() -> Self {
        Replies {
            unknown: "This number is not registered with smsflow. Sign up in the app first.".into(),
            unverified: "Reply with the 6-digit code we sent to finish verifying this number."
                .into(),
            verified: "Number verified. Text us anything to capture it.".into(),
            opted_out:
                "You are unsubscribed and will get no more messages. Reply START to resubscribe."
                    .into(),
            opted_in: "You are subscribed again. Reply STOP to unsubscribe.".into(),
            help: "smsflow turns your texts into items to review. Reply STOP to unsubscribe."
                .into(),
            rate_limited: String::new(),
            stranger_interval: Duration::from_secs(24 * 3600),
        }
    }
}
