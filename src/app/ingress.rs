//! The ingress role: the Twilio webhooks.

use std::sync::Arc;

use axum::Router;

use super::{AppError, Shared};
use crate::ingress::{self, IngressClients, IngressState};
use crate::kafka::EventProducer;
use crate::phones::PhoneRegistry;

/// The webhook routes, ready to serve.
pub(super) fn start(
    shared: &Shared,
    producer: &EventProducer,
    registry: &Arc<PhoneRegistry>,
) -> Result<Router, AppError> {
    let s = &shared.settings;
    let state = IngressState::new(
        &s.ingress,
        &s.kafka,
        &s.http.public_url,
        s.twilio.auth_token.as_deref(),
        IngressClients {
            producer: producer.clone(),
            redis: shared.clients.redis.clone(),
            directory: shared.directory.clone(),
            registry: registry.clone(),
        },
    )?;
    Ok(ingress::router(Arc::new(state), s.http.body_limit_bytes))
}
