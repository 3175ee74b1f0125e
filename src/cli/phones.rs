//! `smsflow phones ...`: registry changes from the command line, for operators and tests.
//! They append the same events the API does, with actor `cli`.

use std::sync::Arc;

use crate::config::Settings;
use crate::events::PhoneState;
use crate::kafka::{EventProducer, ProduceError};
use crate::phones::registry::Actor;
use crate::phones::{
    normalize, time_zone as parse_time_zone, InvalidPhone, InvalidTimeZone, PhoneDirectory,
    PhoneRegistry, RegistryError,
};
use crate::secrets::ExposeSecret;
use crate::store::SharedSession;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Phone(#[from] InvalidPhone),
    #[error(transparent)]
    TimeZone(#[from] InvalidTimeZone),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] ProduceError),
    #[error("the Kafka producer could not be created: {0}")]
    ProducerTask(tokio::task::JoinError),
    #[error("redis.url is invalid: {0}")]
    Redis(String),
}

async fn registry(settings: &Settings) -> Result<(PhoneRegistry, EventProducer), OpsError> {
    let kafka = settings.kafka.clone();
    let producer = tokio::task::spawn_blocking(move || EventProducer::new(&kafka, "smsflow-cli"))
        .await
        .map_err(OpsError::ProducerTask)??;
    // In confluent wire format the registry ids are needed before the first send.
    producer.ready().await.map_err(ProduceError::from)?;
    let redis = deadpool_redis::Config::from_url(settings.redis.url.expose_secret())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .map_err(|e| OpsError::Redis(e.to_string()))?;
    let directory = Arc::new(PhoneDirectory::new(
        &settings.phones,
        SharedSession::new(&settings.cql),
        redis.clone(),
        &settings.kafka.topic_prefix,
    ));
    let registry = PhoneRegistry::new(
        &settings.phones,
        &settings.kafka,
        directory,
        producer.clone(),
        redis,
    );
    Ok((registry, producer))
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
    let time_zone = time_zone.map(parse_time_zone).transpose()?;
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

/// `smsflow phones link`: link (and perhaps verify) a number, then print its state.
pub async fn run_link(
    settings: &Settings,
    phone: &str,
    user_id: &str,
    verified: bool,
    send_code: bool,
    time_zone: Option<&str>,
) -> Result<(), OpsError> {
    let (phone, state) =
        link_in_zone(settings, phone, user_id, verified, send_code, time_zone).await?;
    println!("{phone}  {}", describe(Some(&state)));
    Ok(())
}

/// `smsflow phones unlink`.
pub async fn run_unlink(settings: &Settings, phone: &str) -> Result<(), OpsError> {
    let phone = unlink(settings, phone).await?;
    println!("{phone}  unlinked");
    Ok(())
}

/// `smsflow phones show`.
pub async fn run_show(settings: &Settings, phone: &str) -> Result<(), OpsError> {
    let (phone, state) = show(settings, phone).await?;
    println!("{phone}  {}", describe(state.as_ref()));
    Ok(())
}

/// One line for a number's registry state.
pub fn describe(state: Option<&PhoneState>) -> String {
    match state {
        None => "not registered".into(),
        Some(s) => format!(
            "user={} verified={} opted_out={} time_zone={}",
            s.user_id.as_deref().unwrap_or("-"),
            s.verified,
            s.opted_out,
            s.time_zone.as_deref().unwrap_or("-")
        ),
    }
}
