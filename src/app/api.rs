//! The api role: the user API over the read models and the phone registry.

use std::sync::Arc;

use axum::Router;

use super::{AppError, Shared};
use crate::api::auth::Authenticator;
use crate::api::items::ItemsApi;
use crate::api::phones::PhonesApi;
use crate::kafka::EventProducer;
use crate::phones::PhoneRegistry;
use crate::projector::items::ItemReads;
use crate::projector::phones::PhoneReads;

/// The `/v1` user routes and the OpenAPI document. Needs CQL now, to prepare its reads.
pub(super) async fn start(
    shared: &Shared,
    producer: &EventProducer,
    registry: &Arc<PhoneRegistry>,
    authenticator: Arc<Authenticator>,
) -> Result<Router, AppError> {
    if !authenticator.configured() {
        tracing::warn!(
            "api.auth has neither hs256_secret nor jwks_url: every /v1 request will get 401"
        );
    }
    let cql = |source| AppError::Cql {
        role: "api",
        source,
    };
    let session = shared.clients.cql.get().await.map_err(cql)?;
    let keyspace = shared.clients.cql.keyspace();
    let phones = PhonesApi {
        registry: registry.clone(),
        reads: PhoneReads::new(session.clone(), keyspace)
            .await
            .map_err(cql)?,
    };
    let items = ItemsApi {
        reads: ItemReads::new(session, keyspace).await.map_err(cql)?,
        producer: producer.clone(),
        reviews_topic: shared.settings.kafka.topic(crate::topics::REVIEWS),
        produce_deadline: shared.settings.kafka.produce_deadline,
    };
    Ok(crate::api::router(
        Arc::new(items),
        Arc::new(phones),
        authenticator,
        shared.settings.http.body_limit_bytes,
    ))
}
