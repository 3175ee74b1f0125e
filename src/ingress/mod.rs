//! Ingress: the Twilio webhooks (inbound messages and outbound status callbacks). Checks the
//! signature, builds the event, appends it to Kafka, and answers 200 only once Kafka has it.

pub mod dedupe;
mod error;
pub mod form;
pub mod rate_limit;
pub mod signature;
mod status;
mod webhook;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::kafka::EventProducer;
use crate::phones::{PhoneDirectory, PhoneRegistry};

pub use error::IngressError;

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
        }
    }
}

/// What the webhook handlers share.
pub struct IngressState {
    pub producer: EventProducer,
    pub messages_topic: String,
    /// Where status callbacks are appended.
    pub outbound_topic: String,
    pub public_url: String,
    /// The webhook URLs configured on Twilio, connection-overrides fragment included: Twilio
    /// signs with them, and the fragment never reaches us.
    pub signed_urls: Vec<String>,
    /// `None` only when signature checks were deliberately disabled.
    pub auth_token: Option<String>,
    /// `None` when duplicate detection is switched off.
    pub dedupe: Option<dedupe::Deduper>,
    /// `None` when rate limiting is switched off.
    pub rate_limit: Option<rate_limit::RateLimiter>,
    /// Registry lookups.
    pub directory: Arc<PhoneDirectory>,
    /// `sender_policy = "registered"`: only verified numbers are enriched. With `"any"`, the
    /// registry is still asked whether the sender opted out.
    pub registered_only: bool,
    /// Registry changes from SMS (opt-out keywords, texted codes).
    pub registry: Arc<PhoneRegistry>,
    pub replies: Replies,
}

impl IngressState {
    /// Build from settings; refuses to start without a token unless unsigned mode was chosen.
    pub fn new(
        settings: &Settings,
        producer: EventProducer,
        redis: deadpool_redis::Pool,
        directory: Arc<PhoneDirectory>,
        registry: Arc<PhoneRegistry>,
    ) -> Result<Self, crate::config::ConfigError> {
        let auth_token = if settings.ingress.verify_signature {
            Some(settings.twilio_auth_token()?.to_owned())
        } else {
            tracing::warn!("webhook signature checks are DISABLED (ingress.allow_unsigned)");
            None
        };
        Ok(IngressState {
            producer,
            messages_topic: settings.topic(crate::topics::MESSAGES),
            outbound_topic: settings.topic(crate::topics::OUTBOUND),
            public_url: settings.http.public_url.trim_end_matches('/').to_owned(),
            // A public URL that cannot make a plan is warned about at start-up
            // (`twilio::startup`); signatures are then checked against it as received.
            signed_urls: crate::twilio::WebhookPlan::new(
                &settings.http.public_url,
                &settings.twilio.webhooks,
                settings.notify.status_callback_url.as_deref(),
            )
            .map(|plan| plan.signed_urls())
            .unwrap_or_default(),
            auth_token,
            directory,
            registered_only: settings.ingress.sender_policy == SenderPolicy::Registered,
            registry,
            replies: settings.ingress.replies.clone(),
            rate_limit: settings.ingress.rate_limit.enabled.then(|| {
                rate_limit::RateLimiter::new(
                    redis.clone(),
                    &settings.kafka.topic_prefix,
                    &settings.ingress.rate_limit,
                    settings.ingress.redis_failure,
                )
            }),
            dedupe: settings.ingress.dedupe.then(|| {
                dedupe::Deduper::new(
                    redis,
                    &settings.kafka.topic_prefix,
                    // A claim outlives the slowest append it guards.
                    settings.kafka.produce_deadline + std::time::Duration::from_secs(10),
                    settings.ingress.dedupe_ttl,
                    settings.ingress.redis_failure,
                )
            }),
        })
    }
}

/// Routes under `/webhooks/twilio`.
pub fn router(state: Arc<IngressState>, body_limit: usize) -> Router {
    Router::new()
        .route("/webhooks/twilio/messages", post(webhook::receive_message))
        .route("/webhooks/twilio/status", post(status::receive_status))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
