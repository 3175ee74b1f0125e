//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use scylla::client::session::Session;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use crate::config::{CqlSettings, Settings};
use crate::events::{Encoder, WireFormat};
use crate::kafka::client;
use crate::store::{self, StoreError};

/// What readiness checks, shared with the admin endpoints.
pub struct Dependencies {
    /// A metadata-only Kafka client.
    pub kafka: Arc<BaseConsumer>,
    cql_settings: CqlSettings,
    // Connected on first use, so a role that does not need CQL starts while CQL is down.
    cql: OnceCell<Arc<Session>>,
    pub redis: deadpool_redis::Pool,
    /// The process's encoder: producers share it, so its registry ids are fetched once.
    pub encoder: Encoder,
}

/// Why the dependency clients could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error("cannot create the Kafka metadata client: {0}")]
    Kafka(rdkafka::error::KafkaError),
    #[error("redis.url is invalid: {0}")]
    Redis(String),
    #[error(transparent)]
    SchemaRegistry(#[from] crate::events::confluent::RegistryError),
}

impl Dependencies {
    /// Create the clients; nothing here waits for a dependency to answer.
    pub fn new(settings: &Settings) -> Result<Dependencies, DependencyError> {
        let kafka: BaseConsumer = client::base(&settings.kafka, "smsflow-health")
            .create()
            .map_err(DependencyError::Kafka)?;
        let redis = deadpool_redis::Config::from_url(&settings.redis.url)
            .builder()
            .map_err(|e| DependencyError::Redis(e.to_string()))?
            .max_size(settings.redis.pool_max_size)
            .wait_timeout(Some(CHECK_TIMEOUT))
            .create_timeout(Some(CHECK_TIMEOUT))
            .recycle_timeout(Some(CHECK_TIMEOUT))
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .map_err(|e| DependencyError::Redis(e.to_string()))?;
        let encoder = Encoder::new(
            settings.kafka.wire_format,
            &settings.kafka.schema_registry,
            &settings.kafka.topic_prefix,
        )?;
        Ok(Dependencies {
            kafka: Arc::new(kafka),
            cql_settings: settings.cql.clone(),
            cql: OnceCell::new(),
            redis,
            encoder,
        })
    }

    /// The CQL session, connecting on first use.
    pub async fn cql(&self) -> Result<&Arc<Session>, StoreError> {
        self.cql
            .get_or_try_init(|| store::connect(&self.cql_settings))
            .await
    }

    /// Export pool statistics (Redis pool, CQL connections) as gauges.
    pub fn export_pool_gauges(&self) {
        let redis = self.redis.status();
        crate::metrics::pool("redis", "size", redis.size as f64);
        crate::metrics::pool("redis", "available", redis.available as f64);
        crate::metrics::pool("redis", "waiting", redis.waiting as f64);
        crate::metrics::pool("redis", "max_size", redis.max_size as f64);
        if let Some(cql) = self.cql_if_connected() {
            let m = cql.get_metrics();
            crate::metrics::pool("cql", "connections", m.get_total_connections() as f64);
            crate::metrics::pool(
                "cql",
                "connection_timeouts",
                m.get_connection_timeouts() as f64,
            );
        }
    }

    /// The CQL session if one is connected already.
    pub fn cql_if_connected(&self) -> Option<&Arc<Session>> {
        self.cql.get()
    }
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: 200 when Kafka, CQL and Redis all answer (and, in confluent wire format, the
/// schema-registry ids are cached), else 503 naming the ones that failed.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "Readiness: Kafka, CQL and Redis answer; registry ids cached (confluent wire format)",
    responses(
        (status = 200, description = "`kafka`, `cql`, `redis` (and `schema_registry` in confluent wire format): `ok` each", body = Object),
        (status = 503, description = "As above, with `failed: ...` for each failing dependency and `failed` naming them", body = Object),
    ))]
pub async fn readyz(State(deps): State<Arc<Dependencies>>) -> impl IntoResponse {
    let (kafka, cql, redis, registry) = tokio::join!(
        check_kafka(&deps),
        check_cql(&deps),
        check_redis(&deps),
        check_registry_ids(&deps)
    );
    let mut body = Map::new();
    let mut failed = Vec::new();
    let mut checks = vec![("kafka", kafka), ("cql", cql), ("redis", redis)];
    if let Some(registry) = registry {
        checks.push(("schema_registry", registry));
    }
    for (name, result) in checks {
        match result {
            Ok(()) => {
                body.insert(name.into(), json!("ok"));
            }
            Err(e) => {
                failed.push(name);
                body.insert(name.into(), json!(format!("failed: {e}")));
            }
        }
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !failed.is_empty() {
        body.insert("failed".into(), json!(failed));
    }
    (status, Json(Value::Object(body)))
}

/// In confluent wire format producers need every topic's registry id. Once cached this asks
/// nothing (a registry outage then leaves the process ready); before, it fetches them.
async fn check_registry_ids(deps: &Dependencies) -> Option<Result<(), String>> {
    if deps.encoder.format() != WireFormat::Confluent {
        return None;
    }
    if deps.encoder.is_ready() {
        return Some(Ok(()));
    }
    Some(
        match tokio::time::timeout(CHECK_TIMEOUT, deps.encoder.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "producers in confluent wire format cannot write until the registry ids are cached: {e}"
            )),
            Err(_) => Err(format!(
                "producers in confluent wire format cannot write until the registry ids are cached: the schema registry did not answer within {CHECK_TIMEOUT:?}"
            )),
        },
    )
}

async fn check_kafka(deps: &Dependencies) -> Result<(), String> {
    let client = deps.kafka.clone();
    // librdkafka's metadata call blocks; keep it off the async workers.
    let md = tokio::task::spawn_blocking(move || client.fetch_metadata(None, CHECK_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if md.brokers().is_empty() {
        return Err("no brokers in metadata".into());
    }
    Ok(())
}

async fn check_cql(deps: &Dependencies) -> Result<(), String> {
    let q = async {
        let session = deps.cql().await.map_err(|e| e.to_string())?;
        session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, q).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn check_redis(deps: &Dependencies) -> Result<(), String> {
    let ping = async {
        let mut conn = deps.redis.get().await.map_err(|e| e.to_string())?;
        let pong: String = deadpool_redis::redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("unexpected PING answer {pong:?}"))
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}
