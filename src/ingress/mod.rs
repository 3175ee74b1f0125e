//! Ingress: the Twilio webhooks (inbound messages and outbound status callbacks). Checks the
//! signature, builds the event, appends it to Kafka, and answers 200 only once Kafka has it.

pub mod admission;
pub mod dedupe;
mod error;
pub mod form;
pub mod rate_limit;
mod settings;
pub mod signature;
mod status;
mod webhook;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;

use crate::kafka::{EventProducer, KafkaSettings};
use crate::phones::{PhoneDirectory, PhoneRegistry};
use crate::secrets::{ExposeSecret, SecretString};
use crate::validation::InvalidSetting;

pub use error::IngressError;
pub use settings::{IngressSettings, Replies, SenderPolicy};

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
    pub auth_token: Option<SecretString>,
    /// `None` when duplicate detection is switched off.
    pub dedupe: Option<dedupe::Deduper>,
    /// `None` when rate limiting is switched off.
    pub rate_limit: Option<rate_limit::RateLimiter>,
    /// Claims and budgets in one Redis round trip.
    pub admitter: admission::Admitter,
    /// At most one paid reply per sender per window, to senders that are not enriched.
    pub reply_gate: rate_limit::ReplyGate,
    /// Registry lookups.
    pub directory: Arc<PhoneDirectory>,
    /// `sender_policy = "registered"`: only verified numbers are enriched. With `"any"`, the
    /// registry is still asked whether the sender opted out.
    pub registered_only: bool,
    /// Registry changes from SMS (opt-out keywords, texted codes).
    pub registry: Arc<PhoneRegistry>,
    pub replies: Replies,
}

/// The clients ingress shares with the rest of the process.
pub struct IngressClients {
    pub producer: EventProducer,
    /// Pooled connections, for the rate-limit replies.
    pub redis: deadpool_redis::Pool,
    /// The hot path's connection: the admission script and the `done` marks.
    pub redis_link: crate::redis_link::RedisLink,
    pub directory: Arc<PhoneDirectory>,
    pub registry: Arc<PhoneRegistry>,
}

impl IngressState {
    /// Build from `[ingress]`; `signed_urls` are the webhook URLs configured on Twilio
    /// (connection-overrides fragment included, see `twilio::WebhookPlan`); `auth_token` is
    /// `TWILIO_AUTH_TOKEN`, required unless signature checks were deliberately disabled.
    pub fn new(
        settings: &IngressSettings,
        kafka: &KafkaSettings,
        public_url: &str,
        signed_urls: Vec<String>,
        auth_token: Option<&SecretString>,
        clients: IngressClients,
    ) -> Result<Self, InvalidSetting> {
        let auth_token = if settings.verify_signature {
            let token = auth_token
                .filter(|t| !t.expose_secret().is_empty())
                .ok_or_else(|| {
                    InvalidSetting::new(
                        "twilio.auth_token",
                        "set TWILIO_AUTH_TOKEN to check webhook signatures",
                    )
                })?;
            Some(token.clone())
        } else {
            tracing::warn!("webhook signature checks are DISABLED (ingress.allow_unsigned)");
            None
        };
        let IngressClients {
            producer,
            redis,
            redis_link,
            directory,
            registry,
        } = clients;
        Ok(IngressState {
            producer,
            messages_topic: kafka.topic(crate::topics::MESSAGES),
            outbound_topic: kafka.topic(crate::topics::OUTBOUND),
            public_url: public_url.trim_end_matches('/').to_owned(),
            signed_urls,
            auth_token,
            directory,
            registered_only: settings.sender_policy == SenderPolicy::Registered,
            registry,
            replies: settings.replies.clone(),
            reply_gate: rate_limit::ReplyGate::new(redis, &kafka.topic_prefix),
            rate_limit: settings
                .rate_limit
                .enabled
                .then(|| rate_limit::RateLimiter::new(&kafka.topic_prefix, &settings.rate_limit)),
            admitter: admission::Admitter::new(redis_link.clone(), settings.redis_failure),
            dedupe: settings.dedupe.then(|| {
                dedupe::Deduper::new(
                    redis_link,
                    &kafka.topic_prefix,
                    // A claim outlives the slowest append it guards.
                    kafka.produce_deadline + std::time::Duration::from_secs(10),
                    settings.dedupe_ttl,
                )
            }),
        })
    }

    /// On shutdown: let the duplicate marks still on their way to Redis land, at most
    /// `grace`, so that a retry after a restart is still answered as a duplicate.
    pub async fn drain_confirms(&self, grace: std::time::Duration) {
        if let Some(d) = &self.dedupe {
            if !d.drain(grace).await {
                tracing::warn!(
                    "some duplicate marks did not reach Redis before shutdown; their claims \
                     expire after the pending TTL, and a retry of those messages is appended again"
                );
            }
        }
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
