//! The ingress role: the Twilio webhooks.

use std::sync::Arc;

use axum::Router;

use super::tasks::Tasks;
use super::{AppError, Shared};
use crate::ingress::{self, IngressClients, IngressState};
use crate::kafka::EventProducer;
use crate::phones::PhoneRegistry;

/// The webhook routes, ready to serve.
pub(super) fn start(
    shared: &Shared,
    producer: &EventProducer,
    registry: &Arc<PhoneRegistry>,
    tasks: &mut Tasks,
) -> Result<Router, AppError> {
    let s = &shared.settings;
    // A public URL that cannot make a plan is warned about just below (`twilio::startup`);
    // signatures are then checked against the URL as received.
    let signed_urls = crate::twilio::WebhookPlan::new(
        &s.http.public_url,
        &s.twilio.webhooks,
        s.notify.status_callback_url.as_deref(),
    )
    .map(|plan| plan.signed_urls())
    .unwrap_or_default();
    crate::twilio::startup::check(crate::twilio::startup::Inputs {
        public_url: &s.http.public_url,
        webhooks: &s.twilio.webhooks,
        status_callback_url: s.notify.status_callback_url.as_deref(),
        produce_deadline: s.kafka.produce_deadline,
        account_sid: s.twilio.account_sid.as_deref(),
        auth_token: s.twilio.auth_token.clone(),
    });
    let state = Arc::new(IngressState::new(
        &s.ingress,
        &s.kafka,
        &s.http.public_url,
        signed_urls,
        s.twilio.auth_token.as_ref(),
        IngressClients {
            producer: producer.clone(),
            redis: shared.clients.redis.clone(),
            redis_link: shared.clients.redis_link.clone(),
            directory: shared.directory.clone(),
            registry: registry.clone(),
        },
    )?);
    let draining = state.clone();
    let token = tasks.token();
    let grace = s.http.shutdown_grace;
    tasks.spawn("land duplicate marks on shutdown", async move {
        token.cancelled().await;
        draining.drain_confirms(grace).await;
        Ok(())
    });
    Ok(ingress::router(state, s.http.body_limit_bytes))
}
