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

use crate::config::Settings;
use crate::kafka::EventProducer;

pub use error::IngressError;

/// What the webhook handlers share.
pub struct IngressState {
    pub producer: EventProducer,
    pub messages_topic: String,
    /// Where status callbacks are appended.
    pub outbound_topic: String,
    pub public_url: String,
    /// `None` only when signature checks were deliberately disabled.
    pub auth_token: Option<String>,
    /// `None` when duplicate detection is switched off.
    pub dedupe: Option<dedupe::Deduper>,
    /// `None` when rate limiting is switched off.
    pub rate_limit: Option<rate_limit::RateLimiter>,
}

impl IngressState {
    /// Build from settings; refuses to start without a token unless unsigned mode was chosen.
    pub fn new(
        settings: &Settings,
        producer: EventProducer,
        redis: deadpool_redis::Pool,
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
            auth_token,
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
