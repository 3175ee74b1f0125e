//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Map, Value};

use crate::events::WireFormat;
use crate::kafka::context::KafkaContext;
use crate::kafka::encoder::EventEncoder;
use crate::store::SharedSession;

/// What readiness checks: handles on the process's shared clients.
pub struct Readiness {
    /// A metadata-only Kafka client.
    pub kafka: Arc<BaseConsumer<KafkaContext>>,
    pub cql: SharedSession,
    pub redis: deadpool_redis::Pool,
    /// The process's encoder: producers share it, so its registry ids are fetched once.
    pub encoder: EventEncoder,
    /// How long each check waits for an answer.
    pub timeout: Duration,
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "getHealth",
    summary = "Liveness",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: 200 when Kafka, CQL and Redis all answer (and, in confluent wire format, the
/// schema-registry ids are cached), else 503 naming the ones that failed.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "getReadiness",
    summary = "Readiness: Kafka, CQL and Redis answer; registry ids cached (confluent wire format)",
    responses(
        (status = 200, description = "`kafka`, `cql`, `redis` (and `schema_registry` in confluent wire format): `ok` each", body = Object),
        (status = 503, description = "As above, with `failed: ...` for each failing dependency and `failed` naming them", body = Object),
    ))]
pub async fn readyz(State(deps): State<Arc<Readiness>>) -> impl IntoResponse {
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
async fn check_registry_ids(deps: &Readiness) -> Option<Result<(), String>> {
    if deps.encoder.format() != WireFormat::Confluent {
        return None;
    }
    if deps.encoder.is_ready() {
        return Some(Ok(()));
    }
    let why = "producers in confluent wire format cannot write until the registry ids are cached";
    Some(
        match tokio::time::timeout(deps.timeout, deps.encoder.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{why}: {e}")),
            Err(_) => Err(format!(
                "{why}: the schema registry did not answer within {:?}",
                deps.timeout
            )),
        },
    )
}

async fn check_kafka(deps: &Readiness) -> Result<(), String> {
    let (client, timeout) = (deps.kafka.clone(), deps.timeout);
    // librdkafka's metadata call blocks; keep it off the async workers.
    let md = tokio::task::spawn_blocking(move || client.fetch_metadata(None, timeout))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if md.brokers().is_empty() {
        return Err("no brokers in metadata".into());
    }
    Ok(())
}

/// One query. Its error names the contact points and tells a node that does not answer
/// (paused, overloaded, stuck in GC) from one that refuses.
async fn check_cql(deps: &Readiness) -> Result<(), String> {
    let nodes = deps.cql.nodes().join(",");
    let q = async {
        let session = deps.cql.get().await.map_err(|e| e.to_string())?;
        session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map(|_| ())
            .map_err(|e| format!("CQL at {nodes} refused the query: {e}"))
    };
    match tokio::time::timeout(deps.timeout, q).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "CQL at {nodes} did not answer within {:?}: the node accepts no connection or \
             answers none (paused, overloaded or unreachable)",
            deps.timeout
        )),
    }
}

async fn check_redis(deps: &Readiness) -> Result<(), String> {
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
    match tokio::time::timeout(deps.timeout, ping).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", deps.timeout)),
    }
}
