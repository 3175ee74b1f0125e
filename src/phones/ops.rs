//! `smsflow phones ...`: registry changes from the command line, for operators and tests.
//! They append the same events the API does, with actor `cli`.

use std::sync::Arc;

use super::registry::Actor;
use super::{normalize, InvalidPhone, PhoneDirectory, PhoneRegistry, RegistryError};
use crate::config::Settings;
use crate::events::PhoneState;
use crate::kafka::{EventProducer, ProduceError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Phone(#[from] InvalidPhone),
    #[error(transparent)]
    TimeZone(#[from] super::InvalidTimeZone),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] ProduceError),
    #[error("redis.url is invalid: {0}")]
    Redis(String),
}

async fn registry(settings: &Settings) -> Result<(PhoneRegistry, EventProducer), OpsError> {
    let kafka = settings.kafka.clone();
    let producer = tokio::task::spawn_blocking(move || EventProducer::new(&kafka, "smsflow-cli"))
        .await
        .map_err(|e| OpsError::Redis(format!("producer task failed: {e}")))??;
    // In confluent wire format the registry ids are needed before the first send.
    producer.ready().await.map_err(ProduceError::from)?;
    let redis = deadpool_redis::Config::from_url(&settings.redis.url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .map_err(|e| OpsError::Redis(e.to_string()))?;
    let directory = Arc::new(PhoneDirectory::new(&settings.cql, &settings.phones));
    Ok((
        PhoneRegistry::new(settings, directory, producer.clone(), redis),
        producer,
    ))
}

fn flush(producer: &EventProducer) {
    if producer.flush(std::time::Duration::from_secs(5)).is_err() {
        tracing::warn!("producer flush did not complete");
    }
}

/// Link a number to a user; `verified` also marks it verified on the operator's word, and
/// `send_code` texts it a code instead.
pub async fn link(
    settings: &Settings,
    phone: &str,
    user_id: &str,
    verified: bool,
    send_code: bool,
) -> Result<(String, PhoneState), OpsError> {
    link_in_zone(settings, phone, user_id, verified, send_code, None).await
}

/// `link`, also setting the number's time zone (an IANA name such as America/New_York).
pub async fn link_in_zone(
    settings: &Settings,
    phone: &str,
    user_id: &str,
    verified: bool,
    send_code: bool,
    time_zone: Option<&str>,
) -> Result<(String, PhoneState), OpsError> {
    let phone = normalize(phone)?;
    let time_zone = time_zone.map(super::time_zone).transpose()?;
    let (registry, producer) = registry(settings).await?;
    let mut state = registry
        .link(
            &phone,
            user_id,
            Actor::Cli,
            send_code && !verified,
            time_zone,
        )
        .await?
        .state;
    if verified && !state.verified {
        state = registry.verify_by_operator(&phone).await?;
    }
    flush(&producer);
    Ok((phone, state))
}

/// Remove a number from its account.
pub async fn unlink(settings: &Settings, phone: &str) -> Result<String, OpsError> {
    let phone = normalize(phone)?;
    let (registry, producer) = registry(settings).await?;
    registry.unlink(&phone, None, Actor::Cli).await?;
    flush(&producer);
    Ok(phone)
}

/// The current state of a number.
pub async fn show(
    settings: &Settings,
    phone: &str,
) -> Result<(String, Option<PhoneState>), OpsError> {
    let phone = normalize(phone)?;
    let (registry, _) = registry(settings).await?;
    let state = registry.current(&phone).await?;
    Ok((phone, state))
}
